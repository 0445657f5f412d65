//! The catalog as Markdown (GitHub-flavoured): a table of contents, a table per aggregate, and
//! per event its versions, fields, upcaster chain and side-by-side diffs.
//!
//! Names come from user code and lock files, so everything written is escaped: text with
//! [`escape_markdown`], code with [`code_span`], and table cells additionally for `|`.

use std::fmt::Write as _;

use super::{
    Catalog, EventEntry, VersionEntry, doc_for_catalog, field_text, upcast_words, versions_span,
    with_code_spans,
};
use crate::registry::PersonalData;
use crate::schema::Shape;

/// Escapes text for Markdown: every ASCII punctuation character that Markdown could read as
/// syntax gets a backslash, and line breaks become spaces (a name must stay on its line).
///
/// ```
/// use eventsource_core::catalog::escape_markdown;
/// assert_eq!(escape_markdown("*Odd* [name]"), r"\*Odd\* \[name\]");
/// ```
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '<' | '>' | '(' | ')' | '#' | '+'
            | '-' | '!' | '&' | '~' | '"' | '\'' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A Markdown code span holding `text` literally: fenced with one backtick more than the
/// longest run of backticks inside, padded with a space where the text starts or ends with one;
/// line breaks become spaces.
///
/// ```
/// use eventsource_core::catalog::code_span;
/// assert_eq!(code_span("Vec<u8>"), "`Vec<u8>`");
/// assert_eq!(code_span("a`b"), "``a`b``");
/// ```
pub fn code_span(text: &str) -> String {
    let text = text.replace(['\n', '\r'], " ");
    if text.is_empty() {
        return "` `".to_owned();
    }
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// A sentence with `` `code` `` spans: its text escaped, its code kept as code.
fn inline(text: &str) -> String {
    with_code_spans(text, escape_markdown, code_span)
}

/// A doc comment's line, kept as the Markdown it is, except that a `<` outside code spans is
/// escaped: the catalog shows no raw HTML (a doc may mention `<T>` or hold a tag).
fn without_raw_html(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_code: Option<usize> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                let mut run = 1;
                while chars.next_if_eq(&'`').is_some() {
                    run += 1;
                }
                out.push_str(&"`".repeat(run));
                in_code = match in_code {
                    None => Some(run),
                    Some(open) if open == run => None,
                    other => other,
                };
            }
            '\\' if in_code.is_none() => {
                out.push(c);
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '<' if in_code.is_none() => out.push_str("\\<"),
            c => out.push(c),
        }
    }
    out
}

/// A table cell: GitHub splits rows at every unescaped `|`, even inside code spans.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

pub(super) fn render(catalog: &Catalog) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Event catalog\n");
    let _ = writeln!(md, "{} Do not edit by hand.\n", catalog.summary());
    contents(&mut md, catalog);
    for aggregate in &catalog.aggregates {
        let _ = writeln!(md, "<a id=\"{}\"></a>\n", aggregate.anchor);
        let _ = writeln!(md, "## Aggregate {}\n", escape_markdown(&aggregate.name));
        let _ = writeln!(md, "Rust type {}.\n", code_span(&aggregate.type_name));
        let _ = writeln!(
            md,
            "| Event | Writes version | Decodes versions | Personal data |"
        );
        let _ = writeln!(md, "|---|---|---|---|");
        for (name, version) in &aggregate.events {
            let event = catalog.event(name);
            let link = match event {
                Some(e) => format!("[{}](#{})", escape_markdown(name), e.anchor),
                None => format!("{} (not registered)", escape_markdown(name)),
            };
            let decodes = event.map_or_else(String::new, versions_span);
            let personal = event.map_or("", |e| personal_word(e.personal));
            let _ = writeln!(
                md,
                "| {} | {version} | {} | {} |",
                cell(&link),
                cell(&decodes),
                cell(personal)
            );
        }
        md.push('\n');
    }
    let _ = writeln!(md, "## Events\n");
    for event in catalog.in_reading_order() {
        render_event(&mut md, event);
    }
    if !catalog.types.is_empty() {
        nested_types(&mut md, catalog);
    }
    md
}

