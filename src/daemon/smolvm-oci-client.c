/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "smolvm-error-map.h"
#include "smolvm-json.h"
#include "smolvm-oci-client.h"
#include "smolvm-oci-ref.h"

/* A registry's answers other than blobs (manifests, tokens) are small:
 * a larger one is refused as Corrupt, and never read whole into memory.
 * The same limit as SMOLVM_OCI_MAX_METADATA_SIZE of the artifact. */
#define MAX_SMALL_BODY (4 * 1024 * 1024)
/* Of an error answer only this much is read, for its message. */
#define MAX_ERROR_BODY (64 * 1024)
/* How much of a blob one read takes from the network or the disk. */
#define READ_SIZE (256 * 1024)
/* Redirects of one request (a GET or HEAD) smolvmd follows. */
#define MAX_REDIRECTS 5
/* Seconds of silence on a connection before a request fails. */
#define IO_TIMEOUT_S 120

struct _SmolvmOciClient {
  GObject parent_instance;
  SoupSession *session;
  gchar *registry;
  gchar *repository;
  gchar *base_uri; /* "https://host:port/v2/" */
  gboolean insecure;
  gboolean push;
  gchar *username;
  gchar *password;
  gchar *authorization; /* the Authorization header that works, once known */
  gsize chunk_size;
};

G_DEFINE_TYPE (SmolvmOciClient, smolvm_oci_client, G_TYPE_OBJECT)

static void
smolvm_oci_client_finalize (GObject *object)
{
  SmolvmOciClient *self = SMOLVM_OCI_CLIENT (object);
  soup_session_abort (self->session);
  g_clear_object (&self->session);
  g_free (self->registry);
  g_free (self->repository);
  g_free (self->base_uri);
  g_free (self->username);
  g_clear_pointer (&self->password, g_free);
  g_free (self->authorization);
  G_OBJECT_CLASS (smolvm_oci_client_parent_class)->finalize (object);
}

static void
smolvm_oci_client_class_init (SmolvmOciClientClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = smolvm_oci_client_finalize;
}

static void
smolvm_oci_client_init (SmolvmOciClient *self)
{
  self->chunk_size = SMOLVM_OCI_CHUNK_SIZE;
  self->session = soup_session_new_with_options ("timeout", IO_TIMEOUT_S, "user-agent",
                                                 "smolvmd/" PACKAGE_VERSION, NULL);
}

/* Challenges are answered below, Bearer included, which soup lacks, and
 * redirects followed below: soup would read the whole body of a 401 or a
 * redirect into memory before handing back the answer (it expects to send
 * the request again), which a registry must not be able to make unbounded.
 * Its auth manager stays in the session, disabled for each message: a
 * session without one counts every 401 as one to retry. */
static void
message_prepare (SoupMessage *msg)
{
  soup_message_add_flags (msg, SOUP_MESSAGE_NO_REDIRECT);
  soup_message_disable_feature (msg, SOUP_TYPE_AUTH_MANAGER);
}

SmolvmOciClient *
smolvm_oci_client_new (const gchar *registry, const gchar *repository, gboolean insecure,
                       gboolean push)
{
  SmolvmOciClient *self = g_object_new (SMOLVM_TYPE_OCI_CLIENT, NULL);
  self->registry = g_strdup (registry);
  self->repository = g_strdup (repository);
  self->insecure = insecure;
  self->push = push;
  self->base_uri = g_strdup_printf ("%s://%s/v2/", insecure ? "http" : "https", registry);
  return self;
}

void
smolvm_oci_client_set_credentials (SmolvmOciClient *self, const gchar *username,
                                   const gchar *password)
{
  g_free (self->username);
  g_free (self->password);
  self->username = g_strdup (username);
  self->password = g_strdup (password);
  g_clear_pointer (&self->authorization, g_free);
}

const gchar *
smolvm_oci_client_get_registry (SmolvmOciClient *self)
{
  return self->registry;
}

void
smolvm_oci_client_set_chunk_size (SmolvmOciClient *self, gsize chunk_size)
{
  self->chunk_size = chunk_size;
}

/* A task whose error is the one it returns: a cancel is reported as
 * SMOLVM_ERROR_CANCELLED naming what was cancelled, and only once what was
 * half-written is gone, never as GTask's own G_IO_ERROR_CANCELLED. */
static GTask *
client_task_new (SmolvmOciClient *self, GCancellable *cancellable, GAsyncReadyCallback callback,
                 gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_check_cancellable (task, FALSE);
  return task;
}

/* ---- errors ---- */

/* What an HTTP status means for a caller; anything else is Failed. */
static const struct {
  guint status;
  SmolvmError code;
} status_map[] = {
  { SOUP_STATUS_UNAUTHORIZED, SMOLVM_ERROR_REGISTRY_AUTH_FAILED },
  { SOUP_STATUS_FORBIDDEN, SMOLVM_ERROR_REGISTRY_AUTH_FAILED },
  { SOUP_STATUS_NOT_FOUND, SMOLVM_ERROR_NOT_FOUND },
  { 429 /* Too Many Requests */, SMOLVM_ERROR_REGISTRY_UNAVAILABLE },
};

/* Completes @task, a callback's own reference, with @error (taken). */
static void
task_fail (GTask *task, GError *error)
{
  g_task_return_error (task, error);
  g_object_unref (task);
}

/* The first message of the registry's {"errors": [{"code", "message"}]}. */
static gchar *
registry_error_message (GBytes *body)
{
  gsize len = 0;
  const gchar *data = body != NULL ? g_bytes_get_data (body, &len) : NULL;
  g_autoptr(JsonNode) root = NULL;
  JsonNode *node;
  JsonArray *errors;
  JsonObject *first;

  if (data == NULL || (root = smolvm_json_parse_object (data, (gssize) len, NULL)) == NULL)
    return NULL;
  node = json_object_get_member (json_node_get_object (root), "errors");
  errors = node != NULL && JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
  if (errors == NULL || json_array_get_length (errors) == 0 ||
      !JSON_NODE_HOLDS_OBJECT (json_array_get_element (errors, 0)))
    return NULL;
  first = json_array_get_object_element (errors, 0);
  return g_strdup_printf ("%s: %s", json_object_get_string_member_with_default (first, "code", "?"),
                          json_object_get_string_member_with_default (first, "message", ""));
}

static GError *
status_error (SmolvmOciClient *self, SoupMessage *msg, GBytes *body, const gchar *what)
{
  guint status = soup_message_get_status (msg);
  SmolvmError code = status >= 500 ? SMOLVM_ERROR_REGISTRY_UNAVAILABLE : SMOLVM_ERROR_FAILED;
  g_autofree gchar *detail = registry_error_message (body);

  for (gsize i = 0; i < G_N_ELEMENTS (status_map); i++)
    if (status_map[i].status == status)
      code = status_map[i].code;
  return g_error_new (SMOLVM_ERROR, code, "Registry %s: %s: HTTP %u %s%s%s", self->registry, what,
                      status, soup_message_get_reason_phrase (msg), detail != NULL ? ": " : "",
                      detail != NULL ? detail : "");
}

