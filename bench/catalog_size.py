#!/usr/bin/env python3
"""The first call of a session on a database with many tables: a schema-per-tenant database holds
N copies of the benchmark's `tenant` schema (121 tables, ON DELETE CASCADE keys, 10 families
each). Purging one family of the first copy in a fresh session (every pg_cron run is one) is
timed for pg_uproot and for a native cascading DELETE, each rolled back, first with 1 copy in
the database and then with N. pg_uproot reads the catalog of the root's closure (its own 121
tables), so the second figure should not grow with N.

usage: PSQL="psql -h /tmp -p 5652 -U postgres" python3 bench/catalog_size.py [copies] [reps]
(drops and builds the database bench_catalog: a minute or two for 40 copies)
"""
import copy
import os
import re
import shlex
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

PSQL = shlex.split(os.environ.get("PSQL", "psql"))
DB = "bench_catalog"


def psql(db, sql):
    p = subprocess.run(PSQL + ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db], input=sql,
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"psql failed: {p.stderr[:2000]}")
    return p.stdout


def timed(sql):
    """Wall time of `sql` in a new session, inside the server, rolled back."""
    out = psql(DB, f"BEGIN;\nSELECT clock_timestamp() AS t0 \\gset\n\\o /dev/null\n{sql};\n\\o\n"
                   f"SELECT 'MS|' || extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000;\nROLLBACK;\n")
    return float(re.search(r"^MS\|([\d.]+)$", out, re.M).group(1))


def measure(shape, copies, reps):
    cases = {
        "uproot.purge": f"SELECT * FROM uproot.purge('c1.{shape.root.name}', 1::bigint)",
        "native DELETE": f"DELETE FROM c1.{shape.root.name} WHERE id = 1",
    }
    got = {k: [] for k in cases}
    for _ in range(reps):
        for name, sql in cases.items():
            got[name].append(timed(sql))
    for name, ms in got.items():
        print(f"| {copies} | {copies * len(shape.tables):,} | {name} | {statistics.median(ms):.1f} | "
              f"{', '.join(f'{x:.1f}' for x in ms)} |")


def main():
    copies = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    tenant = next(s for s in bench.shapes(False, "clustered") if s.name == "tenant")
    shape = copy.copy(tenant)
    shape.roots = 10
    psql("postgres", f"DROP DATABASE IF EXISTS {DB};\nCREATE DATABASE {DB};")
    psql(DB, "CREATE EXTENSION pg_uproot;\n" + bench.ddl(shape, "c1", cascade=True) + "\nVACUUM ANALYZE;")
    print("| copies of `tenant` | tables | first call in a new session | median ms | per repetition |")
    print("|---:|---:|---|---:|---|")
    measure(shape, 1, reps)
    for i in range(2, copies + 1):
        psql(DB, bench.ddl(shape, f"c{i}", cascade=True))
    psql(DB, "VACUUM ANALYZE;")
    measure(shape, copies, reps)


if __name__ == "__main__":
    main()
