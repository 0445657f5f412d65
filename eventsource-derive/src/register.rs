//! `inventory` registrations, so the registry sees every event and aggregate type.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::{AggregateModel, EventModel};

pub(crate) fn event(model: &EventModel) -> TokenStream {
    let krate = &model.krate;
    let ident = &model.ident;
    // Literals rather than `<T as Event>::NAME`: if the type lacks its serde impls, the error is
    // reported once on the impl, not again at every use of its constants.
    let name = &model.name;
    let version = model.version.value;
    let oldest = crate::upcast::oldest_version(model);
    let shape = model.stored.shape.canonical();
    let fields = crate::event_data::fields_ref();
    let aliases = model.aliases.iter().map(|a| &a.value);
    quote! {
        #krate::__private::inventory::submit! {
            #krate::__private::EventRegistration {
                name: #name,
                version: #version,
                type_name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                oldest_version: #oldest,
                aliases: &[#(#aliases),*],
                shape: #shape,
                fields: #fields,
                decode_json: #krate::__private::decode_json::<#ident>,
            }
        }
    }
}

pub(crate) fn aggregate(model: &AggregateModel) -> TokenStream {
    let krate = &model.listing.krate;
    let ident = &model.listing.ident;
    let events = model.listing.events.iter().map(|e| {
        let path = &e.path;
        quote!((<#path as #krate::Event>::NAME, <#path as #krate::Event>::VERSION))
    });
    quote! {
        #krate::__private::inventory::submit! {
            #krate::__private::AggregateRegistration {
                name: <#ident as #krate::Aggregate>::NAME,
                type_name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                events: &[#(#events),*],
            }
        }
    }
}
