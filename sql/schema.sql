-- Archive storage: where archived families live, and the ledger of batches.
-- Archive tables themselves are created by uproot.prepare_archive() or by archive() on demand.
--
-- Operations notes:
-- * Every table of record here (and the jobs tables) is an extension configuration table, so
--   pg_dump keeps its rows. Relations are stored as regclass, which pg_dump writes as names and a
--   restore reads back as the new OIDs; nothing stores a raw OID.
-- * Schema uproot_archive is deliberately NOT a member of the extension: DROP EXTENSION, even
--   with CASCADE, never drops archived rows. A dump restores it before CREATE EXTENSION runs, so
--   an existing uproot_archive is adopted (when a superuser owns it).
-- * Nobody but the extension's owner may write these tables; pg_uproot's functions (SECURITY
--   INVOKER) record what the caller did through fixed statements run as the owner.

DO $do$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) 'uproot_archive') THEN
        CREATE SCHEMA uproot_archive;
        ALTER EXTENSION pg_uproot DROP SCHEMA uproot_archive;
        GRANT USAGE ON SCHEMA uproot_archive TO PUBLIC;
        COMMENT ON SCHEMA uproot_archive IS 'Archive tables of pg_uproot: one per archived source table, see uproot.archive_tables. Not part of the extension: DROP EXTENSION leaves it.';
    ELSIF NOT (SELECT r.rolsuper FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
                WHERE n.nspname OPERATOR(pg_catalog.=) 'uproot_archive') THEN
        RAISE EXCEPTION 'uproot: schema uproot_archive exists and is not owned by a superuser'
            USING ERRCODE = '42501',
                  HINT = 'Archive tables must live in a schema only a superuser controls: ALTER SCHEMA uproot_archive OWNER TO a superuser, or rename it, then create the extension again.';
    END IF;
END
$do$;

-- Helpers the SQL API calls but users do not: kept out of \df uproot.*
CREATE SCHEMA uproot_internal;
COMMENT ON SCHEMA uproot_internal IS 'pg_uproot''s internal helpers; not an API, may change in any release.';
GRANT USAGE ON SCHEMA uproot_internal TO PUBLIC;
COMMENT ON SCHEMA uproot IS 'pg_uproot: purge or archive a row together with every row that depends on it.';

