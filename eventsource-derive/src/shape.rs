//! The stored shape of an event type, as the schema lock records it: fields in order, their
//! types as written, and the serde attributes that shape the wire format.

use eventsource_schema::{Field, Shape, normalize_tokens};
use quote::ToTokens;

/// The shape of a `#[derive(Event)]` input.
pub(crate) fn of(input: &syn::DeriveInput) -> Shape {
    let attrs = serde_attrs(&input.attrs);
    let mut fields = Vec::new();
    match &input.data {
        syn::Data::Struct(data) => push_fields(&mut fields, "", &data.fields),
        syn::Data::Enum(data) => {
            for variant in &data.variants {
                let name = variant.ident.to_string();
                match &variant.fields {
                    syn::Fields::Unit => fields.push(Field {
                        name,
                        ty: "()".into(),
                        attrs: serde_attrs(&variant.attrs),
                    }),
                    inner => {
                        fields.push(Field {
                            name: name.clone(),
                            ty: kind(inner).into(),
                            attrs: serde_attrs(&variant.attrs),
                        });
                        push_fields(&mut fields, &format!("{name}."), inner);
                    }
                }
            }
        }
        syn::Data::Union(_) => {}
    }
    Shape { attrs, fields }
}

fn kind(fields: &syn::Fields) -> &'static str {
    match fields {
        syn::Fields::Named(_) => "{..}",
        syn::Fields::Unnamed(_) => "(..)",
        syn::Fields::Unit => "()",
    }
}

fn push_fields(out: &mut Vec<Field>, prefix: &str, fields: &syn::Fields) {
    for (index, field) in fields.iter().enumerate() {
        let name = match &field.ident {
            Some(ident) => format!("{prefix}{ident}"),
            None => format!("{prefix}{index}"),
        };
        out.push(Field {
            name,
            ty: normalize_tokens(&field.ty.to_token_stream().to_string()),
            attrs: serde_attrs(&field.attrs),
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
