//! Discovery from Kubernetes EndpointSlices (feature `kubernetes`): a Service's endpoints,
//! as the API server has them, through kube-rs.
//!
//! A Service's endpoints are split over several EndpointSlices (100 endpoints each by
//! default), and a consumer must merge them all — a well-known Go gRPC resolver kept only
//! the last slice it saw, and so capped every service at 100 endpoints. [`KubernetesDiscover`]
//! watches every slice labelled `kubernetes.io/service-name=<service>` (kube-rs's watcher:
//! a list, then a watch, and a fresh list when the watch expires with `410 Gone`), keeps
//! each slice's endpoints, and publishes their union:
//!
//! - an endpoint is used while `ready` (an absent condition counts as ready, as the API
//!   says); when none is ready, the ones still `serving` while `terminating` are used, as
//!   kube-proxy falls back to them, rather than nothing;
//! - the port is the one named in [`KubernetesConfig`] (or the slice's first);
//! - each endpoint's zone, and the zones its topology hints say it should serve, come with
//!   it ([`K8sEndpoint::zone`], [`K8sEndpoint::hinted_zones`]);
//! - addresses of type FQDN are skipped (a balancer needs an address).
//!
//! An empty union is taken for a glitch and the last good set is kept, as every palisade
//! discovery does.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use palisade_balance::discover::{K8sEndpoint, KubernetesConfig, KubernetesDiscover};
//!
//! let client = kube::Client::try_default().await?; // in-cluster, or ~/.kube/config
//! let config = KubernetesConfig::builder().port_name("http").build()?;
//! let discover = KubernetesDiscover::new(client, "shop", "orders", config, |e: &K8sEndpoint| {
//!     format!("a client for {}", e.addr) // an HttpEndpoint, a tonic Channel...
//! });
//! # let _ = discover;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_util::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use palisade_core::ConfigError;
use pin_project_lite::pin_project;
use tokio::sync::watch;
use tower::discover::Change;

use super::Weighted;
use super::follow::{Followed, publish};

/// An endpoint of the Service, as a balancer's key: its address (with the chosen port),
/// and its zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct K8sEndpoint {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Its zone (`topology.kubernetes.io/zone` of its node), if the slice says.
    pub zone: Option<Arc<str>>,
    /// The zones its topology hints say it should serve (`hints.forZones`), if any.
    pub hinted_zones: Arc<[Arc<str>]>,
}

impl Weighted for K8sEndpoint {}

/// Which port to use; made with [`KubernetesConfig::builder`].
#[derive(Debug, Clone, Default)]
pub struct KubernetesConfig {
    port_name: Option<Arc<str>>,
}

impl KubernetesConfig {
    /// A builder that starts from the defaults: each slice's first port.
    pub fn builder() -> KubernetesConfigBuilder {
        KubernetesConfigBuilder {
            config: Self::default(),
        }
    }
}

/// Builds a [`KubernetesConfig`], validated on [`build`](Self::build).
#[derive(Debug, Clone)]
pub struct KubernetesConfigBuilder {
    config: KubernetesConfig,
}

impl KubernetesConfigBuilder {
    /// The port by its name in the Service (`http`, `grpc`); a slice without it is skipped.
    pub fn port_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.config.port_name = Some(name.into());
        self
    }

    /// Checks every setting and returns the configuration, or the first bad setting.
    pub fn build(self) -> Result<KubernetesConfig, ConfigError> {
        if self.config.port_name.as_deref() == Some("") {
            return Err(ConfigError::new("port_name", "must not be empty"));
        }
        Ok(self.config)
    }
}

pin_project! {
    /// The endpoints of a Kubernetes Service, from all its EndpointSlices, as tower
    /// `Change`s; see the [module docs](self). Its watcher task stops when it is dropped.
    pub struct KubernetesDiscover<M, S> {
        #[pin]
        inner: Followed<K8sEndpoint, M, S>,
    }
}

impl<M, S> KubernetesDiscover<M, S>
where
    M: FnMut(&K8sEndpoint) -> S,
{
    /// Follows the endpoints of `service` in `namespace` through `client`, making the
    /// service of each new one with `make`. Starts a task (on the current tokio runtime)
    /// that watches the Service's EndpointSlices.
    pub fn new(
        client: Client,
        namespace: &str,
        service: &str,
        config: KubernetesConfig,
        make: M,
    ) -> Self {
        let name: Arc<str> = Arc::from(service);
        let slices: Api<EndpointSlice> = Api::namespaced(client, namespace);
        let selector = format!("kubernetes.io/service-name={service}");
        let watching = |publish| {
            let following = Following {
                config,
                publish,
                slices: BTreeMap::new(),
                name: name.clone(),
            };
            following.run(slices, watcher::Config::default().labels(&selector))
        };
        Self {
            inner: Followed::spawn(name.clone(), make, watching),
        }
    }
}

