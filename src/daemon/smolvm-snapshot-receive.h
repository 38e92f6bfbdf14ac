/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "smolvm-context.h"
#include "smolvm-job.h"
#include "smolvm-oci-artifact.h"

G_BEGIN_DECLS

/* What ImportSnapshot and PullSnapshot share once an artifact's blobs are
 * in a layout dir: its config read and verified, its backend available
 * here (else Unsupported), the target id free (else AlreadyExists), the
 * layers verified and unpacked into the store's staging dir with their
 * holes, then committed, registered and published as a snapshot. A
 * failure or a Cancel of @job rolls everything back: no snapshot, no
 * staging dir. The job's progress gets the phases "verifying" and
 * "unpacking", then "committing" (no longer cancelable). @snapshot_id:
 * NULL for the artifact's own. Finishes with the new snapshot's object
 * path. The layout dir is the caller's to remove. */
void smolvm_snapshot_receive_async (SmolvmContext *ctx, SmolvmJob *job,
                                    SmolvmOciArtifact *artifact, const gchar *layout_dir,
                                    const gchar *snapshot_id, GAsyncReadyCallback callback,
                                    gpointer user_data);
gchar *smolvm_snapshot_receive_finish (GAsyncResult *result, GError **error);

G_END_DECLS
