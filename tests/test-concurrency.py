#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What other clients see while a CreateSnapshot is under way.

fc-emulator holds its answer to PUT /snapshot/create for
FC_EMULATOR_SNAPSHOT_DELAY_MS; meanwhile smolvmd must go on answering, and
the new snapshot must stay invisible until it is complete.  The checks are
made while the CreateSnapshot call is provably still pending (its gdbus
client has not returned and the emulator got the request), so the delay only
has to be long enough, it is never measured."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402
from smolvmtest import gv_str, snapshot_path  # noqa: E402

DELAY_MS = 4000


class TestConcurrency(st.TestCase):
    env_options = {"extra_env": {"FC_EMULATOR_SNAPSHOT_DELAY_MS": str(DELAY_MS)}}

    def snapshot_requests(self, env, snapshot_id):
        """PUT /snapshot/create requests the emulators got for @snapshot_id."""
        found = []
        try:
            with open(env.request_log) as f:
                for line in f:
                    req = json.loads(line)
                    body = req.get("body") or {}
                    if (req["method"], req["path"]) == ("PUT", "/snapshot/create") and \
                            "/.tmp-%s/" % snapshot_id in body.get("snapshot_path", ""):
                        found.append(req)
        except FileNotFoundError:
            pass
        return found

    def test_create_in_progress(self):
        env = self.env
        env.running_vm("busy-vm")
        env.running_vm("other-vm")
        env.create_snapshot("other-vm", "old", **{"resume-source": True})

        call = env.gdbus_background(st.MANAGER_PATH, "CreateSnapshot", gv_str("busy-vm"),
                                    gv_str("slow"), "{'resume-source': <true>}")
        try:
            st.wait_for(lambda: self.snapshot_requests(env, "slow") or call.poll() is not None,
                        "the emulator to get the snapshot request")
            if call.poll() is not None:
                self.fail("CreateSnapshot ended before the checks: %r" % (call.communicate(),))
            self.assertEqual(sorted(os.listdir(os.path.join(env.state_dir, "snapshots"))),
                             [".tmp-slow", "old"])

            # other clients get answers, and no sign of the snapshot
            self.assertEqual(env.snapshot_ids(), ["old"])
            self.assertEqual(env.snapshot_ids("busy-vm"), [])
            self.assertDBusError("NotFound", env.call, "GetSnapshot", gv_str("slow"))
            self.assertNotIn(snapshot_path("slow"), env.managed_objects())
            self.assertDBusError("NotFound", env.restore, "slow")
            self.assertDBusError("NotFound", env.delete_snapshot, "slow")
            self.assertEqual(env.vm_state("busy-vm"), "paused")
            # the id is taken, and the VM busy
            self.assertDBusError("AlreadyExists", env.create_snapshot, "other-vm", "slow")
            self.assertDBusError("InvalidState", env.create_snapshot, "busy-vm", "second")
            self.assertDBusError("InvalidState", env.vm, "busy-vm", "Resume")
            # other VMs are not held up
            env.create_vm("newcomer")
            env.start_vm("newcomer")
            env.vm("other-vm", "Pause")
            env.vm("other-vm", "Resume")
            self.assertEqual(env.snapshot_ids(), ["old"])

            self.assertIsNone(call.poll(), "CreateSnapshot ended before the checks were done; "
                              "FC_EMULATOR_SNAPSHOT_DELAY_MS is too short for this machine")
            out, err = call.communicate(timeout=st.DEADLINE)
        finally:
            if call.poll() is None:
                call.kill()
                call.communicate()
        self.assertEqual(st.gdbus_result(call.returncode, out, err),
                         "(objectpath '%s',)" % snapshot_path("slow"))
        self.assertEqual(env.call("GetSnapshot", gv_str("slow")),
                         "(objectpath '%s',)" % snapshot_path("slow"))
        self.assertEqual(env.snapshot_ids(), ["old", "slow"])
        self.assertEqual(env.vm_state("busy-vm"), "running")
        self.assertFalse(os.path.exists(os.path.join(env.state_dir, "snapshots", ".tmp-slow")))
        self.assertEqual(len(self.snapshot_requests(env, "slow")), 1)


if __name__ == "__main__":
    st.main("concurrency")
