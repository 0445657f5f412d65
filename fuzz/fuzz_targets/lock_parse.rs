//! `Lock::parse` on arbitrary text: a typed `ParseError` or a lock, never a panic; and a lock
//! that parsed renders to text that parses back to the same lock.
#![no_main]

use eventsource_schema::Lock;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(lock) = Lock::parse(text) else {
        return;
    };
    let rendered = lock.render();
    match Lock::parse(&rendered) {
        Ok(again) => assert_eq!(
            again, lock,
            "render then parse changed the lock; input {text:?}, rendered {rendered:?}"
        ),
        Err(e) => panic!(
            "a parsed lock rendered to text that does not parse ({e}); input {text:?}, rendered {rendered:?}"
        ),
    }
});
