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

-- upgrade: functions (sql/upgrade/generate.py copies from here to the end marker into the
-- upgrade script)
COMMENT ON TABLE uproot.declared_relations IS
'Relations without a constraint that pg_uproot follows like foreign keys. Written by uproot.declare_relation() and uproot.drop_relation().';
COMMENT ON COLUMN uproot.declared_relations.on_delete IS
'What deleting a parent does: cascade, set null or restrict (followed by graph, preview, purge, archive and jobs like an FK with that action), async cascade or async set null.';
COMMENT ON COLUMN uproot.declared_relations.check_trigger IS
'Whether the declaration installed the trigger uproot_check_<name> on the child, which rejects a reference to a missing parent (SQLSTATE 23503) as an FK would.';

-- The check trigger of a declared relation (TG_ARGV[0] is its name): like PostgreSQL's own RI
-- check, a new or changed reference locks its parent row FOR KEY SHARE, so it waits for a purge
-- that holds the parent and fails once the parent is gone. MATCH SIMPLE: a NULL column skips it.
CREATE FUNCTION uproot_internal.check_declared_reference() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d uproot.declared_relations;
    lookup text;
    found boolean;
BEGIN
    SELECT * INTO d FROM uproot.declared_relations r WHERE r.name OPERATOR(pg_catalog.=) TG_ARGV[0];
    IF NOT FOUND OR d.child::pg_catalog.oid OPERATOR(pg_catalog.<>) TG_RELID THEN
        RETURN NULL; -- the declaration is gone; its trigger goes with uproot.drop_relation()
    END IF;
    SELECT pg_catalog.format('SELECT %s OR EXISTS (SELECT FROM %s p WHERE %s FOR KEY SHARE OF p)',
                             pg_catalog.string_agg(pg_catalog.format('($1).%I IS NULL', c.col), ' OR ' ORDER BY c.ord),
                             d.parent,
                             pg_catalog.string_agg(pg_catalog.format('p.%I OPERATOR(pg_catalog.=) ($1).%I', d.parent_columns[c.ord], c.col), ' AND ' ORDER BY c.ord))
      INTO lookup
      FROM pg_catalog.unnest(d.child_columns) WITH ORDINALITY AS c(col, ord);
    EXECUTE lookup INTO found USING NEW;
    IF NOT found THEN
        RAISE EXCEPTION 'uproot: insert or update on table % violates declared relation %', TG_RELID::pg_catalog.regclass, d.name
            USING ERRCODE = '23503',
                  DETAIL = pg_catalog.format('Key (%s) is not present in table %s.', pg_catalog.array_to_string(d.child_columns, ', '), d.parent),
                  HINT = 'Insert the parent row first, or reference one that exists.',
                  TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION uproot_internal.check_declared_reference() IS
'Trigger of a declared relation with check_trigger: a reference to a missing parent fails with 23503, and one to a parent a purge holds waits for it.';
COMMENT ON TABLE uproot.owned_parents IS
'Owned parents: rows of the parent reached through via (a foreign key of child or a declared relation) go with the last row of child that referenced them. Written by uproot.declare_owned() and uproot.drop_owned().';
COMMENT ON TABLE uproot.batch_owned IS
'The batches that hold the owned parents an archive took with a batch: restore() puts them back first.';
-- upgrade: end functions
