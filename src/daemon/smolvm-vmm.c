/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* setns */
#endif
#include "config.h"

#include <sched.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <string.h>

#include <gio/gunixsocketaddress.h>
#include <glib-unix.h>

#include "smolvm-error-map.h"
#include "smolvm-net-config.h"
#include "smolvm-vmm.h"

#define TERMINATE_GRACE_MS 3000
/* A fresh VMM binds its socket within milliseconds: a directory monitor
 * says when it appears; retries, soon and then less often (never more than
 * this far apart), cover a monitor that cannot watch the directory or an
 * event that comes before the socket listens. */
#define SOCKET_RETRY_FIRST_MS 1
#define SOCKET_RETRY_MAX_MS 50

typedef struct {
  gchar *vm_id;
  SmolvmVmConfig *config;
  GVariant *network_config;
  gchar *disk_path;
  gchar *runtime_dir;
  gchar *console_log_path;
  gchar *binary;
  gchar *process_log_path;

  GSubprocess *process; /* when we spawned it */
  GPid pid;             /* until its exit is handled, not merely reaped */
  GPid adopted_pid;     /* when an earlier daemon spawned it */
  gboolean guest_shut_down;
  int adopted_pidfd;
  guint adopted_watch;
  GPtrArray *exit_waiters; /* GTask, completed when the process is gone */
  GSource *terminate_grace; /* SIGKILL timer of a terminate under way */
  GCancellable *cancellable;
} SmolvmVmmPrivate;

G_DEFINE_TYPE_WITH_PRIVATE (SmolvmVmm, smolvm_vmm, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_VM_ID,
  PROP_CONFIG,
  PROP_NETWORK_CONFIG,
  PROP_DISK_PATH,
  PROP_RUNTIME_DIR,
  PROP_CONSOLE_LOG_PATH,
  PROP_BINARY,
  N_PROPS
};
static GParamSpec *props[N_PROPS];

enum { SIGNAL_EXITED, SIGNAL_GUEST_STATE, N_SIGNALS };
static guint signals[N_SIGNALS];

static void
smolvm_vmm_finalize (GObject *object)
{
  SmolvmVmm *self = SMOLVM_VMM (object);
  SmolvmVmmPrivate *priv = smolvm_vmm_get_instance_private (self);

  g_cancellable_cancel (priv->cancellable);
  g_clear_object (&priv->cancellable);
  if (priv->terminate_grace != NULL) {
    g_source_destroy (priv->terminate_grace);
    g_clear_pointer (&priv->terminate_grace, g_source_unref);
  }
  if (priv->adopted_watch != 0)
    g_source_remove (priv->adopted_watch);
  if (priv->adopted_pidfd >= 0)
    close (priv->adopted_pidfd);
  g_clear_object (&priv->process);
  g_clear_pointer (&priv->exit_waiters, g_ptr_array_unref);
  g_free (priv->vm_id);
  smolvm_vm_config_free (priv->config);
  g_clear_pointer (&priv->network_config, g_variant_unref);
  g_free (priv->disk_path);
  g_free (priv->runtime_dir);
  g_free (priv->console_log_path);
  g_free (priv->binary);
  g_free (priv->process_log_path);
  G_OBJECT_CLASS (smolvm_vmm_parent_class)->finalize (object);
}

