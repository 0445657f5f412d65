//! Payloads at the edges: 1 MiB, every byte value, unicode.

use std::sync::Arc;

use uuid::Uuid;

use super::super::CheckResult;
use super::super::support::{
    Context, Expected, append, compare, ensure_eq, event, metadata, read, read_whole_log,
};
use super::named;
use super::{compare_snapshot, snapshot, tracking_only};
use crate::persistence::position::Position;
use crate::persistence::record::{LogQuery, NewEvent, Snapshot, StreamRange};
use crate::persistence::store::EventStore;

/// Bytes 0..=255 repeated, so every byte value (including NUL and invalid UTF-8) is stored.
pub(super) fn all_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 256) as u8).collect()
}

/// 1 MiB payloads, large metadata values and a 1 MiB snapshot state round-trip byte for byte.
pub async fn large_payloads<S: EventStore + ?Sized + 'static>(store: Arc<S>) -> CheckResult {
    named("large_payloads", async move {
        const MIB: usize = 1024 * 1024;
        let stream = Uuid::now_v7();
        let mut big = all_bytes(MIB);
        // Not just a repeating pattern: a pseudo-random tail.
        let mut x: u32 = 0x9e37_79b9;
        for b in big.iter_mut().skip(MIB / 2) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = (x >> 24) as u8;
        }
        let appended = vec![
            NewEvent {
                id: Uuid::now_v7(),
                name: "Big".into(),
                schema_version: 1,
                payload: big.clone(),
                metadata: metadata(&[("note", &"m".repeat(64 * 1024))]),
            },
            NewEvent {
                id: Uuid::now_v7(),
                name: "Big".into(),
                schema_version: 2,
                payload: big.iter().rev().copied().collect(),
                metadata: metadata(&[]),
            },
        ];
        append(&*store, stream, 0, appended.clone()).await?;
        let expected = Expected::appended(stream, 0, &appended);
        compare(
            &read(&*store, stream, StreamRange::all()).await?,
            &expected,
            "reading 1 MiB events from the stream",
        )?;
        compare(
            &read_whole_log(&*store, 10).await?,
            &expected,
            "reading 1 MiB events from the log",
        )?;
        let snap = snapshot(stream, 2, big);
        store
            .save_snapshot(snap.clone())
            .await
            .context("saving a 1 MiB snapshot")?;
        compare_snapshot(
            store
                .load_snapshot(stream, None)
                .await
                .context("loading a 1 MiB snapshot")?,
            &snap,
            "loading a 1 MiB snapshot",
        )?;
        Ok(())
    })
    .await
}

/// Unicode event names, metadata, payloads, tracker names and aggregate names round-trip exactly
/// (no normalisation), and a name filter matches them.
pub async fn unicode_names_and_payloads<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("unicode_names_and_payloads", async move {
        let stream = Uuid::now_v7();
        let name = "Überweisung💸送金";
        let appended = vec![
            NewEvent {
                id: Uuid::now_v7(),
                name: name.into(),
                schema_version: 1,
                payload: r#"{"memo":"Grüße aus Köln — 東京 🚀","emoji":"👩‍👩‍👧"}"#.into(),
                metadata: metadata(&[("benutzer", "Zoë"), ("ключ", "значение"), ("🔑", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢")]),
            },
            event("Cafe\u{301}", "decomposed é".as_bytes().to_vec()),
            event("Café", "composed é".as_bytes().to_vec()),
        ];
        append(&*store, stream, 0, appended.clone()).await?;
        let expected = Expected::appended(stream, 0, &appended);
        compare(
            &read(&*store, stream, StreamRange::all()).await?,
            &expected,
            "reading unicode events from the stream",
        )?;
        compare(
            &read_whole_log(&*store, 10).await?,
            &expected,
            "reading unicode events from the log",
        )?;
        let filtered = store
            .read_log(LogQuery::from_start(10).names([name, "Café"]))
            .await
            .context("filtering the log by unicode names")?;
        ensure_eq!(
            filtered.events.iter().map(|e| e.version).collect::<Vec<_>>(),
            vec![1, 3],
            "versions of events named {name:?} or \"Café\" (composed; the decomposed one must not match)"
        );

        let tracked = tracking_only("投影-Ω", 7);
        store
            .append(tracked)
            .await
            .context("recording a unicode tracker")?;
        ensure_eq!(
            store.tracking_position("投影-Ω").await.context("tracking_position")?,
            Position::new(7),
            "tracking position of a unicode tracker"
        );
        ensure_eq!(
            store.tracking_position("投影-Ω ").await.context("tracking_position")?,
            Position::START,
            "tracking position of a different tracker (trailing space)"
        );

        let snap = Snapshot {
            aggregate: "Kontoführung📒".into(),
            state: "État: ✓".as_bytes().to_vec(),
            ..snapshot(stream, 3, Vec::new())
        };
        store
            .save_snapshot(snap.clone())
            .await
            .context("saving a snapshot with a unicode aggregate name")?;
        compare_snapshot(
            store.load_snapshot(stream, None).await.context("load_snapshot")?,
            &snap,
            "loading a snapshot with a unicode aggregate name",
        )?;
        Ok(())
    })
    .await
}
