//! End-to-end: a real load tool, wrk, against two real axum servers in their own processes —
//! a bare hello-world, and the same app behind palisade's full server stack (shed →
//! idempotency → breaker, with a Prometheus recorder taking every metric) — in the same
//! run, alternating, so that both meet the same machine.
//!
//! ```text
//! cargo run --release -p palisade-e2e -- [--duration SECS] [--rounds N]
//!     [--connections N] [--workload get|post|both] [--json FILE]
//! ```
//!
//! Two workloads: `GET /` (hello world; the idempotency layer lets reads through), and
//! `POST /orders` with a fresh `Idempotency-Key` on every request, which the full stack
//! claims, stores and completes in its in-memory store. Each round runs both servers once
//! per workload, in alternating order; the figures are the rounds' medians. With `taskset`
//! on the machine the servers run on CPU 0 and wrk on CPU 1, so neither steals from the
//! other.
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
        workloads: vec![Workload::Get, Workload::Post],
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
                    Some("both") => vec![Workload::Get, Workload::Post],
                    _ => return Err("--workload takes get, post or both".into()),
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
                "usage: e2e [--duration SECS] [--rounds N] [--connections N] [--workload get|post|both] [--json FILE]"
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
    let bare = Server::start(Variant::Bare)?;
    let full = Server::start(Variant::Full)?;
    println!(
        "wrk, 1 thread, {} connections, {} s per run, {} rounds{}",
        args.connections,
        args.duration.as_secs(),
        args.rounds,
        if server::pinned() {
            "; servers on CPU 0, wrk on CPU 1"
        } else {
            ""
        }
    );

    let mut report = Vec::new();
    for &workload in &args.workloads {
        // Warm both up: connections, allocator, the shedder's limit.
        for server in [&bare, &full] {
            wrk::run(
                server.addr(),
                workload,
                args.connections,
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
                let result = wrk::run(server.addr(), workload, args.connections, args.duration)?;
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
        println!(
            "{}: bare {} · full stack {} → throughput {throughput:.2}×, p99 {p99:.2}×\n",
            workload.name(),
            bare_median,
            full_median
        );
        report.push(json!({
            "workload": workload.name(),
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
