# SPDX-License-Identifier: LGPL-2.1-or-later
"""registry: a real OCI registry for the tests, Debian's `docker-registry`
(CNCF Distribution 2.8) on 127.0.0.1.

    with Registry(tmpdir) as reg:                 # anonymous
        reg.host                                  # "127.0.0.1:PORT"
        reg.count_requests("PUT", "/blobs/uploads/")

    with Registry(tmpdir, users={"alice": "secret"}) as reg:   # htpasswd basic auth

    with Registry(tmpdir, users={"alice": "secret"}, token=True) as reg:
        # the Bearer token flow: Distribution's "auth: token" with a token
        # server of ours (TokenServer, in this process) that checks the
        # users' passwords and signs JWTs with a throw-away RSA key (openssl)

Storage, config and htpasswd file live in a directory of their own below
@parent.  Distribution logs every request it served to stderr (its
"response completed" lines); requests() parses them, so that a test can
count blob uploads.  stop() kills the process by its pid; a registry that is
not stopped is killed at exit.

Only the standard library; run with /usr/bin/python3.
"""

import atexit
import base64
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

REGISTRY_BIN = os.environ.get("SMOLVM_DOCKER_REGISTRY", "/usr/bin/docker-registry")
DEADLINE = 30.0  # bounds the wait for /v2/; never an assertion on time

_running = []


def available():
    return os.access(REGISTRY_BIN, os.X_OK)


def free_port():
    # Distribution binds the port itself, so a small race with another
    # process is possible; start() retries on "address already in use".
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def htpasswd_line(user, password):
    """A bcrypt line, the only hash Distribution's htpasswd accepts."""
    out = subprocess.run(["htpasswd", "-nbB", user, password], check=True,
                         capture_output=True, text=True).stdout
    return out.strip() + "\n"


# logrus' key=value fields: bare or double-quoted values
_FIELD_RE = re.compile(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)')


