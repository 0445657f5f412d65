//! Errors as problem details (RFC 9457): every failure the service answers with is an
//! [`ApiError`], sent as `application/problem+json` with the status that says whose fault it is.
//!
//! | status | when |
//! |---|---|
//! | 400 | bad input: a body, path or query that does not parse, a header that is not allowed |
//! | 404 | an unknown account or transfer (or a route that does not exist) |
//! | 405 | a route that exists, with another method |
//! | 409 | a version conflict that outlasted the repository's retries |
//! | 415 | a body that is not sent as `application/json` |
//! | 422 | the bank refused the command ([`BankError`]): nothing was written |
//! | 503 | the read model did not reach the position asked for in time, or the store is busy |
//! | 500 | the store failed: logged with the request's correlation id, never caused by input |
//!
//! Each problem has `type`, `title`, `status` and `detail`, the request's `correlation_id`, and
//! members of its own (the balance and the amount of an overdraft, the contended stream of a
//! conflict). The `type` URIs name the problem; they are identifiers under `example.invalid`,
//! not pages (a real service points them at its documentation).

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventsource_core::{CommandContext, CommandError, Error, Position, Uuid};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::bank::BankError;

/// The media type of a problem details body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Where the `type` URIs of the service's own problems start.
pub const PROBLEM_TYPES: &str = "https://example.invalid/eventsource/problems/";

/// Why a request failed, as the client is told.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The input does not parse or is not allowed (400).
    #[error("{0}")]
    BadRequest(String),
    /// The body is not JSON by its content type (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// No account or transfer has this id (404).
    #[error("there is no {what} {id}")]
    NotFound {
        /// `account` or `transfer`.
        what: &'static str,
        /// The id asked for.
        id: Uuid,
    },
    /// The read model has not seen the account yet (404).
    #[error(
        "the read model has no account {id} as of position {position}; pass the position a command returned as ?after= to wait for it"
    )]
    NotInReadModel {
        /// The account.
        id: Uuid,
        /// How far the read model had got.
        position: Position,
    },
    /// No route has this path (404).
    #[error("there is nothing at {0}")]
    NoRoute(String),
    /// The route takes other methods (405).
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The path.
        path: String,
    },
    /// Other writers kept changing the stream through every retry (409): nothing was written;
    /// sending the request again may succeed.
    #[error(
        "stream {stream} kept changing under this command: {attempts} attempt(s) met a newer version; nothing was written, try again"
    )]
    Conflict {
        /// The contended stream.
        stream: Uuid,
        /// How many attempts the repository made.
        attempts: u32,
    },
    /// The bank refused the command (422); nothing was written.
    #[error(transparent)]
    Refused(BankError),
    /// The read model did not reach the position asked for in time (503).
    #[error("the read model reached position {reached}, not {after}, within {waited:?}; try again")]
    ReadModelBehind {
        /// The position asked for.
        after: Position,
        /// Where the read model got to.
        reached: Position,
        /// How long the request waited.
        waited: Duration,
    },
    /// The store is busy (503): nothing was written; try again later.
    #[error("the store is busy; nothing was written, try again")]
    Busy,
    /// Something failed that the client can't fix (500): the store, the read model. The detail
    /// the client sees is generic; the log has the cause.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The status, the problem's type (its slug under [`PROBLEM_TYPES`], or `None` for
    /// `about:blank`) and its title.
    fn kind(&self) -> (StatusCode, Option<&'static str>, &'static str) {
        use ApiError::*;
        match self {
            BadRequest(_) => (StatusCode::BAD_REQUEST, None, "Bad Request"),
            UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                "Unsupported Media Type",
            ),
            NotFound { .. } | NoRoute(_) => (StatusCode::NOT_FOUND, None, "Not Found"),
            NotInReadModel { .. } => (
                StatusCode::NOT_FOUND,
                Some("not-in-read-model"),
                "The read model does not have this account",
            ),
            MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, None, "Method Not Allowed"),
            Conflict { .. } => (
                StatusCode::CONFLICT,
                Some("conflict"),
                "The account kept changing under the command",
            ),
            Refused(refusal) => {
                let (slug, title) = match refusal {
                    BankError::InsufficientFunds { .. } => {
                        ("insufficient-funds", "The balance does not cover it")
                    }
                    BankError::ZeroAmount => ("zero-amount", "An amount must be more than zero"),
                    BankError::SameAccount => ("same-account", "An account cannot pay itself"),
                    BankError::OverLimit { .. } => ("over-limit", "Over the account's limit"),
                    BankError::Closed => ("account-closed", "The account is closed"),
                    BankError::NoSuchAccount => return (StatusCode::NOT_FOUND, None, "Not Found"),
                    BankError::StillOpen => ("still-open", "The account is still open"),
                };
                (StatusCode::UNPROCESSABLE_ENTITY, Some(slug), title)
            }
            ReadModelBehind { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some("read-model-behind"),
                "The read model has not caught up",
            ),
            Busy => (StatusCode::SERVICE_UNAVAILABLE, None, "Service Unavailable"),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "Internal Server Error",
            ),
        }
    }

    /// The problem's members of its own.
    fn members(&self) -> Map<String, Value> {
        let members = match self {
            ApiError::NotFound { what, id } => json!({ "kind": what, "id": id }),
            ApiError::NotInReadModel { id, position } => {
                json!({ "id": id, "position": position.get() })
            }
            ApiError::Conflict { stream, attempts } => {
                json!({ "stream": stream, "attempts": attempts })
            }
            ApiError::Refused(BankError::InsufficientFunds { balance, requested }) => {
                json!({ "balance_cents": balance, "requested_cents": requested })
            }
            ApiError::Refused(BankError::OverLimit { limit, requested }) => {
                json!({ "limit_cents": limit, "requested_cents": requested })
            }
            ApiError::ReadModelBehind { after, reached, .. } => {
                json!({ "after": after.get(), "position": reached.get() })
            }
            _ => json!({}),
        };
        match members {
            Value::Object(members) => members,
            _ => Map::new(),
        }
    }
}

