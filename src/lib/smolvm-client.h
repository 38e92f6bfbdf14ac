/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>
#include <gio/gunixfdlist.h>

#include "smolvm-snapshot-info.h"
#include "smolvm-vm-info.h"

G_BEGIN_DECLS

/**
 * SmolvmBusType:
 * @SMOLVM_BUS_TYPE_SYSTEM: The system bus, where the installed smolvmd runs.
 * @SMOLVM_BUS_TYPE_SESSION: The session bus, for a smolvmd started with
 *   --session.
 *
 * The bus a #SmolvmClient finds smolvmd on.
 */
typedef enum {
  SMOLVM_BUS_TYPE_SYSTEM,
  SMOLVM_BUS_TYPE_SESSION,
} SmolvmBusType;

/**
 * SmolvmSnapshotCreateFlags:
 * @SMOLVM_SNAPSHOT_CREATE_FLAGS_NONE: The VM stays paused afterwards.
 * @SMOLVM_SNAPSHOT_CREATE_FLAGS_RESUME_SOURCE: Resume the VM afterwards
 *   (the option resume-source).
 *
 * Options of smolvm_client_create_snapshot_sync().
 */
typedef enum /*< flags >*/ {
  SMOLVM_SNAPSHOT_CREATE_FLAGS_NONE = 0,
  SMOLVM_SNAPSHOT_CREATE_FLAGS_RESUME_SOURCE = 1 << 0,
} SmolvmSnapshotCreateFlags;

/**
 * SmolvmSnapshotRestoreFlags:
 * @SMOLVM_SNAPSHOT_RESTORE_FLAGS_NONE: The restored VM stays paused.
 * @SMOLVM_SNAPSHOT_RESTORE_FLAGS_RESUME: Resume the restored VM (the option
 *   resume).
 * @SMOLVM_SNAPSHOT_RESTORE_FLAGS_FORCE: Restore a snapshot that was restored
 *   before (the option force); without it that is
 *   %SMOLVM_ERROR_ALREADY_RESTORED.
 *
 * Options of smolvm_client_restore_snapshot_sync().
 */
typedef enum /*< flags >*/ {
  SMOLVM_SNAPSHOT_RESTORE_FLAGS_NONE = 0,
  SMOLVM_SNAPSHOT_RESTORE_FLAGS_RESUME = 1 << 0,
  SMOLVM_SNAPSHOT_RESTORE_FLAGS_FORCE = 1 << 1,
} SmolvmSnapshotRestoreFlags;

/**
 * SmolvmSnapshotCloneFlags:
 * @SMOLVM_SNAPSHOT_CLONE_FLAGS_NONE: The clones stay paused.
 * @SMOLVM_SNAPSHOT_CLONE_FLAGS_RESUME: Resume the clones (the option resume).
 *
 * Options of smolvm_client_clone_snapshot_sync().
 */
typedef enum /*< flags >*/ {
  SMOLVM_SNAPSHOT_CLONE_FLAGS_NONE = 0,
  SMOLVM_SNAPSHOT_CLONE_FLAGS_RESUME = 1 << 0,
} SmolvmSnapshotCloneFlags;

/**
 * SmolvmVmDeleteFlags:
 * @SMOLVM_VM_DELETE_FLAGS_NONE: A running or paused VM is
 *   %SMOLVM_ERROR_INVALID_STATE.
 * @SMOLVM_VM_DELETE_FLAGS_FORCE: Stop a running or paused VM first (the
 *   option force).
 *
 * Options of smolvm_client_delete_vm_sync().
 */
typedef enum /*< flags >*/ {
  SMOLVM_VM_DELETE_FLAGS_NONE = 0,
  SMOLVM_VM_DELETE_FLAGS_FORCE = 1 << 0,
} SmolvmVmDeleteFlags;

#define SMOLVM_TYPE_CLIENT (smolvm_client_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmClient, smolvm_client, SMOLVM, CLIENT, GObject)

/* ---- construction and properties ---- */

SmolvmClient *smolvm_client_new_sync (SmolvmBusType bus_type, GCancellable *cancellable,
                                      GError **error);
void smolvm_client_new (SmolvmBusType bus_type, GCancellable *cancellable,
                        GAsyncReadyCallback callback, gpointer user_data);
SmolvmClient *smolvm_client_new_finish (GAsyncResult *result, GError **error);

SmolvmBusType smolvm_client_get_bus_type (SmolvmClient *self);
GDBusConnection *smolvm_client_get_connection (SmolvmClient *self);
const gchar *smolvm_client_get_name_owner (SmolvmClient *self);
void smolvm_client_set_interactive (SmolvmClient *self, gboolean interactive);
gboolean smolvm_client_get_interactive (SmolvmClient *self);
const gchar *smolvm_client_get_daemon_version (SmolvmClient *self);
const gchar *const *smolvm_client_get_backends (SmolvmClient *self);

/* ---- snapshots ---- */

