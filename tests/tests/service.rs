//! The bank service over real HTTP: each test starts the server in process on a TCP port of
//! 127.0.0.1 picked by the system, drives it with an HTTP client, and checks the answers and
//! what was stored, on a fresh SQLite file and a fresh PostgreSQL schema (skipped with a
//! message when the server is unreachable, except under `CI=true`, where it fails).
// Amounts are in cents and written as euros_cents (`100_00` is 100.00), as in the bank demo.
#![allow(clippy::inconsistent_digit_grouping)]

mod support;

use std::future::Future;
use std::time::Duration;

use eventsource_core::{EventStore, StoredEvent, StreamRange, Uuid};
use eventsource_examples::OpenedStore;
use eventsource_examples::service::{BankService, PROBLEM_JSON, PROBLEM_TYPES, Settings};
use futures_util::TryStreamExt;
use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION};
use serde_json::{Value, json};
use support::postgres::Server;
use tokio::sync::oneshot;

/// How long a test waits for the transfers process or the read model before it fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// A service serving HTTP on 127.0.0.1 and a client of it.
struct Api {
    base: String,
    http: reqwest::Client,
    stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<Result<(), eventsource_examples::service::ServiceError>>,
}

/// An answer: status, headers and the body as JSON (`Null` if it is not JSON).
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Api {
    async fn start(store: &OpenedStore, settings: Settings) -> Api {
        let service = BankService::start(store, settings)
            .await
            .expect("start the service");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a port on 127.0.0.1");
        let address = listener.local_addr().expect("the bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(service.serve(listener, async {
            let _ = stopped.await;
        }));
        Api {
            base: format!("http://{address}"),
            http: reqwest::Client::builder()
                .timeout(DEADLINE)
                .build()
                .expect("an HTTP client"),
            stop,
            served,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the service answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("the body");
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    /// Opens an account for `owner` and deposits `cents` (if any); its id and the position of
    /// its last event.
    async fn account_with(&self, owner: &str, cents: u64) -> (Uuid, u64) {
        let opened = self
            .post("/accounts", json!({ "owner": owner }))
            .await
            .expect(201);
        let id = uuid(&opened["id"]);
        let mut position = opened["position"].as_u64().expect("a position");
        if cents > 0 {
            let deposited = self
                .post(
                    &format!("/accounts/{id}/deposits"),
                    json!({ "cents": cents }),
                )
                .await
                .expect(200);
            position = deposited["position"].as_u64().expect("a position");
        }
        (id, position)
    }

    /// Waits until the transfers process has finished transfer `id`; its final state.
    async fn finished_transfer(&self, id: Uuid) -> Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let transfer = self.get(&format!("/transfers/{id}")).await.expect(200);
            if transfer["status"] != "Requested" {
                return transfer;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "transfer {id} was not finished within {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn balance_cents(&self, id: Uuid) -> u64 {
        self.get(&format!("/accounts/{id}"))
            .await
            .expect(200)
            .get("balance_cents")
            .and_then(Value::as_u64)
            .expect("a balance")
    }

    /// Stops the server (the requests in flight finish first) and its read model and process.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.served
            .await
            .expect("the server task")
            .expect("the service stops cleanly");
    }
}

impl Reply {
    /// The body, after checking the status is `status`.
    #[track_caller]
    fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {self:#?}");
        self.body
    }

    /// The problem details body, after checking the status, the media type, the members RFC
    /// 9457 defines and the problem's type (`None`: `about:blank`).
    #[track_caller]
    fn problem(self, status: u16, kind: Option<&str>) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {self:#?}");
        assert_eq!(
            self.headers[CONTENT_TYPE], PROBLEM_JSON,
            "a problem's media type: {self:#?}"
        );
        let expected_type =
            kind.map_or_else(|| "about:blank".into(), |k| format!("{PROBLEM_TYPES}{k}"));
        assert_eq!(self.body["type"], expected_type, "{self:#?}");
        assert_eq!(self.body["status"], status, "{self:#?}");
        assert!(
            self.body["title"].is_string() && self.body["detail"].is_string(),
            "{self:#?}"
        );
        assert_eq!(
            self.body["correlation_id"].as_str(),
            self.headers["x-correlation-id"].to_str().ok(),
            "the problem names the request's correlation id"
        );
        self.body
    }
}

