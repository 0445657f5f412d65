//! Attribute parsing, one attribute at a time. Keys are named constants; a duplicate key is
//! reported on its second use and an unknown key lists the allowed ones with a suggestion.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned as _;
use syn::{LitInt, LitStr, Token};

use crate::ctxt::Ctxt;

pub(crate) const EVENT: &str = "event";
pub(crate) const AGGREGATE: &str = "aggregate";
pub(crate) const PROJECTION: &str = "projection";
pub(crate) const PROCESS: &str = "process";
pub(crate) const EVENT_DATA: &str = "event_data";

pub(crate) const NAME: &str = "name";
pub(crate) const VERSION: &str = "version";
pub(crate) const UPCAST_FROM: &str = "upcast_from";
pub(crate) const UPCAST: &str = "upcast";
pub(crate) const FROM: &str = "from";
pub(crate) const WITH: &str = "with";
pub(crate) const CRATE: &str = "crate";
pub(crate) const EVENTS: &str = "events";
pub(crate) const EVENT_ENUM: &str = "event_enum";
pub(crate) const SNAPSHOT: &str = "snapshot";
pub(crate) const SNAPSHOT_EVERY: &str = "snapshot_every";
pub(crate) const SNAPSHOT_VERSION: &str = "snapshot_version";
pub(crate) const CONTEXT: &str = "context";
pub(crate) const OPAQUE: &str = "opaque";
pub(crate) const ALIASES: &str = "aliases";
pub(crate) const PERSONAL: &str = "personal";
pub(crate) const SUBJECT: &str = "subject";

const EVENT_KEYS: &[&str] = &[NAME, VERSION, UPCAST_FROM, UPCAST, ALIASES, PERSONAL, CRATE];
const PERSONAL_KEYS: &[&str] = &[SUBJECT];
const UPCAST_KEYS: &[&str] = &[FROM, WITH];
const AGGREGATE_KEYS: &[&str] = &[
    EVENTS,
    NAME,
    EVENT_ENUM,
    SNAPSHOT,
    SNAPSHOT_EVERY,
    SNAPSHOT_VERSION,
    CRATE,
];
const PROJECTION_KEYS: &[&str] = &[EVENTS, NAME, CONTEXT, CRATE];
const PROCESS_KEYS: &[&str] = &[EVENTS, NAME, CRATE];
const EVENT_DATA_KEYS: &[&str] = &[NAME, CRATE];
const FIELD_KEYS: &[&str] = &[OPAQUE];

/// A parsed value with the span of the tokens it came from.
#[derive(Clone)]
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

/// One attribute key that may be given at most once.
struct Once<'c, T> {
    cx: &'c Ctxt,
    attr: &'static str,
    key: &'static str,
    value: Option<Spanned<T>>,
}

impl<'c, T> Once<'c, T> {
    fn new(cx: &'c Ctxt, attr: &'static str, key: &'static str) -> Self {
        Once {
            cx,
            attr,
            key,
            value: None,
        }
    }

    fn set(&mut self, span: Span, value: T) {
        if self.value.is_some() {
            self.cx.syn_error(syn::Error::new(
                span,
                format!(
                    "duplicate `{}` in `#[{}(...)]`: give it once",
                    self.key, self.attr
                ),
            ));
        } else {
            self.value = Some(Spanned { value, span });
        }
    }

    fn get(self) -> Option<Spanned<T>> {
        self.value
    }
}

/// `#[event(...)]`.
#[derive(Default)]
pub(crate) struct EventAttr {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) version: Option<Spanned<u32>>,
    pub(crate) upcast_from: Option<Spanned<syn::Path>>,
    pub(crate) upcasts: Vec<UpcastStep>,
    /// An `upcast(...)` was malformed (already reported): don't also report the chain's gaps.
    pub(crate) broken_step: bool,
    /// `aliases("Old", ...)`: names this event was stored under before it was renamed.
    pub(crate) aliases: Vec<Spanned<String>>,
    /// `personal` or `personal(subject = field)`: the event holds a person's data.
    pub(crate) personal: Option<Spanned<Personal>>,
    pub(crate) krate: Option<Spanned<syn::Path>>,
}