GPtrArray *smolvm_client_list_snapshots_sync (SmolvmClient *self, const gchar *vm_id,
                                              GCancellable *cancellable, GError **error);
void smolvm_client_list_snapshots (SmolvmClient *self, const gchar *vm_id,
                                   GCancellable *cancellable, GAsyncReadyCallback callback,
                                   gpointer user_data);
GPtrArray *smolvm_client_list_snapshots_finish (SmolvmClient *self, GAsyncResult *result,
                                                GError **error);

SmolvmSnapshotInfo *smolvm_client_get_snapshot_sync (SmolvmClient *self,
                                                     const gchar *snapshot_id,
                                                     GCancellable *cancellable, GError **error);
void smolvm_client_get_snapshot (SmolvmClient *self, const gchar *snapshot_id,
                                 GCancellable *cancellable, GAsyncReadyCallback callback,
                                 gpointer user_data);
SmolvmSnapshotInfo *smolvm_client_get_snapshot_finish (SmolvmClient *self, GAsyncResult *result,
                                                       GError **error);

SmolvmSnapshotInfo *smolvm_client_create_snapshot_sync (SmolvmClient *self, const gchar *vm_id,
                                                        const gchar *snapshot_id,
                                                        SmolvmSnapshotCreateFlags flags,
                                                        GCancellable *cancellable,
                                                        GError **error);
void smolvm_client_create_snapshot (SmolvmClient *self, const gchar *vm_id,
                                    const gchar *snapshot_id, SmolvmSnapshotCreateFlags flags,
                                    GCancellable *cancellable, GAsyncReadyCallback callback,
                                    gpointer user_data);
SmolvmSnapshotInfo *smolvm_client_create_snapshot_finish (SmolvmClient *self,
                                                          GAsyncResult *result, GError **error);

SmolvmVmInfo *smolvm_client_restore_snapshot_sync (SmolvmClient *self, const gchar *snapshot_id,
                                                   SmolvmSnapshotRestoreFlags flags,
                                                   GCancellable *cancellable, GError **error);
void smolvm_client_restore_snapshot (SmolvmClient *self, const gchar *snapshot_id,
                                     SmolvmSnapshotRestoreFlags flags, GCancellable *cancellable,
                                     GAsyncReadyCallback callback, gpointer user_data);
SmolvmVmInfo *smolvm_client_restore_snapshot_finish (SmolvmClient *self, GAsyncResult *result,
                                                     GError **error);

GPtrArray *smolvm_client_clone_snapshot_sync (SmolvmClient *self, const gchar *snapshot_id,
                                              guint count, const gchar *const *vm_ids,
                                              SmolvmSnapshotCloneFlags flags,
                                              GCancellable *cancellable, GError **error);
void smolvm_client_clone_snapshot (SmolvmClient *self, const gchar *snapshot_id, guint count,
                                   const gchar *const *vm_ids, SmolvmSnapshotCloneFlags flags,
                                   GCancellable *cancellable, GAsyncReadyCallback callback,
                                   gpointer user_data);
GPtrArray *smolvm_client_clone_snapshot_finish (SmolvmClient *self, GAsyncResult *result,
                                                GError **error);

gboolean smolvm_client_delete_snapshot_sync (SmolvmClient *self, const gchar *snapshot_id,
                                             GCancellable *cancellable, GError **error);
void smolvm_client_delete_snapshot (SmolvmClient *self, const gchar *snapshot_id,
                                    GCancellable *cancellable, GAsyncReadyCallback callback,
                                    gpointer user_data);
gboolean smolvm_client_delete_snapshot_finish (SmolvmClient *self, GAsyncResult *result,
                                               GError **error);

gboolean smolvm_client_export_snapshot_sync (SmolvmClient *self, const gchar *snapshot_id,
                                             gint fd, GCancellable *cancellable, GError **error);
void smolvm_client_export_snapshot (SmolvmClient *self, const gchar *snapshot_id, gint fd,
                                    GCancellable *cancellable, GAsyncReadyCallback callback,
                                    gpointer user_data);
gboolean smolvm_client_export_snapshot_finish (SmolvmClient *self, GAsyncResult *result,
                                               GError **error);

SmolvmSnapshotInfo *smolvm_client_import_snapshot_sync (SmolvmClient *self, gint fd,
                                                        const gchar *snapshot_id,
                                                        GCancellable *cancellable,
                                                        GError **error);
void smolvm_client_import_snapshot (SmolvmClient *self, gint fd, const gchar *snapshot_id,
                                    GCancellable *cancellable, GAsyncReadyCallback callback,
                                    gpointer user_data);
SmolvmSnapshotInfo *smolvm_client_import_snapshot_finish (SmolvmClient *self,
                                                          GAsyncResult *result, GError **error);

gboolean smolvm_client_push_snapshot_sync (SmolvmClient *self, const gchar *snapshot_id,
                                           const gchar *reference, GCancellable *cancellable,
                                           GError **error);
