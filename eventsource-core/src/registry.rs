//! The registry of every event and aggregate type linked into the program.
//!
//! Each `#[derive(Event)]` and `#[derive(Aggregate)]` submits a registration through
//! [`inventory`]. What one macro expansion can't see — two types claiming the same stored name and
//! version, an aggregate listing an event that no type registers — is checked here. Call
//! [`validate`] from a test so such a mistake fails the build's test run:
//!
//! ```rust,standalone_crate
//! eventsource_core::registry::validate().expect("event registry is consistent");
//! ```

use std::collections::BTreeMap;
use std::fmt;

use crate::error::DecodeError;

/// A registered event type (submitted by `#[derive(Event)]`).
#[derive(Debug)]
pub struct EventRegistration {
    /// The stored name.
    pub name: &'static str,
    /// The schema version this type writes.
    pub version: u32,
    /// The Rust type, as `module::Type`.
    pub type_name: &'static str,
    /// The oldest stored version the type's upcaster chain decodes.
    pub oldest_version: u32,
    /// Names the event was stored under before a rename (`#[event(aliases(...))]`): records
    /// stored under them decode through this type too.
    pub aliases: &'static [&'static str],
    /// The type's stored shape in the schema lock's canonical text (fields, types, serde
    /// attributes), as the derive saw it.
    pub shape: &'static str,
    /// One entry per line of `shape`: the fingerprint of the field's type and the nested types
    /// it reaches (see [`crate::schema::EventData`]).
    pub fields: &'static [crate::schema::FieldShape],
    /// Decodes a JSON payload stored at any version this type can upcast from, and returns it
    /// re-encoded as JSON at this type's version.
    pub decode_json: fn(u32, &[u8]) -> Result<serde_json::Value, DecodeError>,
    /// The upcaster steps this type declares, oldest first: one per
    /// `#[event(upcast(from = K, with = f))]`, or the single typed step of
    /// `#[event(upcast_from = Previous)]` (the steps below `Previous` are in its own
    /// registration). Empty for a first version. For tools such as the
    /// [event catalog](crate::catalog).
    pub upcasts: &'static [UpcastStep],
    /// Whether the event holds personal data (`#[event(personal)]`), and whose.
    pub personal: PersonalData,
    /// The type's doc comment, one line per `///` line (empty without one).
    pub doc: &'static str,
}

/// One step of an event's upcaster chain: records stored at version `from` become version `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpcastStep {
    /// The stored version the step reads.
    pub from: u32,
    /// The version it produces (`from + 1`).
    pub to: u32,
    /// A function over the stored JSON value, or a typed `From` conversion.
    pub kind: UpcastKind,
    /// The function's path as written (`deposited_v1_to_v2`) or, for a typed step, the previous
    /// version's type (`DepositedV2`).
    pub with: &'static str,
}

/// How an [`UpcastStep`] converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpcastKind {
    /// `#[event(upcast(from = K, with = f))]`: `f` rewrites the stored JSON value.
    Function,
    /// `#[event(upcast_from = Previous)]`: the record decodes as `Previous`, then `From` converts.
    // Not named `From`: a public item of that name makes rustc spell the trait
    // `std::convert::From` in every user's error messages (tests/ui/event/typed_step_without_from).
    Typed,
}

/// Whose personal data an event holds (`#[event(personal)]`): its payload is encrypted with that
/// person's own key and decodes as forgotten once they are forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonalData {
    /// No personal data.
    None,
    /// `#[event(personal)]`: the aggregate's stream is the data subject.
    OfStream,
    /// `#[event(personal(subject = field))]`: the subject's id is in this field.
    InField(&'static str),
}

/// A registered aggregate type (submitted by `#[derive(Aggregate)]`).
#[derive(Debug)]
pub struct AggregateRegistration {
    /// The aggregate's name.
    pub name: &'static str,
    /// The Rust type, as `module::Type`.
    pub type_name: &'static str,
    /// The stored names and versions of the events it lists.
    pub events: &'static [(&'static str, u32)],
}

