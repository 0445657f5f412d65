//! The fingerprints of stored shapes, as `const fn`s: the same arithmetic runs in the derives'
//! generated constants (`EventData::FINGERPRINT`, folded by rustc) and in this crate when a lock
//! file is read back, so the two always agree.
//!
//! A fingerprint is FNV-1a over a sequence of pieces; each piece is length-prefixed, so that
//! `("ab", "c")` and `("a", "bc")` differ.
//!
//! ```
//! use eventsource_schema::fingerprint::{START, number, text};
//!
//! const VEC_OF_U64: u64 = number(text(START, "seq"), text(START, "u64"));
//! assert_ne!(VEC_OF_U64, number(text(START, "seq"), text(START, "u32")));
//! ```

/// The fingerprint of nothing: where every fold starts.
pub const START: u64 = 0xcbf2_9ce4_8422_2325;

const PRIME: u64 = 0x0000_0100_0000_01b3;

const fn bytes(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(PRIME);
        i += 1;
    }
    hash
}

/// Folds a number (a length, a count, another type's fingerprint) into `hash`.
pub const fn number(hash: u64, value: u64) -> u64 {
    bytes(hash, &value.to_le_bytes())
}

/// Folds a piece of text (a name, an attribute, a type as written) into `hash`.
pub const fn text(hash: u64, piece: &str) -> u64 {
    bytes(number(hash, piece.len() as u64), piece.as_bytes())
}

/// FNV-1a, 64 bits, over raw bytes: stable across builds, platforms and compiler versions.
pub const fn fnv1a(data: &[u8]) -> u64 {
    bytes(START, data)
}
