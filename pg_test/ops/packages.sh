#!/usr/bin/env bash
# A release package installs and works with no cargo involved. scripts/package.sh builds this
# version's package (15: the .deb; 17, 18: the tarball); it is installed into a clean copy of
# PostgreSQL (dpkg -i for the .deb, the tarball's install.sh otherwise), where a fresh cluster
# creates the extension from it and the regress suite passes.
#
# Why a copy: the test must not write into the system PostgreSQL 15, which other runs on the
# machine use, and which already has a cargo-installed pg_uproot. PostgreSQL finds its lib/ and
# share/ relative to its binaries, so a copy under another prefix is a complete installation.
# A packaged PostgreSQL's copy holds exactly the files of its Debian packages postgresql-NN,
# postgresql-client-NN and postgresql-server-dev-NN (dpkg -L); a source build's copy holds the
# files that scripts/build-postgres.sh recorded before any extension was added. The .deb goes in
# with dpkg --root=COPY, against a package database that lists the packages it depends on as
# they are installed here, so that its Depends are checked for real.
#
# Environment (from scripts/test.sh's ops suite): PG_BIN, PG_MAJOR, UPROOT_ROOT, UPROOT_WORK,
# UPROOT_PORT. UPROOT_PACKAGE_PROFILE picks the cargo profile (default dev: the package layout and
# install route are what is tested here; `release` builds exactly what is shipped, slowly).
set -euo pipefail
: "${PG_BIN:?}" "${PG_MAJOR:?}" "${UPROOT_ROOT:?}" "${UPROOT_WORK:?}" "${UPROOT_PORT:?}"
# shellcheck disable=SC1091  # scripts/lib.sh
. "$UPROOT_ROOT/scripts/lib.sh"

fail() { echo "FAIL: $*"; exit 1; }
major="$PG_MAJOR"
copy="$UPROOT_WORK/pg$major"
dist="$UPROOT_WORK/dist"
version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$UPROOT_ROOT/Cargo.toml" | head -n 1)"

echo "-- build the package (scripts/package.sh --pg $major)"
env -u UPROOT_PG_BIN bash "$UPROOT_ROOT/scripts/package.sh" --pg "$major" \
    --profile "${UPROOT_PACKAGE_PROFILE:-dev}" --out "$dist" >"$UPROOT_WORK/package.log" 2>&1 \
    || { tail -n 30 "$UPROOT_WORK/package.log"; fail "scripts/package.sh failed (log: $UPROOT_WORK/package.log)"; }

# copy_files FROM LIST: copy the files (and symlinks) named in LIST, relative to FROM, to $copy.
copy_files() {
    mkdir -p "$copy"
    tar -C "$1" --no-recursion -T "$2" -cf - | tar -C "$copy" -xf -
}

echo "-- a clean PostgreSQL $major in $copy"
if ! pg_from_source "$major"; then
    dpkg -L "postgresql-$major" "postgresql-client-$major" "postgresql-server-dev-$major" \
        | grep -E "^/usr/(lib|share)/postgresql/$major/" | sort -u \
        | while IFS= read -r f; do if [ -f "$f" ] || [ -L "$f" ]; then echo ".$f"; fi; done >"$UPROOT_WORK/files"
    copy_files / "$UPROOT_WORK/files"
    bin="$copy/usr/lib/postgresql/$major/bin"
else
    prefix="$(dirname "$PG_BIN")"
    [ -f "$prefix/.manifest" ] || fail "$prefix/.manifest is missing (written by scripts/build-postgres.sh)"
    copy_files "$prefix" "$prefix/.manifest"
    bin="$copy/bin"
fi
[ -x "$bin/postgres" ] || fail "the copy has no $bin/postgres"
if find "$copy" -name 'pg_uproot*' | grep -q .; then fail "the clean copy already has pg_uproot files"; fi

