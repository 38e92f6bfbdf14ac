/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "smolvm-error-map.h"
#include "smolvm-firecracker.h"
#include "smolvm-json.h"
#include "smolvm-net-config.h"
#include "smolvm-steps.h"

/* How long a fresh firecracker may take to open its API socket. */
#define SOCKET_WAIT_MS 10000
/* The id of the guest's network interface: given at boot, saved in the
 * snapshot, and what a load's network_overrides name. */
#define IFACE_ID "eth0"

struct _SmolvmFirecracker {
  SmolvmVmm parent_instance;
  gchar *api_socket;
  SoupSession *session;
};

G_DEFINE_TYPE (SmolvmFirecracker, smolvm_firecracker, SMOLVM_TYPE_VMM)

/* One API call. */
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

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FcRequest, fc_request_free)

static FcRequest *
fc_request_new (const gchar *method, const gchar *path, JsonBuilder *body)
{
  FcRequest *req = g_new0 (FcRequest, 1);
  req->method = g_strdup (method);
  req->path = g_strdup (path);
  req->body = body != NULL ? json_builder_get_root (body) : NULL;
  return req;
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
  g_autoptr(JsonNode) root = NULL;
  const gchar *fault = NULL;
  gsize len = 0;
  const gchar *data = body != NULL ? g_bytes_get_data (body, &len) : NULL;

  if (data != NULL && (root = smolvm_json_parse_object (data, (gssize) len, NULL)) != NULL)
    fault = json_object_get_string_member_with_default (json_node_get_object (root),
                                                        "fault_message", NULL);
  return g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_BACKEND, "Firecracker refused %s %s (HTTP %u): %s",
                      method, path, soup_message_get_status (msg),
                      fault != NULL ? fault : soup_message_get_reason_phrase (msg));
}

/* ---- one API call: its deadline and the caller's cancel ---- */

typedef struct {
  FcRequest *req;             /* borrowed: the caller keeps it alive */
  GCancellable *cancellable;  /* the caller's, may be NULL */
  gulong cancelled_id;
  GCancellable *call_cancellable; /* soup's: fired by either of the two */
  guint timeout;
  gboolean timed_out;
} FcCall;

static void
fc_call_free (FcCall *call)
{
  g_clear_handle_id (&call->timeout, g_source_remove);
  if (call->cancelled_id != 0)
    g_cancellable_disconnect (call->cancellable, call->cancelled_id);
  g_clear_object (&call->cancellable);
  g_clear_object (&call->call_cancellable);
  g_free (call);
}

static gboolean
on_call_timeout (gpointer user_data)
{
  FcCall *call = user_data;
  call->timeout = 0;
  call->timed_out = TRUE;
  g_cancellable_cancel (call->call_cancellable);
  return G_SOURCE_REMOVE;
}

static void
on_call_cancelled (GCancellable *cancellable, gpointer user_data)
{
  g_cancellable_cancel (user_data);
}

static void
on_call_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmVmm *vmm = g_task_get_source_object (task);
  FcCall *call = g_task_get_task_data (task);
  FcRequest *req = call->req;
  SoupMessage *msg = soup_session_get_async_result_message (SOUP_SESSION (source), result);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = soup_session_send_and_read_finish (SOUP_SESSION (source), result, &error);

  g_clear_handle_id (&call->timeout, g_source_remove);
  if (body == NULL && call->timed_out) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                             "Firecracker did not answer %s %s within %u s (see %s)", req->method,
                             req->path, smolvm_vmm_get_call_timeout (vmm),
                             smolvm_vmm_get_console_log_path (vmm));
    return;
  }
  if (body == NULL && g_cancellable_is_cancelled (call->cancellable)) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED, "Cancelled %s %s",
                             req->method, req->path);
    return;
  }
  if (body == NULL) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                             "Firecracker API call %s %s failed: %s (see %s)", req->method,
                             req->path, error->message, smolvm_vmm_get_console_log_path (vmm));
    return;
  }
  if (!SOUP_STATUS_IS_SUCCESSFUL (soup_message_get_status (msg))) {
    g_task_return_error (task, fault_to_error (msg, body, req->method, req->path));
    return;
  }
  g_task_return_pointer (task, g_steal_pointer (&body), (GDestroyNotify) g_bytes_unref);
}

/* Sends @req (kept alive by the caller until the call completes); the
 * result is the answer's body. @cancellable stops the request; a call other
 * than saving or loading state must also answer within the VMM timeout, so
 * that a hung VMM cannot hold its VM's operation slot for good. */
