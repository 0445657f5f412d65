//! Arbitrary bytes as a stored payload, through the codec: an event's through
//! `PayloadCodec::decode` into the bank account's event enum and `PayloadCodec::to_json`, a
//! snapshot's through a repository load (the stored state of the account's snapshot). The codec
//! reads every format, compression and encryption, with a key store that knows the
//! application's key, the account's own keys (`Opened` is personal) and a forgotten subject
//! (see `src/payload.rs`; the seeds are payloads the codec wrote with every setting).
//!
//! Must hold: Ok or a typed error, never a panic, a hang or an allocation beyond the codec's
//! `max_payload`; both paths agree on the envelope (the same envelope error, "forgotten" on
//! both); the JSON view decodes to the same event; and an event that decoded, written again
//! by a codec of every setting, reads back as itself, and an encrypted one moved to another
//! version fails authentication.
#![no_main]

use std::sync::OnceLock;

use eventsource_core::persistence::codec::EnvelopeError;
use eventsource_core::{
    Aggregate, DecodeError, EventEnum, EventStore, Json, Repository, Snapshot, StoredEvent,
};
use eventsource_fuzz::payload::{
    Input, Record, STREAM, memory_store, reader, stored_event, writers,
};
use eventsource_fuzz::{Account, Opened};
use libfuzzer_sys::fuzz_target;

type Event = <Account as Aggregate>::Event;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    })
}

fn json(event: &Event) -> Vec<u8> {
    event.encode(&Json).expect("a decoded event encodes")
}

async fn event(stored: StoredEvent) {
    let codec = reader();
    let decoded = codec.decode::<Event>(&stored).await;
    let shown = codec.to_json(&stored).await;

    // Both open the same envelope the same way.
    if let Err(DecodeError::Envelope(error)) = &decoded {
        assert!(
            matches!(&shown, Err(DecodeError::Envelope(e)) if e == error),
            "decode failed with {error:?}, to_json gave {shown:?}"
        );
    }
    if let Err(DecodeError::Envelope(error)) = &shown {
        assert!(
            matches!(&decoded, Err(DecodeError::Envelope(e)) if e == error),
            "to_json failed with {error:?}, decode gave {decoded:?}"
        );
    }
    // A forgotten subject: no JSON to show; a personal event (`Opened`) decodes as forgotten,
    // any other is an error.
    if matches!(shown, Ok(None)) {
        assert!(
            matches!(
                decoded,
                Ok(Event::Forgotten(_))
                    | Err(DecodeError::Forgotten { .. } | DecodeError::UnknownEvent { .. })
            ),
            "to_json said forgotten, decode gave {decoded:?}"
        );
    }
    if matches!(
        decoded,
        Ok(Event::Forgotten(_)) | Err(DecodeError::Forgotten { .. })
    ) {
        assert!(
            matches!(shown, Ok(None)),
            "decode said forgotten, to_json gave {shown:?}"
        );
    }
    let decoded = match decoded {
        Ok(Event::Forgotten(record)) => {
            assert_eq!(record.name, stored.name, "forgotten as another event");
            return;
        }
        decoded => decoded,
    };
    // The JSON view is the event (when it decodes: MessagePack has shapes JSON lacks, such as
    // binary strings and integer keys, which the typed decode accepts).
    if let (Ok(event), Ok(Some(value))) = (&decoded, &shown) {
        let bytes = serde_json::to_vec(value).expect("a JSON value serializes");
        if let Ok(again) = Event::decode(&Json, &stored.name, stored.schema_version, &bytes) {
            assert_eq!(json(&again), json(event), "the JSON view is another event");
        }
    }

    let Ok(event) = decoded else { return };
    // Written again with every setting (at the next version), it reads back as itself.
    let version = stored.version.saturating_add(1).min(u64::MAX - 1);
    let store = memory_store();
    for (name, writer) in writers() {
        let encrypted = writer.key_store().is_some();
        let accounts = Repository::<Account, _>::new(store.clone()).codec(writer);
        let new = accounts
            .encode(STREAM, version - 1, std::slice::from_ref(&event))
            .await
            .unwrap_or_else(|e| panic!("{name}: a decoded event does not encode: {e}"));
        let [new] = &new[..] else {
            panic!("{name}: one event encoded to {}", new.len())
        };
        let written = stored_event(&new.name, version, new.schema_version, &new.payload);
        let back = codec
            .decode::<Event>(&written)
            .await
            .unwrap_or_else(|e| panic!("{name}: a payload the codec wrote does not decode: {e}"));
        assert_eq!(json(&back), json(&event), "{name}: changed in a round trip");
        assert!(
            matches!(codec.to_json(&written).await, Ok(Some(_))),
            "{name}: a payload the codec wrote does not show as JSON"
        );
        if encrypted {
            let moved = StoredEvent {
                version: version + 1,
                ..written
            };
            let refused = codec.decode::<Event>(&moved).await;
            assert!(
                matches!(
                    refused,
                    Err(DecodeError::Envelope(EnvelopeError::Authentication { .. }))
                ),
                "{name}: a ciphertext moved to another version gave {refused:?}"
            );
        }
    }
}

async fn snapshot(state: &[u8]) {
    let store = memory_store();
    Repository::<Account, _>::new(store.clone())
        .create_with_id(
            STREAM,
            Opened {
                owner: "fuzz".into(),
                currency: "EUR".into(),
            },
        )
        .await
        .expect("an account opens");
    let fingerprint = Account::SNAPSHOTS
        .expect("the account keeps snapshots")
        .fingerprint;
    store
        .save_snapshot(Snapshot {
            stream_id: STREAM,
            version: 1,
            aggregate: Account::NAME.to_owned(),
            fingerprint,
            state: state.to_vec(),
            recorded_at: std::time::SystemTime::UNIX_EPOCH,
        })
        .await
        .expect("a snapshot saves");
    // Whatever the snapshot holds, the load succeeds: from the snapshot, or (a snapshot that
    // doesn't open or decode is ignored) from the event.
    let loaded = Repository::<Account, _>::new(store)
        .codec(reader())
        .get(STREAM)
        .await
        .unwrap_or_else(|e| panic!("a stored snapshot made the load fail: {e}"));
    assert_eq!(loaded.version(), 1);
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    runtime().block_on(async {
        match input.record {
            Record::Event {
                name,
                version,
                schema_version,
            } => event(stored_event(&name, version, schema_version, input.payload)).await,
            Record::Snapshot => snapshot(input.payload).await,
        }
    });
});
