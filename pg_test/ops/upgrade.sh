#!/usr/bin/env bash
# Upgrades, from every earlier release: install pg_uproot OLD as released (built from its commit,
# cached), archive, create and run a job, then install this build as a package upgrade would (new
# library and SQL files) and run ALTER EXTENSION pg_uproot UPDATE. Afterwards the old batches restore exactly, the job
# runs, and the upgraded extension is the same, object for object, as a fresh install. Between
# the package upgrade and ALTER EXTENSION UPDATE, calls fail with a clear error.
#
# It runs on a private copy of the PostgreSQL installation (PostgreSQL finds its files relative
# to its binaries), so the system installation is never touched.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=pg_test/ops/lib/cluster.sh
. "$here/lib/cluster.sh"
# shellcheck source=pg_test/ops/lib/release.sh
. "$here/lib/release.sh"

NEW_VERSION=$(sed -nE 's/^version = "(.*)"/\1/p' "$UPROOT_ROOT/Cargo.toml" | head -1)
# Every earlier release and its commit (its sources ship as lib/pg_uproot-VERSION-src.tar.gz).
RELEASES=("0.1.0 d6ae50e07cbeac6ab12e601846fb9565ce3c8a2a"
          "0.2.0 9577e76884672f96677e120aba736f6b903be35e"
          "0.3.0 98e0455e9f731c870446035671ee45d96ac7a959")
sys_bin=$PG_BIN

upgrade_from() {
local OLD_VERSION="$1" OLD_COMMIT="$2"
echo "# upgrade from $OLD_VERSION to $NEW_VERSION"
PG_BIN=$sys_bin
old_pkg=$(build_release "$OLD_COMMIT" "$OLD_VERSION") || fail "could not build pg_uproot $OLD_VERSION"

# A copy of this PostgreSQL under $UPROOT_WORK/root, same absolute layout below it.
sharedir=$("$sys_bin/pg_config" --sharedir)
pkglibdir=$("$sys_bin/pg_config" --pkglibdir)
root="$UPROOT_WORK/root-$OLD_VERSION"
for d in "$(dirname "$sys_bin")" "$sharedir" "$pkglibdir"; do
    mkdir -p "$root$(dirname "$d")"
    [ -e "$root$d" ] || cp -a "$d" "$root$d"
done
PG_BIN="$root$sys_bin"
[ "$("$PG_BIN/pg_config" --sharedir)" = "$root$sharedir" ] || fail "the copy of PostgreSQL did not relocate"
# What this build installed into the system installation: the "new package".
new_files=("$pkglibdir/pg_uproot.so" "$sharedir/extension/pg_uproot.control"
           "$sharedir/extension/pg_uproot--$NEW_VERSION.sql" "$sharedir/extension/pg_uproot--$OLD_VERSION--$NEW_VERSION.sql")
for f in "${new_files[@]}"; do [ -f "$f" ] || fail "this build is not installed: $f missing"; done
# The committed upgrade script is the one the generator makes from this build's install script.
(cd "$UPROOT_ROOT" && python3 sql/upgrade/generate.py "$OLD_VERSION" "$NEW_VERSION" \
    "sql/upgrade/pg_uproot--$OLD_VERSION.sql" "$sharedir/extension/pg_uproot--$NEW_VERSION.sql" "$UPROOT_WORK") >/dev/null
diff -u "$UPROOT_ROOT/sql/pg_uproot--$OLD_VERSION--$NEW_VERSION.sql" "$UPROOT_WORK/pg_uproot--$OLD_VERSION--$NEW_VERSION.sql" \
    || fail "sql/pg_uproot--$OLD_VERSION--$NEW_VERSION.sql is stale: run sql/upgrade/generate.py as its header says"
echo "ok - the committed upgrade script from $OLD_VERSION is what the generator makes"
# Install the old release into the copy: its library, control file (its default_version) and script.
# (the package's paths are those of the installation it was built for: find its files by name)
old_so=$(find "$old_pkg" -name pg_uproot.so | head -1)
old_ext=$(dirname "$(find "$old_pkg" -name pg_uproot.control | head -1)")
[ -f "$old_so" ] && [ -d "$old_ext" ] || fail "the $OLD_VERSION package in $old_pkg lacks its library or control file"
cp -a "$old_so" "$root$pkglibdir/pg_uproot.so"
cp -a "$old_ext/." "$root$sharedir/extension/"
rm -f "$root$sharedir/extension/pg_uproot--$NEW_VERSION.sql" "$root$sharedir/extension/pg_uproot--"*"--$NEW_VERSION.sql"

port=$UPROOT_PORT
db=upgrade
trap "cluster_stop data-$OLD_VERSION" EXIT
cluster_start "data-$OLD_VERSION" "$port"
"$PG_BIN/createdb" -h /tmp -p "$port" -U postgres "$db"
q "$port" "$db" <<'SQL' >/dev/null
CREATE EXTENSION pg_uproot;
CREATE TABLE customers (id int PRIMARY KEY, name text, joined date);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers);
CREATE TABLE items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders);
CREATE TABLE notes (id int PRIMARY KEY, order_id int REFERENCES orders ON DELETE SET NULL);
CREATE TABLE scratch (id int PRIMARY KEY);
INSERT INTO customers SELECT c, 'c' || c, date '2020-01-01' + c FROM generate_series(1, 8) c;
INSERT INTO orders SELECT 10 * c + o, c FROM generate_series(1, 8) c, generate_series(1, 2) o;
INSERT INTO items SELECT 10 * id + n, id FROM orders, generate_series(1, 2) n;
INSERT INTO notes SELECT id, id FROM orders;
INSERT INTO scratch SELECT generate_series(1, 3);
CREATE TABLE fingerprint AS
SELECT 'customers' AS t, md5(string_agg(x::text, '|' ORDER BY x::text)) AS h FROM customers x
UNION ALL SELECT 'orders', md5(string_agg(x::text, '|' ORDER BY x::text)) FROM orders x
UNION ALL SELECT 'items', md5(string_agg(x::text, '|' ORDER BY x::text)) FROM items x
UNION ALL SELECT 'notes', md5(string_agg(x::text, '|' ORDER BY x::text)) FROM notes x;
SELECT count(*) FROM uproot.archive('customers', 1);
SELECT count(*) FROM uproot.archive_where('customers', 'id IN (2, 3)');
-- a table archived and then dropped: 0.1.0 leaves its OID in the records
SELECT count(*) FROM uproot.archive('scratch', 1);
DROP TABLE scratch;
SELECT uproot.create_job('old-customers', 'customers', $$joined < date '2020-01-06'$$, batch_roots => 1);
SQL
q "$port" "$db" -c "CALL uproot.run_job('old-customers')" >/dev/null
# From 0.3.0 on: declared relations put triggers on user tables that call extension functions,
# so the upgrade must replace those functions in place. A plain DELETE queues keys before it.
declared=$(q "$port" "$db" -c "SELECT to_regprocedure('uproot.drain(text, int)') IS NOT NULL")
if [ "$declared" = t ]; then
    q "$port" "$db" <<'SQL' >/dev/null
