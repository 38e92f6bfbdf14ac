/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QMP message framing and dispatch: the input is what QEMU sends on the
 * monitor socket (one end of a socketpair, closed after the input, as
 * tests/unit/test-qmp.c drives the client). The client's ids are
 * predictable: qmp_capabilities is "smolvm-1"; once negotiated, this
 * target sends three commands, "smolvm-2" to "smolvm-4", whose replies the
 * input may carry. Ends when every command has its answer (a reply, or the
 * failure that the end of the input brings). */
#include "config.h"

#include <sys/socket.h>

#include <glib-unix.h>

#include "fuzz-common.h"
#include "smolvm-qmp.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

typedef struct {
  SmolvmQmp *qmp;
  gboolean ready_done;
  guint commands_pending;
} State;

static void
on_event (SmolvmQmp *qmp, const gchar *name, JsonNode *data, gpointer user_data)
{
  g_autofree gchar *json = data != NULL ? json_to_string (data, FALSE) : NULL;
  g_assert_true (name != NULL && (data == NULL || json != NULL));
}

static void
on_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  State *st = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = smolvm_qmp_execute_finish (SMOLVM_QMP (source), result, &error);
  g_autofree gchar *json = value != NULL ? json_to_string (value, FALSE) : NULL;

  g_assert_true ((value != NULL) == (json != NULL));
  st->commands_pending--;
}

static void
on_ready (GObject *source, GAsyncResult *result, gpointer user_data)
{
  State *st = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) arguments = json_from_string ("{\"uri\": \"exec:cat\", \"blk\": false}", NULL);

  st->qmp = smolvm_qmp_connect_finish (result, &error);
  st->ready_done = TRUE;
  if (st->qmp == NULL)
    return;
  g_signal_connect (st->qmp, "event", G_CALLBACK (on_event), st);
  st->commands_pending = 3;
  smolvm_qmp_execute_async (st->qmp, "query-status", NULL, -1, NULL, on_reply, st);
  smolvm_qmp_execute_async (st->qmp, "migrate", arguments, -1, NULL, on_reply, st);
  smolvm_qmp_execute_async (st->qmp, "getfd", NULL, 0 /* stdin: any descriptor */, NULL,
                            on_reply, st);
}

/* What the client sends is read and dropped, so that it never blocks. */
static gboolean
on_peer_readable (gint fd, GIOCondition condition, gpointer user_data)
{
  gchar buffer[65536];
  gssize n;
  while ((n = recv (fd, buffer, sizeof buffer, MSG_DONTWAIT)) > 0)
    ;
  return n == 0 ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static gboolean initialized;
  State st = { 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketConnection) connection = NULL;
  int fds[2];
  g_autoptr(GSource) peer_source = NULL;
  gsize done = 0;

  if (!initialized) {
    fuzz_init_logging ();
    initialized = TRUE;
  }
  /* stays below the socket buffer: written whole before the client runs */
  if (size > 64 * 1024)
    return -1;
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), ==, 0);
  while (done < size) {
    gssize n = write (fds[1], data + done, size - done);
    g_assert_cmpint (n, >, 0);
    done += n;
  }
  g_assert_cmpint (shutdown (fds[1], SHUT_WR), ==, 0);
  peer_source = g_unix_fd_source_new (fds[1], G_IO_IN);
  g_source_set_callback (peer_source, G_SOURCE_FUNC (on_peer_readable), NULL, NULL);
  g_source_attach (peer_source, NULL);

  socket = g_socket_new_from_fd (fds[0], &error);
  g_assert_no_error (error);
  connection = g_socket_connection_factory_create_connection (socket);
  smolvm_qmp_new_async (connection, NULL, on_ready, &st);
  while (!st.ready_done || st.commands_pending > 0)
    g_main_context_iteration (NULL, TRUE);

  g_source_destroy (peer_source);
  if (st.qmp != NULL) {
    smolvm_qmp_close (st.qmp);
    g_clear_object (&st.qmp);
  }
  g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
  while (g_main_context_pending (NULL))
    g_main_context_iteration (NULL, FALSE);
  close (fds[1]);
  return 0;
}
