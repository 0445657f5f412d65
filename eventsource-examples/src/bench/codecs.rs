//! The codec comparison (`--codecs`, issue 14): W2, W3 and W4 once per payload codec setting,
//! each setting on a fresh store of the same kind (so that W4's log, and the bytes counted,
//! hold that setting's payloads only), every rate set beside the plain setting's of the same
//! run, and the bytes each setting stores per event.
//!
//! The settings ([`settings`]): plain JSON (the library's default, the baseline), MessagePack,
//! LZ4, Zstandard (with the `zstd` feature), AES-256-GCM, and MessagePack + LZ4 + AES-256-GCM.
//! Compression is set to try every payload (threshold 0): the bank's events are 30–35 bytes of
//! JSON, below the default threshold of 256 bytes, so with the default it would never run and
//! its figures would be the plain ones. Encryption keeps its keys in a [`MemoryKeyStore`], and
//! the codec caches fetched keys (clones share the cache), so the key store's own speed is not
//! what is measured: one fetch per run, then AES-GCM per payload.

use std::sync::Arc;

use eventsource_core::persistence::codec::{Compression, Format, MemoryKeyStore, PayloadCodec};
use eventsource_core::{EventStore, LogQuery, Position};

use super::figure::{Figure, thousands};
use super::workloads::{Accounts, check, w2, w3, w4};
use super::{BenchResult, BenchStore, Report, Sizes, Workload};

/// The figures' variant is this prefix and the setting's name (`codec:json+aes`).
pub const VARIANT_PREFIX: &str = "codec:";

/// The baseline setting's name: plain JSON, what a repository writes by default.
pub const PLAIN: &str = "json";

/// One codec setting of the comparison.
#[derive(Debug, Clone)]
pub struct Setting {
    /// Its name: the formats and layers, joined with `+` (`json`, `json+lz4`, `msgpack+lz4+aes`).
    pub name: &'static str,
    /// The codec the repository writes (and reads) with.
    pub codec: PayloadCodec,
}

/// The settings compared, the baseline first.
pub fn settings() -> Vec<Setting> {
    // Threshold 0: try every payload (see the module's docs).
    let lz4 = || Compression::lz4().above(0);
    let mut settings = vec![
        Setting {
            name: PLAIN,
            codec: PayloadCodec::new(),
        },
        Setting {
            name: "msgpack",
            codec: PayloadCodec::new().format(Format::MessagePack),
        },
        Setting {
            name: "json+lz4",
            codec: PayloadCodec::new().compress(lz4()),
        },
    ];
    #[cfg(feature = "zstd")]
    settings.push(Setting {
        name: "json+zstd",
        codec: PayloadCodec::new().compress(Compression::zstd(3).above(0)),
    });
    settings.extend([
        Setting {
            name: "json+aes",
            codec: PayloadCodec::new().encrypt(MemoryKeyStore::new()),
        },
        Setting {
            name: "msgpack+lz4+aes",
            codec: PayloadCodec::new()
                .format(Format::MessagePack)
                .compress(lz4())
                .encrypt(MemoryKeyStore::new()),
        },
    ]);
    settings
}

/// Runs the comparison beside `target`: for each setting a sibling store (see
/// [`BenchStore::open_sibling`]), the chosen ones of W2, W3 and W4 on it in that order, then
/// its log read back (untimed) for the bytes stored.
pub async fn run(
    target: &BenchStore,
    sizes: &Sizes,
    wanted: impl Fn(Workload) -> bool,
    report: &mut Report,
) -> BenchResult<()> {
    let mut plain: Vec<Figure> = Vec::new();
    for setting in settings() {
        let sibling = target
            .open_sibling(&format!("codec-{}", setting.name.replace('+', "-")))
            .await?;
        let outcome = run_setting(&sibling, &setting, sizes, &wanted, &plain).await;
        if let Err(error) = sibling.clean_up().await {
            eprintln!(
                "bench: cleaning up after the {} codec run: {error}",
                setting.name
            );
        }
        let figures = outcome?;
        if setting.name == PLAIN {
            plain.clone_from(&figures);
        }
        for figure in figures {
            report.push(figure);
        }
    }
    Ok(())
}

