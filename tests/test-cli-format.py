#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Output formats and exit codes of the smolvm CLI against a mock smolvmd.

Usage: test-cli-format.py [PATH-TO-smolvm]

A private dbus-daemon is started; a mock smolvmd (climock.py), driven from
a thread of this process, serves the CLI (run with --session).
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

SRCDIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SRCDIR)
from climock import MockSmolvmd, usec  # noqa: E402

CLI = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else os.path.join(
    SRCDIR, '..', 'build', 'src', 'cli', 'smolvm')


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bus = subprocess.Popen(['dbus-daemon', '--session', '--nofork', '--print-address=1'],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        cls.address = cls.bus.stdout.readline().strip()

    @classmethod
    def tearDownClass(cls):
        cls.bus.terminate()
        cls.bus.wait()

    def setUp(self):
        self.mock = MockSmolvmd(self.address)
        self.addCleanup(self.mock.stop)

    def smolvm(self, *args, cwd=None, address=None):
        env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=address or self.address, LC_ALL='C.UTF-8')
        return subprocess.run([CLI, '--session'] + list(args), env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=30)

    def ok(self, *args, **kwargs):
        result = self.smolvm(*args, **kwargs)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, '')
        return result.stdout

    # the reference's keys in its order, then SmolVM's "ok" and "error"
    ENVELOPE_KEYS = ['command', 'exit_code', 'ok', 'data', 'error']

    def ok_json(self, *args, **kwargs):
        envelope = json.loads(self.ok(*args, '--json', **kwargs))
        self.assertEqual(list(envelope), self.ENVELOPE_KEYS)
        self.assertEqual(envelope['exit_code'], 0)
        self.assertIs(envelope['ok'], True)
        self.assertIsNone(envelope['error'])
        return envelope

    ERROR_KEYS = ['name', 'dbus_name', 'message', 'type']

    def fails_json(self, exit_code, *args, details=False, **kwargs):
        """The envelope of a failure; @details: the error has "details" too."""
        result = self.smolvm(*args, '--json', **kwargs)
        self.assertEqual(result.returncode, exit_code)
        self.assertEqual(result.stderr, '')
        envelope = json.loads(result.stdout)
        self.assertEqual(list(envelope), self.ENVELOPE_KEYS)
        self.assertEqual(envelope['exit_code'], exit_code)
        self.assertIs(envelope['ok'], False)
        self.assertIsNone(envelope['data'])
        self.assertEqual(list(envelope['error']),
                         self.ERROR_KEYS + (['details'] if details else []))
        return envelope

    def spec_snapshots(self):
        self.mock.add_snapshot('before-deploy', 'my-vm', usec(2026, 4, 3, 12, 30))
        self.mock.add_snapshot('pre-experiment', 'agent-1', usec(2026, 4, 3, 11, 15), 'agent-1')

    def test_snapshot_list_human(self):
        self.spec_snapshots()
        self.assertEqual(self.ok('snapshot', 'list'),
                         '  Snapshot ID        VM ID     Restored   Created At\n'
                         '  before-deploy      my-vm     No         2026-04-03T12:30:00\n'
                         '  pre-experiment     agent-1   Yes        2026-04-03T11:15:00\n'
                         '\n'
                         'Total: 2 snapshot(s).\n')
        self.assertEqual(self.ok('snapshot', 'list', '--vm-id', 'my-vm').splitlines()[-1],
                         'Total: 1 snapshot(s).')
        self.assertEqual(self.mock.calls[-1][2], ('my-vm',))

    def test_snapshot_list_empty_and_wide(self):
        # as SmolVM says it, rather than an empty table
        self.assertEqual(self.ok('snapshot', 'list'), 'No snapshots found.\n')
        self.assertEqual(self.ok('snapshot', 'list', '--vm-id', 'my-vm'),
                         "No snapshots found for VM 'my-vm'.\n")
        self.assertEqual(self.ok_json('snapshot', 'list', '--vm-id', 'my-vm')['data'],
                         {'snapshots': [], 'total': 0, 'filters': {'vm_id': 'my-vm'}})
        self.assertEqual(self.ok_json('snapshot', 'list')['data'],
                         {'snapshots': [], 'total': 0, 'filters': {'vm_id': None}})
        self.mock.add_snapshot('a-rather-long-snapshot-name', 'vm', usec(2026, 1, 1))
        lines = self.ok('snapshot', 'list').splitlines()
        self.assertEqual(lines[0].index('VM ID'), lines[1].index('vm '))
        self.assertEqual(lines[-1], 'Total: 1 snapshot(s).')
        # only an empty list gets the sentence
        self.assertEqual(self.ok('snapshot', 'list', '--vm-id', 'other'),
                         "No snapshots found for VM 'other'.\n")
        # --vm-id "" filters nothing: no filter in the JSON either
        self.assertEqual(self.ok('snapshot', 'list', '--vm-id', '').splitlines()[-1],
                         'Total: 1 snapshot(s).')
        self.assertEqual(self.mock.calls[-1][2], ('',))
        self.assertEqual(self.ok_json('snapshot', 'list', '--vm-id', '')['data']['filters'],
                         {'vm_id': None})

    def test_snapshot_list_json(self):
        self.spec_snapshots()
        envelope = self.ok_json('snapshot', 'list')
        self.assertEqual(envelope['command'], 'snapshot.list')
        self.assertEqual(list(envelope['data']), ['snapshots', 'total', 'filters'])
        self.assertEqual(envelope['data']['total'], 2)
        self.assertEqual(envelope['data']['filters'], {'vm_id': None})
        first, second = envelope['data']['snapshots']
        self.assertEqual(list(first), ['snapshot_id', 'vm_id', 'restored', 'restored_vm_id',
                                       'created_at', 'snapshot_path', 'mem_file_path', 'disk_path'])
        self.assertIsNone(first['restored_vm_id'])
        self.assertEqual(first['created_at'], '2026-04-03T12:30:00+00:00')
        self.assertEqual(second['restored'], True)
        self.assertEqual(second['restored_vm_id'], 'agent-1')

        data = self.ok_json('snapshot', 'list', '--vm-id', 'agent-1')['data']
        self.assertEqual(data['filters'], {'vm_id': 'agent-1'})
        self.assertEqual([s['snapshot_id'] for s in data['snapshots']], ['pre-experiment'])
        self.assertEqual(data['total'], 1)

    def test_snapshot_create(self):
        self.mock.add_vm('my-vm')
        self.assertEqual(self.ok('snapshot', 'create', 'my-vm', '--snapshot-id', 'before-deploy',
                                 '--resume-source'),
                         "Created snapshot 'before-deploy' from VM 'my-vm'.\n")
        method, _, args, interactive = [c for c in self.mock.calls if c[0] == 'CreateSnapshot'][0]
        self.assertEqual(args, ('my-vm', 'before-deploy', {'resume-source': True}))
        self.assertTrue(interactive)

        envelope = self.ok_json('snapshot', 'create', 'my-vm', '--snapshot-id', 'test-snap')
        self.assertEqual(envelope['command'], 'snapshot.create')
        self.assertEqual(envelope['data'], {'snapshot': {
            'snapshot_id': 'test-snap',
            'vm_id': 'my-vm',
            'restored': False,
            'restored_vm_id': None,
            'created_at': '2026-04-03T12:30:00+00:00',
            'snapshot_path': '/home/user/.local/state/smolvm/snapshots/test-snap/vmstate.bin',
            'mem_file_path': '/home/user/.local/state/smolvm/snapshots/test-snap/mem.bin',
            'disk_path': '/home/user/.local/state/smolvm/snapshots/test-snap/disk.ext4',
        }})
        self.assertEqual(self.mock.calls[-2][2], ('my-vm', 'test-snap', {}))

        # laid out exactly as in the CLI reference, with SmolVM's "ok" and "error"
        self.assertEqual(self.ok('snapshot', 'create', 'my-vm', '--snapshot-id', 'spec-snap',
                                 '--json'),
                         '{\n'
                         '  "command": "snapshot.create",\n'
                         '  "exit_code": 0,\n'
                         '  "ok": true,\n'
                         '  "data": {\n'
                         '    "snapshot": {\n'
                         '      "snapshot_id": "spec-snap",\n'
                         '      "vm_id": "my-vm",\n'
                         '      "restored": false,\n'
                         '      "restored_vm_id": null,\n'
                         '      "created_at": "2026-04-03T12:30:00+00:00",\n'
                         '      "snapshot_path": "/home/user/.local/state/smolvm/snapshots/'
                         'spec-snap/vmstate.bin",\n'
                         '      "mem_file_path": "/home/user/.local/state/smolvm/snapshots/'
                         'spec-snap/mem.bin",\n'
                         '      "disk_path": "/home/user/.local/state/smolvm/snapshots/'
                         'spec-snap/disk.ext4"\n'
                         '    }\n'
                         '  },\n'
                         '  "error": null\n'
                         '}\n')

        # a generated id is read back from smolvmd
        self.assertEqual(self.ok('snapshot', 'create', 'my-vm'),
                         "Created snapshot 'snap-my-vm-1775219400' from VM 'my-vm'.\n")
        self.assertEqual(self.mock.calls[-2][2], ('my-vm', '', {}))
        # --snapshot-id "" asks for one too, as in SmolVM
        self.mock.snapshots.clear()
        envelope = self.ok_json('snapshot', 'create', 'my-vm', '--snapshot-id', '')
        self.assertEqual(envelope['data']['snapshot']['snapshot_id'], 'snap-my-vm-1775219400')
        self.assertEqual(self.mock.calls[-2][0], 'CreateSnapshot')
        self.assertEqual(self.mock.calls[-2][2], ('my-vm', '', {}))

    def test_snapshot_create_errors(self):
        result = self.smolvm('snapshot', 'create', 'my-vm', '--snapshot-id', 'Not_Valid')
        self.assertEqual(result.returncode, 1)
        self.assertTrue(result.stderr.startswith("Error: Invalid snapshot id 'Not_Valid'"))
        self.assertEqual(self.mock.calls, [])

        # SmolVM's types: a bad id is invalid_input...
        error = self.fails_json(1, 'snapshot', 'create', 'my-vm', '--snapshot-id',
                                'Not_Valid')['error']
        self.assertEqual((error['name'], error['dbus_name'], error['type']),
                         ('InvalidArgument', 'org.smolvm.Error.InvalidArgument', 'invalid_input'))
        self.assertEqual(self.mock.calls, [])
        # ... a missing VM a runtime_error (SmolVM's VMNotFoundError is no ValueError)
        error = self.fails_json(1, 'snapshot', 'create', 'no-such-vm')['error']
        self.assertEqual(error, {'name': 'NotFound', 'dbus_name': 'org.smolvm.Error.NotFound',
                                 'message': "VM 'no-such-vm' not found",
                                 'type': 'runtime_error'})

    def test_snapshot_restore(self):
        self.spec_snapshots()
        self.assertEqual(self.ok('snapshot', 'restore', 'before-deploy', '--resume'),
                         "Restored snapshot 'before-deploy' into VM 'my-vm'.\n")
        envelope = self.fails_json(1, 'snapshot', 'restore', 'before-deploy')
        self.assertEqual(envelope['command'], 'snapshot.restore')
        self.assertEqual(envelope['error']['name'], 'AlreadyRestored')
        self.assertEqual(envelope['error']['dbus_name'], 'org.smolvm.Error.AlreadyRestored')
        self.assertEqual(envelope['error']['type'], 'runtime_error')

        result = self.smolvm('snapshot', 'restore', 'before-deploy')
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, '')
        self.assertEqual(result.stderr,
                         "Error: Snapshot 'before-deploy' was already restored; use force\n")

        data = self.ok_json('snapshot', 'restore', 'before-deploy', '--force')['data']
        self.assertEqual(list(data), ['snapshot', 'vm_id', 'vm_state', 'vm'])
        self.assertEqual(data['vm_id'], 'my-vm')
        self.assertEqual(data['vm_state'], 'paused')
        self.assertEqual(data['snapshot']['restored'], True)
        self.assertEqual(data['snapshot']['restored_vm_id'], 'my-vm')
        restore = [c for c in self.mock.calls if c[0] == 'RestoreSnapshot'][-1]
        self.assertEqual(restore[2], ('before-deploy', {'force': True}))
        # the VM as SmolVM's restore shows it
        self.assertEqual(data['vm'], {'name': 'my-vm', 'vm_id': 'my-vm', 'status': 'paused',
                                      'ip_address': '172.16.0.2', 'ssh_port': None})
        # without networking: no address
        self.mock.add_vm('agent-1', state='stopped', guest_ip='')
        data = self.ok_json('snapshot', 'restore', 'pre-experiment', '--force', '--resume')['data']
        self.assertEqual(data['vm'], {'name': 'agent-1', 'vm_id': 'agent-1', 'status': 'running',
                                      'ip_address': None, 'ssh_port': None})

    def clone_calls(self):
        return [c for c in self.mock.calls if c[0] == 'CloneSnapshot']

    def test_snapshot_clone(self):
        self.spec_snapshots()
        self.mock.add_vm('my-vm-1')  # taken: generated ids go on from 2
        self.assertEqual(self.ok('snapshot', 'clone', 'before-deploy', '--count', '2'),
                         "Cloned snapshot 'before-deploy' into VM 'my-vm-2'.\n"
                         "Cloned snapshot 'before-deploy' into VM 'my-vm-3'.\n")
        _, path, args, interactive = self.clone_calls()[-1]
        self.assertEqual((path, args), ('/org/smolvm/Manager', ('before-deploy', {'count': 2})))
        self.assertTrue(interactive)
        self.assertEqual([self.mock.vms[i]['state'].unpack() for i in ('my-vm-2', 'my-vm-3')],
                         ['paused', 'paused'])
        # one by default; smolvmd's defaults apply, nothing is sent for them
        self.assertEqual(self.ok('snapshot', 'clone', 'before-deploy'),
                         "Cloned snapshot 'before-deploy' into VM 'my-vm-4'.\n")
        self.assertEqual(self.clone_calls()[-1][2], ('before-deploy', {}))

        # ids of our own, in their order; resumed
        envelope = self.ok_json('snapshot', 'clone', 'before-deploy', '--vm-id', 'web-b',
                                '--vm-id', 'web-a', '--resume')
        self.assertEqual(self.clone_calls()[-1][2],
                         ('before-deploy', {'vm-ids': ['web-b', 'web-a'], 'resume': True}))
        self.assertEqual(envelope['command'], 'snapshot.clone')
        base = '/home/user/.local/state/smolvm/snapshots/before-deploy/'
        self.assertEqual(envelope['data'], {
            'snapshot': {
                'snapshot_id': 'before-deploy',
                'vm_id': 'my-vm',
                'restored': False,  # a clone is no restore
                'restored_vm_id': None,
                'created_at': '2026-04-03T12:30:00+00:00',
                'snapshot_path': base + 'vmstate.bin',
                'mem_file_path': base + 'mem.bin',
                'disk_path': base + 'disk.ext4',
            },
            'vms': [
                {'name': 'web-b', 'vm_id': 'web-b', 'status': 'running', 'ip_address': None,
                 'ssh_port': None},
                {'name': 'web-a', 'vm_id': 'web-a', 'status': 'running', 'ip_address': None,
                 'ssh_port': None},
            ]})
        # --count agrees with the ids; the text names each clone
        self.assertEqual(self.ok('snapshot', 'clone', 'before-deploy', '--vm-id', 'x-1',
                                 '--count', '1'),
                         "Cloned snapshot 'before-deploy' into VM 'x-1'.\n")
        self.assertEqual(self.clone_calls()[-1][2],
                         ('before-deploy', {'count': 1, 'vm-ids': ['x-1']}))

        # smolvm list shows where a clone came from (a VM of an older smolvmd
        # has no such key)
        vms = {v['vm_id']: v for v in self.ok_json('list')['data']['vms']}
        self.assertEqual(vms['web-a']['cloned_from'], 'before-deploy')
        self.assertEqual(list(vms['web-a'])[-2:], ['restored_from', 'cloned_from'])
        self.assertNotIn('cloned_from', vms['my-vm-1'])

    def test_snapshot_clone_errors(self):
        self.spec_snapshots()
        # usage errors (exit 2) and ids the CLI refuses itself: nothing is sent
        for args in (['--count', 'x'], ['--count', '0'], ['--count'], []):
            argv = ['snapshot', 'clone'] + (['before-deploy'] if args else []) + args
            result = self.smolvm(*argv)
            self.assertEqual(result.returncode, 2, (args, result.stderr))
            self.assertTrue(result.stderr.startswith('Error: '), result.stderr)
        error = self.fails_json(1, 'snapshot', 'clone', 'before-deploy', '--vm-id', 'ok',
                                '--vm-id', 'Not_Valid')['error']
        self.assertEqual((error['name'], error['type']), ('InvalidArgument', 'invalid_input'))
        self.assertTrue(error['message'].startswith("Invalid VM id 'Not_Valid'"), error)
        self.assertEqual(self.clone_calls(), [])

        # smolvmd's refusals: the error as usual, no details (nothing was made)
        cases = [
            (['--count', '65'], 'InvalidArgument', 'invalid_input',
             'count must be between 1 and 64, not 65'),
            (['--count', '2', '--vm-id', 'a'], 'InvalidArgument', 'invalid_input',
             'count is 2, but vm-ids names 1 VMs'),
            (['--vm-id', 'my-vm-1', '--vm-id', 'agent-1'], 'AlreadyExists', 'runtime_error',
             "VM 'agent-1' already exists"),
        ]
        self.mock.add_vm('agent-1')
        for args, name, kind, message in cases:
            with self.subTest(args=args):
                error = self.fails_json(1, 'snapshot', 'clone', 'before-deploy', *args)['error']
                self.assertEqual((error['name'], error['type'], error['message']),
                                 (name, kind, message))
        result = self.smolvm('snapshot', 'clone', 'nope')
        self.assertEqual((result.returncode, result.stdout, result.stderr),
                         (1, '', "Error: Snapshot 'nope' not found\n"))
        error = self.fails_json(1, 'snapshot', 'clone', 'nope')['error']
        self.assertEqual((error['name'], error['type']), ('NotFound', 'runtime_error'))
        self.assertEqual(sorted(self.mock.vms), ['agent-1'])

    def test_snapshot_clone_partial_failure(self):
        """Some clones made, one failed: exit 1 with smolvmd's message; the
        clones kept are shown as on success (text), or with --json, where
        data stays null, in error.details."""
        self.spec_snapshots()
        self.ok('snapshot', 'clone', 'before-deploy', '--vm-id', 'earlier')
        why = 'the VMM did not start'
        self.mock.clone_failures = {'web-bad': why}
        result = self.smolvm('snapshot', 'clone', 'before-deploy', '--vm-id', 'web-ok',
                             '--vm-id', 'web-bad', '--resume')
        message = ("Cloned snapshot 'before-deploy' into 1 of 2 VMs ('web-ok', kept); "
                   "VM 'web-bad': " + why)
        self.assertEqual((result.returncode, result.stdout, result.stderr),
                         (1, "Cloned snapshot 'before-deploy' into VM 'web-ok'.\n",
                          'Error: %s\n' % message))
        self.assertEqual(self.mock.vms['web-ok']['state'].unpack(), 'running')

        envelope = self.fails_json(1, 'snapshot', 'clone', 'before-deploy', '--vm-id', 'web-2',
                                   '--vm-id', 'web-bad', '--vm-id', 'web-3', details=True)
        self.assertEqual(envelope['command'], 'snapshot.clone')
        error = envelope['error']
        self.assertEqual((error['name'], error['dbus_name'], error['type']),
                         ('Failed', 'org.smolvm.Error.Failed', 'runtime_error'))
        self.assertEqual(error['message'],
                         "Cloned snapshot 'before-deploy' into 2 of 3 VMs ('web-2', 'web-3', "
                         "kept); VM 'web-bad': " + why)
        # this call's clones only, not those of before (earlier, web-ok)
        self.assertEqual(error['details'], {'snapshot_id': 'before-deploy', 'vms': [
            {'name': 'web-2', 'vm_id': 'web-2', 'status': 'paused', 'ip_address': None,
             'ssh_port': None},
            {'name': 'web-3', 'vm_id': 'web-3', 'status': 'paused', 'ip_address': None,
             'ssh_port': None},
        ]})

        # none made: the list is empty
        error = self.fails_json(1, 'snapshot', 'clone', 'before-deploy', '--vm-id', 'web-bad',
                                details=True)['error']
        self.assertEqual(error['message'],
                         "Cloned snapshot 'before-deploy' into 0 of 1 VMs; VM 'web-bad': " + why)
        self.assertEqual(error['details'], {'snapshot_id': 'before-deploy', 'vms': []})
        result = self.smolvm('snapshot', 'clone', 'before-deploy', '--vm-id', 'web-bad')
        self.assertEqual((result.returncode, result.stdout), (1, ''))

    def test_snapshot_delete(self):
        self.spec_snapshots()
        self.assertEqual(self.ok('snapshot', 'delete', 'before-deploy'),
                         "Deleted snapshot 'before-deploy'.\n")
        base = '/home/user/.local/state/smolvm/snapshots/pre-experiment/'
        # the deleted snapshot's record, read before the delete
        self.assertEqual(self.ok_json('snapshot', 'delete', 'pre-experiment')['data'], {
            'snapshot_id': 'pre-experiment',
            'deleted': True,
            'snapshot': {
                'snapshot_id': 'pre-experiment',
                'vm_id': 'agent-1',
                'restored': True,
                'restored_vm_id': 'agent-1',
                'created_at': '2026-04-03T11:15:00+00:00',
                'snapshot_path': base + 'vmstate.bin',
                'mem_file_path': base + 'mem.bin',
                'disk_path': base + 'disk.ext4',
            }})
        self.assertEqual([c[0] for c in self.mock.calls[-2:]], ['ListSnapshots', 'DeleteSnapshot'])
        self.assertEqual(self.mock.snapshot_ids(), [])
        result = self.smolvm('snapshot', 'delete', 'before-deploy')
        self.assertEqual((result.returncode, result.stderr),
                         (1, "Error: Snapshot 'before-deploy' not found\n"))
        error = self.fails_json(1, 'snapshot', 'delete', 'before-deploy')['error']
        self.assertEqual((error['name'], error['type']), ('NotFound', 'runtime_error'))
        self.assertNotEqual(self.mock.calls[-1][0], 'DeleteSnapshot')

    def test_no_ask_password(self):
        self.spec_snapshots()
        result = self.smolvm('--no-ask-password', 'snapshot', 'delete', 'before-deploy')
        self.assertEqual((result.returncode, result.stderr),
                         (1, 'Error: Not authorized to do that\n'))
        self.assertFalse(self.mock.calls[-1][3])

    def test_vm_create_and_list(self):
        self.assertEqual(self.ok('list'),
                         '  VM ID    State    Backend    vCPUs   Memory   Guest IP\n'
                         '\n'
                         'Total: 0 VM(s).\n')
        # the CLI opens the images itself and passes descriptors
        with tempfile.TemporaryDirectory() as tmp:
            os.mkdir(os.path.join(tmp, 'img'))
            for name in ('vmlinux', 'img/rootfs.ext4'):
                with open(os.path.join(tmp, name), 'w') as f:
                    f.write(name)
            out = self.ok('create', '--kernel', 'vmlinux', '--rootfs', 'img/rootfs.ext4',
                          '--vm-id', 'my-vm', '--vcpus', '4', '--no-network', '--start', cwd=tmp)
            self.assertEqual(out, "Created VM 'my-vm'.\nStarted VM 'my-vm'.\n")
            config = [c for c in self.mock.calls if c[0] == 'CreateVM'][0][2][0]
            self.assertEqual(config, {'vm_id': 'my-vm', 'kernel-fd': tmp + '/vmlinux',
                                      'rootfs-fd': tmp + '/img/rootfs.ext4', 'vcpu_count': 4,
                                      'network': False})
            # a file the CLI cannot open is its own error; nothing is sent
            calls = len(self.mock.calls)
            result = self.smolvm('create', '--kernel', 'missing', '--rootfs', 'vmlinux', cwd=tmp)
            self.assertEqual((result.returncode, result.stderr),
                             (1, 'Error: Cannot open --kernel missing: No such file or '
                                 'directory\n'))
            self.assertEqual(len(self.mock.calls), calls)

        self.mock.add_vm('agent-1')
        # "firecracker" widens its column
        self.assertEqual(self.ok('list'),
                         '  VM ID    State    Backend     vCPUs   Memory   Guest IP\n'
                         '  agent-1  running  firecracker 2       512 MiB  172.16.0.2\n'
                         '  my-vm    running  firecracker 2       512 MiB  -\n'
                         '\n'
                         'Total: 2 VM(s).\n')

        data = self.ok_json('list')['data']
        self.assertEqual(data['total'], 2)
        self.assertEqual(data['vms'][0]['network_config'], {'guest_ip': '172.16.0.2'})
        self.assertEqual(list(data['vms'][0])[:3], ['vm_id', 'state', 'backend'])

        envelope = self.ok_json('create', '--kernel', sys.executable, '--rootfs', sys.executable)
        self.assertEqual(envelope['command'], 'vm.create')
        self.assertEqual(envelope['data']['vm']['vm_id'], 'vm-0000abcd')
        self.assertEqual(envelope['data']['vm']['state'], 'created')

    def test_vm_actions(self):
        self.mock.add_vm('my-vm')
        self.assertEqual(self.ok('pause', 'my-vm'), "Paused VM 'my-vm'.\n")
        self.assertEqual(self.ok_json('resume', 'my-vm')['data']['vm']['state'], 'running')
        self.assertEqual(self.ok('stop', 'my-vm'), "Stopped VM 'my-vm'.\n")
        self.assertEqual(self.ok('start', 'my-vm'), "Started VM 'my-vm'.\n")
        envelope = self.fails_json(1, 'delete', 'my-vm')
        self.assertEqual((envelope['command'], envelope['error']['name'],
                          envelope['error']['type']),
                         ('vm.delete', 'InvalidState', 'runtime_error'))
        self.assertEqual(self.ok_json('delete', 'my-vm', '--force')['data'],
                         {'vm_id': 'my-vm', 'deleted': True})
        self.assertEqual(self.smolvm('start', 'my-vm').stderr, "Error: VM 'my-vm' not found\n")
        # strings are escaped
        odd = 'a"b\\c\td\x01é'
        self.assertEqual(self.fails_json(1, 'start', odd)['error']['message'],
                         "VM '%s' not found" % odd)

    def test_usage_errors(self):
        for args in ([], ['bogus'], ['snapshot'], ['snapshot', 'create'],
                     ['snapshot', 'delete', 'a', 'b'], ['list', '--bogus']):
            result = self.smolvm(*args)
            self.assertEqual(result.returncode, 2, args)
            self.assertTrue(result.stderr.startswith('Error: '), args)
            error = self.fails_json(2, *args)['error']
            self.assertEqual((error['name'], error['dbus_name'], error['type']),
                             ('Usage', None, 'invalid_input'), args)
        # a value the CLI checks itself
        error = self.fails_json(2, 'create', '--kernel', 'k', '--rootfs', 'r', '--vcpus', 'x')
        self.assertEqual(error['error']['type'], 'invalid_input')
        self.assertEqual(self.mock.calls, [])

    def test_not_running(self):
        self.mock.stop()
        result = self.smolvm('snapshot', 'list')
        self.assertEqual((result.returncode, result.stderr),
                         (1, 'Error: smolvmd is not running on the session bus '
                             '(org.smolvm.Manager)\n'))
        error = self.fails_json(1, 'list')['error']
        self.assertEqual(error['dbus_name'], 'org.freedesktop.DBus.Error.ServiceUnknown')
        # SmolVM's word for something to install or start
        self.assertEqual(error['type'], 'missing_dependency')

    def test_no_bus(self):
        error = self.fails_json(1, 'snapshot', 'list',
                                address='unix:path=/nonexistent/bus')['error']
        self.assertTrue(error['message'].startswith('Cannot connect to the session bus'), error)
        self.assertEqual((error['name'], error['type']), ('Failed', 'missing_dependency'))


if __name__ == '__main__':
    unittest.main(verbosity=2)
