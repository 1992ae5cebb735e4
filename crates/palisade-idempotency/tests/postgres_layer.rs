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
use palisade_idempotency::{
    Idempotency, IdempotencyConfig, IdempotencyLayer, REPLAYED, RequestBody, Scope,
};
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
        Self::open_with(|store| store).await
    }

    /// A shop whose store claims at commit.
    async fn open_at_commit() -> Shop {
        Self::open_with(PostgresStore::claim_at_commit).await
    }

    async fn open_with(configure: impl Fn(PostgresStore) -> PostgresStore) -> Shop {
        let schema = Schema::new().await;
        let table = orders_table(&schema).await;
        let calls = Arc::new(AtomicUsize::new(0));
        let store = configure(schema.store().await);
        let svc = Self::instance(&table, &calls, store);
        Shop {
            schema,
            table,
            calls,
            svc,
        }
    }

    /// The keyed order service over `store`: one instance of the shop's service.
    fn instance(
        table: &str,
        calls: &Arc<AtomicUsize>,
        store: PostgresStore,
    ) -> Idempotency<Orders> {
        let handler = order_service(table.to_owned(), calls.clone(), store.clone());
        IdempotencyLayer::new("orders", store, Scope::global()).layer(BoxCloneService::new(handler))
    }

    /// POSTs `body` to `path` with idempotency key `key`: status, body, whether replayed.
    async fn post(&self, path: &str, key: &str, body: &'static str) -> (StatusCode, String, bool) {
        send(&self.svc, path, key, body).await
    }

    async fn orders(&self) -> i64 {
        count(&self.schema, &self.table).await
    }
}

/// POSTs `body` to `path` through `svc` with idempotency key `key`: status, body, whether
/// replayed.
async fn send(
    svc: &Idempotency<Orders>,
    path: &str,
    key: &str,
    body: &'static str,
) -> (StatusCode, String, bool) {
    let request = post_with_key(path, Some(key), body);
    text(svc.clone().oneshot(request).await.unwrap()).await
}

