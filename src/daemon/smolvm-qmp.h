/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define SMOLVM_TYPE_QMP (smolvm_qmp_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmQmp, smolvm_qmp, SMOLVM, QMP, GObject)

/* An asynchronous QMP client on a QEMU monitor's Unix socket: the greeting,
 * capability negotiation, commands matched to their replies by id, and
 * events (signal "event": name, data object or NULL). Nothing blocks. */

void smolvm_qmp_connect_async (const gchar *socket_path, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data);
/* The same on a connection made already (a socket wait, a test's
 * socketpair); finishes with smolvm_qmp_connect_finish(). */
void smolvm_qmp_new_async (GSocketConnection *connection, GCancellable *cancellable,
                           GAsyncReadyCallback callback, gpointer user_data);
SmolvmQmp *smolvm_qmp_connect_finish (GAsyncResult *result, GError **error);

/* Sends @command with @arguments (a JSON object, or NULL). With @fd >= 0
 * the descriptor travels with the command over SCM_RIGHTS (for getfd /
 * add-fd). The result is the reply's "return" value; a QMP error becomes
 * SMOLVM_ERROR_BACKEND with QEMU's description. */
void smolvm_qmp_execute_async (SmolvmQmp *self, const gchar *command, JsonNode *arguments, int fd,
                               GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data);
JsonNode *smolvm_qmp_execute_finish (SmolvmQmp *self, GAsyncResult *result, GError **error);

/* Fails a command whose reply takes longer than @seconds (0: waits for
 * ever). Events, such as the end of a migration, are not bounded. */
void smolvm_qmp_set_timeout (SmolvmQmp *self, guint seconds);

/* Fails every pending command and stops reading. */
void smolvm_qmp_close (SmolvmQmp *self);

G_END_DECLS
