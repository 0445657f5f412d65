//! The key store checks: every rule of the [`KeyStore`] contract, checked against a real key
//! store (see [`run_key_store`]).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use tokio::sync::Barrier;
use uuid::Uuid;

use super::support::{Outcome, ensure, ensure_eq, fail, panic_message};
use super::{CHECK_TIMEOUT, CheckResult, Failure, Report};
use crate::persistence::codec::{
    APPLICATION_SUBJECT, DataKey, KeyError, KeyId, KeyStore, SubjectKeys,
};

/// How many handles on the storage each check opens (as many as processes sharing it).
pub const KEY_STORE_HANDLES: usize = 4;

/// One key store check, as listed by [`key_store_checks`].
#[derive(Clone, Copy)]
pub struct KeyStoreCheck {
    name: &'static str,
    summary: &'static str,
    run: fn(Vec<Arc<dyn KeyStore>>) -> BoxFuture<'static, CheckResult>,
}

impl KeyStoreCheck {
    /// The check's name, which is also the name of its function in this module.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// One line on what the check verifies.
    pub fn summary(&self) -> &'static str {
        self.summary
    }

    /// Runs the check with `handles` on one storage (at least one; the concurrency checks race
    /// them).
    pub async fn run(&self, handles: Vec<Arc<dyn KeyStore>>) -> CheckResult {
        (self.run)(handles).await
    }
}

impl fmt::Debug for KeyStoreCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStoreCheck")
            .field("name", &self.name)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

/// Runs every key store check and panics with a report naming every failed check and what
/// differed: for the key stores in this crate, and for third-party ones.
///
/// `open` opens a handle on the key store's storage, and every call must open the **same**
/// storage, as another process would (a new connection to the same database, a clone of an
/// in-memory store). Each check opens [`KEY_STORE_HANDLES`] handles and works on subjects of
/// its own (fresh ids), so the checks share one storage; the concurrency checks race the
/// handles against each other. Run it in a **multi-thread** Tokio runtime.
///
/// ```
/// use std::sync::Arc;
/// use eventsource_core::persistence::codec::MemoryKeyStore;
/// use eventsource_core::testing::conformance;
///
/// # let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// let keys = Arc::new(MemoryKeyStore::new());
/// conformance::run_key_store(|| {
///     let keys = Arc::clone(&keys); // one storage, several handles
///     async move { keys }
/// })
/// .await;
/// # });
/// ```
///
/// The SQLite and PostgreSQL key stores run it with a store and a key store per handle on one
/// database file or schema (the workspace's `codecs` tests), the NATS key store with a
/// connection per handle to one store, on a single server and on a three-node cluster (the
/// `nats_keys` tests).
///
/// What the contract says, check by check: see [`key_store_checks`]. In short: a subject's
/// first key has id 1 and is returned again; a rotation adds a newer key and keeps the old
/// ones; forgetting deletes every key and leaves a tombstone (the highest id deleted), and a
/// subject that comes back gets a fresh key above it, so no old record ever names a new key;
/// the application's key can't be forgotten; concurrent first keys agree, concurrent
/// rotations get distinct ids, and forgetting racing new keys never reuses an id. Whether keys
/// are wrapped, and with which master key, is the implementation's own business and not
/// checked here.
#[track_caller]
pub fn run_key_store<K, F, Fut>(open: F) -> impl Future<Output = ()>
where
    K: KeyStore,
    F: FnMut() -> Fut,
    Fut: Future<Output = K>,
{
    let caller = std::panic::Location::caller();
    async move {
        let report = try_run_key_store(open).await;
        if !report.is_ok() {
            panic!("{report}(key store checks run from {caller})");
        }
    }
}

/// Runs every key store check (see [`run_key_store`]) and returns the report.
pub async fn try_run_key_store<K, F, Fut>(mut open: F) -> Report
where
    K: KeyStore,
    F: FnMut() -> Fut,
    Fut: Future<Output = K>,
{
    let mut report = Report::default();
    for check in KEY_STORE_CHECKS {
        let mut handles: Vec<Arc<dyn KeyStore>> = Vec::with_capacity(KEY_STORE_HANDLES);
        for _ in 0..KEY_STORE_HANDLES {
            handles.push(Arc::new(open().await));
        }
        let started = Instant::now();
        // Its own task: a panicking key store is reported against the check.
        let task = tokio::spawn((check.run)(handles));
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, task).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(join)) => Err(Failure::new(
                check.name,
                format!("the check panicked: {}", panic_message(join)),
            )),
            Err(_) => Err(Failure::new(
                check.name,
                format!("did not finish within {CHECK_TIMEOUT:?}: is the key store deadlocked?"),
            )),
        };
        match outcome {
            Ok(()) => report.passed.push((check.name, started.elapsed())),
            Err(failure) => report.failures.push(failure),
        }
    }
    report
}

