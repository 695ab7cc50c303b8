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
-- (quoted as uproot_internal.quoted_name does; a table dropped under 0.1.0 left only its OID,
-- and its archive table is named after it)
UPDATE uproot.batch_relations br
   SET relation_name = COALESCE(
           (SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
              JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE c.oid OPERATOR(pg_catalog.=) br.relation),
           (SELECT c.relname::pg_catalog.text FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) br.archive),
           'dropped table, OID ' OPERATOR(pg_catalog.||) br.relation::pg_catalog.oid::pg_catalog.text),
       archive_name = COALESCE(
           (SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
              JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE c.oid OPERATOR(pg_catalog.=) br.archive),
           br.archive::pg_catalog.oid::pg_catalog.text);
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

-- Restore can leave a batch partly restored (on_conflict => 'skip').
ALTER TABLE uproot.batches ADD COLUMN partly_restored_at timestamptz;
-- 0.1.0 marked a skip-restore as restored although rows stayed in the archive.
DO $$
DECLARE b record; held bigint;
BEGIN
  FOR b IN SELECT br.batch_id, br.archive FROM uproot.batch_relations br
             JOIN uproot.batches bt ON bt.id OPERATOR(pg_catalog.=) br.batch_id
            WHERE bt.restored_at IS NOT NULL AND br.archive IS NOT NULL LOOP
    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s WHERE _uproot_batch OPERATOR(pg_catalog.=) $1', b.archive)
       INTO held USING b.batch_id;
    IF held OPERATOR(pg_catalog.>) 0 THEN
      UPDATE uproot.batches SET partly_restored_at = restored_at, restored_at = NULL
       WHERE id OPERATOR(pg_catalog.=) b.batch_id AND restored_at IS NOT NULL;
    END IF;
  END LOOP;
END $$;

-- Jobs: written only through pg_uproot's functions; each role reads its own (RLS).
DROP POLICY jobs_own ON uproot.jobs;
DROP POLICY jobs_read ON uproot.jobs;
ALTER TABLE uproot.jobs
    ALTER COLUMN created_by DROP DEFAULT,
    ADD COLUMN on_error text NOT NULL DEFAULT 'error' CHECK (on_error IN ('error', 'warn')),
    ADD COLUMN max_replica_lag interval NOT NULL DEFAULT '0' CHECK (max_replica_lag >= '0'),
    ADD COLUMN max_replica_lag_bytes bigint NOT NULL DEFAULT 0 CHECK (max_replica_lag_bytes >= 0);
ALTER TABLE uproot.job_runs
    ALTER COLUMN run_by DROP DEFAULT,
    ADD COLUMN pauses int NOT NULL DEFAULT 0,
    ADD COLUMN paused interval NOT NULL DEFAULT '0';
REVOKE INSERT, UPDATE, DELETE ON uproot.jobs, uproot.job_runs FROM PUBLIC;
REVOKE ALL ON SEQUENCE uproot.job_runs_run_id_seq FROM PUBLIC;
