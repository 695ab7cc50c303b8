-- pg_uproot 0.2.0 -> 0.3.0, run by ALTER EXTENSION pg_uproot UPDATE.
-- pg_test/ops/upgrade.sh installs 0.2.0 (and 0.1.0), upgrades, and checks that the result
-- equals a fresh 0.3.0 install object for object (pg_test/ops/lib/describe.sql).

-- Declared relations, owned parents and async relations (new in 0.3.0): the tables as sql/declared.sql
-- creates them in 0.3.0 (copied, since this step must stay what it was when later releases change them).
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


-- Drain jobs (new in 0.3.0): uproot.create_drain_job makes a job with action 'drain' that drains
-- the queue of the async declared relation named in the new column relation (as sql/jobs.sql
-- creates the table in 0.3.0).
ALTER TABLE uproot.jobs DROP CONSTRAINT jobs_action_check;
ALTER TABLE uproot.jobs ADD CONSTRAINT jobs_action_check CHECK (action IN ('archive', 'purge', 'drain'));
ALTER TABLE uproot.jobs ADD COLUMN relation text;
ALTER TABLE uproot.jobs ADD CONSTRAINT jobs_drain_relation CHECK ((action = 'drain') = (relation IS NOT NULL));