static GError *
transport_error (SmolvmOciClient *self, const GError *error, const gchar *what)
{
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED, "Cancelled: %s on registry %s",
                        what, self->registry);
  if (error->domain == G_TLS_ERROR && !self->insecure)
    return g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_UNAVAILABLE,
                        "Registry %s: %s: TLS failed: %s (a registry that speaks plain HTTP "
                        "only must be listed with smolvmd's --insecure-registry %s)",
                        self->registry, what, error->message, self->registry);
  return g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_UNAVAILABLE,
                      "Registry %s is unavailable: %s: %s", self->registry, what, error->message);
}

/* ---- bounded reads of a registry's small answers ---- */

typedef struct {
  GInputStream *in;
  GByteArray *data;
  gsize limit;
  gboolean truncate; /* past the limit: keep nothing rather than fail */
  gchar *what;
} BoundedRead;

static void
bounded_read_free (BoundedRead *read)
{
  g_clear_object (&read->in);
  g_clear_pointer (&read->data, g_byte_array_unref);
  g_free (read->what);
  g_free (read);
}

static void bounded_read_next (GTask *task);

static void
bounded_read_too_large (GTask *task)
{
  SmolvmOciClient *self = g_task_get_source_object (task);
  BoundedRead *read = g_task_get_task_data (task);

  /* the stream goes unread to its end: libsoup drops the connection */
  if (read->truncate)
    g_task_return_pointer (task, NULL, NULL);
  else
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                             "Registry %s: %s: the answer is larger than %" G_GSIZE_FORMAT
                             " bytes",
                             self->registry, read->what, read->limit);
  g_object_unref (task);
}

static void
on_bounded_data (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmOciClient *self = g_task_get_source_object (task);
  BoundedRead *read = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) data = g_input_stream_read_bytes_finish (G_INPUT_STREAM (source), result,
                                                             &error);
  gsize len;
  const guint8 *bytes;

  if (data == NULL) {
    task_fail (task, transport_error (self, error, read->what));
    return;
  }
  bytes = g_bytes_get_data (data, &len);
  if (len == 0) {
    g_task_return_pointer (task, g_byte_array_free_to_bytes (g_steal_pointer (&read->data)),
                           (GDestroyNotify) g_bytes_unref);
    g_object_unref (task);
    return;
  }
  if (len > read->limit - read->data->len) {
    bounded_read_too_large (task);
    return;
  }
  g_byte_array_append (read->data, bytes, (guint) len);
  bounded_read_next (task);
}

static void
bounded_read_next (GTask *task)
{
  BoundedRead *read = g_task_get_task_data (task);
  /* one byte past the limit at most: enough to know it is too large */
  gsize want = MIN ((gsize) READ_SIZE, read->limit - read->data->len + 1);
  g_input_stream_read_bytes_async (read->in, want, G_PRIORITY_DEFAULT,
                                   g_task_get_cancellable (task), on_bounded_data, task);
}

/* Reads the body of @msg from @in, at most MAX_SMALL_BODY of a success and
 * MAX_ERROR_BODY of an error answer: a larger success is Corrupt, a larger
 * error answer gives NULL (its status says enough). The Content-Length, when
 * there is one, is checked first; the read stops past the limit either way
 * (a body without one, or one that the content decoder inflates). */
static void
read_answer_async (SmolvmOciClient *self, SoupMessage *msg, GInputStream *in, const gchar *what,
                   GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = client_task_new (self, cancellable, callback, user_data);
  BoundedRead *read = g_new0 (BoundedRead, 1);
  SoupMessageHeaders *headers = soup_message_get_response_headers (msg);

  read->in = g_object_ref (in);
  read->data = g_byte_array_new ();
  read->truncate = !SOUP_STATUS_IS_SUCCESSFUL (soup_message_get_status (msg));
  read->limit = read->truncate ? MAX_ERROR_BODY : MAX_SMALL_BODY;
  read->what = g_strdup (what);
  g_task_set_task_data (task, read, (GDestroyNotify) bounded_read_free);
  /* a HEAD's Content-Length is the size of what it did not send */
  if (g_strcmp0 (soup_message_get_method (msg), SOUP_METHOD_HEAD) != 0 &&
      soup_message_headers_get_encoding (headers) == SOUP_ENCODING_CONTENT_LENGTH &&
      soup_message_headers_get_content_length (headers) > (goffset) read->limit) {
    bounded_read_too_large (task);
    return;
  }
  bounded_read_next (task);
}

