/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-qemu.h"
#include "smolvm-qmp.h"

#define SOCKET_WAIT_MS 30000
#define SOCKET_POLL_MS 20
#define MIB (1024 * 1024)
/* a name QEMU knows the migration stream's descriptor by */
#define VMSTATE_FDNAME "smolvm-vmstate"

struct _SmolvmQemu {
  SmolvmVmm parent_instance;
  gchar *qmp_socket;
  gchar *ram_path;
  gchar *log_path; /* QEMU's own stderr; the guest console has the console log */
  gchar *pid_path;
  gboolean runtime_files_cleared;
  SmolvmQmp *qmp;
  GTask *migration; /* waiting for the MIGRATION event to settle */
};

G_DEFINE_TYPE (SmolvmQemu, smolvm_qemu, SMOLVM_TYPE_VMM)

static void
smolvm_qemu_finalize (GObject *object)
{
  SmolvmQemu *self = SMOLVM_QEMU (object);
  if (self->qmp != NULL) {
    g_signal_handlers_disconnect_by_data (self->qmp, self);
    smolvm_qmp_close (self->qmp);
  }
  g_clear_object (&self->qmp);
  g_free (self->qmp_socket);
  g_free (self->ram_path);
  g_free (self->log_path);
  g_free (self->pid_path);
  G_OBJECT_CLASS (smolvm_qemu_parent_class)->finalize (object);
}

/* Once the process is gone: guest RAM went with it, so its file is ours to
 * remove, and so are the monitor socket and pid file that a QEMU which
 * exit()s on an error (a failed incoming migration) or is killed leaves
 * behind. An object runs one process, so this happens once: a late exit
 * notification must not remove the files of the VM's next process. */
static void
clear_runtime_files (SmolvmQemu *self)
{
  if (self->runtime_files_cleared)
    return;
  self->runtime_files_cleared = TRUE;
  if (unlink (self->ram_path) != 0 && errno != ENOENT)
    g_warning ("Cannot remove %s: %s", self->ram_path, g_strerror (errno));
  unlink (self->qmp_socket);
  unlink (self->pid_path);
}

static void settle_migration (SmolvmQemu *self, GError *error);
static GError *qemu_error (SmolvmQemu *self, const gchar *what, const GError *cause);

static void
on_exited (SmolvmVmm *vmm, gboolean clean, gpointer user_data)
{
  SmolvmQemu *self = SMOLVM_QEMU (vmm);
  clear_runtime_files (self);
  /* the exit may be handled before the monitor's last event and EOF are
   * read, and no MIGRATION event or "closed" signal comes after this */
  if (self->migration != NULL)
    settle_migration (self, qemu_error (self, "Migration failed", NULL));
  if (self->qmp != NULL) {
    g_signal_handlers_disconnect_by_data (self->qmp, self);
    smolvm_qmp_close (self->qmp);
    g_clear_object (&self->qmp);
  }
}

static void
smolvm_qemu_constructed (GObject *object)
{
  SmolvmQemu *self = SMOLVM_QEMU (object);
  const gchar *runtime_dir = smolvm_vmm_get_runtime_dir (SMOLVM_VMM (self));

  G_OBJECT_CLASS (smolvm_qemu_parent_class)->constructed (object);
  self->qmp_socket = g_build_filename (runtime_dir, "qmp.sock", NULL);
  self->ram_path = g_build_filename (runtime_dir, "ram", NULL);
  self->log_path = g_build_filename (runtime_dir, "qemu.log", NULL);
  self->pid_path = g_build_filename (runtime_dir, "qemu.pid", NULL);
  smolvm_vmm_set_process_log_path (SMOLVM_VMM (self), self->log_path);
  g_signal_connect (self, "exited", G_CALLBACK (on_exited), NULL);
}

