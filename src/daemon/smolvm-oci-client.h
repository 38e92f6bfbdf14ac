/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "smolvm-progress.h"

G_BEGIN_DECLS

/* Blobs up to this size go up in one PUT after the POST that opens the
 * upload; bigger ones in PATCH chunks of this size, then a PUT that closes
 * it. A chunk is read from the file into memory while it is sent, so this
 * also bounds the memory of one upload. */
#define SMOLVM_OCI_CHUNK_SIZE (16 * 1024 * 1024)

#define SMOLVM_TYPE_OCI_CLIENT (smolvm_oci_client_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmOciClient, smolvm_oci_client, SMOLVM, OCI_CLIENT, GObject)

/* A client of one repository of one registry (OCI distribution spec over
 * libsoup 3, asynchronous, on the thread default main context). HTTPS
 * unless @insecure (a registry the admin listed as insecure). Anonymous
 * until given credentials; a registry's 401 challenge chooses HTTP basic
 * or the Bearer token flow. @push: whether the tokens it asks for must
 * allow pushing, not only pulling. Errors: NOT_FOUND (no such repository,
 * tag or blob), REGISTRY_AUTH_FAILED (credentials refused or missing),
 * REGISTRY_UNAVAILABLE (unreachable, TLS failure, 5xx), CANCELLED; each
 * message names the registry. */
SmolvmOciClient *smolvm_oci_client_new (const gchar *registry, const gchar *repository,
                                        gboolean insecure, gboolean push);
void smolvm_oci_client_set_credentials (SmolvmOciClient *self, const gchar *username,
                                        const gchar *password);
const gchar *smolvm_oci_client_get_registry (SmolvmOciClient *self);
/* Tests only: a smaller chunk size, to exercise chunked uploads. */
void smolvm_oci_client_set_chunk_size (SmolvmOciClient *self, gsize chunk_size);

/* GET /v2/: reachable, speaks the protocol, accepts us. */
void smolvm_oci_client_ping_async (SmolvmOciClient *self, GCancellable *cancellable,
                                   GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_oci_client_ping_finish (SmolvmOciClient *self, GAsyncResult *result,
                                        GError **error);

/* HEAD of a blob: @exists is whether the registry has it with @size. */
void smolvm_oci_client_blob_exists_async (SmolvmOciClient *self, const gchar *digest,
                                          guint64 size, GCancellable *cancellable,
                                          GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_oci_client_blob_exists_finish (SmolvmOciClient *self, GAsyncResult *result,
                                               gboolean *exists, GError **error);

/* Fetches blob @digest of @size into @layout_dir/blobs/sha256/<hex>
 * (following redirects), verifying its sha256 and size as it is written
 * to a temporary name, renamed only once verified; a mismatch is CORRUPT
 * and leaves nothing. A blob already there and verified is not fetched
 * again (@fetched FALSE), a bad one is replaced. Adds the bytes fetched
 * to @progress. */
void smolvm_oci_client_blob_fetch_async (SmolvmOciClient *self, const gchar *digest,
                                         guint64 size, const gchar *layout_dir,
                                         SmolvmProgress *progress, GCancellable *cancellable,
                                         GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_oci_client_blob_fetch_finish (SmolvmOciClient *self, GAsyncResult *result,
                                              gboolean *fetched, GError **error);

/* Uploads the file @path as blob @digest of @size: POST, then one PUT, or
 * PATCH chunks and a closing PUT when it is bigger than the chunk size.
 * Adds the bytes sent to @progress. */
void smolvm_oci_client_blob_upload_async (SmolvmOciClient *self, const gchar *digest,
                                          guint64 size, const gchar *path,
                                          SmolvmProgress *progress, GCancellable *cancellable,
                                          GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_oci_client_blob_upload_finish (SmolvmOciClient *self, GAsyncResult *result,
                                               GError **error);

/* PUT /v2/<repo>/manifests/<reference> with Content-Type @media_type. */
void smolvm_oci_client_manifest_put_async (SmolvmOciClient *self, const gchar *reference,
                                           GBytes *manifest, const gchar *media_type,
                                           GCancellable *cancellable,
                                           GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_oci_client_manifest_put_finish (SmolvmOciClient *self, GAsyncResult *result,
                                                GError **error);

/* GET /v2/<repo>/manifests/<reference>, accepting @media_type. A
 * reference by digest is checked against the body (CORRUPT otherwise).
 * Returns the body; @content_type (may be NULL) gets the answer's type. */
void smolvm_oci_client_manifest_get_async (SmolvmOciClient *self, const gchar *reference,
                                           const gchar *media_type, GCancellable *cancellable,
                                           GAsyncReadyCallback callback, gpointer user_data);
GBytes *smolvm_oci_client_manifest_get_finish (SmolvmOciClient *self, GAsyncResult *result,
                                               gchar **content_type, GError **error);

/* Blocking (a worker thread): the credentials of @registry in the
 * containers auth.json file @path ({"auths": {"host:port": {"auth":
 * base64("user:password")}}}). A missing file or entry is not an error:
 * @username and @password stay NULL. */
gboolean smolvm_oci_credentials_lookup (const gchar *path, const gchar *registry,
                                        gchar **username, gchar **password, GError **error);

G_END_DECLS
