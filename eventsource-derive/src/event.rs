//! `impl Event` for a `#[derive(Event)]` type.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use crate::ast::EventModel;
use crate::krate::Krate;
use crate::lock::EventLock;
use crate::{event_data, register, upcast};

/// `lock`: what `lock::check` found (the tokens that make the lock an input of the crate, and the
/// locked version whose fields' fingerprints are asserted).
pub(crate) fn expand(model: &EventModel, lock: &EventLock) -> TokenStream {
    let krate = &model.krate;
    let ident = &model.ident;
    let name = &model.name;
    let version = model.version.value;
    let body = upcast::decode_body(model);
    let checks = upcast::typed_step_checks(model);
    let registration = register::event(model);
    let fields = event_data::field_shapes(krate, &model.stored.types);
    let fingerprints = event_data::fingerprint_checks(model, lock);
    let track_lock = &lock.track;
    let oldest = upcast::oldest_version(model);
    let aliases = model.aliases.iter().map(|a| &a.value);
    let personal = personal_items(model);
    // Spanned on the type's name, so a missing `Serialize`/`Deserialize` is reported there.
    let header = quote_spanned!(ident.span()=> impl #krate::Event for #ident);
    quote! {
        const _: () = {
            #[automatically_derived]
            #header {
                const NAME: &'static str = #name;
                const VERSION: u32 = #version;
                const OLDEST_VERSION: u32 = #oldest;
                const ALIASES: &'static [&'static str] = &[#(#aliases),*];

                #personal

                fn decode_stored<__C: #krate::Codec>(
                    codec: &__C,
                    schema_version: u32,
                    payload: &[u8],
                ) -> #krate::__private::Result<Self, #krate::DecodeError> {
                    #body
                }
            }
            #checks
            #fields
            #fingerprints
            #registration
            #track_lock
        };
    }
}

/// `type Forgotten` and, for a personal event, `data_subject`.
fn personal_items(model: &EventModel) -> TokenStream {
    let krate = &model.krate;
    let private = quote!(#krate::__private);
    let Some(personal) = &model.personal else {
        return quote!(type Forgotten = #private::NotPersonal<Self>;);
    };
    let subject = match &personal.subject {
        None => quote!(#private::DataSubject::Stream),
        // Spanned on the field's name: a field that isn't a `Uuid` is reported there, with
        // `SubjectId`'s message.
        Some(field) => {
            let read = quote_spanned!(field.span()=> #private::SubjectId::subject_id(&self.#field));
            quote!(#private::DataSubject::Id(#read))
        }
    };
    let in_field = personal.subject.is_some();
    quote! {
        type Forgotten = #private::Forgotten<Self>;
        const SUBJECT_IN_FIELD: bool = #in_field;

        fn data_subject(&self) -> #private::DataSubject {
            #subject
        }
    }
}

/// What is emitted when the input has errors: an `Event` impl with the right name, so uses of
/// the type elsewhere don't add errors of their own. It is never run: the crate fails to build.
pub(crate) fn fallback(ident: &syn::Ident, krate: &Krate) -> TokenStream {
    let name = ident.to_string();
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #krate::Event for #ident {
                const NAME: &'static str = #name;
                const VERSION: u32 = 1;
                type Forgotten = #krate::__private::NotPersonal<Self>;
                fn decode_stored<__C: #krate::Codec>(
                    _: &__C,
                    _: u32,
                    _: &[u8],
                ) -> #krate::__private::Result<Self, #krate::DecodeError> {
                    ::core::unreachable!()
                }
            }
        };
    }
}
