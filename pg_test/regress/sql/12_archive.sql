-- 12_archive: moving families into archive tables
-- prepare_archive() creates one archive table per family table; archive() and archive_where()
-- move whole families there as one batch, recorded in the ledger (uproot.batches).
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA arch;
SET search_path = arch;

-- customers <- orders <- items (NO ACTION), and transfers, which reference two customers.
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL DEFAULT 'anonymous');
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,
                     placed date NOT NULL CHECK (placed > '2000-01-01'));
CREATE TABLE items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders, sku text);
CREATE TABLE transfers (id int PRIMARY KEY, from_id int NOT NULL REFERENCES customers,
                        to_id int NOT NULL REFERENCES customers);
CREATE INDEX ON orders (customer_id);
CREATE INDEX ON items (order_id);
CREATE INDEX ON transfers (from_id);
CREATE INDEX ON transfers (to_id);
-- Customers 1..6; each has orders 10c+1 and 10c+2; each order has items 10o+1 and 10o+2.
INSERT INTO customers SELECT c, 'customer ' || c FROM generate_series(1, 6) c;
INSERT INTO orders SELECT 10 * c + n, c, date '2024-01-01' + c FROM generate_series(1, 6) c, generate_series(1, 2) n;
INSERT INTO items SELECT 10 * o + n, o, 'sku-' || n FROM orders o(o), generate_series(1, 2) n;
-- Transfer 1 links customers 4 and 5, transfer 2 links 5 and 6, transfer 3 is 6's own.
INSERT INTO transfers VALUES (1, 4, 5), (2, 5, 6), (3, 6, 6);
CREATE FUNCTION counts() RETURNS text LANGUAGE sql AS $$
  SELECT format('customers=%s orders=%s items=%s transfers=%s',
                (SELECT count(*) FROM customers), (SELECT count(*) FROM orders),
                (SELECT count(*) FROM items), (SELECT count(*) FROM transfers))
$$;
SELECT counts();

-- prepare_archive() creates the archive table of every table in the family, in
-- schema uproot_archive, named after the source's schema and name.
SELECT source, archive, action FROM uproot.prepare_archive('customers') ORDER BY source::text;
-- A second call finds them up to date.
SELECT source, archive, action FROM uproot.prepare_archive('customers') ORDER BY source::text;
SELECT source, archive FROM uproot.archive_tables
 WHERE source::oid IN (SELECT oid FROM pg_class WHERE relnamespace = 'arch'::regnamespace)
 ORDER BY source::text;
-- An archive table has the source's columns with the same names and types, and
-- _uproot_batch. Nothing else: no NOT NULL (but on _uproot_batch), default, identity,
-- generated expression or constraint, so that any row version of the source fits.
SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull, atthasdef,
       attidentity <> '' AS identity, attgenerated <> '' AS generated
  FROM pg_attribute
 WHERE attrelid = 'uproot_archive."arch.orders"'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;
-- (PostgreSQL 18 also records each NOT NULL as a constraint, contype 'n': attnotnull above
-- already shows the one on _uproot_batch, so those are left out of this count.)
SELECT count(*) AS constraints FROM pg_constraint
 WHERE conrelid = 'uproot_archive."arch.orders"'::regclass AND contype <> 'n';
-- Its index serves restore, which reads one batch by key.
SELECT indexdef FROM pg_indexes
 WHERE schemaname = 'uproot_archive' AND tablename = 'arch.orders';
SELECT obj_description('uproot_archive."arch.orders"'::regclass, 'pg_class') AS comment;
-- archived(): the archive tables' contents, one line per table: the ids it holds.
CREATE FUNCTION archived() RETURNS TABLE (relation text, ids int[]) LANGUAGE sql AS $$
  SELECT 'customers', array_agg(id ORDER BY id) FROM uproot_archive."arch.customers"
  UNION ALL SELECT 'orders', array_agg(id ORDER BY id) FROM uproot_archive."arch.orders"
  UNION ALL SELECT 'items', array_agg(id ORDER BY id) FROM uproot_archive."arch.items"
  UNION ALL SELECT 'transfers', array_agg(id ORDER BY id) FROM uproot_archive."arch.transfers"
$$;

-- archive() by key: customer 1 with its 2 orders and 4 items. Every family table gets a
-- row, 0 included. preview() announces the same counts.
SELECT relation, action, rows FROM uproot.preview('customers', 1) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.archive('customers', 1) ORDER BY relation::text, action;
SELECT max(id) AS b1 FROM uproot.batches \gset
SELECT counts();
SELECT * FROM archived() ORDER BY relation;
-- The archived rows are the deleted rows, column for column, tagged with the batch.
SELECT id, customer_id, placed, _uproot_batch = :b1 AS in_batch FROM uproot_archive."arch.orders" ORDER BY id;
SELECT count(*) FILTER (WHERE _uproot_batch = :b1) AS in_batch_1, count(*) AS total
  FROM uproot_archive."arch.items";
