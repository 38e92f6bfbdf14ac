# SPDX-License-Identifier: LGPL-2.1-or-later
"""A mock smolvmd for the CLI tests (test-cli-format.py, test-cli-jobs.py).

MockSmolvmd serves org.smolvm.Manager, org.smolvm.VM, org.smolvm.Job and
org.freedesktop.DBus.ObjectManager on a bus, from a thread of the test
process. It only models what the CLI relies on: the method signatures, the
SnapshotInfo and VM dictionaries, org.smolvm.Error.* replies, that
authorization needs the ALLOW_INTERACTIVE_AUTHORIZATION flag (as polkit with
an agent would), and Jobs: with a JobPlan set, the long methods
(CreateSnapshot, RestoreSnapshot, CloneSnapshot, CreateVM, VM.Delete) publish a Job under
the ObjectManager, step its properties on a timer (PropertiesChanged), and
reply at the end -- or, after Job.Cancel, fail with org.smolvm.Error.Cancelled
and change nothing.
"""

import os
import threading
import time
from datetime import datetime, timezone

from gi.repository import Gio, GLib

SRCDIR = os.path.dirname(os.path.abspath(__file__))
INTROSPECTION = os.path.join(SRCDIR, '..', 'introspection')

MANAGER_PATH = '/org/smolvm/Manager'
JOB_IFACE = 'org.smolvm.Job'
VM_IFACE = 'org.smolvm.VM'
OBJECT_MANAGER_XML = '''
<node>
  <interface name="org.freedesktop.DBus.ObjectManager">
    <method name="GetManagedObjects">
      <arg name="objects" type="a{oa{sa{sv}}}" direction="out"/>
    </method>
    <signal name="InterfacesAdded">
      <arg name="object" type="o"/>
      <arg name="interfaces" type="a{sa{sv}}"/>
    </signal>
    <signal name="InterfacesRemoved">
      <arg name="object" type="o"/>
      <arg name="interfaces" type="as"/>
    </signal>
  </interface>
</node>
'''
# Reads, and Job.Cancel by the job's own user, need no authorization.
NO_AUTH = ('ListVMs', 'ListSnapshots', 'GetVM', 'GetSnapshot', 'GetManagedObjects', 'Cancel')
MIB = 1024 * 1024


def usec(*args):
    return int(datetime(*args, tzinfo=timezone.utc).timestamp()) * 1000000


def interface_info(name):
    with open(os.path.join(INTROSPECTION, name + '.xml')) as f:
        return Gio.DBusNodeInfo.new_for_xml(f.read()).lookup_interface(name)


class SmolvmError(Exception):
    def __init__(self, name, message):
        super().__init__(message)
        self.name = 'org.smolvm.Error.' + name


def job_step(phase, done=0, total=0, valid=True, rate=0, left=0):
    """Job properties at one step: @left seconds to go when valid."""
    props = {
        'Phase': GLib.Variant('s', phase),
        'Progress': GLib.Variant('d', done / total if total else 0.0),
        'ProgressValid': GLib.Variant('b', valid),
        'BytesDone': GLib.Variant('t', done),
        'BytesTotal': GLib.Variant('t', total),
        'Rate': GLib.Variant('t', rate),
        # made absolute when the step is applied
        'ExpectedEndTime': ('left', left if valid else 0),
    }
    return props


# The steps of an ordinary long job: unmeasurable state saving, then a copy.
DEFAULT_STEPS = [
    job_step('authorizing', valid=False),
    job_step('saving-state', valid=False),
    job_step('copying-disk', 256 * MIB, 1024 * MIB, rate=128 * MIB, left=6),
    job_step('copying-disk', 512 * MIB, 1024 * MIB, rate=128 * MIB, left=4),
    job_step('copying-disk', 768 * MIB, 1024 * MIB, rate=128 * MIB, left=2),
    job_step('committing', 1024 * MIB, 1024 * MIB, rate=128 * MIB),
]


