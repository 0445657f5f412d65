//! `catalog`: the program's event catalog ([`crate::catalog`]), as Markdown or one HTML page,
//! with the older versions' fields read from the schema lock when there is one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::args::{CatalogArgs, CatalogFormat};
use super::{AdminError, Outcome};
use crate::catalog::{self, Catalog};

/// Writes the catalog to `--out` or stdout. The lock is `--lock DIR`'s, or the configured
/// directory's if it holds one; without a lock, versions no type writes any more show no fields.
pub(super) fn write(configured: Option<&PathBuf>, args: &CatalogArgs) -> Outcome {
    let lock_file = match (&args.lock, configured) {
        (Some(dir), _) => {
            let file = dir.join(eventsource_schema::LOCK_FILE);
            if !file.is_file() {
                return Err(AdminError::Refused(format!(
                    "no schema lock at {}",
                    file.display()
                )));
            }
            Some(file)
        }
        (None, Some(dir)) => Some(dir.join(eventsource_schema::LOCK_FILE)).filter(|f| f.is_file()),
        (None, None) => None,
    };
    let lock = lock_file
        .map(catalog::read_lock)
        .transpose()
        .map_err(|e| AdminError::Refused(e.to_string()))?;
    let catalog =
        Catalog::from_registry(lock.as_ref()).map_err(|e| AdminError::Refused(e.to_string()))?;
    let text = match args.format {
        CatalogFormat::Markdown => catalog.to_markdown(),
        CatalogFormat::Html => catalog.to_html(),
    };
    match &args.out {
        Some(path) => write_file(path, &text),
        None => {
            // A closed pipe (`catalog | head`) ends the command quietly.
            let _ = std::io::stdout().write_all(text.as_bytes());
            Ok(())
        }
    }
}

fn write_file(path: &Path, text: &str) -> Outcome {
    let io = |context: String| move |source| AdminError::Io { context, source };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    std::fs::write(path, text).map_err(io(format!("writing {}", path.display())))
}
