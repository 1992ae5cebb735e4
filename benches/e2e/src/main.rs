//! End-to-end: a real load tool, wrk, against three real axum servers in their own
//! processes — a bare hello-world; the same app behind palisade's full server stack (shed →
//! idempotency → breaker, with a Prometheus recorder taking every metric); and the same app
//! behind the same protective stack assembled from what a user would pick instead (tower's
//! load shedding over tower-resilience's adaptive limiter and circuit breaker, axum's
//! `HandleErrorLayer`, the same recorder; nothing in that ecosystem does idempotency) — in
//! the same run, in rotating order, so that all three meet the same machine.
//!
//! ```text
//! cargo run --release -p palisade-e2e -- [--duration SECS] [--rounds N]
//!     [--connections N] [--workload get|post|post-io|post-postgres|all]
//!     [--postgres-claim at-commit|before] [--json FILE]
//! ```
//!
//! Four workloads: `GET /` (hello world; the idempotency layer lets reads through),
//! `POST /orders` with a fresh `Idempotency-Key` on every request, which the full stack
//! claims, stores and completes in its in-memory store; `POST-io`: the same POST to a
//! handler that awaits 5 ms of I/O, warmed by light traffic (one connection for 2 s), then
//! 32 connections with the servers and wrk sharing the cores — the shape in which the
//! shedder's old defaults refused a healthy server's traffic; its `refused_share` is the
//! full stack's answers that were not 2xx; and `POST-postgres`: the keyed POST to a handler
//! that inserts the order into PostgreSQL (`E2E_POSTGRES_URL`, by default the local `test`
//! database, in a schema made for the run) — in its own transaction on the bare and tower
//! servers, in the keyed transaction that palisade's `PostgresStore` commits with the
//! idempotency record on the full one (claiming at commit, since the handler does all its
//! work in that transaction; `--postgres-claim before` measures the store's default);
//! 32 connections, servers, wrk and PostgreSQL sharing the cores. Each round runs every server once per workload,
//! the first of one round going last in the next; the figures are the rounds' medians. With
//! `taskset` on the machine the servers of `GET` and `POST` run on CPU 0 and wrk on CPU 1,
//! so neither steals from the other.
//!
//! With `E2E_FULL_WITHOUT_LIMIT=1` in the environment the full stack runs without its rate
//! limit (and without axum's `ConnectInfo`, which only the limit reads): the two runs'
//! `full ÷ bare` differ by what the limit costs.
//!
//! Each run also reads its server's CPU time (user and system, `/proc/PID/stat`) before and
//! after, and reports it per answered request: what a stack costs, apart from how busy the
//! machine was.
//!
//! Two comparisons per workload: `throughput_ratio` and `p99_ratio`, full ÷ bare — what
//! palisade costs — and `tower_throughput_ratio` and `tower_p99_ratio`, full ÷ tower — what
//! choosing palisade over the tower-assembled stack gains (above 1 in throughput, below 1
//! in p99, is a gain). Both stacks are configured to refuse nothing under this healthy
//! load; `refused_share` and `tower_refused_share` show whether they did. Without
//! idempotency the tower stack does less work on `POST`, so there the tower ratio errs in
//! its favour.
#![allow(clippy::print_stdout)]

mod postgres;
mod server;
mod tower_stack;
mod wrk;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;

use crate::server::{Server, Variant};
use crate::wrk::{Run, Workload};

const USAGE: &str = "\
usage: e2e [--duration SECS] [--rounds N] [--connections N] [--workload get|post|post-io|post-postgres|all]
           [--postgres-claim at-commit|before] [--json FILE]
runs wrk against a bare axum server, the same app behind palisade's server stack (full),
and behind the same stack assembled from tower and tower-resilience (tower); reports
full ÷ bare and full ÷ tower";

