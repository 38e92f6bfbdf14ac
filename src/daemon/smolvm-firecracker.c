/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "smolvm-error.h"
#include "smolvm-firecracker.h"

/* How long a fresh firecracker may take to open its API socket. */
#define SOCKET_WAIT_MS 10000
#define SOCKET_POLL_MS 10

struct _SmolvmFirecracker {
  SmolvmVmm parent_instance;
  gchar *api_socket;
  SoupSession *session;
};

G_DEFINE_TYPE (SmolvmFirecracker, smolvm_firecracker, SMOLVM_TYPE_VMM)

/* One API call of a sequence. */
typedef struct {
  gchar *method;
  gchar *path;
  JsonNode *body; /* NULL for GET */
} FcRequest;

static void
fc_request_free (FcRequest *req)
{
  g_free (req->method);
  g_free (req->path);
  g_clear_pointer (&req->body, json_node_unref);
  g_free (req);
}

static FcRequest *
fc_request_new (const gchar *method, const gchar *path, JsonBuilder *body)
{
  FcRequest *req = g_new0 (FcRequest, 1);
  req->method = g_strdup (method);
  req->path = g_strdup (path);
  req->body = body != NULL ? json_builder_get_root (body) : NULL;
  return req;
}

/* State of a sequence of calls run one after the other. */
typedef struct {
  GPtrArray *requests;
  guint next;
  gboolean spawn_first;
  gint64 deadline;
  GBytes *last_body; /* answer of the last call */
  GCancellable *call_cancellable; /* of the call under way, for its deadline */
  guint call_timeout;
  gboolean call_timed_out;
} Sequence;

static void
sequence_free (Sequence *seq)
{
  g_ptr_array_unref (seq->requests);
  g_clear_pointer (&seq->last_body, g_bytes_unref);
  g_clear_handle_id (&seq->call_timeout, g_source_remove);
  g_clear_object (&seq->call_cancellable);
  g_free (seq);
}

static void
smolvm_firecracker_finalize (GObject *object)
{
  SmolvmFirecracker *self = SMOLVM_FIRECRACKER (object);
  if (self->session != NULL)
    soup_session_abort (self->session);
  g_clear_object (&self->session);
  g_free (self->api_socket);
  G_OBJECT_CLASS (smolvm_firecracker_parent_class)->finalize (object);
}

static void
smolvm_firecracker_constructed (GObject *object)
{
  SmolvmFirecracker *self = SMOLVM_FIRECRACKER (object);
  g_autoptr(GSocketAddress) address = NULL;

  G_OBJECT_CLASS (smolvm_firecracker_parent_class)->constructed (object);

  self->api_socket =
    g_build_filename (smolvm_vmm_get_runtime_dir (SMOLVM_VMM (self)), "firecracker.sock", NULL);
  address = g_unix_socket_address_new (self->api_socket);
  /* Every request goes to the Unix socket whatever the URI's host says. */
  self->session = soup_session_new_with_options ("remote-connectable", address, "timeout", 0,
                                                 "max-conns-per-host", 1, NULL);
}

static GError *
fault_to_error (SoupMessage *msg, GBytes *body, const gchar *method, const gchar *path)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  const gchar *fault = NULL;
  gsize len = 0;
  const gchar *data = body != NULL ? g_bytes_get_data (body, &len) : NULL;

  if (data != NULL && len > 0 && json_parser_load_from_data (parser, data, (gssize) len, NULL)) {
    JsonNode *root = json_parser_get_root (parser);
    if (JSON_NODE_HOLDS_OBJECT (root))
      fault = json_object_get_string_member_with_default (json_node_get_object (root),
                                                          "fault_message", NULL);
  }
  return g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_BACKEND, "Firecracker refused %s %s (HTTP %u): %s",
                      method, path, soup_message_get_status (msg),
                      fault != NULL ? fault : soup_message_get_reason_phrase (msg));
}

static void sequence_next (GTask *task);

