//! The statements, written once per store for its table.
//!
//! Every time is the database's clock (`clock_timestamp()`), never the application's: the
//! instances of a service agree on when a lease runs out as they agree on the record. A
//! record past its `expires_at` is gone for every operation, as a Redis key past its expiry
//! is; [`PostgresStore::cleanup`](super::PostgresStore::cleanup) deletes the rows later.

use std::time::Duration;

use crate::record::{Fingerprint, RecordKey, push_hex};

/// A record's state column.
pub(super) const IN_FLIGHT: i16 = 0;
pub(super) const DONE: i16 = 1;

/// The statements for one table.
#[derive(Debug)]
pub(super) struct Statements {
    /// The table's own name, which a unique violation on it names.
    pub(super) table: String,
    /// The table, quoted and qualified by its schema.
    pub(super) qualified: String,
    pub(super) create_schema: Option<String>,
    pub(super) create_table: String,
    pub(super) create_index: String,
    pub(super) claim: String,
    pub(super) take_over: String,
    pub(super) complete: String,
    pub(super) release: String,
    pub(super) extend: String,
    pub(super) lookup: String,
    pub(super) cleanup: String,
    pub(super) insert_completed: String,
}

impl Statements {
    /// The statements for table `table` in `schema` (the connection's search path if
    /// `None`); both names are checked identifiers (see [`identifier`]).
    pub(super) fn new(schema: Option<&str>, table: &str) -> Self {
        let qualified = match schema {
            Some(schema) => format!("\"{schema}\".\"{table}\""),
            None => format!("\"{table}\""),
        };
        let t = &qualified;
        Self {
            table: table.to_owned(),
            create_schema: schema.map(|s| format!("CREATE SCHEMA IF NOT EXISTS \"{s}\"")),
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    key bytea PRIMARY KEY,
                    state smallint NOT NULL,
                    owner bytea,
                    fingerprint bytea NOT NULL,
                    response bytea,
                    expires_at timestamptz NOT NULL
                )"
            ),
            create_index: format!(
                "CREATE INDEX IF NOT EXISTS \"{table}_expires_at\" ON {t} (expires_at)"
            ),
            // One statement: create the record, or read the one there (and whether it is
            // still live). `DO NOTHING` takes no lock on a row it finds, so a replay or a
            // duplicate in flight writes nothing (no WAL to flush). Its SELECT sees the
            // snapshot taken before the INSERT, so it finds the row the INSERT did not take;
            // a row committed by a concurrent claim after that snapshot is in neither, and
            // the store asks again.
            claim: format!(
                "WITH claimed AS (
                    INSERT INTO {t} (key, state, owner, fingerprint, response, expires_at)
                    VALUES ($1, {IN_FLIGHT}, $2, $3, NULL,
                            clock_timestamp() + make_interval(secs => $4))
                    ON CONFLICT (key) DO NOTHING
                    RETURNING 1
                )
                SELECT TRUE, NULL::smallint, NULL::bytea, NULL::bytea, TRUE FROM claimed
                UNION ALL
                SELECT FALSE, state, fingerprint, response, expires_at > clock_timestamp()
                    FROM {t}
                    WHERE key = $1 AND NOT EXISTS (SELECT 1 FROM claimed)"
            ),
            // A record whose lease or time to live ran out is taken over — only if it is
            // still expired when the update locks it.
            take_over: format!(
                "UPDATE {t} SET state = {IN_FLIGHT}, owner = $2, fingerprint = $3,
                        response = NULL,
                        expires_at = clock_timestamp() + make_interval(secs => $4)
                    WHERE key = $1 AND expires_at <= clock_timestamp()"
            ),
            complete: format!(
                "UPDATE {t} SET state = {DONE}, owner = NULL, response = $3,
                        expires_at = clock_timestamp() + make_interval(secs => $4)
                    WHERE key = $1 AND state = {IN_FLIGHT} AND owner = $2
                        AND expires_at > clock_timestamp()"
            ),
            // A claim whose lease ran out is gone, for its owner too (as a Redis key past
            // its expiry is): it is neither released, extended nor completed.
            release: format!(
                "DELETE FROM {t} WHERE key = $1 AND state = {IN_FLIGHT} AND owner = $2
                    AND expires_at > clock_timestamp()"
            ),
            extend: format!(
                "UPDATE {t} SET expires_at = clock_timestamp() + make_interval(secs => $3)
                    WHERE key = $1 AND state = {IN_FLIGHT} AND owner = $2
                        AND expires_at > clock_timestamp()"
            ),
            lookup: format!(
                "SELECT state, fingerprint, response FROM {t}
                    WHERE key = $1 AND expires_at > clock_timestamp()"
            ),
            // Bounded: a table with millions of expired rows is emptied a batch at a time,
            // each a short transaction, skipping rows a claim is taking over right now.
            cleanup: format!(
                "DELETE FROM {t} WHERE key IN (
                    SELECT key FROM {t} WHERE expires_at <= clock_timestamp()
                    LIMIT $1 FOR UPDATE SKIP LOCKED
                )"
            ),
            // Claiming at commit, for a handler that did not take the transaction: the
            // record is created completed, or takes the place of an expired one; a live
            // record is left alone (no row), and the caller learns it lost.
            insert_completed: format!(
                "INSERT INTO {t} AS r (key, state, owner, fingerprint, response, expires_at)
                    VALUES ($1, {DONE}, NULL, $2, $3,
                            clock_timestamp() + make_interval(secs => $4))
                    ON CONFLICT (key) DO UPDATE SET state = {DONE}, owner = NULL,
                        fingerprint = EXCLUDED.fingerprint, response = EXCLUDED.response,
                        expires_at = EXCLUDED.expires_at
                    WHERE r.expires_at <= clock_timestamp()"
            ),
            qualified,
        }
    }

    /// The one message that ends a handler's transaction when claiming at commit: the
    /// completed record, then `COMMIT`, sent together so that they cost one round trip (sqlx
    /// sends nothing pipelined, so they go as one simple-protocol query; its values are
    /// inlined as hex, which is all they can be: the hashes and the encoded response are
    /// bytes of our own making, and `ttl` a number).
    ///
    /// An expired record of the key is deleted first, so that a live one — a duplicate that
    /// committed first, or a retry of a finished request — makes the `INSERT` fail with a
    /// unique violation on this table. The statements after a failed one are not run: the
    /// `COMMIT` with them, and the handler's work is not kept. The last `BEGIN` opens an
    /// empty transaction, for sqlx to roll back when it lets the connection go (it still
    /// counts the handler's as open; with nothing open, that `ROLLBACK` would be warned of
    /// on every request).
    pub(super) fn record_and_commit(
        &self,
        key: &RecordKey,
        fingerprint: &Fingerprint,
        response: &[u8],
        ttl: Duration,
    ) -> String {
        let t = &self.qualified;
        let mut out = String::with_capacity(400 + 2 * response.len());
        let bytea = |out: &mut String, bytes: &[u8]| {
            out.push_str("decode('");
            push_hex(out, bytes);
            out.push_str("', 'hex')");
        };
        out.push_str("DELETE FROM ");
        out.push_str(t);
        out.push_str(" WHERE key = ");
        bytea(&mut out, key.as_bytes());
        out.push_str(" AND expires_at <= clock_timestamp();\nINSERT INTO ");
        out.push_str(t);
        out.push_str(" (key, state, owner, fingerprint, response, expires_at) VALUES (");
        bytea(&mut out, key.as_bytes());
        out.push_str(&format!(", {DONE}, NULL, "));
        bytea(&mut out, &fingerprint.0);
        out.push_str(", ");
        bytea(&mut out, response);
        out.push_str(&format!(
            ", clock_timestamp() + make_interval(secs => {}));\nCOMMIT;\nBEGIN",
            ttl.as_secs_f64()
        ));
        out
    }
}

