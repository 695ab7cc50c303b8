# shellcheck shell=bash
# Sourced by ops tests: build_release COMMIT VERSION prints the directory of a `cargo pgrx
# package` of pg_uproot as released at COMMIT (usr/lib/.../pg_uproot.so and the extension's
# control and SQL files), built once per machine and cached under ~/.cache/pg_uproot.
# The release's sources ship next to this file (pg_uproot-VERSION-src.tar.gz, made with
# `git archive COMMIT -- Cargo.toml Cargo.lock core src sql pg_uproot.control`), so a shallow
# clone works too. Needs UPROOT_ROOT and PG_BIN.
build_release() {
    local commit="$1" version="$2"
    local tarball; tarball="$(dirname "${BASH_SOURCE[0]}")/pg_uproot-$version-src.tar.gz"
    local major; major=$("$PG_BIN/pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
    local cache="${XDG_CACHE_HOME:-$HOME/.cache}/pg_uproot/release-$version-pg$major-${commit:0:12}"
    if [ ! -f "$cache/done" ]; then
        rm -rf "$cache" && mkdir -p "$cache/src"
        tar -xzf "$tarball" -C "$cache/src" >&2
        # Reuse the current build's compiled dependencies (hard links, no copy); the two
        # packages of this repository are built afresh, since cargo would take the current
        # ones for fresh.
        if [ -d "$UPROOT_ROOT/target/debug" ]; then
            cp -al "$UPROOT_ROOT/target" "$cache/src/target"
            (cd "$cache/src" && cargo clean -p uproot-core -p pg_uproot >&2)
        fi
        (cd "$cache/src" && cargo pgrx package --debug --pg-config "$PG_BIN/pg_config" --out-dir "$cache/pkg" >&2) || return 1
        rm -rf "$cache/src/target"
        touch "$cache/done"
    fi
    echo "$cache/pkg"
}
