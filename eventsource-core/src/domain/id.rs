//! Aggregate ids.

use uuid::Uuid;

/// A new, time-ordered id (UUID v7) for a new aggregate. Time order keeps index inserts local.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// A stable id derived from a name (UUID v5) in a namespace, for aggregates that are found by a
/// natural key (an email address, an account number):
///
/// ```
/// use eventsource_core::id_from_name;
/// let a = id_from_name("accounts", "ada@example.com");
/// assert_eq!(a, id_from_name("accounts", "ada@example.com"));
/// assert_ne!(a, id_from_name("customers", "ada@example.com"));
/// ```
pub fn id_from_name(namespace: &str, name: &str) -> Uuid {
    let namespace = Uuid::new_v5(&Uuid::NAMESPACE_OID, namespace.as_bytes());
    Uuid::new_v5(&namespace, name.as_bytes())
}
