#!/bin/sh
# Builds the shardgate .deb with dpkg-deb (no other packaging tool).
#
#   scripts/build-deb.sh                      build release, package it into target/debian/
#   scripts/build-deb.sh --binary PATH        package a binary built elsewhere
#
# Options:
#   --binary PATH    skip the build and package PATH (stripped in the package)
#   --out DIR        where the .deb goes (default: $CARGO_TARGET_DIR or target, /debian)
#   --version V      the package version (default: Cargo.toml's version, revision -1)
#   --arch ARCH      the Debian architecture (default: dpkg --print-architecture)
#   --compress TYPE  dpkg-deb's -Z: xz (default), gzip, zstd or none
#
# The package: /usr/bin/shardgate; /lib/systemd/system/shardgate.service
# (scripts/shardgate.service with the binary at /usr/bin and a static
# `shardgate` user instead of DynamicUser=); the conffiles
# /etc/shardgate/shardgate.toml (scripts/shardgate.starter.toml) and
# /etc/shardgate/shardgate.env (mode 0600); the full example config and the
# docs under /usr/share/doc/shardgate. postinst creates the user and
# /var/lib/shardgate, and on a first install runs `systemctl enable --now
# shardgate` where systemd runs (only enables it in a chroot). Prints the
# .deb's path last.
set -eu

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BINARY=
OUT=
VERSION=
ARCH=
COMPRESS=xz
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) BINARY=${2:?--binary needs a path}; shift 2 ;;
        --binary=*) BINARY=${1#*=}; shift ;;
        --out) OUT=${2:?--out needs a directory}; shift 2 ;;
        --out=*) OUT=${1#*=}; shift ;;
        --version) VERSION=${2:?--version needs a version}; shift 2 ;;
        --version=*) VERSION=${1#*=}; shift ;;
        --arch) ARCH=${2:?--arch needs an architecture}; shift 2 ;;
        --arch=*) ARCH=${1#*=}; shift ;;
        --compress) COMPRESS=${2:?--compress needs a type}; shift 2 ;;
        --compress=*) COMPRESS=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "build-deb.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

command -v dpkg-deb >/dev/null || { echo "build-deb.sh: dpkg-deb not found (apt-get install dpkg)" >&2; exit 1; }

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -z "$BINARY" ]; then
    (cd "$ROOT" && cargo build --release --locked --bin shardgate)
    BINARY="$TARGET/release/shardgate"
fi
[ -x "$BINARY" ] || { echo "build-deb.sh: $BINARY is not an executable" >&2; exit 1; }
OUT=${OUT:-$TARGET/debian}
if [ -z "$VERSION" ]; then
    # [workspace.package] version = "X.Y.Z": the first version line.
    VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)-1
fi
ARCH=${ARCH:-$(dpkg --print-architecture 2>/dev/null || echo amd64)}
MAINTAINER=${DEB_MAINTAINER:-shardgate maintainers <maintainers@shardgate.example>}
# Reproducible: the changelog's date and the files' times from the last
# commit (or SOURCE_DATE_EPOCH).
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shardgate-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PKG="$WORK/pkg"
DOC="$PKG/usr/share/doc/shardgate"
install -d -m 0755 "$PKG/DEBIAN" "$PKG/usr/bin" "$PKG/lib/systemd/system" \
    "$PKG/etc/shardgate" "$DOC/examples" "$PKG/usr/share/lintian/overrides" \
    "$PKG/usr/share/man/man1"

# The binary, stripped as dh_strip does (symbols and debug info out).
if command -v strip >/dev/null; then
    strip --strip-unneeded --remove-section=.comment --remove-section=.note \
        -o "$PKG/usr/bin/shardgate" "$BINARY"
else
    echo "build-deb.sh: strip not found (binutils); packaging the binary unstripped" >&2
    cp "$BINARY" "$PKG/usr/bin/shardgate"
fi
chmod 0755 "$PKG/usr/bin/shardgate"

# The unit: the binary where the package puts it, and the package's static
# user (its files in /var/lib/shardgate keep one owner across upgrades).
# Each edit is checked: a changed source unit fails the build, not the box.
UNIT="$PKG/lib/systemd/system/shardgate.service"
sed -e 's#^ExecStart=/usr/local/bin/shardgate #ExecStart=/usr/bin/shardgate #' \
    -e 's#^DynamicUser=yes$#User=shardgate\nGroup=shardgate#' \
    -e 's#^\# shardgate systemd unit\. Installed by scripts/install\.sh to$#\# shardgate systemd unit, as the .deb installs it (from scripts/shardgate.service,#' \
    -e 's#^\# /etc/systemd/system/shardgate\.service\.$#\# by scripts/build-deb.sh): /usr/bin/shardgate, run as the shardgate user.#' \
    -e 's#^\# Sandbox\. A transient UID; nothing#\# Sandbox. The package'"'"'s shardgate user; nothing#' \
    -e 's#since the service runs as a dynamic user\.#the service reads it as the shardgate user.#' \
    -e "s#and keeps it across restarts and DynamicUser's changing UIDs)\.#owned by the shardgate user).#" \
    "$ROOT/scripts/shardgate.service" > "$UNIT"