/* QEMU says why it failed only on stderr: quote its last line. */
static gchar *
last_log_line (SmolvmQemu *self)
{
  g_autofree gchar *contents = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents (self->log_path, &contents, NULL, NULL))
    return g_strdup ("no output");
  lines = g_strsplit (g_strstrip (contents), "\n", -1);
  if (lines[0] == NULL || lines[0][0] == '\0')
    return g_strdup ("no output");
  return g_strdup (lines[g_strv_length (lines) - 1]);
}

static GError *
qemu_error (SmolvmQemu *self, const gchar *what, const GError *cause)
{
  g_autofree gchar *line = last_log_line (self);
  if (!smolvm_vmm_is_running (SMOLVM_VMM (self)))
    return g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_BACKEND, "%s: QEMU exited: %s", what, line);
  return g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_BACKEND, "%s: %s", what,
                      cause != NULL ? cause->message : line);
}

/* ---- QMP events drive the VM's state ---- */

static void
settle_migration (SmolvmQemu *self, GError *error)
{
  GTask *task = g_steal_pointer (&self->migration);
  if (task == NULL) {
    g_clear_error (&error);
    return;
  }
  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
on_qmp_event (SmolvmQmp *qmp, const gchar *name, JsonNode *data, gpointer user_data)
{
  SmolvmQemu *self = user_data;
  JsonObject *o = data != NULL && JSON_NODE_HOLDS_OBJECT (data) ? json_node_get_object (data) : NULL;

  if (g_str_equal (name, "STOP")) {
    smolvm_vmm_emit_guest_state (SMOLVM_VMM (self), TRUE);
  } else if (g_str_equal (name, "RESUME")) {
    smolvm_vmm_emit_guest_state (SMOLVM_VMM (self), FALSE);
  } else if (g_str_equal (name, "SHUTDOWN") && o != NULL &&
             json_object_get_boolean_member_with_default (o, "guest", FALSE)) {
    /* -no-reboot: QEMU exits next, and that is the guest's own doing */
    smolvm_vmm_note_guest_shutdown (SMOLVM_VMM (self));
  } else if (g_str_equal (name, "MIGRATION") && o != NULL) {
    const gchar *status = json_object_get_string_member_with_default (o, "status", "");
    if (g_str_equal (status, "completed"))
      settle_migration (self, NULL);
    else if (g_str_equal (status, "failed") || g_str_equal (status, "cancelled"))
      settle_migration (self, qemu_error (self, "Migration failed", NULL));
  }
}

static void
on_qmp_closed (SmolvmQmp *qmp, gpointer user_data)
{
  SmolvmQemu *self = user_data;
  settle_migration (self, qemu_error (self, "The QEMU monitor closed during migration", NULL));
}

static void
take_qmp (SmolvmQemu *self, SmolvmQmp *qmp)
{
  self->qmp = qmp;
  smolvm_qmp_set_timeout (qmp, smolvm_vmm_get_call_timeout (SMOLVM_VMM (self)));
  g_signal_connect (qmp, "event", G_CALLBACK (on_qmp_event), self);
  g_signal_connect (qmp, "closed", G_CALLBACK (on_qmp_closed), self);
}

/* ---- one QMP step after another ---- */

typedef void (*StepFunc) (GTask *task);

/* What a whole operation needs along its steps. */
typedef struct {
  gboolean launch;     /* runs a process of its own: boot or load */
  gboolean incoming;   /* start with -incoming defer */
  gboolean resume;     /* cont at the end */
  gchar *vmstate_path;
  gchar *mem_path;
  gint64 deadline;
  GError *error;       /* of a failed launch, while its process goes */
  GPtrArray *steps;    /* StepFunc */
  guint next;
  int fd;
  guint migration_parts;
  GError *migration_error;
  SmolvmProgress *progress;
} Job;

static void
job_free (Job *job)
{
  g_free (job->vmstate_path);
  g_free (job->mem_path);
  g_ptr_array_unref (job->steps);
  if (job->fd >= 0)
    close (job->fd);
  g_clear_error (&job->migration_error);
  g_clear_error (&job->error);
  g_clear_object (&job->progress);
  g_free (job);
}

static GTask *
job_new (SmolvmQemu *self, GCancellable *cancellable, GAsyncReadyCallback callback,
         gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  Job *job = g_new0 (Job, 1);
  job->steps = g_ptr_array_new ();
  job->fd = -1;
  g_task_set_task_data (task, job, (GDestroyNotify) job_free);
  return task;
}

static void
job_next (GTask *task)
{
  Job *job = g_task_get_task_data (task);
  if (job->next >= job->steps->len) {
    g_task_return_boolean (task, TRUE);
    g_object_unref (task);
    return;
  }
  ((StepFunc) g_ptr_array_index (job->steps, job->next++)) (task);
}

static void
on_failed_launch_terminated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmQemu *self = g_task_get_source_object (task);
  Job *job = g_task_get_task_data (task);

  smolvm_vmm_terminate_finish (SMOLVM_VMM (self), result);
  clear_runtime_files (self);
  g_task_return_error (task, g_steal_pointer (&job->error));
  g_object_unref (task);
}

