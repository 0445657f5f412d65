//! Runs the benchmark program with tiny sizes (`--quick`) on every store, so CI keeps it working.
//! Checks the JSON lines: every key present, every workload and variant reported, nothing lost.
//! Timings are never asserted.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

const KEYS: [&str; 9] = [
    "store",
    "workload",
    "variant",
    "events",
    "seconds",
    "per_second",
    "peak_rss_kib",
    "history",
    "latency_us",
];

/// Runs the bench on one store; `None` if the store's server is unreachable (exit code 3).
fn run_bench(store: &str) -> Option<Vec<Value>> {
    run_bench_with(store, &[])
}

/// [`run_bench`] with more arguments.
fn run_bench_with(store: &str, more: &[&str]) -> Option<Vec<Value>> {
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--store", store, "--quick", "--json"])
        .args(more)
        .output()
        .expect("the bench binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(3) {
        return None;
    }
    assert!(
        output.status.success(),
        "bench --store {store} failed with {}:\n{stderr}",
        output.status
    );
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    let figures: Vec<Value> = stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\nstderr:\n{stderr}"))
        })
        .collect();
    assert!(!figures.is_empty(), "no figures; stderr:\n{stderr}");
    // The table goes to stderr with --json.
    assert!(
        stderr.contains("| store | workload | variant |"),
        "{stderr}"
    );
    Some(figures)
}

