//! Evolving events and aggregates: one test per kind of change, each replaying records stored as
//! an older release wrote them (raw payloads appended to a real store: a fresh memory store, a
//! SQLite file and, when reachable, PostgreSQL) through today's types.
//!
//! The guide that walks through the same changes is `eventsource_core::guide::evolution`.
//! A change that is wrong without a new version is a compile error under the schema lock; those
//! cases are trybuild cases in `tests/ui/evolution/` (run by `tests/ui.rs`).
//!
//! | change | what to write | covered by |
//! |---|---|---|
//! | add a field with `#[serde(default)]` | version 2, a function step (the default fills it) | [`add_a_field_with_a_default`]; in place under a lock: `ui/evolution/add_defaulted_field_in_place` |
//! | add a field without a default | version 2, `upcast_from = V1` with `From` giving the value | [`add_a_field_without_a_default`]; in place: `ui/evolution/add_field_in_place` |
//! | remove a field | version 2, a function step dropping it | [`remove_a_field`]; in place: `ui/evolution/remove_field_in_place` |
//! | rename a field | version 2, a function step moving the value | [`rename_a_field`]; in place: `ui/evolution/rename_field_in_place` |
//! | change a field's type | version 2, `upcast_from = V1` converting in `From` | [`change_a_field_type`]; in place: `ui/evolution/change_type_in_place` |
//! | rename an event | `#[event(name = "New", aliases("Old"))]` | [`rename_an_event`]; mistakes: `ui/evolution/alias_*` |
//! | split an event in two | keep the old type listed, its `Apply` applies both halves | [`split_an_event`] |
//! | merge two events into one | the survivor lists the other's name in `aliases(...)` | [`merge_two_events`] |
//! | retire an event type | keep the type listed, its `Apply` does nothing | [`retire_an_event`]; deleting it: [`the_lock_check_names_what_no_type_reaches`] |
//! | change the state of a snapshotted aggregate | nothing: the fingerprint changes, old snapshots are ignored | [`change_a_snapshotted_state`] |

use std::time::SystemTime;

use eventsource_core::prelude::*;
use eventsource_core::schema::{LockMode, check_lock};
use eventsource_core::{AppendBatch, DecodeError, Error, NewEvent, Snapshot, new_id};
use eventsource_schema::{LOCK_FILE, Lock, LockedEvent, Shape};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod support;
use support::stores::{Store, on_every_store};

/// A record as an older release wrote it.
fn record(name: &str, schema_version: u32, payload: &str) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        name: name.into(),
        schema_version,
        payload: payload.as_bytes().to_vec(),
        metadata: Default::default(),
    }
}

/// Appends `records` to a new stream, as an older release did, and returns its id.
async fn stored_by_an_older_release(store: &Store, records: Vec<NewEvent>) -> Uuid {
    let id = new_id();
    store
        .append(AppendBatch::single(id, 0, records))
        .await
        .expect("append the old records");
    id
}

/// Replays the stream `id` with today's `A`.
async fn replay<A: Aggregate + Clone>(store: &Store, id: Uuid) -> A {
    Repository::<A, _>::new(store.clone())
        .get(id)
        .await
        .unwrap_or_else(|e| panic!("replay {}: {e}", A::NAME))
        .state()
        .clone()
}

fn object(value: &mut Value) -> Result<&mut serde_json::Map<String, Value>, UpcastError> {
    value
        .as_object_mut()
        .ok_or_else(|| UpcastError::new("expected a JSON object"))
}

// ---------------------------------------------------------------------------------------------
// Add a field with `#[serde(default)]`

mod add_default {
    use super::*;

    /// Version 1 was `{ text }`. Version 2 adds `pinned`; a stored version 1 has none, and the
    /// default fills it in, so the step has nothing to do.
    #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[event(version = 2, upcast(from = 1, with = unchanged))]
    pub(crate) struct Noted {
        pub(crate) text: String,
        #[serde(default)]
        pub(crate) pinned: bool,
    }

    pub(crate) fn unchanged(v1: Value) -> Result<Value, UpcastError> {
        Ok(v1)
    }

