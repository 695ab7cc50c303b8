-- 05_partitions: partitioned tables
-- An FK declared on a partitioned table is one edge, however many partitions carry its
-- clones. A family may span partitions, and a partition may itself be the root.
-- (Families in which a partitioned table has children of its own are in 10_partitions_families.)
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA parts;
SET search_path = parts;

-- customers <- orders (partitioned by id) <- lines (partitioned by id)
--                                          <- notes (a plain table)
CREATE TABLE customers (id int PRIMARY KEY);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers)
  PARTITION BY RANGE (id);
CREATE TABLE orders_low  PARTITION OF orders FOR VALUES FROM (1) TO (100);
CREATE TABLE orders_high PARTITION OF orders FOR VALUES FROM (100) TO (200);
CREATE TABLE lines (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders)
  PARTITION BY RANGE (id);
CREATE TABLE lines_a PARTITION OF lines FOR VALUES FROM (0) TO (1000);
CREATE TABLE lines_b PARTITION OF lines FOR VALUES FROM (1000) TO (2000);
CREATE TABLE notes (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders);
CREATE INDEX ON orders (customer_id);
CREATE INDEX ON lines (order_id);
CREATE INDEX ON notes (order_id);

-- Customer 1 has orders 10 (orders_low) and 110 (orders_high); customer 2 has 20 and 120.
-- Each order has one line in each lines partition and one note.
INSERT INTO customers VALUES (1), (2);
INSERT INTO orders VALUES (10, 1), (110, 1), (20, 2), (120, 2);
INSERT INTO lines SELECT id, id FROM orders UNION ALL SELECT 1000 + id, id FROM orders;
INSERT INTO notes SELECT id, id FROM orders;
CREATE FUNCTION counts() RETURNS text LANGUAGE sql AS $$
  SELECT format('customers=%s orders_low=%s orders_high=%s lines_a=%s lines_b=%s notes=%s',
                (SELECT count(*) FROM customers), (SELECT count(*) FROM orders_low),
                (SELECT count(*) FROM orders_high), (SELECT count(*) FROM lines_a),
                (SELECT count(*) FROM lines_b), (SELECT count(*) FROM notes))
$$;
SELECT counts();

-- PostgreSQL keeps one FK constraint per partition pair (clones, conparentid <> 0) ...
SELECT count(*) AS fk_constraints_in_catalog
  FROM pg_constraint WHERE contype = 'f' AND connamespace = 'parts'::regnamespace;
-- ... graph() shows the three FKs that were declared, each once, on the partitioned tables.
SELECT depth, child, parent, constraint_name, disposition
  FROM uproot.graph('customers') ORDER BY depth, child::text;

-- A partition as the root: it is a table of its own, and the FKs that reference its
-- partitioned parent reach its rows, in every partition of lines.
SELECT depth, child, parent, constraint_name
  FROM uproot.graph('orders_low') ORDER BY depth, child::text;
SELECT relation, action, rows FROM uproot.preview('orders_low', 10) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.purge('orders_low', 10) ORDER BY relation::text, action;
SELECT counts();
SELECT tableoid::regclass AS partition, id, order_id FROM lines ORDER BY id;
-- Order 110 is not in orders_low: purging it through that partition names no row.
SELECT relation, action, rows FROM uproot.purge('orders_low', 110) ORDER BY relation::text, action;
SELECT counts();

-- A partitioned child spanning its partitions: member 1's payments live in both.
CREATE TABLE members (id int PRIMARY KEY);
CREATE TABLE payments (id int PRIMARY KEY, member_id int NOT NULL REFERENCES members)
  PARTITION BY RANGE (id);
CREATE TABLE payments_a PARTITION OF payments FOR VALUES FROM (0) TO (100);
CREATE TABLE payments_b PARTITION OF payments FOR VALUES FROM (100) TO (200);
INSERT INTO members VALUES (1), (2);
INSERT INTO payments VALUES (1, 1), (101, 1), (102, 1), (2, 2), (103, 2);
SELECT depth, child, parent, constraint_name FROM uproot.graph('members') ORDER BY depth, child::text;
SELECT relation, action, rows FROM uproot.preview('members', 1) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.purge('members', 1) ORDER BY relation::text, action;
SELECT tableoid::regclass AS partition, id, member_id FROM payments ORDER BY id;

DROP SCHEMA parts CASCADE;
RESET search_path;
