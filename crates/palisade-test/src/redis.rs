//! A real `redis-server` for tests: started on a free port of 127.0.0.1, killed and
//! restarted at will, killed when dropped.
//!
//! ```no_run
//! use palisade_test::redis::RedisServer;
//!
//! let mut server = RedisServer::start();
//! let url = server.url(); // redis://127.0.0.1:PORT/
//! server.kill(); // Redis is gone: clients see their connection drop
//! server.restart(); // back on the same port, empty
//! ```
//!
//! The server keeps nothing on disk (`--save "" --appendonly no`): a restart starts empty.
//! The calls block the calling thread (for milliseconds, while the server starts), so they
//! can be made from synchronous and asynchronous tests alike.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server gets to answer after it was spawned.
const STARTUP: Duration = Duration::from_secs(10);

/// How many times [`RedisServer::start`] tries another port when the one it picked was taken
/// by someone else before the server could bind it.
const PORT_ATTEMPTS: usize = 5;

/// A `redis-server` child process listening on 127.0.0.1. Dropping it kills the server.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    ///
    /// # Panics
    ///
    /// If `redis-server` is not installed, or the server does not come up within 10 s.
    pub fn start() -> Self {
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match spawn(port, &[]) {
                Ok(child) => {
                    return Self {
                        port,
                        child: Some(child),
                    };
                }
                // Most likely the port was taken between our probe and the server's bind.
                Err(failure) => last_failure = failure,
            }
        }
        panic!("redis-server did not start after {PORT_ATTEMPTS} attempts: {last_failure}");
    }

    /// The port the server listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's URL, `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Whether the server is running (it was not killed, or was restarted since).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (`SIGKILL`: no goodbye to its clients, no shutdown) and waits for it
    /// to be gone. Nothing happens if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means it already exited; waiting reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again, empty, on the same port, and waits until it answers;
    /// kills it first if it is running.
    ///
    /// # Panics
    ///
    /// If the server does not come up within 10 s (e.g. someone else took the port).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + STARTUP;
        loop {
            match spawn(self.port, &[]) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(failure) if Instant::now() >= deadline => {
                    panic!(
                        "redis-server did not restart on port {}: {failure}",
                        self.port
                    )
                }
                // The port may take a moment to be free again after the kill.
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free a moment ago: the kernel's pick for port 0.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("cannot bind 127.0.0.1:0 to find a free port");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

/// Spawns `redis-server` on `port`, with `extra` arguments after the common ones, and waits
/// until it answers (as itself: see [`server_pid`]); `Err` (with the server killed) if it
/// exits first or does not answer in time.
pub(crate) fn spawn(port: u16, extra: &[&str]) -> Result<Child, String> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            if e.kind() == ErrorKind::NotFound {
                panic!(
                    "redis-server is not installed: `apt-get install redis-server` \
                     (the tests need a real Redis)"
                )
            }
            panic!("cannot run redis-server: {e}")
        });
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server on port {port} exited: {status}"));
        }
        if server_pid(addr) == Some(child.id()) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "redis-server on port {port} did not answer within {STARTUP:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The process id of the Redis answering at `addr`, from `INFO server`; `None` if nothing
/// answers there (yet) or the answer is not Redis's.
///
/// Checking the id rather than a bare `PING` makes sure the server that answers is the one
/// we spawned, and not another test's that got the port first.
fn server_pid(addr: SocketAddr) -> Option<u32> {
    let timeout = Duration::from_millis(500);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.write_all(b"INFO server\r\n").ok()?;
    // A bulk string: `$<len>\r\n<len bytes>\r\n`.
    let mut reply = Vec::new();
    let mut chunk = [0; 4096];
    let info = loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&chunk[..n]);
        let Some(header_end) = reply.windows(2).position(|w| w == b"\r\n") else {
            continue;
        };
        let len: usize = std::str::from_utf8(reply.get(1..header_end)?)
            .ok()?
            .parse()
            .ok()?;
        if reply.first() != Some(&b'$') {
            return None;
        }
        if let Some(info) = reply.get(header_end + 2..header_end + 2 + len) {
            break String::from_utf8_lossy(info).into_owned();
        }
    };
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_answers_until_killed_and_again_after_a_restart() {
        let mut server = RedisServer::start();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, server.port()));
        let first = server_pid(addr);
        assert!(first.is_some());
        assert_eq!(
            server.url(),
            format!("redis://127.0.0.1:{}/", server.port())
        );
        server.kill();
        assert!(!server.is_running());
        assert_eq!(server_pid(addr), None);
        server.restart();
        assert!(server.is_running());
        let second = server_pid(addr);
        assert!(second.is_some());
        assert_ne!(first, second);
        drop(server);
        assert_eq!(server_pid(addr), None);
    }

    #[test]
    fn servers_get_ports_of_their_own() {
        let a = RedisServer::start();
        let b = RedisServer::start();
        assert_ne!(a.port(), b.port());
    }
}
