-- pg_uproot 0.1.0 -> 0.2.0, run by ALTER EXTENSION pg_uproot UPDATE.
-- pg_test/ops/upgrade.sh installs 0.1.0, upgrades, and checks that the result equals a fresh
-- 0.2.0 install object for object (pg_test/ops/lib/describe.sql).

-- Archived rows must outlive the extension: schema uproot_archive leaves it (DROP EXTENSION
-- never takes archive tables with it any more).
ALTER EXTENSION pg_uproot DROP SCHEMA uproot_archive;
COMMENT ON SCHEMA uproot_archive IS 'Archive tables of pg_uproot: one per archived source table, see uproot.archive_tables. Not part of the extension: DROP EXTENSION leaves it.';

-- Helpers that are not API live in their own schema, out of \df uproot.*
CREATE SCHEMA uproot_internal;
COMMENT ON SCHEMA uproot_internal IS 'pg_uproot''s internal helpers; not an API, may change in any release.';
GRANT USAGE ON SCHEMA uproot_internal TO PUBLIC;
-- "schema"."table" as PostgreSQL quotes it, whatever the search_path: the names the records keep.
CREATE FUNCTION uproot_internal.quoted_name(rel pg_catalog.oid) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE c.oid OPERATOR(pg_catalog.=) rel;
$$;
COMMENT ON FUNCTION uproot_internal.quoted_name(pg_catalog.oid) IS '"schema"."table" of a relation, quoted as needed, independent of the search_path.';
COMMENT ON SCHEMA uproot IS 'pg_uproot: purge or archive a row together with every row that depends on it.';

-- The records keep names next to regclass, and no dangling OID: 0.1.0 left the OIDs of
-- dropped tables behind, which a dump would write as numbers.
ALTER TABLE uproot.archive_tables ALTER COLUMN archive DROP NOT NULL;
DELETE FROM uproot.archive_tables m
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) m.source);
UPDATE uproot.archive_tables m SET archive = NULL
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) m.archive);
COMMENT ON TABLE uproot.archive_tables IS 'Which archive table holds the archived rows of each source table. Written by prepare_archive() and archive(); a superuser may point a source at a table of their own.';

ALTER TABLE uproot.batches ALTER COLUMN root DROP NOT NULL;
UPDATE uproot.batches b SET root = NULL
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) b.root);
COMMENT ON TABLE uproot.batches IS 'The ledger: one row per archive() call. Written only by pg_uproot''s functions; readable by the roles granted SELECT (keys and predicates may hold personal data).';

ALTER TABLE uproot.batch_relations
    DROP CONSTRAINT batch_relations_pkey,
    ALTER COLUMN relation DROP NOT NULL,
    ALTER COLUMN archive DROP NOT NULL,
    ADD COLUMN relation_name text,
    ADD COLUMN archive_name text;
UPDATE uproot.batch_relations
   -- a table dropped under 0.1.0 left only its OID; its archive table is named after it
   SET relation_name = COALESCE(uproot_internal.quoted_name(relation),
                                (SELECT c.relname::pg_catalog.text FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) archive),
                                'dropped table, OID ' OPERATOR(pg_catalog.||) relation::pg_catalog.oid::pg_catalog.text),
       archive_name = COALESCE(uproot_internal.quoted_name(archive), archive::pg_catalog.oid::pg_catalog.text);
UPDATE uproot.batch_relations br SET relation = NULL
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) br.relation);
UPDATE uproot.batch_relations br SET archive = NULL
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) br.archive);
ALTER TABLE uproot.batch_relations
    ALTER COLUMN relation_name SET NOT NULL,
    ALTER COLUMN archive_name SET NOT NULL,
    ADD PRIMARY KEY (batch_id, position);
COMMENT ON TABLE uproot.batch_relations IS 'The relations of each batch, in restore order (parents first), with their archive tables and row counts.';

DELETE FROM uproot.batch_detached bd
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) bd.relation)
    OR NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) bd.row_tableoid);
ALTER TABLE uproot.batch_detached
    ALTER COLUMN relation DROP NOT NULL,
    ALTER COLUMN row_tableoid TYPE regclass USING row_tableoid::regclass;
COMMENT ON TABLE uproot.batch_detached IS 'References that archive() set to NULL or to their default, so that restore() can reattach them.';

