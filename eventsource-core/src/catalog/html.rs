//! The catalog as one self-contained HTML page: inline CSS, no script, no external assets, so it
//! can be opened from disk, attached to a ticket or published as a CI artifact.
//!
//! Every name, type and doc line comes from user code or a lock file and goes through
//! [`escape_html`]; fragment identifiers are the model's slugs (letters, digits and `-`).

use std::fmt::Write as _;

use super::{
    Catalog, EventEntry, RowStatus, VersionEntry, doc_for_catalog, field_text, upcast_words,
    versions_span, with_code_spans,
};
use crate::registry::PersonalData;
use crate::schema::{Field, Shape};

/// Escapes text for HTML element content and quoted attribute values: `&`, `<`, `>`, `"` and
/// `'` become character references.
///
/// ```
/// use eventsource_core::catalog::escape_html;
/// assert_eq!(
///     escape_html(r#"<script>alert("x" & 'y')</script>"#),
///     "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
/// );
/// ```
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg-soft: #f6f8fa;
  --add: #dafbe1; --add-fg: #116329; --del: #ffebe9; --del-fg: #a40e26; --chg: #fff8c5;
  --chg-fg: #7d4e00; --accent: #0969da; --personal: #8250df; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
  display: grid; grid-template-columns: 17rem minmax(0, 1fr); }
nav { position: sticky; top: 0; height: 100vh; overflow-y: auto; padding: 1.25rem 1rem;
  background: var(--bg-soft); border-right: 1px solid var(--line); font-size: 14px; }
