-- Jobs: named, repeatable archive or purge runs over a predicate, or drains of an async declared
-- relation's queue, in short transactions.
-- The loop is PL/pgSQL because only a procedure can COMMIT between batches.
--
-- Who may do what. A job runs with the privileges of whoever runs it, so only the role that
-- created it (or a superuser) may change, run or drop it: otherwise one role could point
-- another's scheduled job at rows only the other may delete. uproot.jobs and uproot.job_runs are
-- not writable by PUBLIC; the functions below write them through helpers in uproot_internal
-- (src/jobs/mod.rs) that check the calling role first. Predicates, and errors in the run log, can
-- hold personal data (`email = '...'`), so each role reads only its own jobs and their runs
-- (row-level security, as pg_cron does for cron.job); superusers and members of
-- pg_read_all_data read them all.

CREATE TABLE uproot.jobs (
    name             text PRIMARY KEY,
    root             regclass NOT NULL,
    predicate        text NOT NULL,
    action           text NOT NULL DEFAULT 'archive' CHECK (action IN ('archive', 'purge', 'drain')),
    batch_roots      int NOT NULL DEFAULT 500 CHECK (batch_roots > 0),
    max_runtime      interval NOT NULL DEFAULT '5 minutes' CHECK (max_runtime > '0'),
    pause            interval NOT NULL DEFAULT '0' CHECK (pause >= '0'),
    lock_timeout     interval NOT NULL DEFAULT '5 seconds' CHECK (lock_timeout >= '0'),
    respect_restrict boolean NOT NULL DEFAULT false,
    follow_set_null  boolean NOT NULL DEFAULT false,
    stop_at          regclass[] NOT NULL DEFAULT '{}',
    keep_runs        int NOT NULL DEFAULT 1000 CHECK (keep_runs > 0),
    enabled          boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by       name NOT NULL,
    on_error         text NOT NULL DEFAULT 'error' CHECK (on_error IN ('error', 'warn')),
    max_replica_lag  interval NOT NULL DEFAULT '0' CHECK (max_replica_lag >= '0'),
    max_replica_lag_bytes bigint NOT NULL DEFAULT 0 CHECK (max_replica_lag_bytes >= 0),
    -- a drain job (uproot.create_drain_job) drains this async declared relation's queue
    relation         text,
    CONSTRAINT jobs_drain_relation CHECK ((action = 'drain') = (relation IS NOT NULL))
);
CREATE TABLE uproot.job_runs (
    run_id      bigserial PRIMARY KEY,
    job         text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at timestamptz,
    batches     int NOT NULL DEFAULT 0,
    roots       bigint NOT NULL DEFAULT 0,
    rows        jsonb NOT NULL DEFAULT '{}',
    stop_reason text,
    run_by      name NOT NULL,
    pauses      int NOT NULL DEFAULT 0,
    paused      interval NOT NULL DEFAULT '0'
);
CREATE INDEX job_runs_job ON uproot.job_runs (job, run_id DESC);