static void
fc_call_async (SmolvmFirecracker *self, FcRequest *req, GCancellable *cancellable,
               GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, NULL, callback, user_data);
  FcCall *call = g_new0 (FcCall, 1);
  g_autofree gchar *uri = g_strconcat ("http://localhost", req->path, NULL);
  g_autoptr(SoupMessage) msg = soup_message_new (req->method, uri);
  guint timeout_s = smolvm_vmm_get_call_timeout (SMOLVM_VMM (self));

  call->req = req;
  call->call_cancellable = g_cancellable_new ();
  g_task_set_task_data (task, call, (GDestroyNotify) fc_call_free);
  if (cancellable != NULL) {
    call->cancellable = g_object_ref (cancellable);
    /* runs at once if the caller has cancelled already */
    call->cancelled_id = g_cancellable_connect (cancellable, G_CALLBACK (on_call_cancelled),
                                                g_object_ref (call->call_cancellable),
                                                g_object_unref);
  }
  if (req->body != NULL) {
    g_autofree gchar *json = json_to_string (req->body, FALSE);
    gsize len = strlen (json);
    g_autoptr(GBytes) bytes = g_bytes_new_take (g_steal_pointer (&json), len);
    soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
  }
  soup_message_headers_replace (soup_message_get_request_headers (msg), "Accept",
                                "application/json");
  /* a snapshot's time grows with guest memory */
  if (!g_str_has_prefix (req->path, "/snapshot/") && timeout_s > 0)
    call->timeout = g_timeout_add_seconds (timeout_s, on_call_timeout, call);
  soup_session_send_and_read_async (self->session, msg, G_PRIORITY_DEFAULT,
                                    call->call_cancellable, on_call_done, task);
}

static GBytes *
fc_call_finish (GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- operations: steps run by SmolvmSteps ---- */

/* What one operation keeps along its steps. */
typedef struct {
  FcRequest *settle; /* the call that waits out a cancelled snapshot */
} FcOp;

static void
fc_op_free (FcOp *op)
{
  g_clear_pointer (&op->settle, fc_request_free);
  g_free (op);
}

static void
on_request_step_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = fc_call_finish (result, &error);

  if (body == NULL) {
    smolvm_steps_fail (steps, g_steal_pointer (&error));
    return;
  }
  smolvm_steps_next (steps);
}

static void
step_request (SmolvmSteps *steps, gpointer step_data)
{
  fc_call_async (smolvm_steps_get_source_object (steps), step_data,
                 smolvm_steps_get_cancellable (steps), on_request_step_done, steps);
}

static void
add_request (SmolvmSteps *steps, const gchar *method, const gchar *path, JsonBuilder *body)
{
  smolvm_steps_add (steps, step_request, fc_request_new (method, path, body),
                    (GDestroyNotify) fc_request_free);
}

static void
step_check_running (SmolvmSteps *steps, gpointer step_data)
{
  SmolvmVmm *vmm = smolvm_steps_get_source_object (steps);

  if (!smolvm_vmm_is_running (vmm)) {
    smolvm_steps_fail (steps, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_INVALID_STATE,
                                           "The firecracker process of VM '%s' is not running",
                                           smolvm_vmm_get_vm_id (vmm)));
    return;
  }
  smolvm_steps_next (steps);
}

static void
step_spawn (SmolvmSteps *steps, gpointer step_data)
{
  SmolvmFirecracker *self = smolvm_steps_get_source_object (steps);
  g_autoptr(GError) error = NULL;
  const gchar *argv[] = { smolvm_vmm_get_binary (SMOLVM_VMM (self)),
                          "--api-sock",
                          self->api_socket,
                          "--id",
                          smolvm_vmm_get_vm_id (SMOLVM_VMM (self)),
                          NULL };

  /* A stale socket from a crashed process would make firecracker refuse
   * to start ("Address in use"). */
  if (unlink (self->api_socket) != 0 && errno != ENOENT) {
    smolvm_error_set_errno (&error, errno, "Cannot remove stale API socket %s", self->api_socket);
    smolvm_steps_fail (steps, g_steal_pointer (&error));
    return;
  }
  if (!smolvm_vmm_spawn (SMOLVM_VMM (self), argv, &error)) {
    smolvm_steps_fail (steps, g_steal_pointer (&error));
    return;
  }
  smolvm_steps_next (steps);
}

static void
on_socket_ready (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  SmolvmVmm *vmm = SMOLVM_VMM (source);
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketConnection) connection = smolvm_vmm_wait_socket_finish (vmm, result, &error);

  if (connection == NULL) {
    g_prefix_error (&error, "Firecracker did not start (see %s): ",
                    smolvm_vmm_get_console_log_path (vmm));
    smolvm_steps_fail (steps, g_steal_pointer (&error));
    return;
  }
  /* only a probe: soup makes its own connections */
  g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
  smolvm_steps_next (steps);
}

