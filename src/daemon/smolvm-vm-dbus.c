/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "smolvm-ops.h"
#include "smolvm-vm-dbus.h"
#include "smolvm-vm.h"

static gboolean
handle_start (SmolvmDbusVm *object, GDBusMethodInvocation *invocation)
{
  smolvm_op_vm_lifecycle (SMOLVM_VM (object), invocation, "start", NULL);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_pause (SmolvmDbusVm *object, GDBusMethodInvocation *invocation)
{
  smolvm_op_vm_lifecycle (SMOLVM_VM (object), invocation, "pause", NULL);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_resume (SmolvmDbusVm *object, GDBusMethodInvocation *invocation)
{
  smolvm_op_vm_lifecycle (SMOLVM_VM (object), invocation, "resume", NULL);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_stop (SmolvmDbusVm *object, GDBusMethodInvocation *invocation, GVariant *options)
{
  smolvm_op_vm_lifecycle (SMOLVM_VM (object), invocation, "stop", options);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_delete (SmolvmDbusVm *object, GDBusMethodInvocation *invocation, GVariant *options)
{
  smolvm_op_vm_delete (SMOLVM_VM (object), invocation, options);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_create_snapshot (SmolvmDbusVm *object, GDBusMethodInvocation *invocation,
                        const gchar *snapshot_id, GVariant *options)
{
  SmolvmVm *vm = SMOLVM_VM (object);
  smolvm_op_snapshot_create (smolvm_vm_get_context (vm), invocation, smolvm_vm_get_id (vm), vm,
                             snapshot_id, options);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_open_console_log (SmolvmDbusVm *object, GDBusMethodInvocation *invocation,
                         GUnixFDList *fd_list, GVariant *options)
{
  smolvm_op_vm_console (SMOLVM_VM (object), invocation, options);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

void
smolvm_vm_dbus_iface_init (SmolvmDbusVmIface *iface)
{
  iface->handle_open_console_log = handle_open_console_log;
  iface->handle_start = handle_start;
  iface->handle_pause = handle_pause;
  iface->handle_resume = handle_resume;
  iface->handle_stop = handle_stop;
  iface->handle_delete = handle_delete;
  iface->handle_create_snapshot = handle_create_snapshot;
}
