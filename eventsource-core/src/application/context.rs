//! The command context: who asked for a command and what it belongs to, stored as metadata
//! with every event the command writes.
//!
//! A [`CommandContext`] carries a correlation id (shared by everything one request or workflow
//! causes), a causation id (the message that caused this command), the actor (the user or
//! system acting) and free keys (a tenant, a request id, a client version). It is set once with
//! [`CommandContext::scope`] around a request's work, in a tokio task-local, so no function in
//! between has to pass it along; every command run inside the scope writes it with each event.
//!
//! # Stored keys
//!
//! Each event's [`Metadata`] gets:
//!
//! | key | value | when |
//! |---|---|---|
//! | [`CORRELATION_ID`] (`correlation_id`) | a UUID | always: a command outside any scope, or in a scope that set none, gets a fresh UUID v7, shared by all its events |
//! | [`CAUSATION_ID`] (`causation_id`) | a UUID | if set |
//! | [`ACTOR`] (`actor`) | any string | if set |
//! | your free keys | any string | if set |
//!
//! Those names, and [`EVENT_ID`] (kept for the events' own ids), are [`RESERVED`]: a free key
//! can't take them, so a free key can never overwrite the correlation id, say, by accident. A
//! free key is 1 to 64 ASCII letters, digits, `_`, `-` or `.`; anything else is a typed
//! [`MetadataError`] when you add it, never a panic.

use std::collections::BTreeMap;
use std::future::Future;

use uuid::Uuid;

use crate::persistence::record::Metadata;

/// The metadata key of the correlation id.
pub const CORRELATION_ID: &str = "correlation_id";
/// The metadata key of the causation id.
pub const CAUSATION_ID: &str = "causation_id";
/// The metadata key of the actor.
pub const ACTOR: &str = "actor";
/// Reserved: an event's own id is a field of its own ([`StoredEvent::id`](crate::StoredEvent::id),
/// [`Recorded::id`](crate::Recorded::id)); no free key may pose as it in metadata.
pub const EVENT_ID: &str = "event_id";
/// The keys a free key can't use.
pub const RESERVED: &[&str] = &[CORRELATION_ID, CAUSATION_ID, ACTOR, EVENT_ID];
/// The longest free key, in bytes.
pub const MAX_KEY_LEN: usize = 64;

tokio::task_local! {
    static CURRENT: CommandContext;
}

/// Why a metadata key or stored value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// A free key was empty.
    #[error("a metadata key can't be empty")]
    EmptyKey,
    /// A free key had a character other than ASCII letters, digits, `_`, `-` and `.`, or was
    /// longer than [`MAX_KEY_LEN`].
    #[error(
        "metadata key `{key}` is not allowed: use 1 to {MAX_KEY_LEN} ASCII letters, digits, `_`, `-` or `.`"
    )]
    InvalidKey {
        /// The key.
        key: String,
    },
    /// A free key used a reserved name.
    #[error(
        "metadata key `{key}` is reserved for the command context; set it with the context's own method (`with_correlation_id`, `with_causation_id`, `with_actor`) or choose another key"
    )]
    ReservedKey {
        /// The key.
        key: String,
    },
    /// A stored value under a reserved key does not parse (a correlation id that isn't a UUID).
    #[error("stored metadata `{key}` = `{value}` is not a UUID")]
    NotAUuid {
        /// The key.
        key: &'static str,
        /// The stored value.
        value: String,
    },
}

/// Metadata for the events of a command: correlation id, causation id, actor and free keys.
///
/// Set it once around a request with [`scope`](Self::scope); every command in the scope stores
/// it with each of its events, and [`Repository::history`](crate::Repository::history) returns
/// it.
///
/// ```
/// use eventsource_core::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// struct Renamed { name: String }
///
/// #[derive(Aggregate, Default, Debug)]
/// #[aggregate(events(Renamed))]
/// struct Profile { name: String }
///
/// impl Apply<Renamed> for Profile {
///     fn apply(&mut self, e: &Renamed) { self.name = e.name.clone(); }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let profiles = Repository::<Profile, _>::new(MemoryStore::new());
/// let request = Uuid::now_v7();
/// let context = CommandContext::new()
///     .with_correlation_id(request)
///     .with_actor("ada")
///     .with("tenant", "acme")?;           // a free key; a reserved or empty one is an error
///
/// let id = context.scope(async {
///     // Anything in here, however deep, runs in the context.
///     let id = profiles.create(Renamed { name: "first".into() }).await?;
///     profiles.execute(id, |_| Ok::<_, std::convert::Infallible>(Renamed { name: "second".into() })).await.unwrap();
///     Ok::<_, eventsource_core::Error>(id)
/// }).await?;
///
/// for recorded in profiles.history(id).await? {
///     assert_eq!(recorded.correlation_id(), Some(request));
///     assert_eq!(recorded.actor(), Some("ada"));
///     assert_eq!(recorded.metadata["tenant"], "acme");
/// }
/// assert!(CommandContext::new().with("actor", "mallory").is_err());   // reserved
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandContext {
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    actor: Option<String>,
    free: BTreeMap<String, String>,
}

