//! The command context from request headers: a middleware that reads who acts and which request
//! this is, runs the rest of the request inside that [`CommandContext`] (so every event a
//! handler's commands write carries it as metadata, with no parameter passed along), and
//! answers with the correlation id.
//!
//! | header | meaning | when absent |
//! |---|---|---|
//! | [`CORRELATION_ID`] (`X-Correlation-Id`) | the request's correlation id, a UUID: a client that retries, or a caller that is itself handling a request, sends its own | a fresh UUID v7 |
//! | [`ACTOR`] (`X-Actor`) | who acts (in a real service: the authenticated user) | no actor |
//!
//! Every response, errors included, carries `X-Correlation-Id`. A header that is not allowed (a
//! correlation id that is not a UUID, an actor that is not visible ASCII or is over
//! [`MAX_ACTOR_LEN`] bytes) is a 400 problem.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use eventsource_core::{CommandContext, Uuid};
use tracing::Instrument;

use super::errors::ApiError;

/// The header of the request's correlation id.
pub const CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
/// The header that names who acts.
pub const ACTOR: HeaderName = HeaderName::from_static("x-actor");
/// The longest actor accepted, in bytes.
pub const MAX_ACTOR_LEN: usize = 200;

/// Runs the request in the command context its headers give, inside a tracing span that names
/// its correlation id, and puts the correlation id on the response.
pub(crate) async fn command_context(request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        correlation_id = tracing::field::Empty,
    );
    let (context, correlation) = match from_headers(request.headers()) {
        Ok(context) => context,
        Err(problem) => {
            // Answered with a correlation id of its own, so the log line can be found.
            let correlation = Uuid::now_v7();
            span.record("correlation_id", tracing::field::display(correlation));
            let response = CommandContext::new()
                .with_correlation_id(correlation)
                .scope(async { problem.into_response() })
                .instrument(span)
                .await;
            return with_correlation(response, correlation);
        }
    };
    span.record("correlation_id", tracing::field::display(correlation));
    let response = context
        .scope(async move {
            let response = next.run(request).await;
            tracing::debug!(status = response.status().as_u16(), "answered");
            response
        })
        .instrument(span)
        .await;
    with_correlation(response, correlation)
}

/// The context the headers ask for, with its correlation id (generated if none was sent).
fn from_headers(headers: &HeaderMap) -> Result<(CommandContext, Uuid), ApiError> {
    let correlation = match headers.get(&CORRELATION_ID) {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| Uuid::parse_str(text.trim()).ok())
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "the {CORRELATION_ID} header must be a UUID, such as {}",
                    Uuid::now_v7()
                ))
            })?,
        None => Uuid::now_v7(),
    };
    let mut context = CommandContext::new().with_correlation_id(correlation);
    if let Some(value) = headers.get(&ACTOR) {
        let actor = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|actor| !actor.is_empty() && actor.len() <= MAX_ACTOR_LEN)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "the {ACTOR} header must be 1 to {MAX_ACTOR_LEN} visible ASCII characters"
                ))
            })?;
        context = context.with_actor(actor);
    }
    Ok((context, correlation))
}

fn with_correlation(mut response: Response, correlation: Uuid) -> Response {
    if let Ok(value) = HeaderValue::from_str(&correlation.to_string()) {
        response.headers_mut().insert(CORRELATION_ID, value);
    }
    response
}
