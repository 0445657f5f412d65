//! The dispatch that `Projection::project` and `Process::react` share: a decoded record is split
//! into its event and the rest, and each listed event goes to its own impl of a per-event trait
//! (`Handle<E, C>`, `React<E>`) as a `Recorded<E>`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};

use crate::ast::{Listing, span_of};

/// The body of a method whose parameter `__recorded` is a `Recorded` of the listing's event
/// enum. Each variant's payload is put back into the rest of the record, so the impl for that
/// event gets a `Recorded<E>` of its own event type: the call is
/// `<Self as for_event(E)>::method(self, &__recorded, with)`, where `for_event` gives the trait
/// for one listed event (`::eventsource_core::process::React<E>`) and `with` is the generated
/// method's other parameter (`__work`).
///
/// A forgotten record (the `Forgotten` variant) goes to `forgotten.0`, the trait for the
/// forgotten value of one listed event (`ReactForgotten<E>`), by its method `forgotten.1`: it is
/// implemented for every event without personal data, so only a personal event needs an impl.
pub(crate) fn by_event(
    listing: &Listing,
    for_event: impl Fn(&syn::Path) -> TokenStream,
    method: &str,
    forgotten: (impl Fn(&syn::Path) -> TokenStream, &str),
    with: &str,
) -> TokenStream {
    let krate = &listing.krate;
    let enum_ident = &listing.event_enum;
    let with = format_ident!("{with}");
    let arms = listing.events.iter().map(|e| {
        let (variant, path) = (&e.variant, &e.path);
        let for_event = for_event(path);
        let method = syn::Ident::new(method, span_of(path));
        // Spanned on the listed event: a missing impl is reported there, with the trait's
        // `#[diagnostic::on_unimplemented]` message naming the impl to write. The `.await` too:
        // awaiting the future needs the impl as well, and an error there would otherwise land
        // on the derive.
        let call = quote_spanned! {span_of(path)=>
            <Self as #for_event>::#method(self, &__recorded, #with).await
        };
        quote! {
            #enum_ident::#variant(__payload) => {
                let __recorded = #krate::Recorded::map(__rest, move |()| __payload);
                #call
            }
        }
    });
    let forgotten_arms = listing.events.iter().map(|e| {
        let path = &e.path;
        let for_event = (forgotten.0)(path);
        let method = syn::Ident::new(forgotten.1, span_of(path));
        let call = quote_spanned! {span_of(path)=>
            <Self as #for_event>::#method(self, __rest, &__record, #with).await
        };
        quote! {
            if __record.name == <#path as #krate::Event>::NAME {
                return #call;
            }
        }
    });
    quote! {
        let (__event, __rest) = #krate::__private::split_recorded(__recorded);
        match __event {
            #(#arms)*
            #enum_ident::Forgotten(__record) => {
                #(#forgotten_arms)*
                #krate::__private::Result::Ok(())
            }
        }
    }
}

/// The body over the empty fallback enum, for an input with errors: there is nothing to
/// dispatch.
pub(crate) fn fallback() -> TokenStream {
    quote!(match __recorded.event {})
}
