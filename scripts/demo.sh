#!/usr/bin/env bash
# The README's demo command: install what is missing, build and install pg_uproot, start a
# throwaway cluster, load scripts/demo.sql and show uproot.graph / preview / purge at work, then
# archive / restore with the ledger, and a retention job.
#
#   bash scripts/demo.sh [--release]
#
# The cluster lives in /tmp/pg_uproot_demo (port 5610), is recreated on every run and is
# stopped when the script exits.
set -euo pipefail
# The demo runs on Debian's PostgreSQL 15 (or UPROOT_PG_BIN's copy of it) and builds no other version.
PG_MAJOR=15
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEMO_DIR=/tmp/pg_uproot_demo
DEMO_PORT=5610

bash "$UPROOT_ROOT/scripts/setup.sh" --pg 15 "$@"

say "start a throwaway PostgreSQL $PG_MAJOR in $DEMO_DIR (port $DEMO_PORT)"
trap 'pg_cluster_stop "$DEMO_DIR"' EXIT
pg_cluster_start "$DEMO_DIR" "$DEMO_PORT"
pg_psql "$DEMO_PORT" postgres -c "CREATE DATABASE demo"

say "load the demo schema (scripts/demo.sql)"
pg_psql "$DEMO_PORT" demo -c "CREATE EXTENSION pg_uproot" -f "$UPROOT_ROOT/scripts/demo.sql"

say "walk through it"
pg_psql "$DEMO_PORT" demo <<'SQL'
\pset null '(null)'

\echo
\echo '-- A plain DELETE fails: no foreign key here cascades.'
\echo 'DELETE FROM customers WHERE id = 1;'
\set ON_ERROR_STOP 0
DELETE FROM customers WHERE id = 1;
\set ON_ERROR_STOP 1

\echo
\echo '-- The foreign-key graph below customers: what a purge follows, and what it only detaches.'
\echo 'SELECT depth, child, parent, on_delete, disposition, in_cycle, indexed, warnings FROM uproot.graph(''customers'');'
SELECT depth, child, parent, on_delete, disposition, in_cycle, indexed, warnings
  FROM uproot.graph('customers');

\echo '-- What purging customer 1 would take with it (read-only, no locks).'
\echo 'SELECT label, action, rows, via FROM uproot.preview(''customers'', 1);'
SELECT label, action, rows, via FROM uproot.preview('customers', 1);

\echo '-- Purge it, in the caller''s own transaction: the whole family goes, or nothing does.'
\echo 'BEGIN; SELECT * FROM uproot.purge(''customers'', 1); COMMIT;'
BEGIN;
SELECT * FROM uproot.purge('customers', 1);
COMMIT;

\echo '-- Afterwards: only Grace''s rows are left (comment 2, her reply in Ada''s thread, went with it).'
SELECT 'customers' AS "table", count(*) AS rows_left, string_agg(id::text, ', ' ORDER BY id) AS ids FROM customers
UNION ALL SELECT 'orders',   count(*), string_agg(id::text, ', ' ORDER BY id) FROM orders
UNION ALL SELECT 'items',    count(*), string_agg(id::text, ', ' ORDER BY id) FROM items
UNION ALL SELECT 'events',   count(*), string_agg(id::text, ', ' ORDER BY id) FROM events
UNION ALL SELECT 'comments', count(*), string_agg(id::text, ', ' ORDER BY id) FROM comments;

\echo '-- The SET NULL edge detached ticket 1 instead of deleting it, as ON DELETE SET NULL would.'
\echo 'TABLE support_tickets;'
SELECT * FROM support_tickets ORDER BY id;

-- Fail the demo loudly if the outcome is not exactly that.
DO $$
BEGIN
    ASSERT (SELECT array_agg(id ORDER BY id) FROM customers) = '{2}', 'customers';
    ASSERT (SELECT array_agg(id ORDER BY id) FROM orders)    = '{20}', 'orders';
    ASSERT (SELECT array_agg(id ORDER BY id) FROM items)     = '{200}', 'items';
    ASSERT (SELECT array_agg(id ORDER BY id) FROM events)    = '{2000}', 'events';
    ASSERT (SELECT array_agg(id ORDER BY id) FROM comments)  = '{4}', 'comments';
    ASSERT (SELECT array_agg(id ORDER BY id) FROM support_tickets WHERE order_id IS NULL) = '{1}', 'ticket 1 detached';
    ASSERT (SELECT order_id FROM support_tickets WHERE id = 2) = 20, 'ticket 2 untouched';
END
$$;
SQL

say "archive a family instead, look at the ledger, and restore it"
pg_psql "$DEMO_PORT" demo <<'SQL'
\pset null '(null)'
\echo '-- A migration run by the schema owner creates the archive tables once.'
\echo 'SELECT * FROM uproot.prepare_archive(''customers'');'
SELECT * FROM uproot.prepare_archive('customers');

\echo '-- Archive Grace (customer 2): her family moves into uproot_archive as one batch.'
\echo 'SELECT * FROM uproot.archive(''customers'', 2);'
SELECT * FROM uproot.archive('customers', 2);

\echo '-- The ledger, and one archive table.'
SELECT id, root, keys, archived_by, counts, restored_at FROM uproot.batches ORDER BY id;
SELECT * FROM uproot_archive."public.orders";

\echo '-- Put the batch back: parents first, the SET NULL reference reattached.'
\echo 'SELECT * FROM uproot.restore(1);'
SELECT * FROM uproot.restore(1);
SELECT id, order_id FROM support_tickets ORDER BY id;
SELECT id, restored_at IS NOT NULL AS restored FROM uproot.batches ORDER BY id;

DO $$
BEGIN
    ASSERT (SELECT array_agg(id ORDER BY id) FROM customers) = '{2}', 'Grace is back';
    ASSERT (SELECT array_agg(id ORDER BY id) FROM events)    = '{2000}', 'her events are back';
    ASSERT (SELECT order_id FROM support_tickets WHERE id = 2) = 20, 'ticket 2 reattached';
    ASSERT (SELECT count(*) FROM uproot_archive."public.orders") = 0, 'the batch was emptied';
END
$$;
SQL

say "a retention job: archive old orders in batches of whole families, one transaction each"
pg_psql "$DEMO_PORT" demo <<'SQL'
INSERT INTO orders SELECT g, 2, date '2020-01-01' + (g - 1000) FROM generate_series(1001, 1050) g;
INSERT INTO items SELECT g * 10, g, 'widget', 1 FROM generate_series(1001, 1050) g;
\echo '-- 50 old orders of Grace, one item each. A job archives orders placed before 2021, 20 per batch.'
SELECT name, action, batch_roots FROM uproot.create_job('old-orders', 'orders', $$placed_on < date '2021-01-01'$$, batch_roots => 20);
\echo 'CALL uproot.run_job(''old-orders'', verbose => true);'
CALL uproot.run_job('old-orders', verbose => true);
\echo '-- The run log answers "what did the last run do?"'
SELECT job, batches, roots, rows, stop_reason FROM uproot.job_runs ORDER BY run_id;
DO $$
BEGIN
    ASSERT (SELECT count(*) FROM orders WHERE placed_on < date '2021-01-01') = 0, 'old orders archived';
    ASSERT (SELECT count(*) FROM uproot_archive."public.items") = 50, 'with their items';
    ASSERT (SELECT stop_reason FROM uproot.job_runs ORDER BY run_id DESC LIMIT 1) = 'done', 'run done';
END
$$;
SQL

say "demo done; the cluster is stopped on exit (data stays in $DEMO_DIR until the next run)"
