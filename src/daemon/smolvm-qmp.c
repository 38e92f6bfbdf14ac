/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include <gio/gunixfdmessage.h>
#include <gio/gunixsocketaddress.h>

#include "smolvm-error.h"
#include "smolvm-json.h"
#include "smolvm-qmp.h"

struct _SmolvmQmp {
  GObject parent_instance;
  GSocketConnection *connection;
  GDataInputStream *input;
  GCancellable *cancellable; /* of the read loop */
  GHashTable *pending;       /* id -> GTask */
  GQueue outgoing;           /* Outgoing, sent one at a time */
  gboolean sending;
  guint64 next_id;
  GTask *greeting;           /* the connect task, until capabilities are negotiated */
  guint timeout_s;           /* for a reply; 0: none */
};

G_DEFINE_TYPE (SmolvmQmp, smolvm_qmp, G_TYPE_OBJECT)

enum { SIGNAL_EVENT, SIGNAL_CLOSED, N_SIGNALS };
static guint signals[N_SIGNALS];

typedef struct {
  gchar *text;
  int fd; /* -1, or a descriptor we own until it is sent */
  gchar *id;
} Outgoing;

static void
outgoing_free (Outgoing *out)
{
  g_free (out->text);
  g_free (out->id);
  if (out->fd >= 0)
    close (out->fd);
  g_free (out);
}

/* Removes the command @id from the pending table and hands its task to
 * the caller (NULL if none: answered, timed out, or not ours). */
static GTask *
take_pending (SmolvmQmp *self, const gchar *id)
{
  g_autofree gchar *key = NULL;
  GTask *task = NULL;

  if (id == NULL ||
      !g_hash_table_steal_extended (self->pending, id, (gpointer *) &key, (gpointer *) &task))
    return NULL;
  return task;
}

static void fail_all (SmolvmQmp *self, const GError *error);

static void
smolvm_qmp_dispose (GObject *object)
{
  SmolvmQmp *self = SMOLVM_QMP (object);
  smolvm_qmp_close (self);
  G_OBJECT_CLASS (smolvm_qmp_parent_class)->dispose (object);
}

static void
smolvm_qmp_finalize (GObject *object)
{
  SmolvmQmp *self = SMOLVM_QMP (object);
  g_hash_table_unref (self->pending);
  g_queue_clear_full (&self->outgoing, (GDestroyNotify) outgoing_free);
  g_clear_object (&self->input);
  g_clear_object (&self->connection);
  g_clear_object (&self->cancellable);
  G_OBJECT_CLASS (smolvm_qmp_parent_class)->finalize (object);
}