/// One setting on its own fresh store.
async fn run_setting(
    target: &BenchStore,
    setting: &Setting,
    sizes: &Sizes,
    wanted: &impl Fn(Workload) -> bool,
    plain: &[Figure],
) -> BenchResult<Vec<Figure>> {
    let store = target.name;
    let variant = format!("{VARIANT_PREFIX}{}", setting.name);
    let accounts = Accounts::new(Arc::clone(&target.store)).codec(setting.codec.clone());
    let mut figures = Vec::new();
    let mut logged = 0;
    if wanted(Workload::W2) {
        figures.push(w2(store, &variant, &accounts, sizes).await?);
        logged += sizes.w2_aggregates * sizes.w2_events.max(1);
    }
    if wanted(Workload::W3) {
        let (_, figure) = w3(store, &variant, &accounts, sizes).await?;
        figures.push(figure);
        logged += sizes.w3_events.max(1);
    }
    if wanted(Workload::W4) {
        let figure;
        (logged, figure) = w4(store, &variant, &accounts, sizes, logged).await?;
        figures.push(figure);
    }

    let stored = payload_bytes(target.store.as_ref()).await?;
    check("events stored", stored.events, logged)?;
    let database = tokio::task::block_in_place(|| target.database_bytes())?;
    let per_event = |bytes: u64| bytes as f64 / stored.events.max(1) as f64;
    for figure in &mut figures {
        let ratio = if setting.name == PLAIN {
            Some(1.0)
        } else {
            plain
                .iter()
                .find(|p| p.workload == figure.workload)
                .map(|p| figure.per_second() / p.per_second().max(1e-9))
        };
        let mut extra = vec![
            ("codec", setting.codec.to_string().into()),
            ("payload_bytes_per_event", per_event(stored.bytes).into()),
        ];
        if let Some(database) = database {
            extra.push(("database_bytes_per_event", per_event(database).into()));
        }
        if let Some(ratio) = ratio {
            extra.push(("ratio_to_plain", ratio.into()));
        }
        for (key, value) in extra {
            figure.extra.insert(key.to_owned(), value);
        }
    }
    Ok(figures)
}

/// What the payloads of a whole log take.
#[derive(Debug, Clone, Copy)]
struct Stored {
    events: u64,
    bytes: u64,
}

/// Sums `payload.len()` over every event of the log, as stored (nothing decoded).
async fn payload_bytes(store: &dyn EventStore) -> BenchResult<Stored> {
    let (mut after, mut stored) = (
        Position::START,
        Stored {
            events: 0,
            bytes: 0,
        },
    );
    loop {
        let page = store.read_log(LogQuery::after(after, 1_000)).await?;
        if page.is_empty() {
            return Ok(stored);
        }
        after = page.next;
        for event in &page.events {
            stored.events += 1;
            stored.bytes += event.payload.len() as u64;
        }
    }
}

/// The comparison as a Markdown table, one row per store and setting: each workload's rate and
/// its ratio to the plain setting's, and the bytes stored per event. `None` without codec
/// figures.
pub fn table(figures: &[Figure]) -> Option<String> {
    let codec_figures: Vec<&Figure> = figures
        .iter()
        .filter(|f| f.variant.starts_with(VARIANT_PREFIX))
        .collect();
    if codec_figures.is_empty() {
        return None;
    }
    let mut rows: Vec<(&str, &str)> = Vec::new();
    for figure in &codec_figures {
        let row = (figure.store.as_str(), figure.variant.as_str());
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    let mut out = String::from(
        "| store | codec | W2 events/s (× plain) | W3 events/s (× plain) | W4 events/s (× plain) | payload bytes/event | database bytes/event |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for (store, variant) in rows {
        let of = |workload: &str| {
            codec_figures
                .iter()
                .find(|f| f.store == store && f.variant == variant && f.workload == workload)
        };
        let rate = |workload: &str| match of(workload) {
            Some(figure) => {
                let ratio = figure
                    .extra
                    .get("ratio_to_plain")
                    .and_then(serde_json::Value::as_f64)
                    .map_or(String::new(), |r| format!(" ({r:.2}×)"));
                format!("{}{ratio}", thousands(figure.per_second()))
            }
            None => "—".to_owned(),
        };
        let any = ["W2", "W3", "W4"].into_iter().find_map(of);
        let bytes = |key: &str| {
            any.and_then(|f| f.extra.get(key))
                .and_then(serde_json::Value::as_f64)
                .map_or("—".to_owned(), |b| format!("{b:.1}"))
        };
        out.push_str(&format!(
            "| {store} | {} | {} | {} | {} | {} | {} |\n",
            &variant[VARIANT_PREFIX.len()..],
            rate("W2"),
            rate("W3"),
            rate("W4"),
            bytes("payload_bytes_per_event"),
            bytes("database_bytes_per_event"),
        ));
    }
    Some(out)
}