-- counts_of(counts): the ledger's per-relation counts as "table=rows" in table order (quotes
-- around the names, if any, left out).
CREATE FUNCTION counts_of(counts jsonb) RETURNS text LANGUAGE sql AS $$
  SELECT string_agg(format('%s=%s', replace(key, '"', ''), value), ' ' ORDER BY replace(key, '"', ''))
    FROM jsonb_each(counts)
$$;
-- The ledger: one row per batch with its root, keys, who and when, and per-relation
-- counts; batch_relations lists its tables in restore order (parents first).
\x on
SELECT id = :b1 AS is_b1, root, root_name, keys, predicate, archived_at <= now() AS archived_at_set,
       archived_by = current_user AS archived_by_me, counts_of(counts) AS counts, restored_at, restored_by
  FROM uproot.batches WHERE id = :b1;
\x off
SELECT position, relation, archive, rows FROM uproot.batch_relations
 WHERE batch_id = :b1 ORDER BY position;

-- Several keys at once are one batch; the ledger keeps the keys as they were given.
SELECT relation, action, rows FROM uproot.archive('customers', array[3, 2]) ORDER BY relation::text, action;
SELECT max(id) AS b2 FROM uproot.batches \gset
SELECT keys, predicate FROM uproot.batches WHERE id = :b2;
SELECT counts();
SELECT * FROM archived() ORDER BY relation;

-- A key that names no row archives nothing and opens no batch.
SELECT relation, action, rows FROM uproot.archive('customers', 99) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.archive('customers', array[]::int[]) ORDER BY relation::text, action;
SELECT max(id) = :b2 AS no_new_batch FROM uproot.batches;

-- An archive in a transaction that rolls back leaves the tables, the archive and the
-- ledger as they were.
BEGIN;
SELECT relation, action, rows FROM uproot.archive('customers', 6) ORDER BY relation::text, action;
ROLLBACK;
SELECT counts();
SELECT * FROM archived() ORDER BY relation;
SELECT max(id) = :b2 AS no_new_batch FROM uproot.batches;

-- archive_where() with max_roots takes at most that many roots, in key order, each with
-- its whole family. Customers 4, 5, 6 match; max_roots => 1 takes customer 4, and
-- transfer 1 goes with it although it also belongs to customer 5's family.
SELECT relation, action, rows FROM uproot.archive_where('customers', 'id >= 4', max_roots => 1)
 ORDER BY relation::text, action;
SELECT max(id) AS b3 FROM uproot.batches \gset
SELECT keys, predicate FROM uproot.batches WHERE id = :b3;
SELECT counts();
SELECT * FROM archived() ORDER BY relation;
-- The next call takes customer 5, with transfer 2 (shared with customer 6); transfer 1 is
-- already archived and is not archived twice.
SELECT relation, action, rows FROM uproot.archive_where('customers', 'id >= 4', max_roots => 1)
 ORDER BY relation::text, action;
SELECT * FROM archived() ORDER BY relation;
SELECT id, count(*) AS copies FROM uproot_archive."arch.transfers" GROUP BY id ORDER BY id;
-- Without max_roots, every match (only customer 6 is left).
SELECT relation, action, rows FROM uproot.archive_where('customers', 'id >= 4') ORDER BY relation::text, action;
SELECT counts();
-- No matching root: no rows, no batch.
SELECT max(id) AS b5 FROM uproot.batches \gset
SELECT relation, action, rows FROM uproot.archive_where('customers', 'id >= 4') ORDER BY relation::text, action;
SELECT max(id) = :b5 AS no_new_batch FROM uproot.batches;

-- In a tree, a root's family may contain other roots. (nodes has no archive table yet:
-- archive() creates it, as the caller may create tables in uproot_archive.) max_roots never splits a family:
-- max_roots => 2 picks nodes 1 and 2 (key order), and node 1's family is the whole tree
-- 1 <- 2 <- 3. Nodes 4 <- 5 and 6 stay.
CREATE TABLE nodes (id int PRIMARY KEY, parent_id int REFERENCES nodes);
INSERT INTO nodes VALUES (1, NULL), (2, 1), (3, 2), (4, NULL), (5, 4), (6, NULL);
SELECT relation, action, rows FROM uproot.archive_where('nodes', 'true', max_roots => 2)
 ORDER BY relation::text, action;
SELECT * FROM nodes ORDER BY id;
SELECT id, parent_id FROM uproot_archive."arch.nodes" ORDER BY id;

-- max_roots must be at least 1 (NULL means no limit).
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.archive_where('nodes', 'true', max_roots => 0)$$);
\x off
SELECT count(*) AS nodes FROM nodes;

-- The ledger of this file: five batches of customers, one of nodes, none restored.
SELECT root, keys, predicate, counts_of(counts) AS counts, restored_at IS NULL AS not_restored
  FROM uproot.batches WHERE id >= :b1 ORDER BY id;

SELECT regress.drop_archives('arch');
SELECT count(*) AS archive_tables_left FROM pg_class
 WHERE relnamespace = 'uproot_archive'::regnamespace AND relkind IN ('r', 'p') AND relname LIKE 'arch.%';
DROP SCHEMA arch CASCADE;
RESET search_path;
