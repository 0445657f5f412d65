//! `impl Projection`: the name, the event enum, the context, and `project` dispatch to the
//! `Handle<E, C>` impls.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned as _;

use crate::ast::{ProjectionModel, span_of};

pub(crate) fn expand(model: &ProjectionModel) -> TokenStream {
    let listing = &model.listing;
    let krate = &listing.krate;
    let context = &model.context;
    let enum_ident = &listing.event_enum;
    // The decoded record is split into its event and the rest; each arm puts its variant's
    // payload back into the rest, so a handler gets a `Recorded<E>` of its own event type.
    let dispatch = listing.events.iter().map(|e| {
        let (variant, path) = (&e.variant, &e.path);
        // Spanned on the listed event: a missing `Handle<E, C>` impl is reported there, with
        // the `#[diagnostic::on_unimplemented]` message of `Handle` naming the impl to write.
        // The `.await` too: awaiting the handler's future needs the impl as well, and an
        // error there would otherwise land on the derive.
        let handle = quote_spanned! {span_of(path)=>
            <Self as #krate::projection::Handle<#path, #context>>::handle(self, &__recorded, __cx).await
        };
        quote! {
            #enum_ident::#variant(__payload) => {
                let __recorded = #krate::Recorded::map(__rest, move |()| __payload);
                #handle
            }
        }
    });
    let body = quote! {
        let (__event, __rest) = #krate::__private::split_recorded(__recorded);
        match __event {
            #(#dispatch)*
        }
    };
    impl_projection(model, &body)
}

/// `impl Projection` over the empty fallback enum, for an input with errors.
pub(crate) fn fallback(model: &ProjectionModel) -> TokenStream {
    impl_projection(model, &quote!(match __recorded.event {}))
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
