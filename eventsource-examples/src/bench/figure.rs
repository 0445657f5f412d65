//! One measured figure, its JSON line, and the table that sets our figures beside the raw
//! engine's.

use serde_json::{Map, Value, json};

/// One measurement: `events` (commands, events or rows) in `seconds`.
#[derive(Debug, Clone)]
pub struct Figure {
    /// `memory`, `sqlite` or `postgres`.
    pub store: String,
    /// `W1` … `W8`, `W3-large`, `W3-interleaved`, `prefill`.
    pub workload: &'static str,
    /// `default`, `snapshots`, `cache`, `raw-single`, `raw-batch`, …
    pub variant: String,
    /// How many commands, events or rows the figure counts.
    pub events: u64,
    /// Wall-clock seconds (for W3 the median run).
    pub seconds: f64,
    /// The peak resident set (`VmHWM`) in KiB, reset before the workload where the kernel allows.
    pub peak_rss_kib: u64,
    /// For a latency figure: the events already in the stream when the command ran.
    pub history: Option<u64>,
    /// For a latency figure: the per-command latency in microseconds.
    pub latency_us: Option<f64>,
    /// Further keys (`median_ms`, `conflicts`, `rss_growth_kib`, …).
    pub extra: Map<String, Value>,
}

impl Figure {
    /// A throughput figure.
    pub fn new(
        store: &str,
        workload: &'static str,
        variant: impl Into<String>,
        events: u64,
        seconds: f64,
    ) -> Self {
        Self {
            store: store.to_owned(),
            workload,
            variant: variant.into(),
            events,
            seconds,
            peak_rss_kib: super::rss::peak_kib(),
            history: None,
            latency_us: None,
            extra: Map::new(),
        }
    }

    /// Reads a figure back from its JSON line (as a child process of the bench prints it).
    pub fn from_json(value: &Value) -> Option<Self> {
        let object = value.as_object()?;
        let workload = match object.get("workload")?.as_str()? {
            "W1" => "W1",
            "W2" => "W2",
            "W3" => "W3",
            "W3-large" => "W3-large",
            "W3-interleaved" => "W3-interleaved",
            "prefill" => "prefill",
            "W4" => "W4",
            "W5" => "W5",
            "W6" => "W6",
            "W7" => "W7",
            "W8" => "W8",
            _ => return None,
        };
        let known = [
            "store",
            "workload",
            "variant",
            "events",
            "seconds",
            "per_second",
            "peak_rss_kib",
            "history",
            "latency_us",
        ];
        Some(Self {
            store: object.get("store")?.as_str()?.to_owned(),
            workload,
            variant: object.get("variant")?.as_str()?.to_owned(),
            events: object.get("events")?.as_u64()?,
            seconds: object.get("seconds")?.as_f64()?,
            peak_rss_kib: object.get("peak_rss_kib")?.as_u64()?,
            history: object.get("history").and_then(Value::as_u64),
            latency_us: object.get("latency_us").and_then(Value::as_f64),
            extra: object
                .iter()
                .filter(|(key, _)| !known.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        })
    }

    /// Adds a key to the JSON object.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// Events (or commands) per second.
    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.events as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The figure as one JSON object with the keys `store`, `workload`, `variant`, `events`,
    /// `seconds`, `per_second`, `peak_rss_kib`, `history`, `latency_us` (null unless a latency
    /// figure) and any extra keys.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("store".into(), json!(self.store));
        object.insert("workload".into(), json!(self.workload));
        object.insert("variant".into(), json!(self.variant));
        object.insert("events".into(), json!(self.events));
        object.insert("seconds".into(), json!(self.seconds));
        object.insert("per_second".into(), json!(self.per_second()));
        object.insert("peak_rss_kib".into(), json!(self.peak_rss_kib));
        object.insert("history".into(), json!(self.history));
        object.insert("latency_us".into(), json!(self.latency_us));
        for (key, value) in &self.extra {
            object.insert(key.clone(), value.clone());
        }
        Value::Object(object)
    }
}

