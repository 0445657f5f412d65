//! # Evolving events and aggregates
//!
//! Stored events live forever; the structs that read them change. This guide takes each kind of
//! change in turn: the code before, the code after, and what the [schema lock](crate::schema)
//! says if you get it wrong. The same changes are tested against records stored as an older
//! release wrote them, on every store, in the workspace's `tests/tests/evolution.rs`; the compile
//! errors are pinned in `tests/ui/evolution/`.
//!
//! | change | what to write | if you don't |
//! |---|---|---|
//! | [add a field with a default](#add-a-field-with-serdedefault) | version 2 and a step that leaves the value as it is | the lock: "field `…` was added" |
//! | [add a field without a default](#add-a-field-without-a-default) | version 2, `upcast_from = V1`, `From` gives the value | the lock; without one, old records fail to decode |
//! | [remove a field](#remove-a-field) | version 2 and a step that drops it | the lock: "field `…` was removed" |
//! | [rename a field](#rename-a-field) | version 2 and a step that moves the value | the lock; without one, old records fail to decode |
//! | [change a field's type](#change-a-fields-type) | version 2, `upcast_from = V1`, `From` converts | the lock: "field `…` changed type" |
//! | [change a type stored inside an event](#change-a-type-stored-inside-an-event) | a new type for the new shape, held by the event's version 2, `From` converts | the lock, on the nested type: "`Opened.address.postcode: String -> u32`" |
//! | [rename an event](#rename-an-event) | `#[event(name = "New", aliases("Old"))]` | the lock check: "`Old` is locked … but no event type decodes that name" |
//! | [split an event](#split-an-event-in-two) | keep the old type listed; its `Apply` applies both halves | the same |
//! | [merge two events](#merge-two-events-into-one) | the survivor lists the other name in `aliases(...)` | the same |
//! | [retire an event](#retire-an-event) | keep the type listed; its `Apply` does nothing | the same |
//! | [change a snapshotted state](#change-the-state-of-a-snapshotted-aggregate) | nothing: old snapshots are ignored | — |
//!
//! The rule under all of them: **a stored (name, version) keeps its shape forever.** A change of
//! shape is a new version with an upcaster from the old one; a change of name keeps the old
//! name reachable. `events.lock` holds every locked shape, `#[derive(Event)]` refuses a type that
//! no longer matches its locked version, and a test calling
//! [`check_schema_lock!`](crate::check_schema_lock) reports what one expansion can't see: a
//! locked name or version that no type decodes any more.
//!
//! Upcasters come in two kinds. A **typed step**, `upcast_from = DepositedV1`, keeps the old
//! shape as a Rust type and converts with `From`; use it when the conversion needs logic. A
//! **function step**, `upcast(from = 1, with = f)`, works on the stored JSON value and needs no
//! old type; use it for moving keys around.
//!
//! ## Add a field with `#[serde(default)]`
//!
//! Before: `struct Noted { text: String }` (version 1). After: a `pinned` flag. A stored
//! version 1 has no `pinned`, and the default fills it in, so the step has nothing to do. Under
//! a lock the change still takes a version: the lock holds version 1 to the shape it had.
//!
//! ```
//! use eventsource_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//! use serde_json::Value;
//!
//! fn unchanged(v1: Value) -> Result<Value, UpcastError> { Ok(v1) }
//!
//! #[derive(Event, Serialize, Deserialize, Debug, PartialEq)]
//! #[event(version = 2, upcast(from = 1, with = unchanged))]
//! struct Noted {
//!     text: String,
//!     #[serde(default)]
//!     pinned: bool,
//! }
//!
//! let old = Noted::decode_stored(&Json, 1, br#"{"text":"milk"}"#).unwrap();
//! assert_eq!(old, Noted { text: "milk".into(), pinned: false });
//! ```
//!
//! Adding the field to version 1 in place, with version 1 locked:
//!
//! ```text
//! error: `Noted` no longer matches the locked shape of `Noted` version 1 in events.lock:
//!          - field `pinned` was added (`bool`)
//!        … make this one version 2 with an upcaster from it …
//! ```
//!
//! ## Add a field without a default
//!
//! The old records have no value for it, so the upcaster must choose one. Keep version 1 as a
//! type and convert:
//!
//! ```
//! use eventsource_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize)]
//! #[event(name = "Registered", version = 1)]
//! struct RegisteredV1 { email: String }                // before: unchanged, renamed in Rust only
//!
//! #[derive(Event, Serialize, Deserialize, Debug, PartialEq)]
//! #[event(version = 2, upcast_from = RegisteredV1)]
//! struct Registered { email: String, country: String }
//!
//! impl From<RegisteredV1> for Registered {
//!     fn from(v1: RegisteredV1) -> Self {
//!         Registered { email: v1.email, country: "unknown".into() }
//!     }
//! }
//!
//! let old = Registered::decode_stored(&Json, 1, br#"{"email":"ada@example.com"}"#).unwrap();
//! assert_eq!(old.country, "unknown");
//! ```
//!
//! Without a lock, adding `country` to version 1 in place compiles, and every stored
//! `Registered` then fails to decode (`missing field "country"`). With `events.lock` it is a
//! compile error on the struct ("field `country` was added"): lock your events.
//!
//! ## Remove a field
//!
//! serde skips unknown fields, so old records would decode; but a `#[serde(deny_unknown_fields)]`
//! type would not, and the lock holds version 1 to its shape either way. A function step drops
//! the field:
//!
//! ```
//! use eventsource_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//! use serde_json::Value;
//!
//! fn drop_symbol(mut v1: Value) -> Result<Value, UpcastError> {
//!     if let Some(fields) = v1.as_object_mut() { fields.remove("symbol"); }
//!     Ok(v1)
//! }
//!
//! #[derive(Event, Serialize, Deserialize, Debug, PartialEq)]
//! #[serde(deny_unknown_fields)]
//! #[event(version = 2, upcast(from = 1, with = drop_symbol))]
//! struct Priced { cents: u64 }                          // version 1 was { cents, symbol }
//!
//! let old = Priced::decode_stored(&Json, 1, br#"{"cents":250,"symbol":"EUR"}"#).unwrap();
//! assert_eq!(old, Priced { cents: 250 });
//! ```
//!
//! ## Rename a field
//!
//! A stored version 1 has the old key. Move it in a function step:
//!
//! ```
//! use eventsource_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//! use serde_json::Value;
//!
//! fn label_to_title(mut v1: Value) -> Result<Value, UpcastError> {
//!     let fields = v1.as_object_mut().ok_or_else(|| UpcastError::new("expected an object"))?;
//!     let label = fields.remove("label").ok_or_else(|| UpcastError::new("no `label`"))?;
//!     fields.insert("title".into(), label);
//!     Ok(v1)
//! }
//!
//! #[derive(Event, Serialize, Deserialize, Debug, PartialEq)]
//! #[event(version = 2, upcast(from = 1, with = label_to_title))]
//! struct Titled { title: String }                       // version 1 was { label }
//!
//! let old = Titled::decode_stored(&Json, 1, br#"{"label":"draft"}"#).unwrap();
//! assert_eq!(old, Titled { title: "draft".into() });
//! // A record the step can't read is a typed error naming the event and the step.
//! let error = Titled::decode_stored(&Json, 1, b"{}").unwrap_err();
//! assert!(error.to_string().contains("Titled"), "{error}");
//! ```
//!
//! (`#[serde(alias = "label")]` on the field would read old records too, but it changes the
//! field's serde attributes, so under the lock it is a new version all the same.)
//!
//! ## Change a field's type
//!
//! Keep the old type, convert in `From`:
//!
//! ```
//! use eventsource_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize)]
//! #[event(name = "Weighed", version = 1)]
//! struct WeighedV1 { grams: f64 }
//!
//! #[derive(Event, Serialize, Deserialize, Debug, PartialEq)]
//! #[event(version = 2, upcast_from = WeighedV1)]
//! struct Weighed { milligrams: u64 }
//!
//! impl From<WeighedV1> for Weighed {
//!     fn from(v1: WeighedV1) -> Self {
//!         Weighed { milligrams: (v1.grams * 1000.0).round() as u64 }
//!     }
//! }
//!
//! let old = Weighed::decode_stored(&Json, 1, br#"{"grams":12.5}"#).unwrap();
//! assert_eq!(old, Weighed { milligrams: 12_500 });
//! ```
//!
//! Retyping version 1 in place, with version 1 locked:
//!
//! ```text
//! error: `Weighed` no longer matches the locked shape of `Weighed` version 1 in events.lock:
//!          - field `grams` changed type from `f64` to `u64`
//!        Events already stored at version 1 have the locked shape: read with another one, they may fail to decode or decode wrong.
//! ```
//!
//! ## Change a type stored inside an event
//!
//! A struct or enum stored inside an event derives [`EventData`](crate::EventData), so its shape
//! is locked with the events that hold it (a type from another crate is marked
//! `#[event(opaque)]` and locked by its name). Change it in place and the build fails on the
//! type, with the path to the change in every event that stores it
//! (`` `Opened.address.postcode: String -> u32` (`Opened` version 1) ``), and on the event. A
//! nested type has no version of its own: keep it as it is locked, put the new shape in a new
//! type, and hold that in the event's next version, with an upcaster from the one that holds
//! the old type (pinned by `tests/ui/lock/nested_*`).
//!
//! ```
//! use eventsource_core::prelude::*;
//! use eventsource_core::EventData;
//! use serde::{Deserialize, Serialize};
//!
//! // As locked: stored inside `Opened` version 1.
//! #[derive(EventData, Serialize, Deserialize, Debug, PartialEq)]
//! struct Address { street: String, postcode: String }
//!
//! #[derive(Event, Serialize, Deserialize)]
//! #[event(name = "Opened", version = 1)]
//! struct OpenedV1 { address: Address }
//!
//! // The new shape: a new type, held by version 2.
//! #[derive(EventData, Serialize, Deserialize, Debug, PartialEq)]
//! struct PostalAddress { street: String, postcode: u32 }
//!
//! #[derive(Event, Serialize, Deserialize, Debug, PartialEq)]
//! #[event(version = 2, upcast_from = OpenedV1)]
//! struct Opened { address: PostalAddress }
//!
//! impl From<OpenedV1> for Opened {
//!     fn from(old: OpenedV1) -> Self {
//!         let postcode = old.address.postcode.trim().parse().unwrap_or(0);
//!         Opened { address: PostalAddress { street: old.address.street, postcode } }
//!     }
//! }
//!
//! let stored = br#"{"address":{"street":"1 Main St","postcode":" 12345"}}"#;
//! let opened = Opened::decode_stored(&Json, 1, stored).unwrap();
//! assert_eq!(opened.address, PostalAddress { street: "1 Main St".into(), postcode: 12345 });
//! ```
//!
//! ## Rename an event
//!
//! An event's stored name is how its records are found: every record of it carries the name,
//! and the aggregate's event enum dispatches on it. Renaming the type changes the name (it
//! defaults to the type's), and then the old records no longer decode:
//!
//! ```text
//! Error::Decode { event: "Deposited", source: unknown event name `Deposited`; known names: Credited, … }
//! ```
//!
//! Either keep the stored name, `#[event(name = "Deposited")] struct Credited`, or move to the
//! new one and list the old one in `aliases(...)`: records stored as `"Deposited"` at version N
//! then decode as `Credited` version N, through its chain, and new ones are written as
//! `"Credited"`. A rename that also changes the shape is a version step like any other:
//!
//! ```
//! use eventsource_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//! use serde_json::Value;
//!
//! // Before: `struct Deposited { amount: u64 }`, whole euros, stored as "Deposited" version 1.
//! fn euros_to_cents(mut v1: Value) -> Result<Value, UpcastError> {
//!     let fields = v1.as_object_mut().ok_or_else(|| UpcastError::new("expected an object"))?;
//!     let euros = fields.remove("amount").and_then(|a| a.as_u64())
//!         .ok_or_else(|| UpcastError::new("no whole `amount`"))?;
//!     fields.insert("cents".into(), (euros * 100).into());
//!     Ok(v1)
//! }
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
//! #[event(name = "Credited", version = 2, aliases("Deposited"), upcast(from = 1, with = euros_to_cents))]
//! struct Credited { cents: u64 }
//!
//! #[derive(Aggregate, Default)]
//! #[aggregate(events(Credited))]
//! struct Purse { cents: u64 }
//!
//! impl Apply<Credited> for Purse {
//!     fn apply(&mut self, e: &Credited) { self.cents += e.cents; }
//! }
//!
//! let old = PurseEvent::decode(&Json, "Deposited", 1, br#"{"amount":3}"#).unwrap();
//! let new = PurseEvent::decode(&Json, "Credited", 2, br#"{"cents":25}"#).unwrap();
//! assert!(matches!(old, PurseEvent::Credited(Credited { cents: 300 })));
//! assert!(matches!(new, PurseEvent::Credited(Credited { cents: 25 })));
//! assert_eq!(Credited::ALIASES, ["Deposited"]);
//! ```
//!
//! What keeps it safe:
//! - the lock checks `Credited` against the locked shape of `"Deposited"` at the same version,
//!   as well as its own: a stored `"Deposited"` version 1 decodes as `Credited` version 1;
//! - an alias that claims another listed event's name is a compile error naming both:
//!
//!   ```text
//!   error[E0080]: evaluation panicked: `Deposited` and `Credited` both decode records stored as
//!   "Deposited" (one's name is the other's alias, or both list it in `aliases(...)`), so
//!   `Account` could not tell them apart when replaying: …
//!   ```
//! - [`registry::validate`](crate::registry::validate) reports an alias that another type writes
//!   or aliases too, in any crate;
//! - the lock check counts a locked name reached through an alias as reachable, and reports a
//!   locked name that nothing decodes: rename without an alias and the test that calls
//!   [`check_schema_lock!`](crate::check_schema_lock) fails with
//!
//!   ```text
//!   - `Deposited` is locked (so events may be stored under it) but no event type decodes that
//!     name any more: if the type was renamed, keep the stored name with
//!     `#[event(name = "Deposited")]` or list it in `#[event(aliases("Deposited"))]`; …
//!   ```
//!
//! ## Split an event in two
//!
//! An upcaster turns one record into one event, never two. Keep the old event as a type,
//! listed in the aggregate so its records still replay, and let its `Apply` apply both halves.
//! Commands write only the new events from now on.
//!
//! ```
//! use eventsource_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! /// Retired: stored by older releases, no longer written.
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! struct Moved { street: String, city: String }
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! struct StreetChanged { street: String }
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! struct CityChanged { city: String }
//!
//! #[derive(Aggregate, Default, Debug, PartialEq)]
//! #[aggregate(events(Moved, StreetChanged, CityChanged))]
//! struct Customer { street: String, city: String }
//!
//! impl Apply<Moved> for Customer {
//!     fn apply(&mut self, e: &Moved) {
//!         self.apply(&StreetChanged { street: e.street.clone() });
//!         self.apply(&CityChanged { city: e.city.clone() });
//!     }
//! }
//! impl Apply<StreetChanged> for Customer {
//!     fn apply(&mut self, e: &StreetChanged) { self.street = e.street.clone(); }
//! }
//! impl Apply<CityChanged> for Customer {
//!     fn apply(&mut self, e: &CityChanged) { self.city = e.city.clone(); }
//! }
//!
//! let mut customer = Customer::default();
//! customer.apply(&Moved { street: "1 Main St".into(), city: "Oslo".into() });
//! customer.apply(&StreetChanged { street: "2 High St".into() });
//! assert_eq!(customer, Customer { street: "2 High St".into(), city: "Oslo".into() });
//! ```
//!
//! ## Merge two events into one
//!
//! When two stored events came to mean the same thing and have the same shape at the same
//! version, one type takes over both names:
//!
//! ```
//! use eventsource_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! // Before: `struct Liked { by: String }` and `struct Starred { by: String }`.
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! #[event(aliases("Liked", "Starred"))]
//! struct Endorsed { by: String }
//!
//! #[derive(Aggregate, Default)]
//! #[aggregate(events(Endorsed))]
//! struct Post { endorsed_by: Vec<String> }
//!
//! impl Apply<Endorsed> for Post {
//!     fn apply(&mut self, e: &Endorsed) { self.endorsed_by.push(e.by.clone()); }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use eventsource_core::{AppendBatch, NewEvent};
//! let store = MemoryStore::new();
//! let old = |name: &str, by: &str| NewEvent {                  // as the older release wrote them
//!     id: Uuid::now_v7(),
//!     name: name.into(),
//!     schema_version: 1,
//!     payload: format!(r#"{{"by":"{by}"}}"#).into_bytes(),
//!     metadata: Default::default(),
//! };
//! let id = Uuid::now_v7();
//! store.append(AppendBatch::single(id, 0, vec![old("Liked", "ada"), old("Starred", "bob")])).await?;
//! let posts = Repository::<Post, _>::new(store);
//! assert_eq!(posts.get(id).await?.endorsed_by, ["ada", "bob"]);
//! # Ok::<_, eventsource_core::Error>(()) }).unwrap();
//! ```
//!
//! When the two differ (say `Deposited` and `Withdrawn` become one `BalanceChanged { delta }`),
//! no alias can tell a stored record which sign it has: keep both old types listed, as
//! [retired](#retire-an-event) events whose `Apply` does what the new event's would.
//!
//! ## Retire an event
//!
//! Commands stop writing it, but streams still hold it. Keep the type and keep it listed; its
//! `Apply` becomes a no-op (or applies what it still means):
//!
//! ```
//! use eventsource_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! struct Enrolled { course: String }
//!
//! /// Retired: "on hold" is no longer a state. Kept so stored records replay.
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! struct PutOnHold {}
//!
//! #[derive(Aggregate, Default)]
//! #[aggregate(events(Enrolled, PutOnHold))]
//! struct Student { courses: Vec<String> }
//!
//! impl Apply<Enrolled> for Student {
//!     fn apply(&mut self, e: &Enrolled) { self.courses.push(e.course.clone()); }
//! }
//! impl Apply<PutOnHold> for Student {
//!     fn apply(&mut self, _: &PutOnHold) {}
//! }
//!
//! assert!(StudentEvent::decode(&Json, "PutOnHold", 1, b"{}").is_ok());
//! ```
//!
//! If it has a successor, make the successor decode the old name instead (`aliases(...)`, as
//! above). Delete the type outright and a stream holding it no longer loads
//! (`Error::Decode` naming the stream, the version and `unknown event name `PutOnHold``); the
//! lock check says so first, naming the locked event that no type decodes any more.
//!
//! ## Change the state of a snapshotted aggregate
//!
//! Nothing to write. With `#[aggregate(snapshot)]` the derive fingerprints the state's shape
//! (its fields, their types and serde attributes, and the events it lists). A snapshot taken of
//! another shape has another fingerprint, so a load ignores it and replays from the events, then
//! stores a fresh one; a snapshot that doesn't decode is ignored the same way. Neither is an
//! error. When an `Apply` body changes what the state means without changing its shape, raise
//! `snapshot_version = N` to retire the old snapshots by hand.
//!
//! ```
//! use eventsource_core::prelude::*;
//! use eventsource_core::{AppendBatch, NewEvent, Snapshot};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! struct Topped { cents: u64 }
//!
//! // Before: `struct Card { balance: u64 }` in whole euros, snapshotted.
//! #[derive(Aggregate, Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
//! #[aggregate(events(Topped), snapshot)]
//! struct Card { cents: u64, top_ups: u32 }
//!
//! impl Apply<Topped> for Card {
//!     fn apply(&mut self, e: &Topped) { self.cents += e.cents; self.top_ups += 1; }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let id = Uuid::now_v7();
//! let topped = NewEvent {
//!     id: Uuid::now_v7(),
//!     name: "Topped".into(),
//!     schema_version: 1,
//!     payload: br#"{"cents":350}"#.to_vec(),
//!     metadata: Default::default(),
//! };
//! store.append(AppendBatch::single(id, 0, vec![topped])).await?;
//! store.save_snapshot(Snapshot {                               // the old release's snapshot
//!     stream_id: id,
//!     version: 1,
//!     aggregate: "Card".into(),
//!     fingerprint: 0x0123_4567_89ab_cdef,
//!     state: br#"{"balance":3}"#.to_vec(),
//!     recorded_at: std::time::SystemTime::now(),
//! }).await?;
//! let cards = Repository::<Card, _>::new(store);
//! assert_eq!(cards.get(id).await?.state(), &Card { cents: 350, top_ups: 1 });
//! # Ok::<_, eventsource_core::Error>(()) }).unwrap();
//! ```