impl<M, S> Stream for KubernetesDiscover<M, S>
where
    M: FnMut(&K8sEndpoint) -> S,
{
    type Item = Result<Change<K8sEndpoint, S>, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().inner.poll_next(cx)
    }
}

impl<M, S> std::fmt::Debug for KubernetesDiscover<M, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesDiscover").finish_non_exhaustive()
    }
}

/// One endpoint address of a slice, with its conditions.
#[derive(Debug, Clone)]
struct Entry {
    endpoint: K8sEndpoint,
    ready: bool,
    /// Serving while terminating: the fallback when nothing is ready.
    draining_but_serving: bool,
}

/// What the watcher task keeps: each slice's entries, by the slice's name.
struct Following {
    config: KubernetesConfig,
    publish: watch::Sender<BTreeSet<K8sEndpoint>>,
    slices: BTreeMap<String, Vec<Entry>>,
    name: Arc<str>,
}

impl Following {
    async fn run(mut self, slices: Api<EndpointSlice>, config: watcher::Config) {
        let mut events = watcher::watcher(slices, config).default_backoff().boxed();
        // The slices of a list in progress, swapped in whole when it is done.
        let mut listing: Option<BTreeMap<String, Vec<Entry>>> = None;
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Init) => listing = Some(BTreeMap::new()),
                Ok(Event::InitApply(slice)) => {
                    if let Some(listing) = listing.as_mut() {
                        let (name, entries) = self.entries(&slice);
                        listing.insert(name, entries);
                    }
                }
                Ok(Event::InitDone) => {
                    if let Some(listed) = listing.take() {
                        self.slices = listed;
                        self.publish();
                    }
                }
                Ok(Event::Apply(slice)) => {
                    let (name, entries) = self.entries(&slice);
                    self.slices.insert(name, entries);
                    self.publish();
                }
                Ok(Event::Delete(slice)) => {
                    let (name, _) = self.entries(&slice);
                    self.slices.remove(&name);
                    self.publish();
                }
                Err(error) => {
                    // The watcher lists again, after a backoff; the last good set stays.
                    tracing::warn!(discovery = %self.name, %error, "EndpointSlice watch failed; retrying");
                }
            }
        }
    }

    /// A slice's name and its endpoints' addresses, with the configured port.
    fn entries(&self, slice: &EndpointSlice) -> (String, Vec<Entry>) {
        let name = slice.metadata.name.clone().unwrap_or_default();
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            return (name, Vec::new());
        }
        let ports = slice.ports.as_deref().unwrap_or_default();
        let port = match self.config.port_name.as_deref() {
            Some(wanted) => ports.iter().find(|p| p.name.as_deref() == Some(wanted)),
            None => ports.first(),
        };
        let Some(port) = port
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            return (name, Vec::new());
        };
        let mut entries = Vec::new();
        for endpoint in slice.endpoints.iter().flatten() {
            let conditions = endpoint.conditions.as_ref();
            // Absent conditions: ready (the API's own reading), serving as ready.
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            let zone: Option<Arc<str>> = endpoint.zone.as_deref().map(Arc::from);
            let hinted_zones: Arc<[Arc<str>]> = (endpoint.hints.iter())
                .flat_map(|hints| hints.for_zones.iter().flatten())
                .map(|zone| Arc::from(zone.name.as_str()))
                .collect();
            for address in &endpoint.addresses {
                let Ok(ip) = address.parse::<IpAddr>() else {
                    continue;
                };
                entries.push(Entry {
                    endpoint: K8sEndpoint {
                        addr: SocketAddr::new(ip, port),
                        zone: zone.clone(),
                        hinted_zones: hinted_zones.clone(),
                    },
                    ready,
                    draining_but_serving: serving && terminating,
                });
            }
        }
        (name, entries)
    }

    /// Publishes the ready endpoints of every slice, or, when none is ready, the ones
    /// serving while terminating.
    fn publish(&self) {
        let all = || self.slices.values().flatten();
        let mut set: BTreeSet<K8sEndpoint> = all()
            .filter(|e| e.ready)
            .map(|e| e.endpoint.clone())
            .collect();
        if set.is_empty() {
            set = all()
                .filter(|e| e.draining_but_serving)
                .map(|e| e.endpoint.clone())
                .collect();
        }
        publish(&self.publish, set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_their_field() {
        let err = KubernetesConfig::builder()
            .port_name("")
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "port_name");
        KubernetesConfig::builder()
            .port_name("http")
            .build()
            .unwrap();
    }
}
