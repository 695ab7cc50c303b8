#!/usr/bin/env python3
"""pg_uproot benchmark driver (Python 3 stdlib only). bench/run.sh starts the cluster and calls this.

For each shape it builds one template database holding a NO ACTION schema and its CASCADE twin
(same rows), then for every measurement clones the template fresh, prewarms it, checkpoints, and
times one statement inside the server in a fresh psql session (autocommit: the statement commits).
Single-family latency comes from pgbench. Bulk archives are checked against the archive tables and
then restored (timed) on the same clone. A third, simpler shape times a job archiving every family in
short transactions against one big archive_where. Reports medians and uproot/native ratios.
"""

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

RUN_DB = "bench_run"
PREDICATE = "id % 10 = 0"  # every 10th root: 10% of the families, spread over the tables


class Table:
    def __init__(self, name, parent=None, fanout=0):
        self.name, self.parent, self.fanout = name, parent, fanout

    @property
    def fk_col(self):
        """orders.customer_id references customers.id."""
        if not self.parent:
            return None
        return f"{self.parent[:-1] if self.parent.endswith('s') else self.parent}_id"

    @property
    def columns(self):
        return ["id"] + ([self.fk_col] if self.parent else []) + ["payload", "created_at"]


class Shape:
    def __init__(self, name, roots, tables, twin=True):
        self.name, self.roots, self.tables, self.twin = name, roots, tables, twin
        self.na, self.cascade = f"{name}_na", f"{name}_cascade"
        self.template = f"bench_{name}"

    def schemas(self):
        return [self.na, self.cascade] if self.twin else [self.na]

    def rows(self):
        """Row count per table: the root count times the fan-outs down the path."""
        n = {}
        for t in self.tables:
            n[t.name] = self.roots if t.parent is None else n[t.parent] * t.fanout
        return n


def shapes(quick):
    deep = Shape("deep", 200 if quick else 2000, [
        Table("customers"),
        Table("orders", "customers", 10),
        Table("items", "orders", 10),
        Table("events", "items", 5),
    ])
    wide = [Table("customers")]
    wide += [Table(f"child_{i:02}", "customers", 5) for i in range(1, 13)]
    wide += [Table("grand_01", "child_01", 2), Table("grand_02", "child_02", 2)]
    return [deep, Shape("wide", 1000 if quick else 10000, wide)]


# The jobs entry (issue 4): a simple shape, so that 100,000 families are quick to generate.
JOB_NAME = "bench_job"
JOB_BATCH = 500
JOB_PREDICATE = "created_at < '2021-01-01'"  # every root: the generator's roots are all in 2020


def job_shape(quick):
    return Shape("jobs", 10000 if quick else 100000,
                 [Table("customers"), Table("orders", "customers", 3)], twin=False)


