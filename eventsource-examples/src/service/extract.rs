//! The parts of a request the routes take, as axum's extractors with one change: a body, path
//! or query that does not parse is answered as a problem (see [`ApiError`]), not as plain text.

use axum::extract::{FromRequest, FromRequestParts};

use super::errors::ApiError;

/// A JSON body (sent as `application/json`).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct Json<T>(pub(crate) T);

/// The path's parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct Path<T>(pub(crate) T);

/// The query string's parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct Query<T>(pub(crate) T);