/// `personal(...)`: whose data the event holds.
#[derive(Clone)]
pub(crate) struct Personal {
    /// `subject = field`: the field with the person's id; `None`: the aggregate's stream.
    pub(crate) subject: Option<syn::Ident>,
}

/// `upcast(from = K, with = path)`.
pub(crate) struct UpcastStep {
    pub(crate) from: Spanned<u32>,
    pub(crate) with: syn::Path,
}

/// The keys `#[aggregate(...)]`, `#[projection(...)]` and `#[process(...)]` share: what lists
/// events.
pub(crate) struct ListingAttr {
    pub(crate) events: Option<Spanned<Vec<syn::Path>>>,
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) krate: Option<Spanned<syn::Path>>,
}

/// `#[aggregate(...)]`.
pub(crate) struct AggregateAttr {
    pub(crate) listing: ListingAttr,
    pub(crate) event_enum: Option<Spanned<syn::Ident>>,
    /// `snapshot`: the state is snapshotted (on request or by the repository's policy).
    pub(crate) snapshot: Option<Spanned<()>>,
    /// `snapshot_version = N`: raised by hand when an `Apply` body changes what the state holds,
    /// which the fingerprint can't see; old snapshots are then ignored.
    pub(crate) snapshot_version: Option<Spanned<u32>>,
    /// `snapshot_every = N` (N >= 1): snapshot when a save crosses a multiple of N events.
    pub(crate) snapshot_every: Option<Spanned<u64>>,
}

/// `#[projection(...)]`.
pub(crate) struct ProjectionAttr {
    pub(crate) listing: ListingAttr,
    /// `context = Type`: what the store hands the handlers.
    pub(crate) context: Option<Spanned<syn::Type>>,
}

/// `#[process(...)]`: the shared keys only.
pub(crate) struct ProcessAttr {
    pub(crate) listing: ListingAttr,
}

/// Reads the shared keys (`events(...)`, `name`, `crate`) of one listing attribute.
struct ListingKeys<'c> {
    cx: &'c Ctxt,
    events: Once<'c, Vec<syn::Path>>,
    name: Once<'c, String>,
    krate: Once<'c, syn::Path>,
}

impl<'c> ListingKeys<'c> {
    fn new(cx: &'c Ctxt, attr: &'static str) -> Self {
        ListingKeys {
            cx,
            events: Once::new(cx, attr, EVENTS),
            name: Once::new(cx, attr, NAME),
            krate: Once::new(cx, attr, CRATE),
        }
    }

