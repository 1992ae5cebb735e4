//! Running wrk and reading what it prints.

use std::fmt;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::server::on_cpu;

/// What the load is made of.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Workload {
    /// `GET /`: hello world.
    Get,
    /// `POST /orders` with a JSON body and a fresh `Idempotency-Key` each time.
    Post,
    /// The same POST to `/orders-io`, whose handler awaits 5 ms of I/O (a call to another
    /// service), after a light warm-up, with the servers and wrk sharing the cores.
    PostIo,
    /// The same POST to `/orders-pg`, whose handler inserts the order into PostgreSQL: in
    /// its own transaction (bare, tower), or in the keyed transaction that palisade's
    /// `PostgresStore` commits with the idempotency record. Servers, wrk and PostgreSQL
    /// share the cores.
    PostPostgres,
}

/// wrk's script for [`Workload::Post`]: a key no request has used, per request.
const POST_SCRIPT: &str = r#"
math.randomseed(os.time())
local run = math.random(1, 1000000000)
local n = 0
wrk.method = "POST"
wrk.body = '{"item":"book","qty":1}'
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, PATH, { ["Idempotency-Key"] = '"' .. run .. "-" .. n .. '"' })
end
"#;

impl Workload {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::PostIo => "POST-io",
            Self::PostPostgres => "POST-postgres",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Self::Get => "/",
            Self::Post => "/orders",
            Self::PostIo => "/orders-io",
            Self::PostPostgres => "/orders-pg",
        }
    }

    /// Whether the servers and wrk run on a CPU each. `POST-io` shares them, as a user's
    /// test on a small machine does: the contention is part of what it measures.
    pub(crate) fn pinned(self) -> bool {
        !matches!(self, Self::PostIo | Self::PostPostgres)
    }

    /// The warm-up before the measured rounds: `POST-io` warms with light traffic (one
    /// connection), so that the shedder learns the unloaded latency first.
    pub(crate) fn warm_up_connections(self, connections: usize) -> usize {
        match self {
            Self::PostIo => 1,
            _ => connections,
        }
    }

    /// The connections of the measured runs: `POST-io` and `POST-postgres` always use 32.
    pub(crate) fn connections(self, asked: usize) -> usize {
        match self {
            Self::PostIo | Self::PostPostgres => 32,
            _ => asked,
        }
    }
}

/// One wrk run's figures.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    /// Requests answered in the run.
    pub(crate) requests: u64,
    pub(crate) requests_per_second: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    /// Answers other than 2xx and 3xx (a shedder's refusals would show here).
    pub(crate) non_success: u64,
    /// Connection errors, reads, writes and timeouts.
    pub(crate) socket_errors: u64,
    /// The server process's CPU time (user and system) per answered request, where the
    /// machine tells it (`/proc`): what the stack costs, apart from how busy the machine was.
    pub(crate) cpu_per_request: Option<Duration>,
}

impl Run {
    /// Each figure's median over `runs` (each taken on its own), and their errors summed.
    pub(crate) fn median(runs: &[Run]) -> Run {
        let middle = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        Run {
            requests: runs.iter().map(|r| r.requests).sum(),
            requests_per_second: middle(runs.iter().map(|r| r.requests_per_second).collect()),
            p50: Duration::from_secs_f64(middle(
                runs.iter().map(|r| r.p50.as_secs_f64()).collect(),
            )),
            p99: Duration::from_secs_f64(middle(
                runs.iter().map(|r| r.p99.as_secs_f64()).collect(),
            )),
            non_success: runs.iter().map(|r| r.non_success).sum(),
            socket_errors: runs.iter().map(|r| r.socket_errors).sum(),
            cpu_per_request: runs
                .iter()
                .map(|r| r.cpu_per_request.map(|d| d.as_secs_f64()))
                .collect::<Option<Vec<_>>>()
                .filter(|cpu| !cpu.is_empty())
                .map(|cpu| Duration::from_secs_f64(middle(cpu))),
        }
    }

