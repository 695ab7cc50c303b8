#!/usr/bin/env bash
# Install what pg_uproot needs on Debian bookworm, then build and install the extension into the
# system PostgreSQL 15 (PG_MAJOR=NN picks another version, e.g. from apt.postgresql.org in CI).
# Safe to re-run: every step is skipped when it is already done.
#
#   bash scripts/setup.sh [--release] [--no-install]
#
#   --release     build with the release profile (slower to build, faster to run)
#   --no-install  stop after the toolchain; do not build or install the extension
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

release="" install=1
for arg in "$@"; do
    case "$arg" in
        --release) release=--release ;;
        --no-install) install=0 ;;
        *) die "unknown option: $arg" ;;
    esac
done

export DEBIAN_FRONTEND=noninteractive

# Debian packages: PostgreSQL and its server headers (pgrx compiles against them, and they ship
# pg_regress / pg_isolation_regress), clang for pgrx's bindgen, libssl-dev + pkg-config for
# cargo-pgrx itself, sudo to run Postgres as `postgres`, pg_cron for scheduled jobs, python3 for
# the differential test, curl + ca-certificates for rustup.
PACKAGES=(
    "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" "postgresql-$PG_MAJOR-cron"
    build-essential clang libclang-dev pkg-config libssl-dev
    sudo python3 curl ca-certificates
)

missing=()
for pkg in "${PACKAGES[@]}"; do
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

# pgrx needs to know where pg_config is; point it at the system PostgreSQL, never download one.
if ! grep -qs "^pg$PG_MAJOR *=" "$HOME/.pgrx/config.toml"; then
    say "cargo pgrx init --pg$PG_MAJOR $PG_CONFIG"
    cargo pgrx init "--pg$PG_MAJOR" "$PG_CONFIG"
fi

if [ "$install" -eq 1 ]; then
    say "build and install pg_uproot into PostgreSQL $PG_MAJOR ${release:+(release)}"
    install_extension $release
fi
