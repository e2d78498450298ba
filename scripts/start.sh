#!/usr/bin/env bash
# `npm start`: set up the checkout, then run the dispatcher on this machine with no cloud and no
# cluster: an embedded container API (SQLite in .demo/), the loopback driver and the bundled
# crunch-run. It prints how to submit a container and watch it, and runs until Ctrl-C.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$repo"
bash scripts/setup.sh
exec bin/dispatch-cloud demo --keep-running "$@"
