-- 40_cache_errors: an error or a cancel anywhere in a reload leaves no stale graph behind
-- The FK graph is cached per backend (07_cache). A cached graph is valid only after a reload
-- that completed: an error or a cancel at any point of reading the catalog, parsing it,
-- building a family graph or preparing a statement leaves the cache invalid or empty, so the
-- next call reads the catalog again and sees a foreign key added meanwhile.
--
-- uproot.debug_fail_at is a developer option for these tests (superuser only, hidden from
-- SHOW ALL): 'point' fails the next call at that point with an ERROR, 'point:cancel' with a
-- real query cancel, 'point:sleep' waits there so that statement_timeout cancels it, and
-- 'point:panic' with a Rust panic.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA cache_errors;
SET search_path = cache_errors;

-- The option is hidden from SHOW ALL and pg_settings, and only a superuser may set it (once
-- pg_uproot's library is loaded, which any call of it does).
SELECT catalog_loads >= 0 AS library_loaded FROM uproot.cache_info();
SELECT count(*) AS listed FROM pg_settings WHERE name = 'uproot.debug_fail_at';
CREATE ROLE cache_errors_user;
SET ROLE cache_errors_user;
SET uproot.debug_fail_at = 'catalog_load';
RESET ROLE;
DROP ROLE cache_errors_user;

-- builds <- build_log, at first without a foreign key: purging a build leaves its log alone.
CREATE TABLE builds (id int PRIMARY KEY);
CREATE TABLE build_log (id int PRIMARY KEY, build_id int);
CREATE INDEX ON build_log (build_id);

-- Each round: build 1 with two log rows and no FK; the cache knows that family. Then a
-- migration adds the FK, the next call fails at one point, and the call after it must purge
-- build 1 with its log rows (a stale graph would leave them, and PostgreSQL's own check would
-- fail with 23503).
CREATE FUNCTION round_start() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT FROM pg_constraint WHERE conname = 'bl_fk') THEN
    ALTER TABLE build_log DROP CONSTRAINT bl_fk;
  END IF;
  INSERT INTO builds VALUES (1) ON CONFLICT DO NOTHING;
  INSERT INTO build_log VALUES (10, 1), (11, 1) ON CONFLICT DO NOTHING;
  RETURN (SELECT count(*) FROM uproot.graph('builds'));  -- 1: the root alone
END $$;
CREATE FUNCTION add_fk() RETURNS void LANGUAGE sql AS $$
  ALTER TABLE build_log ADD CONSTRAINT bl_fk FOREIGN KEY (build_id) REFERENCES builds
$$;
CREATE FUNCTION round_end() RETURNS TABLE(relation regclass, action text, "rows" bigint)
LANGUAGE sql AS $$
  SELECT relation, action, rows FROM uproot.purge('builds', 1) ORDER BY relation::text
$$;

-- First (this session has prepared no purge statement yet): a cancel between preparing a
-- statement and keeping it. The failed call kept no plan half-way; the next call prepares
-- the statement again and works.
SELECT round_start();
SELECT add_fk();
SELECT cached_plans AS plans FROM uproot.cache_info() \gset
SET uproot.debug_fail_at = 'plan_keep:cancel';
SELECT count(*) FROM uproot.purge('builds', 1);
RESET uproot.debug_fail_at;
SELECT cached_plans = :plans AS no_plan_kept_by_the_failed_call FROM uproot.cache_info();
SELECT * FROM round_end();
SELECT cached_plans > :plans AS plans_kept_now FROM uproot.cache_info();

-- An ERROR at the same point, in a transaction that goes on after a savepoint (the predicate
-- makes the first statement one this session has not prepared yet).
SELECT round_start();
SELECT add_fk();
BEGIN;
SAVEPOINT s;
SET LOCAL uproot.debug_fail_at = 'plan_keep';
SELECT count(*) FROM uproot.purge_where('builds', 'id = 1');
ROLLBACK TO SAVEPOINT s;
SELECT * FROM round_end();
COMMIT;

-- An ERROR after the catalog query ran, before its result is used.
SELECT round_start();
SELECT add_fk();
SET uproot.debug_fail_at = 'catalog_load';
SELECT count(*) FROM uproot.graph('builds');
RESET uproot.debug_fail_at;
SELECT * FROM round_end();

-- A cancel at the same point.
SELECT round_start();
SELECT add_fk();
SET uproot.debug_fail_at = 'catalog_load:cancel';
SELECT count(*) FROM uproot.graph('builds');
RESET uproot.debug_fail_at;
SELECT * FROM round_end();

-- statement_timeout cancelling the reload (the sequence of the bug report: a cancelled
-- graph() call between a migration and the next purge).
SELECT round_start();
SELECT add_fk();
SET uproot.debug_fail_at = 'catalog_load:sleep';
SET statement_timeout = '200ms';
SELECT count(*) FROM uproot.graph('builds');
RESET statement_timeout;
RESET uproot.debug_fail_at;
SELECT * FROM round_end();

-- An ERROR after the invalidation was accepted, before the cache is looked at.
SELECT round_start();
SELECT add_fk();
SET uproot.debug_fail_at = 'invalidation';
SELECT count(*) FROM uproot.purge('builds', 1);
RESET uproot.debug_fail_at;
SELECT * FROM round_end();

-- A cancel after the new catalog was parsed, before it replaced the cached one.
SELECT round_start();
SELECT add_fk();
SET uproot.debug_fail_at = 'catalog_parse:cancel';
SELECT count(*) FROM uproot.purge('builds', 1);
RESET uproot.debug_fail_at;
SELECT * FROM round_end();

-- An ERROR after the family graph was built, before it was cached.
SELECT round_start();
SELECT add_fk();
SET uproot.debug_fail_at = 'graph_build';
SELECT count(*) FROM uproot.purge('builds', 1);
RESET uproot.debug_fail_at;
SELECT * FROM round_end();

-- A Rust panic at the same point: a plain XX000 error (no panic location or backtrace).
SELECT round_start();
SELECT add_fk();
SET uproot.debug_fail_at = 'graph_build:panic';
SELECT count(*) FROM uproot.purge('builds', 1);
RESET uproot.debug_fail_at;
SELECT * FROM round_end();

-- Every round purged build 1 with its log rows.
SELECT (SELECT count(*) FROM builds) AS builds, (SELECT count(*) FROM build_log) AS log_rows;

DROP SCHEMA cache_errors CASCADE;
RESET search_path;
