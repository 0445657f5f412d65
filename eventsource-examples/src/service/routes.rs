//! The routes: each turns a request into a command on the bank (in the request's command
//! context, set by the middleware of [`context`](super::context)), or into a read of an
//! aggregate or of the read model.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use eventsource_core::{Aggregate, EventStore, Loaded, Position, StreamRange, Uuid, new_id};
use futures_util::TryStreamExt;

use super::bodies::{
    Account, AccountChanged, After, Amount, Balances, Close, History, HistoryEntry, OneBalance,
    OpenAccount, RequestTransfer, Transfer, TransferAccepted,
};
use super::context::command_context;
use super::errors::{ApiError, what};
use super::extract::{Json, Path, Query};
use super::state::Bank;
use crate::bank::{BankAccount, Opened};
use crate::transfers::{self, MoneyTransfer, TransferStatus};

type Shared = State<Arc<Bank>>;

/// The longest owner's name an account is opened with, in bytes.
const MAX_OWNER_LEN: usize = 200;

/// The service's routes, each answering inside the request's command context.
pub(crate) fn router(bank: Arc<Bank>) -> Router {
    Router::new()
        .route("/accounts", post(open_account))
        .route("/accounts/{id}", get(account))
        .route("/accounts/{id}/deposits", post(deposit))
        .route("/accounts/{id}/withdrawals", post(withdraw))
        .route("/accounts/{id}/close", post(close))
        .route("/accounts/{id}/history", get(history))
        .route("/transfers", post(request_transfer))
        .route("/transfers/{id}", get(transfer))
        .route("/balances", get(balances))
        .route("/balances/{id}", get(balance))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(command_context))
        .with_state(bank)
}

/// `POST /accounts {"owner", "currency"?}`: opens an account with a new id; 201 with its
/// `Location`.
async fn open_account(
    State(bank): Shared,
    Json(body): Json<OpenAccount>,
) -> Result<Response, ApiError> {
    let owner = body.owner.trim();
    if owner.is_empty() || owner.len() > MAX_OWNER_LEN {
        return Err(ApiError::BadRequest(format!(
            "`owner` must be 1 to {MAX_OWNER_LEN} bytes of text"
        )));
    }
    let currency = body.currency.unwrap_or_else(|| "EUR".into());
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ApiError::BadRequest(format!(
            "`currency` must be an ISO 4217 code such as EUR, not `{currency}`"
        )));
    }
    let account = bank
        .accounts
        .create_with_id(
            new_id(),
            Opened {
                owner: owner.into(),
                currency,
            },
        )
        .await?;
    let id = account.id();
    let position = position_of(bank.accounts.store(), id, account.version()).await?;
    tracing::info!(account = %id, "opened an account");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/accounts/{id}"))],
        axum::Json(AccountChanged::new(&account, position)),
    )
        .into_response())
}

/// `GET /accounts/{id}`: the account's state, replayed from its events, and where its last
/// event is.
async fn account(
    State(bank): Shared,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Account>, ApiError> {
    ensure::<BankAccount>(bank.accounts.store(), id).await?;
    let account = bank.accounts.get(id).await?;
    let position = position_of(bank.accounts.store(), id, account.version()).await?;
    Ok(axum::Json(Account::new(account, position)))
}

/// `POST /accounts/{id}/deposits {"cents"}`.
async fn deposit(
    State(bank): Shared,
    Path(id): Path<Uuid>,
    Json(Amount { cents }): Json<Amount>,
) -> Result<axum::Json<AccountChanged>, ApiError> {
    ensure::<BankAccount>(bank.accounts.store(), id).await?;
    let account = bank.accounts.execute(id, |a| a.deposit(cents)).await?;
    changed(&bank, account).await
}

/// `POST /accounts/{id}/withdrawals {"cents"}`: refused (422) if the balance does not cover it.
async fn withdraw(
    State(bank): Shared,
    Path(id): Path<Uuid>,
    Json(Amount { cents }): Json<Amount>,
) -> Result<axum::Json<AccountChanged>, ApiError> {
    ensure::<BankAccount>(bank.accounts.store(), id).await?;
    let account = bank.accounts.execute(id, |a| a.withdraw(cents)).await?;
    changed(&bank, account).await
}

/// `POST /accounts/{id}/close {"reason"}`: no more deposits, withdrawals or transfers.
async fn close(
    State(bank): Shared,
    Path(id): Path<Uuid>,
    Json(Close { reason }): Json<Close>,
) -> Result<axum::Json<AccountChanged>, ApiError> {
    ensure::<BankAccount>(bank.accounts.store(), id).await?;
    let account = bank.accounts.execute(id, |a| a.close(&*reason)).await?;
    changed(&bank, account).await
}

/// The answer to a command on an account: the account after it, and where its last event is.
async fn changed(
    bank: &Bank,
    account: Loaded<BankAccount>,
) -> Result<axum::Json<AccountChanged>, ApiError> {
    let position = position_of(bank.accounts.store(), account.id(), account.version()).await?;
    Ok(axum::Json(AccountChanged::new(&account, position)))
}

/// `GET /accounts/{id}/history`: every event of the account, decoded, with its context.
async fn history(
    State(bank): Shared,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<History>, ApiError> {
    ensure::<BankAccount>(bank.accounts.store(), id).await?;
    let events = bank
        .accounts
        .history(id)
        .await?
        .iter()
        .map(HistoryEntry::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::Internal)?;
    Ok(axum::Json(History::new(id, events)))
}

/// `POST /transfers {"from", "to", "cents"}`: stores the request (202); the `transfers`
/// process debits, then credits or refunds. `GET /transfers/{id}` says how it ended.
async fn request_transfer(
    State(bank): Shared,
    Json(body): Json<RequestTransfer>,
) -> Result<Response, ApiError> {
    ensure::<BankAccount>(bank.accounts.store(), body.from).await?;
    ensure::<BankAccount>(bank.accounts.store(), body.to).await?;
    let id = transfers::request(&bank.transfers, body.from, body.to, body.cents).await?;
    let position = position_of(bank.transfers.store(), id, 1).await?;
    tracing::info!(transfer = %id, from = %body.from, to = %body.to, cents = body.cents, "transfer requested");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/transfers/{id}"))],
        axum::Json(TransferAccepted {
            id,
            status: TransferStatus::Requested,
            position: position.get(),
        }),
    )
        .into_response())
}

