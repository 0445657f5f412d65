//! `projections` (each read model's tracking position and lag) and `rebuild NAME` (clear a read
//! model and project the log into it again, with an indicatif progress bar and the time left).
//!
//! A program registers its read models with [`Admin::projection`](super::Admin::projection),
//! as [`ReadModel`]s: the store, the projection, and how to clear its rows.

use std::time::Instant;

use futures_util::future::BoxFuture;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::args::RebuildArgs;
use super::log::{PAGE, each_page};
use super::{AdminError, Context, Outcome, Registered};
use crate::application::projection::{
    HandlerError, Progress, Projection, ProjectionContext, ProjectionError, Projector,
};
use crate::domain::event::EventEnum;
use crate::persistence::codec::PayloadCodec;
use crate::persistence::position::Position;
use crate::persistence::record::LogQuery;
use crate::persistence::store::EventStore;

/// The most events `projections` counts to tell a read model's lag; past it the lag reads
/// "at least".
const LAG_CAP: u64 = 1_000_000;

/// Runs a rebuild, reporting progress to the function given.
type Rebuild = Box<
    dyn FnOnce(
            PayloadCodec,
            Box<dyn Fn(Progress) + Send + Sync>,
        ) -> BoxFuture<'static, Result<Position, ProjectionError>>
        + Send,
>;

/// A read model the admin CLI reports on and rebuilds: a [`Projection`] over a store, and
/// how to clear what it wrote.
///
/// ```no_run
/// use eventsource_core::admin::{Admin, ReadModel};
/// use eventsource_core::stores::AnyStore;
/// # use eventsource_core::prelude::*;
/// # use eventsource_core::stores::sqlite::SqliteWork;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// # struct Deposited { cents: u64 }
/// # #[derive(Aggregate, Default, Debug)]
/// # #[aggregate(events(Deposited))]
/// # struct Account;
/// # impl Apply<Deposited> for Account { fn apply(&mut self, _: &Deposited) {} }
///
/// #[derive(Projection, Default)]
/// #[projection(name = "balances", events(Deposited), context = SqliteWork)]
/// struct Balances;
/// impl Handle<Deposited, SqliteWork> for Balances {
///     async fn handle(&mut self, e: &Recorded<Deposited>, work: &mut SqliteWork) -> Result<(), HandlerError> {
///         work.connection().execute(
///             "INSERT INTO balances (account, cents) VALUES (?1, ?2)
///              ON CONFLICT (account) DO UPDATE SET cents = cents + ?2",
///             (e.stream_id.to_string(), e.event.cents as i64),
///         )?;
///         Ok(())
///     }
/// }
///
/// let admin = Admin::new("shop-admin").projection("balances", |store| match store {
///     AnyStore::Sqlite(sqlite) => Some(ReadModel::new(sqlite.clone(), Balances, |_, work| {
///         Box::pin(async move {
///             work.connection().execute_batch(
///                 "CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, cents INTEGER);
///                  DELETE FROM balances;",
///             )?;
///             Ok(())
///         })
///     })),
///     _ => None,
/// });
/// ```
pub struct ReadModel {
    tracker: &'static str,
    events: &'static [&'static str],
    rebuild: Rebuild,
}

impl std::fmt::Debug for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModel")
            .field("tracker", &self.tracker)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl ReadModel {
    /// Projection `projection` over `store`. A rebuild runs `clear` in one context (delete the
    /// read model's rows there; create its tables if they may be missing), then
    /// [`Projector::rebuild`] projects the log again from its first event.
    pub fn new<P, S, F>(store: S, projection: P, clear: F) -> Self
    where
        P: Projection,
        P::Context: ProjectionContext<S>,
        S: EventStore + Clone + Send + Sync + 'static,
        F: for<'a> FnOnce(&'a mut P, &'a mut P::Context) -> BoxFuture<'a, Result<(), HandlerError>>
            + Send
            + 'static,
    {
        Self {
            tracker: P::NAME,
            events: <P::Event as EventEnum>::NAMES,
            rebuild: Box::new(move |codec, report| {
                Box::pin(async move {
                    Projector::new(store, projection)
                        .codec(codec)
                        .on_progress(report)
                        .rebuild(clear)
                        .await
                })
            }),
        }
    }
}

/// One read model's status.
#[derive(Debug, Serialize)]
struct StatusLine {
    label: String,
    tracker: &'static str,
    position: Position,
    last_position: Position,
    /// How many events it handles are stored after its position.
    lag: u64,
    /// The lag was counted up to [`LAG_CAP`] only: it is at least `lag`.
    lag_capped: bool,
}

