//! The repository's optional cache of loaded aggregates.
//!
//! It holds, per stream, the newest state the repository has loaded or saved, with its version.
//! Events are never changed once stored, so a cached entry is always a correct state of its
//! stream at its version: at worst it is behind, and a load reads only the events after it
//! (fast-forward). That keeps it correct when another process appends to the stream.
//!
//! Under concurrency the one rule is that a put never replaces a newer version with an older
//! one: two tasks that loaded the same stream may put their states in either order, and the
//! cache must end with the newer. Each put is therefore one compare-and-set on its stream,
//! made under the lock of the stream's shard.
//!
//! The map is [`quick_cache`]'s sharded concurrent cache (issue 16 measured it against the
//! single-mutex LRU this replaced and against `moka`: see `BENCHMARKS.md`). Its eviction is
//! CLOCK-PRO: streams loaded again and again stay, a burst of streams loaded once goes first.
//!
//! It is bounded by entries and, with a byte budget, by bytes too. Both bounds become one
//! weight: an entry weighs at least `budget / entries` (so no more than `entries` of them fit)
//! and at least its bytes (so their bytes stay within the budget). An entry's bytes are its
//! inline size (the stream id, its version and `size_of` the state) plus, for an aggregate that
//! keeps snapshots, the length of its JSON snapshot, which stands for the heap data (strings,
//! vectors, maps) the state owns. The map is split into shards of at least 32 entries, each
//! with its part of both bounds.

use std::fmt;
use std::mem::size_of;
use std::num::NonZeroUsize;
use std::time::Duration;

use quick_cache::sync::{Cache, EntryAction, EntryResult};
use quick_cache::{OptionsBuilder, Weighter};
use uuid::Uuid;

use crate::domain::aggregate::Aggregate;
use crate::error::{Error, Result};
use crate::persistence::codec::Json;

/// The cache as the repository sees it: a trait object, so only
/// [`Repository::with_cache`](crate::Repository::with_cache) needs `A: Clone`.
pub(crate) trait StateCache<A>: Send + Sync {
    /// A copy of the cached state and its version.
    fn get(&self, id: Uuid) -> Option<(u64, A)>;
    /// Caches the state at `version`, unless a newer version of the stream is already cached.
    fn put(&self, id: Uuid, version: u64, state: &A);
    /// The cached version of a stream.
    fn version(&self, id: Uuid) -> Option<u64>;
    /// Forgets a stream.
    fn remove(&self, id: Uuid);
    /// Forgets every stream.
    fn clear(&self);
    /// How many streams are cached.
    fn len(&self) -> usize;
    /// At most how many streams are cached.
    fn capacity(&self) -> usize;
    /// At most how many bytes the cached entries weigh, if the cache has a byte budget.
    fn max_bytes(&self) -> Option<usize>;
}

/// A cached state.
#[derive(Clone)]
struct Cached<A> {
    version: u64,
    state: A,
    /// Computed once when the entry is made: the map reads it on every eviction step.
    weight: u64,
}

/// Reads an entry's weight.
#[derive(Debug, Clone, Copy)]
struct ByWeight;

impl<A> Weighter<Uuid, Cached<A>> for ByWeight {
    fn weight(&self, _id: &Uuid, cached: &Cached<A>) -> u64 {
        cached.weight
    }
}

/// The least a shard holds, in entries (fewer shards on a small cache).
const MIN_SHARD_ENTRIES: usize = 32;

/// Shards per core, as the map would choose: enough that writers on different streams rarely
/// wait for one another.
const SHARDS_PER_CORE: usize = 4;

/// The bytes a state owns on the heap, or `None` if they can't be known (see
/// [`snapshot_bytes`]).
pub(crate) type HeapBytes<A> = fn(&A) -> Option<usize>;

/// What the cache takes for the heap data of an aggregate's state: the length of its JSON
/// snapshot for an aggregate that keeps snapshots, 0 for one that doesn't (its state isn't
/// serializable, so the cache can't see inside it), and `None` if the snapshot fails to encode.
pub(crate) fn snapshot_bytes<A: Aggregate>(state: &A) -> Option<usize> {
    match state.encode_snapshot(&Json) {
        None => Some(0),
        Some(Ok(encoded)) => Some(encoded.len()),
        Some(Err(_)) => None,
    }
}

/// A bounded concurrent map from stream to `(version, state)`.
pub(crate) struct ShardedCache<A> {
    entries: usize,
    max_bytes: Option<usize>,
    heap_bytes: HeapBytes<A>,
    /// The least weight of an entry: 1 without a byte budget, else `budget / entries` rounded
    /// up, so the budget holds no more than `entries` of them.
    min_weight: u64,
    map: Cache<Uuid, Cached<A>, ByWeight>,
}

