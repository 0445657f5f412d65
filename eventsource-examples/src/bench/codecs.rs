//! The codec comparison (`--codecs`, issue 14): W2, W3 and W4 once per payload codec setting,
//! each setting on a fresh store of the same kind (so that W4's log, and the bytes counted,
//! hold that setting's payloads only), the settings taking turns within each workload, every
//! rate set beside the plain setting's of the same run, and the bytes each setting stores per
//! event.
//!
//! The settings ([`settings`]): plain JSON (the library's default, the baseline), MessagePack,
//! LZ4, Zstandard (with the `zstd` feature), AES-256-GCM, and MessagePack + LZ4 + AES-256-GCM.
//! Compression is set to try every payload (threshold 0): the bank's events are 30–35 bytes of
//! JSON, below the default threshold of 256 bytes, so with the default it would never run and
//! its figures would be the plain ones. Encryption keeps its keys in a [`MemoryKeyStore`], and
//! the codec caches fetched keys (clones share the cache), so the key store's own speed is not
//! what is measured: one fetch per run, then AES-GCM per payload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use eventsource_core::persistence::codec::{Compression, Format, MemoryKeyStore, PayloadCodec};
use eventsource_core::{EventStore, LogQuery, Position, StreamRange, Uuid, new_id};
use futures_util::TryStreamExt;

use super::figure::{Figure, thousands};
use super::workloads::{Accounts, LogReader, check, median, replay, w2_events, write_stream};
use super::{BenchResult, BenchStore, Report, Sizes, Workload, rss};

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

/// One setting's side of the comparison: its own fresh store, and what was measured on it.
struct Arm {
    setting: Setting,
    target: BenchStore,
    accounts: Accounts,
    /// Events this setting's log holds.
    logged: u64,
    figures: Vec<Figure>,
}

/// Runs the comparison beside `target`: for each setting a sibling store (see
/// [`BenchStore::open_sibling`]); then the chosen ones of W2, W3 and W4, each workload taking
/// turns between the settings (one new account, one replay, one page of the log at a time), so
/// that the machine's changing load (this one is shared) falls on every setting alike; then
/// every setting's log is read back, untimed, for the bytes it stores.
pub async fn run(
    target: &BenchStore,
    sizes: &Sizes,
    wanted: impl Fn(Workload) -> bool,
    report: &mut Report,
) -> BenchResult<()> {
    let mut arms = Vec::new();
    for setting in settings() {
        let opened = target
            .open_sibling(&format!("codec-{}", setting.name.replace('+', "-")))
            .await;
        match opened {
            Ok(sibling) => {
                let accounts =
                    Accounts::new(Arc::clone(&sibling.store)).codec(setting.codec.clone());
                arms.push(Arm {
                    setting,
                    target: sibling,
                    accounts,
                    logged: 0,
                    figures: Vec::new(),
                });
            }
            Err(error) => {
                clean_up(arms).await;
                return Err(error);
            }
        }
    }
    let outcome = compare(&mut arms, target.name, sizes, &wanted).await;
    if outcome.is_ok() {
        for figure in arms.iter_mut().flat_map(|arm| arm.figures.drain(..)) {
            report.push(figure);
        }
    }
    clean_up(arms).await;
    outcome
}

async fn clean_up(arms: Vec<Arm>) {
    for arm in arms {
        if let Err(error) = arm.target.clean_up().await {
            eprintln!(
                "bench: cleaning up after the {} codec run: {error}",
                arm.setting.name
            );
        }
    }
}