    /// The share of answers that were not 2xx or 3xx (a shedder's refusals).
    pub(crate) fn refused_share(&self) -> f64 {
        self.non_success as f64 / self.requests.max(1) as f64
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "requests_per_second": self.requests_per_second.round(),
            "p50_ms": self.p50.as_secs_f64() * 1e3,
            "p99_ms": self.p99.as_secs_f64() * 1e3,
            "non_success": self.non_success,
            "socket_errors": self.socket_errors,
            "cpu_us_per_request": self.cpu_per_request.map(|d| d.as_secs_f64() * 1e6),
        })
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            self.requests_per_second,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3
        )?;
        if let Some(cpu) = self.cpu_per_request {
            write!(f, ", {:.1} µs CPU/req", cpu.as_secs_f64() * 1e6)?;
        }
        if self.non_success + self.socket_errors > 0 {
            write!(
                f,
                " ({} non-2xx, {} socket errors)",
                self.non_success, self.socket_errors
            )?;
        }
        Ok(())
    }
}

/// Fails with the way to install wrk when it is missing.
pub(crate) fn check_installed() -> Result<(), String> {
    match std::process::Command::new("wrk").arg("-v").output() {
        Ok(_) => Ok(()),
        Err(_) => Err(
            "wrk is not installed: `apt-get install wrk` on Debian and Ubuntu, `brew install wrk` on macOS".into(),
        ),
    }
}

/// Runs wrk against `addr` for `duration`.
pub(crate) fn run(
    addr: SocketAddr,
    workload: Workload,
    connections: usize,
    duration: Duration,
) -> Result<Run, String> {
    let mut command = if workload.pinned() {
        on_cpu(1, "wrk")
    } else {
        std::process::Command::new("wrk")
    };
    command
        .args(["-t1", "--latency"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let script;
    if !matches!(workload, Workload::Get) {
        script = std::env::temp_dir().join(format!("palisade-e2e-{}.lua", std::process::id()));
        let text = format!("PATH = {:?}\n{POST_SCRIPT}", workload.path());
        std::fs::write(&script, text).map_err(|e| format!("the wrk script: {e}"))?;
        command.arg("-s").arg(&script);
    }
    let url = format!("http://{addr}{}", workload.path());
    let output = command
        .arg(url)
        .output()
        .map_err(|e| format!("running wrk: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "wrk failed: {}{}",
            text,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    parse(&text).ok_or_else(|| format!("could not read wrk's output:\n{text}"))
}

/// Reads requests per second, p50 and p99, and errors from wrk's `--latency` output.
fn parse(text: &str) -> Option<Run> {
    let mut run = Run {
        requests: 0,
        requests_per_second: f64::NAN,
        p50: Duration::ZERO,
        p99: Duration::ZERO,
        non_success: 0,
        socket_errors: 0,
        cpu_per_request: None,
    };
    let (mut p50, mut p99) = (None, None);
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("Requests/sec:") => run.requests_per_second = words.next()?.parse().ok()?,
            Some("50%") => p50 = Some(duration(words.next()?)?),
            Some("99%") => p99 = Some(duration(words.next()?)?),
            Some("Non-2xx") => run.non_success = line.rsplit(' ').next()?.parse().ok()?,
            // "778123 requests in 10.00s, 96.48MB read"
            Some(n) if line.contains(" requests in ") => run.requests = n.parse().ok()?,
            Some("Socket") => {
                // "Socket errors: connect 0, read 0, write 0, timeout 0"
                run.socket_errors = line
                    .split(',')
                    .filter_map(|part| part.rsplit(' ').next()?.parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    run.p50 = p50?;
    run.p99 = p99?;
    run.requests_per_second.is_finite().then_some(run)
}

/// A wrk duration: `812.00us`, `1.25ms`, `2.00s`, `1.50m`.
fn duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 10s test @ http://127.0.0.1:40000/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.35us  301.20us  12.31ms   90.12%
    Req/Sec    78.21k     3.11k   82.00k    71.00%
  Latency Distribution
     50%  758.00us
     75%    0.91ms
     90%    1.10ms
     99%    2.01ms
  778123 requests in 10.00s, 96.48MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 17
Requests/sec:  77812.30
Transfer/sec:      9.65MB
";

    #[test]
    fn reads_wrk_output() {
        let run = parse(OUTPUT).unwrap();
        assert_eq!(run.requests, 778123);
        assert_eq!(run.requests_per_second, 77812.30);
        assert_eq!(run.p50, Duration::from_micros(758));
        assert_eq!(run.p99, Duration::from_micros(2010));
        assert_eq!(run.non_success, 17);
        assert_eq!(run.socket_errors, 3);
    }

    #[test]
    fn output_without_figures_is_not_read() {
        assert!(parse("Running 10s test\n").is_none());
        assert_eq!(duration("1.5m"), Some(Duration::from_secs(90)));
        assert_eq!(duration("12parsecs"), None);
    }
}
