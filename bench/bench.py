#!/usr/bin/env python3
"""pg_uproot benchmark driver (Python 3 stdlib only). bench/run.sh starts the cluster and calls this.

Every shape is generated in two layouts: `clustered` (a family's rows stored together, inserted in
family order, as applications that insert children with their parent do) and `spread` (row g of a
table belongs to family ((g - 1) % families) + 1, as if the rows had arrived over time). For each
shape and layout it builds one template database holding a NO ACTION schema and its CASCADE twin
(same rows), then for every measurement clones the template fresh, prewarms it, checkpoints, and
times one statement inside the server in a fresh psql session (autocommit: the statement commits).
Single-family latency comes from pgbench, for uproot, native cascade and the hand-written CTE. Bulk
archives are checked against the archive tables and then restored (timed) on the same clone. A
simpler shape times a job archiving every family in short transactions against one big
archive_where. With --big, a 5-million-row family is purged by uproot, native cascade and the CTE,
and the backend's memory is sampled while it runs. Reports medians and ratios against the targets of
issue 9, per shape and layout.
"""

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

RUN_DB = "bench_run"
PREDICATE = "id % 10 = 0"  # every 10th root: 10% of the families
LAYOUTS = ("clustered", "spread")
SHAPES = ("deep", "wide", "tree", "tenant", "jobs", "big")
DEFAULT_SHAPES = ("deep", "wide", "tree", "tenant", "jobs")


# ---------------------------------------------------------------------------------------------
# Shapes and layouts


def fk_col_name(parent):
    """orders.customer_id references customers.id."""
    return f"{parent[:-1] if parent.endswith('s') else parent}_id"


class FK:
    """A foreign key from a child table to another table of the family (or to itself).

    `local` is the parent row's index within the child row's family, as SQL over `{k}` (the child
    row's index within its family); a NULL there makes the FK column NULL. Without it, the layout
    decides (Shape.fk_value)."""

    def __init__(self, parent, col=None, local=None, nullable=False):
        self.parent, self.col, self.local, self.nullable = parent, col or fk_col_name(parent), local, nullable


class Table:
    def __init__(self, name, per_family=1, fks=()):
        self.name, self.per_family, self.fks = name, per_family, list(fks)

    @property
    def columns(self):
        return ["id"] + [fk.col for fk in self.fks] + ["payload", "created_at"]


def child(name, parent, fanout, extra=()):
    """A table with `fanout` rows per row of `parent`, and an FK to it (plus `extra` FKs)."""
    return Table(name, parent.per_family * fanout, [FK(parent.name)] + list(extra))


class Shape:
    def __init__(self, name, layout, roots, tables, kinds=("na", "cascade"), template=None, about="",
                 single_na_limit=None, prewarm="buffer"):
        self.name, self.layout, self.roots, self.tables, self.kinds = name, layout, roots, tables, kinds
        self.na, self.cascade = f"{name}_na", f"{name}_cascade"
        self.template = template or f"bench_{name}_{layout}"
        self.key = f"{name} {layout}"
        self.by_name = {t.name: t for t in tables}
        self.about, self.single_na_limit, self.prewarm = about, single_na_limit, prewarm

    @property
    def root(self):
        return self.tables[0]

    def schemas(self):
        return [self.na if k == "na" else self.cascade for k in self.kinds]

    def rows(self):
        return {t.name: self.roots * t.per_family for t in self.tables}

    def rows_without(self, families):
        """Row counts once `families` whole families are gone."""
        return {t.name: (self.roots - families) * t.per_family for t in self.tables}

    def family_rows(self):
        return sum(t.per_family for t in self.tables)

    # The layouts, as SQL over a row id g: the row's family f and its index k within the family.
    def family_and_index(self, t, g):
        n = t.per_family
        if self.layout == "clustered":  # family 1's rows first, then family 2's, ...
            return f"(({g}) - 1) / {n} + 1", f"(({g}) - 1) % {n}"
        return f"(({g}) - 1) % {self.roots} + 1", f"(({g}) - 1) / {self.roots}"

    def row_id(self, t, f, k):
        if self.layout == "clustered":
            return f"(({f}) - 1) * {t.per_family} + ({k}) + 1"
        return f"({k}) * {self.roots} + ({f})"

    def fk_value(self, t, fk, g):
        """The FK column of row g of t: the id of its parent row, in the same family."""
        f, k = self.family_and_index(t, g)
        p = self.by_name[fk.parent]
        if fk.local:
            kp = fk.local.format(k=k)
        elif self.layout == "clustered":
            kp = f"({k}) * {p.per_family} / {t.per_family}"  # a parent's children next to each other
        else:
            kp = f"({k}) % {p.per_family}"  # as the generator always did: child g -> parent ((g-1) % parents) + 1
        return self.row_id(p, f, kp)


def shapes(quick, layout):
    """The shapes of the main measurements, in one layout."""
    scale = 10 if quick else 1
    customers = Table("customers")

    orders = child("orders", customers, 10)
    items = child("items", orders, 10)
    events = child("events", items, 5)
    deep = Shape("deep", layout, 2000 // scale, [customers, orders, items, events],
                 about="customers → orders → items → events, fan-out 10 / 10 / 5")

    kids = [child(f"child_{i:02}", customers, 5) for i in range(1, 13)]
    wide = Shape("wide", layout, 10000 // scale,
                 [customers] + kids + [child("grand_01", kids[0], 2), child("grand_02", kids[1], 2)],
                 about="customers → child_01 … child_12 (5 rows per customer each); child_01 → grand_01 and "
                       "child_02 → grand_02 (2 per child row)")

    # A self-referencing tree (2 top nodes per customer, 3 children each, 3 grandchildren each: only
    # the top nodes reference the customer, the rest only their parent node) and a diamond (entries
    # reference both a node and an invoice of the same customer).
    invoices = child("invoices", customers, 4)
    nodes = Table("nodes", 26, [
        FK("customers", local="CASE WHEN {k} < 2 THEN 0 END", nullable=True),
        FK("nodes", col="parent_id", local="CASE WHEN {k} >= 2 THEN ({k} - 2) / 3 END", nullable=True),
    ])
    entries = Table("entries", 104, [FK("nodes"), FK("invoices")])
    tree = Shape("tree", layout, 2000 // scale, [customers, invoices, nodes, entries],
                 about="customers → invoices (4); customers → nodes, a self-referencing tree (parent_id) of 26 "
                       "nodes per customer, 3 levels, only the 2 top nodes carry customer_id; entries (4 per node) "
                       "reference a node and an invoice: a diamond")

    # SaaS tenant: 120 tables within 1 to 3 hops of the root, 1 to 3 rows per table per family; every
    # second level-2 table and every third level-3 table also references the tenant directly.
    tenants = Table("tenants")
    l1 = [child(f"t1_{i:02}", tenants, 1 + i % 3) for i in range(30)]
    l2 = [child(f"t2_{j:02}", l1[j % 30], 1, [FK("tenants")] if j % 2 == 0 else []) for j in range(50)]
    l3 = [child(f"t3_{j:02}", l2[j], 1, [FK("tenants")] if j % 3 == 0 else []) for j in range(40)]
    tenant = Shape("tenant", layout, 2000 // scale, [tenants] + l1 + l2 + l3, single_na_limit=1.5,
                   about="tenants → 30 level-1 tables (1–3 rows per tenant) → 50 level-2 tables (1 per parent row) "
                         "→ 40 level-3 tables (1 per parent row): 120 tables; every second level-2 and every third "
                         "level-3 table also has a tenant_id FK to the root (a diamond)")
    return [deep, wide, tree, tenant]


# The jobs entry (issue 4): a simple shape, so that 100,000 families are quick to generate.
JOB_NAME = "bench_job"
JOB_BATCH = 500
JOB_PREDICATE = "created_at < '2021-01-01'"  # every root: the generator's roots are all in 2020


def job_shape(quick, layout):
    customers = Table("customers")
    return Shape("jobs", layout, 10000 if quick else 100000, [customers, child("orders", customers, 3)],
                 kinds=("na",), about="customers → orders, fan-out 3")


