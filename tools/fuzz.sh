#!/bin/bash
# Builds the libFuzzer targets (build-fuzz: clang, ASan+UBSan) and runs each
# for FUZZ_SECONDS (default 60) from its seed corpus in tests/fuzz/corpus.
# Fails on a crash, a sanitizer report, a leak, a timeout or running out of
# memory; the input is kept in build-fuzz/fuzz-results/<target>/.
# CRITICALs (a g_return_if_fail that fires, or a record that does not
# round-trip) are listed once each and do not fail the run unless
# FUZZ_CRITICALS=fatal. Ends with "fuzz: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
targets=(snapshot-json vm-json config vm-config qmp qemu-stream oci-manifest snapshot-index)
[ $# -gt 0 ] && targets=("$@")

if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined \
    -Db_lundef=false -Dwerror=false --buildtype=debugoptimized
fi
meson compile -C build-fuzz "${targets[@]/#/fuzz-}"

results=build-fuzz/fuzz-results
rm -rf "$results"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# GLib 2.74's GSlice keeps its own slabs, where LeakSanitizer sees no leak:
# every g_slice allocation goes through malloc instead
export G_SLICE=always-malloc
export FUZZ_CRITICALS=${FUZZ_CRITICALS:-log}
passed=0
failed=0
table=()
for t in "${targets[@]}"; do
  dir=$results/$t
  mkdir -p "$dir/corpus"
  rc=0
  # new inputs go to the scratch corpus; the checked-in seeds are only read
  build-fuzz/tests/fuzz/fuzz-$t -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 \
    -print_final_stats=1 -artifact_prefix="$dir/" "$dir/corpus" "tests/fuzz/corpus/$t" \
    >"$dir/log" 2>&1 || rc=$?
  # a target that dies on its first seed prints no coverage: a grep that
  # finds nothing must not end the script (pipefail) before it is reported
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$dir/log" | tail -1 || true)
  crits=$(grep -c '^FUZZ-CRITICAL:' "$dir/log" || true)
  if [ "$rc" -eq 0 ]; then
    verdict=ok
    passed=$((passed + 1))
  else
    verdict="FAILED (exit $rc)"
    failed=$((failed + 1))
    echo "==== fuzz-$t failed; the end of $dir/log:"
    { grep -v '^FUZZ-CRITICAL:' "$dir/log" || true; } | tail -60
    ls "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-* 2>/dev/null || true
  fi
  table+=("$(printf '%-14s %-10s %10s execs %7s exec/s  %-22s %s distinct CRITICALs' \
    "$t" "$verdict" "${execs:-?}" "${rate:-?}" "${cov:-cov: ?}" "$crits")")
  if [ "$crits" -gt 0 ]; then
    table+=("$(grep '^FUZZ-CRITICAL:' "$dir/log" | sed 's/^/                 /')")
  fi
done
echo "==== fuzzing, ${seconds} s per target (cov: edges, ft: features, as libFuzzer counts them)"
printf '%s\n' "${table[@]}"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