static void
step_wait_socket (SmolvmSteps *steps, gpointer step_data)
{
  SmolvmFirecracker *self = smolvm_steps_get_source_object (steps);
  smolvm_vmm_wait_socket_async (SMOLVM_VMM (self), self->api_socket, SOCKET_WAIT_MS,
                                smolvm_steps_get_cancellable (steps), on_socket_ready, steps);
}

static void
on_launch_terminated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  smolvm_vmm_terminate_finish (SMOLVM_VMM (source), result);
  smolvm_steps_rollback_done (user_data);
}

/* A launch that fails or is cancelled leaves no process behind. */
static void
rollback_launch (SmolvmSteps *steps, const GError *error)
{
  smolvm_vmm_terminate_async (smolvm_steps_get_source_object (steps), on_launch_terminated, steps);
}

/* An operation whose calls the caller adds, then runs. With @launch it
 * first starts a fresh firecracker and waits for its API socket, and a
 * failure terminates that process; otherwise the process must run. */
static SmolvmSteps *
fc_op_new (SmolvmFirecracker *self, const gchar *name, gboolean launch,
           GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  SmolvmSteps *steps = smolvm_steps_new (self, name, cancellable, callback, user_data);

  smolvm_steps_set_data (steps, g_new0 (FcOp, 1), (GDestroyNotify) fc_op_free);
  if (launch) {
    smolvm_steps_add (steps, step_spawn, NULL, NULL);
    smolvm_steps_add (steps, step_wait_socket, NULL, NULL);
    smolvm_steps_set_rollback (steps, rollback_launch);
  } else {
    smolvm_steps_add (steps, step_check_running, NULL, NULL);
  }
  return steps;
}

static void
smolvm_firecracker_boot_async (SmolvmVmm *vmm, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data)
{
  SmolvmFirecracker *self = SMOLVM_FIRECRACKER (vmm);
  const SmolvmVmConfig *config = smolvm_vmm_get_config (vmm);
  g_autoptr(SmolvmSteps) steps = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmNetConfig) net =
    smolvm_net_config_new_from_variant (smolvm_vmm_get_network_config (vmm), &error);
  g_autofree gchar *boot_args = NULL;
  g_autoptr(JsonBuilder) machine = json_builder_new ();
  g_autoptr(JsonBuilder) boot = json_builder_new ();
  g_autoptr(JsonBuilder) drive = json_builder_new ();
  g_autoptr(JsonBuilder) action = json_builder_new ();

  if (net == NULL) {
    g_autoptr(GTask) task = g_task_new (vmm, cancellable, callback, user_data);
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  boot_args = smolvm_net_config_boot_args (net, config->boot_args);
  steps = fc_op_new (self, "booting", TRUE, cancellable, callback, user_data);

  json_builder_begin_object (machine);
  json_builder_set_member_name (machine, "vcpu_count");
  json_builder_add_int_value (machine, config->vcpu_count);
  json_builder_set_member_name (machine, "mem_size_mib");
  json_builder_add_int_value (machine, config->mem_size_mib);
  json_builder_end_object (machine);
  add_request (steps, "PUT", "/machine-config", machine);

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
  add_request (steps, "PUT", "/boot-source", boot);

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
  add_request (steps, "PUT", "/drives/rootfs", drive);

  if (net->tap_device != NULL) {
    g_autoptr(JsonBuilder) iface = json_builder_new ();
    json_builder_begin_object (iface);
    json_builder_set_member_name (iface, "iface_id");
    json_builder_add_string_value (iface, IFACE_ID);
    json_builder_set_member_name (iface, "host_dev_name");
    json_builder_add_string_value (iface, net->tap_device);
    if (net->guest_mac != NULL) {
      json_builder_set_member_name (iface, "guest_mac");
      json_builder_add_string_value (iface, net->guest_mac);
    }
    json_builder_end_object (iface);
    add_request (steps, "PUT", "/network-interfaces/" IFACE_ID, iface);
  }

  json_builder_begin_object (action);
  json_builder_set_member_name (action, "action_type");
  json_builder_add_string_value (action, "InstanceStart");
  json_builder_end_object (action);
  add_request (steps, "PUT", "/actions", action);

  smolvm_steps_run (g_steal_pointer (&steps));
}

static void
smolvm_firecracker_set_paused_async (SmolvmVmm *vmm, gboolean paused, GCancellable *cancellable,
                                     GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(SmolvmSteps) steps = fc_op_new (SMOLVM_FIRECRACKER (vmm),
                                            paused ? "pausing" : "resuming", FALSE, cancellable,
                                            callback, user_data);
  g_autoptr(JsonBuilder) body = json_builder_new ();

  json_builder_begin_object (body);
  json_builder_set_member_name (body, "state");
  json_builder_add_string_value (body, paused ? "Paused" : "Resumed");
  json_builder_end_object (body);
  add_request (steps, "PATCH", "/vm", body);
  smolvm_steps_run (g_steal_pointer (&steps));
}

