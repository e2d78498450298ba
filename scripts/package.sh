#!/usr/bin/env bash
# `npm run package`: build the workspace, then dist/arvados-dispatch-cloud_<version>_all.deb
# (packaging/build-deb.mjs). Needs dpkg-deb.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$repo"
turbo run build --output-logs=errors-only
node packaging/build-deb.mjs "$@"