impl CommandContext {
    /// An empty context: nothing set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The context for commands that an event causes (a process reacting to it): the event is
    /// the cause ([`causation_id`](Self::causation_id) is its id) and its correlation id
    /// carries on (the event's own id when it was written without one). Actor and free keys
    /// are not carried over: set them for whoever acts now.
    ///
    /// ```
    /// use eventsource_core::{CommandContext, Metadata, Uuid};
    ///
    /// let (cause, request) = (Uuid::now_v7(), Uuid::now_v7());
    /// let metadata = Metadata::from([("correlation_id".to_owned(), request.to_string())]);
    /// let context = CommandContext::caused_by(cause, &metadata);
    /// assert_eq!((context.causation_id(), context.correlation_id()), (Some(cause), Some(request)));
    /// ```
    pub fn caused_by(event_id: Uuid, metadata: &Metadata) -> Self {
        let correlation = metadata
            .get(CORRELATION_ID)
            .and_then(|value| Uuid::parse_str(value).ok())
            .unwrap_or(event_id);
        Self::new()
            .with_causation_id(event_id)
            .with_correlation_id(correlation)
    }

    /// The context of the enclosing [`scope`](Self::scope), if any.
    ///
    /// A task-local does not follow `tokio::spawn`: to keep the context in a spawned task, take
    /// it here and scope the task's future with it.
    pub fn current() -> Option<CommandContext> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets the causation id: the id of the message (a command, an event) that caused this one.
    pub fn with_causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Sets the actor: who is acting (a user name or id, a system's name). Any string.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Sets a free key (replacing its earlier value). Fails with a [`MetadataError`] if the key
    /// is empty, too long, has a character other than ASCII letters, digits, `_`, `-` and `.`,
    /// or is [`RESERVED`].
    pub fn with(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, MetadataError> {
        let key = key.into();
        validate_key(&key)?;
        self.free.insert(key, value.into());
        Ok(self)
    }

    /// The correlation id, if set.
    pub fn correlation_id(&self) -> Option<Uuid> {
        self.correlation_id
    }

    /// The causation id, if set.
    pub fn causation_id(&self) -> Option<Uuid> {
        self.causation_id
    }

    /// The actor, if set.
    pub fn actor(&self) -> Option<&str> {
        self.actor.as_deref()
    }

    /// A free key's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.free.get(key).map(String::as_str)
    }

    /// The free keys and their values.
    pub fn free_keys(&self) -> impl Iterator<Item = (&str, &str)> {
        self.free.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Runs `future` in this context: every command inside it, however deep, stores the context
    /// with its events.
    ///
    /// Inside another scope, what this context sets wins and what it leaves unset comes from the
    /// enclosing one (free keys merge the same way). If neither sets a correlation id, the
    /// scope gets a fresh UUID v7, so that all the commands of one request share it. To set the
    /// context for one call, scope just that call: `context.scope(repo.execute(id, decide))`.
    pub fn scope<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        let mut context = match Self::current() {
            Some(outer) => outer.overlaid_with(self),
            None => self,
        };
        context.correlation_id.get_or_insert_with(Uuid::now_v7);
        CURRENT.scope(context, future)
    }

    /// The context a command runs in: the enclosing scope's, with a fresh correlation id if it
    /// has none (so every event of the command shares one).
    pub(crate) fn for_command() -> Self {
        let mut context = Self::current().unwrap_or_default();
        context.correlation_id.get_or_insert_with(Uuid::now_v7);
        context
    }

    /// Runs `future` in exactly this context (no merging): the repository scopes a decision in
    /// its command's context, so commands the decision runs share the correlation id.
    pub(crate) fn enter<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, future)
    }

    /// `self` with everything `inner` sets put over it.
    fn overlaid_with(mut self, inner: Self) -> Self {
        self.correlation_id = inner.correlation_id.or(self.correlation_id);
        self.causation_id = inner.causation_id.or(self.causation_id);
        self.actor = inner.actor.or(self.actor);
        self.free.extend(inner.free);
        self
    }

    /// The metadata stored with each event: the reserved keys that are set, and the free keys.
    pub fn to_metadata(&self) -> Metadata {
        let mut metadata = self.free.clone();
        if let Some(id) = self.correlation_id {
            metadata.insert(CORRELATION_ID.to_owned(), id.to_string());
        }
        if let Some(id) = self.causation_id {
            metadata.insert(CAUSATION_ID.to_owned(), id.to_string());
        }
        if let Some(actor) = &self.actor {
            metadata.insert(ACTOR.to_owned(), actor.clone());
        }
        metadata
    }

    /// Reads a context back from stored metadata. Keys that aren't valid free keys (written by
    /// other tools) are skipped; a correlation or causation id that isn't a UUID is an error.
    pub fn from_metadata(metadata: &Metadata) -> Result<Self, MetadataError> {
        let mut context = Self::new();
        for (key, value) in metadata {
            match key.as_str() {
                CORRELATION_ID => context.correlation_id = Some(parse_uuid(CORRELATION_ID, value)?),
                CAUSATION_ID => context.causation_id = Some(parse_uuid(CAUSATION_ID, value)?),
                ACTOR => context.actor = Some(value.clone()),
                other if validate_key(other).is_ok() => {
                    context.free.insert(key.clone(), value.clone());
                }
                _ => {}
            }
        }
        Ok(context)
    }
}