inventory::collect!(EventRegistration);
inventory::collect!(AggregateRegistration);

/// Every registered event type.
pub fn events() -> impl Iterator<Item = &'static EventRegistration> {
    inventory::iter::<EventRegistration>.into_iter()
}

/// Every registered aggregate type.
pub fn aggregates() -> impl Iterator<Item = &'static AggregateRegistration> {
    inventory::iter::<AggregateRegistration>.into_iter()
}

/// The registered type that decodes events stored as `name`: the one that writes that name (the
/// newest version if several types share it, as a chain of versions does), or else the one
/// that lists it in `#[event(aliases(...))]`.
pub fn event(name: &str) -> Option<&'static EventRegistration> {
    events()
        .filter(|e| e.name == name)
        .max_by_key(|e| e.version)
        .or_else(|| {
            events()
                .filter(|e| e.aliases.contains(&name))
                .max_by_key(|e| e.version)
        })
}

/// Decodes a stored event to JSON at its newest version, by name, without knowing its aggregate.
/// For tools: log viewers, exporters, projections written against JSON.
pub fn decode_to_json(
    name: &str,
    schema_version: u32,
    payload: &[u8],
) -> Result<serde_json::Value, DecodeError> {
    match event(name) {
        Some(registration) => (registration.decode_json)(schema_version, payload),
        None => {
            let mut known: Vec<&'static str> = events().map(|e| e.name).collect();
            known.sort_unstable();
            known.dedup();
            Err(DecodeError::UnknownEvent {
                name: name.to_owned(),
                known,
            })
        }
    }
}

/// Decodes any stored event to JSON at its newest version, whatever its format, compression and
/// encryption (its envelope says; `codec` brings the key store for encrypted ones): what a log
/// viewer, an exporter or an admin tool shows. `Ok(None)` if its data subject was forgotten.
///
/// ```
/// use eventsource_core::persistence::codec::{Format, MemoryKeyStore, PayloadCodec};
/// use eventsource_core::prelude::*;
/// use eventsource_core::{StreamRange, registry};
/// use futures_util::TryStreamExt;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// #[event(name = "Shipped", version = 2, upcast(from = 1, with = add_carrier))]
/// struct Shipped { parcel: String, carrier: String }
///
/// fn add_carrier(mut v: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
///     v["carrier"] = "post".into();
///     Ok(v)
/// }
///
/// #[derive(Aggregate, Default, Debug)]
/// #[aggregate(events(Shipped))]
/// struct Parcel;
/// impl Apply<Shipped> for Parcel { fn apply(&mut self, _: &Shipped) {} }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let codec = PayloadCodec::new().format(Format::MessagePack).encrypt(MemoryKeyStore::new());
/// let parcels = Repository::<Parcel, _>::new(MemoryStore::new()).codec(codec.clone());
/// let id = parcels.create(Shipped { parcel: "p-1".into(), carrier: "van".into() }).await?;
/// let stored: Vec<_> = parcels.store().read_stream(id, StreamRange::all()).try_collect().await?;
/// assert_ne!(stored[0].payload.first(), Some(&b'{'));   // binary and encrypted
/// let json = registry::decode_stored_to_json(&codec, &stored[0]).await.unwrap();
/// assert_eq!(json, Some(serde_json::json!({"parcel": "p-1", "carrier": "van"})));
/// # Ok::<_, eventsource_core::Error>(()) }).unwrap();
/// ```
pub async fn decode_stored_to_json(
    codec: &crate::persistence::codec::PayloadCodec,
    stored: &crate::persistence::record::StoredEvent,
) -> Result<Option<serde_json::Value>, DecodeError> {
    let Some(value) = codec.to_json(stored).await? else {
        return Ok(None);
    };
    let bytes = serde_json::to_vec(&value)
        .map_err(|e| DecodeError::Payload(crate::error::CodecError::new("json", e)))?;
    decode_to_json(&stored.name, stored.schema_version, &bytes).map(Some)
}

