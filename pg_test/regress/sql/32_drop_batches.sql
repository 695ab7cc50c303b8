-- 32_drop_batches: removing old batches from the archive and the ledger
-- drop_batches(older_than) removes every batch archived longer ago than older_than: its
-- rows in the archive tables and its ledger rows. Restored batches go the same way, unless
-- which => 'unrestored' keeps them; which => 'restored' takes only those. It returns the
-- batches it removed, each with its state and the archived rows it held; dry_run => true
-- returns the same list and removes nothing. Newer batches stay, and can still be restored.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA dropb;
SET search_path = dropb;

-- orders <- lines; notes -> orders ON DELETE SET NULL (detached, recorded per batch)
CREATE TABLE orders (id int PRIMARY KEY);
CREATE TABLE lines (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders);
CREATE TABLE notes (id int PRIMARY KEY, order_id int REFERENCES orders ON DELETE SET NULL);
INSERT INTO orders SELECT generate_series(1, 5);
INSERT INTO lines SELECT 10 * o + n, o FROM generate_series(1, 5) o, generate_series(1, 2) n;
INSERT INTO notes SELECT o, o FROM generate_series(1, 5) o;
SELECT source, archive, action FROM uproot.prepare_archive('orders') ORDER BY source::text;

-- Five batches, one order each. Batches 1, 2 and 3 are made to look old (archived 100,
-- 50 and 10 days ago); batch 2 was restored since. Batches 4 and 5 are new.
CREATE TABLE batch_of (n int PRIMARY KEY, id bigint);
INSERT INTO batch_of
SELECT o, (SELECT DISTINCT batch_id FROM uproot.archive('orders', o)) FROM generate_series(1, 5) o;
SELECT relation, action, rows FROM uproot.restore((SELECT id FROM batch_of WHERE n = 2))
 ORDER BY relation::text, action;
UPDATE uproot.batches b SET archived_at = archived_at - age
  FROM batch_of f, (VALUES (1, interval '100 days'), (2, interval '50 days'), (3, interval '10 days')) v(n, age)
 WHERE f.n = v.n AND b.id = f.id;
-- ledger(): the batches of this file, by number, and what each still holds.
CREATE FUNCTION ledger() RETURNS TABLE (n int, age_days int, restored boolean, relations bigint,
                                        detached bigint, orders bigint, lines bigint) LANGUAGE sql AS $$
  SELECT f.n, round(extract(epoch FROM now() - b.archived_at) / 86400)::int, b.restored_at IS NOT NULL,
         (SELECT count(*) FROM uproot.batch_relations r WHERE r.batch_id = f.id),
         (SELECT count(*) FROM uproot.batch_detached d WHERE d.batch_id = f.id),
         (SELECT count(*) FROM uproot_archive."dropb.orders" a WHERE a._uproot_batch = f.id),
         (SELECT count(*) FROM uproot_archive."dropb.lines" a WHERE a._uproot_batch = f.id)
    FROM batch_of f JOIN uproot.batches b ON b.id = f.id
$$;
SELECT * FROM ledger() ORDER BY n;

-- dropped(call): what a drop_batches call returned, by batch number (ids depend on earlier files).
CREATE FUNCTION dropped(call text) RETURNS TABLE (n int, state text, "rows" bigint) LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format('SELECT f.n, d.state, d.rows FROM (%s) d JOIN batch_of f ON f.id = d.batch_id ORDER BY f.n', call);
END $$;

-- A dry run lists what would go and removes nothing: older than 5 days are batches 1, 2 and 3,
-- of which 2 is restored (it holds no rows any more) and 1 and 3 still hold an order and its
-- two lines each.
SELECT * FROM dropped($$SELECT * FROM uproot.drop_batches('5 days', dry_run => true)$$);
SELECT * FROM dropped($$SELECT * FROM uproot.drop_batches('5 days', which => 'restored', dry_run => true)$$);
SELECT * FROM dropped($$SELECT * FROM uproot.drop_batches('5 days', which => 'unrestored', dry_run => true)$$);
SELECT * FROM ledger() ORDER BY n;

-- Older than 30 days: batches 1 and 2 (the restored one counts too).
SELECT * FROM dropped($$SELECT * FROM uproot.drop_batches('30 days')$$);
SELECT * FROM ledger() ORDER BY n;
-- Their ledger rows, relations and detached references are gone ...
SELECT (SELECT count(*) FROM uproot.batches WHERE id IN (SELECT id FROM batch_of WHERE n <= 2)) AS batches,
       (SELECT count(*) FROM uproot.batch_relations WHERE batch_id IN (SELECT id FROM batch_of WHERE n <= 2)) AS relations,
       (SELECT count(*) FROM uproot.batch_detached WHERE batch_id IN (SELECT id FROM batch_of WHERE n <= 2)) AS detached;
-- ... and so are their archived rows; the others' are all there.
SELECT (SELECT array_agg(id ORDER BY id) FROM uproot_archive."dropb.orders") AS archived_orders,
       (SELECT array_agg(id ORDER BY id) FROM uproot_archive."dropb.lines") AS archived_lines;
-- A dropped batch is unknown to restore.
\x on
SELECT sql_state, message LIKE 'uproot: there is no batch %' AS no_such_batch, hint
  FROM regress.error_of(format('SELECT * FROM uproot.restore(%s)', (SELECT id FROM batch_of WHERE n = 1)));
\x off
-- Nothing else is old enough: a second call removes nothing.
SELECT count(*) AS dropped FROM uproot.drop_batches('30 days');
-- A NULL or negative age is an error, not "everything"; so are an unknown which and a NULL
-- dry_run.
\x on
SELECT * FROM regress.error_of($$SELECT uproot.drop_batches(NULL)$$);
SELECT * FROM regress.error_of($$SELECT uproot.drop_batches('-1 day')$$);
SELECT * FROM regress.error_of($$SELECT uproot.drop_batches('1 day', which => 'old')$$);
SELECT * FROM regress.error_of($$SELECT uproot.drop_batches('1 day', dry_run => NULL)$$);
\x off
SELECT count(*) AS batches_left FROM ledger();
-- The batches that are left can still be restored, with their detached notes.
SELECT relation, action, rows FROM uproot.restore((SELECT id FROM batch_of WHERE n = 4))
 ORDER BY relation::text, action;
SELECT * FROM notes WHERE id = 4;
-- drop_batches() in a transaction that rolls back removes nothing.
BEGIN;
SELECT * FROM dropped($$SELECT * FROM uproot.drop_batches('1 day')$$);
ROLLBACK;
SELECT * FROM ledger() ORDER BY n;
-- which => 'restored' removes only restored batches: with batches 4 (restored) and 5 (not)
-- made 20 days old, older than 15 days takes batch 4 only. Batches 3 and 5 still hold rows
-- and stay.
UPDATE uproot.batches b SET archived_at = archived_at - interval '20 days'
  FROM batch_of f WHERE f.n IN (4, 5) AND b.id = f.id;
SELECT * FROM dropped($$SELECT * FROM uproot.drop_batches('15 days', which => 'restored')$$);
SELECT * FROM ledger() ORDER BY n;

SELECT regress.drop_archives('dropb');
SELECT count(*) AS archive_tables_left FROM pg_class
 WHERE relnamespace = 'uproot_archive'::regnamespace AND relkind IN ('r', 'p') AND relname LIKE 'dropb.%';
DROP SCHEMA dropb CASCADE;
RESET search_path;
