#!/usr/bin/env bash
# Uninstalling: DROP EXTENSION (with or without CASCADE) and DROP SCHEMA uproot CASCADE are
# refused while batches are not restored, and change nothing; the README's procedure that keeps
# the archive across a reinstall keeps every batch restorable; the README's procedure that
# removes everything leaves nothing behind. The README's SQL blocks are run as they stand.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=pg_test/ops/lib/cluster.sh
. "$here/lib/cluster.sh"

port=$UPROOT_PORT
db=uninstall
trap 'cluster_stop data' EXIT
cluster_start data "$port"
"$PG_BIN/createdb" -h /tmp -p "$port" -U postgres "$db"
block() { python3 "$here/lib/readme_block.py" "$UPROOT_ROOT/README.md" "$1"; }

q "$port" "$db" <<'SQL' >/dev/null
CREATE EXTENSION pg_uproot;
CREATE TABLE customers (id int PRIMARY KEY, name text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers);
INSERT INTO customers SELECT c, 'c' || c FROM generate_series(1, 5) c;
INSERT INTO orders SELECT 10 * c + o, c FROM generate_series(1, 5) c, generate_series(1, 2) o;
SELECT count(*) FROM uproot.archive('customers', 1);
SELECT count(*) FROM uproot.archive('customers', array[2, 3]);
SELECT uproot.create_job('old', 'customers', 'id = 4');
SQL
state() {
    q "$port" "$db" -c "SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'pg_uproot'),
                               (SELECT count(*) FROM customers), (SELECT count(*) FROM orders),
                               (SELECT count(*) FROM uproot_archive.\"public.customers\"),
                               (SELECT count(*) FROM uproot_archive.\"public.orders\")"
}
start_state=$(state)
expect "two batches archived 3 customers and 6 orders" "1|2|4|3|6" "$start_state"

refused() {
    local sql="$1" out
    out=$(q "$port" "$db" -c "$sql" 2>&1) && fail "not refused: $sql"
    echo "$out" | grep -qF "uproot: cannot drop pg_uproot while 2 archived batch(es) are not restored" \
        || fail "unexpected error for $sql: $out"
    echo "$out" | grep -qF "9 archived row(s)" || fail "the detail does not count the rows: $out"
    expect "refused and unchanged: $sql" "$start_state" "$(state)"
}
refused "DROP EXTENSION pg_uproot"
refused "DROP EXTENSION pg_uproot CASCADE"
refused "DROP EXTENSION IF EXISTS pg_cron, pg_uproot"
refused "DROP SCHEMA uproot CASCADE"
# other extensions and schemas drop as usual
# (no contrib module is needed: PostgreSQL built from source here has none)
q "$port" "$db" -c "DROP EXTENSION IF EXISTS no_such_extension; CREATE SCHEMA tmp; DROP SCHEMA tmp CASCADE" \
    || fail "dropping another extension or schema was refused"
echo "ok - other extensions and schemas drop as usual"

# The README's procedure that keeps the archive across a reinstall.
block uninstall-keep > "$UPROOT_WORK/keep.sql"
q "$port" "$db" -f "$UPROOT_WORK/keep.sql" > "$UPROOT_WORK/keep.out" 2>&1 || { cat "$UPROOT_WORK/keep.out"; fail "the keep procedure failed"; }
expect "after the keep procedure the archive is where it was" "$start_state" "$(state)"
expect "the ledger and the job came back" "2|1" \
    "$(q "$port" "$db" -c "SELECT (SELECT count(*) FROM uproot.batches), (SELECT count(*) FROM uproot.jobs)")"
expect "uproot_archive is still outside the extension" "0" \
    "$(q "$port" "$db" -c "SELECT count(*) FROM pg_depend WHERE refclassid = 'pg_extension'::regclass
                             AND classid = 'pg_namespace'::regclass AND objid = 'uproot_archive'::regnamespace")"
q "$port" "$db" -c "SELECT count(*) FROM uproot.restore(2)" >/dev/null || fail "restore after the reinstall failed"
expect "batch 2 restored after the reinstall" "1|4|8|1|2" "$(state)"
expect "a new batch continues the ledger's numbering" "3" \
    "$(q "$port" "$db" -c "SELECT DISTINCT batch_id FROM uproot.archive('customers', 5)")"
q "$port" "$db" -c "CALL uproot.run_job('old')" >/dev/null
expect "the job runs after the reinstall" "done" \
    "$(q "$port" "$db" -c "SELECT stop_reason FROM uproot.job_runs ORDER BY run_id DESC LIMIT 1")"

# The README's procedure that removes everything.
block uninstall-remove > "$UPROOT_WORK/remove.sql"
q "$port" "$db" -f "$UPROOT_WORK/remove.sql" > "$UPROOT_WORK/remove.out" 2>&1 || { cat "$UPROOT_WORK/remove.out"; fail "the remove procedure failed"; }
expect "nothing of pg_uproot is left" "0|0" \
    "$(q "$port" "$db" -c "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'uproot%'),
                                  (SELECT count(*) FROM pg_extension WHERE extname = 'pg_uproot')")"
expect "the live tables are untouched" "2|4" \
    "$(q "$port" "$db" -c "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders)")"
# and it installs again from nothing
q "$port" "$db" -c "CREATE EXTENSION pg_uproot" || fail "CREATE EXTENSION after removal failed"
echo "uninstall: all checks passed"
