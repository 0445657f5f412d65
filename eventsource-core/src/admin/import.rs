//! `import FILE`: appends the JSON lines `export` wrote to the store, then reads them back and
//! checks them event for event against the file.
//!
//! Events are appended in the file's order, in atomic batches of several streams: a batch
//! ends before a stream would come back after another one, so the store's log keeps the
//! file's order (a batch's streams get their positions in the order they are listed). Each
//! stream's first event in a batch is appended with the version before it as the expected
//! version, so a stream that already has events in the store (or a gap in the file) refuses
//! the batch with [`ImportError::Conflict`], writing nothing of it.
//!
//! The check reads the log from where it stood before the import and compares each event
//! with its line: stream, version, category, id, name, schema version, metadata and payload
//! bytes. The positions and recording times are the store's own.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;
use uuid::Uuid;

use super::args::ImportArgs;
use super::log::PAGE;
use super::record::Exported;
use super::{AdminError, Context, Outcome};
use crate::error::Error;
use crate::persistence::position::Position;
use crate::persistence::record::{AppendBatch, LogQuery, StreamAppend};
use crate::persistence::store::EventStore;

/// Why an import was refused, or does not read back as its file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// A line is not an exported event.
    #[error("{file}, line {line}: not an exported event: {message}")]
    Line {
        /// The file.
        file: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The store already has events in a stream the file appends to (or the file skips
    /// versions): nothing of the batch was written.
    #[error(
        "{file}, line {line}: stream {stream} is at version {actual} in the store, but the file continues it from version {expected}; nothing of this batch was written (import into a store that doesn't have these streams)"
    )]
    Conflict {
        /// The file.
        file: PathBuf,
        /// The line of the stream's first event in the refused batch.
        line: usize,
        /// The stream.
        stream: Uuid,
        /// The version the file continues from.
        expected: u64,
        /// The stream's version in the store.
        actual: u64,
    },
    /// Read back, an imported event differs from its line.
    #[error(
        "{file}, line {line}: stream {stream} version {version} reads back with another {field} than the file has"
    )]
    Mismatch {
        /// The file.
        file: PathBuf,
        /// The line.
        line: usize,
        /// The event's stream, as the file has it.
        stream: Uuid,
        /// Its version, as the file has it.
        version: u64,
        /// The first field that differs.
        field: &'static str,
    },
    /// Read back, the store's log has fewer events after the import than the file.
    #[error(
        "{file}: the store's log holds {found} event(s) after the import's start, but the file has {expected}"
    )]
    Missing {
        /// The file.
        file: PathBuf,
        /// Events in the file.
        expected: usize,
        /// Events read back.
        found: usize,
    },
}

impl ImportError {
    /// Whether the import was written but does not read back as its file (rather than
    /// refused).
    pub fn is_mismatch(&self) -> bool {
        matches!(
            self,
            ImportError::Mismatch { .. } | ImportError::Missing { .. }
        )
    }
}

/// What `import --json` prints.
#[derive(Debug, Serialize)]
struct ImportedLine {
    events: usize,
    batches: usize,
    streams: usize,
    first_position: Option<Position>,
    last_position: Position,
    verified: usize,
}

/// An event of the file, with its line number.
struct Line {
    number: usize,
    event: Exported,
}

/// A batch being gathered: streams in file order, and each stream's first line.
#[derive(Default)]
struct Gathered {
    batch: AppendBatch,
    first_lines: Vec<usize>,
}

impl Gathered {
    /// Adds `line`; `false` (adding nothing) if it belongs in the next batch.
    fn add(&mut self, line: &Line, limit: usize) -> Result<bool, ImportError> {
        let event = &line.event;
        let new = event.to_new_event().map_err(|e| ImportError::Line {
            file: PathBuf::new(),
            line: line.number,
            message: format!("the payload is not base64: {e}"),
        })?;
        let full = self.batch.event_count() >= limit;
        if let Some(last) = self.batch.streams.last_mut()
            && last.stream_id == event.stream_id
            && last.expected_version + last.events.len() as u64 + 1 == event.version
        {
            if full {
                return Ok(false);
            }
            last.events.push(new);
            return Ok(true);
        }
        let returns = self
            .batch
            .streams
            .iter()
            .any(|s| s.stream_id == event.stream_id);
        if returns || full {
            return Ok(false);
        }
        self.batch.streams.push(StreamAppend {
            stream_id: event.stream_id,
            category: event.category.clone(),
            expected_version: event.version.saturating_sub(1),
            events: vec![new],
        });
        self.first_lines.push(line.number);
        Ok(true)
    }
}

