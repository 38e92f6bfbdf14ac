#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Output formats and exit codes of the smolvm CLI against a mock smolvmd.

Usage: test-cli-format.py [PATH-TO-smolvm]

A private dbus-daemon is started; a mock org.smolvm.Manager, driven from a
thread of this process, serves the CLI (run with --session). The mock only
models what the CLI relies on: the method signatures, the SnapshotInfo and VM
dictionaries, org.smolvm.Error.* replies, and that authorization needs the
ALLOW_INTERACTIVE_AUTHORIZATION flag (as polkit with an agent would).
"""

import json
import os
import subprocess
import sys
import threading
import unittest
from datetime import datetime, timezone

from gi.repository import Gio, GLib

SRCDIR = os.path.dirname(os.path.abspath(__file__))
INTROSPECTION = os.path.join(SRCDIR, '..', 'introspection')
CLI = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else os.path.join(
    SRCDIR, '..', 'build', 'src', 'cli', 'smolvm')

MANAGER_PATH = '/org/smolvm/Manager'


def usec(*args):
    return int(datetime(*args, tzinfo=timezone.utc).timestamp()) * 1000000


def interface_info(name):
    with open(os.path.join(INTROSPECTION, name + '.xml')) as f:
        return Gio.DBusNodeInfo.new_for_xml(f.read()).lookup_interface(name)


class SmolvmError(Exception):
    def __init__(self, name, message):
        super().__init__(message)
        self.name = 'org.smolvm.Error.' + name


class MockSmolvmd:
    def __init__(self, address):
        self.vms = {}
        self.snapshots = []
        self.calls = []
        self.ready = threading.Event()
        self.address = address
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait()

    # -- plumbing --

    def _run(self):
        self.context = GLib.MainContext()
        self.context.push_thread_default()
        self.loop = GLib.MainLoop(self.context)
        flags = (Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
                 Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION)
        self.bus = Gio.DBusConnection.new_for_address_sync(self.address, flags, None, None)
        self.vm_info = interface_info('org.smolvm.VM')
        self.bus.register_object(MANAGER_PATH, interface_info('org.smolvm.Manager'),
                                 self._dispatch, None, None)
        self.bus.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus',
                           'org.freedesktop.DBus', 'RequestName',
                           GLib.Variant('(su)', ('org.smolvm.Manager', 4)), None,
                           Gio.DBusCallFlags.NONE, -1, None)
        self.ready.set()
        self.loop.run()
        self.bus.close_sync(None)

    def _dispatch(self, connection, sender, path, interface, method, params, invocation):
        args = params.unpack()
        interactive = bool(invocation.get_message().get_flags() &
                           Gio.DBusMessageFlags.ALLOW_INTERACTIVE_AUTHORIZATION)
        self.calls.append((method, path, args, interactive))
        try:
            if method not in ('ListVMs', 'ListSnapshots', 'GetVM', 'GetSnapshot') and not interactive:
                raise SmolvmError('NotAuthorized', 'Not authorized to do that')
            handler = getattr(self, interface.rsplit('.', 1)[1] + '_' + method)
            result = handler(path, *args)
            out = invocation.get_method_info().out_args
            signature = '(' + ''.join(a.signature for a in out) + ')'
            invocation.return_value(GLib.Variant(signature, (result,) if out else ()))
        except SmolvmError as e:
            invocation.return_dbus_error(e.name, str(e))

    def stop(self):
        if self.thread.is_alive():
            self.context.invoke_full(GLib.PRIORITY_DEFAULT, self.loop.quit)
            self.thread.join()

    # -- model --

    @staticmethod
    def vm_path(vm_id):
        return MANAGER_PATH + '/vm/' + Gio.dbus_escape_object_path(vm_id)

    @staticmethod
    def snapshot_path(snapshot_id):
        return MANAGER_PATH + '/snapshot/' + Gio.dbus_escape_object_path(snapshot_id)

    def add_vm(self, vm_id, state='running', guest_ip='172.16.0.2'):
        network = {'guest_ip': GLib.Variant('s', guest_ip)} if guest_ip else {}
        self.vms[vm_id] = {
            'vm_id': GLib.Variant('s', vm_id),
            'backend': GLib.Variant('s', 'firecracker'),
            'state': GLib.Variant('s', state),
            'pid': GLib.Variant('u', 4242),
            'vcpu_count': GLib.Variant('u', 2),
            'mem_size_mib': GLib.Variant('u', 512),
            'kernel_path': GLib.Variant('s', '/images/vmlinux'),
            'initrd_path': GLib.Variant('s', ''),
            'rootfs_path': GLib.Variant('s', '/images/rootfs.ext4'),
            'boot_args': GLib.Variant('s', 'console=ttyS0'),
            'network': GLib.Variant('b', bool(guest_ip)),
            'disk_path': GLib.Variant('s', '/var/lib/smolvm/vms/%s/disk.ext4' % vm_id),
            'console_log_path': GLib.Variant('s', '/var/lib/smolvm/vms/%s/console.log' % vm_id),
            'network_config': GLib.Variant('a{sv}', network),
        }
        self._in_mock_thread(self.bus.register_object, self.vm_path(vm_id), self.vm_info,
                             self._dispatch, None, None)

    def _in_mock_thread(self, func, *args):
        """Runs @func where the mock's objects live, and waits for it."""
        if threading.current_thread() is self.thread:
            func(*args)
            return
        done = threading.Event()

        def call():
            func(*args)
            done.set()
            return False
        self.context.invoke_full(GLib.PRIORITY_DEFAULT, call)
        done.wait()

    def add_snapshot(self, snapshot_id, vm_id, created_at, restored_vm_id=''):
        base = '/home/user/.local/state/smolvm/snapshots/' + snapshot_id
        self.snapshots.append({
            'snapshot_id': GLib.Variant('s', snapshot_id),
            'vm_id': GLib.Variant('s', vm_id),
            'snapshot_path': GLib.Variant('s', base + '/vmstate.bin'),
            'mem_file_path': GLib.Variant('s', base + '/mem.bin'),
            'disk_path': GLib.Variant('s', base + '/disk.ext4'),
            'vm_config': GLib.Variant('a{sv}', {}),
            'network_config': GLib.Variant('a{sv}', {}),
            'created_at': GLib.Variant('t', created_at),
            'restored': GLib.Variant('b', bool(restored_vm_id)),
            'restored_vm_id': GLib.Variant('s', restored_vm_id),
            'backend': GLib.Variant('s', 'firecracker'),
        })

    def find_snapshot(self, snapshot_id):
        for info in self.snapshots:
            if info['snapshot_id'].unpack() == snapshot_id:
                return info
        raise SmolvmError('NotFound', "Snapshot '%s' not found" % snapshot_id)

    def find_vm(self, path):
        for vm_id, info in self.vms.items():
            if self.vm_path(vm_id) == path:
                return info
        raise SmolvmError('NotFound', 'No such VM')

    def Manager_ListSnapshots(self, path, vm_id):
        return [(self.snapshot_path(s['snapshot_id'].unpack()), s) for s in self.snapshots
                if not vm_id or s['vm_id'].unpack() == vm_id]

    def Manager_CreateSnapshot(self, path, vm_id, snapshot_id, options):
        if vm_id not in self.vms:
            raise SmolvmError('NotFound', "VM '%s' not found" % vm_id)
        snapshot_id = snapshot_id or 'snap-%s-1775219400' % vm_id
        self.add_snapshot(snapshot_id, vm_id, usec(2026, 4, 3, 12, 30))
        state = 'running' if options.get('resume-source') else 'paused'
        self.vms[vm_id]['state'] = GLib.Variant('s', state)
        return self.snapshot_path(snapshot_id)

    def Manager_RestoreSnapshot(self, path, snapshot_id, options):
        info = self.find_snapshot(snapshot_id)
        vm_id = info['vm_id'].unpack()
        if info['restored'].unpack() and not options.get('force'):
            raise SmolvmError('AlreadyRestored',
                              "Snapshot '%s' was already restored; use force" % snapshot_id)
        info['restored'] = GLib.Variant('b', True)
        info['restored_vm_id'] = GLib.Variant('s', vm_id)
        if vm_id not in self.vms:
            self.add_vm(vm_id)
        self.vms[vm_id]['state'] = GLib.Variant('s', 'running' if options.get('resume') else 'paused')
        return self.vm_path(vm_id)

    def Manager_DeleteSnapshot(self, path, snapshot_id, options):
        self.snapshots.remove(self.find_snapshot(snapshot_id))

    def Manager_CreateVM(self, path, config):
        vm_id = config.get('vm_id') or 'vm-0000abcd'
        if vm_id in self.vms:
            raise SmolvmError('AlreadyExists', "VM '%s' already exists" % vm_id)
        self.add_vm(vm_id, state='created', guest_ip='')
        return self.vm_path(vm_id)

    def Manager_ListVMs(self, path):
        return [(self.vm_path(vm_id), self.vms[vm_id]) for vm_id in sorted(self.vms)]

    def Manager_GetVM(self, path, vm_id):
        if vm_id not in self.vms:
            raise SmolvmError('NotFound', "VM '%s' not found" % vm_id)
        return self.vm_path(vm_id)

    def _set_state(self, path, state):
        self.find_vm(path)['state'] = GLib.Variant('s', state)

    def VM_Start(self, path):
        self._set_state(path, 'running')

    def VM_Pause(self, path):
        self._set_state(path, 'paused')

    def VM_Resume(self, path):
        self._set_state(path, 'running')

    def VM_Stop(self, path, options):
        self._set_state(path, 'stopped')

    def VM_Delete(self, path, options):
        info = self.find_vm(path)
        if info['state'].unpack() in ('running', 'paused') and not options.get('force'):
            raise SmolvmError('InvalidState', 'VM is running')
        del self.vms[info['vm_id'].unpack()]


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

    def smolvm(self, *args, cwd=None):
        env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=self.address, LC_ALL='C.UTF-8')
        return subprocess.run([CLI, '--session'] + list(args), env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=30)

    def ok(self, *args, **kwargs):
        result = self.smolvm(*args, **kwargs)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, '')
        return result.stdout

    def ok_json(self, *args, **kwargs):
        envelope = json.loads(self.ok(*args, '--json', **kwargs))
        self.assertEqual(list(envelope), ['command', 'exit_code', 'data'])
        self.assertEqual(envelope['exit_code'], 0)
        return envelope

    def fails_json(self, exit_code, *args):
        result = self.smolvm(*args, '--json')
        self.assertEqual(result.returncode, exit_code)
        self.assertEqual(result.stderr, '')
        envelope = json.loads(result.stdout)
        self.assertEqual(list(envelope), ['command', 'exit_code', 'error'])
        self.assertEqual(envelope['exit_code'], exit_code)
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
        self.assertEqual(self.ok('snapshot', 'list'),
                         '  Snapshot ID        VM ID     Restored   Created At\n'
                         '\n'
                         'Total: 0 snapshot(s).\n')
        self.mock.add_snapshot('a-rather-long-snapshot-name', 'vm', usec(2026, 1, 1))
        lines = self.ok('snapshot', 'list').splitlines()
        self.assertEqual(lines[0].index('VM ID'), lines[1].index('vm '))

    def test_snapshot_list_json(self):
        self.spec_snapshots()
        envelope = self.ok_json('snapshot', 'list')
        self.assertEqual(envelope['command'], 'snapshot.list')
        self.assertEqual(envelope['data']['total'], 2)
        first, second = envelope['data']['snapshots']
        self.assertEqual(list(first), ['snapshot_id', 'vm_id', 'restored', 'restored_vm_id',
                                       'created_at', 'snapshot_path', 'mem_file_path', 'disk_path'])
        self.assertIsNone(first['restored_vm_id'])
        self.assertEqual(first['created_at'], '2026-04-03T12:30:00+00:00')
        self.assertEqual(second['restored'], True)
        self.assertEqual(second['restored_vm_id'], 'agent-1')

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

        # laid out exactly as in the CLI reference
        self.assertEqual(self.ok('snapshot', 'create', 'my-vm', '--snapshot-id', 'spec-snap',
                                 '--json'),
                         '{\n'
                         '  "command": "snapshot.create",\n'
                         '  "exit_code": 0,\n'
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
                         '  }\n'
                         '}\n')

        # a generated id is read back from smolvmd
        self.assertEqual(self.ok('snapshot', 'create', 'my-vm'),
                         "Created snapshot 'snap-my-vm-1775219400' from VM 'my-vm'.\n")

    def test_snapshot_create_errors(self):
        result = self.smolvm('snapshot', 'create', 'my-vm', '--snapshot-id', 'Not_Valid')
        self.assertEqual(result.returncode, 1)
        self.assertTrue(result.stderr.startswith("Error: Invalid snapshot id 'Not_Valid'"))
        self.assertEqual(self.mock.calls, [])

        error = self.fails_json(1, 'snapshot', 'create', 'no-such-vm')['error']
        self.assertEqual(error, {'name': 'NotFound', 'dbus_name': 'org.smolvm.Error.NotFound',
                                 'message': "VM 'no-such-vm' not found"})

    def test_snapshot_restore(self):
        self.spec_snapshots()
        self.assertEqual(self.ok('snapshot', 'restore', 'before-deploy', '--resume'),
                         "Restored snapshot 'before-deploy' into VM 'my-vm'.\n")
        envelope = self.fails_json(1, 'snapshot', 'restore', 'before-deploy')
        self.assertEqual(envelope['command'], 'snapshot.restore')
        self.assertEqual(envelope['error']['name'], 'AlreadyRestored')
        self.assertEqual(envelope['error']['dbus_name'], 'org.smolvm.Error.AlreadyRestored')

        result = self.smolvm('snapshot', 'restore', 'before-deploy')
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, '')
        self.assertEqual(result.stderr,
                         "Error: Snapshot 'before-deploy' was already restored; use force\n")

        data = self.ok_json('snapshot', 'restore', 'before-deploy', '--force')['data']
        self.assertEqual(list(data), ['snapshot', 'vm_id', 'vm_state'])
        self.assertEqual(data['vm_id'], 'my-vm')
        self.assertEqual(data['vm_state'], 'paused')
        self.assertEqual(data['snapshot']['restored'], True)
        self.assertEqual(data['snapshot']['restored_vm_id'], 'my-vm')
        self.assertEqual(self.mock.calls[-3][2], ('before-deploy', {'force': True}))

    def test_snapshot_delete(self):
        self.spec_snapshots()
        self.assertEqual(self.ok('snapshot', 'delete', 'before-deploy'),
                         "Deleted snapshot 'before-deploy'.\n")
        self.assertEqual(self.ok_json('snapshot', 'delete', 'pre-experiment')['data'],
                         {'snapshot_id': 'pre-experiment', 'deleted': True})
        result = self.smolvm('snapshot', 'delete', 'before-deploy')
        self.assertEqual((result.returncode, result.stderr),
                         (1, "Error: Snapshot 'before-deploy' not found\n"))

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
        out = self.ok('create', '--kernel', 'vmlinux', '--rootfs', 'img/rootfs.ext4',
                      '--vm-id', 'my-vm', '--vcpus', '4', '--no-network', '--start', cwd='/tmp')
        self.assertEqual(out, "Created VM 'my-vm'.\nStarted VM 'my-vm'.\n")
        config = [c for c in self.mock.calls if c[0] == 'CreateVM'][0][2][0]
        self.assertEqual(config, {'vm_id': 'my-vm', 'kernel_path': '/tmp/vmlinux',
                                  'rootfs_path': '/tmp/img/rootfs.ext4', 'vcpu_count': 4,
                                  'network': False})

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

        envelope = self.ok_json('create', '--kernel', '/k', '--rootfs', '/r')
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
        self.assertEqual((envelope['command'], envelope['error']['name']),
                         ('vm.delete', 'InvalidState'))
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
            self.assertEqual(self.fails_json(2, *args)['error']['name'], 'Usage')
        self.assertEqual(self.mock.calls, [])

    def test_not_running(self):
        self.mock.stop()
        result = self.smolvm('snapshot', 'list')
        self.assertEqual((result.returncode, result.stderr),
                         (1, 'Error: smolvmd is not running on the session bus '
                             '(org.smolvm.Manager)\n'))
        error = self.fails_json(1, 'list')['error']
        self.assertEqual(error['dbus_name'], 'org.freedesktop.DBus.Error.ServiceUnknown')


if __name__ == '__main__':
    unittest.main(verbosity=2)
