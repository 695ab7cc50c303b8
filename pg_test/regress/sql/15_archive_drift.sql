-- 15_archive_drift: the source's columns change after its archive table was made
-- A column added to the source appears in the archive table at the next archive. A column
-- whose type changed so that the archive cannot take it is an error before anything moves.
-- A column dropped from the source stays in the archive table, and restore ignores it.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA drift;
SET search_path = drift;

-- columns_of(table): its live columns and their types, in order.
CREATE FUNCTION columns_of(rel regclass) RETURNS text LANGUAGE sql AS $$
  SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
    FROM pg_attribute WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped
$$;

-- projects <- tasks
CREATE TABLE projects (id int PRIMARY KEY, name text);
CREATE TABLE tasks (id int PRIMARY KEY, project_id int NOT NULL REFERENCES projects, title varchar(10));
INSERT INTO projects SELECT p, 'project ' || p FROM generate_series(1, 6) p;
INSERT INTO tasks SELECT 10 * p + n, p, 'task ' || n FROM generate_series(1, 6) p, generate_series(1, 2) n;
SELECT source, archive, action FROM uproot.prepare_archive('projects') ORDER BY source::text;
-- counts(): rows in the live tables and in the archive tables.
CREATE FUNCTION counts() RETURNS text LANGUAGE sql AS $$
  SELECT format('live: projects=%s tasks=%s; archived: projects=%s tasks=%s',
                (SELECT count(*) FROM projects), (SELECT count(*) FROM tasks),
                (SELECT count(*) FROM uproot_archive."drift.projects"),
                (SELECT count(*) FROM uproot_archive."drift.tasks"))
$$;
SELECT relation, action, rows FROM uproot.archive('projects', 1) ORDER BY relation::text;
SELECT max(id) AS b1 FROM uproot.batches \gset
SELECT columns_of('uproot_archive."drift.tasks"');

-- A column added to the source: the next archive adds it to the archive table and fills it.
ALTER TABLE tasks ADD COLUMN done boolean;
UPDATE tasks SET done = (id % 2 = 0);
SELECT relation, action, rows FROM uproot.archive('projects', 2) ORDER BY relation::text;
SELECT columns_of('uproot_archive."drift.tasks"');
SELECT id, project_id, title, done FROM uproot_archive."drift.tasks" ORDER BY id;
-- prepare_archive() does the same, and says which columns it added.
ALTER TABLE projects ADD COLUMN budget numeric(12, 2), ADD COLUMN "Owner Name" text;
SELECT source, archive, action FROM uproot.prepare_archive('projects') ORDER BY source::text;
SELECT columns_of('uproot_archive."drift.projects"');
-- A wider varchar is the same type with another length: the archive column follows it.
ALTER TABLE tasks ALTER COLUMN title TYPE varchar(40);
UPDATE tasks SET title = 'a title longer than ten characters' WHERE id = 31;
SELECT relation, action, rows FROM uproot.archive('projects', 3) ORDER BY relation::text;
SELECT columns_of('uproot_archive."drift.tasks"');
SELECT max(id) AS b3 FROM uproot.batches \gset
SELECT id, title FROM uproot_archive."drift.tasks" WHERE id = 31;

-- A type the archive column cannot take: archived titles are text, the source's are now
-- numbers. archive() and prepare_archive() fail before anything moves, and say how to fix it.
SELECT counts();
ALTER TABLE tasks ALTER COLUMN title TYPE int USING length(title);
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.archive('projects', 4)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.archive_where('projects', 'id >= 4')$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.prepare_archive('projects')$$);
\x off
SELECT counts();
SELECT max(id) = :b3 AS no_new_batch FROM uproot.batches;
-- Once the archive column is changed as the hint says, archive works again.
ALTER TABLE uproot_archive."drift.tasks" ALTER COLUMN title TYPE int USING length(title);
SELECT relation, action, rows FROM uproot.archive('projects', 4) ORDER BY relation::text;
SELECT max(id) AS b4 FROM uproot.batches \gset
SELECT counts();

-- A column dropped from the source stays in the archive table (older batches hold values
-- in it), and restore leaves it out.
ALTER TABLE tasks DROP COLUMN done;
SELECT columns_of('tasks');
SELECT columns_of('uproot_archive."drift.tasks"');
SELECT relation, action, rows FROM uproot.restore(:b4) ORDER BY relation::text, action;
SELECT * FROM tasks WHERE project_id = 4 ORDER BY id;
-- Archiving after the drop leaves the dropped column empty for the new rows.
SELECT relation, action, rows FROM uproot.archive('projects', 5) ORDER BY relation::text;
SELECT id, project_id, title, done FROM uproot_archive."drift.tasks" WHERE project_id = 5 ORDER BY id;
SELECT columns_of('uproot_archive."drift.tasks"');
-- The archive column stays even if the source gets a column of that name but another type
-- again: that is a type change like any other.
ALTER TABLE tasks ADD COLUMN done int;
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.archive('projects', 6)$$);
\x off
SELECT counts();

SELECT regress.drop_archives('drift');
SELECT count(*) AS archive_tables_left FROM pg_class
 WHERE relnamespace = 'uproot_archive'::regnamespace AND relkind IN ('r', 'p') AND relname LIKE 'drift.%';
DROP SCHEMA drift CASCADE;
RESET search_path;
