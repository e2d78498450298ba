#!/usr/bin/env bash
# `npm run demo`: set up, start the embedded default (as `npm start`), submit
# `echo Hello, Crunch!`, follow it to Complete, print its log, stop everything and exit.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$repo"
bash scripts/setup.sh
exec bin/dispatch-cloud demo "$@"
