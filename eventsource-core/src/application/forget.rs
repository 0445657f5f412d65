//! Forgetting a data subject (crypto-shredding): deleting the keys of a person's data, so every
//! event that holds it decodes as [`Forgotten`](crate::Forgotten) from then on, in every stream
//! and in the log, while nothing stored is rewritten.
//!
//! [`forget_subject`] (and [`Repository::forget`](crate::Repository::forget), which also drops
//! its cached states) deletes the subject's keys, deletes the snapshots of the subject's own
//! stream (their state was encrypted with those keys, and may hold the data), and records a
//! [`SubjectForgotten`] event, so projections that keep the person's data elsewhere can list it
//! and remove it, and an audit shows when it happened and in whose command context.
//!
//! What stays readable: event names, versions, times, metadata (the command context: keep no
//! personal data in it), and the subject's id itself, which names the key in each payload's
//! envelope.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::application::context::CommandContext;
use crate::domain::event::{Event, Payload};
use crate::domain::id::id_from_name;
use crate::domain::personal::NotPersonal;
use crate::error::{DecodeError, Error, Result};
use crate::persistence::codec::{Codec, PayloadCodec};
use crate::persistence::position::Position;
use crate::persistence::record::{AppendBatch, NewEvent};
use crate::persistence::store::EventStore;

/// The category of the streams [`SubjectForgotten`] events are recorded in.
pub const FORGOTTEN_CATEGORY: &str = "DataSubject";

/// Recorded when a data subject is forgotten: list it in a projection's `events(...)` to
/// remove the person's data from a read model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectForgotten {
    /// The forgotten subject.
    pub subject: Uuid,
    /// How many of its keys were deleted.
    pub keys_deleted: u64,
    /// How many snapshots of its stream were deleted.
    pub snapshots_deleted: u64,
}

impl Event for SubjectForgotten {
    const NAME: &'static str = "SubjectForgotten";
    const VERSION: u32 = 1;
    type Forgotten = NotPersonal<Self>;

    fn decode_stored<C: Codec>(
        codec: &C,
        schema_version: u32,
        payload: &[u8],
    ) -> Result<Self, DecodeError> {
        if schema_version != Self::VERSION {
            return Err(DecodeError::UnknownVersion {
                name: Self::NAME,
                found: schema_version,
                latest: Self::VERSION,
            });
        }
        Ok(Self::decode_payload(codec, payload)?)
    }
}

/// The stream a subject's [`SubjectForgotten`] events are recorded in (not the subject's own:
/// that may be an aggregate's).
pub fn forgotten_stream(subject: Uuid) -> Uuid {
    id_from_name("eventsource/forgotten-subjects", &subject.to_string())
}

/// What forgetting a subject did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forgetting {
    /// The event that records it.
    pub recorded: SubjectForgotten,
    /// The position of that event in the log.
    pub position: Position,
}

/// Forgets `subject`: deletes its keys from `codec`'s key store, the snapshots of stream
/// `subject`, and records [`SubjectForgotten`] in [`forgotten_stream`] with the current
/// [`CommandContext`]. Fails with [`Error::Key`] if `codec` encrypts nothing. Forgetting again
/// is harmless: it records another event.
pub async fn forget_subject<S: EventStore + ?Sized>(
    store: &S,
    codec: &PayloadCodec,
    subject: Uuid,
) -> Result<Forgetting> {
    let keys_deleted = codec.forget_keys(subject).await? as u64;
    let snapshots_deleted = store.delete_snapshots(subject).await?;
    let recorded = SubjectForgotten {
        subject,
        keys_deleted,
        snapshots_deleted,
    };
    let payload = serde_json::to_vec(&recorded).map_err(|e| Error::Encode {
        what: SubjectForgotten::NAME.to_owned(),
        source: crate::CodecError::new("json", e),
    })?;
    let stream = forgotten_stream(subject);
    let metadata = CommandContext::for_command().to_metadata();
    // Another process forgetting the same subject at once moves the stream: read and retry.
    let mut attempts = 0;
    loop {
        let version = store.stream_version(stream).await?;
        let event = NewEvent::new(
            SubjectForgotten::NAME,
            SubjectForgotten::VERSION,
            payload.clone(),
        )
        .with_metadata(metadata.clone());
        let batch = AppendBatch::single_in(FORGOTTEN_CATEGORY, stream, version, vec![event]);
        match store.append(batch).await {
            Ok(position) => return Ok(Forgetting { recorded, position }),
            Err(Error::Conflict { .. }) if attempts < 5 => attempts += 1,
            Err(error) => return Err(error),
        }
    }
}
