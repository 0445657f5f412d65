//! `impl Projection`: the name, the event enum, the context, and `project` dispatch to the
//! `Handle<E, C>` impls.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned as _;

use crate::ast::ProjectionModel;
use crate::dispatch;

pub(crate) fn expand(model: &ProjectionModel) -> TokenStream {
    let krate = &model.listing.krate;
    let context = &model.context;
    let body = dispatch::by_event(
        &model.listing,
        |event| quote!(#krate::projection::Handle<#event, #context>),
        "handle",
        (
            |event: &syn::Path| quote!(#krate::__private::HandleForgotten<#event, #context>),
            "handle_forgotten",
        ),
        "__cx",
    );
    impl_projection(model, &body)
}

/// `impl Projection` over the empty fallback enum, for an input with errors.
pub(crate) fn fallback(model: &ProjectionModel) -> TokenStream {
    impl_projection(model, &dispatch::fallback())
}

fn impl_projection(model: &ProjectionModel, body: &TokenStream) -> TokenStream {
    let listing = &model.listing;
    let krate = &listing.krate;
    let ident = &listing.ident;
    let name = &listing.name;
    let enum_ident = &listing.event_enum;
    // On the type the user wrote: a context that isn't `Send` is reported there.
    let context = &model.context;
    let context_item = quote_spanned!(context.span()=> type Context = #context;);
    quote! {
        #[automatically_derived]
        impl #krate::Projection for #ident {
            const NAME: &'static str = #name;
            type Event = #enum_ident;
            #context_item

            async fn project(
                &mut self,
                __recorded: #krate::Recorded<#enum_ident>,
                __cx: &mut #context,
            ) -> #krate::__private::Result<(), #krate::HandlerError> {
                #body
            }
        }
    }
}
