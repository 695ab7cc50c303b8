-- 20_jobs: named retention jobs
-- A job archives (or purges) the families of the roots its predicate matches, batch_roots roots
-- at a time, one transaction per batch, and writes what it did to uproot.job_runs.
-- The tables are schema-qualified and their schema is not on the search_path, so relation
-- names print as jobs.orders, in the run log too.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
-- no CONTEXT lines: they would print line numbers of run_job's body
\set SHOW_CONTEXT never
CREATE SCHEMA jobs;

-- orders <- items <- events, plain (NO ACTION) foreign keys.
CREATE TABLE jobs.orders (id int PRIMARY KEY, placed date NOT NULL);
CREATE TABLE jobs.items  (id int PRIMARY KEY, order_id int NOT NULL REFERENCES jobs.orders, sku text);
CREATE TABLE jobs.events (id int PRIMARY KEY, item_id int NOT NULL REFERENCES jobs.items, kind text);
CREATE INDEX ON jobs.items (order_id);
CREATE INDEX ON jobs.events (item_id);

-- add_orders(from, to, placed): orders with 2 items each, every item with 2 events.
CREATE FUNCTION jobs.add_orders(a int, b int, placed date) RETURNS void LANGUAGE sql AS $$
  INSERT INTO jobs.orders SELECT o, placed FROM generate_series(a, b) o;
  INSERT INTO jobs.items SELECT 10 * o + n, o, 'sku' FROM generate_series(a, b) o, generate_series(1, 2) n;
  INSERT INTO jobs.events SELECT 10 * i + n, i, 'event'
    FROM generate_series(a, b) o, generate_series(1, 2) m, LATERAL (SELECT 10 * o + m) AS x(i), generate_series(1, 2) n;
$$;
-- Orders 1-7 are old (2022), 8-10 recent (2025).
SELECT jobs.add_orders(1, 7, '2022-06-01');
SELECT jobs.add_orders(8, 10, '2025-06-01');

-- state(): live rows, and rows in the archive tables.
SELECT * FROM uproot.prepare_archive('jobs.orders') ORDER BY source::text;
CREATE FUNCTION jobs.state() RETURNS text LANGUAGE sql AS $$
  SELECT format('live: orders=%s items=%s events=%s; archived: orders=%s items=%s events=%s',
                (SELECT count(*) FROM jobs.orders), (SELECT count(*) FROM jobs.items),
                (SELECT count(*) FROM jobs.events), (SELECT count(*) FROM uproot_archive."jobs.orders"),
                (SELECT count(*) FROM uproot_archive."jobs.items"), (SELECT count(*) FROM uproot_archive."jobs.events"))
$$;
SELECT jobs.state();

-- A job that archives old orders, 3 families per batch. The defaults show in the row it returns.
\x on
SELECT name, root, predicate, action, batch_roots, max_runtime, pause, lock_timeout,
       respect_restrict, follow_set_null, stop_at, keep_runs, enabled, created_by = current_user AS mine,
       on_error, max_replica_lag, max_replica_lag_bytes
  FROM uproot.create_job('jobs-old-orders', 'jobs.orders', $$placed < '2024-01-01'$$, batch_roots => 3);