/// `GET /transfers/{id}`.
async fn transfer(
    State(bank): Shared,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Transfer>, ApiError> {
    ensure::<MoneyTransfer>(bank.transfers.store(), id).await?;
    let transfer = bank.transfers.get(id).await?;
    let position = position_of(bank.transfers.store(), id, transfer.version()).await?;
    Ok(axum::Json(Transfer::new(transfer, position)))
}

/// `GET /balances?after=`: every balance from the read model.
async fn balances(
    State(bank): Shared,
    Query(query): Query<After>,
) -> Result<axum::Json<Balances>, ApiError> {
    let position = caught_up(&bank, query.after).await?;
    let balances = bank
        .read_side
        .balances(None)
        .await
        .map_err(|e| ApiError::Internal(format!("reading the balances: {e}")))?;
    Ok(axum::Json(Balances {
        position: position.get(),
        balances: balances.into_iter().map(Into::into).collect(),
    }))
}

/// `GET /balances/{id}?after=`: one balance from the read model; 404 if it has not seen the
/// account (yet: pass `?after=` with the position its opening returned).
async fn balance(
    State(bank): Shared,
    Path(id): Path<Uuid>,
    Query(query): Query<After>,
) -> Result<axum::Json<OneBalance>, ApiError> {
    let position = caught_up(&bank, query.after).await?;
    let balance = bank
        .read_side
        .balances(Some(id))
        .await
        .map_err(|e| ApiError::Internal(format!("reading the balance of {id}: {e}")))?
        .into_iter()
        .next()
        .ok_or(ApiError::NotInReadModel { id, position })?;
    Ok(axum::Json(OneBalance {
        position: position.get(),
        balance: balance.into(),
    }))
}

/// Waits until the read model has handled the log up to `after` (if asked), at most the
/// service's read timeout; returns how far it has got (every event up to there is in it).
async fn caught_up(bank: &Bank, after: Option<u64>) -> Result<Position, ApiError> {
    if let Some(after) = after.map(Position::new) {
        let last = bank.accounts.store().last_position().await?;
        if after > last {
            return Err(ApiError::BadRequest(format!(
                "?after={after} is past the end of the log (position {last})"
            )));
        }
        let reached = bank
            .read_side
            .wait_for(after, bank.read_timeout)
            .await
            .map_err(|e| ApiError::Internal(format!("the read model stopped: {e}")))?;
        if !reached {
            return Err(ApiError::ReadModelBehind {
                after,
                reached: bank.read_side.position(),
                waited: bank.read_timeout,
            });
        }
    }
    Ok(bank.read_side.position())
}

/// 404 unless stream `id` holds an aggregate of type `A` (an id of another type, say a
/// transfer's given as an account, is unknown here rather than an event that fails to decode).
async fn ensure<A: Aggregate>(store: &Arc<dyn EventStore>, id: Uuid) -> Result<(), ApiError> {
    let first = store
        .read_stream(id, StreamRange::all().to(1))
        .try_next()
        .await?;
    match first {
        // Records written without a category (by hand, by old releases) are given the benefit
        // of the doubt.
        Some(event) if event.category.is_empty() || event.category == A::NAME => Ok(()),
        _ => Err(ApiError::NotFound {
            what: what(A::NAME),
            id,
        }),
    }
}

/// The position of event `version` of stream `id`: where a command's last event went.
async fn position_of(
    store: &Arc<dyn EventStore>,
    id: Uuid,
    version: u64,
) -> Result<Position, ApiError> {
    store
        .read_stream(id, StreamRange::all().from(version).to(version))
        .try_next()
        .await?
        .map(|event| event.position)
        .ok_or_else(|| ApiError::Internal(format!("stream {id} has no version {version}")))
}

/// Any path the service does not know.
async fn no_route(uri: Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

/// A known path with a method it does not take.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
