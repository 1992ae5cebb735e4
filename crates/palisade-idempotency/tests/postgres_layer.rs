//! The layer over the Postgres store, with handlers that write in the keyed transaction:
//! their writes and the record of their response are committed together, or not at all.
#![cfg(all(feature = "postgres", feature = "axum"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_idempotency::store::postgres::{KeyedTransaction, PostgresStore};
use palisade_idempotency::{Idempotency, IdempotencyLayer, REPLAYED, RequestBody, Scope};
use tower::util::BoxCloneService;
use tower::{BoxError, Layer, ServiceExt, service_fn};

mod common;

use common::postgres::Schema;

/// The business table of the test's schema: one row per order created.
async fn orders_table(schema: &Schema) -> String {
    let table = format!("\"{}\".orders", schema.name);
    sqlx::query(&format!(
        "CREATE TABLE {table} (id bigserial PRIMARY KEY, body text NOT NULL)"
    ))
    .execute(&schema.pool)
    .await
    .unwrap();
    table
}

async fn count(schema: &Schema, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&schema.pool)
        .await
        .unwrap()
}

fn post_with_key(path: &str, key: Option<&str>, body: &'static str) -> Request<Full<Bytes>> {
    let mut request = Request::post(path);
    if let Some(key) = key {
        request = request.header("idempotency-key", format!("\"{key}\""));
    }
    request
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

async fn text<B: http_body::Body>(response: Response<B>) -> (StatusCode, String, bool)
where
    B::Error: std::fmt::Debug,
{
    let status = response.status();
    let replayed = response.headers().contains_key(REPLAYED);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8_lossy(&body).into_owned(),
        replayed,
    )
}

/// A hyper- or tonic-style handler: it finds its transaction in the request's extensions,
/// inserts the order, and answers as the path says — after the insert, so that a failure
/// answer is one whose write must not be kept.
fn order_service(
    table: String,
    calls: Arc<AtomicUsize>,
    store: PostgresStore,
) -> impl tower::Service<
    Request<RequestBody<Full<Bytes>>>,
    Response = Response<Full<Bytes>>,
    Error = BoxError,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |request: Request<RequestBody<Full<Bytes>>>| {
        let (table, calls, store) = (table.clone(), calls.clone(), store.clone());
        async move {
            let earlier_calls = calls.fetch_add(1, SeqCst);
            let mut tx = KeyedTransaction::from_extensions(request.extensions()).await?;
            let path = request.uri().path().to_owned();
            let body = request.into_body().collect().await?.to_bytes();
            let id: i64 = sqlx::query_scalar(&format!(
                "INSERT INTO {table} (body) VALUES ($1) RETURNING id"
            ))
            .bind(String::from_utf8_lossy(&body).into_owned())
            .fetch_one(&mut *tx)
            .await?;
            let status = match path.as_str() {
                "/fail" => StatusCode::INTERNAL_SERVER_ERROR,
                "/reject" => {
                    // A write that breaks a constraint (NOT NULL), handled with an answer:
                    // the transaction is aborted, so nothing of it can be kept.
                    let broken = sqlx::query(&format!("INSERT INTO {table} (body) VALUES (NULL)"))
                        .execute(&mut *tx)
                        .await;
                    assert!(broken.is_err());
                    StatusCode::CONFLICT
                }
                "/steal" => {
                    // Another request takes the key over meanwhile (as if this one's lease
                    // had run out): the owner check at commit must undo this insert.
                    let records = format!("{}.records", table.rsplit_once('.').unwrap().0);
                    sqlx::query(&format!("UPDATE {records} SET owner = '\\x00'"))
                        .execute(store.pool())
                        .await?;
                    StatusCode::CREATED
                }
                "/hang-once" if earlier_calls == 0 => {
                    // The client goes away while the handler still holds its transaction.
                    std::future::pending::<()>().await;
                    unreachable!()
                }
                _ => StatusCode::CREATED,
            };
            let mut response = Response::new(Full::new(Bytes::from(format!("order {id}"))));
            *response.status_mut() = status;
            Ok::<_, BoxError>(response)
        }
    })
}