static void
smolvm_qmp_class_init (SmolvmQmpClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  object_class->dispose = smolvm_qmp_dispose;
  object_class->finalize = smolvm_qmp_finalize;

  signals[SIGNAL_EVENT] =
    g_signal_new ("event", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_STRING, JSON_TYPE_NODE);
  /* the monitor connection ended (QEMU exited) */
  signals[SIGNAL_CLOSED] = g_signal_new ("closed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                         NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
smolvm_qmp_init (SmolvmQmp *self)
{
  self->pending = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->cancellable = g_cancellable_new ();
  g_queue_init (&self->outgoing);
}

static void
fail_all (SmolvmQmp *self, const GError *error)
{
  g_autoptr(GHashTable) pending = g_steal_pointer (&self->pending);
  GHashTableIter iter;
  gpointer task;

  /* a fresh table first: a callback may issue a new command; the old one
   * frees the ids and drops our task references as it goes */
  self->pending = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  g_hash_table_iter_init (&iter, pending);
  while (g_hash_table_iter_next (&iter, NULL, &task))
    g_task_return_error (task, g_error_copy (error));
  if (self->greeting != NULL) {
    GTask *greeting = g_steal_pointer (&self->greeting);
    g_task_return_error (greeting, g_error_copy (error));
    g_object_unref (greeting);
  }
}

void
smolvm_qmp_close (SmolvmQmp *self)
{
  g_autoptr(GError) error =
    g_error_new_literal (SMOLVM_ERROR, SMOLVM_ERROR_BACKEND, "The QEMU monitor connection closed");
  g_cancellable_cancel (self->cancellable);
  fail_all (self, error);
  if (self->connection != NULL)
    g_io_stream_close (G_IO_STREAM (self->connection), NULL, NULL);
}

/* ---- writing ---- */

static void send_next (SmolvmQmp *self);

static gboolean
on_socket_writable (GSocket *socket, GIOCondition condition, gpointer user_data)
{
  SmolvmQmp *self = user_data;
  send_next (self);
  g_object_unref (self);
  return G_SOURCE_REMOVE;
}

/* One command at a time, as one sendmsg, so an fd always arrives with its
 * own command. */
static void
send_next (SmolvmQmp *self)
{
  Outgoing *out = g_queue_peek_head (&self->outgoing);
  GSocket *socket;
  GOutputVector vector;
  g_autoptr(GSocketControlMessage) fd_message = NULL;
  GSocketControlMessage *messages[1];
  g_autoptr(GError) error = NULL;
  gssize sent;
  gsize len;

  self->sending = FALSE;
  if (out == NULL || g_cancellable_is_cancelled (self->cancellable))
    return;
  socket = g_socket_connection_get_socket (self->connection);
  len = strlen (out->text);
  vector.buffer = out->text;
  vector.size = len;
  if (out->fd >= 0) {
    fd_message = g_unix_fd_message_new ();
    messages[0] = fd_message;
    g_unix_fd_message_append_fd (G_UNIX_FD_MESSAGE (fd_message), out->fd, &error);
  }
  sent = error != NULL ? -1
                       : g_socket_send_message (socket, NULL, &vector, 1,
                                                fd_message != NULL ? messages : NULL,
                                                fd_message != NULL ? 1 : 0, 0, NULL, &error);
  if (sent < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
    g_autoptr(GSource) source = g_socket_create_source (socket, G_IO_OUT, NULL);
    self->sending = TRUE;
    g_source_set_callback (source, G_SOURCE_FUNC (on_socket_writable), g_object_ref (self), NULL);
    g_source_attach (source, NULL);
    return;
  }
  g_queue_pop_head (&self->outgoing);
  if (sent < 0 || (gsize) sent != len) {
    g_autoptr(GTask) task = take_pending (self, out->id);
    if (task != NULL)
      g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                               "Cannot send a QMP command: %s",
                               error != NULL ? error->message : "short write");
  }
  outgoing_free (out);
  send_next (self);
}

/* A reply's deadline, kept as its task's data: it goes with the task. */
typedef struct {
  SmolvmQmp *qmp; /* the task's source object, alive as long as the task */
  gchar *id;
  gchar *command;
  guint timeout;
} Deadline;

static void
deadline_free (Deadline *deadline)
{
  if (deadline->timeout != 0)
    g_source_remove (deadline->timeout);
  g_free (deadline->id);
  g_free (deadline->command);
  g_free (deadline);
}

static gboolean
on_deadline (gpointer user_data)
{
  Deadline *deadline = user_data;
  GTask *task;

  deadline->timeout = 0;
  task = take_pending (deadline->qmp, deadline->id);
  if (task != NULL) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                             "QEMU did not answer '%s' within %u s", deadline->command,
                             deadline->qmp->timeout_s);
    g_object_unref (task); /* frees @deadline */
  }
  return G_SOURCE_REMOVE;
}

void
smolvm_qmp_set_timeout (SmolvmQmp *self, guint seconds)
{
  self->timeout_s = seconds;
}

static void
queue_command (SmolvmQmp *self, const gchar *command, JsonNode *arguments, int fd, GTask *task)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree gchar *json = NULL;
  Outgoing *out = g_new0 (Outgoing, 1);

  out->id = g_strdup_printf ("smolvm-%" G_GUINT64_FORMAT, ++self->next_id);
  out->fd = fd;
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "execute");
  json_builder_add_string_value (b, command);
  if (arguments != NULL) {
    json_builder_set_member_name (b, "arguments");
    json_builder_add_value (b, json_node_copy (arguments));
  }
  json_builder_set_member_name (b, "id");
  json_builder_add_string_value (b, out->id);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json = json_to_string (root, FALSE);
  out->text = g_strconcat (json, "\n", NULL);
  if (self->timeout_s > 0 && g_task_get_task_data (task) == NULL) {
    Deadline *deadline = g_new0 (Deadline, 1);
    deadline->qmp = self;
    deadline->id = g_strdup (out->id);
    deadline->command = g_strdup (command);
    deadline->timeout = g_timeout_add_seconds (self->timeout_s, on_deadline, deadline);
    g_task_set_task_data (task, deadline, (GDestroyNotify) deadline_free);
  }
  g_hash_table_insert (self->pending, g_strdup (out->id), task);
  g_queue_push_tail (&self->outgoing, out);
  if (!self->sending)
    send_next (self);
}

/* ---- reading ---- */

static void read_next (SmolvmQmp *self);

/* The string member @key of a peer's message, or NULL when it is missing
 * or of another type: a message of the wrong shape is not ours, never a
 * CRITICAL. */
static const gchar *
member_string (JsonObject *object, const gchar *key)
{
  JsonNode *node = object != NULL ? json_object_get_member (object, key) : NULL;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

static void
handle_reply (SmolvmQmp *self, JsonObject *msg)
{
  g_autoptr(GTask) task = take_pending (self, member_string (msg, "id"));

  if (task == NULL)
    return; /* not ours, or its caller is gone */
  if (json_object_has_member (msg, "error")) {
    JsonNode *error_node = json_object_get_member (msg, "error");
    JsonObject *error = JSON_NODE_HOLDS_OBJECT (error_node) ? json_node_get_object (error_node)
                                                            : NULL;
    const gchar *desc = member_string (error, "desc");
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND, "QEMU: %s",
                             desc != NULL ? desc : "unknown");
  } else {
    JsonNode *value = json_object_get_member (msg, "return");
    g_task_return_pointer (task, value != NULL ? json_node_copy (value) : NULL,
                           (GDestroyNotify) json_node_unref);
  }
}

