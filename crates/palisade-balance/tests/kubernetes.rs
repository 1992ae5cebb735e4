//! Kubernetes discovery against a scripted API server on loopback — the real kube client,
//! real HTTP: a list, then a watch whose events the test sends, slices merged past 100
//! endpoints, conditions and named ports honoured, slices added, split and removed, and a
//! watch that expires with `410 Gone` and must list again.

#![cfg(feature = "kubernetes")]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use palisade_balance::discover::{K8sEndpoint, KubernetesConfig, KubernetesDiscover};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tower::discover::Change;

/// The scripted API server: the slices a list answers, and the events the open watch
/// sends, as the test pushes them.
#[derive(Clone, Default)]
struct ApiServer {
    slices: Arc<Mutex<Vec<Value>>>,
    revision: Arc<Mutex<u64>>,
    watch: Arc<Mutex<Option<mpsc::UnboundedSender<Value>>>>,
    lists: Arc<Mutex<usize>>,
}

impl ApiServer {
    fn set(&self, slices: Vec<Value>) {
        *self.slices.lock().unwrap() = slices;
    }

    /// Sends an event to the open watch (`ADDED`, `MODIFIED`, `DELETED`).
    fn event(&self, kind: &str, slice: Value) {
        let event = json!({ "type": kind, "object": slice });
        let watch = self.watch.lock().unwrap();
        let watch = watch.as_ref().expect("a watch is open");
        watch.send(event).unwrap();
    }

    /// Ends the open watch with `410 Gone`, as an API server does when its history no
    /// longer reaches the watch's revision.
    fn expire(&self) {
        let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
            "metadata": {}, "status": "Failure", "reason": "Expired", "code": 410,
            "message": "too old resource version"}});
        // Sent, and the watch closed after it.
        let watch = self.watch.lock().unwrap().take().expect("a watch is open");
        watch.send(gone).unwrap();
    }

    fn lists(&self) -> usize {
        *self.lists.lock().unwrap()
    }

    fn watching(&self) -> bool {
        self.watch.lock().unwrap().is_some()
    }
}

async fn slices(
    State(server): State<ApiServer>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let selected = query
        .iter()
        .any(|(k, v)| k == "labelSelector" && v == "kubernetes.io/service-name=orders");
    assert!(
        selected,
        "the watcher asks for the Service's slices: {query:?}"
    );
    let revision = {
        let mut revision = server.revision.lock().unwrap();
        *revision += 1;
        *revision
    };
    if query.iter().any(|(k, v)| k == "watch" && v == "true") {
        let (send, events) = mpsc::unbounded_channel::<Value>();
        *server.watch.lock().unwrap() = Some(send);
        let lines = tokio_stream::wrappers::UnboundedReceiverStream::new(events)
            .map(|event| Ok::<_, std::io::Error>(Bytes::from(format!("{event}\n"))));
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(lines))
            .unwrap();
    }
    *server.lists.lock().unwrap() += 1;
    let items = server.slices.lock().unwrap().clone();
    axum::Json(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSliceList",
        "metadata": {"resourceVersion": revision.to_string()},
        "items": items,
    }))
    .into_response()
}

/// A slice of `service`, its endpoints `(address, ready, serving, terminating)`.
fn slice(name: &str, endpoints: &[(String, bool, bool, bool)]) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": {"kubernetes.io/service-name": "orders"},
            "resourceVersion": "1",
        },
        "addressType": "IPv4",
        "ports": [{"name": "metrics", "port": 9090}, {"name": "http", "port": 8080}],
        "endpoints": endpoints.iter().map(|(address, ready, serving, terminating)| json!({
            "addresses": [address],
            "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
            "zone": "eu-west-1a",
            "hints": {"forZones": [{"name": "eu-west-1a"}]},
        })).collect::<Vec<_>>(),
    })
}

/// `n` ready endpoints `10.0.<third>.1` onwards.
fn ready(third: u8, n: u8) -> Vec<(String, bool, bool, bool)> {
    (1..=n)
        .map(|i| (format!("10.0.{third}.{i}"), true, true, false))
        .collect()
}

type Discover = KubernetesDiscover<fn(&K8sEndpoint) -> (), ()>;

async fn start(server: &ApiServer) -> Discover {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices",
            get(slices),
        )
        .with_state(server.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let discover = KubernetesConfig::builder()
        .port_name("http")
        .build()
        .unwrap();
    KubernetesDiscover::new(
        client,
        "shop",
        "orders",
        discover,
        (|_| ()) as fn(&K8sEndpoint),
    )
}

