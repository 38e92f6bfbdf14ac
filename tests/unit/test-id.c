/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include <gio/gio.h>

#include "smolvm-error.h"
#include "smolvm-id.h"

static GRegex *id_regex; /* the documented rule, to check the code against */

static gboolean
matches_rule (const gchar *id)
{
  return g_regex_match (id_regex, id, 0, NULL);
}

static void
test_validation (void)
{
  g_autofree gchar *max = g_strnfill (SMOLVM_ID_MAX_LEN, 'a');
  g_autofree gchar *too_long = g_strnfill (SMOLVM_ID_MAX_LEN + 1, 'a');
  const gchar *valid[] = { "a", "0", "my-vm", "a-b-c", "vm-0123abcd", "a--b", max };
  const gchar *invalid[] = { "", "-a", "a-", "-", "My-vm", "my_vm", "my.vm", "a/b",
                             "..", "a b", "é", "vm\n", too_long };

  for (gsize i = 0; i < G_N_ELEMENTS (valid); i++) {
    g_autoptr(GError) error = NULL;
    g_test_message ("valid: '%s'", valid[i]);
    g_assert_true (smolvm_id_is_valid (valid[i]));
    g_assert_true (matches_rule (valid[i]));
    g_assert_true (smolvm_id_validate (valid[i], "VM id", &error));
    g_assert_no_error (error);
  }
  for (gsize i = 0; i < G_N_ELEMENTS (invalid); i++) {
    g_autoptr(GError) error = NULL;
    g_test_message ("invalid: '%s'", invalid[i]);
    g_assert_false (smolvm_id_is_valid (invalid[i]));
    g_assert_false (matches_rule (invalid[i]));
    g_assert_false (smolvm_id_validate (invalid[i], "snapshot id", &error));
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
    g_assert_true (strstr (error->message, "Invalid snapshot id") != NULL);
  }
  g_assert_false (smolvm_id_is_valid (NULL));
}

static gboolean
taken_in_set (const gchar *id, gpointer user_data)
{
  return g_hash_table_contains (user_data, id);
}

static void
test_snapshot_ids (void)
{
  g_autoptr(GHashTable) taken = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autofree gchar *plain = smolvm_id_make_snapshot ("my-vm", 1700000000, NULL, NULL);
  g_autofree gchar *long_vm = g_strnfill (SMOLVM_ID_MAX_LEN, 'v');

  g_assert_cmpstr (plain, ==, "snap-my-vm-1700000000");

  /* taken ids get -2, -3, ... */
  g_hash_table_add (taken, g_strdup ("snap-my-vm-1700000000"));
  g_hash_table_add (taken, g_strdup ("snap-my-vm-1700000000-2"));
  {
    g_autofree gchar *third = smolvm_id_make_snapshot ("my-vm", 1700000000, taken_in_set, taken);
    g_assert_cmpstr (third, ==, "snap-my-vm-1700000000-3");
  }

  /* a long VM id is shortened to keep the whole valid, even suffixed */
  for (guint n = 0; n < 20; n++) {
    g_autofree gchar *id = smolvm_id_make_snapshot (long_vm, 1700000000, taken_in_set, taken);
    g_assert_true (smolvm_id_is_valid (id));
    g_assert_true (g_str_has_prefix (id, "snap-vvv"));
    g_assert_false (g_hash_table_contains (taken, id));
    g_hash_table_add (taken, g_steal_pointer (&id));
  }

  /* a cut that would end in '-' is trimmed */
  {
    g_autofree gchar *dashy = g_strdup_printf ("%.*s-%s", 43, long_vm, "tail-of-the-id");
    g_autofree gchar *id = smolvm_id_make_snapshot (dashy, 1700000000, NULL, NULL);
    g_assert_true (smolvm_id_is_valid (id));
    g_assert_null (strstr (id, "--"));
  }
}

static gboolean
taken_first_n (const gchar *id, gpointer user_data)
{
  guint *left = user_data;
  if (*left == 0)
    return FALSE;
  (*left)--;
  return TRUE;
}

static void
test_vm_ids (void)
{
  guint refusals = 3;
  g_autofree gchar *a = smolvm_id_make_vm (NULL, NULL);
  g_autofree gchar *b = smolvm_id_make_vm (taken_first_n, &refusals);

  for (const gchar *const *id = (const gchar *const[]){ a, b, NULL }; *id != NULL; id++) {
    g_assert_true (smolvm_id_is_valid (*id));
    g_assert_true (g_str_has_prefix (*id, "vm-"));
    g_assert_cmpuint (strlen (*id), ==, strlen ("vm-") + 8);
  }
  g_assert_cmpuint (refusals, ==, 0); /* retried until free */
}

static void
test_object_paths (void)
{
  const struct {
    const gchar *kind, *id, *path;
  } cases[] = {
    { "vm", "my-vm", "/org/smolvm/Manager/vm/my_2dvm" },
    { "vm", "abc", "/org/smolvm/Manager/vm/abc" },
    { "snapshot", "snap-1-2", "/org/smolvm/Manager/snapshot/snap_2d1_2d2" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree gchar *path = smolvm_id_object_path (cases[i].kind, cases[i].id);
    g_autofree guint8 *back = g_dbus_unescape_object_path (strrchr (path, '/') + 1);
    g_assert_cmpstr (path, ==, cases[i].path);
    g_assert_true (g_variant_is_object_path (path));
    g_assert_cmpstr ((const gchar *) back, ==, cases[i].id);
  }
}

int
main (int argc, char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);
  /* $ would also match before a final newline */
  id_regex = g_regex_new ("^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$", G_REGEX_DOLLAR_ENDONLY, 0, NULL);
  g_test_add_func ("/id/validation", test_validation);
  g_test_add_func ("/id/snapshot-ids", test_snapshot_ids);
  g_test_add_func ("/id/vm-ids", test_vm_ids);
  g_test_add_func ("/id/object-paths", test_object_paths);
  ret = g_test_run ();
  g_regex_unref (id_regex);
  return ret;
}
