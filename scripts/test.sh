#!/usr/bin/env bash
# shellcheck disable=SC2119  # install_extension is called without its optional --release
# The README's test command (and CI's, via .ci/run): install what is missing, then run every suite
# against every supported PostgreSQL version and exit non-zero if any of them fails.
#
#   bash scripts/test.sh [suite...]        suites: core pgtest regress isolation differential cron ops
#
#   core          cargo test -p uproot-core: the pure graph and planner code, no Postgres (run once)
#   pgtest        cargo pgrx test pgNN --runas postgres: the #[pg_test]s in src/
#   regress       pg_regress over pg_test/regress: sql/NAME.sql against expected/NAME.out
#   isolation     pg_isolation_regress over pg_test/isolation: specs/NAME.spec against expected/NAME.out
#   differential  pg_test/differential/run.py: random schemas, purge and archive vs. native cascade
#   cron          pg_test/cron/run.sh: a real pg_cron schedules uproot.run_job and a drain job (about four minutes)
#   ops           pg_test/ops/*.sh: scripted operations tests (backups, upgrades, standbys, ...)
#
# Versions: PostgreSQL 15 (Debian's packages), 17 and 18 (built once from the vendored source
# tarballs, see scripts/build-postgres.sh, and cached). UPROOT_PG_VERSIONS="17 18" or PG_MAJOR=17
# limits a run to those versions; UPROOT_PG_BIN (one installation) implies its own version only.
# Each version has its own work directory ($UPROOT_TMP/pg_uproot_pgNN) and ports
# (UPROOT_PORT_BASE + 1000 * (NN - 15) + offset), so runs of different versions never collide.
# The last line is `N passed, M failed`, counting one result per suite and version.
#
# A new suite is a function suite_NAME (run once per version, with PG_BIN, PG_CONFIG, PGXS_TEST,
# VWORK and VPORT set for that version, and PG_BIN first on PATH) plus its name in ALL_SUITES.
#
set -euo pipefail
# The versions to test, decided before lib.sh gives PG_MAJOR its default.
if [ -n "${UPROOT_PG_VERSIONS:-}" ]; then
    read -r -a VERSIONS <<<"$UPROOT_PG_VERSIONS"
elif [ -n "${PG_MAJOR:-}" ]; then
    VERSIONS=("$PG_MAJOR")
