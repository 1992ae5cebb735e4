//! Discovery from etcd (feature `etcd`): the members a service's instances registered with
//! palisade-registry (or anything that writes the same records), listed and then watched.
//!
//! [`EtcdDiscover`] lists `<prefix>/<service>/` once, then watches it from the revision of
//! the list: every registration, change and expiry arrives as it happens, and after a
//! broken stream (etcd restarted, a network blip) the watch resumes from the last revision
//! it saw — no change missed, none seen twice. When etcd has compacted that revision away,
//! it lists again and diffs the fresh list against what it had. Members marked draining are
//! taken out at once: their instance is still serving what it has, and wants nothing new.
//!
//! **Self-preservation**, as Eureka's: when etcd cannot be reached, or answers nothing, the
//! last good set stays. And when more than half of the members vanish without having said
//! they were leaving (their leases expired together: a partition between them and etcd far
//! likelier than half a fleet dying at once), the vanished ones are kept — and the
//! balancer's ejection and panic mode, which see how they really answer, decide about them.
//! A member that vanishes so is taken out only after a second, so that leases expiring
//! together are judged together; members that vanished in the last 30 s count too. The kept
//! ones go once enough members are back or replaced that the missing are no longer more than
//! half of the fleet. Each such decision is logged and counted in
//! `palisade_balance_discovery_kept_total{source="etcd"}`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use palisade_balance::discover::{EtcdConfig, EtcdDiscover, EtcdEndpoint};
//! use palisade_balance::{Balance, BalanceConfig};
//!
//! let client = etcd_client::Client::connect(["http://127.0.0.1:2379"], None).await?;
//! let discover = EtcdDiscover::new("orders", client, EtcdConfig::default(), |e: &EtcdEndpoint| {
//!     format!("a client for {}", e.addr) // an HttpEndpoint, a tonic Channel...
//! });
//! # let _: Balance<_, ()> = Balance::with_config(discover, BalanceConfig::from("orders"));
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use etcd_client::{Client, GetOptions, KeyValue, WatchOptions};
use futures_core::Stream;
use palisade_core::ConfigError;
use palisade_registry::etcd::{DEFAULT_PREFIX, Member, service_prefix};
use pin_project_lite::pin_project;
use tokio::sync::watch;
use tokio::time::sleep_until;
use tower::discover::Change;

use super::Weighted;
use super::follow::{Followed, publish};

/// A member of the service, as a balancer's key: its id (its key's last segment), address,
/// weight and zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtcdEndpoint {
    /// The member's id among the service's.
    pub id: Arc<str>,
    /// Where it takes requests.
    pub addr: SocketAddr,
    /// Its weight.
    pub weight: u32,
    /// Its zone, if it said.
    pub zone: Option<Arc<str>>,
}

impl Weighted for EtcdEndpoint {
    fn weight(&self) -> u32 {
        self.weight
    }
}

impl EtcdEndpoint {
    fn new(id: &str, member: &Member) -> Self {
        Self {
            id: Arc::from(id),
            addr: member.addr,
            weight: member.weight,
            zone: member.zone.as_deref().map(Arc::from),
        }
    }
}

/// Where to look in etcd and how to ride out its failures.
///
/// | setting | default | from |
/// |---|---|---|
/// | [`prefix`](EtcdConfigBuilder::prefix) | `/palisade/services` | palisade-registry's |
/// | [`max_vanished_share`](EtcdConfigBuilder::max_vanished_share) | 0.5 | Eureka's self-preservation threshold (85 % renewals) is of the same kind |
/// | [`retry`](EtcdConfigBuilder::retry) | 1 s, doubling to 30 s | |
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    prefix: Arc<str>,
    max_vanished_share: f64,
    retry: Duration,
    max_retry: Duration,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            prefix: Arc::from(DEFAULT_PREFIX),
            max_vanished_share: 0.5,
            retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(30),
        }
    }
}

impl EtcdConfig {
    /// A builder that starts from the defaults.
    pub fn builder() -> EtcdConfigBuilder {
        EtcdConfigBuilder {
            config: Self::default(),
        }
    }
}

/// Builds an [`EtcdConfig`], validated on [`build`](Self::build).
#[derive(Debug, Clone)]
pub struct EtcdConfigBuilder {
    config: EtcdConfig,
}

impl EtcdConfigBuilder {
    /// The prefix the services are registered under.
    pub fn prefix(mut self, prefix: impl Into<Arc<str>>) -> Self {
        self.config.prefix = prefix.into();
        self
    }

    /// The largest share of the members that may vanish (without having said they were
    /// draining) and be believed gone; beyond it they are kept (self-preservation). `1.0`
    /// believes every expiry.
    pub fn max_vanished_share(mut self, share: f64) -> Self {
        self.config.max_vanished_share = share;
        self
    }

    /// The first wait after a failed list or a broken watch, doubling up to `max`.
    pub fn retry(mut self, first: Duration, max: Duration) -> Self {
        self.config.retry = first;
        self.config.max_retry = max;
        self
    }