/// Every key store check, in the order [`run_key_store`] runs them.
pub fn key_store_checks() -> &'static [KeyStoreCheck] {
    KEY_STORE_CHECKS
}

macro_rules! key_store_check_table {
    ($($name:ident: $summary:literal,)*) => {
        const KEY_STORE_CHECKS: &[KeyStoreCheck] = &[$(
            KeyStoreCheck {
                name: stringify!($name),
                summary: $summary,
                run: |handles| Box::pin($name(handles)),
            },
        )*];
    };
}

key_store_check_table! {
    first_key_is_one_and_stays_current:
        "a new subject has no keys and no tombstone; its first key has id 1 and is returned again, by every handle",
    rotation_adds_a_newer_key_and_keeps_the_old:
        "rotate adds the next id, which current_key returns from then on; older keys stay readable; rotating a new subject gives its first key",
    forgetting_deletes_every_key_and_leaves_a_tombstone:
        "forget deletes every key of the subject and returns how many, records the highest id as forgotten_through, and leaves other subjects alone; forgetting again deletes nothing",
    a_subject_that_comes_back_gets_ids_above_its_tombstone:
        "after forget, current_key gives a fresh key with the id after the tombstone, never an old id; rotating and forgetting again go on from there",
    the_application_key_cannot_be_forgotten:
        "forget of APPLICATION_SUBJECT is KeyError::ApplicationKey and its key stays",
    concurrent_first_keys_agree:
        "handles asking for a new subject's first key at once all get the same key, id 1, and the subject ends up with one key",
    concurrent_rotations_get_distinct_ids:
        "concurrent rotations of one subject each add a key with its own id, none lost",
    forgetting_racing_new_keys_never_reuses_an_id:
        "forget racing current_key and rotate leaves every remaining key above the tombstone, each the key that was handed out under its id",
}

/// Turns a key store error into a check failure saying what was being done.
trait Context<T> {
    fn context(self, doing: impl fmt::Display) -> Outcome<T>;
}

impl<T> Context<T> for Result<T, KeyError> {
    fn context(self, doing: impl fmt::Display) -> Outcome<T> {
        self.map_err(|e| format!("{doing}: the key store returned an error: {e} ({e:?})"))
    }
}

/// Names the failure of a check body after the check.
async fn named(name: &'static str, body: impl Future<Output = Outcome>) -> CheckResult {
    body.await.map_err(|message| Failure::new(name, message))
}

/// The ids a subject's keys have, and its tombstone, for messages.
fn describe(keys: &SubjectKeys) -> String {
    let ids: Vec<KeyId> = keys.keys.iter().map(|(id, _)| *id).collect();
    format!("keys {ids:?}, forgotten through {}", keys.forgotten_through)
}

/// The subject's keys, failing unless their ids and tombstone are these.
async fn expect_keys(
    keys: &dyn KeyStore,
    subject: Uuid,
    ids: &[KeyId],
    forgotten_through: KeyId,
    when: &str,
) -> Outcome<SubjectKeys> {
    let found = keys
        .keys(subject)
        .await
        .context(format_args!("reading the keys of subject {subject} {when}"))?;
    let found_ids: Vec<KeyId> = found.keys.iter().map(|(id, _)| *id).collect();
    ensure!(
        found_ids == ids && found.forgotten_through == forgotten_through,
        "{when}, subject {subject} should have keys {ids:?} and be forgotten through {forgotten_through}; it has {}",
        describe(&found)
    );
    Ok(found)
}

/// The key listed under `id`, failing if there is none or it is not `expected`.
fn expect_key(keys: &SubjectKeys, id: KeyId, expected: &DataKey, what: &str) -> Outcome {
    match keys.get(id) {
        Some(key) if key == expected => Ok(()),
        Some(_) => fail!("{what}: key {id} is listed with other bytes than the key handed out"),
        None => fail!("{what}: key {id} is not listed ({})", describe(keys)),
    }
}

