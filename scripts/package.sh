#!/usr/bin/env bash
# Release packages of pg_uproot, built with `cargo pgrx package`, into dist/:
#
#   postgresql-15-uproot_VERSION_ARCH.deb      for Debian bookworm's PostgreSQL 15 (dpkg -i)
#   pg_uproot-VERSION-pgNN-linux-ARCH.tar.gz   for PostgreSQL 17 and 18: lib/, extension/ and an
#                                              install.sh that copies them where pg_config says
#
#   bash scripts/package.sh [--pg MAJOR]... [--profile PROFILE] [--out DIR]
#
#   --pg MAJOR         only this version (repeatable; default: 15 17 18)
#   --profile PROFILE  cargo profile (default: release; the ops test uses dev, which builds faster)
#   --out DIR          where the packages go (default: dist/ in the repository)
#
# Versions other than 15 are built from source first if needed (scripts/setup.sh does it).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

versions=() profile=release out="$UPROOT_ROOT/dist"
while [ $# -gt 0 ]; do
    case "$1" in
        --pg) [ $# -ge 2 ] || die "--pg needs a version"; versions+=("$2"); shift ;;
        --profile) [ $# -ge 2 ] || die "--profile needs a name"; profile="$2"; shift ;;
        --out) [ $# -ge 2 ] || die "--out needs a directory"; out="$2"; shift ;;
        *) die "unknown option: $1" ;;
    esac
    shift
done
[ ${#versions[@]} -gt 0 ] || versions=(15 17 18)
[ -z "${UPROOT_PG_BIN:-}" ] || die "UPROOT_PG_BIN is set: packages are built against Debian's PostgreSQL 15 and the source builds, unset it"

version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$UPROOT_ROOT/Cargo.toml" | head -n 1)"
arch="$(dpkg --print-architecture)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
setup_args=(--no-install)
for v in "${versions[@]}"; do setup_args+=(--pg "$v"); done
bash "$UPROOT_ROOT/scripts/setup.sh" "${setup_args[@]}"

# pgrx_package: `cargo pgrx package` for $PG_CONFIG into $stage, which then holds the files under
# the absolute paths that pg_config names (pkglibdir, sharedir/extension).
pgrx_package() {
    rm -rf "$stage"
    (cd "$UPROOT_ROOT" && cargo pgrx package --pg-config "$PG_CONFIG" --profile "$profile" --out-dir "$stage")
    libdir="$stage$("$PG_CONFIG" --pkglibdir)"
    extdir="$stage$("$PG_CONFIG" --sharedir)/extension"
    if [ ! -f "$libdir/pg_uproot.so" ] || [ ! -f "$extdir/pg_uproot.control" ]; then
        die "cargo pgrx package left no pg_uproot.so / pg_uproot.control under $stage"
    fi
}

# deb: a Debian package laid out like bookworm's own extension packages (postgresql-15-*).
deb() {
    local name="postgresql-$PG_MAJOR-uproot" root="$work/deb" depends
    root="$work/deb"
    rm -rf "$root"
    install -d "$root/DEBIAN" "$root/usr/lib/postgresql/$PG_MAJOR/lib" \
        "$root/usr/share/postgresql/$PG_MAJOR/extension" "$root/usr/share/doc/$name"
    install -m 644 "$libdir/pg_uproot.so" "$root/usr/lib/postgresql/$PG_MAJOR/lib/"
    install -m 644 "$extdir"/pg_uproot* "$root/usr/share/postgresql/$PG_MAJOR/extension/"
    install -m 644 "$UPROOT_ROOT/README.md" "$root/usr/share/doc/$name/README.md"
    # The shared libraries the .so links against, as package dependencies (libc6, libgcc-s1).
    mkdir -p "$work/shlibs/debian"
    printf 'Source: pg-uproot\n\nPackage: %s\nArchitecture: any\n' "$name" >"$work/shlibs/debian/control"
    depends="$(cd "$work/shlibs" && dpkg-shlibdeps -O "$root/usr/lib/postgresql/$PG_MAJOR/lib/pg_uproot.so" 2>/dev/null \
        | sed -n 's/^shlibs:Depends=//p')"
    cat >"$root/DEBIAN/control" <<EOF
Package: $name
Version: $version-1
Architecture: $arch
Maintainer: pg_uproot developers <dev@pg-uproot.invalid>
Depends: postgresql-$PG_MAJOR${depends:+, $depends}
Section: database
Priority: optional
Installed-Size: $(du -sk "$root/usr" | cut -f1)
Description: PostgreSQL $PG_MAJOR extension: purge or archive a row with its foreign-key family
 pg_uproot deletes a row together with every row that transitively references it,
 or moves that whole family into archive tables and puts it back later, following
 the database's own foreign keys, inside the caller's transaction.
 .
 After installing: CREATE EXTENSION pg_uproot; in each database that uses it.
EOF
    dpkg-deb --root-owner-group --build "$root" "$out/${name}_${version}-1_${arch}.deb" >/dev/null
    echo "$out/${name}_${version}-1_${arch}.deb"
}

# tarball: lib/ and extension/ with an install.sh that copies them into the PostgreSQL whose
# pg_config it is given (after checking the major version).
tarball() {
    local name="pg_uproot-$version-pg$PG_MAJOR-linux-$arch" root
    root="$work/$name"
    rm -rf "$root"
    install -d "$root/lib" "$root/extension"
    install -m 644 "$libdir/pg_uproot.so" "$root/lib/"
    install -m 644 "$extdir"/pg_uproot* "$root/extension/"
    install -m 644 "$UPROOT_ROOT/README.md" "$root/README.md"
    cat >"$root/install.sh" <<EOF
#!/bin/sh
# Install pg_uproot $version into PostgreSQL $PG_MAJOR: sh install.sh [path/to/pg_config]
set -eu
cd "\$(dirname "\$0")"
PG_CONFIG="\${1:-pg_config}"
major="\$("\$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\\1/')"
[ "\$major" = $PG_MAJOR ] || { echo "this package is for PostgreSQL $PG_MAJOR; \$PG_CONFIG is for \$major" >&2; exit 1; }
install -m 755 lib/pg_uproot.so "\$("\$PG_CONFIG" --pkglibdir)/"
install -m 644 extension/* "\$("\$PG_CONFIG" --sharedir)/extension/"
echo "installed; now run CREATE EXTENSION pg_uproot; in each database that uses it"
EOF
    chmod 755 "$root/install.sh"
    tar -C "$work" --owner=0 --group=0 -czf "$out/$name.tar.gz" "$name"
    echo "$out/$name.tar.gz"
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stage="$work/stage"
built=()
for v in "${versions[@]}"; do
    pg_use_version "$v"
    say "package pg_uproot $version for PostgreSQL $v ($profile profile)"
    pgrx_package
    if [ "$v" = 15 ]; then built+=("$(deb)"); else built+=("$(tarball)"); fi
done
say "packages"
printf '  %s\n' "${built[@]}"