/* A failed launch ends only once its process is gone and its runtime files
 * (a partly copied RAM file among them) are removed: the exit notification
 * may come after the caller has moved on. */
static void
job_fail (GTask *task, GError *error)
{
  SmolvmQemu *self = g_task_get_source_object (task);
  Job *job = g_task_get_task_data (task);

  if (job->launch) {
    g_clear_error (&job->error);
    job->error = error;
    smolvm_vmm_terminate_async (SMOLVM_VMM (self), on_failed_launch_terminated, task);
    return;
  }
  g_task_return_error (task, error);
  g_object_unref (task);
}

static void
on_qmp_step_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmQemu *self = g_task_get_source_object (task);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = smolvm_qmp_execute_finish (SMOLVM_QMP (source), result, &error);

  if (error != NULL) {
    job_fail (task, qemu_error (self, g_task_get_name (task), error));
    return;
  }
  job_next (task);
}

/* Runs one QMP command as a step; @arguments_json may be NULL. */
static void
qmp_step (GTask *task, const gchar *command, const gchar *arguments_json, int fd)
{
  SmolvmQemu *self = g_task_get_source_object (task);
  g_autoptr(JsonNode) arguments = NULL;

  if (self->qmp == NULL) {
    job_fail (task, qemu_error (self, g_task_get_name (task), NULL));
    return;
  }
  if (arguments_json != NULL)
    arguments = json_from_string (arguments_json, NULL);
  smolvm_qmp_execute_async (self->qmp, command, arguments, fd, NULL, on_qmp_step_done, task);
}

static void
step_stop (GTask *task)
{
  qmp_step (task, "stop", NULL, -1);
}

static void
step_cont (GTask *task)
{
  Job *job = g_task_get_task_data (task);
  if (job->incoming && !job->resume) {
    job_next (task);
    return;
  }
  qmp_step (task, "cont", NULL, -1);
}

static void
step_migrate_capabilities (GTask *task)
{
  /* both sides must agree on x-ignore-shared; events report progress */
  qmp_step (task, "migrate-set-capabilities",
            "{\"capabilities\": [{\"capability\": \"x-ignore-shared\", \"state\": true},"
            " {\"capability\": \"events\", \"state\": true}]}",
            -1);
}

static void
step_migrate_parameters (GTask *task)
{
  /* the default cap of 128 MiB/s is meant for live migration, not saves */
  qmp_step (task, "migrate-set-parameters", "{\"max-bandwidth\": 0}", -1);
}

static void
step_getfd (GTask *task)
{
  Job *job = g_task_get_task_data (task);
  int fd = job->fd;

  /* taken first: a failing step may complete the task, and free @job */
  job->fd = -1;
  qmp_step (task, "getfd", "{\"fdname\": \"" VMSTATE_FDNAME "\"}", fd);
  close (fd); /* QEMU has its own copy now */
}