-- Tables of record: pg_dump keeps their rows.
SELECT pg_catalog.pg_extension_config_dump('uproot.archive_tables', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.batches', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.batches_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.batch_relations', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.batch_detached', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.job_runs', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.job_runs_run_id_seq', '');

-- Nobody but the owner writes the records; pg_uproot's functions record what callers do.
REVOKE ALL ON uproot.archive_tables, uproot.batches, uproot.batch_relations, uproot.batch_detached FROM PUBLIC;
REVOKE ALL ON SEQUENCE uproot.batches_id_seq FROM PUBLIC;
GRANT SELECT ON uproot.archive_tables TO PUBLIC;

-- A dropped table leaves no dangling OID in the records (pg_dump would write it as a number
-- that a restore could point at another table): the mapping of a dropped source goes, and its
-- batches keep the table's name only. Archived rows are never dropped here.
CREATE FUNCTION uproot_internal.forget_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dropped oid[];
BEGIN
    SELECT pg_catalog.array_agg(d.objid) INTO dropped
      FROM pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid OPERATOR(pg_catalog.=) 0;
    IF dropped IS NULL THEN
        RETURN;
    END IF;
    DELETE FROM uproot.archive_tables WHERE source::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (dropped);
    UPDATE uproot.archive_tables SET archive = NULL WHERE archive::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (dropped);
    UPDATE uproot.batches SET root = NULL WHERE root::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (dropped);
    UPDATE uproot.batch_relations SET relation = NULL WHERE relation::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (dropped);
    UPDATE uproot.batch_relations SET archive = NULL WHERE archive::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (dropped);
    -- references in a dropped table cannot be reattached any more
    DELETE FROM uproot.batch_detached WHERE relation::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (dropped)
        OR row_tableoid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (dropped);
END
$$;
REVOKE ALL ON FUNCTION uproot_internal.forget_dropped_tables() FROM PUBLIC;
COMMENT ON FUNCTION uproot_internal.forget_dropped_tables() IS
'Event trigger: a dropped source or archive table leaves names, not dangling OIDs, in pg_uproot''s records.';
CREATE EVENT TRIGGER uproot_forget_dropped_tables ON sql_drop
    EXECUTE FUNCTION uproot_internal.forget_dropped_tables();

-- The _where functions share one argument order (root, predicate, max_roots, options...).
DROP FUNCTION uproot.preview_where(regclass, text, boolean, boolean, regclass[], int);
DROP FUNCTION uproot.purge_where(regclass, text, boolean, boolean, regclass[], int, boolean);
CREATE FUNCTION uproot.preview_where(root regclass, predicate text, max_roots int DEFAULT NULL, respect_restrict boolean DEFAULT false, follow_set_null boolean DEFAULT false, stop_at regclass[] DEFAULT '{}')
RETURNS TABLE(depth int, relation regclass, action text, "rows" bigint, via text, label text)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'preview_where_v2_wrapper';
COMMENT ON FUNCTION uproot.preview_where(regclass, text, int, boolean, boolean, regclass[]) IS
'What purge_where would delete, nullify or set to default for the root rows matching the predicate (at most max_roots of them): exact distinct counts, read-only, no locks.';
CREATE FUNCTION uproot.purge_where(root regclass, predicate text, max_roots int DEFAULT NULL, respect_restrict boolean DEFAULT false, follow_set_null boolean DEFAULT false, stop_at regclass[] DEFAULT '{}', skip_locked boolean DEFAULT false)
RETURNS TABLE(relation regclass, action text, "rows" bigint)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'purge_where_v2_wrapper';
COMMENT ON FUNCTION uproot.purge_where(regclass, text, int, boolean, boolean, regclass[], boolean) IS
'Delete the root rows matching the predicate (at most max_roots, whole families each; skip_locked leaves roots others hold locked) and every row that transitively references them, in the caller''s transaction.';

-- New functions.
CREATE FUNCTION uproot.check_access(root regclass, role text DEFAULT CURRENT_USER, operation text DEFAULT 'purge', respect_restrict boolean DEFAULT false, follow_set_null boolean DEFAULT false, stop_at regclass[] DEFAULT '{}')
RETURNS TABLE(relation regclass, privilege text, granted boolean, why text, grant_statement text)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'check_access_wrapper';
COMMENT ON FUNCTION uproot.check_access(regclass, text, text, boolean, boolean, regclass[]) IS
'What a role needs for an operation (preview, purge, archive or restore) on the family of root, without trying it: one row per privilege, whether the role has it, and the GRANT statement that gives it.';
CREATE FUNCTION uproot_internal.guard_drop_extension() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'guard_drop_extension_wrapper';
COMMENT ON FUNCTION uproot_internal.guard_drop_extension() IS
'Event trigger: refuses DROP EXTENSION pg_uproot (or DROP SCHEMA uproot) while archived batches are not restored.';
CREATE EVENT TRIGGER uproot_guard_drop_extension ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION uproot_internal.guard_drop_extension();

-- Jobs call the _where functions by name.
CREATE OR REPLACE PROCEDURE uproot.run_job(name text, verbose boolean DEFAULT false)
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