-- Which archive table holds the archived rows of a source table. A user may point a source at a
-- table of their own (same column names and types, plus _uproot_batch bigint).
CREATE TABLE uproot.archive_tables (
    source  regclass PRIMARY KEY,
    -- NULL once the archive table was dropped by hand: prepare_archive() creates it again
    archive regclass UNIQUE,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE uproot.archive_tables IS 'Which archive table holds the archived rows of each source table. Written by prepare_archive() and archive(); a superuser may point a source at a table of their own.';

-- One row per archive() call.
CREATE TABLE uproot.batches (
    id          bigserial PRIMARY KEY,
    -- NULL once the root table was dropped (root_name keeps its name)
    root        regclass,
    root_name   text NOT NULL,
    keys        jsonb,
    predicate   text,
    archived_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    archived_by name NOT NULL DEFAULT CURRENT_USER,
    -- {"relation": rows, ...} as archived; detached references are in batch_detached
    counts      jsonb NOT NULL DEFAULT '{}',
    -- restored_at: when the last of its rows went back; partly_restored_at: when a restore last
    -- left rows in the archive (on_conflict => 'skip'); restored_by: who ran the last restore
    restored_at timestamptz,
    restored_by name,
    partly_restored_at timestamptz
);
CREATE INDEX batches_archived_at ON uproot.batches (archived_at);

-- The relations of a batch, in restore order (parents first).
CREATE TABLE uproot.batch_relations (
    batch_id bigint NOT NULL REFERENCES uproot.batches ON DELETE CASCADE,
    position int NOT NULL,
    -- NULL once the source table (or the archive table) was dropped; the names stay
    relation regclass,
    archive  regclass,
    rows     bigint NOT NULL,
    -- their names when the batch was archived
    relation_name text NOT NULL,
    archive_name text NOT NULL,
    PRIMARY KEY (batch_id, position)
);

-- References that archive() set to NULL or to their default (SET NULL / SET DEFAULT edges),
-- so that restore() can put them back.
CREATE TABLE uproot.batch_detached (
    batch_id        bigint NOT NULL REFERENCES uproot.batches ON DELETE CASCADE,
    -- NULL once the table was dropped
    relation        regclass,
    constraint_name text NOT NULL,
    -- the detached row's primary key (without one: all its columns but the detached ones),
    -- the values its FK columns had, and the values archive wrote (NULL or the default)
    row_key         jsonb,
    old_values      jsonb NOT NULL,
    new_values      jsonb NOT NULL,
    -- where the detached row stood after archive: rows without a primary key are found again
    -- by position (and still by their other columns), so identical rows stay apart
    row_tableoid    regclass NOT NULL,
    row_ctid        tid NOT NULL
);
CREATE INDEX batch_detached_batch ON uproot.batch_detached (batch_id, relation, constraint_name);

COMMENT ON TABLE uproot.batches IS 'The ledger: one row per archive() call. Written only by pg_uproot''s functions; readable by the roles granted SELECT (keys and predicates may hold personal data).';
COMMENT ON TABLE uproot.batch_relations IS 'The relations of each batch, in restore order (parents first), with their archive tables and row counts.';
COMMENT ON TABLE uproot.batch_detached IS 'References that archive() set to NULL or to their default, so that restore() can reattach them.';

-- Tables of record: pg_dump keeps their rows (and the sequence's position).
SELECT pg_catalog.pg_extension_config_dump('uproot.archive_tables', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.batches', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.batches_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.batch_relations', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.batch_detached', '');

-- Nobody but the owner writes the records; the mapping (no personal data) is readable by all.
-- The ledger is read through GRANT SELECT (see the README's privilege recipes).
REVOKE ALL ON uproot.archive_tables, uproot.batches, uproot.batch_relations, uproot.batch_detached FROM PUBLIC;
REVOKE ALL ON SEQUENCE uproot.batches_id_seq FROM PUBLIC;
GRANT USAGE ON SCHEMA uproot TO PUBLIC;
GRANT SELECT ON uproot.archive_tables TO PUBLIC;

-- uproot.drop_batch, drop_batches and find_archived are Rust functions (src/api): they delete
-- archived rows as the caller and ledger rows as the extension's owner.
-- upgrade: functions (sql/upgrade/generate.py copies from here to the end marker into the
-- upgrade script)
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

-- A dropped table leaves no dangling OID in the records (pg_dump would write it as a number
-- that a restore could point at another table): the mapping of a dropped source goes, and its
-- batches keep the table's name only. Archived rows are never dropped here.
CREATE FUNCTION uproot_internal.forget_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dropped oid[];
    job text;
    gone record;
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
    -- a declared relation goes with either of its tables, with its queued keys, the parents owned
    -- through it, and its triggers on the table that stays (best effort: they do nothing without
    -- the declaration)
    FOR gone IN DELETE FROM uproot.declared_relations d
                 WHERE d.child::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (dropped)
                    OR d.parent::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (dropped)
                 RETURNING d.* LOOP
        DELETE FROM uproot.async_queue q WHERE q.relation OPERATOR(pg_catalog.=) gone.name;
        DELETE FROM uproot.owned_parents o WHERE o.via OPERATOR(pg_catalog.=) gone.name
           AND o.child OPERATOR(pg_catalog.=) gone.child;
        BEGIN
            IF NOT gone.child::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (dropped) AND gone.check_trigger THEN
                EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS %I ON %s', 'uproot_check_' OPERATOR(pg_catalog.||) gone.name, gone.child);
            END IF;
            IF NOT gone.parent::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (dropped) AND gone.on_delete LIKE 'async %' THEN
                EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS %I ON %s', 'uproot_queue_' OPERATOR(pg_catalog.||) gone.name, gone.parent);
            END IF;
        EXCEPTION WHEN insufficient_privilege THEN
            NULL;
        END;
        RAISE WARNING 'uproot: declared relation % is dropped with its table', gone.name
            USING HINT = 'Declare it again with uproot.declare_relation() if the table comes back.';
    END LOOP;
    DELETE FROM uproot.owned_parents o WHERE o.child::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (dropped);
    -- a job cannot outlive its root table; its run log stays
    FOR job IN DELETE FROM uproot.jobs j WHERE j.root::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (dropped) RETURNING j.name LOOP
        RAISE WARNING 'uproot: job % is dropped with its root table', job
            USING HINT = 'Create it again with uproot.create_job() once the table exists again; its runs stay in uproot.job_runs.';
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION uproot_internal.forget_dropped_tables() FROM PUBLIC;
COMMENT ON FUNCTION uproot_internal.forget_dropped_tables() IS
'Event trigger: a dropped source or archive table leaves names, not dangling OIDs, in pg_uproot''s records.';
CREATE EVENT TRIGGER uproot_forget_dropped_tables ON sql_drop
    EXECUTE FUNCTION uproot_internal.forget_dropped_tables();
-- upgrade: end functions
