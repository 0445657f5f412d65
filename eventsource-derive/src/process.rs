//! `impl Process`: the name, the event enum, and `react` dispatch to the `React<E>` impls, each
//! handed the batch's `ProcessWork`.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::ProcessModel;
use crate::dispatch;

pub(crate) fn expand(model: &ProcessModel) -> TokenStream {
    let krate = &model.listing.krate;
    let body = dispatch::by_event(
        &model.listing,
        |event| quote!(#krate::process::React<#event>),
        "react",
        (
            |event: &syn::Path| quote!(#krate::__private::ReactForgotten<#event>),
            "react_forgotten",
        ),
        "__work",
    );
    impl_process(model, &body)
}

/// `impl Process` over the empty fallback enum, for an input with errors.
pub(crate) fn fallback(model: &ProcessModel) -> TokenStream {
    impl_process(model, &dispatch::fallback())
}

fn impl_process(model: &ProcessModel, body: &TokenStream) -> TokenStream {
    let listing = &model.listing;
    let krate = &listing.krate;
    let ident = &listing.ident;
    let name = &listing.name;
    let enum_ident = &listing.event_enum;
    quote! {
        #[automatically_derived]
        impl #krate::process::Process for #ident {
            const NAME: &'static str = #name;
            type Event = #enum_ident;

            async fn react(
                &mut self,
                __recorded: #krate::Recorded<#enum_ident>,
                __work: &mut #krate::process::ProcessWork<'_>,
            ) -> #krate::__private::Result<(), #krate::HandlerError> {
                #body
            }
        }
    }
}
