//! Compile errors from the derives, as users read them.
//!
//! The `.stderr` files quote rustc's diagnostics, which change between compiler releases; they
//! were written with the toolchain pinned in `rust-toolchain.toml`. Under another compiler the
//! test is skipped with a message (set `EVENTSOURCE_UI_TESTS=1` to run it anyway). After changing
//! a message, regenerate with `TRYBUILD=overwrite cargo test -p eventsource-tests --test ui` and
//! read the diff as a user would.

const PINNED_RUSTC: &str = "1.95.0";

#[test]
fn ui() {
    let version = rustc_version();
    if !version.contains(PINNED_RUSTC) && std::env::var_os("EVENTSOURCE_UI_TESTS").is_none() {
        println!("skipping UI tests: they are pinned to rustc {PINNED_RUSTC}, this is `{version}`");
        return;
    }
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/event/*.rs");
    t.compile_fail("ui/aggregate/*.rs");
    t.compile_fail("ui/projection/*.rs");
    t.compile_fail("ui/process/*.rs");
    t.pass("ui/pass/*.rs");
    // Schema-lock cases: each folder holds a `main.rs` and the `events.lock` it is checked against.
    t.compile_fail("ui/lock/*/main.rs");
    // Evolving events: changes that need a new version (each folder brings its `events.lock`),
    // and mistakes with `aliases(...)`.
    t.compile_fail("ui/evolution/*.rs");
    t.compile_fail("ui/evolution/*/main.rs");
    t.pass("ui/pass_lock/*/main.rs");
}

fn rustc_version() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}