/// The workloads, taking turns between the settings, then the bytes and the ratios.
async fn compare(
    arms: &mut [Arm],
    store: &str,
    sizes: &Sizes,
    wanted: &impl Fn(Workload) -> bool,
) -> BenchResult<()> {
    let variant = |arm: &Arm| format!("{VARIANT_PREFIX}{}", arm.setting.name);
    if wanted(Workload::W2) {
        rss::reset_peak();
        let per = sizes.w2_events.max(1);
        let mut spent = vec![Duration::ZERO; arms.len()];
        for _ in 0..sizes.w2_aggregates {
            for (arm, spent) in arms.iter_mut().zip(&mut spent) {
                let start = Instant::now();
                arm.accounts
                    .create_with_id(new_id(), w2_events(per))
                    .await?;
                *spent += start.elapsed();
            }
        }
        for (arm, spent) in arms.iter_mut().zip(spent) {
            let events = sizes.w2_aggregates * per;
            arm.logged += events;
            let figure = Figure::new(store, "W2", variant(arm), events, spent.as_secs_f64())
                .with("events_per_transaction", per);
            arm.figures.push(figure);
        }
    }
    if wanted(Workload::W3) {
        let events = sizes.w3_events.max(1);
        let mut streams = Vec::new();
        for arm in arms.iter_mut() {
            streams.push(write_stream(&arm.accounts, events, sizes.write_batch).await?);
            arm.logged += events;
        }
        // For the encrypted settings, the cipher alone on payloads of the same sizes: what
        // per-record encryption costs at the least, timed in the same turns.
        let mut ciphers = Vec::new();
        for (arm, id) in arms.iter().zip(&streams) {
            ciphers.push(match arm.setting.codec.key_store() {
                Some(_) => Some(CipherAlone::like(arm.target.store.as_ref(), *id).await?),
                None => None,
            });
        }
        rss::reset_peak();
        let runs = sizes.w3_runs.max(1);
        let mut replays = vec![Vec::new(); arms.len()];
        let mut cipher_runs = vec![Vec::new(); arms.len()];
        for _ in 0..runs {
            for (((arm, id), replays), (cipher, cipher_runs)) in arms
                .iter()
                .zip(&streams)
                .zip(&mut replays)
                .zip(ciphers.iter().zip(&mut cipher_runs))
            {
                replays.push(replay(&arm.accounts, *id, events).await?);
                if let Some(cipher) = cipher {
                    cipher_runs.push(cipher.open_times(events)?);
                }
            }
        }
        for ((arm, replays), cipher_runs) in arms.iter_mut().zip(replays).zip(cipher_runs) {
            let seconds = median(replays).as_secs_f64();
            let mut figure = Figure::new(store, "W3", variant(arm), events, seconds)
                .with("median_ms", seconds * 1e3)
                .with("runs", runs);
            if !cipher_runs.is_empty() {
                let per_payload = median(cipher_runs).as_secs_f64() / events as f64;
                figure = figure.with("cipher_alone_ns", per_payload * 1e9);
            }
            arm.figures.push(figure);
        }
    }
    if wanted(Workload::W4) {
        // Each log topped up as W4 does it, with 100-event accounts, taking turns too: a
        // database that wrote one setting's log long before the others' would have more of it
        // out of its cache (PostgreSQL read the first setting's log 1.5–1.8 times slower than
        // the last's when they were written one after the other).
        while arms.iter().any(|arm| arm.logged < sizes.w4_events) {
            for arm in arms.iter_mut().filter(|arm| arm.logged < sizes.w4_events) {
                let n = (sizes.w4_events - arm.logged).clamp(1, 100);
                write_stream(&arm.accounts, n, n).await?;
                arm.logged += n;
            }
        }
        rss::reset_peak();
        let mut readers: Vec<(LogReader, Duration, bool)> = arms
            .iter()
            .map(|_| (LogReader::new(sizes.w4_page), Duration::ZERO, true))
            .collect();
        while readers.iter().any(|(_, _, more)| *more) {
            for (arm, (reader, spent, more)) in arms.iter().zip(&mut readers) {
                if *more {
                    let start = Instant::now();
                    *more = reader.next_page(&arm.accounts).await?;
                    *spent += start.elapsed();
                }
            }
        }
        for (arm, (reader, spent, _)) in arms.iter_mut().zip(readers) {
            check("W4 events read", reader.read.events, arm.logged)?;
            let figure = Figure::new(
                store,
                "W4",
                variant(arm),
                reader.read.events,
                spent.as_secs_f64(),
            )
            .with("page", sizes.w4_page);
            arm.figures.push(figure);
        }
    }

    // What each setting stored, and its rates beside the plain setting's.
    let plain: Vec<Figure> = arms
        .iter()
        .filter(|arm| arm.setting.name == PLAIN)
        .flat_map(|arm| arm.figures.clone())
        .collect();
    for arm in arms.iter_mut() {
        let stored = payload_bytes(arm.target.store.as_ref()).await?;
        check("events stored", stored.events, arm.logged)?;
        let database = tokio::task::block_in_place(|| arm.target.database_bytes())?;
        let per_event = |bytes: u64| bytes as f64 / stored.events.max(1) as f64;
        for figure in &mut arm.figures {
            let ratio = plain
                .iter()
                .find(|p| p.workload == figure.workload)
                .map(|p| figure.per_second() / p.per_second().max(1e-9));
            let mut extra = vec![
                ("codec", arm.setting.codec.to_string().into()),
                ("payload_bytes_per_event", per_event(stored.bytes).into()),
            ];
            if let Some(database) = database {
                extra.push(("database_bytes_per_event", per_event(database).into()));
            }
            if let Some(ratio) = ratio {
                extra.push(("ratio_to_plain", ratio.into()));
            }
            // The best ratio per-record encryption could reach: the plain replay's time per
            // event plus the cipher's alone.
            let plain_ns = plain
                .iter()
                .find(|p| p.workload == figure.workload)
                .map(|p| 1e9 / p.per_second().max(1e-9));
            let cipher_ns = figure
                .extra
                .get("cipher_alone_ns")
                .and_then(serde_json::Value::as_f64);
            if let (Some(plain_ns), Some(cipher_ns)) = (plain_ns, cipher_ns) {
                extra.push((
                    "ratio_ceiling_with_cipher",
                    (plain_ns / (plain_ns + cipher_ns)).into(),
                ));
            }
            for (key, value) in extra {
                figure.extra.insert(key.to_owned(), value);
            }
        }
    }
    Ok(())
}