/* A migration ends with two answers, in either order: the command's reply
 * and the MIGRATION event. The step ends when both are in. */
static void
migration_part_done (GTask *task, GError *error)
{
  Job *job = g_task_get_task_data (task);

  if (error != NULL && job->migration_error == NULL)
    job->migration_error = error;
  else if (error != NULL)
    g_error_free (error);
  if (--job->migration_parts > 0)
    return;
  if (job->migration_error != NULL)
    job_fail (task, g_steal_pointer (&job->migration_error));
  else
    job_next (task);
}

static void
on_migration_settled (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GError *error = NULL;
  g_task_propagate_boolean (G_TASK (result), &error);
  migration_part_done (user_data, error);
}

static void
on_migrate_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmQemu *self = g_task_get_source_object (task);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = smolvm_qmp_execute_finish (SMOLVM_QMP (source), result, &error);

  if (error != NULL) {
    /* refused outright: no MIGRATION event will settle it */
    migration_part_done (task, qemu_error (self, g_task_get_name (task), error));
    settle_migration (self, NULL);
    return;
  }
  migration_part_done (task, NULL);
}

/* migrate / migrate-incoming on the stream passed with getfd. */
static void
migrate_step (GTask *task, const gchar *command)
{
  SmolvmQemu *self = g_task_get_source_object (task);
  Job *job = g_task_get_task_data (task);
  g_autoptr(JsonNode) arguments = json_from_string ("{\"uri\": \"fd:" VMSTATE_FDNAME "\"}", NULL);

  if (self->qmp == NULL) {
    job_fail (task, qemu_error (self, g_task_get_name (task), NULL));
    return;
  }
  g_assert (self->migration == NULL);
  job->migration_parts = 2;
  self->migration = g_task_new (self, NULL, on_migration_settled, task);
  smolvm_qmp_execute_async (self->qmp, command, arguments, -1, NULL, on_migrate_reply, task);
}

static void
step_migrate_out (GTask *task)
{
  migrate_step (task, "migrate");
}

static void
step_migrate_in (GTask *task)
{
  Job *job = g_task_get_task_data (task);
  smolvm_progress_set_phase (job->progress, "loading-state", FALSE);
  migrate_step (task, "migrate-incoming");
}

static void
on_ram_copied (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  GError *error = NULL;
  if (!smolvm_copy_file_sparse_finish (result, &error)) {
    job_fail (task, error);
    return;
  }
  job_next (task);
}

static void
step_save_ram (GTask *task)
{
  SmolvmQemu *self = g_task_get_source_object (task);
  Job *job = g_task_get_task_data (task);
  guint64 size = 0;

  /* the caller cannot know the size of our RAM file; a load's copy is
   * expected by the caller (the data size of mem.bin) */
  if (smolvm_file_data_size (self->ram_path, &size, NULL))
    smolvm_progress_expect (job->progress, size);
  smolvm_progress_set_phase (job->progress, "copying-memory", TRUE);
  smolvm_copy_file_sparse_async (self->ram_path, job->mem_path, job->progress,
                                 g_task_get_cancellable (task), on_ram_copied, task);
}

/* The restored VM gets its own RAM file, a copy of mem.bin: it then never
 * writes to the snapshot, and its own snapshots stay device-state only. */
