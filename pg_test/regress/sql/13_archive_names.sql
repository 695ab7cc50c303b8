-- 13_archive_names: which archive table a source gets
-- An archive table is named "schema.table" in schema uproot_archive: readable, and distinct
-- for tables of the same name in different schemas. Names over PostgreSQL's 63 bytes are
-- cut and end in a hash of the full name, and so does a name that another table already
-- took. uproot.archive_tables records the mapping; a user may map a source to a table of
-- their own instead.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA names_a;
CREATE SCHEMA names_b;
CREATE SCHEMA "names_a.x";
CREATE SCHEMA names_own;
SET search_path = names_own;

-- ids_in(archive): the ids an archive table holds.
CREATE FUNCTION ids_in(archive regclass) RETURNS int[] LANGUAGE plpgsql AS $$
DECLARE ids int[];
BEGIN
  EXECUTE format('SELECT array_agg(id ORDER BY id) FROM %s', archive) INTO ids;
  RETURN ids;
END $$;

-- Two schemas, each with a table "things" of other columns.
CREATE TABLE names_a.things (id int PRIMARY KEY, label text);
CREATE TABLE names_b.things (id int PRIMARY KEY, weight numeric);
INSERT INTO names_a.things VALUES (1, 'a one'), (2, 'a two');
INSERT INTO names_b.things VALUES (1, 1.5), (2, 2.5);
SELECT source, archive, action FROM uproot.prepare_archive('names_a.things');
SELECT source, archive, action FROM uproot.prepare_archive('names_b.things');
SELECT relation, action, rows FROM uproot.archive('names_a.things', 1);
SELECT relation, action, rows FROM uproot.archive('names_b.things', 1);
-- Each keeps its own rows, under its own columns.
SELECT id, label FROM uproot_archive."names_a.things";
SELECT id, weight FROM uproot_archive."names_b.things";

-- "names_a.x".things and names_a."x.things" would both be "names_a.x.things": the first
-- one gets that name, the second one a hashed name.
CREATE TABLE "names_a.x".things (id int PRIMARY KEY);
CREATE TABLE names_a."x.things" (id int PRIMARY KEY);
INSERT INTO "names_a.x".things VALUES (10);
INSERT INTO names_a."x.things" VALUES (20);
SELECT source, archive, action FROM uproot.prepare_archive('"names_a.x".things');
SELECT source, archive, action FROM uproot.prepare_archive('names_a."x.things"');
SELECT relation, action, rows FROM uproot.archive('"names_a.x".things', 10);
SELECT relation, action, rows FROM uproot.archive('names_a."x.things"', 20);
SELECT source, archive, ids_in(archive) FROM uproot.archive_tables
 WHERE source IN ('"names_a.x".things'::regclass, 'names_a."x.things"'::regclass)
 ORDER BY source::text;

-- Long names: two tables whose names differ only after 63 bytes of "schema.table" get
-- distinct archive tables of at most 63 bytes. A multi-byte character (the Ö) is not cut in half.
CREATE TABLE names_a.a_rather_long_table_name_that_goes_on_and_on_and_on_for_one
  (id int PRIMARY KEY);
CREATE TABLE names_a.a_rather_long_table_name_that_goes_on_and_on_and_on_for_two
  (id int PRIMARY KEY, one_id int REFERENCES names_a.a_rather_long_table_name_that_goes_on_and_on_and_on_for_one);
CREATE TABLE names_b."Größenverhältnisse der Übersetzungsbüro-Ölländerei"
  (id int PRIMARY KEY);
INSERT INTO names_a.a_rather_long_table_name_that_goes_on_and_on_and_on_for_one VALUES (1), (2);
INSERT INTO names_a.a_rather_long_table_name_that_goes_on_and_on_and_on_for_two VALUES (1, 1), (2, 2);
INSERT INTO names_b."Größenverhältnisse der Übersetzungsbüro-Ölländerei" VALUES (1);
SELECT source, archive, action
  FROM uproot.prepare_archive('names_a.a_rather_long_table_name_that_goes_on_and_on_and_on_for_one')
 ORDER BY source::text;
SELECT source, archive, action
  FROM uproot.prepare_archive('names_b."Größenverhältnisse der Übersetzungsbüro-Ölländerei"');
SELECT relation, action, rows
  FROM uproot.archive('names_a.a_rather_long_table_name_that_goes_on_and_on_and_on_for_one', 1)
 ORDER BY relation::text;
SELECT relation, action, rows
  FROM uproot.archive('names_b."Größenverhältnisse der Übersetzungsbüro-Ölländerei"', 1);
SELECT c.relname, octet_length(c.relname) AS bytes, obj_description(c.oid, 'pg_class') AS comment,
       ids_in(m.archive)
  FROM uproot.archive_tables m JOIN pg_class c ON c.oid = m.archive
 WHERE m.source::text LIKE '%long%' OR m.source::text LIKE '%Größen%'
 ORDER BY c.relname;

-- A source mapped to a table of the user's own, here partitioned by batch: archive()
-- writes there, prepare_archive() leaves it alone, and restore() reads from it.
CREATE TABLE events (id int PRIMARY KEY, what text);
INSERT INTO events VALUES (1, 'first'), (2, 'second');
CREATE TABLE my_events_archive (id int, what text, _uproot_batch bigint NOT NULL)
  PARTITION BY RANGE (_uproot_batch);
CREATE TABLE my_events_archive_all PARTITION OF my_events_archive DEFAULT;
INSERT INTO uproot.archive_tables (source, archive) VALUES ('events', 'my_events_archive');
SELECT source, archive, action FROM uproot.prepare_archive('events');
SELECT relation, action, rows FROM uproot.archive('events', 1);
SELECT max(id) AS b FROM uproot.batches \gset
SELECT tableoid::regclass AS partition, id, what, _uproot_batch = :b AS in_batch
  FROM my_events_archive;
SELECT relation, action, rows FROM uproot.restore(:b);
SELECT * FROM events ORDER BY id;
SELECT count(*) AS left_in_archive FROM my_events_archive;

SELECT regress.drop_archives('names_a'), regress.drop_archives('names_b'), regress.drop_archives('names_a.x'),
       regress.drop_archives('names_own');
SELECT count(*) AS archive_tables_left FROM pg_class
 WHERE relnamespace = 'uproot_archive'::regnamespace AND relkind IN ('r', 'p') AND relname LIKE 'names_%';
DROP SCHEMA names_a, names_b, "names_a.x", names_own CASCADE;
RESET search_path;
