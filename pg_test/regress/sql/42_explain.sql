-- 42_explain: explain() shows the statements an operation runs, step by step, and they are the
-- statements that run. operation => 'preview', 'purge' (the default), 'archive' or 'restore';
-- keys => ... or a predicate name the roots as the operation takes them (neither: keys given as
-- an array, $1), batch_id => ... the batch of a restore. The suites run with
-- uproot.debug_check_explain on (temp.conf): every preview, purge, archive and restore then
-- checks that each statement it bound is one that explain shows for the same request (given
-- what it found), and fails (XX000) otherwise. A single key takes the fast path's own
-- statements, checked all the same.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA expl;
SET search_path = expl;

-- The check is on for this file (and every other one).
SELECT current_setting('uproot.debug_check_explain') AS checked;

-- 1. A tree of ON DELETE CASCADE edges. Where the set-based check applies (46_set_based_checks),
-- pg_uproot deletes the family with its own statements and the per-row triggers off, as on a
-- NO ACTION schema: PostgreSQL's cascade would run a trigger (and a query) per deleted row.
CREATE TABLE shops (id int PRIMARY KEY);
CREATE TABLE orders (id int PRIMARY KEY, shop_id int NOT NULL REFERENCES shops ON DELETE CASCADE);
CREATE TABLE lines (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders ON DELETE CASCADE);
CREATE INDEX ON orders (shop_id);
CREATE INDEX ON lines (order_id);
INSERT INTO shops VALUES (1), (2), (3), (4);
INSERT INTO orders SELECT 10 * s + i, s FROM generate_series(1, 4) s, generate_series(1, 2) i;
INSERT INTO lines SELECT 10 * o.id + i, o.id FROM orders o, generate_series(1, 3) i;

SELECT step, purpose FROM uproot.explain('shops') ORDER BY step;
-- Where it does not apply (here a REPEATABLE READ transaction; also a user trigger on a family
-- table, a DEFERRABLE key), PostgreSQL's own cascade deletes the family (the
-- fast path): lock the roots, read the statistics counters, delete the roots, read them again.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT step, purpose FROM uproot.explain('shops') ORDER BY step;
SELECT statement FROM uproot.explain('shops', 'shops.id > 3') WHERE step = 1;
-- keys as an array, one key: each purge ran only statements explain shows
SELECT relation, action, "rows" FROM uproot.purge('shops', array[1]) ORDER BY relation::text;
SELECT relation, action, "rows" FROM uproot.purge('shops', 2) ORDER BY relation::text;
COMMIT;
-- a user trigger on a family table: the fast path, in READ COMMITTED too
CREATE FUNCTION expl.audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$;
CREATE TRIGGER lines_audit BEFORE DELETE ON lines FOR EACH ROW EXECUTE FUNCTION expl.audit();
SELECT count(*) FILTER (WHERE purpose LIKE '%ON DELETE CASCADE deletes the rest%') AS native_steps,
       count(*) FILTER (WHERE purpose LIKE '%set-based check%') AS set_based_steps
  FROM uproot.explain('shops');
DROP TRIGGER lines_audit ON lines;
-- Never the fast path where PostgreSQL's cascade would not run: in the replica role, or with a
-- foreign key's triggers disabled, a DELETE of the roots would leave their children behind.
-- pg_uproot's own statements delete every table (with PostgreSQL's triggers: the set-based check
-- needs the origin role and enabled triggers).
INSERT INTO shops VALUES (5), (6);
INSERT INTO orders VALUES (51, 5), (61, 6);
INSERT INTO lines VALUES (511, 51), (611, 61);
SET session_replication_role = replica;
SELECT count(*) FILTER (WHERE purpose LIKE '%ON DELETE CASCADE deletes the rest%') AS native_steps
  FROM uproot.explain('shops', keys => 5);
