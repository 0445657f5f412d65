//! The admin CLI end to end: the real `bank-admin` binary on a store the real `bank` demo wrote,
//! on SQLite and on PostgreSQL (a schema of its own, dropped afterwards). Every command runs as
//! a user would run it; its exit code is checked, and its `--json` output is parsed and compared
//! with what the store holds, read through the library. `tail --follow` must see an event that
//! another process appends after it caught up; an export imported into a fresh store must read
//! back event for event.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use eventsource_core::{
    EventEnum, EventStore, LogQuery, Position, Projection, Repository, StoredEvent, Uuid,
    id_from_name,
};
use eventsource_examples::OpenedStore;
use eventsource_examples::bank::BankAccount;
use eventsource_examples::statements::sqlite::SqliteStatements;
use eventsource_schema::{Field, LOCK_FILE, Lock, LockedEvent, Shape};
use serde_json::Value;

/// How long a test waits for a line from a following `tail` before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// `bank-admin --store URL ARGS…`, without the environment's store or key.
fn admin_command(url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bank-admin"));
    command
        .env_remove("EVENTSOURCE_STORE")
        .env_remove("EVENTSOURCE_MASTER_KEY")
        .env("NO_COLOR", "1")
        .args(["--store", url])
        .args(args);
    command
}

fn admin(url: &str, args: &[&str]) -> Output {
    admin_command(url, args).output().expect("bank-admin runs")
}

