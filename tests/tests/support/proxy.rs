//! A TCP proxy between a store and its PostgreSQL server that a test can make lose the
//! server's answers and then cut the connection, as a network failure would after a request
//! reached the server: the server did the work, the client never hears of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Forwards every connection made to [`Proxy::port`] to `target`, on threads of its own.
pub(crate) struct Proxy {
    port: u16,
    state: Arc<State>,
}

struct State {
    /// While set, what the server sends is dropped instead of forwarded.
    swallow: AtomicBool,
    /// The client side of every connection so far, to cut them.
    clients: Mutex<Vec<TcpStream>>,
    closed: AtomicBool,
}

impl Proxy {
    /// Starts forwarding to `target` (`host:port`).
    pub(crate) fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a local port for the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let state = Arc::new(State {
            swallow: AtomicBool::new(false),
            clients: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.closed.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                if let Ok(copy) = client.try_clone() {
                    shared
                        .clients
                        .lock()
                        .expect("the proxy's clients")
                        .push(copy);
                }
                let (Ok(client_in), Ok(server_out)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                std::thread::spawn(move || pump(client_in, server_out, None));
                let state = Arc::clone(&shared);
                std::thread::spawn(move || pump(server, client, Some(state)));
            }
        });
        Proxy { port, state }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// From now on the server's answers are lost on the way.
    pub(crate) fn swallow_answers(&self) {
        self.state.swallow.store(true, Ordering::SeqCst);
    }

    /// Closes the client side of every connection made so far (the client reads end of
    /// stream), and forwards answers again on the connections made after it.
    pub(crate) fn cut(&self) {
        for client in self
            .state
            .clients
            .lock()
            .expect("the proxy's clients")
            .drain(..)
        {
            let _ = client.shutdown(Shutdown::Both);
        }
        self.state.swallow.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::SeqCst);
        self.cut();
        // Wake the accept loop so it sees `closed`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to` until either ends; answers from the server (`state` set) are dropped
/// while the proxy swallows them. Closing one side closes the other.
fn pump(mut from: TcpStream, mut to: TcpStream, state: Option<Arc<State>>) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if state
            .as_ref()
            .is_some_and(|s| s.swallow.load(Ordering::SeqCst))
        {
            continue;
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
