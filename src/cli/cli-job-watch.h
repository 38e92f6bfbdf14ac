/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Waiting for a long method call (CreateSnapshot, RestoreSnapshot,
 * CloneSnapshot, CreateVM, VM.Delete) while watching the Job it starts: the watch finds the Job
 * through smolvmd's ObjectManager, draws the progress bar from its
 * PropertiesChanged, and on Ctrl-C cancels it (a second Ctrl-C exits at
 * once, status 130). The method's reply still ends the command.
 *
 *   watch = cli_job_watch_new (client, "snapshot-create", vm_path, show);
 *   smolvm_client_create_snapshot (smolvm, ..., cli_job_watch_reply, watch);
 *   result = cli_job_watch_wait (watch);
 *   info = smolvm_client_create_snapshot_finish (smolvm, result, error);
 */

#include <gio/gio.h>

#include "cli-client.h"

G_BEGIN_DECLS

typedef struct _CliJobWatch CliJobWatch;

/* Call before making the method call. Our Job is one that appears after
 * this, whose Operation is @operation, whose StartedByUid is ours and whose
 * Objects holds @object_path (any, if NULL). @show_progress: draw the bar,
 * if standard output is a terminal. */
CliJobWatch *cli_job_watch_new (CliClient *client, const gchar *operation,
                                const gchar *object_path, gboolean show_progress);
void cli_job_watch_free (CliJobWatch *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CliJobWatch, cli_job_watch_free)

/* The GAsyncReadyCallback of the method call; @user_data is the watch. */
void cli_job_watch_reply (GObject *source, GAsyncResult *result, gpointer user_data);

/* Runs the main loop until the reply has come, erases the bar, and returns
 * the result for the call's _finish() (owned by the watch). */
GAsyncResult *cli_job_watch_wait (CliJobWatch *self);

G_END_DECLS
