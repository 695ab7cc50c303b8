-- Jobs: named, repeatable archive or purge runs over a predicate, in short transactions.
-- The loop is PL/pgSQL because only a procedure can COMMIT between batches.

CREATE TABLE uproot.jobs (
    name             text PRIMARY KEY,
    root             regclass NOT NULL,
    predicate        text NOT NULL,
    action           text NOT NULL DEFAULT 'archive' CHECK (action IN ('archive', 'purge')),
    batch_roots      int NOT NULL DEFAULT 500 CHECK (batch_roots > 0),
    max_runtime      interval NOT NULL DEFAULT '5 minutes' CHECK (max_runtime > '0'),
    pause            interval NOT NULL DEFAULT '0' CHECK (pause >= '0'),
    lock_timeout     interval NOT NULL DEFAULT '5 seconds' CHECK (lock_timeout >= '0'),
    respect_restrict boolean NOT NULL DEFAULT false,
    follow_set_null  boolean NOT NULL DEFAULT false,
    stop_at          regclass[] NOT NULL DEFAULT '{}',
    -- how many runs of this job uproot.job_runs keeps
    keep_runs        int NOT NULL DEFAULT 1000 CHECK (keep_runs > 0),
    enabled          boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by       name NOT NULL DEFAULT CURRENT_USER
);
COMMENT ON TABLE uproot.jobs IS 'Named archive/purge jobs; run with CALL uproot.run_job(name).';

-- The run log: what each run did and why it stopped.
CREATE TABLE uproot.job_runs (
    run_id      bigserial PRIMARY KEY,
    job         text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at timestamptz,
    batches     int NOT NULL DEFAULT 0,
    roots       bigint NOT NULL DEFAULT 0,
    -- {"relation": rows, ...}, summed over the run's batches
    rows        jsonb NOT NULL DEFAULT '{}',
    -- 'done', 'time budget', 'already running', 'disabled', 'error: ...'; NULL while running
    stop_reason text,
    run_by      name NOT NULL DEFAULT CURRENT_USER
);
CREATE INDEX job_runs_job ON uproot.job_runs (job, run_id DESC);
COMMENT ON TABLE uproot.job_runs IS 'One row per CALL uproot.run_job(): batches, roots, rows per relation and the stop reason.';

-- Jobs run with the privileges of whoever calls run_job, so a job may be changed only by the role
-- that created it (or a superuser): otherwise one role could point another's scheduled job at
-- rows only the other may delete.
ALTER TABLE uproot.jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY jobs_read ON uproot.jobs FOR SELECT USING (true);
CREATE POLICY jobs_own ON uproot.jobs FOR ALL
    USING (created_by OPERATOR(pg_catalog.=) CURRENT_USER)
    WITH CHECK (created_by OPERATOR(pg_catalog.=) CURRENT_USER);
GRANT SELECT, INSERT, UPDATE, DELETE ON uproot.jobs TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON uproot.job_runs TO PUBLIC;
GRANT USAGE ON SEQUENCE uproot.job_runs_run_id_seq TO PUBLIC;

-- Trim a job's run log to its keep_runs newest runs.
CREATE FUNCTION uproot._trim_job_runs(job_name text, keep int) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    DELETE FROM uproot.job_runs r
     WHERE r.job OPERATOR(pg_catalog.=) job_name
       AND r.run_id OPERATOR(pg_catalog.<) (SELECT pg_catalog.min(k.run_id) FROM (
               SELECT run_id FROM uproot.job_runs
                WHERE job OPERATOR(pg_catalog.=) job_name ORDER BY run_id DESC LIMIT keep) k);
$$;

-- "schema.table" whatever the search_path, for the run log.
CREATE FUNCTION uproot._relation_name(rel regclass) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE c.oid OPERATOR(pg_catalog.=) rel;
$$;


