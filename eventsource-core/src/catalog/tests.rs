//! The catalog's model from hand-written registrations: versions from the code and the lock,
//! upcaster steps, diffs, anchors, and escaping of hostile names.

use super::*;
use crate::registry::{PersonalData, UpcastKind, UpcastStep};
use crate::schema::{Change, FieldShape, LockedEvent};

const TWO_FIELDS: &[FieldShape] = &[FieldShape::AS_WRITTEN, FieldShape::AS_WRITTEN];
const ONE_FIELD: &[FieldShape] = &[FieldShape::AS_WRITTEN];

fn event(
    name: &'static str,
    version: u32,
    type_name: &'static str,
    shape: &'static str,
    fields: &'static [FieldShape],
) -> EventRegistration {
    EventRegistration {
        shape,
        fields,
        ..crate::registry::tests::event(name, version, type_name)
    }
}

/// `Deposited`: v1 only in the lock, v2 a type with a function step, v3 a type with a typed
/// step.
fn deposited() -> [EventRegistration; 2] {
    let mut v2 = event(
        "Deposited",
        2,
        "bank::DepositedV2",
        "amount: u64\ncurrency: String\n",
        TWO_FIELDS,
    );
    v2.oldest_version = 1;
    v2.upcasts = &[UpcastStep {
        from: 1,
        to: 2,
        kind: UpcastKind::Function,
        with: "add_currency",
    }];
    let mut v3 = event(
        "Deposited",
        3,
        "bank::Deposited",
        "cents: u64\ncurrency: String #[serde(default)]\n",
        TWO_FIELDS,
    );
    v3.oldest_version = 1;
    v3.upcasts = &[UpcastStep {
        from: 2,
        to: 3,
        kind: UpcastKind::Typed,
        with: "DepositedV2",
    }];
    v3.doc = "Money was paid in.\n\nIn `cents`.";
    v3.personal = PersonalData::InField("payer");
    [v2, v3]
}

fn lock_with_v1() -> Lock {
    let mut lock = Lock::default();
    lock.insert(LockedEvent::new(
        "Deposited",
        1,
        "bank::DepositedV1",
        Shape::parse_canonical("amount: u64\n").unwrap(),
    ));
    lock
}

fn account() -> AggregateRegistration {
    AggregateRegistration {
        name: "Account",
        type_name: "bank::Account",
        events: &[("Deposited", 3)],
    }
}

#[test]
fn every_version_with_its_fields_source_and_upcaster() {
    let events = deposited();
    let lock = lock_with_v1();
    let catalog = Catalog::from_registrations(&events, [&account()], Some(&lock)).unwrap();
    let deposited = catalog.event("Deposited").unwrap();
    assert_eq!(deposited.latest, 3);
    assert_eq!(deposited.type_name, "bank::Deposited");
    assert_eq!(deposited.aggregates, ["Account"]);
    assert_eq!(deposited.personal, PersonalData::InField("payer"));
    let versions: Vec<(u32, ShapeSource, Option<&str>)> = deposited
        .versions
        .iter()
        .map(|v| (v.version, v.source, v.type_name.as_deref()))
        .collect();
    assert_eq!(
        versions,
        [
            (1, ShapeSource::Lock, Some("bank::DepositedV1")),
            (2, ShapeSource::Code, Some("bank::DepositedV2")),
            (3, ShapeSource::Code, Some("bank::Deposited")),
        ]
    );
    let steps: Vec<Option<&str>> = deposited
        .versions
        .iter()
        .map(|v| v.upcast.map(|s| s.with))
        .collect();
    assert_eq!(steps, [None, Some("add_currency"), Some("DepositedV2")]);
    assert!(deposited.versions[0].locked);
    assert!(!deposited.versions[1].locked);
    assert!(deposited.versions[0].diff.is_none());
}

#[test]
fn diffs_show_added_removed_and_changed_fields_side_by_side() {
    let events = deposited();
    let lock = lock_with_v1();
    let catalog = Catalog::from_registrations(&events, [], Some(&lock)).unwrap();
    let deposited = catalog.event("Deposited").unwrap();

    let one_to_two = deposited.versions[1].diff.as_ref().unwrap();
    assert_eq!((one_to_two.from, one_to_two.to), (1, 2));
    let rows: Vec<(Option<&str>, Option<&str>, RowStatus)> = one_to_two
        .rows
        .iter()
        .map(|r| {
            (
                r.before.as_ref().map(|f| f.name.as_str()),
                r.after.as_ref().map(|f| f.name.as_str()),
                r.status,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (Some("amount"), Some("amount"), RowStatus::Same),
            (None, Some("currency"), RowStatus::Added),
        ]
    );
    let sentences: Vec<String> = one_to_two.changes.iter().map(Change::sentence).collect();
    assert_eq!(sentences, ["field `currency` was added (`String`)"]);
    assert_eq!(one_to_two.notes().count(), 0, "the rows show it all");

    let two_to_three = deposited.versions[2].diff.as_ref().unwrap();
    // In the newer version's order, the removed field where it stood.
    let statuses: Vec<RowStatus> = two_to_three.rows.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [RowStatus::Removed, RowStatus::Added, RowStatus::Changed]
    );
    assert_eq!(
        two_to_three.rows[2]
            .after
            .as_ref()
            .map(field_text)
            .as_deref(),
        Some("currency: String #[serde(default)]")
    );
    assert_eq!(two_to_three.changes.len(), 3, "{:?}", two_to_three.changes);
}