/// One inconsistency in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// Several types write the same stored name and version: stored events would be ambiguous.
    DuplicateEvent {
        /// The stored name.
        name: &'static str,
        /// The schema version.
        version: u32,
        /// The types that claim it.
        types: Vec<&'static str>,
    },
    /// Several aggregate types share a name.
    DuplicateAggregate {
        /// The aggregate name.
        name: &'static str,
        /// The types that claim it.
        types: Vec<&'static str>,
    },
    /// A name in one type's `aliases(...)` is also written, or aliased, by other types: records
    /// stored under it would decode as whichever type a reader happens to list.
    AliasClaimed {
        /// The stored name.
        name: &'static str,
        /// The type that lists it as an alias.
        alias_of: &'static str,
        /// The other types that write it or list it as an alias too.
        others: Vec<&'static str>,
    },
    /// An aggregate lists an event that no registered type writes.
    UnregisteredEvent {
        /// The aggregate's type.
        aggregate: &'static str,
        /// The event's stored name.
        name: &'static str,
        /// The event's version.
        version: u32,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::DuplicateEvent {
                name,
                version,
                types,
            } => write!(
                f,
                "event `{name}` version {version} is written by {} types ({}); give each a distinct `#[event(name = \"…\")]` or version",
                types.len(),
                types.join(", ")
            ),
            Problem::DuplicateAggregate { name, types } => write!(
                f,
                "aggregate name `{name}` is used by {} types ({}); set `#[aggregate(name = \"…\")]` on all but one",
                types.len(),
                types.join(", ")
            ),
            Problem::AliasClaimed {
                name,
                alias_of,
                others,
            } => write!(
                f,
                "`{name}` is an alias of `{alias_of}` (records stored as `{name}` decode as it), but {} claim it too; a stored name belongs to one event: remove it from the others' `aliases(...)`, or rename the type that still writes it",
                others.join(", ")
            ),
            Problem::UnregisteredEvent {
                aggregate,
                name,
                version,
            } => write!(
                f,
                "aggregate `{aggregate}` lists event `{name}` version {version}, but no type registers it; derive `Event` for it"
            ),
        }
    }
}

