-- The tables of the POST-postgres workload, in a schema of their own: the orders a
-- handler inserts, and palisade's idempotency records as PostgresStore::ensure_schema
-- makes them.
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