static void
on_capabilities (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmQmp *self = SMOLVM_QMP (source);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value G_GNUC_UNUSED = smolvm_qmp_execute_finish (self, result, &error);
  GTask *greeting = g_steal_pointer (&self->greeting);

  if (greeting == NULL)
    return;
  if (error != NULL)
    g_task_return_error (greeting, g_steal_pointer (&error));
  else
    g_task_return_pointer (greeting, g_object_ref (self), g_object_unref);
  g_object_unref (greeting);
}

static void
handle_line (SmolvmQmp *self, const gchar *line)
{
  g_autoptr(JsonNode) root = smolvm_json_parse_object (line, -1, NULL);
  JsonObject *msg;

  if (root == NULL) {
    g_warning ("Ignoring a malformed QMP message: %s", line);
    return;
  }
  msg = json_node_get_object (root);
  if (json_object_has_member (msg, "QMP")) {
    /* the greeting: negotiate before anything else may be sent */
    GTask *task = g_task_new (self, NULL, on_capabilities, NULL);
    queue_command (self, "qmp_capabilities", NULL, -1, task);
  } else if (json_object_has_member (msg, "event")) {
    const gchar *name = member_string (msg, "event");
    JsonNode *data = json_object_get_member (msg, "data");
    if (name == NULL) {
      g_warning ("Ignoring a QMP event without a name: %s", line);
      return;
    }
    g_debug ("QMP event %s", name);
    g_signal_emit (self, signals[SIGNAL_EVENT], 0, name, data);
  } else {
    handle_reply (self, msg);
  }
}

static void
on_line (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SmolvmQmp) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *line =
    g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source), result, NULL, &error);

  if (line == NULL) {
    if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
      return;
    if (error == NULL)
      error = g_error_new_literal (SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                                   "QEMU closed its monitor connection");
    g_cancellable_cancel (self->cancellable);
    fail_all (self, error);
    g_signal_emit (self, signals[SIGNAL_CLOSED], 0);
    return;
  }
  handle_line (self, line);
  read_next (self);
}

static void
read_next (SmolvmQmp *self)
{
  g_data_input_stream_read_line_async (self->input, G_PRIORITY_DEFAULT, self->cancellable,
                                       on_line, g_object_ref (self));
}

/* Reads the greeting and negotiates on @connection; the task completes
 * with the client once capabilities are agreed. */
static void
start (GSocketConnection *connection, GTask *task)
{
  g_autoptr(SmolvmQmp) self = g_object_new (SMOLVM_TYPE_QMP, NULL);

  self->connection = g_object_ref (connection);
  g_socket_set_blocking (g_socket_connection_get_socket (connection), FALSE);
  self->input = g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (connection)));
  g_data_input_stream_set_newline_type (self->input, G_DATA_STREAM_NEWLINE_TYPE_ANY);
  self->greeting = task;
  read_next (self);
}

static void
on_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketConnection) connection =
    g_socket_client_connect_finish (G_SOCKET_CLIENT (source), result, &error);

  if (connection == NULL) {
    /* keeps GIO's code: a refused connection may be worth another try */
    g_prefix_error (&error, "Cannot connect to the QEMU monitor: ");
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  start (connection, g_steal_pointer (&task));
}

void
smolvm_qmp_connect_async (const gchar *socket_path, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, user_data);
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new (socket_path);

  g_socket_client_connect_async (client, G_SOCKET_CONNECTABLE (address), cancellable, on_connected,
                                 task);
}

void
smolvm_qmp_new_async (GSocketConnection *connection, GCancellable *cancellable,
                      GAsyncReadyCallback callback, gpointer user_data)
{
  start (connection, g_task_new (NULL, cancellable, callback, user_data));
}

SmolvmQmp *
smolvm_qmp_connect_finish (GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

void
smolvm_qmp_execute_async (SmolvmQmp *self, const gchar *command, JsonNode *arguments, int fd,
                          GCancellable *cancellable, GAsyncReadyCallback callback,
                          gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  int own_fd = fd >= 0 ? dup (fd) : -1;

  if (g_cancellable_is_cancelled (self->cancellable)) {
    if (own_fd >= 0)
      close (own_fd);
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                             "The QEMU monitor connection is closed");
    g_object_unref (task);
    return;
  }
  queue_command (self, command, arguments, own_fd, task);
}

JsonNode *
smolvm_qmp_execute_finish (SmolvmQmp *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}