/* The body, or NULL: an error answer too large to keep, or @error. */
static GBytes *
read_answer_finish (GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- one request, with its authentication ---- */

typedef struct {
  gchar *method;
  gchar *uri;
  gchar *what; /* names it in messages */
  gchar *accept;
  gchar *content_type;
  gchar *content_range;
  GBytes *body; /* NULL: none */
  gboolean stream; /* hand back the open response stream, unread */
  gboolean no_redirect; /* hand back a 3xx instead of following it */
  gboolean foreign;     /* to another host than the registry's: no credentials */
  gboolean retried_auth;
  guint redirects;
  SoupMessage *msg;
  GInputStream *response_stream;
  GBytes *response_body;
} OciCall;

static void
oci_call_free (OciCall *call)
{
  g_free (call->method);
  g_free (call->uri);
  g_free (call->what);
  g_free (call->accept);
  g_free (call->content_type);
  g_free (call->content_range);
  g_clear_pointer (&call->body, g_bytes_unref);
  g_clear_object (&call->msg);
  g_clear_object (&call->response_stream);
  g_clear_pointer (&call->response_body, g_bytes_unref);
  g_free (call);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OciCall, oci_call_free)

/* Takes @uri and @what. */
static OciCall *
oci_call_new (const gchar *method, gchar *uri, gchar *what)
{
  OciCall *call = g_new0 (OciCall, 1);
  call->method = g_strdup (method);
  call->uri = uri;
  call->what = what;
  return call;
}

static void oci_call_send (GTask *task);
static gchar *response_location (OciCall *call);

/* Whether @uri is on another host, port or scheme than the registry: a
 * registry may send blobs from a store elsewhere (S3, a CDN), with a
 * signed URL, and the registry's credentials are not for it. */
static gboolean
uri_is_foreign (SmolvmOciClient *self, const gchar *uri)
{
  g_autoptr(GUri) parsed = g_uri_parse (uri, G_URI_FLAGS_ENCODED, NULL);
  g_autoptr(GUri) base = g_uri_parse (self->base_uri, G_URI_FLAGS_ENCODED, NULL);

  return parsed == NULL || base == NULL ||
         g_ascii_strcasecmp (g_uri_get_host (parsed), g_uri_get_host (base)) != 0 ||
         g_uri_get_port (parsed) != g_uri_get_port (base) ||
         g_strcmp0 (g_uri_get_scheme (parsed), g_uri_get_scheme (base)) != 0;
}

static void
on_call_done (SmolvmOciClient *self, GTask *task, GError *error)
{
  OciCall *call = g_task_get_task_data (task);
  g_autoptr(GError) owned = error;

  if (owned != NULL) {
    g_task_return_error (task, transport_error (self, owned, call->what));
    g_object_unref (task);
    return;
  }
  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static gchar *
basic_authorization (SoupMessage *msg, const gchar *username, const gchar *password)
{
  g_autoptr(SoupAuth) auth = soup_auth_new (SOUP_TYPE_AUTH_BASIC, msg, "Basic realm=\"registry\"");
  soup_auth_authenticate (auth, username, password);
  return soup_auth_get_authorization (auth, msg);
}

static void
on_token_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmOciClient *self = g_task_get_source_object (task);
  SoupMessage *msg = g_object_get_data (G_OBJECT (task), "token-message");
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = read_answer_finish (result, &error);
  g_autoptr(JsonNode) root = NULL;
  const gchar *token = NULL;

  if (error != NULL) {
    task_fail (task, g_steal_pointer (&error));
    return;
  }
  if (!SOUP_STATUS_IS_SUCCESSFUL (soup_message_get_status (msg))) {
    g_autoptr(GError) status = status_error (self, msg, body, "token request");
    if (status->code == SMOLVM_ERROR_FAILED && soup_message_get_status (msg) < 500)
      status->code = SMOLVM_ERROR_REGISTRY_AUTH_FAILED;
    task_fail (task, g_steal_pointer (&status));
    return;
  }
  if (body != NULL && (root = smolvm_json_parse_object (g_bytes_get_data (body, NULL),
                                                        (gssize) g_bytes_get_size (body),
                                                        NULL)) != NULL) {
    JsonObject *object = json_node_get_object (root);
    token = json_object_get_string_member_with_default (object, "token", NULL);
    if (token == NULL)
      token = json_object_get_string_member_with_default (object, "access_token", NULL);
  }
  if (token == NULL || token[0] == '\0') {
    task_fail (task, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_AUTH_FAILED,
                                  "Registry %s: its token server answered without a token",
                                  self->registry));
    return;
  }
  g_free (self->authorization);
  self->authorization = g_strdup_printf ("Bearer %s", token);
  oci_call_send (task);
}

static void
on_token_sent (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmOciClient *self = g_task_get_source_object (task);
  SoupMessage *msg = g_object_get_data (G_OBJECT (task), "token-message");
  g_autoptr(GError) error = NULL;
  g_autoptr(GInputStream) in = soup_session_send_finish (SOUP_SESSION (source), result, &error);

  if (in == NULL) {
    on_call_done (self, task, g_steal_pointer (&error));
    return;
  }
  read_answer_async (self, msg, in, "token request", g_task_get_cancellable (task), on_token_read,
                     task);
}

/* The Bearer flow: a token for @params' scope from @params' realm, with
 * the credentials if there are any. */
static void
fetch_token (GTask *task, GHashTable *params)
{
  SmolvmOciClient *self = g_task_get_source_object (task);
  OciCall *call = g_task_get_task_data (task);
  const gchar *realm = g_hash_table_lookup (params, "realm");
  const gchar *service = g_hash_table_lookup (params, "service");
  const gchar *scope = g_hash_table_lookup (params, "scope");
  g_autofree gchar *default_scope =
    g_strdup_printf ("repository:%s:%s", self->repository, self->push ? "pull,push" : "pull");
  g_autoptr(GUri) realm_uri = realm != NULL ? g_uri_parse (realm, G_URI_FLAGS_ENCODED, NULL) : NULL;
  g_autoptr(GHashTable) form = g_hash_table_new (g_str_hash, g_str_equal);
  g_autofree gchar *query = NULL;
  g_autoptr(GUri) uri = NULL;
  g_autoptr(SoupMessage) msg = NULL;

  if (realm_uri == NULL ||
      (g_strcmp0 (g_uri_get_scheme (realm_uri), "https") != 0 &&
       !(self->insecure && g_strcmp0 (g_uri_get_scheme (realm_uri), "http") == 0))) {
    task_fail (task,
               g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_AUTH_FAILED,
                            "Registry %s: %s: its Bearer challenge names no usable token realm "
                            "('%s')",
                            self->registry, call->what, realm != NULL ? realm : ""));
    return;
  }
  if (service != NULL)
    g_hash_table_insert (form, (gpointer) "service", (gpointer) service);
  g_hash_table_insert (form, (gpointer) "scope", (gpointer) (scope != NULL ? scope : default_scope));
  query = soup_form_encode_hash (form);
  uri = soup_uri_copy (realm_uri, SOUP_URI_QUERY, query, SOUP_URI_NONE);
  msg = soup_message_new_from_uri ("GET", uri);
  message_prepare (msg);
  if (self->username != NULL) {
    g_autofree gchar *basic = basic_authorization (msg, self->username, self->password);
    soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", basic);
  }
  /* the task keeps the token request until its answer is read */
  g_object_set_data_full (G_OBJECT (task), "token-message", g_object_ref (msg), g_object_unref);
  soup_session_send_async (self->session, msg, G_PRIORITY_DEFAULT, g_task_get_cancellable (task),
                           on_token_sent, task);
}

/* A 401: answers its challenge and sends @task's request again, once. */
static void
answer_challenge (GTask *task)
{
  SmolvmOciClient *self = g_task_get_source_object (task);
  OciCall *call = g_task_get_task_data (task);
  const gchar *challenge =
    soup_message_headers_get_one (soup_message_get_response_headers (call->msg), "WWW-Authenticate");
  g_autofree gchar *scheme = NULL;
  const gchar *space;
  g_autoptr(GHashTable) params = NULL;

  if (call->retried_auth || challenge == NULL) {
    task_fail (task,
               g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_AUTH_FAILED,
                            "Registry %s refused %s: %s", self->registry,
                            self->username != NULL ? "the configured credentials"
                                                   : "anonymous access and no credentials are "
                                                     "configured for it",
                            call->what));
    return;
  }
  call->retried_auth = TRUE;
  space = strchr (challenge, ' ');
  scheme = space != NULL ? g_strndup (challenge, space - challenge) : g_strdup (challenge);
  params = soup_header_parse_param_list (space != NULL ? space + 1 : "");
  if (g_ascii_strcasecmp (scheme, "Bearer") == 0) {
    fetch_token (task, params);
    return;
  }
  if (g_ascii_strcasecmp (scheme, "Basic") == 0 && self->username != NULL) {
    g_free (self->authorization);
    self->authorization = basic_authorization (call->msg, self->username, self->password);
    oci_call_send (task);
    return;
  }
  task_fail (task, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_AUTH_FAILED,
                                "Registry %s wants %s authentication for %s%s", self->registry,
                                scheme, call->what,
                                g_ascii_strcasecmp (scheme, "Basic") == 0
                                  ? " and no credentials are configured for it"
                                  : ", which smolvmd does not speak"));
}

