-- 14_restore: putting a batch back
-- restore(batch_id) puts every row of a batch back into its table, parents first, then
-- empties the batch and marks it restored in the ledger. A batch that does not exist or was
-- already restored is an error; so is a key that exists again, unless the caller asks to
-- skip such rows (the batch is then partly restored). An error changes nothing.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA rest;
SET search_path = rest;

-- error_of_batch(sql, batch): regress.error_of(), with the batch id (which depends on what ran
-- before) shown as <batch>.
CREATE FUNCTION error_of_batch(sql text, batch bigint, OUT sql_state text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE sql AS $$
  SELECT e.sql_state,
         replace(e.message, format('batch %s:', batch), 'batch <batch>:'),
         e.detail,
         replace(e.hint, format('restore(%s,', batch), 'restore(<batch>,')
    FROM regress.error_of(sql) e
$$;

-- customers <- orders <- items, customers <- memberships (composite key), and a cycle:
-- teams <- players (team_id) and players <- teams (captain_id).
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, total numeric(10, 2));
CREATE TABLE items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders, sku text);
CREATE TABLE memberships (club text, member_no int, customer_id int NOT NULL REFERENCES customers,
                          PRIMARY KEY (club, member_no));
CREATE TABLE teams (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, captain_id int);
CREATE TABLE players (id int PRIMARY KEY, team_id int NOT NULL REFERENCES teams);
ALTER TABLE teams ADD FOREIGN KEY (captain_id) REFERENCES players;
INSERT INTO customers SELECT c, 'customer ' || c FROM generate_series(1, 4) c;
INSERT INTO orders SELECT 10 * c + n, c, 9.99 * n FROM generate_series(1, 4) c, generate_series(1, 2) n;
INSERT INTO items SELECT 10 * o + n, o, 'sku-' || n FROM orders o(o), generate_series(1, 2) n;
INSERT INTO memberships SELECT club, c, c FROM generate_series(1, 4) c, unnest('{chess,golf}'::text[]) club;
INSERT INTO teams SELECT c, c, NULL FROM generate_series(1, 4) c;
INSERT INTO players SELECT 10 * t + n, t FROM generate_series(1, 4) t, generate_series(1, 2) n;
UPDATE teams SET captain_id = 10 * id + 1;

-- saved_*: copies of the original contents; differences() lists every row that is not
-- exactly as it was (missing or extra), per table.
CREATE TABLE saved_customers AS SELECT * FROM customers;
CREATE TABLE saved_orders AS SELECT * FROM orders;
CREATE TABLE saved_items AS SELECT * FROM items;
CREATE TABLE saved_memberships AS SELECT * FROM memberships;
CREATE TABLE saved_teams AS SELECT * FROM teams;
CREATE TABLE saved_players AS SELECT * FROM players;
CREATE FUNCTION differences() RETURNS TABLE (relation text, change text, row_text text) LANGUAGE sql AS $$
  SELECT 'customers', 'missing', r::text FROM (SELECT * FROM saved_customers EXCEPT SELECT * FROM customers) r
  UNION ALL SELECT 'customers', 'extra', r::text FROM (SELECT * FROM customers EXCEPT SELECT * FROM saved_customers) r
  UNION ALL SELECT 'orders', 'missing', r::text FROM (SELECT * FROM saved_orders EXCEPT SELECT * FROM orders) r
  UNION ALL SELECT 'orders', 'extra', r::text FROM (SELECT * FROM orders EXCEPT SELECT * FROM saved_orders) r
  UNION ALL SELECT 'items', 'missing', r::text FROM (SELECT * FROM saved_items EXCEPT SELECT * FROM items) r
  UNION ALL SELECT 'items', 'extra', r::text FROM (SELECT * FROM items EXCEPT SELECT * FROM saved_items) r
  UNION ALL SELECT 'memberships', 'missing', r::text FROM (SELECT * FROM saved_memberships EXCEPT SELECT * FROM memberships) r
  UNION ALL SELECT 'memberships', 'extra', r::text FROM (SELECT * FROM memberships EXCEPT SELECT * FROM saved_memberships) r
  UNION ALL SELECT 'teams', 'missing', r::text FROM (SELECT * FROM saved_teams EXCEPT SELECT * FROM teams) r
  UNION ALL SELECT 'teams', 'extra', r::text FROM (SELECT * FROM teams EXCEPT SELECT * FROM saved_teams) r
  UNION ALL SELECT 'players', 'missing', r::text FROM (SELECT * FROM saved_players EXCEPT SELECT * FROM players) r
  UNION ALL SELECT 'players', 'extra', r::text FROM (SELECT * FROM players EXCEPT SELECT * FROM saved_players) r
$$;
CREATE FUNCTION counts() RETURNS text LANGUAGE sql AS $$
  SELECT format('customers=%s orders=%s items=%s memberships=%s teams=%s players=%s',
                (SELECT count(*) FROM customers), (SELECT count(*) FROM orders),
                (SELECT count(*) FROM items), (SELECT count(*) FROM memberships),
                (SELECT count(*) FROM teams), (SELECT count(*) FROM players))
