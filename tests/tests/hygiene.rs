//! The derives' output compiles under strict lints with the prelude's names shadowed, so it
//! never depends on what the user's module has in scope.
#![deny(warnings, unused_qualifications, missing_docs)]
#![allow(non_camel_case_types)]

use eventsource_core::process::{ProcessManager, ProcessWork, React};
use eventsource_core::projection::{Handle, HandlerError};
use eventsource_core::{
    Aggregate as _, Apply, EventEnum as _, Json, MemoryStore, Position, Recorded, Repository,
    StoredEvent, UpcastError, Uuid, id_from_name,
};
use serde::{Deserialize, Serialize};

// Shadow everything generated code might name unqualified.
/// Shadows `Result`.
#[derive(Debug)]
pub struct Result;
/// Shadows `Option`.
#[derive(Debug)]
pub struct Option;
/// Shadows `Ok`.
#[derive(Debug)]
pub struct Ok;
/// Shadows `Err`.
#[derive(Debug)]
pub struct Err;
/// Shadows `Some`.
#[derive(Debug)]
pub struct Some;
/// Shadows `None`.
#[derive(Debug)]
pub struct None;
/// Shadows `Vec`.
#[derive(Debug)]
pub struct Vec;
/// Shadows `Box`.
#[derive(Debug)]
pub struct Box;
/// Shadows `From`.
pub trait From {}
/// Shadows `core`, `std` and `serde_json` as module names.
pub mod serde_json {}

fn step(value: ::serde_json::Value) -> ::core::result::Result<::serde_json::Value, UpcastError> {
    ::core::result::Result::Ok(value)
}

/// Version 1 of `Renamed`.
#[derive(eventsource_core::Event, Serialize, Deserialize, Debug, Clone)]
#[event(name = "Renamed", version = 2, upcast(from = 1, with = step))]
pub struct RenamedV2 {
    /// The new name.
    pub name: String,
}

/// A typed step on top of a function step.
#[derive(eventsource_core::Event, Serialize, Deserialize, Debug, Clone)]
#[event(version = 3, upcast_from = RenamedV2)]
pub struct Renamed {
    /// The new name.
    pub name: String,
}

impl ::core::convert::From<RenamedV2> for Renamed {
    fn from(old: RenamedV2) -> Self {
        Renamed { name: old.name }
    }
}

/// A nested type stored in an event.
#[derive(eventsource_core::EventData, Serialize, Deserialize, Debug, Clone)]
pub enum Tag {
    /// A tag with a name.
    Named {
        /// The name.
        name: ::std::string::String,
    },
    /// No tag.
    Untagged,
}

/// An event holding the nested type.
#[derive(eventsource_core::Event, Serialize, Deserialize, Debug, Clone)]
pub struct Tagged {
    /// The tags.
    pub tags: ::std::vec::Vec<Tag>,
}

/// A second event.
#[derive(eventsource_core::Event, Serialize, Deserialize, Debug, Clone)]
pub struct Archived;

/// An aggregate.
#[derive(eventsource_core::Aggregate, Default, Debug)]
#[aggregate(events(Renamed, Archived))]
pub struct Document {
    name: String,
    archived: bool,
}

impl Apply<Renamed> for Document {
    fn apply(&mut self, event: &Renamed) {
        self.name.clone_from(&event.name);
    }
}

impl Apply<Archived> for Document {
    fn apply(&mut self, _: &Archived) {
        self.archived = true;
    }
}

/// A projection over both events, with a context of its own.
#[derive(eventsource_core::Projection, Default, Debug)]
#[projection(events(Renamed, Archived), context = Changes)]
pub struct Titles {
    titles: ::std::vec::Vec<::std::string::String>,
}

/// The projection's context.
#[derive(Default, Debug)]
pub struct Changes(u32);

impl Handle<Renamed, Changes> for Titles {
    async fn handle(
        &mut self,
        event: &Recorded<Renamed>,
        changes: &mut Changes,
    ) -> ::core::result::Result<(), HandlerError> {
        self.titles.push(event.event.name.clone());
        changes.0 += 1;
        ::core::result::Result::Ok(())
    }
}

impl Handle<Archived, Changes> for Titles {
    async fn handle(
        &mut self,
        _: &Recorded<Archived>,
        changes: &mut Changes,
    ) -> ::core::result::Result<(), HandlerError> {
        changes.0 += 1;
        ::core::result::Result::Ok(())
    }
}

/// A process over both events: a rename of a document archives its draft copy.
#[derive(eventsource_core::Process, Debug)]
#[process(name = "drafts", events(Renamed, Archived))]
pub struct Drafts;

/// The id of a document's draft copy.
fn draft_of(document: Uuid) -> Uuid {
    id_from_name("drafts", &document.to_string())
}

impl React<Renamed> for Drafts {
    async fn react(
        &mut self,
        event: &Recorded<Renamed>,
        work: &mut ProcessWork<'_>,
    ) -> ::core::result::Result<(), HandlerError> {
        let draft = work
            .load_or_default::<Document>(draft_of(event.stream_id))
            .await?;
        work.record(draft, Archived);
        ::core::result::Result::Ok(())
    }
}

impl React<Archived> for Drafts {
    async fn react(
        &mut self,
        _: &Recorded<Archived>,
        _: &mut ProcessWork<'_>,
    ) -> ::core::result::Result<(), HandlerError> {
        ::core::result::Result::Ok(())
    }
}

#[test]
fn generated_code_is_hygienic() {
    let event = DocumentEvent::decode(&Json, "Renamed", 1, br#"{"name":"draft"}"#).unwrap();
    let mut document = Document::default();
    document.apply_event(&event);
    document.apply_event(&DocumentEvent::Archived(Archived));
    assert_eq!(document.name, "draft");
    assert!(document.archived);
}

#[tokio::test]
async fn projection_code_is_hygienic() {
    use eventsource_core::Projection as _;
    assert_eq!(TitlesEvent::NAMES, ["Renamed", "Archived"]);
    let stored = StoredEvent {
        id: Uuid::nil(),
        stream_id: Uuid::nil(),
        category: "Document".into(),
        version: 1,
        name: "Renamed".into(),
        schema_version: 1,
        payload: br#"{"name":"draft"}"#.to_vec(),
        metadata: Default::default(),
        recorded_at: ::std::time::SystemTime::UNIX_EPOCH,
        position: Position::START,
    };
    let event =
        TitlesEvent::decode(&Json, &stored.name, stored.schema_version, &stored.payload).unwrap();
    let (mut titles, mut changes) = (Titles::default(), Changes::default());
    titles
        .project(Recorded::new(event, stored), &mut changes)
        .await
        .unwrap();
    assert_eq!(titles.titles, ["draft"]);
    assert_eq!(changes.0, 1);
}

#[tokio::test]
async fn process_code_is_hygienic() {
    use eventsource_core::Process as _;
    assert_eq!(DraftsEvent::NAMES, ["Renamed", "Archived"]);
    assert_eq!(Drafts::NAME, "drafts");
    let store = MemoryStore::new();
    let documents = Repository::<Document, _>::new(store.clone());
    let document = documents
        .create(Renamed {
            name: "draft".into(),
        })
        .await
        .unwrap();
    ProcessManager::new(store.clone(), Drafts)
        .catch_up()
        .await
        .unwrap();
    assert!(documents.get(draft_of(document)).await.unwrap().archived);
}