fn contents(md: &mut String, catalog: &Catalog) {
    let event_item = |md: &mut String, event: &EventEntry| {
        let _ = writeln!(
            md,
            "  - [{}](#{}) v{}",
            escape_markdown(&event.name),
            event.anchor,
            event.latest
        );
    };
    let _ = writeln!(md, "## Contents\n");
    for aggregate in &catalog.aggregates {
        let _ = writeln!(
            md,
            "- [Aggregate {}](#{})",
            escape_markdown(&aggregate.name),
            aggregate.anchor
        );
        for (name, _) in &aggregate.events {
            if let Some(event) = catalog.event(name) {
                event_item(md, event);
            }
        }
    }
    let unlisted: Vec<&EventEntry> = catalog.unlisted().collect();
    if !unlisted.is_empty() {
        let _ = writeln!(md, "- Events no aggregate lists");
        for event in unlisted {
            event_item(md, event);
        }
    }
    if !catalog.types.is_empty() {
        let _ = writeln!(md, "- [Nested types](#nested-types)");
    }
    md.push('\n');
}

fn render_event(md: &mut String, event: &EventEntry) {
    let _ = writeln!(md, "<a id=\"{}\"></a>\n", event.anchor);
    let _ = writeln!(md, "### {}\n", escape_markdown(&event.name));
    for line in doc_for_catalog(&event.doc).lines() {
        let _ = writeln!(md, "> {}", without_raw_html(line));
    }
    if !event.doc.is_empty() {
        md.push('\n');
    }
    let _ = writeln!(md, "- Rust type: {}", code_span(&event.type_name));
    let _ = writeln!(
        md,
        "- Writes version {}; decodes {}",
        event.latest,
        versions_span(event)
    );
    if !event.aggregates.is_empty() {
        let names: Vec<String> = event
            .aggregates
            .iter()
            .map(|a| escape_markdown(a))
            .collect();
        let _ = writeln!(md, "- Listed by: {}", names.join(", "));
    }
    if !event.aliases.is_empty() {
        let names: Vec<String> = event.aliases.iter().map(|a| code_span(a)).collect();
        let _ = writeln!(
            md,
            "- Also decodes records stored under the old name(s): {}",
            names.join(", ")
        );
    }
    if event.personal != PersonalData::None {
        let _ = writeln!(
            md,
            "- **Personal data**: {}",
            personal_sentence(event.personal)
        );
    }
    md.push('\n');

    let steps: Vec<_> = event.versions.iter().filter_map(|v| v.upcast).collect();
    if !steps.is_empty() {
        let _ = writeln!(md, "Upcaster chain:\n");
        let _ = writeln!(md, "| Step | Kind | Upcaster |");
        let _ = writeln!(md, "|---|---|---|");
        for step in steps {
            let (kind, with) = upcast_words(&step);
            let _ = writeln!(
                md,
                "| v{} → v{} | {} | {} |",
                step.from,
                step.to,
                cell(&inline(kind)),
                cell(&inline(&with))
            );
        }
        md.push('\n');
    }
    for version in &event.versions {
        render_version(md, version);
    }
}