static void
smolvm_vmm_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  SmolvmVmm *self = SMOLVM_VMM (object);
  SmolvmVmmPrivate *priv = smolvm_vmm_get_instance_private (self);

  switch (prop_id) {
  case PROP_VM_ID:
    priv->vm_id = g_value_dup_string (value);
    break;
  case PROP_CONFIG:
    priv->config = g_value_dup_boxed (value);
    break;
  case PROP_NETWORK_CONFIG:
    priv->network_config = g_value_dup_variant (value);
    break;
  case PROP_DISK_PATH:
    priv->disk_path = g_value_dup_string (value);
    break;
  case PROP_RUNTIME_DIR:
    priv->runtime_dir = g_value_dup_string (value);
    break;
  case PROP_CONSOLE_LOG_PATH:
    priv->console_log_path = g_value_dup_string (value);
    break;
  case PROP_BINARY:
    priv->binary = g_value_dup_string (value);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
smolvm_vmm_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  SmolvmVmm *self = SMOLVM_VMM (object);
  SmolvmVmmPrivate *priv = smolvm_vmm_get_instance_private (self);

  switch (prop_id) {
  case PROP_VM_ID:
    g_value_set_string (value, priv->vm_id);
    break;
  case PROP_CONFIG:
    g_value_set_boxed (value, priv->config);
    break;
  case PROP_NETWORK_CONFIG:
    g_value_set_variant (value, priv->network_config);
    break;
  case PROP_DISK_PATH:
    g_value_set_string (value, priv->disk_path);
    break;
  case PROP_RUNTIME_DIR:
    g_value_set_string (value, priv->runtime_dir);
    break;
  case PROP_CONSOLE_LOG_PATH:
    g_value_set_string (value, priv->console_log_path);
    break;
  case PROP_BINARY:
    g_value_set_string (value, priv->binary);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
smolvm_vmm_init (SmolvmVmm *self)
{
  SmolvmVmmPrivate *priv = smolvm_vmm_get_instance_private (self);
  priv->adopted_pidfd = -1;
  priv->exit_waiters = g_ptr_array_new_with_free_func (g_object_unref);
  priv->cancellable = g_cancellable_new ();
}

static void
smolvm_vmm_class_init (SmolvmVmmClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags flags = G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS;

  object_class->finalize = smolvm_vmm_finalize;
  object_class->set_property = smolvm_vmm_set_property;
  object_class->get_property = smolvm_vmm_get_property;

  props[PROP_VM_ID] = g_param_spec_string ("vm-id", NULL, NULL, NULL, flags);
  props[PROP_CONFIG] =
    g_param_spec_boxed ("config", NULL, NULL, SMOLVM_TYPE_VM_CONFIG, flags);
  props[PROP_NETWORK_CONFIG] = g_param_spec_variant ("network-config", NULL, NULL,
                                                     G_VARIANT_TYPE_VARDICT, NULL, flags);
  props[PROP_DISK_PATH] = g_param_spec_string ("disk-path", NULL, NULL, NULL, flags);
  props[PROP_RUNTIME_DIR] = g_param_spec_string ("runtime-dir", NULL, NULL, NULL, flags);
  props[PROP_CONSOLE_LOG_PATH] =
    g_param_spec_string ("console-log-path", NULL, NULL, NULL, flags);
  props[PROP_BINARY] = g_param_spec_string ("binary", NULL, NULL, NULL, flags);
  g_object_class_install_properties (object_class, N_PROPS, props);

  /* The process ended, asked to or not. @clean: it exited with status 0
   * (e.g. the guest powered off); unknown for an adopted process (FALSE). */
  signals[SIGNAL_EXITED] = g_signal_new ("exited", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                         0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_BOOLEAN);
  /* @paused: the guest stopped or resumed without us asking */
  signals[SIGNAL_GUEST_STATE] =
    g_signal_new ("guest-state", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_BOOLEAN);
}

SmolvmVmm *
smolvm_vmm_new (GType type, const gchar *vm_id, const SmolvmVmConfig *config,
                GVariant *network_config, const gchar *disk_path, const gchar *runtime_dir,
                const gchar *console_log_path, const gchar *binary)
{
  g_return_val_if_fail (g_type_is_a (type, SMOLVM_TYPE_VMM), NULL);
  return g_object_new (type, "vm-id", vm_id, "config", config, "network-config", network_config,
                       "disk-path", disk_path, "runtime-dir", runtime_dir, "console-log-path",
                       console_log_path, "binary", binary, NULL);
}

static guint call_timeout_s = 30;

void
smolvm_vmm_set_call_timeout (guint seconds)
{
  call_timeout_s = seconds;
}

guint
smolvm_vmm_get_call_timeout (SmolvmVmm *self)
{
  return call_timeout_s;
}

#define PRIV(self) ((SmolvmVmmPrivate *) smolvm_vmm_get_instance_private (self))

const gchar *smolvm_vmm_get_vm_id (SmolvmVmm *self) { return PRIV (self)->vm_id; }
const SmolvmVmConfig *smolvm_vmm_get_config (SmolvmVmm *self) { return PRIV (self)->config; }
GVariant *smolvm_vmm_get_network_config (SmolvmVmm *self) { return PRIV (self)->network_config; }
const gchar *smolvm_vmm_get_disk_path (SmolvmVmm *self) { return PRIV (self)->disk_path; }
const gchar *smolvm_vmm_get_runtime_dir (SmolvmVmm *self) { return PRIV (self)->runtime_dir; }
const gchar *smolvm_vmm_get_binary (SmolvmVmm *self) { return PRIV (self)->binary; }

const gchar *
smolvm_vmm_get_console_log_path (SmolvmVmm *self)
{
  return PRIV (self)->console_log_path;
}

GPid
smolvm_vmm_get_pid (SmolvmVmm *self)
{
  return PRIV (self)->pid;
}

/* A child is signalled through GSubprocess, which will not signal a pid
 * that was reaped (and may be reused); an adopted process by its pid. */
static void
send_signal (SmolvmVmm *self, int signum)
{
  SmolvmVmmPrivate *priv = PRIV (self);
  if (priv->process != NULL)
    g_subprocess_send_signal (priv->process, signum);
  else if (priv->adopted_pid > 0)
    kill (priv->adopted_pid, signum);
}

void
smolvm_vmm_note_guest_shutdown (SmolvmVmm *self)
{
  PRIV (self)->guest_shut_down = TRUE;
}

gboolean
smolvm_vmm_is_running (SmolvmVmm *self)
{
  return smolvm_vmm_get_pid (self) > 0;
}

void
smolvm_vmm_set_process_log_path (SmolvmVmm *self, const gchar *path)
{
  SmolvmVmmPrivate *priv = PRIV (self);
  g_free (priv->process_log_path);
  priv->process_log_path = g_strdup (path);
}

void
smolvm_vmm_emit_guest_state (SmolvmVmm *self, gboolean paused)
{
  g_signal_emit (self, signals[SIGNAL_GUEST_STATE], 0, paused);
}

static void
process_gone (SmolvmVmm *self, gboolean clean)
{
  SmolvmVmmPrivate *priv = PRIV (self);
  g_autoptr(GPtrArray) waiters = g_steal_pointer (&priv->exit_waiters);

  priv->exit_waiters = g_ptr_array_new_with_free_func (g_object_unref);
  if (priv->terminate_grace != NULL) {
    g_source_destroy (priv->terminate_grace);
    g_clear_pointer (&priv->terminate_grace, g_source_unref);
  }
  g_clear_object (&priv->process);
  priv->pid = 0;
  priv->adopted_pid = 0;
  /* an adopted process's status is unknown, but the VMM said why it ends */
  clean = clean || priv->guest_shut_down;
  priv->guest_shut_down = FALSE;
  if (priv->adopted_pidfd >= 0) {
    close (priv->adopted_pidfd);
    priv->adopted_pidfd = -1;
  }
  for (guint i = 0; i < waiters->len; i++)
    g_task_return_boolean (g_ptr_array_index (waiters, i), TRUE);
  g_signal_emit (self, signals[SIGNAL_EXITED], 0, clean);
}

static void
on_process_exited (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SmolvmVmm) self = user_data;
  SmolvmVmmPrivate *priv = PRIV (self);

  gboolean clean;

  g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL);
  /* a later spawn may have replaced the process already */
  if (priv->process != G_SUBPROCESS (source))
    return;
  clean = g_subprocess_get_if_exited (priv->process) && g_subprocess_get_exit_status (priv->process) == 0;
  g_debug ("VMM of VM %s exited (%s)", priv->vm_id, clean ? "cleanly" : "with an error");
  process_gone (self, clean);
}

