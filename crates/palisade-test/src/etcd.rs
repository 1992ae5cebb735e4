//! A real `etcd` for tests: a single member on free ports of 127.0.0.1, with its data in a
//! directory of its own; killed and restarted at will (its data kept, as a restarted member
//! keeps it), killed and its data removed when dropped.
//!
//! ```no_run
//! use palisade_test::etcd::Etcd;
//!
//! let mut etcd = Etcd::start();
//! let endpoint = etcd.endpoint(); // http://127.0.0.1:PORT
//! etcd.kill(); // SIGKILL: clients see their streams break
//! etcd.restart(); // back on the same ports, with the same data
//! ```
//!
//! The calls block the calling thread (for a second or so, while etcd starts), so they can
//! be made from synchronous and asynchronous tests alike.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis::free_port;

/// How long etcd gets to answer after it was spawned.
const STARTUP: Duration = Duration::from_secs(20);

/// How many times [`Etcd::start`] tries other ports when the ones it picked were taken.
const PORT_ATTEMPTS: usize = 5;

/// An `etcd` child process listening on 127.0.0.1. Dropping it kills it and removes its data.
#[derive(Debug)]
pub struct Etcd {
    client_port: u16,
    peer_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Etcd {
    /// Starts a single-member etcd on free ports and waits until it is healthy.
    ///
    /// # Panics
    ///
    /// If `etcd` is not installed (Debian's `etcd-server`), or does not come up in 20 s.
    pub fn start() -> Self {
        let mut last_failure = String::new();
        for attempt in 0..PORT_ATTEMPTS {
            let (client_port, peer_port) = (free_port(), free_port());
            let dir = std::env::temp_dir().join(format!(
                "palisade-etcd-{}-{client_port}-{attempt}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            match spawn(client_port, peer_port, &dir) {
                Ok(child) => {
                    return Self {
                        client_port,
                        peer_port,
                        dir,
                        child: Some(child),
                    };
                }
                Err(failure) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    last_failure = failure;
                }
            }
        }
        panic!("etcd did not start after {PORT_ATTEMPTS} attempts: {last_failure}");
    }

    /// The client URL, `http://127.0.0.1:PORT`, for `etcd_client::Client::connect`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Whether etcd is running (it was not killed, or was restarted since).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills etcd (`SIGKILL`) and waits for it to be gone; its data stays for a restart.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports with the same data, and waits until it is
    /// healthy; kills it first if it is running.
    ///
    /// # Panics
    ///
    /// If it does not come up within 20 s.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + STARTUP;
        loop {
            match spawn(self.client_port, self.peer_port, &self.dir) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(failure) if Instant::now() >= deadline => {
                    panic!(
                        "etcd did not restart on port {}: {failure}",
                        self.client_port
                    )
                }
                // The ports may take a moment to be free again after the kill.
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(client_port: u16, peer_port: u16, dir: &std::path::Path) -> Result<Child, String> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut child = Command::new("etcd")
        .args(["--name", "default"])
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("default={peer}")])
        .args(["--log-level", "error"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            if e.kind() == ErrorKind::NotFound {
                panic!(
                    "etcd is not installed: `apt-get install etcd-server` (the tests need a \
                     real etcd)"
                )
            }
            panic!("cannot run etcd: {e}")
        });
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, client_port));
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("etcd on port {client_port} exited: {status}"));
        }
        if healthy(addr) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "etcd on port {client_port} was not healthy within {STARTUP:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the etcd at `addr` says it is healthy (`GET /health`).
fn healthy(addr: SocketAddr) -> bool {
    let timeout = Duration::from_millis(500);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let request = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.contains("\"health\":\"true\"")
}