/// How many events named `events` lie after `after` up to `end`, counting at most `cap`.
async fn count(
    store: &dyn EventStore,
    events: &[&str],
    after: Position,
    end: Position,
    cap: u64,
) -> crate::Result<u64> {
    let mut counted = 0;
    let query = LogQuery::after(after, PAGE).names(events.iter().copied());
    each_page(store, query, end, |page| {
        counted += page.len() as u64;
        Ok::<_, crate::Error>(counted < cap)
    })
    .await?;
    Ok(counted)
}

pub(super) async fn status(cx: &Context, registered: &[Registered]) -> Outcome {
    let end = cx.events.last_position().await?;
    let mut lines = Vec::new();
    for model in registered {
        let Some(read_model) = (model.make)(&cx.store) else {
            continue;
        };
        let position = cx.events.tracking_position(read_model.tracker).await?;
        let lag = count(&*cx.events, read_model.events, position, end, LAG_CAP).await?;
        lines.push(StatusLine {
            label: model.label.clone(),
            tracker: read_model.tracker,
            position,
            last_position: end,
            lag,
            lag_capped: lag >= LAG_CAP,
        });
    }
    if cx.out.json {
        for line in &lines {
            cx.out.json_line(line)?;
        }
        return Ok(());
    }
    if lines.is_empty() {
        return cx.out.line(&format!(
            "this program registers no read model kept in a {} store",
            cx.store.kind()
        ));
    }
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            let lag = match (l.lag, l.lag_capped) {
                (0, _) => cx.out.good("up to date"),
                (lag, false) => cx.out.alarm(&format!("{lag} event(s) behind")),
                (lag, true) => cx.out.alarm(&format!("at least {lag} event(s) behind")),
            };
            vec![
                l.label.clone(),
                cx.out.accent(l.tracker),
                l.position.to_string(),
                l.last_position.to_string(),
                lag,
            ]
        })
        .collect();
    cx.out.table(
        &["READ MODEL", "TRACKER", "POSITION", "LOG AT", "LAG"],
        &rows,
    )
}

/// What `rebuild --json` prints.
#[derive(Debug, Serialize)]
struct RebuiltLine {
    label: String,
    tracker: &'static str,
    events: u64,
    position: Position,
    seconds: f64,
}

pub(super) async fn rebuild(
    cx: &Context,
    registered: Vec<Registered>,
    args: RebuildArgs,
) -> Outcome {
    let mut known = Vec::new();
    let mut found = None;
    for model in registered {
        if let Some(read_model) = (model.make)(&cx.store) {
            if model.label == args.name || read_model.tracker == args.name {
                found = Some((model.label, read_model));
                break;
            }
            known.push(format!("{} ({})", model.label, read_model.tracker));
        }
    }
    let Some((label, read_model)) = found else {
        return Err(AdminError::Refused(format!(
            "no read model `{}` in this {} store; known: {}",
            args.name,
            cx.store.kind(),
            match known.is_empty() {
                true => "none".to_owned(),
                false => known.join(", "),
            }
        )));
    };
    let bar = ProgressBar::new_spinner();
    bar.set_message(format!(
        "counting the events `{}` handles",
        read_model.tracker
    ));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let end = cx.events.last_position().await?;
    let total = count(
        &*cx.events,
        read_model.events,
        Position::START,
        end,
        u64::MAX,
    )
    .await?;
    bar.set_length(total);
    bar.set_position(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({rate}, {eta} left)",
        )
        .map_err(|e| AdminError::Refused(format!("the progress bar's template: {e}")))?
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} events/s", state.per_sec());
            },
        )
        .progress_chars("=> "),
    );
    // Until the first batch commits, the rebuild takes the read model's claim (it waits
    // while another runner of it is active) and clears it.
    bar.set_message(format!("rebuilding {}", read_model.tracker));
    let started = Instant::now();
    let handled = bar.clone();
    let report = Box::new(move |progress: Progress| {
        handled.inc(progress.handled);
        if handled.position() > handled.length().unwrap_or(0) {
            handled.set_length(handled.position());
        }
    });
    let outcome = (read_model.rebuild)(cx.codec.clone(), report).await;
    let events = bar.position();
    match outcome {
        Ok(position) => {
            bar.finish_with_message(format!("rebuilt {}", read_model.tracker));
            let line = RebuiltLine {
                label,
                tracker: read_model.tracker,
                events,
                position,
                seconds: started.elapsed().as_secs_f64(),
            };
            match cx.out.json {
                true => cx.out.json_line(&line),
                false => cx.out.line(&format!(
                    "rebuilt {} ({}): {} event(s) up to position {} in {:.1} s",
                    line.label, line.tracker, line.events, line.position, line.seconds
                )),
            }
        }
        Err(error) => {
            bar.abandon_with_message(format!("rebuild of {} failed", read_model.tracker));
            Err(error.into())
        }
    }
}
