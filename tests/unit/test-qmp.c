/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "smolvm-error.h"
#include "smolvm-qmp.h"

/* The test plays QEMU on one end of a socketpair, synchronously, between
 * iterations of the main loop that the client runs on. */
typedef struct {
  int peer;           /* QEMU's end */
  GString *pending;   /* bytes read but not yet a whole line */
  SmolvmQmp *qmp;
  GPtrArray *events;  /* "NAME DATA-JSON" */
  gboolean closed;
} Fixture;

static gboolean expect_malformed;
static guint malformed_warnings;

static void
peer_send (Fixture *f, const gchar *line)
{
  g_autofree gchar *text = g_strconcat (line, "\n", NULL);
  g_assert_cmpint (write (f->peer, text, strlen (text)), ==, (gssize) strlen (text));
}

/* The next line the client sent, as a JSON object; *@fd gets a descriptor
 * that came with it (else -1). */
static JsonObject *
peer_receive (Fixture *f, JsonParser *parser, int *fd)
{
  if (fd != NULL)
    *fd = -1;
  while (strchr (f->pending->str, '\n') == NULL) {
    gchar buffer[4096];
    union {
      struct cmsghdr align;
      gchar data[CMSG_SPACE (sizeof (int))];
    } control;
    struct iovec iov = { buffer, sizeof buffer };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                          .msg_controllen = sizeof control };
    gssize n;

    /* the client sends from the main loop: let it */
    while (g_main_context_pending (NULL))
      g_main_context_iteration (NULL, FALSE);
    n = recvmsg (f->peer, &msg, MSG_DONTWAIT);
    if (n < 0) {
      g_main_context_iteration (NULL, TRUE);
      continue;
    }
    g_assert_cmpint (n, >, 0);
    for (struct cmsghdr *c = CMSG_FIRSTHDR (&msg); c != NULL; c = CMSG_NXTHDR (&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        g_assert_nonnull (fd);
        memcpy (fd, CMSG_DATA (c), sizeof (int));
      }
    }
    g_string_append_len (f->pending, buffer, n);
  }
  {
    gchar *end = strchr (f->pending->str, '\n');
    g_autofree gchar *line = g_strndup (f->pending->str, end - f->pending->str);
    g_string_erase (f->pending, 0, end - f->pending->str + 1);
    g_assert_true (json_parser_load_from_data (parser, line, -1, NULL));
    g_assert_true (JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)));
    return json_node_get_object (json_parser_get_root (parser));
  }
}

static void
on_event (SmolvmQmp *qmp, const gchar *name, JsonNode *data, gpointer user_data)
{
  Fixture *f = user_data;
  g_autofree gchar *json = data != NULL ? json_to_string (data, FALSE) : g_strdup ("null");
  g_ptr_array_add (f->events, g_strdup_printf ("%s %s", name, json));
}

static void
on_closed (SmolvmQmp *qmp, gpointer user_data)
{
  ((Fixture *) user_data)->closed = TRUE;
}

static void
on_ready (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GError **out = user_data;
  SmolvmQmp **qmp = g_object_get_data (G_OBJECT (g_task_get_cancellable (G_TASK (result))), "qmp");
  *qmp = smolvm_qmp_connect_finish (result, out);
}

/* Connects a client to the fake QEMU and negotiates: the greeting comes
 * first, then qmp_capabilities is the only command sent before it is
 * answered. */
static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(JsonParser) parser = json_parser_new ();
  GError *ready_error = NULL;
  JsonObject *msg;
  int fds[2];

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), ==, 0);
  f->peer = fds[1];
  f->pending = g_string_new ("");
  f->events = g_ptr_array_new_with_free_func (g_free);
  socket = g_socket_new_from_fd (fds[0], &error);
  g_assert_no_error (error);
  connection = g_socket_connection_factory_create_connection (socket);
  g_object_set_data (G_OBJECT (cancellable), "qmp", &f->qmp);
  smolvm_qmp_new_async (connection, cancellable, on_ready, &ready_error);

  /* nothing is sent before the greeting */
  for (guint i = 0; i < 10; i++)
    g_main_context_iteration (NULL, FALSE);
  {
    gchar byte;
    g_assert_cmpint (recv (f->peer, &byte, 1, MSG_DONTWAIT), ==, -1);
  }
  peer_send (f, "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7}}, \"capabilities\": []}}");
  msg = peer_receive (f, parser, NULL);
  g_assert_cmpstr (json_object_get_string_member (msg, "execute"), ==, "qmp_capabilities");
  g_assert_null (f->qmp);
  {
    g_autofree gchar *reply = g_strdup_printf ("{\"return\": {}, \"id\": \"%s\"}",
                                               json_object_get_string_member (msg, "id"));
    peer_send (f, reply);
  }
  while (f->qmp == NULL && ready_error == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_no_error (ready_error);
  g_signal_connect (f->qmp, "event", G_CALLBACK (on_event), f);
  g_signal_connect (f->qmp, "closed", G_CALLBACK (on_closed), f);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  if (f->qmp != NULL) {
    smolvm_qmp_close (f->qmp);
    g_clear_object (&f->qmp);
  }
  while (g_main_context_pending (NULL))
    g_main_context_iteration (NULL, FALSE);
  if (f->peer >= 0)
    close (f->peer);
  g_string_free (f->pending, TRUE);
  g_ptr_array_unref (f->events);
}

