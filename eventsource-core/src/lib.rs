//! # eventsource
//!
//! Event sourcing for Rust: every change to an aggregate is stored as an immutable, versioned
//! event, and the aggregate's state is rebuilt by replaying them.
//!
//! You write plain structs. `#[derive(Event)]` gives each event a stored name, a schema version
//! and an upcaster chain that decodes payloads stored at older versions; `#[derive(Aggregate)]`
//! writes the aggregate's event enum and the dispatch to your [`Apply`] impls. Mistakes that would
//! make stored events undecodable are compile errors.
//!
//! ```
//! use eventsource_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! struct Opened { owner: String }
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! struct Deposited { amount: u64 }
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! struct Withdrawn { amount: u64 }
//!
//! #[derive(Aggregate, Default, Debug)]
//! #[aggregate(events(Opened, Deposited, Withdrawn))]
//! struct Account { owner: String, balance: u64 }
//!
//! impl Apply<Opened> for Account {
//!     fn apply(&mut self, e: &Opened) { self.owner = e.owner.clone(); }
//! }
//! impl Apply<Deposited> for Account {
//!     fn apply(&mut self, e: &Deposited) { self.balance += e.amount; }
//! }
//! impl Apply<Withdrawn> for Account {
//!     fn apply(&mut self, e: &Withdrawn) { self.balance -= e.amount; }
//! }
//!
//! #[derive(Debug, PartialEq)]
//! struct Overdrawn { balance: u64 }
//!
//! impl Account {
//!     fn withdraw(&self, amount: u64) -> Result<Withdrawn, Overdrawn> {
//!         if amount > self.balance { return Err(Overdrawn { balance: self.balance }) }
//!         Ok(Withdrawn { amount })
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let accounts = Repository::<Account, _>::new(MemoryStore::new());
//! let id = accounts.create(Opened { owner: "Ada".into() }).await?;
//! accounts.execute(id, |_| Ok::<_, Overdrawn>(Deposited { amount: 100 })).await.unwrap();
//! accounts.execute(id, |acct| acct.withdraw(30)).await.unwrap();
//!
//! // The domain refuses an overdraft; nothing is written.
//! let refused = accounts.execute(id, |acct| acct.withdraw(500)).await;
//! assert!(matches!(refused, Err(CommandError::Rejected(Overdrawn { balance: 70 }))));
//!
//! let now = accounts.get(id).await?;
//! assert_eq!((now.owner.as_str(), now.balance, now.version()), ("Ada", 70, 3));
//! let then = accounts.get_at(id, 2).await?;          // time travel: the state at version 2
//! assert_eq!(then.balance, 100);
//! # Ok::<_, eventsource_core::Error>(()) }).unwrap();
//! ```
//!
//! ## Layers
//! - [`domain`]: [`Event`], [`Aggregate`], [`Apply`], ids, and personal data
//!   ([`domain::personal`]: `#[event(personal)]` and the [`Forgotten`] values of forgotten
//!   subjects).
//! - [`application`]: the [`Repository`], the [`CommandContext`] stored with every event,
//!   retries with [`Backoff`], the [`UnitOfWork`] across aggregate types; and the read side:
//!   a [`Subscription`] follows the log as it grows, a [`Projection`] run by a [`Projector`]
//!   keeps a read model (exactly once when it lives in the store's database; see
//!   [`projection`]).
//! - [`persistence`]: the stored records, [`Position`]s and [`LogPage`]s of the global log,
//!   the [`EventStore`] contract and the [`WakeUps`] stores send readers; [`Codec`]s and the
//!   [`PayloadCodec`](persistence::codec::PayloadCodec) that compresses and encrypts payloads
//!   in self-describing envelopes (forgetting a person: [`application::forget`]).
//! - [`stores`]: [`MemoryStore`], and the database stores behind cargo features.
//! - [`registry`]: every event and aggregate type in the program, and [`registry::validate`];
//!   the [`catalog`] documents them all, as Markdown or one HTML page.
//! - `admin` (feature `cli`): the admin CLI a program embeds in a few lines: streams, the log
//!   with `--follow`, the schema lock check, read models' lag and rebuilds, export and import.
//! - [`guide`]: walks through one topic each; [`guide::evolution`] changes events and aggregates
//!   without losing what is stored.
#![forbid(unsafe_code)]
// Library code never unwraps: data from storage or users gets a typed error instead.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

