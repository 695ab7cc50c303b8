-- 18_archive_partitions: archiving and restoring partitioned tables
-- A partitioned table has one archive table (not one per partition). Archive takes the
-- family's rows from every partition; restore inserts them through the partitioned table,
-- so each row goes back to the partition its values route it to. A partition used as the
-- root is a table of its own, with an archive table of its own.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA aparts;
SET search_path = aparts;

-- customers <- orders (by LIST of region; 'us' again by RANGE of id)
--           <- lines (by HASH of id; a two-column FK to orders)
CREATE TABLE customers (id int PRIMARY KEY);
CREATE TABLE orders (id int, region text, customer_id int NOT NULL REFERENCES customers,
                     PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us') PARTITION BY RANGE (id);
CREATE TABLE orders_us_low PARTITION OF orders_us FOR VALUES FROM (0) TO (100);
CREATE TABLE orders_us_high PARTITION OF orders_us FOR VALUES FROM (100) TO (1000);
CREATE TABLE lines (id int PRIMARY KEY, order_id int NOT NULL, region text NOT NULL, qty int,
                    FOREIGN KEY (order_id, region) REFERENCES orders) PARTITION BY HASH (id);
CREATE TABLE lines_0 PARTITION OF lines FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE lines_1 PARTITION OF lines FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE INDEX ON orders (customer_id);
CREATE INDEX ON lines (order_id, region);
-- Customer 1's orders are in orders_eu, orders_us_low and orders_us_high; customer 2's
-- in orders_eu and orders_us_low. Each order has three lines, spread over both hashes.
INSERT INTO customers VALUES (1), (2);
INSERT INTO orders VALUES (1, 'eu', 1), (2, 'us', 1), (150, 'us', 1), (3, 'eu', 2), (4, 'us', 2);
INSERT INTO lines SELECT 10 * o.id + n, o.id, o.region, n FROM orders o, generate_series(1, 3) n;
-- placement(): every row with the partition that holds it.
CREATE FUNCTION placement() RETURNS TABLE (relation text, partition text, key text, customer int) LANGUAGE sql AS $$
  SELECT 'orders', tableoid::regclass::text, id || '/' || region, customer_id FROM orders
  UNION ALL
  SELECT 'lines', l.tableoid::regclass::text, l.id::text, o.customer_id
    FROM lines l JOIN orders o ON (o.id, o.region) = (l.order_id, l.region)
$$;
CREATE TABLE saved_placement AS SELECT * FROM placement();
SELECT * FROM placement() ORDER BY relation DESC, key;

-- One archive table per partitioned table; none for the partitions.
SELECT source, archive, action FROM uproot.prepare_archive('customers') ORDER BY source::text;

-- Customer 1's family comes out of every partition it has rows in.
SELECT relation, action, rows FROM uproot.archive('customers', 1) ORDER BY relation::text;
SELECT max(id) AS b FROM uproot.batches \gset
SELECT * FROM placement() ORDER BY relation DESC, key;
SELECT id, region, customer_id FROM uproot_archive."aparts.orders" ORDER BY id;
SELECT count(*) AS archived_lines FROM uproot_archive."aparts.lines";

-- Restore: every row is back, each in the partition it came from.
SELECT relation, action, rows FROM uproot.restore(:b) ORDER BY relation::text, action;
SELECT * FROM placement() ORDER BY relation DESC, key;
SELECT count(*) AS rows_elsewhere_or_missing
  FROM (SELECT * FROM saved_placement EXCEPT SELECT * FROM placement()) d;

-- A partitioned partition (orders_us) and a leaf partition (orders_us_high) as the root,
-- keyed by the two-column primary key: each gets an archive table of its own, and their
-- lines go to the one of lines.
SELECT relation, action, rows FROM uproot.archive('orders_us', '{"id": 2, "region": "us"}'::jsonb)
 ORDER BY relation::text;
SELECT max(id) AS b_us FROM uproot.batches \gset
SELECT relation, action, rows FROM uproot.archive('orders_us_high', '{"id": 150, "region": "us"}'::jsonb)
 ORDER BY relation::text;
SELECT max(id) AS b_high FROM uproot.batches \gset
SELECT source, archive FROM uproot.archive_tables
 WHERE source::oid IN (SELECT oid FROM pg_class WHERE relnamespace = 'aparts'::regnamespace)
 ORDER BY source::text;
SELECT * FROM placement() WHERE customer = 1 ORDER BY relation DESC, key;
-- Restored in the opposite order, they are back where they were.
SELECT relation, action, rows FROM uproot.restore(:b_high) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.restore(:b_us) ORDER BY relation::text, action;
SELECT count(*) AS rows_elsewhere_or_missing
  FROM (SELECT * FROM saved_placement EXCEPT SELECT * FROM placement()) d;

-- archive_where() over the partitioned table, with max_roots: the two lowest keys
-- ((1, eu) and (2, us)), whichever partitions they are in.
SELECT relation, action, rows FROM uproot.archive_where('orders', 'customer_id = 1', max_roots => 2)
 ORDER BY relation::text;
SELECT max(id) AS b FROM uproot.batches \gset
SELECT * FROM placement() WHERE customer = 1 ORDER BY relation DESC, key;
SELECT relation, action, rows FROM uproot.restore(:b) ORDER BY relation::text, action;
SELECT count(*) AS rows_elsewhere_or_missing
  FROM (SELECT * FROM saved_placement EXCEPT SELECT * FROM placement()) d;

SELECT regress.drop_archives('aparts');
SELECT count(*) AS archive_tables_left FROM pg_class
 WHERE relnamespace = 'uproot_archive'::regnamespace AND relkind IN ('r', 'p') AND relname LIKE 'aparts.%';
DROP SCHEMA aparts CASCADE;
RESET search_path;
