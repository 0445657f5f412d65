//! Snapshot support on `impl Aggregate`: the fingerprint of the state's shape, the encode and
//! decode methods, and the `Snapshotted` marker. Generated only with `#[aggregate(snapshot)]` or
//! `#[aggregate(snapshot_every = N)]`.

use eventsource_schema::{fnv1a, normalize_tokens};
use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};

use crate::ast::{AggregateModel, EventRef};

/// Bumped if the canonical text below changes, so that old fingerprints never match by accident.
const FINGERPRINT_FORMAT: &str = "eventsource-snapshot-v1";

/// The fingerprint of an aggregate's snapshot shape: FNV-1a (64 bit) over a canonical text of
/// the struct's serde container attributes, each field's name, type and serde attributes, and the
/// listed events. Doc comments and other attributes don't count; whitespace in the source doesn't
/// either (the text is built token by token).
///
/// It changes when the encoded state could change shape (a field added, removed, renamed or
/// retyped, a serde attribute edited) and when the event list changes: a snapshot taken under
/// another shape is then ignored and rebuilt from the events rather than decoded wrongly.
///
/// `snapshot_version` (from `#[aggregate(snapshot_version = N)]`, default 1) is the user's own
/// counter for what the fingerprint can't see: a changed `Apply` body.
pub(crate) fn fingerprint(
    input: &syn::DeriveInput,
    events: &[EventRef],
    snapshot_version: u32,
) -> u64 {
    // The same canonical shape the schema lock records for events (`crate::shape`). An
    // aggregate's fields take no `opaque` attribute, so there is nothing to report here.
    let cx = crate::ctxt::Ctxt::new();
    let shape = crate::shape::of(&cx, input, crate::attr::AGGREGATE).shape;
    let _ = cx.check();
    let mut text = format!(
        "{FINGERPRINT_FORMAT}\n{}snapshot_version: {snapshot_version}\nevents:",
        shape.canonical()
    );
    for event in events {
        text.push(' ');
        text.push_str(&normalize_tokens(&event.path.to_token_stream().to_string()));
    }
    fnv1a(text.as_bytes())
}

/// The snapshot items inside `impl Aggregate` (empty without snapshots).
pub(crate) fn impl_items(model: &AggregateModel) -> TokenStream {
    let Some(snapshot) = &model.snapshot else {
        return TokenStream::new();
    };
    let krate = &model.listing.krate;
    let private = quote!(#krate::__private);
    let fingerprint = snapshot.fingerprint;
    let every = match snapshot.every {
        Some(every) => quote!(::core::num::NonZeroU64::new(#every)),
        None => quote!(#private::Option::None),
    };
    quote! {
        const SNAPSHOTS: #private::Option<#krate::SnapshotSettings> =
            #private::Option::Some(#krate::SnapshotSettings {
                fingerprint: #fingerprint,
                every: #every,
            });

        fn encode_snapshot<__C: #krate::Codec>(
            &self,
            codec: &__C,
        ) -> #private::Option<#private::Result<#private::Vec<u8>, #krate::CodecError>> {
            #private::Option::Some(#private::encode_snapshot_state(codec, self))
        }

        fn decode_snapshot<__C: #krate::Codec>(
            codec: &__C,
            state: &[u8],
        ) -> #private::Option<#private::Result<Self, #krate::CodecError>> {
            #private::Option::Some(#private::decode_snapshot_state(codec, state))
        }
    }
}

/// The `Snapshotted` marker (empty without snapshots). Its serde supertraits are the one place a
/// state without `Serialize + Deserialize` is reported: spanned on the struct's name, and the
/// generated methods go through `Snapshotted` so they add no errors of their own.
pub(crate) fn marker(model: &AggregateModel) -> TokenStream {
    if model.snapshot.is_none() {
        return TokenStream::new();
    }
    let krate = &model.listing.krate;
    let ident = &model.listing.ident;
    quote_spanned! {ident.span()=>
        #[automatically_derived]
        impl #krate::Snapshotted for #ident {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(input: &str, events: &[&str]) -> u64 {
        let input: syn::DeriveInput = syn::parse_str(input).unwrap();
        let events: Vec<EventRef> = events
            .iter()
            .map(|e| {
                let path: syn::Path = syn::parse_str(e).unwrap();
                EventRef {
                    variant: path.segments.last().unwrap().ident.clone(),
                    path,
                }
            })
            .collect();
        fingerprint(&input, &events, 1)
    }

    #[test]
    fn fingerprint_follows_the_shape_not_the_formatting() {
        let base = print("struct A { balance: u64, owner: String }", &["Opened"]);
        let reformatted = print(
            "/// Docs don't count.\n#[derive(Debug)]\nstruct A {\n    balance : u64,\n    owner: String,\n}",
            &["Opened"],
        );
        assert_eq!(base, reformatted);
        let changes = [
            print("struct A { balance: u32, owner: String }", &["Opened"]),
            print("struct A { owner: String, balance: u64 }", &["Opened"]),
            print("struct A { balance: u64, name: String }", &["Opened"]),
            print("struct A { balance: u64 }", &["Opened"]),
            print(
                "struct A { #[serde(rename = \"b\")] balance: u64, owner: String }",
                &["Opened"],
            ),
            print(
                "#[serde(deny_unknown_fields)] struct A { balance: u64, owner: String }",
                &["Opened"],
            ),
            print(
                "struct A { balance: u64, owner: String }",
                &["Opened", "Closed"],
            ),
            print("struct A(u64, String);", &["Opened"]),
        ];
        let input: syn::DeriveInput =
            syn::parse_str("struct A { balance: u64, owner: String }").unwrap();
        let opened: syn::Path = syn::parse_str("Opened").unwrap();
        let events = [EventRef {
            variant: opened.segments[0].ident.clone(),
            path: opened,
        }];
        assert_ne!(
            fingerprint(&input, &events, 2),
            base,
            "snapshot_version kept the fingerprint"
        );
        for (i, changed) in changes.iter().enumerate() {
            assert_ne!(*changed, base, "change {i} kept the fingerprint");
        }
    }
}
