//! Registration: an instance's key under a lease, kept alive by heartbeats, marked draining,
//! revoked on the way out.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{Client, PutOptions};
use tokio::task::JoinHandle;

use super::error::RegistryError;
use super::member::{DEFAULT_PREFIX, Member, service_prefix};
use crate::drain::Drain;

/// An instance to register: its service, its id, its [`Member`] record and its lease's TTL.
///
/// | setting | default | from |
/// |---|---|---|
/// | [`id`](Self::id) | the address | unique per service |
/// | [`ttl`](Self::ttl) | 10 s, renewed every 3.3 s | etcd's clients renew at a third of the TTL; Eureka evicts after 90 s |
#[derive(Debug, Clone)]
pub struct Instance {
    service: String,
    id: String,
    member: Member,
    ttl: Duration,
}

impl Instance {
    /// An instance of `service` taking requests at `addr`.
    pub fn new(service: impl Into<String>, addr: std::net::SocketAddr) -> Self {
        Self {
            service: service.into(),
            id: addr.to_string(),
            member: Member::new(addr),
            ttl: Duration::from_secs(10),
        }
    }

    /// The instance's id among the service's (the last segment of its key).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Its weight.
    pub fn weight(mut self, weight: u32) -> Self {
        self.member.weight = weight;
        self
    }

    /// Its zone.
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.member.zone = Some(zone.into());
        self
    }

    /// A metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.member.metadata.insert(key.into(), value.into());
        self
    }

    /// How long the registration outlives the last heartbeat etcd received: a process that
    /// dies is gone from the registry this long after (at least 2 s; whole seconds).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_secs(2));
        self
    }
}

/// Registers instances in etcd, under `/palisade/services/<service>/<id>` unless told
/// another prefix; see [`etcd`](super).
#[derive(Clone)]
pub struct EtcdRegistry {
    client: Client,
    prefix: Arc<str>,
}

impl std::fmt::Debug for EtcdRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdRegistry")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl EtcdRegistry {
    /// A registry on `client` (made with the endpoints, TLS and credentials you need).
    pub fn new(client: Client) -> Self {
        Self {
            client,
            prefix: Arc::from(DEFAULT_PREFIX),
        }
    }

    /// Registers under `prefix` instead of `/palisade/services`.
    pub fn prefix(mut self, prefix: impl Into<Arc<str>>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Registers `instance` under a lease of its TTL, and keeps the lease alive until the
    /// registration is dropped or deregistered. Fails if etcd cannot be reached now; once
    /// registered, an etcd outage is ridden out (heartbeats resume, and a lease that expired
    /// meanwhile is granted again and the key put back).
    pub async fn register(&self, instance: Instance) -> Result<Registered, RegistryError> {
        let key = format!(
            "{}{}",
            service_prefix(&self.prefix, &instance.service),
            instance.id
        );
        let lease = Arc::new(Lease {
            client: self.client.clone(),
            key,
            member: Mutex::new(instance.member),
            ttl: instance.ttl,
            id: AtomicI64::new(0),
        });
        lease.grant_and_put().await?;
        tracing::info!(key = %lease.key, ttl = ?lease.ttl, "registered in etcd");
        let heartbeat = tokio::spawn(lease.clone().heartbeat());
        Ok(Registered { lease, heartbeat })
    }
}

/// A registration, kept alive by its heartbeats until it is dropped (then its lease
/// expires after its TTL, as a crashed process's would) or [deregistered](Self::deregister)
/// (at once).
#[derive(Debug)]
pub struct Registered {
    lease: Arc<Lease>,
    heartbeat: JoinHandle<()>,
}