static void
on_call_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  OciCall *call = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;

  call->response_body = read_answer_finish (result, &error);
  if (error != NULL) {
    task_fail (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
on_challenge_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  g_autoptr(GError) error = NULL;

  /* a challenge's body is read only to free the connection */
  g_bytes_unref (read_answer_finish (result, &error));
  if (error != NULL) {
    task_fail (task, g_steal_pointer (&error));
    return;
  }
  answer_challenge (task);
}

/* A redirect of a GET or HEAD, its body read (64 KiB at most): the same
 * request to its Location, https only unless the registry is insecure. */
static void
on_redirect_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmOciClient *self = g_task_get_source_object (task);
  OciCall *call = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  g_autofree gchar *location = NULL;

  /* a redirect's body is read only to free the connection */
  g_bytes_unref (read_answer_finish (result, &error));
  if (error != NULL) {
    task_fail (task, g_steal_pointer (&error));
    return;
  }
  location = response_location (call);
  if (location == NULL || ++call->redirects > MAX_REDIRECTS ||
      (!g_str_has_prefix (location, "https://") &&
       !(self->insecure && g_str_has_prefix (location, "http://")))) {
    task_fail (task, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_UNAVAILABLE,
                                  "Registry %s: %s: a redirect smolvmd does not follow (too many, "
                                  "or not to https)",
                                  self->registry, call->what));
    return;
  }
  g_free (call->uri);
  call->uri = g_steal_pointer (&location);
  call->foreign = uri_is_foreign (self, call->uri);
  oci_call_send (task);
}

static void
on_call_sent (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmOciClient *self = g_task_get_source_object (task);
  OciCall *call = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;

  call->response_stream = soup_session_send_finish (SOUP_SESSION (source), result, &error);
  if (call->response_stream == NULL) {
    on_call_done (self, task, g_steal_pointer (&error));
    return;
  }
  if (!call->no_redirect && SOUP_STATUS_IS_REDIRECTION (soup_message_get_status (call->msg)) &&
      (g_str_equal (call->method, "GET") || g_str_equal (call->method, "HEAD")) &&
      soup_message_headers_get_one (soup_message_get_response_headers (call->msg), "Location")) {
    read_answer_async (self, call->msg, call->response_stream, call->what,
                       g_task_get_cancellable (task), on_redirect_read, task);
    g_clear_object (&call->response_stream);
    return;
  }
  if (soup_message_get_status (call->msg) == SOUP_STATUS_UNAUTHORIZED && !call->foreign &&
      call->stream) {
    g_clear_object (&call->response_stream);
    answer_challenge (task);
    return;
  }
  if (soup_message_get_status (call->msg) == SOUP_STATUS_UNAUTHORIZED && !call->foreign) {
    /* read (64 KiB at most) so that the connection serves the retry */
    read_answer_async (self, call->msg, call->response_stream, call->what,
                       g_task_get_cancellable (task), on_challenge_read, task);
    g_clear_object (&call->response_stream);
    return;
  }
  if (call->stream) {
    on_call_done (self, task, NULL);
    return;
  }
  /* a registry's small answers are read whole, but never past a limit */
  read_answer_async (self, call->msg, call->response_stream, call->what,
                     g_task_get_cancellable (task), on_call_read, task);
  g_clear_object (&call->response_stream);
}

static void
oci_call_send (GTask *task)
{
  SmolvmOciClient *self = g_task_get_source_object (task);
  OciCall *call = g_task_get_task_data (task);
  SoupMessageHeaders *headers;

  g_clear_object (&call->msg);
  call->msg = soup_message_new (call->method, call->uri);
  if (call->msg == NULL) {
    task_fail (task, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_UNAVAILABLE,
                                  "Registry %s: %s: bad URI '%s'", self->registry, call->what,
                                  call->uri));
    return;
  }
  headers = soup_message_get_request_headers (call->msg);
  if (self->authorization != NULL && !call->foreign)
    soup_message_headers_replace (headers, "Authorization", self->authorization);
  message_prepare (call->msg);
  if (call->accept != NULL)
    soup_message_headers_replace (headers, "Accept", call->accept);
  if (call->content_range != NULL)
    soup_message_headers_replace (headers, "Content-Range", call->content_range);
  if (call->body != NULL)
    soup_message_set_request_body_from_bytes (call->msg, call->content_type, call->body);
  else if (g_str_equal (call->method, "PUT") || g_str_equal (call->method, "POST"))
    soup_message_headers_set_content_length (headers, 0);
  soup_session_send_async (self->session, call->msg, G_PRIORITY_DEFAULT,
                           g_task_get_cancellable (task), on_call_sent, task);
}

/* Sends @call (taken); completes with the answer whatever its status
 * (but 401, answered first), or a transport error. */
static void
oci_call_async (SmolvmOciClient *self, OciCall *call, GCancellable *cancellable,
                GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = client_task_new (self, cancellable, callback, user_data);
  g_task_set_task_data (task, call, (GDestroyNotify) oci_call_free);
  oci_call_send (task);
}

/* The call of a finished oci_call_async(), or NULL and @error. */
static OciCall *
oci_call_finish (GAsyncResult *result, GError **error)
{
  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  return g_task_get_task_data (G_TASK (result));
}

/* The call of a finished oci_call_async() answered with a 2xx status or
 * with @also (0: none); otherwise NULL, @task having been returned the
 * transport or status error.  @task's reference stays the caller's. */
static OciCall *
oci_call_finish_ok (GTask *task, GAsyncResult *result, guint also)
{
  SmolvmOciClient *self = g_task_get_source_object (G_TASK (result));
  g_autoptr(GError) error = NULL;
  OciCall *call = oci_call_finish (result, &error);
  guint status;

  if (call == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return NULL;
  }
  status = soup_message_get_status (call->msg);
  if (!SOUP_STATUS_IS_SUCCESSFUL (status) && (also == 0 || status != also)) {
    g_task_return_error (task, status_error (self, call->msg, call->response_body, call->what));
    return NULL;
  }
  return call;
}

/* Completes @user_data, a boolean task, with TRUE on a 2xx answer. */
static void
on_call_ok (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;

  if (oci_call_finish_ok (task, result, 0) != NULL)
    g_task_return_boolean (task, TRUE);
}

static gchar *
repo_uri (SmolvmOciClient *self, const gchar *kind, const gchar *tail)
{
  return g_strdup_printf ("%s%s/%s/%s", self->base_uri, self->repository, kind, tail);
}

/* ---- ping ---- */

void
smolvm_oci_client_ping_async (SmolvmOciClient *self, GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = client_task_new (self, cancellable, callback, user_data);
  OciCall *call = oci_call_new ("GET", g_strdup (self->base_uri), g_strdup ("GET /v2/"));
  oci_call_async (self, call, cancellable, on_call_ok, task);
}