SELECT relation, action, "rows" FROM uproot.purge('shops', 5) ORDER BY relation::text;
RESET session_replication_role;
ALTER TABLE shops DISABLE TRIGGER ALL;
SELECT count(*) FILTER (WHERE purpose LIKE '%ON DELETE CASCADE deletes the rest%') AS native_steps
  FROM uproot.explain('shops', keys => 6);
SELECT relation, action, "rows" FROM uproot.purge('shops', 6) ORDER BY relation::text;
ALTER TABLE shops ENABLE TRIGGER ALL;
SELECT (SELECT count(*) FROM orders WHERE shop_id IN (5, 6)) AS orders_left,
       (SELECT count(*) FROM lines WHERE order_id IN (51, 61)) AS lines_left;
-- a predicate, by pg_uproot's own statements
SELECT relation, action, "rows" FROM uproot.purge_where('shops', 'id > 3') ORDER BY relation::text;
SELECT (SELECT count(*) FROM shops) AS shops, (SELECT count(*) FROM orders) AS orders,
       (SELECT count(*) FROM lines) AS lines;

-- A preview counts a leaf by runs of consecutive parent keys when 1,000 or more keys form
-- runs of 4 or more (a family's children stored together, with consecutive ids): one index
-- range per run, where `= ANY` descends the index once per key on PostgreSQL 15 and 16. explain
-- shows both forms. Here 1,200 parcels of two batches, in two runs: the scans' index is read
-- twice, and the counts are those of the other form.
CREATE TABLE batches (id int PRIMARY KEY);
CREATE TABLE parcels (id int PRIMARY KEY, batch_id int NOT NULL REFERENCES batches);
CREATE TABLE scans (id bigint PRIMARY KEY, parcel_id int NOT NULL REFERENCES parcels);
CREATE INDEX scans_parcel ON scans (parcel_id);
CREATE INDEX ON parcels (batch_id);
INSERT INTO batches VALUES (1), (2), (3);
INSERT INTO parcels SELECT 1000 * b + i, b FROM generate_series(1, 3) b, generate_series(1, 600) i;
INSERT INTO scans SELECT 10 * p.id + i, p.id FROM parcels p, generate_series(1, 2) i;
ANALYZE batches, parcels, scans;
SELECT step, purpose FROM uproot.explain('batches', 'id <= 2', operation => 'preview') ORDER BY step;
BEGIN;
SELECT pg_stat_get_xact_numscans('scans_parcel'::regclass) AS scans_before \gset
SELECT relation, action, "rows" FROM uproot.preview_where('batches', 'id <= 2') ORDER BY relation::text;
SELECT pg_stat_get_xact_numscans('scans_parcel'::regclass) - :scans_before AS index_ranges_read;
COMMIT;
-- fewer keys (600 of one batch) keep `= ANY`; the counts are the same either way
SET uproot.debug_key_runs = on;  -- developer option: runs wherever a preview may count by them
SELECT relation, action, "rows" FROM uproot.preview('batches', 3) ORDER BY relation::text;
RESET uproot.debug_key_runs;
SELECT relation, action, "rows" FROM uproot.preview('batches', 3) ORDER BY relation::text;

-- 2. A self-referencing tree (a cycle) with a SET NULL edge and a RESTRICT edge: the general
-- path. The cycle is found without locks, locked by key, found again with locks; files, a leaf
-- with one foreign key, is deleted through a join; the detached rows are found and locked; with
-- respect_restrict the blocked edge (pins, no rows) is counted; one statement deletes the family.
CREATE TABLE folders (id int PRIMARY KEY, parent_id int REFERENCES folders ON DELETE CASCADE);
CREATE TABLE files (id int PRIMARY KEY, folder_id int NOT NULL REFERENCES folders);
CREATE TABLE shortcuts (id int PRIMARY KEY, folder_id int REFERENCES folders ON DELETE SET NULL);
CREATE TABLE pins (id int PRIMARY KEY, folder_id int REFERENCES folders ON DELETE RESTRICT);
CREATE INDEX ON folders (parent_id);
CREATE INDEX ON files (folder_id);
CREATE INDEX ON shortcuts (folder_id);
CREATE INDEX ON pins (folder_id);
INSERT INTO folders VALUES (1, NULL), (2, 1), (3, 2), (4, NULL), (5, 4);
INSERT INTO files VALUES (1, 1), (2, 3), (3, 5);
INSERT INTO shortcuts VALUES (1, 3), (2, 5);

SELECT step, purpose FROM uproot.explain('folders', respect_restrict => true) ORDER BY step;
SELECT relation, action, "rows" FROM uproot.preview('folders', 1, respect_restrict => true)
 ORDER BY relation::text, action;
-- files is NO ACTION, so respect_restrict refuses: nothing is deleted
SELECT relation, action, "rows" FROM uproot.purge('folders', 1, respect_restrict => true)
 ORDER BY relation::text, action;
SELECT relation, action, "rows" FROM uproot.purge('folders', 1) ORDER BY relation::text, action;
-- without respect_restrict, pins is followed (it has no rows)
SELECT step, purpose FROM uproot.explain('folders', 'id = 4') ORDER BY step;
SELECT relation, action, "rows" FROM uproot.purge_where('folders', 'id = 4') ORDER BY relation::text, action;
SELECT (SELECT count(*) FROM folders) AS folders, (SELECT count(*) FROM files) AS files,
       (SELECT count(*) FROM shortcuts WHERE folder_id IS NULL) AS detached_shortcuts;

-- 3. The check does fail when explain leaves out a statement that ran: with the developer point
-- uproot.debug_fail_at = 'explain_omits_delete' it compares with explain's steps less the
-- delete statement, and the purge fails (XX000) naming that statement; nothing is deleted.
INSERT INTO folders VALUES (6, NULL), (7, 6);
SET uproot.debug_fail_at = 'explain_omits_delete';
DO $$
BEGIN
  PERFORM uproot.purge('folders', array[6]);
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE '% % ...', SQLSTATE, left(SQLERRM, 120);
END $$;
RESET uproot.debug_fail_at;
SELECT id, parent_id FROM folders ORDER BY id;

-- 4. Keys as the operation takes them, on the fast path (REPEATABLE READ, as in 1): one key
-- takes the fast path's delete by key (no locking statement), an array the general fast path.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT step, purpose FROM uproot.explain('shops', keys => 5) ORDER BY step;
SELECT statement FROM uproot.explain('shops', keys => 5) WHERE step = 2;
SELECT step, purpose FROM uproot.explain('shops', keys => array[5, 6]) ORDER BY step;
COMMIT;

-- 5. Preview: the same finding statements, without locks, then counts.
SELECT step, purpose FROM uproot.explain('folders', operation => 'preview', keys => 6) ORDER BY step;
SELECT step, purpose FROM uproot.explain('folders', 'id = 6', operation => 'preview', max_roots => 1)
 ORDER BY step;
SELECT statement FROM uproot.explain('folders', 'id = 6', operation => 'preview', max_roots => 1)
 WHERE step = 1;

-- 6. Archive: finding as a purge does, then every join leaf counted (for the ledger), the archive
-- tables made ready and a batch opened, the detached references recorded, one statement moving
-- the family, and the batch closed. Before the first archive, explain names the archive tables
-- it would create.
SELECT step, purpose FROM uproot.explain('folders', operation => 'archive', keys => 6) ORDER BY step;
SELECT statement FROM uproot.explain('folders', operation => 'archive', keys => 6)
 WHERE purpose LIKE 'move the whole family%';
INSERT INTO shortcuts VALUES (3, 7);
SELECT relation, action, "rows" FROM uproot.archive('folders', 6) ORDER BY relation::text, action;
SELECT max(id) AS folders_batch FROM uproot.batches \gset
-- a predicate, and the fast-path tree archived (archive has no fast path: it finds the family)
SELECT step, purpose FROM uproot.explain('shops', 'id = 5', operation => 'archive') ORDER BY step;
INSERT INTO shops VALUES (5);
INSERT INTO orders VALUES (51, 5);
INSERT INTO lines VALUES (511, 51);
SELECT relation, action, "rows" FROM uproot.archive_where('shops', 'id = 5') ORDER BY relation::text;
SELECT max(id) AS shops_batch FROM uproot.batches \gset

-- 7. Restore, of a batch (root may be NULL): rows whose key exists again, the rows that would
-- stay with them (only with on_conflict => 'skip'), one statement moving the batch back, the
-- search for a missing parent (only when that statement fails on a foreign key), and the
-- references archive detached set back.
SELECT step, purpose FROM uproot.explain(NULL, operation => 'restore', batch_id => :folders_batch)
 ORDER BY step;
SELECT statement FROM uproot.explain(NULL, operation => 'restore', batch_id => :folders_batch)
 WHERE purpose LIKE 'move the batch%';
SELECT relation, action, "rows" FROM uproot.restore(:folders_batch) ORDER BY relation::text, action;
SELECT step, purpose FROM uproot.explain('shops', operation => 'restore', batch_id => :shops_batch)
 ORDER BY step;
SELECT id, folder_id FROM shortcuts ORDER BY id;

-- 8. The check catches an archive and a restore whose moving statement explain leaves out:
-- each fails (XX000) naming the statement, and nothing changes.
SET uproot.debug_fail_at = 'explain_omits_delete';
DO $$
BEGIN
  PERFORM uproot.archive('folders', 6);
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE '% % ...', SQLSTATE, left(SQLERRM, 100);
END $$;
DO $$
BEGIN
  PERFORM uproot.restore(max(id)) FROM uproot.batches;
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE '% % ...', SQLSTATE, left(SQLERRM, 100);
END $$;
RESET uproot.debug_fail_at;
SELECT (SELECT count(*) FROM folders) AS folders, (SELECT count(*) FROM shops WHERE id = 5) AS shop_5,
       (SELECT max(id) FROM uproot.batches) = :shops_batch AS no_new_batch,
       (SELECT restored_at IS NULL FROM uproot.batches WHERE id = :shops_batch) AS shops_batch_archived;

-- 9. Arguments: an unknown operation, keys with a predicate, a restore without a batch or with
-- keys, a batch for another operation, a batch of another root.
\set VERBOSITY terse
SELECT * FROM uproot.explain('shops', operation => 'delete');
SELECT * FROM uproot.explain('shops', 'id = 1', keys => 1);
SELECT * FROM uproot.explain(NULL, operation => 'restore');
SELECT * FROM uproot.explain(NULL, operation => 'restore', keys => 1, batch_id => :shops_batch);
SELECT * FROM uproot.explain('shops', batch_id => :shops_batch);
DO $$
BEGIN
  PERFORM uproot.explain('folders', operation => 'restore', batch_id => max(id)) FROM uproot.batches;
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE '%', regexp_replace(SQLERRM, 'batch \d+', 'batch N');
END $$;
SELECT * FROM uproot.explain(NULL, operation => 'restore', batch_id => -1);
\set VERBOSITY default
SELECT relation, action, "rows" FROM uproot.restore(:shops_batch) ORDER BY relation::text;
SELECT count(*) AS shop_5 FROM shops WHERE id = 5;

DELETE FROM uproot.batches WHERE id IN (:folders_batch, :shops_batch);
DO $$
DECLARE a regclass;
BEGIN
  FOR a IN DELETE FROM uproot.archive_tables
            WHERE source::oid IN (SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'expl'::regnamespace)
           RETURNING archive LOOP
    EXECUTE format('DROP TABLE %s', a);
  END LOOP;
END $$;
DROP SCHEMA expl CASCADE;
