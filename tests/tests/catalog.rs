//! The bank's event catalog: generated from the registry and the bank's schema lock, it lists
//! every registered bank aggregate and event with every version, field and upcaster step (the
//! expectations are read from the registry and the lock, not written out here), its Markdown and
//! HTML are well formed, and the committed `docs/catalog/bank.md` is the one the code generates.

mod support;

use eventsource_core::Aggregate;
use eventsource_core::catalog::{Catalog, ShapeSource, read_lock};
use eventsource_core::registry::{self, EventRegistration, PersonalData};
use eventsource_core::schema::{Lock, Shape};
use eventsource_examples::bank::BankAccount;
use eventsource_examples::transfers::MoneyTransfer;
use support::markup::{check_html, check_markdown};

const BANK: &str = "eventsource_examples::";

fn bank_lock() -> Lock {
    read_lock(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../eventsource-examples/events.lock"
    ))
    .expect("the bank's lock reads")
}

fn bank_catalog() -> Catalog {
    // Names the bank's aggregates so that the library's registrations are linked in.
    assert_eq!(
        (BankAccount::NAME, MoneyTransfer::NAME),
        ("BankAccount", "MoneyTransfer")
    );
    Catalog::from_registry(Some(&bank_lock())).expect("the catalog builds")
}

fn bank_events() -> Vec<&'static EventRegistration> {
    let events: Vec<_> = registry::events()
        .filter(|e| e.type_name.starts_with(BANK))
        .collect();
    assert!(
        events.len() >= 10,
        "the bank's events are registered: {}",
        events.len()
    );
    events
}

/// The part of a Markdown document from `<a id="{anchor}">` to the next event's anchor.
fn section<'a>(md: &'a str, anchor: &str) -> &'a str {
    let start = md
        .find(&format!("<a id=\"{anchor}\"></a>"))
        .unwrap_or_else(|| panic!("no anchor `{anchor}`"));
    let rest = &md[start + 1..];
    let end = rest
        .find("<a id=\"event-")
        .map_or(md.len(), |e| start + 1 + e);
    &md[start..end]
}

fn field_rows(shape: &Shape) -> Vec<String> {
    shape
        .fields
        .iter()
        .map(|f| format!("| `{}` | `{}` |", f.name, f.ty))
        .collect()
}

#[test]
fn every_registered_bank_event_is_listed_with_its_versions_fields_and_upcasters() {
    let catalog = bank_catalog();
    let lock = bank_lock();
    let md = catalog.to_markdown();
    let html = catalog.to_html();

    for registration in bank_events() {
        let name = registration.name;
        let entry = catalog
            .event(name)
            .unwrap_or_else(|| panic!("`{name}` is missing from the catalog"));
        let text = section(&md, &entry.anchor);
        assert!(text.contains(&format!("### {name}\n")), "{text}");
        assert!(html.contains(&format!("id=\"{}\"", entry.anchor)));

        // Every version its chain decodes, each with a heading.
        for version in registration.oldest_version..=registration.version {
            assert!(
                entry.versions.iter().any(|v| v.version == version),
                "`{name}` v{version} is missing"
            );
            assert!(
                text.contains(&format!("#### Version {version}")),
                "`{name}` v{version} has no heading:\n{text}"
            );
        }
        // The version this type writes, with its fields as the code has them.
        let written = entry
            .versions
            .iter()
            .find(|v| v.version == registration.version)
            .expect("its own version");
        assert_eq!(written.source, ShapeSource::Code);
        let shape = Shape::parse_canonical(registration.shape).expect("registered shape");
        for row in field_rows(&shape) {
            assert!(text.contains(&row), "`{name}` lacks the row {row}:\n{text}");
        }
        for step in registration.upcasts {
            assert!(
                text.contains(&format!("| v{} → v{} |", step.from, step.to))
                    && text.contains(step.with),
                "`{name}` lacks the upcaster step {step:?}:\n{text}"
            );
        }
        if registration.personal != PersonalData::None && registration.version == entry.latest {
            assert!(text.contains("**Personal data**"), "{text}");
        }
        for alias in registration.aliases {
            assert!(text.contains(&format!("`{alias}`")), "{text}");
        }
    }

    // Every locked version, with the fields the lock recorded.
    for locked in lock.events() {
        let entry = catalog
            .event(&locked.name)
            .expect("locked events are registered");
        let text = section(&md, &entry.anchor);
        let version = entry
            .versions
            .iter()
            .find(|v| v.version == locked.version)
            .unwrap_or_else(|| panic!("`{}` v{} is missing", locked.name, locked.version));
        assert!(version.locked);
        assert!(
            version.lock_differs.is_empty(),
            "{:?}",
            version.lock_differs
        );
        for row in field_rows(&locked.shape) {
            assert!(text.contains(&row), "{text}");
        }
    }

    // Every aggregate with every event it lists.
    for aggregate in registry::aggregates().filter(|a| a.type_name.starts_with(BANK)) {
        assert!(md.contains(&format!("## Aggregate {}\n", aggregate.name)));
        for (name, version) in aggregate.events {
            let anchor = &catalog
                .event(name)
                .expect("listed events are registered")
                .anchor;
            assert!(
                md.contains(&format!("| [{name}](#{anchor}) | {version} |")),
                "`{}` lacks `{name}`",
                aggregate.name
            );
        }
    }
}