gboolean
smolvm_oci_client_ping_finish (SmolvmOciClient *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- blob HEAD ---- */

typedef struct {
  gchar *digest;
  guint64 size;
} BlobHead;

static void
blob_head_free (BlobHead *head)
{
  g_free (head->digest);
  g_free (head);
}

static void
on_blob_head (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  BlobHead *head = g_task_get_task_data (task);
  OciCall *call = oci_call_finish_ok (task, result, SOUP_STATUS_NOT_FOUND);

  if (call == NULL)
    return;
  if (soup_message_get_status (call->msg) == SOUP_STATUS_NOT_FOUND) {
    g_task_return_int (task, FALSE);
    return;
  }
  /* a blob of another size under this digest is not ours: send ours */
  g_task_return_int (task, soup_message_headers_get_content_length (
                             soup_message_get_response_headers (call->msg)) == (goffset) head->size);
}

void
smolvm_oci_client_blob_exists_async (SmolvmOciClient *self, const gchar *digest, guint64 size,
                                     GCancellable *cancellable, GAsyncReadyCallback callback,
                                     gpointer user_data)
{
  GTask *task = client_task_new (self, cancellable, callback, user_data);
  BlobHead *head = g_new0 (BlobHead, 1);
  OciCall *call = oci_call_new ("HEAD", repo_uri (self, "blobs", digest),
                                g_strdup_printf ("HEAD blob %s", digest));
  head->digest = g_strdup (digest);
  head->size = size;
  g_task_set_task_data (task, head, (GDestroyNotify) blob_head_free);
  oci_call_async (self, call, cancellable, on_blob_head, task);
}

gboolean
smolvm_oci_client_blob_exists_finish (SmolvmOciClient *self, GAsyncResult *result,
                                      gboolean *exists, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  gssize value = g_task_propagate_int (G_TASK (result), &local_error);
  if (local_error != NULL) {
    g_propagate_error (error, g_steal_pointer (&local_error));
    return FALSE;
  }
  *exists = value != 0;
  return TRUE;
}

/* The Location of @call's answer, resolved against its URI. */
static gchar *
response_location (OciCall *call)
{
  const gchar *location =
    soup_message_headers_get_one (soup_message_get_response_headers (call->msg), "Location");
  if (location == NULL)
    return NULL;
  return g_uri_resolve_relative (call->uri, location, G_URI_FLAGS_ENCODED, NULL);
}

/* ---- blob GET ---- */

typedef struct {
  gchar *digest;
  guint64 size;
  gchar *dir;        /* layout_dir/blobs/sha256 */
  gchar *path;       /* the blob's final name */
  GFile *temp;       /* where it is written until verified */
  SmolvmProgress *progress;
  GInputStream *in;
  GOutputStream *out;
  GChecksum *checksum;
  guint64 received;
  guint redirects;
  GError *error;     /* kept while the temp file goes */
} BlobFetch;

static void
blob_fetch_free (BlobFetch *fetch)
{
  g_free (fetch->digest);
  g_free (fetch->dir);
  g_free (fetch->path);
  g_clear_object (&fetch->temp);
  g_clear_object (&fetch->progress);
  g_clear_object (&fetch->in);
  g_clear_object (&fetch->out);
  g_clear_pointer (&fetch->checksum, g_checksum_free);
  g_clear_error (&fetch->error);
  g_free (fetch);
}

static void
on_temp_deleted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  BlobFetch *fetch = g_task_get_task_data (task);
  g_file_delete_finish (G_FILE (source), result, NULL);
  g_task_return_error (task, g_steal_pointer (&fetch->error));
}

static void
on_failed_out_closed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  BlobFetch *fetch = g_task_get_task_data (task);
  g_output_stream_close_finish (G_OUTPUT_STREAM (source), result, NULL);
  g_file_delete_async (fetch->temp, G_PRIORITY_DEFAULT, NULL, on_temp_deleted, task);
}

/* Takes @error and @task: closes and removes the temp file, then fails. */
static void
blob_fetch_fail (GTask *task, GError *error)
{
  BlobFetch *fetch = g_task_get_task_data (task);
  g_autoptr(GError) owned = error;

  g_clear_error (&fetch->error);
  fetch->error = smolvm_error_normalize (owned);
  if (fetch->out != NULL) {
    g_output_stream_close_async (fetch->out, G_PRIORITY_DEFAULT, NULL, on_failed_out_closed, task);
    return;
  }
  if (fetch->temp != NULL) {
    g_file_delete_async (fetch->temp, G_PRIORITY_DEFAULT, NULL, on_temp_deleted, task);
    return;
  }
  task_fail (task, g_steal_pointer (&fetch->error));
}

static void
on_blob_renamed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  g_autoptr(GError) error = NULL;
  if (!g_file_move_finish (G_FILE (source), result, &error)) {
    blob_fetch_fail (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_int (task, TRUE);
  g_object_unref (task);
}

static void
on_blob_out_closed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmOciClient *self = g_task_get_source_object (task);
  BlobFetch *fetch = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  g_autofree gchar *actual = NULL;
  g_autoptr(GFile) final = NULL;

  if (!g_output_stream_close_finish (G_OUTPUT_STREAM (source), result, &error)) {
    g_clear_object (&fetch->out);
    blob_fetch_fail (task, g_steal_pointer (&error));
    return;
  }
  g_clear_object (&fetch->out);
  actual = g_strconcat ("sha256:", g_checksum_get_string (fetch->checksum), NULL);
  if (fetch->received != fetch->size || !g_str_equal (actual, fetch->digest)) {
    blob_fetch_fail (task, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                                        "Registry %s sent blob %s with sha256 %s and %" G_GUINT64_FORMAT
                                        " bytes instead of %" G_GUINT64_FORMAT,
                                        self->registry, fetch->digest, actual, fetch->received,
                                        fetch->size));
    return;
  }
  final = g_file_new_for_path (fetch->path);
  g_file_move_async (fetch->temp, final, G_FILE_COPY_OVERWRITE | G_FILE_COPY_NOFOLLOW_SYMLINKS,
                     G_PRIORITY_DEFAULT, NULL, NULL, NULL, on_blob_renamed, task);
}

static void blob_fetch_read (GTask *task);

static void
on_blob_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  BlobFetch *fetch = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  gsize written = 0;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, &written, &error)) {
    blob_fetch_fail (task, g_steal_pointer (&error));
    return;
  }
  smolvm_progress_add (fetch->progress, written);
  blob_fetch_read (task);
}

