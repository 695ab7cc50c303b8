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

DROP SCHEMA cache CASCADE;
RESET search_path;
