//! A PostgreSQL cluster of a test's own: `initdb` in a temporary directory, started with
//! `pg_ctl` on a free port of its own (never the shared server's), so a test can crash and
//! restart it without disturbing other tests.
//!
//! The binaries come from `EVENTSOURCE_PG_BIN`, or the newest `/usr/lib/postgresql/*/bin`, or
//! `PATH`. Without them the test is skipped with a printed reason (it fails under `CI=true`).
//! `initdb` refuses to run as root, so as root every binary runs as the `postgres` user (through
//! `runuser`), and the directory is handed to that user. The cluster is stopped and its
//! directory removed when the value is dropped, also when the test fails.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long any one `initdb` or `pg_ctl` call may take (`pg_ctl` is also told to give up then).
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// A running (or stopped, but owned) cluster in a temporary directory.
pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// As root, every binary runs as this user (`runuser -u postgres --`).
    run_as: Option<String>,
    port: u16,
    running: bool,
}

impl Cluster {
    /// Creates and starts a cluster, or returns `None` after printing why it can't (no
    /// PostgreSQL binaries, or running as root without a `postgres` user and `runuser`).
    /// Under `CI=true` those reasons fail the test instead; a failing `initdb` or start always
    /// fails it.
    pub(crate) fn start(tag: &str) -> Option<Self> {
        let (bin, run_as) = match binaries() {
            Ok(found) => found,
            Err(reason) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!(
                    "a private PostgreSQL cluster can't be created ({reason}); CI=true requires it"
                )
            }
            Err(reason) => {
                eprintln!("skipping: a private PostgreSQL cluster can't be created ({reason})");
                return None;
            }
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("es-cluster-{tag}-"))
            .tempdir()
            .expect("a temporary directory for the cluster");
        if let Some(user) = &run_as {
            let (uid, gid) = user_ids(user);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("hand the cluster's directory to the postgres user");
        }
        let mut cluster = Cluster {
            dir,
            bin,
            run_as,
            port: 0,
            running: false,
        };
        let data = cluster.data();
        let out = cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--no-instructions",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // TCP on loopback only, no socket file (the default directory may belong to the shared
        // server), a small footprint. fsync off: these tests kill processes, not the machine, so
        // the page cache survives every crash they cause and syncing would only cost time.
        let mut conf = OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("the cluster's postgresql.conf");
        writeln!(
            conf,
            "\n# Written by the test that owns this cluster.\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = ''\n\
             max_connections = 40\n\
             shared_buffers = 16MB\n\
             fsync = off\n\
             logging_collector = off"
        )
        .expect("write postgresql.conf");
        // A free port can be taken by someone else before the server binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            set_port(&data, port);
            cluster.port = port;
            if cluster.pg_ctl(&["start"]).status.success() {
                cluster.running = true;
                return Some(cluster);
            }
            let log = cluster.log();
            if !log.contains("could not bind") && !log.contains("already in use") {
                panic!("the private cluster did not start; its log:\n{log}");
            }
        }
        panic!(
            "the private cluster found no free port in 5 tries; its log:\n{}",
            cluster.log()
        );
    }

    /// The URL of the cluster's `postgres` database.
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `pg_ctl restart -m immediate`: every server process is killed without a checkpoint (as
    /// in a crash), and the server starts again with crash recovery. Returns when it accepts
    /// connections.
    pub(crate) fn restart_immediately(&mut self) {
        self.running = false;
        let out = self.pg_ctl(&["restart", "-m", "immediate"]);
        assert!(
            out.status.success(),
            "pg_ctl restart failed: {}; the server log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        self.running = true;
    }

    /// `pg_ctl stop -m immediate`: the server is down until [`Cluster::start_again`].
    pub(crate) fn stop_immediately(&mut self) {
        let out = self.pg_ctl(&["stop", "-m", "immediate"]);
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}; the server log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        self.running = false;
    }

    /// Starts the stopped server again (with crash recovery after an immediate stop).
    pub(crate) fn start_again(&mut self) {
        let out = self.pg_ctl(&["start"]);
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}; the server log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        self.running = true;
    }

    /// The server's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// `pg_ctl <action> -D data -l log -w -t 60 …`.
    fn pg_ctl(&self, action: &[&str]) -> Output {
        let data = self.data();
        let log = self.log_file();
        let timeout = COMMAND_DEADLINE.as_secs().to_string();
        let mut args: Vec<&str> = action.to_vec();
        args.extend([
            "-D",
            path_str(&data),
            "-l",
            path_str(&log),
            "-w",
            "-t",
            &timeout,
        ]);
        self.run("pg_ctl", &args)
    }

    /// Runs one of the cluster's binaries (as the postgres user when we are root), in the
    /// cluster's directory, waiting at most [`COMMAND_DEADLINE`] (plus a margin for `pg_ctl`'s
    /// own timeout to fire first).
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
        wait_bounded(child, COMMAND_DEADLINE + Duration::from_secs(15), &program)
    }
}

