-- 10_partitions_families: families in which a partitioned table has children of its own
-- 05_partitions covers partitioned leaves; here partitioned orders have a partitioned child
-- (lines), a plain child (notes) and a detached (SET NULL) child, and may be the root.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA parts_fam;
SET search_path = parts_fam;

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

-- graph() shows the three FKs that were declared, each once, on the partitioned tables.
SELECT depth, child, parent, constraint_name, disposition
  FROM uproot.graph('customers') ORDER BY depth, child::text;

-- Customer 1's family spans both partitions of orders and of lines: 1 customer, 2 orders,
-- 4 lines, 2 notes, the same in preview and purge.
SELECT depth, relation, action, rows, label
  FROM uproot.preview('customers', 1) ORDER BY depth, relation::text, action;
SELECT relation, action, rows FROM uproot.purge('customers', 1) ORDER BY relation::text, action;
SELECT counts();
SELECT tableoid::regclass AS partition, id, order_id FROM lines ORDER BY id;

-- A partitioned table as the root: orders 20 and 120 live in different partitions; their
-- lines and notes go with them, customer 2 stays.
SELECT relation, action, rows FROM uproot.preview('orders', array[20, 120]) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.purge('orders', array[20, 120]) ORDER BY relation::text, action;
SELECT counts();

-- A partition as the root: it is a table of its own, and the FKs that reference its
-- partitioned parent reach its rows.
INSERT INTO orders VALUES (30, 2), (130, 2);
INSERT INTO lines VALUES (30, 30), (1030, 30), (130, 130), (1130, 130);
INSERT INTO notes VALUES (30, 30), (130, 130);
SELECT depth, child, parent, constraint_name
  FROM uproot.graph('orders_low') ORDER BY depth, child::text;
SELECT relation, action, rows FROM uproot.purge('orders_low', 30) ORDER BY relation::text, action;
-- Order 130 is not in orders_low: purging it through that partition names no row.
SELECT relation, action, rows FROM uproot.purge('orders_low', 130) ORDER BY relation::text, action;
SELECT counts();
SELECT tableoid::regclass AS partition, id, order_id FROM lines ORDER BY id;

-- Purging customer 2 takes order 130 from orders_high, with its lines and note: every
-- table is empty afterwards.
SELECT relation, action, rows FROM uproot.purge('customers', 2) ORDER BY relation::text, action;
SELECT counts();

-- A partitioned table with a detached (SET NULL) child of its own: member 1 and payments 1
-- and 101 are deleted; refund 1 keeps its row with payment_id NULL, refund 2 still points at
-- payment 102.
CREATE TABLE members (id int PRIMARY KEY);
CREATE TABLE payments (id int PRIMARY KEY, member_id int NOT NULL REFERENCES members)
  PARTITION BY RANGE (id);
CREATE TABLE payments_a PARTITION OF payments FOR VALUES FROM (0) TO (100);
CREATE TABLE payments_b PARTITION OF payments FOR VALUES FROM (100) TO (200);
CREATE TABLE refunds (id int PRIMARY KEY, payment_id int REFERENCES payments ON DELETE SET NULL);
INSERT INTO members VALUES (1), (2);
INSERT INTO payments VALUES (1, 1), (101, 1), (2, 2), (102, 2);
INSERT INTO refunds VALUES (1, 101), (2, 102);
SELECT relation, action, rows FROM uproot.preview('members', 1) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.purge('members', 1) ORDER BY relation::text, action;
SELECT * FROM refunds ORDER BY id;

DROP SCHEMA parts_fam CASCADE;
RESET search_path;
