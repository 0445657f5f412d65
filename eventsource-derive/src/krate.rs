//! Where the generated code finds `eventsource-core`: the `crate = "..."` attribute, else the
//! name the package being compiled depends on it under (read from its `Cargo.toml` by
//! `proc-macro-crate`), so `es = { package = "eventsource-core", ... }` needs no attribute.

use proc_macro_crate::{Error, FoundCrate};
use proc_macro2::{Span, TokenStream};
use quote::ToTokens;

use crate::attr::Spanned;
use crate::ctxt::Ctxt;

/// The path to `eventsource-core` in generated code.
pub(crate) struct Krate {
    path: syn::Path,
    /// False when the package doesn't depend on `eventsource-core` and no attribute says where
    /// it is: that error is reported, and stand-in impls would only add "cannot find" errors.
    pub(crate) found: bool,
}

const CORE: &str = "eventsource-core";

impl Krate {
    /// The attribute's path if given, else the dependency's name in the package's manifest.
    pub(crate) fn resolve(
        cx: &Ctxt,
        attr: Option<Spanned<syn::Path>>,
        ident: &syn::Ident,
        derive: &str,
        attr_name: &str,
    ) -> Self {
        if let Some(attr) = attr {
            return Krate {
                path: attr.value,
                found: true,
            };
        }
        match path_for(proc_macro_crate::crate_name(CORE)) {
            Ok(path) => Krate { path, found: true },
            Err(manifest) => {
                cx.error_spanned_by(
                    ident,
                    format!(
                        "`#[derive({derive})]` can't find `eventsource-core`: it is not a dependency of this package ({manifest}), so the generated code has no path to it. If you reach it through a crate that re-exports it, say where: `#[{attr_name}(crate = \"path::to::eventsource_core\")]`; else add `eventsource-core` to `[dependencies]`"
                    ),
                );
                Krate {
                    path: fallback(),
                    found: false,
                }
            }
        }
    }
}

/// `::eventsource_core`, the name the crate has when nothing says otherwise.
fn fallback() -> syn::Path {
    syn::parse_quote!(::eventsource_core)
}

/// The path for what `proc-macro-crate` found; `Err` (with the manifest looked in) only when the
/// manifest was read and doesn't list `eventsource-core`. When no manifest can be read (a build
/// without Cargo), `::eventsource_core` is the best guess.
fn path_for(found: Result<FoundCrate, Error>) -> Result<syn::Path, String> {
    match found {
        // `eventsource-core` itself: its doctests and examples also look like this, and they
        // reach it as `::eventsource_core`, not `crate`.
        Ok(FoundCrate::Itself) => Ok(fallback()),
        Ok(FoundCrate::Name(name)) => {
            let ident = syn::Ident::new(&name, Span::call_site());
            Ok(syn::parse_quote!(::#ident))
        }
        Err(Error::CrateNotFound { path, .. }) => Err(format!("not in `{}`", path.display())),
        Err(_) => Ok(fallback()),
    }
}

impl ToTokens for Krate {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.path.to_tokens(tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn shown(found: Result<FoundCrate, Error>) -> Result<String, String> {
        path_for(found).map(|path| quote!(#path).to_string())
    }

    #[test]
    fn a_renamed_dependency_is_reached_by_its_new_name() {
        // `es = { package = "eventsource-core", ... }` in the user's Cargo.toml.
        assert_eq!(shown(Ok(FoundCrate::Name("es".into()))), Ok(":: es".into()));
    }

    #[test]
    fn the_usual_name_and_the_crate_itself_are_eventsource_core() {
        let usual = Ok(":: eventsource_core".to_string());
        assert_eq!(
            shown(Ok(FoundCrate::Name("eventsource_core".into()))),
            usual
        );
        assert_eq!(shown(Ok(FoundCrate::Itself)), usual);
    }

    #[test]
    fn a_package_without_the_dependency_is_an_error_naming_the_manifest() {
        let missing = Err(Error::CrateNotFound {
            crate_name: CORE.into(),
            path: "/app/Cargo.toml".into(),
        });
        assert_eq!(shown(missing), Err("not in `/app/Cargo.toml`".into()));
    }

    #[test]
    fn no_manifest_falls_back_to_eventsource_core() {
        assert_eq!(
            shown(Err(Error::CargoManifestDirNotSet)),
            Ok(":: eventsource_core".into())
        );
    }
}