static void
step_load_ram (GTask *task)
{
  SmolvmQemu *self = g_task_get_source_object (task);
  Job *job = g_task_get_task_data (task);
  const SmolvmVmConfig *config = smolvm_vmm_get_config (SMOLVM_VMM (self));
  goffset expected = (goffset) config->mem_size_mib * MIB;
  struct stat st;

  /* QEMU would silently grow a short file and then fail to load */
  if (stat (job->mem_path, &st) != 0) {
    GError *error = NULL;
    smolvm_error_set_errno (&error, errno, "Cannot read %s", job->mem_path);
    job_fail (task, error);
    return;
  }
  if (st.st_size != expected) {
    job_fail (task, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                                 "%s is %" G_GOFFSET_FORMAT " bytes, but the VM has %u MiB of "
                                 "memory (%" G_GOFFSET_FORMAT " bytes)",
                                 job->mem_path, (goffset) st.st_size, config->mem_size_mib,
                                 expected));
    return;
  }
  if (unlink (self->ram_path) != 0 && errno != ENOENT) {
    GError *error = NULL;
    smolvm_error_set_errno (&error, errno, "Cannot remove %s", self->ram_path);
    job_fail (task, error);
    return;
  }
  smolvm_progress_set_phase (job->progress, "copying-memory", TRUE);
  smolvm_copy_file_sparse_async (job->mem_path, self->ram_path, job->progress,
                                 g_task_get_cancellable (task), on_ram_copied, task);
}

