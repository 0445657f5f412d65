//! `streams` (every stream with its type, version and last position) and `stream ID` (one
//! stream's events, decoded or as stored).
//!
//! A store has no list of its streams: `streams` reads the whole log once, page by page, up
//! to the position that was last when it started, and keeps one line per stream.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use serde::Serialize;
use uuid::Uuid;

use super::args::{StreamArgs, StreamsArgs};
use super::log::{PAGE, each_page};
use super::record::{Decoded, Exported, rfc3339};
use super::{AdminError, Context, Outcome};
use crate::persistence::position::Position;
use crate::persistence::record::{LogQuery, StoredEvent, StreamRange};

/// One stream, as the log shows it.
#[derive(Debug, Serialize)]
struct StreamLine {
    stream_id: Uuid,
    /// The aggregate type (the stream's category); empty if its events carry none.
    category: String,
    version: u64,
    first_position: Position,
    last_position: Position,
    last_event: String,
    last_recorded_at: String,
}

pub(super) async fn list(cx: &Context, args: StreamsArgs) -> Outcome {
    let end = cx.events.last_position().await?;
    let mut streams: Vec<StreamLine> = Vec::new();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    let query = LogQuery::from_start(PAGE).categories(args.aggregates.iter().cloned());
    each_page(&*cx.events, query, end, |events| {
        for event in events {
            let line = match index.get(&event.stream_id) {
                Some(&at) => &mut streams[at],
                None => {
                    index.insert(event.stream_id, streams.len());
                    streams.push(StreamLine {
                        stream_id: event.stream_id,
                        category: event.category.clone(),
                        version: 0,
                        first_position: event.position,
                        last_position: event.position,
                        last_event: String::new(),
                        last_recorded_at: String::new(),
                    });
                    streams.last_mut().ok_or_else(|| {
                        AdminError::Refused("a stream vanished from the listing".into())
                    })?
                }
            };
            line.version = line.version.max(event.version);
            line.last_position = event.position;
            line.last_event = event.name;
            line.last_recorded_at = rfc3339(event.recorded_at);
            if line.category.is_empty() {
                line.category = event.category;
            }
        }
        Ok::<_, AdminError>(true)
    })
    .await?;
    if cx.out.json {
        for stream in &streams {
            cx.out.json_line(stream)?;
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = streams
        .iter()
        .map(|s| {
            vec![
                s.stream_id.to_string(),
                cx.out.accent(or_dash(&s.category)),
                s.version.to_string(),
                s.last_position.to_string(),
                s.last_event.clone(),
                s.last_recorded_at.clone(),
            ]
        })
        .collect();
    cx.out.table(
        &[
            "STREAM",
            "AGGREGATE",
            "VERSION",
            "LAST POSITION",
            "LAST EVENT",
            "RECORDED",
        ],
        &rows,
    )?;
    cx.out.line(&cx.out.dim(&format!(
        "{} stream(s), log up to position {end}",
        streams.len()
    )))
}

pub(super) async fn show(cx: &Context, args: StreamArgs) -> Outcome {
    let events: Vec<StoredEvent> = cx
        .events
        .read_stream(args.stream, StreamRange::all())
        .try_collect()
        .await?;
    if events.is_empty() {
        return Err(AdminError::Refused(format!(
            "stream {} has no events in this store",
            args.stream
        )));
    }
    cx.codec.load_keys_of(&events).await;
    if args.raw {
        return raw(cx, &events);
    }
    let mut rows = Vec::new();
    for stored in &events {
        let decoded = Decoded::of(&cx.codec, stored).await;
        if cx.out.json {
            cx.out.json_line(&decoded)?;
            continue;
        }
        rows.push(vec![
            decoded.version.to_string(),
            decoded.position.to_string(),
            cx.out
                .accent(&format!("{} v{}", decoded.name, decoded.schema_version)),
            decoded.recorded_at.clone(),
            metadata_text(&decoded.metadata),
            decoded.data_text(),
        ]);
    }
    if !cx.out.json {
        let first = &events[0];
        cx.out.line(&cx.out.bold(&format!(
            "{} {} — {} event(s)",
            or_dash(&first.category),
            first.stream_id,
            events.len()
        )))?;
        cx.out.table(
            &[
                "VERSION", "POSITION", "EVENT", "RECORDED", "METADATA", "DATA",
            ],
            &rows,
        )?;
    }
    Ok(())
}

/// The events as stored: the lines `export` writes, or a table of their bytes.
fn raw(cx: &Context, events: &[StoredEvent]) -> Outcome {
    let mut rows = Vec::new();
    for stored in events {
        let line = Exported::of(stored);
        if cx.out.json {
            cx.out.json_line(&line)?;
            continue;
        }
        rows.push(vec![
            line.version.to_string(),
            line.position.to_string(),
            format!("{} v{}", line.name, line.schema_version),
            line.id.to_string(),
            metadata_text(&line.metadata),
            format!("{} bytes", stored.payload.len()),
            line.payload,
        ]);
    }
    if !cx.out.json {
        cx.out.table(
            &[
                "VERSION",
                "POSITION",
                "EVENT",
                "ID",
                "METADATA",
                "SIZE",
                "PAYLOAD (BASE64)",
            ],
            &rows,
        )?;
    }
    Ok(())
}

/// `key=value` pairs, or `-`.
pub(super) fn metadata_text(metadata: &crate::persistence::record::Metadata) -> String {
    if metadata.is_empty() {
        return "-".to_owned();
    }
    metadata
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text`, or `-` for an empty one.
pub(super) fn or_dash(text: &str) -> &str {
    match text.is_empty() {
        true => "-",
        false => text,
    }
}
