//! A real Redis Cluster for tests: three primaries and three replicas, each a `redis-server`
//! on free ports of 127.0.0.1, made a cluster by `redis-cli --cluster create`; nodes can be
//! paused, killed, restarted and failed over, and all are killed when it is dropped.
//!
//! ```no_run
//! use palisade_test::redis_cluster::RedisCluster;
//!
//! let mut cluster = RedisCluster::start();
//! let nodes = cluster.nodes(); // ["127.0.0.1:PORT", …], for a cluster client
//! let primary = cluster.primaries()[0];
//! let replica = cluster.replica_of(primary);
//! cluster.kill(primary); // SIGKILL: whatever it had not sent to its replica is lost
//! cluster.take_over(replica); // the replica is now the primary of those slots
//! cluster.restart(primary); // back, as the new primary's replica
//! ```
//!
//! The nodes keep no data on disk (`--save "" --appendonly no`), only their cluster
//! configuration (`nodes-PORT.conf` in a directory of their own), so a restarted node
//! knows its cluster and rejoins it, empty, as a replica that resynchronises. The cluster
//! does not require full coverage: while a primary is down, the others serve their slots.
//! The calls block the calling thread (while nodes start or the cluster settles), so they
//! can be made from synchronous and asynchronous tests alike.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::redis::{free_port, spawn};

/// How long the cluster gets to form, or to settle after a change.
const SETTLE: Duration = Duration::from_secs(30);

/// After how long without an answer the nodes consider one of them failing. Short, so a
/// test's failover happens in seconds; the tests that need a failover force it anyway.
const NODE_TIMEOUT_MS: &str = "2000";

/// How many primaries the cluster has; each has one replica.
const PRIMARIES: usize = 3;

/// One node: its port, and its process while it runs.
#[derive(Debug)]
struct Node {
    port: u16,
    child: Option<Child>,
}

/// A Redis Cluster of three primaries, each with one replica. Dropping it kills every node
/// and deletes their configuration.
#[derive(Debug)]
pub struct RedisCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl RedisCluster {
    /// Starts six nodes, makes them a cluster (three primaries, one replica each, the
    /// 16 384 slots split evenly), and waits until every node reports the cluster healthy.
    ///
    /// # Panics
    ///
    /// If `redis-server` or `redis-cli` is not installed, or the cluster does not form
    /// within 30 s.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "palisade-redis-cluster-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|t| t.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).expect("cannot create the cluster's directory");
        let mut cluster = Self {
            dir,
            nodes: Vec::new(),
        };
        for _ in 0..PRIMARIES * 2 {
            let node = cluster.spawn_node();
            cluster.nodes.push(node);
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        create.args(cluster.nodes());
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let output = create
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli: {}", not_installed(e)));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.wait_healthy();
        cluster
    }

    /// Every node's address, `127.0.0.1:PORT`, primaries and replicas alike.
    pub fn nodes(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect()
    }

    /// The ports of the nodes that serve slots now, as a running node sees the cluster.
    pub fn primaries(&self) -> Vec<u16> {
        self.topology()
            .into_iter()
            .filter(|line| line.primary && !line.failed && line.has_slots)
            .map(|line| line.port)
            .collect()
    }

    /// The port of `primary`'s replica.
    ///
    /// # Panics
    ///
    /// If `primary` has no replica that is not failing.
    pub fn replica_of(&self, primary: u16) -> u16 {
        let topology = self.topology();
        let id = topology
            .iter()
            .find(|line| line.port == primary)
            .map(|line| line.id.clone())
            .unwrap_or_else(|| panic!("no node on port {primary}"));
        topology
            .iter()
            .find(|line| line.primary_id.as_deref() == Some(&id) && !line.failed)
            .map(|line| line.port)
            .unwrap_or_else(|| panic!("the node on port {primary} has no replica"))
    }

