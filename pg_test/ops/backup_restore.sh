#!/usr/bin/env bash
# Backups: archive, dump the database (pg_dump custom format restored by pg_restore, and a plain
# SQL dump restored by psql, as the README's Operations section shows), and in the new database
# restore the batch, check every row, archive again into the same archive tables, and rerun the
# job. Nothing pg_uproot keeps (ledger, archive mapping, jobs, run log) may be lost, and nothing
# may depend on OIDs that a restore changes.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=pg_test/ops/lib/cluster.sh
. "$here/lib/cluster.sh"

port=$UPROOT_PORT
trap 'cluster_stop data' EXIT
cluster_start data "$port"
chmod 777 "$UPROOT_WORK"

# The README shows these commands; keep them line for line.
readme_lines=(
    'pg_dump -Fc -d app_db -f app_db.dump'
    'createdb app_db_restored'
    'pg_restore -d app_db_restored app_db.dump'
)
for line in "${readme_lines[@]}"; do
    grep -qF -- "$line" "$UPROOT_ROOT/README.md" || fail "README.md lacks: $line"
done

"$PG_BIN/createdb" -h /tmp -p "$port" -U postgres app_db
q "$port" app_db <<'SQL'
CREATE EXTENSION pg_uproot;
CREATE SCHEMA app;
CREATE TABLE app.customers (id int PRIMARY KEY, name text NOT NULL, joined date NOT NULL);
CREATE TABLE app.orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES app.customers, total numeric);
CREATE INDEX ON app.orders (customer_id);
CREATE TABLE app.items (order_id int REFERENCES app.orders, n int, sku text, PRIMARY KEY (order_id, n));
CREATE TABLE app.tickets (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                          order_id int REFERENCES app.orders ON DELETE SET NULL, body text);
CREATE INDEX ON app.tickets (order_id);
INSERT INTO app.customers SELECT c, 'customer ' || c, date '2020-01-01' + c FROM generate_series(1, 20) c;
INSERT INTO app.orders SELECT 100 * c + o, c, c * o FROM generate_series(1, 20) c, generate_series(1, 3) o;
INSERT INTO app.items SELECT id, n, 'sku-' || id || '-' || n FROM app.orders, generate_series(1, 2) n;
INSERT INTO app.tickets (order_id, body) SELECT id, 'about ' || id FROM app.orders WHERE id % 2 = 0;
-- what the tables hold before anything is archived
CREATE TABLE public.fingerprint AS
SELECT 'customers' AS t, md5(string_agg(x::text, '|' ORDER BY x::text)) AS h FROM app.customers x
UNION ALL SELECT 'orders', md5(string_agg(x::text, '|' ORDER BY x::text)) FROM app.orders x
UNION ALL SELECT 'items', md5(string_agg(x::text, '|' ORDER BY x::text)) FROM app.items x
UNION ALL SELECT 'tickets', md5(string_agg(x::text, '|' ORDER BY x::text)) FROM app.tickets x;
SELECT count(*) FROM uproot.archive('app.customers', 3);
SELECT uproot.create_job('old-customers', 'app.customers', $$joined < date '2020-01-10'$$, batch_roots => 2);
SQL
q "$port" app_db -c "CALL uproot.run_job('old-customers')" >/dev/null
before=$(q "$port" app_db -c "SELECT (SELECT count(*) FROM uproot.batches), (SELECT count(*) FROM uproot.batch_relations),
                                     (SELECT count(*) FROM uproot.batch_detached), (SELECT count(*) FROM uproot.archive_tables),
                                     (SELECT count(*) FROM uproot.jobs), (SELECT count(*) FROM uproot.job_runs)")
echo "records before the dump: $before"
expect "batch 1 holds customer 3" "1" "$(q "$port" app_db -c "SELECT count(*) FROM uproot_archive.\"app.customers\" WHERE id = 3 AND _uproot_batch = 1")"

