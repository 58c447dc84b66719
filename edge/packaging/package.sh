#!/usr/bin/env bash
# Builds the Debian package of one side: edge/packaging/package.sh edge|cloud (edge/package.sh and
# cloud/package.sh call this). A release build with the Swift runtime and Foundation linked
# statically (--static-swift-stdlib), stripped, that needs only glibc and Debian's libraries;
# the package holds it with the side's systemd unit, example configuration and maintainer
# scripts. Prints the .deb's path on stdout as its last line.
#
#   --no-build     package the binary already built (fails when there is none)
#   --binary FILE  package FILE instead (the test uses it to see the checks refuse a dynamic build)
#   --output DIR   where the .deb goes (default: .build-release-static/debian)
#
# Fails (exit 1) when the binary still needs a library from the Swift toolchain, a library no
# Debian package provides, or a run path; when dpkg-deb fails. x86_64 (amd64) is what this
# builds on an x86_64 machine; see edge/INSTALL.md for ARM64.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

fail() {
    echo "package.sh: $*" >&2
    exit 1
}

side=${1:-}
shift || true
case "$side" in
edge)
    package=edge-agent
    user=edge-agent
    state_dir=/var/lib/edge-agent
    kept="the spool"
    config_dir=/etc/edge-agent
    config_source=edge/agent.json
    config_name=agent.json
    unit_source=edge/edge-agent.service
    install_doc=edge/INSTALL.md
    summary="edge-sync edge agent"
    description="edge-sync agent for gateways: durable sensor spool and uploader
 Takes readings from producers (InfluxDB line protocol, Prometheus remote
 write, JSON, TCP/UDP line protocol, CSV import), keeps them in a SQLite spool
 that survives power loss, and uploads them in compressed batches to an
 edge-sync cloud collector, which stores each reading exactly once."
    ;;
cloud)
    package=cloud-collector
    user=edge-sync
    state_dir=/var/lib/edge-sync-collector
    kept="the database"
    config_dir=/etc/edge-sync
    config_source=cloud/collector.example.json
    config_name=collector.json
    unit_source=cloud/cloud-collector.service
    install_doc=cloud/INSTALL.md
    summary="edge-sync cloud collector"
    description="edge-sync cloud collector: exactly-once ingest of gateway batches
 Receives the batches edge-sync agents upload, authenticates each device,
 stores every reading exactly once however often it arrives (embedded SQLite
 or PostgreSQL), and serves a query API, a dashboard and Prometheus metrics."
    ;;
*)
    fail "usage: edge/packaging/package.sh edge|cloud [--no-build | --binary FILE] [--output DIR]"
    ;;
esac

scratch=.build-release-static
output=$scratch/debian
build=1
binary=""
while (($#)); do
    case "$1" in
    --no-build) build=0 ;;
    --binary)
        binary=${2:?--binary needs a file}
        build=0
        shift
        ;;
    --output)
        output=${2:?--output needs a directory}
        shift
        ;;
    *) fail "unknown argument $1" ;;
    esac
    shift
done

# Full RELRO and immediate binding, as Debian builds its own binaries (lintian checks both); no
# $ORIGIN run path (SwiftPM adds one for libraries beside the binary; there are none).
build_flags=(-c release --static-swift-stdlib --disable-local-rpath --scratch-path "$scratch" --product "$package"
    -Xlinker -z -Xlinker relro -Xlinker -z -Xlinker now)
if ((build)); then
    echo "package.sh: swift build ${build_flags[*]}" >&2
    swift build "${build_flags[@]}" >&2 || fail "the release build of $package failed"
fi
[[ -n "$binary" ]] || binary=$(swift build "${build_flags[@]}" --show-bin-path)/$package
[[ -x "$binary" ]] || fail "no binary at $binary (build it, or drop --no-build)"

version=$(dpkg-parsechangelog -l edge/packaging/changelog -S Version)
architecture=$(dpkg --print-architecture)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/$package

# The tree the package installs. Units go to /lib/systemd/system on Debian 12 (bookworm's
# debhelper does the same); the binary to /usr/bin, where the units look for it.
install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage$config_dir" \
    "$stage/usr/share/doc/$package" "$stage/usr/share/lintian/overrides" "$stage/usr/share/man/man1"
