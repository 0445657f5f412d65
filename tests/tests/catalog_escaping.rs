//! The event catalog of events whose names, aliases, serde renames and docs are hostile to
//! HTML and Markdown, derived for real: nothing of them reaches the page as markup, and both
//! documents stay well formed.

mod support;

use eventsource_core::catalog::Catalog;
use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};
use support::markup::{check_html, check_markdown};

/// Says <script>alert("doc")</script> & `<b>code</b>` | [`Hostile`].
#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(
    name = "<img src=x onerror=alert(1)>|`x`",
    version = 2,
    aliases("</td><script>old</script>"),
    upcast(from = 1, with = add_note)
)]
struct Hostile {
    #[serde(rename = "</code>|`y`")]
    note: String,
    amount: Option<Vec<u8>>,
}

fn add_note(mut value: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
    value["</code>|`y`"] = "".into();
    Ok(value)
}

#[derive(Aggregate, Default, Debug)]
#[aggregate(name = "Agg\"><i>|", events(Hostile))]
struct Agg;

impl Apply<Hostile> for Agg {
    fn apply(&mut self, _: &Hostile) {}
}

#[test]
fn hostile_names_stay_text_and_the_documents_stay_well_formed() {
    assert_eq!(<Agg as Aggregate>::NAME, "Agg\"><i>|");
    let catalog = Catalog::from_registry(None).expect("the catalog builds");
    assert_eq!(catalog.events.len(), 1);

    let html = catalog.to_html();
    if let Err(problems) = check_html(&html) {
        panic!("malformed HTML:\n{}\n\n{html}", problems.join("\n"));
    }
    for raw in [
        "<img",
        "<script",
        "</td><script",
        "<b>code",
        "\"><i>",
        "</code>|",
    ] {
        assert!(!html.contains(raw), "`{raw}` reached the page as markup");
    }
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;|"));
    assert!(
        html.contains("<code>&lt;b&gt;code&lt;/b&gt;</code>"),
        "{html}"
    );

    let md = catalog.to_markdown();
    if let Err(problems) = check_markdown(&md) {
        panic!("malformed Markdown:\n{}\n\n{md}", problems.join("\n"));
    }
    // `check_markdown` refuses any raw HTML but its anchors; the names are there, escaped.
    assert!(
        md.contains(r"### \<img src\=x onerror\=alert\(1\)\>|\`x\`"),
        "{md}"
    );
}
