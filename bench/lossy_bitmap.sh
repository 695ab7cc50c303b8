#!/usr/bin/env bash
# A family whose middle table has 100,000 rows over 2.5 million spread children, purged and
# previewed with a small work_mem, so that a bitmap scan over the children goes lossy: the case
# where a generic plan's `fk = ANY ($1)` rechecked every row of a lossy page by a linear search
# of 100,000 keys. Compares uproot with a native cascading DELETE on a CASCADE twin, at two
# work_mem settings, each in a fresh session, each rolled back.
#
# usage: PSQL="psql -h /tmp -p 5652 -U postgres" bash bench/lossy_bitmap.sh [timeout_s]
# (the database bench_lossy is dropped and built again: about 40 s)
set -euo pipefail
PSQL=${PSQL:-psql}
TIMEOUT=${1:-150}
$PSQL -X -q -d postgres -c "DROP DATABASE IF EXISTS bench_lossy" -c "CREATE DATABASE bench_lossy"
$PSQL -X -q -d bench_lossy <<'EOF'
CREATE EXTENSION pg_uproot;
CREATE FUNCTION build(s text, action text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE SCHEMA %I', s);
  EXECUTE format('CREATE TABLE %I.accounts (id bigint PRIMARY KEY)', s);
  EXECUTE format('CREATE TABLE %I.orders (id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES %I.accounts ON DELETE %s)', s, s, action);
  EXECUTE format('CREATE TABLE %I.lines (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES %I.orders ON DELETE %s, payload text)', s, s, action);
  EXECUTE format('CREATE TABLE %I.notes (id bigint PRIMARY KEY, line_id bigint NOT NULL REFERENCES %I.lines ON DELETE %s)', s, s, action);
  EXECUTE format('CREATE INDEX ON %I.orders (account_id)', s);
  EXECUTE format('CREATE INDEX ON %I.lines (order_id)', s);
  EXECUTE format('CREATE INDEX ON %I.notes (line_id)', s);
  EXECUTE format('INSERT INTO %I.accounts VALUES (1), (2)', s);
  EXECUTE format('INSERT INTO %I.orders SELECT g, CASE WHEN g <= 100000 THEN 1 ELSE 2 END FROM generate_series(1, 101000) g', s);
  -- spread: line g belongs to order ((g - 1) % 101000) + 1
  EXECUTE format('INSERT INTO %I.lines SELECT g, ((g - 1) %% 101000) + 1, ''x'' FROM generate_series(1, 2525000) g', s);
  EXECUTE format('INSERT INTO %I.notes SELECT g, g FROM generate_series(1, 2525000, 100) g', s);
END $$;
SELECT build('lossy_na', 'NO ACTION');
SELECT build('lossy_cascade', 'CASCADE');
VACUUM ANALYZE;
EOF
run() {  # label, work_mem, statement
    local out
    out=$($PSQL -X -d bench_lossy 2>&1 <<EOF
\timing on
SET work_mem = '$2';
SET statement_timeout = '${TIMEOUT}s';
BEGIN;
$3;
ROLLBACK;
EOF
) || true
    if grep -q "statement timeout" <<<"$out"; then
        echo "| $1 | $2 | > ${TIMEOUT} s (cancelled) |"
    else
        echo "| $1 | $2 | $(grep '^Time' <<<"$out" | sed -n 4p | awk '{printf "%.0f ms", $2}') |"
    fi
}
echo "| what | work_mem | time |"
echo "|---|---|---:|"
for wm in 256kB 4MB; do
    run "native cascade (lossy_cascade)" "$wm" "DELETE FROM lossy_cascade.accounts WHERE id = 1"
    run "uproot.purge (lossy_na)" "$wm" "SELECT count(*) FROM uproot.purge('lossy_na.accounts', 1::bigint)"
    run "uproot.preview (lossy_na)" "$wm" "SELECT count(*) FROM uproot.preview('lossy_na.accounts', 1::bigint)"
done