-- upgrade: functions (sql/upgrade/generate.py copies from here to the end marker into the
-- upgrade script: comments, policies, grants and functions, everything but the tables)
COMMENT ON TABLE uproot.jobs IS
'Named archive/purge jobs (uproot.create_job) and drain jobs of async declared relations (uproot.create_drain_job); run them with CALL uproot.run_job(name). Each role sees its own jobs.';
COMMENT ON COLUMN uproot.jobs.name IS 'The job''s name, as uproot.run_job takes it.';
COMMENT ON COLUMN uproot.jobs.root IS 'The root table: the job archives or purges families of its rows. For a drain job, the parent of its declared relation.';
COMMENT ON COLUMN uproot.jobs.action IS 'archive (into uproot_archive, restorable), purge (delete), or drain (the queue of an async declared relation; uproot.create_drain_job).';
COMMENT ON COLUMN uproot.jobs.relation IS 'For a drain job: the async declared relation whose queue it drains; NULL for archive and purge jobs.';
COMMENT ON COLUMN uproot.jobs.respect_restrict IS 'As in purge_where: NO ACTION / RESTRICT edges with rows fail the batch instead of being followed.';
COMMENT ON COLUMN uproot.jobs.follow_set_null IS 'As in purge_where: SET NULL / SET DEFAULT edges are followed instead of detached.';
COMMENT ON COLUMN uproot.jobs.stop_at IS 'As in purge_where: tables never entered.';
COMMENT ON COLUMN uproot.jobs.enabled IS 'A disabled job''s runs do nothing (stop reason disabled).';
COMMENT ON COLUMN uproot.jobs.created_at IS 'When the job was created.';
COMMENT ON COLUMN uproot.jobs.predicate IS 'SQL boolean expression over the root table''s columns: the roots the job takes. Empty for a drain job.';
COMMENT ON COLUMN uproot.jobs.batch_roots IS 'Roots (whole families) per batch, or for a drain job queued keys per batch; each batch is one transaction.';
COMMENT ON COLUMN uproot.jobs.max_runtime IS 'Time budget of a run: no batch starts after it is spent.';
COMMENT ON COLUMN uproot.jobs.pause IS 'Sleep after each batch.';
COMMENT ON COLUMN uproot.jobs.lock_timeout IS 'lock_timeout of each batch (0: wait as long as it takes).';
COMMENT ON COLUMN uproot.jobs.keep_runs IS 'How many runs of this job uproot.job_runs keeps.';
COMMENT ON COLUMN uproot.jobs.created_by IS 'The role that owns the job: only it (or a superuser) may change, run or drop it.';
COMMENT ON COLUMN uproot.jobs.on_error IS 'How a run that stopped on an error ends: ''error'' raises an ERROR after the run log is committed (pg_cron records failed), ''warn'' a WARNING.';
COMMENT ON COLUMN uproot.jobs.max_replica_lag IS 'Pause while a standby''s replay_lag exceeds this (0: no limit).';
COMMENT ON COLUMN uproot.jobs.max_replica_lag_bytes IS 'Pause while a standby has more than this many bytes of WAL not replayed (0: no limit).';

-- The run log: what each run did and why it stopped.
COMMENT ON TABLE uproot.job_runs IS
'One row per CALL uproot.run_job(): batches, roots, rows per relation, pauses for replica lag and the stop reason. Each role sees the runs of its own jobs.';
COMMENT ON COLUMN uproot.job_runs.run_id IS 'The run''s number, in the order runs started.';
COMMENT ON COLUMN uproot.job_runs.job IS 'The job''s name (uproot.jobs.name).';
COMMENT ON COLUMN uproot.job_runs.started_at IS 'When the run started.';
COMMENT ON COLUMN uproot.job_runs.finished_at IS 'NULL while the run is in progress.';
COMMENT ON COLUMN uproot.job_runs.batches IS 'Batches committed.';
COMMENT ON COLUMN uproot.job_runs.roots IS 'Roots (families) archived or purged; for a drain job, queued keys handled.';
COMMENT ON COLUMN uproot.job_runs.rows IS '{"schema.table action": rows, ...}, summed over the committed batches (a drain job: its child rows deleted or nullified).';
COMMENT ON COLUMN uproot.job_runs.stop_reason IS
'done, time budget, replica lag, already running, disabled, or error: <message> (that batch rolled back, earlier ones kept); NULL while running.';
COMMENT ON COLUMN uproot.job_runs.run_by IS 'The role that ran it.';
COMMENT ON COLUMN uproot.job_runs.pauses IS 'How many times the run paused because a standby was too far behind.';
COMMENT ON COLUMN uproot.job_runs.paused IS 'How long it paused in all.';

ALTER TABLE uproot.jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY jobs_read ON uproot.jobs FOR SELECT
    USING (created_by OPERATOR(pg_catalog.=) CURRENT_USER
           -- pg_read_all_data reads everything (PostgreSQL 14 and later; NULL before)
           OR COALESCE(pg_catalog.pg_has_role(CURRENT_USER,
                  (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) 'pg_read_all_data'),
                  'USAGE'), false));
ALTER TABLE uproot.job_runs ENABLE ROW LEVEL SECURITY;
-- a run is visible with its job (the subquery sees uproot.jobs through jobs_read)
CREATE POLICY job_runs_read ON uproot.job_runs FOR SELECT
    USING (EXISTS (SELECT FROM uproot.jobs j WHERE j.name OPERATOR(pg_catalog.=) job_runs.job));
