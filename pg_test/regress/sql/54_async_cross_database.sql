-- 54_async_cross_database: an async relation to a table in another database
-- A large application moved its CI tables into a second database. Deleting a project used to
-- delete its builds in the same transaction; across two databases that is no longer possible.
-- Here, database uproot_ci holds ci_builds, which this database reaches through a
-- postgres_fdw foreign table. An async relation queues the deleted projects' keys atomically
-- with the delete, and the drain deletes their builds over there, in batches, idempotently.
-- (Skipped, with a message, where postgres_fdw is not installed; see 54_async_cross_database_1.out.)
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'postgres_fdw') AS has_fdw \gset
\if :has_fdw
SELECT current_database() AS main_db \gset

-- The second database and its table.
CREATE DATABASE uproot_ci;
\c uproot_ci
CREATE TABLE ci_builds (id int PRIMARY KEY, project_id int NOT NULL, status text);
CREATE INDEX ON ci_builds (project_id);
INSERT INTO ci_builds SELECT g, 1 + g % 4, 'ok' FROM generate_series(1, 40) g;
\c :main_db

-- This database: projects, and ci_builds as a foreign table on a server that is this cluster.
CREATE EXTENSION postgres_fdw;
CREATE SCHEMA crossdb;
SET search_path = crossdb;
DO $$
BEGIN
  EXECUTE format('CREATE SERVER uproot_ci FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname %L, host %L, port %L)',
                 'uproot_ci', split_part(current_setting('unix_socket_directories'), ',', 1),
                 current_setting('port'));
END $$;
CREATE USER MAPPING FOR CURRENT_USER SERVER uproot_ci;
CREATE FOREIGN TABLE ci_builds (id int, project_id int, status text) SERVER uproot_ci OPTIONS (schema_name 'public', table_name 'ci_builds');
CREATE TABLE projects (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO projects SELECT g, 'p' || g FROM generate_series(1, 4) g;

-- The child of an async relation may be a foreign table (no index warning: its indexes are
-- over there).
SELECT uproot.declare_relation('ci_builds_project', 'ci_builds', array['project_id'], 'projects', array['id'], 'async cascade');

-- Purge project 1, and delete project 2 as the application would: both are queued.
SELECT relation, action, rows FROM uproot.purge('projects', 1);
DELETE FROM projects WHERE id = 2;
SELECT relation, pending FROM uproot.async_lag();

-- A drain that fails after the remote delete and before the queue update changes nothing on
-- either side: the remote transaction is rolled back with the local one.
DO $$
BEGIN
  SET LOCAL uproot.debug_fail_at = 'drain_changed';
  PERFORM * FROM uproot.drain('ci_builds_project');
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE 'the drain failed: %', SQLERRM;
END $$;
SELECT project_id, count(*) FROM ci_builds GROUP BY project_id ORDER BY project_id;
SELECT relation, pending FROM uproot.async_lag();

-- The drain as a job, one key per batch, as pg_cron would run it: no build of projects 1 and 2
-- is left in the other database.
SELECT name, action, relation FROM uproot.create_drain_job('ci-drain', 'ci_builds_project', batch_size => 1);
CALL uproot.run_job('ci-drain');
SELECT job, batches, roots, rows, stop_reason FROM uproot.job_runs WHERE job = 'ci-drain' ORDER BY run_id;
\c uproot_ci
SELECT project_id, count(*) FROM ci_builds GROUP BY project_id ORDER BY project_id;
\c :main_db
SET search_path = crossdb;

-- A crash after the remote commit but before the local one leaves the key queued although
-- its builds are gone. Here the builds of project 3 are deleted over there by hand, then its
-- key is queued: the rerun handles the key and touches no row.
\c uproot_ci
DELETE FROM ci_builds WHERE project_id = 3;
\c :main_db
SET search_path = crossdb;
DELETE FROM projects WHERE id = 3;
SELECT * FROM uproot.drain('ci_builds_project');
SELECT relation, pending FROM uproot.async_lag();

SELECT uproot.drop_job('ci-drain');
SELECT uproot.drop_relation('ci_builds_project');
DROP SCHEMA crossdb CASCADE;
DROP EXTENSION postgres_fdw CASCADE;
RESET search_path;
DROP DATABASE uproot_ci;
\else
\echo 'postgres_fdw is not available in this installation: the cross-database test is skipped'
\endif