class PG:
    def __init__(self, pgbin, port, host):
        self.pgbin, self.port, self.host = pgbin, str(port), host

    def conn(self, db):
        return ["-h", self.host, "-p", self.port, "-U", "postgres", "-d", db]

    def psql(self, db, sql, extra=()):
        cmd = [os.path.join(self.pgbin, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", *extra, *self.conn(db)]
        p = subprocess.run(cmd, input=sql, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"psql failed on {db}:\n{sql[:2000]}\n--- stderr ---\n{p.stderr}")
        return p.stdout

    def value(self, db, sql):
        return self.psql(db, sql).strip()


# ---------------------------------------------------------------------------------------------
# Data


def ddl(shape, schema, cascade, data_from=None):
    """Create one schema's tables, fill them (generated, or copied from the twin), then add keys,
    FK indexes and FKs (after the load: faster, and the same end state)."""
    rows = shape.rows()
    out = [f"CREATE SCHEMA {schema};"]
    for t in shape.tables:
        parent_col = f"{t.fk_col} bigint NOT NULL, " if t.parent else ""
        out.append(f"CREATE TABLE {schema}.{t.name} (id bigint NOT NULL, {parent_col}"
                   f"payload text NOT NULL, created_at timestamptz NOT NULL);")
        if data_from:
            out.append(f"INSERT INTO {schema}.{t.name} SELECT * FROM {data_from}.{t.name} ORDER BY id;")
        elif t.parent is None:
            out.append(f"INSERT INTO {schema}.{t.name} SELECT g, md5(g::text), "
                       f"'2020-01-01'::timestamptz + g * interval '1 minute' "
                       f"FROM generate_series(1, {rows[t.name]}) g;")
        else:
            # Rows arrive over time, so one family's rows are spread across the table:
            # child g belongs to parent ((g - 1) % parents) + 1.
            out.append(f"INSERT INTO {schema}.{t.name} SELECT g, (g - 1) % {rows[t.parent]} + 1, md5(g::text), "
                       f"'2020-01-01'::timestamptz + g * interval '1 second' "
                       f"FROM generate_series(1, {rows[t.name]}) g;")
    action = " ON DELETE CASCADE" if cascade else ""
    for t in shape.tables:
        out.append(f"ALTER TABLE {schema}.{t.name} ADD PRIMARY KEY (id);")
    for t in shape.tables:
        if t.parent:
            out.append(f"CREATE INDEX ON {schema}.{t.name} ({t.fk_col});")
            out.append(f"ALTER TABLE {schema}.{t.name} ADD FOREIGN KEY ({t.fk_col}) "
                       f"REFERENCES {schema}.{t.parent} (id){action};")
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
        ddl(shape, shape.na, cascade=False),
    ]
    if shape.twin:
        setup.append(ddl(shape, shape.cascade, cascade=True, data_from=shape.na))
    root = shape.tables[0].name
    # archive tables exist before any measurement, so that creating them is never timed
    setup += [f"SELECT count(*) FROM uproot.prepare_archive('{s}.{root}');" for s in shape.schemas()]
    if not shape.twin:
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
    size = pg.value(shape.template, f"SELECT pg_size_pretty(pg_database_size('{shape.template}'))")
    log(f"template {shape.template}: {shape.rows()} rows per table per schema, {size}, "
        f"built in {time.time() - t0:.0f} s")


def archive_table(schema, table):
    """The archive table prepare_archive creates (names this short are never hashed)."""
    return f'uproot_archive."{schema}.{table}"'


def clone(pg, shape):
    """A fresh copy of the template, its relations in shared buffers, no dirty buffers."""
    pg.psql("postgres", f"DROP DATABASE IF EXISTS {RUN_DB} WITH (FORCE);\n"
                        f"CREATE DATABASE {RUN_DB} TEMPLATE {shape.template} STRATEGY FILE_COPY;")
    pg.psql(RUN_DB, f"""
        SELECT sum(pg_prewarm(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('{shape.na}', '{shape.cascade}', 'uproot_archive', 'uproot') AND c.relkind IN ('r', 'i');
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


def cte_statement(shape, schema):
    """The best hand-written purge: one data-modifying CTE, parents first, children joined to the
    parents' RETURNING rows. NO ACTION checks run at the end of the statement, after all deletes."""
    ctes = [f"d_{shape.tables[0].name} AS (DELETE FROM {schema}.{shape.tables[0].name} WHERE {PREDICATE} RETURNING id)"]
    for t in shape.tables[1:]:
        ctes.append(f"d_{t.name} AS (DELETE FROM {schema}.{t.name} x USING d_{t.parent} p "
                    f"WHERE x.{t.fk_col} = p.id RETURNING x.id)")
    counts = ", ".join(f"(SELECT count(*) FROM d_{t.name})" for t in shape.tables)
    return "WITH " + ",\n     ".join(ctes) + f"\nSELECT {counts}"


def archive_cte_statement(shape, schema):
    """The hand-written archive: the purge CTE above, with every DELETE ... RETURNING * feeding an
    INSERT into the table's archive table (the one uproot uses, batch 0), all in one statement."""
    first = shape.tables[0]
    ctes = [f"d_{first.name} AS (DELETE FROM {schema}.{first.name} WHERE {PREDICATE} RETURNING *)"]
    for t in shape.tables[1:]:
        ctes.append(f"d_{t.name} AS (DELETE FROM {schema}.{t.name} x USING d_{t.parent} p "
                    f"WHERE x.{t.fk_col} = p.id RETURNING x.*)")
    for t in shape.tables:
        cols = ", ".join(t.columns)
        ctes.append(f"a_{t.name} AS (INSERT INTO {archive_table(schema, t.name)} ({cols}, _uproot_batch) "
                    f"SELECT {cols}, 0 FROM d_{t.name} RETURNING 1)")
    counts = ", ".join(f"(SELECT count(*) FROM a_{t.name})" for t in shape.tables)
    return "WITH " + ",\n     ".join(ctes) + f"\nSELECT {counts}"


def bulk_cases(shape):
    """name -> (statement, schema it changes, whether it changes rows)."""
    root = shape.tables[0].name
    return {
        "uproot_na": (f"SELECT * FROM uproot.purge_where('{shape.na}.{root}', '{PREDICATE}')", shape.na, True),
        "native_cascade": (f"DELETE FROM {shape.cascade}.{root} WHERE {PREDICATE}", shape.cascade, True),
        "uproot_cascade": (f"SELECT * FROM uproot.purge_where('{shape.cascade}.{root}', '{PREDICATE}')", shape.cascade, True),
        "cte_na": (cte_statement(shape, shape.na), shape.na, True),
        "preview_na": (f"SELECT * FROM uproot.preview_where('{shape.na}.{root}', '{PREDICATE}')", shape.na, False),
        "preview_cascade": (f"SELECT * FROM uproot.preview_where('{shape.cascade}.{root}', '{PREDICATE}')", shape.cascade, False),
        # archives are checked against the archive tables too; uproot's are then restored (timed)
        "archive_na": (f"SELECT * FROM uproot.archive_where('{shape.na}.{root}', '{PREDICATE}')", shape.na, True),
        "archive_cascade": (f"SELECT * FROM uproot.archive_where('{shape.cascade}.{root}', '{PREDICATE}')", shape.cascade, True),
        "archive_cte_na": (archive_cte_statement(shape, shape.na), shape.na, True),
    }


# archive case -> the restore measured right after it, on the same clone
RESTORES = {"archive_na": "restore_na", "archive_cascade": "restore_cascade"}


def job_cases(shape):
    """name -> statement, on the jobs shape. Both archive every family (JOB_PREDICATE)."""
    root = shape.tables[0].name
    return {
        "job": f"CALL uproot.run_job('{JOB_NAME}')",
        "archive_all": f"SELECT * FROM uproot.archive_where('{shape.na}.{root}', $p${JOB_PREDICATE}$p$)",
    }


def single_cases(shape):
    """name -> (pgbench script, schema). Keys come from a sequence: each family is purged once."""
    root = shape.tables[0].name
    key = "(SELECT nextval('public.family_ids'))"
    return {
        "pgbench_uproot_na": (f"SELECT * FROM uproot.purge('{shape.na}.{root}', {key});", shape.na),
        "pgbench_native_cascade": (f"DELETE FROM {shape.cascade}.{root} WHERE id = {key};", shape.cascade),
        "pgbench_uproot_cascade": (f"SELECT * FROM uproot.purge('{shape.cascade}.{root}', {key});", shape.cascade),
    }


SCHEDSTAT = "string_to_array(btrim(pg_read_file('/proc/self/schedstat'), E' \\n'), ' ')::bigint[]"


def time_statement(pg, statement, schema):
    """Wall time inside the server, from just before the statement to just after its commit; and
    the backend's own CPU time and run-queue wait over the same span (Linux schedstat), which
    show how much of the wall time other load on the machine took."""
    cpu = os.path.exists("/proc/self/schedstat")
    before = f"SELECT {SCHEDSTAT} AS s0 \\gset" if cpu else ""
    after = (f"SELECT 'CPU|' || (s[1] - (:'s0'::bigint[])[1]) / 1e6 || '|' || (s[2] - (:'s0'::bigint[])[2]) / 1e6 "
             f"FROM (SELECT {SCHEDSTAT} AS s) x;") if cpu else ""
    out = pg.psql(RUN_DB, f"""
SET client_min_messages = warning;
{before}
SELECT clock_timestamp() AS t0 \\gset
\\o /dev/null
{statement};
\\o
SELECT 'MS|' || extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000;
{after}
{counts_sql(schema)}""")
    ms = float(re.search(r"^MS\|([\d.]+)$", out, re.M).group(1))
    m = re.search(r"^CPU\|([\d.]+)\|([\d.]+)$", out, re.M)
    return ms, (float(m.group(1)), float(m.group(2))) if m else None, parse_counts(out)


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
# Checks: every method must leave the same rows behind, and preview must change nothing


def check_counts(shape, name, changes, counts, expected_after):
    before = shape.rows()
    if set(counts) != set(before):
        sys.exit(f"{shape.name}/{name}: tables {sorted(counts)} differ from {sorted(before)}")
    if not changes:
        if counts != before:
            sys.exit(f"{shape.name}/{name}: preview changed rows: {counts} != {before}")
        return
    if any(counts[t] >= before[t] for t in before):
        sys.exit(f"{shape.name}/{name}: some table lost no rows: {counts} (before {before})")
    if expected_after.setdefault(shape.name, counts) != counts:
        sys.exit(f"{shape.name}/{name}: rows left {counts} differ from another method's {expected_after[shape.name]}")


def content_ok(shape, t, alias):
    """The row holds exactly what the generator wrote for its id (see ddl)."""
    rows = shape.rows()
    if t.parent is None:
        cond = f"{alias}.created_at = '2020-01-01'::timestamptz + {alias}.id * interval '1 minute'"
    else:
        cond = (f"{alias}.{t.fk_col} = ({alias}.id - 1) % {rows[t.parent]} + 1 AND "
                f"{alias}.created_at = '2020-01-01'::timestamptz + {alias}.id * interval '1 second'")
    return f"({alias}.payload = md5({alias}.id::text) AND {cond})"


def archive_check_sql(shape, schema, predicate):
    """Per table: archived rows, distinct ids, rows not as generated, rows still live too, archived
    children whose parent is not archived, archived roots not matching the predicate."""
    out = []
    for t in shape.tables:
        a = archive_table(schema, t.name)
        orphans = (f"(SELECT count(*) FROM {a} a WHERE NOT EXISTS (SELECT 1 FROM {archive_table(schema, t.parent)} p "
                   f"WHERE p.id = a.{t.fk_col}))") if t.parent else "0"
        off = f"count(*) FILTER (WHERE ({predicate}) IS NOT TRUE)" if t.parent is None else "0"
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
            sys.exit(f"{shape.name}/{name}: archive of {t}: {archived} rows ({distinct} distinct ids, {bad} not as "
                     f"generated, {live} still live, {orphans} without their parent, {off} roots off the predicate); "
                     f"{gone} rows left the table")
    if len(re.findall(r"^ARCH\|", out, re.M)) != len(shape.tables):
        sys.exit(f"{shape.name}/{name}: archive check gave {out!r}")
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
        sys.exit(f"{shape.name}/{name}: after restore (rows, not as generated, still archived) {got}, "
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
    root = shape.tables[0].name
    bulk, single = bulk_cases(shape), single_cases(shape)
    parts = []

    def section(title, sql):
        clone(pg, shape)
        t0 = time.time()
        parts.append(f"\n{'=' * 100}\n== {title}\n{'=' * 100}\n{sql.strip()}\n{'-' * 100}\n"
                     + psql_all(pg, RUN_DB, sql))
        log(f"explain {shape.name}: {title} ({time.time() - t0:.0f} s)")

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
        log(f"explain {shape.name}: {title}")

    if not shape.twin:
        # the jobs shape: where a job's time goes, next to one big archive_where
        for name, statement in job_cases(shape).items():
            stats_section(f"jobs: {name} (pg_stat_statements)", statement=statement)
        section("jobs: one batch of archive_where (auto_explain of uproot's statements)",
                AUTO_EXPLAIN.format(min_ms=0) + f"\\timing on\nSELECT * FROM uproot.archive_where("
                f"'{shape.na}.{root}', $p${JOB_PREDICATE}$p$, {JOB_BATCH});")
        write_explain(path, shape, parts)
        return

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
    for schema, kind in ((shape.na, "uproot"), (shape.cascade, "uproot"), (shape.cascade, "native")):
        if kind == "uproot":
            call = lambda k: f"SELECT count(*) FROM uproot.purge('{schema}.{root}', {k}::bigint);"
            warm = "\n".join(call(k) for k in (1, 2, 3))
            sql = f"{warm}\n{AUTO_EXPLAIN.format(min_ms=0)}\\timing on\n{call(4)}"
        else:
            warm = "\n".join(f"DELETE FROM {schema}.{root} WHERE id = {k};" for k in (1, 2, 3))
            sql = f"{warm}\n\\timing on\nEXPLAIN (ANALYZE, BUFFERS) DELETE FROM {schema}.{root} WHERE id = 4;"
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
        f.write(f"pg_uproot benchmark: plans and trigger times, shape {shape.name}, rows {shape.rows()}\n")
        f.write("".join(parts))
    log(f"written to {path}")


# ---------------------------------------------------------------------------------------------
# Report


def git_describe():
    p = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.abspath(__file__)))
    return f"commit {p.stdout.strip()}" if p.returncode == 0 else "(no git)"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def median(xs):
    return statistics.median(xs)


def fmt(x):
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:.0f}"