chmod 0644 "$UNIT"
for want in '^ExecStart=/usr/bin/shardgate --config /etc/shardgate/shardgate.toml$' \
    '^User=shardgate$' '^Group=shardgate$' '^EnvironmentFile=-/etc/shardgate/shardgate.env$' \
    '^StateDirectory=shardgate$'; do
    grep -q "$want" "$UNIT" || { echo "build-deb.sh: the packaged unit lacks $want" >&2; exit 1; }
done
if grep -q -e '^DynamicUser=' -e '/usr/local/' "$UNIT"; then
    echo "build-deb.sh: the packaged unit still has DynamicUser= or /usr/local" >&2
    exit 1
fi

install -m 0644 "$ROOT/scripts/shardgate.starter.toml" "$PKG/etc/shardgate/shardgate.toml"
install -m 0600 "$ROOT/scripts/shardgate.env.example" "$PKG/etc/shardgate/shardgate.env"

install -m 0644 "$ROOT/scripts/shardgate.example.toml" "$DOC/examples/shardgate.example.toml"
install -m 0644 "$ROOT/scripts/deb/copyright" "$DOC/copyright"
install -m 0644 "$ROOT/scripts/deb/lintian-overrides" "$PKG/usr/share/lintian/overrides/shardgate"
gzip -9n -c "$ROOT/README.md" > "$DOC/README.md.gz"
gzip -9n -c "$ROOT/scripts/deb/shardgate.1" > "$PKG/usr/share/man/man1/shardgate.1.gz"
DATE=$(date -u -R -d "@$SOURCE_DATE_EPOCH" 2>/dev/null || date -u -R)
cat > "$WORK/changelog.Debian" <<EOF
shardgate ($VERSION) unstable; urgency=medium

  * Built from the shardgate source tree by scripts/build-deb.sh.

 -- $MAINTAINER  $DATE
EOF
gzip -9n -c "$WORK/changelog.Debian" > "$DOC/changelog.Debian.gz"
chmod 0644 "$DOC/README.md.gz" "$DOC/changelog.Debian.gz" "$PKG/usr/share/man/man1/shardgate.1.gz"

for script in postinst prerm postrm; do
    install -m 0755 "$ROOT/scripts/deb/$script" "$PKG/DEBIAN/$script"
done
printf '/etc/shardgate/shardgate.env\n/etc/shardgate/shardgate.toml\n' > "$PKG/DEBIAN/conffiles"
chmod 0644 "$PKG/DEBIAN/conffiles"

# Depends: the shared libraries the binary needs, by dpkg-shlibdeps where
# it is installed (it wants a debian/control to stand in), else by the
# ELF's NEEDED entries mapped to their Debian packages.
DEPENDS=
if command -v dpkg-shlibdeps >/dev/null; then
    mkdir -p "$WORK/shlibs/debian"
    printf 'Source: shardgate\n\nPackage: shardgate\nArchitecture: any\n' > "$WORK/shlibs/debian/control"
    DEPENDS=$(cd "$WORK/shlibs" && dpkg-shlibdeps -O -e"$PKG/usr/bin/shardgate" 2>/dev/null \
        | sed -n 's/^shlibs:Depends=//p') || DEPENDS=
fi
if [ -z "$DEPENDS" ]; then
    DEPENDS="libc6 (>= 2.34)"
    needed=$(readelf -d "$PKG/usr/bin/shardgate" 2>/dev/null || true)
    case "$needed" in *libgcc_s.so.1*) DEPENDS="$DEPENDS, libgcc-s1 (>= 4.2)" ;; esac
    case "$needed" in *libstdc++.so.6*) DEPENDS="$DEPENDS, libstdc++6 (>= 12)" ;; esac
fi
# groupadd and useradd, deb-systemd-helper and deb-systemd-invoke, for the
# maintainer scripts.
DEPENDS="$DEPENDS, passwd, init-system-helpers (>= 1.54~)"

SIZE=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
cat > "$PKG/DEBIAN/control" <<EOF
Package: shardgate
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $SIZE
Depends: $DEPENDS
Section: net
Priority: optional
Description: thread-per-core io_uring LLM gateway
 shardgate is one OpenAI- and Anthropic-compatible front door for many
 model providers (OpenAI, Anthropic, Bedrock, Vertex, Azure, local vLLM
 or Ollama servers, ...), with virtual keys, budgets, rate limits, a
 response cache and Prometheus metrics. Each CPU core runs its own shard
 with io_uring (epoll where io_uring is unavailable).
 .
 This package runs it as a systemd service (shardgate.service) as the
 shardgate user, configured by /etc/shardgate/shardgate.toml, with
 provider keys in /etc/shardgate/shardgate.env.
EOF
chmod 0644 "$PKG/DEBIAN/control"

# Owned by root whoever builds it; dates clamped to SOURCE_DATE_EPOCH.
find "$PKG" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$OUT"
DEB="$OUT/shardgate_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Z"$COMPRESS" --build "$PKG" "$DEB" >/dev/null
echo "$DEB"