class JobPlan:
    """How the next long method call behaves.

    steps: property dicts applied one by one, @interval seconds apart; the
      method replies @interval after the last one. With hold=True it never
      replies by itself (only a Cancel ends it).
    job_delay: seconds between the call and the Job's appearance.
    uid: StartedByUid of the job.
    decoys: (operation, uid, objects) of other jobs published just before
      ours (each with phase 'decoy').
    cancel_message: the Cancelled error's message; None: Cancel is
      accepted but the work never stops.
    cancel_delay: seconds of rollback between Cancel and the error reply.
    """

    def __init__(self, steps=None, interval=0.15, job_delay=0.0, uid=None, decoys=(),
                 hold=False, cancel_message='Cancelled by the user', cancel_delay=0.2,
                 objects=None):
        self.steps = list(DEFAULT_STEPS if steps is None else steps)
        self.interval = interval
        self.job_delay = job_delay
        self.uid = os.getuid() if uid is None else uid
        self.decoys = list(decoys)
        self.hold = hold
        self.cancel_message = cancel_message
        self.cancel_delay = cancel_delay
        self.objects = objects


class MockJob:
    def __init__(self, mock, number, operation, objects, uid, phase=''):
        self.mock = mock
        self.number = number
        self.path = '%s/job/%d' % (MANAGER_PATH, number)
        self.props = {
            'Operation': GLib.Variant('s', operation),
            'Objects': GLib.Variant('ao', list(objects)),
            'Phase': GLib.Variant('s', phase),
            'Progress': GLib.Variant('d', 0.0),
            'ProgressValid': GLib.Variant('b', False),
            'BytesDone': GLib.Variant('t', 0),
            'BytesTotal': GLib.Variant('t', 0),
            'Rate': GLib.Variant('t', 0),
            'StartTime': GLib.Variant('t', int(time.time() * 1000000)),
            'ExpectedEndTime': GLib.Variant('t', 0),
            'StartedByUid': GLib.Variant('u', uid),
            'Cancelable': GLib.Variant('b', True),
        }
        self.cancel_requests = 0
        self.on_cancel = None  # set by the long operation that owns it
        self.registration = 0

    def update(self, props):
        props = dict(props)
        end = props.get('ExpectedEndTime')
        if isinstance(end, tuple):
            left = end[1]
            props['ExpectedEndTime'] = GLib.Variant(
                't', int((time.time() + left) * 1000000) if left else 0)
        self.props.update(props)
        self.mock.bus.emit_signal(
            None, self.path, 'org.freedesktop.DBus.Properties', 'PropertiesChanged',
            GLib.Variant('(sa{sv}as)', (JOB_IFACE, props, [])))


class LongOp:
    """A long method call in flight: its Job, its steps, its reply."""

    def __init__(self, mock, plan, invocation, operation, objects, finish):
        self.mock = mock
        self.plan = plan
        self.invocation = invocation
        self.operation = operation
        self.objects = objects
        self.finish = finish  # () -> the method's return value, or raises SmolvmError
        self.job = None
        self.step = 0
        self.cancelled = False
        self.done = False
        mock.later(plan.job_delay, self.publish)

    def publish(self):
        if self.done:
            return
        for operation, uid, objects in self.plan.decoys:
            self.mock.add_job(operation, objects, uid, phase='decoy')
        self.job = self.mock.add_job(self.operation, self.objects, self.plan.uid)
        self.job.on_cancel = self.cancel
        self.mock.later(self.plan.interval, self.tick)

    def tick(self):
        if self.done or self.cancelled:
            return
        if self.step < len(self.plan.steps):
            self.job.update(self.plan.steps[self.step])
            self.step += 1
            self.mock.later(self.plan.interval, self.tick)
            return
        if self.plan.hold:
            return
        try:
            result = self.finish()
        except SmolvmError as e:
            self.reply_error(e.name, str(e))
            return
        self.done = True
        out = self.invocation.get_method_info().out_args
        signature = '(' + ''.join(a.signature for a in out) + ')'
        self.invocation.return_value(GLib.Variant(signature, (result,) if out else ()))
        self.end(True, '')

    def cancel(self):
        if self.done or self.cancelled:
            return
        self.cancelled = True
        self.job.update({'Phase': GLib.Variant('s', 'cancelling'),
                         'Cancelable': GLib.Variant('b', False)})
        if self.plan.cancel_message is not None:
            self.mock.later(self.plan.cancel_delay, self.rolled_back)

    def rolled_back(self):
        self.reply_error('org.smolvm.Error.Cancelled', self.plan.cancel_message)

    def reply_error(self, name, message):
        self.done = True
        self.invocation.return_dbus_error(name, message)
        self.end(False, message)

    def end(self, success, message):
        self.mock.bus.emit_signal(None, self.job.path, JOB_IFACE, 'Completed',
                                  GLib.Variant('(bs)', (success, message)))
        self.mock.remove_job(self.job)