impl Drop for Cluster {
    /// Stops the server (immediately: nothing in it is kept) so no test leaves one running;
    /// the directory goes with the `TempDir`.
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["stop", "-m", "immediate"]);
            self.running = false;
        }
    }
}

/// Waits for `child` at most `deadline`, then kills it and fails.
fn wait_bounded(mut child: std::process::Child, deadline: Duration, program: &Path) -> Output {
    let until = Instant::now() + deadline;
    loop {
        match child.try_wait().expect("the command's status") {
            Some(_) => return child.wait_with_output().expect("the command's output"),
            None if Instant::now() > until => {
                let _ = child.kill();
                let output = child.wait_with_output().expect("the command's output");
                panic!(
                    "{} did not finish within {deadline:?}: {}",
                    program.display(),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            // A child process offers no async wait here; its exit is polled.
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The directory with `initdb` and `pg_ctl`, and the user to run them as (when we are root).
fn binaries() -> Result<(PathBuf, Option<String>), String> {
    let bin = match std::env::var_os("EVENTSOURCE_PG_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => newest_installed().or_else(on_path).ok_or_else(|| {
            "no initdb and pg_ctl in /usr/lib/postgresql/*/bin or on PATH; set EVENTSOURCE_PG_BIN"
                .to_string()
        })?,
    };
    for program in ["initdb", "pg_ctl", "postgres"] {
        if !bin.join(program).is_file() {
            return Err(format!("{} has no `{program}`", bin.display()));
        }
    }
    let root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    if !root {
        return Ok((bin, None));
    }
    // initdb refuses root: run everything as the postgres user.
    let user = "postgres";
    let known = Command::new("id")
        .args(["-u", user])
        .output()
        .is_ok_and(|out| out.status.success());
    if !known {
        return Err(format!(
            "running as root (initdb refuses root) and there is no `{user}` user to run it as"
        ));
    }
    let runuser = Command::new("runuser")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !runuser {
        return Err("running as root (initdb refuses root) and `runuser` is missing".into());
    }
    Ok((bin, Some(user.to_string())))
}

/// The newest `/usr/lib/postgresql/<major>/bin` (Debian's layout).
fn newest_installed() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let major = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// The directory of `initdb` on `PATH`.
fn on_path() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).find(|dir| dir.join("initdb").is_file())
}

fn user_ids(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .expect("run id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("`id {flag} {user}` printed no number"))
    };
    (id("-u"), id("-g"))
}

/// A port nothing listens on right now (another program may still take it first).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free local port")
        .port()
}

/// Sets the port in the cluster's configuration (the last setting in the file wins).
fn set_port(data: &Path, port: u16) {
    let mut conf = OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .expect("the cluster's postgresql.conf");
    writeln!(conf, "port = {port}").expect("write postgresql.conf");
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}