struct Lease {
    client: Client,
    key: String,
    member: Mutex<Member>,
    ttl: Duration,
    /// The lease the key is under now (another after an expiry).
    id: AtomicI64,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key)
            .field("ttl", &self.ttl)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Registered {
    /// The key the instance is registered under.
    pub fn key(&self) -> &str {
        &self.lease.key
    }

    /// Marks the instance draining: still registered, but discovery stops sending it new
    /// requests.
    pub async fn set_draining(&self) -> Result<(), RegistryError> {
        self.lease.member().draining = true;
        self.lease.put().await
    }

    /// Deregisters now: the heartbeats stop and the lease is revoked, which deletes the key.
    /// If etcd cannot be reached, the key goes when the lease expires.
    pub async fn deregister(self) -> Result<(), RegistryError> {
        self.heartbeat.abort();
        let id = self.lease.id.load(Ordering::Acquire);
        let mut client = self.lease.client.clone();
        client
            .lease_revoke(id)
            .await
            .map_err(|e| RegistryError::new("revoke the lease of", &self.lease.key, e))?;
        tracing::info!(key = %self.lease.key, "deregistered from etcd");
        Ok(())
    }

    /// Follows `drain`: marks the instance draining when the drain starts (discovery stops
    /// sending it new requests), and deregisters it when the grace period is over and the
    /// drain refuses what still comes — while its requests in flight finish — the order
    /// Eureka's clients follow (`DOWN`, then cancel). The task's result is the
    /// deregistration's.
    pub fn follow(self, drain: &Drain) -> JoinHandle<Result<(), RegistryError>> {
        let drain = drain.clone();
        tokio::spawn(async move {
            drain.started().await;
            if let Err(error) = self.set_draining().await {
                // Not fatal: the drain goes on, and the deregistration below removes it.
                tracing::warn!(%error, "could not mark the instance draining");
            }
            drain.refusing().await;
            self.deregister().await
        })
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

impl Lease {
    fn member(&self) -> std::sync::MutexGuard<'_, Member> {
        self.member.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Grants a new lease and puts the key under it.
    async fn grant_and_put(&self) -> Result<(), RegistryError> {
        let mut client = self.client.clone();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let granted = client
            .lease_grant(ttl, None)
            .await
            .map_err(|e| RegistryError::new("grant a lease for", &self.key, e))?;
        self.id.store(granted.id(), Ordering::Release);
        self.put().await
    }

    /// Puts the member, as it is now, under the current lease.
    async fn put(&self) -> Result<(), RegistryError> {
        let value = self.member().encode();
        let options = PutOptions::new().with_lease(self.id.load(Ordering::Acquire));
        let mut client = self.client.clone();
        client
            .put(self.key.as_bytes(), value, Some(options))
            .await
            .map_err(|e| RegistryError::new("put", &self.key, e))?;
        Ok(())
    }

    /// Renews the lease every third of its TTL, for as long as the registration lives: an
    /// outage of etcd is waited out, and a lease that expired meanwhile replaced.
    async fn heartbeat(self: Arc<Self>) {
        let every = self.ttl / 3;
        let retry = every.min(Duration::from_secs(1));
        loop {
            match self.renew_until_broken(every).await {
                Renewal::Broken(error) => {
                    tracing::warn!(key = %self.key, %error, "etcd heartbeat failed; retrying");
                }
                Renewal::Expired => {
                    tracing::warn!(key = %self.key, "the registration's lease expired; registering again");
                    if let Err(error) = self.grant_and_put().await {
                        tracing::warn!(key = %self.key, %error, "could not register again; retrying");
                    }
                }
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// Keeps the lease alive on one stream until it breaks or the lease is found expired.
    async fn renew_until_broken(&self, every: Duration) -> Renewal {
        let mut client = self.client.clone();
        let id = self.id.load(Ordering::Acquire);
        let (mut keeper, mut answers) = match client.lease_keep_alive(id).await {
            Ok(stream) => stream,
            Err(error) => return Renewal::from(error),
        };
        loop {
            if let Err(error) = keeper.keep_alive().await {
                return Renewal::from(error);
            }
            match tokio::time::timeout(every, answers.message()).await {
                Ok(Ok(Some(answer))) if answer.ttl() > 0 => {}
                Ok(Ok(Some(_))) => return Renewal::Expired,
                Ok(Ok(None)) => return Renewal::Broken("the stream ended".into()),
                Ok(Err(error)) => return Renewal::from(error),
                Err(_) => return Renewal::Broken(format!("no answer within {every:?}")),
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// Why a stream of renewals ended.
enum Renewal {
    Broken(String),
    Expired,
}

impl From<etcd_client::Error> for Renewal {
    fn from(error: etcd_client::Error) -> Self {
        match &error {
            etcd_client::Error::GRpcStatus(status) if status.code() == tonic::Code::NotFound => {
                Renewal::Expired
            }
            _ => Renewal::Broken(error.to_string()),
        }
    }
}