/// A subject's first key has id 1, and asking again, from any handle, gives the same key.
pub async fn first_key_is_one_and_stays_current(handles: Vec<Arc<dyn KeyStore>>) -> CheckResult {
    named("first_key_is_one_and_stays_current", async move {
        let keys = &*handles[0];
        let subject = Uuid::now_v7();
        expect_keys(keys, subject, &[], 0, "before its first key").await?;
        let (id, key) = keys
            .current_key(subject)
            .await
            .context("asking for a new subject's first key")?;
        ensure_eq!(id, 1, "the id of a new subject's first key");
        for (index, handle) in handles.iter().enumerate() {
            let again = handle
                .current_key(subject)
                .await
                .context(format_args!("asking handle {index} for the key again"))?;
            ensure!(
                again.0 == 1 && again.1 == key,
                "asking handle {index} for subject {subject}'s key again must give key 1 with the same bytes, got key {}{}",
                again.0,
                if again.1 == key { "" } else { " with other bytes" }
            );
        }
        let listed = expect_keys(keys, subject, &[1], 0, "after its first key").await?;
        expect_key(&listed, 1, &key, "the keys listed after the first key")
    })
    .await
}

/// Rotating adds the next id, which becomes the current key, and keeps the older keys.
pub async fn rotation_adds_a_newer_key_and_keeps_the_old(
    handles: Vec<Arc<dyn KeyStore>>,
) -> CheckResult {
    named("rotation_adds_a_newer_key_and_keeps_the_old", async move {
        let (keys, other) = (&*handles[0], &*handles[handles.len() - 1]);
        let subject = Uuid::now_v7();
        let (_, first) = keys.current_key(subject).await.context("the first key")?;
        let id = keys.rotate(subject).await.context("rotating")?;
        ensure_eq!(id, 2, "the id a first rotation gives");
        let (current, second) = other
            .current_key(subject)
            .await
            .context("asking for the current key after rotating")?;
        ensure_eq!(current, 2, "the current key's id after a rotation");
        ensure!(
            second != first,
            "the rotated key has the same bytes as the first"
        );
        let listed = expect_keys(keys, subject, &[1, 2], 0, "after a rotation").await?;
        expect_key(&listed, 1, &first, "the old key after a rotation")?;
        expect_key(&listed, 2, &second, "the new key after a rotation")?;
        let id = other.rotate(subject).await.context("rotating again")?;
        ensure_eq!(id, 3, "the id a second rotation gives");
        ensure_eq!(
            keys.current_key(subject)
                .await
                .context("the current key")?
                .0,
            3,
            "the current key's id after a second rotation"
        );

        let fresh = Uuid::now_v7();
        let id = keys.rotate(fresh).await.context("rotating a new subject")?;
        ensure_eq!(id, 1, "the id rotating a subject without keys gives");
        let (current, _) = keys
            .current_key(fresh)
            .await
            .context("the current key of a subject whose first key came from a rotation")?;
        ensure_eq!(current, 1, "the current key after rotating a new subject");
        Ok(())
    })
    .await
}

/// Forgetting deletes every key of the subject, records the highest id, and touches no other
/// subject; forgetting again deletes nothing and keeps the tombstone.
pub async fn forgetting_deletes_every_key_and_leaves_a_tombstone(
    handles: Vec<Arc<dyn KeyStore>>,
) -> CheckResult {
    named(
        "forgetting_deletes_every_key_and_leaves_a_tombstone",
        async move {
            let keys = &*handles[0];
            let (subject, bystander) = (Uuid::now_v7(), Uuid::now_v7());
            keys.current_key(subject).await.context("the first key")?;
            keys.rotate(subject).await.context("rotating")?;
            keys.rotate(subject).await.context("rotating again")?;
            let (_, kept) = keys
                .current_key(bystander)
                .await
                .context("another subject's key")?;
            let deleted = keys
                .forget(subject)
                .await
                .context("forgetting a subject with 3 keys")?;
            ensure_eq!(
                deleted,
                3,
                "how many keys forgetting a subject with 3 keys deleted"
            );
            for handle in &handles {
                expect_keys(&**handle, subject, &[], 3, "after forgetting it").await?;
            }
            let other = expect_keys(
                keys,
                bystander,
                &[1],
                0,
                "after another subject was forgotten",
            )
            .await?;
            expect_key(&other, 1, &kept, "another subject's key after a forgetting")?;
            let again = keys
                .forget(subject)
                .await
                .context("forgetting the subject again")?;
            ensure_eq!(again, 0, "how many keys forgetting a subject again deleted");
            expect_keys(keys, subject, &[], 3, "after forgetting it twice").await?;

            let never = Uuid::now_v7();
            let deleted = keys
                .forget(never)
                .await
                .context("forgetting a subject without keys")?;
            ensure_eq!(
                deleted,
                0,
                "how many keys forgetting a subject without keys deleted"
            );
            expect_keys(keys, never, &[], 0, "after forgetting it without keys").await?;
            Ok(())
        },
    )
    .await
}

