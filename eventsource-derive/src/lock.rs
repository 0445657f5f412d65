//! Reading the schema lock while compiling: a locked event version whose shape changed is a
//! compile error on the type.

use std::path::{Path, PathBuf};

use eventsource_schema::{LOCK_FILE, Lock, Shape};
use proc_macro2::{Span, TokenStream};
use quote::quote;

use crate::ctxt::Ctxt;

/// The lock file that governs the event being derived: the nearest `events.lock` in the
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

/// Checks `shape` against the locked shape of (`name`, `version`), reporting a change on
/// `ident`. Returns the tokens that make rustc rebuild when the lock changes.
pub(crate) fn check(
    cx: &Ctxt,
    path: &Path,
    ident: &syn::Ident,
    name: &str,
    version: u32,
    shape: &Shape,
) -> TokenStream {
    let display = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            cx.syn_error(syn::Error::new(
                Span::call_site(),
                format!("cannot read the schema lock {display}: {error}"),
            ));
            return TokenStream::new();
        }
    };
    // `include_bytes!` makes the lock an input of this crate, so editing it triggers a rebuild.
    let track = quote!(
        const _: &[u8] = ::core::include_bytes!(#display);
    );
    let lock = match Lock::parse(&text) {
        Ok(lock) => lock,
        Err(error) => {
            cx.syn_error(syn::Error::new(
                Span::call_site(),
                format!("cannot read the schema lock {display}: {error}"),
            ));
            return track;
        }
    };
    if let Some(locked) = lock.get(name, version) {
        let changes = locked.shape.diff(shape);
        if !changes.is_empty() {
            let next = version + 1;
            let list = changes
                .iter()
                .map(|c| format!("\n  - {c}"))
                .collect::<String>();
            cx.error_spanned_by(
                ident,
                format!(
                    "`{ident}` no longer matches the locked shape of `{name}` version {version} in {LOCK_FILE}:{list}\n\
                     Events already stored at version {version} have the locked shape and would no longer decode.\n\
                     Either keep version {version}'s shape, or keep the old shape as its own type and make this one \
                     version {next} with an upcaster from it: `#[event(name = \"{name}\", version = {next}, upcast_from = {ident}V{version})]` \
                     (or `upcast(from = {version}, with = path::to::fn)`); then lock the new version with `EVENTSOURCE_LOCK=write cargo test`."
                ),
            );
        }
    }
    track
}
