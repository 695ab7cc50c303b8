-- Declared relations: relations with no constraint in the database ("loose foreign keys").
-- uproot.declare_relation() and uproot.drop_relation() (src/declared/) write this table as the
-- extension's owner after checking the caller may create a trigger on the child table; nobody
-- else writes it. Relations are regclass and columns are names, so pg_dump and a restore keep
-- them without depending on OIDs or attribute numbers.
CREATE TABLE uproot.declared_relations (
    name           text PRIMARY KEY,
    child          regclass NOT NULL,
    child_columns  text[] NOT NULL,
    parent         regclass NOT NULL,
    parent_columns text[] NOT NULL,
    on_delete      text NOT NULL
        CHECK (on_delete IN ('cascade', 'set null', 'restrict', 'async cascade', 'async set null')),
    -- a row-level trigger on the child checks each new or changed reference, as an FK would
    check_trigger  boolean NOT NULL DEFAULT false,
    -- every child row must reference a parent: a NULL reference is left behind (leftovers)
    required       boolean NOT NULL DEFAULT false,
    declared_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    declared_by    name NOT NULL,
    CHECK (pg_catalog.cardinality(child_columns) OPERATOR(pg_catalog.>) 0
           AND pg_catalog.cardinality(child_columns) OPERATOR(pg_catalog.=) pg_catalog.cardinality(parent_columns))
);
SELECT pg_catalog.pg_extension_config_dump('uproot.declared_relations', '');
-- Readable by all, like pg_constraint: the catalog query of every caller reads it.
REVOKE ALL ON uproot.declared_relations FROM PUBLIC;
GRANT SELECT ON uproot.declared_relations TO PUBLIC;

-- Owned parents: the parent reached through `via` (a foreign key of `child`, or a declared
-- relation whose child it is) is owned by the rows that reference it. When pg_uproot purges or
-- archives rows of `child`, each parent they referenced through `via` that no remaining row
-- references goes too. Written by uproot.declare_owned() / drop_owned() only.
CREATE TABLE uproot.owned_parents (
    child       regclass NOT NULL,
    via         text NOT NULL,
    declared_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    declared_by name NOT NULL,
    PRIMARY KEY (child, via)
);
SELECT pg_catalog.pg_extension_config_dump('uproot.owned_parents', '');
REVOKE ALL ON uproot.owned_parents FROM PUBLIC;
GRANT SELECT ON uproot.owned_parents TO PUBLIC;

-- The owned parents an archive took go in batches of their own, one per parent table and
-- round; restore(batch_id) restores these first, parents before the rows that referenced them.
CREATE TABLE uproot.batch_owned (
    batch_id    bigint NOT NULL REFERENCES uproot.batches ON DELETE CASCADE,
    owned_batch bigint NOT NULL REFERENCES uproot.batches ON DELETE CASCADE,
    PRIMARY KEY (batch_id, owned_batch)
);
SELECT pg_catalog.pg_extension_config_dump('uproot.batch_owned', '');
REVOKE ALL ON uproot.batch_owned FROM PUBLIC;

