//! The derive input turned into our own model, each node keeping the span it came from.

use proc_macro2::Span;
use quote::quote;
use syn::spanned::Spanned as _;

use crate::attr::{self, Spanned};
use crate::ctxt::Ctxt;
use crate::krate::Krate;

/// How a `#[derive(Event)]` type decodes payloads stored at older schema versions.
pub(crate) enum Chain {
    /// Version 1 (or a malformed chain already reported): only this version decodes.
    None,
    /// `upcast_from = Previous`: older versions decode as `Previous`, then `From` converts.
    Typed(syn::Path),
    /// `upcast(from = K, with = f)`: functions over the stored JSON value, one per version.
    Steps(Vec<Step>),
}

pub(crate) struct Step {
    pub(crate) from: Spanned<u32>,
    pub(crate) with: syn::Path,
}

/// A `#[derive(Event)]` input.
pub(crate) struct EventModel {
    pub(crate) ident: syn::Ident,
    pub(crate) krate: Krate,
    pub(crate) name: String,
    pub(crate) version: Spanned<u32>,
    pub(crate) chain: Chain,
    /// A problem with the chain was already reported while parsing.
    pub(crate) chain_reported: bool,
    /// Names records of this event were stored under before a rename (`aliases(...)`): they
    /// decode as this event, at their stored version, through its chain.
    pub(crate) aliases: Vec<Spanned<String>>,
    /// The stored shape, for the schema lock.
    pub(crate) stored: crate::shape::Stored,
    /// `personal(...)`: the event holds a person's data, encrypted with their own key.
    pub(crate) personal: Option<attr::Personal>,
    /// The type's doc comment (its `///` lines joined), for the registry and the event catalog.
    pub(crate) doc: String,
}

/// A `#[derive(EventData)]` input: a struct or an enum stored inside events.
pub(crate) struct DataModel {
    pub(crate) ident: syn::Ident,
    pub(crate) krate: Krate,
    /// The name its `type` block has in the lock.
    pub(crate) name: String,
    pub(crate) stored: crate::shape::Stored,
}

impl DataModel {
    pub(crate) fn from_input(cx: &Ctxt, input: &syn::DeriveInput) -> Self {
        if !input.generics.params.is_empty() {
            cx.error_spanned_by(
                &input.generics,
                "`#[derive(EventData)]` does not support generic parameters yet: the lock records one shape per nested type. Use a concrete type in the event (`struct Prices(Vec<Price>)`), or mark the field that holds it `#[event(opaque)]` to lock it by its type as written",
            );
        }
        if let syn::Data::Union(data) = &input.data {
            cx.error_spanned_by(
                data.union_token,
                "`#[derive(EventData)]` needs a struct or an enum that serde can encode, not a union",
            );
        }
        let attrs = attr::parse_event_data_attrs(cx, &input.attrs);
        DataModel {
            ident: input.ident.clone(),
            krate: Krate::resolve(cx, attrs.krate, &input.ident, "EventData", attr::EVENT_DATA),
            name: attrs
                .name
                .map_or_else(|| input.ident.to_string(), |n| n.value),
            stored: crate::shape::of(cx, input, attr::EVENT_DATA),
        }
    }
}

/// One event listed in `events(...)`.
pub(crate) struct EventRef {
    pub(crate) path: syn::Path,
    /// The enum variant: the path's last segment.
    pub(crate) variant: syn::Ident,
}

/// Which derive lists the events, and how its messages speak of it.
pub(crate) struct Kind {
    /// The derive's name: `Aggregate`.
    pub(crate) derive: &'static str,
    /// Its attribute: `aggregate`.
    pub(crate) attr: &'static str,
    /// What it stores, for "stored … are found by one name".
    pub(crate) plural: &'static str,
    /// What the struct holds, for "goes on a struct that holds …".
    pub(crate) holds: &'static str,
    /// What the events are to it, for "list the event types …".
    pub(crate) lists: &'static str,
    /// What it does with stored events, for "could not tell them apart when …".
    pub(crate) reads: &'static str,
    /// Commands build values of its event enum (an aggregate's): the enum gets `From` and
    /// `IntoEvents` per event and derives `Debug` and `Clone`. A projection's or a process's
    /// enum is only decoded, so it asks nothing more of the event types.
    pub(crate) built_by_commands: bool,
}

