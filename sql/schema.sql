-- Archive storage: where archived families live, and the ledger of batches.
-- Archive tables themselves are created by uproot.prepare_archive() or by archive() on demand.

CREATE SCHEMA uproot_archive;

-- Helpers the SQL API calls but users do not: kept out of \df uproot.*
CREATE SCHEMA uproot_internal;
COMMENT ON SCHEMA uproot_internal IS 'pg_uproot''s internal helpers; not an API, may change in any release.';
GRANT USAGE ON SCHEMA uproot_internal TO PUBLIC;
COMMENT ON SCHEMA uproot_archive IS 'Archive tables of pg_uproot: one per archived source table, see uproot.archive_tables.';

-- Which archive table holds the archived rows of a source table. A user may point a source at a
-- table of their own (same column names and types, plus _uproot_batch bigint).
CREATE TABLE uproot.archive_tables (
    source  regclass PRIMARY KEY,
    archive regclass NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- One row per archive() call.
CREATE TABLE uproot.batches (
    id          bigserial PRIMARY KEY,
    root        regclass NOT NULL,
    root_name   text NOT NULL,
    keys        jsonb,
    predicate   text,
    archived_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    archived_by name NOT NULL DEFAULT CURRENT_USER,
    -- {"relation": rows, ...} as archived; detached references are in batch_detached
    counts      jsonb NOT NULL DEFAULT '{}',
    restored_at timestamptz,
    restored_by name
);
CREATE INDEX batches_archived_at ON uproot.batches (archived_at);

-- The relations of a batch, in restore order (parents first).
CREATE TABLE uproot.batch_relations (
    batch_id bigint NOT NULL REFERENCES uproot.batches ON DELETE CASCADE,
    position int NOT NULL,
    relation regclass NOT NULL,
    archive  regclass NOT NULL,
    rows     bigint NOT NULL,
    PRIMARY KEY (batch_id, relation)
);

-- References that archive() set to NULL or to their default (SET NULL / SET DEFAULT edges),
-- so that restore() can put them back.
CREATE TABLE uproot.batch_detached (
    batch_id        bigint NOT NULL REFERENCES uproot.batches ON DELETE CASCADE,
    relation        regclass NOT NULL,
    constraint_name text NOT NULL,
    -- the detached row's primary key (without one: all its columns but the detached ones),
    -- the values its FK columns had, and the values archive wrote (NULL or the default)
    row_key         jsonb,
    old_values      jsonb NOT NULL,
    new_values      jsonb NOT NULL,
    -- where the detached row stood after archive: rows without a primary key are found again
    -- by position (and still by their other columns), so identical rows stay apart
    row_tableoid    oid NOT NULL,
    row_ctid        tid NOT NULL
);
CREATE INDEX batch_detached_batch ON uproot.batch_detached (batch_id, relation, constraint_name);

-- The ledger is written by whoever archives (the functions are SECURITY INVOKER). Creating archive
-- tables (prepare_archive) needs CREATE on uproot_archive and INSERT on uproot.archive_tables,
-- which only the extension owner has until granted.
GRANT USAGE ON SCHEMA uproot TO PUBLIC;
GRANT USAGE ON SCHEMA uproot_archive TO PUBLIC;
GRANT SELECT ON uproot.archive_tables TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON uproot.batches, uproot.batch_relations, uproot.batch_detached TO PUBLIC;
GRANT USAGE ON SEQUENCE uproot.batches_id_seq TO PUBLIC;

-- Remove archived batches older than the given age: their rows in the archive tables and their
-- ledger rows. Restored batches are removed too (they hold no rows any more).
CREATE FUNCTION uproot.drop_batches(older_than interval)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b record;
    dropped bigint := 0;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'uproot: invalid older_than: it must be an age of zero or more, not %', coalesce(older_than::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'Pass an age, e.g. uproot.drop_batches(''90 days'').';
    END IF;
    FOR b IN
        SELECT br.batch_id, br.archive
          FROM uproot.batch_relations br
          JOIN uproot.batches bt ON bt.id OPERATOR(pg_catalog.=) br.batch_id
          JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) br.archive
         WHERE bt.archived_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) older_than)
         ORDER BY br.batch_id, br.position
    LOOP
        EXECUTE pg_catalog.format('DELETE FROM %s WHERE _uproot_batch OPERATOR(pg_catalog.=) $1', b.archive)
          USING b.batch_id;
    END LOOP;
    DELETE FROM uproot.batches
     WHERE archived_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) older_than);
    GET DIAGNOSTICS dropped = ROW_COUNT;
    RETURN dropped;
END
$$;
COMMENT ON FUNCTION uproot.drop_batches(interval) IS
'Remove archived batches older than the given age, from the archive tables and the ledger. Returns how many batches went.';
