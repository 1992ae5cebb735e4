//! The `postgres_server` example on loopback, in a schema of its own: a keyed POST creates
//! one order, its retry is the same answer replayed, and the order can be read back.

#[path = "../postgres_server.rs"]
#[allow(dead_code, reason = "the example's main is not run here")]
mod postgres_server;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade::idempotency::store::postgres::PostgresStore;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn url() -> String {
    std::env::var("PALISADE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A response's status, body, and whether it is a replay.
async fn read<B>(response: http::Response<B>) -> (http::StatusCode, Bytes, bool)
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body, replayed)
}

#[tokio::test]
async fn the_postgres_example_creates_each_order_once() {
    let admin = PgPoolOptions::new()
        .connect(&url())
        .await
        .expect("PostgreSQL is up");
    let schema = format!(
        "example_{:032x}",
        palisade::idempotency::record::Owner::random().0
    );
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&admin)
        .await
        .unwrap();
    // The example's tables in the test's schema, through the search path.
    let options: PgConnectOptions = url().parse().unwrap();
    let pool = PgPoolOptions::new()
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    let store = PostgresStore::new(pool.clone());
    postgres_server::migrate(&store).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, postgres_server::app(store)).await });

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let post = || {
        http::Request::post(format!("http://{addr}/orders"))
            .header("idempotency-key", "\"o-1\"")
            .body(Full::new(Bytes::from_static(b"a book")))
            .unwrap()
    };
    let first = read(client.request(post()).await.unwrap()).await;
    assert_eq!(first.0, http::StatusCode::CREATED);
    assert_eq!(first.1, "order 1: a book");
    let again = read(client.request(post()).await.unwrap()).await;
    assert_eq!((again.0, &again.1, again.2), (first.0, &first.1, true));

    let uri = format!("http://{addr}/orders/1").parse().unwrap();
    let (status, body, _) = read(client.get(uri).await.unwrap()).await;
    assert_eq!((status, &body[..]), (http::StatusCode::OK, &b"a book"[..]));
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(orders, 1);
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}