fn read_lines(path: &Path) -> Result<Vec<Line>, AdminError> {
    let file = File::open(path).map_err(AdminError::io(format!("opening {}", path.display())))?;
    let mut lines = Vec::new();
    for (index, text) in BufReader::new(file).lines().enumerate() {
        let text = text.map_err(AdminError::io(format!("reading {}", path.display())))?;
        if text.trim().is_empty() {
            continue;
        }
        let event: Exported = serde_json::from_str(&text).map_err(|e| ImportError::Line {
            file: path.to_owned(),
            line: index + 1,
            message: e.to_string(),
        })?;
        lines.push(Line {
            number: index + 1,
            event,
        });
    }
    Ok(lines)
}

async fn append(
    store: &dyn EventStore,
    file: &Path,
    gathered: Gathered,
) -> Result<Position, AdminError> {
    let Gathered { batch, first_lines } = gathered;
    match store.append(batch.clone()).await {
        Ok(position) => Ok(position),
        Err(Error::Conflict { stream, actual, .. }) => {
            let at = batch
                .streams
                .iter()
                .position(|s| s.stream_id == stream)
                .unwrap_or(0);
            Err(ImportError::Conflict {
                file: file.to_owned(),
                line: first_lines.get(at).copied().unwrap_or(0),
                stream,
                expected: batch.streams.get(at).map_or(0, |s| s.expected_version),
                actual,
            }
            .into())
        }
        Err(other) => Err(other.into()),
    }
}

pub(super) async fn run(cx: &Context, args: ImportArgs) -> Outcome {
    let file = args.file.as_path();
    let lines = read_lines(file)?;
    let start = cx.events.last_position().await?;
    let mut gathered = Gathered::default();
    let mut batches = 0;
    let mut last_position = start;
    let with_file = |error: ImportError| match error {
        ImportError::Line { line, message, .. } => ImportError::Line {
            file: file.to_owned(),
            line,
            message,
        },
        other => other,
    };
    for line in &lines {
        if !gathered.add(line, args.batch.max(1)).map_err(with_file)? {
            last_position = append(&*cx.events, file, std::mem::take(&mut gathered)).await?;
            batches += 1;
            if !gathered.add(line, args.batch.max(1)).map_err(with_file)? {
                return Err(AdminError::Refused(format!(
                    "line {} fits no batch",
                    line.number
                )));
            }
        }
    }
    if !gathered.batch.streams.is_empty() {
        last_position = append(&*cx.events, file, gathered).await?;
        batches += 1;
    }
    let (first_position, verified) = verify(&*cx.events, file, &lines, start).await?;
    let streams = lines
        .iter()
        .map(|l| l.event.stream_id)
        .collect::<std::collections::HashSet<_>>()
        .len();
    let line = ImportedLine {
        events: lines.len(),
        batches,
        streams,
        first_position,
        last_position,
        verified,
    };
    match cx.out.json {
        true => cx.out.json_line(&line),
        false => cx.out.line(&format!(
            "imported {} event(s) of {} stream(s) in {} batch(es), positions {} to {}; read back and checked event for event: {} match",
            line.events,
            line.streams,
            line.batches,
            line.first_position.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            line.last_position,
            line.verified
        )),
    }
}

