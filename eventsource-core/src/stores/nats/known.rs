//! Where events are: the JetStream sequences of events this store has seen (appended, read,
//! checked, or named by a snapshot), so that a stream read from a version can start at it
//! instead of searching for it.
//!
//! JetStream can't get "the N-th message on a subject", so without a known sequence a read from
//! version N searches (see [`StreamReader`](super::read)). The repository reads from a version
//! right after something that knew where that version was: after a snapshot (whose message
//! remembers the sequence of the event it was taken at) or from its cached state (built by the
//! append or the read that ended there, both of which saw the sequence).
//!
//! A known sequence is a hint, never trusted: a read that starts at one reads that message
//! again and checks it is the stream's event at that version, and searches if it is not (a
//! stream deleted and created again, a snapshot kept across a restore of the events).

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

/// How many (version, sequence) pairs are kept per stream (the newest ones seen).
const PER_STREAM: usize = 4;

/// How many streams are remembered; past it everything is forgotten at once (hints are only a
/// shortcut, and a process reading this many streams reads most of them once).
const STREAMS: usize = 100_000;

/// An event of a stream at a known sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Known {
    /// Its version in the stream.
    pub(super) version: u64,
    /// Its message's sequence in the events stream.
    pub(super) sequence: u64,
}

/// The known events of one stream, newest seen last.
#[derive(Debug, Default)]
struct Slots {
    known: Vec<Known>,
}

/// The known sequences of the streams this store has seen (see the module docs).
#[derive(Debug, Default)]
pub(super) struct KnownSequences {
    streams: Mutex<HashMap<Uuid, Slots>>,
}

impl KnownSequences {
    /// Remembers that `stream`'s event at `version` is at `sequence`.
    pub(super) fn remember(&self, stream: Uuid, version: u64, sequence: u64) {
        if version == 0 || sequence == 0 {
            return;
        }
        let Ok(mut streams) = self.streams.lock() else {
            return;
        };
        if streams.len() >= STREAMS && !streams.contains_key(&stream) {
            streams.clear();
        }
        let slots = streams.entry(stream).or_default();
        slots.known.retain(|known| known.version != version);
        if slots.known.len() >= PER_STREAM {
            slots.known.remove(0);
        }
        slots.known.push(Known { version, sequence });
    }

    /// The sequence of `stream`'s event at exactly `version`, if known.
    pub(super) fn exact(&self, stream: Uuid, version: u64) -> Option<u64> {
        let streams = self.streams.lock().ok()?;
        streams
            .get(&stream)?
            .known
            .iter()
            .find(|known| known.version == version)
            .map(|known| known.sequence)
    }

    /// The known event of `stream` with the highest version at or below `version`, and the one
    /// with the lowest version above it.
    pub(super) fn around(&self, stream: Uuid, version: u64) -> (Option<Known>, Option<Known>) {
        let Ok(streams) = self.streams.lock() else {
            return (None, None);
        };
        let Some(slots) = streams.get(&stream) else {
            return (None, None);
        };
        let below = slots
            .known
            .iter()
            .filter(|known| known.version <= version)
            .max_by_key(|known| known.version)
            .copied();
        let above = slots
            .known
            .iter()
            .filter(|known| known.version > version)
            .min_by_key(|known| known.version)
            .copied();
        (below, above)
    }

    /// Forgets what is known of `stream` (a hint turned out wrong).
    pub(super) fn forget(&self, stream: Uuid) {
        if let Ok(mut streams) = self.streams.lock() {
            streams.remove(&stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_known_events_on_each_side_of_a_version() {
        let known = KnownSequences::default();
        let stream = Uuid::now_v7();
        assert_eq!(known.around(stream, 5), (None, None));
        known.remember(stream, 3, 30);
        known.remember(stream, 9, 90);
        known.remember(stream, 6, 60);
        assert_eq!(
            known.around(stream, 7),
            (
                Some(Known {
                    version: 6,
                    sequence: 60
                }),
                Some(Known {
                    version: 9,
                    sequence: 90
                })
            )
        );
        assert_eq!(known.exact(stream, 3), Some(30));
        assert_eq!(known.exact(stream, 4), None);
        assert_eq!(known.around(Uuid::now_v7(), 7), (None, None));
        known.forget(stream);
        assert_eq!(known.exact(stream, 3), None);
    }

    #[test]
    fn only_the_newest_few_are_kept_and_a_version_is_kept_once() {
        let known = KnownSequences::default();
        let stream = Uuid::now_v7();
        for version in 1..=10 {
            known.remember(stream, version, version * 10);
        }
        known.remember(stream, 10, 101);
        assert_eq!(known.exact(stream, 10), Some(101));
        assert_eq!(known.exact(stream, 6), None);
        assert_eq!(known.exact(stream, 7), Some(70));
        // Version 0 and sequence 0 are "nothing", never an event.
        known.remember(stream, 0, 5);
        assert_eq!(
            known.around(stream, 0),
            (
                None,
                Some(Known {
                    version: 7,
                    sequence: 70
                })
            )
        );
    }
}
