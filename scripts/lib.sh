# shellcheck shell=bash disable=SC2034  # sourced: its variables are used by the scripts that source it
# Shared helpers for scripts/{setup,demo,test}.sh. Source it; it defines functions and variables only.
#
# Postgres refuses to run as root, so every server runs as the OS user `postgres` (via sudo, which
# also works for a non-root user with sudo rights). Clients (psql) run as the caller and connect
# through the Unix socket in /tmp with trust auth.

UPROOT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The PostgreSQL version the scripts use: PG_BIN, PG_CONFIG and PGXS_TEST are set for it at the
# end of this file (pg_use_version). UPROOT_PG_BIN points at another installation's bin directory
# (a copy of the system one, say).
PG_MAJOR="${PG_MAJOR:-15}"
PG_SOCKDIR=/tmp
# Throwaway directories and ports: UPROOT_TMP and UPROOT_PORT_BASE keep parallel runs apart.
UPROOT_TMP="${UPROOT_TMP:-/tmp}"
UPROOT_PORT_BASE="${UPROOT_PORT_BASE:-5610}"
# PostgreSQL versions other than Debian's 15 are built from source tarballs in UPROOT_VENDOR (CI
# lays shared/ beside the clone) into UPROOT_CACHE, which survives between runs on one machine.
UPROOT_VENDOR="${UPROOT_VENDOR:-$UPROOT_ROOT/../shared/vendor}"
UPROOT_CACHE="${UPROOT_CACHE:-/var/cache/pg_uproot}"

# Run privileged commands through sudo only when we are not root.
if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi

# rustup puts cargo in ~/.cargo/bin; a fresh login shell may not have it on PATH yet.
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# as_postgres CMD...: run CMD as the postgres OS user, from / so that a repo under an
# unreadable home directory does not produce "could not change directory" noise.
as_postgres() {
    if [ "$(id -un)" = postgres ]; then
        (cd / && "$@")
    else
        (cd / && sudo -u postgres -- "$@")
    fi
}

# pg_stop_under DIR: stop every postmaster whose data directory lies under DIR (at most 3 levels
# deep). Cleans up after a previous run that was killed before its trap could stop its cluster.
pg_stop_under() {
    local top="$1" pidfile
    [ -e "$top" ] || return 0
    while IFS= read -r pidfile; do
        [ -n "$pidfile" ] || continue
        echo "stopping postgres in $(dirname "$pidfile")"
        as_postgres "$PG_BIN/pg_ctl" -D "$(dirname "$pidfile")" -m immediate -w stop >/dev/null 2>&1 || true
    done < <(as_postgres find "$top" -maxdepth 3 -name postmaster.pid 2>/dev/null)
}