impl<A: Clone> ShardedCache<A> {
    /// A cache of at most `entries` streams (at least 1).
    pub(crate) fn by_entries(entries: usize) -> Self {
        let entries = entries.max(1);
        let shards = shards_for(entries);
        // Each shard gets the same whole number of entries, so together they hold no more
        // than `entries` (a shard holds at least 32, so at most `shards - 1` are lost).
        let capacity = (entries / shards * shards).max(1);
        Self::build(entries, None, |_| Some(0), 1, shards, capacity)
    }

    /// A cache of at most `entries` streams of `aggregate` whose entries weigh at most
    /// `max_bytes` in all, an entry its inline size plus its state's `heap_bytes` (see the module
    /// docs). Fails with [`Error::Config`] if the budget can't hold even one entry of the
    /// smallest weight.
    pub(crate) fn by_entries_and_bytes(
        entries: usize,
        max_bytes: NonZeroUsize,
        aggregate: &'static str,
        heap_bytes: HeapBytes<A>,
    ) -> Result<Self> {
        let entries = entries.max(1);
        let max_bytes = max_bytes.get();
        let shards = shards_for(entries);
        let shard_bytes = max_bytes / shards;
        // The map admits an entry of at most 97% of its shard's weight.
        let admitted = shard_bytes - shard_bytes * 3 / 100;
        let smallest = inline_bytes::<A>();
        if admitted < smallest {
            return Err(Error::Config {
                backend: "cache",
                message: format!(
                    "a byte budget of {max_bytes} holds no {name}: a cached {name} weighs at least {smallest} bytes, and a budget of {entries} entries is split into {shards} shards of {shard_bytes} bytes (raise the budget to at least {least} bytes, or cache fewer entries)",
                    name = aggregate,
                    least = smallest.div_ceil(97) * 100 * shards,
                ),
            });
        }
        let min_weight = u64::try_from(max_bytes.div_ceil(entries)).unwrap_or(u64::MAX);
        Ok(Self::build(
            entries,
            Some(max_bytes),
            heap_bytes,
            min_weight,
            shards,
            shard_bytes * shards,
        ))
    }

    fn build(
        entries: usize,
        max_bytes: Option<usize>,
        heap_bytes: HeapBytes<A>,
        min_weight: u64,
        shards: usize,
        weight_capacity: usize,
    ) -> Self {
        let weight_capacity = u64::try_from(weight_capacity).unwrap_or(u64::MAX);
        let options = OptionsBuilder::new()
            .estimated_items_capacity(entries)
            .weight_capacity(weight_capacity)
            .shards(shards)
            .build();
        let map = match options {
            Ok(options) => {
                Cache::with_options(options, ByWeight, Default::default(), Default::default())
            }
            // `build` fails only when a capacity is missing, and both are set; were it to fail,
            // the map would choose its shards itself, still within `weight_capacity`.
            Err(_) => Cache::with(
                entries,
                weight_capacity,
                ByWeight,
                Default::default(),
                Default::default(),
            ),
        };
        Self {
            entries,
            max_bytes,
            heap_bytes,
            min_weight,
            map,
        }
    }

    /// The state as an entry, or `None` if its weight can't be known (its snapshot failed to
    /// encode): such a state is not cached.
    fn entry(&self, version: u64, state: &A) -> Option<Cached<A>> {
        let weight = match self.max_bytes {
            None => 1,
            Some(_) => {
                let heap = (self.heap_bytes)(state)?;
                let bytes = u64::try_from(inline_bytes::<A>().saturating_add(heap));
                bytes.unwrap_or(u64::MAX).max(self.min_weight)
            }
        };
        Some(Cached {
            version,
            state: state.clone(),
            weight,
        })
    }
}

/// The number of shards for a cache of `entries`: a power of two, at most four per core, and
/// few enough that each holds at least [`MIN_SHARD_ENTRIES`].
fn shards_for(entries: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let mut shards = (cores * SHARDS_PER_CORE).next_power_of_two();
    while shards > 1 && entries / shards < MIN_SHARD_ENTRIES {
        shards /= 2;
    }
    shards
}

/// What an entry weighs before the state's heap data: the stream id, the entry itself (version,
/// weight and the state's inline size).
fn inline_bytes<A>() -> usize {
    size_of::<Uuid>() + size_of::<Cached<A>>()
}

