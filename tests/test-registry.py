#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Snapshot.Push and Manager.PullSnapshot against a real OCI registry:
Debian's docker-registry (CNCF Distribution 2.8), started by registry.py on
127.0.0.1, anonymous or with htpasswd basic auth; skopeo checks what
others see.  smolvmd runs on a private session bus with the Firecracker
emulator (smolvmtest.py), the registry listed with --insecure-registry.

Counting uploads reads the registry's own request log: a blob upload is a
PUT to an upload session answered 201, the digest in its query.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import registry  # noqa: E402
import smolvmtest as st  # noqa: E402
from smolvmtest import gv_dict, gv_str, snapshot_path  # noqa: E402

ARTIFACT_TYPE = "application/vnd.smolvm.snapshot.v1"
LAYER_TITLES = ["vmstate.bin", "mem.bin", "disk.ext4"]
FILES = ("vmstate.bin", "mem.bin", "disk.ext4")
USERS = {"smolvm": "s3cret"}
# what a pulled snapshot has of its own: where it lives is the same, being
# restored is not carried over
SAME_INFO_KEYS = ("snapshot_id", "vm_id", "vm_config", "network_config", "created_at",
                  "backend", "snapshot_path", "mem_file_path", "disk_path")


def skopeo(*args):
    return subprocess.run(["skopeo"] + list(args), capture_output=True, text=True, timeout=120)


def uploaded_digests(reg):
    out = []
    for r in reg.blob_uploads():
        query = urllib.parse.parse_qs(urllib.parse.urlparse(r.uri).query)
        out += query.get("digest", [])
    return out


def blob_gets(reg, digest):
    return sum(1 for r in reg.requests()
               if r.method == "GET" and r.uri.endswith("/blobs/" + digest) and r.status == 200)


def auth_file(path, host, user, password):
    import base64
    with open(path, "w") as f:
        json.dump({"auths": {host: {"auth": base64.b64encode(
            ("%s:%s" % (user, password)).encode()).decode()}}}, f)