    #[derive(Aggregate, Default, Debug, Clone, PartialEq)]
    #[aggregate(events(Noted))]
    pub(crate) struct Notebook {
        pub(crate) notes: Vec<(String, bool)>,
    }

    impl Apply<Noted> for Notebook {
        fn apply(&mut self, e: &Noted) {
            self.notes.push((e.text.clone(), e.pinned));
        }
    }
}

#[tokio::test]
async fn add_a_field_with_a_default() {
    use add_default::*;
    on_every_store("evolution_add_default", |store_name, store| async move {
        let id = stored_by_an_older_release(
            &store,
            vec![
                record("Noted", 1, r#"{"text":"milk"}"#),
                record("Noted", 2, r#"{"text":"eggs","pinned":true}"#),
            ],
        )
        .await;
        let notebook: Notebook = replay(&store, id).await;
        assert_eq!(
            notebook.notes,
            [("milk".into(), false), ("eggs".into(), true)],
            "{store_name}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Add a field without a default

mod add_field {
    use super::*;

    /// Version 1, kept as a type to decode stored version-1 records.
    #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    #[event(name = "Registered", version = 1)]
    pub(crate) struct RegisteredV1 {
        pub(crate) email: String,
    }

    /// Version 2 needs a country; a stored version 1 gets one from `From`.
    #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    #[event(version = 2, upcast_from = RegisteredV1)]
    pub(crate) struct Registered {
        pub(crate) email: String,
        pub(crate) country: String,
    }

    impl From<RegisteredV1> for Registered {
        fn from(v1: RegisteredV1) -> Self {
            Registered {
                email: v1.email,
                country: "unknown".into(),
            }
        }
    }

    #[derive(Aggregate, Default, Debug, Clone, PartialEq)]
    #[aggregate(events(Registered))]
    pub(crate) struct Member {
        pub(crate) email: String,
        pub(crate) country: String,
    }

    impl Apply<Registered> for Member {
        fn apply(&mut self, e: &Registered) {
            self.email = e.email.clone();
            self.country = e.country.clone();
        }
    }
}

#[tokio::test]
async fn add_a_field_without_a_default() {
    use add_field::*;
    on_every_store("evolution_add_field", |store_name, store| async move {
        let old = stored_by_an_older_release(
            &store,
            vec![record("Registered", 1, r#"{"email":"ada@example.com"}"#)],
        )
        .await;
        let new = stored_by_an_older_release(
            &store,
            vec![record(
                "Registered",
                2,
                r#"{"email":"bob@example.com","country":"NZ"}"#,
            )],
        )
        .await;
        let ada: Member = replay(&store, old).await;
        let bob: Member = replay(&store, new).await;
        assert_eq!(
            (ada.country.as_str(), bob.country.as_str()),
            ("unknown", "NZ"),
            "{store_name}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Remove a field

mod remove_field {
    use super::*;

    /// Version 1 was `{ cents, symbol }`; version 2 drops `symbol`. `deny_unknown_fields` makes
    /// a stored `symbol` an error, so the step must remove it (without it, serde would skip it,
    /// but say so with a step all the same: the lock only lets a shape change with a version).
    #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    #[serde(deny_unknown_fields)]
    #[event(version = 2, upcast(from = 1, with = drop_symbol))]
    pub(crate) struct Priced {
        pub(crate) cents: u64,
    }

    pub(crate) fn drop_symbol(mut v1: Value) -> Result<Value, UpcastError> {
        object(&mut v1)?.remove("symbol");
        Ok(v1)
    }

    #[derive(Aggregate, Default, Debug, Clone)]
    #[aggregate(events(Priced))]
    pub(crate) struct Product {
        pub(crate) prices: Vec<u64>,
    }

    impl Apply<Priced> for Product {
        fn apply(&mut self, e: &Priced) {
            self.prices.push(e.cents);
        }
    }
}

#[tokio::test]
async fn remove_a_field() {
    use remove_field::*;
    on_every_store("evolution_remove_field", |store_name, store| async move {
        let id = stored_by_an_older_release(
            &store,
            vec![
                record("Priced", 1, r#"{"cents":250,"symbol":"€"}"#),
                record("Priced", 2, r#"{"cents":300}"#),
            ],
        )
        .await;
        let product: Product = replay(&store, id).await;
        assert_eq!(product.prices, [250, 300], "{store_name}");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Rename a field

mod rename_field {
    use super::*;

    /// Version 1 called it `label`; version 2 calls it `title`.
    #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    #[event(version = 2, upcast(from = 1, with = label_to_title))]
    pub(crate) struct Titled {
        pub(crate) title: String,
    }

    pub(crate) fn label_to_title(mut v1: Value) -> Result<Value, UpcastError> {
        let fields = object(&mut v1)?;
        let label = fields
            .remove("label")
            .ok_or_else(|| UpcastError::new("version 1 has no `label`"))?;
        fields.insert("title".into(), label);
        Ok(v1)
    }

    #[derive(Aggregate, Default, Debug, Clone)]
    #[aggregate(events(Titled))]
    pub(crate) struct Document {
        pub(crate) titles: Vec<String>,
    }

    impl Apply<Titled> for Document {
        fn apply(&mut self, e: &Titled) {
            self.titles.push(e.title.clone());
        }
    }
}

#[tokio::test]
async fn rename_a_field() {
    use rename_field::*;
    on_every_store("evolution_rename_field", |store_name, store| async move {
        let id = stored_by_an_older_release(
            &store,
            vec![
                record("Titled", 1, r#"{"label":"draft"}"#),
                record("Titled", 2, r#"{"title":"final"}"#),
            ],
        )
        .await;
        let document: Document = replay(&store, id).await;
        assert_eq!(document.titles, ["draft", "final"], "{store_name}");

        // A version-1 record without the field fails with a typed error naming the record.
        let broken = stored_by_an_older_release(&store, vec![record("Titled", 1, "{}")]).await;
        let error = Repository::<Document, _>::new(store.clone())
            .get(broken)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, Error::Decode { stream, version: 1, event, schema_version: 1, source: DecodeError::Upcast { from: 1, to: 2, .. } }
                if *stream == broken && event == "Titled"),
            "{store_name}: {error}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Change a field's type

mod change_type {
    use super::*;

    /// Version 1 stored `grams` as a decimal.
    #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    #[event(name = "Weighed", version = 1)]
    pub(crate) struct WeighedV1 {
        pub(crate) grams: f64,
    }

    /// Version 2 stores whole milligrams.
    #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    #[event(version = 2, upcast_from = WeighedV1)]
    pub(crate) struct Weighed {
        pub(crate) milligrams: u64,
    }

    impl From<WeighedV1> for Weighed {
        fn from(v1: WeighedV1) -> Self {
            // Weights are never negative; a stored NaN or negative value saturates to 0.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let milligrams = (v1.grams * 1000.0).round() as u64;
            Weighed { milligrams }
        }
    }

    #[derive(Aggregate, Default, Debug, Clone)]
    #[aggregate(events(Weighed))]
    pub(crate) struct Parcel {
        pub(crate) milligrams: u64,
    }

    impl Apply<Weighed> for Parcel {
        fn apply(&mut self, e: &Weighed) {
            self.milligrams = e.milligrams;
        }
    }
}

#[tokio::test]
async fn change_a_field_type() {
    use change_type::*;
    on_every_store("evolution_change_type", |store_name, store| async move {
        let old =
            stored_by_an_older_release(&store, vec![record("Weighed", 1, r#"{"grams":12.5}"#)])
                .await;
        let new = stored_by_an_older_release(
            &store,
            vec![
                record("Weighed", 1, r#"{"grams":1.0}"#),
                record("Weighed", 2, r#"{"milligrams":7}"#),
            ],
        )
        .await;
        let old: Parcel = replay(&store, old).await;
        let new: Parcel = replay(&store, new).await;
        assert_eq!(
            (old.milligrams, new.milligrams),
            (12_500, 7),
            "{store_name}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Rename an event

mod rename_event {
    use super::*;

    /// Stored as "Deposited" (version 1, whole euros in `amount`) by older releases; renamed to
    /// "Credited" at version 2, which counts cents. Records stored as "Deposited" decode as
    /// `Credited` at their stored version, through the chain; new ones are written as
    /// "Credited".
    #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[event(
        name = "Credited",
        version = 2,
        aliases("Deposited"),
        upcast(from = 1, with = euros_to_cents)
    )]
    pub(crate) struct Credited {
        pub(crate) cents: u64,
    }

    pub(crate) fn euros_to_cents(mut v1: Value) -> Result<Value, UpcastError> {
        let fields = object(&mut v1)?;
        let euros = fields
            .remove("amount")
            .and_then(|a| a.as_u64())
            .ok_or_else(|| UpcastError::new("version 1 has no whole `amount`"))?;
        fields.insert("cents".into(), (euros * 100).into());
        Ok(v1)
    }

    #[derive(Aggregate, Default, Debug, Clone)]
    #[aggregate(events(Credited))]
    pub(crate) struct Purse {
        pub(crate) cents: u64,
    }

    impl Apply<Credited> for Purse {
        fn apply(&mut self, e: &Credited) {
            self.cents += e.cents;
        }
    }

    impl Purse {
        pub(crate) fn credit(&self, cents: u64) -> Result<Credited, std::convert::Infallible> {
            Ok(Credited { cents })
        }
    }
}

#[tokio::test]
async fn rename_an_event() {
    use rename_event::*;
    on_every_store("evolution_rename_event", |store_name, store| async move {
        let id = stored_by_an_older_release(
            &store,
            vec![
                record("Deposited", 1, r#"{"amount":3}"#),
                record("Credited", 2, r#"{"cents":25}"#),
            ],
        )
        .await;
        let purse = Repository::<Purse, _>::new(store.clone());
        assert_eq!(purse.get(id).await.unwrap().cents, 325, "{store_name}");

        // New events are written under the new name.
        purse.execute(id, |p| p.credit(5)).await.unwrap();
        let names: Vec<String> = read_names(&store, id).await;
        assert_eq!(names, ["Deposited", "Credited", "Credited"], "{store_name}");
        assert_eq!(purse.get(id).await.unwrap().cents, 330, "{store_name}");
    })
    .await;

    // Tools that decode by name find the event through its alias too.
    let json =
        eventsource_core::registry::decode_to_json("Deposited", 1, br#"{"amount":2}"#).unwrap();
    assert_eq!(json, serde_json::json!({ "cents": 200 }));
}

async fn read_names(store: &Store, id: Uuid) -> Vec<String> {
    use futures_util::TryStreamExt as _;
    store
        .read_stream(id, eventsource_core::StreamRange::all())
        .map_ok(|r| r.name)
        .try_collect()
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Split an event in two

mod split_event {
    use super::*;

    /// Retired: older releases stored a move as one event. Commands no longer write it; it stays
    /// listed so stored moves still replay, and its `Apply` applies both halves.
    #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    pub(crate) struct Moved {
        pub(crate) street: String,
        pub(crate) city: String,
    }

    #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    pub(crate) struct StreetChanged {
        pub(crate) street: String,
    }

    #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    pub(crate) struct CityChanged {
        pub(crate) city: String,
    }

    #[derive(Aggregate, Default, Debug, Clone, PartialEq)]
    #[aggregate(events(Moved, StreetChanged, CityChanged))]
    pub(crate) struct Customer {
        pub(crate) street: String,
        pub(crate) city: String,
    }

    impl Apply<Moved> for Customer {
        fn apply(&mut self, e: &Moved) {
            self.apply(&StreetChanged {
                street: e.street.clone(),
            });
            self.apply(&CityChanged {
                city: e.city.clone(),
            });
        }
    }

    impl Apply<StreetChanged> for Customer {
        fn apply(&mut self, e: &StreetChanged) {
            self.street = e.street.clone();
        }
    }

    impl Apply<CityChanged> for Customer {
        fn apply(&mut self, e: &CityChanged) {
            self.city = e.city.clone();
        }
    }
}

#[tokio::test]
async fn split_an_event() {
    use split_event::*;
    on_every_store("evolution_split", |store_name, store| async move {
        let id = stored_by_an_older_release(
            &store,
            vec![
                record("Moved", 1, r#"{"street":"1 Main St","city":"Oslo"}"#),
                record("StreetChanged", 1, r#"{"street":"2 High St"}"#),
            ],
        )
        .await;
        let customer: Customer = replay(&store, id).await;
        assert_eq!(
            customer,
            Customer {
                street: "2 High St".into(),
                city: "Oslo".into()
            },
            "{store_name}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Merge two events into one

mod merge_events {
    use super::*;

    /// Older releases stored "Liked" and "Starred", both `{ by }`, and they came to mean the
    /// same. `Endorsed` takes over both names: records stored under either decode as it.
    #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    #[event(aliases("Liked", "Starred"))]
    pub(crate) struct Endorsed {
        pub(crate) by: String,
    }

    #[derive(Aggregate, Default, Debug, Clone)]
    #[aggregate(events(Endorsed))]
    pub(crate) struct Post {
        pub(crate) endorsed_by: Vec<String>,
    }

    impl Apply<Endorsed> for Post {
        fn apply(&mut self, e: &Endorsed) {
            self.endorsed_by.push(e.by.clone());
        }
    }
}

#[tokio::test]
async fn merge_two_events() {
    use merge_events::*;
    on_every_store("evolution_merge", |store_name, store| async move {
        let id = stored_by_an_older_release(
            &store,
            vec![
                record("Liked", 1, r#"{"by":"ada"}"#),
                record("Starred", 1, r#"{"by":"bob"}"#),
                record("Endorsed", 1, r#"{"by":"cy"}"#),
            ],
        )
        .await;
        let post: Post = replay(&store, id).await;
        assert_eq!(post.endorsed_by, ["ada", "bob", "cy"], "{store_name}");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Retire an event type

mod retire_event {
    use super::*;

    #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    pub(crate) struct Enrolled {
        pub(crate) course: String,
    }

    /// Retired: "on hold" is no longer a state of an enrolment. The type stays listed so the
    /// streams that hold it still replay; it is applied as nothing.
    #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    pub(crate) struct PutOnHold {}

    #[derive(Aggregate, Default, Debug, Clone)]
    #[aggregate(events(Enrolled, PutOnHold))]
    pub(crate) struct Student {
        pub(crate) courses: Vec<String>,
    }

    impl Apply<Enrolled> for Student {
        fn apply(&mut self, e: &Enrolled) {
            self.courses.push(e.course.clone());
        }
    }

    impl Apply<PutOnHold> for Student {
        fn apply(&mut self, _: &PutOnHold) {}
    }

    /// The same aggregate had `PutOnHold` been deleted (named apart so the registry stays
    /// consistent in this test program).
    #[derive(Aggregate, Default, Debug, Clone)]
    #[aggregate(events(Enrolled), name = "StudentWithoutPutOnHold")]
    pub(crate) struct StudentWithoutPutOnHold {
        pub(crate) courses: Vec<String>,
    }

    impl Apply<Enrolled> for StudentWithoutPutOnHold {
        fn apply(&mut self, e: &Enrolled) {
            self.courses.push(e.course.clone());
        }
    }
}

#[tokio::test]
async fn retire_an_event() {
    use retire_event::*;
    on_every_store("evolution_retire", |store_name, store| async move {
        let id = stored_by_an_older_release(
            &store,
            vec![
                record("Enrolled", 1, r#"{"course":"maths"}"#),
                record("PutOnHold", 1, "{}"),
                record("Enrolled", 1, r#"{"course":"music"}"#),
            ],
        )
        .await;
        let student: Student = replay(&store, id).await;
        assert_eq!(student.courses, ["maths", "music"], "{store_name}");

        // Had the type been deleted, the stream would not replay: a typed error naming the
        // record. The schema lock check reports the deletion before that ships (see
        // `the_lock_check_names_what_no_type_reaches`).
        let error = Repository::<StudentWithoutPutOnHold, _>::new(store.clone())
            .get(id)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, Error::Decode { version: 2, event, source: DecodeError::UnknownEvent { .. }, .. } if event == "PutOnHold"),
            "{store_name}: {error}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The lock check: renamed events stay reachable, deleted ones are named

#[test]
fn the_lock_check_names_what_no_type_reaches() {
    eventsource_core::registry::validate().expect("the registry of this program is consistent");
    let dir = tempfile::tempdir().unwrap();
    let package = "evolution"; // this test program's crate: its types are `evolution::…`
    check_lock(dir.path(), package, LockMode::Write).unwrap();
    let path = dir.path().join(LOCK_FILE);
    let mut lock = Lock::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Older releases locked the names that are aliases today, and an event since deleted.
    for (name, type_name) in [
        ("Deposited", "old::Deposited"),
        ("Liked", "old::Liked"),
        ("Starred", "old::Starred"),
        ("Archived", "old::Archived"),
    ] {
        lock.insert(LockedEvent::new(name, 1, type_name, Shape::default()));
    }
    std::fs::write(&path, lock.render()).unwrap();

    let report = check_lock(dir.path(), package, LockMode::Check).unwrap_err();
    // The aliases reach their names; the deleted event is named, with what to do.
    assert_eq!(report.orphaned, ["Archived"], "{report}");
    assert!(report.unreachable.is_empty(), "{report}");
    let text = report.to_string();
    assert!(
        text.contains("`Archived` is locked (so events may be stored under it) but no event type decodes that name any more"),
        "{text}"
    );
    assert!(text.contains("aliases(\"Archived\")"), "{text}");
    assert!(text.contains("keep its type"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Change the state of a snapshotted aggregate

mod snapshot_shape {
    use super::*;

    #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    pub(crate) struct Topped {
        pub(crate) cents: u64,
    }

    /// Older releases kept `{ "balance": <whole euros> }`; the state is now cents and a count.
    /// A snapshot of the old shape has another fingerprint, so it is ignored, never decoded.
    #[derive(Aggregate, Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[aggregate(events(Topped), snapshot)]
    pub(crate) struct Card {
        pub(crate) cents: u64,
        pub(crate) top_ups: u32,
    }

    impl Apply<Topped> for Card {
        fn apply(&mut self, e: &Topped) {
            self.cents += e.cents;
            self.top_ups += 1;
        }
    }
}

#[tokio::test]
async fn change_a_snapshotted_state() {
    use snapshot_shape::*;
    let fingerprint = Card::SNAPSHOTS.expect("keeps snapshots").fingerprint;
    on_every_store("evolution_snapshot", |store_name, store| async move {
        let id = stored_by_an_older_release(
            &store,
            vec![
                record("Topped", 1, r#"{"cents":100}"#),
                record("Topped", 1, r#"{"cents":250}"#),
            ],
        )
        .await;
        // An old release's snapshot at version 2: another shape, another fingerprint. Its
        // state doesn't even decode as today's `Card`.
        let old_state = br#"{"balance":3}"#.to_vec();
        assert!(serde_json::from_slice::<Card>(&old_state).is_err());
        let stale = |fingerprint: u64| Snapshot {
            stream_id: id,
            version: 2,
            aggregate: "Card".into(),
            fingerprint,
            state: old_state.clone(),
            recorded_at: SystemTime::now(),
        };
        store
            .save_snapshot(stale(0x0123_4567_89ab_cdef))
            .await
            .unwrap();

        let cards = Repository::<Card, _>::new(store.clone());
        let card = cards.get(id).await.unwrap();
        let replayed = Card {
            cents: 350,
            top_ups: 2,
        };
        assert_eq!(card.state(), &replayed, "{store_name}");
        // The load replaced it with a snapshot of today's shape.
        let fresh = store.load_snapshot(id, None).await.unwrap().unwrap();
        assert_eq!(fresh.fingerprint, fingerprint, "{store_name}");
        assert_eq!(
            serde_json::from_slice::<Card>(&fresh.state).unwrap(),
            replayed
        );

        // Even a snapshot that claims today's fingerprint but doesn't decode is only ignored.
        store.save_snapshot(stale(fingerprint)).await.unwrap();
        assert_eq!(
            cards.get(id).await.unwrap().state(),
            &replayed,
            "{store_name}"
        );
    })
    .await;
}