static void
on_blob_data (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmOciClient *self = g_task_get_source_object (task);
  BlobFetch *fetch = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) data = g_input_stream_read_bytes_finish (G_INPUT_STREAM (source), result, &error);
  gsize len;
  const guchar *bytes;

  if (data == NULL) {
    blob_fetch_fail (task, transport_error (self, error, "GET blob"));
    return;
  }
  bytes = g_bytes_get_data (data, &len);
  if (len == 0) {
    g_output_stream_close_async (fetch->out, G_PRIORITY_DEFAULT, NULL, on_blob_out_closed, task);
    return;
  }
  fetch->received += len;
  if (fetch->received > fetch->size) {
    blob_fetch_fail (task, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                                        "Registry %s sent more than the %" G_GUINT64_FORMAT
                                        " bytes of blob %s",
                                        self->registry, fetch->size, fetch->digest));
    return;
  }
  g_checksum_update (fetch->checksum, bytes, len);
  /* the task keeps the chunk alive until the next one replaces it, after
   * the write (in a thread of GIO's) is done with it */
  g_object_set_data_full (G_OBJECT (task), "chunk", g_steal_pointer (&data),
                          (GDestroyNotify) g_bytes_unref);
  g_output_stream_write_all_async (fetch->out, bytes, len, G_PRIORITY_DEFAULT,
                                   g_task_get_cancellable (task), on_blob_written, task);
}

static void
blob_fetch_read (GTask *task)
{
  BlobFetch *fetch = g_task_get_task_data (task);
  g_input_stream_read_bytes_async (fetch->in, READ_SIZE, G_PRIORITY_DEFAULT,
                                   g_task_get_cancellable (task), on_blob_data, task);
}

/* A GET of the blob at @uri, following no redirect itself. */
static OciCall *
blob_get_call (SmolvmOciClient *self, BlobFetch *fetch, gchar *uri)
{
  OciCall *call = oci_call_new ("GET", uri, g_strdup_printf ("GET blob %s", fetch->digest));

  call->stream = TRUE;
  call->no_redirect = TRUE;
  call->foreign = uri_is_foreign (self, uri);
  return call;
}

static void
on_blob_get (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmOciClient *self = SMOLVM_OCI_CLIENT (source);
  BlobFetch *fetch = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  OciCall *call = oci_call_finish (result, &error);
  guint status;

  if (call == NULL) {
    blob_fetch_fail (task, g_steal_pointer (&error));
    return;
  }
  status = soup_message_get_status (call->msg);
  if (SOUP_STATUS_IS_REDIRECTION (status) &&
      soup_message_headers_get_one (soup_message_get_response_headers (call->msg), "Location")) {
    g_autofree gchar *location = response_location (call);
    OciCall *next;

    if (location == NULL || ++fetch->redirects > MAX_REDIRECTS ||
        (!g_str_has_prefix (location, "https://") &&
         !(self->insecure && g_str_has_prefix (location, "http://")))) {
      blob_fetch_fail (task, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_UNAVAILABLE,
                                          "Registry %s: GET blob %s: a redirect smolvmd does not "
                                          "follow (too many, or not to https)",
                                          self->registry, fetch->digest));
      return;
    }
    next = blob_get_call (self, fetch, g_steal_pointer (&location));
    oci_call_async (self, next, g_task_get_cancellable (task), on_blob_get, task);
    return;
  }
  if (!SOUP_STATUS_IS_SUCCESSFUL (soup_message_get_status (call->msg))) {
    blob_fetch_fail (task, status_error (self, call->msg, NULL, call->what));
    return;
  }
  fetch->in = g_object_ref (call->response_stream);
  blob_fetch_read (task);
}

static void
on_temp_created (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmOciClient *self = g_task_get_source_object (task);
  BlobFetch *fetch = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  GFileOutputStream *out = g_file_create_finish (G_FILE (source), result, &error);
  OciCall *call;

  if (out == NULL) {
    g_clear_object (&fetch->temp); /* not ours to remove */
    g_prefix_error (&error, "Cannot create a file for blob %s: ", fetch->digest);
    blob_fetch_fail (task, g_steal_pointer (&error));
    return;
  }
  fetch->out = G_OUTPUT_STREAM (out);
  call = blob_get_call (self, fetch, repo_uri (self, "blobs", fetch->digest));
  oci_call_async (self, call, g_task_get_cancellable (task), on_blob_get, task);
}

/* Worker thread: makes the directory; TRUE in @present if the blob is
 * there and verified; a bad copy is removed. */
static void
blob_check_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  BlobFetch *fetch = task_data;
  g_autoptr(GError) error = NULL;

  if (g_mkdir_with_parents (fetch->dir, 0700) < 0) {
    int errsv = errno;
    g_task_return_new_error (task, SMOLVM_ERROR, smolvm_error_code_from_errno (errsv),
                             "Cannot create %s: %s", fetch->dir, g_strerror (errsv));
    return;
  }
  if (smolvm_oci_blob_file_verify (fetch->path, fetch->digest, fetch->size, NULL, cancellable,
                                   &error)) {
    g_task_return_int (task, TRUE);
    return;
  }
  if (g_error_matches (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND)) {
    g_task_return_int (task, FALSE);
    return;
  }
  if (error->code != SMOLVM_ERROR_CORRUPT) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  if (g_unlink (fetch->path) < 0 && errno != ENOENT) {
    int errsv = errno;
    g_task_return_new_error (task, SMOLVM_ERROR, smolvm_error_code_from_errno (errsv),
                             "Cannot remove the bad copy %s: %s", fetch->path, g_strerror (errsv));
    return;
  }
  g_task_return_int (task, FALSE);
}

static void
on_blob_checked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  BlobFetch *fetch = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  gssize present = g_task_propagate_int (G_TASK (result), &error);
  g_autofree gchar *temp_name = NULL;

  if (error != NULL) {
    blob_fetch_fail (task, g_steal_pointer (&error));
    return;
  }
  if (present) {
    g_task_return_int (task, FALSE);
    g_object_unref (task);
    return;
  }
  /* a name of its own (the layout's .tmp-* for unfinished writes): two
   * pulls of one blob never share a temp file */
  temp_name = g_strdup_printf ("%s/.tmp-%08x%08x", fetch->dir, g_random_int (), g_random_int ());
  fetch->temp = g_file_new_for_path (temp_name);
  g_file_create_async (fetch->temp, G_FILE_CREATE_PRIVATE, G_PRIORITY_DEFAULT,
                       g_task_get_cancellable (task), on_temp_created, task);
}

