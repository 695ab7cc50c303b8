-- 35_restore_skip: restoring around keys that were reused
-- While a batch is archived, its keys may be given to new rows. restore() refuses then;
-- restore(..., on_conflict => 'skip') restores what it can and leaves in the archive every
-- row whose key exists again, together with every archived row that references such a row
-- (transitively, through the foreign keys between the batch's tables, cycles included): put
-- back, they would belong to the new row that took the key. A detached reference (ON DELETE
-- SET NULL / SET DEFAULT) is reattached only to a row this restore put back. The batch is
-- then partly restored, a NOTICE says how many rows stayed and why, and a later restore
-- (once the key is free again) puts back the rest.
-- This file runs in a database of its own, so that batch ids (shown in NOTICEs) start at 1.
SELECT current_database() AS home \gset
CREATE DATABASE uproot_restore_skip;
\c uproot_restore_skip
SET client_min_messages = warning;
CREATE EXTENSION pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA skip;
SET search_path = skip;

-- customers <- orders <- items, orders <- order_log (no primary key), and tickets that
-- reference a customer and an order ON DELETE SET NULL (archive detaches them).
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, total numeric(10, 2));
CREATE TABLE items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders, sku text);
CREATE TABLE order_log (order_id int NOT NULL REFERENCES orders, message text);
CREATE TABLE tickets (id int PRIMARY KEY,
                      customer_id int REFERENCES customers ON DELETE SET NULL,
                      order_id int REFERENCES orders ON DELETE SET NULL,
                      subject text);
INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bob');
INSERT INTO orders VALUES (10, 1, 5.00), (11, 1, 7.50), (20, 2, 9.99);
INSERT INTO items VALUES (100, 10, 'pen'), (101, 10, 'ink'), (110, 11, 'pad'), (200, 20, 'cup');
INSERT INTO order_log VALUES (10, 'paid'), (10, 'shipped'), (20, 'paid');
INSERT INTO tickets VALUES (1, 1, 10, 'late delivery'), (2, 2, 20, 'wrong colour'), (3, 1, NULL, 'new address');
CREATE TABLE saved AS
  SELECT 'customers' AS t, to_jsonb(c) AS r FROM customers c UNION ALL
  SELECT 'orders', to_jsonb(o) FROM orders o UNION ALL SELECT 'items', to_jsonb(i) FROM items i UNION ALL
  SELECT 'order_log', to_jsonb(l) FROM order_log l UNION ALL SELECT 'tickets', to_jsonb(k) FROM tickets k;
-- differences(): every row that is not as it was, per table (missing or extra).
CREATE FUNCTION differences() RETURNS TABLE (t text, change text, r jsonb) LANGUAGE sql AS $$
  WITH now AS (
    SELECT 'customers' AS t, to_jsonb(c) AS r FROM customers c UNION ALL
    SELECT 'orders', to_jsonb(o) FROM orders o UNION ALL SELECT 'items', to_jsonb(i) FROM items i UNION ALL
    SELECT 'order_log', to_jsonb(l) FROM order_log l UNION ALL SELECT 'tickets', to_jsonb(k) FROM tickets k)
  (SELECT t, 'missing', r FROM saved EXCEPT ALL SELECT t, 'missing', r FROM now)
  UNION ALL
  (SELECT t, 'extra', r FROM now EXCEPT ALL SELECT t, 'extra', r FROM saved)
$$;
SELECT source, archive, action FROM uproot.prepare_archive('customers') ORDER BY source::text;
-- in_archive(): what the archive holds, per table.
CREATE FUNCTION in_archive() RETURNS text LANGUAGE sql AS $$
  SELECT format('customers=%s orders=%s items=%s order_log=%s',
                (SELECT count(*) FROM uproot_archive."skip.customers"), (SELECT count(*) FROM uproot_archive."skip.orders"),
                (SELECT count(*) FROM uproot_archive."skip.items"), (SELECT count(*) FROM uproot_archive."skip.order_log"))
$$;
-- state(id): the batch's state in the ledger.
CREATE FUNCTION state(id bigint) RETURNS TABLE (restored boolean, partly_restored boolean) LANGUAGE sql AS $$
  SELECT restored_at IS NOT NULL, partly_restored_at IS NOT NULL FROM uproot.batches b WHERE b.id = state.id
$$;

-- Ann and Bob are archived in one batch (batch 1). Their tickets stay, detached.
SELECT batch_id, relation, action, rows FROM uproot.archive('customers', array[1, 2]) ORDER BY relation::text, action;
SELECT * FROM tickets ORDER BY id;

-- Customer number 1 is given to Carol, who has no orders.
INSERT INTO customers VALUES (1, 'Carol');

-- A plain restore refuses, and changes nothing.
\x on
SELECT * FROM regress.error_of('SELECT * FROM uproot.restore(1)');
\x off
SELECT in_archive();

-- on_conflict => 'skip': Bob's family comes back. Ann stays archived, and so do her two
-- orders, their three items and the two log lines of order 10 (a table without primary key):
-- none of them is attached to Carol. The result counts what stayed as 'skipped'; the NOTICE
-- says why.
SELECT relation, action, rows FROM uproot.restore(1, on_conflict => 'skip') ORDER BY relation::text, action;
SELECT * FROM customers ORDER BY id;
SELECT * FROM orders ORDER BY id;
SELECT * FROM order_log ORDER BY order_id, message;
SELECT in_archive();
-- Only Bob's ticket is reattached. Ann's tickets stay detached, not pointed at Carol; their
-- record waits in the ledger for Ann.
SELECT * FROM tickets ORDER BY id;
SELECT row_key, constraint_name, old_values FROM uproot.batch_detached WHERE batch_id = 1
 ORDER BY row_key->>'id', constraint_name;
