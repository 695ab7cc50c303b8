-- 01_basics: graph, preview and purge on a four-level family
--   customers <- orders <- items <- events
-- Every foreign key is a plain REFERENCES (ON DELETE NO ACTION): a bare DELETE of a
-- customer would fail, uproot takes the whole family with it.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA basics;
SET search_path = basics;

CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders    (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, placed date);
CREATE TABLE items     (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders, sku text);
CREATE TABLE events    (id int PRIMARY KEY, item_id int NOT NULL REFERENCES items, kind text);
CREATE INDEX ON orders (customer_id);
CREATE INDEX ON items (order_id);
CREATE INDEX ON events (item_id);

-- Ada has 2 orders, Brian 3, Chen 1; every order has 2 items, every item 3 events.
INSERT INTO customers VALUES (1, 'Ada'), (2, 'Brian'), (3, 'Chen');
INSERT INTO orders VALUES (1, 1, '2024-01-01'), (2, 1, '2024-02-01'),
                          (3, 2, '2024-03-01'), (4, 2, '2024-04-01'), (5, 2, '2024-05-01'),
                          (6, 3, '2024-06-01');
INSERT INTO items  SELECT o.id * 10 + n, o.id, 'sku-' || (o.id * 10 + n) FROM orders o, generate_series(1, 2) n;
INSERT INTO events SELECT i.id * 10 + n, i.id, 'event ' || n FROM items i, generate_series(1, 3) n;

-- One line with the size of every table, to show what changed.
CREATE FUNCTION counts() RETURNS text LANGUAGE sql AS $$
  SELECT format('customers=%s orders=%s items=%s events=%s',
                (SELECT count(*) FROM customers), (SELECT count(*) FROM orders),
                (SELECT count(*) FROM items), (SELECT count(*) FROM events))
$$;
SELECT counts();

-- A bare DELETE is refused by the NO ACTION foreign key.
DELETE FROM customers WHERE id = 2;

-- graph(): the edges a purge of customers walks. The first row is the root itself.
SELECT depth, child, parent, constraint_name, on_delete, disposition, in_cycle, indexed, warnings
  FROM uproot.graph('customers')
 ORDER BY depth, child::text, constraint_name NULLS FIRST;

-- preview(): what purging Brian (id 2) would take: 1 customer, 3 orders, 6 items, 18 events.
-- label draws the family as a tree.
SELECT depth, relation, action, rows, via, label
  FROM uproot.preview('customers', 2)
 ORDER BY depth, relation::text, action;

-- preview_where() names the roots with a predicate instead; same family.
SELECT depth, relation, action, rows
  FROM uproot.preview_where('customers', $$name = 'Brian'$$)
 ORDER BY depth, relation::text, action;

-- preview is read-only: it neither writes nor locks a row (FOR UPDATE), so it runs in a
-- READ ONLY transaction, where purge is refused.
BEGIN READ ONLY;
SELECT relation, rows FROM uproot.preview('customers', 2) ORDER BY relation::text;
SELECT relation, rows FROM uproot.purge('customers', 2) ORDER BY relation::text;
ROLLBACK;
SELECT counts();

-- purge() returns exactly what preview() announced, relation by relation.
CREATE TEMP TABLE announced AS
  SELECT relation, action, rows FROM uproot.preview('customers', 2);
CREATE TEMP TABLE done AS
  SELECT relation, action, rows FROM uproot.purge('customers', 2);
SELECT relation, action, rows FROM done ORDER BY relation::text, action;
SELECT count(*) AS differences
  FROM ((TABLE announced EXCEPT TABLE done) UNION ALL (TABLE done EXCEPT TABLE announced)) d;

-- The rows are really gone: nothing of Brian's is left, Ada's and Chen's families are intact.
SELECT counts();
SELECT (SELECT count(*) FROM customers WHERE id = 2) AS brian,
       (SELECT count(*) FROM orders WHERE customer_id = 2) AS his_orders,
       (SELECT count(*) FROM items WHERE order_id BETWEEN 3 AND 5) AS his_items,
       (SELECT count(*) FROM events WHERE item_id BETWEEN 31 AND 52) AS his_events;
SELECT customer_id, count(*) AS orders FROM orders GROUP BY customer_id ORDER BY customer_id;

-- Purging a key that names no row does nothing, and says so with zero counts and a NOTICE.
SELECT relation, action, rows FROM uproot.purge('customers', 2) ORDER BY relation::text, action;

-- Everything happens in the caller's transaction: a rollback undoes the whole purge.
BEGIN;
SELECT relation, action, rows FROM uproot.purge('customers', 1) ORDER BY relation::text, action;
SELECT counts();
ROLLBACK;
SELECT counts();

-- purge_where() deletes the families of every matching root.
SELECT relation, action, rows
  FROM uproot.purge_where('customers', $$name IN ('Ada', 'Chen')$$)
 ORDER BY relation::text, action;
SELECT counts();

DROP SCHEMA basics CASCADE;
RESET search_path;