/// Every problem found by [`validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the event registry has {} problem(s):", self.0.len())?;
        for problem in &self.0 {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Checks the whole registry and returns every problem at once.
pub fn validate() -> Result<(), Problems> {
    check(events(), aggregates())
}

fn check<'a>(
    events: impl Iterator<Item = &'a EventRegistration>,
    aggregates: impl Iterator<Item = &'a AggregateRegistration>,
) -> Result<(), Problems> {
    let mut problems = Vec::new();
    let mut by_key: BTreeMap<(&'static str, u32), Vec<&'static str>> = BTreeMap::new();
    // Who claims each stored name: the types that write it, and those that alias it.
    let mut writers: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    let mut aliased: BTreeMap<&'static str, Vec<(&'static str, &'static str)>> = BTreeMap::new();
    for event in events {
        let type_name = event.type_name;
        let written = writers.entry(event.name).or_default();
        if !written.contains(&type_name) {
            written.push(type_name);
        }
        for &alias in event.aliases {
            aliased
                .entry(alias)
                .or_default()
                .push((type_name, event.name));
        }
        by_key
            .entry((event.name, event.version))
            .or_default()
            .push(event.type_name);
    }
    for ((name, version), types) in &by_key {
        if types.len() > 1 {
            problems.push(Problem::DuplicateEvent {
                name,
                version: *version,
                types: types.clone(),
            });
        }
    }
    for (name, aliasing) in &aliased {
        for &(alias_of, writes) in aliasing {
            let mut others: Vec<&'static str> = writers.get(name).cloned().unwrap_or_default();
            // The versions of one chain (one stored name) may each repeat the alias.
            others.extend(
                aliasing
                    .iter()
                    .filter(|(_, other)| *other != writes)
                    .map(|(t, _)| *t),
            );
            if !others.is_empty() {
                problems.push(Problem::AliasClaimed {
                    name,
                    alias_of,
                    others,
                });
            }
        }
    }
    let mut aggregate_names: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    for aggregate in aggregates {
        aggregate_names
            .entry(aggregate.name)
            .or_default()
            .push(aggregate.type_name);
        for &(name, version) in aggregate.events {
            if !by_key.contains_key(&(name, version)) {
                problems.push(Problem::UnregisteredEvent {
                    aggregate: aggregate.type_name,
                    name,
                    version,
                });
            }
        }
    }
    for (name, types) in aggregate_names {
        if types.len() > 1 {
            problems.push(Problem::DuplicateAggregate { name, types });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problems(problems))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn no_decode(_: u32, _: &[u8]) -> Result<serde_json::Value, DecodeError> {
        Ok(serde_json::Value::Null)
    }

    /// A registration with no fields, aliases, upcasters or personal data (the catalog's tests
    /// build theirs from it too).
    pub(crate) fn event(
        name: &'static str,
        version: u32,
        type_name: &'static str,
    ) -> EventRegistration {
        EventRegistration {
            name,
            version,
            type_name,
            oldest_version: version,
            aliases: &[],
            shape: "",
            fields: &[],
            decode_json: no_decode,
            upcasts: &[],
            personal: PersonalData::None,
            doc: "",
        }
    }

    #[test]
    fn reports_every_problem_at_once() {
        let events = [
            event("Opened", 1, "a::Opened"),
            event("Opened", 1, "b::Opened"),
            event("Closed", 1, "a::Closed"),
        ];
        let aggregates = [
            AggregateRegistration {
                name: "Account",
                type_name: "a::Account",
                events: &[("Opened", 1), ("Frozen", 2)],
            },
            AggregateRegistration {
                name: "Account",
                type_name: "b::Account",
                events: &[("Closed", 1)],
            },
        ];
        let problems = check(events.iter(), aggregates.iter()).unwrap_err();
        assert_eq!(
            problems.0,
            vec![
                Problem::DuplicateEvent {
                    name: "Opened",
                    version: 1,
                    types: vec!["a::Opened", "b::Opened"]
                },
                Problem::UnregisteredEvent {
                    aggregate: "a::Account",
                    name: "Frozen",
                    version: 2
                },
                Problem::DuplicateAggregate {
                    name: "Account",
                    types: vec!["a::Account", "b::Account"]
                },
            ]
        );
        let text = problems.to_string();
        assert!(text.contains("3 problem(s)"), "{text}");
        assert!(text.contains("derive `Event`"), "{text}");
    }

    #[test]
    fn an_alias_claimed_by_another_type_is_reported() {
        let mut credited = event("Credited", 2, "a::Credited");
        credited.aliases = &["Deposited"];
        // Another version of the same chain may repeat the alias.
        let mut credited_v1 = event("Credited", 1, "a::CreditedV1");
        credited_v1.aliases = &["Deposited"];
        let events = [credited, credited_v1, event("Deposited", 1, "b::Deposited")];
        let problems = check(events.iter(), [].iter()).unwrap_err();
        let claimed = |alias_of| Problem::AliasClaimed {
            name: "Deposited",
            alias_of,
            others: vec!["b::Deposited"],
        };
        assert_eq!(
            problems.0,
            vec![claimed("a::Credited"), claimed("a::CreditedV1")]
        );
        assert!(
            problems
                .to_string()
                .contains("a stored name belongs to one event")
        );
    }

    #[test]
    fn a_consistent_registry_passes() {
        let events = [event("Opened", 1, "a::Opened")];
        let aggregates = [AggregateRegistration {
            name: "Account",
            type_name: "a::Account",
            events: &[("Opened", 1)],
        }];
        assert_eq!(check(events.iter(), aggregates.iter()), Ok(()));
    }
}
