#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs the C test of the OCI registry client (tests/unit/test-oci-client)
against real registries: Debian's docker-registry anonymous, with htpasswd
basic auth, and with the Bearer token flow (Distribution's "auth: token"
and registry.py's token server)."""

import os
import shlex
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import registry  # noqa: E402

USERS = {"smolvm": "s3cret"}


def main():
    test_bin = sys.argv[1]
    if not registry.available():
        print("1..0 # SKIP %s is not installed" % registry.REGISTRY_BIN)
        return 77
    with tempfile.TemporaryDirectory(prefix="test-oci-client-") as tmp, \
            registry.Registry(tmp) as anonymous, \
            registry.Registry(tmp, users=USERS) as basic, \
            registry.Registry(tmp, users=USERS, token=True) as bearer:
        env = dict(os.environ,
                   SMOLVM_TEST_REGISTRY=anonymous.host,
                   SMOLVM_TEST_REGISTRY_BASIC=basic.host,
                   SMOLVM_TEST_REGISTRY_BEARER=bearer.host)
        # under meson test --setup valgrind the C test runs in valgrind too
        wrapper = shlex.split(os.environ.get("SMOLVM_TEST_DAEMON_WRAPPER", ""))
        rc = subprocess.run(wrapper + [test_bin, "--tap"] + sys.argv[2:], env=env).returncode
        if rc != 0:
            for name, reg in (("anonymous", anonymous), ("basic", basic), ("bearer", bearer)):
                sys.stderr.write("---- %s registry log (tail) ----\n%s\n"
                                 % (name, reg.log()[-4000:]))
            return rc
        # the C test counted on the registries; check they saw what it did
        assert any(r.method == "PATCH" for r in anonymous.requests()), "no chunked upload"
        assert bearer.token_server.issued > 0, "the bearer registry issued no token"
    return 0


if __name__ == "__main__":
    sys.exit(main())
