//! Writes the seeds of the `payload_envelope` target: payloads the codec wrote with every
//! combination of format, compression and encryption (`payload::writers`), for events and for
//! the account's snapshot, plus a version-1 `Deposited` in plain JSON (the upcaster chain) and
//! sealed payloads whose header names the forgotten subject (a personal `Opened`, which decodes
//! as forgotten, and a `Deposited`, which is an error).
//!
//! ```sh
//! cd fuzz && cargo +nightly run --example payload_seeds   # rewrites corpus/payload_envelope/
//! ```

use std::path::PathBuf;

use eventsource_core::{EventStore, Repository};
use eventsource_examples::bank::BankAccountEvent;
use eventsource_fuzz::payload::{FORGOTTEN_SUBJECT, Record, STREAM, frame, memory_store, writers};
use eventsource_fuzz::{Account, Deposited, Opened, TransferSent};

type Error = Box<dyn std::error::Error>;

/// An `Opened` long enough (and repetitive enough) for LZ4 and zstd to shrink it.
fn opened() -> Opened {
    Opened {
        owner: "Ada Lovelace, Analytical Engine Society; ".repeat(8),
        currency: "EUR".into(),
    }
}

fn write(dir: &std::path::Path, name: &str, record: &Record, payload: &[u8]) -> Result<(), Error> {
    let data = frame(record, payload).ok_or("the record can't be framed")?;
    std::fs::write(dir.join(name), data)?;
    Ok(())
}

async fn seeds(dir: &std::path::Path) -> Result<usize, Error> {
    let mut written = 0;
    let mut sealed = Vec::new();
    for (setting, codec) in writers() {
        // Events: versions 1, 2 and 3 of the stream.
        let accounts = Repository::<Account, _>::new(memory_store()).codec(codec.clone());
        let events: Vec<BankAccountEvent> = vec![
            opened().into(),
            Deposited {
                cents: 1200,
                currency: "EUR".into(),
            }
            .into(),
            TransferSent {
                to: STREAM,
                cents: 500,
            }
            .into(),
        ];
        let new = accounts.encode(STREAM, 0, &events).await?;
        for (version, event) in (1..).zip(&new) {
            let record = Record::Event {
                name: event.name.clone(),
                version,
                schema_version: event.schema_version,
            };
            write(
                dir,
                &format!("{setting}-{}", event.name),
                &record,
                &event.payload,
            )?;
            written += 1;
            if setting == "json+aes" {
                sealed.push((record, event.payload.clone()));
            }
        }
        // The account's snapshot at version 1.
        let store = memory_store();
        let accounts = Repository::<Account, _>::new(store.clone()).codec(codec);
        accounts.create_with_id(STREAM, opened()).await?;
        accounts.take_snapshot(STREAM).await?;
        let snapshot = store
            .load_snapshot(STREAM, None)
            .await?
            .ok_or("no snapshot was stored")?;
        write(
            dir,
            &format!("{setting}-snapshot"),
            &Record::Snapshot,
            &snapshot.state,
        )?;
        written += 1;
    }

    let deposit_v1 = Record::Event {
        name: "Deposited".into(),
        version: 2,
        schema_version: 1,
    };
    write(dir, "json-Deposited-v1", &deposit_v1, br#"{"amount":12}"#)?;
    written += 1;
    // Sealed payloads with their header naming the forgotten subject's key 1 (subject at bytes
    // 5..21, key id at 21..25): they open as forgotten, without authentication.
    for (record, mut payload) in sealed {
        let Record::Event { name, .. } = &record else {
            continue;
        };
        if name == "Opened" || name == "Deposited" {
            payload[5..21].copy_from_slice(FORGOTTEN_SUBJECT.as_bytes());
            payload[21..25].copy_from_slice(&1u32.to_be_bytes());
            write(dir, &format!("forgotten-subject-{name}"), &record, &payload)?;
            written += 1;
        }
    }
    Ok(written)
}

fn main() -> Result<(), Error> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "corpus/payload_envelope".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let written = runtime.block_on(seeds(&dir))?;
    println!("{written} seeds in {}", dir.display());
    Ok(())
}
