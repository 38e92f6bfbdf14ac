#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""libsmolvm-1's push_snapshot and pull_snapshot through GObject
introspection (gi.repository.Smolvm), _sync and async, against smolvmd on a
private session bus and Debian's docker-registry (tests/registry.py)."""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import registry  # noqa: E402
import smolvmtest as st  # noqa: E402

LIB_DIR = os.path.join(st.BUILD_DIR, "src", "lib")
if os.environ.get("GI_TYPELIB_PATH") != LIB_DIR:
    os.environ["GI_TYPELIB_PATH"] = LIB_DIR
    os.environ["LD_LIBRARY_PATH"] = LIB_DIR
    os.execv(sys.executable, [sys.executable] + sys.argv)

import gi  # noqa: E402

gi.require_version("Smolvm", "1.0")
from gi.repository import GLib, Smolvm  # noqa: E402


class PushPull(st.TestCase):
    def test_push_and_pull(self):
        if not registry.available():
            self.skipTest("docker-registry is not installed (tools/deps.sh)")
        tmp = tempfile.mkdtemp(prefix="test-library-registry-")
        self.addCleanup(shutil.rmtree, tmp, True)
        reg = registry.Registry(tmp).start()
        self.addCleanup(reg.remove)
        env = self.new_env(daemon_args=["--insecure-registry", reg.host])
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = env.bus.address
        client = Smolvm.Client.new_sync(Smolvm.BusType.SESSION, None)
        client.get_connection().set_exit_on_close(False)
        env.running_vm("guest")
        env.create_snapshot("guest", "snap", **{"resume-source": True})
        ref = reg.host + "/lib/guest:v1"

        self.assertTrue(client.push_snapshot_sync("snap", ref, None))
        info = client.pull_snapshot_sync(ref, "copy", None)
        self.assertEqual(info.props.snapshot_id, "copy")
        self.assertEqual(info.props.vm_id, "guest")

        # async, and an error with its code
        loop = GLib.MainLoop()
        out = {}

        def done(source, result):
            try:
                out["info"] = client.pull_snapshot_finish(result)
            except GLib.Error as e:
                out["error"] = e
            loop.quit()
        client.pull_snapshot(reg.host + "/lib/guest:nope", None, None, done)
        loop.run()
        self.assertTrue(out["error"].matches(Smolvm.error_quark(), Smolvm.Error.NOT_FOUND),
                        out["error"])
        with self.assertRaises(GLib.Error) as caught:
            client.push_snapshot_sync("snap", "no-registry", None)
        self.assertTrue(caught.exception.matches(Smolvm.error_quark(),
                                                 Smolvm.Error.INVALID_ARGUMENT))


if __name__ == "__main__":
    st.main("library-registry")
