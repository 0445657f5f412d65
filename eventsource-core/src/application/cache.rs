//! The repository's optional cache of loaded aggregates.
//!
//! It holds, per stream, the newest state the repository has loaded or saved, with its version.
//! Events are never changed once stored, so a cached entry is always a correct state of its
//! stream at its version: at worst it is behind, and a load reads only the events after it
//! (fast-forward). That keeps it correct when another process appends to the stream.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, PoisonError};

use uuid::Uuid;

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
}

/// A bounded least-recently-used map from stream to `(version, state)`.
pub(crate) struct LruCache<A> {
    capacity: usize,
    inner: Mutex<Lru<A>>,
}

struct Lru<A> {
    /// Bumped on every use; an entry's tick orders it in `by_use`.
    clock: u64,
    entries: HashMap<Uuid, Entry<A>>,
    /// Ticks to streams, least recently used first.
    by_use: BTreeMap<u64, Uuid>,
}

struct Entry<A> {
    version: u64,
    state: A,
    tick: u64,
}

impl<A> LruCache<A> {
    /// A cache of at most `capacity` streams (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Lru {
                clock: 0,
                entries: HashMap::new(),
                by_use: BTreeMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru<A>> {
        // A panic while holding the lock can't leave an entry half-written (every update is a
        // single insert or remove), so a poisoned cache is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<A> Lru<A> {
    fn touch(&mut self, id: Uuid) {
        self.clock += 1;
        let clock = self.clock;
        if let Some(entry) = self.entries.get_mut(&id) {
            self.by_use.remove(&entry.tick);
            entry.tick = clock;
            self.by_use.insert(clock, id);
        }
    }
}

impl<A: Clone + Send + Sync> StateCache<A> for LruCache<A> {
    fn get(&self, id: Uuid) -> Option<(u64, A)> {
        let mut lru = self.lock();
        lru.touch(id);
        lru.entries
            .get(&id)
            .map(|entry| (entry.version, entry.state.clone()))
    }

    fn put(&self, id: Uuid, version: u64, state: &A) {
        let mut lru = self.lock();
        if let Some(entry) = lru.entries.get_mut(&id) {
            // A slower task must not replace a newer state with an older one.
            if entry.version < version {
                entry.version = version;
                entry.state = state.clone();
            }
            lru.touch(id);
            return;
        }
        while lru.entries.len() >= self.capacity {
            let Some((_, oldest)) = lru.by_use.pop_first() else {
                break;
            };
            lru.entries.remove(&oldest);
        }
        lru.clock += 1;
        let tick = lru.clock;
        lru.by_use.insert(tick, id);
        lru.entries.insert(
            id,
            Entry {
                version,
                state: state.clone(),
                tick,
            },
        );
    }

    fn version(&self, id: Uuid) -> Option<u64> {
        self.lock().entries.get(&id).map(|entry| entry.version)
    }

    fn remove(&self, id: Uuid) {
        let mut lru = self.lock();
        if let Some(entry) = lru.entries.remove(&id) {
            lru.by_use.remove(&entry.tick);
        }
    }

    fn clear(&self) {
        let mut lru = self.lock();
        lru.entries.clear();
        lru.by_use.clear();
    }

    fn len(&self) -> usize {
        self.lock().entries.len()
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

impl<A> fmt::Debug for LruCache<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LruCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_stream() {
        let cache = LruCache::<String>::new(2);
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        cache.put(a, 1, &"a1".to_owned());
        cache.put(b, 1, &"b1".to_owned());
        assert_eq!(cache.get(a), Some((1, "a1".to_owned()))); // a is now the most recent
        cache.put(c, 4, &"c4".to_owned()); // evicts b
        assert_eq!(cache.version(b), None);
        assert_eq!(cache.version(a), Some(1));
        assert_eq!(cache.version(c), Some(4));
        assert_eq!(cache.len(), 2);
        cache.remove(a);
        assert_eq!((cache.len(), cache.get(a)), (1, None));
    }

    #[test]
    fn never_goes_back_to_an_older_version() {
        let cache = LruCache::<u32>::new(4);
        let id = Uuid::from_u128(7);
        cache.put(id, 5, &50);
        cache.put(id, 3, &30);
        assert_eq!(cache.get(id), Some((5, 50)));
        cache.put(id, 6, &60);
        assert_eq!(cache.get(id), Some((6, 60)));
    }
}
