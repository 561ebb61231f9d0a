#!/bin/sh
# Installs shardgate as a systemd service.
#
#   scripts/install.sh                       build release, install, daemon-reload
#   scripts/install.sh --binary PATH         install a binary built elsewhere
#   DESTDIR=/tmp/stage scripts/install.sh    stage into a directory (dry run; no root needed)
#
# Options:
#   --prefix DIR     binary goes to DIR/bin (default /usr/local)
#   --binary PATH    skip the build and install PATH
#   --destdir DIR    same as DESTDIR=DIR
#
# Never overwrites an existing config or env file; the env file (provider
# keys) is always left with mode 0600.
set -eu

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; }

PREFIX=/usr/local
BINARY=
DESTDIR=${DESTDIR:-}
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
        --prefix=*) PREFIX=${1#*=}; shift ;;
        --binary) BINARY=${2:?--binary needs a path}; shift 2 ;;
        --binary=*) BINARY=${1#*=}; shift ;;
        --destdir) DESTDIR=${2:?--destdir needs a directory}; shift 2 ;;
        --destdir=*) DESTDIR=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root, or set DESTDIR for a staged install" >&2
    exit 1
fi

if [ -z "$BINARY" ]; then
    (cd "$ROOT" && cargo build --release --locked --bin shardgate)
    BINARY="${CARGO_TARGET_DIR:-$ROOT/target}/release/shardgate"
fi
[ -x "$BINARY" ] || { echo "install.sh: $BINARY is not an executable" >&2; exit 1; }

BIN_DIR="$DESTDIR$PREFIX/bin"
ETC_DIR="$DESTDIR/etc/shardgate"
UNIT_DIR="$DESTDIR/etc/systemd/system"

install -d -m 0755 "$BIN_DIR" "$ETC_DIR" "$UNIT_DIR"
install -m 0755 "$BINARY" "$BIN_DIR/shardgate"
echo "installed $BIN_DIR/shardgate"

# The config holds no secrets and must be readable by the service's dynamic user.
if [ -e "$ETC_DIR/shardgate.toml" ]; then
    echo "kept existing $ETC_DIR/shardgate.toml"
else
    install -m 0644 "$ROOT/scripts/shardgate.example.toml" "$ETC_DIR/shardgate.toml"
    echo "installed $ETC_DIR/shardgate.toml (edit it)"
fi

# Provider keys: root-only; systemd reads it before dropping privileges.
if [ -e "$ETC_DIR/shardgate.env" ]; then
    chmod 0600 "$ETC_DIR/shardgate.env"
    echo "kept existing $ETC_DIR/shardgate.env (mode 0600)"
else
    (umask 077 && install -m 0600 "$ROOT/scripts/shardgate.env.example" "$ETC_DIR/shardgate.env")
    echo "installed $ETC_DIR/shardgate.env (mode 0600; put provider keys here)"
fi

sed "s#/usr/local/bin/shardgate#$PREFIX/bin/shardgate#" "$ROOT/scripts/shardgate.service" \
    > "$UNIT_DIR/shardgate.service.tmp"
chmod 0644 "$UNIT_DIR/shardgate.service.tmp"
mv "$UNIT_DIR/shardgate.service.tmp" "$UNIT_DIR/shardgate.service"
echo "installed $UNIT_DIR/shardgate.service"

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    echo "systemd reloaded; start with: systemctl enable --now shardgate"
elif [ -z "$DESTDIR" ]; then
    echo "systemd is not running here; unit installed but not loaded"
fi