pub(crate) const AGGREGATE: Kind = Kind {
    derive: "Aggregate",
    attr: attr::AGGREGATE,
    plural: "aggregates",
    holds: "the aggregate's state",
    lists: "this aggregate records",
    reads: "replaying",
    built_by_commands: true,
};

pub(crate) const PROJECTION: Kind = Kind {
    derive: "Projection",
    attr: attr::PROJECTION,
    plural: "projections",
    holds: "the read model its handlers update",
    lists: "this projection handles (of any aggregates)",
    reads: "reading the log",
    built_by_commands: false,
};

pub(crate) const PROCESS: Kind = Kind {
    derive: "Process",
    attr: attr::PROCESS,
    plural: "processes",
    holds: "what its reactions share, or nothing at all: the state they act on lives in the aggregates they load, so a unit struct will do",
    lists: "this process reacts to (of any aggregates)",
    reads: "reading the log",
    built_by_commands: false,
};

/// What an aggregate, a projection and a process share: a concrete struct with a stored name
/// that lists its events, decoded through a generated enum.
pub(crate) struct Listing {
    pub(crate) kind: &'static Kind,
    pub(crate) ident: syn::Ident,
    pub(crate) vis: syn::Visibility,
    pub(crate) krate: Krate,
    pub(crate) name: String,
    pub(crate) event_enum: syn::Ident,
    pub(crate) events: Vec<EventRef>,
}

/// A `#[derive(Aggregate)]` input.
pub(crate) struct AggregateModel {
    pub(crate) listing: Listing,
    /// `Some` with `#[aggregate(snapshot)]` or `#[aggregate(snapshot_every = N)]`.
    pub(crate) snapshot: Option<SnapshotModel>,
}

/// A `#[derive(Projection)]` input.
pub(crate) struct ProjectionModel {
    pub(crate) listing: Listing,
    /// What the store hands the handlers: `context = Type`, or `()`.
    pub(crate) context: syn::Type,
}

/// A `#[derive(Process)]` input: the listing only (its reactions get a `ProcessWork`, not a
/// context of their own).
pub(crate) struct ProcessModel {
    pub(crate) listing: Listing,
}

/// How an aggregate keeps snapshots.
pub(crate) struct SnapshotModel {
    /// `snapshot_every = N`, if given.
    pub(crate) every: Option<u64>,
    /// The fingerprint of the state's shape (see `snapshot::fingerprint`).
    pub(crate) fingerprint: u64,
}

/// `plural` names what is stored: `events`, `processes`.
fn refuse_generics(cx: &Ctxt, input: &syn::DeriveInput, derive: &str, plural: &str) {
    if !input.generics.params.is_empty() {
        cx.error_spanned_by(
            &input.generics,
            format!("`#[derive({derive})]` does not support generic parameters: stored {plural} are found by one name, so the type must be concrete"),
        );
    }
}