static void
on_request_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmFirecracker *self = g_task_get_source_object (task);
  Sequence *seq = g_task_get_task_data (task);
  FcRequest *req = g_ptr_array_index (seq->requests, seq->next - 1);
  SoupMessage *msg = soup_session_get_async_result_message (SOUP_SESSION (source), result);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = soup_session_send_and_read_finish (SOUP_SESSION (source), result, &error);

  g_clear_handle_id (&seq->call_timeout, g_source_remove);
  g_clear_object (&seq->call_cancellable);
  if (body == NULL && seq->call_timed_out) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                             "Firecracker did not answer %s %s within %u s (see %s)",
                             req->method, req->path,
                             smolvm_vmm_get_call_timeout (SMOLVM_VMM (self)),
                             smolvm_vmm_get_console_log_path (SMOLVM_VMM (self)));
    return;
  }
  if (body == NULL) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                             "Firecracker API call %s %s failed: %s (see %s)", req->method,
                             req->path, error->message,
                             smolvm_vmm_get_console_log_path (SMOLVM_VMM (self)));
    return;
  }
  if (!SOUP_STATUS_IS_SUCCESSFUL (soup_message_get_status (msg))) {
    g_task_return_error (task, fault_to_error (msg, body, req->method, req->path));
    return;
  }
  g_clear_pointer (&seq->last_body, g_bytes_unref);
  seq->last_body = g_steal_pointer (&body);
  sequence_next (g_steal_pointer (&task));
}

static gboolean
on_call_timeout (gpointer user_data)
{
  Sequence *seq = user_data;
  seq->call_timeout = 0;
  seq->call_timed_out = TRUE;
  g_cancellable_cancel (seq->call_cancellable);
  return G_SOURCE_REMOVE;
}

static void
send_request (GTask *task, FcRequest *req)
{
  SmolvmFirecracker *self = g_task_get_source_object (task);
  Sequence *seq = g_task_get_task_data (task);
  g_autofree gchar *uri = g_strconcat ("http://localhost", req->path, NULL);
  g_autoptr(SoupMessage) msg = soup_message_new (req->method, uri);

  if (req->body != NULL) {
    g_autofree gchar *json = json_to_string (req->body, FALSE);
    gsize len = strlen (json);
    g_autoptr(GBytes) bytes = g_bytes_new_take (g_steal_pointer (&json), len);
    soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
  }
  soup_message_headers_replace (soup_message_get_request_headers (msg), "Accept",
                                "application/json");
  /* A call must answer in time, so that a hung VMM cannot hold its VM's
   * operation slot for good; a snapshot's time grows with guest memory. */
  seq->call_timed_out = FALSE;
  if (!g_str_has_prefix (req->path, "/snapshot/") &&
      smolvm_vmm_get_call_timeout (SMOLVM_VMM (self)) > 0) {
    seq->call_cancellable = g_cancellable_new ();
    seq->call_timeout = g_timeout_add_seconds (smolvm_vmm_get_call_timeout (SMOLVM_VMM (self)),
                                               on_call_timeout, seq);
  }
  soup_session_send_and_read_async (self->session, msg, G_PRIORITY_DEFAULT, seq->call_cancellable,
                                    on_request_done, task);
}

static void
sequence_next (GTask *task)
{
  Sequence *seq = g_task_get_task_data (task);

  if (seq->next >= seq->requests->len) {
    g_task_return_boolean (task, TRUE);
    g_object_unref (task);
    return;
  }
  send_request (task, g_ptr_array_index (seq->requests, seq->next++));
}

static gboolean socket_poll (gpointer user_data);

static void
on_socket_probe_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(GBytes) body = soup_session_send_and_read_finish (SOUP_SESSION (source), result, NULL);

  if (body != NULL) {
    sequence_next (g_steal_pointer (&task));
    return;
  }
  g_timeout_add (SOCKET_POLL_MS, socket_poll, g_steal_pointer (&task));
}

/* A fresh process needs a moment to bind its socket: poll until GET /
 * answers, the process dies, or the deadline passes. */
