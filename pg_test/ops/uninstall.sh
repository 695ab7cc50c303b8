#!/usr/bin/env bash
# Uninstalling: DROP EXTENSION (with or without CASCADE) and DROP SCHEMA uproot CASCADE are
# refused while batches are not restored, and change nothing; the README's procedure that keeps
# the archive across a reinstall keeps every batch restorable; the README's procedure that
# removes everything leaves nothing behind, and both take the triggers of declared relations with
# them (the keep procedure puts them back). The README's SQL blocks are run as they stand.
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
-- declared relations: a check trigger on ci_builds, a queue trigger on projects, a drain job
-- and a key waiting in the queue
CREATE TABLE projects (id int PRIMARY KEY);
CREATE TABLE ci_builds (id int PRIMARY KEY, project_id int);
CREATE INDEX ON ci_builds (project_id);
CREATE TABLE notes (id int PRIMARY KEY, project_id int);
CREATE INDEX ON notes (project_id);
INSERT INTO projects VALUES (1), (2);
INSERT INTO ci_builds VALUES (1, 1);
INSERT INTO notes VALUES (1, 1), (2, 2);
SELECT uproot.declare_relation('builds_project', 'ci_builds', array['project_id'], 'projects', array['id'], 'cascade', check_trigger => true);
SELECT uproot.declare_relation('notes_project', 'notes', array['project_id'], 'projects', array['id'], 'async cascade');
SELECT uproot.create_drain_job('notes-drain', 'notes_project');
DELETE FROM projects WHERE id = 2;
SQL
# pg_uproot's triggers on the tables, and the keys queued
declared_state() {
    q "$port" "$db" -c "SELECT (SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal),
                               (SELECT count(*) FROM projects), (SELECT count(*) FROM ci_builds), (SELECT count(*) FROM notes)"
}
expect "declared relations installed their triggers" "uproot_check_builds_project,uproot_queue_notes_project|1|1|2" "$(declared_state)"
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
expect "the ledger and the jobs (the purge job and the drain job) came back" "2|2" \
    "$(q "$port" "$db" -c "SELECT (SELECT count(*) FROM uproot.batches), (SELECT count(*) FROM uproot.jobs)")"
expect "uproot_archive is still outside the extension" "0" \
    "$(q "$port" "$db" -c "SELECT count(*) FROM pg_depend WHERE refclassid = 'pg_extension'::regclass
                             AND classid = 'pg_namespace'::regclass AND objid = 'uproot_archive'::regnamespace")"
expect "the declared relations, their triggers and the queue came back" \
    "uproot_check_builds_project,uproot_queue_notes_project|1|1|2" "$(declared_state)"
expect "the queued key and the drain job came back" "1|notes-drain" \
    "$(q "$port" "$db" -c "SELECT (SELECT count(*) FROM uproot.async_queue), (SELECT name FROM uproot.jobs WHERE action = 'drain')")"
q "$port" "$db" -c "CALL uproot.run_job('notes-drain')" >/dev/null || fail "the drain job failed after the reinstall"
expect "the drain job drains the kept queue" "1|0" \
    "$(q "$port" "$db" -c "SELECT (SELECT count(*) FROM notes), (SELECT count(*) FROM uproot.async_queue)")"
if q "$port" "$db" -c "INSERT INTO ci_builds VALUES (2, 99)" >/dev/null 2>&1; then
    fail "the check trigger did not come back"
fi
echo "ok - the check trigger checks again"
q "$port" "$db" -c "DELETE FROM projects WHERE id = 1; INSERT INTO projects VALUES (1)" >/dev/null
expect "the queue trigger queues again" "1" "$(q "$port" "$db" -c "SELECT count(*) FROM uproot.async_queue")"
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
expect "no trigger of pg_uproot is left, and the tables keep their rows" "|1|1|1" "$(declared_state)"
# and it installs again from nothing
q "$port" "$db" -c "CREATE EXTENSION pg_uproot" || fail "CREATE EXTENSION after removal failed"
echo "uninstall: all checks passed"