strip --remove-section=.comment --remove-section=.note -o "$stage/usr/bin/$package" "$binary"
chmod 0755 "$stage/usr/bin/$package"
install -m 0644 "$unit_source" "$stage/lib/systemd/system/$package.service"
install -m 0644 "$config_source" "$stage$config_dir/$config_name"
# The install notes are what Debian calls README.Debian: how to set up the installed package.
install -m 0644 "$install_doc" "$stage/usr/share/doc/$package/README.Debian"
gzip -9n <"edge/packaging/man/$package.1" >"$stage/usr/share/man/man1/$package.1.gz"
if [[ $side == cloud ]]; then
    install -d "$stage/usr/share/doc/$package/examples"
    install -m 0644 cloud/nginx.conf "$stage/usr/share/doc/$package/examples/nginx.conf"
fi
gzip -9n <edge/packaging/changelog >"$stage/usr/share/doc/$package/changelog.gz"
sed "s|@PACKAGE@|$package|g" edge/packaging/debian/copyright >"$stage/usr/share/doc/$package/copyright"
sed "s|@PACKAGE@|$package|g" edge/packaging/debian/lintian-overrides \
    >"$stage/usr/share/lintian/overrides/$package"
find "$stage/usr/share" -type f -exec chmod 0644 {} +
for script in postinst prerm postrm; do
    sed -e "s|@PACKAGE@|$package|g" -e "s|@USER@|$user|g" -e "s|@STATE_DIR@|$state_dir|g" \
        -e "s|@UNIT@|$package.service|g" -e "s|@SUMMARY@|$summary|g" -e "s|@KEPT@|$kept|g" \
        "edge/packaging/debian/$script" >"$stage/DEBIAN/$script"
    chmod 0755 "$stage/DEBIAN/$script"
done
echo "$config_dir/$config_name" >"$stage/DEBIAN/conffiles"

# What the binary loads: none of it may come from the toolchain, each library must belong to a
# Debian package, and no run path may point anywhere.
installed=$stage/usr/bin/$package
toolchain=$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")
needed=$(readelf -d "$installed" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
[[ -n "$needed" ]] || fail "$binary has no NEEDED entries: not a dynamically linked binary?"
owners=()
for library in $needed; do
    case "$library" in
    libswift* | libFoundation* | lib_Foundation* | libdispatch* | libBlocksRuntime* | libXCTest* | libTesting*)
        fail "$binary needs $library from the Swift toolchain"
        ;;
    esac
    path=$(ldd "$installed" | awk -v lib="$library" '$1 == lib { print $3 }')
    [[ $library == ld-linux* ]] && path=$(ldd "$installed" | awk -v lib="$library" 'index($1, lib) { print $1 }')
    [[ -n "$path" && "$path" != "not" ]] || fail "$binary needs $library, which is not found"
    [[ "$(readlink -f "$path")" != "$toolchain"/* ]] || fail "$binary loads $library from $toolchain"
    owner=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null) ||
        fail "$binary needs $path, which no Debian package provides"
    owners+=("${owner%%:*}")
done
if readelf -d "$installed" | grep -E '\((RPATH|RUNPATH)\)' >&2; then
    fail "$binary still has a run path (above)"
fi

# Depends: exactly the packages of those libraries, at the versions whose symbols the binary
# uses (dpkg-shlibdeps, as debhelper does), and adduser for postinst.
mkdir -p "$work/shlibs/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$package" "$package" >"$work/shlibs/debian/control"
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O "$installed" 2>"$work/shlibdeps.err") ||
    fail "dpkg-shlibdeps failed: $(cat "$work/shlibdeps.err")"
depends=${shlibs#shlibs:Depends=}
[[ -n "$depends" && "$depends" != "$shlibs" ]] || fail "dpkg-shlibdeps printed no dependencies: $shlibs"
# The same set of packages as the owners of the NEEDED libraries: nothing more, nothing less.
depends_names=$(sed 's/ *([^)]*)//g; s/, */\n/g' <<<"$depends" | sort -u)
owner_names=$(printf '%s\n' "${owners[@]}" | sort -u)
[[ "$depends_names" == "$owner_names" ]] ||
    fail "Depends ($depends) differs from the owners of the NEEDED libraries ($(echo $owner_names))"

cat >"$stage/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: $architecture
Maintainer: $(dpkg-parsechangelog -l edge/packaging/changelog -S Maintainer)
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: adduser, $depends
Section: net
Priority: optional
Description: $description
EOF

(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum) >"$stage/DEBIAN/md5sums"

mkdir -p "$output"
deb=$output/${package}_${version}_${architecture}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2 || fail "dpkg-deb --build failed"
echo "package.sh: $deb: $(du -h "$deb" | cut -f1), binary $(du -h "$installed" | cut -f1) stripped," \
    "Depends: adduser, $depends" >&2
echo "$deb"
