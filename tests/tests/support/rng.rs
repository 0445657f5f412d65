//! A small deterministic random generator and the seed a test prints, so a failing run can be
//! replayed.
#![allow(dead_code)]

use std::time::SystemTime;

/// A small deterministic generator (splitmix64): no dependency, and a seed replays the run.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A number in `low..=high`.
    pub(crate) fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// A generator of its own for `stream` (a writer, a trial), derived from this one's seed.
    pub(crate) fn fork(&self, stream: u64) -> Rng {
        Rng(self.0 ^ (stream + 1).wrapping_mul(0xA076_1D64_78BD_642F))
    }
}

/// The seed from the environment variable `env`, or from the clock; printed with `label` and
/// the variable to set to replay it.
pub(crate) fn seed(env: &str, label: &str) -> u64 {
    let seed = match std::env::var(env) {
        Ok(seed) => seed
            .parse()
            .unwrap_or_else(|_| panic!("{env} is a number, not {seed:?}")),
        Err(_) => SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    println!("{label}: seed {seed} ({env}={seed} replays it)");
    seed
}
