#!/usr/bin/env bash
# No error, notice or hint that pg_uproot raises or passes on carries a Rust backtrace or panic
# text, even with RUST_BACKTRACE=1 and RUST_LIB_BACKTRACE=1 in the server's environment (they
# are set on many machines, and pgrx appends a backtrace to an error's DETAIL when they are).
# The server is started with both set; the script checks that it has them, provokes errors of
# every path (uproot's own, PostgreSQL's passing through Rust, a cancel, a Rust panic) and
# notices, and fails if any message, detail, hint or context, or the server log, has one.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$UPROOT_ROOT/scripts/lib.sh"
PG_BIN="${PG_BIN:?}"

dir=${UPROOT_WORK:?}/cluster
port=${UPROOT_PORT:?}
fail() { echo "FAIL: $*" >&2; exit 1; }

pg_stop_under "$dir"
pg_free_port "$port" "$dir"
pg_remove "$dir"
as_postgres mkdir -p "$dir"
as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust --no-locale -E UTF8 --no-sync >/dev/null
trap 'pg_cluster_stop "$dir"' EXIT
# sudo drops the caller's environment: set the variables for the server explicitly
as_postgres env RUST_BACKTRACE=1 RUST_LIB_BACKTRACE=1 "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
    -w -t 60 start -o "-p $port -k $PG_SOCKDIR -c listen_addresses='' -c fsync=off" >/dev/null \
    || { as_postgres cat "$dir/server.log" >&2; fail "could not start postgres"; }

postmaster=$(as_postgres head -1 "$dir/data/postmaster.pid")
env_of_server=$(tr '\0' '\n' < "/proc/$postmaster/environ")
for v in RUST_BACKTRACE=1 RUST_LIB_BACKTRACE=1; do
    grep -qx "$v" <<<"$env_of_server" || fail "the server was started without $v"
done
echo "ok - the server runs with RUST_BACKTRACE=1 and RUST_LIB_BACKTRACE=1"

# Every statement below fails or notices on purpose; psql goes on after errors. VERBOSITY
# default with SHOW_CONTEXT always prints message, DETAIL, HINT and CONTEXT of each.
out=$(psql -X -h "$PG_SOCKDIR" -p "$port" -U postgres -d postgres 2>&1 <<'SQL'
\set VERBOSITY default
\set SHOW_CONTEXT always
CREATE EXTENSION pg_uproot;
CREATE TABLE shops (id int PRIMARY KEY);
CREATE TABLE tills (id int PRIMARY KEY, shop_id int NOT NULL REFERENCES shops ON DELETE RESTRICT);
CREATE TABLE staff (id int PRIMARY KEY, shop_id int NOT NULL REFERENCES shops);
CREATE INDEX ON tills (shop_id);
CREATE INDEX ON staff (shop_id);
INSERT INTO shops VALUES (1), (2), (3);
INSERT INTO tills VALUES (1, 1), (2, 2);
INSERT INTO staff VALUES (1, 1), (2, 2), (3, 3);
CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'staff % may not go', OLD.id USING DETAIL = 'a trigger said so', HINT = 'ask HR';
END $$;
CREATE TRIGGER refuse BEFORE DELETE ON staff FOR EACH ROW WHEN (OLD.id = 2) EXECUTE FUNCTION refuse();
ALTER TABLE staff ENABLE ROW LEVEL SECURITY;
CREATE ROLE clerk;
GRANT USAGE ON SCHEMA uproot TO clerk;
GRANT SELECT ON shops, tills, staff TO clerk;
-- uproot's own errors
SELECT * FROM uproot.purge(NULL, 1);
SELECT * FROM uproot.purge('shops', 'x'::text);
SELECT * FROM uproot.purge_where('shops', 'id = 1 AND');
SELECT * FROM uproot.purge('shops', 1, respect_restrict => true);
SELECT * FROM uproot.restore(999);
-- PostgreSQL's errors passing through Rust: a trigger, a bad predicate, a missing privilege
SELECT * FROM uproot.purge('shops', 2);
SELECT * FROM uproot.purge_where('shops', 'no_such_column = 1');
SET ROLE clerk;
SELECT * FROM uproot.purge('shops', 1);
RESET ROLE;
-- notices: RESTRICT constraints followed, row-level security (for a role it applies to)
SELECT * FROM uproot.preview('shops', 1);
SET ROLE clerk;
SELECT * FROM uproot.preview('shops', 1);
RESET ROLE;
-- a cancel, a statement timeout, an injected error and a Rust panic inside pg_uproot (ANALYZE
-- makes the next call read the catalog again; new options and a new predicate make it build
-- a graph and prepare a statement it has not yet)
SET uproot.debug_fail_at = 'catalog_load:cancel';
ANALYZE tills;
SELECT * FROM uproot.graph('tills');
SET uproot.debug_fail_at = 'catalog_load:sleep';
SET statement_timeout = '100ms';
ANALYZE tills;
SELECT * FROM uproot.graph('tills');
RESET statement_timeout;
SET uproot.debug_fail_at = 'graph_build';
SELECT * FROM uproot.graph('shops', follow_set_null => true);
SET uproot.debug_fail_at = 'graph_build:panic';
SELECT * FROM uproot.graph('shops', respect_restrict => true, follow_set_null => true);
SET uproot.debug_fail_at = 'plan_keep:panic';
SELECT * FROM uproot.purge_where('shops', 'id = 3');
RESET uproot.debug_fail_at;
-- and it all still works
SELECT relation, action, rows FROM uproot.purge_where('shops', 'id = 3') ORDER BY 1;
SQL
)
while IFS= read -r line; do echo "    $line"; done <<<"$out"

check_clean() {
    local what="$1" text="$2" pattern
    for pattern in 'backtrace' 'stack backtrace' '\.rs:' 'panicked' 'RUST_BACKTRACE'; do
        if grep -qiE -- "$pattern" <<<"$text"; then
            grep -iE -- "$pattern" <<<"$text" | head -5 >&2
            fail "$what contains '$pattern'"
        fi
    done
    echo "ok - $what: no backtrace or panic text"
}
check_clean "the client's messages" "$out"
check_clean "the server log" "$(as_postgres cat "$dir/server.log")"

# Each provoked error must have come through, or this test proves nothing.
for expected in \
    "ERROR:  uproot: invalid root: root must not be NULL" \
    "ERROR:  uproot: invalid predicate for shops: it is an incomplete expression: it ends with AND" \
    "ERROR:  staff 2 may not go" \
    "DETAIL:  a trigger said so" \
    "ERROR:  uproot: invalid predicate for shops: column \"no_such_column\" does not exist" \
    "permission denied" \
    "NOTICE:  uproot: 1 ON DELETE RESTRICT constraint(s)" \
    "NOTICE:  uproot: row-level security is active on staff" \
    "ERROR:  canceling statement due to user request" \
    "ERROR:  canceling statement due to statement timeout" \
    "ERROR:  uproot: failing at graph_build because uproot.debug_fail_at is set" \
    "ERROR:  uproot.debug_fail_at: a Rust panic at graph_build" \
    "ERROR:  uproot.debug_fail_at: a Rust panic at plan_keep" \
    " staff    | deleted |    1"; do
    grep -qF -- "$expected" <<<"$out" || fail "expected to see: $expected"
done
echo "ok - every provoked error and notice came through"