-- Errors: a second job with the same name, predicates that are not one expression (checked by
-- PostgreSQL's parser, as for purge_where), an unknown root, a NULL predicate, an unknown action.
SELECT * FROM regress.error_of($$SELECT uproot.create_job('jobs-old-orders', 'jobs.orders', 'true')$$);
SELECT * FROM regress.error_of($$SELECT uproot.create_job('jobs-bad', 'jobs.orders', $p$placed < '2024-01-01') OR (true$p$)$$);
SELECT * FROM regress.error_of($$SELECT uproot.create_job('jobs-bad', 'jobs.orders', 'true; DELETE FROM jobs.orders')$$);
SELECT sql_state, message FROM regress.error_of($$SELECT uproot.create_job('jobs-bad', 'jobs.no_such_table', 'true')$$);
SELECT * FROM regress.error_of($$SELECT uproot.create_job('jobs-bad', 'jobs.orders', NULL)$$);
SELECT * FROM regress.error_of($$SELECT uproot.create_job('jobs-bad', 'jobs.orders', 'true', action => 'delete')$$);
-- The predicate is checked against the root table before the job is saved: it is prepared, as
-- the caller, like the statement a run will use (parsed and analysed, never run: no row is read
-- or locked). A column that does not exist, or an expression that is not boolean, is an error
-- with PostgreSQL's own SQLSTATE and message.
SELECT * FROM regress.error_of($$SELECT uproot.create_job('jobs-bad', 'jobs.orders', 'placd < now()')$$);
SELECT * FROM regress.error_of($$SELECT uproot.create_job('jobs-bad', 'jobs.orders', 'placed')$$);
SELECT * FROM regress.error_of($$SELECT uproot.create_job('jobs-bad', 'jobs.orders', 'sku = ''x''')$$);
-- Settings are checked with errors that name them.
SELECT * FROM regress.error_of($$SELECT uproot.create_job('jobs-bad', 'jobs.orders', 'true', batch_roots => 0)$$);
SELECT * FROM regress.error_of($$SELECT uproot.create_job('jobs-bad', 'jobs.orders', 'true', on_error => 'ignore')$$);
SELECT * FROM regress.error_of($$SELECT uproot.create_job('jobs-bad', 'jobs.orders', 'true', max_replica_lag => '-1 second')$$);
SELECT * FROM regress.error_of($$SELECT uproot.create_job('jobs-bad', 'jobs.orders', 'true', max_replica_lag_bytes => -1)$$);
-- alter_job checks its predicate the same way; an unknown job is an error for alter, drop and run.
SELECT * FROM regress.error_of($$SELECT uproot.alter_job('jobs-old-orders', predicate => 'true --')$$);
SELECT * FROM regress.error_of($$SELECT uproot.alter_job('jobs-old-orders', predicate => 'placed_on < now()')$$);
SELECT * FROM regress.error_of($$SELECT uproot.alter_job('jobs-old-orders', keep_runs => 0)$$);
SELECT * FROM regress.error_of($$SELECT uproot.alter_job('jobs-nope', batch_roots => 5)$$);
SELECT * FROM regress.error_of($$SELECT uproot.drop_job('jobs-nope')$$);
SELECT * FROM regress.error_of($$CALL uproot.run_job('jobs-nope')$$);
\x off
-- Only the first job exists, unchanged, and nothing was run.
SELECT name, predicate, batch_roots, keep_runs FROM uproot.jobs WHERE name LIKE 'jobs-%' ORDER BY name;
SELECT count(*) AS runs FROM uproot.job_runs WHERE job LIKE 'jobs-%';

-- run_job commits after each batch, so it must be a CALL of its own. Inside a transaction
-- block, or from a function (as error_of runs it), it says why it cannot run and what to do,
-- before it records or changes anything.
BEGIN;
CALL uproot.run_job('jobs-old-orders');
ROLLBACK;
\x on
SELECT * FROM regress.error_of($$CALL uproot.run_job('jobs-old-orders')$$);
\x off
-- A savepoint is no better than a transaction block.
BEGIN;
SAVEPOINT s;
CALL uproot.run_job('jobs-old-orders');
ROLLBACK;
SELECT count(*) AS runs FROM uproot.job_runs WHERE job LIKE 'jobs-%';
SELECT jobs.state();

-- What the first batch will take: the first 3 old orders in key order, with their families.
SELECT relation, action, rows
  FROM uproot.preview_where('jobs.orders', $$placed < '2024-01-01'$$, max_roots => 3)
 ORDER BY relation::text;

-- Run it, with a NOTICE per batch: 3 + 3 + 1 roots, then a batch that finds nothing ends the run.
CALL uproot.run_job('jobs-old-orders', verbose => true);
SELECT jobs.state();
-- The run log: batches, roots, rows per relation and action, why it stopped, and the pauses
-- for replica lag (none: the job has no lag limit).
SELECT job, batches, roots, rows, stop_reason, finished_at >= started_at AS finished,
       run_by = current_user AS run_by_me, pauses, paused
  FROM uproot.job_runs WHERE job = 'jobs-old-orders' ORDER BY run_id;

-- Each batch is one archive batch of whole families: orders 1-3, 4-6 and 7, each with all of
-- its items and events in the same batch.
SELECT dense_rank() OVER (ORDER BY _uproot_batch) AS batch, array_agg(id ORDER BY id) AS orders
  FROM uproot_archive."jobs.orders" GROUP BY _uproot_batch ORDER BY batch;
SELECT count(*) AS items_apart_from_their_order
  FROM uproot_archive."jobs.items" i
 WHERE NOT EXISTS (SELECT FROM uproot_archive."jobs.orders" o
                    WHERE o.id = i.order_id AND o._uproot_batch = i._uproot_batch);
SELECT count(*) AS events_apart_from_their_item
  FROM uproot_archive."jobs.events" e
 WHERE NOT EXISTS (SELECT FROM uproot_archive."jobs.items" i
                    WHERE i.id = e.item_id AND i._uproot_batch = e._uproot_batch);
-- The ledger has the three batches, with the job's predicate and the rows of each relation.
SELECT dense_rank() OVER (ORDER BY b.id) AS batch, b.predicate,
       (SELECT string_agg(format('%s=%s', r.relation, r.rows), ' ' ORDER BY r.position)
          FROM uproot.batch_relations r WHERE r.batch_id = b.id) AS rows
  FROM uproot.batches b WHERE b.root = 'jobs.orders'::regclass ORDER BY b.id;
-- The batch's settings (application_name, lock_timeout) were local to it.
SELECT current_setting('application_name') AS application_name, current_setting('lock_timeout') AS lock_timeout;

-- A run with nothing to do: no batch, stop reason done, and no NOTICE without verbose. A DO
-- block called on its own may CALL it too (it may commit).
DO $$ BEGIN CALL uproot.run_job('jobs-old-orders'); END $$;
SELECT job, batches, roots, rows, stop_reason
  FROM uproot.job_runs WHERE job = 'jobs-old-orders' ORDER BY run_id DESC LIMIT 1;

-- A run whose session died (or was cancelled between batches) is left without a stop reason.
-- The next run closes it once it holds the job's run lock. (Such a row is made by hand here.)
INSERT INTO uproot.job_runs (job, run_by) VALUES ('jobs-old-orders', current_user);
CALL uproot.run_job('jobs-old-orders');
SELECT batches, stop_reason, finished_at IS NOT NULL AS finished
  FROM uproot.job_runs WHERE job = 'jobs-old-orders' ORDER BY run_id DESC LIMIT 2;

-- Replica lag limits: without standbys (as here) there is no lag, and a run never pauses.
-- pg_test/ops/replica_lag.sh shows the pauses with a real standby.
SELECT * FROM uproot_internal.replica_lag();
SELECT max_replica_lag, max_replica_lag_bytes
  FROM uproot.alter_job('jobs-old-orders', max_replica_lag => '1 second', max_replica_lag_bytes => 1);
CALL uproot.run_job('jobs-old-orders');
SELECT job, batches, stop_reason, pauses, paused
  FROM uproot.job_runs WHERE job = 'jobs-old-orders' ORDER BY run_id DESC LIMIT 1;
-- 0 turns a limit off.
SELECT max_replica_lag, max_replica_lag_bytes
  FROM uproot.alter_job('jobs-old-orders', max_replica_lag => '0', max_replica_lag_bytes => 0);

-- A disabled job does nothing and says so; new old orders 11 and 12 stay.
SELECT enabled FROM uproot.alter_job('jobs-old-orders', enabled => false);
SELECT jobs.add_orders(11, 12, '2023-01-01');
CALL uproot.run_job('jobs-old-orders');
SELECT job, batches, roots, rows, stop_reason
  FROM uproot.job_runs WHERE job = 'jobs-old-orders' ORDER BY run_id DESC LIMIT 1;
SELECT jobs.state();

-- The time budget is checked before every batch. A budget of one microsecond is spent before
-- the first batch (starting a run writes and commits its run-log row): no batch at all.
SELECT enabled, max_runtime FROM uproot.alter_job('jobs-old-orders', enabled => true, max_runtime => '1 microsecond');
CALL uproot.run_job('jobs-old-orders');
SELECT job, batches, roots, rows, stop_reason
  FROM uproot.job_runs WHERE job = 'jobs-old-orders' ORDER BY run_id DESC LIMIT 1;
SELECT jobs.state();
-- A budget of 1 second with a pause of 1.5 seconds after each batch: exactly one batch of one
-- root (order 11); order 12 is left for the next run.
SELECT batch_roots, max_runtime, pause
  FROM uproot.alter_job('jobs-old-orders', batch_roots => 1, max_runtime => '1 second', pause => '1.5 seconds');
CALL uproot.run_job('jobs-old-orders');
SELECT job, batches, roots, rows, stop_reason, finished_at - started_at >= '1.5 seconds' AS paused
  FROM uproot.job_runs WHERE job = 'jobs-old-orders' ORDER BY run_id DESC LIMIT 1;
SELECT id FROM jobs.orders WHERE placed < '2024-01-01' ORDER BY id;
SELECT max_runtime, pause FROM uproot.alter_job('jobs-old-orders', max_runtime => '5 minutes', pause => '0');
CALL uproot.run_job('jobs-old-orders');
SELECT job, batches, roots, rows, stop_reason
  FROM uproot.job_runs WHERE job = 'jobs-old-orders' ORDER BY run_id DESC LIMIT 1;
SELECT jobs.state();

-- A purge job deletes the families instead; the archive does not change.
SELECT jobs.add_orders(13, 15, '2023-01-01');
SELECT name, action, batch_roots
  FROM uproot.create_job('jobs-purge', 'jobs.orders', $$placed < '2024-01-01'$$, action => 'purge', batch_roots => 2);
CALL uproot.run_job('jobs-purge', verbose => true);
SELECT job, batches, roots, rows, stop_reason
  FROM uproot.job_runs WHERE job = 'jobs-purge' ORDER BY run_id;
SELECT jobs.state();
SELECT id FROM jobs.orders ORDER BY id;

-- keep_runs bounds the run log: each run trims the job's log to its newest keep_runs runs.
SELECT count(*) AS runs FROM uproot.job_runs WHERE job = 'jobs-old-orders';
SELECT keep_runs FROM uproot.alter_job('jobs-old-orders', keep_runs => 2);
SELECT max(run_id) AS last_run FROM uproot.job_runs WHERE job = 'jobs-old-orders' \gset
CALL uproot.run_job('jobs-old-orders');
SELECT CASE WHEN run_id < :last_run THEN 'older run' WHEN run_id = :last_run THEN 'previous run'
            ELSE 'this run' END AS run, stop_reason
  FROM uproot.job_runs WHERE job = 'jobs-old-orders' ORDER BY run_id;
-- Other jobs' runs are not trimmed.
SELECT count(*) AS purge_runs FROM uproot.job_runs WHERE job = 'jobs-purge';

-- run_job depends on no search_path (a procedure that commits cannot SET one): with a schema
-- first on the search_path that redefines text || text, a run still names the relations and
-- actions in its log as always (the job's predicate runs with that search_path, as it would in
-- archive_where).
SELECT jobs.add_orders(16, 16, '2023-01-01');
CREATE SCHEMA jobs_shadow;
CREATE FUNCTION jobs_shadow.shadow_cat(text, text) RETURNS text LANGUAGE sql AS $$ SELECT 'shadowed' $$;
CREATE OPERATOR jobs_shadow.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = jobs_shadow.shadow_cat);
SET search_path = jobs_shadow, pg_catalog;
SELECT 'jobs.orders' || ' archived' AS shadowed_here;
CALL uproot.run_job('jobs-old-orders');
RESET search_path;
SELECT job, batches, roots, rows, stop_reason
  FROM uproot.job_runs WHERE job = 'jobs-old-orders' ORDER BY run_id DESC LIMIT 1;
