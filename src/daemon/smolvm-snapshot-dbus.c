/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "smolvm-ops.h"
#include "smolvm-snapshot-dbus.h"
#include "smolvm-snapshot.h"

static gboolean
handle_restore (SmolvmDbusSnapshot *object, GDBusMethodInvocation *invocation, GVariant *options)
{
  SmolvmSnapshot *snapshot = SMOLVM_SNAPSHOT (object);
  smolvm_op_snapshot_restore (smolvm_snapshot_get_context (snapshot), invocation,
                              smolvm_snapshot_get_id (snapshot), options);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_clone (SmolvmDbusSnapshot *object, GDBusMethodInvocation *invocation, GVariant *options)
{
  SmolvmSnapshot *snapshot = SMOLVM_SNAPSHOT (object);
  smolvm_op_snapshot_clone (smolvm_snapshot_get_context (snapshot), invocation,
                            smolvm_snapshot_get_id (snapshot), options);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_delete (SmolvmDbusSnapshot *object, GDBusMethodInvocation *invocation, GVariant *options)
{
  SmolvmSnapshot *snapshot = SMOLVM_SNAPSHOT (object);
  smolvm_op_snapshot_delete (smolvm_snapshot_get_context (snapshot), invocation,
                             smolvm_snapshot_get_id (snapshot), options);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_push (SmolvmDbusSnapshot *object, GDBusMethodInvocation *invocation,
             const gchar *reference, GVariant *options)
{
  SmolvmSnapshot *snapshot = SMOLVM_SNAPSHOT (object);
  smolvm_op_snapshot_push (smolvm_snapshot_get_context (snapshot), invocation,
                           smolvm_snapshot_get_id (snapshot), reference, options);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_export (SmolvmDbusSnapshot *object, GDBusMethodInvocation *invocation,
               GUnixFDList *fd_list, GVariant *fd, GVariant *options)
{
  SmolvmSnapshot *snapshot = SMOLVM_SNAPSHOT (object);
  smolvm_op_snapshot_export (smolvm_snapshot_get_context (snapshot), invocation,
                             smolvm_snapshot_get_id (snapshot), fd_list, fd, options);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

void
smolvm_snapshot_dbus_iface_init (SmolvmDbusSnapshotIface *iface)
{
  iface->handle_restore = handle_restore;
  iface->handle_clone = handle_clone;
  iface->handle_delete = handle_delete;
  iface->handle_push = handle_push;
  iface->handle_export = handle_export;
}