/* Where a clone's namespace descriptor is in the child (see spawn). */
#define NETNS_FD 3

static void
child_setup (gpointer user_data)
{
  /* a clone's VMM runs in its network namespace, so that its TAP device
   * opens there; fails before exec rather than run in the host's */
  if (GPOINTER_TO_INT (user_data)) {
    if (setns (NETNS_FD, CLONE_NEWNET) < 0)
      _exit (127);
    close (NETNS_FD);
  }
  setsid ();
  /* What the VMM creates is private whatever the daemon's umask: QEMU's
   * RAM file (live guest memory), pid file and QMP socket, Firecracker's API
   * socket and snapshot files: 0600 (bind() makes sockets 0777 & ~umask). */
  umask (0177);
}

/* Opened for appending, 0600 whatever the umask (and for a log an older
 * smolvmd made 0640); -1 on failure. */
static int
open_private_log (const gchar *path, GError **error)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);

  if (fd < 0) {
    smolvm_error_set_errno (error, errno, "Cannot open log %s", path);
    return -1;
  }
  if (fchmod (fd, 0600) < 0) {
    smolvm_error_set_errno (error, errno, "Cannot make log %s private", path);
    close (fd);
    return -1;
  }
  return fd;
}

/* The namespace of a clone's network config, opened; -1 when it has
 * none, -2 on failure. */
