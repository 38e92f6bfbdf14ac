/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "smolvm-oci-artifact.h"
#include "smolvm-progress.h"

G_BEGIN_DECLS

/* An OCI archive (skopeo's oci-archive): a tar of an OCI image layout,
 * oci-layout, index.json and blobs/sha256/<hex>, streamed to or from a
 * caller's descriptor. Worker threads; a Cancel interrupts a wait for the
 * descriptor too. */

/* Writes @artifact, whose blobs and index.json are in @layout_dir, to
 * @fd: fixed tar headers, blobs in manifest order. Adds the bytes written
 * to @progress. */
gboolean smolvm_oci_archive_write (SmolvmOciArtifact *artifact, const gchar *layout_dir, int fd,
                                   SmolvmProgress *progress, GCancellable *cancellable,
                                   GError **error);

/* Reads an archive from @fd into @layout_dir (prepared, empty): each blob
 * is checked against its name's sha256 as it is written (CORRUPT naming
 * it), index.json is kept; anything else is skipped. Then the artifact
 * index.json names, with every blob of its manifest present. A tar that
 * cannot be read is CORRUPT; a layout of something else NOT_A_SNAPSHOT.
 * Adds the bytes read to @progress. */
SmolvmOciArtifact *smolvm_oci_archive_read (int fd, const gchar *layout_dir,
                                            SmolvmProgress *progress, GCancellable *cancellable,
                                            GError **error);

G_END_DECLS
