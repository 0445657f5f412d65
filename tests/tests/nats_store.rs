//! The NATS JetStream store against real servers: the conformance suite on a single server and
//! on a three-node cluster (replicas 3), and what is particular to NATS.
//!
//! The servers come from `.ci/nats start` (see `support/nats.rs` for the URLs and variables).
//! Every store gets its own JetStream streams and subject prefix, deleted at the end, so the
//! tests run in parallel with each other and with anything else on the servers.

use std::sync::Arc;

use eventsource_core::testing::conformance;

mod support;
use support::nats::Servers;

async fn conformance_on(servers: Servers, tag: &'static str, cases: u32) {
    let servers = Arc::new(servers);
    let factory = servers.clone();
    let report = conformance::try_run_with(
        move || {
            let servers = factory.clone();
            async move { servers.store(tag).await }
        },
        conformance::ModelCases::new(cases),
    )
    .await;
    println!("{report}");
    for (check, took) in &report.passed {
        println!("  ok {check} ({took:?})");
    }
    servers.finish().await;
    report.assert_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite_on_a_single_server() {
    let Some(servers) = Servers::single().await else {
        return;
    };
    conformance_on(servers, "conf", 16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite_on_a_three_node_cluster() {
    let Some(servers) = Servers::cluster().await else {
        return;
    };
    conformance_on(servers, "conf3", 8).await;
}
