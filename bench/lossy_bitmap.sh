#!/usr/bin/env bash
# Families whose children are found by `fk = ANY (keys)` over millions of spread rows, purged and
# previewed with a small work_mem, so that a bitmap scan over the children goes lossy: the case
# where a generic plan's `fk = ANY ($1)` rechecked every row of a lossy page by a linear search
# of the keys. Each is compared with a native cascading DELETE on a CASCADE twin, at two
# work_mem settings, each in a fresh session, each rolled back.
#   many:  1 account, 100,000 orders, 2.5M lines (each line with notes below it: a level's
#          collect binds the orders' keys)
#   leaf:  1 account, 9,999 orders (below the large form's 10,000), 2.5M lines and nothing below
#          them (a join leaf: the family statement binds the orders' keys)
#
# usage: PSQL="psql -h /tmp -p 5652 -U postgres" bash bench/lossy_bitmap.sh [timeout_s] [--no-build]
# (the database bench_lossy is dropped and built again unless --no-build: about 3 minutes)
set -euo pipefail
PSQL=${PSQL:-psql}
TIMEOUT=${1:-150}
if [ "${2:-}" != --no-build ]; then
    $PSQL -X -q -d postgres -c "DROP DATABASE IF EXISTS bench_lossy" -c "CREATE DATABASE bench_lossy"
    $PSQL -X -q -d bench_lossy <<'EOF'
CREATE EXTENSION pg_uproot;
CREATE FUNCTION build(s text, action text, orders int, notes bool) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE SCHEMA %I', s);
  EXECUTE format('CREATE TABLE %I.accounts (id bigint PRIMARY KEY)', s);
  EXECUTE format('CREATE TABLE %I.orders (id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES %I.accounts ON DELETE %s)', s, s, action);
  EXECUTE format('CREATE TABLE %I.lines (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES %I.orders ON DELETE %s, payload text)', s, s, action);
  EXECUTE format('CREATE INDEX ON %I.orders (account_id)', s);
  EXECUTE format('CREATE INDEX ON %I.lines (order_id)', s);
  EXECUTE format('INSERT INTO %I.accounts VALUES (1), (2)', s);
  -- account 1 has `orders` orders, account 2 the next 1,000
  EXECUTE format('INSERT INTO %I.orders SELECT g, CASE WHEN g <= %s THEN 1 ELSE 2 END FROM generate_series(1, %s) g', s, orders, orders + 1000);
  -- spread: line g belongs to order ((g - 1) % all orders) + 1
  EXECUTE format('INSERT INTO %I.lines SELECT g, ((g - 1) %% %s) + 1, ''x'' FROM generate_series(1, 2525000) g', s, orders + 1000);
  IF notes THEN
    EXECUTE format('CREATE TABLE %I.notes (id bigint PRIMARY KEY, line_id bigint NOT NULL REFERENCES %I.lines ON DELETE %s)', s, s, action);
    EXECUTE format('CREATE INDEX ON %I.notes (line_id)', s);
    EXECUTE format('INSERT INTO %I.notes SELECT g, g FROM generate_series(1, 2525000, 100) g', s);
  END IF;
END $$;
SELECT build('many_na', 'NO ACTION', 100000, true);
SELECT build('many_cascade', 'CASCADE', 100000, true);
SELECT build('leaf_na', 'NO ACTION', 9999, false);
SELECT build('leaf_cascade', 'CASCADE', 9999, false);
VACUUM ANALYZE;
EOF
fi
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
for shape in many leaf; do
    for wm in 256kB 4MB; do
        run "$shape: native cascade" "$wm" "DELETE FROM ${shape}_cascade.accounts WHERE id = 1"
        run "$shape: uproot.purge" "$wm" "SELECT count(*) FROM uproot.purge('${shape}_na.accounts', 1::bigint)"
        run "$shape: uproot.preview" "$wm" "SELECT count(*) FROM uproot.preview('${shape}_na.accounts', 1::bigint)"
    done
done
