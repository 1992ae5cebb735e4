\set k random(1, 1000000000000)
BEGIN;
WITH claimed AS (INSERT INTO pgb.records (key, state, owner, fingerprint, response, expires_at) VALUES (sha256(int8send(:k)), 0, '\x0102030405060708', sha256('x'), NULL, clock_timestamp() + make_interval(secs => 30)) ON CONFLICT (key) DO NOTHING RETURNING 1) SELECT TRUE, NULL::smallint, NULL::bytea, NULL::bytea, TRUE FROM claimed UNION ALL SELECT FALSE, state, fingerprint, response, expires_at > clock_timestamp() FROM pgb.records WHERE key = sha256(int8send(:k)) AND NOT EXISTS (SELECT 1 FROM claimed);
INSERT INTO pgb.orders (body) VALUES ('{"item":"x"}') RETURNING id;
UPDATE pgb.records SET state = 1, owner = NULL, response = '\x0000c8000000000000000000000b6f72646572203132333435', expires_at = clock_timestamp() + make_interval(secs => 86400) WHERE key = sha256(int8send(:k)) AND state = 0 AND owner = '\x0102030405060708';
COMMIT;