void smolvm_client_push_snapshot (SmolvmClient *self, const gchar *snapshot_id,
                                  const gchar *reference, GCancellable *cancellable,
                                  GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_client_push_snapshot_finish (SmolvmClient *self, GAsyncResult *result,
                                             GError **error);

SmolvmSnapshotInfo *smolvm_client_pull_snapshot_sync (SmolvmClient *self,
                                                      const gchar *reference,
                                                      const gchar *snapshot_id,
                                                      GCancellable *cancellable, GError **error);
void smolvm_client_pull_snapshot (SmolvmClient *self, const gchar *reference,
                                  const gchar *snapshot_id, GCancellable *cancellable,
                                  GAsyncReadyCallback callback, gpointer user_data);
SmolvmSnapshotInfo *smolvm_client_pull_snapshot_finish (SmolvmClient *self,
                                                        GAsyncResult *result, GError **error);

/* ---- VMs ---- */

SmolvmVmInfo *smolvm_client_create_vm_sync (SmolvmClient *self, GVariant *config,
                                            GUnixFDList *fd_list, GCancellable *cancellable,
                                            GError **error);
void smolvm_client_create_vm (SmolvmClient *self, GVariant *config, GUnixFDList *fd_list,
                              GCancellable *cancellable, GAsyncReadyCallback callback,
                              gpointer user_data);
SmolvmVmInfo *smolvm_client_create_vm_finish (SmolvmClient *self, GAsyncResult *result,
                                              GError **error);

GPtrArray *smolvm_client_list_vms_sync (SmolvmClient *self, GCancellable *cancellable,
                                        GError **error);
void smolvm_client_list_vms (SmolvmClient *self, GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data);
GPtrArray *smolvm_client_list_vms_finish (SmolvmClient *self, GAsyncResult *result,
                                          GError **error);

SmolvmVmInfo *smolvm_client_get_vm_sync (SmolvmClient *self, const gchar *vm_id,
                                         GCancellable *cancellable, GError **error);
void smolvm_client_get_vm (SmolvmClient *self, const gchar *vm_id, GCancellable *cancellable,
                           GAsyncReadyCallback callback, gpointer user_data);
SmolvmVmInfo *smolvm_client_get_vm_finish (SmolvmClient *self, GAsyncResult *result,
                                           GError **error);

gboolean smolvm_client_start_vm_sync (SmolvmClient *self, const gchar *vm_id,
                                      GCancellable *cancellable, GError **error);
void smolvm_client_start_vm (SmolvmClient *self, const gchar *vm_id, GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_client_start_vm_finish (SmolvmClient *self, GAsyncResult *result,
                                        GError **error);

gboolean smolvm_client_pause_vm_sync (SmolvmClient *self, const gchar *vm_id,
                                      GCancellable *cancellable, GError **error);
void smolvm_client_pause_vm (SmolvmClient *self, const gchar *vm_id, GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_client_pause_vm_finish (SmolvmClient *self, GAsyncResult *result,
                                        GError **error);

gboolean smolvm_client_resume_vm_sync (SmolvmClient *self, const gchar *vm_id,
                                       GCancellable *cancellable, GError **error);
void smolvm_client_resume_vm (SmolvmClient *self, const gchar *vm_id, GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_client_resume_vm_finish (SmolvmClient *self, GAsyncResult *result,
                                         GError **error);

gboolean smolvm_client_stop_vm_sync (SmolvmClient *self, const gchar *vm_id,
                                     GCancellable *cancellable, GError **error);
void smolvm_client_stop_vm (SmolvmClient *self, const gchar *vm_id, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_client_stop_vm_finish (SmolvmClient *self, GAsyncResult *result, GError **error);

gboolean smolvm_client_delete_vm_sync (SmolvmClient *self, const gchar *vm_id,
                                       SmolvmVmDeleteFlags flags, GCancellable *cancellable,
                                       GError **error);
void smolvm_client_delete_vm (SmolvmClient *self, const gchar *vm_id, SmolvmVmDeleteFlags flags,
                              GCancellable *cancellable, GAsyncReadyCallback callback,
                              gpointer user_data);
gboolean smolvm_client_delete_vm_finish (SmolvmClient *self, GAsyncResult *result,
                                         GError **error);

gint smolvm_client_open_console_log_sync (SmolvmClient *self, const gchar *vm_id,
                                          GCancellable *cancellable, GError **error);
void smolvm_client_open_console_log (SmolvmClient *self, const gchar *vm_id,
                                     GCancellable *cancellable, GAsyncReadyCallback callback,
                                     gpointer user_data);
gint smolvm_client_open_console_log_finish (SmolvmClient *self, GAsyncResult *result,
                                            GError **error);

/* ---- jobs ---- */

gboolean smolvm_client_cancel_job_sync (SmolvmClient *self, const gchar *job_path,
                                        GCancellable *cancellable, GError **error);
void smolvm_client_cancel_job (SmolvmClient *self, const gchar *job_path,
                               GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data);
gboolean smolvm_client_cancel_job_finish (SmolvmClient *self, GAsyncResult *result,
                                          GError **error);

G_END_DECLS