static int
open_netns (GVariant *network_config, GError **error)
{
  g_autoptr(SmolvmNetConfig) net = smolvm_net_config_new_from_variant (network_config, error);
  g_autofree gchar *path = NULL;
  int fd;

  if (net == NULL)
    return -2;
  if (net->namespace == NULL)
    return -1;
  path = g_build_filename ("/run/netns", net->namespace, NULL);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    smolvm_error_set_errno (error, errno, "Cannot open network namespace %s", path);
    return -2;
  }
  return fd;
}

gboolean
smolvm_vmm_spawn (SmolvmVmm *self, const gchar *const *argv, GError **error)
{
  int netns_fd;
  SmolvmVmmPrivate *priv = PRIV (self);
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) local_error = NULL;
  const gchar *log_path;
  const gchar *identifier;
  int log_fd;

  g_return_val_if_fail (!smolvm_vmm_is_running (self), FALSE);

  /* Append, so that a restored guest's output follows what it printed
   * before the snapshot. */
  log_path = priv->process_log_path != NULL ? priv->process_log_path : priv->console_log_path;
  log_fd = open_private_log (log_path, error);
  if (log_fd < 0)
    return FALSE;
  /* a VMM that writes the console log itself (QEMU's chardev) opens it
   * then: it exists, private, before */
  if (priv->process_log_path != NULL) {
    int console_fd = open_private_log (priv->console_log_path, error);
    if (console_fd < 0) {
      close (log_fd);
      return FALSE;
    }
    close (console_fd);
  }

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_subprocess_launcher_set_stdin_file_path (launcher, "/dev/null");
  netns_fd = open_netns (priv->network_config, error);
  if (netns_fd == -2) {
    close (log_fd);
    return FALSE;
  }
  if (netns_fd >= 0)
    g_subprocess_launcher_take_fd (launcher, netns_fd, NETNS_FD);
  /* its own session: a signal to the daemon's process group (a Ctrl-C in a
   * terminal) must not take the guests down with it */
  g_subprocess_launcher_set_child_setup (launcher, child_setup, GINT_TO_POINTER (netns_fd >= 0),
                                         NULL);
  g_subprocess_launcher_take_stdout_fd (launcher, log_fd);
  g_subprocess_launcher_take_stderr_fd (launcher, dup (log_fd));
  g_subprocess_launcher_set_cwd (launcher, priv->runtime_dir);
  process = g_subprocess_launcher_spawnv (launcher, argv, &local_error);
  if (process == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND, "Cannot start %s: %s", argv[0],
                 local_error->message);
    return FALSE;
  }
  priv->process = g_object_ref (process);
  /* NULL once GLib's worker thread has reaped a child that exited at once;
   * on_process_exited() then handles the exit */
  identifier = g_subprocess_get_identifier (process);
  priv->pid = identifier != NULL ? (GPid) atoi (identifier) : 0;
  priv->guest_shut_down = FALSE;
  g_subprocess_wait_async (process, NULL, on_process_exited, g_object_ref (self));
  return TRUE;
}

static gboolean
on_adopted_exit (gint fd, GIOCondition condition, gpointer user_data)
{
  SmolvmVmm *self = user_data;
  PRIV (self)->adopted_watch = 0;
  process_gone (self, FALSE);
  return G_SOURCE_REMOVE;
}