void
smolvm_oci_client_blob_fetch_async (SmolvmOciClient *self, const gchar *digest, guint64 size,
                                    const gchar *layout_dir, SmolvmProgress *progress,
                                    GCancellable *cancellable, GAsyncReadyCallback callback,
                                    gpointer user_data)
{
  GTask *task = client_task_new (self, cancellable, callback, user_data);
  g_autoptr(GTask) check = NULL;
  BlobFetch *fetch;

  if (!smolvm_oci_ref_digest_is_valid (digest)) {
    task_fail (task,
               g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                            "Registry %s: '%s' is not a sha256 digest", self->registry, digest));
    return;
  }
  fetch = g_new0 (BlobFetch, 1);
  fetch->digest = g_strdup (digest);
  fetch->size = size;
  fetch->dir = g_build_filename (layout_dir, "blobs", "sha256", NULL);
  fetch->path = g_build_filename (fetch->dir, digest + strlen ("sha256:"), NULL);
  fetch->progress = progress != NULL ? g_object_ref (progress) : NULL;
  fetch->checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_task_set_task_data (task, fetch, (GDestroyNotify) blob_fetch_free);

  check = g_task_new (self, cancellable, on_blob_checked, task);
  g_task_set_task_data (check, fetch, NULL);
  g_task_run_in_thread (check, blob_check_thread);
}

gboolean
smolvm_oci_client_blob_fetch_finish (SmolvmOciClient *self, GAsyncResult *result,
                                     gboolean *fetched, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  gssize value = g_task_propagate_int (G_TASK (result), &local_error);
  if (local_error != NULL) {
    g_propagate_error (error, g_steal_pointer (&local_error));
    return FALSE;
  }
  if (fetched != NULL)
    *fetched = value != 0;
  return TRUE;
}

/* ---- blob upload ---- */

typedef struct {
  gchar *digest;
  guint64 size;
  gchar *path;
  SmolvmProgress *progress;
  GInputStream *in;
  gchar *location; /* the upload session's URI */
  guint64 sent;
  guchar *buffer;
  gsize buffer_size;
} BlobUpload;

static void
blob_upload_free (BlobUpload *upload)
{
  g_free (upload->digest);
  g_free (upload->path);
  g_clear_object (&upload->progress);
  g_clear_object (&upload->in);
  g_free (upload->location);
  g_free (upload->buffer);
  g_free (upload);
}

/* @location with "digest=@digest" added to its query. */
static gchar *
with_digest (const gchar *location, const gchar *digest)
{
  g_autoptr(GUri) uri = g_uri_parse (location, G_URI_FLAGS_ENCODED, NULL);
  g_autofree gchar *param = soup_form_encode ("digest", digest, NULL);
  g_autofree gchar *query = NULL;
  g_autoptr(GUri) result = NULL;

  if (uri == NULL)
    return NULL;
  query = g_uri_get_query (uri) != NULL && g_uri_get_query (uri)[0] != '\0'
            ? g_strconcat (g_uri_get_query (uri), "&", param, NULL)
            : g_strdup (param);
  result = soup_uri_copy (uri, SOUP_URI_QUERY, query, SOUP_URI_NONE);
  return g_uri_to_string (result);
}

static void blob_upload_next (GTask *task);

static void
on_upload_step (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmOciClient *self = SMOLVM_OCI_CLIENT (source);
  BlobUpload *upload = g_task_get_task_data (task);
  OciCall *call = oci_call_finish_ok (task, result, 0);
  gboolean closing;

  if (call == NULL) {
    g_object_unref (task);
    return;
  }
  closing = g_str_equal (call->method, "PUT");
  if (call->body != NULL) {
    upload->sent += g_bytes_get_size (call->body);
    smolvm_progress_add (upload->progress, g_bytes_get_size (call->body));
  }
  if (closing) {
    g_task_return_boolean (task, TRUE);
    g_object_unref (task);
    return;
  }
  g_free (upload->location);
  upload->location = response_location (call);
  if (upload->location == NULL) {
    task_fail (task, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_UNAVAILABLE,
                                  "Registry %s: %s: the answer has no Location", self->registry,
                                  call->what));
    return;
  }
  blob_upload_next (task);
}

/* Sends what was read of the file: the whole blob in the closing PUT, or
 * the next chunk in a PATCH. */
static void
on_chunk_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmOciClient *self = g_task_get_source_object (task);
  BlobUpload *upload = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  gsize len = 0;
  OciCall *call;
  g_autoptr(GBytes) chunk = NULL;
  gboolean whole = upload->size <= self->chunk_size;

  if (!g_input_stream_read_all_finish (G_INPUT_STREAM (source), result, &len, &error)) {
    g_prefix_error (&error, "Cannot read %s: ", upload->path);
    g_task_return_error (task, smolvm_error_normalize (error));
    g_object_unref (task);
    return;
  }
  if (len != upload->buffer_size) {
    task_fail (task, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                                  "%s changed while it was uploaded as blob %s", upload->path,
                                  upload->digest));
    return;
  }
  chunk = g_bytes_new_take (g_steal_pointer (&upload->buffer), len);
  if (whole) {
    call = oci_call_new ("PUT", with_digest (upload->location, upload->digest),
                         g_strdup_printf ("PUT blob %s", upload->digest));
  } else {
    call = oci_call_new ("PATCH", g_strdup (upload->location),
                         g_strdup_printf ("PATCH blob %s", upload->digest));
    call->content_range = g_strdup_printf ("%" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT,
                                           upload->sent, upload->sent + len - 1);
  }
  call->content_type = g_strdup ("application/octet-stream");
  call->body = g_steal_pointer (&chunk);
  oci_call_async (self, call, g_task_get_cancellable (task), on_upload_step, task);
}

static void
blob_upload_next (GTask *task)
{
  SmolvmOciClient *self = g_task_get_source_object (task);
  BlobUpload *upload = g_task_get_task_data (task);
  OciCall *call;

  if (upload->size > self->chunk_size && upload->sent == upload->size) {
    /* every chunk is there: close the upload */
    call = oci_call_new ("PUT", with_digest (upload->location, upload->digest),
                         g_strdup_printf ("PUT blob %s", upload->digest));
    oci_call_async (self, call, g_task_get_cancellable (task), on_upload_step, task);
    return;
  }
  upload->buffer_size = MIN (self->chunk_size, upload->size - upload->sent);
  upload->buffer = g_malloc (MAX (upload->buffer_size, 1));
  /* GIO reads a local file in a thread of its own */
  g_input_stream_read_all_async (upload->in, upload->buffer, upload->buffer_size,
                                 G_PRIORITY_DEFAULT, g_task_get_cancellable (task), on_chunk_read,
                                 task);
}

static void
on_upload_file_open (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmOciClient *self = g_task_get_source_object (task);
  BlobUpload *upload = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  GFileInputStream *in = g_file_read_finish (G_FILE (source), result, &error);
  OciCall *call;

  if (in == NULL) {
    g_prefix_error (&error, "Cannot open blob %s: ", upload->digest);
    g_task_return_error (task, smolvm_error_normalize (error));
    g_object_unref (task);
    return;
  }
  upload->in = G_INPUT_STREAM (in);
  call = oci_call_new ("POST", repo_uri (self, "blobs", "uploads/"),
                       g_strdup_printf ("POST blob upload of %s", upload->digest));
  oci_call_async (self, call, g_task_get_cancellable (task), on_upload_step, task);
}

