-- 37_erasure: erasure requests that cover the archive too
-- "Delete this customer and everything of theirs" must reach archived copies as well.
-- purge() and friends say so (a NOTICE) when the keys name no live row but the archive holds
-- rows with them; find_archived(root, keys) lists the batches that hold them (keys named as
-- for purge); drop_batch(batch_id) erases one batch: its archived rows (the caller needs
-- DELETE on the archive tables) and its ledger rows. A NOTICE also says when keys or a
-- predicate match nothing at all.
-- This file runs in a database of its own, so that batch ids (shown in NOTICEs) start at 1.
SELECT current_database() AS home \gset
CREATE DATABASE uproot_erasure;
\c uproot_erasure
SET client_min_messages = warning;
CREATE EXTENSION pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA erase;
SET search_path = erase;

-- customers <- orders <- items
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers);
CREATE TABLE items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders, sku text);
INSERT INTO customers SELECT c, 'customer ' || c, 'c' || c || '@example.com' FROM generate_series(1, 8) c;
INSERT INTO orders SELECT 10 * c + n, c FROM generate_series(1, 8) c, generate_series(1, 2) n;
INSERT INTO items SELECT 10 * o, o, 'sku' FROM orders o(o);
SELECT source, archive, action FROM uproot.prepare_archive('customers') ORDER BY source::text;
-- traces(ids): every row of these customers, live or archived, per table.
CREATE FUNCTION traces(ids int[]) RETURNS TABLE (t text, "rows" bigint) LANGUAGE sql AS $$
  SELECT 'customers', count(*) FROM customers WHERE id = ANY (ids)
  UNION ALL SELECT 'orders', count(*) FROM orders WHERE customer_id = ANY (ids)
  UNION ALL SELECT 'items', count(*) FROM items i JOIN orders o ON o.id = i.order_id WHERE o.customer_id = ANY (ids)
  UNION ALL SELECT 'archived customers', count(*) FROM uproot_archive."erase.customers" WHERE id = ANY (ids)
  UNION ALL SELECT 'archived orders', count(*) FROM uproot_archive."erase.orders" WHERE customer_id = ANY (ids)
  UNION ALL SELECT 'archived items', count(*) FROM uproot_archive."erase.items" a
                    WHERE a.order_id IN (SELECT id FROM uproot_archive."erase.orders" WHERE customer_id = ANY (ids))
$$;

-- Customer 3 is archived on its own (batch 1); customers 4 and 5 together (batch 2), by a
-- predicate.
SELECT batch_id, relation, action, rows FROM uproot.archive('customers', 3) ORDER BY relation::text, action;
SELECT batch_id, relation, action, rows FROM uproot.archive_where('customers', 'id IN (4, 5)') ORDER BY relation::text, action;

-- An erasure request for customer 3: the purge finds no live row, and says that the archive
-- holds it.
SELECT relation, action, rows FROM uproot.purge('customers', 3) ORDER BY relation::text, action;
SELECT * FROM traces('{3}') ORDER BY t;
-- find_archived lists the batches that hold customer 3: how many of the keys each holds
-- (matched), and what each holds per table now.
SELECT batch_id, archived_at <= now() AS archived_before_now, state, matched, relation, rows
  FROM uproot.find_archived('customers', 3) ORDER BY batch_id, relation::text;
-- drop_batch erases the batch: it returns the archived rows it removed per table.
SELECT relation, rows FROM uproot.drop_batch(1) ORDER BY relation::text;
SELECT * FROM traces('{3}') ORDER BY t;
SELECT count(*) AS batch_1_in_ledger FROM uproot.batches WHERE id = 1;
SELECT count(*) AS found FROM uproot.find_archived('customers', 3);

-- The whole recipe for customers 6 (live) and 4 (archived with customer 5, in batch 2):
-- 1. purge the live families (customer 6); customer 4 has no live row, and no NOTICE is
--    raised since the keys matched a row;
SELECT relation, action, rows FROM uproot.purge('customers', array[4, 6]) ORDER BY relation::text, action;
-- 2. find the archived copies: batch 2 holds one of the keys, but also customer 5 (it holds
--    two customers);
SELECT batch_id, state, matched, relation, rows FROM uproot.find_archived('customers', array[4, 6])
 ORDER BY batch_id, relation::text;
-- 3. a batch is dropped whole, so customer 5 is kept by restoring the batch, purging
--    customer 4 and archiving customer 5 again (batch 3); the emptied batch 2 goes.
SELECT relation, action, rows FROM uproot.restore(2) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.purge('customers', 4) ORDER BY relation::text, action;
SELECT batch_id, relation, action, rows FROM uproot.archive('customers', 5) ORDER BY relation::text, action;
SELECT relation, rows FROM uproot.drop_batch(2) ORDER BY relation::text;
-- No trace of customers 4 and 6 is left; customer 5 is archived.
SELECT * FROM traces('{4, 6}') ORDER BY t;
SELECT batch_id, state, matched, relation, rows FROM uproot.find_archived('customers', 5)
 ORDER BY batch_id, relation::text;