/* Without pidfds (old kernels, valgrind): look for the process now and then. */
static gboolean
on_adopted_poll (gpointer user_data)
{
  SmolvmVmm *self = user_data;
  SmolvmVmmPrivate *priv = PRIV (self);

  if (kill (priv->adopted_pid, 0) == 0 || errno == EPERM)
    return G_SOURCE_CONTINUE;
  priv->adopted_watch = 0;
  process_gone (self, FALSE);
  return G_SOURCE_REMOVE;
}

gboolean
smolvm_vmm_adopt (SmolvmVmm *self, GPid pid, GError **error)
{
  SmolvmVmmPrivate *priv = PRIV (self);
  /* not our child any more: a pidfd is the race-free way to watch it */
  int pidfd = (int) syscall (SYS_pidfd_open, pid, 0);

  if (pidfd < 0 && errno != ENOSYS)
    return smolvm_error_set_errno (error, errno, "Cannot watch VMM process %d", pid);
  priv->adopted_pid = pid;
  priv->pid = pid;
  priv->adopted_pidfd = pidfd;
  if (pidfd >= 0)
    priv->adopted_watch = g_unix_fd_add (pidfd, G_IO_IN, on_adopted_exit, self);
  else
    priv->adopted_watch = g_timeout_add (500, on_adopted_poll, self);
  return TRUE;
}

static void
add_exit_waiter (SmolvmVmm *self, GTask *task)
{
  g_ptr_array_add (PRIV (self)->exit_waiters, g_object_ref (task));
}

static gboolean
on_terminate_grace_over (gpointer user_data)
{
  SmolvmVmm *self = user_data;
  SmolvmVmmPrivate *priv = PRIV (self);
  GPid pid = smolvm_vmm_get_pid (self);

  g_clear_pointer (&priv->terminate_grace, g_source_unref);
  if (pid > 0) {
    g_warning ("VMM %d of VM %s ignored SIGTERM; killing it", pid, priv->vm_id);
    send_signal (self, SIGKILL);
  }
  return G_SOURCE_REMOVE;
}

void
smolvm_vmm_terminate_async (SmolvmVmm *self, GAsyncReadyCallback callback, gpointer user_data)
{
  SmolvmVmmPrivate *priv = PRIV (self);
  g_autoptr(GTask) task = g_task_new (self, NULL, callback, user_data);
  GPid pid = smolvm_vmm_get_pid (self);

  if (pid <= 0) {
    g_task_return_boolean (task, TRUE);
    return;
  }
  add_exit_waiter (self, task);
  send_signal (self, SIGTERM);
  /* one timer per process; it dies with the process (process_gone), so it
   * can never hit a later one */
  if (priv->terminate_grace == NULL) {
    priv->terminate_grace = g_timeout_source_new (TERMINATE_GRACE_MS);
    g_source_set_callback (priv->terminate_grace, on_terminate_grace_over, self, NULL);
    g_source_attach (priv->terminate_grace, NULL);
  }
}

void
smolvm_vmm_terminate_finish (SmolvmVmm *self, GAsyncResult *result)
{
  g_task_propagate_boolean (G_TASK (result), NULL);
}

void
smolvm_vmm_boot_async (SmolvmVmm *self, GCancellable *cancellable, GAsyncReadyCallback callback,
                       gpointer user_data)
{
  SMOLVM_VMM_GET_CLASS (self)->boot_async (self, cancellable, callback, user_data);
}

void
smolvm_vmm_set_paused_async (SmolvmVmm *self, gboolean paused, GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data)
{
  SMOLVM_VMM_GET_CLASS (self)->set_paused_async (self, paused, cancellable, callback, user_data);
}

void
smolvm_vmm_snapshot_create_async (SmolvmVmm *self, const gchar *vmstate_path,
                                  const gchar *mem_path, SmolvmProgress *progress,
                                  GCancellable *cancellable, GAsyncReadyCallback callback,
                                  gpointer user_data)
{
  SMOLVM_VMM_GET_CLASS (self)->snapshot_create_async (self, vmstate_path, mem_path, progress,
                                                      cancellable, callback, user_data);
}

