#!/usr/bin/env bash
# The whole suite: type-check, then jest (unit, integration on a real nats-server,
# end to end on the embedded cluster). Ends with one plain line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
failed_tc=0
echo "[test] tsc --noEmit"
if ! npx --no-install tsc -p tsconfig.json --noEmit; then failed_tc=1; fi

results=$(mktemp /tmp/ferry-jest-XXXXXX.json)
NODE_OPTIONS=--experimental-vm-modules npx --no-install jest --json --outputFile="$results" "$@"
jest_rc=$?

summary=$(node -e '
  const fs = require("fs");
  let r = {};
  try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch { }
  const passed = r.numPassedTests ?? 0;
  let failed = (r.numFailedTests ?? 0) + (r.numRuntimeErrorTestSuites ?? 0);
  if (!r.numTotalTests && !failed) failed = 1;
  process.stdout.write(passed + " " + failed + " " + (r.numPendingTests ?? 0));
' "$results")
rm -f "$results"
read -r passed failed pending <<<"$summary"
failed=$((failed + failed_tc))
echo "[test] typecheck: $([ $failed_tc = 0 ] && echo ok || echo FAILED); skipped tests: $pending; wall time: $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$jest_rc" = 0 ]