def spread(xs):
    """Max-min relative to the median: the run's own noise."""
    m = median(xs)
    return f"±{(max(xs) - min(xs)) / 2 / m * 100:.0f}%" if len(xs) > 1 and m else "n/a"


TARGETS = [
    # label, numerator, denominator, limit
    ("bulk purge, NO ACTION schema vs native cascade on the twin", "uproot_na", "native_cascade", 1.5),
    ("bulk purge, CASCADE schema vs native on the same schema", "uproot_cascade", "native_cascade", 1.1),
    ("single family, NO ACTION schema vs native cascade on the twin", "pgbench_uproot_na", "pgbench_native_cascade", 1.6),
    ("single family, CASCADE schema vs native on the same schema", "pgbench_uproot_cascade", "pgbench_native_cascade", 1.1),
    ("preview vs purge, NO ACTION schema", "preview_na", "uproot_na", 0.5),
    ("preview vs purge, CASCADE schema", "preview_cascade", "uproot_cascade", 0.5),
    ("bulk archive, NO ACTION schema vs native cascade purge on the twin", "archive_na", "native_cascade", 2.5),
    ("bulk archive, CASCADE schema vs native cascade purge on the same schema", "archive_cascade", "native_cascade", 2.5),
]
REFERENCE = [
    ("hand-written CTE, NO ACTION schema vs native cascade on the twin", "cte_na", "native_cascade"),
    ("hand-written archive CTE, NO ACTION schema vs native cascade purge on the twin", "archive_cte_na", "native_cascade"),
    ("restore vs the archive before it, NO ACTION schema", "restore_na", "archive_na"),
    ("restore vs the archive before it, CASCADE schema", "restore_cascade", "archive_cascade"),
]

