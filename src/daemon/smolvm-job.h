/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "smolvm-context.h"
#include "smolvm-generated.h"
#include "smolvm-progress.h"

G_BEGIN_DECLS

#define SMOLVM_TYPE_JOB (smolvm_job_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmJob, smolvm_job, SMOLVM, JOB, SmolvmDbusJobSkeleton)

#define SMOLVM_JOB_SNAPSHOT_CREATE "snapshot-create"
#define SMOLVM_JOB_SNAPSHOT_RESTORE "snapshot-restore"
#define SMOLVM_JOB_SNAPSHOT_DELETE "snapshot-delete"
#define SMOLVM_JOB_SNAPSHOT_CLONE "snapshot-clone"
#define SMOLVM_JOB_SNAPSHOT_PUSH "snapshot-push"
#define SMOLVM_JOB_SNAPSHOT_PULL "snapshot-pull"
#define SMOLVM_JOB_SNAPSHOT_EXPORT "snapshot-export"
#define SMOLVM_JOB_SNAPSHOT_IMPORT "snapshot-import"
#define SMOLVM_JOB_VM_CREATE "vm-create"
#define SMOLVM_JOB_VM_DELETE "vm-delete"

/* One long operation, published as /org/smolvm/Manager/job/N while it runs
 * (the registry exports it when it is added). @action_id is the polkit
 * action a caller other than @uid needs to cancel it. */
SmolvmJob *smolvm_job_new (SmolvmContext *ctx, const gchar *operation, const gchar *action_id,
                           guint32 uid);

const gchar *smolvm_job_get_object_path (SmolvmJob *self);
/* Where the work reports its phase and bytes; the job publishes them. */
SmolvmProgress *smolvm_job_get_progress (SmolvmJob *self);
/* Cancelled by Cancel(); every step of the work must take it. */
GCancellable *smolvm_job_get_cancellable (SmolvmJob *self);

/* Adds a VM or snapshot object path to Objects. */
void smolvm_job_add_object (SmolvmJob *self, const gchar *object_path);
void smolvm_job_set_phase (SmolvmJob *self, const gchar *phase);
/* From here on Cancel is refused: the result is being made final. */
void smolvm_job_set_cancelable (SmolvmJob *self, gboolean cancelable);

/* Emits Completed (@error NULL: success) and withdraws the object. */
void smolvm_job_complete (SmolvmJob *self, const GError *error);

G_END_DECLS
