#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Tests of fc-emulator, the Firecracker API emulator, over its Unix socket.

Usage: test-fc-emulator.py FC_EMULATOR SWAGGER_YAML [CHECK_SWAGGER_PY]

Stdlib only, apart from the checker (which needs PyYAML); run it with
/usr/bin/python3.  Never asserts on timing: waits poll with deadlines.
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1024 * 1024
TICK_MS = "50"
DEADLINE = 5.0  # seconds for anything we wait for

passed = 0
failed = 0


def check(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   - %s" % what)
    else:
        failed += 1
        print("FAIL - %s%s" % (what, (": %s" % detail) if detail else ""))
    return cond


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=DEADLINE)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(DEADLINE)
        sock.connect(self.unix_path)
        self.sock = sock


class Response:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.json = json.loads(raw) if raw else None
        except ValueError:
            self.json = None

    def fault(self):
        if isinstance(self.json, dict):
            return self.json.get("fault_message")
        return None

    def __repr__(self):
        return "%d %r" % (self.status, self.raw[:300])


class Emulator:
    """One fc-emulator process; stdout is collected by a reader thread."""

    def __init__(self, binary, workdir, name, log=None, args=None, timing_log=None):
        self.sock = os.path.join(workdir, name + ".sock")
        env = dict(os.environ, FC_EMULATOR_TICK_MS=TICK_MS)
        env.pop("FC_EMULATOR_REQUEST_LOG", None)
        env.pop("FC_EMULATOR_TIMING_LOG", None)
        if log:
            env["FC_EMULATOR_REQUEST_LOG"] = log
        if timing_log:
            env["FC_EMULATOR_TIMING_LOG"] = timing_log
        cmd = [binary, "--api-sock", self.sock] + (args if args is not None else ["--id", name])
        self.proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.stderr = None
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + DEADLINE
        while not os.path.exists(self.sock) and self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError("%s: API socket never appeared" % name)
            time.sleep(0.01)

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def request(self, method, path, body=None, raw=None):
        conn = UnixHTTPConnection(self.sock)
        try:
            headers = {}
            data = None
            if raw is not None:
                data = raw.encode()
            elif body is not None:
                data = json.dumps(body).encode()
            if data is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return Response(resp.status, resp.headers, resp.read().decode())
        finally:
            conn.close()

    def wait_line(self, predicate, start=0):
        """Returns the first stdout line from index `start` matching, or None."""
        deadline = time.monotonic() + DEADLINE
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if predicate(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    return None
                self.cond.wait(remaining)

    def ticks(self):
        with self.cond:
            return [int(m.group(1)) for m in (re.fullmatch(r"tick (\d+)", l) for l in self.lines) if m]

    def wait_exit(self):
        try:
            return self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """SIGTERM; returns the exit status (None if it would not exit)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit()
        if rc is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(DEADLINE)
        if self.stderr is None:
            self.stderr = self.proc.stderr.read()
            self.proc.stderr.close()
        return rc


def expect_204(emu, method, path, body, what):
    r = emu.request(method, path, body)
    check(r.status == 204 and r.raw == "" and "Content-Type" not in r.headers,
          "%s -> 204, no body, no Content-Type" % what, r)
    return r


def expect_400(emu, method, path, body=None, what=None, raw=None, contains=None):
    r = emu.request(method, path, body, raw=raw)
    ok = (r.status == 400 and r.headers.get("Content-Type", "").startswith("application/json")
          and isinstance(r.fault(), str) and r.fault() != "")
    if ok and contains is not None:
        ok = contains in r.fault()
    check(ok, "%s -> 400 with fault_message" % (what or "%s %s" % (method, path)), r)
    return r


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def open_flags(pid, path):
    """The open flags (int) of each descriptor process @pid holds on @path."""
    flags = []
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, fd)) != path:
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                for line in f:
                    if line.startswith("flags:"):
                        flags.append(int(line.split()[1], 8))
        except FileNotFoundError:  # closed meanwhile
            pass
    return flags


def mappings(pid, path):
    """(size, perms) of each mapping of @path in process @pid."""
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            fields = line.split(None, 5)
            if len(fields) == 6 and fields[5].rstrip("\n") == path:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                out.append((end - start, fields[1]))
    return out


def run_cli(binary, args, workdir, env=None):
    try:
        p = subprocess.run([binary] + args, cwd=workdir, capture_output=True, text=True,
                           timeout=DEADLINE, env=dict(os.environ, **(env or {})))
        return p.returncode, p.stderr
    except subprocess.TimeoutExpired:
        return None, "timed out"


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    binary = os.path.abspath(argv[1])
    swagger = os.path.abspath(argv[2])
    checker = os.path.abspath(argv[3]) if len(argv) > 3 else \
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "check-swagger.py")

    work = tempfile.mkdtemp(prefix="fc-emulator-test-")
    emus = []
    try:
        run_tests(binary, swagger, checker, work, emus)
    except Exception as e:  # a crash is a failure, not a silent pass
        import traceback
        traceback.print_exc()
        check(False, "test run completed without exceptions", repr(e))
    finally:
        for e in emus:
            if e.proc.poll() is None:
                e.proc.kill()
                e.proc.wait()
        shutil.rmtree(work, ignore_errors=True)

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or passed == 0 else 0


def run_tests(binary, swagger, checker, work, emus):
    kernel = os.path.join(work, "vmlinux")
    rootfs = os.path.join(work, "rootfs.ext4")
    datafs = os.path.join(work, "data.ext4")
    with open(kernel, "wb") as f:
        f.write(b"not really a kernel\n")
    for p in (rootfs, datafs):
        with open(p, "wb") as f:
            f.truncate(4 * MIB)
    snapdir = os.path.join(work, "snap")
    os.mkdir(snapdir)
    vmstate = os.path.join(snapdir, "vmstate.bin")
    memfile = os.path.join(snapdir, "mem.bin")
    bad_log = os.path.join(work, "negative.log")
    good_log = os.path.join(work, "good.log")

    def start(name, log=good_log, args=None, timing_log=None):
        e = Emulator(binary, work, name, log=log, args=args, timing_log=timing_log)
        emus.append(e)
        return e

    root_drive = {"drive_id": "rootfs", "is_root_device": True, "path_on_host": rootfs,
                  "is_read_only": False}

    # ---- command line ---------------------------------------------------
    rc, err = run_cli(binary, ["--api-sock", os.path.join(work, "x.sock"), "--bogus"], work)
    check(rc == 1 and err.strip() != "", "unknown argument: exit 1 with a message", (rc, err))
    rc, err = run_cli(binary, ["--id", "abc"], work)
    check(rc == 1 and err.strip() != "", "missing --api-sock: exit 1", (rc, err))
    rc, err = run_cli(binary, ["--api-sock", os.path.join(work, "y.sock"), "--id", "bad_id!"], work)
    check(rc == 1, "invalid --id: exit 1", (rc, err))
    taken = os.path.join(work, "taken.sock")
    open(taken, "w").close()
    rc, err = run_cli(binary, ["--api-sock", taken], work)
    check(rc == 1 and err.strip() != "", "existing socket path: exit 1 (address in use)", (rc, err))

    # ---- validation and gates (log expected to FAIL the checker) ----------
    e = start("neg", log=bad_log, args=[])
    r = e.request("GET", "/")
    check(r.status == 200 and r.json == {"app_name": "Firecracker", "id": "anonymous-instance",
                                         "state": "Not started", "vmm_version": "1.16.1"},
          "GET / -> InstanceInfo with the default id", r)
    # Firecracker keeps connections alive, 204s included; clients reuse them.
    conn = UnixHTTPConnection(e.sock)
    statuses = []
    try:
        for method, path, body in [("PUT", "/logger", {"level": "Info"}),
                                   ("PUT", "/logger", {"level": "Warning"}),
                                   ("PUT", "/logger", {"nope": 1}),
                                   ("GET", "/", None)]:
            conn.request(method, path, body=json.dumps(body).encode() if body is not None else None)
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
    except OSError as ex:
        statuses.append(repr(ex))
    finally:
        conn.close()
    check(statuses == [204, 204, 400, 200], "one keep-alive connection serves several requests", statuses)
    r = e.request("GET", "/version")
    check(r.status == 200 and r.json == {"firecracker_version": "1.16.1"}, "GET /version", r)
    r = e.request("GET", "/machine-config")
    check(r.status == 200 and r.json.get("vcpu_count") == 1 and r.json.get("mem_size_mib") == 128,
          "GET /machine-config defaults", r)

    expect_204(e, "PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 128},
               "PUT /machine-config")
    expect_400(e, "PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 128, "foo": 1},
               "unknown field", contains="foo")
    expect_400(e, "PUT", "/machine-config", {"vcpu_count": 2}, "missing required field",
               contains="mem_size_mib")
    expect_400(e, "PUT", "/machine-config", {"vcpu_count": "2", "mem_size_mib": 128}, "wrong type")
    expect_400(e, "PUT", "/machine-config", {"vcpu_count": 2.0, "mem_size_mib": 128},
               "float for an integer")
    expect_400(e, "PUT", "/machine-config", {"vcpu_count": 0, "mem_size_mib": 128}, "vcpu_count 0")
    expect_400(e, "PUT", "/machine-config", {"vcpu_count": 33, "mem_size_mib": 128}, "vcpu_count 33")
    expect_400(e, "PUT", "/machine-config", {"vcpu_count": 3, "mem_size_mib": 128, "smt": True},
               "odd vcpu_count with SMT")
    expect_400(e, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128,
                                             "huge_pages": "1G"}, "bad enum (huge_pages)")
    expect_400(e, "PUT", "/machine-config", None, "empty PUT body")
    expect_400(e, "PUT", "/machine-config", raw="{not json", what="invalid JSON")
    # serde_json refuses trailing characters; json-glib alone takes the last value
    expect_400(e, "PUT", "/machine-config",
               raw='{"vcpu_count": 4, "mem_size_mib": 64} {"vcpu_count": 2, "mem_size_mib": 128}',
               what="two JSON values")
    expect_400(e, "PUT", "/machine-config", raw=" \n", what="a body of whitespace")
    expect_400(e, "PUT", "/machine-config", [1, 2], "body not an object")
    r = e.request("GET", "/machine-config")
    check(r.status == 200 and r.json.get("vcpu_count") == 2,
          "failed PUTs left the machine config unchanged", r)
    expect_204(e, "PATCH", "/machine-config", {"mem_size_mib": 256}, "partial PATCH /machine-config")
    expect_400(e, "PATCH", "/machine-config", {"mem_size_mib": 256, "x": 1},
               "PATCH /machine-config unknown field")

    expect_400(e, "PUT", "/drives/root-fs", dict(root_drive, drive_id="root-fs"), "hyphenated drive id")
    expect_400(e, "PUT", "/drives/rootfs", dict(root_drive, drive_id="other"),
               "drive id in path != body")
    expect_400(e, "PUT", "/drives/rootfs", dict(root_drive, cache_type="Fast"),
               "bad enum (cache_type)", contains="Fast")
    expect_400(e, "PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": rootfs},
               "drive without is_root_device")
    expect_400(e, "PUT", "/drives/rootfs", dict(root_drive, path_on_host=rootfs + ".missing"),
               "missing path_on_host file")
    expect_400(e, "PUT", "/drives/rootfs", dict(root_drive, path_on_host=work),
               "path_on_host is a directory")
    expect_400(e, "PUT", "/drives/rootfs",
               dict(root_drive, rate_limiter={"bandwidth": {"size": 100}}),
               "nested TokenBucket missing refill_time", contains="refill_time")
    expect_400(e, "PUT", "/drives/rootfs",
               dict(root_drive, rate_limiter={"bandwidth": {"size": 1, "refill_time": 1,
                                                            "extra": 1}}),
               "nested unknown field")
    expect_400(e, "PUT", "/drives/rootfs",
               dict(root_drive, rate_limiter={"ops": {"size": -1, "refill_time": 1}}),
               "nested minimum")
    expect_400(e, "PUT", "/network-interfaces/eth0",
               {"iface_id": "eth0", "host_dev_name": "tap0", "mtu": 67}, "mtu 67")
    expect_400(e, "PUT", "/network-interfaces/eth0",
               {"iface_id": "eth0", "host_dev_name": "tap0", "mtu": 65536}, "mtu 65536")
    expect_400(e, "PUT", "/network-interfaces/eth-0",
               {"iface_id": "eth-0", "host_dev_name": "tap0"}, "hyphenated iface id")
    expect_400(e, "PUT", "/network-interfaces/eth0",
               {"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "zz"}, "bad MAC")
    expect_400(e, "PUT", "/boot-source", {"kernel_image_path": kernel + ".missing"}, "missing kernel")
    expect_400(e, "PUT", "/boot-source", {"kernel_image_path": kernel,
                                          "initrd_path": kernel + ".missing"}, "missing initrd")
    expect_400(e, "PUT", "/nope", {}, "unknown path")
    expect_400(e, "DELETE", "/drives/rootfs", None, "unknown method")
    expect_400(e, "PUT", "/vsock", {"guest_cid": 3, "uds_path": "/tmp/v.sock"},
               "swagger path not emulated")
    expect_400(e, "GET", "/", {"x": 1}, "GET with a body")

    # post-boot-only before boot
    expect_400(e, "PATCH", "/vm", {"state": "Paused"}, "PATCH /vm before boot")
    expect_400(e, "PATCH", "/drives/rootfs", {"drive_id": "rootfs"}, "PATCH drive before boot")
    expect_400(e, "PATCH", "/network-interfaces/eth0", {"iface_id": "eth0"}, "PATCH iface before boot")
    expect_400(e, "PUT", "/snapshot/create", {"snapshot_path": vmstate + ".neg",
                                              "mem_file_path": memfile + ".neg"},
               "snapshot/create before boot")
    expect_400(e, "PUT", "/actions", {"action_type": "SendCtrlAltDel"}, "SendCtrlAltDel before boot")
    expect_400(e, "PUT", "/actions", {"action_type": "FlushMetrics"}, "FlushMetrics before boot")
    expect_400(e, "PUT", "/actions", {"action_type": "InstanceStart"}, "InstanceStart without boot source")
    expect_204(e, "PUT", "/boot-source", {"kernel_image_path": kernel, "boot_args": "console=ttyS0"},
               "PUT /boot-source")
    expect_400(e, "PUT", "/actions", {"action_type": "InstanceStart"}, "InstanceStart without root drive")
    expect_204(e, "PUT", "/drives/rootfs", root_drive, "PUT /drives/rootfs")
    expect_400(e, "PUT", "/drives/data", {"drive_id": "data", "is_root_device": True,
                                          "path_on_host": datafs}, "second root device")
    expect_204(e, "PUT", "/drives/data", {"drive_id": "data", "is_root_device": False,
                                          "path_on_host": datafs}, "PUT /drives/data")
    expect_204(e, "PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "tap0",
                                                      "guest_mac": "06:00:ac:10:00:02"},
               "PUT /network-interfaces/eth0")
    expect_204(e, "PUT", "/actions", {"action_type": "InstanceStart"}, "InstanceStart")
    check(e.wait_line(lambda l: l == "fc-emulator: booting kernel %s" % kernel) is not None,
          "boot banner printed")
    check(e.wait_line(lambda l: l == "tick 1") is not None, "guest ticks after boot")
    r = e.request("GET", "/")
    check(r.status == 200 and r.json.get("state") == "Running", "state Running after boot", r)

    # pre-boot-only after boot
    expect_400(e, "PUT", "/actions", {"action_type": "InstanceStart"}, "second InstanceStart")
    expect_400(e, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128},
               "PUT /machine-config after boot")
    expect_400(e, "PATCH", "/machine-config", {"vcpu_count": 1}, "PATCH /machine-config after boot")
    expect_400(e, "PUT", "/boot-source", {"kernel_image_path": kernel}, "PUT /boot-source after boot")
    expect_400(e, "PUT", "/drives/rootfs", root_drive, "PUT /drives after boot")
    expect_400(e, "PUT", "/network-interfaces/eth1", {"iface_id": "eth1", "host_dev_name": "tap1"},
               "PUT /network-interfaces after boot")
    expect_400(e, "PUT", "/snapshot/load", {"snapshot_path": vmstate, "mem_file_path": memfile},
               "snapshot/load after boot")
    expect_204(e, "PATCH", "/drives/data", {"drive_id": "data", "path_on_host": rootfs},
               "PATCH drive after boot")
    expect_400(e, "PATCH", "/drives/nodrive", {"drive_id": "nodrive", "path_on_host": rootfs},
               "PATCH unknown drive")
    expect_400(e, "PATCH", "/drives/data", {"drive_id": "data"},
               "PATCH virtio drive with nothing to update")
    expect_400(e, "PATCH", "/drives/data", {"drive_id": "data", "path_on_host": rootfs + ".missing"},
               "PATCH drive to a missing file")
    expect_204(e, "PATCH", "/network-interfaces/eth0",
               {"iface_id": "eth0", "rx_rate_limiter": {"ops": {"size": 10, "refill_time": 100}}},
               "PATCH iface after boot")
    expect_400(e, "PUT", "/actions", {"action_type": "FlushMetrics"}, "FlushMetrics without metrics")
    expect_400(e, "PUT", "/logger", {"level": "Info"}, "PUT /logger after boot")
    expect_400(e, "PUT", "/metrics", {"metrics_path": os.path.join(work, "m2.json")},
               "PUT /metrics after boot")
    expect_400(e, "PATCH", "/vm", {"state": "Running"}, "PATCH /vm bad enum")
    expect_204(e, "PATCH", "/vm", {"state": "Paused"}, "PATCH /vm Paused")
    expect_400(e, "PUT", "/snapshot/create", {"snapshot_path": vmstate + ".neg",
                                              "mem_file_path": memfile + ".neg",
                                              "snapshot_type": "Diff"},
               "Diff snapshot without track_dirty_pages")
    r = e.request("GET", "/")
    check(r.status == 200 and r.json.get("state") == "Paused", "process alive after refused load", r)
    check(e.stop() == 0, "SIGTERM -> exit 0")
    check(not os.path.exists(e.sock), "API socket removed on exit")

    # ---- boot, pause, snapshot (log must pass the checker) -----------------
    metrics = os.path.join(work, "metrics.json")
    e = start("src")
    expect_204(e, "PUT", "/logger", {"log_path": os.path.join(work, "fc.log"), "level": "Debug",
                                     "show_level": True}, "PUT /logger")
    expect_204(e, "PUT", "/metrics", {"metrics_path": metrics}, "PUT /metrics")
    expect_204(e, "PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 64,
                                             "track_dirty_pages": True}, "PUT /machine-config 64 MiB")
    expect_204(e, "PUT", "/boot-source", {"kernel_image_path": kernel,
                                          "boot_args": "console=ttyS0 reboot=k"}, "PUT /boot-source")
    expect_204(e, "PUT", "/drives/rootfs", root_drive, "PUT /drives/rootfs")
    expect_204(e, "PUT", "/network-interfaces/eth0",
               {"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:ac:10:00:02",
                "mtu": 1500}, "PUT /network-interfaces/eth0")
    expect_204(e, "PUT", "/actions", {"action_type": "InstanceStart"}, "InstanceStart")
    check(e.wait_line(lambda l: l == "tick 3") is not None, "guest reached tick 3")
    expect_204(e, "PUT", "/actions", {"action_type": "FlushMetrics"}, "FlushMetrics")
    check(os.path.getsize(metrics) > 0, "metrics flushed to the metrics file")
    expect_400(e, "PUT", "/snapshot/create", {"snapshot_path": vmstate, "mem_file_path": memfile},
               "snapshot/create while Running")
    expect_204(e, "PATCH", "/vm", {"state": "Paused"}, "PATCH /vm Paused")
    expect_204(e, "PATCH", "/vm", {"state": "Paused"}, "PATCH /vm Paused again (idempotent)")
    r = e.request("GET", "/")
    check(r.status == 200 and r.json.get("state") == "Paused", "state Paused", r)
    expect_400(e, "PUT", "/snapshot/create",
               {"snapshot_path": os.path.join(work, "no", "such", "vmstate"),
                "mem_file_path": memfile}, "snapshot/create into a missing directory")
    expect_204(e, "PUT", "/snapshot/create", {"snapshot_path": vmstate, "mem_file_path": memfile,
                                              "snapshot_type": "Full"}, "snapshot/create while Paused")
    check(os.path.isfile(vmstate) and os.path.isfile(memfile), "snapshot files exist")
    st = os.stat(memfile)
    check(st.st_size == 64 * MIB, "mem.bin is exactly mem_size_mib MiB", st.st_size)
    check(st.st_blocks * 512 < st.st_size // 16, "mem.bin is sparse",
          "allocated %d of %d" % (st.st_blocks * 512, st.st_size))
    with open(vmstate, "rb") as f:
        check(f.readline() == b"FCEMU-VMSTATE-1\n", "vmstate.bin starts with its magic")
    r = e.request("GET", "/vm/config")
    check(r.status == 200 and r.json["machine-config"]["mem_size_mib"] == 64
          and r.json["drives"][0]["drive_id"] == "rootfs", "GET /vm/config", r)
    check(e.stop() == 0, "source emulator exits 0 on SIGTERM")
    src_ticks = e.ticks()
    check(len(src_ticks) >= 3 and src_ticks == list(range(1, len(src_ticks) + 1)),
          "source ticks count 1, 2, 3, ...", src_ticks[:10])
    last = src_ticks[-1] if src_ticks else -1

    # ---- restore and continue ------------------------------------------------
    e = start("dst")
    expect_204(e, "PUT", "/logger", {"level": "Info"}, "PUT /logger before load (allowed)")
    expect_204(e, "PUT", "/snapshot/load",
               {"snapshot_path": vmstate,
                "mem_backend": {"backend_type": "File", "backend_path": memfile},
                "resume_vm": True,
                "track_dirty_pages": True,
                "network_overrides": [{"iface_id": "eth0", "host_dev_name": "tap9"}]},
               "snapshot/load with resume_vm")
    first = e.wait_line(lambda l: l.startswith("tick "))
    check(first == "tick %d" % (last + 1), "first tick after load continues the counter",
          "got %r, last before snapshot %d" % (first, last))
    with e.cond:
        out = list(e.lines)
    check(not any(l.startswith("fc-emulator: booting kernel") for l in out), "no boot banner on load", out)
    check("fc-emulator: snapshot loaded" in out, "load message printed", out)
    r = e.request("GET", "/")
    check(r.status == 200 and r.json.get("state") == "Running" and r.json.get("id") == "dst",
          "restored VM Running", r)
    r = e.request("GET", "/vm/config")
    check(r.status == 200 and r.json["network-interfaces"][0]["host_dev_name"] == "tap9"
          and r.json["machine-config"]["mem_size_mib"] == 64, "network override applied", r)
    expect_400(e, "PUT", "/actions", {"action_type": "InstanceStart"}, "InstanceStart after load")
    expect_400(e, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64},
               "PUT /machine-config after load")
    expect_400(e, "PUT", "/snapshot/load", {"snapshot_path": vmstate, "mem_file_path": memfile},
               "second snapshot/load")
    expect_204(e, "PATCH", "/vm", {"state": "Paused"}, "pause the restored VM")
    vmstate2 = os.path.join(snapdir, "vmstate2.bin")
    memfile2 = os.path.join(snapdir, "mem2.bin")
    expect_204(e, "PUT", "/snapshot/create", {"snapshot_path": vmstate2, "mem_file_path": memfile2,
                                              "snapshot_type": "Diff"},
               "Diff snapshot of a VM loaded with track_dirty_pages")
    check(e.stop() == 0, "restored emulator exits 0 on SIGTERM")
    dst_ticks = e.ticks()
    last2 = dst_ticks[-1] if dst_ticks else -1
    check(dst_ticks == list(range(last + 1, last2 + 1)) and dst_ticks, "restored ticks are contiguous",
          dst_ticks[:10])

    # Load paused (deprecated mem_file_path form), then resume.
    e = start("paused")
    expect_204(e, "PUT", "/snapshot/load", {"snapshot_path": vmstate2, "mem_file_path": memfile2,
                                            "track_dirty_pages": True, "network_overrides": []},
               "snapshot/load paused, empty network_overrides")
    r = e.request("GET", "/")
    check(r.status == 200 and r.json.get("state") == "Paused", "loaded VM is Paused", r)
    r = e.request("GET", "/vm/config")
    check(r.status == 200 and [i["host_dev_name"] for i in r.json["network-interfaces"]] == ["tap9"],
          "a snapshot of a VM loaded with an override keeps the overriding TAP", r)
    check(e.ticks() == [], "no ticks while Paused after load")
    expect_204(e, "PATCH", "/vm", {"state": "Resumed"}, "PATCH /vm Resumed")
    first = e.wait_line(lambda l: l.startswith("tick "))
    check(first == "tick %d" % (last2 + 1), "resume continues from the second snapshot",
          "got %r, expected tick %d" % (first, last2 + 1))
    expect_204(e, "PUT", "/actions", {"action_type": "SendCtrlAltDel"}, "SendCtrlAltDel")
    check(e.wait_exit() == 0, "guest shutdown after SendCtrlAltDel exits 0")
    e.stop()

    # ---- clones: one snapshot loaded into two VMs at once ---------------------
    # Like Firecracker's File backend, each opens mem.bin read-only and maps
    # it privately: the file needs no write permission and never changes,
    # although both guests run on (and write) their memory.
    os.chmod(memfile, 0o400)
    os.chmod(vmstate, 0o400)
    mem_sha = sha256(memfile)
    real_mem = os.path.realpath(memfile)
    clones = [start("clone%d" % i) for i in range(2)]
    answers = [None, None]
    barrier = threading.Barrier(len(clones))

    def load(i):
        barrier.wait()
        answers[i] = clones[i].request(
            "PUT", "/snapshot/load",
            {"snapshot_path": vmstate,
             "mem_backend": {"backend_type": "File", "backend_path": memfile},
             "resume_vm": True,
             "network_overrides": [{"iface_id": "eth0", "host_dev_name": "tapclone%d" % i}]})

    threads = [threading.Thread(target=load, args=(i,)) for i in range(len(clones))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    for i, (c, r) in enumerate(zip(clones, answers)):
        name = "clone%d" % i
        check(r is not None and r.status == 204 and r.raw == "",
              "%s: concurrent load of the same read-only mem.bin -> 204" % name, r)
        # the guest goes on from the snapshot and writes its memory meanwhile
        check(c.wait_line(lambda l: l == "tick %d" % (last + 1)) is not None
              and c.wait_line(lambda l: l == "tick %d" % (last + 3)) is not None,
              "%s: ticks on from the snapshot's counter" % name, c.ticks()[:5])
        r = c.request("GET", "/vm/config")
        check(r.status == 200 and [(n["iface_id"], n["host_dev_name"])
                                   for n in r.json["network-interfaces"]] == [("eth0", "tapclone%d" % i)],
              "%s: GET /vm/config reports the overriding TAP" % name, r)
        check(c.wait_line(lambda l: l == "fc-emulator: network interface eth0 on host device tapclone%d"
                          % i) is not None, "%s: the console names the overriding TAP" % name)
        flags = open_flags(c.proc.pid, real_mem)
        check(len(flags) == 1 and flags[0] & os.O_ACCMODE == os.O_RDONLY,
              "%s: holds mem.bin open read-only for the guest's lifetime" % name,
              ["0o%o" % f for f in flags])
        maps = mappings(c.proc.pid, real_mem)
        check(maps == [(64 * MIB, "rw-p")], "%s: maps all of mem.bin privately (rw-p)" % name, maps)
    check(sha256(memfile) == mem_sha and os.stat(memfile).st_mode & 0o777 == 0o400,
          "mem.bin unchanged (sha256, mode 0400) while two clones run on it")
    # A clone's own snapshot holds its memory, not the file it was loaded from.
    c = clones[0]
    expect_204(c, "PATCH", "/vm", {"state": "Paused"}, "pause clone0")
    clone_ticks = c.ticks()
    clone_vmstate = os.path.join(snapdir, "clone0-vmstate.bin")
    clone_mem = os.path.join(snapdir, "clone0-mem.bin")
    expect_204(c, "PUT", "/snapshot/create", {"snapshot_path": clone_vmstate, "mem_file_path": clone_mem},
               "snapshot of clone0")
    with open(clone_mem, "rb") as f:
        page = f.read(64)
    check(clone_ticks and page.startswith(b"FCEMU-MEM-1\ncounter %d\n" % clone_ticks[-1]),
          "clone0's snapshot holds clone0's counter", (page, clone_ticks[-3:]))
    with open(clone_vmstate) as f:
        f.readline()
        saved = json.load(f)
    check([n["host_dev_name"] for n in saved["network_interfaces"]] == ["tapclone0"],
          "clone0's vmstate records its overriding TAP", saved.get("network_interfaces"))
    for c in clones:
        check(c.stop() == 0, "clone exits 0 on SIGTERM")
    check(sha256(memfile) == mem_sha, "mem.bin unchanged after the clones exited")

    # ---- network_overrides that break the schema: 400, the process lives on ---
    e = start("badoverride", log=bad_log)
    load_base = {"snapshot_path": vmstate, "mem_backend": {"backend_type": "File",
                                                           "backend_path": memfile}}
    for what, overrides, needle in [
            ("not an array", {"iface_id": "eth0", "host_dev_name": "tap1"}, "network_overrides"),
            ("an item not an object", ["eth0"], "network_overrides"),
            ("missing host_dev_name", [{"iface_id": "eth0"}], "host_dev_name"),
            ("missing iface_id", [{"host_dev_name": "tap1"}], "iface_id"),
            ("unknown field", [{"iface_id": "eth0", "host_dev_name": "tap1", "mtu": 1500}], "mtu"),
            ("iface_id not a string", [{"iface_id": 0, "host_dev_name": "tap1"}], "iface_id"),
            ("host_dev_name null", [{"iface_id": "eth0", "host_dev_name": None}], "host_dev_name"),
            ("second item bad", [{"iface_id": "eth0", "host_dev_name": "tap1"}, {"iface_id": "eth0"}],
             "host_dev_name")]:
        expect_400(e, "PUT", "/snapshot/load", dict(load_base, network_overrides=overrides),
                   "network_overrides %s" % what, contains=needle)
    expect_400(e, "PUT", "/snapshot/load", dict(load_base, network_overrides=None),
               "network_overrides null")
    r = e.request("GET", "/")
    check(r.status == 200 and r.json.get("state") == "Not started" and e.proc.poll() is None,
          "process still serving after refused network_overrides", r)
    expect_204(e, "PUT", "/snapshot/load", dict(load_base, network_overrides=[
        {"iface_id": "eth0", "host_dev_name": "tap3"}, {"iface_id": "eth0", "host_dev_name": "tap4"}]),
               "then a valid load (two overrides of eth0: the last wins)")
    r = e.request("GET", "/vm/config")
    check(r.status == 200 and [n["host_dev_name"] for n in r.json["network-interfaces"]] == ["tap4"],
          "the last override of an interface wins", r)
    check(e.stop() == 0, "badoverride emulator exits 0 on SIGTERM")

    # ---- refused loads: the process stays usable -----------------------------
    e = start("refuse")
    expect_400(e, "PUT", "/snapshot/load", {"snapshot_path": vmstate, "mem_file_path": memfile,
                                            "mem_backend": {"backend_type": "File",
                                                            "backend_path": memfile}},
               "load with both mem_file_path and mem_backend")
    expect_400(e, "PUT", "/snapshot/load", {"snapshot_path": vmstate}, "load with no memory source")
    expect_204(e, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64},
               "configure machine-config")
    expect_400(e, "PUT", "/snapshot/load", {"snapshot_path": vmstate, "mem_file_path": memfile},
               "load refused after configuring machine-config")
    r = e.request("GET", "/")
    check(r.status == 200 and r.json.get("state") == "Not started",
          "process still serving after refused load", r)
    check(e.stop() == 0, "refuse emulator exits 0 on SIGTERM")

    # ---- failed loads: 400, then the process exits non-zero ------------------
    short_mem = os.path.join(snapdir, "mem-short.bin")
    with open(short_mem, "wb") as f:
        f.truncate(32 * MIB)
    bad_loads = [
        ("mem file of the wrong size", {"snapshot_path": vmstate, "mem_file_path": short_mem}),
        ("missing mem file", {"snapshot_path": vmstate, "mem_file_path": memfile + ".missing"}),
        ("not a vmstate file", {"snapshot_path": kernel, "mem_file_path": memfile}),
        ("unknown network override",
         {"snapshot_path": vmstate, "mem_file_path": memfile,
          "network_overrides": [{"iface_id": "eth7", "host_dev_name": "tap7"}]}),
        ("a known and an unknown network override",
         {"snapshot_path": vmstate, "mem_file_path": memfile,
          "network_overrides": [{"iface_id": "eth0", "host_dev_name": "tap7"},
                                {"iface_id": "eth1", "host_dev_name": "tap8"}]}),
        ("network override to an empty TAP name",
         {"snapshot_path": vmstate, "mem_file_path": memfile,
          "network_overrides": [{"iface_id": "eth0", "host_dev_name": ""}]}),
        ("network override to a TAP name of 16 bytes",
         {"snapshot_path": vmstate, "mem_file_path": memfile,
          "network_overrides": [{"iface_id": "eth0", "host_dev_name": "t" * 16}]}),
        ("Uffd backend", {"snapshot_path": vmstate,
                          "mem_backend": {"backend_type": "Uffd", "backend_path": "/tmp/uffd.sock"}}),
    ]
    for i, (what, body) in enumerate(bad_loads):
        e = start("badload%d" % i)
        expect_400(e, "PUT", "/snapshot/load", body, "failed load (%s)" % what)
        rc = e.wait_exit()
        check(rc is not None and rc != 0, "process exits non-zero after failed load (%s)" % what, rc)
        e.stop()

    # A saved drive whose backing file vanished.
    moved = rootfs + ".moved"
    os.rename(rootfs, moved)
    e = start("baddrive")
    expect_400(e, "PUT", "/snapshot/load", {"snapshot_path": vmstate, "mem_file_path": memfile},
               "failed load (saved drive missing)")
    rc = e.wait_exit()
    check(rc is not None and rc != 0, "process exits non-zero after failed load (drive missing)", rc)
    e.stop()
    os.rename(moved, rootfs)

    # ---- the timing log (FC_EMULATOR_TIMING_LOG) ---------------------------------
    # The emulator's own time per request, for the benchmark: a file of its
    # own; the answers are the same as without it.
    timing = os.path.join(work, "timing.log")
    plain = start("untimed", log=bad_log, args=["--id", "twin"])
    timed = start("timed", log=bad_log, args=["--id", "twin"], timing_log=timing)
    asked = [("GET", "/", None), ("PUT", "/logger", {"nope": 1}),
             ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128})]
    same = True
    for method, path, body in asked:
        a = plain.request(method, path, body)
        b = timed.request(method, path, body)
        same = same and (a.status, sorted(k for k in a.headers.keys() if k != "Date"), a.raw) == \
            (b.status, sorted(k for k in b.headers.keys() if k != "Date"), b.raw)
    check(same, "a timing log changes no answer (status, headers, body)")

    def timing_lines():
        try:
            with open(timing) as f:
                return [json.loads(line) for line in f.read().splitlines()]
        except (OSError, ValueError):
            return []

    deadline = time.monotonic() + DEADLINE
    while len(timing_lines()) < 1 + len(asked) and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = timing_lines()
    check(len(lines) == 1 + len(asked), "one timing line at start-up and one per request", lines)
    if lines:
        first = lines[0]
        check(first.get("event") == "listening" and first.get("pid") == timed.proc.pid and
              isinstance(first.get("us"), int) and first["us"] >= 0 and
              isinstance(first.get("exec_cpu_us"), int) and first["exec_cpu_us"] >= 0,
              "the first timing line: listening, its pid, its start-up time", first)
        got = [(ln.get("event"), ln.get("method"), ln.get("path"), ln.get("status"))
               for ln in lines[1:]]
        want = [("request", m, p, st) for (m, p, _), st in zip(asked, (200, 400, 204))]
        check(got == want, "a timing line per request: method, path, status, in order", got)
        check(all(isinstance(ln.get("us"), int) and ln["us"] >= 0 for ln in lines[1:]),
              "each request's time is a count of microseconds", lines[1:])
    plain.stop()
    timed.stop()
    rc, err = run_cli(binary, ["--api-sock", os.path.join(work, "t.sock")], work,
                      env={"FC_EMULATOR_TIMING_LOG": os.path.join(work, "no", "such", "dir")})
    check(rc == 1 and "timing log" in err, "an unopenable timing log: exit 1 with a message",
          (rc, err))

    # GLib criticals/warnings would mean an emulator bug even when answers look right.
    noisy = [(e.sock, e.stderr) for e in emus
             if e.stderr and re.search(r"CRITICAL|WARNING|ERROR|runtime error|Sanitizer", e.stderr)]
    check(not noisy, "no GLib warnings or sanitizer reports on the emulators' stderr", noisy[:3])

    # ---- the Swagger checker ---------------------------------------------------
    def run_checker(args):
        p = subprocess.run(["/usr/bin/python3", checker] + args, capture_output=True, text=True,
                           timeout=30)
        return p.returncode, p.stdout + p.stderr

    rc, out = run_checker(["--self-test", swagger])
    check(rc == 0, "check-swagger --self-test passes", out)
    rc, out = run_checker([swagger, good_log])
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    check(rc == 0 and re.fullmatch(r"[1-9]\d* passed, 0 failed", summary) is not None,
          "request log of the valid scenarios passes the checker", out)
    rc, out = run_checker([swagger, bad_log])
    check(rc == 1 and re.search(r"\d+ passed, [1-9]\d* failed", out) is not None,
          "request log of the negative scenarios fails the checker", out[-500:])
    empty = os.path.join(work, "empty.log")
    open(empty, "w").close()
    rc, out = run_checker([swagger, empty])
    check(rc == 1, "an empty log fails the checker", out)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