/// The order service, boxed: its requests and answers as the layer sees them.
type Orders = BoxCloneService<Request<RequestBody<Full<Bytes>>>, Response<Full<Bytes>>, BoxError>;

/// A shop: its schema, its orders table, and the keyed order service over a Postgres store.
struct Shop {
    schema: Schema,
    table: String,
    calls: Arc<AtomicUsize>,
    svc: Idempotency<Orders>,
}

impl Shop {
    async fn open() -> Shop {
        let schema = Schema::new().await;
        let table = orders_table(&schema).await;
        let store = schema.store().await;
        let calls = Arc::new(AtomicUsize::new(0));
        let handler = order_service(table.clone(), calls.clone(), store.clone());
        let svc = IdempotencyLayer::new("orders", store, Scope::global())
            .layer(BoxCloneService::new(handler));
        Shop {
            schema,
            table,
            calls,
            svc,
        }
    }

    /// POSTs `body` to `path` with idempotency key `key`: status, body, whether replayed.
    async fn post(&self, path: &str, key: &str, body: &'static str) -> (StatusCode, String, bool) {
        let request = post_with_key(path, Some(key), body);
        text(self.svc.clone().oneshot(request).await.unwrap()).await
    }

    async fn orders(&self) -> i64 {
        count(&self.schema, &self.table).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_and_its_record_commit_together_and_a_retry_replays() {
    let shop = Shop::open().await;
    let first = shop.post("/", "o-1", "book").await;
    assert_eq!((first.0, first.2), (StatusCode::CREATED, false));
    let again = shop.post("/", "o-1", "book").await;
    assert_eq!(
        (again.0, &again.1, again.2),
        (StatusCode::CREATED, &first.1, true)
    );
    assert_eq!(shop.calls.load(SeqCst), 1);
    assert_eq!(shop.orders().await, 1);
    shop.schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_answer_keeps_nothing_and_the_retry_runs() {
    let shop = Shop::open().await;
    let failed = shop.post("/fail", "o-2", "pen").await;
    assert_eq!(failed.0, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(shop.orders().await, 0, "the insert was rolled back");
    // The key was released: the retry runs, and this time succeeds.
    assert_eq!(shop.post("/", "o-2", "pen").await.0, StatusCode::CREATED);
    assert_eq!(shop.calls.load(SeqCst), 2);
    assert_eq!(shop.orders().await, 1);
    shop.schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_whose_own_transaction_aborts_keeps_nothing_and_trips_no_breaker() {
    let shop = Shop::open().await;
    // More than the three failures in a row that would open the store's breaker.
    for _ in 0..4 {
        let rejected = shop.post("/reject", "o-6", "mug").await;
        assert_eq!((rejected.0, rejected.2), (StatusCode::CONFLICT, false));
    }
    assert_eq!(shop.calls.load(SeqCst), 4, "not stored: each retry ran");
    assert_eq!(
        shop.orders().await,
        0,
        "nothing of an aborted transaction is kept"
    );
    // The store is fine, and says so: a new request goes through.
    assert_eq!(shop.post("/", "o-7", "mug").await.0, StatusCode::CREATED);
    assert_eq!(shop.orders().await, 1);
    shop.schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_lost_before_the_commit_keeps_nothing_and_says_so() {
    let shop = Shop::open().await;
    let request = post_with_key("/steal", Some("o-3"), "ink");
    let response = shop.svc.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(response.headers().contains_key("retry-after"));
    let (_, body, _) = text(response).await;
    assert!(body.contains("idempotency-uncommitted"), "{body}");
    assert_eq!(shop.orders().await, 0, "the insert was rolled back");
    shop.schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_without_a_transaction_keeps_the_usual_semantics() {
    let schema = Schema::new().await;
    let store = schema.store().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let svc =
        IdempotencyLayer::new("orders", store, Scope::global()).layer(service_fn(
            move |_: Request<RequestBody<Full<Bytes>>>| {
                let n = counted.fetch_add(1, SeqCst);
                async move {
                    Ok::<_, BoxError>(Response::new(Full::new(Bytes::from(format!("run {n}")))))
                }
            },
        ));
    let first = text(
        svc.clone()
            .oneshot(post_with_key("/", Some("o-4"), "x"))
            .await
            .unwrap(),
    )
    .await;
    let again = text(
        svc.clone()
            .oneshot(post_with_key("/", Some("o-4"), "x"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (first.1.as_str(), again.1.as_str(), again.2),
        ("run 0", "run 0", true)
    );
    assert_eq!(calls.load(SeqCst), 1);
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_extractor_hands_the_transaction_and_refuses_without_a_key() {
    let schema = Schema::new().await;
    let table = orders_table(&schema).await;
    let store = schema.store().await;
    let insert = format!("INSERT INTO {table} (body) VALUES ($1) RETURNING id");
    let app = Router::new()
        .route(
            "/orders",
            post(move |mut tx: KeyedTransaction, body: String| async move {
                let id: i64 = sqlx::query_scalar(&insert)
                    .bind(body)
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                (StatusCode::CREATED, format!("order {id}"))
            }),
        )
        .layer(IdempotencyLayer::new("orders", store, Scope::global()));

    let created = text(
        app.clone()
            .oneshot(post_with_key("/orders", Some("o-5"), "cup"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(created.0, StatusCode::CREATED);
    let replayed = text(
        app.clone()
            .oneshot(post_with_key("/orders", Some("o-5"), "cup"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((&replayed.1, replayed.2), (&created.1, true));
    assert_eq!(count(&schema, &table).await, 1);

    // No key (not required here): nothing was claimed, so there is no keyed transaction —
    // the server's mistake, said as a problem.
    let response = app
        .oneshot(post_with_key("/orders", None, "cup"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let (_, body, _) = text(response).await;
    assert!(body.contains("no-keyed-transaction"), "{body}");
    assert_eq!(count(&schema, &table).await, 1);
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_before_the_commit_leaves_nothing_and_the_retry_runs_once() {
    let shop = Shop::open().await;
    // Wait until the handler has inserted its order (uncommitted: it holds the row lock of
    // an insert on the orders table), then drop the request, as hyper does when the
    // client disconnects.
    let schema = shop.schema.name.clone();
    let inserting = format!(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = '{schema}' AND c.relname = 'orders'
              AND l.mode = 'RowExclusiveLock' AND l.pid <> pg_backend_pid()"
    );
    let inserted = async {
        loop {
            let held: i64 = sqlx::query_scalar(&inserting)
                .fetch_one(&shop.schema.pool)
                .await
                .unwrap();
            if held > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    let gone = shop
        .svc
        .clone()
        .oneshot(post_with_key("/hang-once", Some("o-gone"), "book"));
    tokio::select! {
        _ = gone => panic!("the hanging handler answered"),
        () = inserted => {}
    }

    // The transaction rolled back with the dropped request and the key was released: the
    // retry runs the handler again, and there is one order.
    let retry = loop {
        let retry = shop.post("/hang-once", "o-gone", "book").await;
        if retry.0 != StatusCode::CONFLICT {
            break retry;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!((retry.0, retry.2), (StatusCode::CREATED, false));
    assert_eq!(shop.calls.load(SeqCst), 2);
    assert_eq!(shop.orders().await, 1);
    let again = shop.post("/hang-once", "o-gone", "book").await;
    assert_eq!(
        (again.0, &again.1, again.2),
        (StatusCode::CREATED, &retry.1, true)
    );
    assert_eq!(shop.orders().await, 1);
    shop.schema.drop().await;
}
