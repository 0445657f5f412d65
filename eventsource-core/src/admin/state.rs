//! `state ID --at VERSION`: an aggregate's state replayed to a version, through a
//! [`Repository`] of the aggregate type the program registered with
//! [`Admin::aggregate`](super::Admin::aggregate).

use std::sync::Arc;

use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use serde::Serialize;
use uuid::Uuid;

use super::args::StateArgs;
use super::{AdminError, Context, Outcome};
use crate::application::repository::Repository;
use crate::domain::aggregate::Aggregate;
use crate::error::Error;
use crate::persistence::codec::PayloadCodec;
use crate::persistence::record::StreamRange;
use crate::persistence::store::EventStore;

/// A state as `state` shows it.
#[derive(Debug, Serialize)]
struct StateLine {
    aggregate: &'static str,
    stream_id: Uuid,
    version: u64,
    latest_version: u64,
    state: serde_json::Value,
    #[serde(skip)]
    debug: String,
}

/// Replays a stream as one aggregate type, to a version or its latest.
type Load = fn(
    Arc<dyn EventStore>,
    PayloadCodec,
    Uuid,
    Option<u64>,
) -> BoxFuture<'static, Result<StateLine, Error>>;

/// An aggregate type `state` can show.
pub(super) struct StateLoader {
    pub(super) name: &'static str,
    load: Load,
}

impl StateLoader {
    pub(super) fn of<A>() -> Self
    where
        A: Aggregate + Serialize + std::fmt::Debug,
    {
        Self {
            name: A::NAME,
            load: |store, codec, id, at| Box::pin(load::<A>(store, codec, id, at)),
        }
    }
}

async fn load<A>(
    store: Arc<dyn EventStore>,
    codec: PayloadCodec,
    id: Uuid,
    at: Option<u64>,
) -> Result<StateLine, Error>
where
    A: Aggregate + Serialize + std::fmt::Debug,
{
    let latest_version = store.stream_version(id).await?;
    let repository = Repository::<A, _>::new(store).codec(codec);
    let loaded = match at {
        Some(version) => repository.get_at(id, version).await?,
        None => repository.get(id).await?,
    };
    let state = serde_json::to_value(loaded.state()).map_err(|e| Error::Encode {
        what: format!("the state of {} {id}", A::NAME),
        source: crate::error::CodecError::new("json", e),
    })?;
    Ok(StateLine {
        aggregate: A::NAME,
        stream_id: id,
        version: loaded.version(),
        latest_version,
        state,
        debug: format!("{:#?}", loaded.state()),
    })
}

pub(super) async fn show(cx: &Context, aggregates: &[StateLoader], args: StateArgs) -> Outcome {
    let name = match args.aggregate {
        Some(name) => name,
        None => {
            let first: Vec<_> = cx
                .events
                .read_stream(args.stream, StreamRange::all().limit(1))
                .try_collect()
                .await?;
            match first.first() {
                None => {
                    return Err(AdminError::Refused(format!(
                        "stream {} has no events in this store",
                        args.stream
                    )));
                }
                Some(event) if event.category.is_empty() => {
                    return Err(AdminError::Refused(format!(
                        "stream {} was stored without its aggregate type; name it with --aggregate TYPE ({})",
                        args.stream,
                        known(aggregates)
                    )));
                }
                Some(event) => event.category.clone(),
            }
        }
    };
    let loader = aggregates.iter().find(|a| a.name == name).ok_or_else(|| {
        AdminError::Refused(format!(
            "this program can't show the state of a `{name}` ({})",
            known(aggregates)
        ))
    })?;
    let line = (loader.load)(cx.events.clone(), cx.codec.clone(), args.stream, args.at).await?;
    if cx.out.json {
        return cx.out.json_line(&line);
    }
    cx.out.line(&cx.out.bold(&format!(
        "{} {} at version {} (latest {})",
        line.aggregate, line.stream_id, line.version, line.latest_version
    )))?;
    cx.out.line(&line.debug)
}

/// The aggregate types it knows, in words.
fn known(aggregates: &[StateLoader]) -> String {
    match aggregates.is_empty() {
        true => "it registers no aggregate types: add them with `Admin::aggregate`".to_owned(),
        false => format!(
            "it knows: {}",
            aggregates
                .iter()
                .map(|a| a.name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
