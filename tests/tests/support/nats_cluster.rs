//! A three-node NATS JetStream cluster of a test's own: `nats-server` processes on free loopback
//! ports with their store directories in a temporary directory, so a test can SIGKILL and
//! restart a node without disturbing other tests (never the shared servers of `.ci/nats`).
//!
//! The binary comes from `EVENTSOURCE_NATS_SERVER`, default where `.ci/nats install` puts it
//! (`~/.cache/eventsource/nats/2.15.1/bin/nats-server`). Without it the test is skipped with a
//! printed reason (it fails under `CI=true`). Every node is killed when the value is dropped.
//!
//! A node can also be frozen (SIGSTOP) to make it lag behind the others, and thawed (SIGCONT)
//! by the [`Paused`] guard, also when the test fails.
#![allow(dead_code)]

use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One node: its name, ports and process.
struct Node {
    name: String,
    client_port: u16,
    /// The HTTP monitoring port (`/jsz`: the node's own view of its streams).
    monitor_port: u16,
    config: PathBuf,
    log: PathBuf,
    process: Option<Child>,
}

/// A running cluster in a temporary directory.
pub(crate) struct NatsCluster {
    _dir: tempfile::TempDir,
    binary: PathBuf,
    nodes: Vec<Node>,
}

fn binary() -> PathBuf {
    std::env::var_os("EVENTSOURCE_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/eventsource/nats/2.15.1/bin/nats-server")
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

/// Whether a NATS server answers on `port` (it greets every connection with `INFO`).
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut greeting = [0u8; 4];
    stream.read_exact(&mut greeting).is_ok() && &greeting == b"INFO"
}

impl NatsCluster {
    /// Starts three nodes, or returns `None` after printing why it can't (no binary); under
    /// `CI=true` that fails the test instead.
    pub(crate) fn start(tag: &str) -> Option<Self> {
        let binary = binary();
        if !binary.exists() {
            let reason = format!(
                "no nats-server at {} (run `.ci/nats install`, or set EVENTSOURCE_NATS_SERVER)",
                binary.display()
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{reason}; CI=true requires it");
            }
            eprintln!("skipping: {reason}");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("es-nats-{tag}-"))
            .tempdir()
            .expect("a temporary directory for the cluster");
        let ports: Vec<(u16, u16, u16)> = (0..3)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, route, _)| format!("\"nats-route://127.0.0.1:{route}\""))
            .collect();
        let mut nodes = Vec::new();
        for (index, (client_port, route_port, monitor_port)) in ports.iter().enumerate() {
            let name = format!("n{}", index + 1);
            let node_dir = dir.path().join(&name);
            std::fs::create_dir_all(node_dir.join("store")).expect("the node's store directory");
            let config = node_dir.join("server.conf");
            std::fs::write(
                &config,
                format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{client_port}\nmax_payload: 8MB\n\
                     http: 127.0.0.1:{monitor_port}\n\
                     jetstream {{ store_dir: \"{}\" }}\n\
                     cluster {{ name: es-{tag}\n listen: 127.0.0.1:{route_port}\n routes: [{}] }}\n",
                    node_dir.join("store").display(),
                    routes.join(", ")
                ),
            )
            .expect("write the node's configuration");
            nodes.push(Node {
                name,
                client_port: *client_port,
                monitor_port: *monitor_port,
                config,
                log: node_dir.join("server.log"),
                process: None,
            });
        }
        let mut cluster = Self {
            _dir: dir,
            binary,
            nodes,
        };
        for index in 0..3 {
            cluster.spawn(index);
        }
        for index in 0..3 {
            cluster.wait_answering(index);
        }
        Some(cluster)
    }

    fn spawn(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("the node's log file");
        let process = Command::new(&self.binary)
            .arg("-c")
            .arg(&node.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        node.process = Some(process);
    }

    fn wait_answering(&self, index: usize) {
        let node = &self.nodes[index];
        let deadline = Instant::now() + Duration::from_secs(30);
        while !answers(node.client_port) {
            assert!(
                Instant::now() < deadline,
                "node {} did not answer on port {} within 30 s; its log:\n{}",
                node.name,
                node.client_port,
                std::fs::read_to_string(&node.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every node's client URL, comma-separated.
    pub(crate) fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("nats://127.0.0.1:{}", node.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// SIGKILLs the node named `name` and waits for it to be gone.
    pub(crate) fn kill(&mut self, name: &str) {
        let node = self.node(name);
        let mut process = node.process.take().expect("the node is running");
        process.kill().expect("SIGKILL the node");
        process.wait().expect("the killed node's status");
    }

    /// Starts the node named `name` again, on its ports and store directory.
    pub(crate) fn restart(&mut self, name: &str) {
        let index = self
            .nodes
            .iter()
            .position(|node| node.name == name)
            .expect("a node of this name");
        self.spawn(index);
        self.wait_answering(index);
    }

    /// The client URL of the node named `name`.
    pub(crate) fn url(&self, name: &str) -> String {
        let node = self
            .nodes
            .iter()
            .find(|node| node.name == name)
            .unwrap_or_else(|| panic!("no node named {name}"));
        format!("nats://127.0.0.1:{}", node.client_port)
    }

    /// The HTTP monitoring URL of the node named `name` (`…/jsz?streams=true` is its own view of
    /// its streams: a follower's last sequence there is what its replica has applied).
    pub(crate) fn monitor_url(&self, name: &str) -> String {
        let node = self
            .nodes
            .iter()
            .find(|node| node.name == name)
            .unwrap_or_else(|| panic!("no node named {name}"));
        format!("http://127.0.0.1:{}", node.monitor_port)
    }

    /// Freezes the node named `name` (SIGSTOP): it neither answers nor applies anything until
    /// the guard is resumed or dropped (SIGCONT).
    pub(crate) fn pause(&mut self, name: &str) -> Paused {
        let pid = self
            .node(name)
            .process
            .as_ref()
            .expect("the node is running")
            .id();
        assert!(signal("STOP", pid), "could not SIGSTOP node {name}");
        Paused {
            name: name.to_owned(),
            pid,
            resumed: false,
        }
    }

    fn node(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|node| node.name == name)
            .unwrap_or_else(|| panic!("no node named {name}"))
    }
}

impl Drop for NatsCluster {
    /// A failing test must not leave servers running.
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut process) = node.process.take() {
                let _ = process.kill();
                let _ = process.wait();
            }
        }
    }
}

/// A node frozen by [`NatsCluster::pause`]: resumed by [`resume`](Self::resume) or, whatever
/// happens to the test, when dropped.
pub(crate) struct Paused {
    name: String,
    pid: u32,
    resumed: bool,
}

impl Paused {
    /// The frozen node's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Thaws the node (SIGCONT).
    pub(crate) fn resume(mut self) {
        self.thaw();
    }

    fn thaw(&mut self) {
        if !self.resumed {
            self.resumed = true;
            // Never a panic here: this runs while a failing test unwinds.
            if !signal("CONT", self.pid) {
                eprintln!("could not SIGCONT node {} (pid {})", self.name, self.pid);
            }
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        self.thaw();
    }
}

/// Sends `SIG<name>` to `pid` through `kill(1)` (the tests forbid unsafe code); whether it
/// was sent.
fn signal(name: &str, pid: u32) -> bool {
    Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|status| status.success())
}
