/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "smolvm-error.h"
#include "smolvm-oci-client.h"
#include "smolvm-oci-ref.h"

/* The registry cases run against real registries (Debian's docker-registry)
 * that tests/test-oci-client.py starts and names in the environment:
 * SMOLVM_TEST_REGISTRY (anonymous), SMOLVM_TEST_REGISTRY_BASIC (htpasswd,
 * user "smolvm", password "s3cret") and SMOLVM_TEST_REGISTRY_BEARER (a
 * token-flow registry of the wrapper's). Without them only the offline
 * cases run, and the others say they were skipped. */

#define USER "smolvm"
#define PASSWORD "s3cret"
#define MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"

/* ---- helpers ---- */

static GAsyncResult *
wait_result (GAsyncResult **slot)
{
  while (*slot == NULL)
    g_main_context_iteration (NULL, TRUE);
  return *slot;
}

static void
store_result (GObject *source, GAsyncResult *result, gpointer user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static const gchar *
registry_or_skip (const gchar *var)
{
  const gchar *host = g_getenv (var);
  if (host == NULL || host[0] == '\0')
    g_test_skip_printf ("%s is not set (run through test-oci-client.py)", var);
  return host != NULL && host[0] != '\0' ? host : NULL;
}

static gboolean
ping (SmolvmOciClient *client, GError **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  smolvm_oci_client_ping_async (client, NULL, store_result, &result);
  return smolvm_oci_client_ping_finish (client, wait_result (&result), error);
}

static gboolean
blob_exists (SmolvmOciClient *client, const gchar *digest, guint64 size, gboolean *exists,
             GError **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  smolvm_oci_client_blob_exists_async (client, digest, size, NULL, store_result, &result);
  return smolvm_oci_client_blob_exists_finish (client, wait_result (&result), exists, error);
}

static gboolean
upload (SmolvmOciClient *client, const gchar *digest, guint64 size, const gchar *path,
        SmolvmProgress *progress, GError **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  smolvm_oci_client_blob_upload_async (client, digest, size, path, progress, NULL, store_result,
                                       &result);
  return smolvm_oci_client_blob_upload_finish (client, wait_result (&result), error);
}

static gboolean
fetch (SmolvmOciClient *client, const gchar *digest, guint64 size, const gchar *layout,
       GCancellable *cancellable, gboolean *fetched, GError **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  smolvm_oci_client_blob_fetch_async (client, digest, size, layout, NULL, cancellable,
                                      store_result, &result);
  return smolvm_oci_client_blob_fetch_finish (client, wait_result (&result), fetched, error);
}

static gboolean
manifest_put (SmolvmOciClient *client, const gchar *reference, GBytes *manifest, GError **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  smolvm_oci_client_manifest_put_async (client, reference, manifest, MANIFEST_TYPE, NULL,
                                        store_result, &result);
  return smolvm_oci_client_manifest_put_finish (client, wait_result (&result), error);
}

static GBytes *
manifest_get (SmolvmOciClient *client, const gchar *reference, GError **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  smolvm_oci_client_manifest_get_async (client, reference, MANIFEST_TYPE, NULL, store_result,
                                        &result);
  return smolvm_oci_client_manifest_get_finish (client, wait_result (&result), NULL, error);
}

/* A file of @size pseudo-random bytes from @seed in @dir; its digest. */
static gchar *
make_blob (const gchar *dir, const gchar *name, gsize size, guint32 seed, gchar **digest)
{
  g_autofree guchar *data = g_malloc (MAX (size, 1));
  g_autoptr(GRand) rand = g_rand_new_with_seed (seed);
  gchar *path = g_build_filename (dir, name, NULL);
  g_autofree gchar *hex = NULL;

  for (gsize i = 0; i < size; i++)
    data[i] = (guchar) g_rand_int (rand);
  g_assert_true (g_file_set_contents (path, (const gchar *) data, (gssize) size, NULL));
  hex = g_compute_checksum_for_data (G_CHECKSUM_SHA256, data, size);
  *digest = g_strconcat ("sha256:", hex, NULL);
  return path;
}

static gchar *
blob_path (const gchar *layout, const gchar *digest)
{
  return g_build_filename (layout, "blobs", "sha256", digest + strlen ("sha256:"), NULL);
}

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(const gchar *const *) a, *(const gchar *const *) b);
}

