//! The soak: the demo's load and faults for a long while (`--soak 600` for ten minutes),
//! watching what a long run reveals and a short one hides — memory that creeps, a panic
//! somewhere, an order created twice, failures while a backend was healthy.
//!
//! Resident memory is sampled every second from `/proc/self/status` (Linux; elsewhere it
//! is reported as unavailable). The in-memory idempotency stores grow until they hold as
//! many records as their bound allows, and time-windowed state (the metrics' summaries)
//! fills over a minute, so growth is measured from the end of a warm-up: a minute after
//! every store is full — or a fifth of the way through the run, if they are not full by
//! then (a short run, or a slow one).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use palisade::idempotency::store::MemoryStore;
use tokio::time::Instant;

/// Panics anywhere in the process, counted by a hook that then does what the default does.
static PANICS: AtomicU64 = AtomicU64::new(0);

/// How long after the stores are full the warm-up lasts: time-windowed state fills.
const SETTLING: Duration = Duration::from_secs(60);

/// Resident memory over the run.
pub(crate) struct Soak {
    samples: Arc<std::sync::Mutex<Samples>>,
    sampler: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Samples {
    start: Option<u64>,
    /// When the warm-up ended, and memory then.
    after_warm_up: Option<(Duration, u64)>,
    /// When every store first held as many records as it keeps.
    stores_full: Option<Duration>,
    peak: u64,
    last: Option<u64>,
    /// A sample at the end of every minute, in KiB.
    by_minute: Vec<u64>,
}

impl Soak {
    /// Counts panics from now on, and samples memory every second for a run of `duration`
    /// whose in-memory idempotency records are in `stores`.
    pub(crate) fn start(duration: Duration, stores: Vec<Arc<MemoryStore>>) -> Self {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Relaxed);
            default_hook(info);
        }));
        let samples = Arc::new(std::sync::Mutex::new(Samples {
            start: resident_kib(),
            ..Samples::default()
        }));
        let shared = samples.clone();
        let sampler = tokio::spawn(async move {
            let started = Instant::now();
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticks.tick().await;
                let Some(now) = resident_kib() else { return };
                let mut samples = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let elapsed = started.elapsed();
                samples.peak = samples.peak.max(now);
                samples.last = Some(now);
                if elapsed >= Duration::from_secs(60) * (samples.by_minute.len() as u32 + 1) {
                    samples.by_minute.push(now);
                }
                if samples.stores_full.is_none()
                    && stores.iter().all(|s| s.len() * 100 >= s.capacity() * 99)
                {
                    samples.stores_full = Some(elapsed);
                }
                let warm_up = samples
                    .stores_full
                    .map_or(duration / 5, |full| full + SETTLING);
                if samples.after_warm_up.is_none() && elapsed >= warm_up {
                    samples.after_warm_up = Some((elapsed, now));
                }
            }
        });
        Self { samples, sampler }
    }

    /// The soak's rows for the summary.
    pub(crate) fn rows(self, sent: u64, unsuccessful: u64) -> Vec<(&'static str, String)> {
        self.sampler.abort();
        let samples = self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mib = |kib: Option<u64>| {
            kib.map_or_else(
                || "unavailable".to_owned(),
                |k| format!("{:.1} MiB", k as f64 / 1024.0),
            )
        };
        let growth = match (samples.after_warm_up, samples.last) {
            (Some((_, warm)), Some(end)) if warm > 0 => {
                let growth = 100.0 * (end as f64 / warm as f64 - 1.0);
                format!(
                    "{growth:+.1} % ({})",
                    if growth <= 10.0 {
                        "within the 10 % aim"
                    } else {
                        "over the 10 % aim"
                    }
                )
            }
            _ => "unavailable (the run was shorter than its warm-up)".to_owned(),
        };
        let panics = PANICS.load(Relaxed);
        vec![
            (
                "soak: resident memory",
                format!(
                    "start {} · after the warm-up ({}) {} · end {} · peak {}",
                    mib(samples.start),
                    warm_up(&samples),
                    mib(samples.after_warm_up.map(|(_, kib)| kib)),
                    mib(samples.last),
                    mib(Some(samples.peak).filter(|&p| p > 0)),
                ),
            ),
            ("soak: memory growth after warm-up", growth),
            (
                "soak: resident memory by minute",
                if samples.by_minute.is_empty() {
                    "(a run under a minute)".to_owned()
                } else {
                    samples
                        .by_minute
                        .iter()
                        .map(|k| format!("{:.0}", *k as f64 / 1024.0))
                        .collect::<Vec<_>>()
                        .join(" · ")
                        + " MiB"
                },
            ),
            (
                "soak: panics",
                if panics == 0 {
                    "none".to_owned()
                } else {
                    panics.to_string()
                },
            ),
            (
                "soak: failed while a backend was healthy",
                // The healthy backend never fails: every failure happened while it was up.
                format!(
                    "{:.3} % ({unsuccessful} of {sent} requests not served)",
                    100.0 * unsuccessful as f64 / sent.max(1) as f64
                ),
            ),
        ]
    }
}

/// When the warm-up ended, and why then.
fn warm_up(samples: &Samples) -> String {
    match (samples.after_warm_up, samples.stores_full) {
        (Some((at, _)), Some(full)) => format!(
            "{} s: the stores were full at {} s, plus a minute",
            at.as_secs(),
            full.as_secs()
        ),
        (Some((at, _)), None) => format!("{} s: a fifth of the run", at.as_secs()),
        (None, _) => "not reached".to_owned(),
    }
}

/// This process's resident memory, in KiB (`VmRSS`), where the system says.
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