static void
on_settled (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = fc_call_finish (result, &error);

  if (body == NULL)
    g_warning ("Firecracker did not answer after a cancelled snapshot: %s", error->message);
  smolvm_steps_rollback_done (steps);
}

/* Firecracker cannot stop writing a snapshot: a cancelled request only
 * stops our waiting. Wait for the VMM to answer again (it serves calls one
 * at a time), so that the caller removes files nobody writes any more and
 * finds the guest paused in a healthy VMM, ready to resume. */
static void
rollback_snapshot_create (SmolvmSteps *steps, const GError *error)
{
  FcOp *op = smolvm_steps_get_data (steps);

  if (!g_error_matches (error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED) ||
      !smolvm_vmm_is_running (smolvm_steps_get_source_object (steps))) {
    smolvm_steps_rollback_done (steps);
    return;
  }
  /* kept with the operation: the call borrows it */
  op->settle = fc_request_new ("GET", "/", NULL);
  fc_call_async (smolvm_steps_get_source_object (steps), op->settle, NULL, on_settled, steps);
}

static void
smolvm_firecracker_snapshot_create_async (SmolvmVmm *vmm, const gchar *vmstate_path,
                                          const gchar *mem_path, SmolvmProgress *progress,
                                          GCancellable *cancellable, GAsyncReadyCallback callback,
                                          gpointer user_data)
{
  g_autoptr(SmolvmSteps) steps = fc_op_new (SMOLVM_FIRECRACKER (vmm), "saving the VM state",
                                            FALSE, cancellable, callback, user_data);
  g_autoptr(JsonBuilder) body = json_builder_new ();

  json_builder_begin_object (body);
  json_builder_set_member_name (body, "snapshot_type");
  json_builder_add_string_value (body, "Full");
  json_builder_set_member_name (body, "snapshot_path");
  json_builder_add_string_value (body, vmstate_path);
  json_builder_set_member_name (body, "mem_file_path");
  json_builder_add_string_value (body, mem_path);
  json_builder_end_object (body);
  add_request (steps, "PUT", "/snapshot/create", body);
  smolvm_steps_set_rollback (steps, rollback_snapshot_create);
  /* Firecracker writes both files in one call and tells nothing meanwhile */
  smolvm_progress_set_phase (progress, "saving-state", FALSE);
  smolvm_steps_run (g_steal_pointer (&steps));
}

static void
smolvm_firecracker_snapshot_load_async (SmolvmVmm *vmm, const gchar *vmstate_path,
                                        const gchar *mem_path, gboolean resume,
                                        const gchar *tap_override, SmolvmProgress *progress,
                                        GCancellable *cancellable, GAsyncReadyCallback callback,
                                        gpointer user_data)
{
  g_autoptr(SmolvmSteps) steps = fc_op_new (SMOLVM_FIRECRACKER (vmm), "loading the snapshot",
                                            TRUE, cancellable, callback, user_data);
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
  /* a clone: the snapshot's TAP device is its original's */
  if (tap_override != NULL) {
    json_builder_set_member_name (body, "network_overrides");
    json_builder_begin_array (body);
    json_builder_begin_object (body);
    json_builder_set_member_name (body, "iface_id");
    json_builder_add_string_value (body, IFACE_ID);
    json_builder_set_member_name (body, "host_dev_name");
    json_builder_add_string_value (body, tap_override);
    json_builder_end_object (body);
    json_builder_end_array (body);
  }
  json_builder_end_object (body);
  add_request (steps, "PUT", "/snapshot/load", body);
  smolvm_progress_set_phase (progress, "loading-state", FALSE);
  smolvm_steps_run (g_steal_pointer (&steps));
}

static void
on_attach_info (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = fc_call_finish (result, &error);
  g_autoptr(JsonNode) root = NULL;
  const gchar *state = NULL;
  const gchar *data;
  gsize len = 0;

  if (body == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  data = g_bytes_get_data (body, &len);
  if (data != NULL && (root = smolvm_json_parse_object (data, (gssize) len, NULL)) != NULL)
    state = json_object_get_string_member_with_default (json_node_get_object (root), "state",
                                                        NULL);
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
  FcRequest *info = fc_request_new ("GET", "/", NULL);

  /* the call borrows the request: it lives as long as the task */
  g_task_set_task_data (task, info, (GDestroyNotify) fc_request_free);
  if (!smolvm_vmm_adopt (vmm, pid, &error)) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  fc_call_async (SMOLVM_FIRECRACKER (vmm), info, cancellable, on_attach_info,
                 g_steal_pointer (&task));
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