void
smolvm_vmm_snapshot_load_async (SmolvmVmm *self, const gchar *vmstate_path, const gchar *mem_path,
                                gboolean resume, const gchar *tap_override,
                                SmolvmProgress *progress, GCancellable *cancellable,
                                GAsyncReadyCallback callback, gpointer user_data)
{
  SMOLVM_VMM_GET_CLASS (self)->snapshot_load_async (self, vmstate_path, mem_path, resume,
                                                    tap_override, progress, cancellable, callback,
                                                    user_data);
}

gboolean
smolvm_vmm_op_finish (SmolvmVmm *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

void
smolvm_vmm_attach_async (SmolvmVmm *self, GPid pid, GCancellable *cancellable,
                         GAsyncReadyCallback callback, gpointer user_data)
{
  SMOLVM_VMM_GET_CLASS (self)->attach_async (self, pid, cancellable, callback, user_data);
}

gboolean
smolvm_vmm_attach_finish (SmolvmVmm *self, GAsyncResult *result, gboolean *paused,
                          GError **error)
{
  gssize value = g_task_propagate_int (G_TASK (result), error);
  if (value < 0)
    return FALSE;
  *paused = value == 1;
  return TRUE;
}

/* ---- waiting for a fresh process's socket ---- */

typedef struct {
  GSocketAddress *address;
  gchar *path;
  gint64 deadline;
  guint delay_ms;
  guint timeout_ms;
  GSource *retry;
  GTask *task;            /* the wait's own task: unowned */
  GFileMonitor *monitor;  /* of the socket's directory; NULL if it cannot be watched */
  gchar *basename;
  gboolean trying;        /* a connect is under way */
  gboolean appeared;      /* the monitor saw the socket during that connect */
} SocketWait;

static void
socket_wait_free (SocketWait *wait)
{
  if (wait->monitor != NULL) {
    g_signal_handlers_disconnect_by_data (wait->monitor, wait);
    g_file_monitor_cancel (wait->monitor);
    g_clear_object (&wait->monitor);
  }
  g_free (wait->basename);
  if (wait->retry != NULL) {
    g_source_destroy (wait->retry);
    g_source_unref (wait->retry);
  }
  g_clear_object (&wait->address);
  g_free (wait->path);
  g_free (wait);
}

static void socket_wait_try (GTask *task);

static gboolean
on_socket_retry (gpointer user_data)
{
  GTask *task = user_data;
  SocketWait *wait = g_task_get_task_data (task);

  g_clear_pointer (&wait->retry, g_source_unref);
  socket_wait_try (task); /* takes over the reference the timer held */
  return G_SOURCE_REMOVE;
}

static void
on_socket_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmVmm *self = g_task_get_source_object (task);
  SocketWait *wait = g_task_get_task_data (task);
  GMainContext *context = g_task_get_context (task);
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketConnection) connection =
    g_socket_client_connect_finish (G_SOCKET_CLIENT (source), result, &error);
  gboolean appeared = wait->appeared;

  wait->trying = FALSE;
  wait->appeared = FALSE;
  if (connection != NULL) {
    g_task_return_pointer (task, g_steal_pointer (&connection), g_object_unref);
    return;
  }
  /* not bound yet, or bound but not listening yet: wait a little */
  if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED) &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                             "Cannot connect to %s of %s: %s", wait->path,
                             smolvm_vmm_get_binary (self), error->message);
    return;
  }
  /* the socket appeared while this attempt ran: try again at once */
  if (appeared) {
    socket_wait_try (g_steal_pointer (&task));
    return;
  }
  wait->retry = g_timeout_source_new (wait->delay_ms);
  wait->delay_ms = MIN (wait->delay_ms * 2, SOCKET_RETRY_MAX_MS);
  g_source_set_callback (wait->retry, on_socket_retry, g_steal_pointer (&task), NULL);
  g_source_attach (wait->retry, context);
}

