//! Cross-cutting checks on the model: what no single attribute can tell.
//!
//! Checks that need other types' constants (a typed step's name and version, stored-name
//! uniqueness across an aggregate's events) can't run here; they are emitted as `const`
//! assertions by the code generators and fail while compiling the user's crate.

use std::collections::BTreeMap;

use quote::ToTokens;

use crate::ast::{Chain, EventModel, Listing};
use crate::ctxt::Ctxt;

/// Checks an event's upcaster chain covers every older version exactly once. A chain with a
/// problem is replaced by `Chain::None` so the generated code compiles and no error cascades.
pub(crate) fn event(cx: &Ctxt, model: &mut EventModel) {
    let version = model.version.value;
    let name = &model.name;
    let ok = match &model.chain {
        Chain::None if version > 1 && !model.chain_reported => {
            let older = if version == 2 {
                "version 1".to_owned()
            } else {
                format!("versions 1 to {}", version - 1)
            };
            cx.syn_error(syn::Error::new(
                model.version.span,
                format!(
                    "`{name}` version {version} has no upcaster chain, so events stored at {older} could not be decoded any more; \
                     add `upcast_from = PreviousVersionType` (with `impl From<PreviousVersionType> for {ident}`) \
                     or `upcast(from = {last}, with = path::to::fn)` for each older version",
                    ident = model.ident,
                    last = version - 1,
                ),
            ));
            false
        }
        Chain::None => true,
        Chain::Typed(path) if version == 1 => {
            cx.error_spanned_by(
                path,
                "version 1 is the first version, so there is nothing older to upcast from: remove `upcast_from`, or raise `version` if this type replaces an older shape",
            );
            false
        }
        Chain::Typed(_) => true,
        Chain::Steps(steps) => {
            let mut ok = true;
            let mut seen = BTreeMap::new();
            for step in steps {
                let from = step.from.value;
                if from >= version {
                    cx.syn_error(syn::Error::new(
                        step.from.span,
                        format!(
                            "`from = {from}` is not older than this event's version {version}: an upcaster turns a stored older version into the next one, so `from` must be between 1 and {}",
                            version.saturating_sub(1).max(1)
                        ),
                    ));
                    ok = false;
                } else if seen.insert(from, ()).is_some() {
                    cx.syn_error(syn::Error::new(
                        step.from.span,
                        format!("version {from} already has an upcaster: each older version is upcast by exactly one step"),
                    ));
                    ok = false;
                }
            }
            let missing: Vec<String> = (1..version)
                .filter(|v| !seen.contains_key(v))
                .map(|v| v.to_string())
                .collect();
            if !missing.is_empty() && version > 1 {
                let first = &missing[0];
                cx.syn_error(syn::Error::new(
                    model.version.span,
                    format!(
                        "the upcaster chain of `{name}` has a gap: no step upcasts version {}, so events stored at {} could not be decoded; add `upcast(from = {first}, with = path::to::fn)`",
                        missing.join(", "),
                        if missing.len() == 1 { "that version" } else { "those versions" },
                    ),
                ));
                ok = false;
            }
            ok
        }
    };
    if !ok {
        model.chain = Chain::None;
    }
}

/// Checks the event list of an aggregate, a projection or a process names each type once and
/// gives distinct enum variants. A rejected entry is dropped, so the generated code has no error
/// of its own.
pub(crate) fn listing(cx: &Ctxt, model: &mut Listing) {
    let mut by_path = BTreeMap::new();
    let mut by_variant = BTreeMap::new();
    let mut keep = Vec::with_capacity(model.events.len());
    for event in model.events.drain(..) {
        let text = event.path.to_token_stream().to_string().replace(' ', "");
        if by_path.insert(text.clone(), ()).is_some() {
            cx.error_spanned_by(
                &event.path,
                format!("`{text}` is listed twice in `events(...)`: list each event once"),
            );
            continue;
        }
        if event.variant == "Forgotten" {
            cx.error_spanned_by(
                &event.path,
                format!(
                    "`{text}` would be the variant `Forgotten` of `{enum_name}`, which the derive keeps for events whose data subject was forgotten: import it under another name (`use {text} as ForgottenEvent;`) and list that",
                    enum_name = model.event_enum,
                ),
            );
            continue;
        }
        if let Some(first) = by_variant.insert(event.variant.to_string(), text.clone()) {
            cx.error_spanned_by(
                &event.path,
                format!(
                    "`{text}` and `{first}` would both be the variant `{variant}` of `{enum_name}`: import one under another name (`use {text} as Other{variant};`) and list that",
                    variant = event.variant,
                    enum_name = model.event_enum,
                ),
            );
            continue;
        }
        keep.push(event);
    }
    model.events = keep;
}
