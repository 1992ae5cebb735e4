//! Budgets: a property test of [`PercentBudget`] against a reference model, and retries
//! under concurrency that never exceed the budget.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use palisade_retry::budget::{Budget, BudgetConfig, PercentBudget};
use palisade_retry::{RetryConfig, RetryLayer};
use proptest::prelude::*;
use tower::{Layer, ServiceExt, service_fn};

#[derive(Debug, Clone)]
enum Op {
    Deposit(u32),
    Withdraw,
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u32..50).prop_map(Op::Deposit),
        4 => Just(Op::Withdraw),
        1 => (1u64..4_000).prop_map(Op::Advance),
    ]
}

/// The budget as documented: over the last ten tenths of `ttl` (the current tenth included),
/// retries may be at most `min_per_sec × ttl + percent × requests`; a request is counted in
/// the tenth the clock was last read in, and the clock is read after every 16th request
/// counted in a tenth (the first, the 17th, …) and at every retry.
struct Model {
    ttl_ms: u64,
    reserve: u64,
    percent: f64,
    /// (tenth of ttl it was counted in, is a retry)
    events: Vec<(u64, bool)>,
    /// Requests counted in each tenth.
    requests: HashMap<u64, u64>,
    seen_tenth: u64,
}

impl Model {
    fn deposit(&mut self, now_ms: u64) {
        let counted = self.requests.entry(self.seen_tenth).or_default();
        let look = counted.is_multiple_of(16);
        *counted += 1;
        self.events.push((self.seen_tenth, false));
        if look {
            self.seen_tenth = self.seen_tenth.max(self.tenth(now_ms));
        }
    }

    fn tenth(&self, now_ms: u64) -> u64 {
        now_ms / (self.ttl_ms / 10)
    }

    fn in_window(&self, now_ms: u64) -> (u64, u64) {
        let current = self.tenth(now_ms);
        let live = |t: u64| t + 10 > current;
        let requests = self.events.iter().filter(|(t, r)| live(*t) && !r).count();
        let retries = self.events.iter().filter(|(t, r)| live(*t) && *r).count();
        (requests as u64, retries as u64)
    }

    fn withdraw(&mut self, now_ms: u64) -> bool {
        self.seen_tenth = self.seen_tenth.max(self.tenth(now_ms));
        let (requests, retries) = self.in_window(now_ms);
        let allowed = self.reserve + (self.percent * requests as f64) as u64;
        let ok = retries < allowed;
        if ok {
            self.events.push((self.tenth(now_ms), true));
        }
        ok
    }
}

fn run(ttl_secs: u64, min_per_sec: u32, percent: f64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let budget =
            PercentBudget::new(Duration::from_secs(ttl_secs), min_per_sec, percent).unwrap();
        let mut model = Model {
            ttl_ms: ttl_secs * 1000,
            reserve: u64::from(min_per_sec) * ttl_secs,
            percent,
            events: Vec::new(),
            requests: HashMap::new(),
            seen_tenth: 0,
        };
        let start = tokio::time::Instant::now();
        let now_ms = || u64::try_from(start.elapsed().as_millis()).unwrap();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Deposit(n) => {
                    for _ in 0..n {
                        budget.deposit();
                        model.deposit(now_ms());
                    }
                }
                Op::Withdraw => {
                    let expected = model.withdraw(now_ms());
                    prop_assert_eq!(budget.withdraw(), expected, "step {}", step);
                }
                Op::Advance(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
            }
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_percent_budget_agrees_with_the_model(
        ttl_secs in 1u64..20,
        min_per_sec in 0u32..3,
        percent in prop::sample::select(vec![0.0, 0.005, 0.1, 0.2, 0.5, 1.0, 2.5]),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        run(ttl_secs, min_per_sec, percent, ops)?;
    }
}

#[test]
fn concurrent_withdrawals_never_overdraw() {
    let budget = Arc::new(PercentBudget::new(Duration::from_secs(60), 0, 0.1).unwrap());
    for _ in 0..1000 {
        budget.deposit();
    }
    let granted = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..500 {
                    if budget.withdraw() {
                        granted.fetch_add(1, SeqCst);
                    }
                }
            });
        }
    });
    let granted = granted.into_inner();
    assert!(
        granted <= 100,
        "{granted} retries granted for a budget of 100"
    );
    assert!(granted >= 90, "only {granted} of 100 granted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_from_many_tasks_stay_within_the_budget() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let failing = service_fn(move |_: ()| {
        counter.fetch_add(1, SeqCst);
        async { Err::<(), _>(std::io::Error::other("down")) }
    });
    // 10 % of requests, no floor; five attempts each if the budget allowed it.
    let budget = BudgetConfig::Percent {
        ttl: Duration::from_secs(60),
        min_per_sec: 0,
        percent: 0.1,
    };
    let config = RetryConfig::builder("test")
        .max_attempts(5)
        .budget(budget)
        .backoff(palisade_retry::backoff::Backoff::exponential(
            Duration::from_micros(1),
            Duration::from_micros(10),
        ))
        .build()
        .unwrap();
    let layer = RetryLayer::with_config(config);
    let tasks: Vec<_> = (0..400)
        .map(|_| {
            let svc = layer.layer(failing.clone());
            tokio::spawn(async move { svc.oneshot(()).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap_err();
    }
    let calls = calls.load(SeqCst);
    assert!(
        calls <= 400 + 40,
        "{calls} calls for 400 requests and a budget of 40 retries"
    );
}