static gboolean
socket_poll (gpointer user_data)
{
  GTask *task = user_data;
  SmolvmFirecracker *self = g_task_get_source_object (task);
  Sequence *seq = g_task_get_task_data (task);
  struct stat st;

  if (!smolvm_vmm_is_running (SMOLVM_VMM (self))) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                             "%s exited before opening its API socket (see %s)",
                             smolvm_vmm_get_binary (SMOLVM_VMM (self)),
                             smolvm_vmm_get_console_log_path (SMOLVM_VMM (self)));
    g_object_unref (task);
    return G_SOURCE_REMOVE;
  }
  if (g_get_monotonic_time () > seq->deadline) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                             "%s did not open its API socket %s within %d s",
                             smolvm_vmm_get_binary (SMOLVM_VMM (self)), self->api_socket,
                             SOCKET_WAIT_MS / 1000);
    g_object_unref (task);
    return G_SOURCE_REMOVE;
  }
  if (stat (self->api_socket, &st) == 0 && S_ISSOCK (st.st_mode)) {
    g_autoptr(SoupMessage) msg = soup_message_new ("GET", "http://localhost/");
    soup_session_send_and_read_async (self->session, msg, G_PRIORITY_DEFAULT,
                                      g_task_get_cancellable (task), on_socket_probe_done, task);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

/* Runs @requests in order; with @spawn_first, starts a fresh firecracker
 * and waits for its socket before the first. */
static void
run_sequence (SmolvmFirecracker *self, GPtrArray *requests, gboolean spawn_first,
              GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  Sequence *seq = g_new0 (Sequence, 1);
  g_autoptr(GError) error = NULL;

  seq->requests = requests;
  g_task_set_task_data (task, seq, (GDestroyNotify) sequence_free);

  if (!spawn_first) {
    if (!smolvm_vmm_is_running (SMOLVM_VMM (self))) {
      g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_STATE,
                               "The firecracker process of VM '%s' is not running",
                               smolvm_vmm_get_vm_id (SMOLVM_VMM (self)));
      g_object_unref (task);
      return;
    }
    sequence_next (task);
    return;
  }

  /* A longer path cannot be bound: firecracker would never answer. */
  if (strlen (self->api_socket) >= G_SIZEOF_MEMBER (struct sockaddr_un, sun_path)) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                             "The API socket path %s is longer than %" G_GSIZE_FORMAT
                             " bytes; use a shorter runtime directory",
                             self->api_socket, G_SIZEOF_MEMBER (struct sockaddr_un, sun_path) - 1);
    g_object_unref (task);
    return;
  }
  /* A stale socket from a crashed process would make firecracker refuse
   * to start ("Address in use"). */
  if (unlink (self->api_socket) != 0 && errno != ENOENT) {
    smolvm_error_set_errno (&error, errno, "Cannot remove stale API socket %s", self->api_socket);
    g_task_return_error (task, g_steal_pointer (&error));
    g_object_unref (task);
    return;
  }
  {
    const gchar *argv[] = { smolvm_vmm_get_binary (SMOLVM_VMM (self)),
                            "--api-sock",
                            self->api_socket,
                            "--id",
                            smolvm_vmm_get_vm_id (SMOLVM_VMM (self)),
                            NULL };
    if (!smolvm_vmm_spawn (SMOLVM_VMM (self), argv, &error)) {
      g_task_return_error (task, g_steal_pointer (&error));
      g_object_unref (task);
      return;
    }
  }
  seq->deadline = g_get_monotonic_time () + SOCKET_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  g_timeout_add (SOCKET_POLL_MS, socket_poll, task);
}

static GPtrArray *
request_list_new (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify) fc_request_free);
}

static gchar *
boot_args_with_network (const SmolvmVmConfig *config, GVariant *net)
{
  const gchar *guest_ip = NULL, *gateway_ip = NULL, *netmask = NULL;

  if (net == NULL || !g_variant_lookup (net, "guest_ip", "&s", &guest_ip) ||
      !g_variant_lookup (net, "gateway_ip", "&s", &gateway_ip) ||
      !g_variant_lookup (net, "netmask", "&s", &netmask))
    return g_strdup (config->boot_args);
  /* the kernel's ip= autoconfiguration gives the guest its address */
  return g_strdup_printf ("%s ip=%s::%s:%s::eth0:off", config->boot_args, guest_ip, gateway_ip,
                          netmask);
}

