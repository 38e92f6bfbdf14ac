/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "smolvm-progress.h"

G_BEGIN_DECLS

/* A reference to a manifest in an OCI registry:
 * "host[:port]/repository[:tag]" or "host[:port]/repository@sha256:<hex>".
 * The host is required (smolvm has no default registry): the first
 * component is a host when it has a '.' or a ':' or is "localhost", as
 * Docker and containers/image decide it. A reference with neither tag nor
 * digest means the tag "latest". Shared by the daemon and the CLI, so that
 * the CLI rejects a malformed reference before any D-Bus call. */
typedef struct {
  gchar *registry;   /* "host" or "host:port" */
  gchar *repository; /* "name/space/repo", lower case */
  gchar *tag;        /* NULL when a digest is given */
  gchar *digest;     /* "sha256:<hex>" or NULL */
} SmolvmOciRef;

SmolvmOciRef *smolvm_oci_ref_parse (const gchar *text, GError **error);
void smolvm_oci_ref_free (SmolvmOciRef *ref);
/* The tag or the digest: what goes after /manifests/ */
const gchar *smolvm_oci_ref_get_reference (const SmolvmOciRef *ref);
/* The canonical text form */
gchar *smolvm_oci_ref_to_string (const SmolvmOciRef *ref);
/* Whether @name is a registry "host" or "host:port" as a reference has it */
gboolean smolvm_oci_registry_name_is_valid (const gchar *name);
/* Whether @registry is one of @insecure (NULL-terminated, may be NULL) */
gboolean smolvm_oci_registry_is_insecure (const gchar *const *insecure, const gchar *registry);
/* Whether @digest is "sha256:" and 64 lower-case hex digits: safe as a
 * file name too. The one digest check of the CLI and the daemon. */
gboolean smolvm_oci_ref_digest_is_valid (const gchar *digest);
/* Blocking (a worker thread): whether @path is blob @digest, a regular file
 * (never through a symlink) of @size bytes with that sha256. NOT_FOUND when
 * it is missing, CORRUPT naming the blob on any mismatch, CANCELLED; adds
 * the bytes read to @progress. The one blob check of the artifact's layout
 * dirs and of the registry client's downloads. */
gboolean smolvm_oci_blob_file_verify (const gchar *path, const gchar *digest, guint64 size,
                                      SmolvmProgress *progress, GCancellable *cancellable,
                                      GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmolvmOciRef, smolvm_oci_ref_free)

G_END_DECLS