impl<A: Clone + Send + Sync> StateCache<A> for ShardedCache<A> {
    fn get(&self, id: Uuid) -> Option<(u64, A)> {
        self.map
            .get(&id)
            .map(|cached| (cached.version, cached.state))
    }

    fn put(&self, id: Uuid, version: u64, state: &A) {
        // A heavier state can't be written in place: the map only evicts on an insert, so it
        // goes through one (the stream's entry is a placeholder meanwhile, which loads miss).
        let mut heavier = None;
        // A stream another task is inserting right now (a placeholder, `Duration::ZERO`): skip
        // rather than wait. Skipping a put leaves the entry behind or absent, never wrong.
        let found = self
            .map
            .entry(&id, Some(Duration::ZERO), |_, cached: &mut Cached<A>| {
                // A slower task must not replace a newer state with an older one.
                if cached.version >= version {
                    return EntryAction::Retain(());
                }
                match self.entry(version, state) {
                    Some(newer) if newer.weight <= cached.weight => {
                        *cached = newer;
                        EntryAction::Retain(())
                    }
                    Some(newer) => {
                        heavier = Some(newer);
                        EntryAction::ReplaceWithGuard
                    }
                    // Its weight can't be known: the older state stays, just behind.
                    None => EntryAction::Retain(()),
                }
            });
        let (placeholder, entry) = match found {
            EntryResult::Vacant(placeholder) => (placeholder, self.entry(version, state)),
            EntryResult::Replaced(placeholder, _older) => (placeholder, heavier),
            EntryResult::Retained(()) | EntryResult::Removed(..) | EntryResult::Timeout => return,
        };
        if let Some(entry) = entry {
            // Fails only if the placeholder was taken from under it (a `clear`), or the state
            // is heavier than the map admits: then it is simply not cached.
            let _ = placeholder.insert(entry);
        }
    }

    fn version(&self, id: Uuid) -> Option<u64> {
        self.map.peek(&id).map(|cached| cached.version)
    }

    fn remove(&self, id: Uuid) {
        self.map.remove(&id);
    }

    fn clear(&self) {
        self.map.clear();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn capacity(&self) -> usize {
        self.entries
    }

    fn max_bytes(&self) -> Option<usize> {
        self.max_bytes
    }
}

impl<A> fmt::Debug for ShardedCache<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardedCache")
            .field("entries", &self.entries)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A state whose version is in it, so a cached state can be checked against its version.
    #[derive(Debug, Default, Clone, PartialEq)]
    struct Ledger {
        version: u64,
        lines: Vec<u64>,
    }

    impl Ledger {
        fn at(version: u64, lines: usize) -> Self {
            Self {
                version,
                lines: vec![version; lines],
            }
        }
    }

    /// The heap bytes of a ledger: its lines.
    fn lines_bytes(ledger: &Ledger) -> Option<usize> {
        Some(ledger.lines.len() * size_of::<u64>())
    }

    fn ids(n: u128) -> Vec<Uuid> {
        (1..=n).map(Uuid::from_u128).collect()
    }

    /// What a ledger of `lines` lines weighs in the cache.
    fn weight(lines: usize) -> usize {
        inline_bytes::<Ledger>() + lines * size_of::<u64>()
    }

    fn with_budget(entries: usize, max_bytes: usize) -> Result<ShardedCache<Ledger>> {
        let max_bytes = NonZeroUsize::new(max_bytes).unwrap();
        ShardedCache::by_entries_and_bytes(entries, max_bytes, "Ledger", lines_bytes)
    }

    #[test]
    fn holds_no_more_streams_than_its_capacity() {
        for capacity in [1, 2, 31, 100, 1_000] {
            let cache = ShardedCache::<Ledger>::by_entries(capacity);
            for (n, id) in ids(capacity as u128 * 3).into_iter().enumerate() {
                cache.put(id, 1, &Ledger::at(1, 0));
                assert!(
                    cache.len() <= capacity,
                    "{} > {capacity} after {n}",
                    cache.len()
                );
            }
            assert!(cache.len() > capacity / 2, "{} of {capacity}", cache.len());
            assert_eq!(cache.capacity(), capacity);
        }
    }

