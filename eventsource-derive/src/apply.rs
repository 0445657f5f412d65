//! `impl Aggregate`: the name, the event enum, `apply` dispatch to the `Apply<E>` impls, and
//! (from `snapshot`) the snapshot items.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use crate::ast::{AggregateModel, span_of};
use crate::krate::Krate;
use crate::snapshot;

pub(crate) fn expand(model: &AggregateModel) -> TokenStream {
    let krate = &model.listing.krate;
    let ident = &model.listing.ident;
    let name = &model.listing.name;
    let enum_ident = &model.listing.event_enum;
    let arms = model.listing.events.iter().map(|e| {
        let (variant, path) = (&e.variant, &e.path);
        // Spanned on the listed event: a missing `Apply<E>` impl is reported there, with the
        // `#[diagnostic::on_unimplemented]` message of `Apply` naming the impl to write.
        let call =
            quote_spanned!(span_of(path)=> <Self as #krate::Apply<#path>>::apply(self, event));
        quote!(#enum_ident::#variant(event) => #call,)
    });
    // A forgotten record goes to the listed event it was: `ApplyForgotten<E>` holds for every
    // aggregate and event without personal data, so only a personal event needs an impl.
    let forgotten = model.listing.events.iter().map(|e| {
        let path = &e.path;
        let call = quote_spanned! {span_of(path)=>
            <Self as #krate::__private::ApplyForgotten<#path>>::apply_forgotten(self, record)
        };
        quote! {
            if record.name == <#path as #krate::Event>::NAME {
                return #call;
            }
        }
    });
    let snapshot_items = snapshot::impl_items(model);
    let snapshot_marker = snapshot::marker(model);
    quote! {
        #[automatically_derived]
        impl #krate::Aggregate for #ident {
            const NAME: &'static str = #name;
            type Event = #enum_ident;

            fn apply_event(&mut self, event: &#enum_ident) {
                match event {
                    #(#arms)*
                    #enum_ident::Forgotten(record) => {
                        #(#forgotten)*
                    }
                }
            }

            #snapshot_items
        }

        #snapshot_marker
    }
}

/// `impl Aggregate` over the empty fallback enum, for an input with errors.
pub(crate) fn fallback(ident: &syn::Ident, enum_ident: &syn::Ident, krate: &Krate) -> TokenStream {
    let name = ident.to_string();
    quote! {
        #[automatically_derived]
        impl #krate::Aggregate for #ident {
            const NAME: &'static str = #name;
            type Event = #enum_ident;
            fn apply_event(&mut self, event: &#enum_ident) {
                match *event {}
            }
        }
    }
}
