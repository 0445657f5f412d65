//! `tail`: the log from a position, filtered by aggregate type and event name; with
//! `--follow` it keeps waiting for new events, woken by the store's commits (PostgreSQL
//! `NOTIFY`, an in-process signal) or, where the store sends none (another process writing an
//! SQLite file), by polling.

use std::time::Duration;

use super::args::TailArgs;
use super::log::PAGE;
use super::record::{Decoded, Exported};
use super::streams::{metadata_text, or_dash};
use super::{Context, Outcome};
use crate::application::subscription::Subscription;
use crate::persistence::record::{LogQuery, StoredEvent};

/// How long a follower waits for a wake-up before it reads the log again anyway.
const POLL: Duration = Duration::from_millis(250);

pub(super) async fn run(cx: &Context, args: TailArgs) -> Outcome {
    let after = match args.new {
        true => cx.events.last_position().await?,
        false => args.after(),
    };
    let query = LogQuery::after(after, PAGE)
        .categories(args.aggregates.iter().cloned())
        .names(args.events.iter().cloned());
    let mut log = Subscription::new(cx.events.clone(), query).poll_interval(POLL);
    let mut shown = 0u64;
    let mut told = false;
    loop {
        let events = log.try_next_batch().await?;
        if events.is_empty() {
            if !args.follow {
                return Ok(());
            }
            if !told {
                // On stderr, so that a pipe gets events only: a person (or a test) learns that
                // everything stored so far was shown.
                eprintln!(
                    "caught up at position {}; waiting for new events (read again when the store signals a commit, else every 250 ms)",
                    log.position()
                );
                told = true;
            }
            log.wait().await;
            continue;
        }
        cx.codec.load_keys_of(&events).await;
        for stored in &events {
            if args.limit.is_some_and(|limit| shown >= limit) {
                return Ok(());
            }
            show(cx, &args, stored).await?;
            shown += 1;
        }
        if args.limit.is_some_and(|limit| shown >= limit) {
            return Ok(());
        }
    }
}

async fn show(cx: &Context, args: &TailArgs, stored: &StoredEvent) -> Outcome {
    if args.raw {
        let line = Exported::of(stored);
        return match cx.out.json {
            true => cx.out.json_line(&line),
            false => cx.out.line(&format!(
                "{:>8}  {} {}:{}  {}  {}  {}",
                line.position,
                or_dash(&line.category),
                line.stream_id,
                line.version,
                cx.out
                    .accent(&format!("{} v{}", line.name, line.schema_version)),
                metadata_text(&line.metadata),
                line.payload
            )),
        };
    }
    let decoded = Decoded::of(&cx.codec, stored).await;
    match cx.out.json {
        true => cx.out.json_line(&decoded),
        false => cx.out.line(&format!(
            "{:>8}  {}  {} {}:{}  {}  {}",
            decoded.position,
            cx.out.dim(&decoded.recorded_at),
            or_dash(&decoded.category),
            decoded.stream_id,
            decoded.version,
            cx.out.accent(&decoded.name),
            decoded.data_text()
        )),
    }
}