/// A forgotten subject that comes back gets keys above its tombstone: no old record ever
/// names one of its new keys.
pub async fn a_subject_that_comes_back_gets_ids_above_its_tombstone(
    handles: Vec<Arc<dyn KeyStore>>,
) -> CheckResult {
    named(
        "a_subject_that_comes_back_gets_ids_above_its_tombstone",
        async move {
            let (keys, other) = (&*handles[0], &*handles[1 % handles.len()]);
            let subject = Uuid::now_v7();
            let (_, first) = keys.current_key(subject).await.context("the first key")?;
            keys.rotate(subject).await.context("rotating")?;
            let second = keys.keys(subject).await.context("the keys")?;
            keys.forget(subject).await.context("forgetting")?;
            let (id, key) = other
                .current_key(subject)
                .await
                .context("asking for a key of a forgotten subject")?;
            ensure_eq!(
                id,
                3,
                "the id of the first key after the subject was forgotten through 2"
            );
            ensure!(
                key != first && second.get(2) != Some(&key),
                "the key after forgetting has the bytes of a forgotten key"
            );
            let listed = expect_keys(keys, subject, &[3], 2, "after it came back").await?;
            expect_key(&listed, 3, &key, "the key after it came back")?;
            ensure_eq!(
                keys.rotate(subject).await.context("rotating")?,
                4,
                "the id of a rotation after it came back"
            );
            let deleted = other.forget(subject).await.context("forgetting it again")?;
            ensure_eq!(deleted, 2, "how many keys forgetting it again deleted");
            expect_keys(keys, subject, &[], 4, "after forgetting it again").await?;
            ensure_eq!(
                keys.current_key(subject)
                    .await
                    .context("coming back again")?
                    .0,
                5,
                "the id of the first key after it was forgotten through 4"
            );
            Ok(())
        },
    )
    .await
}

/// The application's key can't be forgotten, and stays.
pub async fn the_application_key_cannot_be_forgotten(
    handles: Vec<Arc<dyn KeyStore>>,
) -> CheckResult {
    named("the_application_key_cannot_be_forgotten", async move {
        let keys = &*handles[0];
        let (id, key) = keys
            .current_key(APPLICATION_SUBJECT)
            .await
            .context("the application's key")?;
        match keys.forget(APPLICATION_SUBJECT).await {
            Err(KeyError::ApplicationKey) => {}
            Err(other) => fail!("forgetting the application's key must be KeyError::ApplicationKey, got {other} ({other:?})"),
            Ok(deleted) => fail!("forgetting the application's key must be refused; it deleted {deleted} key(s)"),
        }
        let after = keys
            .current_key(APPLICATION_SUBJECT)
            .await
            .context("the application's key after the refused forgetting")?;
        ensure!(
            after.0 == id && after.1 == key,
            "the application's key changed after a refused forgetting: key {id} before, key {} after",
            after.0
        );
        let listed = keys.keys(APPLICATION_SUBJECT).await.context("the application's keys")?;
        ensure_eq!(listed.forgotten_through, 0, "the application subject's tombstone");
        expect_key(&listed, id, &key, "the application's key after a refused forgetting")
    })
    .await
}

/// Runs `n` copies of `f` per handle at once (lined up on a barrier), and returns their results
/// in spawn order.
async fn race<T, F, Fut>(handles: &[Arc<dyn KeyStore>], per_handle: usize, f: F) -> Outcome<Vec<T>>
where
    T: Send + 'static,
    F: Fn(Arc<dyn KeyStore>) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(handles.len() * per_handle));
    let mut tasks = Vec::new();
    for _ in 0..per_handle {
        for handle in handles {
            let (barrier, call) = (Arc::clone(&barrier), f(Arc::clone(handle)));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                call.await
            }));
        }
    }
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(result) => results.push(result),
            Err(join) => fail!("a racing call panicked: {}", panic_message(join)),
        }
    }
    Ok(results)
}

