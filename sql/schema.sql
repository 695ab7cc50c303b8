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

-- uproot.drop_batch, drop_batches and find_archived are Rust functions (src/api): they delete
-- archived rows as the caller and ledger rows as the extension's owner.
