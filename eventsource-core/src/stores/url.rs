//! Opening a store from a URL: what a program's `--store` option or an `EVENTSOURCE_STORE`
//! variable names, as an [`AnyStore`] that keeps the store's own type.
//!
//! | URL | store |
//! |---|---|
//! | `memory://` | [`MemoryStore`], in process memory, gone on exit |
//! | `sqlite://path/to/file.db`, `sqlite::memory:`, or a bare file path (no `://`) | `SqliteStore` (feature `sqlite`) |
//! | `postgres://user@host:port/db` (or `postgresql://`), optionally `?schema=NAME` | `PostgresStore` (feature `postgres`) |
//! | `nats://host:port` (several servers separated by commas), optionally `?name=NAME&replicas=N` | `NatsStore` (feature `nats`) |
//!
//! Any other `scheme://` is refused with [`Error::Config`] naming the schemes this build
//! knows: a typo or an unsupported database never quietly becomes an SQLite file.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::persistence::codec::{Compression, KeyStore, MasterKey, MemoryKeyStore, PayloadCodec};
use crate::persistence::store::EventStore;
use crate::stores::memory::MemoryStore;

/// The schemes [`AnyStore::open`] knows, as a person would write them. The PostgreSQL ones are
/// listed in every build; a build without the `postgres` feature refuses them saying so.
pub const SCHEMES: &[&str] = &[
    "memory://",
    "sqlite://FILE",
    "sqlite::memory:",
    "postgres://USER@HOST:PORT/DB",
    "postgresql://…",
    "nats://HOST:PORT[,HOST:PORT…][?name=NAME&replicas=N]",
    "a bare file path (SQLite)",
];

/// What [`Error::Config`] names as the backend of a URL that names no store.
const BACKEND: &str = "URL";

/// A store opened from a URL, still as its own type: what a program needs to keep a read model
/// in the store's database (a projection whose context is the store's transaction takes the
/// concrete store). [`events`](Self::events) gives the same store behind the trait.
///
/// ```
/// use eventsource_core::stores::AnyStore;
/// use eventsource_core::{Error, EventStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = AnyStore::open("memory://").await?;
/// assert_eq!(store.events().last_position().await?.get(), 0);
///
/// let refused = AnyStore::open("mysql://db.example/shop").await.unwrap_err();
/// assert!(matches!(refused, Error::Config { .. }));
/// assert!(refused.to_string().contains("sqlite://FILE"), "{refused}");
/// # Ok::<_, Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// `memory://`: in process memory, gone on exit.
    Memory(Arc<MemoryStore>),
    /// `sqlite://FILE` or a bare file path (or `sqlite::memory:`, which has no file).
    #[cfg(feature = "sqlite")]
    Sqlite(crate::stores::sqlite::SqliteStore),
    /// `postgres://…`, with the `postgres` feature.
    #[cfg(feature = "postgres")]
    Postgres(crate::stores::postgres::PostgresStore),
    /// `nats://…`, with the `nats` feature.
    #[cfg(feature = "nats")]
    Nats(crate::stores::nats::NatsStore),
}

/// What a URL names, before anything is opened.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Memory,
    Sqlite(&'a str),
    Postgres { url: String, schema: Option<String> },
    Nats(Nats),
}

/// What a `nats://` URL names: the servers, and the store's name and replicas if given.
#[derive(Debug, PartialEq, Eq)]
struct Nats {
    urls: String,
    name: Option<String>,
    replicas: Option<usize>,
}

