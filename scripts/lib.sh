# shellcheck shell=bash disable=SC2034  # sourced: its variables are used by the scripts that source it
# Shared helpers for scripts/{setup,demo,test}.sh. Source it; it defines functions and variables only.
#
# Postgres refuses to run as root, so every server runs as the OS user `postgres` (via sudo, which
# also works for a non-root user with sudo rights). Clients (psql) run as the caller and connect
# through the Unix socket in /tmp with trust auth.

UPROOT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_MAJOR="${PG_MAJOR:-15}"
# UPROOT_PG_BIN points at another installation's bin directory (a copy, or a source build).
PG_BIN="${UPROOT_PG_BIN:-/usr/lib/postgresql/${PG_MAJOR}/bin}"
PG_CONFIG="${PG_BIN}/pg_config"
PGXS_TEST="$(dirname "$PG_BIN")/lib/pgxs/src/test"
PG_SOCKDIR=/tmp
# Throwaway directories and ports: UPROOT_TMP and UPROOT_PORT_BASE keep parallel runs apart.
UPROOT_TMP="${UPROOT_TMP:-/tmp}"
UPROOT_PORT_BASE="${UPROOT_PORT_BASE:-5610}"

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
    psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKDIR" -p "$port" -U postgres -d "$db" "$@"
}

# install_extension [--release]: build pg_uproot and install it into the system Postgres.
install_extension() {
    local args=(--pg-config "$PG_CONFIG")
    [ "${1:-}" = --release ] && args+=(--release)
    # cargo-pgrx copies into root-owned directories; as a normal user it does that through sudo.
    [ "$(id -u)" -eq 0 ] || args+=(--sudo)
    (cd "$UPROOT_ROOT" && cargo pgrx install "${args[@]}")
}
