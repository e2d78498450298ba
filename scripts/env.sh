# Sourced by the scripts: puts the pinned pnpm and the workspace's tools on PATH.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$repo/tools/node_modules/.bin:$repo/node_modules/.bin:$PATH"
export TURBO_TELEMETRY_DISABLED=1
# Native modules (better-sqlite3) build against the headers that come with Debian's Node.
if [ -d /usr/include/node ]; then export npm_config_nodedir=/usr; fi