/// Handles asking for a new subject's first key at once all get the same key.
pub async fn concurrent_first_keys_agree(handles: Vec<Arc<dyn KeyStore>>) -> CheckResult {
    named("concurrent_first_keys_agree", async move {
        for round in 0..8 {
            let subject = Uuid::now_v7();
            let results = race(&handles, 2, |keys| async move { keys.current_key(subject).await }).await?;
            let mut first: Option<(KeyId, DataKey)> = None;
            for (index, result) in results.into_iter().enumerate() {
                let got = result.context(format_args!("round {round}: racing call {index} for a new subject's first key"))?;
                match &first {
                    None => first = Some(got),
                    Some(first) => ensure!(
                        *first == got,
                        "round {round}: racing callers for subject {subject}'s first key got different keys: key {} and key {}{}",
                        first.0,
                        got.0,
                        if first.1 == got.1 { "" } else { " (other bytes)" }
                    ),
                }
            }
            let Some((id, key)) = first else { fail!("no racing call ran") };
            ensure_eq!(id, 1, "round {round}: the id of the first key racing callers got");
            let listed = expect_keys(&*handles[0], subject, &[1], 0, &format!("round {round}: after racing first keys")).await?;
            expect_key(&listed, 1, &key, "the first key racing callers got")?;
        }
        Ok(())
    })
    .await
}

/// Concurrent rotations each add a key with an id of its own.
pub async fn concurrent_rotations_get_distinct_ids(handles: Vec<Arc<dyn KeyStore>>) -> CheckResult {
    named("concurrent_rotations_get_distinct_ids", async move {
        let subject = Uuid::now_v7();
        handles[0]
            .current_key(subject)
            .await
            .context("the first key")?;
        let results = race(
            &handles,
            2,
            |keys| async move { keys.rotate(subject).await },
        )
        .await?;
        let mut ids = Vec::new();
        for (index, result) in results.into_iter().enumerate() {
            ids.push(result.context(format_args!("racing rotation {index}"))?);
        }
        ids.sort_unstable();
        let n = KeyId::try_from(ids.len()).unwrap_or(KeyId::MAX);
        let expected: Vec<KeyId> = (2..=n + 1).collect();
        ensure_eq!(
            ids,
            expected,
            "the ids {n} racing rotations of a subject with key 1 got"
        );
        let all: Vec<KeyId> = (1..=n + 1).collect();
        expect_keys(&*handles[0], subject, &all, 0, "after racing rotations").await?;
        let (current, _) = handles[0]
            .current_key(subject)
            .await
            .context("the current key")?;
        ensure_eq!(current, n + 1, "the current key after racing rotations");
        Ok(())
    })
    .await
}

/// What a racing call did.
enum Raced {
    Key(KeyId, DataKey),
    Rotated(KeyId),
    Forgot,
}

