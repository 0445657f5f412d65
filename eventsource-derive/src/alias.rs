//! The schema lock seen through `aliases(...)`: a record stored under an old name at version N
//! decodes as this type's version N, so the locked shape of (old name, N) binds this type too.
//! Kept apart from `lock.rs`: its message speaks of the rename, and its fix keeps the alias.

use std::path::Path;

use eventsource_schema::{LOCK_FILE, Lock, Shape};

use crate::ast::EventModel;
use crate::ctxt::Ctxt;

/// Reports each alias whose locked shape at this version differs from `shape`. A lock that
/// can't be read is left to `lock::check`, which reports it once.
pub(crate) fn check_lock(cx: &Ctxt, path: &Path, model: &EventModel, shape: &Shape) {
    let Some(lock) = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| Lock::parse(&text).ok())
    else {
        return;
    };
    let (ident, name, version) = (&model.ident, &model.name, model.version.value);
    let next = version + 1;
    for alias in &model.aliases {
        let alias = &alias.value;
        let Some(locked) = lock.get(alias, version) else {
            continue;
        };
        let changes = locked.shape.diff(shape);
        if changes.is_empty() {
            continue;
        }
        let list = changes
            .iter()
            .map(|c| format!("\n  - {c}"))
            .collect::<String>();
        cx.error_spanned_by(
            ident,
            format!(
                "`{ident}` does not match the locked shape of `{alias}` version {version} in {LOCK_FILE}, the old name it lists in `aliases(...)`:{list}\n\
                 Events stored as `{alias}` version {version} decode as `{ident}` version {version}, and they have the locked shape.\n\
                 Either keep version {version}'s shape, or keep the old shape as its own type with the same alias, \
                 `#[event(name = \"{name}\", version = {version}, aliases(\"{alias}\"))] struct {ident}V{version}`, and make this one \
                 version {next} with an upcaster from it: `#[event(name = \"{name}\", version = {next}, aliases(\"{alias}\"), upcast_from = {ident}V{version})]` \
                 (or `upcast(from = {version}, with = path::to::fn)`)."
            ),
        );
    }
}