# pg_free_port PORT DIR: if a live postmaster with its data dir under DIR still holds PORT (its
# data dir was deleted under it, say), stop it; if another server holds PORT, fail clearly.
pg_free_port() {
    local port="$1" top="$2" lock="$PG_SOCKDIR/.s.PGSQL.$1.lock" pid datadir
    [ -e "$lock" ] || return 0
    pid="$(as_postgres sed -n 1p "$lock" 2>/dev/null || true)"
    datadir="$(as_postgres sed -n 2p "$lock" 2>/dev/null || true)"
    # A lock left by a dead server is stale; postgres itself replaces it.
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
    if [[ "$datadir" == "$top"/* ]]; then
        echo "stopping stale postgres (pid $pid) on port $port"
        as_postgres kill -QUIT "$pid" 2>/dev/null || true
        for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
    else
        die "port $port is in use by another postgres (data dir: ${datadir:-unknown}); stop it or pick another port"
    fi
}

# pg_remove DIR: delete a directory that may belong to postgres.
pg_remove() {
    [ -e "$1" ] || return 0
    if [ "$(id -u)" -eq 0 ]; then rm -rf -- "$1"; else as_postgres rm -rf -- "$1"; fi
}

# pg_cluster_start DIR PORT: a fresh throwaway cluster in DIR (removed first), listening only on
# the Unix socket $PG_SOCKDIR/.s.PGSQL.PORT, trust auth, superuser `postgres`, C locale + UTF8.
pg_cluster_start() {
    local dir="$1" port="$2"
    pg_stop_under "$dir"
    pg_free_port "$port" "$dir"
    pg_remove "$dir"
    as_postgres mkdir -p "$dir"
    as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust --no-locale -E UTF8 --no-sync >/dev/null \
        || die "initdb failed for $dir/data"
    # Throwaway data: durability off for speed; log to a file next to the data directory.
    as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
        "-p $port -k $PG_SOCKDIR -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        >/dev/null || { as_postgres cat "$dir/server.log" >&2 || true; die "could not start postgres in $dir on port $port"; }
}

# pg_cluster_stop DIR: stop the cluster in DIR if it runs (keeps the files for inspection).
pg_cluster_stop() {
    pg_stop_under "$1"
}

# pg_psql PORT DB [psql args...]: psql against a throwaway cluster, stopping at the first error.
pg_psql() {
    local port="$1" db="$2"
    shift 2
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKDIR" -p "$port" -U postgres -d "$db" "$@"
}

# install_extension [--release]: build pg_uproot and install it into $PG_CONFIG's PostgreSQL.
install_extension() {
    local args=(--pg-config "$PG_CONFIG")
    [ "${1:-}" = --release ] && args+=(--release)
    # cargo-pgrx copies into root-owned directories; as a normal user it does that through sudo.
    [ "$(id -u)" -eq 0 ] || args+=(--sudo)
    (cd "$UPROOT_ROOT" && cargo pgrx install "${args[@]}")
}

# vendor_file GLOB: the one file in UPROOT_VENDOR matching GLOB (fails if there is none).
vendor_file() {
    local f
    for f in "$UPROOT_VENDOR"/$1; do
        [ -e "$f" ] && { echo "$f"; return 0; }
    done
    return 1
}

# pg_source_tarball MAJOR: the vendored PostgreSQL MAJOR source tarball (fails if there is none).
pg_source_tarball() {
    vendor_file "postgresql-$1.*.tar.bz2"
}

# vendor_checksum FILE: FILE's SHA-256, after checking it against UPROOT_VENDOR/SHA256SUMS.
vendor_checksum() {
    local name want got
    name="$(basename "$1")"
    want="$(awk -v n="$name" '$2 == n || $2 == "*" n { print $1 }' "$UPROOT_VENDOR/SHA256SUMS" 2>/dev/null)"
    [ -n "$want" ] || die "$name is not listed in $UPROOT_VENDOR/SHA256SUMS"
    got="$(sha256sum "$1" | cut -d' ' -f1)"
    [ "$got" = "$want" ] || die "$1: checksum mismatch (SHA256SUMS says $want, the file is $got)"
    echo "$got"
}

# pg_source_prefix MAJOR: where the source build of PostgreSQL MAJOR lives in the cache, e.g.
# $UPROOT_CACHE/postgresql-17.11-dd27f2b3c59e (version and checksum: a new tarball, a new build).
pg_source_prefix() {
    local tarball sum
    tarball="$(pg_source_tarball "$1")" || return 1
    sum="$(vendor_checksum "$tarball")"
    echo "$UPROOT_CACHE/$(basename "$tarball" .tar.bz2)-${sum:0:12}"
}

# pg_from_source MAJOR: true when PostgreSQL MAJOR is built from the vendored source here rather
# than installed from Debian packages. Bookworm packages 15; other versions come from source when
# UPROOT_VENDOR has their tarball, and otherwise from apt (apt.postgresql.org, as in GitHub CI).
pg_from_source() {
    [ "$1" != 15 ] && pg_source_tarball "$1" >/dev/null
}

# pg_use_version MAJOR: point PG_MAJOR, PG_BIN, PG_CONFIG and PGXS_TEST at PostgreSQL MAJOR
# (UPROOT_PG_BIN, when set, still wins: it names one installation).
pg_use_version() {
    PG_MAJOR="$1"
    if [ -n "${UPROOT_PG_BIN:-}" ]; then
        PG_BIN="$UPROOT_PG_BIN"
    elif pg_from_source "$1"; then
        PG_BIN="$(pg_source_prefix "$1")/bin"
    else
        PG_BIN="/usr/lib/postgresql/$1/bin"
    fi
    PG_CONFIG="${PG_BIN}/pg_config"
    PGXS_TEST="$(dirname "$PG_BIN")/lib/pgxs/src/test"
}

SKIP=77 # exit status of a test suite that has nothing to run yet

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

pg_use_version "$PG_MAJOR"
