//! Codecs turn events and snapshots into bytes and back.
//!
//! [`Json`] is the default. Function upcasters work on a [`serde_json::Value`], which any
//! self-describing format can decode into, so a codec only has to be a serde format.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::CodecError;

/// A serde format for payloads.
pub trait Codec: Send + Sync + 'static {
    /// The codec's name, used in error messages.
    const NAME: &'static str;

    /// Encodes a value.
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError>;

    /// Decodes a value.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError>;
}

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
}
