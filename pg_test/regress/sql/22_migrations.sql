-- 22_migrations: purge and archive inside a migration's transaction, next to DDL
-- A migration runs in one explicit transaction. uproot works in that transaction: it sees the
-- DDL made earlier in it, and when a later step fails, the purge or archive is rolled back with
-- everything else (tables, archive tables, ledger).
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY terse
CREATE SCHEMA mig;

-- tenants <- projects <- tasks, plain (NO ACTION) foreign keys; tenants 1-6, each with 2
-- projects of 2 tasks.
CREATE TABLE mig.tenants  (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE mig.projects (id int PRIMARY KEY, tenant_id int NOT NULL REFERENCES mig.tenants);
CREATE TABLE mig.tasks    (id int PRIMARY KEY, project_id int NOT NULL REFERENCES mig.projects, title text);
CREATE INDEX ON mig.projects (tenant_id);
CREATE INDEX ON mig.tasks (project_id);
INSERT INTO mig.tenants SELECT t, 'tenant ' || t FROM generate_series(1, 6) t;
INSERT INTO mig.projects SELECT 10 * t + n, t FROM generate_series(1, 6) t, generate_series(1, 2) n;
INSERT INTO mig.tasks SELECT 10 * p + n, p, 'task' FROM mig.projects p(p), generate_series(1, 2) n;
SELECT source FROM uproot.prepare_archive('mig.tenants') ORDER BY source::text;

-- state(): live tenants, row counts, archived rows and ledger batches.
CREATE FUNCTION mig.state() RETURNS text LANGUAGE sql AS $$
  SELECT format('tenants %s; live %s/%s/%s; archived %s/%s/%s; batches %s',
                (SELECT array_agg(id ORDER BY id) FROM mig.tenants),
                (SELECT count(*) FROM mig.tenants), (SELECT count(*) FROM mig.projects),
                (SELECT count(*) FROM mig.tasks), (SELECT count(*) FROM uproot_archive."mig.tenants"),
                (SELECT count(*) FROM uproot_archive."mig.projects"), (SELECT count(*) FROM uproot_archive."mig.tasks"),
                (SELECT count(*) FROM uproot.batches WHERE root = 'mig.tenants'::regclass))
$$;
-- columns(t): a table's columns, to see which DDL survived.
CREATE FUNCTION mig.columns(t regclass) RETURNS text LANGUAGE sql AS $$
  SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_attribute
   WHERE attrelid = t AND attnum > 0 AND NOT attisdropped
$$;
SELECT mig.state();

-- 1. A migration that adds a column, purges tenant 1, archives tenant 2 and adds an index, then
-- commits. The archive table gains the new column as the archive runs (schema drift).
BEGIN;
ALTER TABLE mig.tasks ADD COLUMN priority int NOT NULL DEFAULT 0;
SELECT relation, action, rows FROM uproot.purge('mig.tenants', 1) ORDER BY relation::text;
SELECT relation, action, rows FROM uproot.archive('mig.tenants', 2) ORDER BY relation::text;
CREATE INDEX tasks_priority ON mig.tasks (priority);
COMMIT;
SELECT mig.state();
SELECT mig.columns('mig.tasks') AS tasks, mig.columns('uproot_archive."mig.tasks"') AS archived_tasks;
SELECT to_regclass('mig.tasks_priority') AS new_index;
SELECT id, project_id, priority FROM uproot_archive."mig.tasks" ORDER BY id;

-- 2. A migration that fails after its purge and archive: a later step raises an error. The
-- whole migration is rolled back: tenants 3 and 4 are live with all their rows, the archive and
-- the ledger are as before, and the column and index it added are gone again, in the archive
-- table too.
BEGIN;
ALTER TABLE mig.projects ADD COLUMN budget numeric;
SELECT relation, action, rows FROM uproot.purge('mig.tenants', 3) ORDER BY relation::text;
SELECT relation, action, rows FROM uproot.archive('mig.tenants', 4) ORDER BY relation::text;
SELECT mig.columns('uproot_archive."mig.projects"') AS archived_projects_inside;
CREATE INDEX projects_budget ON mig.projects (budget);
DO $$ BEGIN RAISE EXCEPTION 'migration step 4 failed'; END $$;
COMMIT;
SELECT mig.state();
SELECT mig.columns('mig.projects') AS projects, mig.columns('uproot_archive."mig.projects"') AS archived_projects;
SELECT to_regclass('mig.projects_budget') AS new_index;

-- A failing statement (not a RAISE) does the same: this one breaks a CHECK on existing rows.
BEGIN;
SELECT relation, action, rows FROM uproot.archive('mig.tenants', 3) ORDER BY relation::text;
ALTER TABLE mig.tasks ADD CONSTRAINT no_tasks CHECK (false);
COMMIT;
SELECT mig.state();

-- A migration tool's savepoint: a step rolled back to its savepoint takes its purge with it,
-- while the rest of the migration commits.
BEGIN;
SAVEPOINT step;
SELECT relation, action, rows FROM uproot.purge('mig.tenants', 3) ORDER BY relation::text;
ROLLBACK TO SAVEPOINT step;
SELECT relation, action, rows FROM uproot.archive('mig.tenants', 4) ORDER BY relation::text;
COMMIT;
SELECT mig.state();

-- 3. A purge after DDL in the same transaction sees the new foreign keys: a new table of task
-- comments, and an existing audit table that gains an FK to tenants. Both join tenant 5's
-- family, and its rows there go with it.
CREATE TABLE mig.audit (id int PRIMARY KEY, tenant_id int, note text);
INSERT INTO mig.audit SELECT id, id, 'audit' FROM mig.tenants;
BEGIN;
CREATE TABLE mig.comments (id int PRIMARY KEY, task_id int NOT NULL REFERENCES mig.tasks);
INSERT INTO mig.comments SELECT t, t FROM mig.tasks t(t) WHERE t / 100 IN (5, 6);
ALTER TABLE mig.audit ADD FOREIGN KEY (tenant_id) REFERENCES mig.tenants;
SELECT relation, action, rows FROM uproot.purge('mig.tenants', 5) ORDER BY relation::text;
COMMIT;
SELECT (SELECT array_agg(task_id ORDER BY task_id) FROM mig.comments) AS comments_left,
       (SELECT array_agg(tenant_id ORDER BY tenant_id) FROM mig.audit) AS audit_left;
-- An FK changed in a transaction that rolls back is forgotten with it. Inside the transaction,
-- tenant 6's audit row is behind the new FK (ON DELETE SET NULL) and would be detached ...
BEGIN;
ALTER TABLE mig.audit DROP CONSTRAINT audit_tenant_id_fkey;
ALTER TABLE mig.audit ADD FOREIGN KEY (tenant_id) REFERENCES mig.tenants ON DELETE SET NULL;
SELECT relation, action, rows FROM uproot.preview('mig.tenants', 6) ORDER BY relation::text, action;
ROLLBACK;
-- ... and after the rollback the FK is the plain one again: the row is deleted, not detached.
SELECT relation, action, rows FROM uproot.preview('mig.tenants', 6) ORDER BY relation::text, action;
SELECT mig.state();

-- Clean up.
DELETE FROM uproot.batches WHERE root = 'mig.tenants'::regclass;
DROP TABLE uproot_archive."mig.tenants", uproot_archive."mig.projects", uproot_archive."mig.tasks";
DELETE FROM uproot.archive_tables WHERE source::text LIKE 'mig.%';
DROP SCHEMA mig CASCADE;