/// Reads the log after `start` and compares it, in order, with the file's events; returns the
/// first position read and how many matched.
async fn verify(
    store: &dyn EventStore,
    file: &Path,
    lines: &[Line],
    start: Position,
) -> Result<(Option<Position>, usize), AdminError> {
    let mut after = start;
    let mut checked = 0;
    let mut first = None;
    while checked < lines.len() {
        let page = store.read_log(LogQuery::after(after, PAGE)).await?;
        if page.is_empty() {
            break;
        }
        after = page.next;
        for stored in &page.events {
            let Some(line) = lines.get(checked) else {
                break;
            };
            first.get_or_insert(stored.position);
            if let Some(field) = line.event.differs_from(stored) {
                return Err(ImportError::Mismatch {
                    file: file.to_owned(),
                    line: line.number,
                    stream: line.event.stream_id,
                    version: line.event.version,
                    field,
                }
                .into());
            }
            checked += 1;
        }
    }
    if checked < lines.len() {
        return Err(ImportError::Missing {
            file: file.to_owned(),
            expected: lines.len(),
            found: checked,
        }
        .into());
    }
    Ok((first, checked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::record::StoredEvent;
    use crate::stores::memory::MemoryStore;

    /// Lines for events of `streams` in the order given: (stream index, version).
    fn lines(streams: &[Uuid], order: &[(usize, u64)]) -> Vec<Line> {
        order
            .iter()
            .enumerate()
            .map(|(i, &(stream, version))| Line {
                number: i + 1,
                event: Exported {
                    position: Position::new(i as u64 + 1),
                    stream_id: streams[stream],
                    category: "Account".into(),
                    version,
                    id: Uuid::now_v7(),
                    name: format!("E{i}"),
                    schema_version: 1,
                    recorded_at: String::new(),
                    metadata: [("n".to_owned(), i.to_string())].into(),
                    payload: "e30=".into(),
                },
            })
            .collect()
    }

    /// Gathers `lines` into batches of at most `limit` events, as `run` does.
    fn batches(lines: &[Line], limit: usize) -> Vec<Gathered> {
        let mut all = vec![Gathered::default()];
        for line in lines {
            if !all.last_mut().unwrap().add(line, limit).unwrap() {
                all.push(Gathered::default());
                assert!(all.last_mut().unwrap().add(line, limit).unwrap());
            }
        }
        all
    }

    #[tokio::test]
    async fn batches_keep_the_files_order_and_read_back_event_for_event() {
        let streams = [Uuid::now_v7(), Uuid::now_v7()];
        // a1 a2 b1 a3 b2 b3: `a` comes back after `b`, so the batch must end before a3.
        let lines = lines(&streams, &[(0, 1), (0, 2), (1, 1), (0, 3), (1, 2), (1, 3)]);
        let gathered = batches(&lines, 100);
        let shapes: Vec<Vec<(Uuid, u64, usize)>> = gathered
            .iter()
            .map(|g| {
                g.batch
                    .streams
                    .iter()
                    .map(|s| (s.stream_id, s.expected_version, s.events.len()))
                    .collect()
            })
            .collect();
        assert_eq!(
            shapes,
            vec![
                vec![(streams[0], 0, 2), (streams[1], 0, 1)],
                vec![(streams[0], 2, 1), (streams[1], 1, 2)],
            ]
        );
        // With two events a batch: a1 a2 | b1 a3 | b2 b3.
        let small = batches(&lines, 2);
        assert_eq!(small.len(), 3);
        assert!(small.iter().all(|g| g.batch.event_count() == 2));

        let store = MemoryStore::new();
        let file = Path::new("log.jsonl");
        for batch in gathered {
            append(&store, file, batch).await.unwrap();
        }
        let (first, checked) = verify(&store, file, &lines, Position::START).await.unwrap();
        assert_eq!((first, checked), (Some(Position::new(1)), 6));

        // Changed metadata on line 4 is found and named.
        let mut altered = lines;
        altered[3]
            .event
            .metadata
            .insert("n".into(), "changed".into());
        let mismatch = verify(&store, file, &altered, Position::START)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &mismatch,
                AdminError::Import(ImportError::Mismatch {
                    line: 4,
                    field: "metadata",
                    ..
                })
            ),
            "{mismatch}"
        );
        assert_eq!(mismatch.exit_code(), super::super::EXIT_PROBLEMS);
    }

    #[tokio::test]
    async fn a_stream_the_store_has_already_refuses_the_batch_and_writes_nothing() {
        let streams = [Uuid::now_v7(), Uuid::now_v7()];
        let store = MemoryStore::new();
        let existing = crate::NewEvent::new("Opened", 1, "{}");
        store
            .append(AppendBatch::single_in(
                "Account",
                streams[1],
                0,
                vec![existing],
            ))
            .await
            .unwrap();
        let lines = lines(&streams, &[(0, 1), (1, 1)]);
        let mut gathered = batches(&lines, 100);
        let error = append(&store, Path::new("log.jsonl"), gathered.remove(0))
            .await
            .unwrap_err();
        assert!(
            matches!(
                &error,
                AdminError::Import(ImportError::Conflict {
                    line: 2,
                    expected: 0,
                    actual: 1,
                    ..
                })
            ),
            "{error}"
        );
        assert_eq!(error.exit_code(), super::super::EXIT_CANNOT_RUN);
        assert_eq!(store.stream_version(streams[0]).await.unwrap(), 0);
        let log: Vec<StoredEvent> = store
            .read_log(LogQuery::from_start(10))
            .await
            .unwrap()
            .events;
        assert_eq!(log.len(), 1, "nothing of the refused batch was written");
    }
}