impl AnyStore {
    /// Opens the store `url` names (see the [module docs](self)): `memory://`,
    /// `sqlite://FILE` (or a bare file path), `postgres://…?schema=NAME`.
    ///
    /// Fails with [`Error::Config`] for a scheme this build doesn't know (the message lists the
    /// ones it does), or a PostgreSQL URL in a build without the `postgres` feature; with the
    /// store's own errors if it can't be opened.
    pub async fn open(url: &str) -> Result<Self> {
        match parse(url)? {
            Target::Memory => Ok(Self::Memory(Arc::new(MemoryStore::new()))),
            #[cfg(feature = "sqlite")]
            Target::Sqlite(url) => Ok(Self::Sqlite(
                crate::stores::sqlite::SqliteStore::connect(url).await?,
            )),
            #[cfg(not(feature = "sqlite"))]
            Target::Sqlite(_) => Err(Error::Config {
                backend: "sqlite",
                message: "this program was built without the `sqlite` feature".into(),
            }),
            #[cfg(feature = "postgres")]
            Target::Postgres { url, schema } => {
                let mut options = crate::stores::postgres::PostgresStore::options(url);
                if let Some(schema) = schema {
                    options = options.schema(schema);
                }
                Ok(Self::Postgres(options.connect().await?))
            }
            #[cfg(not(feature = "postgres"))]
            Target::Postgres { .. } => Err(Error::Config {
                backend: "postgres",
                message: "this program was built without the `postgres` feature".into(),
            }),
            #[cfg(feature = "nats")]
            Target::Nats(nats) => {
                let mut options = crate::stores::nats::NatsStore::options(nats.urls);
                if let Some(name) = nats.name {
                    options = options.name(name);
                }
                if let Some(replicas) = nats.replicas {
                    options = options.replicas(replicas);
                }
                Ok(Self::Nats(options.connect().await?))
            }
            #[cfg(not(feature = "nats"))]
            Target::Nats(_) => Err(Error::Config {
                backend: "nats",
                message: "this program was built without the `nats` feature".into(),
            }),
        }
    }

    /// The kind of store, in one word: `memory`, `sqlite`, `postgres` or `nats`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => "postgres",
            #[cfg(feature = "nats")]
            Self::Nats(_) => "nats",
        }
    }

    /// A codec for this store: with a master key, payloads are compressed (LZ4) and encrypted,
    /// with keys kept by the store's own key store, wrapped by `master` (a table beside the
    /// events on SQLite and PostgreSQL, the key-value bucket `NAME-keys` on NATS; in memory for
    /// the memory store); without one, plain JSON. Either reads every payload format; only the
    /// one with the key store opens encrypted payloads.
    pub fn codec(&self, master: Option<MasterKey>) -> Result<PayloadCodec> {
        let Some(master) = master else {
            return Ok(PayloadCodec::new());
        };
        let keys: Arc<dyn KeyStore> = match self {
            Self::Memory(_) => {
                let _ = master;
                Arc::new(MemoryKeyStore::new())
            }
            #[cfg(feature = "sqlite")]
            Self::Sqlite(store) => {
                Arc::new(crate::stores::sqlite::SqliteKeyStore::new(store, master))
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => Arc::new(crate::stores::postgres::PostgresKeyStore::new(
                store, master,
            )),
            #[cfg(feature = "nats")]
            Self::Nats(store) => Arc::new(crate::stores::nats::NatsKeyStore::new(store, master)),
        };
        Ok(PayloadCodec::new()
            .compress(Compression::lz4())
            .encrypt_with(keys))
    }

    /// The same store behind the [`EventStore`] trait, for code that works on any store.
    pub fn events(&self) -> Arc<dyn EventStore> {
        match self {
            Self::Memory(store) => Arc::clone(store) as Arc<dyn EventStore>,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(store) => Arc::new(store.clone()),
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => Arc::new(store.clone()),
            #[cfg(feature = "nats")]
            Self::Nats(store) => Arc::new(store.clone()),
        }
    }
}

/// Reads what `url` names, refusing schemes we don't know.
fn parse(url: &str) -> Result<Target<'_>> {
    if url.starts_with("memory:") {
        return Ok(Target::Memory);
    }
    if url.starts_with("sqlite:") {
        return Ok(Target::Sqlite(url));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(postgres(url));
    }
    if url.starts_with("nats://") {
        return nats(url);
    }
    match url.split_once("://") {
        Some((scheme, _)) => Err(Error::Config {
            backend: BACKEND,
            message: format!(
                "`{url}` names a store of scheme `{scheme}://`, which this program doesn't know; known: {}",
                SCHEMES.join(", ")
            ),
        }),
        None if url.is_empty() => Err(Error::Config {
            backend: BACKEND,
            message: format!("the store URL is empty; known: {}", SCHEMES.join(", ")),
        }),
        None => Ok(Target::Sqlite(url)),
    }
}

