#!/usr/bin/env bash
# What CI runs: set up everything the tests need, build, check, and run every test. The last
# line is "N passed, N failed"; the exit status is non-zero if anything failed.
set -uo pipefail
source "$(dirname "$0")/env.sh"
cd "$repo"

bash scripts/setup.sh --test-peers || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
check() {
  local name=$1; shift
  printf '==> %s\n' "$name"
  if "$@"; then passed=$((passed + 1)); else echo "FAILED: $name"; failed=$((failed + 1)); fi
}
check "dependency direction and cycles" node scripts/check-deps.mjs
check "lint (oxlint, type-aware)" oxlint --type-aware --deny-warnings --quiet packages apps tests scripts packaging
check "format (prettier)" prettier --check --log-level warn .

printf '==> tests (vitest)\n'
report=$(mktemp)
vitest run --reporter=default --reporter=json --outputFile.json="$report"
status=$?
if [ -s "$report" ]; then
  read -r tp tf sf < <(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    // A suite that failed to load has no failed tests of its own: count it as one failure.
    const broken = r.testResults.filter((f) => f.status === "failed" && !f.assertionResults.some((a) => a.status === "failed")).length;
    console.log(r.numPassedTests, r.numFailedTests, broken);' "$report")
  passed=$((passed + tp))
  failed=$((failed + tf + sf))
  if [ "$status" -ne 0 ] && [ "$tf" -eq 0 ] && [ "$sf" -eq 0 ]; then failed=$((failed + 1)); fi
else
  failed=$((failed + 1))
fi
rm -f "$report"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
