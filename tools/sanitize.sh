#!/bin/bash
# Builds smolvm with AddressSanitizer and UndefinedBehaviorSanitizer
# (build-asan, gcc) and runs the unit, CLI, emulator and integration suites
# in it: every smolvmd the integration tests start is the sanitized one.
# (Not qemu, polkit or install: slow under ASan, or no sanitized code of
# their own.) UBSan stops a process at its first report; every report of
# any process goes to build-asan/sanitizer-logs and fails the run, even when
# the test around it did not notice. Leak checking is on for the unit tests
# and off for the others: the tests end smolvmd with SIGKILL (no leak check
# runs then) and short-lived CLI processes leave GLib's caches behind.
# Ends with "sanitize: N passed, M failed, K skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan -Db_sanitize=address,undefined
fi
meson compile -C build-asan
logs=$PWD/build-asan/sanitizer-logs
rm -rf "$logs"
mkdir -p "$logs"
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan
# GLib 2.74's GSlice keeps its own slabs, where LeakSanitizer sees no leak
export G_SLICE=always-malloc
status=0
# full stacks (GLib has no frame pointers): a suppression matches on them
ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:log_path=$logs/asan LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0 \
  meson test -C build-asan --print-errorlogs --suite unit || status=$?
cp build-asan/meson-logs/testlog.json build-asan/testlog-unit.json
ASAN_OPTIONS=detect_leaks=0:log_path=$logs/asan \
  meson test -C build-asan --print-errorlogs --suite cli --suite emulator --suite integration \
  || status=$?
cat build-asan/testlog-unit.json build-asan/meson-logs/testlog.json > build-asan/testlog-all.json
summary=$(/usr/bin/python3 tools/test-summary.py build-asan/testlog-all.json)
reports=$(find "$logs" -type f | sort)
if [ -n "$reports" ]; then
  echo "==== sanitizer reports:"
  for r in $reports; do
    echo "---- $r"
    head -80 "$r"
  done
  status=1
  # each process with a report counts as one failure more
  read -r p _ f _ s _ <<<"${summary//,/}"
  summary="$p passed, $((f + $(echo "$reports" | wc -l))) failed, $s skipped"
fi
echo "sanitize: $summary"
exit $status
