#!/usr/bin/env bash
# The whole suite: type-check, then jest (unit, integration on a real nats-server,
# end to end on the embedded cluster), then the libvirt lane (real libvirtd and
# QEMU) on its own so its CPU-heavy guests don't slow the timing-sensitive tests.
# Ends with one plain line "N passed, N failed".
# FERRY_LIBVIRT=0 leaves the libvirt lane out (reported as not run, never as passed).
set -uo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
failed_tc=0
echo "[test] tsc --noEmit"
if ! npx --no-install tsc -p tsconfig.json --noEmit; then failed_tc=1; fi
if ! npx --no-install tsc -p console/tsconfig.json --noEmit; then failed_tc=1; fi
# The CLI tests run bin/ferry.js, which runs the bundle in dist/.
echo "[test] build (dist/)"
if ! node scripts/build.mjs; then failed_tc=1; fi

# Prints "passed failed skipped" from a jest --json result file.
count() {
  node -e '
    const fs = require("fs");
    let r = {};
    try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch { }
    const passed = r.numPassedTests ?? 0;
    let failed = (r.numFailedTests ?? 0) + (r.numRuntimeErrorTestSuites ?? 0);
    if (!r.numTotalTests && !failed) failed = 1;
    process.stdout.write(passed + " " + failed + " " + (r.numPendingTests ?? 0));
  ' "$1"
}

# Names every failed test (and suite that failed to run) of a jest --json result file, one line each, so the
# end of the log says what failed even when the middle of a long log is cut.
failures() {
  node -e '
    const fs = require("fs");
    let r = {};
    try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch { process.exit(0); }
    const rel = (p) => require("path").relative(process.cwd(), p);
    for (const s of r.testResults ?? []) {
      const bad = (s.assertionResults ?? []).filter((a) => a.status === "failed");
      for (const a of bad) console.log("[test] FAILED " + rel(s.name) + " › " + a.fullName);
      if (!bad.length && s.status === "failed") console.log("[test] FAILED " + rel(s.name) + ": " + String(s.message ?? "").split("\n").find((l) => l.trim()) );
    }
  ' "$1"
}
failed_list=""

lane='/test/libvirt/[^/]+\.test\.ts$'
# The lane's set-up (Debian packages, the guest image) is mostly downloads and unpacking: it runs beside the main
# suite rather than after it.
run_lane=0
if [ "${FERRY_LIBVIRT:-1}" != 0 ] && [ $# -eq 0 ]; then
  run_lane=1
  lane_log=$(mktemp /tmp/ferry-lane-setup-XXXXXX.log)
  ( test/libvirt/setup.sh "$(mktemp -d /tmp/ferry-lane-XXXXXX)" >/dev/null 2>"$lane_log"; echo $? >"$lane_log.rc" ) &
  lane_setup_pid=$!
fi
main=$(mktemp /tmp/ferry-jest-XXXXXX.json)
NODE_OPTIONS=--experimental-vm-modules npx --no-install jest --json --outputFile="$main" --testPathIgnorePatterns "$lane" "$@"
main_rc=$?
read -r passed failed pending <<<"$(count "$main")"
failed_list+="$(failures "$main")"$'\n'
rm -f "$main"

lane_rc=0
if [ "${FERRY_LIBVIRT:-1}" = 0 ]; then
  echo "[test] libvirt lane: NOT RUN (FERRY_LIBVIRT=0)"
elif [ $# -gt 0 ]; then
  echo "[test] libvirt lane: not run (a test filter was given)"
else
  wait "$lane_setup_pid"
  lane_setup=$(cat "$lane_log")
  setup_rc=$(cat "$lane_log.rc" 2>/dev/null || echo 1)
  rm -f "$lane_log" "$lane_log.rc"
  if [ "$setup_rc" = 3 ]; then
    # This machine cannot run real libvirt (not root, no apt, no mount namespaces):
    # say so loudly; the lane's tests are neither run nor counted as passed.
    echo "[test] libvirt lane: NOT RUN: $(printf '%s\n' "$lane_setup" | tail -n 1)"
  elif [ "$setup_rc" != 0 ]; then
    echo "[test] libvirt lane: set-up FAILED: $(printf '%s\n' "$lane_setup" | tail -n 1)"
    lane_rc=1; failed=$((failed + 1))
  else
    echo "[test] libvirt lane (real libvirtd + QEMU)"
    out=$(mktemp /tmp/ferry-jest-XXXXXX.json)
    NODE_OPTIONS=--experimental-vm-modules npx --no-install jest --json --outputFile="$out" --runInBand 'test/libvirt/[^/]+\.test\.ts$'
    lane_rc=$?
    read -r lp lf lpend <<<"$(count "$out")"
    failed_list+="$(failures "$out")"$'\n'
    rm -f "$out"
    passed=$((passed + lp)); failed=$((failed + lf)); pending=$((pending + lpend))
  fi
fi

failed=$((failed + failed_tc))
printf '%s' "$failed_list" | grep -v '^$' || true
echo "[test] typecheck: $([ $failed_tc = 0 ] && echo ok || echo FAILED); skipped tests: $pending; wall time: $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$main_rc" = 0 ] && [ "$lane_rc" = 0 ]
