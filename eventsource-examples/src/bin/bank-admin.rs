//! The admin CLI for the bank demo's store: the commands of `eventsource_core::admin`, with
//! the bank's aggregates (`BankAccount`, `MoneyTransfer`) and its statements read model.
//!
//! ```text
//! cargo run -p eventsource-examples --bin bank-admin -- streams            # sqlite://bank.db
//! cargo run -p eventsource-examples --bin bank-admin -- --store postgres://postgres@127.0.0.1:5432/test projections
//! cargo run -p eventsource-examples --bin bank-admin -- rebuild statements
//! cargo run -p eventsource-examples --bin bank-admin -- --help
//! ```

use std::process::ExitCode;

use eventsource_core::admin::{Admin, ReadModel};
use eventsource_core::stores::AnyStore;
use eventsource_examples::bank::BankAccount;
use eventsource_examples::statements::sqlite::SqliteStatements;
use eventsource_examples::transfers::MoneyTransfer;

#[tokio::main]
async fn main() -> ExitCode {
    Admin::new("bank-admin")
        .default_store("sqlite://bank.db")
        .schema_lock(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"))
        .aggregate::<BankAccount>()
        .aggregate::<MoneyTransfer>()
        .projection("statements", statements)
        .run_from_args()
        .await
}

/// The statements read model where the store keeps it: tables in its SQLite file or its
/// PostgreSQL schema. On the memory store it lives in the demo's process: nothing to rebuild.
fn statements(store: &AnyStore) -> Option<ReadModel> {
    match store {
        AnyStore::Sqlite(sqlite) if sqlite.path().is_some() => Some(ReadModel::new(
            sqlite.clone(),
            SqliteStatements::default(),
            |statements, work| Box::pin(async move { statements.clear(work) }),
        )),
        #[cfg(feature = "postgres")]
        AnyStore::Postgres(pg) => Some(ReadModel::new(
            pg.clone(),
            eventsource_examples::statements::postgres::PostgresStatements::of(pg),
            |statements, work| Box::pin(statements.clear(work)),
        )),
        _ => None,
    }
}
