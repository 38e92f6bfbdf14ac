#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Jobs in the smolvm CLI against a mock smolvmd (climock.py): `job list`,
`job cancel`, the progress bar and Ctrl-C, through a pseudo-terminal.

Usage: test-cli-jobs.py [PATH-TO-smolvm]

The CLI runs on a pseudo-terminal (ptyrun.py); Ctrl-C is typed on it.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

SRCDIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SRCDIR)
from gi.repository import GLib  # noqa: E402
from climock import MIB, MockSmolvmd, JobPlan, job_step, usec  # noqa: E402
from ptyrun import DEADLINE, ERASE, PtyRun, bars  # noqa: E402

CLI = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else os.path.join(
    SRCDIR, '..', 'build', 'src', 'cli', 'smolvm')


class JobsTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.bus = subprocess.Popen(['dbus-daemon', '--session', '--nofork', '--print-address=1'],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        cls.address = cls.bus.stdout.readline().strip()
        # create opens its images and passes descriptors
        cls.images = tempfile.TemporaryDirectory()
        cls.kernel = os.path.join(cls.images.name, 'k')
        cls.rootfs = os.path.join(cls.images.name, 'r')
        for path in (cls.kernel, cls.rootfs):
            with open(path, 'w') as f:
                f.write(path)

    @classmethod
    def tearDownClass(cls):
        cls.bus.terminate()
        cls.bus.wait()
        cls.images.cleanup()

    def setUp(self):
        self.mock = MockSmolvmd(self.address)
        self.addCleanup(self.mock.stop)

    def env(self):
        return dict(os.environ, DBUS_SESSION_BUS_ADDRESS=self.address, LC_ALL='C.UTF-8',
                    TERM='xterm')

    def smolvm(self, *args):
        return subprocess.run([CLI, '--session'] + list(args), env=self.env(),
                              capture_output=True, text=True, timeout=DEADLINE)

    def pty(self, *args, **kwargs):
        run = PtyRun([CLI, '--session'] + list(args), self.env(), **kwargs)
        self.addCleanup(run.kill)
        return run

    def assertOk(self, run):
        self.assertEqual((run.rc, run.err), (0, ''), run.out)

    # ---- job list, job cancel ----

    def some_jobs(self):
        self.mock.add_job('snapshot-create', [self.mock.vm_path('my-vm')], phase='saving-state')
        job = self.mock.add_job('snapshot-restore', [self.mock.snapshot_path('before-deploy'),
                                                     self.mock.vm_path('my-vm')], uid=1000)
        job.update(job_step('copying-disk', 300 * MIB, 1024 * MIB, rate=100 * MIB, left=7))
        return job

    def test_job_list(self):
        r = self.smolvm('job', 'list')
        self.assertEqual((r.returncode, r.stderr), (0, ''))
        self.assertEqual(r.stdout,
                         '  Job  Operation         Phase           Progress  UID    Objects\n'
                         '\n'
                         'Total: 0 job(s).\n')
        self.some_jobs()
        r = self.smolvm('job', 'list')
        self.assertEqual((r.returncode, r.stderr), (0, ''))
        self.assertEqual(r.stdout,
                         '  Job  Operation         Phase           Progress  UID    Objects\n'
                         '  1    snapshot-create   saving-state    -         %-6d vm/my-vm\n'
                         '  2    snapshot-restore  copying-disk    29%%       1000   '
                         'snapshot/before-deploy, vm/my-vm\n'
                         '\n'
                         'Total: 2 job(s).\n' % os.getuid())
        # read only: no password is asked for
        self.assertFalse(any(c[3] for c in self.mock.calls))

    def test_job_list_json(self):
        self.some_jobs()
        r = self.smolvm('job', 'list', '--json')
        self.assertEqual((r.returncode, r.stderr), (0, ''))
        envelope = json.loads(r.stdout)
        self.assertEqual(list(envelope), ['command', 'exit_code', 'ok', 'data', 'error'])
        self.assertEqual((envelope['command'], envelope['exit_code'], envelope['ok'],
                          envelope['error']), ('job.list', 0, True, None))
        data = envelope['data']
        self.assertEqual(data['total'], 2)
        first, second = data['jobs']
        self.assertEqual(list(second), ['job', 'path', 'operation', 'objects', 'phase', 'progress',
                                        'progress_valid', 'bytes_done', 'bytes_total', 'rate',
                                        'start_time', 'expected_end_time', 'started_by_uid',
                                        'cancelable'])
        self.assertEqual((first['job'], first['path'], first['operation'], first['objects']),
                         (1, '/org/smolvm/Manager/job/1', 'snapshot-create',
                          ['/org/smolvm/Manager/vm/my_2dvm']))
        self.assertEqual(first['progress_valid'], False)
        self.assertEqual((second['phase'], second['bytes_done'], second['bytes_total'],
                          second['rate'], second['started_by_uid'], second['cancelable']),
                         ('copying-disk', 300 * MIB, 1024 * MIB, 100 * MIB, 1000, True))
        self.assertAlmostEqual(second['progress'], 300 / 1024)
        self.assertGreater(second['expected_end_time'], second['start_time'])
        self.assertAlmostEqual(second['start_time'] / 1e6, time.time(), delta=60)

    def test_job_cancel(self):
        job = self.some_jobs()
        r = self.smolvm('job', 'cancel', '2')
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, 'Cancelled job 2.\n', ''))
        self.assertEqual(self.mock.cancels(), [job.path])
        self.assertEqual([c for c in self.mock.calls if c[0] == 'Cancel'][-1],
                         ('Cancel', job.path, ({},), True))
        r = self.smolvm('job', 'cancel', '/org/smolvm/Manager/job/1', '--json')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), {
            'command': 'job.cancel', 'exit_code': 0, 'ok': True,
            'data': {'job': 1, 'path': '/org/smolvm/Manager/job/1', 'cancelled': True},
            'error': None})
        self.assertEqual(self.mock.cancels(), [job.path, '/org/smolvm/Manager/job/1'])

    def test_job_cancel_errors(self):
        self.some_jobs()
        r = self.smolvm('job', 'cancel', '7')
        self.assertEqual((r.returncode, r.stderr), (1, 'Error: Job 7 not found\n'))
        r = self.smolvm('job', 'cancel', '7', '--json')
        self.assertEqual(json.loads(r.stdout)['error'],
                         {'name': 'NotFound', 'dbus_name': 'org.smolvm.Error.NotFound',
                          'message': 'Job 7 not found', 'type': 'runtime_error'})
        for bad in ('x', '0', '-1', '/org/smolvm/Manager/vm/my_2dvm', '/org/smolvm/Manager/job/'):
            r = self.smolvm('job', 'cancel', '--', bad) if bad.startswith('-') else \
                self.smolvm('job', 'cancel', bad)
            self.assertEqual(r.returncode, 1, bad)
            self.assertTrue(r.stderr.startswith("Error: Invalid job '%s'" % bad), r.stderr)
        # a job that cannot be cancelled any more
        self.mock.add_job('vm-delete', []).update({'Cancelable': GLib.Variant('b', False)})
        r = self.smolvm('job', 'cancel', '3', '--json')
        self.assertEqual(json.loads(r.stdout)['error']['name'], 'InvalidState')
        # usage
        for args in (['job'], ['job', 'cancel'], ['job', 'cancel', '1', '2'], ['job', 'list', 'x'],
                     ['job', 'frobnicate']):
            r = self.smolvm(*args)
            self.assertEqual(r.returncode, 2, args)
        self.assertEqual(self.mock.cancels(), [])

    # ---- the progress bar ----

    def snapshot_plan(self, **kwargs):
        self.mock.add_vm('my-vm')
        self.mock.plan = JobPlan(**kwargs)

    def test_bar_on_a_terminal(self):
        self.snapshot_plan()
        run = self.pty('snapshot', 'create', 'my-vm', '--snapshot-id', 'before-deploy').finish()
        self.assertOk(run)
        out = run.out
        drawn = bars(out)
        # phases in order; none while authorizing (a password prompt may be up)
        phases = [b.split()[0] for b in drawn]
        self.assertEqual(sorted(set(phases), key=phases.index),
                         ['saving-state', 'copying-disk', 'committing'], drawn)
        saving = [b for b in drawn if b.startswith('saving-state')][0]
        self.assertNotIn('%', saving)  # progress not valid: no percent, no bar, no time
        self.assertNotIn('left', saving)
        self.assertRegex(out, r'\rcopying-disk   \[#####\.{15}\]  25%  256\.0 MiB / 1\.0 GiB  '
                              r'128\.0 MiB/s  0:0[0-6] left\x1b\[K')
        self.assertRegex(out, r'\rcopying-disk   \[##########\.{10}\]  50%  512\.0 MiB / 1\.0 GiB  '
                              r'128\.0 MiB/s  0:0[0-4] left\x1b\[K')
        self.assertIn('\rcommitting     [####################] 100%  1.0 GiB / 1.0 GiB  '
                      '128.0 MiB/s\x1b[K', out)
        # erased before the result
        self.assertTrue(out.endswith(ERASE + "Created snapshot 'before-deploy' from VM 'my-vm'.\n"),
                        repr(out[-200:]))
        self.assertEqual(self.mock.snapshot_ids(), ['before-deploy'])

    def test_bar_fits_the_terminal(self):
        self.snapshot_plan()
        run = self.pty('snapshot', 'create', 'my-vm', columns=40).finish()
        self.assertOk(run)
        drawn = bars(run.out)
        self.assertTrue(drawn)
        self.assertTrue(all(len(b) <= 39 for b in drawn), drawn)

    def test_no_bar(self):
        cases = [
            (['--json'], True),
            (['--no-progress'], True),
            ([], False),  # standard output is a pipe
        ]
        for extra, stdout_tty in cases:
            with self.subTest(extra=extra, stdout_tty=stdout_tty):
                self.mock.snapshots.clear()
                self.snapshot_plan()
                run = self.pty('snapshot', 'create', 'my-vm', '--snapshot-id', 'quiet', *extra,
                               stdout_tty=stdout_tty).finish()
                self.assertOk(run)
                self.assertNotIn('\x1b', run.out)
                self.assertNotIn('\r', run.out)
                self.assertNotIn('copying', run.out)
                if extra == ['--json']:
                    self.assertEqual(json.loads(run.out)['data']['snapshot']['snapshot_id'],
                                     'quiet')
                else:
                    self.assertEqual(run.out, "Created snapshot 'quiet' from VM 'my-vm'.\n")
                # the job was published all the same
                self.assertEqual([e for e, _ in self.mock.job_events], ['added', 'removed'])
                self.mock.job_events.clear()

    def test_bar_of_each_verb(self):
        self.mock.add_snapshot('before-deploy', 'my-vm', usec(2026, 4, 3, 12, 30))
        cases = [
            (['snapshot', 'restore', 'before-deploy'],
             "Restored snapshot 'before-deploy' into VM 'my-vm'.\n"),
            # found by the snapshot's path among the Job's Objects
            (['snapshot', 'clone', 'before-deploy', '--count', '2'],
             "Cloned snapshot 'before-deploy' into VM 'my-vm-1'.\n"
             "Cloned snapshot 'before-deploy' into VM 'my-vm-2'.\n"),
            (['delete', 'my-vm', '--force'], "Deleted VM 'my-vm'.\n"),
            (['create', '--kernel', self.kernel, '--rootfs', self.rootfs, '--vm-id', 'new-vm'],
             "Created VM 'new-vm'.\n"),
            (['create', '--kernel', self.kernel, '--rootfs', self.rootfs], "Created VM 'vm-0000abcd'.\n"),
        ]
        for argv, message in cases:
            with self.subTest(argv=argv):
                self.mock.plan = JobPlan(steps=[job_step('copying-disk', MIB, 4 * MIB, left=1)])
                run = self.pty(*argv).finish()
                self.assertOk(run)
                self.assertEqual([b.split()[0] for b in bars(run.out)], ['copying-disk'])
                self.assertTrue(run.out.endswith(ERASE + message), repr(run.out))

    def test_only_our_job(self):
        """Other users' jobs, jobs on other objects and jobs of before our
        call are not ours: never drawn, never cancelled."""
        vm = self.mock.vm_path('my-vm')
        self.mock.add_vm('my-vm')
        self.mock.add_vm('other')
        before = self.mock.add_job('snapshot-create', [vm], phase='decoy')
        self.mock.plan = JobPlan(
            job_delay=0.3, hold=True,
            decoys=[('snapshot-create', 4242, [vm]),
                    ('snapshot-create', os.getuid(), [self.mock.vm_path('other')]),
                    ('snapshot-restore', os.getuid(), [vm])])
        run = self.pty('snapshot', 'create', 'my-vm')
        run.wait_for(lambda: any(c[0] == 'CreateSnapshot' for c in self.mock.calls), 'the call')
        # the older job changes while ours is not there yet
        self.mock._in_mock_thread(before.update, job_step('decoy-before', MIB, 2 * MIB))
        run.wait_for(lambda: 'copying-disk' in run.out, 'the bar')
        run.ctrl_c()
        run.finish()
        self.assertEqual((run.rc, run.err), (1, 'Error: Cancelled by the user\n'), run.out)
        self.assertNotIn('decoy', run.out)
        ours = '/org/smolvm/Manager/job/5'
        self.assertEqual(self.mock.cancels(), [ours])
        self.assertIn(before.path, self.mock.jobs)

    # ---- Ctrl-C ----

    def test_ctrl_c_cancels(self):
        self.snapshot_plan(hold=True)
        run = self.pty('snapshot', 'create', 'my-vm', '--snapshot-id', 'stopped')
        run.wait_for(lambda: 'copying-disk' in run.out, 'the bar')
        run.ctrl_c()
        run.finish()
        self.assertEqual((run.rc, run.err), (1, 'Error: Cancelled by the user\n'), run.out)
        self.assertEqual(self.mock.cancels(), ['/org/smolvm/Manager/job/1'])
        self.assertEqual(self.mock.snapshot_ids(), [])
        # the bar is gone from the line
        self.assertTrue(run.out.endswith(ERASE), repr(run.out[-100:]))
        cancel = [c for c in self.mock.calls if c[0] == 'Cancel']
        self.assertEqual(cancel, [('Cancel', '/org/smolvm/Manager/job/1', ({},), True)])

    def test_ctrl_c_message(self):
        """The daemon's message does not say Cancelled: the CLI does."""
        self.snapshot_plan(hold=True, cancel_message='rolled back, the VM is paused again')
        run = self.pty('snapshot', 'create', 'my-vm', '--no-progress')
        run.wait_for(lambda: self.mock.jobs, 'the job')
        run.ctrl_c()
        run.finish()
        self.assertEqual((run.rc, run.err),
                         (1, 'Error: Cancelled: rolled back, the VM is paused again\n'))
        self.assertEqual(len(self.mock.cancels()), 1)

    def test_ctrl_c_json(self):
        self.snapshot_plan(hold=True)
        run = self.pty('snapshot', 'create', 'my-vm', '--json')
        run.wait_for(lambda: self.mock.jobs, 'the job')
        run.ctrl_c()
        run.finish()
        self.assertEqual((run.rc, run.err), (1, ''))
        envelope = json.loads(run.out.replace('^C', ''))
        self.assertEqual(envelope, {
            'command': 'snapshot.create', 'exit_code': 1, 'ok': False, 'data': None, 'error': {
                'name': 'Cancelled', 'dbus_name': 'org.smolvm.Error.Cancelled',
                'message': 'Cancelled by the user', 'type': 'runtime_error'}})

    def test_ctrl_c_before_the_job(self):
        """Ctrl-C before the Job is published: it is cancelled once it is."""
        self.snapshot_plan(job_delay=1.0, hold=True)
        run = self.pty('snapshot', 'create', 'my-vm')
        run.wait_for(lambda: any(c[0] == 'CreateSnapshot' for c in self.mock.calls), 'the call')
        self.assertEqual(self.mock.jobs, {})
        run.ctrl_c()
        run.finish()
        self.assertEqual((run.rc, run.err), (1, 'Error: Cancelled by the user\n'))
        self.assertEqual(self.mock.job_events[:2],
                         [('added', '/org/smolvm/Manager/job/1'),
                          ('cancel', '/org/smolvm/Manager/job/1')])

    def test_ctrl_c_restore_delete_create(self):
        self.mock.add_snapshot('before-deploy', 'my-vm', usec(2026, 4, 3, 12, 30))
        self.mock.add_vm('old-vm')
        for argv in (['snapshot', 'restore', 'before-deploy', '--resume'],
                     ['snapshot', 'clone', 'before-deploy', '--count', '3'],
                     ['delete', 'old-vm', '--force'],
                     ['create', '--kernel', self.kernel, '--rootfs', self.rootfs, '--vm-id', 'new-vm']):
            with self.subTest(argv=argv):
                self.mock.job_events.clear()
                self.mock.plan = JobPlan(hold=True)
                run = self.pty(*argv)
                run.wait_for(lambda: 'copying-disk' in run.out, 'the bar')
                run.ctrl_c()
                run.finish()
                self.assertEqual((run.rc, run.err), (1, 'Error: Cancelled by the user\n'))
                self.assertEqual(len(self.mock.cancels()), 1)
        self.assertEqual(sorted(self.mock.vms), ['old-vm'])
        self.assertFalse(self.mock.snapshots[0]['restored'].unpack())

    def test_ctrl_c_clone_json(self):
        """A cancelled clone: Cancelled, and the error's details list the
        clones kept, none here (the mock's Cancel makes nothing)."""
        self.mock.add_snapshot('before-deploy', 'my-vm', usec(2026, 4, 3, 12, 30))
        self.mock.plan = JobPlan(hold=True)
        run = self.pty('snapshot', 'clone', 'before-deploy', '--vm-id', 'a', '--vm-id', 'b',
                       '--json')
        run.wait_for(lambda: self.mock.jobs, 'the job')
        job = list(self.mock.jobs.values())[0]
        self.assertEqual(job.props['Operation'].unpack(), 'snapshot-clone')
        self.assertEqual(job.props['Objects'].unpack(),
                         [self.mock.snapshot_path('before-deploy'), self.mock.vm_path('a'),
                          self.mock.vm_path('b')])
        run.ctrl_c()
        run.finish()
        self.assertEqual((run.rc, run.err), (1, ''))
        self.assertEqual(json.loads(run.out.replace('^C', '')), {
            'command': 'snapshot.clone', 'exit_code': 1, 'ok': False, 'data': None, 'error': {
                'name': 'Cancelled', 'dbus_name': 'org.smolvm.Error.Cancelled',
                'message': 'Cancelled by the user', 'type': 'runtime_error',
                'details': {'snapshot_id': 'before-deploy', 'vms': []}}})
        self.assertEqual(self.mock.cancels(), [job.path])
        self.assertEqual(self.mock.vms, {})

    def test_second_ctrl_c_leaves_at_once(self):
        self.snapshot_plan(hold=True, cancel_message=None)  # the rollback never ends
        run = self.pty('snapshot', 'create', 'my-vm')
        run.wait_for(lambda: 'copying-disk' in run.out, 'the bar')
        run.ctrl_c()
        run.wait_for(lambda: self.mock.cancels(), 'the Cancel call')
        time.sleep(0.3)
        self.assertIsNone(run.proc.poll())  # still waiting for the rollback
        run.ctrl_c()
        run.finish()
        self.assertEqual((run.rc, run.err), (130, ''))
        self.assertTrue(run.out.endswith(ERASE), repr(run.out[-100:]))
        self.assertEqual(len(self.mock.cancels()), 1)

    def test_ctrl_c_without_jobs(self):
        """A smolvmd without an ObjectManager (no jobs to cancel): Ctrl-C
        leaves at once."""
        self.mock.add_vm('my-vm')
        self.mock.plan = JobPlan(hold=True)
        self.mock._in_mock_thread(self.mock.bus.unregister_object, self.mock.om_registration)
        run = self.pty('snapshot', 'create', 'my-vm')
        run.wait_for(lambda: any(c[0] == 'CreateSnapshot' for c in self.mock.calls), 'the call')
        run.ctrl_c()
        run.finish()
        self.assertEqual(run.rc, 130)


if __name__ == '__main__':
    unittest.main(verbosity=2)