    /// Reads `key` if it is a shared one; `false` leaves it to the caller.
    fn parse(&mut self, key: &str, meta: &ParseNestedMeta<'_>) -> syn::Result<bool> {
        match key {
            EVENTS => {
                let content;
                syn::parenthesized!(content in meta.input);
                let list = Punctuated::<syn::Path, Token![,]>::parse_terminated(&content)?;
                self.events
                    .set(meta.path.span(), list.into_iter().collect());
            }
            NAME => {
                if let Some(lit) = parse_name(self.cx, meta)? {
                    self.name.set(meta.path.span(), lit);
                }
            }
            CRATE => {
                let path = parse_crate(meta)?;
                self.krate.set(meta.path.span(), path);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn get(self) -> ListingAttr {
        ListingAttr {
            events: self.events.get(),
            name: self.name.get(),
            krate: self.krate.get(),
        }
    }
}

pub(crate) fn parse_event_attrs(cx: &Ctxt, attrs: &[syn::Attribute]) -> EventAttr {
    let mut name = Once::new(cx, EVENT, NAME);
    let mut version = Once::new(cx, EVENT, VERSION);
    let mut upcast_from = Once::new(cx, EVENT, UPCAST_FROM);
    let mut krate = Once::new(cx, EVENT, CRATE);
    let mut aliases = Once::new(cx, EVENT, ALIASES);
    let mut personal = Once::new(cx, EVENT, PERSONAL);
    let mut upcasts = Vec::new();
    let mut broken_step = false;
    for_each_key(cx, attrs, EVENT, |key, meta| {
        match key {
            NAME => {
                if let Some(lit) = parse_name(cx, meta)? {
                    name.set(meta.path.span(), lit);
                }
            }
            VERSION => {
                if let Some(v) = parse_version(cx, meta, VERSION)? {
                    version.set(meta.path.span(), v.value);
                }
            }
            UPCAST_FROM => {
                let path: syn::Path = meta.value()?.parse()?;
                let span = path.span();
                upcast_from.set(span, path);
            }
            UPCAST => match parse_upcast(cx, meta)? {
                Some(step) => upcasts.push(step),
                None => broken_step = true,
            },
            ALIASES => {
                let list = parse_aliases(cx, meta)?;
                aliases.set(meta.path.span(), list);
            }
            PERSONAL => {
                if let Some(value) = parse_personal(cx, meta)? {
                    personal.set(meta.path.span(), value);
                }
            }
            CRATE => {
                let path = parse_crate(meta)?;
                krate.set(meta.path.span(), path);
            }
            _ => unknown_key(cx, meta, EVENT, EVENT_KEYS)?,
        }
        Ok(())
    });
    EventAttr {
        name: name.get(),
        version: version.get(),
        upcast_from: upcast_from.get(),
        upcasts,
        broken_step,
        aliases: aliases.get().map(|a| a.value).unwrap_or_default(),
        personal: personal.get(),
        krate: krate.get(),
    }
}

/// `personal` (a flag: the person is the aggregate's stream) or `personal(subject = field)`.
fn parse_personal(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Personal>> {
    if meta.input.peek(Token![=]) {
        cx.error_spanned_by(
            &meta.path,
            "`personal` is a flag, or names the field with the person's id: write `personal` (the person is the aggregate) or `personal(subject = customer_id)`",
        );
        skip_value(meta)?;
        return Ok(None);
    }
    if !meta.input.peek(syn::token::Paren) {
        return Ok(Some(Personal { subject: None }));
    }
    let content;
    syn::parenthesized!(content in meta.input);
    let mut subject = Once::new(cx, PERSONAL, SUBJECT);
    let mut unknown = false;
    if !content.is_empty() {
        let parser = syn::meta::parser(|inner| {
            if inner.path.is_ident(SUBJECT) {
                let field: syn::Ident = inner.value()?.parse()?;
                subject.set(field.span(), field);
                Ok(())
            } else {
                unknown = true;
                unknown_key(cx, &inner, PERSONAL, PERSONAL_KEYS)
            }
        });
        syn::parse::Parser::parse2(parser, content.parse::<proc_macro2::TokenStream>()?)?;
    }
    match subject.get() {
        Some(field) => Ok(Some(Personal {
            subject: Some(field.value),
        })),
        // The unknown key was reported, with a suggestion.
        None if unknown => Ok(None),
        None => {
            cx.error_spanned_by(
                &meta.path,
                "`personal()` names no subject: write `personal` (the person is the aggregate) or `personal(subject = customer_id)`",
            );
            Ok(None)
        }
    }
}

/// `#[event_data(...)]` on a nested type.
pub(crate) struct EventDataAttr {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) krate: Option<Spanned<syn::Path>>,
}

pub(crate) fn parse_event_data_attrs(cx: &Ctxt, attrs: &[syn::Attribute]) -> EventDataAttr {
    let mut name = Once::new(cx, EVENT_DATA, NAME);
    let mut krate = Once::new(cx, EVENT_DATA, CRATE);
    for_each_key(cx, attrs, EVENT_DATA, |key, meta| {
        match key {
            NAME => {
                if let Some(lit) = parse_name(cx, meta)? {
                    name.set(meta.path.span(), lit);
                }
            }
            CRATE => {
                let path = parse_crate(meta)?;
                krate.set(meta.path.span(), path);
            }
            OPAQUE => {
                cx.error_spanned_by(
                    &meta.path,
                    format!(
                        "`opaque` goes on a field, not on the type: `#[{EVENT_DATA}(opaque)] field: OtherCrateType` locks that field by its type as written. `#[{EVENT_DATA}(...)]` on the type takes {}",
                        key_list(EVENT_DATA_KEYS)
                    ),
                );
                skip_value(meta)?;
            }
            _ => unknown_key(cx, meta, EVENT_DATA, EVENT_DATA_KEYS)?,
        }
        Ok(())
    });
    EventDataAttr {
        name: name.get(),
        krate: krate.get(),
    }
}

/// `#[event(opaque)]` / `#[event_data(opaque)]` on a field (`attr` says which): the field is
/// locked by its type as written. Returns the span of `opaque` if given.
pub(crate) fn parse_field_attrs(
    cx: &Ctxt,
    attrs: &[syn::Attribute],
    attr: &'static str,
) -> Option<Spanned<()>> {
    let mut opaque = Once::new(cx, attr, OPAQUE);
    for_each_key(cx, attrs, attr, |key, meta| {
        match key {
            OPAQUE => {
                if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
                    cx.error_spanned_by(
                        &meta.path,
                        "`opaque` is a flag and takes no value: write `opaque` to lock the field by its type as written",
                    );
                    skip_value(meta)?;
                }
                opaque.set(meta.path.span(), ());
            }
            _ => {
                let key = meta
                    .path
                    .get_ident()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                cx.error_spanned_by(
                    &meta.path,
                    format!(
                        "unknown key `{key}` in `#[{attr}(...)]` on a field: a field takes only {}, which locks it by its type as written (for a type from another crate, which can't derive `EventData`)",
                        key_list(FIELD_KEYS)
                    ),
                );
                skip_value(meta)?;
            }
        }
        Ok(())
    });
    opaque.get()
}

pub(crate) fn parse_aggregate_attrs(cx: &Ctxt, attrs: &[syn::Attribute]) -> AggregateAttr {
    let mut event_enum = Once::new(cx, AGGREGATE, EVENT_ENUM);
    let mut snapshot = Once::new(cx, AGGREGATE, SNAPSHOT);
    let mut snapshot_every = Once::new(cx, AGGREGATE, SNAPSHOT_EVERY);
    let mut snapshot_version = Once::new(cx, AGGREGATE, SNAPSHOT_VERSION);
    let listing = parse_listing(cx, attrs, AGGREGATE, |key, meta| {
        match key {
            EVENT_ENUM => {
                let ident: syn::Ident = meta.value()?.parse()?;
                event_enum.set(ident.span(), ident);
            }
            SNAPSHOT => {
                if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
                    cx.error_spanned_by(
                        &meta.path,
                        "`snapshot` is a flag and takes no value: write `snapshot` to keep snapshots (taken on request or by the repository's policy), or `snapshot_every = N` to take one every N events",
                    );
                    skip_value(meta)?;
                }
                snapshot.set(meta.path.span(), ());
            }
            SNAPSHOT_EVERY => {
                if let Some(every) = parse_snapshot_every(cx, meta)? {
                    snapshot_every.set(meta.path.span(), every);
                }
            }
            SNAPSHOT_VERSION => {
                if let Some(version) = parse_version(cx, meta, SNAPSHOT_VERSION)? {
                    snapshot_version.set(meta.path.span(), version.value);
                }
            }
            _ => unknown_key(cx, meta, AGGREGATE, AGGREGATE_KEYS)?,
        }
        Ok(())
    });
    AggregateAttr {
        listing,
        event_enum: event_enum.get(),
        snapshot: snapshot.get(),
        snapshot_every: snapshot_every.get(),
        snapshot_version: snapshot_version.get(),
    }
}

pub(crate) fn parse_projection_attrs(cx: &Ctxt, attrs: &[syn::Attribute]) -> ProjectionAttr {
    let mut context = Once::new(cx, PROJECTION, CONTEXT);
    let listing = parse_listing(cx, attrs, PROJECTION, |key, meta| match key {
        CONTEXT => {
            let ty: syn::Type = meta.value()?.parse()?;
            context.set(meta.path.span(), ty);
            Ok(())
        }
        _ => unknown_key(cx, meta, PROJECTION, PROJECTION_KEYS),
    });
    ProjectionAttr {
        listing,
        context: context.get(),
    }
}

pub(crate) fn parse_process_attrs(cx: &Ctxt, attrs: &[syn::Attribute]) -> ProcessAttr {
    let listing = parse_listing(cx, attrs, PROCESS, |key, meta| match key {
        // A projection's key: a likely slip when a projection is turned into a process, so say
        // why a process has none rather than only that the key is unknown.
        CONTEXT => {
            cx.error_spanned_by(
                &meta.path,
                format!(
                    "unknown key `context` in `#[process(...)]`: processes have no context; each reaction gets a `&mut ProcessWork` instead, to load aggregates from and record the events that follow on (appended with the process's position in one commit). Remove `context = ...`; `#[process(...)]` takes {}",
                    key_list(PROCESS_KEYS)
                ),
            );
            skip_value(meta)
        }
        _ => unknown_key(cx, meta, PROCESS, PROCESS_KEYS),
    });
    ProcessAttr { listing }
}

/// Reads every key of the `#[attr(...)]` attributes: the shared listing keys here, the others
/// with `rest`.
fn parse_listing(
    cx: &Ctxt,
    attrs: &[syn::Attribute],
    attr: &'static str,
    mut rest: impl FnMut(&str, &ParseNestedMeta<'_>) -> syn::Result<()>,
) -> ListingAttr {
    let mut listing = ListingKeys::new(cx, attr);
    for_each_key(cx, attrs, attr, |key, meta| {
        if listing.parse(key, meta)? {
            Ok(())
        } else {
            rest(key, meta)
        }
    });
    listing.get()
}

fn parse_snapshot_every(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<u64>> {
    let lit: LitInt = meta.value()?.parse()?;
    match lit.base10_parse::<u64>() {
        Ok(0) => {
            cx.error_spanned_by(
                &lit,
                "`snapshot_every = 0` would never take a snapshot: give the number of events between snapshots (at least 1), or write `snapshot` to take them only on request",
            );
            Ok(None)
        }
        Ok(every) => Ok(Some(every)),
        Err(_) => {
            cx.error_spanned_by(
                &lit,
                format!(
                    "`snapshot_every` must be a whole number of events from 1 to {}",
                    u64::MAX
                ),
            );
            Ok(None)
        }
    }
}

/// Calls `f` with each `key` (and its parser) of every `#[attr_name(...)]` attribute. A parse
/// error is recorded and the rest of that attribute skipped; other attributes are still read.
fn for_each_key(
    cx: &Ctxt,
    attrs: &[syn::Attribute],
    attr_name: &str,
    mut f: impl FnMut(&str, &ParseNestedMeta<'_>) -> syn::Result<()>,
) {
    for attr in attrs.iter().filter(|a| a.path().is_ident(attr_name)) {
        let result = attr.parse_nested_meta(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            f(&key, &meta)
        });
        if let Err(error) = result {
            cx.syn_error(error);
        }
    }
}

fn parse_name(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<String>> {
    let lit: LitStr = meta.value()?.parse()?;
    let value = lit.value();
    if value.trim().is_empty() {
        cx.error_spanned_by(
            &lit,
            "the stored name must not be empty: events and aggregates are found by it",
        );
        return Ok(None);
    }
    Ok(Some(value))
}

/// `aliases("Old", "Older")`: each a non-empty stored name, given once.
fn parse_aliases(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Vec<Spanned<String>>> {
    let content;
    syn::parenthesized!(content in meta.input);
    let list = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
    if list.is_empty() {
        cx.error_spanned_by(
            &meta.path,
            "`aliases()` is empty: list the names this event was stored under before it was renamed, e.g. `aliases(\"Deposited\")`, or remove it",
        );
    }
    let mut aliases: Vec<Spanned<String>> = Vec::new();
    for lit in list {
        let value = lit.value();
        if value.trim().is_empty() {
            cx.error_spanned_by(
                &lit,
                "an alias must not be empty: it is a name events were stored under",
            );
        } else if aliases.iter().any(|a| a.value == value) {
            cx.error_spanned_by(
                &lit,
                format!("`{value}` is listed twice in `aliases(...)`: list each old name once"),
            );
        } else {
            aliases.push(Spanned {
                value,
                span: lit.span(),
            });
        }
    }
    Ok(aliases)
}

fn parse_version(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: &str,
) -> syn::Result<Option<Spanned<u32>>> {
    let lit: LitInt = meta.value()?.parse()?;
    let value = match lit.base10_parse::<u32>() {
        Ok(value) => value,
        Err(_) => {
            cx.error_spanned_by(
                &lit,
                format!("`{key}` must be a whole number from 1 to {}", u32::MAX),
            );
            return Ok(None);
        }
    };
    if value == 0 {
        cx.error_spanned_by(
            &lit,
            format!(
                "`{key} = 0` is not a schema version: versions start at 1 (the first shape you store), and each change of shape raises it by one"
            ),
        );
        return Ok(None);
    }
    Ok(Some(Spanned {
        value,
        span: lit.span(),
    }))
}

fn parse_upcast(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<UpcastStep>> {
    let mut from = Once::new(cx, UPCAST, FROM);
    let mut with = Once::new(cx, UPCAST, WITH);
    meta.parse_nested_meta(|inner| {
        let key = inner
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match key.as_str() {
            FROM => {
                if let Some(v) = parse_version(cx, &inner, FROM)? {
                    from.set(inner.path.span(), v);
                }
            }
            WITH => {
                let path: syn::Path = inner.value()?.parse()?;
                with.set(inner.path.span(), path);
            }
            _ => unknown_key(cx, &inner, UPCAST, UPCAST_KEYS)?,
        }
        Ok(())
    })?;
    match (from.get(), with.get()) {
        (Some(from), Some(with)) => Ok(Some(UpcastStep {
            from: from.value,
            with: with.value,
        })),
        (from, with) => {
            let missing: Vec<&str> = [(FROM, from.is_none()), (WITH, with.is_none())]
                .into_iter()
                .filter(|(_, m)| *m)
                .map(|(k, _)| k)
                .collect();
            cx.error_spanned_by(
                &meta.path,
                format!(
                    "`upcast(...)` is missing `{}`: write `upcast(from = 1, with = path::to::fn)`, where the function turns the stored value of version `from` into the value of version `from + 1`",
                    missing.join("` and `")
                ),
            );
            Ok(None)
        }
    }
}

fn parse_crate(meta: &ParseNestedMeta<'_>) -> syn::Result<syn::Path> {
    let lit: LitStr = meta.value()?.parse()?;
    lit.parse()
}

/// Reports an unknown key, suggests the closest allowed one, and skips its value so the rest of
/// the attribute is still checked.
fn unknown_key(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    attr: &str,
    allowed: &[&str],
) -> syn::Result<()> {
    let key = meta
        .path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_else(|| {
            let path = &meta.path;
            quote::quote!(#path).to_string().replace(' ', "")
        });
    let list = key_list(allowed);
    let hint = match closest(&key, allowed) {
        Some(best) => format!("; did you mean `{best}`?"),
        None => String::new(),
    };
    cx.error_spanned_by(
        &meta.path,
        format!("unknown key `{key}` in `#[{attr}(...)]`: expected one of {list}{hint}"),
    );
    skip_value(meta)
}

/// The allowed keys as the messages show them: `` `events`, `name`, `crate` ``.
fn key_list(allowed: &[&str]) -> String {
    allowed
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Skips a key's value (`= expr` or `(...)`) so the rest of the attribute is still checked.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        let _: proc_macro2::TokenStream = content.parse()?;
    }
    Ok(())
}

/// The allowed key closest to `key` by edit distance, if it is close enough to be a typo.
fn closest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses_only() {
        assert_eq!(closest("verison", EVENT_KEYS), Some(VERSION));
        assert_eq!(closest("upcastfrom", EVENT_KEYS), Some(UPCAST_FROM));
        assert_eq!(closest("event", AGGREGATE_KEYS), Some(EVENTS));
        assert_eq!(closest("colour", EVENT_KEYS), None);
        assert_eq!(
            closest("snapshot_evry", AGGREGATE_KEYS),
            Some(SNAPSHOT_EVERY)
        );
        assert_eq!(closest("snapshots", AGGREGATE_KEYS), Some(SNAPSHOT));
        assert_eq!(closest("contxt", PROJECTION_KEYS), Some(CONTEXT));
        assert_eq!(closest("event", PROJECTION_KEYS), Some(EVENTS));
        assert_eq!(closest("nmae", PROCESS_KEYS), Some(NAME));
        assert_eq!(closest("context", PROCESS_KEYS), None);
    }
}