class RegistryCase(st.TestCase):
    def setUp(self):
        super().setUp()
        if not registry.available() or shutil.which("skopeo") is None:
            self.skipTest("docker-registry or skopeo is not installed (tools/deps.sh)")
        self.tmp = tempfile.mkdtemp(prefix="test-registry-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def start_registry(self, **kw):
        reg = registry.Registry(self.tmp, **kw).start()
        self.addCleanup(reg.remove)
        return reg

    def new_daemon(self, reg, *extra):
        return self.new_env(daemon_args=["--insecure-registry", reg.host] + list(extra))

    def push(self, env, snapshot_id, ref):
        return env.gdbus(snapshot_path(snapshot_id), "Push", gv_str(ref), gv_dict())

    def pull(self, env, ref, **options):
        return env.call("PullSnapshot", gv_str(ref), gv_dict(options))

    def snapshot_files(self, env, snapshot_id):
        d = os.path.join(env.state_dir, "snapshots", snapshot_id)
        return {name: (st.file_sha256(os.path.join(d, name)),
                       os.stat(os.path.join(d, name)).st_size,
                       st.allocated_bytes(os.path.join(d, name))) for name in FILES}

    def registry_and_snapshot(self):
        """A registry, and a daemon with snapshot 'snap' of VM 'guest' (running)."""
        reg = self.start_registry()
        env = self.new_daemon(reg)
        self.made_snapshot(env)
        return reg, env

    def raw_manifest(self, ref):
        """The manifest the registry holds under @ref, as skopeo reads it."""
        r = skopeo("inspect", "--tls-verify=false", "--raw", "docker://" + ref)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def made_snapshot(self, env, vm_id="guest", snapshot_id="snap"):
        env.running_vm(vm_id)
        env.create_snapshot(vm_id, snapshot_id, **{"resume-source": True})
        return snapshot_id

    def assertNothingLeft(self, env, snapshot_id):
        self.assertNotIn(snapshot_id, env.snapshot_ids())
        entries = os.listdir(os.path.join(env.state_dir, "snapshots"))
        self.assertEqual([e for e in entries if snapshot_id in e], [], entries)

    def oci_cache(self, env):
        d = os.path.join(env.state_dir, "oci-cache")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []


class PushPull(RegistryCase):
    def test_round_trip(self):
        reg = self.start_registry()
        env = self.new_daemon(reg)
        env.running_vm("guest")
        env.wait_tick("guest", 3)
        env.create_snapshot("guest", "snap")  # the guest stays paused
        saved_tick = env.last_tick("guest")
        ref = reg.host + "/smolvm/guest:v1"
        self.assertEqual(self.push(env, "snap", ref), "()")

        # what any OCI tool sees: the artifact type, the config, three layers
        manifest = self.raw_manifest(ref)
        self.assertEqual(manifest["artifactType"], ARTIFACT_TYPE)
        self.assertEqual(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json")
        self.assertEqual([layer["annotations"]["org.opencontainers.image.title"]
                          for layer in manifest["layers"]], LAYER_TITLES)
        self.assertEqual(sorted(uploaded_digests(reg)),
                         sorted([manifest["config"]["digest"]] +
                                [layer["digest"] for layer in manifest["layers"]]))
        self.assertEqual(self.oci_cache(env), [])  # the push's layout went

        info = env.snapshot_info("snap")
        files = self.snapshot_files(env, "snap")
        env.vm("guest", "Stop", gv_dict())
        env.delete_snapshot("snap")
        self.assertNotIn("snap", env.snapshot_ids())

        out = self.pull(env, ref)
        self.assertEqual(out, "(objectpath '%s',)" % snapshot_path("snap"))
        pulled = env.snapshot_info("snap")
        self.assertEqual({k: pulled[k] for k in SAME_INFO_KEYS},
                         {k: info[k] for k in SAME_INFO_KEYS})
        self.assertIs(pulled["restored"], False)
        self.assertEqual(self.snapshot_files(env, "snap"), files)
        self.assertEqual(self.oci_cache(env), [])  # the pull cache went too

        # another host (a daemon of its own state) pulls it and restores
        # it: the guest goes on from the tick after the snapshot
        other = self.new_daemon(reg)
        self.pull(other, ref)
        there = other.snapshot_info("snap")
        self.assertEqual({k: there[k] for k in ("vm_id", "vm_config", "network_config",
                                                "created_at", "backend")},
                         {k: info[k] for k in ("vm_id", "vm_config", "network_config",
                                               "created_at", "backend")})
        self.assertEqual(self.snapshot_files(other, "snap"), files)
        other.restore("snap", resume=True)
        self.assertEqual(other.vm_state("guest"), "running")
        first, after_load = other.wait_loaded_tick("guest", 0)
        self.assertEqual(first, saved_tick + 1, after_load[:500])
        self.assertNotIn(st.BOOT_BANNER, after_load)

    def test_second_push_uploads_nothing_again(self):
        reg, env = self.registry_and_snapshot()
        self.push(env, "snap", reg.host + "/smolvm/guest:v1")
        first = uploaded_digests(reg)
        self.assertEqual(len(first), 4)  # config and three layers
        heads = reg.count_requests("HEAD", "/blobs/")

        # the same snapshot again, under another tag: HEAD each, upload none
        self.push(env, "snap", reg.host + "/smolvm/guest:v2")
        self.assertEqual(uploaded_digests(reg), first)
        self.assertEqual(reg.count_requests("HEAD", "/blobs/") - heads, 4)
        self.raw_manifest(reg.host + "/smolvm/guest:v2")

        # a new snapshot of the same VM: its disk has not changed, so its
        # disk layer is not sent again
        env.create_snapshot("guest", "later", **{"resume-source": True})
        self.push(env, "later", reg.host + "/smolvm/guest:v3")
        disk = self.raw_manifest(reg.host + "/smolvm/guest:v3")["layers"][2]["digest"]
        self.assertEqual(uploaded_digests(reg).count(disk), 1)

    def test_pull_under_another_id(self):
        reg, env = self.registry_and_snapshot()
        ref = reg.host + "/smolvm/guest:v1"
        self.push(env, "snap", ref)
        files = self.snapshot_files(env, "snap")
        e = self.assertDBusError("AlreadyExists", self.pull, env, ref)
        self.assertIn("snap", e.message)
        out = self.pull(env, ref, **{"snapshot-id": "copy"})
        self.assertEqual(out, "(objectpath '%s',)" % snapshot_path("copy"))
        info = env.snapshot_info("copy")
        self.assertEqual(info["vm_id"], "guest")
        self.assertEqual(self.snapshot_files(env, "copy"), files)
        self.assertDBusError("InvalidArgument", self.pull, env, ref, **{"snapshot-id": "Bad Id"})
        self.assertDBusError("InvalidArgument", self.pull, env, ref, colour="red")

    def test_corrupt_blob_in_registry(self):
        reg, env = self.registry_and_snapshot()
        ref = reg.host + "/smolvm/guest:v1"
        self.push(env, "snap", ref)
        manifest = self.raw_manifest(ref)
        # one byte of the disk layer changes in the registry's storage
        path = reg.blob_data_path(manifest["layers"][2]["digest"])
        with open(path, "r+b") as f:
            data = bytearray(f.read())
            data[len(data) // 2] ^= 0xff
            f.seek(0)
            f.write(data)
        env.vm("guest", "Stop", gv_dict())
        env.delete_snapshot("snap")

        e = self.assertDBusError("Corrupt", self.pull, env, ref)
        self.assertIn(manifest["layers"][2]["digest"], e.message)
        self.assertNothingLeft(env, "snap")
        self.assertEqual(self.oci_cache(env), [])

    def test_interrupted_pull_resumes(self):
        reg, env = self.registry_and_snapshot()
        ref = reg.host + "/smolvm/guest:v1"
        self.push(env, "snap", ref)
        manifest = self.raw_manifest(ref)
        digests = [manifest["config"]["digest"]] + [l["digest"] for l in manifest["layers"]]
        env.vm("guest", "Stop", gv_dict())
        env.delete_snapshot("snap")

        # the last layer is missing from the registry: the pull fails there,
        # after the others were fetched and verified
        data = reg.blob_data_path(digests[3])
        os.rename(data, data + ".away")
        e = self.assertDBusError("NotFound", self.pull, env, ref)
        self.assertIn(digests[3], e.message)
        self.assertNothingLeft(env, "snap")
        self.assertEqual(len(self.oci_cache(env)), 1)
        self.assertEqual([blob_gets(reg, d) for d in digests], [1, 1, 1, 0])

        # started again, it fetches only what it lacks
        os.rename(data + ".away", data)
        self.pull(env, ref)
        self.assertEqual([blob_gets(reg, d) for d in digests], [1, 1, 1, 1])
        self.assertIn("snap", env.snapshot_ids())
        self.assertEqual(self.oci_cache(env), [])


class JobsAndCli(RegistryCase):
    def watched_call(self, env, path, iface, method, args, on_props=None):
        import jobwatch
        from gi.repository import GLib
        watch = jobwatch.JobWatch(env)
        self.addCleanup(watch.close)
        watch.on_props = on_props
        watch.call(path, iface, method, GLib.Variant(*args))
        return watch

    def test_jobs_show_bytes_and_phases(self):
        reg, env = self.registry_and_snapshot()
        ref = reg.host + "/smolvm/guest:v1"
        watch = self.watched_call(env, snapshot_path("snap"), st.SNAPSHOT_IFACE, "Push",
                                  ("(sa{sv})", (ref, {})))
        self.assertEqual(watch.wait_reply(), ("ok", ()))
        job = watch.only_job()
        self.assertEqual(watch.props[job]["Operation"], "snapshot-push")
        self.assertEqual(watch.props[job]["Objects"], [snapshot_path("snap")])
        phases = watch.phases(job)
        for phase in ("packing", "connecting", "checking-blobs", "uploading", "publishing"):
            self.assertIn(phase, phases)
        self.assertEqual(watch.completed[job][0], True)
        done = watch.values(job, "BytesDone")
        self.assertGreater(max(done), 0)
        self.assertEqual(done, sorted(done))  # never goes back

        env.vm("guest", "Stop", gv_dict())
        env.delete_snapshot("snap")
        watch = self.watched_call(env, st.MANAGER_PATH, st.MANAGER_IFACE, "PullSnapshot",
                                  ("(sa{sv})", (ref, {})))
        self.assertEqual(watch.wait_reply(), ("ok", (snapshot_path("snap"),)))
        job = watch.only_job()
        self.assertEqual(watch.props[job]["Operation"], "snapshot-pull")
        self.assertIn("downloading", watch.phases(job))
        self.assertGreater(max(watch.values(job, "BytesTotal")), 0)

    def test_cancel_pull_leaves_no_snapshot_and_resumes(self):
        reg, env = self.registry_and_snapshot()
        ref = reg.host + "/smolvm/guest:v1"
        self.push(env, "snap", ref)
        env.vm("guest", "Stop", gv_dict())
        env.delete_snapshot("snap")
        manifest = self.raw_manifest(ref)
        config = manifest["config"]["digest"]

        # the registry freezes once the layers are being fetched: the
        # Cancel comes while a GET hangs
        outcome = []
        watch = None

        def on_props(path, changed):
            if not outcome and changed.get("Phase") == "downloading":
                os.kill(reg.proc.pid, signal.SIGSTOP)
                outcome.append(watch.cancel(path))
        try:
            watch = self.watched_call(env, st.MANAGER_PATH, st.MANAGER_IFACE, "PullSnapshot",
                                      ("(sa{sv})", (ref, {})), on_props)
            reply = watch.wait_reply()
        finally:
            os.kill(reg.proc.pid, signal.SIGCONT)
        self.assertEqual(outcome, [None])
        self.assertEqual(reply[:2], ("error", "org.smolvm.Error.Cancelled"), reply)
        self.assertNothingLeft(env, "snap")
        # the verified config stays, nothing half-written does
        cache = self.oci_cache(env)
        self.assertEqual(len(cache), 1)
        blobs = os.path.join(env.state_dir, "oci-cache", cache[0], "blobs", "sha256")
        self.assertIn(config.split(":")[1], os.listdir(blobs))
        self.assertEqual([n for n in os.listdir(blobs) if n.startswith(".")], [])

        self.pull(env, ref)
        self.assertIn("snap", env.snapshot_ids())
        self.assertEqual(blob_gets(reg, config), 1)  # not fetched again

    def test_cancel_push_publishes_nothing(self):
        reg, env = self.registry_and_snapshot()
        ref = reg.host + "/smolvm/guest:v1"
        outcome = []
        watch = None

        def on_props(path, changed):
            if not outcome and changed.get("Phase") == "connecting":
                os.kill(reg.proc.pid, signal.SIGSTOP)
                outcome.append(watch.cancel(path))
        try:
            watch = self.watched_call(env, snapshot_path("snap"), st.SNAPSHOT_IFACE, "Push",
                                      ("(sa{sv})", (ref, {})), on_props)
            reply = watch.wait_reply()
        finally:
            os.kill(reg.proc.pid, signal.SIGCONT)
        self.assertEqual(outcome, [None])
        self.assertEqual(reply[:2], ("error", "org.smolvm.Error.Cancelled"), reply)
        self.assertEqual(self.oci_cache(env), [])
        r = skopeo("inspect", "--tls-verify=false", "--raw", "docker://" + ref)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("snap", env.snapshot_ids())

    def test_cli(self):
        reg, env = self.registry_and_snapshot()
        ref = reg.host + "/smolvm/guest"
        r = env.cli("--json", "snapshot", "push", "snap", ref)
        self.assertCli(r, 0)
        self.assertEqual(r.json()["data"], {"snapshot_id": "snap", "reference": ref + ":latest"})
        r = env.cli("snapshot", "push", "snap", ref + ":v2")
        self.assertCli(r, 0)
        self.assertIn("Pushed snapshot 'snap' to %s:v2." % ref, r.out)
        r = env.cli("--json", "snapshot", "pull", ref + ":v2", "--snapshot-id", "copy")
        self.assertCli(r, 0)
        data = r.json()["data"]
        self.assertEqual(data["snapshot"]["snapshot_id"], "copy")
        self.assertEqual(data["reference"], ref + ":v2")
        r = env.cli("snapshot", "pull", ref + ":v2", "--snapshot-id", "copy2")
        self.assertCli(r, 0)
        self.assertIn("Pulled snapshot 'copy2' of VM 'guest' from %s:v2." % ref, r.out)
        # errors: a malformed reference never reaches smolvmd; smolvmd's own
        r = env.cli("--json", "snapshot", "pull", "not-a-reference")
        self.assertNotEqual(r.rc, 0)
        r = env.cli("--json", "snapshot", "pull", ref + ":nope")
        self.assertCli(r, 1)
        self.assertEqual(r.json()["error"]["name"], "NotFound")

    def test_ctrl_c_of_the_cli(self):
        from ptyrun import PtyRun, bars
        reg, env = self.registry_and_snapshot()
        ref = reg.host + "/smolvm/guest:v1"
        self.push(env, "snap", ref)
        # the registry freezes: the pull waits, its bar showing, for Ctrl-C
        os.kill(reg.proc.pid, signal.SIGSTOP)
        try:
            run = PtyRun([st.CLI, "--session", "snapshot", "pull", ref, "--snapshot-id", "copy"],
                         env.client_env())
            self.addCleanup(run.kill)
            run.wait_for(lambda: bars(run.out), "the bar of the pull")
            run.ctrl_c()
            run.finish()
        finally:
            os.kill(reg.proc.pid, signal.SIGCONT)
        self.assertEqual(run.rc, 1, repr(run.out) + run.err)
        self.assertTrue(run.err.startswith("Error: Cancelled"), run.err)
        self.assertNothingLeft(env, "copy")

        # and with the registry there, the bar, then the message
        run = PtyRun([st.CLI, "--session", "snapshot", "pull", ref, "--snapshot-id", "copy"],
                     env.client_env())
        self.addCleanup(run.kill)
        run.finish()
        self.assertEqual((run.rc, run.err), (0, ""), run.out)
        self.assertTrue(bars(run.out), run.out)
        self.assertIn("Pulled snapshot 'copy' of VM 'guest' from %s." % ref, run.out)

    def test_pull_what_skopeo_copied_from_an_export(self):
        reg, env = self.registry_and_snapshot()
        info = env.snapshot_info("snap")
        files = self.snapshot_files(env, "snap")
        archive = os.path.join(self.tmp, "snap.oci.tar")
        r = env.cli("snapshot", "export", "snap", archive)
        self.assertCli(r, 0)
        ref = reg.host + "/copied/by-skopeo:v1"
        r = skopeo("copy", "--dest-tls-verify=false", "oci-archive:" + archive, "docker://" + ref)
        self.assertEqual(r.returncode, 0, r.stderr)

        out = self.pull(env, ref, **{"snapshot-id": "copied"})
        self.assertEqual(out, "(objectpath '%s',)" % snapshot_path("copied"))
        copied = env.snapshot_info("copied")
        for k in ("vm_id", "vm_config", "network_config", "created_at", "backend"):
            self.assertEqual(copied[k], info[k], k)
        self.assertEqual(self.snapshot_files(env, "copied"), files)
        # and what smolvmd pushes itself is the same artifact, blob for blob
        self.push(env, "snap", reg.host + "/copied/by-smolvm:v1")
        a = self.raw_manifest(ref)
        b = self.raw_manifest(reg.host + "/copied/by-smolvm:v1")
        self.assertEqual([l["digest"] for l in a["layers"]], [l["digest"] for l in b["layers"]])


class Errors(RegistryCase):
    def test_basic_auth(self):
        reg = self.start_registry(users=USERS)
        creds = os.path.join(self.tmp, "auth.json")
        env = self.new_daemon(reg, "--registry-auth-file", creds)
        self.made_snapshot(env)
        ref = reg.host + "/smolvm/guest:v1"

        # no file, then no entry for this registry: anonymous, refused
        e = self.assertDBusError("RegistryAuthFailed", self.push, env, "snap", ref)
        self.assertIn(reg.host, e.message)
        auth_file(creds, "other.example:5000", "smolvm", "s3cret")
        self.assertDBusError("RegistryAuthFailed", self.push, env, "snap", ref)
        # wrong password (the file is read at each call)
        auth_file(creds, reg.host, "smolvm", "wrong")
        self.assertDBusError("RegistryAuthFailed", self.push, env, "snap", ref)
        self.assertDBusError("RegistryAuthFailed", self.pull, env, ref,
                             **{"snapshot-id": "copy"})
        self.assertEqual(uploaded_digests(reg), [])
        # right
        auth_file(creds, reg.host, "smolvm", "s3cret")
        self.push(env, "snap", ref)
        self.assertEqual(len(uploaded_digests(reg)), 4)
        self.pull(env, ref, **{"snapshot-id": "copy"})
        self.assertEqual(self.snapshot_files(env, "copy"), self.snapshot_files(env, "snap"))
        # a malformed file is an error, never anonymous by surprise
        with open(creds, "w") as f:
            f.write("{not json")
        self.assertDBusError("RegistryAuthFailed", self.pull, env, ref,
                             **{"snapshot-id": "copy2"})

    def test_registry_down(self):
        reg, env = self.registry_and_snapshot()
        reg.stop()
        e = self.assertDBusError("RegistryUnavailable", self.push, env, "snap",
                                 reg.host + "/smolvm/guest:v1")
        self.assertIn(reg.host, e.message)
        self.assertDBusError("RegistryUnavailable", self.pull, env,
                             reg.host + "/smolvm/guest:v1", **{"snapshot-id": "x"})
        self.assertEqual(self.oci_cache(env), [])

    def test_unknown_tag_and_repository(self):
        reg, env = self.registry_and_snapshot()
        self.push(env, "snap", reg.host + "/smolvm/guest:v1")
        e = self.assertDBusError("NotFound", self.pull, env, reg.host + "/smolvm/guest:nope")
        self.assertIn("nope", e.message)
        self.assertDBusError("NotFound", self.pull, env, reg.host + "/no/such:v1")
        self.assertDBusError("InvalidArgument", self.pull, env, "no-registry")
        self.assertDBusError("InvalidArgument", self.push, env, "snap", reg.host + "/UPPER:v1")
        self.assertEqual(self.oci_cache(env), [])

    def test_not_a_snapshot(self):
        reg = self.start_registry()
        env = self.new_daemon(reg)
        # an ordinary OCI image, made by hand and pushed by skopeo
        layout = os.path.join(self.tmp, "image")
        os.makedirs(os.path.join(layout, "blobs", "sha256"))

        def blob(data):
            digest = hashlib.sha256(data).hexdigest()
            with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
                f.write(data)
            return {"digest": "sha256:" + digest, "size": len(data)}
        config = blob(json.dumps({"architecture": "amd64", "os": "linux",
                                  "rootfs": {"type": "layers", "diff_ids": []}}).encode())
        config["mediaType"] = "application/vnd.oci.image.config.v1+json"
        manifest = json.dumps({"schemaVersion": 2,
                               "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": config, "layers": []}).encode()
        m = blob(manifest)
        m["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
        with open(os.path.join(layout, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [
                dict(m, annotations={"org.opencontainers.image.ref.name": "v1"})]}, f)
        with open(os.path.join(layout, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion": "1.0.0"}')
        r = skopeo("copy", "--dest-tls-verify=false", "oci:%s:v1" % layout,
                   "docker://%s/some/image:v1" % reg.host)
        self.assertEqual(r.returncode, 0, r.stderr)

        self.assertDBusError("NotASnapshot", self.pull, env, reg.host + "/some/image:v1")
        self.assertEqual(self.oci_cache(env), [])
        self.assertEqual(env.snapshot_ids(), [])

    def test_insecure_registry_not_listed(self):
        reg = self.start_registry()
        env = self.new_env()  # no --insecure-registry: TLS it is
        self.made_snapshot(env)
        e = self.assertDBusError("RegistryUnavailable", self.push, env, "snap",
                                 reg.host + "/smolvm/guest:v1")
        self.assertIn("--insecure-registry %s" % reg.host, e.message)
        self.assertDBusError("RegistryUnavailable", self.pull, env,
                             reg.host + "/smolvm/guest:v1", **{"snapshot-id": "x"})
        self.assertEqual(reg.blob_uploads(), [])


if __name__ == "__main__":
    st.main("registry")
