//! The process's memory, from `/proc/self/status` (Linux): the peak resident set (`VmHWM`), the
//! current one (`VmRSS`), resetting the peak, and a sampler for kernels that don't allow a reset.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A field of `/proc/self/status` in KiB (`VmHWM`, `VmRSS`), or `None` where there is no procfs.
pub fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// The peak resident set size in KiB since start or the last [`reset_peak`] (0 if unknown).
pub fn peak_kib() -> u64 {
    status_kib("VmHWM").unwrap_or(0)
}

/// The current resident set size in KiB (0 if unknown).
pub fn current_kib() -> u64 {
    status_kib("VmRSS").unwrap_or(0)
}

/// Resets the peak (`VmHWM`) to the current resident set by writing `5` to
/// `/proc/self/clear_refs`. Returns whether the kernel allowed it.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The anonymous part of the resident set in KiB (heap and stacks, without file pages such as
/// a memory-mapped database), 0 if unknown.
pub fn anon_kib() -> u64 {
    status_kib("RssAnon").unwrap_or(0)
}

/// Samples `VmRSS` and `RssAnon` on a thread every millisecond and keeps the highest values: the
/// fallback when the peak can't be reset, and the only way to see the anonymous peak.
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    max_anon: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(current_kib()));
        let max_anon = Arc::new(AtomicU64::new(anon_kib()));
        let thread = {
            let (stop, max, max_anon) =
                (Arc::clone(&stop), Arc::clone(&max), Arc::clone(&max_anon));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    max.fetch_max(current_kib(), Ordering::Relaxed);
                    max_anon.fetch_max(anon_kib(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        Self {
            stop,
            max,
            max_anon,
            thread: Some(thread),
        }
    }

    /// Stops sampling and returns the highest `VmRSS` and `RssAnon` seen, in KiB.
    pub fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.max.fetch_max(current_kib(), Ordering::Relaxed);
        self.max_anon.fetch_max(anon_kib(), Ordering::Relaxed);
        (
            self.max.load(Ordering::Relaxed),
            self.max_anon.load(Ordering::Relaxed),
        )
    }
}