GRANT SELECT ON uproot.jobs, uproot.job_runs TO PUBLIC;
REVOKE ALL ON SEQUENCE uproot.job_runs_run_id_seq FROM PUBLIC;

-- "schema.table" whatever the search_path, for the run log.
CREATE FUNCTION uproot_internal.relation_name(rel regclass) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE c.oid OPERATOR(pg_catalog.=) rel;
$$;
COMMENT ON FUNCTION uproot_internal.relation_name(regclass) IS
'Internal: "schema.table" whatever the search_path, for the run log.';

-- The settings create_job and alter_job take, checked with errors that name the argument (the
-- table's CHECK constraints are the backstop).
CREATE FUNCTION uproot_internal.check_job_settings(action text, batch_roots int, max_runtime interval,
    pause interval, lock_timeout interval, keep_runs int, on_error text, max_replica_lag interval,
    max_replica_lag_bytes bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad text;
    why text;
    hint text;
BEGIN
    IF action IS DISTINCT FROM 'archive' AND action IS DISTINCT FROM 'purge' AND action IS DISTINCT FROM 'drain' THEN
        bad := 'action'; why := format('%s is not ''archive'', ''purge'' or ''drain''', coalesce(quote_literal(action), 'NULL'));
        hint := 'action => ''archive'' moves the families into archive tables; ''purge'' deletes them. Drain jobs are created with uproot.create_drain_job.';
    ELSIF on_error IS DISTINCT FROM 'error' AND on_error IS DISTINCT FROM 'warn' THEN
        bad := 'on_error'; why := format('%s is neither ''error'' nor ''warn''', coalesce(quote_literal(on_error), 'NULL'));
        hint := 'on_error => ''error'' ends a failed run in an ERROR (schedulers record a failure); ''warn'' in a WARNING.';
    ELSIF batch_roots IS NULL OR batch_roots < 1 THEN
        bad := 'batch_roots'; why := 'it must be 1 or more';
        hint := 'batch_roots is how many roots (whole families) one batch takes.';
    ELSIF keep_runs IS NULL OR keep_runs < 1 THEN
        bad := 'keep_runs'; why := 'it must be 1 or more';
        hint := 'keep_runs is how many runs of the job uproot.job_runs keeps.';
    ELSIF max_runtime IS NULL OR max_runtime <= '0' THEN
        bad := 'max_runtime'; why := 'it must be longer than 0';
        hint := 'max_runtime is the time budget of a run, e.g. ''5 minutes''.';
    ELSIF pause IS NULL OR pause < '0' THEN
        bad := 'pause'; why := 'it must not be negative';
        hint := 'pause is the sleep after each batch; 0 for none.';
    ELSIF lock_timeout IS NULL OR lock_timeout < '0' THEN
        bad := 'lock_timeout'; why := 'it must not be negative';
        hint := 'lock_timeout is each batch''s lock_timeout; 0 waits as long as it takes.';
    ELSIF max_replica_lag IS NULL OR max_replica_lag < '0' THEN
        bad := 'max_replica_lag'; why := 'it must not be negative';
        hint := 'max_replica_lag pauses a run while a standby''s replay lag exceeds it; 0 for no limit.';
    ELSIF max_replica_lag_bytes IS NULL OR max_replica_lag_bytes < 0 THEN
        bad := 'max_replica_lag_bytes'; why := 'it must not be negative';
        hint := 'max_replica_lag_bytes pauses a run while a standby has more WAL than this left to replay; 0 for no limit.';
    END IF;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'uproot: invalid %: %', bad, why USING ERRCODE = '22023', HINT = hint;
    END IF;
END
$$;
COMMENT ON FUNCTION uproot_internal.check_job_settings(text, int, interval, interval, interval, int, text, interval, bigint) IS
'Internal: raise an error naming the first invalid job setting.';

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
    keep_runs int DEFAULT 1000,
    on_error text DEFAULT 'error',
    max_replica_lag interval DEFAULT '0',
    max_replica_lag_bytes bigint DEFAULT 0
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
    IF action OPERATOR(pg_catalog.=) 'drain' THEN
        RAISE EXCEPTION 'uproot: invalid action: a drain job drains an async declared relation, not a predicate''s roots'
            USING ERRCODE = '22023', HINT = 'Create it with uproot.create_drain_job(name, relation).';
    END IF;
    PERFORM uproot_internal.check_job_settings(action, batch_roots, max_runtime, pause, lock_timeout,
                                               keep_runs, on_error, max_replica_lag, max_replica_lag_bytes);
    -- the family and the options must be valid, and the predicate one expression (checked by
    -- PostgreSQL's parser) over columns the root has: it is prepared, as the caller, not run
    PERFORM 1 FROM uproot.explain(root => create_job.root, predicate => create_job.predicate,
                                  respect_restrict => create_job.respect_restrict,
                                  follow_set_null => create_job.follow_set_null, stop_at => create_job.stop_at);
    PERFORM uproot_internal.check_predicate(create_job.root, create_job.predicate);
    PERFORM uproot_internal.job_insert(create_job.name, create_job.root, create_job.predicate, create_job.action,
                                       create_job.batch_roots, create_job.max_runtime, create_job.pause,
                                       create_job.lock_timeout, create_job.respect_restrict,
                                       create_job.follow_set_null, create_job.stop_at, create_job.keep_runs,
                                       create_job.on_error, create_job.max_replica_lag,
                                       create_job.max_replica_lag_bytes);
    SELECT * INTO STRICT job FROM uproot.jobs j WHERE j.name OPERATOR(pg_catalog.=) create_job.name;
    RETURN job;
END
$$;
COMMENT ON FUNCTION uproot.create_job(text, regclass, text, text, int, interval, interval, interval, boolean, boolean, regclass[], int, text, interval, bigint) IS
'Create a named archive or purge job over the roots matching a predicate, owned by the calling role; run it with CALL uproot.run_job(name).';

-- A drain job: CALL uproot.run_job(name) drains the queue of an async declared relation in
-- batches of batch_size keys (uproot.drain), with run_job's commits, time budget, pause,
-- lock_timeout, replica-lag pauses, run log and on_error. Its root is the relation's parent.
CREATE FUNCTION uproot.create_drain_job(
    name text,
    relation text,
    batch_size int DEFAULT 1000,
    max_runtime interval DEFAULT '5 minutes',
    pause interval DEFAULT '0',
    lock_timeout interval DEFAULT '5 seconds',
    keep_runs int DEFAULT 1000,
    on_error text DEFAULT 'error',
    max_replica_lag interval DEFAULT '0',
    max_replica_lag_bytes bigint DEFAULT 0
) RETURNS uproot.jobs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job uproot.jobs;
BEGIN
    IF name IS NULL OR relation IS NULL THEN
        RAISE EXCEPTION 'uproot: invalid job: name and relation must not be NULL'
            USING ERRCODE = '22023', HINT = 'e.g. uproot.create_drain_job(''ci-builds-drain'', ''ci_builds_project'')';
    END IF;
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'uproot: invalid batch_size: it must be 1 or more'
            USING ERRCODE = '22023', HINT = 'batch_size is how many queued keys one batch takes, e.g. 1000.';
    END IF;
    PERFORM uproot_internal.check_job_settings('drain', batch_size, max_runtime, pause, lock_timeout,
                                               keep_runs, on_error, max_replica_lag, max_replica_lag_bytes);
    -- the relation must be an async declared relation (checked there)
    PERFORM uproot_internal.drain_job_insert(create_drain_job.name, create_drain_job.relation,
                                             create_drain_job.batch_size, create_drain_job.max_runtime,
                                             create_drain_job.pause, create_drain_job.lock_timeout,
                                             create_drain_job.keep_runs, create_drain_job.on_error,
                                             create_drain_job.max_replica_lag, create_drain_job.max_replica_lag_bytes);
    SELECT * INTO STRICT job FROM uproot.jobs j WHERE j.name OPERATOR(pg_catalog.=) create_drain_job.name;
    RETURN job;
END
$$;
COMMENT ON FUNCTION uproot.create_drain_job(text, text, int, interval, interval, interval, int, text, interval, bigint) IS
'Create a job that drains the queue of an async declared relation, batch_size keys per batch, owned by the calling role; run it with CALL uproot.run_job(name), e.g. from pg_cron.';

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
    keep_runs int DEFAULT NULL,
    on_error text DEFAULT NULL,
    max_replica_lag interval DEFAULT NULL,
    max_replica_lag_bytes bigint DEFAULT NULL
) RETURNS uproot.jobs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job uproot.jobs;
BEGIN
    -- the job exists and is the caller's (or the caller is a superuser); its row stays locked
    PERFORM uproot_internal.job_lock(alter_job.name);
    SELECT * INTO STRICT job FROM uproot.jobs j WHERE j.name OPERATOR(pg_catalog.=) alter_job.name;
    -- a drain job has no predicate, and stays a drain job; no other job becomes one
    IF (job.action OPERATOR(pg_catalog.=) 'drain') IS DISTINCT FROM (COALESCE(alter_job.action, job.action) OPERATOR(pg_catalog.=) 'drain') THEN
        RAISE EXCEPTION 'uproot: invalid action: the action of job % cannot change from % to %', job.name, job.action, alter_job.action
            USING ERRCODE = '22023', HINT = 'Drop it and create the job you need (uproot.create_job, or uproot.create_drain_job for a drain).';
    END IF;
    IF job.action OPERATOR(pg_catalog.=) 'drain' AND alter_job.predicate IS NOT NULL THEN
        RAISE EXCEPTION 'uproot: invalid predicate: job % is a drain job, which takes no predicate', job.name
            USING ERRCODE = '22023', HINT = 'A drain job takes every queued key of its declared relation.';
    END IF;
    job.predicate := COALESCE(alter_job.predicate, job.predicate);
    job.action := COALESCE(alter_job.action, job.action);
    job.batch_roots := COALESCE(alter_job.batch_roots, job.batch_roots);
    job.max_runtime := COALESCE(alter_job.max_runtime, job.max_runtime);
    job.pause := COALESCE(alter_job.pause, job.pause);
    job.lock_timeout := COALESCE(alter_job.lock_timeout, job.lock_timeout);
    job.enabled := COALESCE(alter_job.enabled, job.enabled);
    job.keep_runs := COALESCE(alter_job.keep_runs, job.keep_runs);
    job.on_error := COALESCE(alter_job.on_error, job.on_error);
    job.max_replica_lag := COALESCE(alter_job.max_replica_lag, job.max_replica_lag);
    job.max_replica_lag_bytes := COALESCE(alter_job.max_replica_lag_bytes, job.max_replica_lag_bytes);
    PERFORM uproot_internal.check_job_settings(job.action, job.batch_roots, job.max_runtime, job.pause,
                                               job.lock_timeout, job.keep_runs, job.on_error,
                                               job.max_replica_lag, job.max_replica_lag_bytes);
    IF alter_job.predicate IS NOT NULL THEN
        PERFORM 1 FROM uproot.explain(root => job.root, predicate => job.predicate,
                                      respect_restrict => job.respect_restrict,
                                      follow_set_null => job.follow_set_null, stop_at => job.stop_at);
        PERFORM uproot_internal.check_predicate(job.root, job.predicate);
    END IF;
    PERFORM uproot_internal.job_update(job.name, job.predicate, job.action, job.batch_roots, job.max_runtime,
                                       job.pause, job.lock_timeout, job.enabled, job.keep_runs, job.on_error,
                                       job.max_replica_lag, job.max_replica_lag_bytes);
    SELECT * INTO STRICT job FROM uproot.jobs j WHERE j.name OPERATOR(pg_catalog.=) alter_job.name;
    RETURN job;
END
$$;
COMMENT ON FUNCTION uproot.alter_job(text, text, text, int, interval, interval, interval, boolean, int, text, interval, bigint) IS
'Change a job''s settings (arguments left NULL keep their value); only its owner or a superuser may. A new predicate is checked like create_job''s.';

CREATE FUNCTION uproot.drop_job(name text) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM uproot_internal.job_delete(drop_job.name);
    RETURN true;
END
$$;
COMMENT ON FUNCTION uproot.drop_job(text) IS
'Drop a job and its run log; only its owner or a superuser may. Archived batches stay in the ledger.';

-- Work through a job in batches of whole families, committing after each batch (a drain job:
-- in batches of queued keys, each one call of uproot.drain).
-- Before each batch: stop when max_runtime is spent ('time budget'); wait while a standby is
-- further behind than max_replica_lag / max_replica_lag_bytes, and stop if that outlasts the
-- budget ('replica lag'). Stops when nothing matches ('done') or on an error ('error: ...', that
-- batch rolled back, earlier ones kept). A run that stopped on an error or on replica lag ends,
-- once its run-log row is committed, in an ERROR (on_error 'error') or a WARNING ('warn').
-- An overlapping run of the same job exits at once ('already running'). Roots locked by other
-- sessions are skipped (SKIP LOCKED) and left for the next run. Must be CALLed on its own, not in
-- a transaction block (it commits); job_run_start says so otherwise.
-- No SET search_path here: a procedure with a SET clause cannot COMMIT, and the job's predicate
-- runs with the caller's search_path, as uproot.purge_where would. So nothing in the body depends
-- on the search_path: every table, function, operator and type is schema-qualified (or an SQL
-- keyword: bigint, int, boolean, interval, COALESCE, NULLIF, least, extract).
-- Every call of purge_where/archive_where names its arguments, whatever their order.
CREATE PROCEDURE uproot.run_job(name text, verbose boolean DEFAULT false)
LANGUAGE plpgsql
AS $$
DECLARE
    cfg uproot.jobs;
    run bigint;
    started pg_catalog.timestamptz := pg_catalog.clock_timestamp();
    reason pg_catalog.text;
    committed int := 0;
    roots_done bigint := 0;
    got_roots bigint;
    got_rows pg_catalog.jsonb;
    total pg_catalog.jsonb := '{}';
    pauses int := 0;
    paused interval := '0';
    pause_began pg_catalog.timestamptz;
    lag record;
    lagging boolean;
    err_state pg_catalog.text;
    err_message pg_catalog.text;
    err_detail pg_catalog.text;
    err_hint pg_catalog.text;
    r record;
BEGIN
    -- the job exists, the caller may run it, and this CALL may commit; the run is recorded
    run := uproot_internal.job_run_start(run_job.name);
    SELECT * INTO STRICT cfg FROM uproot.jobs j WHERE j.name OPERATOR(pg_catalog.=) run_job.name;
    COMMIT;
    IF NOT cfg.enabled THEN
        PERFORM uproot_internal.job_run_record(run, 0, 0, '{}', 0, '0', 'disabled');
        COMMIT;
        RAISE NOTICE 'uproot: job % is disabled', cfg.name;
        RETURN;
    END IF;
    -- one run per job at a time, across sessions; held across the commits below
    IF NOT uproot_internal.job_run_claim(run) THEN
        PERFORM uproot_internal.job_run_record(run, 0, 0, '{}', 0, '0', 'already running');
        COMMIT;
        RAISE NOTICE 'uproot: job % is already running in another session; this run exits', cfg.name;
        RETURN;
    END IF;
    COMMIT;

    <<batches>>
    LOOP
        IF pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) started OPERATOR(pg_catalog.>=) cfg.max_runtime THEN
            reason := 'time budget';
            EXIT;
        END IF;
        -- Replica lag: wait while a standby is too far behind, checking every second or so.
        -- The first check of a pause records it in the run log.
        IF cfg.max_replica_lag OPERATOR(pg_catalog.>) '0' OR cfg.max_replica_lag_bytes OPERATOR(pg_catalog.>) 0 THEN
            LOOP
                SELECT * INTO lag FROM uproot_internal.replica_lag();
                lagging := COALESCE(cfg.max_replica_lag OPERATOR(pg_catalog.>) '0' AND lag.lag OPERATOR(pg_catalog.>) cfg.max_replica_lag, false)
                        OR COALESCE(cfg.max_replica_lag_bytes OPERATOR(pg_catalog.>) 0 AND lag.lag_bytes OPERATOR(pg_catalog.>) cfg.max_replica_lag_bytes, false);
                EXIT WHEN NOT lagging;
                IF pause_began IS NULL THEN
                    pause_began := pg_catalog.clock_timestamp();
                    pauses := pauses OPERATOR(pg_catalog.+) 1;
                    PERFORM uproot_internal.job_run_record(run, committed, roots_done, total, pauses, paused);
                    IF run_job.verbose THEN
                        RAISE NOTICE 'uproot: job % paused: a standby is behind (replay lag %, % bytes of WAL not replayed)',
                            cfg.name, lag.lag, lag.lag_bytes;
                    END IF;
                END IF;
                IF pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) started OPERATOR(pg_catalog.>=) cfg.max_runtime THEN
                    reason := 'replica lag';
                    EXIT;
                END IF;
                -- no transaction stays open while the run waits
                COMMIT;
                PERFORM pg_catalog.set_config('application_name', pg_catalog.format('uproot job %s: paused for replica lag', cfg.name), true);
                BEGIN
                    PERFORM pg_catalog.pg_sleep(least(1.0, extract(epoch FROM cfg.max_runtime OPERATOR(pg_catalog.-) (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) started))));
                EXCEPTION WHEN query_canceled THEN
                    GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT;
                    reason := 'error: ' OPERATOR(pg_catalog.||) err_message;
                    EXIT;
                END;
            END LOOP;
            IF pause_began IS NOT NULL THEN
                paused := paused OPERATOR(pg_catalog.+) (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) pause_began);
                pause_began := NULL;
            END IF;
            EXIT batches WHEN reason IS NOT NULL;
        END IF;

        PERFORM pg_catalog.set_config('application_name', pg_catalog.format('uproot job %s: batch %s', cfg.name, committed OPERATOR(pg_catalog.+) 1), true);
        PERFORM pg_catalog.set_config('lock_timeout', (extract(epoch FROM cfg.lock_timeout) OPERATOR(pg_catalog.*) 1000)::bigint::pg_catalog.text, true);
        got_roots := 0;
        got_rows := '{}';
        BEGIN
            IF cfg.action OPERATOR(pg_catalog.=) 'drain' THEN
                -- one batch of queued keys; the rows are the child's, deleted or nullified
                SELECT * INTO r FROM uproot.drain(relation => cfg.relation, batch_size => cfg.batch_roots);
                got_roots := r.keys;
                IF r.keys OPERATOR(pg_catalog.>) 0 THEN
                    SELECT pg_catalog.jsonb_build_object(uproot_internal.relation_name(d.child) OPERATOR(pg_catalog.||)
                               CASE WHEN d.on_delete OPERATOR(pg_catalog.=) 'async set null' THEN ' nullified' ELSE ' deleted' END,
                               r.rows)
                      INTO got_rows
                      FROM uproot.declared_relations d WHERE d.name OPERATOR(pg_catalog.=) cfg.relation;
                END IF;
            ELSIF cfg.action OPERATOR(pg_catalog.=) 'archive' THEN
                FOR r IN SELECT * FROM uproot.archive_where(root => cfg.root, predicate => cfg.predicate,
                            max_roots => cfg.batch_roots, respect_restrict => cfg.respect_restrict,
                            follow_set_null => cfg.follow_set_null, stop_at => cfg.stop_at, skip_locked => true)
                LOOP
                    IF r.action OPERATOR(pg_catalog.=) 'archived' AND r.relation OPERATOR(pg_catalog.=) cfg.root THEN got_roots := r.rows; END IF;
                    got_rows := got_rows OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(uproot_internal.relation_name(r.relation) OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) r.action, r.rows);
                END LOOP;
            ELSE
                FOR r IN SELECT * FROM uproot.purge_where(root => cfg.root, predicate => cfg.predicate,
                            max_roots => cfg.batch_roots, respect_restrict => cfg.respect_restrict,
                            follow_set_null => cfg.follow_set_null, stop_at => cfg.stop_at, skip_locked => true)
                LOOP
                    IF r.action OPERATOR(pg_catalog.=) 'deleted' AND r.relation OPERATOR(pg_catalog.=) cfg.root THEN got_roots := r.rows; END IF;
                    got_rows := got_rows OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(uproot_internal.relation_name(r.relation) OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) r.action, r.rows);
                END LOOP;
            END IF;
            -- deferred constraints are checked here, inside the batch, not at its COMMIT
            SET CONSTRAINTS ALL IMMEDIATE;
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            -- this batch is rolled back on its own; committed batches stay
            GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT,
                                    err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT;
            reason := 'error: ' OPERATOR(pg_catalog.||) err_message;
            EXIT;
        END;
        IF got_roots OPERATOR(pg_catalog.=) 0 THEN
            reason := 'done';
            EXIT;
        END IF;
        committed := committed OPERATOR(pg_catalog.+) 1;
        roots_done := roots_done OPERATOR(pg_catalog.+) got_roots;
        SELECT COALESCE(pg_catalog.jsonb_object_agg(k, COALESCE((total OPERATOR(pg_catalog.->>) k)::bigint, 0)
                          OPERATOR(pg_catalog.+) COALESCE((got_rows OPERATOR(pg_catalog.->>) k)::bigint, 0)), '{}')
          INTO total
          FROM (SELECT pg_catalog.jsonb_object_keys(total) UNION SELECT pg_catalog.jsonb_object_keys(got_rows)) AS keys(k);
        PERFORM uproot_internal.job_run_record(run, committed, roots_done, total, pauses, paused);
        IF run_job.verbose THEN
            RAISE NOTICE 'uproot: job % batch %: % root(s), % so far', cfg.name, committed, got_roots, total;
        END IF;
        COMMIT;
        IF cfg.pause OPERATOR(pg_catalog.>) '0' THEN
            BEGIN
                PERFORM pg_catalog.pg_sleep(extract(epoch FROM cfg.pause));
            EXCEPTION WHEN query_canceled THEN
                GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT;
                reason := 'error: ' OPERATOR(pg_catalog.||) err_message;
                EXIT;
            END;
        END IF;
    END LOOP;

    PERFORM uproot_internal.job_run_record(run, committed, roots_done, total, pauses, paused, reason);
    COMMIT;
    PERFORM uproot_internal.job_run_release(run);

    IF reason OPERATOR(pg_catalog.~~) 'error:%' THEN
        err_message := pg_catalog.format('uproot: job %s failed in batch %s: %s', cfg.name, committed OPERATOR(pg_catalog.+) 1,
                              pg_catalog.regexp_replace(err_message, '^uproot: ', ''));
        err_detail := pg_catalog.concat_ws(' ', NULLIF(err_detail, ''),
            pg_catalog.format('The run committed %s batch(es) before it, which stay done; the failed batch was rolled back. The run log (uproot.job_runs) has the error.', committed));
        err_hint := COALESCE(NULLIF(err_hint, ''), 'Fix the cause; the next run carries on where this one stopped.');
    ELSIF reason OPERATOR(pg_catalog.=) 'replica lag' THEN
        err_state := '55000';
        err_message := pg_catalog.format('uproot: job %s stopped: a standby stayed too far behind until the time budget (max_runtime %s) was spent',
                              cfg.name, cfg.max_runtime);
        err_detail := pg_catalog.format('Last check: replay lag %s, %s bytes of WAL not replayed (limits: max_replica_lag %s, max_replica_lag_bytes %s). The run committed %s batch(es) and paused %s time(s), %s in all.',
                             COALESCE(lag.lag::pg_catalog.text, 'none'), COALESCE(lag.lag_bytes::pg_catalog.text, 'no'), cfg.max_replica_lag,
                             cfg.max_replica_lag_bytes, committed, pauses, pg_catalog.date_trunc('second', paused));
        err_hint := 'Find out why the standby lags (pg_stat_replication here; pg_stat_wal_receiver and pg_get_wal_replay_pause_state() on the standby), or raise the limits or max_runtime with uproot.alter_job.';
    ELSE
        IF run_job.verbose THEN
            RAISE NOTICE 'uproot: job % stopped after % batch(es): %', cfg.name, committed, reason;
        END IF;
        RETURN;
    END IF;
    IF cfg.on_error OPERATOR(pg_catalog.=) 'error' THEN
        RAISE EXCEPTION USING ERRCODE = err_state, MESSAGE = err_message, DETAIL = err_detail, HINT = err_hint;
    ELSE
        RAISE WARNING USING ERRCODE = err_state, MESSAGE = err_message, DETAIL = err_detail, HINT = err_hint;
    END IF;
END
$$;
COMMENT ON PROCEDURE uproot.run_job(text, boolean) IS
'Run a job in batches of whole families (a drain job: of queued keys), committing after each; see uproot.job_runs for what it did. A run that failed ends in an ERROR (or a WARNING with on_error => ''warn'') after its run log is committed.';

-- upgrade: end functions

-- Tables of record: pg_dump keeps the jobs and their run log (see schema.sql).
SELECT pg_catalog.pg_extension_config_dump('uproot.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.job_runs', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.job_runs_run_id_seq', '');
