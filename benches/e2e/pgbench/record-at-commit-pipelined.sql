\set k random(1, 1000000000000)
BEGIN;
INSERT INTO pgb.orders (body) VALUES ('{"item":"x"}') RETURNING id;
\startpipeline
INSERT INTO pgb.records (key, state, owner, fingerprint, response, expires_at) VALUES (sha256(int8send(:k)), 1, NULL, sha256('x'), '\x0000c8000000000000000000000b6f72646572203132333435', clock_timestamp() + make_interval(secs => 86400)) ON CONFLICT (key) DO NOTHING;
COMMIT;
\endpipeline