-- The batch is partly restored, not restored.
SELECT * FROM state(1);

-- Restoring it again while Carol holds the key: refused without skip, and with skip nothing
-- more comes back.
\x on
SELECT sql_state, message FROM regress.error_of('SELECT * FROM uproot.restore(1)');
\x off
SELECT relation, action, rows FROM uproot.restore(1, on_conflict => 'skip') ORDER BY relation::text, action;
SELECT in_archive();

-- Once the key is free (Carol is renumbered), restore puts back the rest, and reattaches
-- Ann's tickets. The batch is restored; every row is as it was, and Carol is the only extra.
UPDATE customers SET id = 3 WHERE id = 1;
SELECT relation, action, rows FROM uproot.restore(1) ORDER BY relation::text, action;
SELECT * FROM differences() ORDER BY t, change, r::text;
SELECT in_archive();
SELECT count(*) AS detached_left FROM uproot.batch_detached WHERE batch_id = 1;
SELECT * FROM state(1);
\x on
SELECT sql_state, message LIKE 'uproot: batch 1 was already restored at %' AS already_restored
  FROM regress.error_of('SELECT * FROM uproot.restore(1)');
\x off
DELETE FROM customers WHERE id = 3;

-- A reused key deep in the family keeps only its own subtree: order 11 is archived with Ann
-- (batch 2), and order number 11 is reused for Bob. Ann and order 10 come back; order 11
-- and its item stay.
SELECT batch_id, relation, action, rows FROM uproot.archive('customers', 1) ORDER BY relation::text, action;
INSERT INTO orders VALUES (11, 2, 1.00);
SELECT relation, action, rows FROM uproot.restore(2, on_conflict => 'skip') ORDER BY relation::text, action;
SELECT * FROM orders ORDER BY id;
SELECT * FROM items ORDER BY id;
SELECT id, order_id, sku FROM uproot_archive."skip.items" WHERE _uproot_batch = 2;
DELETE FROM orders WHERE id = 11;
SELECT relation, action, rows FROM uproot.restore(2) ORDER BY relation::text, action;
SELECT * FROM differences() ORDER BY t, change, r::text;

-- Through a cycle: teams <- players (team_id), players <- teams (captain_id). Team 1 is
-- archived with its players 11 and 12 (captain 11) (batch 3). Player number 11 is reused in
-- team 2. Player 11 stays; team 1 references it as captain and stays; player 12 references
-- team 1 and stays: nothing comes back.
CREATE TABLE teams (id int PRIMARY KEY, name text, captain_id int);
CREATE TABLE players (id int PRIMARY KEY, team_id int NOT NULL REFERENCES teams);
ALTER TABLE teams ADD FOREIGN KEY (captain_id) REFERENCES players;
INSERT INTO teams VALUES (1, 'red', NULL), (2, 'blue', NULL);
INSERT INTO players VALUES (11, 1), (12, 1), (21, 2);
UPDATE teams SET captain_id = 11 WHERE id = 1;
SELECT batch_id, relation, action, rows FROM uproot.archive('teams', 1) ORDER BY relation::text, action;
INSERT INTO players VALUES (11, 2);
SELECT relation, action, rows FROM uproot.restore(3, on_conflict => 'skip') ORDER BY relation::text, action;
SELECT * FROM teams ORDER BY id;
SELECT * FROM players ORDER BY id;
SELECT * FROM state(3);
-- With the key free again, the whole team comes back.
DELETE FROM players WHERE id = 11;
SELECT relation, action, rows FROM uproot.restore(3) ORDER BY relation::text, action;
SELECT * FROM teams ORDER BY id;
SELECT * FROM players ORDER BY id;

-- Who may restore: whoever may run the statements a restore runs (SELECT and DELETE on the
-- archive tables, SELECT and INSERT on the sources, UPDATE where references are reattached).
-- The ledger is not theirs to write: here nobody but its owner may even read it, and a
-- clerk still restores, and is recorded as the one who did.
REVOKE ALL ON uproot.batches, uproot.batch_relations, uproot.batch_detached FROM PUBLIC;
CREATE ROLE uproot_restore_clerk;
GRANT USAGE ON SCHEMA skip TO uproot_restore_clerk;
GRANT SELECT, INSERT, UPDATE, DELETE ON customers, orders, items, order_log, tickets TO uproot_restore_clerk;
GRANT SELECT, INSERT, DELETE ON ALL TABLES IN SCHEMA uproot_archive TO uproot_restore_clerk;
SELECT batch_id, relation, action, rows FROM uproot.archive('customers', 2) ORDER BY relation::text, action;
SET ROLE uproot_restore_clerk;
SELECT * FROM regress.error_of('SELECT count(*) FROM uproot.batches');
SELECT relation, action, rows FROM uproot.restore(4) ORDER BY relation::text, action;
RESET ROLE;
SELECT restored_by FROM uproot.batches WHERE id = 4;
-- Without INSERT on a source, the clerk's restore fails with PostgreSQL's own error, and
-- nothing changes.
SELECT batch_id, relation, action, rows FROM uproot.archive('customers', 2) ORDER BY relation::text, action;
REVOKE INSERT ON order_log FROM uproot_restore_clerk;
SET ROLE uproot_restore_clerk;
SELECT * FROM regress.error_of('SELECT * FROM uproot.restore(5)');
RESET ROLE;
SELECT in_archive();
SELECT * FROM state(5);
SELECT relation, action, rows FROM uproot.restore(5) ORDER BY relation::text, action;
SELECT * FROM differences() ORDER BY t, change, r::text;

\c :home
DROP DATABASE uproot_restore_skip;
DROP ROLE uproot_restore_clerk;
