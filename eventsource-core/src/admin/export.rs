//! `export`: a stream or the whole log as JSON lines, one stored event per line with every
//! field needed to append it again (see `import`): stream, category, version, id, name, schema
//! version, metadata and the payload's bytes in base64 (an encrypted payload stays encrypted;
//! its keys stay in the source store's key tables). The position and recording time are the
//! source's, for reference.
//!
//! The whole log is read up to the position that was last when the export started, in log
//! order, so what it writes is a consistent prefix of the log.

use std::fs::File;
use std::io::{BufWriter, Write};

use futures_util::TryStreamExt;

use super::args::ExportArgs;
use super::log::{PAGE, each_page};
use super::record::Exported;
use super::{AdminError, Context, Outcome};
use crate::persistence::record::{LogQuery, StreamRange};

pub(super) async fn run(cx: &Context, args: ExportArgs) -> Outcome {
    let (mut sink, target): (Box<dyn Write>, String) = match &args.output {
        Some(path) => (
            Box::new(BufWriter::new(File::create(path).map_err(
                AdminError::io(format!("creating {}", path.display())),
            )?)),
            path.display().to_string(),
        ),
        None => (Box::new(std::io::stdout().lock()), "stdout".to_owned()),
    };
    let mut written = 0u64;
    match args.stream {
        Some(stream) => {
            let mut events = cx.events.read_stream(stream, StreamRange::all());
            while let Some(event) = events.try_next().await? {
                write(&mut sink, &target, &Exported::of(&event))?;
                written += 1;
            }
        }
        None => {
            let end = cx.events.last_position().await?;
            let query = LogQuery::from_start(PAGE);
            each_page(&*cx.events, query, end, |events| {
                for event in &events {
                    write(&mut sink, &target, &Exported::of(event))?;
                    written += 1;
                }
                Ok::<_, AdminError>(true)
            })
            .await?;
        }
    }
    sink.flush()
        .map_err(AdminError::io(format!("writing to {target}")))?;
    if args.output.is_some() {
        eprintln!("exported {written} event(s)");
    }
    Ok(())
}

/// Writes one event as a JSON line.
fn write(sink: &mut dyn Write, target: &str, line: &Exported) -> Outcome {
    let text = serde_json::to_string(line)
        .map_err(|e| AdminError::Refused(format!("cannot write an event as JSON: {e}")))?;
    writeln!(sink, "{text}").map_err(AdminError::io(format!("writing to {target}")))
}