nav h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); margin: 0 0 .5rem; }
nav ul { list-style: none; margin: 0; padding: 0; }
nav ul ul { padding-left: 1rem; margin-bottom: .5rem; }
nav li { margin: .15rem 0; }
nav .ver { color: var(--muted); font-size: 12px; }
main { padding: 1.5rem 2.5rem 4rem; max-width: 72rem; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
h1 { margin: 0 0 .25rem; font-size: 28px; }
h2 { margin: 2.5rem 0 .75rem; padding-bottom: .3rem; border-bottom: 1px solid var(--line); font-size: 22px; }
h3 { margin: 0 0 .5rem; font-size: 19px; }
h4 { margin: 0 0 .4rem; font-size: 15px; }
h5 { margin: .9rem 0 .4rem; font-size: 13px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
code { font: 13px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
p code, li code, dd code, h3 code, h4 code { background: var(--bg-soft); padding: .05rem .3rem; border-radius: 4px; }
.summary { color: var(--muted); margin: 0; }
table { border-collapse: collapse; margin: .4rem 0 .8rem; width: 100%; }
table.fields { width: auto; min-width: 50%; }
th, td { border: 1px solid var(--line); padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: var(--bg-soft); font-weight: 600; font-size: 13px; }
.event { border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.25rem; margin: 1.25rem 0; }
.badge { display: inline-block; font-size: 12px; font-weight: 600; padding: .05rem .5rem; border-radius: 999px;
  border: 1px solid var(--line); color: var(--muted); vertical-align: middle; margin-left: .35rem; }
.badge.personal { color: var(--personal); border-color: var(--personal); }
.badge.warning { color: var(--del-fg); border-color: var(--del-fg); }
.doc { margin: .25rem 0 .75rem; padding-left: .75rem; border-left: 3px solid var(--line); color: #31373d; }
.doc p { margin: .3rem 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .5rem 0 .75rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.event .version { border-top: 1px dashed var(--line); padding-top: .75rem; margin-top: .75rem; }
.source { color: var(--muted); font-size: 13px; margin: 0 0 .4rem; }
.unknown { color: var(--muted); font-style: italic; }
.diff td { width: 50%; }
.diff td.empty { background: var(--bg-soft); }
tr.added td.after { background: var(--add); }
tr.removed td.before { background: var(--del); }
tr.changed td { background: var(--chg); }
.mark { float: right; font-size: 11px; font-weight: 700; text-transform: uppercase; letter-spacing: .04em; }
tr.added .mark { color: var(--add-fg); }
tr.removed .mark { color: var(--del-fg); }
tr.changed .mark { color: var(--chg-fg); }
ul.changes { margin: .2rem 0 .5rem; padding-left: 1.2rem; color: #31373d; font-size: 14px; }
.warning { color: var(--del-fg); }
"#;

pub(super) fn render(catalog: &Catalog) -> String {
    let mut html = String::new();
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str(
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Event catalog</title>\n",
    );
    let _ = writeln!(html, "<style>{STYLE}</style>\n</head>\n<body>");
    contents(&mut html, catalog);
    html.push_str("<main>\n<h1>Event catalog</h1>\n");
    let _ = writeln!(
        html,
        "<p class=\"summary\">{}</p>",
        escape_html(&catalog.summary())
    );
    for aggregate in &catalog.aggregates {
        let _ = writeln!(
            html,
            "<section id=\"{}\">\n<h2>Aggregate {}</h2>\n<p>Rust type <code>{}</code></p>",
            escape_html(&aggregate.anchor),
            escape_html(&aggregate.name),
            escape_html(&aggregate.type_name)
        );
        html.push_str(
            "<table>\n<thead><tr><th>Event</th><th>Writes version</th><th>Decodes versions</th><th>Personal data</th></tr></thead>\n<tbody>\n",
        );
        for (name, version) in &aggregate.events {
            let event = catalog.event(name);
            let link = match event {
                Some(e) => format!(
                    "<a href=\"#{}\">{}</a>",
                    escape_html(&e.anchor),
                    escape_html(name)
                ),
                None => format!("{} (not registered)", escape_html(name)),
            };
            let decodes = event.map_or_else(String::new, versions_span);
            let personal = match event.map(|e| e.personal) {
                Some(PersonalData::OfStream | PersonalData::InField(_)) => {
                    "<span class=\"badge personal\">personal</span>"
                }
                _ => "",
            };
            let _ = writeln!(
                html,
                "<tr><td>{link}</td><td>v{version}</td><td>{}</td><td>{personal}</td></tr>",
                escape_html(&decodes)
            );
        }
        html.push_str("</tbody>\n</table>\n</section>\n");
    }
    html.push_str("<section id=\"events\">\n<h2>Events</h2>\n");
    for event in catalog.in_reading_order() {
        render_event(&mut html, event);
    }
    html.push_str("</section>\n");
    if !catalog.types.is_empty() {
        nested_types(&mut html, catalog);
    }
    html.push_str("</main>\n</body>\n</html>\n");
    html
}

fn contents(html: &mut String, catalog: &Catalog) {
    html.push_str("<nav id=\"contents\">\n<h2>Contents</h2>\n<ul>\n");
    let event_item = |html: &mut String, event: &EventEntry| {
        let _ = writeln!(
            html,
            "<li><a href=\"#{}\">{}</a> <span class=\"ver\">v{}</span></li>",
            escape_html(&event.anchor),
            escape_html(&event.name),
            event.latest
        );
    };
    for aggregate in &catalog.aggregates {
        let _ = writeln!(
            html,
            "<li><a href=\"#{}\"><strong>{}</strong></a>\n<ul>",
            escape_html(&aggregate.anchor),
            escape_html(&aggregate.name)
        );
        for (name, _) in &aggregate.events {
            if let Some(event) = catalog.event(name) {
                event_item(html, event);
            }
        }
        html.push_str("</ul>\n</li>\n");
    }
    let unlisted: Vec<&EventEntry> = catalog.unlisted().collect();
    if !unlisted.is_empty() {
        html.push_str("<li><strong>Events no aggregate lists</strong>\n<ul>\n");
        for event in unlisted {
            event_item(html, event);
        }
        html.push_str("</ul>\n</li>\n");
    }
    if !catalog.types.is_empty() {
        html.push_str("<li><a href=\"#nested-types\"><strong>Nested types</strong></a></li>\n");
    }
    html.push_str("</ul>\n</nav>\n");
}

fn render_event(html: &mut String, event: &EventEntry) {
    let _ = writeln!(
        html,
        "<section class=\"event\" id=\"{}\">",
        escape_html(&event.anchor)
    );
    let personal = if event.personal == PersonalData::None {
        ""
    } else {
        " <span class=\"badge personal\">personal data</span>"
    };
    let _ = writeln!(
        html,
        "<h3>{} <span class=\"badge\">v{}</span>{personal}</h3>",
        escape_html(&event.name),
        event.latest
    );
    if !event.doc.is_empty() {
        html.push_str("<div class=\"doc\">\n");
        for paragraph in doc_for_catalog(&event.doc)
            .split("\n\n")
            .filter(|p| !p.trim().is_empty())
        {
            let _ = writeln!(html, "<p>{}</p>", inline_code(paragraph.trim()));
        }
        html.push_str("</div>\n");
    }
    html.push_str("<dl class=\"facts\">\n");
    let _ = writeln!(
        html,
        "<dt>Rust type</dt><dd><code>{}</code></dd>",
        escape_html(&event.type_name)
    );
    let _ = writeln!(
        html,
        "<dt>Versions</dt><dd>writes v{}; decodes {}</dd>",
        event.latest,
        escape_html(&versions_span(event))
    );
    if !event.aggregates.is_empty() {
        let names: Vec<String> = event.aggregates.iter().map(|a| escape_html(a)).collect();
        let _ = writeln!(html, "<dt>Listed by</dt><dd>{}</dd>", names.join(", "));
    }
    if !event.aliases.is_empty() {
        let names: Vec<String> = event
            .aliases
            .iter()
            .map(|a| format!("<code>{}</code>", escape_html(a)))
            .collect();
        let _ = writeln!(
            html,
            "<dt>Old names</dt><dd>{} (records stored under them decode as this event)</dd>",
            names.join(", ")
        );
    }
    match event.personal {
        PersonalData::None => {}
        PersonalData::OfStream => html.push_str(
            "<dt>Personal data</dt><dd>the data subject is the aggregate's stream: encrypted with its key, forgotten with it</dd>\n",
        ),
        PersonalData::InField(field) => {
            let _ = writeln!(
                html,
                "<dt>Personal data</dt><dd>the data subject's id is in field <code>{}</code>: encrypted with their key, forgotten with them</dd>",
                escape_html(field)
            );
        }
    }
    html.push_str("</dl>\n");

    let steps: Vec<_> = event.versions.iter().filter_map(|v| v.upcast).collect();
    if !steps.is_empty() {
        html.push_str("<h5>Upcaster chain</h5>\n<table>\n<thead><tr><th>Step</th><th>Kind</th><th>Upcaster</th></tr></thead>\n<tbody>\n");
        for step in steps {
            let (kind, with) = upcast_words(&step);
            let _ = writeln!(
                html,
                "<tr><td>v{} → v{}</td><td>{}</td><td>{}</td></tr>",
                step.from,
                step.to,
                inline_code(kind),
                inline_code(&with)
            );
        }
        html.push_str("</tbody>\n</table>\n");
    }
    for version in &event.versions {
        render_version(html, version);
    }
    html.push_str("</section>\n");
}

fn render_version(html: &mut String, version: &VersionEntry) {
    html.push_str("<div class=\"version\">\n");
    let type_name = version
        .type_name
        .as_deref()
        .map(|t| format!(" <code>{}</code>", escape_html(t)))
        .unwrap_or_default();
    let locked = if version.locked {
        ""
    } else {
        " <span class=\"badge warning\">not locked</span>"
    };
    let _ = writeln!(
        html,
        "<h4>Version {}{type_name}{locked}</h4>",
        version.version
    );
    let _ = writeln!(
        html,
        "<p class=\"source\">{}</p>",
        version.source.sentence()
    );
    if !version.lock_differs.is_empty() {
        html.push_str("<ul class=\"changes warning\">\n");
        for sentence in &version.lock_differs {
            let _ = writeln!(
                html,
                "<li>differs from the lock: {}</li>",
                inline_code(sentence)
            );
        }
        html.push_str("</ul>\n");
    }
    if let Some(shape) = &version.shape {
        fields_table(html, shape);
    }
    if let Some(diff) = &version.diff {
        let _ = writeln!(html, "<h5>Changes from v{} to v{}</h5>", diff.from, diff.to);
        if diff.is_empty() {
            html.push_str(
                "<p class=\"unknown\">The same fields: the upcaster changes values only.</p>\n",
            );
        } else {
            let _ = writeln!(
                html,
                "<table class=\"diff\">\n<thead><tr><th>v{}</th><th>v{}</th></tr></thead>\n<tbody>",
                diff.from, diff.to
            );
            for row in &diff.rows {
                let status = row.status.as_str();
                let mark = if row.status == RowStatus::Same {
                    String::new()
                } else {
                    format!("<span class=\"mark\">{status}</span>")
                };
                let _ = writeln!(
                    html,
                    "<tr class=\"{status}\">{}{}</tr>",
                    side("before", row.before.as_ref(), ""),
                    side("after", row.after.as_ref(), &mark),
                );
            }
            html.push_str("</tbody>\n</table>\n");
            let notes: Vec<String> = diff.notes().collect();
            if !notes.is_empty() {
                html.push_str("<ul class=\"changes\">\n");
                for note in &notes {
                    let _ = writeln!(html, "<li>{}</li>", inline_code(note));
                }
                html.push_str("</ul>\n");
            }
        }
    }
    html.push_str("</div>\n");
}

/// One side of a diff row: the field, or an empty cell.
fn side(class: &str, field: Option<&Field>, mark: &str) -> String {
    match field {
        Some(field) => format!(
            "<td class=\"{class}\">{mark}<code>{}</code></td>",
            escape_html(&field_text(field))
        ),
        None => format!("<td class=\"{class} empty\">{mark}</td>"),
    }
}

fn fields_table(html: &mut String, shape: &Shape) {
    for attr in &shape.attrs {
        let _ = writeln!(
            html,
            "<p>Type attribute <code>{}</code></p>",
            escape_html(attr)
        );
    }
    if shape.fields.is_empty() {
        html.push_str("<p class=\"unknown\">No fields.</p>\n");
        return;
    }
    // The serde column only where some field has attributes.
    let with_attrs = shape.fields.iter().any(|f| !f.attrs.is_empty());
    let serde_header = if with_attrs { "<th>serde</th>" } else { "" };
    let _ = writeln!(
        html,
        "<table class=\"fields\">\n<thead><tr><th>Field</th><th>Type</th>{serde_header}</tr></thead>\n<tbody>"
    );
    for field in &shape.fields {
        let attrs = if with_attrs {
            format!(
                "<td><code>{}</code></td>",
                escape_html(&field.attrs.join(" "))
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            html,
            "<tr><td><code>{}</code></td><td><code>{}</code></td>{attrs}</tr>",
            escape_html(&field.name),
            escape_html(&field.ty),
        );
    }
    html.push_str("</tbody>\n</table>\n");
}

fn nested_types(html: &mut String, catalog: &Catalog) {
    html.push_str("<section id=\"nested-types\">\n<h2>Nested types</h2>\n<p>Types stored inside events, as the schema lock records them.</p>\n");
    for locked in &catalog.types {
        let _ = writeln!(
            html,
            "<div class=\"event\">\n<h3>{} <span class=\"badge\">{}</span></h3>\n<p>Rust type <code>{}</code></p>",
            escape_html(&locked.name),
            locked.kind,
            escape_html(&locked.type_name)
        );
        if !locked.stored_at.is_empty() {
            html.push_str("<ul class=\"changes\">\n");
            for at in &locked.stored_at {
                let _ = writeln!(
                    html,
                    "<li>stored in {} v{} at <code>{}</code></li>",
                    escape_html(&at.event),
                    at.version,
                    escape_html(&at.path)
                );
            }
            html.push_str("</ul>\n");
        }
        fields_table(html, &locked.shape);
        html.push_str("</div>\n");
    }
    html.push_str("</section>\n");
}

/// Escapes `text` and sets its `` `code` `` spans in `<code>`.
fn inline_code(text: &str) -> String {
    with_code_spans(text, escape_html, |code| {
        format!("<code>{}</code>", escape_html(code))
    })
}
