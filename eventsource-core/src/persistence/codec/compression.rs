//! Compressing payloads: LZ4 (pure Rust, fast; the default) and Zstandard (smaller, slower;
//! the `zstd` feature). A payload is compressed only if it is at least the threshold long and
//! comes out smaller; otherwise it is stored as it was, and its envelope says so.

use super::envelope::EnvelopeError;

/// How new payloads are compressed.
///
/// ```
/// use eventsource_core::persistence::codec::Compression;
///
/// let lz4 = Compression::lz4();                 // payloads of 256 bytes or more
/// let small_too = Compression::lz4().above(64); // payloads of 64 bytes or more
/// assert_eq!(small_too.threshold(), 64);
/// # let _ = lz4;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    algorithm: Algorithm,
    threshold: usize,
}

/// The compression algorithms, with their ids in an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    /// An LZ4 block, its uncompressed length first (4 bytes, little-endian).
    Lz4,
    /// A Zstandard frame at this level.
    #[cfg_attr(not(feature = "zstd"), allow(dead_code))]
    Zstd(i32),
}

/// Below this many bytes a payload is not worth compressing by default: JSON events are often
/// smaller, and LZ4 rarely wins on them.
pub const DEFAULT_THRESHOLD: usize = 256;

impl Compression {
    /// LZ4: fast to compress and very fast to decompress (pure Rust).
    pub fn lz4() -> Self {
        Self {
            algorithm: Algorithm::Lz4,
            threshold: DEFAULT_THRESHOLD,
        }
    }

    /// Zstandard at `level` (1–22; 3 is zstd's own default): smaller than LZ4, slower.
    #[cfg(feature = "zstd")]
    pub fn zstd(level: i32) -> Self {
        Self {
            algorithm: Algorithm::Zstd(level.clamp(1, 22)),
            threshold: DEFAULT_THRESHOLD,
        }
    }

    /// Compresses only payloads of at least `bytes` bytes (default [`DEFAULT_THRESHOLD`]).
    pub fn above(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// The threshold below which payloads are stored uncompressed.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The algorithm's name.
    pub fn name(&self) -> &'static str {
        self.algorithm.name()
    }

    /// `body` compressed, or `None` if it is below the threshold or doesn't get smaller.
    pub(crate) fn compress(&self, body: &[u8]) -> Option<(Algorithm, Vec<u8>)> {
        if body.len() < self.threshold {
            return None;
        }
        let compressed = match self.algorithm {
            Algorithm::Lz4 => lz4_flex::block::compress_prepend_size(body),
            #[cfg(feature = "zstd")]
            Algorithm::Zstd(level) => zstd::bulk::compress(body, level).ok()?,
            #[cfg(not(feature = "zstd"))]
            Algorithm::Zstd(_) => return None,
        };
        (compressed.len() < body.len()).then_some((self.algorithm, compressed))
    }
}

impl Algorithm {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Algorithm::Lz4 => "lz4",
            Algorithm::Zstd(_) => "zstd",
        }
    }

    pub(crate) fn id(self) -> u8 {
        match self {
            Algorithm::Lz4 => 1,
            Algorithm::Zstd(_) => 2,
        }
    }

    pub(crate) fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Algorithm::Lz4),
            2 => Some(Algorithm::Zstd(0)),
            _ => None,
        }
    }

    /// Decompresses `body`, refusing to produce more than `limit` bytes (a corrupt or hostile
    /// length must not make us allocate gigabytes).
    pub(crate) fn decompress(self, body: &[u8], limit: usize) -> Result<Vec<u8>, EnvelopeError> {
        let corrupt = |message: String| EnvelopeError::Decompress {
            algorithm: self.name(),
            message,
        };
        match self {
            Algorithm::Lz4 => {
                let Some(prefix) = body.get(..4) else {
                    return Err(corrupt("shorter than its length prefix".into()));
                };
                let declared = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
                if declared as usize > limit {
                    return Err(EnvelopeError::TooLarge {
                        declared: declared as u64,
                        limit,
                    });
                }
                lz4_flex::block::decompress_size_prepended(body).map_err(|e| corrupt(e.to_string()))
            }
            #[cfg(feature = "zstd")]
            Algorithm::Zstd(_) => {
                use std::io::Read;
                // A frame that says how long it is (ours all do) is refused before decoding.
                if let Ok(Some(declared)) = zstd::zstd_safe::get_frame_content_size(body)
                    && declared > limit as u64
                {
                    return Err(EnvelopeError::TooLarge { declared, limit });
                }
                let mut decoder =
                    zstd::stream::read::Decoder::new(body).map_err(|e| corrupt(e.to_string()))?;
                // A frame also names its window, which the decoder allocates before it writes a
                // byte: without a bound, a dozen hostile bytes make it allocate zstd's own
                // maximum (128 MiB), whatever the limit. No window beyond the limit is needed:
                // the compressor sizes it to the payload.
                decoder
                    .window_log_max(window_log(limit))
                    .map_err(|e| corrupt(e.to_string()))?;
                let mut out = Vec::new();
                let read = decoder
                    .take(limit as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| corrupt(e.to_string()))?;
                if read > limit {
                    return Err(EnvelopeError::TooLarge {
                        declared: read as u64,
                        limit,
                    });
                }
                Ok(out)
            }
            #[cfg(not(feature = "zstd"))]
            Algorithm::Zstd(_) => Err(EnvelopeError::Unsupported {
                what: "compression",
                name: "zstd".into(),
                hint: "this build has no Zstandard: enable eventsource-core's `zstd` feature",
            }),
        }
    }
}