/* The names in @layout/blobs/sha256, sorted and joined by spaces. */
static gchar *
blob_dir_listing (const gchar *layout)
{
  g_autofree gchar *dir_path = g_build_filename (layout, "blobs", "sha256", NULL);
  g_autoptr(GDir) dir = g_dir_open (dir_path, 0, NULL);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const gchar *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_names);
  g_ptr_array_add (names, NULL);
  return g_strjoinv (" ", (gchar **) names->pdata);
}

static gboolean
same_file (const gchar *a, const gchar *b)
{
  g_autofree gchar *da = NULL;
  g_autofree gchar *db = NULL;
  gsize la = 0, lb = 0;
  g_assert_true (g_file_get_contents (a, &da, &la, NULL));
  g_assert_true (g_file_get_contents (b, &db, &lb, NULL));
  return la == lb && memcmp (da, db, la) == 0;
}

/* ---- offline ---- */

static void
test_ref_parse (void)
{
  const struct {
    const gchar *text;
    const gchar *registry, *repository, *tag, *digest;
  } good[] = {
    { "127.0.0.1:5000/vm/base:v1", "127.0.0.1:5000", "vm/base", "v1", NULL },
    { "registry.example.com/snap", "registry.example.com", "snap", "latest", NULL },
    { "localhost/a/b/c:x_y.z-1", "localhost", "a/b/c", "x_y.z-1", NULL },
    { "ghcr.io/o/r@sha256:" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
      "ghcr.io", "o/r", NULL,
      "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" },
    { "host:1/a__b.c-d", "host:1", "a__b.c-d", "latest", NULL },
  };
  const gchar *bad[] = {
    "snap",                      /* no registry */
    "library/snap:v1",           /* "library" is not a host */
    "127.0.0.1:5000/",           /* no repository */
    "127.0.0.1:5000/Upper:v1",   /* upper case */
    "127.0.0.1:5000/a:b:c",      /* two tags */
    "127.0.0.1:5000/a:",         /* empty tag */
    "127.0.0.1:5000/a:-x",       /* tag starts badly */
    "127.0.0.1:5000/a@sha256:12", /* short digest */
    "127.0.0.1:5000/a@md5:0123456789abcdef0123456789abcdef",
    "127.0.0.1:5000/a//b",
    "bad host:5000/a",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (good); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(SmolvmOciRef) ref = smolvm_oci_ref_parse (good[i].text, &error);
    g_autofree gchar *text = NULL;
    g_assert_no_error (error);
    g_assert_cmpstr (ref->registry, ==, good[i].registry);
    g_assert_cmpstr (ref->repository, ==, good[i].repository);
    g_assert_cmpstr (ref->tag, ==, good[i].tag);
    g_assert_cmpstr (ref->digest, ==, good[i].digest);
    text = smolvm_oci_ref_to_string (ref);
    g_assert_true (g_str_has_prefix (good[i].text, text) || g_str_has_suffix (text, ":latest"));
  }
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(SmolvmOciRef) ref = smolvm_oci_ref_parse (bad[i], &error);
    g_test_message ("%s: %s", bad[i], error != NULL ? error->message : "(accepted)");
    g_assert_null (ref);
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
  }
}

/* The one digest check and the one blob check (src/common), which the
 * artifact's layout dirs and the client's downloads both use. */