static void
socket_wait_try (GTask *task)
{
  SmolvmVmm *self = g_task_get_source_object (task);
  SocketWait *wait = g_task_get_task_data (task);
  GCancellable *cancellable = g_task_get_cancellable (task);
  g_autoptr(GSocketClient) client = NULL;

  if (g_cancellable_is_cancelled (cancellable)) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED,
                             "Cancelled while waiting for %s", wait->path);
    g_object_unref (task);
    return;
  }
  if (!smolvm_vmm_is_running (self)) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                             "%s exited before opening its socket %s",
                             smolvm_vmm_get_binary (self), wait->path);
    g_object_unref (task);
    return;
  }
  if (g_get_monotonic_time () > wait->deadline) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                             "%s did not open its socket %s within %u s",
                             smolvm_vmm_get_binary (self), wait->path, wait->timeout_ms / 1000);
    g_object_unref (task);
    return;
  }
  client = g_socket_client_new ();
  wait->trying = TRUE;
  g_socket_client_connect_async (client, G_SOCKET_CONNECTABLE (wait->address), cancellable,
                                 on_socket_connected, task);
}

/* Something changed in the socket's directory: if it is the socket, try
 * now rather than when the next retry is due. */
static void
on_socket_dir_changed (GFileMonitor *monitor, GFile *file, GFile *other, GFileMonitorEvent event,
                       gpointer user_data)
{
  SocketWait *wait = user_data;
  g_autofree gchar *name = g_file_get_basename (file);

  /* bound in place (CREATED), or bound elsewhere and renamed in (MOVED_IN) */
  if ((event != G_FILE_MONITOR_EVENT_CREATED && event != G_FILE_MONITOR_EVENT_MOVED_IN) ||
      g_strcmp0 (name, wait->basename) != 0)
    return;
  if (wait->trying) {
    wait->appeared = TRUE;
    return;
  }
  if (wait->retry == NULL)
    return;
  /* the pending retry held the task's reference: it passes to this try */
  g_source_destroy (wait->retry);
  g_clear_pointer (&wait->retry, g_source_unref);
  socket_wait_try (wait->task);
}

static void
socket_wait_watch (SocketWait *wait, const gchar *path)
{
  g_autofree gchar *dir = g_path_get_dirname (path);
  g_autoptr(GFile) file = g_file_new_for_path (dir);
  g_autoptr(GError) error = NULL;

  wait->basename = g_path_get_basename (path);
  wait->monitor = g_file_monitor_directory (file, G_FILE_MONITOR_WATCH_MOVES, NULL, &error);
  if (wait->monitor == NULL) {
    g_debug ("Cannot watch %s, retrying connects only: %s", dir, error->message);
    return;
  }
  g_signal_connect (wait->monitor, "changed", G_CALLBACK (on_socket_dir_changed), wait);
}

void
smolvm_vmm_wait_socket_async (SmolvmVmm *self, const gchar *path, guint timeout_ms,
                              GCancellable *cancellable, GAsyncReadyCallback callback,
                              gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  SocketWait *wait = g_new0 (SocketWait, 1);

  /* the check is ours: a cancel must read SMOLVM_ERROR_CANCELLED */
  g_task_set_check_cancellable (task, FALSE);
  g_task_set_task_data (task, wait, (GDestroyNotify) socket_wait_free);
  wait->task = task;
  wait->path = g_strdup (path);
  wait->timeout_ms = timeout_ms;
  wait->delay_ms = SOCKET_RETRY_FIRST_MS;
  wait->deadline = g_get_monotonic_time () + (gint64) timeout_ms * G_TIME_SPAN_MILLISECOND;
  /* a longer path cannot be bound: the VMM would never answer */
  if (strlen (path) >= G_SIZEOF_MEMBER (struct sockaddr_un, sun_path)) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                             "The socket path %s is longer than %" G_GSIZE_FORMAT
                             " bytes; use a shorter runtime directory",
                             path, G_SIZEOF_MEMBER (struct sockaddr_un, sun_path) - 1);
    g_object_unref (task);
    return;
  }
  wait->address = g_unix_socket_address_new (path);
  /* watched before the first try: an appearance between the two is seen */
  socket_wait_watch (wait, path);
  socket_wait_try (task);
}

GSocketConnection *
smolvm_vmm_wait_socket_finish (SmolvmVmm *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}
