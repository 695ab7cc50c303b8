#!/usr/bin/env bash
# Benchmark pg_uproot (purge, preview, archive, restore, jobs) against native ON DELETE CASCADE and
# hand-written CTEs (see BENCHMARKS.md).
#
#   bench/run.sh [--quick] [--reps N] [--big] [--big-reps N] [--big-timeout S] [--shapes a,b] [--layouts a,b]
#                [--explain] [--no-install]
#
# Installs the release build, starts a throwaway cluster (port 5650, data in /tmp/pg_uproot_bench),
# runs bench/bench.py, writes bench/results/latest.md (and with --explain, the plans and trigger
# times behind the figures in bench/results/explain-*.txt), and stops the cluster.
# Environment: PG_CONFIG (the PostgreSQL to install into and run), BENCH_PORT, BENCH_DATA (the
# cluster's data directory; the library copy goes next to it), BENCH_SOCKET_DIR (default /tmp),
# BENCH_LIBRARY (the library to measure: default `installed`, the one in PG_CONFIG's installation,
# used in place; or a path to another build's .so, loaded from a private copy — only where
# PG_CONFIG's installation has no pg_uproot.so of its own, or the library would load twice).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGBIN=$("$PG_CONFIG" --bindir)
PORT=${BENCH_PORT:-5650}
DATA=${BENCH_DATA:-/tmp/pg_uproot_bench}
SOCKET_DIR=${BENCH_SOCKET_DIR:-/tmp}
install=1
explain=0
args=()
command="bench/run.sh $*"
while [ $# -gt 0 ]; do
    case $1 in
        --no-install) install=0 ;;
        --quick | --big) args+=("$1") ;;
        --explain) explain=1 ;;
        --reps | --big-reps | --big-timeout | --shapes | --layouts) args+=("$1" "${2:?$1 needs a value}"); shift ;;
        -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done

# Postgres refuses to run as root.
as_pg() { if [ "$(id -un)" = postgres ]; then "$@"; else sudo -u postgres "$@"; fi; }

if [ $install = 1 ]; then
    # Real figures need the optimised build; a debug build is several times slower.
    cargo pgrx install --release --pg-config "$PG_CONFIG"
fi

# The cluster loads a private copy of the release library: the system-wide one is shared with other
# work on this machine, which may reinstall a debug build over it during the run.
LIB=${DATA}_lib
library=$LIB/pg_uproot
if [ "${BENCH_LIBRARY:-installed}" = installed ]; then
    library='$libdir/pg_uproot'
else
    rm -rf "$LIB" && mkdir -p "$LIB"
    cp -p "$BENCH_LIBRARY" "$LIB/pg_uproot.so" || { echo "no library at $BENCH_LIBRARY" >&2; exit 1; }
    chmod -R a+rX "$LIB"
fi

if [ -f "$DATA/postmaster.pid" ]; then as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast stop || true; fi
rm -rf "$DATA"
as_pg "$PGBIN/initdb" -D "$DATA" --auth=trust -E UTF8 --locale=C >/dev/null
# Defaults, except: the whole data set fits in shared buffers, and commits do not wait for a WAL
# flush (the same for every method; fsync stays on).
cat >>"$DATA/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$SOCKET_DIR'
shared_buffers = 512MB
synchronous_commit = off
EOF
start() { as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w start "$@" >/dev/null; }
stop() { as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null; }
start
trap stop EXIT

bench=(python3 bench/bench.py --pgbin "$PGBIN" --port "$PORT" --host "$SOCKET_DIR" --library "$library" "${args[@]}")
"${bench[@]}" --command "$command"

if [ $explain = 1 ]; then
    # After the measurements, on the same templates: pg_stat_statements is loaded only now.
    stop
    start -o "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all -c pg_stat_statements.track_planning=on"
    "${bench[@]}" --explain
fi