static void
test_digest_and_blob_check (void)
{
  const gchar *hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  g_autofree gchar *good = g_strconcat ("sha256:", hex, NULL);
  g_autofree gchar *upper_hex = g_ascii_strup (hex, -1);
  g_autofree gchar *upper = g_strconcat ("sha256:", upper_hex, NULL);
  g_autofree gchar *newline = g_strconcat (good, "\n", NULL);
  g_autofree gchar *dir = g_dir_make_tmp ("oci-blob-XXXXXX", NULL);
  g_autofree gchar *digest = NULL;
  g_autofree gchar *path = make_blob (dir, "blob", 300000, 7, &digest);
  g_autofree gchar *link = g_build_filename (dir, "link", NULL);
  g_autofree gchar *missing = g_build_filename (dir, "missing", NULL);
  g_autoptr(SmolvmProgress) progress = smolvm_progress_new ();
  g_autoptr(GError) error = NULL;

  g_assert_true (smolvm_oci_ref_digest_is_valid (good));
  g_assert_false (smolvm_oci_ref_digest_is_valid (NULL));
  g_assert_false (smolvm_oci_ref_digest_is_valid (upper));
  g_assert_false (smolvm_oci_ref_digest_is_valid (newline));
  g_assert_false (smolvm_oci_ref_digest_is_valid ("sha256:../../etc/passwd"));
  g_assert_false (smolvm_oci_ref_digest_is_valid ("sha512:0123"));

  g_assert_true (smolvm_oci_blob_file_verify (path, digest, 300000, progress, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (smolvm_progress_get_done (progress), ==, 300000);
  g_assert_false (smolvm_oci_blob_file_verify (missing, digest, 300000, NULL, NULL, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_false (smolvm_oci_blob_file_verify (path, digest, 299999, NULL, NULL, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, digest));
  g_clear_error (&error);
  g_assert_false (smolvm_oci_blob_file_verify (path, good, 300000, NULL, NULL, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "sha256 does not match"));
  g_clear_error (&error);
  g_assert_cmpint (symlink (path, link), ==, 0);
  g_assert_false (smolvm_oci_blob_file_verify (link, digest, 300000, NULL, NULL, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT);
  g_clear_error (&error);

  g_unlink (link);
  g_unlink (path);
  g_rmdir (dir);
}

static void
test_credentials (void)
{
  g_autofree gchar *dir = g_dir_make_tmp ("oci-cred-XXXXXX", NULL);
  g_autofree gchar *path = g_build_filename (dir, "auth.json", NULL);
  g_autofree gchar *missing = g_build_filename (dir, "none.json", NULL);
  g_autofree gchar *b64 = g_base64_encode ((const guchar *) "alice:pa:ss", 11);
  g_autofree gchar *json = g_strdup_printf (
    "{\"auths\": {\"reg.example:5000\": {\"auth\": \"%s\"}, \"bad.example\": {\"auth\": \"eA==\"}}}",
    b64);
  g_autofree gchar *user = NULL;
  g_autofree gchar *password = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (g_file_set_contents (path, json, -1, NULL));
  g_assert_true (smolvm_oci_credentials_lookup (path, "reg.example:5000", &user, &password, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (user, ==, "alice");
  g_assert_cmpstr (password, ==, "pa:ss"); /* only the first colon splits */
  g_clear_pointer (&user, g_free);
  g_clear_pointer (&password, g_free);

  /* no entry, no file: anonymous */
  g_assert_true (smolvm_oci_credentials_lookup (path, "other:5000", &user, &password, &error));
  g_assert_null (user);
  g_assert_true (smolvm_oci_credentials_lookup (missing, "reg.example:5000", &user, &password,
                                                &error));
  g_assert_null (user);

  /* a malformed entry or file is an error, never anonymous by surprise */
  g_assert_false (smolvm_oci_credentials_lookup (path, "bad.example", &user, &password, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_AUTH_FAILED);
  g_clear_error (&error);
  g_assert_true (g_file_set_contents (path, "{\"auths\": [", -1, NULL));
  g_assert_false (smolvm_oci_credentials_lookup (path, "reg.example:5000", &user, &password,
                                                 &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_AUTH_FAILED);

  g_unlink (path);
  g_rmdir (dir);
}

static void
test_unavailable (void)
{
  /* a port nobody listens on (the discard port, closed on test hosts) */
  g_autoptr(SmolvmOciClient) client = smolvm_oci_client_new ("127.0.0.1:9", "a", TRUE, FALSE);
  g_autoptr(GError) error = NULL;
  g_assert_false (ping (client, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_UNAVAILABLE);
  g_assert_nonnull (strstr (error->message, "127.0.0.1:9"));
}

/* ---- against a registry ---- */

typedef struct {
  gchar *dir;
  gchar *layout;
} Fixture;

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  f->dir = g_dir_make_tmp ("oci-client-XXXXXX", NULL);
  f->layout = g_build_filename (f->dir, "layout", NULL);
}

static void
rm_tree (const gchar *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const gchar *name;
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
    g_autofree gchar *child = g_build_filename (path, name, NULL);
    if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
      rm_tree (child);
    else
      g_unlink (child);
  }
  g_rmdir (path);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  rm_tree (f->dir);
  g_free (f->dir);
  g_free (f->layout);
}

/* A manifest of @config and @layer (both already pushed) */
static GBytes *
make_manifest (const gchar *config, gsize config_size, const gchar *layer, gsize layer_size)
{
  gchar *text = g_strdup_printf (
    "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_TYPE "\","
    "\"artifactType\":\"application/vnd.smolvm.test.v1\","
    "\"config\":{\"mediaType\":\"application/vnd.smolvm.test.config.v1+json\",\"digest\":\"%s\","
    "\"size\":%" G_GSIZE_FORMAT "},"
    "\"layers\":[{\"mediaType\":\"application/octet-stream\",\"digest\":\"%s\",\"size\":%"
    G_GSIZE_FORMAT "}]}",
    config, config_size, layer, layer_size);
  return g_bytes_new_take (text, strlen (text));
}

/* Push and pull blobs and a manifest through @client. */
static void
round_trip (Fixture *f, SmolvmOciClient *client, const gchar *tag)
{
  g_autofree gchar *small_digest = NULL;
  g_autofree gchar *big_digest = NULL;
  g_autofree gchar *small = make_blob (f->dir, "small", 1000, g_str_hash (tag), &small_digest);
  /* chunked at 64 KiB: four whole chunks and a short one */
  g_autofree gchar *big = make_blob (f->dir, "big", 4 * 65536 + 1234, g_str_hash (tag) + 1,
                                     &big_digest);
  g_autoptr(SmolvmProgress) progress = smolvm_progress_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) manifest = NULL;
  g_autoptr(GBytes) got = NULL;
  g_autofree gchar *manifest_hex = NULL;
  g_autofree gchar *manifest_digest = NULL;
  g_autofree gchar *fetched_small = NULL;
  g_autofree gchar *fetched_big = NULL;
  gboolean exists = TRUE;
  gboolean fetched = FALSE;

  smolvm_oci_client_set_chunk_size (client, 65536);
  g_assert_true (ping (client, &error));
  g_assert_no_error (error);

  g_assert_true (blob_exists (client, small_digest, 1000, &exists, &error));
  g_assert_false (exists);
  g_assert_true (upload (client, small_digest, 1000, small, progress, &error));
  g_assert_no_error (error);
  g_assert_true (upload (client, big_digest, 4 * 65536 + 1234, big, progress, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (smolvm_progress_get_done (progress), ==, 1000 + 4 * 65536 + 1234);
  g_assert_true (blob_exists (client, small_digest, 1000, &exists, &error));
  g_assert_true (exists);
  g_assert_true (blob_exists (client, big_digest, 4 * 65536 + 1234, &exists, &error));
  g_assert_true (exists);
  /* the same digest with another size is not the blob we have */
  g_assert_true (blob_exists (client, big_digest, 5, &exists, &error));
  g_assert_false (exists);

  manifest = make_manifest (small_digest, 1000, big_digest, 4 * 65536 + 1234);
  g_assert_true (manifest_put (client, tag, manifest, &error));
  g_assert_no_error (error);
  got = manifest_get (client, tag, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (got, manifest));
  g_clear_pointer (&got, g_bytes_unref);
  manifest_hex = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, manifest);
  manifest_digest = g_strconcat ("sha256:", manifest_hex, NULL);
  got = manifest_get (client, manifest_digest, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (got, manifest));

  /* fetch both; the second time nothing is fetched */
  g_assert_true (fetch (client, small_digest, 1000, f->layout, NULL, &fetched, &error));
  g_assert_no_error (error);
  g_assert_true (fetched);
  g_assert_true (fetch (client, big_digest, 4 * 65536 + 1234, f->layout, NULL, &fetched, &error));
  g_assert_true (fetched);
  fetched_small = blob_path (f->layout, small_digest);
  fetched_big = blob_path (f->layout, big_digest);
  g_assert_true (same_file (small, fetched_small));
  g_assert_true (same_file (big, fetched_big));
  g_assert_true (fetch (client, big_digest, 4 * 65536 + 1234, f->layout, NULL, &fetched, &error));
  g_assert_false (fetched);

  /* a damaged copy in the cache is replaced */
  g_assert_true (g_file_set_contents (fetched_small, "garbage", -1, NULL));
  g_assert_true (fetch (client, small_digest, 1000, f->layout, NULL, &fetched, &error));
  g_assert_true (fetched);
  g_assert_true (same_file (small, fetched_small));
}

static void
test_anonymous (Fixture *f, gconstpointer data)
{
  const gchar *host = registry_or_skip ("SMOLVM_TEST_REGISTRY");
  g_autoptr(SmolvmOciClient) client = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) got = NULL;
  g_autofree gchar *small_digest = NULL;
  g_autofree gchar *small = NULL;
  g_autofree gchar *before = NULL;
  g_autofree gchar *after = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  gboolean fetched = FALSE;

  if (host == NULL)
    return;
  client = smolvm_oci_client_new (host, "smolvm/test", TRUE, TRUE);
  round_trip (f, client, "anon");

  /* unknown tag, unknown repository, unknown blob */
  got = manifest_get (client, "no-such-tag", &error);
  g_assert_null (got);
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, host));
  g_clear_error (&error);
  {
    g_autoptr(SmolvmOciClient) other = smolvm_oci_client_new (host, "no/such/repo", TRUE, FALSE);
    got = manifest_get (other, "latest", &error);
    g_assert_null (got);
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND);
    g_clear_error (&error);
  }
  small = make_blob (f->dir, "absent", 10, 77, &small_digest);
  before = blob_dir_listing (f->layout);
  g_assert_false (fetch (client, small_digest, 10, f->layout, NULL, &fetched, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND);
  g_clear_error (&error);
  after = blob_dir_listing (f->layout);
  g_assert_cmpstr (before, ==, after); /* no temp file left */

  /* a registry that sends other bytes than the digest says: the manifest
   * names an existing blob under the size of another, so the bytes cannot
   * match; nothing is left */
  {
    g_autofree gchar *digest = NULL;
    g_autofree gchar *path = make_blob (f->dir, "liar", 100, 78, &digest);
    g_autofree gchar *listing = NULL;
    g_assert_true (upload (client, digest, 100, path, NULL, &error));
    g_assert_false (fetch (client, digest, 99, f->layout, NULL, &fetched, &error));
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT);
    g_clear_error (&error);
    listing = blob_dir_listing (f->layout);
    g_assert_cmpstr (listing, ==, before);
  }

  /* a cancelled fetch leaves nothing */
  {
    g_autofree gchar *digest = NULL;
    g_autofree gchar *path = make_blob (f->dir, "cancelled", 100000, 79, &digest);
    g_autofree gchar *listing = NULL;
    g_assert_true (upload (client, digest, 100000, path, NULL, &error));
    g_cancellable_cancel (cancellable);
    g_assert_false (fetch (client, digest, 100000, f->layout, cancellable, &fetched, &error));
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED);
    g_clear_error (&error);
    listing = blob_dir_listing (f->layout);
    g_assert_cmpstr (listing, ==, before);
  }

  /* TLS, as by default, to a registry that speaks plain HTTP: refused,
   * and the message says what to do */
  {
    g_autoptr(SmolvmOciClient) tls = smolvm_oci_client_new (host, "smolvm/test", FALSE, FALSE);
    g_assert_false (ping (tls, &error));
    g_test_message ("%s", error->message);
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_UNAVAILABLE);
    g_assert_nonnull (strstr (error->message, "--insecure-registry"));
  }
}

/* A client for pushing to smolvm/test on @host, as USER with @password. */
static SmolvmOciClient *
client_as (const gchar *host, const gchar *password)
{
  SmolvmOciClient *client = smolvm_oci_client_new (host, "smolvm/test", TRUE, TRUE);

  smolvm_oci_client_set_credentials (client, USER, password);
  return client;
}

/* The registry on @host, behind @scheme authentication: refuses a wrong
 * password (on a ping and a manifest GET) and serves the right one. */
static void
check_password (Fixture *f, const gchar *host, const gchar *scheme)
{
  g_autoptr(SmolvmOciClient) wrong = client_as (host, "wrong");
  g_autoptr(SmolvmOciClient) right = client_as (host, PASSWORD);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) got = NULL;

  g_assert_false (ping (wrong, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_AUTH_FAILED);
  g_clear_error (&error);
  got = manifest_get (wrong, "latest", &error);
  g_assert_null (got);
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_AUTH_FAILED);
  g_clear_error (&error);

  round_trip (f, right, scheme);
}

static void
test_basic (Fixture *f, gconstpointer data)
{
  const gchar *host = registry_or_skip ("SMOLVM_TEST_REGISTRY_BASIC");
  g_autoptr(SmolvmOciClient) anonymous = NULL;
  g_autoptr(GError) error = NULL;

  if (host == NULL)
    return;
  anonymous = smolvm_oci_client_new (host, "smolvm/test", TRUE, TRUE);
  g_assert_false (ping (anonymous, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_AUTH_FAILED);
  g_assert_nonnull (strstr (error->message, "no credentials"));

  check_password (f, host, "basic");
}

static void
test_bearer (Fixture *f, gconstpointer data)
{
  const gchar *host = registry_or_skip ("SMOLVM_TEST_REGISTRY_BEARER");

  if (host == NULL)
    return;
  check_password (f, host, "bearer");
}

/* A blob GET redirected to a store on another host:port: followed, and the
 * wrapper checks that the store never saw the credentials. */
static void
test_redirect (Fixture *f, gconstpointer data)
{
  const gchar *host = registry_or_skip ("SMOLVM_TEST_REGISTRY_REDIRECT");
  const gchar *digest = g_getenv ("SMOLVM_TEST_REDIRECT_DIGEST");
  guint64 size = g_ascii_strtoull (g_getenv ("SMOLVM_TEST_REDIRECT_SIZE") ?: "0", NULL, 10);
  g_autoptr(SmolvmOciClient) client = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *path = NULL;
  g_autofree gchar *contents = NULL;
  g_autofree gchar *hex = NULL;
  gsize len = 0;
  gboolean fetched = FALSE;

  if (host == NULL)
    return;
  client = smolvm_oci_client_new (host, "smolvm/test", TRUE, FALSE);
  smolvm_oci_client_set_credentials (client, USER, PASSWORD);
  g_assert_true (ping (client, &error));
  g_assert_no_error (error);
  g_assert_true (fetch (client, digest, size, f->layout, NULL, &fetched, &error));
  g_assert_no_error (error);
  g_assert_true (fetched);
  path = blob_path (f->layout, digest);
  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  g_assert_cmpuint (len, ==, size);
  hex = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) contents, len);
  g_assert_cmpstr (hex, ==, digest + strlen ("sha256:"));
}

