/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>

#include <gio/gio.h>

#include "smolvm-error-map.h"

/* Every foreign error the daemon meets maps to the code a D-Bus caller
 * must see; the table in smolvm-error.c is checked against this one. */
static void
test_normalize (void)
{
  const struct {
    GQuark domain;
    gint code;
    SmolvmError expected;
  } cases[] = {
    { G_IO_ERROR, G_IO_ERROR_NOT_FOUND, SMOLVM_ERROR_NOT_FOUND },
    { G_IO_ERROR, G_IO_ERROR_EXISTS, SMOLVM_ERROR_ALREADY_EXISTS },
    { G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, SMOLVM_ERROR_INVALID_ARGUMENT },
    { G_IO_ERROR, G_IO_ERROR_IS_DIRECTORY, SMOLVM_ERROR_INVALID_ARGUMENT },
    { G_IO_ERROR, G_IO_ERROR_NO_SPACE, SMOLVM_ERROR_NO_SPACE },
    { G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED, SMOLVM_ERROR_FAILED },
    { G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, SMOLVM_ERROR_UNSUPPORTED },
    { G_IO_ERROR, G_IO_ERROR_BUSY, SMOLVM_ERROR_IN_USE },
    { G_IO_ERROR, G_IO_ERROR_CANCELLED, SMOLVM_ERROR_CANCELLED },
    { G_IO_ERROR, G_IO_ERROR_TIMED_OUT, SMOLVM_ERROR_FAILED },
    { G_FILE_ERROR, G_FILE_ERROR_NOENT, SMOLVM_ERROR_NOT_FOUND },
    { G_FILE_ERROR, G_FILE_ERROR_EXIST, SMOLVM_ERROR_ALREADY_EXISTS },
    { G_FILE_ERROR, G_FILE_ERROR_NOSPC, SMOLVM_ERROR_NO_SPACE },
    { G_FILE_ERROR, G_FILE_ERROR_ACCES, SMOLVM_ERROR_FAILED },
    { G_FILE_ERROR, G_FILE_ERROR_ISDIR, SMOLVM_ERROR_FAILED },
    { G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_NOT_FOUND, SMOLVM_ERROR_FAILED },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr(GError) in = g_error_new (cases[i].domain, cases[i].code, "case %" G_GSIZE_FORMAT, i);
    g_autoptr(GError) out = smolvm_error_normalize (in);
    g_autofree gchar *message = g_strdup_printf ("case %" G_GSIZE_FORMAT, i);

    g_test_message ("case %" G_GSIZE_FORMAT ": %s %d", i, g_quark_to_string (cases[i].domain),
                    cases[i].code);
    g_assert_error (out, SMOLVM_ERROR, (gint) cases[i].expected);
    g_assert_cmpstr (out->message, ==, message);
  }
}

static void
test_normalize_keeps_smolvm_errors (void)
{
  g_autoptr(GError) in = g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_ALREADY_RESTORED, "again");
  g_autoptr(GError) out = smolvm_error_normalize (in);

  g_assert_error (out, SMOLVM_ERROR, SMOLVM_ERROR_ALREADY_RESTORED);
  g_assert_cmpstr (out->message, ==, "again");
  g_assert_true (out != in);
}

static void
test_errno (void)
{
  const struct {
    int errsv;
    SmolvmError expected;
  } cases[] = {
    { ENOSPC, SMOLVM_ERROR_NO_SPACE }, { EDQUOT, SMOLVM_ERROR_NO_SPACE },
    { ENOENT, SMOLVM_ERROR_NOT_FOUND }, { EEXIST, SMOLVM_ERROR_ALREADY_EXISTS },
    { EACCES, SMOLVM_ERROR_FAILED },    { EPERM, SMOLVM_ERROR_FAILED },
    { EIO, SMOLVM_ERROR_FAILED },       { 0, SMOLVM_ERROR_FAILED },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr(GError) error = NULL;
    g_autofree gchar *expected_message =
      g_strdup_printf ("Cannot write /x/%d: %s", cases[i].errsv, g_strerror (cases[i].errsv));

    g_assert_cmpint (smolvm_error_code_from_errno (cases[i].errsv), ==, cases[i].expected);
    g_assert_false (smolvm_error_set_errno (&error, cases[i].errsv, "Cannot write /x/%d",
                                            cases[i].errsv));
    g_assert_error (error, SMOLVM_ERROR, (gint) cases[i].expected);
    g_assert_cmpstr (error->message, ==, expected_message);
  }
}

/* The names clients match on are API: every code has its own. */
static void
test_dbus_names (void)
{
  const struct {
    SmolvmError code;
    const gchar *name;
  } names[] = {
    { SMOLVM_ERROR_FAILED, "Failed" },
    { SMOLVM_ERROR_NOT_FOUND, "NotFound" },
    { SMOLVM_ERROR_ALREADY_EXISTS, "AlreadyExists" },
    { SMOLVM_ERROR_INVALID_ARGUMENT, "InvalidArgument" },
    { SMOLVM_ERROR_INVALID_STATE, "InvalidState" },
    { SMOLVM_ERROR_ALREADY_RESTORED, "AlreadyRestored" },
    { SMOLVM_ERROR_IN_USE, "InUse" },
    { SMOLVM_ERROR_NOT_AUTHORIZED, "NotAuthorized" },
    { SMOLVM_ERROR_UNSUPPORTED, "Unsupported" },
    { SMOLVM_ERROR_BACKEND, "Backend" },
    { SMOLVM_ERROR_NO_SPACE, "NoSpace" },
    { SMOLVM_ERROR_CANCELLED, "Cancelled" },
    { SMOLVM_ERROR_AUTHORIZATION_DISMISSED, "AuthorizationDismissed" },
    { SMOLVM_ERROR_CORRUPT, "Corrupt" },
    { SMOLVM_ERROR_NOT_A_SNAPSHOT, "NotASnapshot" },
    { SMOLVM_ERROR_REGISTRY_UNAVAILABLE, "RegistryUnavailable" },
    { SMOLVM_ERROR_REGISTRY_AUTH_FAILED, "RegistryAuthFailed" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (names); i++) {
    g_autofree gchar *full = g_strconcat ("org.smolvm.Error.", names[i].name, NULL);
    g_autoptr(GError) error = g_error_new_literal (SMOLVM_ERROR, names[i].code, "m");
    g_autoptr(GError) remote = NULL;
    g_autofree gchar *encoded = NULL;

    g_assert_cmpstr (smolvm_error_to_dbus_name (names[i].code), ==, full);
    g_assert_cmpstr (smolvm_error_short_name (error), ==, names[i].name);
    /* registered with GDBus: the name travels and comes back as the code */
    encoded = g_dbus_error_encode_gerror (error);
    g_assert_cmpstr (encoded, ==, full);
    remote = g_dbus_error_new_for_dbus_error (full, "m");
    g_assert_error (remote, SMOLVM_ERROR, (gint) names[i].code);
  }
  g_assert_cmpstr (smolvm_error_to_dbus_name ((SmolvmError) 999), ==, "org.smolvm.Error.Failed");
  {
    g_autoptr(GError) foreign = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "x");
    g_assert_null (smolvm_error_short_name (foreign));
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  smolvm_error_quark ();
  g_test_add_func ("/error/normalize", test_normalize);
  g_test_add_func ("/error/normalize-keeps-smolvm-errors", test_normalize_keeps_smolvm_errors);
  g_test_add_func ("/error/errno", test_errno);
  g_test_add_func ("/error/dbus-names", test_dbus_names);
  return g_test_run ();
}