/// A PostgreSQL URL with our own `schema=NAME` parameter taken out of its query (the driver
/// refuses parameters it doesn't know).
fn postgres(url: &str) -> Target<'static> {
    let Some((base, query)) = url.split_once('?') else {
        return Target::Postgres {
            url: url.to_owned(),
            schema: None,
        };
    };
    let mut schema = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("schema=") {
            Some(name) => schema = Some(name.to_owned()),
            None => rest.push(pair),
        }
    }
    let url = match rest.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", rest.join("&")),
    };
    Target::Postgres { url, schema }
}

/// A NATS URL: the servers before `?`, and our own `name=` and `replicas=` parameters.
fn nats(url: &str) -> Result<Target<'static>> {
    let (urls, query) = url.split_once('?').unwrap_or((url, ""));
    let mut nats = Nats {
        urls: urls.to_owned(),
        name: None,
        replicas: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("name", name)) => nats.name = Some(name.to_owned()),
            Some(("replicas", n)) => {
                nats.replicas = Some(n.parse().map_err(|_| Error::Config {
                    backend: "nats",
                    message: format!("`replicas={n}` in `{url}` is not a number"),
                })?)
            }
            _ => {
                return Err(Error::Config {
                    backend: "nats",
                    message: format!(
                        "unknown parameter `{pair}` in `{url}`; known: name=NAME, replicas=N"
                    ),
                });
            }
        }
    }
    Ok(Target::Nats(nats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_scheme_is_refused_with_the_known_ones() {
        for url in ["mysql://x", "kafka://127.0.0.1:9092", "file:///tmp/bank.db"] {
            let error = parse(url).unwrap_err();
            assert!(
                matches!(error, Error::Config { backend: "URL", .. }),
                "{error}"
            );
            let text = error.to_string();
            for scheme in SCHEMES {
                assert!(text.contains(scheme), "{scheme} missing in: {text}");
            }
            assert!(text.contains(url), "{text}");
        }
        assert!(parse("").is_err());
    }

    #[test]
    fn a_url_names_its_store() {
        assert_eq!(parse("memory://").unwrap(), Target::Memory);
        assert_eq!(
            parse("sqlite://bank.db").unwrap(),
            Target::Sqlite("sqlite://bank.db")
        );
        assert_eq!(
            parse("data/bank.db").unwrap(),
            Target::Sqlite("data/bank.db")
        );
        assert_eq!(
            parse("postgres://u@h:5432/db?schema=bank&connect_timeout=3").unwrap(),
            Target::Postgres {
                url: "postgres://u@h:5432/db?connect_timeout=3".into(),
                schema: Some("bank".into())
            }
        );
        assert_eq!(
            parse("postgresql://u@h/db").unwrap(),
            Target::Postgres {
                url: "postgresql://u@h/db".into(),
                schema: None
            }
        );
        assert_eq!(
            parse("nats://a:1,nats://b:2?name=bank&replicas=3").unwrap(),
            Target::Nats(Nats {
                urls: "nats://a:1,nats://b:2".into(),
                name: Some("bank".into()),
                replicas: Some(3)
            })
        );
        assert_eq!(
            parse("nats://127.0.0.1:14222").unwrap(),
            Target::Nats(Nats {
                urls: "nats://127.0.0.1:14222".into(),
                name: None,
                replicas: None
            })
        );
        for bad in ["nats://a:1?replicas=three", "nats://a:1?stream=x"] {
            assert!(
                matches!(
                    parse(bad),
                    Err(Error::Config {
                        backend: "nats",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn a_bare_path_and_a_sqlite_url_open_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bank.db");
        let bare = AnyStore::open(file.to_str().unwrap()).await.unwrap();
        assert_eq!(bare.kind(), "sqlite");
        let stream = uuid::Uuid::now_v7();
        let event = crate::NewEvent::new("Opened", 1, "{}");
        bare.events()
            .append(crate::AppendBatch::single(stream, 0, vec![event]))
            .await
            .unwrap();
        let url = AnyStore::open(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        assert_eq!(url.events().stream_version(stream).await.unwrap(), 1);
        assert!(file.exists());
        let memory = AnyStore::open("memory://").await.unwrap();
        assert_eq!(memory.kind(), "memory");
        assert!(AnyStore::open("mysql://x").await.is_err());
    }
}
