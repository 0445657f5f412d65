//! The versioned decoder: the body of `Event::decode_stored` and the checks on a typed step.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use crate::ast::{Chain, EventModel, span_of};

/// The body of `decode_stored(codec, schema_version, payload)`.
pub(crate) fn decode_body(model: &EventModel) -> TokenStream {
    let krate = &model.krate;
    let name = &model.name;
    let version = model.version.value;
    let private = quote!(#krate::__private);
    match &model.chain {
        Chain::None => quote! {
            #private::decode_through_steps::<Self, __C>(
                codec, #name, #version, schema_version, payload, &[],
            )
        },
        Chain::Steps(steps) => {
            let mut steps: Vec<_> = steps.iter().collect();
            steps.sort_by_key(|s| s.from.value);
            let fns = steps.iter().map(|s| {
                let with = &s.with;
                quote_spanned!(span_of(with)=> #with)
            });
            quote! {
                let steps: &[#krate::UpcastFn] = &[#(#fns),*];
                #private::decode_through_steps::<Self, __C>(
                    codec, #name, #version, schema_version, payload, steps,
                )
            }
        }
        Chain::Typed(previous) => {
            let span = span_of(previous);
            let convert = quote_spanned!(span=> <Self as #private::From<#previous>>::from);
            quote! {
                if schema_version == #version {
                    return #private::Result::Ok(<Self as #krate::Payload>::decode_payload(codec, payload)?);
                }
                if schema_version > #version {
                    return #private::Result::Err(#krate::DecodeError::UnknownVersion {
                        name: #name,
                        found: schema_version,
                        latest: #version,
                    });
                }
                match <#previous as #krate::Event>::decode_stored(codec, schema_version, payload) {
                    #private::Result::Ok(previous) => #private::Result::Ok(#convert(previous)),
                    #private::Result::Err(error) => #private::Result::Err(error),
                }
            }
        }
    }
}

/// Compile-time assertions that a typed step is the previous version of the same event.
pub(crate) fn typed_step_checks(model: &EventModel) -> TokenStream {
    let Chain::Typed(previous) = &model.chain else {
        return TokenStream::new();
    };
    let krate = &model.krate;
    let ident = &model.ident;
    let name = &model.name;
    let version = model.version.value;
    let previous_text = quote!(#previous).to_string().replace(' ', "");
    let want = version - 1;
    let version_message = format!(
        "`{previous_text}` is the typed upcast step of `{ident}` (version {version}), so it must be version {want} of the same event: give it `#[event(name = \"{name}\", version = {want})]`"
    );
    let name_message = format!(
        "`{previous_text}` is the typed upcast step of `{ident}`, so it must be stored under the same name `{name}`: give it `#[event(name = \"{name}\", version = {want})]`"
    );
    quote_spanned! {span_of(previous)=>
        const _: () = {
            if <#previous as #krate::Event>::VERSION != #version - 1 {
                ::core::panic!(#version_message);
            }
            if !#krate::__private::str_eq(<#previous as #krate::Event>::NAME, #name) {
                ::core::panic!(#name_message);
            }
        };
    }
}

/// The oldest stored version the chain decodes, as a constant expression.
pub(crate) fn oldest_version(model: &EventModel) -> TokenStream {
    let krate = &model.krate;
    match &model.chain {
        Chain::None => {
            let version = model.version.value;
            quote!(#version)
        }
        Chain::Steps(_) => quote!(1u32),
        Chain::Typed(previous) => quote!(<#previous as #krate::Event>::OLDEST_VERSION),
    }
}
