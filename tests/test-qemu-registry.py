#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Two hosts, one registry, a real guest: smolvmd A boots the QEMU test
guest (tests/test-qemu.py's, TCG), snapshots it while it ticks, pushes the
snapshot to Debian's docker-registry; smolvmd B (another state and runtime
dir: another host) pulls it and restores it, and B's console goes on with
the tick after the last one A's guest printed.

Also prints the figures of issue 12's Measure section for this guest
(never asserted: timings on a shared machine are noise): push and pull
time and bytes, the same snapshot exported and copied by `skopeo copy
oci-archive:... docker://...`, and `zstd -3` of the same three files,
with the compression ratio (data bytes of the files / bytes of the blobs).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import registry  # noqa: E402
import smolvmtest as st  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "test_qemu", os.path.join(os.path.dirname(os.path.abspath(__file__)), "test-qemu.py"))
tq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tq)

FILES = ("vmstate.bin", "mem.bin", "disk.ext4")
FIGURES = []


def figure(what, seconds=None, nbytes=None):
    FIGURES.append((what, seconds, nbytes))
    print("  [measure] %-58s %s %s" % (what, "%7.2f s" % seconds if seconds is not None else "",
                                       "%12d B" % nbytes if nbytes is not None else ""))
    sys.stdout.flush()


def data_bytes(path):
    """Allocated bytes, capped at the length: what a sparse-aware reader reads."""
    st_ = os.stat(path)
    return min(st_.st_blocks * 512, st_.st_size)


class TwoHosts(tq.QemuTestCase):
    def test_push_pull_restore_across_daemons(self):
        if not registry.available() or shutil.which("skopeo") is None:
            self.fail("docker-registry and skopeo are needed (tools/deps.sh installs them)")
        tmp = tempfile.mkdtemp(prefix="test-qemu-registry-")
        self.addCleanup(shutil.rmtree, tmp, True)
        reg = registry.Registry(tmp).start()
        self.addCleanup(reg.remove)
        args = ["--insecure-registry", reg.host]
        a = self.new_env(daemon_args=args)
        b = self.new_env(daemon_args=args)

        vm = self.boot(a, "ticker")
        self.cli_ok(a, "snapshot", "create", vm, "--snapshot-id", "warm")
        last, _ = self.mark_cut(a, vm)
        snap_dir = self.snapshot_dir(a, "warm")
        sums = {f: st.file_sha256(os.path.join(snap_dir, f)) for f in FILES}
        ref = reg.host + "/smolvm/ticker:warm"

        start = time.monotonic()
        self.cli_ok(a, "snapshot", "push", "warm", ref)
        push_s = time.monotonic() - start
        manifest = json.loads(subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://" + ref],
            capture_output=True, text=True, check=True).stdout)
        blobs = [manifest["config"]] + manifest["layers"]
        sent = sum(b_["size"] for b_ in blobs)
        self.assertEqual(len(reg.blob_uploads()), 4)

        start = time.monotonic()
        self.cli_ok(b, "snapshot", "pull", ref)
        pull_s = time.monotonic() - start
        for f in FILES:
            self.assertEqual(st.file_sha256(os.path.join(self.snapshot_dir(b, "warm"), f)),
                             sums[f], f)

        # B restores A's guest: it recreates the VM and the guest counts on
        restored_at = self.restore(b, "restore of the pulled snapshot on host B", "warm",
                                   "--resume")
        self.assertContinues(b, vm, last, 0, "host B", restored_at, boots=0)

        # -- the Measure section's figures for this guest (printed only)
        data = sum(data_bytes(os.path.join(snap_dir, f)) for f in FILES)
        apparent = sum(os.path.getsize(os.path.join(snap_dir, f)) for f in FILES)
        figure("QEMU 256 MiB guest: files, apparent size", None, apparent)
        figure("QEMU 256 MiB guest: files, data (allocated)", None, data)
        figure("smolvm snapshot push (first, all blobs)", push_s, sent)
        figure("smolvm snapshot pull (another daemon)", pull_s, sent)
        start = time.monotonic()
        self.cli_ok(a, "snapshot", "push", "warm", ref.replace(":warm", ":again"))
        figure("smolvm snapshot push again (nothing missing)", time.monotonic() - start,
               0)
        self.assertEqual(len(reg.blob_uploads()), 4)
        archive = os.path.join(tmp, "warm.tar")
        start = time.monotonic()
        self.cli_ok(a, "snapshot", "export", "warm", archive)
        export_s = time.monotonic() - start
        # skopeo to a registry of its own, empty as the first push found it
        other = registry.Registry(tmp).start()
        self.addCleanup(other.remove)
        start = time.monotonic()
        subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "oci-archive:" + archive,
                        "docker://%s/smolvm/skopeo:warm" % other.host], check=True,
                       capture_output=True)
        figure("smolvm snapshot export (archive)", export_s, os.path.getsize(archive))
        figure("skopeo copy oci-archive -> empty registry", time.monotonic() - start,
               os.path.getsize(archive))
        zstd_bytes = 0
        start = time.monotonic()
        for f in FILES:
            out = subprocess.run(["zstd", "-3", "-q", "-c", os.path.join(snap_dir, f)],
                                 capture_output=True, check=True).stdout
            zstd_bytes += len(out)
        figure("zstd -3 of the three files", time.monotonic() - start, zstd_bytes)
        print("  [measure] compression ratio (data / blobs): %.2f; zstd -3 (apparent / out): %.2f"
              % (data / sent, apparent / zstd_bytes))


if __name__ == "__main__":
    if tq.QEMU is None:
        print("qemu-system-x86_64 is not installed (tools/deps.sh installs qemu-system-x86)")
        print("0 passed, 1 failed")
        sys.exit(1)
    st.main("qemu-registry")