#[cfg(feature = "cli")]
pub mod admin;
pub mod application;
pub mod catalog;
pub mod domain;
pub mod error;
pub mod guide;
pub mod persistence;
pub mod registry;
pub mod schema;
pub mod stores;
#[cfg(feature = "testing")]
pub mod testing;

pub use application::claim::Claims;
pub use application::context::{CommandContext, MetadataError};
pub use application::process;
pub use application::process::{Process, ProcessManager, ProcessWork};
pub use application::projection;
pub use application::projection::{HandlerError, Projection, Projector};
pub use application::repository::{CommandError, Loaded, Recorded, Repository};
pub use application::retry::{Backoff, RetryPolicy};
pub use application::subscription::Subscription;
pub use application::system;
pub use application::system::System;
pub use application::unit_of_work::{Handle, UnitOfWork, Work};
pub use domain::aggregate::{Aggregate, Apply, SnapshotSettings, Snapshotted};
pub use domain::event::{Event, EventEnum, IntoEvents, Payload, UpcastFn};
pub use domain::id::{id_from_name, new_id};
pub use domain::personal::{DataSubject, Forgotten, ForgottenRecord, NotPersonal};
pub use error::{CodecError, DecodeError, Error, Result, UpcastError};
pub use persistence::codec::{Codec, Json};
pub use persistence::position::Position;
pub use persistence::record::{
    AppendBatch, LogPage, LogQuery, Metadata, NewEvent, Replay, ReplayedEvent, Snapshot,
    StoredEvent, StreamAppend, StreamRange, Tracking, legacy_event_id,
};
pub use persistence::store::{EventStore, EventStream, ReplayVisitor, StreamVisitor};
pub use persistence::wake::{CommitSignal, WakeUps};
pub use schema::EventData;
pub use stores::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use stores::postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use stores::sqlite::{SqliteOptions, SqliteStore, Synchronous};

pub use async_trait::async_trait;
/// The boxed future an async decision returns: `|state| Box::pin(async move { … })`.
pub use futures_util::future::BoxFuture;
pub use uuid::Uuid;

/// `#[derive(Event)]`: see [`Event`].
#[cfg(feature = "derive")]
pub use eventsource_derive::Event;

/// `#[derive(EventData)]`: see [`EventData`].
#[cfg(feature = "derive")]
pub use eventsource_derive::EventData;

/// `#[derive(Aggregate)]`: see [`Aggregate`].
#[cfg(feature = "derive")]
pub use eventsource_derive::Aggregate;

/// `#[derive(Projection)]`: see [`Projection`].
#[cfg(feature = "derive")]
pub use eventsource_derive::Projection;

/// `#[derive(Process)]`: see [`Process`] and the [`process`] module.
#[cfg(feature = "derive")]
pub use eventsource_derive::Process;

/// Everything a domain module needs: `use eventsource_core::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "postgres")]
    pub use crate::PostgresStore;
    #[cfg(feature = "sqlite")]
    pub use crate::SqliteStore;
    pub use crate::process::React;
    pub use crate::projection::Handle;
    pub use crate::{
        Aggregate, Apply, BoxFuture, CommandContext, CommandError, Event, EventData, EventEnum,
        EventStore, Forgotten, HandlerError, IntoEvents, Json, Loaded, MemoryStore, Process,
        ProcessManager, ProcessWork, Projection, Projector, Recorded, Repository, System,
        UnitOfWork, UpcastError, Uuid, id_from_name,
    };
}