static void
step_open_vmstate (GTask *task)
{
  Job *job = g_task_get_task_data (task);
  GError *error = NULL;

  job->fd = job->incoming ? open (job->vmstate_path, O_RDONLY | O_CLOEXEC)
                          : open (job->vmstate_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (job->fd < 0) {
    smolvm_error_set_errno (&error, errno, "Cannot open %s", job->vmstate_path);
    job_fail (task, error);
    return;
  }
  job_next (task);
}

/* ---- the process ---- */

/* QEMU option values end at a comma; a literal one is doubled. */
static gchar *
opt_escape (const gchar *value)
{
  g_auto(GStrv) parts = g_strsplit (value, ",", -1);
  return g_strjoinv (",,", parts);
}

static void
argv_add (GPtrArray *argv, const gchar *format, ...) G_GNUC_PRINTF (2, 3);

static void
argv_add (GPtrArray *argv, const gchar *format, ...)
{
  va_list args;
  va_start (args, format);
  g_ptr_array_add (argv, g_strdup_vprintf (format, args));
  va_end (args);
}

static gchar **
build_argv (SmolvmQemu *self, gboolean incoming)
{
  SmolvmVmm *vmm = SMOLVM_VMM (self);
  const SmolvmVmConfig *c = smolvm_vmm_get_config (vmm);
  GVariant *net = smolvm_vmm_get_network_config (vmm);
  GPtrArray *argv = g_ptr_array_new ();
  const gchar *tap = NULL, *mac = NULL, *guest_ip = NULL, *gateway = NULL, *netmask = NULL;
  g_autofree gchar *ram = opt_escape (self->ram_path);
  g_autofree gchar *console = opt_escape (smolvm_vmm_get_console_log_path (vmm));
  g_autofree gchar *disk = opt_escape (smolvm_vmm_get_disk_path (vmm));
  g_autofree gchar *qmp = opt_escape (self->qmp_socket);

  argv_add (argv, "%s", smolvm_vmm_get_binary (vmm));
  argv_add (argv, "-name");
  argv_add (argv, "%s", smolvm_vmm_get_vm_id (vmm));
  /* An argument of its own that starts with the runtime dir: a restarted
   * daemon recognizes its VMM by one (the paths in -object, -chardev and
   * -qmp sit inside option strings). */
  argv_add (argv, "-pidfile");
  argv_add (argv, "%s", self->pid_path);
  argv_add (argv, "-nodefaults");
  argv_add (argv, "-no-user-config");
  argv_add (argv, "-display");
  argv_add (argv, "none");
  argv_add (argv, "-no-reboot");
  /* the memory backend id names the RAM block in the stream: fixed */
  argv_add (argv, "-machine");
  argv_add (argv, "%s,memory-backend=ram0", c->machine);
  if (g_str_equal (c->accel, "auto")) {
    /* QEMU takes the first accelerator that works */
    argv_add (argv, "-accel");
    argv_add (argv, "kvm");
    argv_add (argv, "-accel");
    argv_add (argv, "tcg");
  } else {
    argv_add (argv, "-accel");
    argv_add (argv, "%s", c->accel);
  }
  argv_add (argv, "-m");
  argv_add (argv, "%uM", c->mem_size_mib);
  argv_add (argv, "-smp");
  argv_add (argv, "%u", c->vcpu_count);
  argv_add (argv, "-kernel");
  argv_add (argv, "%s", c->kernel_path);
  argv_add (argv, "-append");
  if (net != NULL && g_variant_lookup (net, "guest_ip", "&s", &guest_ip) &&
      g_variant_lookup (net, "gateway_ip", "&s", &gateway) &&
      g_variant_lookup (net, "netmask", "&s", &netmask))
    argv_add (argv, "%s ip=%s::%s:%s::eth0:off", c->boot_args, guest_ip, gateway, netmask);
  else
    argv_add (argv, "%s", c->boot_args);
  if (c->initrd_path != NULL && c->initrd_path[0] != '\0') {
    argv_add (argv, "-initrd");
    argv_add (argv, "%s", c->initrd_path);
  }
  argv_add (argv, "-object");
  argv_add (argv, "memory-backend-file,id=ram0,size=%uM,mem-path=%s,share=on", c->mem_size_mib,
            ram);
  argv_add (argv, "-chardev");
  argv_add (argv, "file,id=con0,path=%s,append=on", console);
  argv_add (argv, "-serial");
  argv_add (argv, "chardev:con0");
  argv_add (argv, "-drive");
  argv_add (argv, "file=%s,format=raw,if=virtio", disk);
  if (net != NULL && g_variant_lookup (net, "tap_device", "&s", &tap)) {
    argv_add (argv, "-netdev");
    argv_add (argv, "tap,id=net0,ifname=%s,script=no,downscript=no", tap);
    argv_add (argv, "-device");
    if (g_variant_lookup (net, "guest_mac", "&s", &mac))
      argv_add (argv, "virtio-net-pci,netdev=net0,mac=%s", mac);
    else
      argv_add (argv, "virtio-net-pci,netdev=net0");
  }
  argv_add (argv, "-qmp");
  argv_add (argv, "unix:%s,server=on,wait=off", qmp);
  if (incoming) {
    argv_add (argv, "-incoming");
    argv_add (argv, "defer");
  }
  g_ptr_array_add (argv, NULL);
  return (gchar **) g_ptr_array_free (argv, FALSE);
}

static gboolean qmp_socket_poll (gpointer user_data);

static void
on_qmp_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  SmolvmQemu *self = g_task_get_source_object (task);
  g_autoptr(GError) error = NULL;
  SmolvmQmp *qmp = smolvm_qmp_connect_finish (result, &error);

  if (qmp == NULL) {
    Job *job = g_task_get_task_data (task);
    /* QEMU binds its socket before it listens: try again in a moment */
    if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED) &&
        smolvm_vmm_is_running (SMOLVM_VMM (self)) && g_get_monotonic_time () < job->deadline) {
      g_timeout_add (SOCKET_POLL_MS, qmp_socket_poll, task);
      return;
    }
    job_fail (task, qemu_error (self, "Cannot talk to QEMU", error));
    return;
  }
  take_qmp (self, qmp);
  job_next (task);
}

static gboolean
qmp_socket_poll (gpointer user_data)
{
  GTask *task = user_data;
  SmolvmQemu *self = g_task_get_source_object (task);
  Job *job = g_task_get_task_data (task);
  struct stat st;

  if (!smolvm_vmm_is_running (SMOLVM_VMM (self))) {
    job_fail (task, qemu_error (self, "QEMU did not start", NULL));
    return G_SOURCE_REMOVE;
  }
  if (g_get_monotonic_time () > job->deadline) {
    job_fail (task, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                                 "QEMU did not open its monitor socket %s within %d s",
                                 self->qmp_socket, SOCKET_WAIT_MS / 1000));
    return G_SOURCE_REMOVE;
  }
  if (stat (self->qmp_socket, &st) != 0 || !S_ISSOCK (st.st_mode))
    return G_SOURCE_CONTINUE;
  smolvm_qmp_connect_async (self->qmp_socket, NULL, on_qmp_connected, task);
  return G_SOURCE_REMOVE;
}

