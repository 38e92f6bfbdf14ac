#!/bin/bash
# Sets up, builds and runs the whole test suite; ends with "N passed, M failed, K skipped".
# After `meson test` (its own line: "meson test: ..."), the fuzz targets run
# (tools/fuzz.sh, one case per target) and the unit, CLI and integration
# suites run again under ASan/UBSan (tools/sanitize.sh); the last line adds
# the three up. SMOLVM_SKIP_FUZZ=1 / SMOLVM_SKIP_SANITIZE=1 leave a part out.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
tools/build.sh
status=0
meson test -C build --print-errorlogs "$@" || status=$?
lines=("$(/usr/bin/python3 tools/test-summary.py build/meson-logs/testlog.json)")
echo "meson test: ${lines[0]}"
if [ "${SMOLVM_SKIP_FUZZ:-0}" != 1 ]; then
  tools/fuzz.sh | tee build/fuzz.out || status=1
  lines+=("$(sed -n 's/^fuzz: //p' build/fuzz.out | tail -1)")
fi
if [ "${SMOLVM_SKIP_SANITIZE:-0}" != 1 ]; then
  tools/sanitize.sh | tee build/sanitize.out || status=1
  lines+=("$(sed -n 's/^sanitize: //p' build/sanitize.out | tail -1)")
fi
passed=0 failed=0 skipped=0
for line in "${lines[@]}"; do
  read -r p _ f _ s _ <<<"${line//,/} 0 skipped"
  [[ "$p" =~ ^[0-9]+$ && "$f" =~ ^[0-9]+$ ]] || { failed=$((failed + 1)); continue; }  # a part that did not finish
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + ${s:-0}))
done
[ "$failed" -eq 0 ] || status=1
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