    /// Checks every setting and returns the configuration, or the first bad setting.
    pub fn build(self) -> Result<EtcdConfig, ConfigError> {
        let c = &self.config;
        if !(0.0..=1.0).contains(&c.max_vanished_share) {
            return Err(ConfigError::new(
                "max_vanished_share",
                "must be a share within 0 and 1",
            ));
        }
        if c.retry.is_zero() || c.max_retry < c.retry {
            return Err(ConfigError::new(
                "retry",
                "the first wait must be above zero, and at most the longest",
            ));
        }
        Ok(self.config)
    }
}

pin_project! {
    /// The members of a service registered in etcd, as tower `Change`s; see the
    /// [module docs](self). Its follower task stops when it is dropped.
    pub struct EtcdDiscover<M, S> {
        #[pin]
        inner: Followed<EtcdEndpoint, M, S>,
    }
}

impl<M, S> EtcdDiscover<M, S>
where
    M: FnMut(&EtcdEndpoint) -> S,
{
    /// Follows the members of `service` in etcd through `client`, making the service of each
    /// new one with `make`. Starts a task (on the current tokio runtime) that lists and
    /// watches.
    pub fn new(service: &str, client: Client, config: EtcdConfig, make: M) -> Self {
        let name: Arc<str> = Arc::from(service);
        let kept = crate::metrics::discovery_kept(&name, "etcd");
        let prefix = service_prefix(&config.prefix, service);
        let following = |publish| {
            Following {
                prefix,
                client,
                config,
                publish,
                members: BTreeMap::new(),
                draining: HashSet::new(),
                revision: 0,
                settling_since: None,
                vanished: BTreeMap::new(),
                held: BTreeSet::new(),
                kept,
                name: name.clone(),
            }
            .run()
        };
        Self {
            inner: Followed::spawn(name.clone(), make, following),
        }
    }
}

impl<M, S> Stream for EtcdDiscover<M, S>
where
    M: FnMut(&EtcdEndpoint) -> S,
{
    type Item = Result<Change<EtcdEndpoint, S>, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().inner.poll_next(cx)
    }
}

impl<M, S> std::fmt::Debug for EtcdDiscover<M, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdDiscover").finish_non_exhaustive()
    }
}

/// How long a member that vanished unannounced waits to be judged with the others that
/// vanish with it.
const SETTLE: Duration = Duration::from_secs(1);
/// How long a member that vanished unannounced counts among the vanished.
const VANISHED_WINDOW: Duration = Duration::from_secs(30);

/// What the follower keeps: the members as etcd has them, and what it published.
struct Following {
    prefix: String,
    client: Client,
    config: EtcdConfig,
    publish: watch::Sender<BTreeSet<EtcdEndpoint>>,
    /// By id.
    members: BTreeMap<String, Member>,
    /// Ids seen draining: their going is on purpose.
    draining: HashSet<String>,
    /// The revision up to which `members` is etcd's.
    revision: i64,
    /// Since when members that vanished unannounced wait to be judged.
    settling_since: Option<Instant>,
    /// Members that vanished unannounced and were let go, and when.
    vanished: BTreeMap<EtcdEndpoint, Instant>,
    /// Members that vanished unannounced and are kept.
    held: BTreeSet<EtcdEndpoint>,
    kept: metrics::Counter,
    name: Arc<str>,
}

/// Why a watch ended.
enum Ended {
    /// Its revision was compacted away: list again.
    Compacted,
    /// The stream broke: resume from the last revision.
    Broken(String),
}

impl Following {
    async fn run(mut self) {
        let mut wait = self.config.retry;
        loop {
            if let Err(error) = self.list().await {
                tracing::warn!(discovery = %self.name, %error, "etcd list failed; keeping the last good set");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(self.config.max_retry);
                continue;
            }
            wait = self.config.retry;
            loop {
                match self.watch(&mut wait).await {
                    Ended::Compacted => {
                        tracing::info!(discovery = %self.name, revision = self.revision, "etcd compacted the watched revision; listing again");
                        break;
                    }
                    Ended::Broken(error) => {
                        tracing::warn!(discovery = %self.name, %error, revision = self.revision, "etcd watch broke; resuming");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(self.config.max_retry);
                    }
                }
            }
        }
    }

    /// Lists the members afresh; publishes what changed.
    async fn list(&mut self) -> Result<(), etcd_client::Error> {
        let answer = (self.client)
            .get(
                self.prefix.as_bytes(),
                Some(GetOptions::new().with_prefix()),
            )
            .await?;
        self.revision = answer.header().map_or(0, |h| h.revision());
        self.members.clear();
        for kv in answer.kvs() {
            self.put(kv);
        }
        self.publish();
        Ok(())
    }