def big_shapes(quick, layout):
    """The 5-million-row family: 2 accounts, each with 50,000 orders of 99 lines. One template per
    schema, so that a clone copies only what its measurement needs. --quick: 10x smaller."""
    accounts = Table("accounts")
    orders = child("orders", accounts, 50000 // (10 if quick else 1))
    tables = [accounts, orders, child("lines", orders, 99)]
    about = f"accounts → orders ({orders.per_family:,} per account) → lines (99 per order)"
    return [Shape("big", layout, 2, tables, kinds=(kind,), template=f"bench_big_{layout}_{kind}", about=about,
                  prewarm="read") for kind in ("na", "cascade")]


class PG:
    def __init__(self, pgbin, port, host):
        self.pgbin, self.port, self.host = pgbin, str(port), host

    def conn(self, db):
        return ["-h", self.host, "-p", self.port, "-U", "postgres", "-d", db]

    def psql_cmd(self, db, extra=()):
        return [os.path.join(self.pgbin, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", *extra, *self.conn(db)]

    def run(self, db, sql, extra=()):
        return subprocess.run(self.psql_cmd(db, extra), input=sql, capture_output=True, text=True)

    def psql(self, db, sql, extra=()):
        p = self.run(db, sql, extra)
        if p.returncode != 0:
            sys.exit(f"psql failed on {db}:\n{sql[:2000]}\n--- stderr ---\n{p.stderr}")
        return p.stdout

    def value(self, db, sql):
        return self.psql(db, sql).strip()


# ---------------------------------------------------------------------------------------------
# Data


def ddl(shape, schema, cascade, data_from=None):
    """Create one schema's tables, fill them (generated in the shape's layout, or copied from the
    twin), then add keys, FK indexes and FKs (after the load: faster, and the same end state)."""
    rows = shape.rows()
    out = [f"CREATE SCHEMA {schema};"]
    for t in shape.tables:
        fk_cols = "".join(f"{fk.col} bigint{'' if fk.nullable else ' NOT NULL'}, " for fk in t.fks)
        out.append(f"CREATE TABLE {schema}.{t.name} (id bigint NOT NULL, {fk_cols}"
                   f"payload text NOT NULL, created_at timestamptz NOT NULL);")
        if data_from:
            out.append(f"INSERT INTO {schema}.{t.name} SELECT * FROM {data_from}.{t.name} ORDER BY id;")
        else:
            # rows are inserted in id order: the layout decides which family each id belongs to
            fk_values = "".join(f"{shape.fk_value(t, fk, 'g')}, " for fk in t.fks)
            step = "1 minute" if t is shape.root else "1 second"
            out.append(f"INSERT INTO {schema}.{t.name} SELECT g, {fk_values}md5(g::text), "
                       f"'2020-01-01'::timestamptz + g * interval '{step}' "
                       f"FROM generate_series(1, {rows[t.name]}::bigint) g;")
    action = " ON DELETE CASCADE" if cascade else ""
    for t in shape.tables:
        out.append(f"ALTER TABLE {schema}.{t.name} ADD PRIMARY KEY (id);")
    for t in shape.tables:
        for fk in t.fks:
            out.append(f"CREATE INDEX ON {schema}.{t.name} ({fk.col});")
            out.append(f"ALTER TABLE {schema}.{t.name} ADD FOREIGN KEY ({fk.col}) "
                       f"REFERENCES {schema}.{fk.parent} (id){action};")
    return "\n".join(out)


def build_template(pg, shape, library):
    t0 = time.time()
    pg.psql("postgres", f"DROP DATABASE IF EXISTS {shape.template} WITH (FORCE);\n"
                        f"CREATE DATABASE {shape.template};")
    setup = [
        "CREATE EXTENSION pg_uproot;",
        # load the private copy of the library (see run.sh); clones inherit this
        f"UPDATE pg_catalog.pg_proc SET probin = '{library}' WHERE probin = '$libdir/pg_uproot';",
        "CREATE EXTENSION pg_prewarm;",
        # single-family runs take their keys from here, so no family is purged twice
        "CREATE SEQUENCE public.family_ids;",
    ]
    generated = None
    for kind, schema in zip(shape.kinds, shape.schemas()):
        setup.append(ddl(shape, schema, cascade=kind == "cascade", data_from=generated))
        generated = generated or schema
    root = shape.root.name
    # archive tables exist before any measurement, so that creating them is never timed
    setup += [f"SELECT count(*) FROM uproot.prepare_archive('{s}.{root}');" for s in shape.schemas()]
    if shape.name == "jobs":
        setup.append(f"SELECT uproot.create_job('{JOB_NAME}', '{shape.na}.{root}', $p${JOB_PREDICATE}$p$, "
                     f"batch_roots => {JOB_BATCH}, max_runtime => '1 hour');")
    pg.psql(shape.template, "\n".join(setup))
    mapped = pg.value(shape.template, "SELECT string_agg(source::text || '=' || archive::text, ',' ORDER BY source::text) "
                                      "FROM uproot.archive_tables")
    expected = ",".join(sorted(f"{s}.{t.name}={archive_table(s, t.name)}" for s in shape.schemas() for t in shape.tables))
    if mapped != expected:
        sys.exit(f"archive tables {mapped!r}, expected {expected!r}")
    loads = pg.value(shape.template, "SELECT string_agg(DISTINCT probin, ',') FROM pg_proc "
                                     "WHERE pronamespace = 'uproot'::regnamespace AND prolang = "
                                     "(SELECT oid FROM pg_language WHERE lanname = 'c')")
    if loads != library:
        sys.exit(f"uproot functions load {loads!r}, expected {library!r}")
    # Separate session: VACUUM cannot run in a multi-statement string.
    pg.psql(shape.template, "VACUUM (FREEZE, ANALYZE);")
    check_generated(pg, shape)
    size = pg.value(shape.template, f"SELECT pg_size_pretty(pg_database_size('{shape.template}'))")
    log(f"template {shape.template}: {shape.family_rows():,} rows per family, {shape.roots:,} families, "
        f"{sum(shape.rows().values()):,} rows per schema, {size}, built in {time.time() - t0:.0f} s")


def check_generated(pg, shape):
    """The generator built what the shape says: the first and the last family each hold exactly
    per_family rows of every table (as uproot.preview counts them; the FKs were validated when
    they were added)."""
    want = {t.name: t.per_family for t in shape.tables}
    for schema in shape.schemas():
        for key in (1, shape.roots):
            out = pg.psql(shape.template, f"SELECT 'FAM|' || relation::text || '|' || action || '|' || rows "
                                          f"FROM uproot.preview('{schema}.{shape.root.name}', {key}::bigint);")
            got = {}
            for m in re.finditer(r"^FAM\|([\w.]+)\|(\w+)\|(\d+)$", out, re.M):
                if m.group(2) != "deleted" or not m.group(1).startswith(schema + "."):
                    sys.exit(f"{shape.key}: family {key} of {schema}: unexpected {m.group(0)!r}")
                got[m.group(1)[len(schema) + 1:]] = int(m.group(3))
            if got != want:
                sys.exit(f"{shape.key}: family {key} of {schema} is {got}, the shape says {want}")


def archive_table(schema, table):
    """The archive table prepare_archive creates (names this short are never hashed)."""
    return f'uproot_archive."{schema}.{table}"'


def clone(pg, shape):
    """A fresh copy of the template, its relations in shared buffers (or, for data larger than
    shared_buffers, in the OS cache), no dirty buffers."""
    pg.psql("postgres", f"DROP DATABASE IF EXISTS {RUN_DB} WITH (FORCE);\n"
                        f"CREATE DATABASE {RUN_DB} TEMPLATE {shape.template} STRATEGY FILE_COPY;")
    schemas = ", ".join(f"'{s}'" for s in shape.schemas() + ["uproot_archive", "uproot"])
    pg.psql(RUN_DB, f"""
        SELECT sum(pg_prewarm(c.oid, '{shape.prewarm}')) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ({schemas}) AND c.relkind IN ('r', 'i');
        CHECKPOINT;""")


def counts_sql(schema):
    return (f"SELECT 'COUNT|' || c.relname || '|' || (xpath('/row/n/text()', query_to_xml("
            f"format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text "
            f"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = '{schema}' AND c.relkind = 'r' ORDER BY c.relname;")


def parse_counts(out):
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^COUNT\|(\w+)\|(\d+)$", out, re.M)}


# ---------------------------------------------------------------------------------------------
# Measured statements


def reach(schema, t, prefix):
    """Table `t`'s foreign keys into the family (not to itself), its self-references, and for each
    of the former the rows it reaches from its parent's CTE `<prefix>_<parent>`, as key arrays."""
    into = [fk for fk in t.fks if fk.parent != t.name]
    self_fks = [fk for fk in t.fks if fk.parent == t.name]
    reached = [f"SELECT c.id FROM {schema}.{t.name} c WHERE c.{fk.col} = ANY(ARRAY(SELECT id FROM {prefix}_{fk.parent}))"
               for fk in into]
    return into, self_fks, reached


def purge_cte(shape, schema, where, archive=False):
    """The best hand-written purge: one data-modifying CTE, the root first, every other table's
    rows found from its parents' RETURNING rows through the FK indexes. NO ACTION checks run at the
    end of the statement, after all deletes. A table with one FK into the family joins its parent's
    RETURNING rows. A table that several FKs reach (a diamond) is deleted once, from the union of
    what each FK reaches; a self-referencing table's rows are collected by a recursive CTE first.
    Both pass their key sets as arrays (`= ANY(ARRAY(...))`), and the recursive step is a LATERAL
    probe, as a careful author would write them: the planner's estimates for a recursive CTE and
    for a union of joins are far too high, and with plain joins it scans whole tables for one
    family. With `archive`, every DELETE ... RETURNING * feeds
    an INSERT into the table's archive table (the one uproot uses, batch 0), in the same statement."""
    ret, xret = ("*", "x.*") if archive else ("id", "x.id")
    ctes = [f"d_{shape.root.name} AS (DELETE FROM {schema}.{shape.root.name} WHERE {where} RETURNING {ret})"]
    recursive = False
    for t in shape.tables[1:]:
        into, self_fks, reached = reach(schema, t, "d")
        if self_fks:
            assert len(self_fks) == 1, "one self-reference per table"
            recursive = True
            # the recursive step probes the FK index once per row found (OFFSET 0 keeps the planner
            # from turning it into a hash join over the whole table)
            ctes.append(f"r_{t.name} AS ({' UNION '.join(reached)} UNION SELECT c.id FROM r_{t.name} r CROSS JOIN "
                        f"LATERAL (SELECT c.id FROM {schema}.{t.name} c WHERE c.{self_fks[0].col} = r.id OFFSET 0) c)")
            ctes.append(f"d_{t.name} AS (DELETE FROM {schema}.{t.name} x WHERE x.id = ANY(ARRAY(SELECT id FROM r_{t.name})) "
                        f"RETURNING {xret})")
        elif len(into) == 1:
            fk = into[0]
            ctes.append(f"d_{t.name} AS (DELETE FROM {schema}.{t.name} x USING d_{fk.parent} p "
                        f"WHERE x.{fk.col} = p.id RETURNING {xret})")
        else:
            ctes.append(f"d_{t.name} AS (DELETE FROM {schema}.{t.name} x WHERE x.id = ANY(ARRAY({' UNION '.join(reached)})) "
                        f"RETURNING {xret})")
    if archive:
        for t in shape.tables:
            cols = ", ".join(t.columns)
            ctes.append(f"a_{t.name} AS (INSERT INTO {archive_table(schema, t.name)} ({cols}, _uproot_batch) "
                        f"SELECT {cols}, 0 FROM d_{t.name} RETURNING 1)")
    counts = ", ".join(f"(SELECT count(*) FROM {'a' if archive else 'd'}_{t.name})" for t in shape.tables)
    return f"WITH {'RECURSIVE ' if recursive else ''}" + ",\n     ".join(ctes) + f"\nSELECT {counts}"


def preview_cte(shape, schema, where):
    """The hand-written count of the same families (reference for the preview): one read-only
    statement in the forms of `purge_cte`, each table's family rows found from its parents' rows
    (`SELECT` where that has `DELETE`), and a table no other table references counted where it
    is found (an index-only count: nothing needs its ids). One column per table, in shape
    order."""
    referenced = {fk.parent for t in shape.tables for fk in t.fks}
    ctes = [f"f_{shape.root.name} AS (SELECT id FROM {schema}.{shape.root.name} WHERE {where})"]
    counts = [f"(SELECT count(*) FROM f_{shape.root.name})"]
    recursive = False
    for t in shape.tables[1:]:
        into, self_fks, reached = reach(schema, t, "f")
        if self_fks:
            recursive = True
            ctes.append(f"f_{t.name} AS ({' UNION '.join(reached)} UNION SELECT c.id FROM f_{t.name} r CROSS JOIN "
                        f"LATERAL (SELECT c.id FROM {schema}.{t.name} c WHERE c.{self_fks[0].col} = r.id OFFSET 0) c)")
        elif t.name not in referenced and len(into) == 1:
            fk = into[0]
            counts.append(f"(SELECT count(*) FROM {schema}.{t.name} c "
                          f"WHERE c.{fk.col} = ANY(ARRAY(SELECT id FROM f_{fk.parent})))")
            continue
        elif len(into) == 1:
            fk = into[0]
            ctes.append(f"f_{t.name} AS (SELECT x.id FROM {schema}.{t.name} x JOIN f_{fk.parent} p ON x.{fk.col} = p.id)")
        else:
            ctes.append(f"f_{t.name} AS ({' UNION '.join(reached)})")
        counts.append(f"(SELECT count(*) FROM f_{t.name})")
    return f"WITH {'RECURSIVE ' if recursive else ''}" + ",\n     ".join(ctes) + f"\nSELECT {', '.join(counts)}"


def check_preview_cte(pg, shape):
    """The hand-written count finds what the preview finds: every table's rows of the families
    PREDICATE selects (run once per shape, on the template, untimed)."""
    out = pg.psql(shape.template, f"SELECT 'CTE|' || x::text FROM ({preview_cte(shape, shape.na, PREDICATE)}) x;")
    m = re.search(r"^CTE\|\(([\d,]+)\)$", out, re.M)
    got = [int(n) for n in m.group(1).split(",")] if m else None
    want = [t.per_family * bulk_families(shape) for t in shape.tables]
    if got != want:
        sys.exit(f"{shape.key}: the hand-written preview counts {got}, the shape says {want}")


def bulk_cases(shape):
    """name -> (statement, schema it changes, whether it changes rows)."""
    root = shape.root.name
    return {
        "uproot_na": (f"SELECT * FROM uproot.purge_where('{shape.na}.{root}', '{PREDICATE}')", shape.na, True),
        "native_cascade": (f"DELETE FROM {shape.cascade}.{root} WHERE {PREDICATE}", shape.cascade, True),
        "uproot_cascade": (f"SELECT * FROM uproot.purge_where('{shape.cascade}.{root}', '{PREDICATE}')", shape.cascade, True),
        "cte_na": (purge_cte(shape, shape.na, PREDICATE), shape.na, True),
        "preview_na": (f"SELECT * FROM uproot.preview_where('{shape.na}.{root}', '{PREDICATE}')", shape.na, False),
        "preview_cascade": (f"SELECT * FROM uproot.preview_where('{shape.cascade}.{root}', '{PREDICATE}')", shape.cascade, False),
        "preview_cte_na": (preview_cte(shape, shape.na, PREDICATE), shape.na, False),
        # archives are checked against the archive tables too; uproot's are then restored (timed)
        "archive_na": (f"SELECT * FROM uproot.archive_where('{shape.na}.{root}', '{PREDICATE}')", shape.na, True),
        "archive_cascade": (f"SELECT * FROM uproot.archive_where('{shape.cascade}.{root}', '{PREDICATE}')", shape.cascade, True),
        "archive_cte_na": (purge_cte(shape, shape.na, PREDICATE, archive=True), shape.na, True),
    }


# archive case -> the restore measured right after it, on the same clone
RESTORES = {"archive_na": "restore_na", "archive_cascade": "restore_cascade"}


def bulk_families(shape):
    """How many families PREDICATE selects."""
    return shape.roots // 10


def job_cases(shape):
    """name -> statement, on the jobs shape. Both archive every family (JOB_PREDICATE)."""
    root = shape.root.name
    return {
        "job": f"CALL uproot.run_job('{JOB_NAME}')",
        "archive_all": f"SELECT * FROM uproot.archive_where('{shape.na}.{root}', $p${JOB_PREDICATE}$p$)",
    }


FAMILY_KEY = "(SELECT nextval('public.family_ids'))"


def single_cases(shape):
    """name -> (pgbench script, schema). Keys come from a sequence: each family is purged once."""
    root = shape.root.name
    return {
        "pgbench_uproot_na": (f"SELECT * FROM uproot.purge('{shape.na}.{root}', {FAMILY_KEY});", shape.na),
        "pgbench_native_cascade": (f"DELETE FROM {shape.cascade}.{root} WHERE id = {FAMILY_KEY};", shape.cascade),
        "pgbench_uproot_cascade": (f"SELECT * FROM uproot.purge('{shape.cascade}.{root}', {FAMILY_KEY});", shape.cascade),
        "pgbench_cte_na": (purge_cte(shape, shape.na, f"id = {FAMILY_KEY}") + ";", shape.na),
    }


def big_cases(na, cascade):
    """name -> (statement, shape whose template it runs on, schema): purge family 1."""
    root = na.root.name
    return {
        "uproot_na": (f"SELECT * FROM uproot.purge('{na.na}.{root}', 1::bigint)", na, na.na),
        "native_cascade": (f"DELETE FROM {cascade.cascade}.{root} WHERE id = 1", cascade, cascade.cascade),
        "uproot_cascade": (f"SELECT * FROM uproot.purge('{cascade.cascade}.{root}', 1::bigint)", cascade, cascade.cascade),
        "cte_na": (purge_cte(na, na.na, "id = 1"), na, na.na),
    }


SCHEDSTAT = "string_to_array(btrim(pg_read_file('/proc/self/schedstat'), E' \\n'), ' ')::bigint[]"
STATUS_FIELDS = ("VmHWM", "VmRSS", "RssAnon", "RssShmem")


def parse_status(text, sep="\n"):
    """Memory fields of /proc/<pid>/status, in kB."""
    out = {}
    for line in text.split(sep):
        m = re.match(r"(\w+):\s+(\d+) kB", line)
        if m and m.group(1) in STATUS_FIELDS:
            out[m.group(1)] = int(m.group(2))
    return out


class MemorySampler(threading.Thread):
    """Reads a backend's /proc/<pid>/status every few milliseconds while a statement runs, and keeps
    the peak of each memory field. The backend's pid arrives through a file its session writes."""

    def __init__(self, pidfile):
        super().__init__(daemon=True)
        self.pidfile, self.done, self.peak, self.samples, self.pid = pidfile, threading.Event(), {}, 0, None

    def run(self):
        while self.pid is None and not self.done.is_set():
            try:
                with open(self.pidfile) as f:
                    self.pid = int(f.read().strip())
            except (OSError, ValueError):
                time.sleep(0.005)
        while self.pid and not self.done.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    status = parse_status(f.read())
            except OSError:
                break
            for k, v in status.items():
                self.peak[k] = max(self.peak.get(k, 0), v)
            self.samples += 1
            time.sleep(0.005)


class TimedOut(Exception):
    """The statement ran longer than its statement_timeout and was cancelled (nothing changed)."""

    def __init__(self, mem):
        super().__init__("statement timeout")
        self.mem = mem


def time_statement(pg, statement, schema, memory=None, timeout_s=None):
    """Wall time inside the server, from just before the statement to just after its commit; and
    the backend's own CPU time and run-queue wait over the same span (Linux schedstat), which
    show how much of the wall time other load on the machine took. With `memory` (a scratch
    directory), also the backend's memory: sampled by the driver while the statement runs, and
    read by the session itself from /proc/self/status right after it. With `timeout_s`, a
    statement still running after that many seconds is cancelled: TimedOut."""
    cpu = os.path.exists("/proc/self/schedstat")
    before = f"SELECT {SCHEDSTAT} AS s0 \\gset" if cpu else ""
    after = (f"SELECT 'CPU|' || (s[1] - (:'s0'::bigint[])[1]) / 1e6 || '|' || (s[2] - (:'s0'::bigint[])[2]) / 1e6 "
             f"FROM (SELECT {SCHEDSTAT} AS s) x;") if cpu else ""
    status = "replace(pg_read_file('/proc/self/status'), E'\\n', ';')"
    sampler, pidfile, mem_before, mem_after = None, None, "", ""
    if memory:
        pidfile = os.path.join(memory, f"backend-{time.monotonic_ns()}.pid")
        sampler = MemorySampler(pidfile)
        sampler.start()
        # the pause lets the sampler find the backend before the statement starts (not timed)
        mem_before = f"SELECT pg_backend_pid() \\g {pidfile}\nSELECT pg_sleep(0.2);\nSELECT 'STATUS0|' || {status};"
        mem_after = f"SELECT 'STATUS1|' || {status};"
    sql = f"""
SET client_min_messages = warning;
{mem_before}
{f"SET statement_timeout = '{timeout_s}s';" if timeout_s else ""}
{before}
SELECT clock_timestamp() AS t0 \\gset
\\o /dev/null
{statement};
\\o
{"RESET statement_timeout;" if timeout_s else ""}
SELECT 'MS|' || extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000;
{mem_after}
{after}
{counts_sql(schema)}"""
    try:
        p = pg.run(RUN_DB, sql)
    finally:
        if sampler:
            sampler.done.set()
            sampler.join()
    out = p.stdout
    if p.returncode != 0:
        if timeout_s and "canceling statement due to statement timeout" in p.stderr:
            raise TimedOut({"before": {}, "after": {}, "peak": sampler.peak, "samples": sampler.samples} if sampler else None)
        sys.exit(f"psql failed on {RUN_DB}:\n{sql[:2000]}\n--- stderr ---\n{p.stderr}")
    ms = float(re.search(r"^MS\|([\d.]+)$", out, re.M).group(1))
    m = re.search(r"^CPU\|([\d.]+)\|([\d.]+)$", out, re.M)
    sched = (float(m.group(1)), float(m.group(2))) if m else None
    if not memory:
        return ms, sched, parse_counts(out)
    s0 = parse_status(re.search(r"^STATUS0\|(.*)$", out, re.M).group(1), ";")
    s1 = parse_status(re.search(r"^STATUS1\|(.*)$", out, re.M).group(1), ";")
    mem = {"before": s0, "after": s1, "peak": sampler.peak, "samples": sampler.samples}
    return ms, sched, parse_counts(out), mem


def run_pgbench(pg, script, transactions, tmp):
    path = os.path.join(tmp, "family.sql")
    with open(path, "w") as f:
        f.write(script + "\n")
    os.chmod(path, 0o644)
    cmd = [os.path.join(pg.pgbin, "pgbench"), "-n", "-M", "prepared", "-c", "1", "-t", str(transactions),
           "-f", path, *pg.conn(RUN_DB)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    processed = re.search(r"number of transactions actually processed: (\d+)", p.stdout)
    if p.returncode != 0 or not processed or int(processed.group(1)) != transactions:
        sys.exit(f"pgbench failed:\n{script}\n{p.stdout}\n{p.stderr}")
    return float(re.search(r"latency average = ([\d.]+) ms", p.stdout).group(1))


# ---------------------------------------------------------------------------------------------
# Checks: every method must leave exactly the rows of the families it was given, and preview
# must change nothing


def check_counts(shape, name, counts, want):
    if counts != want:
        sys.exit(f"{shape.key}/{name}: rows left {counts}, expected {want}")


def content_ok(shape, t, alias):
    """The row holds exactly what the generator wrote for its id (see ddl)."""
    step = "1 minute" if t is shape.root else "1 second"
    cond = [f"{alias}.payload = md5({alias}.id::text)",
            f"{alias}.created_at = '2020-01-01'::timestamptz + {alias}.id * interval '{step}'"]
    cond += [f"{alias}.{fk.col} IS NOT DISTINCT FROM {shape.fk_value(t, fk, f'{alias}.id')}" for fk in t.fks]
    return "(" + " AND ".join(cond) + ")"


def archive_check_sql(shape, schema, predicate):
    """Per table: archived rows, distinct ids, rows not as generated, rows still live too, archived
    rows whose parent (by any FK) is not archived, archived roots not matching the predicate."""
    out = []
    for t in shape.tables:
        a = archive_table(schema, t.name)
        orphans = " OR ".join(f"(a.{fk.col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {archive_table(schema, fk.parent)} p "
                              f"WHERE p.id = a.{fk.col}))" for fk in t.fks)
        orphans = f"(SELECT count(*) FROM {a} a WHERE {orphans})" if t.fks else "0"
        off = f"count(*) FILTER (WHERE ({predicate}) IS NOT TRUE)" if t is shape.root else "0"
        out.append(f"SELECT 'ARCH|{t.name}|' || concat_ws('|', count(*), count(DISTINCT id), "
                   f"count(*) FILTER (WHERE {content_ok(shape, t, a)} IS NOT TRUE), "
                   f"(SELECT count(*) FROM {a} a JOIN {schema}.{t.name} l ON l.id = a.id), {orphans}, {off}) "
                   f"FROM {a};")
    return "\n".join(out)


def check_archive(pg, shape, name, schema, predicate, counts):
    """The archive tables hold exactly the rows that left the live tables, as they were."""
    before = shape.rows()
    out = pg.psql(RUN_DB, archive_check_sql(shape, schema, predicate))
    for m in re.finditer(r"^ARCH\|(\w+)\|(\d+)\|(\d+)\|(\d+)\|(\d+)\|(\d+)\|(\d+)$", out, re.M):
        t, (archived, distinct, bad, live, orphans, off) = m.group(1), map(int, m.groups()[1:])
        gone = before[t] - counts[t]
        if (archived, distinct, bad, live, orphans, off) != (gone, gone, 0, 0, 0, 0):
            sys.exit(f"{shape.key}/{name}: archive of {t}: {archived} rows ({distinct} distinct ids, {bad} not as "
                     f"generated, {live} still live, {orphans} without their parent, {off} roots off the predicate); "
                     f"{gone} rows left the table")
    if len(re.findall(r"^ARCH\|", out, re.M)) != len(shape.tables):
        sys.exit(f"{shape.key}/{name}: archive check gave {out!r}")
    return sum(before[t] - counts[t] for t in before)


def check_restored(pg, shape, name, schema, batch):
    """Every table is back to its original rows (count, and content as generated), the archive
    tables are empty, and the ledger says the batch was restored."""
    before = shape.rows()
    sql = [f"SELECT 'LIVE|{t.name}|' || count(*) || '|' || count(*) FILTER (WHERE {content_ok(shape, t, 'l')} IS NOT TRUE) "
           f"|| '|' || (SELECT count(*) FROM {archive_table(schema, t.name)}) FROM {schema}.{t.name} l;"
           for t in shape.tables]
    sql.append(f"SELECT 'LEDGER|' || (restored_at IS NOT NULL) FROM uproot.batches WHERE id = {batch};")
    out = pg.psql(RUN_DB, "\n".join(sql))
    got = {m.group(1): tuple(map(int, m.groups()[1:])) for m in re.finditer(r"^LIVE\|(\w+)\|(\d+)\|(\d+)\|(\d+)$", out, re.M)}
    want = {t: (n, 0, 0) for t, n in before.items()}
    if got != want or "LEDGER|true" not in out:
        sys.exit(f"{shape.key}/{name}: after restore (rows, not as generated, still archived) {got}, "
                 f"expected {want}; ledger: {out[out.find('LEDGER'):]!r}")


# ---------------------------------------------------------------------------------------------
# --explain: where the time goes

AUTO_EXPLAIN = """
LOAD 'auto_explain';
SET auto_explain.log_min_duration = '{min_ms}ms';
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_triggers = on;
SET auto_explain.log_nested_statements = on;
SET client_min_messages = log;
"""


def psql_all(pg, db, sql):
    """stdout and stderr (auto_explain's LOG lines) of one session."""
    cmd = [os.path.join(pg.pgbin, "psql"), "-X", "-v", "ON_ERROR_STOP=1", *pg.conn(db)]
    p = subprocess.run(cmd, input=sql, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"psql failed:\n{sql}\n{p.stderr}")
    return p.stdout + summarize_log(p.stderr)


def summarize_log(text):
    """Keep auto_explain's plans, but fold PostgreSQL's own per-row RI trigger queries into one line
    per query text (count and total time): there is one per deleted parent row."""
    entries = re.split(r"^(?=LOG:)", text, flags=re.M)
    ri, out = {}, []
    for e in entries:
        m = re.match(r"LOG:\s+duration: ([\d.]+) ms\s+plan:\s*\n\s*Query Text: (.*)", e)
        if m and re.match(r"(SELECT 1 FROM ONLY|DELETE FROM ONLY|UPDATE ONLY)", m.group(2)):
            n, total = ri.get(m.group(2), (0, 0.0))
            ri[m.group(2)] = (n + 1, total + float(m.group(1)))
        elif m and "The whole foreign-key graph" in m.group(2):
            out.append(f"LOG:  duration: {m.group(1)} ms: uproot's catalog query (plan left out)")
        elif e.strip():
            out.append(e.rstrip())
    for q, (n, total) in ri.items():
        out.append(f"RI trigger query, {n} calls, {total:.1f} ms in total: {q}")
    return "\n".join(out) + "\n"


PGSS = """
SELECT calls, round(total_exec_time::numeric, 1) AS exec_ms, round(total_plan_time::numeric, 1) AS plan_ms, plans,
       round(((total_exec_time + total_plan_time) / nullif(calls, 0))::numeric, 3) AS ms_per_call,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 150) AS query
  FROM pg_stat_statements
 WHERE query !~ 'pg_stat_statements|pg_prewarm|pg_read_file|query_to_xml|clock_timestamp|^SELECT count\\(\\*\\) AS n FROM|CHECKPOINT|^SET |^LOAD '
 ORDER BY total_exec_time + total_plan_time DESC LIMIT 25;
"""


def explain_shape(pg, shape, path, transactions, tmp):
    """Where the time goes, for the lead to read next to the figures: plans with trigger times
    (EXPLAIN ANALYZE, auto_explain for the statements uproot runs through SPI), and
    pg_stat_statements (track = all, track_planning = on), which also splits planning from
    execution without auto_explain's instrumentation overhead."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    root = shape.root.name
    parts = []

    def section(title, sql):
        clone(pg, shape)
        t0 = time.time()
        parts.append(f"\n{'=' * 100}\n== {title}\n{'=' * 100}\n{sql.strip()}\n{'-' * 100}\n"
                     + psql_all(pg, RUN_DB, sql))
        log(f"explain {shape.key}: {title} ({time.time() - t0:.0f} s)")

    def stats_section(title, statement=None, script=None, setup=None):
        clone(pg, shape)
        if setup:
            pg.psql(RUN_DB, setup + ";")  # not counted: the statistics are reset after it
        pg.psql(RUN_DB, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset();")
        if statement:
            ms, _, _ = time_statement(pg, statement, shape.na)
            what = f"{statement}\n-- {ms:.1f} ms (fresh session)"
        else:
            ms = run_pgbench(pg, script, transactions, tmp)
            what = f"pgbench -n -M prepared -c 1 -t {transactions}: {script}\n-- latency average {ms:.3f} ms"
        parts.append(f"\n{'=' * 100}\n== {title}\n{'=' * 100}\n{what}\n"
                     f"-- pg_stat_statements, top statements by exec + plan time (a top-level call's\n"
                     f"-- exec time includes the statements it runs):\n{'-' * 100}\n"
                     + psql_all(pg, RUN_DB, PGSS))
        log(f"explain {shape.key}: {title}")

    if shape.name == "jobs":
        # where a job's time goes, next to one big archive_where
        for name, statement in job_cases(shape).items():
            stats_section(f"jobs: {name} (pg_stat_statements)", statement=statement)
        section("jobs: one batch of archive_where (auto_explain of uproot's statements)",
                AUTO_EXPLAIN.format(min_ms=0) + f"\\timing on\nSELECT * FROM uproot.archive_where("
                f"'{shape.na}.{root}', $p${JOB_PREDICATE}$p$, {JOB_BATCH});")
        write_explain(path, shape, parts)
        return

    bulk, single = bulk_cases(shape), single_cases(shape)
    section("statements uproot runs (uproot.explain)",
            f"SELECT step, purpose, statement FROM uproot.explain('{shape.na}.{root}', '{PREDICATE}');\n"
            f"SELECT step, purpose, statement FROM uproot.explain('{shape.cascade}.{root}', '{PREDICATE}');")
    section("bulk: native DELETE on the CASCADE schema",
            f"EXPLAIN (ANALYZE, BUFFERS) {bulk['native_cascade'][0]};")
    section("bulk: hand-written CTE on the NO ACTION schema",
            f"EXPLAIN (ANALYZE, BUFFERS) {bulk['cte_na'][0]};")
    for name in ("uproot_na", "uproot_cascade", "preview_na"):
        # plans of the statements uproot runs; the RI checks are too short for the 1 ms threshold
        section(f"bulk: {name} (auto_explain of uproot's statements)",
                AUTO_EXPLAIN.format(min_ms=1) + f"\\timing on\n{bulk[name][0]};")
        stats_section(f"bulk: {name} (pg_stat_statements)", statement=bulk[name][0])
    stats_section("bulk: cte_na (pg_stat_statements)", statement=bulk["cte_na"][0])
    stats_section("bulk: native_cascade (pg_stat_statements)", statement=bulk["native_cascade"][0])
    # Single family, warm session: one call first so caches are loaded, then the explained call.
    for schema, kind in ((shape.na, "uproot"), (shape.cascade, "uproot"), (shape.cascade, "native"),
                         (shape.na, "cte")):
        if kind == "uproot":
            call = lambda k: f"SELECT count(*) FROM uproot.purge('{schema}.{root}', {k}::bigint);"
            warm = "\n".join(call(k) for k in (1, 2, 3))
            sql = f"{warm}\n{AUTO_EXPLAIN.format(min_ms=0)}\\timing on\n{call(4)}"
        elif kind == "native":
            warm = "\n".join(f"DELETE FROM {schema}.{root} WHERE id = {k};" for k in (1, 2, 3))
            sql = f"{warm}\n\\timing on\nEXPLAIN (ANALYZE, BUFFERS) DELETE FROM {schema}.{root} WHERE id = 4;"
        else:
            warm = "\n".join(purge_cte(shape, schema, f"id = {k}") + ";" for k in (1, 2, 3))
            sql = f"{warm}\n\\timing on\nEXPLAIN (ANALYZE, BUFFERS) {purge_cte(shape, schema, 'id = 4')};"
        section(f"single family: {kind} on {schema}, warm session", sql)
    for name, (script, _) in single.items():
        stats_section(f"single family: {name} (pg_stat_statements)", script=script)
    # archive and restore
    section("bulk: hand-written archive CTE on the NO ACTION schema",
            f"EXPLAIN (ANALYZE, BUFFERS) {bulk['archive_cte_na'][0]};")
    for name in ("archive_na", "archive_cascade"):
        section(f"bulk: {name} (auto_explain of uproot's statements)",
                AUTO_EXPLAIN.format(min_ms=1) + f"\\timing on\n{bulk[name][0]};")
        stats_section(f"bulk: {name} (pg_stat_statements)", statement=bulk[name][0])
    stats_section("bulk: archive_cte_na (pg_stat_statements)", statement=bulk["archive_cte_na"][0])
    restore = "SELECT * FROM uproot.restore((SELECT max(id) FROM uproot.batches))"
    for name in ("archive_na", "archive_cascade"):
        section(f"bulk: {RESTORES[name]} after {name} (auto_explain of uproot's statements)",
                f"{bulk[name][0]};\nCHECKPOINT;\n" + AUTO_EXPLAIN.format(min_ms=1) + f"\\timing on\n{restore};")
        stats_section(f"bulk: {RESTORES[name]} after {name} (pg_stat_statements)", statement=restore,
                      setup=bulk[name][0] + ";\nCHECKPOINT")
    write_explain(path, shape, parts)


def write_explain(path, shape, parts):
    with open(path, "w") as f:
        f.write(f"pg_uproot benchmark: plans and trigger times, shape {shape.name}, layout {shape.layout}, "
                f"rows {shape.rows()}\n")
        f.write("".join(parts))
    log(f"written to {path}")


# ---------------------------------------------------------------------------------------------
# Report


def git_describe():
    p = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.abspath(__file__)))
    return f"commit {p.stdout.strip()}" if p.returncode == 0 else "(no git)"


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def median(xs):
    return statistics.median(xs)


def fmt(x):
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:.0f}"


def spread(xs):
    """Max-min relative to the median: the run's own noise."""
    m = median(xs)
    return f"±{(max(xs) - min(xs)) / 2 / m * 100:.0f}%" if len(xs) > 1 and m else "n/a"


def ratio_range(xs, ys):
    """The range of the ratios within each repetition (both measured in the same repetition)."""
    pairs = [x / y for x, y in zip(xs, ys)]
    return f"{min(pairs):.2f}–{max(pairs):.2f}" if len(pairs) > 1 else "–"


# The targets of issue 9: label, numerator, denominator, limit. "Any workload vs the hand-written
# CTE" is measured for the three workloads that have one (bulk purge, one family, bulk archive), on
# the NO ACTION schema: on a CASCADE schema, what a person writes is the native DELETE.
TARGETS = [
    ("bulk purge, NO ACTION vs native cascade on the twin", "uproot_na", "native_cascade", 1.2),
    ("bulk purge, CASCADE vs native on the same schema", "uproot_cascade", "native_cascade", 1.05),
    ("one family, NO ACTION vs native cascade on the twin", "pgbench_uproot_na", "pgbench_native_cascade", 1.3),
    ("one family, CASCADE vs native on the same schema", "pgbench_uproot_cascade", "pgbench_native_cascade", 1.1),
    ("bulk purge, NO ACTION vs the hand-written CTE", "uproot_na", "cte_na", 1.0),
    ("one family, NO ACTION vs the hand-written CTE", "pgbench_uproot_na", "pgbench_cte_na", 1.0),
    ("bulk archive, NO ACTION vs the hand-written archive CTE", "archive_na", "archive_cte_na", 1.0),
    ("bulk archive, NO ACTION vs native cascade purge on the twin", "archive_na", "native_cascade", 2.0),
    ("bulk archive, CASCADE vs native cascade purge", "archive_cascade", "native_cascade", 2.0),
    ("preview vs purge, NO ACTION", "preview_na", "uproot_na", 0.3),
    ("preview vs purge, CASCADE", "preview_cascade", "uproot_cascade", 0.3),
]
REFERENCE = [
    ("hand-written CTE (bulk), NO ACTION vs native cascade on the twin", "cte_na", "native_cascade"),
    ("hand-written CTE (one family), NO ACTION vs native cascade on the twin", "pgbench_cte_na", "pgbench_native_cascade"),
    ("hand-written archive CTE, NO ACTION vs native cascade purge on the twin", "archive_cte_na", "native_cascade"),
    ("preview vs the hand-written count of the same rows, NO ACTION", "preview_na", "preview_cte_na"),
    ("hand-written count, NO ACTION vs uproot's purge (the preview target's ratio, for what a person writes)", "preview_cte_na", "uproot_na"),
    ("restore vs the archive before it, NO ACTION", "restore_na", "archive_na"),
    ("restore vs the archive before it, CASCADE", "restore_cascade", "archive_cascade"),
]
BIG_TIME_LIMIT = 1.5
BIG_MEMORY_LIMIT_MB = 256

DESCRIPTIONS = {
    "uproot_na": "`uproot.purge_where` on the NO ACTION schema",
    "native_cascade": "native `DELETE` on the CASCADE schema",
    "uproot_cascade": "`uproot.purge_where` on the CASCADE schema",
    "cte_na": "hand-written data-modifying CTE on the NO ACTION schema",
    "preview_na": "`uproot.preview_where` on the NO ACTION schema",
    "preview_cascade": "`uproot.preview_where` on the CASCADE schema",
    "preview_cte_na": "hand-written read-only count of the same families (one statement), NO ACTION schema",
    "pgbench_uproot_na": "`uproot.purge` of one family, NO ACTION schema (pgbench mean latency)",
    "pgbench_native_cascade": "native `DELETE` of one family, CASCADE schema (pgbench mean latency)",
    "pgbench_uproot_cascade": "`uproot.purge` of one family, CASCADE schema (pgbench mean latency)",
    "pgbench_cte_na": "hand-written CTE for one family, NO ACTION schema (pgbench mean latency)",
    "archive_na": "`uproot.archive_where` on the NO ACTION schema",
    "archive_cascade": "`uproot.archive_where` on the CASCADE schema",
    "archive_cte_na": "hand-written archive CTE (DELETE … RETURNING into INSERT) on the NO ACTION schema",
    "restore_na": "`uproot.restore` of the NO ACTION schema's batch",
    "restore_cascade": "`uproot.restore` of the CASCADE schema's batch",
    "job": f"`CALL uproot.run_job`: batches of {JOB_BATCH} families, a commit after each",
    "archive_all": "`uproot.archive_where` of the same families in one statement",
}
BIG_DESCRIPTIONS = {
    "uproot_na": "`uproot.purge` of the family, NO ACTION schema",
    "native_cascade": "native `DELETE` of the root, CASCADE schema",
    "uproot_cascade": "`uproot.purge` of the family, CASCADE schema",
    "cte_na": "hand-written CTE, NO ACTION schema",
}


class Results:
    """Per shape key ("deep clustered") and case: wall ms, CPU ms, run-queue wait ms, memory, one
    entry per repetition."""

    def __init__(self):
        self.ms, self.cpu, self.wait, self.mem = {}, {}, {}, {}
        self.timed_out = set()  # (key, case): cancelled after the timeout, its ms a lower bound

    def start(self, key, cases):
        self.ms[key] = {c: [] for c in cases}

    def add(self, key, case, ms, sched=None, mem=None):
        self.ms[key][case].append(ms)
        if sched:
            self.cpu.setdefault(key, {}).setdefault(case, []).append(sched[0])
            self.wait.setdefault(key, {}).setdefault(case, []).append(sched[1])
        if mem:
            self.mem.setdefault(key, {}).setdefault(case, []).append(mem)


def target_limit(shape, num, den, limit):
    """The broad-and-shallow shape has its own single-family target (≤ 1.5 instead of ≤ 1.3)."""
    if shape.single_na_limit and (num, den) == ("pgbench_uproot_na", "pgbench_native_cascade"):
        return shape.single_na_limit
    return limit


def verdict(ratio, limit, lower_bound=False, upper_bound=False):
    """PASS or MISS of ratio ≤ limit. A cancelled run makes the ratio only a bound: a lower bound
    (numerator cancelled) can only prove a miss, an upper bound (denominator cancelled) a pass."""
    if ratio <= limit and not lower_bound:
        return "PASS"
    if ratio > limit and not upper_bound:
        return f"MISS (by {'> ' if lower_bound else ''}{ratio / limit:.2f}x)"
    return "undetermined (cancelled)"


def targets_report(res, shapes_):
    """The summary matrix (targets × shape and layout), then every target in detail."""
    keys = [s for s in shapes_ if s.key in res.ms]
    lines = ["## Targets of issue 9", "",
             "Ratio of medians of wall time; ✓ meets the target, ✗ misses it; in parentheses the range of the "
             "ratios within each repetition (both sides measured in the same repetition). Shapes and layouts in "
             "the columns.", "",
             "| comparison | target | " + " | ".join(s.key for s in keys) + " |",
             "|---|---:|" + "---:|" * len(keys)]
    passed = total = 0
    for label, num, den, limit in TARGETS:
        cells = []
        for s in keys:
            r = res.ms[s.key]
            lim = target_limit(s, num, den, limit)
            ratio = median(r[num]) / median(r[den])
            ok = ratio <= lim
            passed, total = passed + ok, total + 1
            rng = ratio_range(r[num], r[den])
            cells.append(f"{ratio:.2f} {'✓' if ok else '✗'}" + ("" if rng == "–" else f" ({rng})")
                         + ("" if lim == limit else f", target ≤ {lim}"))
        lines.append(f"| {label} | ≤ {limit} | " + " | ".join(cells) + " |")
    for label, num, den in REFERENCE:
        cells = []
        for s in keys:
            r = res.ms[s.key]
            rng = ratio_range(r[num], r[den])
            cells.append(f"{median(r[num]) / median(r[den]):.2f}" + ("" if rng == "–" else f" ({rng})"))
        lines.append(f"| {label} (reference) | – | " + " | ".join(cells) + " |")
    lines += ["", f"**{passed} of {total} targets pass** (shapes × layouts × targets above; the 5M-row family "
                  f"is reported separately). The broad-and-shallow shape `tenant` has its own single-family "
                  f"target, ≤ 1.5, instead of ≤ 1.3.", ""]
    lines += ["### Every target in detail", "",
              "Also: the range of the ratios within each repetition, and the ratio of medians of the backend's "
              "CPU time (bulk only), which other load on the machine disturbs less.", "",
              "| shape | layout | comparison | measured ms | baseline ms | ratio | per-rep ratios | CPU ratio | target | result |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for s in keys:
        r, c = res.ms[s.key], res.cpu.get(s.key, {})
        for label, num, den, limit in TARGETS + [(label, num, den, None) for label, num, den in REFERENCE]:
            a, b = median(r[num]), median(r[den])
            cr = f"{median(c[num]) / median(c[den]):.2f}" if num in c and den in c else "–"
            if limit is None:
                target, result = "–", "reference"
            else:
                lim = target_limit(s, num, den, limit)
                target, result = f"≤ {lim}", verdict(a / b, lim)
            lines.append(f"| {s.name} | {s.layout} | {label} | {fmt(a)} | {fmt(b)} | {a / b:.2f} | "
                         f"{ratio_range(r[num], r[den])} | {cr} | {target} | {result} |")
    return lines + [""]


def medians_report(res, shapes_):
    """Median ms of every measurement, shapes and layouts in the columns."""
    keys = [s for s in shapes_ if s.key in res.ms]
    lines = ["## Medians (ms)", "",
             "| measurement | " + " | ".join(s.key for s in keys) + " |", "|---|" + "---:|" * len(keys)]
    for name in res.ms[keys[0].key]:
        lines.append(f"| {DESCRIPTIONS[name]} | " + " | ".join(fmt(median(res.ms[s.key][name])) for s in keys) + " |")
    lines.append("| rows per family / families in the bulk runs | " +
                 " | ".join(f"{s.family_rows():,} / {bulk_families(s):,}" for s in keys) + " |")
    return lines + [""]


def mb(kb):
    return f"{kb / 1024:,.0f} MB"


def big_report(res, bigs):
    """The 5-million-row family: time against native cascade, and the backend's memory."""
    lines = []
    for na, cascade in bigs:
        key = na.key
        if key not in res.ms:
            continue
        r, c, m = res.ms[key], res.cpu.get(key, {}), res.mem.get(key, {})
        fam = na.family_rows()
        lines += [f"## The {fam:,}-row family ({na.layout})", "",
                  f"Shape `big`, {na.layout}: {na.about}; {na.roots} families of {fam:,} rows, family 1 purged. "
                  f"One template per schema (`{na.template}`, `{cascade.template}`), a fresh clone for each "
                  f"measurement, its relations read into the OS cache (they do not fit in shared_buffers), then a "
                  f"`CHECKPOINT`; timed like the bulk statements. Memory: the driver samples the backend's "
                  f"`/proc/<pid>/status` every 5 ms while the statement runs; the peak of `RssAnon` is the backend's "
                  f"private memory (what the target bounds). `VmHWM`, read by the session itself right after the "
                  f"statement, also counts the shared buffers the backend touched.", "",
                  "| measurement | median ms | per repetition | vs native | per-rep ratios | CPU ms (median) | "
                  "peak private memory (RssAnon, max over reps) | private before | VmHWM after (max) | samples |",
                  "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
        base = r["native_cascade"]
        cut = {name for k, name in res.timed_out if k == key}  # cancelled: ms and ratios are lower bounds

        def ge(name, text):
            return f"> {text} (cancelled)" if name in cut else text

        for name, xs in r.items():
            mem = m.get(name, [])
            peak = max((x["peak"].get("RssAnon", 0) for x in mem), default=0)
            before = median([x["before"].get("RssAnon", 0) for x in mem]) if mem and mem[0]["before"] else 0
            hwm = max((x["after"].get("VmHWM", 0) for x in mem), default=0)
            samples = min((x["samples"] for x in mem), default=0)
            cm = fmt(median(c[name])) if name in c else "–"
            lines.append(f"| {BIG_DESCRIPTIONS[name]} | {ge(name, fmt(median(xs)))} | {', '.join(ge(name, fmt(x)) for x in xs)} | "
                         f"{ge(name, f'{median(xs) / median(base):.2f}')} | {ratio_range(xs, base)} | {cm} | "
                         f"{mb(peak)} | {mb(before) if before else '–'} | {mb(hwm) if hwm else '–'} | {samples} |")
        lines += ["", "| target | measured | limit | result |", "|---|---:|---:|---|"]
        for num, den, limit in (("uproot_na", "native_cascade", BIG_TIME_LIMIT),
                                ("uproot_cascade", "native_cascade", BIG_TIME_LIMIT), ("uproot_na", "cte_na", 1.0)):
            ratio = median(r[num]) / median(r[den])
            bound = "> " if num in cut and den not in cut else "< " if den in cut and num not in cut else \
                "? " if num in cut else ""
            against = "native cascade" if den == "native_cascade" else "the hand-written CTE"
            lines.append(f"| {BIG_DESCRIPTIONS[num]} vs {against} | {bound}{ratio:.2f} | ≤ {limit} | "
                         f"{verdict(ratio, limit, num in cut, den in cut)} |")
        for name in ("uproot_na", "uproot_cascade"):
            peak = max(x["peak"].get("RssAnon", 0) for x in m[name]) / 1024
            lines.append(f"| {BIG_DESCRIPTIONS[name]}: peak private memory{' (until cancelled)' if name in cut else ''} | "
                         f"{peak:,.0f} MB | ≤ {BIG_MEMORY_LIMIT_MB} MB | {verdict(peak, BIG_MEMORY_LIMIT_MB)} |")
        lines.append("")
    return lines


def restore_report(res, shapes_, moved):
    lines = ["## Restore", "",
             "`uproot.restore(batch_id)` of the batch the bulk archive just wrote, on the same clone, after a "
             "`CHECKPOINT`; in a fresh session, timed like the others.", "",
             "| shape | layout | schema | rows | restore ms | rows/s | archive ms | restore / archive | per-rep ratios |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for s in shapes_:
        if s.key not in res.ms:
            continue
        r = res.ms[s.key]
        for arch, rest, label in (("archive_na", "restore_na", "NO ACTION"), ("archive_cascade", "restore_cascade", "CASCADE")):
            a, b = median(r[rest]), median(r[arch])
            lines.append(f"| {s.name} | {s.layout} | {label} | {moved[s.key]:,} | {fmt(a)} | {moved[s.key] / a * 1000:,.0f} | "
                         f"{fmt(b)} | {a / b:.2f} | {ratio_range(r[rest], r[arch])} |")
    return lines + [""]


def job_report(res, shape, rows):
    r, cpu, wait = res.ms[shape.key], res.cpu.get(shape.key, {}), res.wait.get(shape.key, {})
    batches = shape.roots // JOB_BATCH
    rs = shape.rows()
    lines = [f"## Jobs ({shape.layout}): {shape.roots:,} families in batches of {JOB_BATCH}", "",
             f"Shape `{shape.name}`, {shape.layout}: {', '.join(f'{t}={n:,}' for t, n in rs.items())} (NO ACTION FK, indexed). "
             f"Job `{JOB_NAME}`: `archive`, predicate `{JOB_PREDICATE}` (every family), `batch_roots => {JOB_BATCH}`: "
             f"{batches} batches, each its own transaction, then one more call that finds nothing. "
             f"Against it, one `uproot.archive_where` of the same {shape.roots:,} families, one transaction. "
             f"Both on fresh clones, timed inside the server like the bulk statements (the `CALL` span includes every batch's commit).", "",
             "| measurement | median ms | per repetition | rows | rows/s | CPU ms (median) | run-queue wait (median) |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for name, xs in r.items():
        m = median(xs)
        cm = fmt(median(cpu[name])) if name in cpu else "–"
        wm = fmt(median(wait[name])) if name in wait else "–"
        lines.append(f"| {DESCRIPTIONS[name]} | {fmt(m)} | {', '.join(fmt(x) for x in xs)} | {rows:,} | "
                     f"{rows / m * 1000:,.0f} | {cm} | {wm} |")
    a, b = median(r["job"]), median(r["archive_all"])
    lines += ["", f"Short transactions cost: job / single statement = **{a / b:.2f}** "
                  f"(per-rep {ratio_range(r['job'], r['archive_all'])}); "
                  f"{(a - b) / batches:.1f} ms more per batch of {JOB_BATCH} families "
                  f"({a / batches:.1f} ms per batch in all).", ""]
    return lines


def shape_report(res, s, transactions):
    r, c, w = res.ms[s.key], res.cpu.get(s.key, {}), res.wait.get(s.key, {})
    lines = [f"## Shape `{s.name}`, {s.layout}: all measurements (ms)", "",
             f"{s.about}. Rows per family: {s.family_rows():,}; {s.roots:,} families; "
             f"{sum(s.rows().values()):,} rows per schema in {len(s.tables)} tables. "
             f"Bulk: `{PREDICATE}` on the root = {bulk_families(s):,} families. "
             f"Single family: {transactions} transactions, one family each.", "",
             "| measurement | median | per repetition | spread | CPU (median) | run-queue wait (median) |",
             "|---|---:|---|---:|---:|---:|"]
    for name, xs in r.items():
        cm = fmt(median(c[name])) if name in c else "–"
        wm = fmt(median(w[name])) if name in w else "–"
        lines.append(f"| {DESCRIPTIONS[name]} | {fmt(median(xs))} | {', '.join(fmt(x) for x in xs)} | "
                     f"{spread(xs)} | {cm} | {wm} |")
    return lines + [""]


# ---------------------------------------------------------------------------------------------
# Measuring


def transactions_for(shape):
    return min(300, shape.roots // 2)


def measure_shape(pg, s, reps, library, tmp, res, moved):
    """Every bulk and single-family case on fresh clones of one template, the order rotated by one
    each repetition so that drift on the machine falls evenly on all of them."""
    build_template(pg, s, library)
    check_preview_cte(pg, s)
    bulk, single = bulk_cases(s), single_cases(s)
    tasks = list(bulk) + list(single)
    res.start(s.key, tasks + list(RESTORES.values()))
    transactions = transactions_for(s)
    after_bulk, after_single = s.rows_without(bulk_families(s)), s.rows_without(transactions)
    for rep in range(reps):
        order = tasks[rep % len(tasks):] + tasks[:rep % len(tasks)]
        for name in order:
            clone(pg, s)
            if name in bulk:
                statement, schema, changes = bulk[name]
                ms, sched, counts = time_statement(pg, statement, schema)
                check_counts(s, name, counts, after_bulk if changes else s.rows())
                if name.startswith("archive"):
                    moved[s.key] = check_archive(pg, s, name, schema, PREDICATE, counts)
            else:
                script, schema = single[name]
                ms, sched = run_pgbench(pg, script, transactions, tmp), None
                check_counts(s, name, parse_counts(pg.psql(RUN_DB, counts_sql(schema))), after_single)
            res.add(s.key, name, ms, sched)
            log(f"{s.key} rep {rep + 1}/{reps} {name}: {fmt(ms)} ms")
            if name in RESTORES:
                restore = RESTORES[name]
                ms, sched = time_restore(pg, s, name, schema)
                res.add(s.key, restore, ms, sched)
                log(f"{s.key} rep {rep + 1}/{reps} {restore}: {fmt(ms)} ms")


def time_restore(pg, shape, archived_by, schema):
    """Restore the one batch the archive just wrote, on the same clone, and check the result."""
    batch, n = pg.value(RUN_DB, "SELECT max(id) || '|' || count(*) FROM uproot.batches").split("|")
    if n != "1":
        sys.exit(f"{shape.key}/{archived_by}: {n} batches in the ledger, expected 1")
    pg.psql(RUN_DB, "CHECKPOINT;")  # the archive's dirty buffers are not restore's to write
    ms, sched, _ = time_statement(pg, f"SELECT * FROM uproot.restore({batch})", schema)
    check_restored(pg, shape, RESTORES[archived_by], schema, batch)
    return ms, sched


def check_job(pg, shape, name, counts):
    """Everything archived, in whole batches, and (for the job) a run log that says so."""
    if any(counts.values()):
        sys.exit(f"{shape.key}/{name}: rows left after archiving everything: {counts}")
    rows = check_archive(pg, shape, name, shape.na, JOB_PREDICATE, counts)
    batches = shape.roots // JOB_BATCH if name == "job" else 1
    ledger = pg.value(RUN_DB, "SELECT count(*) || '|' || coalesce(sum((counts ->> root::text)::bigint), 0) "
                              "FROM uproot.batches")
    if ledger != f"{batches}|{shape.roots}":
        sys.exit(f"{shape.key}/{name}: ledger (batches|roots) {ledger}, expected {batches}|{shape.roots}")
    if name == "job":
        run = pg.value(RUN_DB, f"SELECT concat_ws('|', stop_reason, batches, roots) FROM uproot.job_runs "
                               f"WHERE job = '{JOB_NAME}'")
        if run != f"done|{batches}|{shape.roots}":
            sys.exit(f"{shape.key}/job: run log (stop_reason|batches|roots) {run!r}, "
                     f"expected 'done|{batches}|{shape.roots}'")
    return rows


def measure_jobs(pg, shape, reps, library, res):
    """A job archiving every family in batches of JOB_BATCH (each batch its own transaction),
    against one archive_where of the same families, each on a fresh clone."""
    build_template(pg, shape, library)
    cases = job_cases(shape)
    res.start(shape.key, list(cases))
    rows = 0
    for rep in range(reps):
        order = list(cases)[rep % len(cases):] + list(cases)[:rep % len(cases)]
        for name in order:
            clone(pg, shape)
            ms, sched, counts = time_statement(pg, cases[name], shape.na)
            rows = check_job(pg, shape, name, counts)
            res.add(shape.key, name, ms, sched)
            log(f"{shape.key} rep {rep + 1}/{reps} {name}: {fmt(ms)} ms")
    return rows


def measure_big(pg, na, cascade, reps, library, tmp, res, timeout_s):
    """Purge one 5-million-row family: uproot on both schemas, native cascade, the CTE; the backend's
    memory sampled throughout. A method still running after timeout_s is cancelled, recorded as
    taking at least that long, and not run again."""
    build_template(pg, na, library)
    build_template(pg, cascade, library)
    cases = big_cases(na, cascade)
    res.start(na.key, list(cases))
    want = na.rows_without(1)
    for rep in range(reps):
        order = list(cases)[rep % len(cases):] + list(cases)[:rep % len(cases)]
        for name in order:
            if (na.key, name) in res.timed_out:
                continue
            statement, shape, schema = cases[name]
            clone(pg, shape)
            try:
                ms, sched, counts, mem = time_statement(pg, statement, schema, memory=tmp, timeout_s=timeout_s)
            except TimedOut as e:
                res.timed_out.add((na.key, name))
                res.add(na.key, name, timeout_s * 1000.0, None, e.mem)
                log(f"{na.key} rep {rep + 1}/{reps} {name}: cancelled after {timeout_s} s, peak private memory "
                    f"{mb(e.mem['peak'].get('RssAnon', 0))} ({e.mem['samples']} samples); not run again")
                continue
            check_counts(shape, name, counts, want)
            res.add(na.key, name, ms, sched, mem)
            log(f"{na.key} rep {rep + 1}/{reps} {name}: {fmt(ms)} ms, peak private memory "
                f"{mb(mem['peak'].get('RssAnon', 0))} ({mem['samples']} samples), VmHWM {mb(mem['after'].get('VmHWM', 0))}")


def selected(args):
    names = [n for n in args.shapes.split(",") if n] if args.shapes else list(DEFAULT_SHAPES)
    if args.big and "big" not in names:
        names.append("big")
    layouts = [x for x in args.layouts.split(",") if x]
    for n in names:
        if n not in SHAPES:
            sys.exit(f"unknown shape {n!r}: choose from {', '.join(SHAPES)}")
    for x in layouts:
        if x not in LAYOUTS:
            sys.exit(f"unknown layout {x!r}: choose from {', '.join(LAYOUTS)}")
    return names, layouts


def measure(args, pg):
    reps = args.reps or (1 if args.quick else 5)
    big_reps = args.big_reps or (1 if args.quick else 3)
    names, layouts = selected(args)
    settings = pg.psql("postgres", """
        SELECT name || ' = ' || current_setting(name) FROM pg_settings
         WHERE name IN ('shared_buffers', 'synchronous_commit', 'fsync', 'full_page_writes', 'wal_level',
                        'max_wal_size', 'work_mem', 'jit', 'autovacuum', 'random_page_cost')
         ORDER BY name;""").split("\n")
    version = pg.value("postgres", "SHOW server_version")
    pkglibdir = subprocess.run([os.path.join(args.pgbin, "pg_config"), "--pkglibdir"],
                               capture_output=True, text=True, check=True).stdout.strip()
    st = os.stat(args.library.replace("$libdir", pkglibdir) + ".so")
    load_before = os.getloadavg()
    header = [
        f"- Command: `{args.command}`; started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; "
        f"{reps} repetition(s){f', {big_reps} for the big family' if 'big' in names else ''}, medians reported.",
        f"- Shapes: {', '.join(names)}; layouts: {', '.join(layouts)}{'; quick (10x less data)' if args.quick else ''}.",
        f"- Machine: {os.cpu_count()} CPUs ({platform.machine()}), {platform.system()} {platform.release()}; "
        f"load average at start {load_before[0]:.2f}.",
        f"- PostgreSQL {version}; pg_uproot {git_describe()}, library {st.st_size / 1e6:.1f} MB "
        f"({'installed in ' + pkglibdir if '$libdir' in args.library else 'a copy of target/release'}, "
        f"built {time.strftime('%Y-%m-%d %H:%M', time.localtime(st.st_mtime))}).",
        "- Settings: " + "; ".join(s for s in settings if s) + ".",
    ]
    log("\n".join(header))

    res, moved, main, jobs, bigs, job_rows = Results(), {}, [], [], [], {}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        for name in names:
            for layout in layouts:
                if name == "jobs":
                    js = job_shape(args.quick, layout)
                    jobs.append(js)
                    job_rows[js.key] = measure_jobs(pg, js, reps, args.library, res)
                elif name == "big":
                    na, cascade = big_shapes(args.quick, layout)
                    bigs.append((na, cascade))
                    measure_big(pg, na, cascade, big_reps, args.library, tmp, res, args.big_timeout)
                else:
                    s = next(x for x in shapes(args.quick, layout) if x.name == name)
                    main.append(s)
                    measure_shape(pg, s, reps, args.library, tmp, res, moved)
        pg.psql("postgres", f"DROP DATABASE IF EXISTS {RUN_DB} WITH (FORCE);")

    header.append(f"- Load average at end {os.getloadavg()[0]:.2f}; finished {time.strftime('%H:%M:%S')} "
                  f"({(time.time() - t0) / 60:.0f} min).")
    lines = ["# pg_uproot benchmark: latest run", ""] + header + [""]
    if main:
        lines += targets_report(res, main)
        lines += medians_report(res, main)
    lines += big_report(res, bigs)
    if main:
        lines += restore_report(res, main, moved)
        for s in main:
            lines += shape_report(res, s, transactions_for(s))
    for js in jobs:
        lines += job_report(res, js, job_rows[js.key])
    text = "\n".join(lines)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    print(text)
    log(f"written to {args.out}")


def explain(args, pg):
    """Runs on the templates a measuring run left behind, on a cluster with pg_stat_statements."""
    names, layouts = selected(args)
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        for layout in layouts:
            todo = [s for s in shapes(args.quick, layout) if s.name in names]
            todo += [job_shape(args.quick, layout)] if "jobs" in names else []
            for s in todo:
                if pg.value("postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{s.template}'") != "1":
                    sys.exit(f"no template {s.template}: run the measurements first")
                explain_shape(pg, s, os.path.join(os.path.dirname(args.out), f"explain-{s.name}-{layout}.txt"),
                              transactions_for(s), tmp)
        pg.psql("postgres", f"DROP DATABASE IF EXISTS {RUN_DB} WITH (FORCE);")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pgbin", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="/tmp")
    ap.add_argument("--library", required=True, help="pg_uproot library the functions load (no .so suffix)")
    ap.add_argument("--explain", action="store_true",
                    help="instead of measuring, write plans and statement statistics to results/explain-*.txt "
                         "(needs the templates of a measuring run and pg_stat_statements preloaded)")
    ap.add_argument("--quick", action="store_true", help="10x less data, 1 repetition: a smoke test")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 5, or 1 with --quick)")
    ap.add_argument("--big", action="store_true", help="also purge a 5-million-row family (about 3 GB of templates)")
    ap.add_argument("--big-reps", type=int, default=None, help="repetitions of the big family (default 3, 1 with --quick)")
    ap.add_argument("--big-timeout", type=int, default=600,
                    help="seconds after which a big-family purge is cancelled, reported as at least that long, "
                         "and not repeated (default 600)")
    ap.add_argument("--shapes", default=None,
                    help=f"comma-separated, from {', '.join(SHAPES)} (default: {','.join(DEFAULT_SHAPES)}, plus big with --big)")
    ap.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated: clustered, spread (default both)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "latest.md"))
    ap.add_argument("--command", default="bench/run.sh", help="the command line, for the report")
    args = ap.parse_args()
    pg = PG(args.pgbin, args.port, args.host)
    if args.explain:
        explain(args, pg)
    else:
        measure(args, pg)


if __name__ == "__main__":
    main()
