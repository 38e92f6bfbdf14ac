#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Snapshot.Export and Manager.ImportSnapshot through the CLI (which opens
the files and passes descriptors): OCI archives, round trips, damaged and
foreign archives, a cancelled import, and interoperability with skopeo and
a docker-registry (CNCF Distribution) started on a free port.
"""

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import registry  # noqa: E402
import smolvmtest as st  # noqa: E402
from smolvmtest import MIB  # noqa: E402

ARTIFACT_TYPE = "application/vnd.smolvm.snapshot.v1"
LAYER_TYPE = "application/vnd.smolvm.snapshot.layer.v1.tar+zstd"
CONFIG_TYPE = "application/vnd.smolvm.snapshot.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
FILES = ("vmstate.bin", "mem.bin", "disk.ext4")


def read_archive(path):
    """{member name: bytes} of a tar."""
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def write_archive(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def manifest_of(members):
    index = json.loads(members["index.json"])
    digest = index["manifests"][0]["digest"]
    return digest, json.loads(members["blobs/sha256/" + digest[len("sha256:"):]])


def data_extents(path):
    """The (offset, length) of each data extent of a file."""
    out = []
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            out.append((data, hole - data))
            pos = hole
    return out


class TransferCase(st.TestCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="smolvm-transfer-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def snapshots_dir(self):
        return os.path.join(self.env.state_dir, "snapshots")

    def snapshot_file(self, snapshot_id, name):
        return os.path.join(self.snapshots_dir(), snapshot_id, name)

    def files_of(self, snapshot_id):
        """Per file: sha256, length, data extents (SEEK_DATA/SEEK_HOLE) and
        allocated bytes."""
        out = {}
        for name in FILES:
            path = self.snapshot_file(snapshot_id, name)
            out[name] = (st.file_sha256(path), os.path.getsize(path), data_extents(path),
                         st.allocated_bytes(path))
        return out

    def assertSameFiles(self, got, want):
        """The same bytes, length, holes and, give or take a block or two of
        the filesystem's own metadata (an ext4 extent tree block when the
        blocks lie fragmented), the same allocated size."""
        for name in FILES:
            self.assertEqual(got[name][:3], want[name][:3], name)
            self.assertLessEqual(abs(got[name][3] - want[name][3]), 64 * 1024, name)

    def leftovers(self):
        return [e for e in os.listdir(self.snapshots_dir()) if e.startswith(".")]

    def snapshot_with_data(self, vm_id="tvm", snapshot_id="snap"):
        env = self.env
        env.running_vm(vm_id)
        env.create_snapshot(vm_id, snapshot_id, **{"resume-source": True})
        return env.snapshot_info(snapshot_id)

    def export(self, snapshot_id, name="snap.tar"):
        path = os.path.join(self.tmp, name)
        r = self.env.cli("snapshot", "export", snapshot_id, path, "--json")
        self.assertCli(r, 0)
        self.assertEqual(r.json()["data"]["file"], path)
        return path

    def cli_error(self, r):
        self.assertCli(r, 1)
        return r.json()["error"]


class TestRoundTrip(TransferCase):
    def test_export_delete_import_restore(self):
        env = self.env
        before = self.snapshot_with_data()
        files = self.files_of("snap")
        # the rootfs copy is sparse: holes must survive
        self.assertTrue(st.is_sparse(self.snapshot_file("snap", "disk.ext4")))
        archive = self.export("snap")
        # holes are neither read nor shipped: the archive is far smaller
        # than the disk alone
        self.assertLess(os.path.getsize(archive), st.ROOTFS_SIZE // 16)
        env.delete_snapshot("snap")

        r = env.cli("snapshot", "import", archive, "--json")
        self.assertCli(r, 0)
        self.assertEqual(r.json()["command"], "snapshot.import")
        self.assertEqual(r.json()["data"]["snapshot"]["snapshot_id"], "snap")
        after = env.snapshot_info("snap")
        self.assertEqual(after, before)
        self.assertSameFiles(self.files_of("snap"), files)
        self.assertEqual(self.leftovers(), [])
        # mem.bin is read-only once committed, as after a create
        self.assertEqual(os.stat(self.snapshot_file("snap", "mem.bin")).st_mode & 0o777, 0o400)

        # and it restores: the guest goes on counting
        env.vm("tvm", "Delete", st.gv_dict({"force": True}))
        since = env.console_size("tvm")
        env.restore("snap", resume=True)
        env.wait_loaded_tick("tvm", since)

    def test_import_under_another_id_and_already_exists(self):
        env = self.env
        before = self.snapshot_with_data()
        files = self.files_of("snap")
        archive = self.export("snap")

        err = self.cli_error(env.cli("snapshot", "import", archive, "--json"))
        self.assertEqual(err["name"], "AlreadyExists")
        self.assertEqual(self.leftovers(), [])

        r = env.cli("snapshot", "import", archive, "--snapshot-id", "copy")
        self.assertCli(r, 0)
        self.assertEqual(r.out, "Imported snapshot 'copy' of VM 'tvm'.\n")
        copy = env.snapshot_info("copy")
        for key in ("vm_id", "vm_config", "network_config", "created_at", "backend", "restored"):
            self.assertEqual(copy[key], before[key], key)
        self.assertEqual(copy["disk_path"], self.snapshot_file("copy", "disk.ext4"))
        self.assertSameFiles(self.files_of("copy"), files)

        err = self.cli_error(env.cli("snapshot", "import", archive, "--snapshot-id", "copy",
                                     "--json"))
        self.assertEqual(err["name"], "AlreadyExists")
        err = self.cli_error(env.cli("snapshot", "import", archive, "--snapshot-id", "Bad_Id",
                                     "--json"))
        self.assertEqual(err["name"], "InvalidArgument")
        self.assertEqual(self.leftovers(), [])

    def test_same_snapshot_same_archive(self):
        self.snapshot_with_data()
        a = read_archive(self.export("snap", "a.tar"))
        b = read_archive(self.export("snap", "b.tar"))
        self.assertEqual(a, b)
        digest, manifest = manifest_of(a)
        self.assertEqual(manifest["artifactType"], ARTIFACT_TYPE)
        self.assertEqual(manifest["config"]["mediaType"], CONFIG_TYPE)
        self.assertEqual([layer["annotations"]["org.opencontainers.image.title"]
                          for layer in manifest["layers"]], list(FILES))
        self.assertEqual({layer["mediaType"] for layer in manifest["layers"]}, {LAYER_TYPE})
        # every blob is named by its sha256
        for name, data in a.items():
            if name.startswith("blobs/sha256/"):
                self.assertEqual(hashlib.sha256(data).hexdigest(), name.split("/")[-1])
        # the export's temporary layout is gone
        self.assertEqual(self.leftovers(), [])


def with_config(members, change):
    """The archive @members with its config blob changed by @change(config),
    the manifest and index.json updated to name the new blobs."""
    members = dict(members)
    _, manifest = manifest_of(members)
    old_config = manifest["config"]["digest"][len("sha256:"):]
    config = json.loads(members.pop("blobs/sha256/" + old_config))
    change(config)
    config = json.dumps(config).encode()
    members["blobs/sha256/" + hashlib.sha256(config).hexdigest()] = config
    manifest["config"]["digest"] = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest["config"]["size"] = len(config)
    index = json.loads(members["index.json"])
    del members["blobs/sha256/" + index["manifests"][0]["digest"][len("sha256:"):]]
    manifest = json.dumps(manifest).encode()
    members["blobs/sha256/" + hashlib.sha256(manifest).hexdigest()] = manifest
    index["manifests"][0]["digest"] = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index["manifests"][0]["size"] = len(manifest)
    members["index.json"] = json.dumps(index).encode()
    return members


class TestBootImages(TransferCase):
    """The record names its kernel and initrd by paths on the host that made
    it: they are read as the caller into the snapshot's own copies, never
    booted from the record's paths with the daemon's rights."""

    def test_imported_snapshot_owns_copies_of_its_images(self):
        env = self.env
        info = self.snapshot_with_data()
        archive = self.export("snap")
        r = env.cli("snapshot", "import", archive, "--snapshot-id", "copy")
        self.assertCli(r, 0)
        kernel = info["vm_config"]["kernel_path"]
        own = self.snapshot_file("copy", "kernel")
        self.assertEqual(st.file_sha256(own), st.file_sha256(kernel))
        self.assertNotEqual(os.stat(own).st_ino, os.stat(kernel).st_ino)

    def test_a_kernel_missing_here_is_refused(self):
        env = self.env
        self.snapshot_with_data()
        members = read_archive(self.export("snap"))
        missing = os.path.join(self.tmp, "no-such-kernel")

        def change(config):
            config["snapshot"]["vm_config"]["kernel_path"] = missing
        bad = os.path.join(self.tmp, "bad.tar")
        write_archive(bad, with_config(members, change))
        err = self.cli_error(env.cli("snapshot", "import", bad, "--snapshot-id", "x", "--json"))
        self.assertEqual(err["name"], "InvalidArgument")
        self.assertIn("no-such-kernel", err["message"])
        self.assertNotIn("x", env.snapshot_ids())
        self.assertEqual(self.leftovers(), [])

    def test_a_kernel_that_is_no_regular_file_is_refused(self):
        # e.g. a record naming a device or a directory of this host
        env = self.env
        self.snapshot_with_data()
        members = read_archive(self.export("snap"))

        def change(config):
            config["snapshot"]["vm_config"]["initrd_path"] = "/dev/zero"
        bad = os.path.join(self.tmp, "bad.tar")
        write_archive(bad, with_config(members, change))
        err = self.cli_error(env.cli("snapshot", "import", bad, "--snapshot-id", "x", "--json"))
        self.assertEqual(err["name"], "InvalidArgument")
        self.assertEqual(self.leftovers(), [])


class TestBadArchives(TransferCase):
    def test_tampered_blob_is_corrupt_and_leaves_nothing(self):
        env = self.env
        self.snapshot_with_data()
        members = read_archive(self.export("snap"))
        env.delete_snapshot("snap")
        _, manifest = manifest_of(members)
        disk = manifest["layers"][2]["digest"]
        name = "blobs/sha256/" + disk[len("sha256:"):]
        data = bytearray(members[name])
        data[len(data) // 2] ^= 0x01
        members[name] = bytes(data)
        bad = os.path.join(self.tmp, "bad.tar")
        write_archive(bad, members)

        err = self.cli_error(env.cli("snapshot", "import", bad, "--json"))
        self.assertEqual(err["name"], "Corrupt")
        self.assertIn(disk, err["message"])
        self.assertNotIn("snap", env.snapshot_ids())
        self.assertEqual(os.listdir(self.snapshots_dir()), [])

    def test_backend_this_daemon_lacks_is_unsupported(self):
        env = self.env
        self.snapshot_with_data()
        members = read_archive(self.export("snap"))
        env.delete_snapshot("snap")
        _, manifest = manifest_of(members)

        def put(data):
            h = hashlib.sha256(data).hexdigest()
            members["blobs/sha256/" + h] = data
            return "sha256:" + h

        config = json.loads(members["blobs/sha256/" + manifest["config"]["digest"][7:]])
        config["backend"] = "cloud-hypervisor"
        data = json.dumps(config).encode()
        manifest["config"].update(digest=put(data), size=len(data))
        data = json.dumps(manifest).encode()
        index = json.loads(members["index.json"])
        index["manifests"][0].update(digest=put(data), size=len(data))
        members["index.json"] = json.dumps(index).encode()
        other = os.path.join(self.tmp, "other-backend.tar")
        write_archive(other, members)

        err = self.cli_error(env.cli("snapshot", "import", other, "--json"))
        self.assertEqual(err["name"], "Unsupported")
        self.assertIn("cloud-hypervisor", err["message"])
        self.assertEqual(os.listdir(self.snapshots_dir()), [])

    def test_empty_metadata_is_corrupt(self):
        """An empty index.json, and an empty config named by a manifest:
        Corrupt, and nothing is left."""
        env = self.env
        bad = os.path.join(self.tmp, "empty-index.tar")
        write_archive(bad, {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": b""})
        err = self.cli_error(env.cli("snapshot", "import", bad, "--json"))
        self.assertEqual(err["name"], "Corrupt")
        self.snapshot_with_data()
        members = read_archive(self.export("snap"))
        _, manifest = manifest_of(members)
        empty = hashlib.sha256(b"").hexdigest()
        members["blobs/sha256/" + empty] = b""
        manifest["config"].update(digest="sha256:" + empty, size=0)
        data = json.dumps(manifest).encode()
        digest = hashlib.sha256(data).hexdigest()
        members["blobs/sha256/" + digest] = data
        index = json.loads(members["index.json"])
        index["manifests"][0].update(digest="sha256:" + digest, size=len(data))
        members["index.json"] = json.dumps(index).encode()
        write_archive(bad, members)
        err = self.cli_error(env.cli("snapshot", "import", bad, "--snapshot-id", "x", "--json"))
        self.assertEqual(err["name"], "Corrupt")
        self.assertEqual(self.leftovers(), [])
        self.assertEqual(env.snapshot_ids(), ["snap"])

    def test_missing_blob_is_corrupt(self):
        env = self.env
        self.snapshot_with_data()
        members = read_archive(self.export("snap"))
        _, manifest = manifest_of(members)
        del members["blobs/sha256/" + manifest["layers"][1]["digest"][len("sha256:"):]]
        bad = os.path.join(self.tmp, "bad.tar")
        write_archive(bad, members)
        err = self.cli_error(env.cli("snapshot", "import", bad, "--snapshot-id", "x", "--json"))
        self.assertEqual(err["name"], "Corrupt")
        self.assertEqual(self.leftovers(), [])

    def test_archive_of_too_many_blobs_is_corrupt(self):
        # Blobs the manifest never names are still written until index.json
        # is read, so their number is bounded.
        env = self.env
        self.snapshot_with_data()
        members = read_archive(self.export("snap"))
        for i in range(16):
            extra = b"extra %d" % i
            members["blobs/sha256/" + hashlib.sha256(extra).hexdigest()] = extra
        padded = os.path.join(self.tmp, "padded.tar")
        write_archive(padded, members)
        err = self.cli_error(env.cli("snapshot", "import", padded, "--snapshot-id", "x", "--json"))
        self.assertEqual(err["name"], "Corrupt")
        self.assertIn("more than 16 blobs", err["message"])
        self.assertEqual(self.leftovers(), [])
        # five blobs more than a snapshot's are still read
        members = read_archive(self.export("snap"))
        for i in range(5):
            extra = b"extra %d" % i
            members["blobs/sha256/" + hashlib.sha256(extra).hexdigest()] = extra
        write_archive(padded, members)
        self.assertCli(env.cli("snapshot", "import", padded, "--snapshot-id", "y"), 0)

    def test_other_artifact_is_not_a_snapshot(self):
        env = self.env
        config = b"{}"
        layer = b"hello"
        blobs = {hashlib.sha256(b).hexdigest(): b for b in (config, layer)}
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
            "artifactType": "application/vnd.example.thing.v1",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                       "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": 2},
            "layers": [{"mediaType": "application/octet-stream",
                        "digest": "sha256:" + hashlib.sha256(layer).hexdigest(), "size": 5}],
        }).encode()
        mdigest = hashlib.sha256(manifest).hexdigest()
        blobs[mdigest] = manifest
        members = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
                   "index.json": json.dumps({"schemaVersion": 2, "manifests": [
                       {"mediaType": MANIFEST_TYPE, "digest": "sha256:" + mdigest,
                        "size": len(manifest)}]}).encode()}
        members.update({"blobs/sha256/" + h: b for h, b in blobs.items()})
        other = os.path.join(self.tmp, "other.tar")
        write_archive(other, members)
        err = self.cli_error(env.cli("snapshot", "import", other, "--json"))
        self.assertEqual(err["name"], "NotASnapshot")
        self.assertEqual(env.snapshot_ids(), [])
        self.assertEqual(self.leftovers(), [])

    def test_not_an_archive(self):
        env = self.env
        junk = os.path.join(self.tmp, "junk")
        with open(junk, "wb") as f:
            f.write(os.urandom(100000))
        err = self.cli_error(env.cli("snapshot", "import", junk, "--json"))
        self.assertIn(err["name"], ("Corrupt", "NotASnapshot"))
        self.assertEqual(self.leftovers(), [])

    def test_export_of_a_missing_snapshot(self):
        env = self.env
        target = os.path.join(self.tmp, "none.tar")
        err = self.cli_error(env.cli("snapshot", "export", "nope", target, "--json"))
        self.assertEqual(err["name"], "NotFound")
        # no half-written file stays behind
        self.assertFalse(os.path.exists(target))


class TestCancel(TransferCase):
    def stalled_import(self, snapshot_id, *args):
        """`smolvm snapshot import -` of half an archive, its stdin kept
        open: the process and its job, once it has read some."""
        env = self.env
        self.snapshot_with_data()
        with open(self.export("snap"), "rb") as f:
            data = f.read()
        argv = [st.CLI, "--session", "snapshot", "import", "-", "--snapshot-id", snapshot_id,
                *args]
        proc = env.adopt(subprocess.Popen(argv, env=env.client_env(), stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        proc.stdin.write(data[:len(data) // 2])
        proc.stdin.flush()

        def job():
            r = env.cli("job", "list", "--json")
            jobs = [j for j in r.json()["data"]["jobs"]
                    if j["operation"] == "snapshot-import" and j["bytes_done"] > 0]
            return jobs[0] if jobs else None
        return proc, st.wait_for(job, "the import's job, reading")

    def test_cancelled_import_leaves_nothing(self):
        """An import from a pipe that stalls half-way, cancelled with
        `smolvm job cancel`: no snapshot, no temporary file."""
        env = self.env
        proc, found = self.stalled_import("cancelled", "--json")
        self.assertEqual(found["phase"], "receiving")
        self.assertTrue(found["cancelable"])
        self.assertCli(env.cli("job", "cancel", str(found["job"])), 0)
        # the archive stays open until the end, so only the Cancel ends it
        proc.wait(timeout=st.DEADLINE)
        proc.stdin.close()
        out, err = proc.stdout.read(), proc.stderr.read()
        self.assertEqual(proc.returncode, 1, err)
        self.assertEqual(json.loads(out)["error"]["name"], "Cancelled")
        self.assertNotIn("cancelled", env.snapshot_ids())
        st.wait_for(lambda: self.leftovers() == [], "the import's layout dir to go")
        self.assertEqual(sorted(os.listdir(self.snapshots_dir())), ["snap"])


    def test_ctrl_c_cancels_an_import(self):
        """SIGINT to `smolvm snapshot import -` cancels its job, as for the
        other long verbs: exit 1 with Cancelled, nothing left."""
        env = self.env
        proc, _ = self.stalled_import("interrupted")
        proc.send_signal(signal.SIGINT)
        # the archive stays open meanwhile: its end would fail the import
        # before the Cancel lands
        proc.wait(timeout=st.DEADLINE)
        proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        self.assertEqual(proc.returncode, 1, err)
        self.assertTrue(err.startswith("Error: Cancelled"), err)
        self.assertNotIn("interrupted", env.snapshot_ids())
        st.wait_for(lambda: self.leftovers() == [], "the import's layout dir to go")

    def test_cancelled_export_cleans_up(self):
        """An export into a pipe nobody reads, cancelled while smolvmd waits
        to write: the call fails Cancelled and the blobs go."""
        env = self.env
        rootfs = os.path.join(self.tmp, "random.ext4")
        with open(rootfs, "wb") as f:
            f.write(os.urandom(8 * MIB))
            f.truncate(64 * MIB)
        env.running_vm("xvm", rootfs=rootfs)
        env.create_snapshot("xvm", "big", **{"resume-source": True})
        argv = [st.CLI, "--session", "snapshot", "export", "big", "-", "--json"]
        proc = env.adopt(subprocess.Popen(argv, env=env.client_env(), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE))

        def job():
            r = env.cli("job", "list", "--json")
            jobs = [j for j in r.json()["data"]["jobs"] if j["operation"] == "snapshot-export"]
            # the pipe (64 KiB) is full: smolvmd waits for a reader
            return jobs[0] if jobs and jobs[0]["bytes_done"] > 8 * MIB else None
        found = st.wait_for(job, "the export's job, blocked on the pipe")
        self.assertEqual(found["objects"], [st.snapshot_path("big")])
        self.assertCli(env.cli("job", "cancel", str(found["job"])), 0)
        out, err = proc.communicate(timeout=st.DEADLINE)
        self.assertEqual(proc.returncode, 1, err)
        self.assertEqual(json.loads(err)["error"]["name"], "Cancelled")
        self.assertLess(len(out), 8 * MIB)
        st.wait_for(lambda: self.leftovers() == [], "the export's layout dir to go")
        # the snapshot itself is untouched and free again
        self.assertIn("big", env.snapshot_ids())
        self.assertCli(env.cli("snapshot", "export", "big", os.path.join(self.tmp, "x.tar")), 0)


class TestCliStreams(TransferCase):
    def test_export_to_stdout_and_import_from_stdin(self):
        env = self.env
        self.snapshot_with_data()
        files = self.files_of("snap")
        target = os.path.join(self.tmp, "piped.tar")
        with open(target, "wb") as out:
            proc = subprocess.run([st.CLI, "--session", "snapshot", "export", "snap", "-",
                                   "--json"], env=env.client_env(), stdout=out,
                                  stderr=subprocess.PIPE, text=False, timeout=st.DEADLINE)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        # the envelope went to stderr, the archive alone to stdout
        self.assertEqual(json.loads(proc.stderr)["data"]["file"], "-")
        self.assertEqual(read_archive(target), read_archive(self.export("snap")))

        with open(target, "rb") as src:
            proc = subprocess.run([st.CLI, "--session", "snapshot", "import", "-",
                                   "--snapshot-id", "piped"], env=env.client_env(),
                                  stdin=src, capture_output=True, text=True,
                                  timeout=st.DEADLINE)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout, "Imported snapshot 'piped' of VM 'tvm'.\n")
        self.assertSameFiles(self.files_of("piped"), files)

    def test_usage(self):
        env = self.env
        r = env.cli("snapshot", "export", "snap")
        self.assertCli(r, 2)
        r = env.cli("snapshot", "import")
        self.assertCli(r, 2)
        r = env.cli("snapshot", "import", os.path.join(self.tmp, "absent.tar"), "--json")
        self.assertCli(r, 1)


@st.unittest.skipUnless(shutil.which("skopeo") and registry.available(),
                        "skopeo and docker-registry are needed")
class TestInterop(TransferCase):
    def start_registry(self):
        # the harness of test-registry.py (tests/registry.py)
        reg = registry.Registry(self.tmp).start()
        self.addCleanup(reg.remove)
        return reg.host

    def skopeo(self, *args):
        proc = subprocess.run(["skopeo"] + list(args), capture_output=True,
                              timeout=st.DEADLINE * 2)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
        return proc.stdout

    def test_skopeo_reads_and_copies_the_archive(self):
        self.snapshot_with_data()
        archive = self.export("snap")
        digest, _ = manifest_of(read_archive(archive))

        raw = self.skopeo("inspect", "--raw", "oci-archive:" + archive)
        manifest = json.loads(raw)
        self.assertEqual(manifest["artifactType"], ARTIFACT_TYPE)
        self.assertEqual(len(manifest["layers"]), 3)
        self.assertEqual("sha256:" + hashlib.sha256(raw).hexdigest(), digest)

        registry = self.start_registry()
        ref = "docker://%s/smolvm/snap:v1" % registry
        self.skopeo("copy", "--dest-tls-verify=false", "oci-archive:" + archive, ref)
        pushed = self.skopeo("inspect", "--raw", "--tls-verify=false", ref)
        # the registry holds the very same manifest, so the same digest
        self.assertEqual("sha256:" + hashlib.sha256(pushed).hexdigest(), digest)
        self.assertEqual(json.loads(pushed)["artifactType"], ARTIFACT_TYPE)


if __name__ == "__main__":
    st.main("transfer")
