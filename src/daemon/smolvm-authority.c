/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "smolvm-authority.h"
#include "smolvm-error.h"

struct _SmolvmAuthority {
  GObject parent_instance;
  gboolean allow_all;
};

G_DEFINE_TYPE (SmolvmAuthority, smolvm_authority, G_TYPE_OBJECT)

static void
smolvm_authority_class_init (SmolvmAuthorityClass *klass)
{
}

static void
smolvm_authority_init (SmolvmAuthority *self)
{
}

SmolvmAuthority *
smolvm_authority_new (gboolean allow_all)
{
  SmolvmAuthority *self = g_object_new (SMOLVM_TYPE_AUTHORITY, NULL);
  self->allow_all = allow_all;
  return self;
}

static void
on_unix_user (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  const gchar *action_id = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result,
                                                             &error);
  guint32 uid;

  if (reply == NULL) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_NOT_AUTHORIZED,
                             "Cannot identify the caller for %s: %s", action_id, error->message);
    return;
  }
  g_variant_get (reply, "(u)", &uid);
  if (uid != 0) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_NOT_AUTHORIZED,
                             "Not authorized to perform %s: only root may change state", action_id);
    return;
  }
  g_task_return_boolean (task, TRUE);
}

void
smolvm_authority_check_async (SmolvmAuthority *self, GDBusMethodInvocation *invocation,
                              const gchar *action_id, const gchar *vm_id,
                              const gchar *snapshot_id, const gchar *verb,
                              GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new (self, NULL, callback, user_data);

  g_task_set_task_data (task, g_strdup (action_id), g_free);
  g_debug ("authorizing %s (verb=%s vm_id=%s snapshot_id=%s) for %s", action_id, verb,
           vm_id != NULL ? vm_id : "", snapshot_id != NULL ? snapshot_id : "",
           g_dbus_method_invocation_get_sender (invocation));
  if (self->allow_all) {
    g_task_return_boolean (task, TRUE);
    return;
  }
  g_dbus_connection_call (g_dbus_method_invocation_get_connection (invocation),
                          "org.freedesktop.DBus", "/org/freedesktop/DBus",
                          "org.freedesktop.DBus", "GetConnectionUnixUser",
                          g_variant_new ("(s)", g_dbus_method_invocation_get_sender (invocation)),
                          G_VARIANT_TYPE ("(u)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, on_unix_user,
                          g_steal_pointer (&task));
}

gboolean
smolvm_authority_check_finish (SmolvmAuthority *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}
