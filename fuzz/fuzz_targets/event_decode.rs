//! Arbitrary (name, schema version, payload) through the aggregate's generated
//! `EventEnum::decode` and each event's `Event::decode_stored` (with the 3-version upcaster
//! chain of `Deposited`), and arbitrary bytes through snapshot decoding: Ok or a typed
//! `DecodeError`/`CodecError`, never a panic. A decoded event re-encodes to a payload that
//! decodes to the same event.
#![no_main]

use eventsource_core::{Aggregate, Event, EventEnum, Json};
use eventsource_fuzz::{Account, Deposited, DepositedV2, Opened, TransferSent, Withdrawn};
use libfuzzer_sys::fuzz_target;

/// The input is `<name> <schema version>\n<payload>`, so seeds are readable files; the
/// payload bytes are also decoded as a snapshot.
struct Input<'a> {
    name: String,
    schema_version: u32,
    payload: &'a [u8],
}

fn input(data: &[u8]) -> Input<'_> {
    let (header, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &[][..]),
    };
    let header = String::from_utf8_lossy(header);
    let (name, version) = header.rsplit_once(' ').unwrap_or((&header, "1"));
    Input {
        name: name.to_owned(),
        schema_version: version.trim().parse().unwrap_or(0),
        payload,
    }
}

fn round_trip<E: Event + PartialEq + std::fmt::Debug>(schema_version: u32, payload: &[u8]) {
    if let Ok(event) = E::decode_stored(&Json, schema_version, payload) {
        let encoded = event
            .encode_payload(&Json)
            .expect("a decoded event encodes");
        let again = E::decode_stored(&Json, E::VERSION, &encoded)
            .expect("an encoded event decodes at its own version");
        assert_eq!(again, event, "{} changed in a round trip", E::NAME);
    }
}

fuzz_target!(|data: &[u8]| {
    let input = input(data);
    let name = input.name.as_str();
    let schema_version = input.schema_version;

    let mut state = Account::default();
    if let Ok(event) =
        <Account as Aggregate>::Event::decode(&Json, name, schema_version, input.payload)
    {
        assert_eq!(event.name(), name, "decoded as another event");
        let encoded = event.encode(&Json).expect("a decoded event encodes");
        let again = <Account as Aggregate>::Event::decode(
            &Json,
            event.name(),
            event.schema_version(),
            &encoded,
        )
        .expect("an encoded event decodes at its own version");
        assert_eq!(again.name(), event.name());
        state.apply_event(&event);
    }

    round_trip::<Opened>(schema_version, input.payload);
    round_trip::<DepositedV2>(schema_version, input.payload);
    round_trip::<Deposited>(schema_version, input.payload);
    round_trip::<Withdrawn>(schema_version, input.payload);
    round_trip::<TransferSent>(schema_version, input.payload);

    // The repository's path for a stored snapshot.
    if let Some(Ok(state)) = Account::decode_snapshot(&Json, input.payload) {
        let encoded = state
            .encode_snapshot(&Json)
            .expect("the account keeps snapshots")
            .expect("a decoded state encodes");
        let again = Account::decode_snapshot(&Json, &encoded)
            .expect("the account keeps snapshots")
            .expect("an encoded state decodes");
        assert_eq!(again, state);
    }
});
