//! The shedder's configuration: a builder with documented defaults, validated on `build`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use palisade_core::ConfigError;

use crate::limit::LimitConfig;

/// How long requests may wait for a slot, and in what order they get one.
///
/// Facebook's CoDel-style rule ("Fail at Scale"): while the queue keeps emptying, a request
/// may wait up to `interval` (100 ms); once the queue has not been empty for `interval`, a
/// standing queue has formed and waiting only adds latency, so a request may wait only
/// `target` (5 ms), and the newest waiter is served first (adaptive LIFO: it is the one
/// whose client is most likely still there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queue {
    /// The most requests waiting at once.
    pub max_len: usize,
    /// The wait allowed under a standing queue.
    pub target: Duration,
    /// The wait allowed while the queue keeps emptying, and how recently it must have.
    pub interval: Duration,
    /// Serve the newest waiter first under a standing queue.
    pub lifo_under_backlog: bool,
}

impl Default for Queue {
    fn default() -> Self {
        Self {
            max_len: 128,
            target: Duration::from_millis(5),
            interval: Duration::from_millis(100),
            lifo_under_backlog: true,
        }
    }
}

/// How a shedder sheds; made with [`ShedConfig::builder`].
///
/// Settings only: each shedder made from it starts its algorithm afresh. One limit shared by
/// several services is one layer applied to each (its clones share its limit).
#[derive(Clone)]
pub struct ShedConfig {
    pub(crate) name: Arc<str>,
    pub(crate) limit: LimitConfig,
    pub(crate) queue: Option<Queue>,
    pub(crate) default_share: f64,
    pub(crate) sheddable_share: f64,
    pub(crate) retry_after: Duration,
}

impl fmt::Debug for ShedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShedConfig")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .field("queue", &self.queue)
            .field("default_share", &self.default_share)
            .field("sheddable_share", &self.sheddable_share)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl ShedConfig {
    /// A builder that starts from the defaults, for the shedder called `name`: the `name`
    /// label of its metrics and events. Give every shedder its own.
    pub fn builder(name: impl Into<Arc<str>>) -> ShedConfigBuilder {
        ShedConfigBuilder {
            config: ShedConfig::defaults(name.into()),
        }
    }

    /// The shedder's name: the `name` label of its metrics and events.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The defaults under `name`.
    fn defaults(name: Arc<str>) -> Self {
        ShedConfig {
            name,
            limit: LimitConfig::default(),
            queue: Some(Queue::default()),
            default_share: 0.9,
            sheddable_share: 0.5,
            retry_after: Duration::from_secs(1),
        }
    }
}

impl From<&str> for ShedConfig {
    /// The defaults, under this name: what `HttpShedLayer::with_config(name)` uses.
    fn from(name: &str) -> Self {
        Self::defaults(Arc::from(name))
    }
}

impl From<String> for ShedConfig {
    /// The defaults, under this name.
    fn from(name: String) -> Self {
        Self::defaults(Arc::from(name))
    }
}

impl From<Arc<str>> for ShedConfig {
    /// The defaults, under this name.
    fn from(name: Arc<str>) -> Self {
        Self::defaults(name)
    }
}

/// Builds a [`ShedConfig`]. Every setting has a default, given with its source.
///
/// | setting | default | from |
/// |---|---|---|
/// | [`limit`](Self::limit) | [`Gradient`](crate::limit::Gradient): 40 to start, within 4..=1000, latency up to 2.5× the unloaded | Envoy's adaptive concurrency, Netflix's Gradient2 (its tolerance, 1.5) |
/// | [`queue`](Self::queue) | 128 waiters, 5 ms / 100 ms CoDel, LIFO under backlog | Facebook's "Fail at Scale" |
/// | [`shares`](Self::shares) | default 90 %, sheddable 50 % of the limit | Netflix's partitioned limits |
/// | [`retry_after`](Self::retry_after) | 1 s | |
pub struct ShedConfigBuilder {
    config: ShedConfig,
}

impl fmt::Debug for ShedConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}

impl ShedConfigBuilder {
    /// The algorithm that sets the limit: a [`Fixed`](crate::limit::Fixed),
    /// [`Aimd`](crate::limit::Aimd) or [`Gradient`](crate::limit::Gradient), or one of your
    /// own ([`LimitConfig::custom`]).
    pub fn limit(mut self, limit: impl Into<LimitConfig>) -> Self {
        self.config.limit = limit.into();
        self
    }

    /// The queue requests wait in when the limit is reached.
    pub fn queue(mut self, queue: Queue) -> Self {
        self.config.queue = Some(queue);
        self
    }

    /// Refuse at once at the limit: no queue.
    pub fn no_queue(mut self) -> Self {
        self.config.queue = None;
        self
    }

    /// The shares of the limit that default and sheddable requests may use (critical ones
    /// may use all of it); each within 0..=1, sheddable at most default.
    pub fn shares(mut self, default: f64, sheddable: f64) -> Self {
        self.config.default_share = default;
        self.config.sheddable_share = sheddable;
        self
    }

    /// What a refusal tells the client to wait before trying again.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.config.retry_after = after;
        self
    }

    /// Checks every setting and returns the configuration, or the first bad setting.
    pub fn build(self) -> Result<ShedConfig, ConfigError> {
        let c = &self.config;
        let limit = c.limit.make();
        let (min, max) = limit.bounds();
        if min == 0 || min > max || !(min..=max).contains(&limit.initial()) {
            return Err(ConfigError::new(
                "limit",
                "needs 1 <= min <= initial <= max",
            ));
        }
        if !(0.0..=1.0).contains(&c.default_share) {
            return Err(ConfigError::new("shares.default", "must be within 0 and 1"));
        }
        if !(0.0..=c.default_share).contains(&c.sheddable_share) {
            return Err(ConfigError::new(
                "shares.sheddable",
                "must be within 0 and the default share",
            ));
        }
        if let Some(queue) = &c.queue {
            if queue.max_len == 0 {
                return Err(ConfigError::new(
                    "queue.max_len",
                    "must be at least 1 (or use no_queue)",
                ));
            }
            if queue.target.is_zero() || queue.interval < queue.target {
                return Err(ConfigError::new(
                    "queue.target",
                    "must be longer than zero and at most the interval",
                ));
            }
        }
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::Fixed;

    #[test]
    fn bad_settings_name_their_field() {
        let field = |b: ShedConfigBuilder| b.build().unwrap_err().field().to_owned();
        let b = || ShedConfig::builder("test");
        assert_eq!(field(b().limit(Fixed(0))), "limit");
        assert_eq!(field(b().shares(1.5, 0.5)), "shares.default");
        assert_eq!(field(b().shares(0.5, 0.9)), "shares.sheddable");
        let no_room = Queue {
            max_len: 0,
            ..Queue::default()
        };
        assert_eq!(field(b().queue(no_room)), "queue.max_len");
        let backwards = Queue {
            target: Duration::from_secs(1),
            ..Queue::default()
        };
        assert_eq!(field(b().queue(backwards)), "queue.target");
        b().build().unwrap();
    }
}