CREATE TABLE projects (id int PRIMARY KEY);
CREATE TABLE builds (id int PRIMARY KEY, project_id int);
CREATE INDEX ON builds (project_id);
CREATE TABLE deployments (id int PRIMARY KEY, project_id int);
CREATE INDEX ON deployments (project_id);
INSERT INTO projects SELECT generate_series(1, 4);
INSERT INTO builds SELECT 10 * p + b, p FROM generate_series(1, 4) p, generate_series(1, 3) b;
INSERT INTO deployments VALUES (1, 4);
SELECT uproot.declare_relation('builds_project', 'builds', '{project_id}', 'projects', '{id}', 'async cascade');
SELECT uproot.declare_relation('deployments_project', 'deployments', '{project_id}', 'projects', '{id}',
                               'cascade', check_trigger => true);
DELETE FROM projects WHERE id = 1;
SQL
    expect "$OLD_VERSION queued the keys of a plain DELETE" "builds_project|1" \
        "$(q "$port" "$db" -c "SELECT relation, pending FROM uproot.async_lag()")"
fi
expect "$OLD_VERSION is installed and did its work" "$OLD_VERSION|4|4" \
    "$(q "$port" "$db" -c "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'pg_uproot'),
                                  (SELECT count(*) FROM uproot.batches), (SELECT count(*) FROM customers)")"

# The package upgrade: new library and SQL files. New sessions load the new library.
for f in "${new_files[@]}"; do cp -a "$f" "$root$f"; done
out=$(q "$port" "$db" -c "SELECT * FROM uproot.preview('customers', 4)" 2>&1) \
    && fail "the new library ran against the $OLD_VERSION SQL objects without a word: $out"
echo "$out" | grep -qF "ALTER EXTENSION pg_uproot UPDATE" || fail "unclear error before the update: $out"
echo "ok - before ALTER EXTENSION UPDATE, calls say to run it"

# the README's upgrade block, as it stands
python3 "$here/lib/readme_block.py" "$UPROOT_ROOT/README.md" upgrade | q "$port" "$db" >/dev/null \
    || fail "ALTER EXTENSION pg_uproot UPDATE failed"
