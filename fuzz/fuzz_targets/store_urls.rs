//! The store option parsers on arbitrary strings: `SqliteOptions::from_url`, and the
//! PostgreSQL options (the connection string, parsed by `Debug` and by `connect`, and the
//! schema and table names `connect` validates). Ok or a typed error, never a panic.
#![no_main]

use std::time::Duration;

use eventsource_core::SqliteOptions;
use eventsource_core::stores::postgres::PostgresOptions;
use eventsource_core::stores::postgres::tokio_postgres;
use libfuzzer_sys::fuzz_target;

/// The input is text: the URL on the first line, then (optionally) the schema, events,
/// snapshots and tracking names, one a line, so seeds are readable files.
struct Input<'a> {
    url: &'a str,
    schema: &'a str,
    events: &'a str,
    snapshots: &'a str,
    tracking: &'a str,
}

fn input(text: &str) -> Input<'_> {
    let mut lines = text.split('\n');
    let mut next = |default| lines.next().unwrap_or(default);
    Input {
        url: next(""),
        schema: next("eventsource"),
        events: next("events"),
        snapshots: next("snapshots"),
        tracking: next("tracking"),
    }
}

fuzz_target!(|text: &str| {
    let input = input(text);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");

    if let Ok(options) = SqliteOptions::from_url(input.url) {
        let _ = options.path();
        let _ = options.synchronous_mode();
        let _ = format!("{options:?}");
        // `open` validates the table names, then the claim lease, and only then opens the
        // file: a zero lease makes it stop there, so nothing is ever created on disk.
        let named = options
            .events_table(input.events)
            .snapshots_table(input.snapshots)
            .tracking_table(input.tracking)
            .claim_lease(Duration::ZERO);
        let result = runtime.block_on(named.open());
        assert!(result.is_err(), "a zero claim lease must be refused");
    }

    // Debug parses the connection string (to print it without its password).
    let options = PostgresOptions::new(input.url);
    let _ = format!("{options:?}");

    // `connect` validates the names, then the pool size, then parses the URL, and only then
    // touches the network: give it only inputs that fail before that.
    let names_only = PostgresOptions::new(input.url)
        .schema(input.schema)
        .events_table(input.events)
        .snapshots_table(input.snapshots)
        .tracking_table(input.tracking)
        .pool_size(0);
    let result = runtime.block_on(names_only.connect());
    assert!(result.is_err(), "a pool of 0 connections must be refused");
    if input.url.parse::<tokio_postgres::Config>().is_err() {
        let result = runtime.block_on(PostgresOptions::new(input.url).connect());
        assert!(
            result.is_err(),
            "an unparseable connection string must be refused"
        );
    }
});