void
smolvm_oci_client_blob_upload_async (SmolvmOciClient *self, const gchar *digest, guint64 size,
                                     const gchar *path, SmolvmProgress *progress,
                                     GCancellable *cancellable, GAsyncReadyCallback callback,
                                     gpointer user_data)
{
  GTask *task = client_task_new (self, cancellable, callback, user_data);
  BlobUpload *upload = g_new0 (BlobUpload, 1);
  g_autoptr(GFile) file = g_file_new_for_path (path);

  upload->digest = g_strdup (digest);
  upload->size = size;
  upload->path = g_strdup (path);
  upload->progress = progress != NULL ? g_object_ref (progress) : NULL;
  g_task_set_task_data (task, upload, (GDestroyNotify) blob_upload_free);
  g_file_read_async (file, G_PRIORITY_DEFAULT, cancellable, on_upload_file_open, task);
}

gboolean
smolvm_oci_client_blob_upload_finish (SmolvmOciClient *self, GAsyncResult *result,
                                      GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- manifests ---- */

void
smolvm_oci_client_manifest_put_async (SmolvmOciClient *self, const gchar *reference,
                                      GBytes *manifest, const gchar *media_type,
                                      GCancellable *cancellable, GAsyncReadyCallback callback,
                                      gpointer user_data)
{
  GTask *task = client_task_new (self, cancellable, callback, user_data);
  OciCall *call = oci_call_new ("PUT", repo_uri (self, "manifests", reference),
                                g_strdup_printf ("PUT manifest %s:%s", self->repository, reference));
  call->content_type = g_strdup (media_type);
  call->body = g_bytes_ref (manifest);
  oci_call_async (self, call, cancellable, on_call_ok, task);
}

gboolean
smolvm_oci_client_manifest_put_finish (SmolvmOciClient *self, GAsyncResult *result,
                                       GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

typedef struct {
  GBytes *body;
  gchar *content_type;
} ManifestAnswer;

static void
manifest_answer_free (ManifestAnswer *answer)
{
  g_clear_pointer (&answer->body, g_bytes_unref);
  g_free (answer->content_type);
  g_free (answer);
}

static void
on_manifest_get (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmOciClient *self = SMOLVM_OCI_CLIENT (source);
  const gchar *reference = g_task_get_task_data (task);
  OciCall *call = oci_call_finish_ok (task, result, SOUP_STATUS_NOT_FOUND);
  ManifestAnswer *answer;

  if (call == NULL)
    return;
  if (soup_message_get_status (call->msg) == SOUP_STATUS_NOT_FOUND) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND,
                             "Registry %s has no manifest %s in repository %s", self->registry,
                             reference, self->repository);
    return;
  }
  if (g_str_has_prefix (reference, "sha256:")) {
    g_autofree gchar *hex = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, call->response_body);
    if (!g_str_equal (hex, reference + strlen ("sha256:"))) {
      g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                               "Registry %s sent manifest %s with sha256:%s", self->registry,
                               reference, hex);
      return;
    }
  }
  answer = g_new0 (ManifestAnswer, 1);
  answer->body = g_bytes_ref (call->response_body);
  answer->content_type = g_strdup (
    soup_message_headers_get_content_type (soup_message_get_response_headers (call->msg), NULL));
  g_task_return_pointer (task, answer, (GDestroyNotify) manifest_answer_free);
}

void
smolvm_oci_client_manifest_get_async (SmolvmOciClient *self, const gchar *reference,
                                      const gchar *media_type, GCancellable *cancellable,
                                      GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = client_task_new (self, cancellable, callback, user_data);
  OciCall *call = oci_call_new ("GET", repo_uri (self, "manifests", reference),
                                g_strdup_printf ("GET manifest %s:%s", self->repository, reference));
  call->accept = g_strdup (media_type);
  g_task_set_task_data (task, g_strdup (reference), g_free);
  oci_call_async (self, call, cancellable, on_manifest_get, task);
}

GBytes *
smolvm_oci_client_manifest_get_finish (SmolvmOciClient *self, GAsyncResult *result,
                                       gchar **content_type, GError **error)
{
  ManifestAnswer *answer = g_task_propagate_pointer (G_TASK (result), error);
  GBytes *body;
  if (answer == NULL)
    return NULL;
  body = g_steal_pointer (&answer->body);
  if (content_type != NULL)
    *content_type = g_steal_pointer (&answer->content_type);
  manifest_answer_free (answer);
  return body;
}

/* ---- the credentials file ---- */

gboolean
smolvm_oci_credentials_lookup (const gchar *path, const gchar *registry, gchar **username,
                               gchar **password, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autofree gchar *contents = NULL;
  gsize length = 0;
  g_autoptr(JsonNode) root = NULL;
  JsonNode *auths_node;
  JsonObject *auths;
  JsonObject *entry = NULL;
  const gchar *auth;
  g_autofree guchar *decoded = NULL;
  g_autofree gchar *text = NULL;
  gsize len = 0;
  gchar *colon;
  const gchar *prefixes[] = { "", "https://", "http://" };

  *username = NULL;
  *password = NULL;
  if (path == NULL)
    return TRUE;
  if (!g_file_get_contents (path, &contents, &length, &local_error) &&
      g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
    return TRUE;
  if (local_error != NULL ||
      (root = smolvm_json_parse (contents, (gssize) length, &local_error)) == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_AUTH_FAILED,
                 "Cannot read the registry credentials file %s: %s", path, local_error->message);
    return FALSE;
  }
  auths_node = JSON_NODE_HOLDS_OBJECT (root)
                 ? json_object_get_member (json_node_get_object (root), "auths")
                 : NULL;
  auths = auths_node != NULL && JSON_NODE_HOLDS_OBJECT (auths_node)
            ? json_node_get_object (auths_node)
            : NULL;
  if (auths == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_AUTH_FAILED,
                 "Registry credentials file %s has no \"auths\" object", path);
    return FALSE;
  }
  for (gsize i = 0; i < G_N_ELEMENTS (prefixes) && entry == NULL; i++) {
    g_autofree gchar *key = g_strconcat (prefixes[i], registry, NULL);
    JsonNode *node = json_object_get_member (auths, key);
    if (node != NULL && JSON_NODE_HOLDS_OBJECT (node))
      entry = json_node_get_object (node);
  }
  if (entry == NULL)
    return TRUE;
  auth = json_object_get_string_member_with_default (entry, "auth", NULL);
  if (auth != NULL) {
    decoded = g_base64_decode (auth, &len);
    text = g_strndup ((const gchar *) decoded, len);
  }
  colon = text != NULL ? strchr (text, ':') : NULL;
  if (colon == NULL || colon == text) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_AUTH_FAILED,
                 "Registry credentials file %s: the \"auth\" of %s is not base64 of "
                 "\"user:password\"",
                 path, registry);
    return FALSE;
  }
  *colon = '\0';
  *username = g_strdup (text);
  *password = g_strdup (colon + 1);
  return TRUE;
}
