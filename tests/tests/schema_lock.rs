//! The runtime half of the schema lock: writing it from the registry, and the checks one macro
//! expansion can't make (a locked version no chain decodes, a locked name no type carries, a
//! locked shape that differs). The compile-time half is in `tests/ui/lock/`.

use std::path::Path;

use eventsource_core::schema::{LockMode, check_lock};
use eventsource_examples::bank::BankAccount;
use eventsource_schema::{Field, LOCK_FILE, Lock, LockedEvent, Shape};

const PACKAGE: &str = "eventsource-examples";

fn read(dir: &Path) -> Lock {
    Lock::parse(&std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap()).unwrap()
}

fn write(dir: &Path, lock: &Lock) {
    std::fs::write(dir.join(LOCK_FILE), lock.render()).unwrap();
}

#[test]
fn write_then_check_round_trips() {
    assert_eq!(
        <BankAccount as eventsource_core::Aggregate>::NAME,
        "BankAccount"
    );
    let dir = tempfile::tempdir().unwrap();

    let missing = check_lock(dir.path(), PACKAGE, LockMode::Check).unwrap_err();
    assert!(
        missing.unlocked.contains(&("Deposited".into(), 3)),
        "{missing}"
    );
    assert!(
        missing
            .to_string()
            .contains("EVENTSOURCE_LOCK=write cargo test"),
        "{missing}"
    );

    check_lock(dir.path(), PACKAGE, LockMode::Write).unwrap();
    check_lock(dir.path(), PACKAGE, LockMode::Check).unwrap();
    let lock = read(dir.path());
    let deposited = lock.get("Deposited", 3).unwrap();
    assert_eq!(
        deposited.shape.as_written().fields,
        [Field::new("cents", "u64"), Field::new("currency", "String")]
    );
    assert!(
        deposited.shape.fields.iter().all(|f| f.shape.is_some()),
        "every field's type fingerprint is locked: {deposited:?}"
    );
    assert!(lock.get("Deposited", 2).is_some() && lock.get("Opened", 1).is_some());
    assert!(lock.aggregates().any(|(name, _)| name == "BankAccount"));

    // The committed lock of the examples crate is what the code writes.
    let committed = Lock::parse(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../eventsource-examples")
                .join(LOCK_FILE),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(committed, lock);
}

#[test]
fn a_changed_locked_shape_is_reported_and_only_rewritten_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    check_lock(dir.path(), PACKAGE, LockMode::Write).unwrap();
    let mut lock = read(dir.path());
    let old = Shape {
        attrs: vec![],
        fields: vec![Field::new("cents", "u32"), Field::new("currency", "String")],
    };
    lock.insert(LockedEvent::new("Deposited", 3, "old::Deposited", old));
    write(dir.path(), &lock);

    for mode in [LockMode::Check, LockMode::Write] {
        let report = check_lock(dir.path(), PACKAGE, mode).unwrap_err();
        assert_eq!(
            report.changed,
            [(
                "Deposited".to_owned(),
                3,
                vec!["field `cents` changed type from `u32` to `u64`".to_owned()]
            )]
        );
        assert!(
            report
                .to_string()
                .contains("raise the version and add an upcaster"),
            "{report}"
        );
        assert_eq!(
            read(dir.path()),
            lock,
            "{mode:?} must not rewrite a locked version"
        );
    }
    check_lock(dir.path(), PACKAGE, LockMode::Overwrite).unwrap();
    check_lock(dir.path(), PACKAGE, LockMode::Check).unwrap();
}

#[test]
fn locked_versions_without_a_decoder_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    check_lock(dir.path(), PACKAGE, LockMode::Write).unwrap();
    let mut lock = read(dir.path());
    // A version newer than any type decodes, and a name no type carries any more.
    lock.insert(LockedEvent::new(
        "Deposited",
        4,
        "old::Deposited",
        Shape::default(),
    ));
    lock.insert(LockedEvent::new(
        "AccountFrozen",
        1,
        "old::AccountFrozen",
        Shape::default(),
    ));
    write(dir.path(), &lock);

    let report = check_lock(dir.path(), PACKAGE, LockMode::Write).unwrap_err();
    assert_eq!(report.unreachable, [("Deposited".to_owned(), 4)]);
    assert_eq!(report.orphaned, ["AccountFrozen"]);
    let text = report.to_string();
    assert!(
        text.contains("restore the upcaster from version 4"),
        "{text}"
    );
    assert!(
        text.contains("#[event(name = \"AccountFrozen\")]"),
        "{text}"
    );
}

#[test]
fn an_unreadable_lock_is_reported_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(LOCK_FILE), "this is not a lock\n").unwrap();
    let report = check_lock(dir.path(), PACKAGE, LockMode::Write).unwrap_err();
    assert!(
        report.io.as_deref().unwrap_or_default().contains("line 1"),
        "{report}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(),
        "this is not a lock\n"
    );
}

/// Events whose fields hold nested types, locked under their own package prefix.
mod nested {
    // Only registered, never built: the lock writer reads them from the registry.
    #![allow(dead_code)]

    use eventsource_core::{Event, EventData};
    use serde::{Deserialize, Serialize};

    #[derive(EventData, Serialize, Deserialize)]
    struct Geo {
        lat: f64,
        lon: f64,
    }

    #[derive(EventData, Serialize, Deserialize)]
    struct Address {
        street: String,
        postcode: String,
        geo: Option<Geo>,
    }

    #[derive(EventData, Serialize, Deserialize)]
    enum Currency {
        Eur,
        Usd,
    }

    #[derive(Event, Serialize, Deserialize)]
    #[event(name = "NestedOpened")]
    struct Opened {
        owner: String,
        addresses: Vec<Address>,
        currency: Currency,
    }
}

#[test]
fn nested_types_are_locked_once_with_where_they_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let package = "schema_lock::nested";
    let missing = check_lock(dir.path(), package, LockMode::Check).unwrap_err();
    assert_eq!(missing.unlocked_types, ["Address", "Currency", "Geo"]);

    check_lock(dir.path(), package, LockMode::Write).unwrap();
    check_lock(dir.path(), package, LockMode::Check).unwrap();
    let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
    assert!(
        text.contains("\ntype \"Address\" struct type=schema_lock::nested::Address fingerprint="),
        "{text}"
    );
    assert!(
        text.contains("    in \"NestedOpened\" v1 at NestedOpened.addresses.geo\n"),
        "{text}"
    );
    let lock = read(dir.path());
    let address = lock.get_type("Address").unwrap();
    let opened = lock.get("NestedOpened", 1).unwrap();
    let field = opened
        .shape
        .fields
        .iter()
        .find(|f| f.name == "addresses")
        .unwrap();
    assert_ne!(
        field.shape,
        Some(address.fingerprint()),
        "Vec<Address>, not Address"
    );

    // The lock says `postcode` was a number: the code's `String` is a change, at its path.
    let mut changed = lock.clone();
    let mut old = address.clone();
    old.shape.fields[1] = Field::new("postcode", "u32").with_shape(7);
    changed.insert_type(old);
    write(dir.path(), &changed);
    let report = check_lock(dir.path(), package, LockMode::Write).unwrap_err();
    assert_eq!(
        report.changed_types,
        [(
            "Address".to_owned(),
            vec!["`NestedOpened.addresses.postcode: u32 -> String`".to_owned()]
        )]
    );
    assert!(
        report
            .to_string()
            .contains("A nested type has no version of its own"),
        "{report}"
    );
}
