-- 36_restore_parents: restoring a batch whose parent row is gone
-- A batch's rows may reference rows outside the batch (an order archived alone references
-- its customer). If such a parent row was purged or archived meanwhile, the restore cannot
-- put the batch back. The error (SQLSTATE 23503, as PostgreSQL's own) names the batch, the
-- table whose rows miss their parent, the missing row (its table and key), the constraint,
-- and what to do; nothing changes.
-- This file runs in a database of its own, so that batch ids (shown in errors) start at 1.
SELECT current_database() AS home \gset
CREATE DATABASE uproot_restore_parents;
\c uproot_restore_parents
SET client_min_messages = warning;
CREATE EXTENSION pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA par;
SET search_path = par;

-- customers <- orders <- items; warehouses (composite key) <- items
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers);
CREATE TABLE warehouses (region text, no int, PRIMARY KEY (region, no));
CREATE TABLE items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders,
                    region text, warehouse_no int, FOREIGN KEY (region, warehouse_no) REFERENCES warehouses);
INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bob');
INSERT INTO warehouses VALUES ('north', 1), ('south', 2);
INSERT INTO orders VALUES (10, 1), (11, 1), (20, 2);
INSERT INTO items VALUES (100, 10, 'north', 1), (110, 11, 'south', 2), (200, 20, 'south', 2);
SELECT source, archive, action FROM uproot.prepare_archive('customers') ORDER BY source::text;
-- counts(): rows per table, live and archived.
CREATE FUNCTION counts() RETURNS text LANGUAGE sql AS $$
  SELECT format('customers=%s orders=%s items=%s | archived: customers=%s orders=%s items=%s',
                (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), (SELECT count(*) FROM items),
                (SELECT count(*) FROM uproot_archive."par.customers"), (SELECT count(*) FROM uproot_archive."par.orders"),
                (SELECT count(*) FROM uproot_archive."par.items"))
$$;

-- Ann's orders are archived on their own (batch 1); they reference customer 1, who stays.
SELECT batch_id, relation, action, rows FROM uproot.archive('orders', array[10, 11]) ORDER BY relation::text, action;
-- Then Ann herself is archived (batch 2): her orders are already gone.
SELECT batch_id, relation, action, rows FROM uproot.archive('customers', 1) ORDER BY relation::text, action;
SELECT counts();

-- Restoring batch 1 now fails: its two orders reference customer 1, who is not there. The
-- error names the batch, the orders, the missing customer and the constraint; the hint says
-- how to find the batch that holds her.
\x on
SELECT * FROM regress.error_of('SELECT * FROM uproot.restore(1)');
\x off
-- Nothing changed, and the batch is still archived.
SELECT counts();
SELECT restored_at IS NULL AS not_restored FROM uproot.batches WHERE id = 1;
-- Following the hint: find_archived names batch 2; restore it, then batch 1.
SELECT batch_id, state, matched, relation, rows FROM uproot.find_archived('customers', 1) ORDER BY relation::text;
SELECT relation, action, rows FROM uproot.restore(2) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.restore(1) ORDER BY relation::text, action;
SELECT counts();

-- A parent that was purged: the missing row is named with every column of a composite key.
SELECT batch_id, relation, action, rows FROM uproot.archive('orders', 20) ORDER BY relation::text, action;
UPDATE items SET region = 'north', warehouse_no = 1 WHERE id = 110;  -- nothing else uses south 2
SELECT relation, action, rows FROM uproot.purge('warehouses', '{"region": "south", "no": 2}'::jsonb) ORDER BY relation::text, action;
\x on
SELECT * FROM regress.error_of('SELECT * FROM uproot.restore(3)');
\x off
SELECT counts();
-- Recreating the parent is the other way out.
INSERT INTO warehouses VALUES ('south', 2);
SELECT relation, action, rows FROM uproot.restore(3) ORDER BY relation::text, action;
SELECT * FROM items ORDER BY id;

-- A restore inside a transaction (or a PL/pgSQL block) that catches the error goes on
-- normally: the failed restore left nothing behind.
SELECT batch_id, relation, action, rows FROM uproot.archive('orders', 20) ORDER BY relation::text, action;
DELETE FROM warehouses WHERE (region, no) = ('south', 2);
BEGIN;
SELECT sql_state, message FROM regress.error_of('SELECT * FROM uproot.restore(4)');
SELECT counts();
INSERT INTO warehouses VALUES ('south', 2);
SELECT relation, action, rows FROM uproot.restore(4) ORDER BY relation::text, action;
COMMIT;
SELECT counts();

-- When the failing row cannot be named (here a MATCH FULL reference that is half NULL, which
-- predates its NOT VALID constraint), the error still names the batch, with PostgreSQL's
-- own words.
CREATE TABLE labels (code text, size int, PRIMARY KEY (code, size));
ALTER TABLE items ADD COLUMN label_code text, ADD COLUMN label_size int;
UPDATE items SET label_code = 'A' WHERE id = 200;
ALTER TABLE items ADD FOREIGN KEY (label_code, label_size) REFERENCES labels MATCH FULL NOT VALID;
SELECT batch_id, relation, action, rows FROM uproot.archive('orders', 20) ORDER BY relation::text, action;
\x on
SELECT * FROM regress.error_of('SELECT * FROM uproot.restore(5)');
\x off
SELECT counts();

\c :home
DROP DATABASE uproot_restore_parents;