DESCRIPTIONS = {
    "uproot_na": "`uproot.purge_where` on the NO ACTION schema",
    "native_cascade": "native `DELETE` on the CASCADE schema",
    "uproot_cascade": "`uproot.purge_where` on the CASCADE schema",
    "cte_na": "hand-written data-modifying CTE on the NO ACTION schema",
    "preview_na": "`uproot.preview_where` on the NO ACTION schema",
    "preview_cascade": "`uproot.preview_where` on the CASCADE schema",
    "pgbench_uproot_na": "`uproot.purge` of one family, NO ACTION schema (pgbench mean latency)",
    "pgbench_native_cascade": "native `DELETE` of one family, CASCADE schema (pgbench mean latency)",
    "pgbench_uproot_cascade": "`uproot.purge` of one family, CASCADE schema (pgbench mean latency)",
    "archive_na": "`uproot.archive_where` on the NO ACTION schema",
    "archive_cascade": "`uproot.archive_where` on the CASCADE schema",
    "archive_cte_na": "hand-written archive CTE (DELETE … RETURNING into INSERT) on the NO ACTION schema",
    "restore_na": "`uproot.restore` of the NO ACTION schema's batch",
    "restore_cascade": "`uproot.restore` of the CASCADE schema's batch",
    "job": f"`CALL uproot.run_job`: batches of {JOB_BATCH} families, a commit after each",
    "archive_all": "`uproot.archive_where` of the same families in one statement",
}


