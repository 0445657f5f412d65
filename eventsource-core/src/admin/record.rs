//! How the admin CLI shows one stored event: decoded through the registry (what `stream` and
//! `tail` print), or as stored (`--raw`, and the JSON lines `export` writes and `import` reads).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::persistence::codec::PayloadCodec;
use crate::persistence::position::Position;
use crate::persistence::record::{Metadata, NewEvent, StoredEvent};
use crate::registry;

/// An event decoded to JSON at its newest version.
#[derive(Debug, Serialize)]
pub(super) struct Decoded {
    pub(super) position: Position,
    pub(super) stream_id: Uuid,
    pub(super) category: String,
    pub(super) version: u64,
    pub(super) name: String,
    pub(super) schema_version: u32,
    pub(super) id: Uuid,
    pub(super) recorded_at: String,
    pub(super) metadata: Metadata,
    /// The payload as the registry decodes it; `null` if it was forgotten or did not decode.
    pub(super) data: serde_json::Value,
    /// Its data subject was forgotten: the payload can't be opened any more.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) forgotten: bool,
    /// Why the payload did not decode (an unknown name or version, a missing key, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
}

impl Decoded {
    /// Decodes `stored` through the registry; a payload that doesn't decode is shown with
    /// its error rather than stopping the listing.
    pub(super) async fn of(codec: &PayloadCodec, stored: &StoredEvent) -> Self {
        let (data, forgotten, error) = match registry::decode_stored_to_json(codec, stored).await {
            Ok(Some(data)) => (data, false, None),
            Ok(None) => (serde_json::Value::Null, true, None),
            Err(error) => (serde_json::Value::Null, false, Some(error.to_string())),
        };
        Self {
            position: stored.position,
            stream_id: stored.stream_id,
            category: stored.category.clone(),
            version: stored.version,
            name: stored.name.clone(),
            schema_version: stored.schema_version,
            id: stored.id,
            recorded_at: rfc3339(stored.recorded_at),
            metadata: stored.metadata.clone(),
            data,
            forgotten,
            error,
        }
    }

    /// What a table shows of the payload.
    pub(super) fn data_text(&self) -> String {
        match (&self.error, self.forgotten) {
            (Some(error), _) => format!("<does not decode: {error}>"),
            (None, true) => "<forgotten>".to_owned(),
            (None, false) => self.data.to_string(),
        }
    }
}

/// An event as stored: one line of an export, every field needed to append it again. The
/// position and recording time are the source store's; a store given the event assigns its
/// own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Exported {
    pub(super) position: Position,
    pub(super) stream_id: Uuid,
    pub(super) category: String,
    pub(super) version: u64,
    pub(super) id: Uuid,
    pub(super) name: String,
    pub(super) schema_version: u32,
    pub(super) recorded_at: String,
    pub(super) metadata: Metadata,
    /// The payload bytes, byte for byte (an encrypted one stays encrypted), in base64.
    pub(super) payload: String,
}

impl Exported {
    pub(super) fn of(stored: &StoredEvent) -> Self {
        Self {
            position: stored.position,
            stream_id: stored.stream_id,
            category: stored.category.clone(),
            version: stored.version,
            id: stored.id,
            name: stored.name.clone(),
            schema_version: stored.schema_version,
            recorded_at: rfc3339(stored.recorded_at),
            metadata: stored.metadata.clone(),
            payload: BASE64.encode(&stored.payload),
        }
    }

    /// The event to append again; the payload's base64 decoded.
    pub(super) fn to_new_event(&self) -> Result<NewEvent, base64::DecodeError> {
        Ok(NewEvent {
            id: self.id,
            name: self.name.clone(),
            schema_version: self.schema_version,
            payload: BASE64.decode(&self.payload)?,
            metadata: self.metadata.clone(),
        })
    }

    /// The first field in which `stored` differs from this line, other than the position and
    /// the recording time (a store assigns its own).
    pub(super) fn differs_from(&self, stored: &StoredEvent) -> Option<&'static str> {
        let again = Self::of(stored);
        [
            ("stream_id", self.stream_id == again.stream_id),
            ("version", self.version == again.version),
            ("category", self.category == again.category),
            ("id", self.id == again.id),
            ("name", self.name == again.name),
            (
                "schema_version",
                self.schema_version == again.schema_version,
            ),
            ("metadata", self.metadata == again.metadata),
            ("payload", self.payload == again.payload),
        ]
        .into_iter()
        .find_map(|(field, same)| (!same).then_some(field))
    }
}

/// `2026-11-28T22:16:26.123456Z`: a recording time in UTC, to the microsecond.
pub(super) fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since.subsec_micros()
    )
}

/// The Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_times_read_as_utc_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 (a leap day) 12:34:56.789 UTC.
        let leap = UNIX_EPOCH + Duration::from_millis(951_827_696_789);
        assert_eq!(rfc3339(leap), "2000-02-29T12:34:56.789000Z");
        let later = UNIX_EPOCH + Duration::from_secs(1_795_392_000);
        assert_eq!(rfc3339(later), "2026-11-23T00:00:00.000000Z");
    }
}