-- Async relations: deleting a parent row (through pg_uproot or a plain DELETE) queues its key
-- here, in the same transaction, through the statement trigger uproot_queue_<name> that the
-- declaration installs on the parent; uproot.drain() deletes or nullifies the referencing rows
-- later and removes the keys it handled. keys names the child's columns.
CREATE TABLE uproot.async_queue (
    id        bigserial PRIMARY KEY,
    relation  text NOT NULL,
    keys      jsonb NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
CREATE INDEX async_queue_relation ON uproot.async_queue (relation, id);
SELECT pg_catalog.pg_extension_config_dump('uproot.async_queue', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.async_queue_id_seq', '');
REVOKE ALL ON uproot.async_queue FROM PUBLIC;
REVOKE ALL ON SEQUENCE uproot.async_queue_id_seq FROM PUBLIC;

-- The run log of CALL uproot.run_drain().
CREATE TABLE uproot.drain_runs (
    run_id      bigserial PRIMARY KEY,
    relation    text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at timestamptz,
    batches     int NOT NULL DEFAULT 0,
    keys        bigint NOT NULL DEFAULT 0,
    rows        bigint NOT NULL DEFAULT 0,
    stop_reason text,
    run_by      name NOT NULL
);
SELECT pg_catalog.pg_extension_config_dump('uproot.drain_runs', '');
SELECT pg_catalog.pg_extension_config_dump('uproot.drain_runs_run_id_seq', '');
REVOKE ALL ON uproot.drain_runs FROM PUBLIC;
REVOKE ALL ON SEQUENCE uproot.drain_runs_run_id_seq FROM PUBLIC;
GRANT SELECT ON uproot.drain_runs TO PUBLIC;

-- upgrade: functions (sql/upgrade/generate.py copies from here to the end marker into the
-- upgrade script)
COMMENT ON TABLE uproot.declared_relations IS
'Relations without a constraint that pg_uproot follows like foreign keys. Written by uproot.declare_relation() and uproot.drop_relation().';
COMMENT ON COLUMN uproot.declared_relations.on_delete IS
'What deleting a parent does: cascade, set null or restrict (followed by graph, preview, purge, archive and jobs like an FK with that action), async cascade or async set null.';
COMMENT ON COLUMN uproot.declared_relations.required IS
'Every child row must reference a parent: uproot.count_leftovers and uproot.leftovers report rows whose reference is NULL, as well as rows whose parent is missing.';
COMMENT ON COLUMN uproot.declared_relations.check_trigger IS
'Whether the declaration installed the trigger uproot_check_<name> on the child, which rejects a reference to a missing parent (SQLSTATE 23503) as an FK would.';

-- The check trigger of a declared relation, uproot_internal.check_declared_reference(), is
-- written in Rust (src/declared/check.rs): its lookup runs as the parent table's owner.
COMMENT ON TABLE uproot.owned_parents IS
'Owned parents: rows of the parent reached through via (a foreign key of child or a declared relation) go with the last row of child that referenced them. Written by uproot.declare_owned() and uproot.drop_owned().';
COMMENT ON TABLE uproot.batch_owned IS
'The batches that hold the owned parents an archive took with a batch: restore() puts them back first.';
COMMENT ON TABLE uproot.async_queue IS
'Keys of deleted parents of async declared relations, waiting for uproot.drain(). Written by the trigger uproot_queue_<name> and by drain() only.';
COMMENT ON TABLE uproot.drain_runs IS
'One row per CALL uproot.run_drain(): batches, keys and rows handled, and the stop reason.';

-- The queue trigger of an async declared relation (TG_ARGV[0] is its name): a statement-level
-- AFTER DELETE trigger on the parent whose transition table holds the deleted rows; it queues
-- their keys in the deleting transaction. SECURITY DEFINER, since nobody else writes the queue;
-- it acts only on the parent of the relation it names.
CREATE FUNCTION uproot_internal.queue_deleted_keys() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d uproot.declared_relations;
    pairs text;
    present text;
BEGIN
    SELECT * INTO d FROM uproot.declared_relations r WHERE r.name OPERATOR(pg_catalog.=) TG_ARGV[0];
    IF NOT FOUND OR d.parent::pg_catalog.oid OPERATOR(pg_catalog.<>) TG_RELID
       OR d.on_delete NOT IN ('async cascade', 'async set null') THEN
        RETURN NULL;
    END IF;
    SELECT pg_catalog.string_agg(pg_catalog.format('%L, o.%I', c.col, d.parent_columns[c.ord]), ', ' ORDER BY c.ord),
           pg_catalog.string_agg(pg_catalog.format('o.%I IS NOT NULL', d.parent_columns[c.ord]), ' AND ' ORDER BY c.ord)
      INTO pairs, present
      FROM pg_catalog.unnest(d.child_columns) WITH ORDINALITY AS c(col, ord);
    EXECUTE pg_catalog.format(
        'INSERT INTO uproot.async_queue (relation, keys) SELECT $1, pg_catalog.jsonb_build_object(%s) FROM uproot_deleted o WHERE %s',
        pairs, present)
      USING d.name;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION uproot_internal.queue_deleted_keys() IS
'Trigger of an async declared relation: queues the keys of the deleted parent rows for uproot.drain().';

-- CALL uproot.run_drain(relation): drain in batches, one transaction each, until the queue of
-- that relation is empty or the time budget is spent; each run is logged in uproot.drain_runs.
-- A run killed at any point leaves the keys of its unfinished batch queued: the next run
-- handles them (deleting or nullifying rows that are already gone or NULL touches nothing).
CREATE PROCEDURE uproot.run_drain(relation text, batch_size int DEFAULT 1000,
                                  max_runtime interval DEFAULT '5 minutes')
LANGUAGE plpgsql
AS $$
DECLARE
    run bigint;
    started timestamptz := pg_catalog.clock_timestamp();
    n_batches int := 0;
    n_keys bigint := 0;
    n_rows bigint := 0;
    got record;
    reason text;
    err_state text;
    err_message text;
    err_detail text;
    err_hint text;
BEGIN
    run := uproot_internal.drain_run_start(run_drain.relation);
    COMMIT;
    LOOP
        IF pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) started OPERATOR(pg_catalog.>=) max_runtime THEN
            reason := 'time budget';
            EXIT;
        END IF;
        BEGIN
            SELECT * INTO got FROM uproot.drain(run_drain.relation, batch_size);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT,
                                    err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT;
            reason := 'error: ' OPERATOR(pg_catalog.||) err_message;
            EXIT;
        END;
        IF got.keys OPERATOR(pg_catalog.=) 0 THEN
            reason := 'done';
            EXIT;
        END IF;
        n_batches := n_batches OPERATOR(pg_catalog.+) 1;
        n_keys := n_keys OPERATOR(pg_catalog.+) got.keys;
        n_rows := n_rows OPERATOR(pg_catalog.+) got.rows;
        PERFORM uproot_internal.drain_run_record(run, n_batches, n_keys, n_rows, NULL);
        COMMIT;
    END LOOP;
    PERFORM uproot_internal.drain_run_record(run, n_batches, n_keys, n_rows, reason);
    COMMIT;
    -- the error that stopped the run, as it was (an absent detail or hint is '')
    IF err_detail OPERATOR(pg_catalog.<>) '' AND err_hint OPERATOR(pg_catalog.<>) '' THEN
        RAISE EXCEPTION USING ERRCODE = err_state, MESSAGE = err_message, DETAIL = err_detail, HINT = err_hint;
    ELSIF err_detail OPERATOR(pg_catalog.<>) '' THEN
        RAISE EXCEPTION USING ERRCODE = err_state, MESSAGE = err_message, DETAIL = err_detail;
    ELSIF err_hint OPERATOR(pg_catalog.<>) '' THEN
        RAISE EXCEPTION USING ERRCODE = err_state, MESSAGE = err_message, HINT = err_hint;
    ELSIF err_state IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = err_state, MESSAGE = err_message;
    END IF;
END
$$;
COMMENT ON PROCEDURE uproot.run_drain(text, int, interval) IS
'Drain the queue of an async declared relation in batches, committing after each, until it is empty or max_runtime is spent; logged in uproot.drain_runs. Schedule it with pg_cron.';
-- upgrade: end functions