def ratio_range(xs, ys):
    pairs = [x / y for x, y in zip(xs, ys)]
    return f"{min(pairs):.2f}–{max(pairs):.2f}" if len(pairs) > 1 else "–"


def restore_report(results, shapes_, moved):
    lines = ["## Restore", "",
             "`uproot.restore(batch_id)` of the batch the bulk archive just wrote, on the same clone, after a "
             "`CHECKPOINT`; in a fresh session, timed like the others.", "",
             "| shape | schema | rows | restore ms | rows/s | archive ms | restore / archive | per-rep ratios |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for s in shapes_:
        r = results[s.name]
        for arch, rest, label in (("archive_na", "restore_na", "NO ACTION"), ("archive_cascade", "restore_cascade", "CASCADE")):
            a, b = median(r[rest]), median(r[arch])
            lines.append(f"| {s.name} | {label} | {moved[s.name]:,} | {fmt(a)} | {moved[s.name] / a * 1000:,.0f} | "
                         f"{fmt(b)} | {a / b:.2f} | {ratio_range(r[rest], r[arch])} |")
    return lines + [""]


def job_report(job_results, cpu, wait, shape):
    r, rows = job_results
    batches = shape.roots // JOB_BATCH
    rs = shape.rows()
    lines = [f"## Jobs: {shape.roots:,} families in batches of {JOB_BATCH}", "",
             f"Shape `{shape.name}`: {', '.join(f'{t}={n:,}' for t, n in rs.items())} (NO ACTION FK, indexed). "
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
    return "\n".join(lines)


def report(results, cpu, wait, header, shapes_, families, transactions, moved):
    lines = ["# pg_uproot benchmark: latest run", ""] + header + [""]
    lines += ["## Targets", "",
              "Ratio of medians of wall time, uproot / native (the target). Also: the range of the "
              "ratios within each repetition, and the ratio of medians of the backend's CPU time "
              "(bulk only), which other load on the machine disturbs less.", "",
              "| shape | comparison | measured ms | baseline ms | ratio | per-rep ratios | CPU ratio | target | result |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|"]

    def row(s, label, num, den, limit):
        r, c = results[s.name], cpu.get(s.name, {})
        a, b = median(r[num]), median(r[den])
        pairs = [x / y for x, y in zip(r[num], r[den])]
        rng = f"{min(pairs):.2f}–{max(pairs):.2f}" if len(pairs) > 1 else "–"
        cr = f"{median(c[num]) / median(c[den]):.2f}" if num in c and den in c else "–"
        if limit is None:
            verdict, target = "reference", "–"
        else:
            verdict = "PASS" if a / b <= limit else f"MISS (by {a / b / limit:.2f}x)"
            target = f"≤ {limit}"
        lines.append(f"| {s.name} | {label} | {fmt(a)} | {fmt(b)} | {a / b:.2f} | {rng} | {cr} | {target} | {verdict} |")

    for s in shapes_:
        for label, num, den, limit in TARGETS:
            row(s, label, num, den, limit)
        for label, num, den in REFERENCE:
            row(s, label, num, den, None)
    lines.append("")
    lines += restore_report(results, shapes_, moved)
    for s in shapes_:
        r, c, w = results[s.name], cpu.get(s.name, {}), wait.get(s.name, {})
        rows = s.rows()
        lines += [f"## Shape `{s.name}`: all measurements (ms)", "",
                  f"Tables (rows per schema): {', '.join(f'{t}={n:,}' for t, n in rows.items())}. "
                  f"Bulk: `{PREDICATE}` on the root = {families[s.name]:,} families. "
                  f"Single family: {transactions[s.name]} transactions, one family each.", "",
                  "| measurement | median | per repetition | spread | CPU (median) | run-queue wait (median) |",
                  "|---|---:|---|---:|---:|---:|"]
        for name, xs in r.items():
            cm = fmt(median(c[name])) if name in c else "–"
            wm = fmt(median(w[name])) if name in w else "–"
            lines.append(f"| {DESCRIPTIONS[name]} | {fmt(median(xs))} | {', '.join(fmt(x) for x in xs)} | "
                         f"{spread(xs)} | {cm} | {wm} |")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def transactions_for(shape):
    return min(300, shape.roots // 2)


def measure(args, pg):
    reps = args.reps or (1 if args.quick else 5)
    settings = pg.psql("postgres", """
        SELECT name || ' = ' || current_setting(name) FROM pg_settings
         WHERE name IN ('shared_buffers', 'synchronous_commit', 'fsync', 'full_page_writes', 'wal_level',
                        'max_wal_size', 'work_mem', 'jit', 'autovacuum', 'random_page_cost')
         ORDER BY name;""").split("\n")
    version = pg.value("postgres", "SHOW server_version")
    st = os.stat(args.library + ".so")
    load_before = os.getloadavg()
    header = [
        f"- Command: `{args.command}`; started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; "
        f"{reps} repetition(s), medians reported.",
        f"- Machine: {os.cpu_count()} CPUs ({platform.machine()}), {platform.system()} {platform.release()}; "
        f"load average at start {load_before[0]:.2f}.",
        f"- PostgreSQL {version}; pg_uproot {git_describe()}, library {st.st_size / 1e6:.1f} MB "
        f"(a copy of target/release, built {time.strftime('%Y-%m-%d %H:%M', time.localtime(st.st_mtime))}).",
        "- Settings: " + "; ".join(s for s in settings if s) + ".",
    ]
    log("\n".join(header))

    shapes_ = shapes(args.quick)
    results, expected_after, families, transactions, cpu, wait, moved = {}, {}, {}, {}, {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        for s in shapes_:
            build_template(pg, s, args.library)
            families[s.name] = s.roots // 10
            transactions[s.name] = transactions_for(s)
            bulk, single = bulk_cases(s), single_cases(s)
            tasks = list(bulk) + list(single)
            r = {name: [] for name in tasks + list(RESTORES.values())}
            for rep in range(reps):
                # rotate the order each repetition so that drift on the machine spreads evenly
                order = tasks[rep % len(tasks):] + tasks[:rep % len(tasks)]
                for name in order:
                    clone(pg, s)
                    if name in bulk:
                        statement, schema, changes = bulk[name]
                        ms, sched, counts = time_statement(pg, statement, schema)
                        check_counts(s, name, changes, counts, expected_after)
                        keep_sched(cpu, wait, s.name, name, sched)
                        if name.startswith("archive"):
                            moved[s.name] = check_archive(pg, s, name, schema, PREDICATE, counts)
                    else:
                        script, schema = single[name]
                        ms = run_pgbench(pg, script, transactions[s.name], tmp)
                        left = parse_counts(pg.psql(RUN_DB, counts_sql(schema)))
                        if left[s.tables[0].name] != s.roots - transactions[s.name]:
                            sys.exit(f"{s.name}/{name}: {left} after {transactions[s.name]} single purges")
                    r[name].append(ms)
                    log(f"{s.name} rep {rep + 1}/{reps} {name}: {fmt(ms)} ms")
                    if name in RESTORES:
                        restore = RESTORES[name]
                        ms, sched = time_restore(pg, s, name, schema)
                        keep_sched(cpu, wait, s.name, restore, sched)
                        r[restore].append(ms)
                        log(f"{s.name} rep {rep + 1}/{reps} {restore}: {fmt(ms)} ms")
            results[s.name] = r
        js = job_shape(args.quick)
        job_results = measure_jobs(pg, js, reps, args.library, cpu, wait)
        pg.psql("postgres", f"DROP DATABASE IF EXISTS {RUN_DB} WITH (FORCE);")

    header.append(f"- Load average at end {os.getloadavg()[0]:.2f}; finished {time.strftime('%H:%M:%S')}.")
    text = report(results, cpu, wait, header, shapes_, families, transactions, moved)
    text += "\n" + job_report(job_results, cpu.get(js.name, {}), wait.get(js.name, {}), js)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    print(text)
    log(f"written to {args.out}")


def keep_sched(cpu, wait, shape, name, sched):
    if sched:
        cpu.setdefault(shape, {}).setdefault(name, []).append(sched[0])
        wait.setdefault(shape, {}).setdefault(name, []).append(sched[1])


def time_restore(pg, shape, archived_by, schema):
    """Restore the one batch the archive just wrote, on the same clone, and check the result."""
    batch, n = pg.value(RUN_DB, "SELECT max(id) || '|' || count(*) FROM uproot.batches").split("|")
    if n != "1":
        sys.exit(f"{shape.name}/{archived_by}: {n} batches in the ledger, expected 1")
    pg.psql(RUN_DB, "CHECKPOINT;")  # the archive's dirty buffers are not restore's to write
    ms, sched, _ = time_statement(pg, f"SELECT * FROM uproot.restore({batch})", schema)
    check_restored(pg, shape, RESTORES[archived_by], schema, batch)
    return ms, sched


def check_job(pg, shape, name, counts):
    """Everything archived, in whole batches, and (for the job) a run log that says so."""
    if any(counts.values()):
        sys.exit(f"{shape.name}/{name}: rows left after archiving everything: {counts}")
    rows = check_archive(pg, shape, name, shape.na, JOB_PREDICATE, counts)
    batches = shape.roots // JOB_BATCH if name == "job" else 1
    ledger = pg.value(RUN_DB, "SELECT count(*) || '|' || coalesce(sum((counts ->> root::text)::bigint), 0) "
                              "FROM uproot.batches")
    if ledger != f"{batches}|{shape.roots}":
        sys.exit(f"{shape.name}/{name}: ledger (batches|roots) {ledger}, expected {batches}|{shape.roots}")
    if name == "job":
        run = pg.value(RUN_DB, f"SELECT concat_ws('|', stop_reason, batches, roots) FROM uproot.job_runs "
                               f"WHERE job = '{JOB_NAME}'")
        if run != f"done|{batches}|{shape.roots}":
            sys.exit(f"{shape.name}/job: run log (stop_reason|batches|roots) {run!r}, "
                     f"expected 'done|{batches}|{shape.roots}'")
    return rows


def measure_jobs(pg, shape, reps, library, cpu, wait):
    """A job archiving every family in batches of JOB_BATCH (each batch its own transaction),
    against one archive_where of the same families, each on a fresh clone."""
    build_template(pg, shape, library)
    cases = job_cases(shape)
    r = {name: [] for name in cases}
    for rep in range(reps):
        order = list(cases)[rep % len(cases):] + list(cases)[:rep % len(cases)]
        for name in order:
            clone(pg, shape)
            ms, sched, counts = time_statement(pg, cases[name], shape.na)
            rows = check_job(pg, shape, name, counts)
            keep_sched(cpu, wait, shape.name, name, sched)
            r[name].append(ms)
            log(f"{shape.name} rep {rep + 1}/{reps} {name}: {fmt(ms)} ms")
    return r, rows


def explain(args, pg):
    """Runs on the templates a measuring run left behind, on a cluster with pg_stat_statements."""
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        for s in shapes(args.quick) + [job_shape(args.quick)]:
            if pg.value("postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{s.template}'") != "1":
                sys.exit(f"no template {s.template}: run the measurements first")
            explain_shape(pg, s, os.path.join(os.path.dirname(args.out), f"explain-{s.name}.txt"),
                          transactions_for(s), tmp)
        pg.psql("postgres", f"DROP DATABASE IF EXISTS {RUN_DB} WITH (FORCE);")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pgbin", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="/tmp")
    ap.add_argument("--library", required=True, help="pg_uproot library the functions load (no .so suffix)")
    ap.add_argument("--explain", action="store_true",
                    help="instead of measuring, write plans and statement statistics to results/explain-*.txt "
                         "(needs the templates of a measuring run and pg_stat_statements preloaded)")
    ap.add_argument("--quick", action="store_true", help="small data, 1 repetition: a smoke test")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 5, or 1 with --quick)")
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
