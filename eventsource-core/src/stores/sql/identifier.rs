//! Identifiers a store puts into its SQL (schema and table names): checked once, at open, so a
//! configured name can never change a statement's shape.

use crate::error::{Error, Result};

/// The rules one engine has beyond the common ones.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// The store backend, for the error.
    pub(crate) backend: &'static str,
    /// The longest name accepted, in bytes.
    pub(crate) max_len: usize,
    /// A prefix the engine reserves for itself (compared ignoring ASCII case).
    pub(crate) reserved_prefix: &'static str,
    /// The engine, for the error message ("PostgreSQL", "SQLite").
    pub(crate) engine: &'static str,
}

/// Checks `name` (the `what` name, e.g. "events table") against the rules for a plain,
/// unquoted SQL identifier: an ASCII letter or `_`, then ASCII letters, digits or `_`, at most
/// `rules.max_len` bytes, not starting with the engine's reserved prefix.
pub(crate) fn check(rules: Rules, what: &str, name: &str) -> Result<()> {
    let config = |message: String| Error::Config {
        backend: rules.backend,
        message,
    };
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(config(format!("the {what} name is empty")));
    };
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(config(format!(
            "the {what} name `{name}` must start with an ASCII letter or `_`"
        )));
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
        return Err(config(format!(
            "the {what} name `{name}` contains `{bad}`; use ASCII letters, digits and `_` only"
        )));
    }
    if name.len() > rules.max_len {
        return Err(config(format!(
            "the {what} name `{name}` is {} bytes long; at most {} are allowed",
            name.len(),
            rules.max_len
        )));
    }
    let prefix = rules.reserved_prefix;
    if name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return Err(config(format!(
            "the {what} name `{name}` starts with `{prefix}`, which {} reserves",
            rules.engine
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        backend: "test",
        max_len: 10,
        reserved_prefix: "pg_",
        engine: "PostgreSQL",
    };

    #[test]
    fn plain_identifiers_pass_and_everything_else_is_a_config_error() {
        for good in ["events", "_e2", "A_b_C", "abcdefghij"] {
            assert!(check(RULES, "table", good).is_ok(), "{good}");
        }
        for (bad, says) in [
            ("", "empty"),
            ("1abc", "must start"),
            ("a-b", "contains `-`"),
            ("a b", "contains ` `"),
            ("a\"b", "contains `\"`"),
            ("é", "must start"),
            ("abcdefghijk", "11 bytes"),
            ("PG_catalog", "reserves"),
            ("x;DROP", "contains `;`"),
        ] {
            match check(RULES, "table", bad) {
                Err(Error::Config {
                    backend: "test",
                    message,
                }) => {
                    assert!(message.contains(says), "{bad:?}: {message}")
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }
}
