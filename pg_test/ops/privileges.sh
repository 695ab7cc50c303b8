#!/usr/bin/env bash
# Privileges: the README's GRANT recipes, run as they stand, give each role exactly what it
# needs: a cleanup role purges, an archiver archives and restores, a non-superuser table owner
# prepares archive tables, an auditor reads the ledger. Nobody but pg_uproot writes the ledger.
# A role that follows the GRANTs a permission error lists reaches a working setup in one round.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=pg_test/ops/lib/cluster.sh
. "$here/lib/cluster.sh"

port=$UPROOT_PORT
db=privileges
trap 'cluster_stop data' EXIT
cluster_start data "$port"
"$PG_BIN/createdb" -h /tmp -p "$port" -U postgres "$db"
block() { python3 "$here/lib/readme_block.py" "$UPROOT_ROOT/README.md" "$1"; }
as_role() { local role="$1"; shift; q "$port" "$db" -c "SET ROLE $role" "$@"; }
# denied ROLE SQL WHAT: SQL run as ROLE fails with permission denied (42501)
denied() {
    local out
    out=$(as_role "$1" -c "$2" 2>&1) && fail "$3: not denied"
    echo "$out" | grep -q "permission denied" || fail "$3: unexpected error: $out"
    echo "ok - $3"
}

q "$port" "$db" <<'SQL' >/dev/null
CREATE EXTENSION pg_uproot;
CREATE ROLE app_owner; CREATE ROLE cleanup; CREATE ROLE archiver; CREATE ROLE auditor; CREATE ROLE newcomer;
CREATE SCHEMA app AUTHORIZATION app_owner;
SET ROLE app_owner;
CREATE TABLE app.customers (id int PRIMARY KEY, name text);
CREATE TABLE app.orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES app.customers);
CREATE TABLE app.items (order_id int NOT NULL REFERENCES app.orders, n int, PRIMARY KEY (order_id, n));
CREATE TABLE app.tickets (id int PRIMARY KEY, order_id int REFERENCES app.orders ON DELETE SET NULL);
INSERT INTO app.customers SELECT c, 'c' || c FROM generate_series(1, 6) c;
INSERT INTO app.orders SELECT 10 * c + o, c FROM generate_series(1, 6) c, generate_series(1, 2) o;
INSERT INTO app.items SELECT id, n FROM app.orders, generate_series(1, 2) n;
INSERT INTO app.tickets SELECT id, id FROM app.orders;
RESET ROLE;
SQL

# One round of the listed GRANTs is enough. (USAGE on the schema comes first: without it
# PostgreSQL itself refuses to resolve 'app.customers'.)
q "$port" "$db" -c "GRANT USAGE ON SCHEMA app TO newcomer"
out=$(as_role newcomer -c "SELECT * FROM uproot.purge('app.customers', 6)" 2>&1) && fail "newcomer purged without privileges"
echo "$out" | grep -q "ERROR:  uproot: permission denied" || fail "unexpected error: $out"
grants=$(echo "$out" | sed -E 's/^(DETAIL: +|\t)//' | grep '^GRANT ' || true)
[ -n "$grants" ] || fail "the error lists no GRANT: $out"
echo "$grants" | grep -qF 'GRANT SELECT, UPDATE ON TABLE app.tickets TO newcomer;' || fail "the list misses the detached table: $grants"
echo "$grants" | grep -qF 'GRANT SELECT, UPDATE, DELETE ON TABLE app.customers TO newcomer;' || fail "the list misses the root: $grants"
echo "ok - the error lists $(echo "$grants" | wc -l) GRANT statement(s)"
echo "$out" | grep -q "stop_at" && fail "the hint points at stop_at: $out"
q "$port" "$db" -c "$grants" >/dev/null
expect "newcomer purges after one round of GRANTs" "app.customers|deleted|1" \
    "$(as_role newcomer -c "SELECT relation, action, rows FROM uproot.purge('app.customers', 6) WHERE relation = 'app.customers'::regclass")"
expect "check_access now finds nothing missing" "0" \
    "$(q "$port" "$db" -c "SELECT count(*) FROM uproot.check_access('app.customers', 'newcomer', 'purge') WHERE NOT granted")"

# The README's recipes.
for b in privileges-purge privileges-archive privileges-prepare privileges-ledger; do
    block "$b" | q "$port" "$db" >/dev/null || fail "README block $b failed"
    echo "ok - README block $b runs"
done
expect "check_access: the cleanup role lacks nothing to purge" "0" \
    "$(q "$port" "$db" -c "SELECT count(*) FROM uproot.check_access('app.customers', 'cleanup', 'purge') WHERE NOT granted")"
expect "check_access: the archiver lacks nothing to archive or restore" "0|0" \
    "$(q "$port" "$db" -c "SELECT (SELECT count(*) FROM uproot.check_access('app.customers', 'archiver', 'archive') WHERE NOT granted),
                                  (SELECT count(*) FROM uproot.check_access('app.customers', 'archiver', 'restore') WHERE NOT granted)")"
