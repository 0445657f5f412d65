//! Derive macros for [`eventsource-core`](https://docs.rs/eventsource-core). Depend on
//! `eventsource-core` (which re-exports these behind its default `derive` feature) rather than on
//! this crate: the generated code refers to `eventsource-core` by the name your `Cargo.toml`
//! gives it (so `es = { package = "eventsource-core", ... }` works as is), or by the path in
//! `crate = "..."` when you reach it through a crate that re-exports it.
//!
//! The macros are a pipeline of small stages: [`attr`](crate) parses one attribute at a time,
//! `ast` builds the model, `check` runs the cross-cutting checks, and one module generates each
//! thing (`event`, `upcast`, `event_enum`, `apply`, `snapshot`, `project`, `process`,
//! `register`; `dispatch` is the record-to-handler dispatch `project` and `process` share).
//! Every error is collected and reported at once, on the tokens that caused it; after an error,
//! stand-in impls are emitted so one mistake doesn't cascade into many.

// The macro reports every problem as a compile error; it never unwraps.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

use proc_macro::TokenStream;
use quote::quote;

mod alias;
mod apply;
mod ast;
mod attr;
mod check;
mod ctxt;
mod dispatch;
mod event;
mod event_data;
mod event_enum;
mod krate;
mod lock;
mod process;
mod project;
mod register;
mod shape;
mod snapshot;
mod upcast;

/// Derives `eventsource_core::Event`: the stored name, the schema version, the versioned
/// decoder (upcaster chain) and a registry entry.
///
/// ```text
/// #[event(
///     name = "Deposited",                       // stored name; default: the type's name
///     version = 3,                              // schema version, from 1; default 1
///     upcast_from = DepositedV2,                // typed step: older versions decode as
///                                               //   DepositedV2, then `From` converts
///     upcast(from = 1, with = path::to::fn),    // or function steps over the stored JSON
///     aliases("Credited"),                      // names it was stored under before a rename:
///                                               //   such records decode as this event
///     crate = "my_reexport::eventsource_core",  // when eventsource is re-exported
/// )]
/// ```
///
/// Checked while compiling: the version is not 0; the upcaster chain covers every older version
/// exactly once; a typed step is the previous version of the same name; an alias is not the
/// event's own name (and, in an aggregate, claims no other listed event's name); the type is
/// `Serialize + DeserializeOwned`; and, when an `events.lock` is found beside the source file or
/// above it up to the crate root, that a locked version's shape (fields, types, serde attributes)
/// has not changed, under its name and under each alias (see `eventsource_core::schema`). See
/// `eventsource_core::Event` for a runnable example, and `eventsource_core::guide::evolution`
/// for each kind of change.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    let cx = ctxt::Ctxt::new();
    let mut model = ast::EventModel::from_input(&cx, &input);
    check::event(&cx, &mut model);
    let lock = match lock::find() {
        Some(path) => {
            alias::check_lock(&cx, &path, &model, &model.stored.shape);
            lock::check(
                &cx,
                &path,
                &model.ident,
                &model.name,
                model.version.value,
                &model.stored.shape,
            )
        }
        None => lock::EventLock::default(),
    };
    match cx.check() {
        Ok(()) => event::expand(&model, &lock).into(),
        Err(errors) => {
            let errors = errors.to_compile_error();
            // A generic type can't take the non-generic stand-in impl without more errors, and
            // without a path to `eventsource-core` a stand-in only adds "cannot find" errors.
            let fallback = if input.generics.params.is_empty() && model.krate.found {
                event::fallback(&model.ident, &model.krate)
            } else {
                proc_macro2::TokenStream::new()
            };
            quote!(#errors #fallback).into()
        }
    }
}