CREATE FUNCTION uproot.create_job(
    name text,
    root regclass,
    predicate text,
    action text DEFAULT 'archive',
    batch_roots int DEFAULT 500,
    max_runtime interval DEFAULT '5 minutes',
    pause interval DEFAULT '0',
    lock_timeout interval DEFAULT '5 seconds',
    respect_restrict boolean DEFAULT false,
    follow_set_null boolean DEFAULT false,
    stop_at regclass[] DEFAULT '{}',
    keep_runs int DEFAULT 1000
) RETURNS uproot.jobs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job uproot.jobs;
BEGIN
    IF name IS NULL OR root IS NULL OR predicate IS NULL THEN
        RAISE EXCEPTION 'uproot: invalid job: name, root and predicate must not be NULL'
            USING ERRCODE = '22023', HINT = 'e.g. uproot.create_job(''orders-retention'', ''orders'', ''created_at < now() - interval ''''1 year'''''')';
    END IF;
    IF action NOT IN ('archive', 'purge') THEN
        RAISE EXCEPTION 'uproot: invalid action: %', action
            USING ERRCODE = '22023', HINT = 'action is ''archive'' or ''purge''.';
    END IF;
    -- the predicate must be one expression; explain() checks it with PostgreSQL's parser
    PERFORM 1 FROM uproot.explain(root, predicate, respect_restrict, follow_set_null, stop_at);
    INSERT INTO uproot.jobs (name, root, predicate, action, batch_roots, max_runtime, pause, lock_timeout,
                             respect_restrict, follow_set_null, stop_at, keep_runs)
    VALUES (create_job.name, create_job.root, create_job.predicate, create_job.action, create_job.batch_roots,
            create_job.max_runtime, create_job.pause, create_job.lock_timeout, create_job.respect_restrict,
            create_job.follow_set_null, create_job.stop_at, create_job.keep_runs)
    RETURNING * INTO job;
    RETURN job;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'uproot: a job named % exists already', name
        USING ERRCODE = '42710', HINT = 'Change it with uproot.alter_job(), or drop it with uproot.drop_job().';
END
$$;

-- Change a job: every argument left NULL keeps its value.
CREATE FUNCTION uproot.alter_job(
    name text,
    predicate text DEFAULT NULL,
    action text DEFAULT NULL,
    batch_roots int DEFAULT NULL,
    max_runtime interval DEFAULT NULL,
    pause interval DEFAULT NULL,
    lock_timeout interval DEFAULT NULL,
    enabled boolean DEFAULT NULL,
    keep_runs int DEFAULT NULL
) RETURNS uproot.jobs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job uproot.jobs;
BEGIN
    SELECT * INTO job FROM uproot.jobs j WHERE j.name = alter_job.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'uproot: there is no job named %', name
            USING ERRCODE = '22023', HINT = 'List jobs with SELECT * FROM uproot.jobs.';
    END IF;
    IF predicate IS NOT NULL THEN
        PERFORM 1 FROM uproot.explain(job.root, predicate, job.respect_restrict, job.follow_set_null, job.stop_at);
    END IF;
    UPDATE uproot.jobs j SET
        predicate    = COALESCE(alter_job.predicate, j.predicate),
        action       = COALESCE(alter_job.action, j.action),
        batch_roots  = COALESCE(alter_job.batch_roots, j.batch_roots),
        max_runtime  = COALESCE(alter_job.max_runtime, j.max_runtime),
        pause        = COALESCE(alter_job.pause, j.pause),
        lock_timeout = COALESCE(alter_job.lock_timeout, j.lock_timeout),
        enabled      = COALESCE(alter_job.enabled, j.enabled),
        keep_runs    = COALESCE(alter_job.keep_runs, j.keep_runs)
     WHERE j.name = alter_job.name
    RETURNING * INTO job;
    RETURN job;
END
$$;

CREATE FUNCTION uproot.drop_job(name text) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM uproot.jobs j WHERE j.name = drop_job.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'uproot: there is no job named %', name
            USING ERRCODE = '22023', HINT = 'List jobs with SELECT * FROM uproot.jobs.';
    END IF;
    RETURN true;
END
$$;

-- Work through a job in batches of whole families, committing after each batch.
-- Stops when nothing matches ('done'), when max_runtime is spent ('time budget'), or on an
-- error ('error: ...', that batch rolled back, earlier ones kept). An overlapping run of the same
-- job exits at once ('already running'). Roots locked by other sessions are skipped (SKIP LOCKED)
-- and left for the next run. Must be CALLed outside a transaction block (it commits).
-- No SET search_path here: a procedure with a SET clause cannot COMMIT. pg_catalog is searched
-- first anyway, and every table is schema-qualified.
CREATE PROCEDURE uproot.run_job(name text, verbose boolean DEFAULT false)
LANGUAGE plpgsql
AS $$
DECLARE
    cfg uproot.jobs;
    run bigint;
    started timestamptz := clock_timestamp();
    reason text;
    committed int := 0;
    got_roots bigint;
    got_rows jsonb;
    total jsonb := '{}';
    r record;
BEGIN
    SELECT * INTO cfg FROM uproot.jobs j WHERE j.name = run_job.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'uproot: there is no job named %', name
            USING ERRCODE = '22023', HINT = 'List jobs with SELECT * FROM uproot.jobs.';
    END IF;
    IF cfg.created_by <> current_user AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'uproot: job % belongs to role %', cfg.name, cfg.created_by
            USING ERRCODE = '42501', HINT = 'Run it as that role (e.g. schedule it in pg_cron as that user).';
    END IF;

    INSERT INTO uproot.job_runs (job) VALUES (cfg.name) RETURNING run_id INTO run;
    -- Commit before taking the job's lock: called inside a transaction block, this is where the
    -- CALL fails, and no lock is left behind.
    COMMIT;
    IF NOT cfg.enabled THEN
        UPDATE uproot.job_runs SET finished_at = clock_timestamp(), stop_reason = 'disabled' WHERE run_id = run;
        PERFORM uproot._trim_job_runs(cfg.name, cfg.keep_runs);
        RAISE NOTICE 'uproot: job % is disabled', cfg.name;
        RETURN;
    END IF;
    -- one run per job at a time, across sessions; held across the commits below
    IF NOT pg_try_advisory_lock(hashtext('uproot.run_job'), hashtext(cfg.name)) THEN
        UPDATE uproot.job_runs SET finished_at = clock_timestamp(), stop_reason = 'already running' WHERE run_id = run;
        PERFORM uproot._trim_job_runs(cfg.name, cfg.keep_runs);
        COMMIT;
        RAISE NOTICE 'uproot: job % is already running in another session; this run exits', cfg.name;
        RETURN;
    END IF;
    -- runs that never finished (their session died) are closed now that we hold the lock
    UPDATE uproot.job_runs
       SET finished_at = clock_timestamp(), stop_reason = 'error: the run ended without finishing (session ended or cancelled)'
     WHERE job = cfg.name AND stop_reason IS NULL AND run_id <> run;
    COMMIT;

    LOOP
        IF clock_timestamp() - started >= cfg.max_runtime THEN
            reason := 'time budget';
            EXIT;
        END IF;
        PERFORM set_config('application_name', format('uproot job %s: batch %s', cfg.name, committed + 1), true);
        PERFORM set_config('lock_timeout', (extract(epoch FROM cfg.lock_timeout) * 1000)::bigint::text, true);
        got_roots := 0;
        got_rows := '{}';
        BEGIN
            IF cfg.action = 'archive' THEN
                FOR r IN SELECT * FROM uproot.archive_where(cfg.root, cfg.predicate, cfg.batch_roots,
                            cfg.respect_restrict, cfg.follow_set_null, cfg.stop_at, skip_locked => true)
                LOOP
                    IF r.action = 'archived' AND r.relation = cfg.root THEN got_roots := r.rows; END IF;
                    got_rows := got_rows || jsonb_build_object(uproot._relation_name(r.relation) || ' ' || r.action, r.rows);
                END LOOP;
            ELSE
                FOR r IN SELECT * FROM uproot.purge_where(root => cfg.root, predicate => cfg.predicate, max_roots => cfg.batch_roots,
                            respect_restrict => cfg.respect_restrict, follow_set_null => cfg.follow_set_null,
                            stop_at => cfg.stop_at, skip_locked => true)
                LOOP
                    IF r.action = 'deleted' AND r.relation = cfg.root THEN got_roots := r.rows; END IF;
                    got_rows := got_rows || jsonb_build_object(uproot._relation_name(r.relation) || ' ' || r.action, r.rows);
                END LOOP;
            END IF;
            -- deferred constraints are checked here, inside the batch, not at its COMMIT
            SET CONSTRAINTS ALL IMMEDIATE;
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            -- this batch is rolled back on its own; committed batches stay
            reason := 'error: ' || SQLERRM;
            RAISE WARNING 'uproot: job % batch % failed: % (%)', cfg.name, committed + 1, SQLERRM, SQLSTATE;
            EXIT;
        END;
        IF got_roots = 0 THEN
            reason := 'done';
            EXIT;
        END IF;
        committed := committed + 1;
        SELECT COALESCE(jsonb_object_agg(k, COALESCE((total ->> k)::bigint, 0) + COALESCE((got_rows ->> k)::bigint, 0)), '{}')
          INTO total
          FROM (SELECT jsonb_object_keys(total) UNION SELECT jsonb_object_keys(got_rows)) AS keys(k);
        UPDATE uproot.job_runs
           SET batches = committed, roots = roots + got_roots, rows = total
         WHERE run_id = run;
        IF run_job.verbose THEN
            RAISE NOTICE 'uproot: job % batch %: % root(s), % so far', cfg.name, committed, got_roots, total;
        END IF;
        COMMIT;
        IF cfg.pause > '0' THEN
            PERFORM pg_sleep(extract(epoch FROM cfg.pause));
        END IF;
    END LOOP;

    UPDATE uproot.job_runs
       SET finished_at = clock_timestamp(), stop_reason = reason, batches = committed
     WHERE run_id = run;
    PERFORM uproot._trim_job_runs(cfg.name, cfg.keep_runs);
    COMMIT;
    PERFORM pg_advisory_unlock(hashtext('uproot.run_job'), hashtext(cfg.name));
    IF run_job.verbose OR reason LIKE 'error:%' THEN
        RAISE NOTICE 'uproot: job % stopped after % batch(es): %', cfg.name, committed, reason;
    END IF;
END
$$;
COMMENT ON PROCEDURE uproot.run_job(text, boolean) IS
'Run a job in batches of whole families, committing after each; see uproot.job_runs for what it did.';

-- Tables of record: pg_dump keeps the jobs and their run log (see schema.sql).
SELECT pg_catalog.pg_extension_config_dump('uproot.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.job_runs', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.job_runs_run_id_seq', '');
