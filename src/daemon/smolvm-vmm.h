/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "smolvm-progress.h"
#include "smolvm-vm-config.h"

G_BEGIN_DECLS

#define SMOLVM_TYPE_VMM (smolvm_vmm_get_type ())
G_DECLARE_DERIVABLE_TYPE (SmolvmVmm, smolvm_vmm, SMOLVM, VMM, GObject)

/* One hypervisor process driving one VM. The base class owns the process:
 * spawning it with its output appended to the console log, watching it (also
 * when adopted after a daemon restart), and terminating it. Subclasses speak
 * the hypervisor's protocol. Every *_async completes through
 * smolvm_vmm_op_finish().
 *
 * The GCancellable of a call stops its work: a cancelled call fails with
 * SMOLVM_ERROR_CANCELLED ("Cancelled..."). A cancelled boot or load leaves
 * no process; a cancelled snapshot_create leaves the guest paused in a
 * running, healthy VMM (QEMU: migrate_cancel, or the RAM copy stopped;
 * Firecracker: the request dropped, then a wait until the VMM answers
 * again, since it cannot stop writing), so that the caller can resume it. */
struct _SmolvmVmmClass {
  GObjectClass parent_class;

  /* spawn a fresh process and boot the guest */
  void (*boot_async) (SmolvmVmm *self, GCancellable *cancellable, GAsyncReadyCallback callback,
                      gpointer user_data);
  void (*set_paused_async) (SmolvmVmm *self, gboolean paused, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data);
  /* the guest must be paused; sets the phases it goes through on @progress
   * (saving-state, then copying-memory unless the state came with the
   * memory in it), expects and counts the bytes it can measure */
  void (*snapshot_create_async) (SmolvmVmm *self, const gchar *vmstate_path, const gchar *mem_path,
                                 SmolvmProgress *progress, GCancellable *cancellable,
                                 GAsyncReadyCallback callback, gpointer user_data);
  /* spawn a fresh process and load a snapshot into it (phase
   * loading-state); the process maps @mem_path privately, so the file must
   * stay as it is for as long as the process runs. @tap_override: see
   * smolvm_vmm_snapshot_load_async() */
  void (*snapshot_load_async) (SmolvmVmm *self, const gchar *vmstate_path, const gchar *mem_path,
                               gboolean resume, const gchar *tap_override,
                               SmolvmProgress *progress, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data);
  /* take over a process left running by an earlier daemon; the task's
   * result (smolvm_vmm_attach_finish) is whether the guest is paused */
  void (*attach_async) (SmolvmVmm *self, GPid pid, GCancellable *cancellable,
                        GAsyncReadyCallback callback, gpointer user_data);
};

/* A VMM of backend @type (SMOLVM_TYPE_FIRECRACKER, SMOLVM_TYPE_QEMU) for one VM. */
SmolvmVmm *smolvm_vmm_new (GType type, const gchar *vm_id, const SmolvmVmConfig *config,
                           GVariant *network_config, const gchar *disk_path,
                           const gchar *runtime_dir, const gchar *console_log_path,
                           const gchar *binary);

/* Seconds a VMM may take to answer an API call that should be quick (all
 * but saving and loading state); 0 waits for ever. Process-wide. */
void smolvm_vmm_set_call_timeout (guint seconds);
guint smolvm_vmm_get_call_timeout (SmolvmVmm *self);

const gchar *smolvm_vmm_get_vm_id (SmolvmVmm *self);
const SmolvmVmConfig *smolvm_vmm_get_config (SmolvmVmm *self);
GVariant *smolvm_vmm_get_network_config (SmolvmVmm *self);
const gchar *smolvm_vmm_get_disk_path (SmolvmVmm *self);
const gchar *smolvm_vmm_get_runtime_dir (SmolvmVmm *self);
const gchar *smolvm_vmm_get_console_log_path (SmolvmVmm *self);
const gchar *smolvm_vmm_get_binary (SmolvmVmm *self);
GPid smolvm_vmm_get_pid (SmolvmVmm *self);
gboolean smolvm_vmm_is_running (SmolvmVmm *self);

void smolvm_vmm_boot_async (SmolvmVmm *self, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data);
void smolvm_vmm_set_paused_async (SmolvmVmm *self, gboolean paused, GCancellable *cancellable,
                                  GAsyncReadyCallback callback, gpointer user_data);
void smolvm_vmm_snapshot_create_async (SmolvmVmm *self, const gchar *vmstate_path,
                                       const gchar *mem_path, SmolvmProgress *progress,
                                       GCancellable *cancellable, GAsyncReadyCallback callback,
                                       gpointer user_data);
/* @tap_override NULL (a restore of the VM the snapshot was taken of): the
 * guest's network interface opens the TAP device saved in the snapshot.
 * Else (a clone: that TAP belongs to another VM) it opens the TAP device
 * @tap_override, a Linux interface name; the snapshot must have a network
 * interface. Firecracker only (network_overrides); QEMU refuses it with
 * Unsupported for now. Several processes may load one @mem_path at once:
 * Firecracker maps it read-only and privately. */
void smolvm_vmm_snapshot_load_async (SmolvmVmm *self, const gchar *vmstate_path,
                                     const gchar *mem_path, gboolean resume,
                                     const gchar *tap_override, SmolvmProgress *progress,
                                     GCancellable *cancellable, GAsyncReadyCallback callback,
                                     gpointer user_data);
gboolean smolvm_vmm_op_finish (SmolvmVmm *self, GAsyncResult *result, GError **error);

void smolvm_vmm_attach_async (SmolvmVmm *self, GPid pid, GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data);
/* FALSE with @error, else TRUE and *@paused */
gboolean smolvm_vmm_attach_finish (SmolvmVmm *self, GAsyncResult *result, gboolean *paused,
                                   GError **error);

/* SIGTERM, then SIGKILL after a grace period; completes once the process is
 * gone (at once when none runs). Never fails. */
void smolvm_vmm_terminate_async (SmolvmVmm *self, GAsyncReadyCallback callback,
                                 gpointer user_data);
void smolvm_vmm_terminate_finish (SmolvmVmm *self, GAsyncResult *result);

/* For subclasses. */
gboolean smolvm_vmm_spawn (SmolvmVmm *self, const gchar *const *argv, GError **error);
gboolean smolvm_vmm_adopt (SmolvmVmm *self, GPid pid, GError **error);
/* Where the process's stdout and stderr go (default: the console log). */
void smolvm_vmm_set_process_log_path (SmolvmVmm *self, const gchar *path);
/* Connects to the Unix socket @path that a freshly spawned process opens:
 * tries at once, then again after 1, 2, 4... (at most 50) ms while the
 * socket is missing or not listening yet, until it accepts, the process
 * exits, @timeout_ms pass (Backend) or @cancellable fires (Cancelled). The
 * result is the connection. */
void smolvm_vmm_wait_socket_async (SmolvmVmm *self, const gchar *path, guint timeout_ms,
                                   GCancellable *cancellable, GAsyncReadyCallback callback,
                                   gpointer user_data);
GSocketConnection *smolvm_vmm_wait_socket_finish (SmolvmVmm *self, GAsyncResult *result,
                                                  GError **error);
/* The guest asked to power off: the coming exit is a clean one, even for
 * an adopted process whose exit status cannot be known. */
void smolvm_vmm_note_guest_shutdown (SmolvmVmm *self);
/* The guest paused or resumed by itself (or by the VMM): emits "guest-state". */
void smolvm_vmm_emit_guest_state (SmolvmVmm *self, gboolean paused);

G_END_DECLS
