//! The stored shape of an event or a nested type, as the schema lock records it: fields in
//! order, their types as written, the serde attributes that shape the wire format, and which
//! fields' types are locked through `EventData` (the rest are locked as written).

use eventsource_schema::{Field, Shape, TypeKind, normalize_tokens};
use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;

use crate::attr;
use crate::ctxt::Ctxt;

/// How one line of a shape is locked.
pub(crate) enum FieldType {
    /// Through `<Type as EventData>`: its fingerprint covers what it holds.
    Data(Box<syn::Type>),
    /// By its type as written only: a variant line, an `opaque` field, a field serde skips or
    /// encodes `with` a module, or one that holds the type itself (a fingerprint can't contain
    /// itself).
    AsWritten,
}

/// A type's stored shape, with one [`FieldType`] per line.
pub(crate) struct Stored {
    pub(crate) kind: TypeKind,
    pub(crate) shape: Shape,
    pub(crate) types: Vec<FieldType>,
}

/// The shape of a `#[derive(Event)]` or `#[derive(EventData)]` input; `field_attr` is the
/// attribute that marks a field `opaque` (`event`, `event_data`).
pub(crate) fn of(cx: &Ctxt, input: &syn::DeriveInput, field_attr: &'static str) -> Stored {
    let mut stored = Stored {
        kind: TypeKind::Struct,
        shape: Shape {
            attrs: serde_attrs(&input.attrs),
            fields: Vec::new(),
        },
        types: Vec::new(),
    };
    let own = &input.ident;
    match &input.data {
        syn::Data::Struct(data) => {
            stored.kind = match &data.fields {
                syn::Fields::Named(_) => TypeKind::Struct,
                syn::Fields::Unnamed(_) => TypeKind::TupleStruct,
                syn::Fields::Unit => TypeKind::UnitStruct,
            };
            push_fields(cx, &mut stored, "", &data.fields, field_attr, own);
        }
        syn::Data::Enum(data) => {
            stored.kind = TypeKind::Enum;
            for variant in &data.variants {
                let name = variant.ident.to_string();
                stored.shape.fields.push(Field {
                    name: name.clone(),
                    ty: kind(&variant.fields).into(),
                    attrs: serde_attrs(&variant.attrs),
                    shape: None,
                });
                stored.types.push(FieldType::AsWritten);
                push_fields(
                    cx,
                    &mut stored,
                    &format!("{name}."),
                    &variant.fields,
                    field_attr,
                    own,
                );
            }
        }
        syn::Data::Union(_) => {}
    }
    stored
}

fn kind(fields: &syn::Fields) -> &'static str {
    match fields {
        syn::Fields::Named(_) => "{..}",
        syn::Fields::Unnamed(_) => "(..)",
        syn::Fields::Unit => "()",
    }
}

fn push_fields(
    cx: &Ctxt,
    out: &mut Stored,
    prefix: &str,
    fields: &syn::Fields,
    field_attr: &'static str,
    own: &syn::Ident,
) {
    for (index, field) in fields.iter().enumerate() {
        let name = match &field.ident {
            Some(ident) => format!("{prefix}{ident}"),
            None => format!("{prefix}{index}"),
        };
        let opaque = attr::parse_field_attrs(cx, &field.attrs, field_attr).is_some();
        let as_written = opaque || serde_decides(&field.attrs) || mentions(&field.ty, own);
        out.shape.fields.push(Field {
            name,
            ty: normalize_tokens(&field.ty.to_token_stream().to_string()),
            attrs: serde_attrs(&field.attrs),
            shape: None,
        });
        out.types.push(if as_written {
            FieldType::AsWritten
        } else {
            FieldType::Data(Box::new(field.ty.clone()))
        });
    }
}

/// Every `#[serde(...)]` attribute, normalised. All of them count: most change the wire format
/// (`rename`, `rename_all`, `tag`, `flatten`, `default`, `skip`, `with`, …).
fn serde_attrs(attrs: &[syn::Attribute]) -> Vec<String> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .map(|a| normalize_tokens(&a.to_token_stream().to_string()))
        .collect()
}

/// Serde, not the field's type, decides what is stored: `skip` (nothing), `with`,
/// `serialize_with`, `deserialize_with` (a module's format).
fn serde_decides(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .filter_map(|a| match &a.meta {
            syn::Meta::List(list) => Some(list.tokens.clone()),
            _ => None,
        })
        .any(|tokens| {
            let mut at_key = true;
            tokens.into_iter().any(|tree| match tree {
                TokenTree::Punct(p) if p.as_char() == ',' => {
                    at_key = true;
                    false
                }
                TokenTree::Ident(ident) if at_key => {
                    at_key = false;
                    ["skip", "with", "serialize_with", "deserialize_with"]
                        .iter()
                        .any(|k| ident == k)
                }
                _ => {
                    at_key = false;
                    false
                }
            })
        })
}

/// The type names `own` (or `Self`) anywhere in it.
fn mentions(ty: &syn::Type, own: &syn::Ident) -> bool {
    fn walk(tokens: TokenStream, own: &syn::Ident) -> bool {
        tokens.into_iter().any(|tree| match tree {
            TokenTree::Ident(ident) => ident == *own || ident == "Self",
            TokenTree::Group(group) => walk(group.stream(), own),
            _ => false,
        })
    }
    walk(ty.to_token_stream(), own)
}