    #[test]
    fn a_stream_loaded_again_and_again_outlives_a_burst_of_new_ones() {
        let cache = ShardedCache::<Ledger>::by_entries(8);
        let [hot, rest @ ..] = &ids(40)[..] else {
            unreachable!()
        };
        cache.put(*hot, 3, &Ledger::at(3, 0));
        for id in rest {
            assert_eq!(cache.get(*hot).map(|(v, _)| v), Some(3));
            cache.put(*id, 1, &Ledger::at(1, 0));
        }
        assert_eq!(cache.version(*hot), Some(3));
        assert_eq!(cache.len(), 8);
        cache.remove(*hot);
        assert_eq!((cache.len(), cache.get(*hot)), (7, None));
        cache.clear();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_byte_budget_bounds_the_bytes_of_the_entries() {
        // Room for 10 ledgers of 100 lines, and a count bound that is never reached.
        let budget = 10 * weight(100);
        let cache = with_budget(1_000, budget).unwrap();
        assert_eq!(cache.max_bytes(), Some(budget));
        for id in ids(50) {
            cache.put(id, 1, &Ledger::at(1, 100));
            assert!(cache.map.weight() <= budget as u64);
            assert!(cache.len() <= 10, "{} ledgers", cache.len());
        }
        assert!(cache.len() >= 5, "{} ledgers", cache.len());
        // A state that grew is weighed again when it replaces the older one.
        let id = Uuid::from_u128(50);
        cache.put(id, 2, &Ledger::at(2, 300));
        assert!(cache.map.weight() <= budget as u64);
        // A state heavier than the whole budget is not cached at all.
        let whale = Uuid::from_u128(999);
        cache.put(whale, 1, &Ledger::at(1, 100_000));
        assert_eq!(cache.version(whale), None);
        // Nor is one whose weight can't be known.
        let cache = ShardedCache::by_entries_and_bytes(
            10,
            NonZeroUsize::new(budget).unwrap(),
            "Ledger",
            |_: &Ledger| None,
        )
        .unwrap();
        cache.put(whale, 1, &Ledger::at(1, 1));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_byte_budget_still_bounds_the_entries() {
        // Small states, a generous budget: the entry count is what binds.
        let cache = with_budget(64, 1 << 20).unwrap();
        for id in ids(500) {
            cache.put(id, 1, &Ledger::at(1, 1));
            assert!(cache.len() <= 64, "{} entries", cache.len());
        }
        assert!(cache.len() > 32, "{} entries", cache.len());
    }

    #[test]
    fn a_budget_that_holds_nothing_is_refused() {
        let Err(Error::Config { backend, message }) = with_budget(10, 16) else {
            panic!("a 16-byte budget was accepted");
        };
        assert_eq!(backend, "cache");
        assert!(message.contains("holds no Ledger"), "{message}");
    }

    #[test]
    fn never_goes_back_to_an_older_version() {
        let cache = ShardedCache::<Ledger>::by_entries(4);
        let id = Uuid::from_u128(7);
        cache.put(id, 5, &Ledger::at(5, 1));
        cache.put(id, 3, &Ledger::at(3, 1));
        assert_eq!(cache.get(id), Some((5, Ledger::at(5, 1))));
        cache.put(id, 6, &Ledger::at(6, 1));
        assert_eq!(cache.get(id), Some((6, Ledger::at(6, 1))));
    }

    #[test]
    fn concurrent_puts_leave_the_newest_version_and_readers_never_see_one_go_back() {
        const WRITERS: u64 = 8;
        const VERSIONS: u64 = 2_000;
        for cache in [
            ShardedCache::<Ledger>::by_entries(64),
            with_budget(64, 1 << 20).unwrap(),
        ] {
            let cache = Arc::new(cache);
            let streams = ids(4);
            let writers = (0..WRITERS).map(|writer| {
                let (cache, streams) = (Arc::clone(&cache), streams.clone());
                std::thread::spawn(move || {
                    // Writer w puts the versions that are w modulo WRITERS, in order: together
                    // the writers put every version, interleaved, older ones often after newer.
                    for version in (1..=VERSIONS).filter(|v| v % WRITERS == writer) {
                        for id in &streams {
                            cache.put(*id, version, &Ledger::at(version, 2));
                        }
                    }
                })
            });
            let readers = (0..2).map(|_| {
                let (cache, streams) = (Arc::clone(&cache), streams.clone());
                std::thread::spawn(move || {
                    let mut seen = vec![0; streams.len()];
                    for _ in 0..VERSIONS {
                        for (i, id) in streams.iter().enumerate() {
                            if let Some((version, state)) = cache.get(*id) {
                                assert_eq!(state, Ledger::at(version, 2), "state of {version}");
                                assert!(version >= seen[i], "{version} after {}", seen[i]);
                                seen[i] = version;
                            }
                        }
                    }
                })
            });
            let threads: Vec<_> = writers.chain(readers).collect();
            for thread in threads {
                thread.join().unwrap();
            }
            for id in &streams {
                assert_eq!(cache.get(*id), Some((VERSIONS, Ledger::at(VERSIONS, 2))));
            }
        }
    }
}
