#!/usr/bin/env bash
# shellcheck disable=SC2119  # install_extension is called without its optional --release
# The README's test command (and CI's, via .ci/run): install what is missing, then run every suite
# and exit non-zero if any of them fails.
#
#   bash scripts/test.sh [suite...]        suites: core pgtest regress isolation differential cron
#
#   core          cargo test -p uproot-core: the pure graph and planner code, no Postgres
#   pgtest        cargo pgrx test pg15 --runas postgres: the #[pg_test]s in src/
#   regress       pg_regress over pg_test/regress: sql/NAME.sql against expected/NAME.out
#   isolation     pg_isolation_regress over pg_test/isolation: specs/NAME.spec against expected/NAME.out
#   differential  pg_test/differential/run.py: random schemas, purge and archive vs. native cascade
#   cron          pg_test/cron/run.sh: a real pg_cron schedules uproot.run_job (about a minute)
#   ops           pg_test/ops/*.sh: scripted operations tests (backups, upgrades, standbys, ...)
#
# regress and isolation run every test in sorted order, or the order given by a `schedule` file
# in the suite directory if there is one (pg_regress schedule syntax: `test: name1 name2`).
# A `temp.conf` in the suite directory is appended to the temporary instance's postgresql.conf.
# Each runs in its own temporary instance (C locale, UTF8). Regress test files create the
# extension themselves; isolation specs get it through --load-extension=pg_uproot.
#
# A suite with no test files yet is skipped with a message; once it has files, it runs.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_SUITES=(core pgtest regress isolation differential cron ops)
SUITES=("$@")
[ ${#SUITES[@]} -gt 0 ] || SUITES=("${ALL_SUITES[@]}")
for s in "${SUITES[@]}"; do
    [[ " ${ALL_SUITES[*]} " == *" $s "* ]] || die "unknown suite '$s' (suites: ${ALL_SUITES[*]})"
done

# Working directories and ports (all throwaway, recreated on every run).
PGTEST_DATA=$UPROOT_TMP/pg_uproot_pgtest
REGRESS_DIR=$UPROOT_TMP/pg_uproot_regress
REGRESS_PORT=$((UPROOT_PORT_BASE + 1))
ISOLATION_DIR=$UPROOT_TMP/pg_uproot_isolation
ISOLATION_PORT=$((UPROOT_PORT_BASE + 2))
DIFF_DIR=$UPROOT_TMP/pg_uproot_difftest
DIFF_PORT=$((UPROOT_PORT_BASE + 5))
DIFF_SEEDS="${UPROOT_DIFF_SEEDS:-200}"

SKIP=77 # exit status of a suite that has nothing to run yet

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
    # This installs a test build (with the `tests` schema) into the system Postgres; the regular
    # build is installed again before the suites that use the extension (see below).
    cargo pgrx test "pg$PG_MAJOR" --runas postgres --pgdata "$PGTEST_DATA"
}

# list_tests DIR SUBDIR EXT: test names in DIR/SUBDIR/*.EXT, sorted, one per line.
list_tests() {
    local f
    for f in "$1/$2"/*."$3"; do
        [ -e "$f" ] && basename "$f" ".$3"
    done | LC_ALL=C sort
}

# has_expected DIR NAME: DIR/expected has NAME.out or an alternative NAME_N.out.
has_expected() {
    local f
    for f in "$1/expected/$2.out" "$1/expected/$2"_[0-9].out; do
        [ -e "$f" ] && return 0
    done
    return 1
}

# run_pg_regress DRIVER SRC WORK PORT SUBDIR EXT [driver options...]: copy the suite SRC to WORK
# (owned by postgres, who must write results there), run DRIVER on a temporary instance as
# postgres, and print regression.diffs on failure.
run_pg_regress() {
    local driver="$1" src="$2" work="$3" port="$4" subdir="$5" ext="$6"
    shift 6
    local opts=("$@") tests=() runnable=() missing=() t rc=0

    if [ -f "$src/schedule" ]; then
        opts+=(--schedule="$work/schedule")
    else
        mapfile -t tests < <(list_tests "$src" "$subdir" "$ext")
        [ ${#tests[@]} -gt 0 ] || { echo "no $src/$subdir/*.$ext yet"; return $SKIP; }
        # pg_regress gives up at the first test without an expected file: run the others, then
        # fail the suite naming the ones that lack it.
        for t in "${tests[@]}"; do
            if has_expected "$src" "$t"; then runnable+=("$t"); else missing+=("$t"); fi
        done
        tests=("${runnable[@]}")
    fi
    if [ -f "$src/temp.conf" ]; then opts+=(--temp-config="$work/temp.conf"); fi

    # A killed earlier run may have left its temporary instance running.
    pg_stop_under "$work"
    pg_remove "$work"
    as_postgres mkdir -p "$work"
    tar -C "$src" --exclude=./results --exclude=./output_iso --exclude='./regression.*' -cf - . \
        | as_postgres tar -C "$work" -xf -

    if [ -f "$src/schedule" ] || [ ${#tests[@]} -gt 0 ]; then
        as_postgres "$driver" --bindir="$PG_BIN" --inputdir="$work" --outputdir="$work" \
            --temp-instance="$work/tmp_check" --port="$port" --encoding=UTF8 --no-locale \
            "${opts[@]}" "${tests[@]}" || rc=$?
    fi
    if as_postgres test -s "$work/regression.diffs" && [ "$rc" -ne 0 ]; then
        echo "---- $work/regression.diffs ----"
        as_postgres cat "$work/regression.diffs"
        echo "---- end of $work/regression.diffs (results are in $work/results) ----"
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "FAILED: no expected/NAME.out for: ${missing[*]}"
        rc=1
    fi
    return "$rc"
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
    bash "$UPROOT_ROOT/pg_test/cron/run.sh"
}

# Each pg_test/ops/NAME.sh runs on its own, as root (its servers run as postgres), with
# PG_BIN, UPROOT_ROOT, UPROOT_WORK (an empty directory of its own) and UPROOT_PORT (it may use
# UPROOT_PORT .. UPROOT_PORT+4) in its environment; exit 0 means it passed. It may source
# scripts/lib.sh for pg_cluster_start and friends. UPROOT_OPS=NAME runs only that one.
suite_ops() {
    local f name rc=0 n=0 port=$((UPROOT_PORT_BASE + 20))
    for f in "$UPROOT_ROOT"/pg_test/ops/*.sh; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .sh)
        [ -z "${UPROOT_OPS:-}" ] || [ "$UPROOT_OPS" = "$name" ] || continue
        n=$((n + 1))
        echo "-- ops: $name"
        pg_remove "$UPROOT_TMP/pg_uproot_ops/$name"
        mkdir -p "$UPROOT_TMP/pg_uproot_ops/$name"
        chmod 777 "$UPROOT_TMP/pg_uproot_ops" "$UPROOT_TMP/pg_uproot_ops/$name"
        if PG_BIN="$PG_BIN" UPROOT_ROOT="$UPROOT_ROOT" UPROOT_WORK="$UPROOT_TMP/pg_uproot_ops/$name" \
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

t_setup=$SECONDS
bash "$UPROOT_ROOT/scripts/setup.sh" --no-install
t_setup=$((SECONDS - t_setup))

declare -A STATUS TIME
extension_installed=0

for suite in "${SUITES[@]}"; do
    # The regular build must be installed for the SQL-level suites, after pgtest has replaced it
    # with its test build. Done once, just before the first suite that needs it.
    if [ "$suite" != core ] && [ "$suite" != pgtest ] && [ $extension_installed -eq 0 ]; then
        say "build and install pg_uproot into PostgreSQL $PG_MAJOR"
        if install_extension; then extension_installed=1; else extension_installed=-1; fi
    fi

    say "suite: $suite"
    start=$SECONDS
    set +e
    if [ $extension_installed -eq -1 ] && [ "$suite" != core ] && [ "$suite" != pgtest ]; then
        echo "the extension could not be built and installed"
        rc=1
    else
        ( set -e; "suite_$suite" )
        rc=$?
    fi
    set -e
    TIME[$suite]=$((SECONDS - start))
    case $rc in
        0) STATUS[$suite]=passed ;;
        "$SKIP") STATUS[$suite]=skipped ;;
        *) STATUS[$suite]=FAILED ;;
    esac
    [ "$suite" = pgtest ] && extension_installed=0 # pgtest installed its own build
done

# Leave the regular build installed, not pgtest's test build.
if [[ " ${SUITES[*]} " == *" pgtest "* ]] && [ $extension_installed -eq 0 ]; then
    say "reinstall the regular build of pg_uproot"
    install_extension || true
fi

passed=0 failed=0 skipped=0
say "summary"
printf '  %-13s %-8s %5ss\n' setup 'done' "$t_setup"
for suite in "${SUITES[@]}"; do
    printf '  %-13s %-8s %5ss\n' "$suite" "${STATUS[$suite]}" "${TIME[$suite]}"
    case "${STATUS[$suite]}" in
        passed) passed=$((passed + 1)) ;;
        skipped) skipped=$((skipped + 1)) ;;
        *) failed=$((failed + 1)) ;;
    esac
done
[ $skipped -eq 0 ] || echo "  ($skipped suite(s) skipped: nothing to run yet)"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
