-- 53_async_relations: relations drained later ('async cascade', 'async set null')
-- Some children cannot go in the parent's transaction: they live in another database, or
-- there are too many. An async declared relation queues the keys of deleted parents, in the
-- deleting transaction, whether pg_uproot or a plain DELETE deleted them; uproot.drain() then
-- deletes (or nullifies) the referencing rows in batches, and CALL uproot.run_drain() or a
-- drain job (uproot.create_drain_job, CALL uproot.run_job) loops over it with a commit per
-- batch, for pg_cron. Until the drain has run, the children are still
-- there: that is what async means.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
SET uproot.debug_check_explain = on;
CREATE SCHEMA async;
SET search_path = async;

-- projects <- ci_builds (async cascade: the builds are deleted later) and
-- projects <- audit_notes (async set null: the notes stay, their project_id is nulled later).
CREATE TABLE projects (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE ci_builds (id int PRIMARY KEY, project_id int NOT NULL, status text);
CREATE INDEX ON ci_builds (project_id);
CREATE TABLE audit_notes (id int PRIMARY KEY, project_id int, note text);
CREATE INDEX ON audit_notes (project_id);
INSERT INTO projects SELECT g, 'p' || g FROM generate_series(1, 5) g;
INSERT INTO ci_builds SELECT g, 1 + g % 5, 'ok' FROM generate_series(1, 20) g;
INSERT INTO audit_notes SELECT g, 1 + g % 5, 'n' FROM generate_series(1, 10) g;

SELECT uproot.declare_relation('ci_builds_project', 'ci_builds', array['project_id'], 'projects', array['id'], 'async cascade');
SELECT uproot.declare_relation('audit_notes_project', 'audit_notes', array['project_id'], 'projects', array['id'], 'async set null');
-- The declaration installs a statement-level trigger on the parent (one per relation).
SELECT tgname, tgtype & 1 = 0 AS for_each_statement FROM pg_trigger
 WHERE tgrelid = 'projects'::regclass AND NOT tgisinternal ORDER BY tgname;
-- purge and archive do not follow async relations: the family of a project is the project.
SELECT relation, action, rows FROM uproot.preview('projects', 1);
-- graph lists them, marked declared and not followed: the drain handles them.
SELECT depth, child, parent, constraint_name, on_delete, disposition, in_cycle, indexed, warnings
  FROM uproot.graph('projects');

-- A purge, and a plain DELETE by the application: both queue their keys in their own
-- transaction (a rolled-back delete queues nothing).
SELECT relation, action, rows FROM uproot.purge('projects', 1);
DELETE FROM projects WHERE id IN (2, 3);
BEGIN;
DELETE FROM projects WHERE id = 4;
ROLLBACK;
-- The lag: keys waiting per relation (each relation has its own queue), and the oldest one.
SELECT relation, pending, oldest_pending IS NOT NULL AS has_oldest FROM uproot.async_lag() ORDER BY relation;
-- Until the drain runs, the children are there.
SELECT project_id, count(*) FROM ci_builds GROUP BY project_id ORDER BY project_id;

-- One batch: at most batch_size keys, oldest first; it returns the keys and the rows handled.
SELECT * FROM uproot.drain('ci_builds_project', batch_size => 2);
SELECT project_id, count(*) FROM ci_builds GROUP BY project_id ORDER BY project_id;
SELECT relation, pending FROM uproot.async_lag() ORDER BY relation;

-- A drain that fails after it changed the child rows (here: a fault injected just before it
-- unqueues the keys) changes nothing: the keys stay queued and the rows are back. Rerunning
-- it does the work once.
SET uproot.debug_fail_at = 'drain_changed';
SELECT sql_state, message FROM regress.error_of($$SELECT * FROM uproot.drain('ci_builds_project')$$);
RESET uproot.debug_fail_at;
SELECT relation, pending FROM uproot.async_lag() ORDER BY relation;
SELECT project_id, count(*) FROM ci_builds GROUP BY project_id ORDER BY project_id;

-- run_drain loops over batches, committing after each, until the queue is empty (or its time
-- budget is spent), and logs the run in uproot.drain_runs.
CALL uproot.run_drain('ci_builds_project', batch_size => 1);
CALL uproot.run_drain('audit_notes_project');
SELECT relation, batches, keys, rows, stop_reason, finished_at IS NOT NULL AS finished
  FROM uproot.drain_runs ORDER BY run_id;
SELECT project_id, count(*) FROM ci_builds GROUP BY project_id ORDER BY project_id;
SELECT id, project_id FROM audit_notes ORDER BY id;
SELECT relation, pending, oldest_pending FROM uproot.async_lag() ORDER BY relation;
-- A drain of an empty queue does nothing.
SELECT * FROM uproot.drain('ci_builds_project');

-- The drain as a job: uproot.create_drain_job makes a job with action 'drain' for an async
-- relation. CALL uproot.run_job(name) runs it like any job, and pg_cron schedules it the same
-- way: batch_size keys per batch (the job's batch_roots), a commit per batch, max_runtime,
-- pause, lock_timeout, on_error, and the run log in uproot.job_runs (roots: the keys handled;
-- rows: the child rows deleted or nullified). Its root is the relation's parent; it has no
-- predicate.
SELECT name, root, predicate, action, relation, batch_roots
  FROM uproot.create_drain_job('ci-drain', 'ci_builds_project', batch_size => 1);
SELECT name, root, action, relation, batch_roots FROM uproot.create_drain_job('notes-drain', 'audit_notes_project');
DELETE FROM projects WHERE id = 5;
-- A batch that fails rolls back, keys included, and the run ends in an ERROR once its run log
-- is committed (pg_cron records a failed run), as any job's does.
SET uproot.debug_fail_at = 'drain_changed';
CALL uproot.run_job('ci-drain');
RESET uproot.debug_fail_at;
SELECT relation, pending FROM uproot.async_lag() ORDER BY relation;
-- The next runs drain both queues.
CALL uproot.run_job('ci-drain');
CALL uproot.run_job('notes-drain');
SELECT job, batches, roots, rows, stop_reason, finished_at IS NOT NULL AS finished
  FROM uproot.job_runs WHERE job IN ('ci-drain', 'notes-drain') ORDER BY run_id;
SELECT project_id, count(*) FROM ci_builds GROUP BY project_id ORDER BY project_id;
SELECT id, project_id FROM audit_notes ORDER BY id;
SELECT relation, pending, oldest_pending FROM uproot.async_lag() ORDER BY relation;
-- A drain job's settings change with alter_job (batch_roots is its batch size), but it stays a
-- drain job and takes no predicate; create_job makes no drain job.
SELECT name, batch_roots, max_runtime FROM uproot.alter_job('ci-drain', batch_roots => 100, max_runtime => '1 minute');
\x on
SELECT * FROM regress.error_of($$SELECT uproot.alter_job('ci-drain', action => 'purge')$$);
SELECT * FROM regress.error_of($$SELECT uproot.alter_job('ci-drain', predicate => 'id > 1')$$);
SELECT * FROM regress.error_of($$SELECT uproot.create_job('drain-by-predicate', 'projects', 'true', action => 'drain')$$);
-- A relation that a drain job drains cannot be dropped before its job.
SELECT * FROM regress.error_of($$SELECT uproot.drop_relation('ci_builds_project')$$);
\x off
SELECT uproot.drop_job('ci-drain'), uproot.drop_job('notes-drain');

-- Multi-column async relations work the same way.
CREATE TABLE tenants_docs (tenant int, doc int, PRIMARY KEY (tenant, doc));
CREATE TABLE doc_views (id int PRIMARY KEY, tenant int, doc int);
CREATE INDEX ON doc_views (tenant, doc);
SELECT uproot.declare_relation('doc_views_doc', 'doc_views', array['tenant', 'doc'], 'tenants_docs', array['tenant', 'doc'], 'async cascade');
INSERT INTO tenants_docs VALUES (1, 1), (1, 2), (2, 1);
INSERT INTO doc_views VALUES (1, 1, 1), (2, 1, 2), (3, 2, 1), (4, 2, 1);
DELETE FROM tenants_docs WHERE (tenant, doc) IN ((1, 2), (2, 1));
SELECT * FROM uproot.drain('doc_views_doc');
SELECT id, tenant, doc FROM doc_views ORDER BY id;

-- Errors: draining a sync relation or an unknown one; a bad batch size; run_drain of an
-- unknown relation; a drain job of a sync or unknown relation, or with a bad batch size.
SELECT uproot.declare_relation('sync_one', 'doc_views', array['tenant', 'doc'], 'tenants_docs', array['tenant', 'doc'], 'cascade');
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.drain('sync_one')$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.drain('no_such_relation')$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.drain('doc_views_doc', 0)$$);
SELECT * FROM regress.error_of($$CALL uproot.run_drain('no_such_relation')$$);
SELECT * FROM regress.error_of($$SELECT uproot.create_drain_job('sync-drain', 'sync_one')$$);
SELECT * FROM regress.error_of($$SELECT uproot.create_drain_job('unknown-drain', 'no_such_relation')$$);
SELECT * FROM regress.error_of($$SELECT uproot.create_drain_job('bad-drain', 'doc_views_doc', batch_size => 0)$$);
\x off

-- Dropping an async relation drops its queue trigger and the keys still queued.
DELETE FROM projects WHERE id = 4;
SELECT relation, pending FROM uproot.async_lag() ORDER BY relation;
SELECT uproot.drop_relation('ci_builds_project');
SELECT uproot.drop_relation('audit_notes_project');
SELECT uproot.drop_relation('doc_views_doc');
SELECT uproot.drop_relation('sync_one');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'projects'::regclass AND NOT tgisinternal;
SELECT count(*) AS relations_left FROM uproot.async_lag();

DELETE FROM uproot.drain_runs;
DROP SCHEMA async CASCADE;
RESET search_path;
