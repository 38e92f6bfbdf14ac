/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#if HAVE_POLKIT
#include <polkit/polkit.h>
#endif

#include "smolvm-authority.h"
#include "smolvm-error.h"

struct _SmolvmAuthority {
  GObject parent_instance;
  gboolean allow_all;
  gboolean warned_unreachable; /* warned about it; cleared once polkit answers */
#if HAVE_POLKIT
  PolkitAuthority *polkit; /* NULL until the first check */
#endif
};

G_DEFINE_TYPE (SmolvmAuthority, smolvm_authority, G_TYPE_OBJECT)

static void
smolvm_authority_finalize (GObject *object)
{
#if HAVE_POLKIT
  g_clear_object (&SMOLVM_AUTHORITY (object)->polkit);
#endif
  G_OBJECT_CLASS (smolvm_authority_parent_class)->finalize (object);
}

static void
smolvm_authority_class_init (SmolvmAuthorityClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = smolvm_authority_finalize;
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

typedef struct {
  GDBusMethodInvocation *invocation;
  gboolean interactive; /* the caller allows interactive authorization */
  gchar *action_id;
  gchar *vm_id;
  gchar *snapshot_id;
  gchar *verb;
} Check;

static void
check_free (Check *check)
{
  g_object_unref (check->invocation);
  g_free (check->action_id);
  g_free (check->vm_id);
  g_free (check->snapshot_id);
  g_free (check->verb);
  g_free (check);
}

/* ---- the caller's uid ---- */

/* The uids the bus gave, by unique name, kept on the connection: a unique
 * name is never given to another connection, and a connection's uid never
 * changes, so an answer stays true; the table is only emptied when it grows
 * (names of callers gone). Saves a bus round trip on each call. */
#define UID_CACHE_KEY "smolvm-caller-uids"
#define UID_CACHE_MAX 256

static GHashTable *
uid_cache (GDBusConnection *connection)
{
  GHashTable *cache = g_object_get_data (G_OBJECT (connection), UID_CACHE_KEY);

  if (cache == NULL) {
    cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
    g_object_set_data_full (G_OBJECT (connection), UID_CACHE_KEY, cache,
                            (GDestroyNotify) g_hash_table_unref);
  }
  return cache;
}

static void
on_connection_unix_user (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply =
    g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &error);
  GHashTable *cache = uid_cache (G_DBUS_CONNECTION (source));
  const gchar *sender = g_task_get_task_data (task);
  guint32 uid;

  if (reply == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_variant_get (reply, "(u)", &uid);
  if (sender != NULL) {
    if (g_hash_table_size (cache) >= UID_CACHE_MAX)
      g_hash_table_remove_all (cache);
    g_hash_table_insert (cache, g_strdup (sender), g_memdup2 (&uid, sizeof uid));
  }
  g_task_return_int (task, uid);
}

void
smolvm_authority_get_caller_uid_async (GDBusMethodInvocation *invocation,
                                       GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (NULL, NULL, callback, user_data);
  GDBusConnection *connection = g_dbus_method_invocation_get_connection (invocation);
  const gchar *sender = g_dbus_method_invocation_get_sender (invocation);
  const guint32 *known = sender != NULL ? g_hash_table_lookup (uid_cache (connection), sender)
                                        : NULL;

  if (known != NULL) {
    g_task_return_int (task, *known);
    g_object_unref (task);
    return;
  }
  g_task_set_task_data (task, g_strdup (sender), g_free);
  g_dbus_connection_call (g_dbus_method_invocation_get_connection (invocation),
                          "org.freedesktop.DBus", "/org/freedesktop/DBus",
                          "org.freedesktop.DBus", "GetConnectionUnixUser",
                          g_variant_new ("(s)", g_dbus_method_invocation_get_sender (invocation)),
                          G_VARIANT_TYPE ("(u)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL,
                          on_connection_unix_user, task);
}

gboolean
smolvm_authority_get_caller_uid_finish (GAsyncResult *result, guint32 *uid, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  gssize value = g_task_propagate_int (G_TASK (result), &local_error);

  if (local_error != NULL) {
    g_propagate_error (error, g_steal_pointer (&local_error));
    return FALSE;
  }
  *uid = (guint32) value;
  return TRUE;
}

/* ---- without polkit: root only ---- */

static void
on_unix_user (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  Check *check = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  guint32 uid;

  if (!smolvm_authority_get_caller_uid_finish (result, &uid, &error)) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_NOT_AUTHORIZED,
                             "Not authorized to perform %s: cannot identify the caller: %s",
                             check->action_id, error->message);
    return;
  }
  if (uid != 0) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_NOT_AUTHORIZED,
                             "Not authorized to perform %s: polkit is not available, so only "
                             "root may change state",
                             check->action_id);
    return;
  }
  g_task_return_boolean (task, TRUE);
}

static void
check_uid_zero (GTask *task)
{
  Check *check = g_task_get_task_data (task);
  smolvm_authority_get_caller_uid_async (check->invocation, on_unix_user, task);
}

#if HAVE_POLKIT

/* An error that polkitd itself answered (org.freedesktop.PolicyKit1.Error.*,
 * e.g. an unknown action) is polkit refusing. Every other error means that
 * polkit could not be reached at all: not installed, not running and not
 * activatable, its unit masked (systemd's org.freedesktop.systemd1.UnitMasked,
 * passed on by the bus), activation failed or timed out, no reply. */
static gboolean
polkit_answered (const GError *error)
{
  return error->domain == POLKIT_ERROR;
}

/* Handled like polkit's absence: root only. Said once, not per call, until
 * polkit answers again. */