expect "the extension is at $NEW_VERSION" "$NEW_VERSION" \
    "$(q "$port" "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_uproot'")"
expect "the records of the dropped table keep its name, not its OID" "0|public.scratch" \
    "$(q "$port" "$db" -c "SELECT (SELECT count(*) FROM uproot.archive_tables m WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = m.source)),
                                  (SELECT string_agg(relation_name, ',') FROM uproot.batch_relations WHERE relation IS NULL)")"
# every batch of the live tables goes back, exactly
q "$port" "$db" -c "SELECT count(*) FROM uproot.batches b, LATERAL uproot.restore(b.id)
                     WHERE b.restored_at IS NULL AND b.root IS NOT NULL" >/dev/null || fail "restore after the upgrade failed"
expect "every archived row is back, exactly" "0" \
    "$(q "$port" "$db" -c "SELECT count(*) FROM fingerprint f FULL JOIN (
              SELECT 'customers' AS t, md5(string_agg(x::text, '|' ORDER BY x::text)) AS h FROM customers x
              UNION ALL SELECT 'orders', md5(string_agg(x::text, '|' ORDER BY x::text)) FROM orders x
              UNION ALL SELECT 'items', md5(string_agg(x::text, '|' ORDER BY x::text)) FROM items x
              UNION ALL SELECT 'notes', md5(string_agg(x::text, '|' ORDER BY x::text)) FROM notes x) now
            USING (t) WHERE f.h IS DISTINCT FROM now.h")"
q "$port" "$db" -c "CALL uproot.run_job('old-customers')" >/dev/null
expect "the job runs after the upgrade" "done|4" \
    "$(q "$port" "$db" -c "SELECT (SELECT stop_reason FROM uproot.job_runs ORDER BY run_id DESC LIMIT 1),
                                  (SELECT count(*) FROM customers)")"

if [ "$declared" = t ]; then
    expect "the key queued before the upgrade drains after it" "1|3" \
        "$(q "$port" "$db" -c "SELECT keys, rows FROM uproot.drain('builds_project')")"
    expect "no build of the deleted project is left" "0" \
        "$(q "$port" "$db" -c "SELECT count(*) FROM builds WHERE project_id = 1")"
    out=$(q "$port" "$db" -c "INSERT INTO deployments VALUES (2, 42)" 2>&1) \
        && fail "the check trigger let a missing parent in after the upgrade"
    echo "$out" | grep -qF "violates declared relation deployments_project" || fail "unexpected error from the check trigger: $out"
    q "$port" "$db" -c "INSERT INTO deployments VALUES (3, 2)"
    echo "ok - the check trigger still rejects a missing parent and accepts an existing one"
    q "$port" "$db" -c "DELETE FROM projects WHERE id = 3"
    expect "the queue trigger still queues after the upgrade" "1|3" \
        "$(q "$port" "$db" -c "SELECT keys, rows FROM uproot.drain('builds_project')")"
    expect "the drain removed the builds of the project deleted after the upgrade" "0|6" \
        "$(q "$port" "$db" -c "SELECT count(*) FILTER (WHERE project_id = 3), count(*) FROM builds")"
fi

# The upgraded extension equals a fresh install of the new version, object for object.
"$PG_BIN/createdb" -h /tmp -p "$port" -U postgres fresh
q "$port" fresh -c "CREATE EXTENSION pg_uproot"
q "$port" "$db" -f "$here/lib/describe.sql" > "$UPROOT_WORK/upgraded-$OLD_VERSION.txt"
q "$port" fresh -f "$here/lib/describe.sql" > "$UPROOT_WORK/fresh-$OLD_VERSION.txt"
[ "$(wc -l < "$UPROOT_WORK/fresh-$OLD_VERSION.txt")" -gt 50 ] || fail "describe.sql found too little: $(wc -l < "$UPROOT_WORK/fresh-$OLD_VERSION.txt") lines"
if ! diff -u "$UPROOT_WORK/fresh-$OLD_VERSION.txt" "$UPROOT_WORK/upgraded-$OLD_VERSION.txt" > "$UPROOT_WORK/upgrade-$OLD_VERSION.diff"; then
    cat "$UPROOT_WORK/upgrade-$OLD_VERSION.diff"
    fail "the upgraded extension differs from a fresh install (- fresh, + upgraded)"
fi
echo "ok - the upgraded extension equals a fresh install ($(wc -l < "$UPROOT_WORK/fresh-$OLD_VERSION.txt") lines compared)"
cluster_stop "data-$OLD_VERSION"
trap - EXIT
}

for r in "${RELEASES[@]}"; do
    # shellcheck disable=SC2086
    upgrade_from $r
done
echo "upgrade: all checks passed (from ${#RELEASES[@]} releases)"