DROP SCHEMA jobs_shadow CASCADE;

-- drop_job removes the job and its run log.
SELECT uproot.drop_job('jobs-old-orders'), uproot.drop_job('jobs-purge');
SELECT count(*) AS jobs FROM uproot.jobs WHERE name LIKE 'jobs-%';
SELECT count(*) AS runs FROM uproot.job_runs WHERE job LIKE 'jobs-%';

-- Documentation in the catalog: every job function, procedure, table and column has a comment
-- (none is missing below), and uproot's own helpers are in uproot_internal, out of \df uproot.*.
SELECT p.oid::regprocedure::text AS without_comment
  FROM pg_proc p
 WHERE p.pronamespace IN ('uproot'::regnamespace, 'uproot_internal'::regnamespace)
   AND (p.proname LIKE '%job%' OR p.proname IN ('relation_name', 'replica_lag', 'check_predicate'))
   AND obj_description(p.oid, 'pg_proc') IS NULL
UNION ALL
SELECT format('%s.%s', a.attrelid::regclass, a.attname)
  FROM pg_attribute a
 WHERE a.attrelid IN ('uproot.jobs'::regclass, 'uproot.job_runs'::regclass) AND a.attnum > 0
   AND NOT a.attisdropped AND col_description(a.attrelid, a.attnum) IS NULL
UNION ALL
SELECT c.oid::regclass::text FROM pg_class c
 WHERE c.oid IN ('uproot.jobs'::regclass, 'uproot.job_runs'::regclass) AND obj_description(c.oid, 'pg_class') IS NULL;
SELECT count(*) AS job_routines_with_comments
  FROM pg_proc p
 WHERE p.pronamespace IN ('uproot'::regnamespace, 'uproot_internal'::regnamespace)
   AND p.proname LIKE '%job%' AND obj_description(p.oid, 'pg_proc') IS NOT NULL;
SELECT p.oid::regprocedure AS helper_in_uproot
  FROM pg_proc p WHERE p.pronamespace = 'uproot'::regnamespace AND p.proname LIKE '\_%';

-- Clean up: the run log, the ledger and the archive tables of this file.
DELETE FROM uproot.job_runs WHERE job LIKE 'jobs-%';
DELETE FROM uproot.batches WHERE root = 'jobs.orders'::regclass;
DROP TABLE uproot_archive."jobs.orders", uproot_archive."jobs.items", uproot_archive."jobs.events";
DELETE FROM uproot.archive_tables WHERE source::text LIKE 'jobs.%';
DROP SCHEMA jobs CASCADE;