def _fields(line):
    fields = {}
    for key, value in _FIELD_RE.findall(line):
        if value.startswith('"'):
            value = value[1:-1].replace('\\"', '"')
        fields[key] = value
    return fields


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A Docker token server (the protocol of Distribution's "auth: token"):
    GET /token?service=S&scope=repository:NAME:ACTIONS with HTTP basic
    credentials answers {"token": JWT} granting that scope, signed RS256
    with a key whose self-signed certificate is Distribution's
    rootcertbundle; wrong or missing credentials get 401."""

    SERVICE = "smolvm-test-registry"
    ISSUER = "smolvm-test-issuer"

    def __init__(self, directory, users):
        self.users = users
        self.key = os.path.join(directory, "token.key")
        self.cert = os.path.join(directory, "token.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=smolvm-test-token", "-keyout", self.key, "-out", self.cert],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.issued = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server._answer(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self):
        return "http://127.0.0.1:%d/token" % self.httpd.server_address[1]

    def sign(self, claims):
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = (_b64url(json.dumps(header).encode()) + "." +
                         _b64url(json.dumps(claims).encode()))
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                                   input=signing_input.encode(), check=True,
                                   capture_output=True).stdout
        return signing_input + "." + _b64url(signature)

    def _answer(self, handler):
        query = urllib.parse.parse_qs(urllib.parse.urlparse(handler.path).query)
        auth = handler.headers.get("Authorization", "")
        user = None
        if auth.startswith("Basic "):
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if self.users.get(name) == password:
                user = name
        if user is None:
            handler.send_response(401)
            handler.send_header("WWW-Authenticate", 'Basic realm="token"')
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        token = self.sign({"iss": self.ISSUER, "sub": user, "aud": query.get("service", [""])[0],
                           "exp": now + 600, "nbf": now - 60, "iat": now,
                           "jti": "%d-%d" % (now, self.issued), "access": access})
        self.issued += 1
        body = json.dumps({"token": token, "expires_in": 600}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Request:
    def __init__(self, method, uri, status):
        self.method = method
        self.uri = uri
        self.status = status

    def __repr__(self):
        return "%s %s -> %s" % (self.method, self.uri, self.status)


class Registry:
    def __init__(self, parent, users=None, token=False, extra_config=""):
        self.dir = tempfile.mkdtemp(prefix="registry-", dir=parent)
        self.storage = os.path.join(self.dir, "storage")
        self.config = os.path.join(self.dir, "config.yml")
        self.log_path = os.path.join(self.dir, "registry.log")
        self.users = dict(users or {})
        self.extra_config = extra_config
        self.token = token
        self.token_server = None
        self.proc = None
        self.port = None
        os.mkdir(self.storage)

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "http://%s" % self.host

    def _write_config(self):
        auth = ""
        if self.token:
            if self.token_server is None:
                self.token_server = TokenServer(self.dir, self.users)
            auth = ("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n"
                    "    rootcertbundle: %s\n" % (self.token_server.realm, TokenServer.SERVICE,
                                                   TokenServer.ISSUER, self.token_server.cert))
        elif self.users:
            htpasswd = os.path.join(self.dir, "htpasswd")
            with open(htpasswd, "w") as f:
                for user, password in self.users.items():
                    f.write(htpasswd_line(user, password))
            auth = ("auth:\n  htpasswd:\n    realm: smolvm-test\n    path: %s\n" % htpasswd)
        with open(self.config, "w") as f:
            f.write("version: 0.1\n"
                    "log:\n  level: info\n  accesslog:\n    disabled: true\n"
                    "storage:\n  filesystem:\n    rootdirectory: %s\n"
                    "  delete:\n    enabled: true\n"
                    "http:\n  addr: 127.0.0.1:%d\n"
                    "%s%s" % (self.storage, self.port, auth, self.extra_config))

    def start(self):
        for _ in range(5):
            self.port = free_port()
            self._write_config()
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen([REGISTRY_BIN, "serve", self.config],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
            log.close()
            _running.append(self)
            if self._wait_ready():
                return self
            self.stop()
            if "address already in use" not in self.log():
                break
        raise RuntimeError("docker-registry did not start:\n" + self.log())

    def _wait_ready(self):
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=2).close()
                return True
            except urllib.error.HTTPError as e:
                if e.code == 401:  # auth configured: it answers
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self in _running:
            _running.remove(self)

    def remove(self):
        self.stop()
        if self.token_server is not None:
            self.token_server.stop()
            self.token_server = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.remove()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def requests(self):
        """Every request the registry answered, in order."""
        out = []
        for line in self.log().splitlines():
            f = _fields(line)
            if "http.request.method" not in f:
                continue
            if f.get("msg", "").startswith("response completed"):
                status = int(f.get("http.response.status", "0") or 0)
            elif f.get("msg", "").startswith("error authorizing context"):
                status = 401  # refused before a handler ran: logged as a warning only
            else:
                continue
            out.append(Request(f["http.request.method"], f.get("http.request.uri", ""), status))
        return out

    def count_requests(self, method, uri_part=""):
        return sum(1 for r in self.requests() if r.method == method and uri_part in r.uri)

    def blob_uploads(self):
        """Blob uploads the registry completed: a PUT to an upload session
        answered 201 Created (the commit of a monolithic or chunked upload)."""
        return [r for r in self.requests()
                if r.method == "PUT" and "/blobs/uploads/" in r.uri and r.status == 201]

    def blob_data_path(self, digest):
        """The file that holds blob @digest ("sha256:<hex>") in the storage."""
        algo, hexdigest = digest.split(":", 1)
        return os.path.join(self.storage, "docker", "registry", "v2", "blobs", algo,
                            hexdigest[:2], hexdigest, "data")


def _cleanup():
    for reg in list(_running):
        reg.stop()


atexit.register(_cleanup)