fn render_version(md: &mut String, version: &VersionEntry) {
    let type_name = version
        .type_name
        .as_deref()
        .map(|t| format!(" {}", code_span(t)))
        .unwrap_or_default();
    let _ = writeln!(md, "#### Version {}{type_name}\n", version.version);
    let locked = if version.locked {
        "Locked."
    } else {
        "Not locked."
    };
    let _ = writeln!(md, "*{} {locked}*\n", version.source.sentence());
    for sentence in &version.lock_differs {
        let _ = writeln!(md, "- **Differs from the lock**: {}", inline(sentence));
    }
    if !version.lock_differs.is_empty() {
        md.push('\n');
    }
    if let Some(shape) = &version.shape {
        fields_table(md, shape);
    }
    if let Some(diff) = &version.diff {
        let _ = writeln!(md, "Changes from v{} to v{}:\n", diff.from, diff.to);
        if diff.is_empty() {
            let _ = writeln!(md, "*The same fields: the upcaster changes values only.*\n");
            return;
        }
        let _ = writeln!(md, "| v{} | v{} | Change |", diff.from, diff.to);
        let _ = writeln!(md, "|---|---|---|");
        for row in &diff.rows {
            let side = |f: &Option<crate::schema::Field>| {
                f.as_ref()
                    .map(|f| cell(&code_span(&field_text(f))))
                    .unwrap_or_default()
            };
            let status = match row.status {
                super::RowStatus::Same => "".to_owned(),
                other => format!("**{}**", other.as_str()),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                side(&row.before),
                side(&row.after),
                status
            );
        }
        md.push('\n');
        let notes: Vec<String> = diff.notes().collect();
        for note in &notes {
            let _ = writeln!(md, "- {}", inline(note));
        }
        if !notes.is_empty() {
            md.push('\n');
        }
    }
}

fn fields_table(md: &mut String, shape: &Shape) {
    for attr in &shape.attrs {
        let _ = writeln!(md, "Type attribute: {}\n", code_span(attr));
    }
    if shape.fields.is_empty() {
        let _ = writeln!(md, "*No fields.*\n");
        return;
    }
    // The serde column only where some field has attributes.
    let with_attrs = shape.fields.iter().any(|f| !f.attrs.is_empty());
    if with_attrs {
        let _ = writeln!(md, "| Field | Type | serde |\n|---|---|---|");
    } else {
        let _ = writeln!(md, "| Field | Type |\n|---|---|");
    }
    for field in &shape.fields {
        let _ = write!(
            md,
            "| {} | {} |",
            cell(&code_span(&field.name)),
            cell(&code_span(&field.ty)),
        );
        if with_attrs {
            let attrs = if field.attrs.is_empty() {
                String::new()
            } else {
                code_span(&field.attrs.join(" "))
            };
            let _ = write!(md, " {} |", cell(&attrs));
        }
        md.push('\n');
    }
    md.push('\n');
}

fn nested_types(md: &mut String, catalog: &Catalog) {
    let _ = writeln!(md, "<a id=\"nested-types\"></a>\n");
    let _ = writeln!(md, "## Nested types\n");
    let _ = writeln!(
        md,
        "Types stored inside events, as the schema lock records them.\n"
    );
    for locked in &catalog.types {
        let _ = writeln!(
            md,
            "### {} ({})\n",
            escape_markdown(&locked.name),
            locked.kind
        );
        let _ = writeln!(md, "Rust type {}.\n", code_span(&locked.type_name));
        for at in &locked.stored_at {
            let _ = writeln!(
                md,
                "- stored in {} v{} at {}",
                escape_markdown(&at.event),
                at.version,
                code_span(&at.path)
            );
        }
        if !locked.stored_at.is_empty() {
            md.push('\n');
        }
        fields_table(md, &locked.shape);
    }
}

fn personal_word(personal: PersonalData) -> &'static str {
    match personal {
        PersonalData::None => "",
        PersonalData::OfStream | PersonalData::InField(_) => "yes",
    }
}

fn personal_sentence(personal: PersonalData) -> String {
    match personal {
        PersonalData::None => "no".to_owned(),
        PersonalData::OfStream => {
            "yes; the data subject is the aggregate's stream (encrypted with its key, forgotten with it)".to_owned()
        }
        PersonalData::InField(field) => format!(
            "yes; the data subject's id is in field {} (encrypted with their key, forgotten with them)",
            code_span(field)
        ),
    }
}