/// Which raw figure a figure of ours is set beside.
fn raw_partner(figure: &Figure) -> Option<&'static str> {
    // A codec comparison's figure is set beside its plain setting instead (`ratio_to_plain`).
    if figure.variant.starts_with("raw")
        || figure.variant.starts_with(super::codecs::VARIANT_PREFIX)
        || figure.history.is_some()
    {
        return None;
    }
    match (figure.workload, figure.variant.as_str()) {
        ("W1", _) => Some("raw-single"),
        ("W2", _) => Some("raw-batch"),
        ("W3" | "W4", _) | ("W3-interleaved", "default") => Some("raw-read"),
        ("W3-interleaved", "log-read") => Some("raw-log-read"),
        _ => None,
    }
}

/// The raw engine's best figure of the same run a figure of ours is set beside (see
/// [`raw_best`](super::raw_best)): for W5 the one with as many writers.
fn best_partner<'a>(figure: &Figure, figures: &'a [Figure]) -> Option<&'a Figure> {
    if figure.variant.starts_with("raw")
        || figure.variant.starts_with(super::codecs::VARIANT_PREFIX)
        || figure.history.is_some()
    {
        return None;
    }
    let partner = match (figure.workload, figure.variant.as_str()) {
        ("W1", _) => "raw-best-single",
        ("W2", _) => "raw-best-batch",
        ("W3", _) | ("W3-interleaved", "default") => "raw-best-read",
        ("W5", "distinct") => "raw-best-concurrent",
        _ => return None,
    };
    figures.iter().find(|f| {
        f.store == figure.store
            && f.workload == figure.workload
            && f.variant == partner
            && (figure.workload != "W5" || f.extra.get("writers") == figure.extra.get("writers"))
    })
}

/// A rate in few digits: `13.0 M`, `42.6 k`, `951`.
pub(crate) fn compact(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.1} M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// `12345678.9` as `12,345,679`.
pub(crate) fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The figures as a Markdown table: one row per figure, latencies in µs, and for our figures the
/// raw engine's rate on the same store and the ratio (ours ÷ raw), both in the store's row shape
/// and at the engine's best (`best 13.0 M/s, ratio 0.21`).
pub fn table(figures: &[Figure]) -> String {
    let mut out = String::from(
        "| store | workload | variant | events | seconds | per second | peak RSS MiB | vs raw engine |\n\
         |---|---|---|---:|---:|---:|---:|---|\n",
    );
    for figure in figures {
        let (events, seconds, rate) = match (figure.history, figure.latency_us) {
            (Some(history), Some(latency)) => (
                format!("history {}", thousands(history as f64)),
                format!("{latency:.0} µs"),
                format!("{} cmd/s", thousands(1e6 / latency.max(1e-9))),
            ),
            _ => (
                thousands(figure.events as f64),
                format!("{:.3}", figure.seconds),
                thousands(figure.per_second()),
            ),
        };
        let mut notes = Vec::new();
        if let Some(partner) = raw_partner(figure) {
            let raw = figures.iter().find(|f| {
                f.store == figure.store && f.workload == figure.workload && f.variant == partner
            });
            if let Some(raw) = raw {
                notes.push(format!(
                    "{partner} {}/s, ratio {:.2}",
                    thousands(raw.per_second()),
                    figure.per_second() / raw.per_second().max(1e-9)
                ));
            }
        }
        if let Some(best) = best_partner(figure, figures) {
            notes.push(format!(
                "best {}/s, ratio {:.2}",
                compact(best.per_second()),
                figure.per_second() / best.per_second().max(1e-9)
            ));
        }
        for (key, value) in &figure.extra {
            let value = match value {
                Value::Number(n) if n.is_f64() => format!("{:.2}", n.as_f64().unwrap_or(0.0)),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            notes.push(format!("{key} {value}"));
        }
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} | {} |\n",
            figure.store,
            figure.workload,
            figure.variant,
            events,
            seconds,
            rate,
            figure.peak_rss_kib as f64 / 1024.0,
            notes.join("; ")
        ));
    }
    out
}
