//! `impl EventData` for a `#[derive(EventData)]` type, and what the Event derive needs of its
//! fields' types: the `FieldShape` of each field, and the const assertions that their
//! fingerprints still match the lock.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned as _;

use crate::ast::{DataModel, EventModel};
use crate::krate::Krate;
use crate::lock::EventLock;
use crate::shape::FieldType;

/// The name of the generated constant that holds one `FieldShape` per shape line.
fn fields_const() -> syn::Ident {
    syn::Ident::new("__EVENTSOURCE_FIELDS", Span::call_site())
}

/// `const __EVENTSOURCE_FIELDS: &[FieldShape] = &[…];`, one entry per line of the shape. Each
/// `FieldShape::of::<T>()` is spanned on the field's type, so a type that isn't `EventData` is
/// reported there, once, with the trait's `on_unimplemented` message.
pub(crate) fn field_shapes(krate: &Krate, types: &[FieldType]) -> TokenStream {
    let name = fields_const();
    let entries = types.iter().map(|t| match t {
        FieldType::Data(ty) => quote_spanned! {ty.span()=>
            #krate::__private::FieldShape::of::<#ty>()
        },
        FieldType::AsWritten => quote!(#krate::__private::FieldShape::AS_WRITTEN),
    });
    quote! {
        const #name: &[#krate::__private::FieldShape] = &[#(#entries),*];
    }
}

/// The reference to the generated `FieldShape`s.
pub(crate) fn fields_ref() -> TokenStream {
    let name = fields_const();
    quote!(#name)
}

/// The `EventData` impl of a nested type, with its `DataShape` for the lock writer.
pub(crate) fn expand(model: &DataModel, track_lock: TokenStream) -> TokenStream {
    let krate = &model.krate;
    let ident = &model.ident;
    let name = &model.name;
    let kind = model.stored.kind.as_str();
    let shape = model.stored.shape.canonical();
    let fields = field_shapes(krate, &model.stored.types);
    let fields_ref = fields_ref();
    let fingerprint = fingerprint_fold(model);
    quote! {
        const _: () = {
            #fields

            static __EVENTSOURCE_SHAPE: #krate::__private::DataShape = #krate::__private::DataShape {
                name: #name,
                type_name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                kind: #kind,
                shape: #shape,
                fields: #fields_ref,
                fingerprint: <#ident as #krate::EventData>::FINGERPRINT,
            };

            #[automatically_derived]
            impl #krate::EventData for #ident {
                const FINGERPRINT: u64 = #fingerprint;

                fn reach(types: &mut #krate::__private::Vec<&'static #krate::__private::DataShape>) {
                    types.push(&__EVENTSOURCE_SHAPE);
                }
            }

            #track_lock
        };
    }
}

/// `eventsource_schema::shape_fingerprint` as a constant expression: the same fold, with the
/// fields' type fingerprints from their `FieldShape`s.
fn fingerprint_fold(model: &DataModel) -> TokenStream {
    let krate = &model.krate;
    let fp = quote!(#krate::__private::fingerprint);
    let fields_ref = fields_ref();
    let kind = model.stored.kind.as_str();
    let shape = &model.stored.shape;
    let attr_count = shape.attrs.len() as u64;
    let attrs = &shape.attrs;
    let field_count = shape.fields.len() as u64;
    let folds = shape.fields.iter().enumerate().map(|(index, field)| {
        let name = &field.name;
        let count = field.attrs.len() as u64;
        let attrs = &field.attrs;
        let ty = &field.ty;
        quote! {
            let hash = #fp::text(hash, #name);
            let hash = #fp::number(hash, #count);
            #(let hash = #fp::text(hash, #attrs);)*
            let hash = match #fields_ref[#index].fingerprint {
                ::core::option::Option::Some(shape) => #fp::number(#fp::number(hash, 1), shape),
                ::core::option::Option::None => #fp::text(#fp::number(hash, 0), #ty),
            };
        }
    });
    quote! {{
        let hash = #fp::text(#fp::START, #kind);
        let hash = #fp::number(hash, #attr_count);
        #(let hash = #fp::text(hash, #attrs);)*
        let hash = #fp::number(hash, #field_count);
        #(#folds)*
        hash
    }}
}

/// What is emitted when the input has errors: an `EventData` impl, so events that hold the type
/// don't add errors of their own. It is never run: the crate fails to build.
pub(crate) fn fallback(ident: &syn::Ident, krate: &Krate) -> TokenStream {
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #krate::EventData for #ident {
                const FINGERPRINT: u64 = 0;
            }
        };
    }
}

/// Const assertions that each field of a locked event version still holds what it held when it
/// was locked: `<FieldType as EventData>::FINGERPRINT` against the fingerprint in the lock. This
/// catches a change anywhere below the field (a nested type, a type alias, a type from another
/// crate), even where no derive can name it; each is spanned on the field's type.
pub(crate) fn fingerprint_checks(model: &EventModel, lock: &EventLock) -> TokenStream {
    let Some(locked) = &lock.locked else {
        return TokenStream::new();
    };
    let fields_ref = fields_ref();
    let name = &model.name;
    let version = model.version.value;
    let next = version + 1;
    let ident = &model.ident;
    let checks = model
        .stored
        .shape
        .fields
        .iter()
        .zip(&model.stored.types)
        .enumerate()
        .filter_map(|(index, (field, ty))| {
            let FieldType::Data(ty) = ty else {
                return None;
            };
            let locked_shape = locked
                .shape
                .fields
                .iter()
                .find(|f| f.name == field.name)?
                .shape?;
            let path = format!("{name}.{}", field.name);
            let held = lock
                .lock
                .as_ref()
                .map(|l| {
                    l.types()
                        .flat_map(|t| {
                            t.stored_at
                                .iter()
                                .filter(|at| {
                                    at.event == *name
                                        && at.version == version
                                        && (at.path == path
                                            || at.path.starts_with(&format!("{path}.")))
                                })
                                .map(move |at| format!("`{}` at `{}`", t.name, at.path))
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let held = if held.is_empty() {
                String::new()
            } else {
                format!(" The locked types it holds: {}.", held.join(", "))
            };
            let message = format!(
                "`{name}` version {version} no longer matches its locked shape in events.lock: field `{field}` still reads `{written}`, but what it stores changed.{held} \
                 A nested type changed (its own error says how, when it is derived in this crate), or a type alias, or a type from another crate. \
                 Events already stored at version {version} may fail to decode or decode wrong: restore what `{field}` holds, or keep `{ident}` as it is locked \
                 and make the new shape version {next} with an upcaster from it (`#[event(name = \"{name}\", version = {next}, upcast_from = {ident}V{version})]`).",
                field = field.name,
                written = field.ty,
            );
            Some(quote_spanned! {ty.span()=>
                const _: () = match #fields_ref[#index].fingerprint {
                    ::core::option::Option::Some(shape) if shape != #locked_shape => {
                        ::core::panic!("{}", #message)
                    }
                    _ => {}
                };
            })
        });
    quote!(#(#checks)*)
}