static void
polkit_unreachable (GTask *task, const GError *error)
{
  SmolvmAuthority *self = g_task_get_source_object (task);
  g_autoptr(GError) copy = g_error_copy (error);

  if (!self->warned_unreachable) {
    g_dbus_error_strip_remote_error (copy);
    g_warning ("Cannot reach polkit (%s); until it answers, only root may change state",
               copy->message);
    self->warned_unreachable = TRUE;
  }
  check_uid_zero (task);
}

static void
polkit_reachable (SmolvmAuthority *self)
{
  if (self->warned_unreachable)
    g_message ("polkit answers again; it decides every authorization");
  self->warned_unreachable = FALSE;
}

static void
on_polkit_checked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Check *check = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  g_autoptr(PolkitAuthorizationResult) answer =
    polkit_authority_check_authorization_finish (POLKIT_AUTHORITY (source), result, &error);

  if (answer == NULL) {
    if (!polkit_answered (error)) {
      polkit_unreachable (task, error);
      return;
    }
    polkit_reachable (g_task_get_source_object (task));
    g_dbus_error_strip_remote_error (error);
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_NOT_AUTHORIZED,
                             "Not authorized to perform %s: polkit failed: %s", check->action_id,
                             error->message);
    g_object_unref (task);
    return;
  }
  polkit_reachable (g_task_get_source_object (task));
  if (polkit_authorization_result_get_is_authorized (answer)) {
    g_task_return_boolean (task, TRUE);
  } else if (polkit_authorization_result_get_dismissed (answer)) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_AUTHORIZATION_DISMISSED,
                             "Authorization for %s was dismissed", check->action_id);
  } else if (polkit_authorization_result_get_is_challenge (answer) && check->interactive) {
    /* polkitd asks through an agent when the caller allows it; a challenge
     * despite that means that no agent was there to ask */
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_NOT_AUTHORIZED,
                             "Not authorized to perform %s: authentication is required, but no "
                             "polkit authentication agent could ask for a password (run smolvm "
                             "on a terminal, where it starts pkttyagent, or start an agent for "
                             "your session)",
                             check->action_id);
  } else if (polkit_authorization_result_get_is_challenge (answer)) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_NOT_AUTHORIZED,
                             "Not authorized to perform %s: authentication is required; call "
                             "with interactive authorization allowed (smolvm asks for a password "
                             "unless --no-ask-password)",
                             check->action_id);
  } else {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_NOT_AUTHORIZED,
                             "Not authorized to perform %s", check->action_id);
  }
  g_object_unref (task);
}

static void
ask_polkit (GTask *task)
{
  SmolvmAuthority *self = g_task_get_source_object (task);
  Check *check = g_task_get_task_data (task);
  g_autoptr(PolkitSubject) subject =
    polkit_system_bus_name_new (g_dbus_method_invocation_get_sender (check->invocation));
  g_autoptr(PolkitDetails) details = polkit_details_new ();
  GDBusMessage *message = g_dbus_method_invocation_get_message (check->invocation);
  PolkitCheckAuthorizationFlags flags = POLKIT_CHECK_AUTHORIZATION_FLAGS_NONE;

  check->interactive = (g_dbus_message_get_flags (message) &
                        G_DBUS_MESSAGE_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION) != 0;
  if (check->interactive)
    flags |= POLKIT_CHECK_AUTHORIZATION_FLAGS_ALLOW_USER_INTERACTION;
  if (check->vm_id != NULL && check->vm_id[0] != '\0')
    polkit_details_insert (details, "vm_id", check->vm_id);
  if (check->snapshot_id != NULL && check->snapshot_id[0] != '\0')
    polkit_details_insert (details, "snapshot_id", check->snapshot_id);
  if (check->verb != NULL)
    polkit_details_insert (details, "verb", check->verb);
  polkit_authority_check_authorization (self->polkit, subject, check->action_id, details, flags,
                                        NULL, on_polkit_checked, task);
}

static void
on_polkit_authority (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmAuthority *self = g_task_get_source_object (task);
  g_autoptr(GError) error = NULL;
  PolkitAuthority *authority = polkit_authority_get_finish (result, &error);

  if (authority == NULL) {
    polkit_unreachable (task, error);
    return;
  }
  if (self->polkit == NULL)
    self->polkit = authority;
  else
    g_object_unref (authority);
  ask_polkit (task);
}

#endif /* HAVE_POLKIT */

void
smolvm_authority_check_async (SmolvmAuthority *self, GDBusMethodInvocation *invocation,
                              const gchar *action_id, const gchar *vm_id,
                              const gchar *snapshot_id, const gchar *verb,
                              GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, NULL, callback, user_data);
  Check *check = g_new0 (Check, 1);

  check->invocation = g_object_ref (invocation);
  check->action_id = g_strdup (action_id);
  check->vm_id = g_strdup (vm_id);
  check->snapshot_id = g_strdup (snapshot_id);
  check->verb = g_strdup (verb);
  g_task_set_task_data (task, check, (GDestroyNotify) check_free);
  g_debug ("authorizing %s (verb=%s vm_id=%s snapshot_id=%s) for %s", action_id, verb,
           vm_id != NULL ? vm_id : "", snapshot_id != NULL ? snapshot_id : "",
           g_dbus_method_invocation_get_sender (invocation));

  if (self->allow_all) {
    g_task_return_boolean (task, TRUE);
    g_object_unref (task);
    return;
  }
#if HAVE_POLKIT
  if (self->polkit != NULL)
    ask_polkit (task);
  else
    polkit_authority_get_async (NULL, on_polkit_authority, task);
#else
  check_uid_zero (task);
#endif
}

gboolean
smolvm_authority_check_finish (SmolvmAuthority *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}