echo "-- install the package"
if [ "$major" = 15 ]; then
    deb="$(ls "$dist"/postgresql-15-uproot_*.deb)"
    admin="$copy/var/lib/dpkg"
    mkdir -p "$admin/info" "$admin/updates" "$admin/triggers"
    touch "$admin/status" "$admin/available"
    # The copy's package database knows the packages the .deb depends on, as installed here
    # (with their real versions, so that dpkg checks the Depends line), and nothing else.
    dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -E 's/^ *([^ (|]+).*/\1/' | while read -r dep; do
        dpkg-query -s "$dep" >>"$admin/status" || fail "the .deb depends on $dep, which is not installed here"
        echo >>"$admin/status"
        touch "$admin/info/$(dpkg-query -W -f='${binary:Package}' "$dep").list"
    done
    dpkg --root="$copy" --force-not-root -i "$deb"
    dpkg --root="$copy" -s postgresql-15-uproot | grep -qx 'Status: install ok installed' \
        || fail "dpkg does not list postgresql-15-uproot as installed"
    dpkg --root="$copy" -L postgresql-15-uproot
else
    tarball="$(ls "$dist"/pg_uproot-*-pg"$major"-linux-*.tar.gz)"
    mkdir -p "$UPROOT_WORK/unpacked"
    tar -C "$UPROOT_WORK/unpacked" -xzf "$tarball"
    sh "$UPROOT_WORK/unpacked/$(basename "$tarball" .tar.gz)/install.sh" "$bin/pg_config"
fi
lib="$("$bin/pg_config" --pkglibdir)/pg_uproot.so"
[ -f "$lib" ] || fail "$lib was not installed"
[ "${lib#"$copy"/}" != "$lib" ] || fail "the copy's pg_config names a libdir outside the copy: $lib"
chmod -R a+rX "$UPROOT_WORK"

# From here on, PG_BIN is the copy's.
PG_BIN="$bin"
PGXS_TEST="$(dirname "$bin")/lib/pgxs/src/test"

echo "-- CREATE EXTENSION in a fresh cluster of the copy"
trap 'pg_cluster_stop "$UPROOT_WORK/cluster"' EXIT
pg_cluster_start "$UPROOT_WORK/cluster" "$UPROOT_PORT"
got="$(pg_psql "$UPROOT_PORT" postgres -At <<'SQL'
CREATE EXTENSION pg_uproot;
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);
INSERT INTO parent VALUES (1), (2);
INSERT INTO child VALUES (10, 1), (11, 1), (20, 2);
SELECT extversion FROM pg_extension WHERE extname = 'pg_uproot';
SELECT string_agg(relation::text || '=' || rows, ' ' ORDER BY relation::text) FROM uproot.purge('parent', 1);
SELECT (SELECT count(*) FROM parent) || ' ' || (SELECT count(*) FROM child);
-- the library this backend loaded
SELECT m FROM regexp_split_to_table(pg_read_file('/proc/' || pg_backend_pid() || '/maps'), '\n') m
 WHERE m LIKE '%pg_uproot.so%' LIMIT 1;
SQL
)"
echo "$got"
mapfile -t line <<<"$got"
[ "${line[0]}" = "$version" ] || fail "extversion is '${line[0]}', expected $version"
[ "${line[1]}" = "child=2 parent=1" ] || fail "uproot.purge('parent', 1) returned '${line[1]}'"
[ "${line[2]}" = "1 1" ] || fail "after purging parent 1: '${line[2]}' rows left, expected '1 1'"
[[ "${line[3]}" == *" $lib" ]] || fail "the backend loaded '${line[3]##* }', not the package's $lib"

echo "-- the regress suite against the installed package"
run_pg_regress "$PGXS_TEST/regress/pg_regress" "$UPROOT_ROOT/pg_test/regress" \
    "$UPROOT_WORK/regress" "$((UPROOT_PORT + 1))" sql sql || fail "the regress suite failed on the package"
echo "PASS: the PostgreSQL $major package installs without cargo and passes the regress suite"