static void
step_spawn (GTask *task)
{
  SmolvmQemu *self = g_task_get_source_object (task);
  Job *job = g_task_get_task_data (task);
  g_auto(GStrv) argv = build_argv (self, job->incoming);
  GError *error = NULL;

  if ((unlink (self->qmp_socket) != 0 && errno != ENOENT) ||
      (!job->incoming && unlink (self->ram_path) != 0 && errno != ENOENT)) {
    smolvm_error_set_errno (&error, errno, "Cannot clear the runtime files of VM '%s'",
                            smolvm_vmm_get_vm_id (SMOLVM_VMM (self)));
    job_fail (task, error);
    return;
  }
  /* a fresh log per process, so that errors quote this run */
  unlink (self->log_path);
  if (!smolvm_vmm_spawn (SMOLVM_VMM (self), (const gchar *const *) argv, &error)) {
    job_fail (task, error);
    return;
  }
  job->deadline = g_get_monotonic_time () + SOCKET_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  g_timeout_add (SOCKET_POLL_MS, qmp_socket_poll, task);
}

static void
job_run (GTask *task, const gchar *name, ...)
{
  Job *job = g_task_get_task_data (task);
  va_list args;
  StepFunc step;

  g_task_set_name (task, name);
  va_start (args, name);
  while ((step = va_arg (args, StepFunc)) != NULL)
    g_ptr_array_add (job->steps, step);
  va_end (args);
  job_next (task);
}

static void
smolvm_qemu_boot_async (SmolvmVmm *vmm, GCancellable *cancellable, GAsyncReadyCallback callback,
                        gpointer user_data)
{
  GTask *task = job_new (SMOLVM_QEMU (vmm), cancellable, callback, user_data);
  Job *job = g_task_get_task_data (task);
  job->launch = TRUE;
  job_run (task, "Cannot boot", step_spawn, NULL);
}

static void
smolvm_qemu_set_paused_async (SmolvmVmm *vmm, gboolean paused, GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = job_new (SMOLVM_QEMU (vmm), cancellable, callback, user_data);
  Job *job = g_task_get_task_data (task);
  job->resume = TRUE;
  if (paused)
    job_run (task, "Cannot pause", step_stop, NULL);
  else
    job_run (task, "Cannot resume", step_cont, NULL);
}

static void
smolvm_qemu_snapshot_create_async (SmolvmVmm *vmm, const gchar *vmstate_path,
                                   const gchar *mem_path, SmolvmProgress *progress,
                                   GCancellable *cancellable, GAsyncReadyCallback callback,
                                   gpointer user_data)
{
  GTask *task = job_new (SMOLVM_QEMU (vmm), cancellable, callback, user_data);
  Job *job = g_task_get_task_data (task);

  job->progress = progress != NULL ? g_object_ref (progress) : NULL;
  smolvm_progress_set_phase (progress, "saving-state", FALSE);
  job->vmstate_path = g_strdup (vmstate_path);
  job->mem_path = g_strdup (mem_path);
  /* RAM is copied after the device state, while the guest stays stopped */
  job_run (task, "Cannot save the VM state", step_migrate_capabilities, step_migrate_parameters,
           step_open_vmstate, step_getfd, step_migrate_out, step_save_ram,
           NULL);
}