static void
smolvm_firecracker_boot_async (SmolvmVmm *vmm, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data)
{
  SmolvmFirecracker *self = SMOLVM_FIRECRACKER (vmm);
  const SmolvmVmConfig *config = smolvm_vmm_get_config (vmm);
  GVariant *net = smolvm_vmm_get_network_config (vmm);
  GPtrArray *requests = request_list_new ();
  g_autofree gchar *boot_args = boot_args_with_network (config, net);
  const gchar *tap = NULL, *mac = NULL;
  g_autoptr(JsonBuilder) machine = json_builder_new ();
  g_autoptr(JsonBuilder) boot = json_builder_new ();
  g_autoptr(JsonBuilder) drive = json_builder_new ();
  g_autoptr(JsonBuilder) action = json_builder_new ();

  json_builder_begin_object (machine);
  json_builder_set_member_name (machine, "vcpu_count");
  json_builder_add_int_value (machine, config->vcpu_count);
  json_builder_set_member_name (machine, "mem_size_mib");
  json_builder_add_int_value (machine, config->mem_size_mib);
  json_builder_end_object (machine);
  g_ptr_array_add (requests, fc_request_new ("PUT", "/machine-config", machine));

  json_builder_begin_object (boot);
  json_builder_set_member_name (boot, "kernel_image_path");
  json_builder_add_string_value (boot, config->kernel_path);
  json_builder_set_member_name (boot, "boot_args");
  json_builder_add_string_value (boot, boot_args);
  if (config->initrd_path != NULL && config->initrd_path[0] != '\0') {
    json_builder_set_member_name (boot, "initrd_path");
    json_builder_add_string_value (boot, config->initrd_path);
  }
  json_builder_end_object (boot);
  g_ptr_array_add (requests, fc_request_new ("PUT", "/boot-source", boot));

  json_builder_begin_object (drive);
  json_builder_set_member_name (drive, "drive_id");
  json_builder_add_string_value (drive, "rootfs");
  json_builder_set_member_name (drive, "path_on_host");
  json_builder_add_string_value (drive, smolvm_vmm_get_disk_path (vmm));
  json_builder_set_member_name (drive, "is_root_device");
  json_builder_add_boolean_value (drive, TRUE);
  json_builder_set_member_name (drive, "is_read_only");
  json_builder_add_boolean_value (drive, FALSE);
  json_builder_end_object (drive);
  g_ptr_array_add (requests, fc_request_new ("PUT", "/drives/rootfs", drive));

  if (net != NULL && g_variant_lookup (net, "tap_device", "&s", &tap)) {
    g_autoptr(JsonBuilder) iface = json_builder_new ();
    json_builder_begin_object (iface);
    json_builder_set_member_name (iface, "iface_id");
    json_builder_add_string_value (iface, "eth0");
    json_builder_set_member_name (iface, "host_dev_name");
    json_builder_add_string_value (iface, tap);
    if (g_variant_lookup (net, "guest_mac", "&s", &mac)) {
      json_builder_set_member_name (iface, "guest_mac");
      json_builder_add_string_value (iface, mac);
    }
    json_builder_end_object (iface);
    g_ptr_array_add (requests, fc_request_new ("PUT", "/network-interfaces/eth0", iface));
  }

  json_builder_begin_object (action);
  json_builder_set_member_name (action, "action_type");
  json_builder_add_string_value (action, "InstanceStart");
  json_builder_end_object (action);
  g_ptr_array_add (requests, fc_request_new ("PUT", "/actions", action));

  run_sequence (self, requests, TRUE, cancellable, callback, user_data);
}

static void
smolvm_firecracker_set_paused_async (SmolvmVmm *vmm, gboolean paused, GCancellable *cancellable,
                                     GAsyncReadyCallback callback, gpointer user_data)
{
  GPtrArray *requests = request_list_new ();
  g_autoptr(JsonBuilder) body = json_builder_new ();

  json_builder_begin_object (body);
  json_builder_set_member_name (body, "state");
  json_builder_add_string_value (body, paused ? "Paused" : "Resumed");
  json_builder_end_object (body);
  g_ptr_array_add (requests, fc_request_new ("PATCH", "/vm", body));
  run_sequence (SMOLVM_FIRECRACKER (vmm), requests, FALSE, cancellable, callback, user_data);
}

static void
smolvm_firecracker_snapshot_create_async (SmolvmVmm *vmm, const gchar *vmstate_path,
                                          const gchar *mem_path, SmolvmProgress *progress,
                                          GCancellable *cancellable, GAsyncReadyCallback callback,
                                          gpointer user_data)
{
  GPtrArray *requests = request_list_new ();
  g_autoptr(JsonBuilder) body = json_builder_new ();

  json_builder_begin_object (body);
  json_builder_set_member_name (body, "snapshot_type");
  json_builder_add_string_value (body, "Full");
  json_builder_set_member_name (body, "snapshot_path");
  json_builder_add_string_value (body, vmstate_path);
  json_builder_set_member_name (body, "mem_file_path");
  json_builder_add_string_value (body, mem_path);
  json_builder_end_object (body);
  g_ptr_array_add (requests, fc_request_new ("PUT", "/snapshot/create", body));
  /* Firecracker writes both files in one call and tells nothing meanwhile */
  smolvm_progress_set_phase (progress, "saving-state", FALSE);
  run_sequence (SMOLVM_FIRECRACKER (vmm), requests, FALSE, cancellable, callback, user_data);
}