/// The next `n` changes, as `+addr` / `-addr`.
async fn changes(discover: &mut Discover, n: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        let change = tokio::time::timeout(Duration::from_secs(15), discover.next())
            .await
            .expect("a change in time")
            .expect("the discovery goes on")
            .unwrap();
        seen.insert(match change {
            Change::Insert(e, ()) => {
                // Every scripted endpoint is in eu-west-1a, and hinted for it.
                assert_eq!(e.zone.as_deref(), Some("eu-west-1a"));
                assert_eq!(e.hinted_zones.len(), 1);
                assert_eq!(&*e.hinted_zones[0], "eu-west-1a");
                format!("+{}", e.addr)
            }
            Change::Remove(e) => format!("-{}", e.addr),
        });
    }
    seen
}

async fn quiet(discover: &mut Discover) -> bool {
    tokio::time::timeout(Duration::from_millis(500), discover.next())
        .await
        .is_err()
}

fn adds(third: u8, range: std::ops::RangeInclusive<u8>) -> BTreeSet<String> {
    range.map(|i| format!("+10.0.{third}.{i}:8080")).collect()
}

async fn until_watching(server: &ApiServer) {
    for _ in 0..200 {
        if server.watching() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the watcher never opened its watch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_slice_is_merged_and_followed_through_its_watch() {
    let server = ApiServer::default();
    // 150 endpoints over two slices, the API server's way past 100; one not ready.
    let mut second = ready(1, 50);
    second.push(("10.0.1.99".into(), false, false, false));
    server.set(vec![
        slice("orders-a", &ready(0, 100)),
        slice("orders-b", &second),
    ]);
    let mut discover = start(&server).await;
    let mut expected = adds(0, 1..=100);
    expected.extend(adds(1, 1..=50));
    assert_eq!(
        changes(&mut discover, 150).await,
        expected,
        "both slices, on port `http`"
    );
    assert!(
        quiet(&mut discover).await,
        "the endpoint that is not ready stays out"
    );
    until_watching(&server).await;

    // A slice added, one split in two (the same endpoints: no change), one changed (an
    // endpoint terminating), one removed.
    server.event("ADDED", slice("orders-c", &ready(2, 2)));
    assert_eq!(changes(&mut discover, 2).await, adds(2, 1..=2));
    let all = ready(1, 50);
    server.event("ADDED", slice("orders-b2", &all[25..]));
    server.event("MODIFIED", slice("orders-b", &all[..25]));
    assert!(quiet(&mut discover).await, "a split changes no endpoint");
    let mut b = ready(1, 25);
    b[0] = ("10.0.1.1".into(), false, true, true);
    server.event("MODIFIED", slice("orders-b", &b));
    assert_eq!(
        changes(&mut discover, 1).await,
        BTreeSet::from(["-10.0.1.1:8080".to_owned()])
    );
    server.event("DELETED", slice("orders-a", &ready(0, 100)));
    let gone: BTreeSet<String> = (1..=100).map(|i| format!("-10.0.0.{i}:8080")).collect();
    assert_eq!(changes(&mut discover, 100).await, gone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_watch_lists_again_and_catches_up() {
    let server = ApiServer::default();
    server.set(vec![slice("orders-a", &ready(0, 3))]);
    let mut discover = start(&server).await;
    assert_eq!(changes(&mut discover, 3).await, adds(0, 1..=3));
    until_watching(&server).await;
    assert_eq!(server.lists(), 1);

    // What changed while the watch could not follow: only a fresh list shows it.
    server.set(vec![
        slice("orders-a", &ready(0, 2)),
        slice("orders-b", &ready(1, 1)),
    ]);
    server.expire();
    let mut expected = BTreeSet::from(["-10.0.0.3:8080".to_owned()]);
    expected.extend(adds(1, 1..=1));
    assert_eq!(changes(&mut discover, 2).await, expected);
    assert_eq!(server.lists(), 2, "listed again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nothing_ready_the_terminating_endpoints_still_serving_are_used() {
    let server = ApiServer::default();
    server.set(vec![slice(
        "orders-a",
        &[
            ("10.0.0.1".into(), false, true, true),
            ("10.0.0.2".into(), false, false, true),
        ],
    )]);
    let mut discover = start(&server).await;
    assert_eq!(
        changes(&mut discover, 1).await,
        BTreeSet::from(["+10.0.0.1:8080".to_owned()]),
        "serving while terminating, rather than nothing"
    );
    until_watching(&server).await;
    // A ready one arrives: the terminating one goes.
    server.event("ADDED", slice("orders-b", &ready(1, 1)));
    assert_eq!(
        changes(&mut discover, 2).await,
        BTreeSet::from(["+10.0.1.1:8080".to_owned(), "-10.0.0.1:8080".to_owned()])
    );
}
