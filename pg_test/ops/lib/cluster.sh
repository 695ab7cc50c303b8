# shellcheck shell=bash
# Sourced by ops tests: a throwaway cluster for one test, and checks that fail loudly.
# Needs PG_BIN, UPROOT_ROOT, UPROOT_WORK, UPROOT_PORT (see suite_ops in scripts/test.sh).

fail() {
    echo "FAIL: $*"
    for log in "$UPROOT_WORK"/*.log; do
        [ -f "$log" ] && { echo "---- $log (tail)"; tail -n 30 "$log"; }
    done
    exit 1
}

# as_pg CMD...: run CMD as the postgres OS user (servers refuse to run as root).
as_pg() {
    if [ "$(id -un)" = postgres ]; then (cd / && "$@"); else (cd / && sudo -u postgres -- "$@"); fi
}

# cluster_start NAME PORT [postgres -c options...]: initdb and start $UPROOT_WORK/NAME.
cluster_start() {
    local name="$1" port="$2"
    shift 2
    local dir="$UPROOT_WORK/$name"
    cluster_stop "$name"
    as_pg rm -rf "$dir"
    as_pg mkdir -p "$dir"
    as_pg "$PG_BIN/initdb" -D "$dir" -U postgres -A trust --no-locale -E UTF8 --no-sync >/dev/null \
        || fail "initdb $dir"
    local opts="-p $port -k /tmp -c listen_addresses='' -c fsync=off"
    for o in "$@"; do opts="$opts -c $o"; done
    # The server must not inherit the shell's RUST_BACKTRACE (set on these machines): users
    # never see one, and a test that wants it sets it explicitly.
    as_pg env -u RUST_BACKTRACE "$PG_BIN/pg_ctl" -D "$dir" -l "$UPROOT_WORK/$name.log" -w -t 60 start -o "$opts" >/dev/null \
        || fail "could not start $dir"
}

cluster_stop() {
    local dir="$UPROOT_WORK/$1"
    [ -f "$dir/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1
    true
}

# q PORT DB SQL...: run SQL, print unaligned tuples only, stop at the first error.
q() {
    local port="$1" db="$2"
    shift 2
    "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h /tmp -p "$port" -U postgres -d "$db" "$@"
}

# expect WHAT EXPECTED ACTUAL
expect() {
    [ "$2" = "$3" ] || fail "$1: expected [$2], got [$3]"
    echo "ok - $1"
}