# the README's check, for a role with nothing yet: it lists exact GRANT statements
check=$(q "$port" "$db" -c "CREATE ROLE newcomer2; ALTER ROLE newcomer2 RENAME TO \"New Comer\";" \
    -c "$(block privileges-check | sed "s/'newcomer'/'New Comer'/")")
echo "$check" | grep -qF 'GRANT USAGE ON SCHEMA app TO "New Comer";' || fail "check_access lacks schema USAGE: $check"
echo "$check" | grep -qF 'GRANT SELECT ON TABLE app.tickets TO "New Comer";' || fail "check_access lacks tickets: $check"
echo "ok - check_access lists quoted GRANTs for a role with nothing"

# The archive tables belong to the sources' owner and follow the sources' grants.
expect "archive tables are owned by the table owner" "app_owner|3" \
    "$(q "$port" "$db" -c "SELECT DISTINCT pg_get_userbyid(c.relowner), count(*) OVER () FROM uproot.archive_tables m JOIN pg_class c ON c.oid = m.archive")"
expect "the archiver may write the archive, the auditor may not read it" "t|f" \
    "$(q "$port" "$db" -c "SELECT has_table_privilege('archiver', 'uproot_archive.\"app.orders\"', 'INSERT'),
                                  has_table_privilege('auditor', 'uproot_archive.\"app.orders\"', 'SELECT')")"

# cleanup purges; it can neither read nor write the ledger
expect "cleanup purges customer 1" "app.customers|deleted|1" \
    "$(as_role cleanup -c "SELECT relation, action, rows FROM uproot.purge('app.customers', 1) WHERE relation = 'app.customers'::regclass")"
denied cleanup "SELECT count(*) FROM uproot.batches" "cleanup cannot read the ledger"

# archiver archives, finds its batch, restores it
batch=$(as_role archiver -c "SELECT DISTINCT batch_id FROM uproot.archive('app.customers', 2)")
expect "the archiver sees its batch in the ledger" "archiver" \
    "$(as_role archiver -c "SELECT archived_by FROM uproot.batches WHERE id = $batch")"
expect "the archiver restores it" "1" \
    "$(as_role archiver -c "SELECT rows FROM uproot.restore($batch) WHERE relation = 'app.customers'::regclass AND action = 'restored'")"
expect "restored by the archiver, recorded by pg_uproot" "archiver" \
    "$(q "$port" "$db" -c "SELECT restored_by FROM uproot.batches WHERE id = $batch")"

# Nobody rewrites the audit trail by hand (the issue's exact statements).
for role in cleanup archiver auditor newcomer; do
    denied "$role" "UPDATE uproot.batches SET archived_by = 'someone_else'" "$role cannot UPDATE uproot.batches"
    denied "$role" "DELETE FROM uproot.batch_relations" "$role cannot DELETE FROM uproot.batch_relations"
    denied "$role" "INSERT INTO uproot.archive_tables VALUES ('app.orders', 'app.items')" "$role cannot remap an archive table"
done
expect "the auditor reads the ledger" "archiver" \
    "$(as_role auditor -c "SELECT archived_by FROM uproot.batches WHERE id = $batch")"
out=$(as_role auditor -c "SELECT * FROM uproot.archive('app.customers', 3)" 2>&1) && fail "the auditor archived"
# (the ledger recipe gives no USAGE on schema app, so PostgreSQL refuses before uproot does)
echo "$out" | grep -q "permission denied" || fail "unexpected error for the auditor: $out"
echo "ok - the auditor cannot archive"
expect "PUBLIC has no privilege on the ledger" "0" \
    "$(q "$port" "$db" -c "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a
                             WHERE c.oid IN ('uproot.batches'::regclass, 'uproot.batch_relations'::regclass,
                                             'uproot.batch_detached'::regclass) AND a.grantee = 0")"

# A grant on a source reaches its archive table at the next archive, and so does a revoke.
q "$port" "$db" -c "GRANT SELECT ON app.orders TO auditor"
as_role archiver -c "SELECT count(*) FROM uproot.archive('app.customers', 3)" >/dev/null
expect "a new grant on a source reaches its archive table" "t" \
    "$(q "$port" "$db" -c "SELECT has_table_privilege('auditor', 'uproot_archive.\"app.orders\"', 'SELECT')")"
q "$port" "$db" -c "REVOKE SELECT ON app.orders FROM auditor"
q "$port" "$db" -c "SET ROLE app_owner; SELECT count(*) FROM uproot.prepare_archive('app.customers')" >/dev/null
expect "a revoke too (prepare_archive by the owner)" "f" \
    "$(q "$port" "$db" -c "SELECT has_table_privilege('auditor', 'uproot_archive.\"app.orders\"', 'SELECT')")"
echo "privileges: all checks passed"