/// Whether `name` may name a schema or a table here: letters, digits and `_`, not starting
/// with a digit, at most 63 bytes (PostgreSQL's limit). Names are quoted into the
/// statements, so this is what keeps them statements.
pub(super) fn identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_are_names() {
        for good in ["palisade_idempotency", "_t", "Orders2"] {
            assert!(identifier(good), "{good}");
        }
        let long = "a".repeat(64);
        for bad in ["", "2fa", "a-b", "a\"; DROP TABLE x; --", "a.b", "ü", &long] {
            assert!(!identifier(bad), "{bad}");
        }
    }

    #[test]
    fn statements_name_the_qualified_table() {
        let s = Statements::new(Some("tenant_a"), "records");
        assert!(s.claim.contains("\"tenant_a\".\"records\""));
        assert!(s.create_index.contains("\"records_expires_at\""));
        assert_eq!(
            s.create_schema.as_deref(),
            Some("CREATE SCHEMA IF NOT EXISTS \"tenant_a\"")
        );
        assert!(Statements::new(None, "records").create_schema.is_none());
    }

    #[test]
    fn the_commit_message_inlines_only_hex_and_numbers() {
        let s = Statements::new(Some("tenant_a"), "records");
        let key = RecordKey::new("", "k");
        let message = s.record_and_commit(
            &key,
            &Fingerprint([0xab; 32]),
            b"'); DROP TABLE x; --",
            Duration::from_millis(1500),
        );
        assert!(message.contains(&format!("decode('{}', 'hex')", key.to_hex())));
        assert!(message.contains(&"ab".repeat(32)));
        assert!(!message.contains("DROP"), "the response is hex, never text");
        assert!(message.contains("make_interval(secs => 1.5)"));
        assert!(message.ends_with("COMMIT;\nBEGIN"));
    }
}
