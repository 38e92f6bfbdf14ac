#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Issue 12's Measure section for a 2 GiB sparse disk holding 60 MiB (run
by hand: /usr/bin/python3 tests/bench/measure-registry.py; needs a build,
docker-registry, skopeo and zstd).

On the Firecracker emulator (smolvmtest.py): a VM whose rootfs is a 2 GiB
sparse file with 60 MiB of data (pieces of the system's shared libraries,
so that it compresses as real disks do, spread over the file), snapshotted;
then, each timed: smolvm snapshot push to an empty registry, pull by a
second smolvmd, the same snapshot exported and copied by skopeo copy
oci-archive to another empty registry, and zstd -3 of the same three
files. Bytes are what went to the registry (the blobs' sizes) or what
zstd wrote. Timings on a shared machine are noise: compare them within
one run only.
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import registry  # noqa: E402
import smolvmtest as st  # noqa: E402

GIB = 1024 * st.MIB
DISK_SIZE = 2 * GIB
DATA = 60 * st.MIB
PIECE = 4 * st.MIB
FILES = ("vmstate.bin", "mem.bin", "disk.ext4")


def make_disk(path):
    """DISK_SIZE sparse, DATA of library bytes in PIECE pieces spread over it."""
    source = bytearray()
    for lib in sorted(glob.glob("/usr/lib/x86_64-linux-gnu/*.so*")):
        if len(source) >= DATA:
            break
        if os.path.isfile(lib) and not os.path.islink(lib):
            with open(lib, "rb") as f:
                source += f.read(DATA - len(source))
    pieces = DATA // PIECE
    with open(path, "wb") as f:
        f.truncate(DISK_SIZE)
        for i in range(pieces):
            f.seek(i * (DISK_SIZE // pieces))
            f.write(source[i * PIECE:(i + 1) * PIECE])


def timed(fn):
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def main():
    tmp = tempfile.mkdtemp(prefix="measure-registry-")
    regs = [registry.Registry(tmp).start() for _ in range(2)]
    args = ["--insecure-registry", regs[0].host]
    a = st.Env(daemon_args=args)
    b = st.Env(daemon_args=args)
    rows = []
    try:
        disk = os.path.join(tmp, "disk.img")
        make_disk(disk)
        a.create_vm("big", rootfs=disk)
        a.start_vm("big")
        a.create_snapshot("big", "big")
        snap = os.path.join(a.state_dir, "snapshots", "big")
        apparent = sum(os.path.getsize(os.path.join(snap, f)) for f in FILES)
        data = sum(min(os.stat(os.path.join(snap, f)).st_blocks * 512,
                       os.path.getsize(os.path.join(snap, f))) for f in FILES)
        ref = regs[0].host + "/measure/big:v1"

        def cli(env, *argv):
            r = env.cli(*argv)
            if r.rc != 0:
                raise SystemExit(repr(r))

        push = timed(lambda: cli(a, "snapshot", "push", "big", ref))
        manifest = json.loads(subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://" + ref],
            capture_output=True, text=True, check=True).stdout)
        sent = sum(x["size"] for x in [manifest["config"]] + manifest["layers"])
        pull = timed(lambda: cli(b, "snapshot", "pull", ref))
        pulled = os.path.join(b.state_dir, "snapshots", "big", "disk.ext4")
        again = timed(lambda: cli(a, "snapshot", "push", "big", ref.replace(":v1", ":v2")))
        archive = os.path.join(tmp, "big.tar")
        export = timed(lambda: cli(a, "snapshot", "export", "big", archive))
        skopeo = timed(lambda: subprocess.run(
            ["skopeo", "copy", "--dest-tls-verify=false", "oci-archive:" + archive,
             "docker://%s/measure/big:v1" % regs[1].host], check=True, capture_output=True))
        zstd_bytes = 0
        start = time.monotonic()
        for f in FILES:
            zstd_bytes += len(subprocess.run(["zstd", "-3", "-q", "-c", os.path.join(snap, f)],
                                             capture_output=True, check=True).stdout)
        zstd = time.monotonic() - start
        rows = [
            ("files: apparent size", None, apparent),
            ("files: data (allocated)", None, data),
            ("smolvm snapshot push (empty registry)", push, sent),
            ("smolvm snapshot pull (second smolvmd)", pull, sent),
            ("smolvm snapshot push again (blobs there)", again, 0),
            ("smolvm snapshot export", export, os.path.getsize(archive)),
            ("skopeo copy oci-archive (empty registry)", skopeo, os.path.getsize(archive)),
            ("zstd -3 of the three files", zstd, zstd_bytes),
        ]
        print("2 GiB sparse disk with 60 MiB of data (emulator snapshot):")
        for what, seconds, nbytes in rows:
            print("  %-45s %9s %13s" % (what, "%.2f s" % seconds if seconds is not None else "",
                                        "%d B" % nbytes))
        print("  pulled disk.ext4: %d bytes apparent, %d allocated" %
              (os.path.getsize(pulled), os.stat(pulled).st_blocks * 512))
        print("  compression: data / blobs %.2f; apparent / zstd -3 %.2f" %
              (data / sent, apparent / zstd_bytes))
    finally:
        a.cleanup()
        b.cleanup()
        for reg in regs:
            reg.remove()
        shutil.rmtree(tmp, True)


if __name__ == "__main__":
    main()