struct Args {
    duration: Duration,
    rounds: usize,
    connections: usize,
    workloads: Vec<Workload>,
    json: Option<PathBuf>,
    /// How palisade's `PostgresStore` claims in `POST-postgres`: `at-commit` (the handler
    /// does all its work in the keyed transaction) or `before`, the store's default.
    postgres_claim: &'static str,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        duration: Duration::from_secs(10),
        rounds: 3,
        connections: 64,
        workloads: vec![
            Workload::Get,
            Workload::Post,
            Workload::PostIo,
            Workload::PostPostgres,
        ],
        json: None,
        postgres_claim: "at-commit",
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
            "--postgres-claim" => {
                parsed.postgres_claim = match args.next().as_deref() {
                    Some("at-commit") => "at-commit",
                    Some("before") => "before",
                    _ => return Err("--postgres-claim takes at-commit or before".into()),
                }
            }
            "--workload" => {
                parsed.workloads = match args.next().as_deref() {
                    Some("get") => vec![Workload::Get],
                    Some("post") => vec![Workload::Post],
                    Some("post-io") => vec![Workload::PostIo],
                    Some("post-postgres") => vec![Workload::PostPostgres],
                    Some("all") => vec![
                        Workload::Get,
                        Workload::Post,
                        Workload::PostIo,
                        Workload::PostPostgres,
                    ],
                    _ => {
                        return Err(
                            "--workload takes get, post, post-io, post-postgres or all".into()
                        );
                    }
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
    // The same binary is the server: `e2e serve bare|full|tower`.
    if args.peek().map(String::as_str) == Some("serve") {
        return server::serve(args.nth(1).as_deref());
    }
    let args = match parse_args(args) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!("{USAGE}");
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
    if !server::limited() {
        println!("the full stack without its rate limit (E2E_FULL_WITHOUT_LIMIT)");
    }

    let mut report = Vec::new();
    for &workload in &args.workloads {
        report.push(run_workload(args, workload)?);
    }
    if let Some(path) = &args.json {
        let document = json!({
            "tool": "wrk",
            "connections": args.connections,
            "duration_seconds": args.duration.as_secs(),
            "rounds": args.rounds,
            "pinned": server::pinned(),
            "postgres_claim": args.postgres_claim,
            "full_rate_limited": server::limited(),
            "workloads": report,
        });
        let text = serde_json::to_string_pretty(&document).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Runs one workload's warm-ups and rounds against fresh servers, prints its summary, and
/// returns its part of the report.
fn run_workload(args: &Args, workload: Workload) -> Result<serde_json::Value, String> {
    // Fresh servers for each workload: one's warm-up does not teach the next.
    let pin = workload.pinned() && server::pinned();
    // POST-postgres: a schema of its own for the run, dropped with `database`.
    let database = matches!(workload, Workload::PostPostgres)
        .then(postgres::Database::create)
        .transpose()?;
    let env: Vec<(&str, String)> = database
        .iter()
        .flat_map(|db| {
            [
                ("E2E_SCHEMA", db.schema.clone()),
                ("E2E_POSTGRES_URL", postgres::url()),
                ("E2E_POSTGRES_CLAIM", args.postgres_claim.to_owned()),
            ]
        })
        .collect();
    let servers = Variant::ALL
        .into_iter()
        .map(|variant| Server::start(variant, pin, &env))
        .collect::<Result<Vec<_>, _>>()?;
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
    // Warm them all up: connections, allocator, the shedders' limits.
    for server in &servers {
        wrk::run(
            server.addr(),
            workload,
            workload.warm_up_connections(connections),
            Duration::from_secs(2),
        )?;
    }
    // Each server's runs, in the order of `Variant::ALL`: bare, full, tower.
    let mut runs: [Vec<Run>; 3] = Default::default();
    for round in 0..args.rounds {
        // Rotate who goes first, so that none always meets a warmer (or a hotter) machine.
        for turn in 0..servers.len() {
            let index = (round + turn) % servers.len();
            let server = &servers[index];
            let before = server.cpu_time();
            let mut result = wrk::run(server.addr(), workload, connections, args.duration)?;
            result.cpu_per_request = before
                .zip(server.cpu_time())
                .filter(|_| result.requests > 0)
                .map(|(before, after)| {
                    after.saturating_sub(before).div_f64(result.requests as f64)
                });
            println!(
                "  {:<7} {:<5} {}",
                workload.name(),
                server.variant().name(),
                result
            );
            runs[index].push(result);
        }
    }
    let [bare, full, tower] = &runs.each_ref().map(|runs| Run::median(runs));
    let (throughput, p99) = ratios(full, bare);
    let (tower_throughput, tower_p99) = ratios(full, tower);
    let (refused, tower_refused) = (full.refused_share(), tower.refused_share());
    println!(
        "{}: bare {bare} · full stack {full} · tower stack {tower}\n  \
         full ÷ bare: throughput {throughput:.2}×, p99 {p99:.2}× · \
         full ÷ tower: throughput {tower_throughput:.2}×, p99 {tower_p99:.2}× · \
         refused {:.3} % (tower {:.3} %)\n",
        workload.name(),
        refused * 100.0,
        tower_refused * 100.0
    );
    let [bare_runs, full_runs, tower_runs] = runs
        .each_ref()
        .map(|runs| runs.iter().map(Run::to_json).collect::<Vec<_>>());
    Ok(json!({
        "workload": workload.name(),
        "connections": connections,
        "pinned": pin,
        "refused_share": refused,
        "tower_refused_share": tower_refused,
        "bare": bare.to_json(),
        "full": full.to_json(),
        "tower": tower.to_json(),
        "throughput_ratio": throughput,
        "p99_ratio": p99,
        "tower_throughput_ratio": tower_throughput,
        "tower_p99_ratio": tower_p99,
        "runs": { "bare": bare_runs, "full": full_runs, "tower": tower_runs },
    }))
}

/// `a ÷ b` in throughput and in p99 latency.
fn ratios(a: &Run, b: &Run) -> (f64, f64) {
    (
        a.requests_per_second / b.requests_per_second,
        a.p99.as_secs_f64() / b.p99.as_secs_f64(),
    )
}
