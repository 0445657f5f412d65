//! The bank as an HTTP service (axum): commands from requests, in the command context the
//! request's headers give, answered with JSON or with problem details.
//!
//! It wires the bank as the demo does: a repository of accounts (conflicts retried by the
//! repository), the `transfers` process moving money between accounts, and the statements read
//! model that the balances are read from. Run it with the `bank-service` binary:
//!
//! ```text
//! cargo run -p eventsource-examples --bin bank-service -- --store sqlite://bank.db --listen 127.0.0.1:8080
//! ```
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /accounts` | `{"owner": "Ada", "currency": "EUR"}` (currency optional) | 201, `Location`, the account and the position of its event |
//! | `GET /accounts/{id}` | | the account, replayed from its events, with the position of its last event |
//! | `POST /accounts/{id}/deposits` | `{"cents": 10000}` | the account after it, with the position of its event |
//! | `POST /accounts/{id}/withdrawals` | `{"cents": 2500}` | the same; 422 if the balance does not cover it |
//! | `POST /accounts/{id}/close` | `{"reason": "moved"}` | the same |
//! | `GET /accounts/{id}/history` | | every event, decoded at today's schema, with its correlation id, causation id and actor |
//! | `POST /transfers` | `{"from": id, "to": id, "cents": 500}` | 202, `Location`: the request is stored, the `transfers` process moves the money |
//! | `GET /transfers/{id}` | | its status, `Requested`, then `Completed`, `Compensated` (the target refused, the money went back) or `Declined` (with the reason), and the position of its last event |
//! | `GET /balances?after=P` | | every balance from the read model, once it has handled the log up to position `P` (optional) |
//! | `GET /balances/{id}?after=P` | | one balance from the read model |
//!
//! Commands answer with the `position` of the last event they wrote: a read with `?after=` that
//! position sees their effect (read-your-writes on an eventually consistent read model); without
//! it, a read answers at once with what the read model holds, and says up to which `position`.
//! A transfer moves the money after its request is answered: once `GET /transfers/{id}` says it
//! finished, its `position` is the one to wait for.
//!
//! Headers: see [`context`] (`X-Correlation-Id`, `X-Actor`). Errors: see [`errors`] (400, 404,
//! 409, 422, 503 as `application/problem+json`).

pub mod context;
pub mod errors;

mod bodies;
mod extract;
mod routes;
mod state;

pub use errors::{ApiError, PROBLEM_JSON, PROBLEM_TYPES};
pub use state::{BankService, ServiceError, Settings};