typedef struct {
  gboolean done;
  JsonNode *value;
  GError *error;
} Reply;

static void
reply_clear (Reply *r)
{
  g_clear_pointer (&r->value, json_node_unref);
  g_clear_error (&r->error);
}

static void
on_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Reply *r = user_data;
  r->value = smolvm_qmp_execute_finish (SMOLVM_QMP (source), result, &r->error);
  r->done = TRUE;
}

static void
wait_reply (Reply *r)
{
  while (!r->done)
    g_main_context_iteration (NULL, TRUE);
}

static void
test_negotiation (Fixture *f, gconstpointer data)
{
  g_assert_nonnull (f->qmp);
}

/* Replies come back in any order and find their command by id. */
static void
test_replies_by_id (Fixture *f, gconstpointer data)
{
  g_autoptr(JsonParser) p1 = json_parser_new ();
  g_autoptr(JsonParser) p2 = json_parser_new ();
  g_autoptr(JsonNode) args = json_from_string ("{\"fdname\": \"x\"}", NULL);
  Reply status = { 0 }, other = { 0 };
  JsonObject *m1, *m2;
  g_autofree gchar *a = NULL, *b = NULL;

  smolvm_qmp_execute_async (f->qmp, "query-status", NULL, -1, NULL, on_reply, &status);
  smolvm_qmp_execute_async (f->qmp, "closefd", args, -1, NULL, on_reply, &other);
  m1 = peer_receive (f, p1, NULL);
  m2 = peer_receive (f, p2, NULL);
  g_assert_cmpstr (json_object_get_string_member (m1, "execute"), ==, "query-status");
  g_assert_false (json_object_has_member (m1, "arguments"));
  g_assert_cmpstr (json_object_get_string_member (m2, "execute"), ==, "closefd");
  g_assert_cmpstr (json_object_get_string_member (json_object_get_object_member (m2, "arguments"),
                                                  "fdname"), ==, "x");
  g_assert_cmpstr (json_object_get_string_member (m1, "id"), !=,
                   json_object_get_string_member (m2, "id"));

  /* the second first, and one for nobody in between */
  b = g_strdup_printf ("{\"return\": {}, \"id\": \"%s\"}", json_object_get_string_member (m2, "id"));
  peer_send (f, "{\"return\": {}, \"id\": \"not-ours\"}");
  peer_send (f, b);
  wait_reply (&other);
  g_assert_false (status.done);
  g_assert_no_error (other.error);
  a = g_strdup_printf ("{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": \"%s\"}",
                       json_object_get_string_member (m1, "id"));
  peer_send (f, a);
  wait_reply (&status);
  g_assert_no_error (status.error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (status.value));
  g_assert_cmpstr (json_object_get_string_member (json_node_get_object (status.value), "status"),
                   ==, "running");
  reply_clear (&status);
  reply_clear (&other);
}

static void
test_events (Fixture *f, gconstpointer data)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  Reply r = { 0 };
  JsonObject *m;
  g_autofree gchar *reply = NULL;

  smolvm_qmp_execute_async (f->qmp, "stop", NULL, -1, NULL, on_reply, &r);
  m = peer_receive (f, parser, NULL);
  /* events may come before the reply of the command that caused them */
  peer_send (f, "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}");
  peer_send (f, "{\"event\": \"MIGRATION\", \"data\": {\"status\": \"completed\"}}");
  reply = g_strdup_printf ("{\"return\": {}, \"id\": \"%s\"}", json_object_get_string_member (m, "id"));
  peer_send (f, reply);
  wait_reply (&r);
  g_assert_no_error (r.error);
  g_assert_cmpuint (f->events->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (f->events, 0), ==, "STOP null");
  g_assert_cmpstr (g_ptr_array_index (f->events, 1), ==, "MIGRATION {\"status\":\"completed\"}");
  reply_clear (&r);
}

static void
test_errors (Fixture *f, gconstpointer data)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  Reply r = { 0 };
  JsonObject *m;
  g_autofree gchar *reply = NULL;

  smolvm_qmp_execute_async (f->qmp, "cont", NULL, -1, NULL, on_reply, &r);
  m = peer_receive (f, parser, NULL);
  /* garbage is ignored, with a warning */
  malformed_warnings = 0;
  expect_malformed = TRUE;
  peer_send (f, "{not json");
  reply = g_strdup_printf ("{\"error\": {\"class\": \"GenericError\", \"desc\": \"no can do\"}, "
                           "\"id\": \"%s\"}",
                           json_object_get_string_member (m, "id"));
  peer_send (f, reply);
  wait_reply (&r);
  expect_malformed = FALSE;
  g_assert_cmpuint (malformed_warnings, ==, 1);
  g_assert_error (r.error, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND);
  g_assert_cmpstr (r.error->message, ==, "QEMU: no can do");
  g_assert_null (r.value);
  reply_clear (&r);
}