/// Derives `eventsource_core::EventData` for a struct or an enum stored inside events (`Address`
/// in `Opened`), so the schema lock sees inside it: its fingerprint covers its fields, their
/// serde attributes and, through their own `EventData`, everything they hold.
///
/// ```text
/// #[event_data(
///     name = "Address",                         // its `type` block in the lock; default: the type's name
///     crate = "my_reexport::eventsource_core",
/// )]
/// struct Address {
///     #[event_data(opaque)]                     // a type from another crate: locked as written
///     geo: other_crate::Point,
///     ...
/// }
/// ```
///
/// Checked while compiling: every field's type is `EventData` (or the field is `opaque`, or
/// `#[serde(skip)]`, or `#[serde(with = ...)]`); and, when an `events.lock` is found beside the
/// source file or above it up to the crate root, that the type's locked shape has not changed,
/// naming the stored events and paths that hold it.
#[proc_macro_derive(EventData, attributes(event_data))]
pub fn derive_event_data(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    let cx = ctxt::Ctxt::new();
    let model = ast::DataModel::from_input(&cx, &input);
    let track_lock = match lock::find() {
        Some(path) => lock::check_type(&cx, &path, &model),
        None => proc_macro2::TokenStream::new(),
    };
    match cx.check() {
        Ok(()) => event_data::expand(&model, track_lock).into(),
        Err(errors) => {
            let errors = errors.to_compile_error();
            let fallback = if input.generics.params.is_empty() && model.krate.found {
                event_data::fallback(&model.ident, &model.krate)
            } else {
                proc_macro2::TokenStream::new()
            };
            quote!(#errors #fallback).into()
        }
    }
}

/// Derives `eventsource_core::Aggregate`: the event enum (`{Type}Event` by default) with a
/// variant, a `From` impl and `IntoEvents` per event, encode/decode dispatch by stored name,
/// `apply` dispatch to your `Apply<E>` impls, and a registry entry.
///
/// ```text
/// #[aggregate(
///     events(Opened, Deposited, Withdrawn),   // required: the events, in any order
///     name = "BankAccount",                   // default: the type's name
///     event_enum = AccountEvent,              // default: `{Type}Event`
///     snapshot,                               // keep snapshots (on request / repository policy)
///     snapshot_every = 100,                   // and take one every 100 events (implies snapshot)
///     snapshot_version = 2,                   // raise when an `Apply` body changes (default 1)
///     crate = "my_reexport::eventsource_core",
/// )]
/// ```
///
/// Checked while compiling: each listed type is an `Event` with an `Apply` impl on the aggregate;
/// no two events share a stored name or a variant name; `snapshot_every` is at least 1; with
/// snapshots, the state is `Serialize + Deserialize`. The event types must implement `Debug`
/// and `Clone` (the enum derives both). See `eventsource_core::Aggregate`.
///
/// With snapshots the derive also writes a fingerprint of the state's shape (a hash of the
/// fields, their types and serde attributes, and the event list): a snapshot stored under
/// another shape is ignored and rebuilt from the events.
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(input: TokenStream) -> TokenStream {
    derive_listing(
        input,
        ast::AggregateModel::from_input,
        |model| &mut model.listing,
        |model| {
            let apply = apply::expand(model);
            let registration = register::aggregate(model);
            quote! {
                #apply
                const _: () = { #registration };
            }
        },
        |model| {
            let listing = &model.listing;
            apply::fallback(&listing.ident, &listing.event_enum, &listing.krate)
        },
    )
}

/// Derives `eventsource_core::Projection`: the event enum (`{Type}Event`) with a variant per
/// listed event and decode dispatch by stored name, and `project`, which hands each event to
/// your `Handle<E, C>` impl as a `Recorded<E>`.
///
/// ```text
/// #[projection(
///     events(Opened, Deposited, Withdrawn),   // required: the events handled, of any aggregates
///     name = "balances",                      // its tracking name in the store; default: the type's name
///     context = SqliteWork,                   // what the store hands the handlers; default `()`
///     crate = "my_reexport::eventsource_core",
/// )]
/// ```
///
/// Checked while compiling: each listed type is an `Event` with a `Handle<E, C>` impl on the
/// projection for the declared context `C`; no two events share a stored name or a variant
/// name. The event enum derives nothing, so the events need no more than `Event`. See
/// `eventsource_core::Projection` for a runnable example.
#[proc_macro_derive(Projection, attributes(projection))]
pub fn derive_projection(input: TokenStream) -> TokenStream {
    derive_listing(
        input,
        ast::ProjectionModel::from_input,
        |model| &mut model.listing,
        project::expand,
        project::fallback,
    )
}

/// Derives `eventsource_core::process::Process`: the event enum (`{Type}Event`) with a variant
/// per listed upstream event and decode dispatch by stored name, and `react`, which hands each
/// event to your `React<E>` impl as a `Recorded<E>`, with the batch's `ProcessWork` to load
/// aggregates from and record the events that follow on.
///
/// ```text
/// #[process(
///     events(Ordered, PaymentFailed),         // required: the events reacted to, of any aggregates
///     name = "invoicing",                     // its tracking name in the store and the `actor` of
///                                             //   the events it causes; default: the type's name
///     crate = "my_reexport::eventsource_core",
/// )]
/// ```
///
/// There is no `context`: every reaction gets a `ProcessWork`, and what it records is appended
/// with the process's position in one commit. Checked while compiling: each listed type is an
/// `Event` with a `React<E>` impl on the process; no two events share a stored name or a variant
/// name. The event enum derives nothing, so the events need no more than `Event`. See
/// `eventsource_core::process` for a runnable example.
#[proc_macro_derive(Process, attributes(process))]
pub fn derive_process(input: TokenStream) -> TokenStream {
    derive_listing(
        input,
        ast::ProcessModel::from_input,
        |model| &mut model.listing,
        process::expand,
        process::fallback,
    )
}

/// The pipeline of the derives that list events (`Aggregate`, `Projection`, `Process`): the
/// model, the checks, then the event enum and `expand`'s trait impls; after an error, the errors
/// with an empty enum and `stand_in`'s impls (when a stand-in fits the input) so nothing
/// cascades.
fn derive_listing<M>(
    input: TokenStream,
    from_input: fn(&ctxt::Ctxt, &syn::DeriveInput) -> M,
    listing: fn(&mut M) -> &mut ast::Listing,
    expand: fn(&M) -> proc_macro2::TokenStream,
    stand_in: fn(&M) -> proc_macro2::TokenStream,
) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    let cx = ctxt::Ctxt::new();
    let mut model = from_input(&cx, &input);
    check::listing(&cx, listing(&mut model));
    let result = cx.check();
    let listing = &*listing(&mut model);
    match result {
        Ok(()) => {
            let event_enum = event_enum::expand(listing);
            let impls = expand(&model);
            quote!(#event_enum #impls).into()
        }
        Err(errors) => {
            let errors = errors.to_compile_error();
            // Without a path to `eventsource-core`, stand-ins only add "cannot find" errors.
            if !listing.krate.found {
                return errors.into();
            }
            let event_enum = event_enum::fallback(listing);
            // A generic type or an enum can't take the stand-in impl without more errors.
            let fits =
                matches!(input.data, syn::Data::Struct(_)) && input.generics.params.is_empty();
            let impls = if fits {
                stand_in(&model)
            } else {
                proc_macro2::TokenStream::new()
            };
            quote!(#errors #event_enum #impls).into()
        }
    }
}
