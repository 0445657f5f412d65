//! `inventory` registrations, so the registry sees every event and aggregate type.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::{AggregateModel, Chain, EventModel};

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
    let upcasts = upcast_steps(model);
    let personal = personal(model);
    let doc = &model.doc;
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
                upcasts: &[#(#upcasts),*],
                personal: #personal,
                doc: #doc,
            }
        }
    }
}

/// The upcaster steps this type declares, as `UpcastStep` values, oldest first: one per
/// `upcast(from = K, with = f)`, or the one typed step of `upcast_from = Previous` (whose own
/// older steps are in `Previous`'s registration).
fn upcast_steps(model: &EventModel) -> Vec<TokenStream> {
    let private = {
        let krate = &model.krate;
        quote!(#krate::__private)
    };
    let path_text = |path: &syn::Path| quote!(#path).to_string().replace(' ', "");
    match &model.chain {
        Chain::None => Vec::new(),
        Chain::Steps(steps) => {
            let mut steps: Vec<_> = steps.iter().collect();
            steps.sort_by_key(|s| s.from.value);
            steps
                .into_iter()
                .map(|step| {
                    let from = step.from.value;
                    let to = from + 1;
                    let with = path_text(&step.with);
                    quote! {
                        #private::UpcastStep { from: #from, to: #to, kind: #private::UpcastKind::Function, with: #with }
                    }
                })
                .collect()
        }
        Chain::Typed(previous) => {
            let to = model.version.value;
            let from = to.saturating_sub(1);
            let with = path_text(previous);
            vec![quote! {
                #private::UpcastStep { from: #from, to: #to, kind: #private::UpcastKind::Typed, with: #with }
            }]
        }
    }
}

/// `#[event(personal)]` as a `PersonalData` value.
fn personal(model: &EventModel) -> TokenStream {
    let krate = &model.krate;
    let private = quote!(#krate::__private);
    match &model.personal {
        None => quote!(#private::PersonalData::None),
        Some(personal) => match &personal.subject {
            None => quote!(#private::PersonalData::OfStream),
            Some(field) => {
                let field = field.to_string();
                quote!(#private::PersonalData::InField(#field))
            }
        },
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
