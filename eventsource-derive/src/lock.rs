//! Reading the schema lock while compiling: a locked event version or a locked nested type
//! whose shape changed is a compile error on the type.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use eventsource_schema::{LOCK_FILE, Lock, LockedEvent, Shape};
use proc_macro2::{Span, TokenStream};
use quote::quote;

use crate::ast::DataModel;
use crate::ctxt::Ctxt;

/// The lock file that governs the type being derived: the nearest `events.lock` in the
/// directory of the source file or above it, up to the crate root.
pub(crate) fn find() -> Option<PathBuf> {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let manifest_dir = manifest_dir
        .as_deref()
        .and_then(|d| std::fs::canonicalize(d).ok());
    let source = proc_macro::Span::call_site()
        .local_file()
        .and_then(|f| std::fs::canonicalize(f).ok());
    let start = source
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .or_else(|| manifest_dir.clone())?;
    for dir in start.ancestors() {
        let candidate = dir.join(LOCK_FILE);
        if candidate.is_file() {
            return Some(candidate);
        }
        // Inside the crate, don't look past its root: a workspace's other crates have their own.
        if manifest_dir.as_deref() == Some(dir) {
            break;
        }
    }
    None
}

/// What the Event derive learnt from the lock.
#[derive(Default)]
pub(crate) struct EventLock {
    /// Tokens that make rustc rebuild when the lock changes.
    pub(crate) track: TokenStream,
    /// The locked version, when its fields as written still match: its fields' type
    /// fingerprints are then asserted by `event_data::fingerprint_checks`.
    pub(crate) locked: Option<LockedEvent>,
    /// The whole lock, for naming the nested types a field reaches.
    pub(crate) lock: Option<Lock>,
}

/// Reads the lock at `path`; an unreadable lock is reported on the call site.
fn read(cx: &Ctxt, path: &Path) -> (TokenStream, Option<Lock>) {
    let display = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            cx.syn_error(syn::Error::new(
                Span::call_site(),
                format!("cannot read the schema lock {display}: {error}"),
            ));
            return (TokenStream::new(), None);
        }
    };
    // `include_bytes!` makes the lock an input of this crate, so editing it triggers a rebuild.
    let track = quote!(
        const _: &[u8] = ::core::include_bytes!(#display);
    );
    match Lock::parse(&text) {
        Ok(lock) => (track, Some(lock)),
        Err(error) => {
            cx.syn_error(syn::Error::new(
                Span::call_site(),
                format!("cannot read the schema lock {display}: {error}"),
            ));
            (track, None)
        }
    }
}

/// Checks `shape` (as written) against the locked shape of (`name`, `version`), reporting a
/// change on `ident`.
pub(crate) fn check(
    cx: &Ctxt,
    path: &Path,
    ident: &syn::Ident,
    name: &str,
    version: u32,
    shape: &Shape,
) -> EventLock {
    let (track, lock) = read(cx, path);
    let Some(lock) = lock else {
        return EventLock {
            track,
            ..EventLock::default()
        };
    };
    let mut locked = lock.get(name, version).cloned();
    if let Some(event) = &locked {
        let changes = event.shape.diff(shape);
        if !changes.is_empty() {
            locked = None;
            let next = version + 1;
            let list = changes
                .iter()
                .map(|c| format!("\n  - {c}"))
                .collect::<String>();
            cx.error_spanned_by(
                ident,
                format!(
                    "`{ident}` no longer matches the locked shape of `{name}` version {version} in {LOCK_FILE}:{list}\n\
                     Events already stored at version {version} have the locked shape: read with another one, they may fail to decode or decode wrong.\n\
                     Either keep version {version}'s shape, or keep the old shape as its own type and make this one \
                     version {next} with an upcaster from it: `#[event(name = \"{name}\", version = {next}, upcast_from = {ident}V{version})]` \
                     (or `upcast(from = {version}, with = path::to::fn)`); then lock the new version with `EVENTSOURCE_LOCK=write cargo test`."
                ),
            );
        }
    }
    EventLock {
        track,
        locked,
        lock: Some(lock),
    }
}

/// Checks a `#[derive(EventData)]` type's shape (as written) against its locked `type` block,
/// reporting a change on the type with the stored events it reaches. Returns the tokens that
/// make rustc rebuild when the lock changes.
pub(crate) fn check_type(cx: &Ctxt, path: &Path, model: &DataModel) -> TokenStream {
    let (track, lock) = read(cx, path);
    let Some(locked) = lock.as_ref().and_then(|l| l.get_type(&model.name)) else {
        return track;
    };
    let ident = &model.ident;
    let name = &model.name;
    let locked_as = if ident == name {
        String::new()
    } else {
        format!(" (locked as `{name}`)")
    };
    let mut list = String::new();
    if locked.kind != model.stored.kind {
        list.push_str(&format!(
            "\n  - it was locked as a `{}` and is now a `{}`",
            locked.kind, model.stored.kind
        ));
    }
    let changes = locked.shape.as_written().changes(&model.stored.shape);
    for change in &changes {
        list.push_str(&format!("\n  - {}", change.sentence()));
    }
    if list.is_empty() {
        return track;
    }
    let mut stored = String::new();
    let mut events = BTreeSet::new();
    for at in &locked.stored_at {
        events.insert((at.event.clone(), at.version));
        if changes.is_empty() {
            stored.push_str(&format!("\n  - {at}"));
        }
        for change in &changes {
            stored.push_str(&format!(
                "\n  - {} (`{}` version {})",
                change.at(&at.path),
                at.event,
                at.version
            ));
        }
    }
    let stored = if stored.is_empty() {
        "Locked events may store it: read with another shape, they may fail to decode or decode wrong.".to_owned()
    } else {
        format!(
            "Locked events store it (read with another shape, they may fail to decode or decode wrong):{stored}"
        )
    };
    let versions = events
        .iter()
        .map(|(event, version)| format!("`{event}` version {}", version + 1))
        .collect::<Vec<_>>();
    let new_versions = if versions.is_empty() {
        "a new version of each event that holds it".to_owned()
    } else {
        versions.join(", ")
    };
    cx.error_spanned_by(
        ident,
        format!(
            "`{ident}`{locked_as} no longer matches its locked shape in {LOCK_FILE}:{list}\n\
             {stored}\n\
             A nested type has no version of its own, so keep `{ident}` as it is locked, and put the new shape in a new type \
             (`{ident}V2`) held by {new_versions}, each with an upcaster from the version that holds `{ident}`; \
             then lock them with `EVENTSOURCE_LOCK=write cargo test`."
        ),
    );
    track
}
