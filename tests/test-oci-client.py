#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs the C test of the OCI registry client (tests/unit/test-oci-client)
against real registries: Debian's docker-registry anonymous, with htpasswd
basic auth, and with the Bearer token flow (Distribution's "auth: token"
and registry.py's token server). Distribution's filesystem storage never
redirects a blob GET, so a small fake registry here does: it answers the
blob with a 307 to a "blob store" on another port, which must get the
blob request without the registry's credentials. Another fake registry is
hostile: it answers manifests, token requests and errors with bodies that
are endless or larger than the client's limits, which the client must
refuse without reading them whole."""

import base64
import hashlib
import http.server
import os
import threading
import shlex
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import registry  # noqa: E402

USERS = {"smolvm": "s3cret"}
REDIRECTED_BLOB = b"a blob served from elsewhere\n" * 1000


class Redirector:
    """A registry that sends blobs from a store on another port."""

    def __init__(self):
        self.digest = "sha256:" + hashlib.sha256(REDIRECTED_BLOB).hexdigest()
        self.store_requests = []  # the Authorization header of each, or None
        expected = "Basic " + base64.b64encode(b"smolvm:s3cret").decode()
        outer = self

        class Store(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.store_requests.append(self.headers.get("Authorization"))
                self.send_response(200)
                self.send_header("Content-Length", str(len(REDIRECTED_BLOB)))
                self.end_headers()
                self.wfile.write(REDIRECTED_BLOB)

        class Front(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="fake"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path == "/v2/":
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(307)
                self.send_header("Location", "http://127.0.0.1:%d/store/%s?signature=x" % (
                    outer.store.server_address[1], outer.digest))
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.store = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Store)
        self.front = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Front)
        for server in (self.store, self.front):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def host(self):
        return "127.0.0.1:%d" % self.front.server_address[1]

    def stop(self):
        for server in (self.store, self.front):
            server.shutdown()
            server.server_close()


# what the hostile registry sends at most of an endless body: far more than
# the client's 4 MiB limit, so that a client reading it whole would get all
ENDLESS_CAP = 64 * 1024 * 1024
OVERSIZED = 5 * 1024 * 1024


class Hostile:
    """A registry whose answers are too large. Repository "smolvm/test":
    manifest "endless" has no Content-Length and never ends (until
    ENDLESS_CAP), "oversized" declares and sends OVERSIZED bytes, "error"
    is a 500 with an endless body, "unauthorized" a 401 (Basic) with one,
    "redirect" a 302 with one to "small" (a 2-byte manifest), "loop" a
    307 with one to itself.
    Repository "smolvm/token" needs a
    Bearer token from a token server whose answer never ends."""

    def __init__(self):
        self.completed = []  # the bodies the client read to their end
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            # HTTP/1.0: a body without Content-Length ends with the connection
            def log_message(self, *args):
                pass

            def endless(self, status, name, challenge=None, location=None):
                self.send_response(status)
                if challenge:
                    self.send_header("WWW-Authenticate", challenge)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                chunk = b"{" + b" " * 65535
                try:
                    for _ in range(ENDLESS_CAP // len(chunk)):
                        self.wfile.write(chunk)
                    outer.completed.append(name)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):
                if self.path == "/token" or self.path.startswith("/token?"):
                    self.endless(200, "token")
                    return
                if self.path == "/v2/smolvm/token/manifests/x" or self.path == "/v2/":
                    if self.path == "/v2/" or not self.headers.get("Authorization"):
                        self.send_response(401 if self.path != "/v2/" else 200)
                        if self.path != "/v2/":
                            self.send_header("WWW-Authenticate",
                                             'Bearer realm="http://%s/token",service="x"'
                                             % outer.host)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                if self.path == "/v2/smolvm/test/manifests/endless":
                    self.endless(200, "endless")
                elif self.path == "/v2/smolvm/test/manifests/error":
                    self.endless(500, "error")
                elif self.path == "/v2/smolvm/test/manifests/unauthorized":
                    self.endless(401, "unauthorized", 'Basic realm="hostile"')
                elif self.path == "/v2/smolvm/test/manifests/redirect":
                    self.endless(302, "redirect", location="/v2/smolvm/test/manifests/small")
                elif self.path == "/v2/smolvm/test/manifests/loop":
                    self.endless(307, "loop", location="/v2/smolvm/test/manifests/loop")
                elif self.path == "/v2/smolvm/test/manifests/small":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                elif self.path == "/v2/smolvm/test/manifests/oversized":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(OVERSIZED))
                    self.end_headers()
                    try:
                        self.wfile.write(b" " * OVERSIZED)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def host(self):
        return "127.0.0.1:%d" % self.server.server_address[1]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def main():
    test_bin = sys.argv[1]
    if not registry.available():
        print("1..0 # SKIP %s is not installed" % registry.REGISTRY_BIN)
        return 77
    with tempfile.TemporaryDirectory(prefix="test-oci-client-") as tmp, \
            registry.Registry(tmp) as anonymous, \
            registry.Registry(tmp, users=USERS) as basic, \
            registry.Registry(tmp, users=USERS, token=True) as bearer:
        redirector = Redirector()
        hostile = Hostile()
        env = dict(os.environ,
                   SMOLVM_TEST_REGISTRY=anonymous.host,
                   SMOLVM_TEST_REGISTRY_BASIC=basic.host,
                   SMOLVM_TEST_REGISTRY_BEARER=bearer.host,
                   SMOLVM_TEST_REGISTRY_REDIRECT=redirector.host,
                   SMOLVM_TEST_REGISTRY_HOSTILE=hostile.host,
                   SMOLVM_TEST_REDIRECT_DIGEST=redirector.digest,
                   SMOLVM_TEST_REDIRECT_SIZE=str(len(REDIRECTED_BLOB)))
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
        assert redirector.store_requests, "the blob store saw no request"
        assert redirector.store_requests == [None] * len(redirector.store_requests), \
            "the registry's credentials went to the blob store: %r" % redirector.store_requests
        redirector.stop()
        # the client stopped reading each endless body: none was sent whole
        assert hostile.completed == [], \
            "the client read endless bodies to their end: %r" % hostile.completed
        hostile.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