restore_and_check() {
    local db="$1"
    expect "$db: the records came across" "$before" \
        "$(q "$port" "$db" -c "SELECT (SELECT count(*) FROM uproot.batches), (SELECT count(*) FROM uproot.batch_relations),
                                      (SELECT count(*) FROM uproot.batch_detached), (SELECT count(*) FROM uproot.archive_tables),
                                      (SELECT count(*) FROM uproot.jobs), (SELECT count(*) FROM uproot.job_runs)")"
    expect "$db: the mapping names this database's tables" "0" \
        "$(q "$port" "$db" -c "SELECT count(*) FROM uproot.archive_tables m
                                 WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = m.source)
                                    OR NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = m.archive)")"
    expect "$db: no record names a missing relation" "0" \
        "$(q "$port" "$db" -c "SELECT count(*) FROM uproot.batch_relations br
                                 WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = br.relation)
                                    OR NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = br.archive)")"
    # every batch goes back; then the tables hold exactly what they held before any archive
    q "$port" "$db" -c "SELECT count(*) FROM uproot.batches b, LATERAL uproot.restore(b.id) WHERE b.restored_at IS NULL" >/dev/null \
        || fail "$db: restore failed"
    expect "$db: every row is back, exactly" "0" \
        "$(q "$port" "$db" -c "SELECT count(*) FROM public.fingerprint f FULL JOIN (
                  SELECT 'customers' AS t, md5(string_agg(x::text, '|' ORDER BY x::text)) AS h FROM app.customers x
                  UNION ALL SELECT 'orders', md5(string_agg(x::text, '|' ORDER BY x::text)) FROM app.orders x
                  UNION ALL SELECT 'items', md5(string_agg(x::text, '|' ORDER BY x::text)) FROM app.items x
                  UNION ALL SELECT 'tickets', md5(string_agg(x::text, '|' ORDER BY x::text)) FROM app.tickets x) now
                USING (t) WHERE f.h IS DISTINCT FROM now.h")"
    # archiving again writes to the same archive tables, not to new ones
    local tables_before tables_after
    tables_before=$(q "$port" "$db" -c "SELECT count(*) FROM pg_class WHERE relnamespace = 'uproot_archive'::regnamespace AND relkind = 'r'")
    q "$port" "$db" -c "SELECT count(*) FROM uproot.archive('app.customers', 4)" >/dev/null
    tables_after=$(q "$port" "$db" -c "SELECT count(*) FROM pg_class WHERE relnamespace = 'uproot_archive'::regnamespace AND relkind = 'r'")
    expect "$db: archive reuses the restored archive tables" "$tables_before" "$tables_after"
    # the job runs again, from the restored definition, and logs its run
    q "$port" "$db" -c "CALL uproot.run_job('old-customers')" >/dev/null
    expect "$db: the job ran again and found its families" "done" \
        "$(q "$port" "$db" -c "SELECT stop_reason FROM uproot.job_runs ORDER BY run_id DESC LIMIT 1")"
    expect "$db: the job archived the old customers again" "0" \
        "$(q "$port" "$db" -c "SELECT count(*) FROM app.customers WHERE joined < date '2020-01-10'")"
}

cd "$UPROOT_WORK"
export PGHOST=/tmp PGPORT=$port PGUSER=postgres
# the README's commands
as_pg env PGHOST=/tmp PGPORT="$port" PGUSER=postgres "$PG_BIN/pg_dump" -Fc -d app_db -f "$UPROOT_WORK/app_db.dump"
"$PG_BIN/createdb" app_db_restored
as_pg env PGHOST=/tmp PGPORT="$port" PGUSER=postgres "$PG_BIN/pg_restore" -d app_db_restored "$UPROOT_WORK/app_db.dump" \
    2> "$UPROOT_WORK/pg_restore.log" || { cat "$UPROOT_WORK/pg_restore.log"; fail "pg_restore reported errors"; }
restore_and_check app_db_restored

# A plain SQL dump, restored with psql, must work the same way.
"$PG_BIN/createdb" app_db_plain
"$PG_BIN/pg_dump" -d app_db | "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d app_db_plain > "$UPROOT_WORK/psql_restore.log" 2>&1 \
    || { cat "$UPROOT_WORK/psql_restore.log"; fail "psql restore of a plain dump failed"; }
restore_and_check app_db_plain
echo "backup_restore: all checks passed"