    /// Watches from the revision after the last one seen, applying and publishing changes
    /// until the stream ends; `wait` goes back to its first value once events flow.
    async fn watch(&mut self, wait: &mut Duration) -> Ended {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(self.revision + 1);
        let mut stream = match self
            .client
            .watch(self.prefix.as_bytes(), Some(options))
            .await
        {
            Ok(stream) => stream,
            Err(error) => return Ended::Broken(error.to_string()),
        };
        loop {
            let settled = self.settling_since.map(|since| since + SETTLE);
            let message = tokio::select! {
                message = stream.message() => message,
                () = sleep_until(settled.unwrap_or_else(Instant::now)), if settled.is_some() => {
                    self.publish();
                    continue;
                }
            };
            let answer = match message {
                Ok(Some(answer)) => answer,
                Ok(None) => return Ended::Broken("the watch stream ended".into()),
                Err(error) => return Ended::Broken(error.to_string()),
            };
            if answer.compact_revision() > 0 {
                return Ended::Compacted;
            }
            if answer.canceled() {
                return Ended::Broken(format!("watch cancelled: {}", answer.cancel_reason()));
            }
            *wait = self.config.retry;
            let mut changed = false;
            for event in answer.events() {
                let Some(kv) = event.kv() else { continue };
                self.revision = self.revision.max(kv.mod_revision());
                // A deleted key's version is 0 (read here rather than the event's type,
                // whose accessor panics on a type it does not know).
                if kv.version() == 0 {
                    if let Some(id) = self.id_of(kv) {
                        self.members.remove(&id);
                    }
                } else {
                    self.put(kv);
                }
                changed = true;
            }
            if changed {
                self.publish();
            }
        }
    }

    /// The id under the prefix of `kv`'s key.
    fn id_of(&self, kv: &KeyValue) -> Option<String> {
        let key = kv.key_str().ok()?;
        let id = key.strip_prefix(&self.prefix)?;
        (!id.is_empty()).then(|| id.to_owned())
    }

    /// Takes a member's record; one that does not read is left out, with a warning.
    fn put(&mut self, kv: &KeyValue) {
        let Some(id) = self.id_of(kv) else { return };
        match Member::decode(kv.value()) {
            Some(member) => {
                // A member back from draining leaves unannounced again if it goes.
                if member.draining {
                    self.draining.insert(id.clone());
                } else {
                    self.draining.remove(&id);
                }
                self.members.insert(id, member);
            }
            None => {
                tracing::warn!(discovery = %self.name, key = %id, "an etcd record that is not a member; ignored");
                self.members.remove(&id);
            }
        }
    }

    /// Publishes the serving members — and the ones that vanished unannounced, while they
    /// settle, or when they are more than `max_vanished_share` of the fleet
    /// (self-preservation).
    fn publish(&mut self) {
        let now = Instant::now();
        let mut set: BTreeSet<EtcdEndpoint> = (self.members.iter())
            .filter(|(_, member)| !member.draining)
            .map(|(id, member)| EtcdEndpoint::new(id, member))
            .collect();
        let members = &self.members;
        let published = self.publish.borrow().clone();
        let missing: BTreeSet<EtcdEndpoint> = (published.iter())
            .filter(|e| !members.contains_key(&*e.id) && !self.draining.contains(&*e.id))
            .cloned()
            .collect();
        // A draining member that is gone has left as it said it would.
        self.draining.retain(|id| members.contains_key(id));
        self.vanished
            .retain(|e, at| now < *at + VANISHED_WINDOW && !members.contains_key(&*e.id));
        self.held.retain(|e| missing.contains(e));

        let newly_missing = missing.iter().any(|e| !self.held.contains(e));
        if newly_missing {
            let since = *self.settling_since.get_or_insert(now);
            if now < since + SETTLE {
                // Kept while more may follow; judged when they have settled.
                set.extend(missing);
                self.send(set);
                return;
            }
        }
        self.settling_since = None;
        if !missing.is_empty() {
            let gone = missing.len() + self.vanished.len();
            let fleet = set.len() + gone;
            if gone as f64 > self.config.max_vanished_share * fleet as f64 {
                if newly_missing {
                    tracing::warn!(
                        discovery = %self.name,
                        vanished = gone,
                        of = fleet,
                        "most members vanished from etcd; keeping them for the balancer to judge"
                    );
                    self.kept.increment(1);
                }
                self.held.clone_from(&missing);
                set.extend(missing);
            } else {
                self.held.clear();
                self.vanished.extend(missing.into_iter().map(|e| (e, now)));
            }
        }
        self.send(set);
    }

    fn send(&self, set: BTreeSet<EtcdEndpoint>) {
        publish(&self.publish, set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_their_field() {
        let field = |b: EtcdConfigBuilder| b.build().unwrap_err().field().to_owned();
        let second = Duration::from_secs(1);
        assert_eq!(
            field(EtcdConfig::builder().max_vanished_share(1.5)),
            "max_vanished_share"
        );
        assert_eq!(
            field(EtcdConfig::builder().retry(Duration::ZERO, second)),
            "retry"
        );
        assert_eq!(
            field(EtcdConfig::builder().retry(2 * second, second)),
            "retry"
        );
        EtcdConfig::builder().build().unwrap();
    }
}