/// The smallest window log (base-2 size) that holds `limit` bytes, within what zstd accepts
/// (10 to 31).
#[cfg(feature = "zstd")]
fn window_log(limit: usize) -> u32 {
    let bits = usize::BITS - limit.saturating_sub(1).leading_zeros();
    bits.clamp(10, 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_only_above_the_threshold_and_only_when_smaller() {
        let repetitive = vec![b'a'; 1000];
        let lz4 = Compression::lz4();
        let (algorithm, compressed) = lz4.compress(&repetitive).expect("compresses");
        assert!(compressed.len() < 100, "{}", compressed.len());
        assert_eq!(
            algorithm.decompress(&compressed, 1 << 20).unwrap(),
            repetitive
        );
        assert!(
            lz4.compress(&repetitive[..255]).is_none(),
            "below the threshold"
        );
        assert!(lz4.above(16).compress(&repetitive[..255]).is_some());
        // Random-looking bytes don't shrink: stored as they were.
        let noise: Vec<u8> = (0..32)
            .flat_map(|_| *super::super::DataKey::generate().as_bytes())
            .collect();
        assert!(lz4.above(0).compress(&noise).is_none());
    }

    #[test]
    fn a_declared_length_beyond_the_limit_is_refused_before_allocating() {
        let mut hostile = u32::MAX.to_le_bytes().to_vec();
        hostile.extend_from_slice(&[0; 8]);
        let err = Algorithm::Lz4.decompress(&hostile, 1 << 20).unwrap_err();
        assert!(
            matches!(err, EnvelopeError::TooLarge { declared, .. } if declared == u64::from(u32::MAX)),
            "{err}"
        );
        let err = Algorithm::Lz4.decompress(&[1, 0], 1 << 20).unwrap_err();
        assert!(
            matches!(
                err,
                EnvelopeError::Decompress {
                    algorithm: "lz4",
                    ..
                }
            ),
            "{err}"
        );
        let mut lying = 10u32.to_le_bytes().to_vec();
        lying.extend_from_slice(&[0xff; 3]);
        assert!(Algorithm::Lz4.decompress(&lying, 1 << 20).is_err());
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn zstd_round_trips_and_bounds_its_output() {
        let text = "the quick brown fox jumps over the lazy dog ".repeat(40);
        let (algorithm, compressed) = Compression::zstd(3).compress(text.as_bytes()).unwrap();
        assert_eq!(
            algorithm.decompress(&compressed, 1 << 20).unwrap(),
            text.as_bytes()
        );
        let err = algorithm.decompress(&compressed, 100).unwrap_err();
        assert!(
            matches!(err, EnvelopeError::TooLarge { limit: 100, .. }),
            "{err}"
        );
        // Exactly at the limit, at the strongest level: its window fits.
        let (algorithm, strongest) = Compression::zstd(22).compress(text.as_bytes()).unwrap();
        assert_eq!(
            algorithm.decompress(&strongest, text.len()).unwrap(),
            text.as_bytes()
        );
    }

    /// Found with the `payload_envelope` fuzz target under a malloc limit
    /// (`-malloc_limit_mb=64`, which `fuzz/run` sets for it): a frame that declares no content
    /// size and a 128 MiB window (and holds one raw byte) made the decoder allocate 128 MiB
    /// under a 1 MiB limit. A window beyond the limit is refused now.
    #[cfg(feature = "zstd")]
    #[test]
    fn zstd_refuses_a_window_beyond_the_limit_before_allocating_it() {
        // A frame of one raw byte, its window 2^(10 + exponent) bytes.
        let frame = |exponent: u8| {
            [
                0x28,
                0xb5,
                0x2f,
                0xfd,          // magic
                0x00,          // no content size, not single-segment, no checksum
                exponent << 3, // window descriptor
                0x09,
                0x00,
                0x00, // the last block, raw, 1 byte
                b'A',
            ]
        };
        let err = Algorithm::Zstd(0)
            .decompress(&frame(17), 1 << 20)
            .unwrap_err();
        assert!(
            matches!(
                err,
                EnvelopeError::Decompress {
                    algorithm: "zstd",
                    ..
                }
            ),
            "{err}"
        );
        // A window the limit holds (1 MiB) is a valid frame.
        assert_eq!(
            Algorithm::Zstd(0).decompress(&frame(10), 1 << 20).unwrap(),
            b"A"
        );
        assert_eq!(
            (
                window_log(1),
                window_log(1 << 20),
                window_log((1 << 20) + 1)
            ),
            (10, 20, 21)
        );
    }
}