/// What the derives' generated code uses. Not public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::domain::aggregate::{decode_snapshot_state, encode_snapshot_state};
    pub use crate::domain::event::decode_through_steps;
    pub use crate::domain::personal::{
        ApplyForgotten, DataSubject, Forgotten, ForgottenEvent, ForgottenRecord, NotPersonal,
        SubjectId, forgotten_cannot_be_stored, forgotten_record,
    };
    pub use crate::process::ReactForgotten;
    pub use crate::projection::HandleForgotten;
    pub use crate::registry::{
        AggregateRegistration, EventRegistration, PersonalData, UpcastKind, UpcastStep,
    };
    pub use crate::schema::{DataShape, FieldShape};
    pub use core::convert::From;
    pub use core::option::Option;
    pub use core::result::Result;
    pub use eventsource_schema::fingerprint;
    pub use inventory;
    pub use serde;
    pub use serde_json;
    pub use std::boxed::Box;
    pub use std::vec;
    pub use std::vec::Vec;

    /// Compares two strings in a const context (for the derives' compile-time name checks).
    pub const fn str_eq(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// Whether a record stored under `stored` is the event named `name` or renamed from one of
    /// `aliases` (the decode dispatch of the event enums).
    pub fn stored_as(stored: &str, name: &str, aliases: &[&str]) -> bool {
        stored == name || aliases.contains(&stored)
    }

    /// A stored name that two events of one listing both claim through an alias: one's name in
    /// the other's aliases, or an alias both list. Equal names are checked on their own.
    pub const fn shared_alias<'a>(
        a: &'a str,
        a_aliases: &'a [&'a str],
        b: &'a str,
        b_aliases: &'a [&'a str],
    ) -> Option<&'a str> {
        let mut i = 0;
        while i < a_aliases.len() {
            if str_eq(a_aliases[i], b) {
                return Some(b);
            }
            let mut j = 0;
            while j < b_aliases.len() {
                if str_eq(a_aliases[i], b_aliases[j]) {
                    return Some(a_aliases[i]);
                }
                j += 1;
            }
            i += 1;
        }
        let mut j = 0;
        while j < b_aliases.len() {
            if str_eq(b_aliases[j], a) {
                return Some(a);
            }
            j += 1;
        }
        None
    }

    /// A message assembled in a const context, for the derives' compile-time checks: a const
    /// panic takes one `&str` argument and no formatting, so a message that names a value known
    /// only to the compiler (an event's stored name) is copied into a fixed buffer piece by
    /// piece. A message longer than the buffer is cut at a character boundary.
    #[derive(Debug)]
    pub struct ConstMessage {
        buf: [u8; 1024],
        len: usize,
    }

    impl ConstMessage {
        /// An empty message.
        pub const EMPTY: Self = ConstMessage {
            buf: [0; 1024],
            len: 0,
        };

        /// The message with `piece` appended.
        pub const fn push(mut self, piece: &str) -> Self {
            let piece = piece.as_bytes();
            let mut i = 0;
            while i < piece.len() && self.len < self.buf.len() {
                self.buf[self.len] = piece[i];
                self.len += 1;
                i += 1;
            }
            self
        }

        /// The message so far.
        pub const fn as_str(&self) -> &str {
            let (written, _) = self.buf.split_at(self.len);
            match core::str::from_utf8(written) {
                Ok(message) => message,
                Err(cut) => match core::str::from_utf8(written.split_at(cut.valid_up_to()).0) {
                    Ok(message) => message,
                    Err(_) => "",
                },
            }
        }
    }

    /// Splits a decoded record into its event and the rest, which `Recorded::map` puts a
    /// variant's payload back into (the dispatch of the projection and process derives). Every
    /// field is named, so a field added to `Recorded` is carried over or fails to compile here.
    pub fn split_recorded<E>(recorded: crate::Recorded<E>) -> (E, crate::Recorded<()>) {
        let crate::Recorded {
            event,
            id,
            stream_id,
            category,
            version,
            position,
            stored_schema_version,
            metadata,
            recorded_at,
        } = recorded;
        let rest = crate::Recorded {
            event: (),
            id,
            stream_id,
            category,
            version,
            position,
            stored_schema_version,
            metadata,
            recorded_at,
        };
        (event, rest)
    }

    /// Requires the event payload bounds at the span of the user's struct.
    pub const fn assert_payload<T: serde::Serialize + serde::de::DeserializeOwned>() {}

    /// Decodes a stored event as `E` and re-encodes it as JSON (for the registry).
    pub fn decode_json<E: crate::Event>(
        schema_version: u32,
        payload: &[u8],
    ) -> Result<serde_json::Value, crate::DecodeError> {
        let event = E::decode_stored(&crate::Json, schema_version, payload)?;
        crate::Payload::to_json(&event)
            .map_err(|e| crate::DecodeError::Payload(crate::CodecError::new("json", e)))
    }
}

/// The README's code blocks, compiled and run as doctests so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