$$;
SELECT source, archive, action FROM uproot.prepare_archive('customers') ORDER BY source::text;
-- in_archive(): how many rows the archive tables hold, per table.
CREATE FUNCTION in_archive() RETURNS text LANGUAGE sql AS $$
  SELECT format('customers=%s orders=%s items=%s memberships=%s teams=%s players=%s',
                (SELECT count(*) FROM uproot_archive."rest.customers"),
                (SELECT count(*) FROM uproot_archive."rest.orders"),
                (SELECT count(*) FROM uproot_archive."rest.items"),
                (SELECT count(*) FROM uproot_archive."rest.memberships"),
                (SELECT count(*) FROM uproot_archive."rest.teams"),
                (SELECT count(*) FROM uproot_archive."rest.players"))
$$;
SELECT counts();

-- The round trip: archive customers 1 and 2 (with the team/player cycle), restore them,
-- and every table holds exactly its original rows again.
SELECT relation, action, rows FROM uproot.archive('customers', array[1, 2]) ORDER BY relation::text, action;
SELECT max(id) AS b1 FROM uproot.batches \gset
SELECT counts();
SELECT in_archive();
SELECT * FROM differences() ORDER BY relation, change, row_text;
SELECT relation, action, rows FROM uproot.restore(:b1) ORDER BY relation::text, action;
SELECT counts();
SELECT * FROM differences() ORDER BY relation, change, row_text;
-- The batch is emptied and marked restored, by whom and when.
SELECT in_archive();
SELECT restored_at >= archived_at AS restored_after_archived, restored_by = current_user AS restored_by_me
  FROM uproot.batches WHERE id = :b1;

\x on
-- A batch that does not exist.
SELECT * FROM regress.error_of($$SELECT * FROM uproot.restore(999999)$$);
-- A batch that was already restored (the message ends with the time of the restore).
SELECT sql_state, message LIKE format('uproot: batch %s was already restored at %%', :b1) AS names_the_batch,
       detail, hint
  FROM regress.error_of(format('SELECT * FROM uproot.restore(%s)', :b1));
-- A NULL batch, and an unknown on_conflict.
SELECT * FROM regress.error_of($$SELECT * FROM uproot.restore(NULL)$$);
SELECT * FROM regress.error_of(format($$SELECT * FROM uproot.restore(%s, on_conflict => 'replace')$$, :b1));
\x off
-- None of them changed anything.
SELECT counts();
SELECT in_archive();
SELECT * FROM differences() ORDER BY relation, change, row_text;

-- A restore in a transaction that rolls back changes nothing either: the batch is still
-- archived and can be restored later.
SELECT relation, action, rows FROM uproot.archive('customers', 3) ORDER BY relation::text, action;
SELECT max(id) AS b2 FROM uproot.batches \gset
BEGIN;
SELECT relation, action, rows FROM uproot.restore(:b2) ORDER BY relation::text, action;
ROLLBACK;
SELECT counts();
SELECT in_archive();
SELECT restored_at IS NULL AS not_restored FROM uproot.batches WHERE id = :b2;

-- A key that exists again: items 311 and 312 were archived with customer 3, and items
-- with the same keys were inserted since (under customer 4's order 41). Restore fails,
-- naming the relation, how many rows and the first key, and changes nothing.
INSERT INTO items VALUES (311, 41, 'new item, old key'), (312, 41, 'new item, old key');
\x on
SELECT * FROM error_of_batch(format('SELECT * FROM uproot.restore(%s)', :b2), :b2);
\x off
SELECT counts();
SELECT in_archive();
SELECT restored_at IS NULL AS not_restored FROM uproot.batches WHERE id = :b2;
-- A composite key is named column by column: customer 4 now holds chess membership 3.
INSERT INTO memberships VALUES ('chess', 3, 4);
\x on
SELECT * FROM error_of_batch(format('SELECT * FROM uproot.restore(%s)', :b2), :b2);
\x off
SELECT counts();
SELECT in_archive();

-- on_conflict => 'skip' restores the rest and reports the rows it left in the archive. Nothing
-- references the skipped items and membership, so they are all that stays. The batch is marked
-- partly restored, not restored (35_restore_skip shows the NOTICE this prints, and more).
SET client_min_messages = warning;  -- the NOTICE names the batch id, which depends on earlier files
SELECT relation, action, rows FROM uproot.restore(:b2, on_conflict => 'skip') ORDER BY relation::text, action;
RESET client_min_messages;
SELECT restored_at IS NULL AS not_restored, partly_restored_at IS NOT NULL AS partly_restored
  FROM uproot.batches WHERE id = :b2;
-- The skipped rows stay archived; the live rows with those keys are the new ones.
SELECT id, order_id, sku FROM uproot_archive."rest.items" WHERE _uproot_batch = :b2 ORDER BY id;
SELECT club, member_no, customer_id FROM uproot_archive."rest.memberships" WHERE _uproot_batch = :b2;
SELECT * FROM items WHERE id IN (311, 312) ORDER BY id;
SELECT * FROM memberships WHERE member_no = 3 ORDER BY club;
-- Everything else of customer 3 is back as it was.
SELECT * FROM differences() ORDER BY relation, change, row_text;

SELECT regress.drop_archives('rest');
SELECT count(*) AS archive_tables_left FROM pg_class
 WHERE relnamespace = 'uproot_archive'::regnamespace AND relkind IN ('r', 'p') AND relname LIKE 'rest.%';
DROP SCHEMA rest CASCADE;
RESET search_path;