fn parse_uuid(key: &'static str, value: &str) -> Result<Uuid, MetadataError> {
    Uuid::parse_str(value).map_err(|_| MetadataError::NotAUuid {
        key,
        value: value.to_owned(),
    })
}

fn validate_key(key: &str) -> Result<(), MetadataError> {
    if key.is_empty() {
        return Err(MetadataError::EmptyKey);
    }
    if RESERVED.contains(&key) {
        return Err(MetadataError::ReservedKey { key: key.into() });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if key.len() > MAX_KEY_LEN || !key.chars().all(allowed) {
        return Err(MetadataError::InvalidKey { key: key.into() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_causes_with_its_id_and_passes_its_correlation_on() {
        let (cause, request) = (Uuid::now_v7(), Uuid::now_v7());
        let mut metadata = CommandContext::new()
            .with_correlation_id(request)
            .with_actor("ada")
            .to_metadata();
        let caused = CommandContext::caused_by(cause, &metadata);
        assert_eq!(caused.causation_id(), Some(cause));
        assert_eq!(caused.correlation_id(), Some(request));
        assert_eq!(caused.actor(), None, "the actor is not carried over");
        metadata.clear();
        let first = CommandContext::caused_by(cause, &metadata);
        assert_eq!(
            first.correlation_id(),
            Some(cause),
            "a first event starts the correlation"
        );
    }

    #[test]
    fn bad_free_keys_are_typed_errors() {
        let context = CommandContext::new();
        assert_eq!(context.clone().with("", "x"), Err(MetadataError::EmptyKey));
        for reserved in RESERVED {
            assert!(matches!(
                context.clone().with(*reserved, "x"),
                Err(MetadataError::ReservedKey { .. })
            ));
        }
        for bad in ["has space", "ünïcode", &"k".repeat(MAX_KEY_LEN + 1)] {
            assert!(matches!(
                context.clone().with(bad, "x"),
                Err(MetadataError::InvalidKey { .. })
            ));
        }
        let ok = context.with("tenant.id-2_b", "acme").unwrap();
        assert_eq!(ok.get("tenant.id-2_b"), Some("acme"));
    }

    #[test]
    fn metadata_round_trips() {
        let context = CommandContext::new()
            .with_correlation_id(Uuid::now_v7())
            .with_causation_id(Uuid::now_v7())
            .with_actor("ada")
            .with("tenant", "acme")
            .unwrap();
        let metadata = context.to_metadata();
        assert_eq!(metadata[ACTOR], "ada");
        assert_eq!(CommandContext::from_metadata(&metadata), Ok(context));
        let mut bad = metadata.clone();
        bad.insert(CORRELATION_ID.into(), "nope".into());
        assert!(matches!(
            CommandContext::from_metadata(&bad),
            Err(MetadataError::NotAUuid {
                key: CORRELATION_ID,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn scopes_nest_field_by_field_and_always_have_a_correlation_id() {
        assert_eq!(CommandContext::current(), None);
        let outer = CommandContext::new()
            .with_actor("ada")
            .with("tenant", "acme")
            .unwrap();
        outer
            .scope(async {
                let seen = CommandContext::current().unwrap();
                let request = seen.correlation_id().expect("a scope gets one");
                assert_eq!(seen.actor(), Some("ada"));
                let inner = CommandContext::new()
                    .with_actor("bob")
                    .with("client", "cli")
                    .unwrap();
                inner
                    .scope(async {
                        let seen = CommandContext::current().unwrap();
                        assert_eq!(seen.actor(), Some("bob"));
                        assert_eq!(seen.correlation_id(), Some(request));
                        assert_eq!(seen.get("tenant"), Some("acme"));
                        assert_eq!(seen.get("client"), Some("cli"));
                    })
                    .await;
                assert_eq!(
                    CommandContext::for_command().correlation_id(),
                    Some(request)
                );
            })
            .await;
        // Outside a scope, each command gets its own correlation id.
        let a = CommandContext::for_command().correlation_id();
        let b = CommandContext::for_command().correlation_id();
        assert!(a.is_some() && b.is_some() && a != b);
    }
}