/* A registry whose manifests, token answer and error body are endless or
 * too large (tests/test-oci-client.py): each is refused with a clear error,
 * and the wrapper checks that no endless body was read to its end. */
static void
test_hostile (void)
{
  const gchar *host = registry_or_skip ("SMOLVM_TEST_REGISTRY_HOSTILE");
  g_autoptr(SmolvmOciClient) client = NULL;
  g_autoptr(SmolvmOciClient) token = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) manifest = NULL;

  if (host == NULL)
    return;
  client = smolvm_oci_client_new (host, "smolvm/test", TRUE, FALSE);

  /* no Content-Length, no end: the read stops past the limit */
  manifest = manifest_get (client, "endless", &error);
  g_assert_null (manifest);
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "GET manifest smolvm/test:endless"));
  g_assert_nonnull (strstr (error->message, "larger than 4194304 bytes"));
  g_clear_error (&error);

  /* a Content-Length past the limit: refused before reading */
  manifest = manifest_get (client, "oversized", &error);
  g_assert_null (manifest);
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "larger than 4194304 bytes"));
  g_clear_error (&error);

  /* an endless error body: the status is the error, the body is dropped */
  manifest = manifest_get (client, "error", &error);
  g_assert_null (manifest);
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_UNAVAILABLE);
  g_assert_nonnull (strstr (error->message, "HTTP 500"));
  g_clear_error (&error);

  /* an endless 401: the challenge is answered (here: no credentials) */
  manifest = manifest_get (client, "unauthorized", &error);
  g_assert_null (manifest);
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_AUTH_FAILED);
  g_clear_error (&error);

  /* a redirect with an endless body: followed, its body left */
  manifest = manifest_get (client, "redirect", &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (manifest, NULL), g_bytes_get_size (manifest), "{}", 2);
  g_clear_pointer (&manifest, g_bytes_unref);
  manifest = manifest_get (client, "loop", &error);
  g_assert_null (manifest);
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_REGISTRY_UNAVAILABLE);
  g_assert_nonnull (strstr (error->message, "redirect"));
  g_clear_error (&error);

  /* the client still works after those connections were dropped */
  manifest = manifest_get (client, "absent", &error);
  g_assert_null (manifest);
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* a token server whose answer never ends */
  token = smolvm_oci_client_new (host, "smolvm/token", TRUE, FALSE);
  manifest = manifest_get (token, "x", &error);
  g_assert_null (manifest);
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "token request"));
  g_assert_nonnull (strstr (error->message, "larger than 4194304 bytes"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/oci/ref-parse", test_ref_parse);
  g_test_add_func ("/oci/digest-and-blob-check", test_digest_and_blob_check);
  g_test_add_func ("/oci/credentials", test_credentials);
  g_test_add_func ("/oci/unavailable", test_unavailable);
  g_test_add ("/oci/anonymous", Fixture, NULL, fixture_set_up, test_anonymous, fixture_tear_down);
  g_test_add ("/oci/basic", Fixture, NULL, fixture_set_up, test_basic, fixture_tear_down);
  g_test_add ("/oci/bearer", Fixture, NULL, fixture_set_up, test_bearer, fixture_tear_down);
  g_test_add ("/oci/redirect", Fixture, NULL, fixture_set_up, test_redirect, fixture_tear_down);
  g_test_add_func ("/oci/hostile", test_hostile);
  return g_test_run ();
}
