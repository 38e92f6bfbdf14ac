/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "smolvm-error-map.h"
#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-oci-ref.h"

/* The grammar of the OCI distribution spec (and of Docker's reference
 * package), anchored: a host, a port, path components, a tag. */
#define HOST_RE "(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\\[[0-9a-fA-F:]+\\])(?::[0-9]{1,5})?"
#define COMPONENT_RE "[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*"
#define REPOSITORY_RE COMPONENT_RE "(?:/" COMPONENT_RE ")*"
#define TAG_RE "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
#define DIGEST_RE "sha256:[a-f0-9]{64}"

static gboolean
matches (const gchar *pattern, const gchar *text)
{
  return g_regex_match_simple (pattern, text, G_REGEX_ANCHORED | G_REGEX_DOLLAR_ENDONLY,
                               G_REGEX_MATCH_ANCHORED);
}

gboolean
smolvm_oci_ref_digest_is_valid (const gchar *digest)
{
  return digest != NULL && matches ("^" DIGEST_RE "$", digest);
}

gboolean
smolvm_oci_blob_file_verify (const gchar *path, const gchar *digest, guint64 size,
                             SmolvmProgress *progress, GCancellable *cancellable, GError **error)
{
  g_autofree gchar *sha256 = NULL;
  struct stat st;

  if (lstat (path, &st) < 0) {
    if (errno == ENOENT) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND, "Blob %s is missing", digest);
      return FALSE;
    }
    return smolvm_error_set_errno (error, errno, "Cannot read blob %s", digest);
  }
  if (!S_ISREG (st.st_mode)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                 "Blob %s is corrupt: not a regular file", digest);
    return FALSE;
  }
  if ((guint64) st.st_size != size) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                 "Blob %s is corrupt: %" G_GUINT64_FORMAT " bytes instead of %" G_GUINT64_FORMAT,
                 digest, (guint64) st.st_size, size);
    return FALSE;
  }
  sha256 = smolvm_file_sha256 (path, progress, cancellable, error);
  if (sha256 == NULL)
    return FALSE;
  if (!g_str_has_prefix (digest, "sha256:") || !g_str_equal (sha256, digest + strlen ("sha256:"))) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                 "Blob %s is corrupt: its sha256 does not match", digest);
    return FALSE;
  }
  return TRUE;
}

gboolean
smolvm_oci_registry_name_is_valid (const gchar *name)
{
  return name != NULL && matches ("^" HOST_RE "$", name);
}

gboolean
smolvm_oci_registry_is_insecure (const gchar *const *insecure, const gchar *registry)
{
  for (gsize i = 0; insecure != NULL && insecure[i] != NULL; i++)
    if (g_ascii_strcasecmp (insecure[i], registry) == 0)
      return TRUE;
  return FALSE;
}

void
smolvm_oci_ref_free (SmolvmOciRef *ref)
{
  if (ref == NULL)
    return;
  g_free (ref->registry);
  g_free (ref->repository);
  g_free (ref->tag);
  g_free (ref->digest);
  g_free (ref);
}

SmolvmOciRef *
smolvm_oci_ref_parse (const gchar *text, GError **error)
{
  g_autoptr(SmolvmOciRef) ref = g_new0 (SmolvmOciRef, 1);
  const gchar *slash = strchr (text, '/');
  g_autofree gchar *host = NULL;
  g_autofree gchar *rest = NULL;
  gchar *at;
  gchar *colon;

  if (slash == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "Reference '%s' has no registry: write host[:port]/repository[:tag]", text);
    return NULL;
  }
  host = g_strndup (text, slash - text);
  if (strchr (host, '.') == NULL && strchr (host, ':') == NULL &&
      !g_str_equal (host, "localhost")) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "Reference '%s' does not start with a registry host (e.g. registry.example.com "
                 "or 127.0.0.1:5000)",
                 text);
    return NULL;
  }
  if (!matches ("^" HOST_RE "$", host)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "Reference '%s': '%s' is not a valid registry host[:port]", text, host);
    return NULL;
  }
  rest = g_strdup (slash + 1);
  at = strchr (rest, '@');
  if (at != NULL) {
    *at = '\0';
    if (!smolvm_oci_ref_digest_is_valid (at + 1)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                   "Reference '%s': '%s' is not a digest (sha256: and 64 lower-case hex digits)",
                   text, at + 1);
      return NULL;
    }
    ref->digest = g_strdup (at + 1);
  }
  /* a tag's colon comes after the last slash; a port's is in the host */
  colon = strrchr (rest, ':');
  if (colon != NULL && strchr (colon, '/') == NULL) {
    *colon = '\0';
    if (ref->digest != NULL || !matches ("^" TAG_RE "$", colon + 1)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                   "Reference '%s': '%s' is not a valid tag (letters, digits, '_', '.', '-'; "
                   "at most 128)",
                   text, colon + 1);
      return NULL;
    }
    ref->tag = g_strdup (colon + 1);
  }
  if (!matches ("^" REPOSITORY_RE "$", rest) || strlen (rest) > 255) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "Reference '%s': '%s' is not a valid repository name (lower-case components "
                 "separated by '/')",
                 text, rest);
    return NULL;
  }
  if (ref->tag == NULL && ref->digest == NULL)
    ref->tag = g_strdup ("latest");
  ref->registry = g_steal_pointer (&host);
  ref->repository = g_steal_pointer (&rest);
  return g_steal_pointer (&ref);
}

const gchar *
smolvm_oci_ref_get_reference (const SmolvmOciRef *ref)
{
  return ref->digest != NULL ? ref->digest : ref->tag;
}

gchar *
smolvm_oci_ref_to_string (const SmolvmOciRef *ref)
{
  return g_strdup_printf ("%s/%s%s%s", ref->registry, ref->repository,
                          ref->digest != NULL ? "@" : ":", smolvm_oci_ref_get_reference (ref));
}
