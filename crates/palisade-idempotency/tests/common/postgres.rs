//! A schema of its own per test, in the machine's PostgreSQL.

use palisade_idempotency::store::postgres::PostgresStore;
use sqlx::postgres::{PgPool, PgPoolOptions};

/// The database the tests use: `PALISADE_POSTGRES_URL`, or the local server's `test`
/// database (trust auth on 127.0.0.1, as this project's machines have it).
pub(crate) fn url() -> String {
    std::env::var("PALISADE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema made for one test, with the store's table in it.
pub(crate) struct Schema {
    pub(crate) name: String,
    pub(crate) pool: PgPool,
}

impl Schema {
    /// A new, empty schema; panics with what to do when PostgreSQL is not there.
    pub(crate) async fn new() -> Schema {
        // A random owner token is a random u128: a fresh name.
        let name = format!("t_{:032x}", palisade_idempotency::record::Owner::random().0);
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect(&url())
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "PostgreSQL at {} is not reachable ({error}); start it (pg_ctlcluster 15 main start) or set PALISADE_POSTGRES_URL",
                    url()
                )
            });
        sqlx::query(&format!("CREATE SCHEMA \"{name}\""))
            .execute(&pool)
            .await
            .unwrap();
        Schema { name, pool }
    }

    /// A store (its own pool: another instance of the service) over this schema's table,
    /// the table made.
    pub(crate) async fn store(&self) -> PostgresStore {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(&url())
            .await
            .unwrap();
        let store = PostgresStore::new(pool)
            .table(Some(&self.name), "records")
            .unwrap();
        store.ensure_schema().await.unwrap();
        store
    }

    /// Drops the schema and all in it.
    pub(crate) async fn drop(self) {
        sqlx::query(&format!("DROP SCHEMA \"{}\" CASCADE", self.name))
            .execute(&self.pool)
            .await
            .unwrap();
    }
}
