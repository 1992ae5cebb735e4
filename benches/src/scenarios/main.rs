//! Deterministic simulations, in tokio's paused clock, of the situations palisade's layers
//! exist for. Each runs palisade beside the alternative a user would otherwise pick.
//!
//! ```text
//! cargo run --release -p palisade-benches --bin scenarios -- <scenario> [--json FILE] [--plot DIR]
//! ```
//!
//! Scenarios: `balance-slow`, `balance-blackhole`, `balance-slow-timeout`, `breaker-outage`,
//! `idempotency-duplicates`, `retry-outage`,
//! `retry-transient`, `shed-overload`, `shed-capacity-drop`, `shed-priority`,
//! `shed-noisy-healthy`, `stack-fast-failing-replica`, `hedge-tail`, `hedge-overload`, `deadline-chain`,
//! `ratelimit-fleet`, `cold-endpoint`, `rolling-restart`.
#![allow(clippy::print_stdout)]

mod balance;
mod breaker_outage;
mod cold;
mod deadline;
mod hedge;
mod idempotency;
mod plot;
mod ratelimit;
mod report;
mod retry;
mod rolling;
mod server;
mod shed;
mod stack;

use std::path::PathBuf;
use std::process::ExitCode;

const SCENARIOS: &[&str] = &[
    "balance-slow",
    "balance-blackhole",
    "breaker-outage",
    "idempotency-duplicates",
    "retry-outage",
    "retry-transient",
    "shed-overload",
    "shed-capacity-drop",
    "shed-priority",
    "shed-noisy-healthy",
    "stack-fast-failing-replica",
    "balance-slow-timeout",
    "hedge-tail",
    "hedge-overload",
    "deadline-chain",
    "ratelimit-fleet",
    "cold-endpoint",
    "rolling-restart",
];

struct Args {
    scenario: String,
    json: Option<PathBuf>,
    plot: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut scenario = None;
    let (mut json, mut plot) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = Some(args.next().ok_or("--json needs a file")?.into()),
            "--plot" => plot = Some(args.next().ok_or("--plot needs a directory")?.into()),
            "-h" | "--help" => return Err(String::new()),
            other if scenario.is_none() && !other.starts_with('-') => {
                scenario = Some(other.to_owned())
            }
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    let scenario = scenario.ok_or("which scenario?")?;
    if !SCENARIOS.contains(&scenario.as_str()) {
        return Err(format!("unknown scenario `{scenario}`"));
    }
    Ok(Args {
        scenario,
        json,
        plot,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            eprintln!(
                "usage: scenarios <{}> [--json FILE] [--plot DIR]",
                SCENARIOS.join("|")
            );
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let report = match args.scenario.as_str() {
        "balance-slow" => runtime.block_on(balance::slow()),
        "balance-blackhole" => runtime.block_on(balance::blackhole()),
        "breaker-outage" => runtime.block_on(breaker_outage::run()),
        "idempotency-duplicates" => runtime.block_on(idempotency::duplicates()),
        "retry-outage" => runtime.block_on(retry::outage()),
        "retry-transient" => runtime.block_on(retry::transient()),
        "shed-overload" => runtime.block_on(shed::overload()),
        "shed-capacity-drop" => runtime.block_on(shed::capacity_drop()),
        "shed-priority" => runtime.block_on(shed::priority()),
        "shed-noisy-healthy" => runtime.block_on(shed::noisy_healthy()),
        "stack-fast-failing-replica" => runtime.block_on(stack::fast_failing_replica()),
        "balance-slow-timeout" => runtime.block_on(stack::slow_timeout()),
        "hedge-tail" => runtime.block_on(hedge::tail()),
        "hedge-overload" => runtime.block_on(hedge::overload()),
        "deadline-chain" => runtime.block_on(deadline::chain_scenario()),
        "ratelimit-fleet" => runtime.block_on(ratelimit::fleet()),
        "cold-endpoint" => runtime.block_on(cold::cold_endpoint()),
        "rolling-restart" => runtime.block_on(rolling::rolling_restart()),
        _ => unreachable!("checked in parse_args"),
    };
    println!("{}", report.table());
    if let Some(path) = &args.json {
        if let Err(e) = std::fs::write(path, report.json()) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    if let Some(dir) = &args.plot {
        match report.plot(dir) {
            Ok(files) => files.iter().for_each(|f| println!("wrote {}", f.display())),
            Err(e) => {
                eprintln!("error: cannot plot into {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
