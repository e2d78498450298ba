#!/usr/bin/env bash
# `npm start`: set up the checkout and run the main job.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$repo"
bash scripts/setup.sh
if [ -f apps/dispatch-cloud/dist/commands/demo.js ]; then
  exec bin/dispatch-cloud demo "$@"
fi
echo "==> checking the example EC2 configuration (bin/dispatch-cloud config-check --config examples/ec2.yml)"
bin/dispatch-cloud config-check --config examples/ec2.yml
echo "==> effective configuration, defaults filled in and secrets redacted (config-dump)"
bin/dispatch-cloud config-dump --config examples/ec2.yml
