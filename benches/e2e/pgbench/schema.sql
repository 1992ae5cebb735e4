-- The tables of the POST-postgres workload, in a schema of their own: the orders a
-- handler inserts, and palisade's idempotency records as PostgresStore::ensure_schema
-- makes them. A copy, since pgbench cannot run the store's code: keep the table (and the
-- claim and complete statements in keyed.sql) in step with
-- crates/palisade-idempotency/src/store/postgres/sql.rs.
DROP SCHEMA IF EXISTS pgb CASCADE;
CREATE SCHEMA pgb;
CREATE TABLE pgb.orders (id bigserial PRIMARY KEY, body text NOT NULL);
CREATE TABLE pgb.records (
    key bytea PRIMARY KEY,
    state smallint NOT NULL,
    owner bytea,
    fingerprint bytea NOT NULL,
    response bytea,
    expires_at timestamptz NOT NULL
);
CREATE INDEX records_expires_at ON pgb.records (expires_at);
