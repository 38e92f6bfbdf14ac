#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The last integration test: every request smolvmd sent to fc-emulator
during the suite (the request logs the other test files left in
BUILD/tests/integration-request-logs/) must match Firecracker's Swagger
contract, checked by check-swagger.py."""

import glob
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402

# The suites that drive smolvmd through every kind of request.
EXPECTED = ("snapshots", "vms", "cli", "restart", "concurrency")


class TestSwagger(st.TestCase):
    def test_requests_match_the_contract(self):
        logs = sorted(glob.glob(os.path.join(st.REQUEST_LOG_DIR, "*.log")))
        names = [os.path.basename(p)[:-len(".log")] for p in logs]
        missing = [n for n in EXPECTED if n not in names]
        self.assertEqual(missing, [], "no request log of these test files in %s; run the whole "
                         "integration suite" % st.REQUEST_LOG_DIR)
        self.assertTrue(os.path.isfile(st.SWAGGER), st.SWAGGER)
        proc = subprocess.run([sys.executable, st.CHECK_SWAGGER, st.SWAGGER] + logs,
                              capture_output=True, text=True)
        report = proc.stdout + proc.stderr
        self.assertEqual(proc.returncode, 0, report)
        m = re.search(r"^(\d+) passed, (\d+) failed$", proc.stdout, re.M)
        self.assertIsNotNone(m, report)
        self.assertGreater(int(m.group(1)), 0, report)
        self.assertEqual(int(m.group(2)), 0, report)
        # every request kind smolvmd sends was seen
        seen = set()
        for path in logs:
            with open(path) as f:
                for line in f:
                    req = json.loads(line)
                    seen.add((req["method"],
                              re.sub(r"^/(drives|network-interfaces)/.*", r"/\1/{id}",
                                     req["path"])))
        kinds = [("PUT", "/machine-config"), ("PUT", "/boot-source"), ("PUT", "/drives/{id}"),
                 ("PUT", "/actions"), ("PATCH", "/vm"), ("PUT", "/snapshot/create"),
                 ("PUT", "/snapshot/load"), ("GET", "/")]
        if "network" in names:  # only root can test networking
            kinds.append(("PUT", "/network-interfaces/{id}"))
        for kind in kinds:
            self.assertIn(kind, seen)
        print("check-swagger: %s requests checked in %d logs" % (m.group(1), len(logs)))


if __name__ == "__main__":
    st.main("swagger-log")
