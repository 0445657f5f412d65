//! `check`: is the schema lock current, and is the event registry consistent? What a
//! deployment script runs before it starts a new build on a store that holds events.
//!
//! Exit codes: 0 when both are fine; 1 when either has problems (each one printed, with what
//! to do); 3 when the check could not run (the lock file is missing or unreadable).

use std::path::PathBuf;

use serde::Serialize;

use super::args::CheckArgs;
use super::output::Output;
use super::{AdminError, Outcome};
use crate::registry;
use crate::schema::{LockMode, check_lock};

/// What `check --json` prints.
#[derive(Debug, Serialize)]
struct CheckLine {
    ok: bool,
    events: usize,
    aggregates: usize,
    /// The registry's problems.
    registry: Vec<String>,
    /// The lock file checked, if one was.
    lock: Option<PathBuf>,
    /// What is wrong between the code and the lock, in words (empty when they match).
    lock_problems: Vec<String>,
}

pub(super) fn run(
    out: &Output,
    configured: Option<&(PathBuf, String)>,
    args: &CheckArgs,
) -> Outcome {
    let registry_problems: Vec<String> = match registry::validate() {
        Ok(()) => Vec::new(),
        Err(problems) => problems.0.iter().map(ToString::to_string).collect(),
    };
    let dir = args
        .lock
        .clone()
        .or_else(|| configured.map(|(dir, _)| dir.clone()));
    let lock = match dir {
        Some(dir) => {
            let path = dir.join(eventsource_schema::LOCK_FILE);
            if !path.is_file() {
                return Err(AdminError::Refused(format!(
                    "no schema lock at {}: pass the directory that holds it with `check --lock DIR`",
                    path.display()
                )));
            }
            let package = configured.map(|(_, package)| package.as_str()).ok_or_else(|| {
                AdminError::Refused(
                    "this program doesn't say which package's events the lock holds: call `Admin::schema_lock`".into(),
                )
            })?;
            let problems = match check_lock(&dir, package, LockMode::Check) {
                Ok(()) => Vec::new(),
                Err(report) => {
                    if let Some(io) = report.io {
                        return Err(AdminError::Refused(format!(
                            "cannot check the schema lock {}: {io}",
                            path.display()
                        )));
                    }
                    // Registry problems are reported once, above.
                    let report = crate::schema::LockReport {
                        registry: Vec::new(),
                        ..report
                    };
                    report
                        .to_string()
                        .lines()
                        .skip(1)
                        .map(|line| line.trim_start_matches("  - ").to_owned())
                        .filter(|line| !line.is_empty())
                        .collect()
                }
            };
            Some((path, problems))
        }
        None => None,
    };
    let lock_problems = lock.as_ref().map(|(_, p)| p.clone()).unwrap_or_default();
    let line = CheckLine {
        ok: registry_problems.is_empty() && lock_problems.is_empty(),
        events: registry::events().count(),
        aggregates: registry::aggregates().count(),
        registry: registry_problems,
        lock: lock.map(|(path, _)| path),
        lock_problems,
    };
    if out.json {
        out.json_line(&line)?;
    } else {
        show(out, &line)?;
    }
    match line.ok {
        true => Ok(()),
        false => Err(AdminError::Problems(format!(
            "{} problem(s)",
            line.registry.len() + line.lock_problems.len()
        ))),
    }
}

fn show(out: &Output, line: &CheckLine) -> Outcome {
    let mark = |ok: bool| match ok {
        true => out.good("ok     "),
        false => out.alarm("PROBLEM"),
    };
    out.line(&format!(
        "{} registry: {} event type(s), {} aggregate type(s){}",
        mark(line.registry.is_empty()),
        line.events,
        line.aggregates,
        match line.registry.is_empty() {
            true => ", consistent".to_owned(),
            false => format!(", {} problem(s):", line.registry.len()),
        }
    ))?;
    for problem in &line.registry {
        out.line(&format!("          - {problem}"))?;
    }
    match &line.lock {
        None => out.line(&out.dim(
            "        schema lock: not checked (this program names none; pass `check --lock DIR`)",
        ))?,
        Some(path) => {
            out.line(&format!(
                "{} schema lock {}{}",
                mark(line.lock_problems.is_empty()),
                path.display(),
                match line.lock_problems.is_empty() {
                    true => ": matches the code".to_owned(),
                    false => ":".to_owned(),
                }
            ))?;
            for problem in &line.lock_problems {
                out.line(&format!("          - {problem}"))?;
            }
        }
    }
    Ok(())
}
