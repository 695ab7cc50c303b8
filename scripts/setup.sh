#!/usr/bin/env bash
# Install what pg_uproot needs on Debian bookworm, then build and install the extension into
# PostgreSQL 15 (Debian's). Safe to re-run: every step is skipped when it is already done.
#
#   bash scripts/setup.sh [--release] [--no-install] [--pg MAJOR]...
#
#   --release     build with the release profile (slower to build, faster to run)
#   --no-install  stop after the toolchain; do not build or install the extension
#   --pg MAJOR    set up PostgreSQL MAJOR (repeatable; default: $PG_MAJOR, else 15). 15 comes from
#                 Debian. Another version is built from its vendored source tarball (see
#                 scripts/build-postgres.sh), cached between runs; without one, it comes from apt
#                 (which then needs apt.postgresql.org, as GitHub CI sets up).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

release="" install=1 versions=()
while [ $# -gt 0 ]; do
    case "$1" in
        --release) release=--release ;;
        --no-install) install=0 ;;
        --pg) [ $# -ge 2 ] || die "--pg needs a version"; versions+=("$2"); shift ;;
        *) die "unknown option: $1" ;;
    esac
    shift
done
[ ${#versions[@]} -gt 0 ] || versions=("$PG_MAJOR")

export DEBIAN_FRONTEND=noninteractive

# Debian packages: clang for pgrx's bindgen, libssl-dev + pkg-config for cargo-pgrx itself, sudo
# to run Postgres as `postgres`, python3 for the differential test, curl + ca-certificates for
# rustup. Per version: a packaged PostgreSQL with its server headers (pgrx compiles against them,
# and they ship pg_regress / pg_isolation_regress) and pg_cron; or what a source build needs.
PACKAGES=(build-essential clang libclang-dev pkg-config libssl-dev sudo python3 curl ca-certificates)
for v in "${versions[@]}"; do
    if pg_from_source "$v"; then
        PACKAGES+=(bison flex libreadline-dev zlib1g-dev)
    else
        PACKAGES+=("postgresql-$v" "postgresql-server-dev-$v" "postgresql-$v-cron")
    fi
done

missing=()
for pkg in $(printf '%s\n' "${PACKAGES[@]}" | sort -u); do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "apt-get not found: this script targets Debian bookworm; install ${missing[*]} yourself"
    if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
        die "not root and sudo is missing: run as root, or install sudo"
    fi
    say "apt-get install ${missing[*]}"
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Rust: bookworm's own cargo (1.63) is far too old for pgrx, and bookworm has no rustup package,
# so a missing toolchain comes from rustup.rs (the official installer).
if ! command -v cargo >/dev/null; then
    say "cargo not found: installing Rust with rustup (https://rustup.rs) into ~/.cargo"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
        | sh -s -- -y --profile minimal --default-toolchain stable \
        || die "could not install Rust; install it from https://rustup.rs and re-run"
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

PGRX_VERSION=0.18.1
if [ "$(cargo pgrx --version 2>/dev/null || true)" != "cargo-pgrx $PGRX_VERSION" ]; then
    say "cargo install cargo-pgrx $PGRX_VERSION (takes a few minutes)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

# Servers run as the `postgres` OS user; Debian's packages create it, a source build does not.
if ! id postgres >/dev/null 2>&1; then
    say "create the postgres OS user"
    "${SUDO[@]}" useradd --system --user-group --home-dir /var/lib/postgresql --create-home \
        --shell /bin/bash postgres
fi

for v in "${versions[@]}"; do
    if pg_from_source "$v"; then
        bash "$UPROOT_ROOT/scripts/build-postgres.sh" "$v"
    fi
    pg_use_version "$v"
    [ -x "$PG_CONFIG" ] || die "no pg_config for PostgreSQL $v at $PG_CONFIG"
    # pgrx needs to know where pg_config is; it downloads no PostgreSQL. A source build's entry
    # follows the cache (a new tarball is a new path); a packaged version's entry, once written,
    # is left alone (it may point at a copy of the same version). Rewriting config.toml makes pgrx
    # regenerate its bindings for every version in every build tree, so it is done only when needed.
    if pg_from_source "$v" && [ -z "${UPROOT_PG_BIN:-}" ]; then
        grep -qsxF "pg$v = \"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml" || init=1
    else
        grep -qs "^pg$v *=" "${PGRX_HOME:-$HOME/.pgrx}/config.toml" || init=1
    fi
    if [ "${init:-0}" -eq 1 ]; then
        say "cargo pgrx init --pg$v $PG_CONFIG"
        cargo pgrx init "--pg$v" "$PG_CONFIG"
    fi
    init=0

    if [ "$install" -eq 1 ]; then
        say "build and install pg_uproot into PostgreSQL $v ${release:+(release)}"
        install_extension $release
    fi
done