impl EventModel {
    pub(crate) fn from_input(cx: &Ctxt, input: &syn::DeriveInput) -> Self {
        refuse_generics(cx, input, "Event", "events");
        if let syn::Data::Union(data) = &input.data {
            cx.error_spanned_by(
                data.union_token,
                "`#[derive(Event)]` needs a struct or an enum that serde can encode, not a union",
            );
        }
        let attrs = attr::parse_event_attrs(cx, &input.attrs);
        let mut chain_reported = attrs.broken_step;
        let version = attrs.version.unwrap_or(Spanned {
            value: 1,
            span: input.ident.span(),
        });
        let chain = match (attrs.upcast_from, attrs.upcasts.is_empty()) {
            (Some(from), true) => Chain::Typed(from.value),
            (None, false) => Chain::Steps(
                attrs
                    .upcasts
                    .into_iter()
                    .map(|s| Step {
                        from: s.from,
                        with: s.with,
                    })
                    .collect(),
            ),
            (None, true) => Chain::None,
            (Some(from), false) => {
                let path = &from.value;
                cx.error_spanned_by(
                    path,
                    format!(
                        "`upcast_from = {0}` and `upcast(...)` steps both given: with a typed step every older version decodes through `{0}`, so put the `upcast(...)` steps for its older versions on `{0}` instead",
                        quote!(#path).to_string().replace(' ', "")
                    ),
                );
                chain_reported = true;
                Chain::None
            }
        };
        let name = attrs
            .name
            .map_or_else(|| input.ident.to_string(), |n| n.value);
        let mut aliases = attrs.aliases;
        aliases.retain(|alias| {
            if alias.value != name {
                return true;
            }
            cx.syn_error(syn::Error::new(
                alias.span,
                format!(
                    "`{name}` is this event's own stored name, not an old one: `aliases(...)` lists the names it was stored under before a rename; remove `\"{name}\"`"
                ),
            ));
            false
        });
        let personal = attrs.personal.map(|p| p.value);
        if let Some(subject) = personal.as_ref().and_then(|p| p.subject.as_ref()) {
            check_subject_field(cx, input, subject);
        }
        EventModel {
            ident: input.ident.clone(),
            krate: Krate::resolve(cx, attrs.krate, &input.ident, "Event", "event"),
            personal,
            name,
            version,
            chain,
            chain_reported,
            stored: crate::shape::of(cx, input, attr::EVENT),
            aliases,
            doc: doc_text(&input.attrs),
        }
    }
}

/// The text of the `///` lines (`#[doc = "…"]`), one line each, with the single space after
/// `///` removed.
fn doc_text(attrs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value:
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(text),
                        ..
                    }),
                ..
            }) => {
                let line = text.value();
                Some(
                    line.strip_prefix(' ')
                        .unwrap_or(&line)
                        .trim_end()
                        .to_owned(),
                )
            }
            _ => None,
        })
        .collect();
    lines.join("\n").trim().to_owned()
}