#[test]
fn deposits_show_their_chain_and_the_change_to_cents_side_by_side() {
    let catalog = bank_catalog();
    let deposited = catalog.event("Deposited").expect("registered");
    let versions: Vec<(u32, ShapeSource)> = deposited
        .versions
        .iter()
        .map(|v| (v.version, v.source))
        .collect();
    // Version 1 has no type and was never locked (it predates the lock): its fields are unknown.
    assert_eq!(
        versions,
        [
            (1, ShapeSource::Unknown),
            (2, ShapeSource::Code),
            (3, ShapeSource::Code)
        ]
    );
    let diff = deposited.versions[2]
        .diff
        .as_ref()
        .expect("v2 and v3 are known");
    let rows: Vec<(Option<&str>, Option<&str>, &str)> = diff
        .rows
        .iter()
        .map(|r| {
            (
                r.before.as_ref().map(|f| f.name.as_str()),
                r.after.as_ref().map(|f| f.name.as_str()),
                r.status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (Some("amount"), None, "removed"),
            (None, Some("cents"), "added"),
            (Some("currency"), Some("currency"), "same"),
        ]
    );
    let html = catalog.to_html();
    assert!(
        html.contains("<tr class=\"removed\"><td class=\"before\"><code>amount: u64</code></td>")
    );
}

#[test]
fn the_bank_catalog_is_well_formed() {
    let catalog = bank_catalog();
    if let Err(problems) = check_html(&catalog.to_html()) {
        panic!("the HTML catalog is malformed:\n{}", problems.join("\n"));
    }
    if let Err(problems) = check_markdown(&catalog.to_markdown()) {
        panic!(
            "the Markdown catalog is malformed:\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn the_committed_markdown_catalog_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/catalog/bank.md");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == bank_catalog().to_markdown(),
        "docs/catalog/bank.md is not the catalog the code generates; refresh it with\n  \
         cargo run -p eventsource-examples --bin bank-admin -- catalog --out docs/catalog/bank.md"
    );
}

/// The checks themselves: each fails on what it is for.
#[test]
fn the_markup_checks_catch_what_they_are_for() {
    assert!(support::markup::check_html("<p><b>x</p></b>").is_err());
    assert!(support::markup::check_html("<p>1 < 2</p>").is_err());
    assert!(support::markup::check_html("<p id=\"a\"><a href=\"#b\">x</a></p>").is_err());
    assert!(support::markup::check_html("<p id=\"a\" class=\"x>y</p>").is_err());
    assert!(support::markup::check_html("<div>").is_err());
    assert_eq!(
        support::markup::check_html("<!DOCTYPE html><p id=\"a\"><a href=\"#a\">x</a><br></p>"),
        Ok(())
    );
    assert!(support::markup::check_markdown("| a | b |\n|---|---|\n| `x|y` | z |\n").is_err());
    assert!(support::markup::check_markdown("a `code\n").is_err());
    assert!(support::markup::check_markdown("a <img src=x> b\n").is_err());
    assert!(support::markup::check_markdown("a `<img src=x>` \\<b\n").is_ok());
    assert!(support::markup::check_markdown("[x](#nowhere)\n").is_err());
    assert_eq!(
        support::markup::check_markdown(
            "<a id=\"x\"></a>\n\n| a | b |\n|---|---|\n| `x\\|y` | ``a`b`` |\n\n[x](#x) \\`\n"
        ),
        Ok(())
    );
}