#[test]
fn a_field_whose_type_holds_something_else_is_changed() {
    let before = Shape {
        attrs: vec![],
        fields: vec![Field::new("address", "Address").with_shape(1)],
    };
    let after = Shape {
        attrs: vec![],
        fields: vec![Field::new("address", "Address").with_shape(2)],
    };
    let diff = VersionDiff::between(1, &before, 2, &after);
    assert_eq!(diff.rows[0].status, RowStatus::Changed);
    let notes: Vec<String> = diff.notes().collect();
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].contains("what `Address` holds changed"),
        "{notes:?}"
    );
    let same = VersionDiff::between(1, &before, 2, &before);
    assert!(same.is_empty());
    assert_eq!(same.rows[0].status, RowStatus::Same);
}

#[test]
fn rows_follow_both_orders_and_a_reordering_is_noted() {
    let shape = |names: &[&str]| Shape {
        attrs: vec![],
        fields: names.iter().map(|n| Field::new(*n, "u8")).collect(),
    };
    let diff = VersionDiff::between(
        1,
        &shape(&["a", "gone", "b", "c"]),
        2,
        &shape(&["b", "new", "a", "c"]),
    );
    let rows: Vec<(Option<&str>, Option<&str>)> = diff
        .rows
        .iter()
        .map(|r| {
            (
                r.before.as_ref().map(|f| f.name.as_str()),
                r.after.as_ref().map(|f| f.name.as_str()),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (Some("b"), Some("b")),
            (None, Some("new")),
            (Some("a"), Some("a")),
            (Some("gone"), None),
            (Some("c"), Some("c")),
        ]
    );
    assert_eq!(diff.rows.len(), 5, "every field once");
    // The lock names a reordering only when nothing else changed; the rows show it anyway.
    let swapped = VersionDiff::between(1, &shape(&["a", "b"]), 2, &shape(&["b", "a"]));
    assert_eq!(
        swapped.notes().collect::<Vec<_>>(),
        ["the fields were reordered"]
    );
    assert!(swapped.rows.iter().all(|r| r.status == RowStatus::Same));
}

#[test]
fn without_a_lock_an_untyped_version_is_unknown_and_has_no_diff() {
    let events = deposited();
    let catalog = Catalog::from_registrations(&events, [], None).unwrap();
    let deposited = catalog.event("Deposited").unwrap();
    assert_eq!(deposited.versions[0].source, ShapeSource::Unknown);
    assert!(deposited.versions[0].shape.is_none());
    assert!(deposited.versions[1].diff.is_none());
    assert!(deposited.versions[2].diff.is_some());
    assert!(catalog.to_markdown().contains("Fields unknown"));
    assert_eq!(catalog.unlisted().count(), 1);
}

#[test]
fn a_code_shape_that_differs_from_its_lock_is_flagged() {
    let events = deposited();
    let mut lock = lock_with_v1();
    lock.insert(LockedEvent::new(
        "Deposited",
        3,
        "bank::Deposited",
        Shape::parse_canonical("cents: u32\ncurrency: String #[serde(default)]\n").unwrap(),
    ));
    let catalog = Catalog::from_registrations(&events, [], Some(&lock)).unwrap();
    let v3 = &catalog.event("Deposited").unwrap().versions[2];
    assert_eq!(
        v3.lock_differs,
        ["field `cents` changed type from `u32` to `u64`"]
    );
    assert!(catalog.to_html().contains("differs from the lock"));
}

#[test]
fn an_unreadable_registered_shape_is_an_error_not_a_panic() {
    // One field line but no field types: what a broken derive would register.
    let events = [event("Odd", 1, "x::Odd", "a: u8\n", &[])];
    let error = Catalog::from_registrations(&events, [], None).unwrap_err();
    assert!(error.to_string().contains("`x::Odd`"), "{error}");
}

#[test]
fn anchors_are_unique_even_when_names_slug_alike() {
    let events = [
        event("A b", 1, "x::Ab1", "a: u8\n", ONE_FIELD),
        event("A-b", 1, "x::Ab2", "a: u8\n", ONE_FIELD),
        event("<>", 1, "x::Angle", "a: u8\n", ONE_FIELD),
    ];
    let catalog = Catalog::from_registrations(&events, [], None).unwrap();
    let anchors: Vec<&str> = catalog.events.iter().map(|e| e.anchor.as_str()).collect();
    assert_eq!(anchors, ["event-x", "event-a-b", "event-a-b-2"]);
}

#[test]
fn html_escaping_defuses_markup_and_attributes() {
    assert_eq!(escape_html("plain"), "plain");
    assert_eq!(
        escape_html("\"><img src=x onerror=alert(1)>"),
        "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
    );
    assert_eq!(escape_html("a & b's"), "a &amp; b&#39;s");
    assert_eq!(escape_html("&amp;"), "&amp;amp;");
}

#[test]
fn markdown_escaping_keeps_names_literal() {
    assert_eq!(escape_markdown("Deposited"), "Deposited");
    assert_eq!(
        escape_markdown("# [x](javascript:y) <b>_z_</b>\nnext"),
        r"\# \[x\]\(javascript:y\) \<b\>\_z\_\</b\> next"
    );
    assert_eq!(code_span("``"), "``` `` ```");
    assert_eq!(code_span(""), "` `");
    assert_eq!(code_span("a\nb"), "`a b`");
}

#[test]
fn hostile_names_never_reach_the_page_as_markup() {
    let mut hostile = event(
        "<script>alert('x')</script>",
        1,
        "x::\"Evil\"",
        "a|b: Vec<&'static str> #[serde(rename = \"</td>\")]\n",
        ONE_FIELD,
    );
    hostile.aliases = &["<b>old</b>"];
    hostile.doc = "Says <i>hi</i> & `<tt>`.";
    let events = [hostile];
    let aggregates = [AggregateRegistration {
        name: "<Agg|x>",
        type_name: "x::Agg",
        events: &[("<script>alert('x')</script>", 1)],
    }];
    let catalog = Catalog::from_registrations(&events, &aggregates, None).unwrap();

    let html = catalog.to_html();
    for raw in ["<script>", "<b>old", "<i>hi", "<tt>", "</td>\"", "<Agg"] {
        assert!(!html.contains(raw), "{raw} reached the page:\n{html}");
    }
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(html.contains("<code>&lt;tt&gt;</code>"), "{html}");

    let md = catalog.to_markdown();
    assert!(!md.contains("<script>"), "{md}");
    assert!(md.contains(r"> Says \<i>hi\</i> & `<tt>`."), "{md}");
    assert!(!md.contains("<Agg|x>"), "{md}");
    // The field with a `|` in its name stays one cell.
    assert!(
        md.contains("| `a\\|b` | `Vec<&'static str>` | `#[serde(rename = \"</td>\")]` |\n"),
        "{md}"
    );
}

#[test]
fn intra_doc_links_become_code_and_markdown_links_stay() {
    assert_eq!(
        doc_for_catalog("See [`BankAccount::forgettable`] and [`x`](https://e.x) or [`a`][b]."),
        "See `BankAccount::forgettable` and [`x`](https://e.x) or [`a`][b]."
    );
    assert_eq!(doc_for_catalog("[`open"), "[`open");
}

#[test]
fn the_reading_order_follows_the_aggregates_then_the_rest() {
    let events = [
        event("B", 1, "x::B", "a: u8\n", ONE_FIELD),
        event("A", 1, "x::A", "a: u8\n", ONE_FIELD),
        event("Z", 1, "x::Z", "a: u8\n", ONE_FIELD),
    ];
    let aggregates = [
        AggregateRegistration {
            name: "First",
            type_name: "x::First",
            events: &[("Z", 1), ("B", 1)],
        },
        AggregateRegistration {
            name: "Second",
            type_name: "x::Second",
            events: &[("B", 1)],
        },
    ];
    let catalog = Catalog::from_registrations(&events, &aggregates, None).unwrap();
    let order: Vec<&str> = catalog
        .in_reading_order()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(order, ["Z", "B", "A"]);
    assert_eq!(catalog.event("B").unwrap().aggregates, ["First", "Second"]);
}

#[test]
fn the_lock_s_nested_types_get_a_section_of_their_own() {
    let lock = Lock::parse(
        "event \"Opened\" v1 type=bank::Opened\n    address: Address\n\n\
         type \"Address\" struct type=bank::Address\n    in \"Opened\" v1 at Opened.address\n    street: String\n",
    )
    .unwrap();
    let events = [event(
        "Opened",
        1,
        "bank::Opened",
        "address: Address\n",
        ONE_FIELD,
    )];
    let catalog = Catalog::from_registrations(&events, [], Some(&lock)).unwrap();
    assert_eq!(catalog.types.len(), 1);
    let md = catalog.to_markdown();
    assert!(md.contains("- [Nested types](#nested-types)"), "{md}");
    assert!(md.contains("### Address (struct)"), "{md}");
    assert!(
        md.contains("- stored in Opened v1 at `Opened.address`"),
        "{md}"
    );
    assert!(md.contains("| `street` | `String` |"), "{md}");
    let html = catalog.to_html();
    assert!(html.contains("<section id=\"nested-types\">"));
    assert!(html.contains("<a href=\"#nested-types\">"));
}