/// A problem details body: the members RFC 9457 defines first, then the problem's own.
#[derive(Debug, Serialize)]
struct Problem {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<Uuid>,
    #[serde(flatten)]
    members: Map<String, Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.kind();
        // Responses are built inside the request's command context (see `context`).
        let correlation = CommandContext::current().and_then(|c| c.correlation_id());
        let detail = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                "the service failed; its log has the cause under this request's correlation id"
                    .to_owned()
            }
            other => {
                tracing::info!(status = status.as_u16(), problem = %other, "request refused");
                other.to_string()
            }
        };
        let body = Problem {
            kind: slug.map_or_else(|| "about:blank".into(), |s| format!("{PROBLEM_TYPES}{s}")),
            title,
            status: status.as_u16(),
            detail,
            correlation_id: correlation,
            members: self.members(),
        };
        let mut response = (status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::NotFound { aggregate, stream } => ApiError::NotFound {
                what: what(aggregate),
                id: stream,
            },
            Error::TooManyConflicts { stream, attempts } => ApiError::Conflict { stream, attempts },
            Error::Conflict { stream, .. } => ApiError::Conflict {
                stream,
                attempts: 1,
            },
            Error::Busy { .. } => {
                tracing::warn!(%error, "the store is busy");
                ApiError::Busy
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<CommandError<BankError>> for ApiError {
    fn from(error: CommandError<BankError>) -> Self {
        match error {
            CommandError::Rejected(refusal) => ApiError::Refused(refusal),
            CommandError::Store(error) => error.into(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::UnsupportedMediaType(rejection.body_text())
            }
            _ => ApiError::BadRequest(rejection.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

/// What the client calls an aggregate type.
pub(crate) fn what(aggregate: &str) -> &'static str {
    if aggregate == <crate::transfers::MoneyTransfer as eventsource_core::Aggregate>::NAME {
        "transfer"
    } else {
        "account"
    }
}
