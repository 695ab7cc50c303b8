#!/usr/bin/env python3
"""Write sql/pg_uproot--FROM--TO.sql: the hand-written parts (tables, data, grants:
sql/upgrade/A--B.head.sql for each release step from FROM to TO, in order), then every function
of the new version exactly as a fresh install creates it, after dropping the event triggers and
policies that the function sections create and the old version's functions that the new version
does not keep as they are.

A function whose header (name, arguments with their names and defaults, result) is the same in
both versions is replaced in place (CREATE OR REPLACE), never dropped: user objects may depend on
it, such as the triggers that declared relations install on user tables. Any other old function
is dropped and the new one created.

    python3 sql/upgrade/generate.py 0.2.0 0.3.0 sql/upgrade/pg_uproot--0.2.0.sql \
        "$(pg_config --sharedir)/extension/pg_uproot--0.3.0.sql"

Every release gets a direct script from each earlier release, so that an update never runs an
intermediate version's script against the current library (whose C symbols may differ).

OLD_SQL and NEW_SQL are the versions' generated install scripts (cargo pgrx package/install
writes them). pg_test/ops/upgrade.sh proves the result equals a fresh install, object for object.
"""
import os
import re
import sys

old_v, new_v, old_path, new_path = sys.argv[1:5]
out_dir = sys.argv[5] if len(sys.argv) > 5 else "sql"  # upgrade.sh writes elsewhere and compares
old, new = open(old_path).read(), open(new_path).read()
here = "sql/upgrade"
# The release steps FROM -> ... -> TO, found by following the head files.
heads, at = [], old_v
while at != new_v:
    step = [f for f in os.listdir(here) if f.startswith(f"{at}--") and f.endswith(".head.sql")]
    if len(step) != 1:
        sys.exit(f"no single head file {at}--*.head.sql in {here}")
    heads.append(step[0])
    at = step[0][len(at) + 2:-len(".head.sql")]
head = "\n".join(open(f"{here}/{h}").read().rstrip() + "\n" for h in heads)

HEADER = re.compile(r"^CREATE (FUNCTION|PROCEDURE) ([\w.]+)\((.*?)\)(\s*(?:RETURNS\b.*?)?)\s*(?=LANGUAGE|AS\b)",
                    re.M | re.S)


def signature(name, args):
    """The identity of a function: its name and argument types (what DROP FUNCTION needs)."""
    types = []
    for a in re.split(r",(?![^(]*\))", args):
        a = a.strip()
        if not a:
            continue
        a = re.sub(r"\s+DEFAULT\s+.*$", "", a, flags=re.S)
        parts = a.split()
        types.append(" ".join(parts[1:]) if len(parts) > 1 else parts[0])
    return f"{name}({', '.join(types)})"


def headers(sql):
    """signature -> (kind, the whole header with whitespace normalised)"""
    found = {}
    for m in HEADER.finditer(sql):
        kind, name, args, result = m.groups()
        found[signature(name, args)] = (kind, " ".join(f"{name}({args}){result}".split()))
    return found


old_headers, new_headers = headers(old), headers(new)
kept = {sig for sig, h in old_headers.items() if new_headers.get(sig) == h}
drops = [f"DROP {kind} {sig};" for sig, (kind, _) in old_headers.items() if sig not in kept]


def create_or_replace(block):
    """CREATE OR REPLACE for the functions of a block that keep their header."""
    def one(m):
        sig = signature(m.group(2), m.group(3))
        return m.group(0).replace("CREATE ", "CREATE OR REPLACE ", 1) if sig in kept else m.group(0)
    return HEADER.sub(one, block)


# Every statement block of the new script that defines a function (pgrx's connected-object
# blocks), and the function sections of the hand-written SQL files (between markers).
blocks = []
for b in re.findall(r"/\* <begin connected objects> \*/(.*?)/\* </end connected objects> \*/", new, re.S):
    body = "\n".join(l for l in b.strip().splitlines()
                     if not l.startswith("-- src/") and not l.startswith("-- pg_uproot::")).strip()
    if "-- upgrade: functions" in body:
        section = body.split("-- upgrade: functions", 1)[1].split("-- upgrade: end functions", 1)[0]
        # drop the rest of the marker's comment (up to the first line that is not a comment)
        lines = section.split("\n")[1:]
        while lines and lines[0].startswith("--") and "upgrade" in lines[0]:
            lines.pop(0)
        blocks.append(create_or_replace("\n".join(lines).strip()))
    elif re.search(r"^CREATE (FUNCTION|PROCEDURE)", body, re.M) and "CREATE TABLE" not in body:
        blocks.append(create_or_replace(body))

# Objects the copied sections create that depend on functions or would already exist: dropped
# first (IF EXISTS: an older release may not have them), then created again with the sections.
recreated = []
for b in blocks:
    for m in re.finditer(r"^CREATE EVENT TRIGGER (\w+)", b, re.M):
        recreated.append(f"DROP EVENT TRIGGER IF EXISTS {m.group(1)};")
    for m in re.finditer(r"^CREATE POLICY (\w+) ON ([\w.]+)", b, re.M):
        recreated.append(f"DROP POLICY IF EXISTS {m.group(1)} ON {m.group(2)};")

out = [f"-- pg_uproot {old_v} -> {new_v}, run by ALTER EXTENSION pg_uproot UPDATE.",
       "-- Generated by sql/upgrade/generate.py from " + ", ".join(f"sql/upgrade/{h}" for h in heads),
       "-- and the two versions' install scripts; do not edit by hand.", "",
       head.rstrip(), "",
       f"-- The functions of {old_v} that {new_v} changes go; every function of {new_v} is created as a",
       "-- fresh install does (CREATE OR REPLACE where the header is unchanged: user triggers may use it).",
       *recreated, *drops, ""]
out += [b + "\n" for b in blocks]
open(f"{out_dir}/pg_uproot--{old_v}--{new_v}.sql", "w").write("\n".join(out))
print(f"{len(drops)} dropped, {len(kept)} replaced in place, {len(blocks)} blocks")