static void
smolvm_qemu_snapshot_load_async (SmolvmVmm *vmm, const gchar *vmstate_path,
                                 const gchar *mem_path, gboolean resume,
                                 SmolvmProgress *progress, GCancellable *cancellable,
                                 GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = job_new (SMOLVM_QEMU (vmm), cancellable, callback, user_data);
  Job *job = g_task_get_task_data (task);

  job->progress = progress != NULL ? g_object_ref (progress) : NULL;
  job->launch = TRUE;
  job->incoming = TRUE;
  job->resume = resume;
  job->vmstate_path = g_strdup (vmstate_path);
  job->mem_path = g_strdup (mem_path);
  job_run (task, "Cannot load the snapshot", step_load_ram, step_spawn, step_migrate_capabilities,
           step_open_vmstate, step_getfd, step_migrate_in, step_cont, NULL);
}

static void
on_attach_status (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = smolvm_qmp_execute_finish (SMOLVM_QMP (source), result, &error);
  const gchar *status = NULL;

  if (reply == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  if (JSON_NODE_HOLDS_OBJECT (reply))
    status = json_object_get_string_member_with_default (json_node_get_object (reply), "status",
                                                         NULL);
  if (g_strcmp0 (status, "running") == 0)
    g_task_return_int (task, 0);
  else if (status != NULL)
    g_task_return_int (task, 1); /* paused, postmigrate...: not running */
  else
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                             "QEMU did not report its status");
}

static void
on_attach_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmQemu *self = g_task_get_source_object (task);
  g_autoptr(GError) error = NULL;
  SmolvmQmp *qmp = smolvm_qmp_connect_finish (result, &error);

  if (qmp == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  take_qmp (self, qmp);
  smolvm_qmp_execute_async (qmp, "query-status", NULL, -1, NULL, on_attach_status,
                            g_steal_pointer (&task));
}

static void
smolvm_qemu_attach_async (SmolvmVmm *vmm, GPid pid, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data)
{
  SmolvmQemu *self = SMOLVM_QEMU (vmm);
  g_autoptr(GTask) task = g_task_new (vmm, cancellable, callback, user_data);
  g_autoptr(GError) error = NULL;

  if (!smolvm_vmm_adopt (vmm, pid, &error)) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  smolvm_qmp_connect_async (self->qmp_socket, cancellable, on_attach_connected,
                            g_steal_pointer (&task));
}

static void
smolvm_qemu_class_init (SmolvmQemuClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  SmolvmVmmClass *vmm_class = SMOLVM_VMM_CLASS (klass);

  object_class->finalize = smolvm_qemu_finalize;
  object_class->constructed = smolvm_qemu_constructed;
  vmm_class->boot_async = smolvm_qemu_boot_async;
  vmm_class->set_paused_async = smolvm_qemu_set_paused_async;
  vmm_class->snapshot_create_async = smolvm_qemu_snapshot_create_async;
  vmm_class->snapshot_load_async = smolvm_qemu_snapshot_load_async;
  vmm_class->attach_async = smolvm_qemu_attach_async;
}

static void
smolvm_qemu_init (SmolvmQemu *self)
{
}

gchar *
smolvm_qemu_probe_machine (const gchar *binary, GError **error)
{
  g_autoptr(GSubprocess) proc = NULL;
  g_autofree gchar *out = NULL;
  g_auto(GStrv) lines = NULL;

  proc = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_SILENCE,
                           error, binary, "-machine", "help", NULL);
  if (proc == NULL || !g_subprocess_communicate_utf8 (proc, NULL, NULL, &out, NULL, error))
    return NULL;
  /* "q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)" */
  lines = g_strsplit (out != NULL ? out : "", "\n", -1);
  for (gsize i = 0; lines[i] != NULL; i++) {
    const gchar *alias;
    if (!g_str_has_prefix (lines[i], "q35 ") || (alias = strstr (lines[i], "(alias of ")) == NULL)
      continue;
    alias += strlen ("(alias of ");
    return g_strndup (alias, strcspn (alias, ")"));
  }
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_UNSUPPORTED,
               "%s offers no versioned q35 machine type", binary);
  return NULL;
}
