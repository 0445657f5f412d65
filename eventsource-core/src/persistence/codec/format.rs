//! Serde formats for payloads: [`Json`] (the default, readable with any database tool) and
//! [`MessagePack`] (compact binary). Both are self-describing, so a function upcaster's
//! [`serde_json::Value`] can be decoded from either.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Codec;
use crate::error::CodecError;

/// JSON payloads, readable with any database tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Json {
    const NAME: &'static str = "json";

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(value).map_err(|e| CodecError::new(Self::NAME, e))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        serde_json::from_slice(bytes).map_err(|e| CodecError::new(Self::NAME, e))
    }
}

/// MessagePack payloads: binary, typically 20–40% smaller than JSON. Structs are written as
/// maps with their field names (not as arrays), so fields can be added, removed and renamed
/// with serde's attributes exactly as with JSON; and values in serde's human-readable form (a
/// UUID as its text, as in JSON, not as 16 raw bytes), so every payload reads as a JSON value
/// and function upcasters see the same value whichever format a record was stored in.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagePack;

impl Codec for MessagePack {
    const NAME: &'static str = "messagepack";

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        let mut bytes = Vec::new();
        let mut serializer = rmp_serde::Serializer::new(&mut bytes)
            .with_struct_map()
            .with_human_readable();
        value
            .serialize(&mut serializer)
            .map_err(|e| CodecError::new(Self::NAME, e))?;
        Ok(bytes)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let mut deserializer = rmp_serde::Deserializer::from_read_ref(bytes).with_human_readable();
        T::deserialize(&mut deserializer).map_err(|e| CodecError::new(Self::NAME, e))
    }
}

/// The format new payloads are written in. A stored payload says its own format, so records
/// of every format decode whatever this is set to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// [`Json`].
    #[default]
    Json,
    /// [`MessagePack`].
    MessagePack,
}

impl Format {
    /// The format's name (`json`, `messagepack`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => Json::NAME,
            Format::MessagePack => MessagePack::NAME,
        }
    }

    /// Its id in a payload's envelope.
    pub(crate) fn id(self) -> u8 {
        match self {
            Format::Json => 0,
            Format::MessagePack => 1,
        }
    }

    pub(crate) fn from_id(id: u8) -> Option<Self> {
        match id {
            0 => Some(Format::Json),
            1 => Some(Format::MessagePack),
            _ => None,
        }
    }

    /// Transcodes a payload of this format to a JSON value (to show any stored event as JSON).
    pub fn to_json(self, body: &[u8]) -> Result<serde_json::Value, CodecError> {
        match self {
            Format::Json => Json.decode(body),
            Format::MessagePack => MessagePack.decode(body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_and_reports_corruption() {
        let bytes = Json.encode(&vec![1u32, 2, 3]).unwrap();
        assert_eq!(bytes, b"[1,2,3]");
        let back: Vec<u32> = Json.decode(&bytes).unwrap();
        assert_eq!(back, [1, 2, 3]);
        let err = Json.decode::<Vec<u32>>(b"[1,2").unwrap_err();
        assert_eq!(err.format, "json");
        assert!(err.message.contains("EOF"), "{err}");
    }

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Deposited {
        amount: u64,
        currency: String,
    }

    #[test]
    fn messagepack_writes_field_names_so_values_read_as_json_objects() {
        let event = Deposited {
            amount: 5,
            currency: "EUR".into(),
        };
        let bytes = MessagePack.encode(&event).unwrap();
        assert!(bytes.len() < Json.encode(&event).unwrap().len());
        let value = Format::MessagePack.to_json(&bytes).unwrap();
        assert_eq!(value, serde_json::json!({"amount": 5, "currency": "EUR"}));
        let back: Deposited = MessagePack.decode(&bytes).unwrap();
        assert_eq!(back, event);
        let err = MessagePack.decode::<Deposited>(&bytes[..3]).unwrap_err();
        assert_eq!(err.format, "messagepack");
    }

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Opened {
        account: uuid::Uuid,
    }

    #[test]
    fn messagepack_reads_as_the_same_json_value_as_json_uuids_included() {
        let event = Opened {
            account: uuid::Uuid::from_u128(7),
        };
        let bytes = MessagePack.encode(&event).unwrap();
        let as_json = Format::Json.to_json(&Json.encode(&event).unwrap()).unwrap();
        assert_eq!(Format::MessagePack.to_json(&bytes).unwrap(), as_json);
        assert_eq!(MessagePack.decode::<Opened>(&bytes).unwrap(), event);
        // What a function upcaster does: the value, changed, decodes as the type.
        let back: Opened = serde_json::from_value(as_json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn format_ids_round_trip_and_unknown_ids_are_refused() {
        for format in [Format::Json, Format::MessagePack] {
            assert_eq!(Format::from_id(format.id()), Some(format));
        }
        assert_eq!(Format::from_id(7), None);
    }
}