fn check_figures(figures: &[Value], store: &str, raw: bool) {
    for figure in figures {
        for key in KEYS {
            assert!(figure.get(key).is_some(), "`{key}` missing in {figure}");
        }
        assert_eq!(figure["store"], store, "{figure}");
        assert!(figure["events"].as_u64().is_some(), "{figure}");
        assert!(
            figure["seconds"].as_f64().is_some_and(|s| s >= 0.0),
            "{figure}"
        );
        assert!(figure["per_second"].as_f64().is_some(), "{figure}");
        assert!(figure["peak_rss_kib"].as_u64().is_some(), "{figure}");
        if let Some(lost) = figure.get("lost") {
            assert_eq!(lost, 0, "W5 lost deposits: {figure}");
        }
    }
    let seen: BTreeSet<(String, String)> = figures
        .iter()
        .map(|f| {
            (
                f["workload"].as_str().unwrap_or("").to_owned(),
                f["variant"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let mut expected = vec![
        ("W1", "default"),
        ("W1", "snapshots"),
        ("W1", "cache"),
        ("W2", "default"),
        ("W3", "default"),
        ("W3-large", "default"),
        ("W3-interleaved", "write"),
        ("W3-interleaved", "default"),
        ("W3-interleaved", "log-read"),
        ("W4", "default"),
        ("W5", "distinct"),
        ("W5", "same"),
        ("W6", "default"),
        ("W6", "log-read"),
        ("W7", "default"),
        ("W8", "live"),
        ("W8", "catch-up"),
    ];
    if raw {
        expected.extend([
            ("W1", "raw-single"),
            ("W2", "raw-batch"),
            ("W2", "raw-one-tx"),
            ("W3", "raw-read"),
            ("W4", "raw-read"),
            ("W3-interleaved", "raw-read"),
            ("W3-interleaved", "raw-log-read"),
            // The engine at its best (issue 16).
            ("W1", "raw-best-single"),
            ("W2", "raw-best-batch"),
            ("W3", "raw-best-read"),
            ("W5", "raw-best-concurrent"),
            ("W3-interleaved", "raw-best-read"),
        ]);
    }
    for (workload, variant) in expected {
        assert!(
            seen.contains(&(workload.to_owned(), variant.to_owned())),
            "no {workload} {variant} figure; saw {seen:?}"
        );
    }
    check_raw_best_and_interleaved(figures, raw);
    // W1 reports the latency at 100 events of history for each variant.
    for variant in ["default", "snapshots", "cache"] {
        assert!(
            figures.iter().any(|f| f["workload"] == "W1"
                && f["variant"] == variant
                && f["history"] == 100
                && f["latency_us"].as_f64().is_some()),
            "no W1 {variant} latency at history 100"
        );
    }
    let large = figures
        .iter()
        .find(|f| f["workload"] == "W3-large")
        .expect("a W3-large figure");
    assert!(large["rss_growth_kib"].as_u64().is_some(), "{large}");
    assert!(large["anon_growth_kib"].as_u64().is_some(), "{large}");
    // W6 reports its ratio to W4's read of the same log; W7 its latency quantiles.
    let catch_up = figures
        .iter()
        .find(|f| f["workload"] == "W6" && f["variant"] == "default")
        .expect("a W6 figure");
    assert!(catch_up["ratio_to_w4"].as_f64().is_some(), "{catch_up}");
    assert!(catch_up["events"].as_u64() >= Some(2_000), "{catch_up}");
    let live = figures
        .iter()
        .find(|f| f["workload"] == "W7")
        .expect("a W7 figure");
    for key in ["p50_us", "p99_us", "max_us"] {
        assert!(live[key].as_f64().is_some(), "`{key}` missing in {live}");
    }
    assert_eq!(live["events"], 200, "{live}");
    // W8 counts the transfers' events in the store (the bench fails if any transfer is
    // unfinished or a balance is off) and sets the event rate beside W2's.
    for variant in ["live", "catch-up"] {
        let process = figures
            .iter()
            .find(|f| f["workload"] == "W8" && f["variant"] == variant)
            .unwrap_or_else(|| panic!("a W8 {variant} figure"));
        assert_eq!(process["events"], 100, "{process}");
        assert_eq!(process["events_written"], 400, "{process}");
        assert!(process["ratio_to_w2"].as_f64().is_some(), "{process}");
        assert!(process["batches"].as_u64() >= Some(1), "{process}");
    }
}

/// The figure of `workload` and `variant` (the first, if several).
fn figure<'a>(figures: &'a [Value], workload: &str, variant: &str) -> &'a Value {
    figures
        .iter()
        .find(|f| f["workload"] == workload && f["variant"] == variant)
        .unwrap_or_else(|| panic!("no {workload} {variant} figure"))
}

/// Issue 16's rows count exactly what `--quick` sizes make: W3-interleaved's store holds 2,000
/// events over 20 streams written round robin (100 per stream), each read of it finds all, and
/// the raw engine at its best wrote and read as many rows as the workload beside it.
fn check_raw_best_and_interleaved(figures: &[Value], raw: bool) {
    let write = figure(figures, "W3-interleaved", "write");
    assert_eq!(write["events"], 2_000, "{write}");
    assert_eq!(write["streams"], 20, "{write}");
    assert_eq!(write["events_per_stream"], 100, "{write}");
    let replay = figure(figures, "W3-interleaved", "default");
    assert_eq!(replay["events"], 100, "{replay}");
    assert_eq!(replay["store_events"], 2_000, "{replay}");
    assert_eq!(replay["runs"], 3, "{replay}");
    let log = figure(figures, "W3-interleaved", "log-read");
    assert_eq!(log["events"], 2_000, "{log}");
    if !raw {
        assert!(
            !figures.iter().any(|f| f["variant"]
                .as_str()
                .is_some_and(|v| v.starts_with("raw-best"))),
            "raw-best figures on a store without a raw engine"
        );
        return;
    }
    for (workload, variant, events) in [
        ("W1", "raw-best-single", 100),
        ("W2", "raw-best-batch", 200),
        ("W3", "raw-best-read", 300),
        ("W3-interleaved", "raw-read", 100),
        ("W3-interleaved", "raw-best-read", 100),
        ("W3-interleaved", "raw-log-read", 2_000),
    ] {
        let found = figure(figures, workload, variant);
        assert_eq!(found["events"], events, "{found}");
    }
    assert_eq!(
        figure(figures, "W2", "raw-best-batch")["rows_per_transaction"],
        10
    );
    assert!(figure(figures, "W3", "raw-best-read")["layout"].is_string());
    // One concurrent figure per client count: W5's writers (4) and 16, each committing W5's
    // commands (10) per client.
    let mut writers: Vec<u64> = figures
        .iter()
        .filter(|f| f["workload"] == "W5" && f["variant"] == "raw-best-concurrent")
        .map(|f| {
            let n = f["writers"].as_u64().expect("a writers count");
            assert_eq!(f["events"], n * 10, "{f}");
            n
        })
        .collect();
    writers.sort_unstable();
    assert_eq!(writers, [4, 16]);
}

#[test]
fn quick_run_on_the_memory_store() {
    let figures = run_bench("memory://").expect("the memory store is always reachable");
    check_figures(&figures, "memory", false);
}

#[test]
fn quick_run_on_a_sqlite_file() {
    let dir = std::env::temp_dir().join(format!("eventsource-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join("bench.db");
    let figures = run_bench(&format!("sqlite://{}", file.display())).expect("SQLite is embedded");
    check_figures(&figures, "sqlite", true);
    assert!(!file.exists(), "the bench removes its database afterwards");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--prefill`: the store is filled round robin before the workloads, and every figure after
/// says how many events it held.
#[test]
fn prefill_before_w1_and_w3_on_a_sqlite_file() {
    let dir =
        std::env::temp_dir().join(format!("eventsource-bench-prefill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join("bench.db");
    let more = [
        "--only",
        "W1,W3",
        "--prefill",
        "1000",
        "--prefill-streams",
        "10",
    ];
    let figures =
        run_bench_with(&format!("sqlite://{}", file.display()), &more).expect("SQLite is embedded");
    let prefill = figure(&figures, "prefill", "default");
    assert_eq!(prefill["events"], 1_000, "{prefill}");
    assert_eq!(prefill["streams"], 10, "{prefill}");
    assert_eq!(prefill["events_per_stream"], 100, "{prefill}");
    for workload in ["W1", "W3"] {
        let measured: Vec<&Value> = figures
            .iter()
            .filter(|f| f["workload"] == workload)
            .collect();
        assert!(!measured.is_empty(), "no {workload} figure");
        for f in measured {
            assert_eq!(f["prefilled"], 1_000, "{f}");
        }
    }
    let left: Vec<_> = std::fs::read_dir(&dir)
        .expect("the directory is there")
        .collect();
    assert!(left.is_empty(), "the bench removes its databases: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--codecs`: W2, W3 and W4 once per codec setting, each on a fresh store, every figure set
/// beside the plain JSON setting's and carrying the bytes stored per event.
fn check_codec_figures(figures: &[Value], store: &str, database_file: bool) {
    let mut settings = vec!["json", "msgpack", "json+lz4", "json+aes", "msgpack+lz4+aes"];
    if cfg!(feature = "zstd") {
        settings.push("json+zstd");
    }
    let bytes = |setting: &str| -> f64 {
        let figure = figures
            .iter()
            .find(|f| f["workload"] == "W4" && f["variant"] == format!("codec:{setting}"))
            .unwrap_or_else(|| panic!("no W4 codec:{setting} figure on {store}"));
        figure["payload_bytes_per_event"]
            .as_f64()
            .unwrap_or_else(|| panic!("no payload bytes in {figure}"))
    };
    for setting in &settings {
        for workload in ["W2", "W3", "W4"] {
            let figure = figures
                .iter()
                .find(|f| f["workload"] == workload && f["variant"] == format!("codec:{setting}"))
                .unwrap_or_else(|| panic!("no {workload} codec:{setting} figure on {store}"));
            assert_eq!(figure["store"], store, "{figure}");
            assert!(figure["ratio_to_plain"].as_f64().is_some(), "{figure}");
            assert!(figure["codec"].as_str().is_some(), "{figure}");
            assert_eq!(
                figure["database_bytes_per_event"].as_f64().is_some(),
                database_file,
                "{figure}"
            );
        }
        assert!(bytes(setting) > 0.0, "{setting} on {store}");
        // Beside each encrypted setting's W3, the cipher alone and the best ratio it leaves.
        let w3 = figures
            .iter()
            .find(|f| f["workload"] == "W3" && f["variant"] == format!("codec:{setting}"))
            .expect("found above");
        let encrypted = setting.ends_with("aes");
        let cipher_ns = w3["cipher_alone_ns"].as_f64();
        assert_eq!(cipher_ns.is_some(), encrypted, "{w3}");
        assert!(cipher_ns.is_none_or(|ns| ns > 0.0), "{w3}");
        let ceiling = w3["ratio_ceiling_with_cipher"].as_f64();
        assert_eq!(ceiling.is_some(), encrypted, "{w3}");
        assert!(ceiling.is_none_or(|c| c > 0.0 && c < 1.0), "{w3}");
    }
    // MessagePack is smaller than JSON; encryption adds its header and tag.
    assert!(bytes("msgpack") < bytes("json"), "{store}");
    assert!(bytes("json+aes") > bytes("json"), "{store}");
}

#[test]
fn codec_comparison_on_memory_and_a_sqlite_file() {
    let only = ["--only", "W2,W3,W4", "--codecs"];
    let figures = run_bench_with("memory://", &only).expect("the memory store is reachable");
    check_codec_figures(&figures, "memory", false);

    let dir = std::env::temp_dir().join(format!("eventsource-bench-codecs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join("bench.db");
    let figures =
        run_bench_with(&format!("sqlite://{}", file.display()), &only).expect("SQLite is embedded");
    check_codec_figures(&figures, "sqlite", true);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .expect("the directory is there")
        .collect();
    assert!(left.is_empty(), "the bench removes its databases: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn quick_run_on_postgres_when_reachable() {
    let url = std::env::var("EVENTSOURCE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    match run_bench(&url) {
        Some(figures) => check_figures(&figures, "postgres", true),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL at {url} is unreachable, and CI=true requires it")
        }
        None => eprintln!("skipping: PostgreSQL at {url} is unreachable"),
    }
}

/// The NATS store on `.ci/nats`'s single server and three-node cluster (replicas 3), each run
/// in streams the bench deletes afterwards. No raw engine beside it.
#[test]
fn quick_run_on_nats_when_reachable() {
    for (store, name) in [("nats", "nats"), ("nats-cluster", "nats-r3")] {
        match run_bench(store) {
            Some(figures) => check_figures(&figures, name, false),
            None if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!(
                    "the NATS servers for `--store {store}` are unreachable (.ci/nats start), and CI=true requires them"
                )
            }
            None => eprintln!(
                "skipping: the NATS servers for `--store {store}` are unreachable (.ci/nats start)"
            ),
        }
    }
}