-- Keys for a composite primary key are jsonb, as for purge.
CREATE TABLE subscriptions (tenant text, id int, customer_id int REFERENCES customers, PRIMARY KEY (tenant, id));
INSERT INTO subscriptions VALUES ('acme', 1, 7), ('acme', 2, 7), ('zeta', 1, 8);
SELECT batch_id, relation, action, rows FROM uproot.archive('subscriptions', '[{"tenant": "acme", "id": 2}, {"tenant": "zeta", "id": 1}]'::jsonb)
 ORDER BY relation::text, action;
SELECT batch_id, state, matched, relation, rows FROM uproot.find_archived('subscriptions', '{"tenant": "zeta", "id": 1}'::jsonb);
SELECT batch_id, state, matched, relation, rows FROM uproot.find_archived('subscriptions', '[{"tenant": "acme", "id": 1}, {"tenant": "acme", "id": 2}]'::jsonb);
-- Keys are checked as for purge; a table that was never archived holds nothing.
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.find_archived('subscriptions', 1)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.find_archived('customers', 'x'::text)$$);
\x off
CREATE TABLE plain (id int PRIMARY KEY);
SELECT count(*) AS found FROM uproot.find_archived('plain', 1);

-- Archived rows whose batch the ledger no longer knows (removed by hand) are found too.
DELETE FROM uproot.batches WHERE id = 4;
SELECT batch_id, archived_at, state, matched, relation, rows FROM uproot.find_archived('subscriptions', '{"tenant": "zeta", "id": 1}'::jsonb);
DELETE FROM uproot_archive."erase.subscriptions" WHERE _uproot_batch = 4;

-- drop_batch errors: an unknown batch, a NULL batch.
\x on
SELECT * FROM regress.error_of('SELECT * FROM uproot.drop_batch(999)');
SELECT * FROM regress.error_of('SELECT * FROM uproot.drop_batch(NULL)');
\x off
-- drop_batch in a transaction that rolls back removes nothing.
BEGIN;
SELECT relation, rows FROM uproot.drop_batch(3) ORDER BY relation::text;
ROLLBACK;
SELECT * FROM traces('{5}') ORDER BY t;

-- A partly restored batch still holds rows: drop_batches counts it as unrestored.
SELECT batch_id, relation, action, rows FROM uproot.archive('customers', 8) ORDER BY relation::text, action;
INSERT INTO customers VALUES (8, 'a new customer 8', 'new8@example.com');
SELECT relation, action, rows FROM uproot.restore(5, on_conflict => 'skip') ORDER BY relation::text, action;
SELECT batch_id, root, state, rows FROM uproot.drop_batches('0', which => 'restored', dry_run => true) ORDER BY batch_id;
SELECT batch_id, root, state, rows FROM uproot.drop_batches('0', which => 'unrestored', dry_run => true) ORDER BY batch_id;

-- Who may drop a batch: whoever may delete from its archive tables. The ledger is not theirs
-- to write: here nobody but its owner may even read it.
REVOKE ALL ON uproot.batches, uproot.batch_relations, uproot.batch_detached FROM PUBLIC;
CREATE ROLE uproot_erasure_clerk;
GRANT USAGE ON SCHEMA erase TO uproot_erasure_clerk;
GRANT SELECT ON ALL TABLES IN SCHEMA uproot_archive TO uproot_erasure_clerk;
SET ROLE uproot_erasure_clerk;
-- With SELECT only, the clerk finds batch 3 but may not drop it; nothing changes.
SELECT batch_id, state, matched, relation, rows FROM uproot.find_archived('customers', 5)
 ORDER BY batch_id, relation::text;
SELECT sql_state, message FROM regress.error_of('SELECT * FROM uproot.drop_batch(3)');
RESET ROLE;
SELECT * FROM traces('{5}') ORDER BY t;
GRANT DELETE ON ALL TABLES IN SCHEMA uproot_archive TO uproot_erasure_clerk;
SET ROLE uproot_erasure_clerk;
SELECT relation, rows FROM uproot.drop_batch(3) ORDER BY relation::text;
RESET ROLE;
SELECT * FROM traces('{5}') ORDER BY t;
SELECT count(*) AS batch_3_in_ledger FROM uproot.batches WHERE id = 3;

-- NOTICEs when nothing matches: keys that name no row (live or archived), a predicate that
-- matches no row, for preview and archive too. An empty array names no key: no NOTICE. Nor
-- for skip_locked calls (jobs), whose last batch finds nothing by design.
SELECT relation, action, rows FROM uproot.purge('customers', 99) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.purge('customers', array[98, 99]) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.purge_where('customers', 'id > 90') ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.preview('customers', 99) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.archive('customers', 99) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.archive_where('customers', 'id > 90') ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.purge('customers', array[]::int[]) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.purge_where('customers', 'id > 90', skip_locked => true) ORDER BY relation::text, action;
-- Customer 8's archived copy (batch 5, partly restored) is named, for preview as well.
DELETE FROM customers WHERE id = 8;
SELECT relation, action, rows FROM uproot.preview('customers', 8) ORDER BY relation::text, action;

\c :home
DROP DATABASE uproot_erasure;
DROP ROLE uproot_erasure_clerk;
