#!/bin/sh
# moto, the EC2 API server the driver-ec2 integration tests talk to.
#
#   scripts/peers/moto.sh install      install moto under <repo>/.peers/moto (idempotent)
#   scripts/peers/moto.sh start PORT   run moto in the foreground on 127.0.0.1:PORT
#   scripts/peers/moto.sh command PORT print the command line that runs it
#
# moto is not packaged for bookworm, so the install fetches Debian trixie's python3-moto
# (arch all) through a private apt configuration that leaves the system's sources alone,
# unpacks it with dpkg-deb -x, and installs its dependencies from the system's own suite.
set -eu

ROOT=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
PEERS="$ROOT/.peers"
MOTO_DIR="$PEERS/moto"
APT_DIR="$PEERS/apt"
SITE="$MOTO_DIR/usr/lib/python3/dist-packages"
PYTHON=/usr/bin/python3

# Runtime dependencies of trixie's python3-moto that bookworm provides.
DEPS="python3-flask python3-flask-cors python3-werkzeug python3-boto3 python3-botocore
python3-responses python3-jinja2 python3-dateutil python3-requests python3-xmltodict"

# The Debian mirror the system already uses (one-line or deb822 sources), so the private
# source list reaches the same place; falls back to deb.debian.org.
system_mirror() {
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; break } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
  done
}

pick_mirror() {
  m=$(system_mirror | grep -v -e security -e nodesource -e google | grep '/debian/*$' | head -n 1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

installed() {
  [ -f "$SITE/moto/server.py" ] && PYTHONPATH="$SITE" "$PYTHON" -c 'import moto.server' 2>/dev/null
}

do_install() {
  missing=""
  for p in $DEPS; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    echo "moto.sh: installing from the system's apt sources:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
  fi

  if [ -f "$SITE/moto/server.py" ]; then
    echo "moto.sh: moto already unpacked in $MOTO_DIR"
  else
    mirror=$(pick_mirror)
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/etc"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    echo "deb [signed-by=$keyring] $mirror trixie main" >"$APT_DIR/etc/sources.list"
    : >"$APT_DIR/status"
    set -- -o Dir::Etc::SourceList="$APT_DIR/etc/sources.list" \
      -o Dir::Etc::SourceParts=/dev/null \
      -o Dir::State::Lists="$APT_DIR/lists" \
      -o Dir::State::Status="$APT_DIR/status" \
      -o Dir::Cache="$APT_DIR/cache" \
      -o Dir::Cache::archives="$APT_DIR/cache/archives" \
      -o APT::Architecture="$(dpkg --print-architecture)" \
      -o Debug::NoLocking=1 \
      -o APT::Sandbox::User=root
    echo "moto.sh: fetching python3-moto from $mirror trixie"
    apt-get "$@" update -qq
    (cd "$APT_DIR/cache/archives" && apt-get "$@" download python3-moto)
    deb=$(ls "$APT_DIR"/cache/archives/python3-moto_*.deb | head -n 1)
    rm -rf "$MOTO_DIR.tmp"
    dpkg-deb -x "$deb" "$MOTO_DIR.tmp"
    rm -rf "$MOTO_DIR"
    mv "$MOTO_DIR.tmp" "$MOTO_DIR"
    echo "moto.sh: unpacked $(basename "$deb") into $MOTO_DIR"
  fi

  installed || { echo "moto.sh: moto does not import with $PYTHON; see the errors above" >&2; exit 1; }
  echo "moto.sh: ok"
}

usage() {
  echo "usage: $0 install | start PORT | command PORT" >&2
  exit 2
}

case "${1:-}" in
  install) do_install ;;
  start)
    [ $# -eq 2 ] || usage
    installed || { echo "moto is not installed: run scripts/peers/moto.sh install" >&2; exit 1; }
    PYTHONPATH="$SITE" exec "$PYTHON" -m moto.server -H 127.0.0.1 -p "$2"
    ;;
  command)
    [ $# -eq 2 ] || usage
    echo "PYTHONPATH=$SITE $PYTHON -m moto.server -H 127.0.0.1 -p $2"
    ;;
  *) usage ;;
esac