/// Forgetting racing new keys never hands out an id at or below the tombstone it leaves, and
/// every key that remains is the one handed out under its id.
pub async fn forgetting_racing_new_keys_never_reuses_an_id(
    handles: Vec<Arc<dyn KeyStore>>,
) -> CheckResult {
    named("forgetting_racing_new_keys_never_reuses_an_id", async move {
        for round in 0..8 {
            let subject = Uuid::now_v7();
            handles[0].current_key(subject).await.context("the first key")?;
            let calls = std::sync::atomic::AtomicUsize::new(0);
            let results = race(&handles, 1, |keys| {
                let call = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async move {
                    match call % 3 {
                        0 => keys.forget(subject).await.map(|_| Raced::Forgot),
                        1 => keys.current_key(subject).await.map(|(id, key)| Raced::Key(id, key)),
                        _ => keys.rotate(subject).await.map(Raced::Rotated),
                    }
                }
            })
            .await?;
            let after = handles[0].keys(subject).await.context("the keys after the race")?;
            if let Some((low, _)) = after.keys.iter().find(|(id, _)| *id <= after.forgotten_through) {
                fail!("round {round}: subject {subject} has key {low} at or below its tombstone ({})", describe(&after));
            }
            for (index, result) in results.into_iter().enumerate() {
                match result.context(format_args!("round {round}: racing call {index}"))? {
                    Raced::Key(id, key) => {
                        if let Some(listed) = after.get(id) {
                            ensure!(
                                *listed == key,
                                "round {round}: key {id} of subject {subject} was handed out with other bytes than it is listed with: an id was given twice"
                            );
                        } else {
                            ensure!(
                                id <= after.forgotten_through,
                                "round {round}: key {id} was handed out, is not listed, and is above the tombstone ({})",
                                describe(&after)
                            );
                        }
                    }
                    Raced::Rotated(id) => ensure!(
                        after.get(id).is_some() || id <= after.forgotten_through,
                        "round {round}: rotation added key {id}, which is neither listed nor forgotten ({})",
                        describe(&after)
                    ),
                    Raced::Forgot => ensure!(
                        after.forgotten_through >= 1,
                        "round {round}: a forgetting of a subject with key 1 left forgotten_through at 0"
                    ),
                }
            }
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use crate::persistence::codec::MemoryKeyStore;

    /// A key store that forgets without a tombstone: a subject that comes back gets key 1
    /// again, which old records name.
    #[derive(Debug, Default)]
    struct NoTombstone(Mutex<HashMap<Uuid, Vec<(KeyId, DataKey)>>>);

    #[async_trait::async_trait]
    impl KeyStore for NoTombstone {
        async fn keys(&self, subject: Uuid) -> Result<SubjectKeys, KeyError> {
            let keys = self
                .0
                .lock()
                .unwrap()
                .get(&subject)
                .cloned()
                .unwrap_or_default();
            Ok(SubjectKeys {
                keys,
                forgotten_through: 0,
            })
        }
        async fn current_key(&self, subject: Uuid) -> Result<(KeyId, DataKey), KeyError> {
            let mut all = self.0.lock().unwrap();
            let keys = all.entry(subject).or_default();
            if keys.is_empty() {
                keys.push((1, DataKey::generate()));
            }
            Ok(keys.last().cloned().unwrap())
        }
        async fn rotate(&self, subject: Uuid) -> Result<KeyId, KeyError> {
            let mut all = self.0.lock().unwrap();
            let keys = all.entry(subject).or_default();
            let id = keys.len() as KeyId + 1;
            keys.push((id, DataKey::generate()));
            Ok(id)
        }
        async fn forget(&self, subject: Uuid) -> Result<usize, KeyError> {
            if subject == APPLICATION_SUBJECT {
                return Err(KeyError::ApplicationKey);
            }
            Ok(self
                .0
                .lock()
                .unwrap()
                .remove(&subject)
                .map_or(0, |k| k.len()))
        }
    }

    fn failed(report: &Report) -> Vec<&'static str> {
        report.failures.iter().map(|f| f.check).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checks_pass_a_memory_key_store_and_catch_broken_ones() {
        let shared = Arc::new(MemoryKeyStore::new());
        let report = try_run_key_store(|| {
            let keys = Arc::clone(&shared);
            async move { keys }
        })
        .await;
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.passed.len(), key_store_checks().len());

        // Every handle its own storage: what one process creates, another doesn't see.
        let report = try_run_key_store(|| async { MemoryKeyStore::new() }).await;
        assert_eq!(
            failed(&report),
            [
                "first_key_is_one_and_stays_current",
                "rotation_adds_a_newer_key_and_keeps_the_old",
                "forgetting_deletes_every_key_and_leaves_a_tombstone",
                "a_subject_that_comes_back_gets_ids_above_its_tombstone",
                "concurrent_first_keys_agree",
                "concurrent_rotations_get_distinct_ids",
            ],
            "{report}"
        );
        assert!(
            report.failures[0].message.contains("asking handle 1"),
            "{report}"
        );

        let shared = Arc::new(NoTombstone::default());
        let report = try_run_key_store(|| {
            let keys = Arc::clone(&shared);
            async move { keys }
        })
        .await;
        assert_eq!(
            failed(&report),
            [
                "forgetting_deletes_every_key_and_leaves_a_tombstone",
                "a_subject_that_comes_back_gets_ids_above_its_tombstone",
                "forgetting_racing_new_keys_never_reuses_an_id",
            ],
            "{report}"
        );
        assert!(
            report.failures[1].message.contains("expected 3, got 1"),
            "{report}"
        );
    }
}