/// `personal(subject = field)` must name a field of the struct (its type is checked by the
/// compiler: `SubjectId`).
fn check_subject_field(cx: &Ctxt, input: &syn::DeriveInput, subject: &syn::Ident) {
    let fields: Vec<String> = match &input.data {
        syn::Data::Struct(syn::DataStruct {
            fields: syn::Fields::Named(named),
            ..
        }) => named
            .named
            .iter()
            .filter_map(|f| f.ident.as_ref().map(ToString::to_string))
            .collect(),
        _ => {
            cx.error_spanned_by(
                subject,
                format!(
                    "`personal(subject = {subject})` needs a struct with named fields, one of them the person's id; on `{}`, write `personal` to make the aggregate the subject",
                    input.ident
                ),
            );
            return;
        }
    };
    if !fields.iter().any(|f| subject == f) {
        cx.error_spanned_by(
            subject,
            format!(
                "`personal(subject = {subject})`: `{}` has no field `{subject}`; its fields are {}",
                input.ident,
                fields
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
}

impl Listing {
    /// Checks the input is a concrete struct: run before parsing the attribute, so that a
    /// misplaced derive is reported first.
    fn check_item(cx: &Ctxt, input: &syn::DeriveInput, kind: &Kind) {
        refuse_generics(cx, input, kind.derive, kind.plural);
        if !matches!(input.data, syn::Data::Struct(_)) {
            cx.error_spanned_by(
                &input.ident,
                format!(
                    "`#[derive({})]` goes on a struct that holds {}",
                    kind.derive, kind.holds
                ),
            );
        }
    }

    /// The shared part of an aggregate's, a projection's or a process's input. `event_enum`
    /// overrides the default `{Type}Event`.
    fn from_input(
        cx: &Ctxt,
        input: &syn::DeriveInput,
        kind: &'static Kind,
        attrs: attr::ListingAttr,
        event_enum: Option<Spanned<syn::Ident>>,
    ) -> Self {
        let derive = kind.derive;
        let events = match attrs.events {
            Some(list) if list.value.is_empty() => {
                cx.syn_error(syn::Error::new(
                    list.span,
                    format!(
                        "`events()` is empty: list the event types {}, e.g. `events(Opened, Deposited)`",
                        kind.lists
                    ),
                ));
                Vec::new()
            }
            Some(list) => list
                .value
                .into_iter()
                .filter_map(|path| {
                    let variant = path.segments.last()?.ident.clone();
                    Some(EventRef { variant, path })
                })
                .collect(),
            None => {
                cx.error_spanned_by(
                    &input.ident,
                    format!(
                        "`#[derive({derive})]` needs the {}'s events: add `#[{}(events(FirstEvent, SecondEvent, ...))]`",
                        kind.attr, kind.attr
                    ),
                );
                Vec::new()
            }
        };
        Listing {
            kind,
            ident: input.ident.clone(),
            vis: input.vis.clone(),
            krate: Krate::resolve(cx, attrs.krate, &input.ident, kind.derive, kind.attr),
            name: attrs
                .name
                .map_or_else(|| input.ident.to_string(), |n| n.value),
            event_enum: event_enum.map_or_else(
                || syn::Ident::new(&format!("{}Event", input.ident), input.ident.span()),
                |e| e.value,
            ),
            events,
        }
    }
}

impl AggregateModel {
    pub(crate) fn from_input(cx: &Ctxt, input: &syn::DeriveInput) -> Self {
        Listing::check_item(cx, input, &AGGREGATE);
        let attrs = attr::parse_aggregate_attrs(cx, &input.attrs);
        let listing = Listing::from_input(cx, input, &AGGREGATE, attrs.listing, attrs.event_enum);
        let snapshot_version = attrs.snapshot_version.as_ref().map_or(1, |v| v.value);
        let snapshot = match (&attrs.snapshot, &attrs.snapshot_every) {
            (None, None) => {
                if let Some(version) = &attrs.snapshot_version {
                    cx.syn_error(syn::Error::new(
                        version.span,
                        "`snapshot_version` versions the aggregate's snapshots, but it keeps none: add `snapshot` or `snapshot_every = N`, or remove `snapshot_version`",
                    ));
                }
                None
            }
            (_, every) => Some(SnapshotModel {
                every: every.as_ref().map(|e| e.value),
                fingerprint: crate::snapshot::fingerprint(input, &listing.events, snapshot_version),
            }),
        };
        AggregateModel { listing, snapshot }
    }
}

impl ProjectionModel {
    pub(crate) fn from_input(cx: &Ctxt, input: &syn::DeriveInput) -> Self {
        Listing::check_item(cx, input, &PROJECTION);
        let attrs = attr::parse_projection_attrs(cx, &input.attrs);
        let listing = Listing::from_input(cx, input, &PROJECTION, attrs.listing, None);
        ProjectionModel {
            listing,
            context: attrs
                .context
                .map_or_else(|| syn::parse_quote!(()), |c| c.value),
        }
    }
}

impl ProcessModel {
    pub(crate) fn from_input(cx: &Ctxt, input: &syn::DeriveInput) -> Self {
        Listing::check_item(cx, input, &PROCESS);
        let attrs = attr::parse_process_attrs(cx, &input.attrs);
        ProcessModel {
            listing: Listing::from_input(cx, input, &PROCESS, attrs.listing, None),
        }
    }
}

/// The span of a path, for `quote_spanned!`.
pub(crate) fn span_of(path: &syn::Path) -> Span {
    path.span()
}