fn uuid(value: &Value) -> Uuid {
    value
        .as_str()
        .and_then(|text| Uuid::parse_str(text).ok())
        .unwrap_or_else(|| panic!("expected a UUID, got {value}"))
}

async fn stream(store: &OpenedStore, id: Uuid) -> Vec<StoredEvent> {
    store
        .events()
        .read_stream(id, StreamRange::all())
        .try_collect()
        .await
        .expect("read the stream")
}

/// Runs `scenario` on a fresh SQLite file.
async fn on_sqlite<F, Fut>(scenario: F)
where
    F: FnOnce(OpenedStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("bank.db").display());
    scenario(
        OpenedStore::open(&url)
            .await
            .expect("open the SQLite store"),
    )
    .await;
}

/// Runs `scenario` on a fresh PostgreSQL schema (dropped afterwards), or skips.
async fn on_postgres<F, Fut>(tag: &str, scenario: F)
where
    F: FnOnce(OpenedStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(mut server) = Server::start().await else {
        return;
    };
    scenario(OpenedStore::Postgres(server.store(tag).await)).await;
    server.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Every endpoint and every error status

async fn every_endpoint(store: OpenedStore) {
    let api = Api::start(&store, Settings::default()).await;

    // Open: 201 with the account's Location.
    let opened = api
        .post(
            "/accounts",
            json!({ "owner": "Ada Lovelace", "currency": "GBP" }),
        )
        .await;
    assert_eq!(opened.status, 201, "{opened:#?}");
    let ada = uuid(&opened.body["id"]);
    assert_eq!(opened.headers[LOCATION], format!("/accounts/{ada}"));
    assert_eq!(opened.body["version"], 1);
    assert_eq!(opened.body["balance_cents"], 0);
    let account = api.get(&format!("/accounts/{ada}")).await.expect(200);
    assert_eq!(account["owner"], "Ada Lovelace");
    assert_eq!(account["currency"], "GBP");

    // Deposit and withdraw: the account after each, with the position of its event.
    let deposited = api
        .post(
            &format!("/accounts/{ada}/deposits"),
            json!({ "cents": 100_00 }),
        )
        .await
        .expect(200);
    assert_eq!(
        (
            deposited["version"].as_u64(),
            deposited["balance_cents"].as_u64()
        ),
        (Some(2), Some(100_00))
    );
    let withdrawn = api
        .post(
            &format!("/accounts/{ada}/withdrawals"),
            json!({ "cents": 30_00 }),
        )
        .await
        .expect(200);
    assert_eq!(
        (
            withdrawn["version"].as_u64(),
            withdrawn["balance_cents"].as_u64()
        ),
        (Some(3), Some(70_00))
    );
    assert!(withdrawn["position"].as_u64() > deposited["position"].as_u64());

    // 422: the domain refuses; nothing is written.
    let overdraft = api
        .post(
            &format!("/accounts/{ada}/withdrawals"),
            json!({ "cents": 1_000_00 }),
        )
        .await
        .problem(422, Some("insufficient-funds"));
    assert_eq!(
        (
            overdraft["balance_cents"].as_u64(),
            overdraft["requested_cents"].as_u64()
        ),
        (Some(70_00), Some(1_000_00))
    );
    api.post(&format!("/accounts/{ada}/deposits"), json!({ "cents": 0 }))
        .await
        .problem(422, Some("zero-amount"));
    assert_eq!(
        stream(&store, ada).await.len(),
        3,
        "a refused command writes nothing"
    );

    // History: every event decoded at today's schema.
    let history = api
        .get(&format!("/accounts/{ada}/history"))
        .await
        .expect(200);
    let events = history["events"].as_array().expect("events");
    let names: Vec<_> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["Opened", "Deposited", "Withdrawn"]);
    assert_eq!(
        events[0]["data"],
        json!({ "owner": "Ada Lovelace", "currency": "GBP" })
    );
    assert_eq!(
        events[1]["data"],
        json!({ "cents": 100_00, "currency": "GBP" })
    );
    assert_eq!(events[2]["version"], 3);
    assert_eq!(events[2]["position"], withdrawn["position"]);

    // Transfers run through the transfers process: completed, compensated, declined.
    let (bob, _) = api.account_with("Bob Babbage", 0).await;
    let accepted = api
        .post(
            "/transfers",
            json!({ "from": ada, "to": bob, "cents": 25_00 }),
        )
        .await;
    assert_eq!(accepted.status, 202, "{accepted:#?}");
    let transfer = uuid(&accepted.body["id"]);
    assert_eq!(accepted.headers[LOCATION], format!("/transfers/{transfer}"));
    assert_eq!(accepted.body["status"], "Requested");
    let completed = api.finished_transfer(transfer).await;
    assert_eq!(completed["status"], "Completed", "{completed}");
    assert_eq!(
        (
            completed["from"].clone(),
            completed["to"].clone(),
            completed["cents"].clone()
        ),
        (json!(ada), json!(bob), json!(25_00))
    );
    assert_eq!(api.balance_cents(ada).await, 45_00);
    assert_eq!(api.balance_cents(bob).await, 25_00);
    // The finished transfer's position is past the credit (one append, the transfer's event
    // last): the read model has the credit once it got there.
    let credit = stream(&store, bob).await.pop().expect("the credit");
    assert_eq!(credit.name, "CreditedByTransfer");
    assert!(credit.position.get() < completed["position"].as_u64().expect("a position"));
    let credited = api
        .get(&format!("/balances/{bob}?after={}", completed["position"]))
        .await
        .expect(200);
    assert_eq!(credited["cents"], 25_00, "{credited}");

    let (carol, _) = api.account_with("Carol Cray", 0).await;
    let closed = api
        .post(
            &format!("/accounts/{carol}/close"),
            json!({ "reason": "moved abroad" }),
        )
        .await
        .expect(200);
    assert_eq!(closed["closed"], true);
    api.post(
        &format!("/accounts/{carol}/deposits"),
        json!({ "cents": 1 }),
    )
    .await
    .problem(422, Some("account-closed"));
    let to_closed = api
        .post(
            "/transfers",
            json!({ "from": ada, "to": carol, "cents": 5_00 }),
        )
        .await
        .expect(202);
    let compensated = api.finished_transfer(uuid(&to_closed["id"])).await;
    assert_eq!(compensated["status"], "Compensated", "{compensated}");
    let refund = stream(&store, ada).await.pop().expect("the refund");
    assert_eq!(refund.name, "RefundedForTransfer");
    assert!(refund.position.get() < compensated["position"].as_u64().expect("a position"));
    assert_eq!(api.balance_cents(ada).await, 45_00, "the money went back");

    let too_much = api
        .post(
            "/transfers",
            json!({ "from": bob, "to": ada, "cents": 1_000_00 }),
        )
        .await
        .expect(202);
    let declined = api.finished_transfer(uuid(&too_much["id"])).await;
    assert_eq!(declined["status"], "Declined", "{declined}");
    assert!(
        declined["reason"]
            .as_str()
            .is_some_and(|r| r.contains("does not cover")),
        "{declined}"
    );

    api.post("/transfers", json!({ "from": ada, "to": ada, "cents": 1 }))
        .await
        .problem(422, Some("same-account"));
    api.post("/transfers", json!({ "from": ada, "to": bob, "cents": 0 }))
        .await
        .problem(422, Some("zero-amount"));

    // 404: unknown accounts and transfers, an id of the other kind, and unknown routes.
    let nobody = Uuid::now_v7();
    for path in [
        format!("/accounts/{nobody}"),
        format!("/accounts/{nobody}/history"),
        format!("/transfers/{nobody}"),
        format!("/accounts/{transfer}"),
        format!("/transfers/{ada}"),
        "/nowhere".to_owned(),
    ] {
        api.get(&path).await.problem(404, None);
    }
    for path in [
        format!("/accounts/{nobody}/deposits"),
        format!("/accounts/{nobody}/withdrawals"),
        format!("/accounts/{transfer}/deposits"),
    ] {
        let problem = api
            .post(&path, json!({ "cents": 1 }))
            .await
            .problem(404, None);
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("no account")),
            "{problem}"
        );
    }
    let problem = api
        .post(
            "/transfers",
            json!({ "from": ada, "to": nobody, "cents": 1 }),
        )
        .await
        .problem(404, None);
    assert_eq!(problem["id"], json!(nobody));

    // 400: input that does not parse; 415: not JSON; 405: a method the route does not take.
    api.get("/accounts/not-a-uuid").await.problem(400, None);
    api.post(&format!("/accounts/{ada}/deposits"), json!({ "cents": -5 }))
        .await
        .problem(400, None);
    api.post(
        &format!("/accounts/{ada}/deposits"),
        json!({ "cents": "5" }),
    )
    .await
    .problem(400, None);
    api.post(
        &format!("/accounts/{ada}/deposits"),
        json!({ "cents": 5, "tip": 1 }),
    )
    .await
    .problem(400, None);
    api.post("/accounts", json!({})).await.problem(400, None);
    api.post("/accounts", json!({ "owner": "  " }))
        .await
        .problem(400, None);
    api.post("/accounts", json!({ "owner": "Dan", "currency": "euro" }))
        .await
        .problem(400, None);
    let broken = api
        .send(
            api.http
                .post(format!("{}/accounts", api.base))
                .header(CONTENT_TYPE, "application/json")
                .body("{\"owner\": "),
        )
        .await;
    broken.problem(400, None);
    let plain = api
        .send(
            api.http
                .post(format!("{}/accounts/{ada}/deposits", api.base))
                .body("{\"cents\": 5}"),
        )
        .await;
    plain.problem(415, None);
    api.get("/balances?after=soon").await.problem(400, None);
    api.get(&format!("/balances?after={}", u64::MAX))
        .await
        .problem(400, None);
    let wrong_method = api
        .send(api.http.delete(format!("{}/accounts/{ada}", api.base)))
        .await;
    wrong_method.problem(405, None);
    assert_eq!(
        api.balance_cents(ada).await,
        45_00,
        "no bad request wrote anything"
    );

    // Balances from the read model, once it has caught up with the last command.
    let last = api
        .post(
            &format!("/accounts/{bob}/deposits"),
            json!({ "cents": 1_00 }),
        )
        .await
        .expect(200)["position"]
        .as_u64()
        .expect("a position");
    let balances = api
        .get(&format!("/balances?after={last}"))
        .await
        .expect(200);
    assert!(balances["position"].as_u64() >= Some(last), "{balances}");
    let by_account: Vec<(Uuid, u64)> = balances["balances"]
        .as_array()
        .expect("balances")
        .iter()
        .map(|b| (uuid(&b["account"]), b["cents"].as_u64().expect("cents")))
        .collect();
    for (account, cents) in [(ada, 45_00), (bob, 26_00), (carol, 0)] {
        assert!(
            by_account.contains(&(account, cents)),
            "{account} {cents} in {balances}"
        );
    }
    let one = api
        .get(&format!("/balances/{bob}?after={last}"))
        .await
        .expect(200);
    assert_eq!(
        (one["owner"].as_str(), one["cents"].as_u64()),
        (Some("Bob Babbage"), Some(26_00))
    );
    api.get(&format!("/balances/{nobody}?after={last}"))
        .await
        .problem(404, Some("not-in-read-model"));

    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_endpoint_and_error_on_sqlite() {
    on_sqlite(every_endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_endpoint_and_error_on_postgres() {
    on_postgres("service_endpoints", every_endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_endpoint_and_error_on_memory() {
    every_endpoint(
        OpenedStore::open("memory://")
            .await
            .expect("a memory store"),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The command context from headers

async fn correlation_round_trip(store: OpenedStore) {
    let api = Api::start(&store, Settings::default()).await;
    let (ada, _) = api.account_with("Ada", 10_00).await;
    let (bob, _) = api.account_with("Bob", 0).await;

    // Sent: echoed, and stored with the actor on the command's events.
    let request = Uuid::now_v7();
    let deposited = api
        .send(
            api.http
                .post(format!("{}/accounts/{ada}/deposits", api.base))
                .header("X-Correlation-Id", request.to_string())
                .header("X-Actor", "clerk-7")
                .json(&json!({ "cents": 5_00 })),
        )
        .await;
    assert_eq!(
        deposited.headers["x-correlation-id"],
        request.to_string().as_str()
    );
    let version = deposited.expect(200)["version"]
        .as_u64()
        .expect("a version");
    let events = stream(&store, ada).await;
    let event = &events[usize::try_from(version - 1).expect("a small version")];
    assert_eq!(event.name, "Deposited");
    assert_eq!(event.metadata["correlation_id"], request.to_string());
    assert_eq!(event.metadata["actor"], "clerk-7");
    let history = api
        .get(&format!("/accounts/{ada}/history"))
        .await
        .expect(200);
    let last = history["events"]
        .as_array()
        .and_then(|e| e.last())
        .expect("an event");
    assert_eq!(
        (last["correlation_id"].clone(), last["actor"].clone()),
        (json!(request), json!("clerk-7"))
    );

    // Not sent: the service makes one, answers with it, and stores it.
    let anonymous = api
        .post(
            &format!("/accounts/{ada}/withdrawals"),
            json!({ "cents": 1_00 }),
        )
        .await;
    let generated = Uuid::parse_str(
        anonymous.headers["x-correlation-id"]
            .to_str()
            .expect("ASCII"),
    )
    .expect("a generated UUID");
    assert_ne!(generated, request);
    anonymous.expect(200);
    let withdrawn = stream(&store, ada).await.pop().expect("the withdrawal");
    assert_eq!(withdrawn.metadata["correlation_id"], generated.to_string());
    assert!(
        !withdrawn.metadata.contains_key("actor"),
        "no actor was sent"
    );

    // A transfer's request and every step the process takes share the request's correlation id.
    let request = Uuid::now_v7();
    let accepted = api
        .send(
            api.http
                .post(format!("{}/transfers", api.base))
                .header("x-correlation-id", request.to_string())
                .header("x-actor", "ada")
                .json(&json!({ "from": ada, "to": bob, "cents": 2_00 })),
        )
        .await
        .expect(202);
    let transfer = uuid(&accepted["id"]);
    assert_eq!(api.finished_transfer(transfer).await["status"], "Completed");
    let requested = stream(&store, transfer).await;
    assert_eq!(requested[0].metadata["actor"], "ada");
    for id in [transfer, ada, bob] {
        let last = stream(&store, id).await.pop().expect("an event");
        assert_eq!(
            last.metadata["correlation_id"],
            request.to_string(),
            "{last:?}"
        );
    }

    // Errors carry the correlation id too; a header that is not allowed is a 400.
    let sent = Uuid::now_v7();
    let refused = api
        .send(
            api.http
                .get(format!("{}/accounts/{}", api.base, Uuid::now_v7()))
                .header("x-correlation-id", sent.to_string()),
        )
        .await;
    assert_eq!(
        refused.headers["x-correlation-id"],
        sent.to_string().as_str()
    );
    assert_eq!(refused.problem(404, None)["correlation_id"], json!(sent));
    for (header, value) in [("x-correlation-id", "not-a-uuid"), ("x-actor", "")] {
        let bad = api
            .send(
                api.http
                    .post(format!("{}/accounts/{ada}/deposits", api.base))
                    .header(header, value)
                    .json(&json!({ "cents": 1 })),
            )
            .await
            .problem(400, None);
        assert!(
            bad["detail"].as_str().is_some_and(|d| d.contains(header)),
            "{bad}"
        );
    }
    let long_actor = "a".repeat(201);
    api.send(
        api.http
            .get(format!("{}/accounts/{ada}", api.base))
            .header("x-actor", long_actor),
    )
    .await
    .problem(400, None);
    assert_eq!(
        api.balance_cents(ada).await,
        12_00,
        "refused requests wrote nothing"
    );

    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn correlation_id_round_trips_into_stored_metadata_on_sqlite() {
    on_sqlite(correlation_round_trip).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn correlation_id_round_trips_into_stored_metadata_on_postgres() {
    on_postgres("service_context", correlation_round_trip).await;
}

// ---------------------------------------------------------------------------------------------
// Concurrency: no lost update, and 409 once the retries are spent

/// Several clients withdraw from one account at once, more than it holds: exactly what it
/// holds is paid out, the rest is refused, and the balance, the stream and the read model
/// agree.
async fn concurrent_withdrawals(store: OpenedStore) {
    const CLIENTS: u64 = 6;
    const EACH: u64 = 4;
    let api = Api::start(
        &store,
        Settings {
            // Enough attempts that every withdrawal is decided (paid or refused), never given
            // up on: this test is about lost updates, the next one about giving up.
            max_attempts: Some(1_000),
            ..Settings::default()
        },
    )
    .await;
    let (account, _) = api.account_with("Shared", 10 * 10_00).await;
    let path = format!("/accounts/{account}/withdrawals");
    let clients = (0..CLIENTS).map(|_| {
        let http = reqwest::Client::new();
        let url = format!("{}{path}", api.base);
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..EACH {
                let response = http
                    .post(&url)
                    .json(&json!({ "cents": 10_00 }))
                    .send()
                    .await
                    .expect("the service answers");
                statuses.push(response.status().as_u16());
            }
            statuses
        })
    });
    let mut statuses = Vec::new();
    for client in clients.collect::<Vec<_>>() {
        statuses.extend(client.await.expect("a client"));
    }
    let paid = statuses.iter().filter(|s| **s == 200).count() as u64;
    let refused = statuses.iter().filter(|s| **s == 422).count() as u64;
    assert_eq!(
        (paid, refused),
        (10, CLIENTS * EACH - 10),
        "statuses {statuses:?}"
    );
    assert_eq!(api.balance_cents(account).await, 0);
    let withdrawals = stream(&store, account)
        .await
        .iter()
        .filter(|e| e.name == "Withdrawn")
        .count() as u64;
    assert_eq!(withdrawals, paid, "one stored withdrawal per paid request");
    let last = store.events().last_position().await.expect("the log's end");
    let read = api
        .get(&format!("/balances/{account}?after={}", last.get()))
        .await
        .expect(200);
    assert_eq!(read["cents"], 0, "the read model agrees: {read}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_withdrawals_lose_no_update_on_sqlite() {
    on_sqlite(concurrent_withdrawals).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_withdrawals_lose_no_update_on_postgres() {
    on_postgres("service_withdrawals", concurrent_withdrawals).await;
}

/// With one attempt per command, concurrent deposits on one account conflict: the losers get
/// a 409 problem naming the stream and write nothing; the balance is the sum of the deposits
/// that were answered 200.
async fn conflict_after_retries(store: OpenedStore) {
    const CLIENTS: usize = 8;
    const ROUNDS: usize = 100;
    let api = Api::start(
        &store,
        Settings {
            max_attempts: Some(1),
            ..Settings::default()
        },
    )
    .await;
    let (account, _) = api.account_with("Contended", 0).await;
    let url = format!("{}/accounts/{account}/deposits", api.base);
    let mut paid = 0;
    let mut conflict = None;
    for _ in 0..ROUNDS {
        let round: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (http, url) = (api.http.clone(), url.clone());
                tokio::spawn(async move {
                    let response = http
                        .post(url)
                        .json(&json!({ "cents": 1 }))
                        .send()
                        .await
                        .expect("the service answers");
                    let status = response.status().as_u16();
                    let content_type = response.headers().get(CONTENT_TYPE).cloned();
                    let body: Value = response.json().await.expect("a JSON body");
                    (status, content_type, body)
                })
            })
            .collect();
        for answer in round {
            let (status, content_type, body) = answer.await.expect("a client");
            match status {
                200 => paid += 1,
                409 => {
                    assert_eq!(
                        content_type.as_ref().map(|c| c.as_bytes()),
                        Some(PROBLEM_JSON.as_bytes())
                    );
                    conflict = Some(body);
                }
                other => panic!("unexpected status {other}: {body}"),
            }
        }
        if conflict.is_some() {
            break;
        }
    }
    let conflict = conflict.unwrap_or_else(|| {
        panic!("{ROUNDS} rounds of {CLIENTS} concurrent deposits met no conflict")
    });
    assert_eq!(conflict["type"], format!("{PROBLEM_TYPES}conflict"));
    assert_eq!(conflict["status"], 409);
    assert_eq!(conflict["stream"], json!(account));
    assert_eq!(conflict["attempts"], 1);
    assert_eq!(
        api.balance_cents(account).await,
        paid,
        "a 409 wrote nothing"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflict_after_retries_is_409_on_sqlite() {
    on_sqlite(conflict_after_retries).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflict_after_retries_is_409_on_postgres() {
    on_postgres("service_conflict", conflict_after_retries).await;
}

// ---------------------------------------------------------------------------------------------
// Balances come from the read model

/// The balances the service answers are the read model's rows (not the aggregates replayed),
/// and a read model that can't catch up answers 503: a second service on the same database
/// finds the projection claimed by the first, so its read model waits on standby.
async fn balances_from_the_read_model(store: OpenedStore) {
    let api = Api::start(&store, Settings::default()).await;
    let (ada, _) = api.account_with("Ada", 7_00).await;
    let (bob, last) = api.account_with("Bob", 3_00).await;
    let answered = api
        .get(&format!("/balances?after={last}"))
        .await
        .expect(200);
    let mut answered: Vec<(Uuid, String, u64)> = answered["balances"]
        .as_array()
        .expect("balances")
        .iter()
        .map(|b| {
            (
                uuid(&b["account"]),
                b["owner"].as_str().expect("an owner").to_owned(),
                b["cents"].as_u64().expect("cents"),
            )
        })
        .collect();
    answered.sort();
    let mut rows = read_model_rows(&store).await;
    rows.sort();
    assert_eq!(answered, rows, "the answer is the read model's table");
    assert!(rows.contains(&(ada, "Ada".into(), 7_00)) && rows.contains(&(bob, "Bob".into(), 3_00)));

    let standby = Api::start(
        &store,
        Settings {
            read_timeout: Duration::from_millis(200),
            ..Settings::default()
        },
    )
    .await;
    let behind = standby.get(&format!("/balances/{ada}?after={last}")).await;
    assert_eq!(behind.headers["retry-after"], "1");
    let behind = behind.problem(503, Some("read-model-behind"));
    assert_eq!(behind["after"], last);
    // Commands still work there: they don't need the read model.
    standby
        .post(&format!("/accounts/{ada}/deposits"), json!({ "cents": 1 }))
        .await
        .expect(200);
    standby.stop().await;
    api.stop().await;
}

/// The statements read model's `bank_balances` rows, read from the database directly.
async fn read_model_rows(store: &OpenedStore) -> Vec<(Uuid, String, u64)> {
    match store {
        OpenedStore::Sqlite(sqlite) => {
            let db = rusqlite::Connection::open(sqlite.path().expect("a file")).expect("open");
            let mut query = db
                .prepare("SELECT account, owner, cents FROM bank_balances")
                .expect("the read model's table");
            query
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .expect("rows")
                .map(|row| {
                    let (account, owner, cents) = row.expect("a row");
                    (
                        Uuid::parse_str(&account).expect("an account id"),
                        owner,
                        u64::try_from(cents).expect("cents"),
                    )
                })
                .collect()
        }
        OpenedStore::Postgres(postgres) => {
            let db = postgres.pool().get().await.expect("a connection");
            db.query(
                &format!(
                    "SELECT account, owner, cents FROM \"{}\".bank_balances",
                    postgres.schema()
                ),
                &[],
            )
            .await
            .expect("the read model's table")
            .iter()
            .map(|row| {
                (
                    row.get(0),
                    row.get(1),
                    u64::try_from(row.get::<_, i64>(2)).expect("cents"),
                )
            })
            .collect()
        }
        OpenedStore::Memory(_) | OpenedStore::Nats(_) => {
            unreachable!("the memory and NATS stores keep no tables")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn balances_come_from_the_read_model_on_sqlite() {
    on_sqlite(balances_from_the_read_model).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn balances_come_from_the_read_model_on_postgres() {
    on_postgres("service_balances", balances_from_the_read_model).await;
}
