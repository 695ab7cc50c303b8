-- 07_cache: the per-backend graph cache is never stale
-- The FK graph is read from the catalog once and cached for the session; DDL invalidates it,
-- so an FK added or dropped just before a call is honoured by that very call.
-- uproot.cache_info() shows how often this backend read the catalog, and how many prepared
-- statements it keeps.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA cache;
SET search_path = cache;

CREATE TABLE owners (id int PRIMARY KEY);
CREATE TABLE pets (id int PRIMARY KEY, owner_id int NOT NULL REFERENCES owners);
CREATE TABLE toys (id int PRIMARY KEY, owner_id int);  -- no FK yet
INSERT INTO owners VALUES (1), (2), (3), (4), (5);
INSERT INTO pets SELECT 10 * o + n, o FROM generate_series(1, 5) o, generate_series(1, 2) n;
INSERT INTO toys SELECT 10 * o + n, o FROM generate_series(1, 5) o, generate_series(1, 3) n;

-- The first call reads the catalog; calling again, with other keys too, does not.
SELECT relation, action, rows FROM uproot.preview('owners', 1) ORDER BY relation::text, action;
SELECT catalog_loads AS loads, cached_plans AS plans FROM uproot.cache_info() \gset
SELECT relation, action, rows FROM uproot.preview('owners', 1) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.preview('owners', 2) ORDER BY relation::text, action;
SELECT catalog_loads - :loads AS new_catalog_loads, cached_plans = :plans AS same_plans, cached_plans > 0 AS plans_kept
  FROM uproot.cache_info();

-- An FK added in this session is honoured by the very next call: toys join the family.
ALTER TABLE toys ADD CONSTRAINT toys_owner_fkey FOREIGN KEY (owner_id) REFERENCES owners;
SELECT relation, action, rows FROM uproot.preview('owners', 1) ORDER BY relation::text, action;
SELECT catalog_loads - :loads AS new_catalog_loads FROM uproot.cache_info();
SELECT relation, action, rows FROM uproot.purge('owners', 1) ORDER BY relation::text, action;
SELECT (SELECT count(*) FROM toys WHERE owner_id = 1) AS toys_of_1;

-- An FK dropped in this session is gone from the very next call: pets are left alone, and
-- owner 2 can go without them (the FK no longer protects them).
ALTER TABLE pets DROP CONSTRAINT pets_owner_id_fkey;
SELECT depth, child, parent, constraint_name FROM uproot.graph('owners') ORDER BY depth, child::text;
SELECT relation, action, rows FROM uproot.purge('owners', 2) ORDER BY relation::text, action;
SELECT (SELECT count(*) FROM pets WHERE owner_id = 2) AS pets_of_2_kept;

-- A changed ON DELETE action counts at once: re-created as SET NULL, pets are detached.
ALTER TABLE pets ADD CONSTRAINT pets_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES owners ON DELETE SET NULL NOT VALID;
ALTER TABLE pets ALTER COLUMN owner_id DROP NOT NULL;
SELECT relation, action, rows FROM uproot.preview('owners', 3) ORDER BY relation::text, action;

-- DDL inside a transaction is seen by the next call in that transaction, and forgotten
-- again after a rollback.
BEGIN;
CREATE TABLE collars (id int PRIMARY KEY, pet_owner int REFERENCES owners);
INSERT INTO collars VALUES (1, 3), (2, 3);
SELECT relation, action, rows FROM uproot.preview('owners', 3) ORDER BY relation::text, action;
ROLLBACK;
SELECT relation, action, rows FROM uproot.preview('owners', 3) ORDER BY relation::text, action;

-- Renaming a table in the family shows in the very next call, too.
ALTER TABLE toys RENAME TO playthings;
SELECT depth, relation, rows FROM uproot.preview('owners', 3) ORDER BY depth, relation::text;

-- So does dropping one.
DROP TABLE playthings;
SELECT relation, action, rows FROM uproot.purge('owners', 3) ORDER BY relation::text, action;

-- Each DDL above made the next call read the catalog again.
SELECT catalog_loads > :loads + 4 AS reloaded_after_ddl FROM uproot.cache_info();

-- A catalog holds one family's tables, not the whole database's: a call reads the closure of
-- its root (the tables its families may reach) and serves every root in it from then on. A
-- root outside it (an unrelated family, or a parent) is read once on its own, and both stay.
CREATE TABLE shops (id int PRIMARY KEY);
CREATE TABLE shelves (id int PRIMARY KEY, shop_id int NOT NULL REFERENCES shops);
CREATE TABLE unrelated (id int PRIMARY KEY);
INSERT INTO shops VALUES (1);
INSERT INTO shelves VALUES (1, 1), (2, 1);
SELECT relation, action, rows FROM uproot.preview('owners', 4) ORDER BY relation::text, action;
SELECT catalog_loads AS loads FROM uproot.cache_info() \gset
SELECT relation, action, rows FROM uproot.preview('pets', 41) ORDER BY relation::text, action;
SELECT catalog_loads - :loads AS loads_for_a_root_in_the_closure FROM uproot.cache_info();
SELECT relation, action, rows FROM uproot.preview('shops', 1) ORDER BY relation::text, action;
SELECT catalog_loads - :loads AS loads_for_an_unrelated_root FROM uproot.cache_info();
SELECT relation, action, rows FROM uproot.preview('owners', 4) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.preview('shelves', 1) ORDER BY relation::text, action;
SELECT catalog_loads - :loads AS loads_for_both_again FROM uproot.cache_info();
-- DDL on a table no cached catalog holds leaves them all valid.
ALTER TABLE unrelated ADD COLUMN note text;
ANALYZE unrelated;
SELECT relation, action, rows FROM uproot.preview('owners', 4) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.preview('shops', 1) ORDER BY relation::text, action;
SELECT catalog_loads - :loads AS loads_after_ddl_elsewhere FROM uproot.cache_info();
-- A foreign key from that table into a family brings it in at once (any new constraint
-- invalidates every catalog).
ALTER TABLE unrelated ADD COLUMN shop_id int REFERENCES shops;
INSERT INTO unrelated VALUES (1, 'on shop 1', 1);
SELECT relation, action, rows FROM uproot.preview('shops', 1) ORDER BY relation::text, action;
SELECT catalog_loads - :loads AS loads_after_the_new_key FROM uproot.cache_info();

DROP SCHEMA cache CASCADE;
RESET search_path;