/// Runs `bank-admin`, expects exit code `code`, and returns its stdout.
fn admin_expect(url: &str, args: &[&str], code: i32) -> String {
    let output = admin(url, args);
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 stdout");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(code),
        "bank-admin {args:?} on {url}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// Runs `bank-admin --json …`, expects success, and parses its lines.
fn admin_json(url: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    admin_expect(url, &all, 0)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// Runs the bank demo on `url`.
fn bank(url: &str) {
    bank_with(url, None)
}

/// Runs the bank demo on `url`, encrypting with `master_key` if given.
fn bank_with(url: &str, master_key: Option<&str>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bank"));
    command
        .env_remove("EVENTSOURCE_STORE")
        .env_remove("EVENTSOURCE_MASTER_KEY")
        .args(["--store", url]);
    if let Some(key) = master_key {
        command.env("EVENTSOURCE_MASTER_KEY", key);
    }
    let output = command.output().expect("the bank demo runs");
    assert!(
        output.status.success(),
        "bank --store {url}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Everything in the store's log, read through the library.
fn read_log(url: &str) -> Vec<StoredEvent> {
    runtime().block_on(async {
        let store = OpenedStore::open(url)
            .await
            .expect("the store opens")
            .events();
        let mut events = Vec::new();
        let mut after = Position::START;
        loop {
            let page = store.read_log(LogQuery::after(after, 1_000)).await.unwrap();
            if page.is_empty() {
                return events;
            }
            after = page.next;
            events.extend(page.events);
        }
    })
}

/// Whether the statements read model handles `event` (the same list on every store).
fn handles(event: &StoredEvent) -> bool {
    <<SqliteStatements as Projection>::Event as EventEnum>::NAMES.contains(&event.name.as_str())
}

fn ada() -> Uuid {
    id_from_name("bank-demo/accounts", "ada")
}

/// Every command on a store the demo wrote at `url`; `fresh` is an empty store of the same kind
/// for the import.
fn exercise(url: &str, fresh: &str, kind: &str) {
    bank(url);
    let log = read_log(url);
    assert!(log.len() > 10, "the demo wrote {} events", log.len());

    // streams: one line per stream, as the log has it.
    let mut expected: BTreeMap<String, (String, u64, u64)> = BTreeMap::new();
    for event in &log {
        let entry = expected.entry(event.stream_id.to_string()).or_default();
        entry.0.clone_from(&event.category);
        entry.1 = entry.1.max(event.version);
        entry.2 = event.position.get();
    }
    let streams = admin_json(url, &["streams"]);
    let listed: BTreeMap<String, (String, u64, u64)> = streams
        .iter()
        .map(|s| {
            (
                s["stream_id"].as_str().unwrap().to_owned(),
                (
                    s["category"].as_str().unwrap().to_owned(),
                    s["version"].as_u64().unwrap(),
                    s["last_position"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(listed, expected);
    let table = admin_expect(url, &["streams"], 0);
    assert!(table.starts_with("STREAM "), "{table}");
    assert!(!table.contains('\x1b'), "no colours into a pipe: {table}");
    let transfers = admin_json(url, &["streams", "--aggregate", "MoneyTransfer"]);
    assert!(!transfers.is_empty());
    assert!(transfers.iter().all(|s| s["category"] == "MoneyTransfer"));

    // stream: Ada's events, decoded through the registry, and as stored.
    let ada_log: Vec<&StoredEvent> = log.iter().filter(|e| e.stream_id == ada()).collect();
    let decoded = admin_json(url, &["stream", &ada().to_string()]);
    assert_eq!(decoded.len(), ada_log.len());
    for (line, stored) in decoded.iter().zip(&ada_log) {
        assert_eq!(line["version"], stored.version);
        assert_eq!(line["position"], stored.position.get());
        assert_eq!(line["name"], stored.name.as_str());
        assert_eq!(line["id"], stored.id.to_string());
        assert!(line.get("error").is_none(), "{line}");
    }
    assert_eq!(decoded[0]["name"], "Opened");
    assert_eq!(decoded[0]["data"]["owner"], "Ada Lovelace");
    assert_eq!(decoded[0]["metadata"]["actor"], "clerk");
    let raw = admin_json(url, &["stream", &ada().to_string(), "--raw"]);
    for (line, stored) in raw.iter().zip(&ada_log) {
        let payload = base64::engine::general_purpose::STANDARD
            .decode(line["payload"].as_str().unwrap())
            .unwrap();
        assert_eq!(payload, stored.payload);
    }
    admin_expect(url, &["stream", &Uuid::now_v7().to_string()], 3);

    // state: Ada's account at version 2 and now, as the repository replays it.
    let (then, now) = runtime().block_on(async {
        let store = OpenedStore::open(url).await.unwrap().events();
        let accounts = Repository::<BankAccount, _>::new(store);
        let then = accounts.get_at(ada(), 2).await.unwrap().into_state();
        let now = accounts.get(ada()).await.unwrap();
        (then, now)
    });
    let at_2 = admin_json(url, &["state", &ada().to_string(), "--at", "2"]);
    assert_eq!(at_2[0]["version"], 2);
    assert_eq!(at_2[0]["aggregate"], "BankAccount");
    assert_eq!(at_2[0]["state"], serde_json::to_value(&then).unwrap());
    let latest = admin_json(url, &["state", &ada().to_string()]);
    assert_eq!(latest[0]["version"], now.version());
    assert_eq!(
        latest[0]["state"],
        serde_json::to_value(now.state()).unwrap()
    );
    let shown = admin_expect(url, &["state", &ada().to_string(), "--at", "2"], 0);
    assert!(shown.contains("balance: 10000"), "{shown}");
    // The legacy stream was stored without a category: the type must be named.
    let legacy = id_from_name("bank-demo/accounts", "carol-legacy").to_string();
    admin_expect(url, &["state", &legacy], 3);
    let carol = admin_json(url, &["state", &legacy, "--aggregate", "BankAccount"]);
    assert_eq!(carol[0]["state"]["balance"], 15_00);
    admin_expect(url, &["state", &ada().to_string(), "--at", "999"], 3);

    // tail without --follow: the log, filtered by aggregate type and event name.
    let requested = admin_json(
        url,
        &[
            "tail",
            "--aggregate",
            "MoneyTransfer",
            "--event",
            "TransferRequested",
        ],
    );
    let in_store: Vec<u64> = log
        .iter()
        .filter(|e| e.category == "MoneyTransfer" && e.name == "TransferRequested")
        .map(|e| e.position.get())
        .collect();
    let tailed: Vec<u64> = requested
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(tailed, in_store);
    let last = log.last().unwrap().position.get();
    let after = log[log.len() - 3].position.get().to_string();
    let tail = admin_json(url, &["tail", "--after", &after]);
    assert_eq!(tail.len(), 2);
    assert_eq!(tail[1]["position"], last);

    // tail --follow sees an event another process appends after it caught up.
    follow(url, last);

    // check: the lock and registry are fine; a changed lock is a problem; no lock can't run.
    let check = admin_json(url, &["check"]);
    assert_eq!(check[0]["ok"], true, "{check:?}");
    assert!(check[0]["events"].as_u64().unwrap() >= 10);
    let dir = tempfile::tempdir().unwrap();
    // A locked version whose shape the code no longer has (as if `cents` had been a u32).
    let mut lock = Lock::parse(
        &std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(LOCK_FILE))
            .unwrap(),
    )
    .unwrap();
    let old = Shape {
        attrs: vec![],
        fields: vec![Field::new("cents", "u32"), Field::new("currency", "String")],
    };
    lock.insert(LockedEvent::new("Deposited", 3, "old::Deposited", old));
    std::fs::write(dir.path().join(LOCK_FILE), lock.render()).unwrap();
    let lock_dir = dir.path().to_str().unwrap();
    let problems = admin_expect(url, &["--json", "check", "--lock", lock_dir], 1);
    let problems: Value = serde_json::from_str(problems.trim()).unwrap();
    assert_eq!(problems["ok"], false);
    assert!(
        problems["lock_problems"][0]
            .as_str()
            .unwrap()
            .contains("changed type from `u32` to `u64`"),
        "{problems}"
    );
    admin_expect(url, &["check", "--lock", "/nonexistent/dir"], 3);

    // projections: the demo's read model caught up; a rebuild gives the same position.
    let status = admin_json(url, &["projections"]);
    assert_eq!(status.len(), 1, "{status:?}");
    assert_eq!(status[0]["label"], "statements");
    assert_eq!(status[0]["tracker"], format!("bank-statements-{kind}"));
    let tracking = status[0]["position"].as_u64().unwrap();
    let end = status[0]["last_position"].as_u64().unwrap();
    assert!(end >= last);
    // Events the read model handles after its position: its lag.
    let behind = read_log(url)
        .iter()
        .filter(|e| e.position.get() > tracking && handles(e))
        .count() as u64;
    assert_eq!(status[0]["lag"], behind);
    let rebuilt = admin_json(url, &["rebuild", "statements"]);
    let log_now = read_log(url);
    let handled = log_now.iter().filter(|e| handles(e)).count() as u64;
    assert!(handled > 10);
    assert_eq!(rebuilt[0]["events"], handled);
    assert_eq!(
        rebuilt[0]["position"],
        log_now.last().unwrap().position.get()
    );
    let status = admin_json(url, &["projections"]);
    assert_eq!(status[0]["lag"], 0);
    assert_eq!(
        status[0]["position"],
        log_now.last().unwrap().position.get()
    );
    admin_expect(url, &["rebuild", "nothing-of-that-name"], 3);

    // export, then import into a fresh store: the same events, read back event for event.
    let file = dir.path().join("log.jsonl");
    admin_expect(url, &["export", "-o", file.to_str().unwrap()], 0);
    let exported = std::fs::read_to_string(&file).unwrap();
    assert_eq!(exported.lines().count(), log_now.len());
    let stream_only = admin_expect(url, &["export", "--stream", &ada().to_string()], 0);
    let ada_now = log_now.iter().filter(|e| e.stream_id == ada()).count();
    assert_eq!(stream_only.lines().count(), ada_now);
    let imported = admin_json(fresh, &["import", file.to_str().unwrap(), "--batch", "7"]);
    assert_eq!(imported[0]["events"], log_now.len());
    assert_eq!(imported[0]["verified"], log_now.len());
    let copy = read_log(fresh);
    assert_eq!(copy.len(), log_now.len());
    for (a, b) in log_now.iter().zip(&copy) {
        assert_eq!(
            (&a.id, &a.stream_id, &a.category, a.version, &a.name),
            (&b.id, &b.stream_id, &b.category, b.version, &b.name)
        );
        assert_eq!(
            (a.schema_version, &a.payload, &a.metadata),
            (b.schema_version, &b.payload, &b.metadata)
        );
    }
    // The copy answers like the original.
    let state = admin_json(fresh, &["state", &ada().to_string(), "--at", "2"]);
    assert_eq!(state[0]["state"], at_2[0]["state"]);
    // Importing again meets the streams already there: refused, nothing written.
    let again = admin(fresh, &["import", file.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("nothing of this batch was written"),
        "{stderr}"
    );
    assert_eq!(read_log(fresh).len(), copy.len());
}

/// Starts `tail --follow` after `last`, waits until it says it caught up, runs the demo again
/// in another process, and waits for the first event it appended.
fn follow(url: &str, last: u64) {
    let mut tail = admin_command(
        url,
        &[
            "--json",
            "tail",
            "--follow",
            "--after",
            &last.to_string(),
            "--event",
            "Deposited",
            "--limit",
            "1",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("bank-admin tail runs");
    let (lines, seen) = mpsc::channel();
    let stderr = tail.stderr.take().unwrap();
    let caught_up = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = caught_up.send(("stderr", line));
        }
    });
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(("stdout", line));
        }
    });
    let (from, line) = seen.recv_timeout(PATIENCE).expect("tail says it caught up");
    assert_eq!(from, "stderr");
    assert!(line.starts_with("caught up at position"), "{line}");
    bank(url);
    let appended = read_log(url)
        .into_iter()
        .find(|e| e.position.get() > last && e.name == "Deposited")
        .expect("the demo deposits again");
    let (from, line) = seen
        .recv_timeout(PATIENCE)
        .expect("tail shows the new event");
    assert_eq!(from, "stdout", "{line}");
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["position"], appended.position.get());
    assert_eq!(event["id"], appended.id.to_string());
    let status = tail.wait().unwrap();
    assert!(status.success(), "tail --limit 1 ends after one event");
}

fn refuses_unknown_schemes_and_bad_arguments() {
    for url in ["mysql://x", "redis://127.0.0.1:6379"] {
        let output = admin(url, &["streams"]);
        assert_eq!(output.status.code(), Some(3));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("sqlite://FILE")
                && stderr.contains("postgres://")
                && stderr.contains("nats://"),
            "{stderr}"
        );
    }
    assert_eq!(
        admin("memory://", &["no-such-command"]).status.code(),
        Some(2)
    );
    let help = admin("memory://", &["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("rebuild"));
}

#[test]
fn every_command_on_sqlite() {
    refuses_unknown_schemes_and_bad_arguments();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bank.db").display());
    let fresh = format!("sqlite://{}", dir.path().join("copy.db").display());
    exercise(&url, &fresh, "sqlite");
}

/// Encrypted payloads show only with the master key; a forgotten person's show as forgotten.
#[test]
fn encrypted_payloads_need_the_master_key() {
    let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("encrypted.db").display());
    bank_with(&url, Some(key));
    let ada = ada().to_string();
    let without = admin_json(&url, &["stream", &ada]);
    assert!(without[0]["data"].is_null(), "{}", without[0]);
    assert!(without[0]["error"].is_string(), "{}", without[0]);
    let with = admin_json(&url, &["--master-key", key, "stream", &ada]);
    assert_eq!(with[0]["data"]["owner"], "Ada Lovelace");
    assert!(with.iter().all(|e| e.get("error").is_none()), "{with:?}");
    let carol = id_from_name("bank-demo/accounts", "carol").to_string();
    let forgotten = admin_json(&url, &["--master-key", key, "stream", &carol]);
    assert_eq!(forgotten[0]["name"], "Opened");
    assert_eq!(forgotten[0]["forgotten"], true, "{}", forgotten[0]);
}

#[test]
fn every_command_on_postgres() {
    let server = std::env::var("EVENTSOURCE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    use eventsource_core::stores::postgres::tokio_postgres::{self, NoTls};
    let rt = runtime();
    let client = rt.block_on(async {
        let connect = tokio_postgres::connect(&server, NoTls);
        match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok((client, connection))) => {
                tokio::spawn(connection);
                Ok(client)
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out after 10 s".to_owned()),
        }
    });
    let client = match client {
        Ok(client) => client,
        Err(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL at {server} is unreachable ({reason}); CI=true requires it")
        }
        Err(reason) => {
            eprintln!("skipping: PostgreSQL at {server} is unreachable ({reason})");
            return;
        }
    };
    let schema = |tag: &str| format!("es_test_admin_{tag}_{}", std::process::id());
    let (source, copy) = (schema("src"), schema("copy"));
    let with_schema = |schema: &str| {
        let joiner = if server.contains('?') { '&' } else { '?' };
        format!("{server}{joiner}schema={schema}")
    };
    let outcome = std::panic::catch_unwind(|| {
        exercise(&with_schema(&source), &with_schema(&copy), "postgres")
    });
    rt.block_on(async {
        for schema in [&source, &copy] {
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await;
        }
    });
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// `catalog` needs no store: its Markdown is the committed `docs/catalog/bank.md` (which
/// `tests/tests/catalog.rs` checks against the registry), and its HTML page names every event
/// the bank registers, written to `--out` in a directory it creates.
#[test]
fn catalog_writes_the_committed_markdown_and_an_html_page() {
    let markdown = admin_expect("memory://", &["catalog"], 0);
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/catalog/bank.md");
    let committed = std::fs::read_to_string(committed_path).expect("docs/catalog/bank.md");
    assert!(
        markdown == committed,
        "`bank-admin catalog` differs from docs/catalog/bank.md"
    );

    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("new/bank.html");
    let page_arg = page.display().to_string();
    admin_expect(
        "memory://",
        &["catalog", "--format", "html", "--out", &page_arg],
        0,
    );
    let html = std::fs::read_to_string(&page).expect("the page was written");
    assert!(
        html.starts_with("<!DOCTYPE html>"),
        "{}",
        &html[..80.min(html.len())]
    );
    let bank_events: Vec<&str> = eventsource_core::registry::events()
        .filter(|e| e.type_name.starts_with("eventsource_examples::"))
        .map(|e| e.name)
        .collect();
    assert!(bank_events.len() >= 13, "{bank_events:?}");
    for name in bank_events {
        assert!(html.contains(name), "the page lacks {name}");
    }

    let missing = dir.path().join("nowhere");
    let output = admin(
        "memory://",
        &["catalog", "--lock", &missing.display().to_string()],
    );
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no schema lock"));
    assert_eq!(
        admin("memory://", &["catalog", "--format", "pdf"])
            .status
            .code(),
        Some(2)
    );
}