/// AES-256-GCM by itself, opening a payload of the size a setting stores, with associated data
/// of the size the envelope binds: the least an encrypted replay pays per event on top of the
/// plain one, whatever the library around it does.
struct CipherAlone {
    cipher: Aes256Gcm,
    associated: Vec<u8>,
    sealed: Vec<u8>,
}

impl CipherAlone {
    /// Sized like the first event of `stream` as stored: its ciphertext is what follows the
    /// envelope's 37-byte header, and the associated data is that header, the record's fixed
    /// fields (41 bytes) and the event's name.
    async fn like(store: &dyn EventStore, stream: Uuid) -> BenchResult<Self> {
        let first = store
            .read_stream(stream, StreamRange::all())
            .try_next()
            .await?
            .ok_or("the encrypted stream is empty")?;
        const HEADER: usize = 37;
        const RECORD_FIELDS: usize = 41;
        const TAG: usize = 16;
        let plain_len = first.payload.len().saturating_sub(HEADER + TAG);
        let cipher = Aes256Gcm::new(&Aes256Gcm::generate_key(OsRng));
        let associated = vec![7; HEADER + RECORD_FIELDS + first.name.len()];
        let nonce = Nonce::default();
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &vec![b'x'; plain_len],
                    aad: &associated,
                },
            )
            .map_err(|_| "AES-GCM refused to seal the sample")?;
        Ok(Self {
            cipher,
            associated,
            sealed,
        })
    }

    /// The time `times` opens take.
    fn open_times(&self, times: u64) -> BenchResult<Duration> {
        let nonce = Nonce::default();
        let start = Instant::now();
        for _ in 0..times {
            let plain = self
                .cipher
                .decrypt(
                    &nonce,
                    Payload {
                        msg: &self.sealed,
                        aad: &self.associated,
                    },
                )
                .map_err(|_| "AES-GCM failed to open its own sample")?;
            std::hint::black_box(plain);
        }
        Ok(start.elapsed())
    }
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
        "| store | codec | W2 events/s (× plain) | W3 events/s (× plain) | W4 events/s (× plain) | payload bytes/event | database bytes/event | W3: AES-GCM alone, ns/event (best ratio it allows) |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
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
        let cipher = of("W3")
            .and_then(|f| {
                let extra = |key: &str| f.extra.get(key).and_then(serde_json::Value::as_f64);
                Some((
                    extra("cipher_alone_ns")?,
                    extra("ratio_ceiling_with_cipher")?,
                ))
            })
            .map_or("—".to_owned(), |(ns, ceiling)| {
                format!("{ns:.0} (≤ {ceiling:.2}×)")
            });
        out.push_str(&format!(
            "| {store} | {} | {} | {} | {} | {} | {} | {cipher} |\n",
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