static void
smolvm_firecracker_snapshot_load_async (SmolvmVmm *vmm, const gchar *vmstate_path,
                                        const gchar *mem_path, gboolean resume,
                                        SmolvmProgress *progress, GCancellable *cancellable,
                                        GAsyncReadyCallback callback, gpointer user_data)
{
  GPtrArray *requests = request_list_new ();
  g_autoptr(JsonBuilder) body = json_builder_new ();

  json_builder_begin_object (body);
  json_builder_set_member_name (body, "snapshot_path");
  json_builder_add_string_value (body, vmstate_path);
  /* mem_file_path is deprecated; a File backend maps mem.bin privately */
  json_builder_set_member_name (body, "mem_backend");
  json_builder_begin_object (body);
  json_builder_set_member_name (body, "backend_type");
  json_builder_add_string_value (body, "File");
  json_builder_set_member_name (body, "backend_path");
  json_builder_add_string_value (body, mem_path);
  json_builder_end_object (body);
  json_builder_set_member_name (body, "resume_vm");
  json_builder_add_boolean_value (body, resume);
  json_builder_end_object (body);
  g_ptr_array_add (requests, fc_request_new ("PUT", "/snapshot/load", body));
  smolvm_progress_set_phase (progress, "loading-state", FALSE);
  run_sequence (SMOLVM_FIRECRACKER (vmm), requests, TRUE, cancellable, callback, user_data);
}

static void
on_attach_info (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  Sequence *seq = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  const gchar *state = NULL;
  gsize len = 0;
  const gchar *data;

  if (!g_task_propagate_boolean (G_TASK (result), &error)) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  data = g_bytes_get_data (seq->last_body, &len);
  if (json_parser_load_from_data (parser, data, (gssize) len, NULL) &&
      JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    state = json_object_get_string_member_with_default (
      json_node_get_object (json_parser_get_root (parser)), "state", NULL);
  if (g_strcmp0 (state, "Running") == 0 || g_strcmp0 (state, "Paused") == 0) {
    g_task_return_int (task, g_str_equal (state, "Paused") ? 1 : 0);
    return;
  }
  g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                           "Firecracker reports an unexpected state '%s'",
                           state != NULL ? state : "(none)");
}

static void
smolvm_firecracker_attach_async (SmolvmVmm *vmm, GPid pid, GCancellable *cancellable,
                                 GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new (vmm, cancellable, callback, user_data);
  g_autoptr(GError) error = NULL;
  GPtrArray *requests = request_list_new ();
  GTask *inner;
  Sequence *seq;

  if (!smolvm_vmm_adopt (vmm, pid, &error)) {
    g_ptr_array_unref (requests);
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_ptr_array_add (requests, fc_request_new ("GET", "/", NULL));
  /* run the GET by hand so that its answer stays reachable in task data */
  inner = g_task_new (vmm, cancellable, on_attach_info, g_object_ref (task));
  seq = g_new0 (Sequence, 1);
  seq->requests = requests;
  g_task_set_task_data (inner, seq, (GDestroyNotify) sequence_free);
  g_task_set_task_data (task, seq, NULL);
  sequence_next (inner);
}

static void
smolvm_firecracker_class_init (SmolvmFirecrackerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  SmolvmVmmClass *vmm_class = SMOLVM_VMM_CLASS (klass);

  object_class->finalize = smolvm_firecracker_finalize;
  object_class->constructed = smolvm_firecracker_constructed;
  vmm_class->boot_async = smolvm_firecracker_boot_async;
  vmm_class->set_paused_async = smolvm_firecracker_set_paused_async;
  vmm_class->snapshot_create_async = smolvm_firecracker_snapshot_create_async;
  vmm_class->snapshot_load_async = smolvm_firecracker_snapshot_load_async;
  vmm_class->attach_async = smolvm_firecracker_attach_async;
}

static void
smolvm_firecracker_init (SmolvmFirecracker *self)
{
}

