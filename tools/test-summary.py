#!/usr/bin/python3
"""Prints one "N passed, M failed" line for a meson test run.

Each test program reports its own cases as "N passed, M failed" (GLib tests
as TAP "ok"/"not ok" lines); a test that printed neither counts as one case.
"""
import json
import re
import sys

LINE = re.compile(r"^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?\s*$", re.M)

passed = failed = skipped = 0
with open(sys.argv[1]) as log:
    for raw in log:
        test = json.loads(raw)
        out = test.get("stdout") or ""
        ok = test["result"] in ("OK", "EXPECTEDFAIL")
        found = LINE.findall(out)
        tap_ok = len(re.findall(r"^ok \d+", out, re.M))
        tap_bad = len(re.findall(r"^not ok \d+", out, re.M))
        if found:
            p, f, s = found[-1]
            passed, failed, skipped = passed + int(p), failed + int(f), skipped + int(s or 0)
            if not ok and int(f) == 0:
                failed += 1  # crashed after its summary
        elif tap_ok or tap_bad:
            passed, failed = passed + tap_ok, failed + tap_bad
            if not ok and tap_bad == 0:
                failed += 1
        elif test["result"] == "SKIP":
            skipped += 1
        elif ok:
            passed += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