static void
test_fd_passing (Fixture *f, gconstpointer data)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  Reply r = { 0 };
  JsonObject *m;
  int pipe_fds[2];
  int received = -1;
  g_autofree gchar *reply = NULL;
  gchar byte = 0;

  g_assert_cmpint (pipe (pipe_fds), ==, 0);
  smolvm_qmp_execute_async (f->qmp, "getfd", NULL, pipe_fds[1], NULL, on_reply, &r);
  close (pipe_fds[1]); /* the client has its own copy */
  m = peer_receive (f, parser, &received);
  g_assert_cmpstr (json_object_get_string_member (m, "execute"), ==, "getfd");
  g_assert_cmpint (received, >=, 0);
  /* the very pipe: what QEMU writes, we read */
  g_assert_cmpint (write (received, "!", 1), ==, 1);
  close (received);
  g_assert_cmpint (read (pipe_fds[0], &byte, 1), ==, 1);
  g_assert_cmpint (byte, ==, '!');
  close (pipe_fds[0]);
  reply = g_strdup_printf ("{\"return\": {}, \"id\": \"%s\"}", json_object_get_string_member (m, "id"));
  peer_send (f, reply);
  wait_reply (&r);
  g_assert_no_error (r.error);
  reply_clear (&r);
}

/* QEMU exits: every command waiting for a reply fails, "closed" is
 * emitted, and later commands fail at once. */
static void
test_peer_closes (Fixture *f, gconstpointer data)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  Reply a = { 0 }, b = { 0 }, later = { 0 };

  smolvm_qmp_execute_async (f->qmp, "query-status", NULL, -1, NULL, on_reply, &a);
  smolvm_qmp_execute_async (f->qmp, "query-migrate", NULL, -1, NULL, on_reply, &b);
  peer_receive (f, parser, NULL);
  close (f->peer);
  f->peer = -1;
  wait_reply (&a);
  wait_reply (&b);
  g_assert_error (a.error, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND);
  g_assert_error (b.error, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND);
  g_assert_true (f->closed);
  smolvm_qmp_execute_async (f->qmp, "cont", NULL, -1, NULL, on_reply, &later);
  wait_reply (&later);
  g_assert_error (later.error, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND);
  reply_clear (&a);
  reply_clear (&b);
  reply_clear (&later);
}

/* Closing our end fails what is pending, with no "closed" signal (that
 * is for QEMU going away). */
static void
test_close (Fixture *f, gconstpointer data)
{
  Reply r = { 0 };

  smolvm_qmp_execute_async (f->qmp, "query-status", NULL, -1, NULL, on_reply, &r);
  smolvm_qmp_close (f->qmp);
  wait_reply (&r);
  g_assert_error (r.error, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND);
  g_assert_false (f->closed);
  reply_clear (&r);
}

static void
test_timeout (Fixture *f, gconstpointer data)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  Reply r = { 0 };

  smolvm_qmp_set_timeout (f->qmp, 1);
  smolvm_qmp_execute_async (f->qmp, "query-status", NULL, -1, NULL, on_reply, &r);
  peer_receive (f, parser, NULL);
  wait_reply (&r); /* no answer */
  g_assert_error (r.error, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND);
  g_assert_cmpstr (r.error->message, ==, "QEMU did not answer 'query-status' within 1 s");
  reply_clear (&r);
}

/* g_test_expect_message() misses structured logging: count by hand */
static GLogWriterOutput
log_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
  for (gsize i = 0; expect_malformed && i < n_fields; i++) {
    if (g_str_equal (fields[i].key, "MESSAGE") && fields[i].length < 0 &&
        strstr (fields[i].value, "malformed QMP message") != NULL) {
      malformed_warnings++;
      return G_LOG_WRITER_HANDLED;
    }
  }
  return g_log_writer_default (level, fields, n_fields, user_data);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_log_set_writer_func (log_writer, NULL, NULL);
  smolvm_error_quark ();
#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/qmp/negotiation", test_negotiation);
  ADD ("/qmp/replies-by-id", test_replies_by_id);
  ADD ("/qmp/events", test_events);
  ADD ("/qmp/errors", test_errors);
  ADD ("/qmp/fd-passing", test_fd_passing);
  ADD ("/qmp/peer-closes", test_peer_closes);
  ADD ("/qmp/close", test_close);
  ADD ("/qmp/timeout", test_timeout);
#undef ADD
  return g_test_run ();
}
