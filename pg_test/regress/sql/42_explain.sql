-- 42_explain: explain() shows the statements a purge runs, step by step, and they are the
-- statements that run. The suites run with uproot.debug_check_explain on (temp.conf): every
-- preview and purge then checks that each statement it ran is one that explain shows for the
-- same roots, and fails (XX000) otherwise. Without a predicate, explain shows keys given as an
-- array ($1); a single key takes the fast path's own statements, checked all the same.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA expl;
SET search_path = expl;

-- The check is on for this file (and every other one).
SELECT current_setting('uproot.debug_check_explain') AS checked;

-- 1. A tree of ON DELETE CASCADE edges: PostgreSQL's own cascade deletes the family (the fast
-- path): lock the roots, read the statistics counters, delete the roots, read them again.
CREATE TABLE shops (id int PRIMARY KEY);
CREATE TABLE orders (id int PRIMARY KEY, shop_id int NOT NULL REFERENCES shops ON DELETE CASCADE);
CREATE TABLE lines (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders ON DELETE CASCADE);
CREATE INDEX ON orders (shop_id);
CREATE INDEX ON lines (order_id);
INSERT INTO shops VALUES (1), (2), (3), (4);
INSERT INTO orders SELECT 10 * s + i, s FROM generate_series(1, 4) s, generate_series(1, 2) i;
INSERT INTO lines SELECT 10 * o.id + i, o.id FROM orders o, generate_series(1, 3) i;

SELECT step, purpose FROM uproot.explain('shops') ORDER BY step;
SELECT statement FROM uproot.explain('shops', 'shops.id > 3') WHERE step = 1;
-- keys as an array, one key, a predicate: each purge ran only statements explain shows
SELECT relation, action, "rows" FROM uproot.purge('shops', array[1]) ORDER BY relation::text;
SELECT relation, action, "rows" FROM uproot.purge('shops', 2) ORDER BY relation::text;
SELECT relation, action, "rows" FROM uproot.purge_where('shops', 'id > 3') ORDER BY relation::text;
SELECT (SELECT count(*) FROM shops) AS shops, (SELECT count(*) FROM orders) AS orders,
       (SELECT count(*) FROM lines) AS lines;

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

DROP SCHEMA expl CASCADE;