/// The layer over `store` in front of a handler that takes no transaction and answers
/// `run N`, N counting its calls from 0.
fn without_transaction(store: PostgresStore) -> (Idempotency<Orders>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let handler = service_fn(move |_: Request<RequestBody<Full<Bytes>>>| {
        let n = counted.fetch_add(1, SeqCst);
        async move { Ok::<_, BoxError>(Response::new(Full::new(Bytes::from(format!("run {n}"))))) }
    });
    let svc = IdempotencyLayer::new("orders", store, Scope::global())
        .layer(BoxCloneService::new(handler));
    (svc, calls)
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
    let (svc, calls) = without_transaction(schema.store().await);
    let first = send(&svc, "/", "o-4", "x").await;
    let again = send(&svc, "/", "o-4", "x").await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claiming_at_commit_keeps_one_order_for_concurrent_duplicates_on_two_instances() {
    let shop = Shop::open_at_commit().await;
    let other = Shop::instance(
        &shop.table,
        &shop.calls,
        shop.schema.store().await.claim_at_commit(),
    );
    // On one thread (the service's future is not `Send` to the compiler's eye here), all
    // in flight at once: their transactions overlap in the database.
    let local = tokio::task::LocalSet::new();
    let duplicates: Vec<_> = (0..40)
        .map(|i| {
            let svc = if i % 2 == 0 {
                shop.svc.clone()
            } else {
                other.clone()
            };
            local.spawn_local(async move {
                let request = post_with_key("/", Some("o-c"), "book");
                text(svc.oneshot(request).await.unwrap()).await
            })
        })
        .collect();
    let answers = local
        .run_until(async {
            let mut answers = Vec::new();
            for duplicate in duplicates {
                answers.push(duplicate.await.unwrap());
            }
            answers
        })
        .await;
    let (status, first, _) = answers[0].clone();
    assert_eq!(status, StatusCode::CREATED);
    for (status, body, _) in &answers {
        assert_eq!(
            (*status, body),
            (StatusCode::CREATED, &first),
            "one answer for all"
        );
    }
    assert_eq!(
        answers.iter().filter(|a| !a.2).count(),
        1,
        "one answer is the handler's, the others replays"
    );
    assert_eq!(
        shop.orders().await,
        1,
        "the duplicates' orders were rolled back"
    );

    // A retry of the finished request runs the handler too, and keeps nothing of it.
    let calls = shop.calls.load(SeqCst);
    let again = shop.post("/", "o-c", "book").await;
    assert_eq!(
        (again.0, &again.1, again.2),
        (StatusCode::CREATED, &first, true)
    );
    assert_eq!(shop.calls.load(SeqCst), calls + 1);
    assert_eq!(shop.orders().await, 1);
    // The same key for another request: refused, and nothing kept.
    assert_eq!(
        shop.post("/", "o-c", "pen").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(shop.orders().await, 1);
    shop.schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claiming_at_commit_keeps_nothing_of_a_failure_and_takes_over_an_expired_record() {
    let shop = Shop::open_at_commit().await;
    assert_eq!(
        shop.post("/fail", "o-e", "ink").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(shop.orders().await, 0, "the insert was rolled back");
    let first = shop.post("/", "o-e", "ink").await;
    assert_eq!((first.0, first.2), (StatusCode::CREATED, false));
    assert_eq!(shop.orders().await, 1);

    // The record's time to live runs out: the key is new again.
    sqlx::query(&format!(
        "UPDATE \"{}\".records SET expires_at = clock_timestamp() - interval '1 second'",
        shop.schema.name
    ))
    .execute(&shop.schema.pool)
    .await
    .unwrap();
    let later = shop.post("/", "o-e", "ink").await;
    assert_eq!((later.0, later.2), (StatusCode::CREATED, false));
    assert_ne!(later.1, first.1, "a new order, not a replay");
    assert_eq!(shop.orders().await, 2);
    let replayed = shop.post("/", "o-e", "ink").await;
    assert_eq!((&replayed.1, replayed.2), (&later.1, true));
    assert_eq!(shop.orders().await, 2);
    shop.schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claiming_at_commit_records_a_handler_that_took_no_transaction() {
    let schema = Schema::new().await;
    let (svc, calls) = without_transaction(schema.store().await.claim_at_commit());
    let first = send(&svc, "/", "o-n", "x").await;
    let again = send(&svc, "/", "o-n", "x").await;
    assert_eq!(
        (first.1.as_str(), again.1.as_str(), again.2),
        ("run 0", "run 0", true)
    );
    assert_eq!(
        calls.load(SeqCst),
        2,
        "at commit, a retry runs before it finds the record"
    );
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_open_the_handler_still_gets_its_transaction_committed_without_a_record() {
    let schema = Schema::new().await;
    let table = orders_table(&schema).await;
    // The records' table was never made: every claim fails, while the database is there.
    let broken = schema
        .store()
        .await
        .table(Some(&schema.name), "missing")
        .unwrap();
    let config = IdempotencyConfig::builder("orders", Scope::global())
        .fail_open(true)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = order_service(table.clone(), calls.clone(), broken.clone());
    let svc = IdempotencyLayer::with_config(broken, config).layer(BoxCloneService::new(handler));

    let ran = send(&svc, "/", "o-open", "book").await;
    assert_eq!((ran.0, ran.2), (StatusCode::CREATED, false));
    assert_eq!(count(&schema, &table).await, 1, "committed");
    // Unprotected: the retry runs again (and commits again) — what failing open means.
    let again = send(&svc, "/", "o-open", "book").await;
    assert_eq!((again.0, again.2), (StatusCode::CREATED, false));
    assert_eq!(count(&schema, &table).await, 2);
    // A failure's work is rolled back, as a claimed request's would be.
    let failed = send(&svc, "/fail", "o-open-2", "pen").await;
    assert_eq!(failed.0, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(count(&schema, &table).await, 2, "rolled back");
    assert_eq!(calls.load(SeqCst), 3);
    schema.drop().await;
}
