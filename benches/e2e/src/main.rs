//! End-to-end: a real load tool, wrk, against two real axum servers in their own processes —
//! a bare hello-world, and the same app behind palisade's full server stack (shed →
//! idempotency → breaker, with a Prometheus recorder taking every metric) — in the same
//! run, alternating, so that both meet the same machine.
//!
//! ```text
//! cargo run --release -p palisade-e2e -- [--duration SECS] [--rounds N]
//!     [--connections N] [--workload get|post|post-io|all] [--json FILE]
//! ```
//!
//! Three workloads: `GET /` (hello world; the idempotency layer lets reads through),
//! `POST /orders` with a fresh `Idempotency-Key` on every request, which the full stack
//! claims, stores and completes in its in-memory store, and `POST-io`: the same POST to a
//! handler that awaits 5 ms of I/O, warmed by light traffic (one connection for 2 s), then
//! 32 connections with the servers and wrk sharing the cores — the shape in which the
//! shedder's old defaults refused a healthy server's traffic; its `refused_share` is the
//! full stack's answers that were not 2xx. Each round runs both servers once per workload,
//! in alternating order; the figures are the rounds' medians. With `taskset` on the machine
//! the servers of `GET` and `POST` run on CPU 0 and wrk on CPU 1, so neither steals from
//! the other.
#![allow(clippy::print_stdout)]

mod server;
mod wrk;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;

use crate::server::{Server, Variant};
use crate::wrk::{Run, Workload};

struct Args {
    duration: Duration,
    rounds: usize,
    connections: usize,
    workloads: Vec<Workload>,
    json: Option<PathBuf>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        duration: Duration::from_secs(10),
        rounds: 3,
        connections: 64,
        workloads: vec![Workload::Get, Workload::Post, Workload::PostIo],
        json: None,
    };
    let number = |value: Option<String>, flag: &str| -> Result<u64, String> {
        value
            .ok_or(format!("{flag} needs a number"))?
            .parse()
            .map_err(|_| format!("{flag} needs a whole number"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--duration" => parsed.duration = Duration::from_secs(number(args.next(), &arg)?),
            "--rounds" => parsed.rounds = number(args.next(), &arg)? as usize,
            "--connections" => parsed.connections = number(args.next(), &arg)? as usize,
            "--json" => parsed.json = Some(args.next().ok_or("--json needs a file")?.into()),
            "--workload" => {
                parsed.workloads = match args.next().as_deref() {
                    Some("get") => vec![Workload::Get],
                    Some("post") => vec![Workload::Post],
                    Some("post-io") => vec![Workload::PostIo],
                    Some("all") => vec![Workload::Get, Workload::Post, Workload::PostIo],
                    _ => return Err("--workload takes get, post, post-io or all".into()),
                }
            }
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    if parsed.rounds == 0 || parsed.connections == 0 || parsed.duration.is_zero() {
        return Err("--rounds, --connections and --duration must be above zero".into());
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    // The same binary is the server: `e2e serve bare|full`.
    if args.peek().map(String::as_str) == Some("serve") {
        return server::serve(args.nth(1).as_deref());
    }
    let args = match parse_args(args) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!(
                "usage: e2e [--duration SECS] [--rounds N] [--connections N] [--workload get|post|post-io|all] [--json FILE]"
            );
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    wrk::check_installed()?;
    println!(
        "wrk, 1 thread, {} s per run, {} rounds",
        args.duration.as_secs(),
        args.rounds
    );

    let mut report = Vec::new();
    for &workload in &args.workloads {
        // Fresh servers for each workload: one's warm-up does not teach the next.
        let pin = workload.pinned() && server::pinned();
        let bare = Server::start(Variant::Bare, pin)?;
        let full = Server::start(Variant::Full, pin)?;
        let connections = workload.connections(args.connections);
        println!(
            "{}: {connections} connections{}",
            workload.name(),
            if pin {
                "; servers on CPU 0, wrk on CPU 1"
            } else {
                "; servers and wrk share the cores"
            }
        );
        // Warm both up: connections, allocator, the shedder's limit.
        for server in [&bare, &full] {
            wrk::run(
                server.addr(),
                workload,
                workload.warm_up_connections(connections),
                Duration::from_secs(2),
            )?;
        }
        let (mut bare_runs, mut full_runs) = (Vec::new(), Vec::new());
        for round in 0..args.rounds {
            // Alternate who goes first, so that neither always meets a warmer machine.
            let order = if round % 2 == 0 {
                [&bare, &full]
            } else {
                [&full, &bare]
            };
            for server in order {
                let result = wrk::run(server.addr(), workload, connections, args.duration)?;
                println!(
                    "  {:<5} {:<4} {}",
                    workload.name(),
                    server.variant().name(),
                    result
                );
                match server.variant() {
                    Variant::Bare => bare_runs.push(result),
                    Variant::Full => full_runs.push(result),
                }
            }
        }
        let (bare_median, full_median) = (Run::median(&bare_runs), Run::median(&full_runs));
        let throughput = full_median.requests_per_second / bare_median.requests_per_second;
        let p99 = full_median.p99.as_secs_f64() / bare_median.p99.as_secs_f64();
        let refused = full_median.refused_share();
        println!(
            "{}: bare {} · full stack {} → throughput {throughput:.2}×, p99 {p99:.2}×, refused {:.3} %\n",
            workload.name(),
            bare_median,
            full_median,
            refused * 100.0
        );
        report.push(json!({
            "workload": workload.name(),
            "connections": connections,
            "pinned": pin,
            "refused_share": refused,
            "bare": bare_median.to_json(),
            "full": full_median.to_json(),
            "throughput_ratio": throughput,
            "p99_ratio": p99,
            "runs": { "bare": bare_runs.iter().map(Run::to_json).collect::<Vec<_>>(),
                      "full": full_runs.iter().map(Run::to_json).collect::<Vec<_>>() },
        }));
    }
    if let Some(path) = &args.json {
        let document = json!({
            "tool": "wrk",
            "connections": args.connections,
            "duration_seconds": args.duration.as_secs(),
            "rounds": args.rounds,
            "pinned": server::pinned(),
            "workloads": report,
        });
        let text = serde_json::to_string_pretty(&document).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
