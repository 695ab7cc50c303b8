#!/usr/bin/env bash
# Build PostgreSQL MAJOR (and pg_cron) from the vendored source tarballs, once: the build is cached
# in $UPROOT_CACHE (default /var/cache/pg_uproot), keyed by the tarballs' checksums, so a second
# call costs a checksum and returns. Prints the installation's bin directory.
#
#   bash scripts/build-postgres.sh MAJOR        e.g. 17 or 18
#
# The tarballs come from $UPROOT_VENDOR (default: ../shared/vendor beside the repository) and are
# verified against its SHA256SUMS before anything is built. Takes 5 to 10 minutes per version on
# 2 cores. The cache lives outside home directories because the `postgres` OS user, which runs
# the servers, must be able to read and execute the installation.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

major="${1:-}"
[[ "$major" =~ ^[0-9]+$ ]] || die "usage: build-postgres.sh MAJOR"
umask 022

tarball="$(pg_source_tarball "$major")" \
    || die "no PostgreSQL $major source in $UPROOT_VENDOR (looked for postgresql-$major.*.tar.bz2)"
sum="$(vendor_checksum "$tarball")"
prefix="$(pg_source_prefix "$major")"
cron_tarball="$(vendor_file 'pg_cron-*.tar.gz')" || die "no pg_cron source in $UPROOT_VENDOR"
cron_sum="$(vendor_checksum "$cron_tarball")"
cron_name="$(basename "$cron_tarball" .tar.gz)"
cron_marker="$prefix/.${cron_name}-${cron_sum:0:12}"
fdw_marker="$prefix/.postgres_fdw-${sum:0:12}"

if [ -e "$prefix/.complete" ] && [ -e "$cron_marker" ] && [ -e "$fdw_marker" ]; then
    echo "PostgreSQL $major: $prefix/bin (cached)"
    exit 0
fi

"${SUDO[@]}" install -d -o "$(id -u)" -g "$(id -g)" -m 755 "$UPROOT_CACHE"
# Two runs building the same version at once: the second waits for the first, then finds it done.
exec 9>"$UPROOT_CACHE/.lock-$major"
flock 9

jobs="$(nproc)"
build="$UPROOT_CACHE/build-$major"

if [ ! -e "$prefix/.complete" ]; then
    say "build $(basename "$tarball" .tar.bz2) into $prefix (once; about 5-10 minutes)"
    # An interrupted earlier build leaves a prefix without .complete: start over.
    rm -rf "$prefix" "$build"
    mkdir -p "$build"
    tar -C "$build" --strip-components=1 -xjf "$tarball"
    (
        cd "$build"
        ./configure --prefix="$prefix" --without-icu --quiet >/dev/null
        make -s -j"$jobs" >/dev/null
        make -s install >/dev/null
        # pg_regress and pg_isolation_regress, which the regress and isolation suites drive.
        make -s -C src/test/regress install >/dev/null
        make -s -C src/test/isolation install >/dev/null
    ) || die "building PostgreSQL $major failed (build tree kept in $build)"
    rm -rf "$build"
    # The files of a clean installation, before any extension is added (pg_test/ops/packages.sh
    # copies exactly these to test a package on a PostgreSQL that has never seen pg_uproot).
    (cd "$prefix" && find . ! -type d ! -name '.*' | LC_ALL=C sort) >"$prefix/.manifest"
    touch "$prefix/.complete"
fi

if [ ! -e "$cron_marker" ]; then
    say "build $cron_name for PostgreSQL $major"
    rm -rf "$build"
    mkdir -p "$build"
    tar -C "$build" --strip-components=1 -xzf "$cron_tarball"
    (
        cd "$build"
        make -s -j"$jobs" PG_CONFIG="$prefix/bin/pg_config" >/dev/null
        make -s PG_CONFIG="$prefix/bin/pg_config" install >/dev/null
    ) || die "building $cron_name for PostgreSQL $major failed (build tree kept in $build)"
    rm -rf "$build"
    touch "$cron_marker"
fi
# postgres_fdw (contrib), for declared relations whose child lives in another database
# (regress 54_async_cross_database), built against the installation like any extension.
if [ ! -e "$fdw_marker" ]; then
    say "build postgres_fdw for PostgreSQL $major"
    rm -rf "$build"
    mkdir -p "$build"
    tar -C "$build" --strip-components=1 -xjf "$tarball" "$(basename "$tarball" .tar.bz2)/contrib/postgres_fdw"
    (
        cd "$build/contrib/postgres_fdw"
        make -s -j"$jobs" USE_PGXS=1 PG_CONFIG="$prefix/bin/pg_config" >/dev/null
        make -s USE_PGXS=1 PG_CONFIG="$prefix/bin/pg_config" install >/dev/null
    ) || die "building postgres_fdw for PostgreSQL $major failed (build tree kept in $build)"
    rm -rf "$build"
    touch "$fdw_marker"
fi
echo "PostgreSQL $major: $prefix/bin"
