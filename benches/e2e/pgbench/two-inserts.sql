BEGIN;
INSERT INTO pgb.orders (body) VALUES ('{"item":"x"}') RETURNING id;
INSERT INTO pgb.orders (body) VALUES ('{"item":"x"}') RETURNING id;
COMMIT;
