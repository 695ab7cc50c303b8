-- 33_archive_after_changes: restore after the live data or the schema moved on
-- A SET DEFAULT reference that someone re-pointed while the family was archived is not
-- overwritten by restore (only rows still holding the default archive wrote get their old
-- value back), and a NOT NULL column with a default added to a source after its rows were
-- archived restores those rows with that default, as the live rows got it.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA after_changes;
SET search_path = after_changes;

-- teams <- tickets ON DELETE SET DEFAULT (team 0)
CREATE TABLE teams (id int PRIMARY KEY);
CREATE TABLE tickets (id int PRIMARY KEY, team_id int NOT NULL DEFAULT 0 REFERENCES teams ON DELETE SET DEFAULT);
INSERT INTO teams VALUES (0), (1), (2);
INSERT INTO tickets VALUES (101, 1), (102, 1);
SELECT relation, action, rows FROM uproot.archive('teams', 1) ORDER BY relation::text, action;
SELECT max(id) AS b FROM uproot.batches \gset
SELECT * FROM tickets ORDER BY id;
-- ticket 102 is re-pointed to team 2 while team 1 is archived
UPDATE tickets SET team_id = 2 WHERE id = 102;
SELECT relation, action, rows FROM uproot.restore(:b) ORDER BY relation::text, action;
-- 101 is back on team 1; 102 stays on team 2
SELECT * FROM tickets ORDER BY id;

-- a <- b; b's rows are archived, then b gains status NOT NULL DEFAULT 'active'
CREATE TABLE a (id int PRIMARY KEY);
CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a);
INSERT INTO a VALUES (1), (2);
INSERT INTO b VALUES (1, 1), (2, 2);
SELECT relation, action, rows FROM uproot.archive('a', 1) ORDER BY relation::text;
SELECT max(id) AS b2 FROM uproot.batches \gset
ALTER TABLE b ADD COLUMN status text NOT NULL DEFAULT 'active';
SELECT source, action FROM uproot.prepare_archive('a') ORDER BY source::text;
SELECT relation, action, rows FROM uproot.restore(:b2) ORDER BY relation::text;
SELECT * FROM b ORDER BY id;

-- shops <- shelves -> products; the shelves' foreign key to the shops is dropped while a
-- shop's family is archived: the shelves are no longer in the shop's family, but their
-- archived rows still go back with it.
CREATE TABLE shops (id int PRIMARY KEY);
CREATE TABLE products (id int PRIMARY KEY);
CREATE TABLE shelves (id int PRIMARY KEY, shop_id int REFERENCES shops, product_id int REFERENCES products);
INSERT INTO shops VALUES (1);
INSERT INTO products VALUES (1);
INSERT INTO shelves VALUES (1, 1, 1), (2, 1, 1);
SELECT relation, action, rows FROM uproot.archive('shops', 1) ORDER BY relation::text;
SELECT max(id) AS b3 FROM uproot.batches \gset
ALTER TABLE shelves DROP CONSTRAINT shelves_shop_id_fkey;
SELECT depth, child, parent FROM uproot.graph('shops') ORDER BY depth, child::text;
SELECT relation, action, rows FROM uproot.restore(:b3) ORDER BY relation::text;
SELECT * FROM shelves ORDER BY id;

SELECT regress.drop_archives('after_changes');
DROP SCHEMA after_changes CASCADE;
RESET search_path;