    /// Kills the node on `port` (`SIGKILL`) and waits for it to be gone.
    pub fn kill(&mut self, port: u16) {
        let node = self.node_mut(port);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node on `port` again, with its cluster configuration and without data;
    /// waits until it answers and, if another node took over its slots, until it has
    /// become that node's replica and caught up with it.
    pub fn restart(&mut self, port: u16) {
        self.kill(port);
        let args = self.node_args(port);
        let deadline = Instant::now() + SETTLE;
        let child = loop {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            match spawn(port, &args) {
                Ok(child) => break child,
                Err(failure) if Instant::now() >= deadline => {
                    panic!("redis-server did not restart on port {port}: {failure}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        self.node_mut(port).child = Some(child);
        // It comes back believing what it last knew; the others tell it what changed.
        self.wait_until(&format!("node {port} to rejoin"), |cluster| {
            let replication = cluster.cli(port, &["info", "replication"]);
            if replication.contains("role:slave") {
                replication.contains("master_link_status:up")
            } else {
                cluster
                    .topology_seen_by_others(port)
                    .iter()
                    .any(|line| line.port == port && line.primary && line.has_slots)
            }
        });
        self.wait_healthy();
    }

    /// Stops the node on `port` (`SIGSTOP`): it keeps its connections but answers nothing,
    /// as a node stuck in a long pause or behind a broken link does, until
    /// [`resume`](Self::resume).
    pub fn pause(&self, port: u16) {
        self.signal(port, "-STOP");
    }

    /// Lets a paused node run again (`SIGCONT`).
    pub fn resume(&self, port: u16) {
        self.signal(port, "-CONT");
    }

    /// Makes `replica` the primary of its primary's slots at once, without the agreement of
    /// its (possibly dead) primary (`CLUSTER FAILOVER TAKEOVER`), and waits until it serves
    /// them and every running node reports the cluster healthy.
    pub fn take_over(&self, replica: u16) {
        let answer = self.cli(replica, &["cluster", "failover", "takeover"]);
        assert!(
            answer.trim() == "OK",
            "CLUSTER FAILOVER TAKEOVER on {replica}: {answer}"
        );
        self.wait_until(
            &format!("node {replica} to serve as a primary"),
            |cluster| cluster.primaries().contains(&replica),
        );
        self.wait_healthy();
    }

    /// Waits until every running node reports `cluster_state:ok`, sees every slot served
    /// by a live primary, and sees each running node that serves no slots as a replica,
    /// and every replica's link to its primary is up (it has synchronised).
    pub fn wait_healthy(&self) {
        self.wait_until("the cluster to be healthy", |cluster| {
            let running = cluster.running().count();
            cluster.running().all(|port| {
                let info = cluster.cli(port, &["cluster", "info"]);
                let nodes = cluster.cli(port, &["cluster", "nodes"]);
                let lines: Vec<_> = nodes.lines().filter_map(TopologyLine::parse).collect();
                let live = |line: &&TopologyLine| !line.failed;
                let serving = lines
                    .iter()
                    .filter(live)
                    .filter(|line| line.primary && line.has_slots)
                    .count();
                let replicas = lines
                    .iter()
                    .filter(live)
                    .filter(|line| !line.primary)
                    .count();
                let replication = cluster.cli(port, &["info", "replication"]);
                let linked = !replication.contains("role:slave")
                    || replication.contains("master_link_status:up");
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && serving == PRIMARIES
                    && replicas == running - PRIMARIES
                    && linked
            })
        });
    }

    /// Runs `redis-cli -p PORT ARGS…` and returns what it printed.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli: {}", not_installed(e)));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn running(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes
            .iter()
            .filter(|node| node.child.is_some())
            .map(|node| node.port)
    }

    fn node_mut(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|node| node.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    fn signal(&self, port: u16, signal: &str) {
        let node = self
            .nodes
            .iter()
            .find(|node| node.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"));
        let child = node
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("the node on port {port} is not running"));
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill {signal} of node {port} failed");
    }

    /// The cluster as the first running node that answers sees it (`CLUSTER NODES`).
    fn topology(&self) -> Vec<TopologyLine> {
        self.topology_seen_by_others(0)
    }

    /// The cluster as the first running node other than `port` that answers sees it.
    fn topology_seen_by_others(&self, port: u16) -> Vec<TopologyLine> {
        for port in self.running().filter(|other| *other != port) {
            let nodes = self.cli(port, &["cluster", "nodes"]);
            let lines: Vec<_> = nodes.lines().filter_map(TopologyLine::parse).collect();
            if !lines.is_empty() {
                return lines;
            }
        }
        panic!("no running node answers CLUSTER NODES")
    }

    fn wait_until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + SETTLE;
        while !done(self) {
            assert!(Instant::now() < deadline, "gave up waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A new node on ports of its own (the node's and its cluster bus's, 10 000 above).
    fn spawn_node(&self) -> Node {
        let mut last_failure = String::new();
        for _ in 0..10 {
            let port = cluster_port();
            let args = self.node_args(port);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            match spawn(port, &args) {
                Ok(child) => {
                    return Node {
                        port,
                        child: Some(child),
                    };
                }
                Err(failure) => last_failure = failure,
            }
        }
        panic!("a cluster node did not start: {last_failure}")
    }

    fn node_args(&self, port: u16) -> Vec<String> {
        let config = self.dir.join(format!("nodes-{port}.conf"));
        vec![
            "--cluster-enabled".into(),
            "yes".into(),
            "--cluster-config-file".into(),
            config.display().to_string(),
            "--cluster-node-timeout".into(),
            NODE_TIMEOUT_MS.into(),
            "--cluster-require-full-coverage".into(),
            "no".into(),
            "--dir".into(),
            self.dir.display().to_string(),
        ]
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One line of `CLUSTER NODES`: `<id> <ip:port@bus> <flags> <primary id or -> …slots`.
#[derive(Debug)]
struct TopologyLine {
    id: String,
    port: u16,
    primary: bool,
    failed: bool,
    primary_id: Option<String>,
    has_slots: bool,
}

impl TopologyLine {
    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let address = fields.get(1)?;
        let port = address
            .split('@')
            .next()?
            .rsplit(':')
            .next()?
            .parse()
            .ok()?;
        let flags: Vec<&str> = fields.get(2)?.split(',').collect();
        let primary_id = fields
            .get(3)
            .filter(|id| **id != "-")
            .map(|id| id.to_string());
        Some(Self {
            id: fields.first()?.to_string(),
            port,
            primary: flags.contains(&"master"),
            failed: flags.contains(&"fail") || flags.contains(&"fail?"),
            primary_id,
            has_slots: fields.len() > 8,
        })
    }
}

/// A free port whose cluster bus port (10 000 above) is free too.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        let Some(bus) = port.checked_add(10_000) else {
            continue;
        };
        if TcpListener::bind((Ipv4Addr::LOCALHOST, bus)).is_ok() {
            return port;
        }
    }
}

fn not_installed(error: std::io::Error) -> String {
    if error.kind() == ErrorKind::NotFound {
        "redis-cli is not installed: `apt-get install redis-server` (the tests need a real \
         Redis Cluster)"
            .to_owned()
    } else {
        error.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_lines_parse() {
        let primary = TopologyLine::parse(
            "07c3 127.0.0.1:30004@40004 myself,master - 0 1426238317239 4 connected 0-5460",
        )
        .unwrap();
        assert_eq!(primary.port, 30004);
        assert!(primary.primary && primary.has_slots && !primary.failed);
        let replica = TopologyLine::parse(
            "6ec2 127.0.0.1:30005@40005 slave 07c3 0 1426238316232 5 connected",
        )
        .unwrap();
        assert_eq!(replica.primary_id.as_deref(), Some("07c3"));
        assert!(!replica.primary && !replica.has_slots);
        let failed = TopologyLine::parse(
            "07c3 127.0.0.1:30004@40004 master,fail - 0 1426238317239 4 connected",
        )
        .unwrap();
        assert!(failed.failed);
        assert!(TopologyLine::parse("").is_none());
    }

    #[test]
    fn a_cluster_forms_and_fails_over() {
        let mut cluster = RedisCluster::start();
        let primaries = cluster.primaries();
        assert_eq!(primaries.len(), PRIMARIES);
        let victim = primaries[0];
        let replica = cluster.replica_of(victim);
        cluster.kill(victim);
        cluster.take_over(replica);
        assert!(cluster.primaries().contains(&replica));
        cluster.restart(victim);
        assert_eq!(cluster.replica_of(replica), victim);
    }
}
