#!/bin/bash
# Sets up, builds and runs the whole test suite; ends with "N passed, M failed, K skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
tools/build.sh
status=0
meson test -C build --print-errorlogs "$@" || status=$?
/usr/bin/python3 tools/test-summary.py build/meson-logs/testlog.json
exit $status
