#!/usr/bin/env bash
# Sets up a checkout on a fresh Debian machine with Node 20 and npm: the pinned pnpm, the
# workspace's dependencies, and a build. With --test-peers, also the programs the integration
# tests talk to (OpenSSH's sshd, the moto EC2 server, chromium). Safe to run again; it skips
# what is done.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$repo"

step() { printf '==> %s\n' "$*"; }

if [ "${1:-}" = "--test-peers" ]; then
  # openssh-server and postgresql: the tests start their own servers (a private sshd, a
  # throwaway PostgreSQL cluster), so the packages' own services are not needed. lintian,
  # systemd (systemd-analyze, systemd-notify) and python3 (a notification-socket listener): the
  # Debian package's tests. chromium: the dashboard's browser test (driven by playwright-core,
  # which downloads no browser of its own).
  missing=()
  for p in openssh-server postgresql lintian systemd python3 chromium; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    step "installing Debian packages for the tests (${missing[*]})"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if [ -x scripts/peers/moto.sh ]; then
    step "installing the moto EC2 server"
    scripts/peers/moto.sh install
  fi
fi

if [ ! -x tools/node_modules/.bin/pnpm ]; then
  step "installing pnpm $(node -p 'require("./tools/package.json").dependencies.pnpm') from the npm registry"
  npm ci --prefix tools --no-audit --no-fund --loglevel=error
fi

step "installing dependencies (pnpm install --frozen-lockfile)"
pnpm install --frozen-lockfile --reporter=append-only 2>&1 | grep -vE '^(Progress|\.\.\./)' | tail -n 5

step "building (turbo run build)"
turbo run build --output-logs=errors-only