class MockSmolvmd:
    def __init__(self, address):
        self.vms = {}
        self.snapshots = []
        self.calls = []
        self.jobs = {}  # path -> MockJob
        self.job_events = []  # ('added'|'removed'|'cancel', path), in order
        self.next_job = 1
        self.plan = None  # a JobPlan: long methods publish Jobs
        self.clone_failures = {}  # vm_id -> why CloneSnapshot fails to make it
        self.vm_registrations = {}
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
        self.vm_info = interface_info(VM_IFACE)
        self.job_info = interface_info(JOB_IFACE)
        self.bus.register_object(MANAGER_PATH, interface_info('org.smolvm.Manager'),
                                 self._dispatch, None, None)
        self.om_registration = self.bus.register_object(
            MANAGER_PATH,
            Gio.DBusNodeInfo.new_for_xml(OBJECT_MANAGER_XML).lookup_interface(
                'org.freedesktop.DBus.ObjectManager'),
            self._dispatch, None, None)
        self.bus.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus',
                           'org.freedesktop.DBus', 'RequestName',
                           GLib.Variant('(su)', ('org.smolvm.Manager', 4)), None,
                           Gio.DBusCallFlags.NONE, -1, None)
        self.ready.set()
        self.loop.run()
        self.bus.close_sync(None)

    LONG = {'CreateSnapshot', 'RestoreSnapshot', 'CloneSnapshot', 'CreateVM', 'Delete'}

    @staticmethod
    def _resolve_fds(args, invocation):
        """Each descriptor of a CreateVM config as the file it is open on,
        so that tests see what the CLI passed."""
        fds = invocation.get_message().get_unix_fd_list()
        config = dict(args[0])
        for key, value in args[0].items():
            if key.endswith('-fd'):
                fd = fds.get(value)
                config[key] = os.readlink('/proc/self/fd/%d' % fd)
                os.close(fd)
        return (config,) + tuple(args[1:])

    # What libsmolvm-1 reads once, when the CLI connects.
    MANAGER_PROPERTIES = {'Version': GLib.Variant('s', '0.0-mock'),
                          'Backends': GLib.Variant('as', ['firecracker'])}

    def _properties(self, path, method, args, invocation):
        """Properties.Get and GetAll, which GDBus hands to _dispatch (there
        is no get_property handler); only the Manager's are modelled."""
        if path != MANAGER_PATH or args[0] != 'org.smolvm.Manager':
            invocation.return_dbus_error('org.freedesktop.DBus.Error.UnknownInterface',
                                         'No properties of %s at %s' % (args[0], path))
        elif method == 'GetAll':
            invocation.return_value(GLib.Variant('(a{sv})', (self.MANAGER_PROPERTIES,)))
        elif method == 'Get' and args[1] in self.MANAGER_PROPERTIES:
            invocation.return_value(GLib.Variant('(v)', (self.MANAGER_PROPERTIES[args[1]],)))
        else:
            invocation.return_dbus_error('org.freedesktop.DBus.Error.UnknownProperty',
                                         'No property %s' % (args[1:],))

    def _dispatch(self, connection, sender, path, interface, method, params, invocation):
        args = params.unpack()
        if interface == 'org.freedesktop.DBus.Properties':
            self._properties(path, method, args, invocation)
            return
        if method == 'CreateVM':
            args = self._resolve_fds(args, invocation)
        interactive = bool(invocation.get_message().get_flags() &
                           Gio.DBusMessageFlags.ALLOW_INTERACTIVE_AUTHORIZATION)
        self.calls.append((method, path, args, interactive))
        try:
            if method not in NO_AUTH and not interactive:
                raise SmolvmError('NotAuthorized', 'Not authorized to do that')
            handler = getattr(self, interface.rsplit('.', 1)[1] + '_' + method, None)
            if handler is None:
                # a reply all the same: without one the CLI would wait forever
                invocation.return_dbus_error('org.freedesktop.DBus.Error.UnknownMethod',
                                             'The mock has no %s.%s' % (interface, method))
                return
            if self.plan is not None and method in self.LONG and interface != JOB_IFACE:
                self._start_long(handler, path, args, invocation)
                return
            result = handler(path, *args)
            out = invocation.get_method_info().out_args
            signature = '(' + ''.join(a.signature for a in out) + ')'
            invocation.return_value(GLib.Variant(signature, (result,) if out else ()))
        except SmolvmError as e:
            invocation.return_dbus_error(e.name, str(e))

    def _start_long(self, handler, path, args, invocation):
        plan, self.plan = self.plan, None  # one call per plan
        if handler == self.Manager_CreateSnapshot:
            operation, objects = 'snapshot-create', [self.vm_path(args[0])]
        elif handler == self.Manager_RestoreSnapshot:
            info = self.find_snapshot(args[0])
            operation = 'snapshot-restore'
            objects = [self.snapshot_path(args[0]), self.vm_path(info['vm_id'].unpack())]
        elif handler == self.Manager_CloneSnapshot:
            # as smolvmd: the snapshot and every new VM, ids reserved first
            operation = 'snapshot-clone'
            objects = [self.snapshot_path(args[0])] + [
                self.vm_path(vm_id) for vm_id in self.clone_ids(args[0], args[1])]
        elif handler == self.Manager_CreateVM:
            operation = 'vm-create'
            objects = [self.vm_path(args[0].get('vm_id') or 'vm-0000abcd')]
        else:
            self.find_vm(path)
            operation, objects = 'vm-delete', [path]
        if plan.objects is not None:
            objects = plan.objects
        LongOp(self, plan, invocation, operation, objects, lambda: handler(path, *args))

    def stop(self):
        if self.thread.is_alive():
            self.context.invoke_full(GLib.PRIORITY_DEFAULT, self.loop.quit)
            self.thread.join()

    def later(self, seconds, func):
        """Runs @func in the mock's thread after @seconds."""
        source = GLib.timeout_source_new(int(seconds * 1000))
        source.set_callback(lambda *_: func() and False)
        source.attach(self.context)

    def _in_mock_thread(self, func, *args):
        """Runs @func where the mock's objects live, waits for it, returns its value."""
        if threading.current_thread() is self.thread:
            return func(*args)
        done = threading.Event()
        box = []

        def call():
            box.append(func(*args))
            done.set()
            return False
        self.context.invoke_full(GLib.PRIORITY_DEFAULT, call)
        done.wait()
        return box[0]

    # -- ObjectManager and jobs --

    def _managed_objects(self):
        objects = {self.vm_path(vm_id): {VM_IFACE: {'Id': info['vm_id'],
                                                    'State': info['state']}}
                   for vm_id, info in self.vms.items()}
        for job in self.jobs.values():
            objects[job.path] = {JOB_IFACE: dict(job.props)}
        return objects

    def ObjectManager_GetManagedObjects(self, path):
        return self._managed_objects()

    def _interfaces_added(self, path, interfaces):
        self.bus.emit_signal(None, MANAGER_PATH, 'org.freedesktop.DBus.ObjectManager',
                             'InterfacesAdded', GLib.Variant('(oa{sa{sv}})', (path, interfaces)))

    def add_job(self, operation, objects, uid=None, phase=''):
        """Publishes a Job (any thread); returns the MockJob."""
        return self._in_mock_thread(self._add_job, operation, objects,
                                    os.getuid() if uid is None else uid, phase)

    def _add_job(self, operation, objects, uid, phase):
        job = MockJob(self, self.next_job, operation, objects, uid, phase)
        self.next_job += 1
        job.registration = self.bus.register_object(job.path, self.job_info, self._dispatch,
                                                    None, None)
        self.jobs[job.path] = job
        self.job_events.append(('added', job.path))
        self._interfaces_added(job.path, {JOB_IFACE: dict(job.props)})
        return job

    def remove_job(self, job):
        self.bus.unregister_object(job.registration)
        del self.jobs[job.path]
        self.job_events.append(('removed', job.path))
        self.bus.emit_signal(None, MANAGER_PATH, 'org.freedesktop.DBus.ObjectManager',
                             'InterfacesRemoved', GLib.Variant('(oas)', (job.path, [JOB_IFACE])))

    def Job_Cancel(self, path, options):
        job = self.jobs.get(path)
        if job is None:
            raise SmolvmError('NotFound', 'No such job')
        if options:
            raise SmolvmError('InvalidArgument', 'Unknown option')
        if not job.props['Cancelable'].unpack():
            raise SmolvmError('InvalidState', 'The job is committing and cannot be cancelled')
        job.cancel_requests += 1
        self.job_events.append(('cancel', path))
        if job.on_cancel is not None:
            job.on_cancel()

    def cancels(self):
        return [path for event, path in self.job_events if event == 'cancel']

    # -- model --

    @staticmethod
    def vm_path(vm_id):
        return MANAGER_PATH + '/vm/' + Gio.dbus_escape_object_path(vm_id)

    @staticmethod
    def snapshot_path(snapshot_id):
        return MANAGER_PATH + '/snapshot/' + Gio.dbus_escape_object_path(snapshot_id)

    def add_vm(self, vm_id, state='running', guest_ip='172.16.0.2', cloned_from=None):
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
            'accel': GLib.Variant('s', 'auto'),
            'machine': GLib.Variant('s', ''),
            'disk_path': GLib.Variant('s', '/var/lib/smolvm/vms/%s/disk.ext4' % vm_id),
            'console_log_path': GLib.Variant('s', '/var/lib/smolvm/vms/%s/console.log' % vm_id),
            'network_config': GLib.Variant('a{sv}', network),
            'restored_from': GLib.Variant('s', ''),
        }
        # only on clones: the VMs of an older smolvmd have no such key
        if cloned_from is not None:
            self.vms[vm_id]['cloned_from'] = GLib.Variant('s', cloned_from)
        self._in_mock_thread(self._export_vm, vm_id)

    def _export_vm(self, vm_id):
        path = self.vm_path(vm_id)
        if path not in self.vm_registrations:  # a VM deleted and made again
            self.vm_registrations[path] = self.bus.register_object(path, self.vm_info,
                                                                   self._dispatch, None, None)
        self._interfaces_added(path, {VM_IFACE: {'Id': GLib.Variant('s', vm_id),
                                                 'State': self.vms[vm_id]['state']}})

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

    def snapshot_ids(self):
        return [s['snapshot_id'].unpack() for s in self.snapshots]

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

    def Manager_GetSnapshot(self, path, snapshot_id):
        self.find_snapshot(snapshot_id)
        return self.snapshot_path(snapshot_id)

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

    def clone_ids(self, snapshot_id, options):
        """The new VMs' ids of a CloneSnapshot, checked as smolvmd does."""
        vm_id = self.find_snapshot(snapshot_id)['vm_id'].unpack()
        unknown = set(options) - {'count', 'vm-ids', 'resume', 'network'}
        if unknown:
            raise SmolvmError('InvalidArgument', 'Unknown option %s' % sorted(unknown)[0])
        if options.get('network'):
            raise SmolvmError('Unsupported', 'Clones with networking are not supported yet')
        ids = options.get('vm-ids')
        count = options.get('count', len(ids) if ids else 1)
        if ids and count != len(ids):
            raise SmolvmError('InvalidArgument',
                              'count is %d, but vm-ids names %d VMs' % (count, len(ids)))
        if not 1 <= count <= 64:
            raise SmolvmError('InvalidArgument',
                              'count must be between 1 and 64, not %d' % count)
        if not ids:
            ids, n = [], 1
            while len(ids) < count:
                if '%s-%d' % (vm_id, n) not in self.vms:
                    ids.append('%s-%d' % (vm_id, n))
                n += 1
        for new in ids:
            if new in self.vms:
                raise SmolvmError('AlreadyExists', "VM '%s' already exists" % new)
        return ids

    def Manager_CloneSnapshot(self, path, snapshot_id, options):
        made, failed = [], ''
        ids = self.clone_ids(snapshot_id, options)
        for vm_id in ids:
            if vm_id in self.clone_failures:
                failed += "; VM '%s': %s" % (vm_id, self.clone_failures[vm_id])
                continue
            self.add_vm(vm_id, state='running' if options.get('resume') else 'paused',
                        guest_ip='', cloned_from=snapshot_id)
            made.append(vm_id)
        if failed:
            kept = " (%s, kept)" % ', '.join("'%s'" % i for i in made) if made else ''
            raise SmolvmError('Failed', "Cloned snapshot '%s' into %d of %d VMs%s%s" % (
                snapshot_id, len(made), len(ids), kept, failed))
        return [self.vm_path(vm_id) for vm_id in made]

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
