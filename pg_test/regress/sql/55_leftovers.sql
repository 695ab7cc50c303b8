-- 55_leftovers: finding and sweeping the rows a declared relation left behind
-- Nothing in PostgreSQL stops a plain DELETE of a declared relation's parent, and an
-- application's "nullify" strategy once turned "delete the project's builds" into
-- UPDATE ci_builds SET project_id = NULL: the builds stayed forever, and only a full scan for
-- project_id IS NULL could find them. uproot.count_leftovers() and uproot.leftovers() find
-- such rows: a reference to a parent that no longer exists, or, for a relation declared
-- required, a NULL reference. uproot.leftovers_predicate() is the same test as a predicate over
-- the child, for a job that sweeps them, whole families each (purge or archive).
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
SET uproot.debug_check_explain = on;
CREATE SCHEMA leftovers;
SET search_path = leftovers;

-- projects <- ci_builds (declared, required: every build belongs to a project) <- build_logs
-- (a real FK).
CREATE TABLE projects (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE ci_builds (id int PRIMARY KEY, project_id int, status text);
CREATE INDEX ON ci_builds (project_id);
CREATE TABLE build_logs (id int PRIMARY KEY, build_id int NOT NULL REFERENCES ci_builds, line text);
CREATE INDEX ON build_logs (build_id);
SELECT uproot.declare_relation('ci_builds_project', 'ci_builds', array['project_id'], 'projects', array['id'],
                               'cascade', required => true);
INSERT INTO projects SELECT g, 'p' || g FROM generate_series(1, 4) g;
INSERT INTO ci_builds SELECT g, 1 + g % 4, 'ok' FROM generate_series(1, 12) g;
INSERT INTO build_logs SELECT 100 + g, g, 'line' FROM generate_series(1, 12) g;

-- The application deletes project 1 its own way: it nullifies the builds first, as its ORM's
-- "nullify" strategy does. Project 2 is deleted by a plain DELETE, which knows nothing of
-- the declared relation.
UPDATE ci_builds SET project_id = NULL WHERE project_id = 1;
DELETE FROM projects WHERE id = 1;
DELETE FROM projects WHERE id = 2;

-- What was left behind, per relation: 3 builds whose project is gone, 3 with a NULL project.
SELECT relation, child, missing_parent, null_reference FROM uproot.count_leftovers();
-- The rows themselves, in key order, with the reason.
SELECT reason, "row" FROM uproot.leftovers('ci_builds_project') ORDER BY ("row"->>'id')::int;
SELECT reason, "row"->'id' AS id FROM uproot.leftovers('ci_builds_project', max_rows => 2);
-- The same test as a predicate over ci_builds...
SELECT uproot.leftovers_predicate('ci_builds_project');
-- ...whose families preview shows: the builds and their logs.
SELECT relation, action, rows FROM uproot.preview_where('ci_builds', uproot.leftovers_predicate('ci_builds_project'))
 ORDER BY relation::text;

-- A sweep job: purge those families, in batches, as pg_cron would run it.
SELECT (uproot.create_job('sweep-builds', 'ci_builds', uproot.leftovers_predicate('ci_builds_project'),
                          action => 'purge', batch_roots => 2)).name;
CALL uproot.run_job('sweep-builds');
SELECT batches, roots, rows, stop_reason FROM uproot.job_runs WHERE job = 'sweep-builds';
SELECT relation, missing_parent, null_reference FROM uproot.count_leftovers('ci_builds_project');
SELECT project_id, count(*) FROM ci_builds GROUP BY project_id ORDER BY project_id;
SELECT count(*) AS logs_left FROM build_logs;
SELECT uproot.drop_job('sweep-builds');

-- A relation that is not required only reports missing parents (a NULL reference is allowed),
-- and MATCH SIMPLE: a reference with a NULL column references nothing, so it is not missing.
CREATE TABLE tenant_docs (tenant int, doc int, PRIMARY KEY (tenant, doc));
CREATE TABLE doc_views (id int PRIMARY KEY, tenant int, doc int);
SELECT uproot.declare_relation('doc_views_doc', 'doc_views', array['tenant', 'doc'], 'tenant_docs', array['tenant', 'doc'], 'restrict');
INSERT INTO tenant_docs VALUES (1, 1);
INSERT INTO doc_views VALUES (1, 1, 1), (2, 1, 2), (3, 1, NULL), (4, NULL, NULL);
SELECT relation, missing_parent, null_reference FROM uproot.count_leftovers('doc_views_doc');
SELECT reason, "row" FROM uproot.leftovers('doc_views_doc');

-- Errors: an unknown relation; required with an action that leaves NULL references.
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.count_leftovers('no_such_relation')$$);
SELECT * FROM regress.error_of($$SELECT uproot.leftovers_predicate('no_such_relation')$$);
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation('r', 'doc_views', array['tenant', 'doc'], 'tenant_docs', array['tenant', 'doc'], 'set null', required => true)$$);
\x off

SELECT uproot.drop_relation('ci_builds_project');
SELECT uproot.drop_relation('doc_views_doc');
DROP SCHEMA leftovers CASCADE;
RESET search_path;
