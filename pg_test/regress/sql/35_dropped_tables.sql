-- 35_dropped_tables: a dropped source table leaves its name, never a dangling OID, in the
-- records; its archived rows stay; a new table of the same name is never silently given a
-- second archive table.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA dropped;
SET search_path = dropped;

-- films <- reviews; archive film 1 with its reviews.
CREATE TABLE films (id int PRIMARY KEY, title text);
CREATE TABLE reviews (id int PRIMARY KEY, film_id int NOT NULL REFERENCES films, stars int);
INSERT INTO films VALUES (1, 'Alien'), (2, 'Brazil');
INSERT INTO reviews VALUES (10, 1, 5), (11, 1, 4), (20, 2, 3);
SELECT batch_id AS film_batch FROM uproot.archive('films', 1) LIMIT 1 \gset
SELECT source, archive FROM uproot.archive_tables
 WHERE archive::text LIKE '%dropped.%' ORDER BY 1::text;

-- A migration drops both tables.
DROP TABLE reviews, films;
-- Their mapping is gone; the batch keeps their names and archive tables; the rows stay.
SELECT count(*) AS mapped FROM uproot.archive_tables WHERE archive::text LIKE '%dropped.%';
SELECT position, relation, relation_name, archive, archive_name, rows
  FROM uproot.batch_relations WHERE batch_id = :film_batch ORDER BY position;
SELECT root, root_name FROM uproot.batches WHERE id = :film_batch;
SELECT count(*) AS archived_films FROM uproot_archive."dropped.films";
SELECT count(*) AS archived_reviews FROM uproot_archive."dropped.reviews";

-- The migration creates films again. Archiving it does not start a second archive table of
-- the same name behind the user's back: it says which batches the old one holds and how to
-- keep or discard them, and nothing moves.
CREATE TABLE films (id int PRIMARY KEY, title text, year int);
INSERT INTO films VALUES (3, 'Cube', 1997);
\x on
SELECT sql_state, message, replace(detail, :'film_batch', '<batch>') AS detail,
       replace(hint, :'film_batch', '<batch>') AS hint
  FROM regress.error_of($$SELECT * FROM uproot.archive('films', 3)$$);
\x off
SELECT count(*) AS live_films FROM films;
SELECT count(*) AS archive_tables_of_films FROM pg_class
 WHERE relnamespace = 'uproot_archive'::regnamespace AND relname LIKE 'dropped.films%';

-- Keeping the old rows: rename the old archive table, as the hint says. The batch follows the
-- rename (it records the table, not its name), and the new films get an archive of their own.
ALTER TABLE uproot_archive."dropped.films" RENAME TO "dropped.films (until 2026)";
SELECT relation, action, rows FROM uproot.archive('films', 3) ORDER BY relation::text;
SELECT source, archive FROM uproot.archive_tables WHERE source = 'films'::regclass;
SELECT archive FROM uproot.batch_relations WHERE batch_id = :film_batch ORDER BY position;

-- Clean up: batches of this schema, archive tables, mapping.
DELETE FROM uproot.batches WHERE root_name LIKE '%dropped%';
DROP TABLE films;
DROP TABLE uproot_archive."dropped.films", uproot_archive."dropped.films (until 2026)", uproot_archive."dropped.reviews";
SELECT count(*) AS left_behind FROM uproot.archive_tables WHERE archive::text LIKE '%dropped.%' OR source::text LIKE '%dropped.%';
DROP SCHEMA dropped CASCADE;
RESET search_path;