elif [ -n "${UPROOT_PG_BIN:-}" ]; then
    VERSIONS=("$("$UPROOT_PG_BIN/pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')")
else
    VERSIONS=(15 17 18)
fi
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
for v in "${VERSIONS[@]}"; do [[ "$v" =~ ^[0-9]+$ ]] || die "not a PostgreSQL major version: '$v'"; done
if [ -n "${UPROOT_PG_BIN:-}" ] && [ ${#VERSIONS[@]} -ne 1 ]; then
    die "UPROOT_PG_BIN names one installation: test one version with it (UPROOT_PG_VERSIONS=NN)"
fi

ALL_SUITES=(core pgtest regress isolation differential cron ops)
SUITES=("$@")
[ ${#SUITES[@]} -gt 0 ] || SUITES=("${ALL_SUITES[@]}")
for s in "${SUITES[@]}"; do
    [[ " ${ALL_SUITES[*]} " == *" $s "* ]] || die "unknown suite '$s' (suites: ${ALL_SUITES[*]})"
done

DIFF_SEEDS="${UPROOT_DIFF_SEEDS:-200}"
BASE_PATH="$PATH"

# use_version MAJOR: point the suites at PostgreSQL MAJOR: its binaries, work directory, ports.
use_version() {
    pg_use_version "$1"
    export PATH="$PG_BIN:$BASE_PATH" # psql, pg_dump, ... of this version
    VWORK=$UPROOT_TMP/pg_uproot_pg$1
    VPORT=$((UPROOT_PORT_BASE + 1000 * ($1 - 15)))
    mkdir -p "$VWORK"
    chmod 777 "$VWORK" 2>/dev/null || true
    # Working directories and ports (all throwaway, recreated on every run).
    PGTEST_DATA=$VWORK/pgtest
    REGRESS_DIR=$VWORK/regress
    REGRESS_PORT=$((VPORT + 1))
    ISOLATION_DIR=$VWORK/isolation
    ISOLATION_PORT=$((VPORT + 2))
    DIFF_DIR=$VWORK/difftest
    DIFF_PORT=$((VPORT + 5))
    CRON_DIR=$VWORK/cron
    CRON_PORT=$((VPORT + 10))
    OPS_DIR=$VWORK/ops
    OPS_PORT=$((VPORT + 20))
}

suite_core() {
    [ -f "$UPROOT_ROOT/core/Cargo.toml" ] || { echo "no core/Cargo.toml"; return $SKIP; }
    cd "$UPROOT_ROOT"
    cargo test -p uproot-core
}

suite_pgtest() {
    grep -rqs '#\[pg_test\]' "$UPROOT_ROOT/src" || { echo "no #[pg_test] in src/"; return $SKIP; }
    # pgrx creates PGDATA (a per-run subdirectory of this) as `postgres`, so start from nothing:
    # a directory left by an earlier run may be owned by someone else or hold a live postmaster.
    pg_stop_under "$PGTEST_DATA"
    pg_remove "$PGTEST_DATA"
    cd "$UPROOT_ROOT"
    # This installs a test build (with the `tests` schema) into the Postgres that pgrx's config
    # names for this version; the regular build is installed again before the suites that use
    # the extension (see below).
    cargo pgrx test "pg$PG_MAJOR" --runas postgres --pgdata "$PGTEST_DATA"
}

suite_regress() {
    run_pg_regress "$PGXS_TEST/regress/pg_regress" "$UPROOT_ROOT/pg_test/regress" \
        "$REGRESS_DIR" "$REGRESS_PORT" sql sql
}

suite_isolation() {
    run_pg_regress "$PGXS_TEST/isolation/pg_isolation_regress" "$UPROOT_ROOT/pg_test/isolation" \
        "$ISOLATION_DIR" "$ISOLATION_PORT" specs spec --load-extension=pg_uproot
}

suite_differential() {
    local runner="$UPROOT_ROOT/pg_test/differential/run.py"
    [ -f "$runner" ] || { echo "missing $runner"; return 1; }
    trap 'pg_cluster_stop "$DIFF_DIR"' EXIT
    pg_cluster_start "$DIFF_DIR" "$DIFF_PORT"
    cd "$UPROOT_ROOT"
    python3 "$runner" --seeds "$DIFF_SEEDS" --port "$DIFF_PORT"
}

suite_cron() {
    PG_BIN="$PG_BIN" UPROOT_WORK="$CRON_DIR" UPROOT_PORT="$CRON_PORT" bash "$UPROOT_ROOT/pg_test/cron/run.sh"
}

# Each pg_test/ops/NAME.sh runs on its own, as root (its servers run as postgres), once per
# version, with PG_BIN, PG_MAJOR, UPROOT_ROOT, UPROOT_WORK (an empty directory of its own) and
# UPROOT_PORT (it may use UPROOT_PORT .. UPROOT_PORT+4) in its environment, and PG_BIN first on
# PATH; exit 0 means it passed. It may source scripts/lib.sh for pg_cluster_start and friends
# (UPROOT_PG_BIN is set to PG_BIN, so lib.sh keeps the same installation). UPROOT_OPS=NAME runs
# only that one.
suite_ops() {
    local f name rc=0 n=0 port=$OPS_PORT bin=$PG_BIN
    for f in "$UPROOT_ROOT"/pg_test/ops/*.sh; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .sh)
        [ -z "${UPROOT_OPS:-}" ] || [ "$UPROOT_OPS" = "$name" ] || continue
        n=$((n + 1))
        echo "-- ops: $name"
        pg_stop_under "$OPS_DIR/$name"
        pg_remove "$OPS_DIR/$name"
        mkdir -p "$OPS_DIR/$name"
        chmod 777 "$OPS_DIR" "$OPS_DIR/$name"
        if PG_BIN="$bin" UPROOT_PG_BIN="$bin" PG_MAJOR="$PG_MAJOR" UPROOT_ROOT="$UPROOT_ROOT" UPROOT_WORK="$OPS_DIR/$name" \
            UPROOT_PORT="$port" bash "$f"; then
            echo "ok: $name"
        else
            echo "FAILED: $name"
            rc=1
        fi
        port=$((port + 5))
    done
    [ "$n" -gt 0 ] || { echo "no pg_test/ops/*.sh yet"; return $SKIP; }
    return "$rc"
}

# ---------------------------------------------------------------------------------------------

declare -A STATUS TIME
RESULTS=() # "suite version" pairs, in the order they ran
t_all=$SECONDS

# run_suite SUITE VERSION: run suite_SUITE in a subshell and record its status and time.
run_suite() {
    local suite="$1" v="$2" start=$SECONDS rc
    say "suite: $suite${v:+ (PostgreSQL $v)}"
    set +e
    ( set -e; "suite_$suite" )
    rc=$?
    set -e
    record "$suite" "$v" "$rc" $((SECONDS - start))
}

# record SUITE VERSION RC SECONDS
record() {
    RESULTS+=("$1 $2")
    TIME["$1 $2"]=$4
    case $3 in
        0) STATUS["$1 $2"]=passed ;;
        "$SKIP") STATUS["$1 $2"]=skipped ;;
        *) STATUS["$1 $2"]=FAILED ;;
    esac
}

SQL_SUITES=()
for s in "${SUITES[@]}"; do [ "$s" = core ] || SQL_SUITES+=("$s"); done

for v in "${VERSIONS[@]}"; do
    say "PostgreSQL $v: setup"
    start=$SECONDS
    set +e
    bash "$UPROOT_ROOT/scripts/setup.sh" --no-install --pg "$v"
    rc=$?
    set -e
    TIME["setup $v"]=$((SECONDS - start))
    use_version "$v"
    # The binaries must be the version they test (UPROOT_PG_BIN could name another one).
    if [ $rc -eq 0 ] && [ "$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')" != "$v" ]; then
        echo "$PG_CONFIG is not PostgreSQL $v: $("$PG_CONFIG" --version)"
        rc=1
    fi
    STATUS["setup $v"]='done'
    if [ $rc -ne 0 ]; then
        STATUS["setup $v"]=FAILED
        echo "setup for PostgreSQL $v failed: its suites fail"
        for suite in "${SQL_SUITES[@]}"; do record "$suite" "$v" 1 0; done
        continue
    fi

    # core needs no PostgreSQL: once, after the first setup (which installs the toolchain).
    if [[ " ${SUITES[*]} " == *" core "* ]] && [ -z "${STATUS[core ]:-}" ]; then
        run_suite core ""
    fi

    extension_installed=0
    for suite in "${SQL_SUITES[@]}"; do
        # The regular build must be installed for the SQL-level suites, after pgtest has replaced
        # it with its test build. Done once, just before the first suite that needs it.
        if [ "$suite" != pgtest ] && [ $extension_installed -eq 0 ]; then
            say "build and install pg_uproot into PostgreSQL $v ($PG_BIN)"
            if install_extension; then extension_installed=1; else extension_installed=-1; fi
        fi
        if [ $extension_installed -eq -1 ] && [ "$suite" != pgtest ]; then
            echo "the extension could not be built and installed"
            record "$suite" "$v" 1 0
        else
            run_suite "$suite" "$v"
        fi
        [ "$suite" = pgtest ] && extension_installed=0 # pgtest installed its own build
    done

    # Leave the regular build installed, not pgtest's test build.
    if [[ " ${SQL_SUITES[*]} " == *" pgtest "* ]] && [ $extension_installed -eq 0 ]; then
        say "reinstall the regular build of pg_uproot into PostgreSQL $v"
        install_extension || true
    fi
done
# A core-only run with no version set up successfully still runs core.
if [[ " ${SUITES[*]} " == *" core "* ]] && [ -z "${STATUS[core ]:-}" ]; then
    run_suite core ""
fi

passed=0 failed=0 skipped=0
say "summary"
for v in "${VERSIONS[@]}"; do
    printf '  %-13s %-6s %-8s %5ss\n' setup "pg$v" "${STATUS[setup $v]}" "${TIME[setup $v]}"
done
for key in "${RESULTS[@]}"; do
    read -r suite v <<<"$key"
    printf '  %-13s %-6s %-8s %5ss\n' "$suite" "${v:+pg$v}" "${STATUS[$key]}" "${TIME[$key]}"
    case "${STATUS[$key]}" in
        passed) passed=$((passed + 1)) ;;
        skipped) skipped=$((skipped + 1)) ;;
        *) failed=$((failed + 1)) ;;
    esac
done
[ $skipped -eq 0 ] || echo "  ($skipped suite(s) skipped: nothing to run yet)"
echo "  total: $((SECONDS - t_all))s for PostgreSQL ${VERSIONS[*]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
