/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <gio/gio.h>
#include <string.h>

#include "smolvm-error.h"
#include "smolvm-id.h"

gboolean
smolvm_id_is_valid (const gchar *id)
{
  gsize len;

  if (id == NULL)
    return FALSE;
  len = strlen (id);
  if (len == 0 || len > SMOLVM_ID_MAX_LEN)
    return FALSE;
  for (gsize i = 0; i < len; i++) {
    gchar c = id[i];
    gboolean alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (alnum)
      continue;
    if (c == '-' && i != 0 && i != len - 1)
      continue;
    return FALSE;
  }
  return TRUE;
}

gboolean
smolvm_id_validate (const gchar *id, const gchar *what, GError **error)
{
  if (smolvm_id_is_valid (id))
    return TRUE;
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
               "Invalid %s '%s': it must be 1 to %d characters of lowercase letters, digits and "
               "hyphens, and must not start or end with a hyphen",
               what, id != NULL ? id : "", SMOLVM_ID_MAX_LEN);
  return FALSE;
}

gchar *
smolvm_id_make_snapshot (const gchar *vm_id, gint64 unix_time, SmolvmIdTakenFunc taken,
                         gpointer user_data)
{
  g_autofree gchar *stamp = g_strdup_printf ("%" G_GINT64_FORMAT, unix_time);
  /* room for "snap-" + "-" + stamp + a "-NN" disambiguation suffix */
  gsize room = SMOLVM_ID_MAX_LEN - strlen ("snap-") - 1 - strlen (stamp) - 4;
  g_autofree gchar *vm_part = g_strndup (vm_id, MIN (strlen (vm_id), room));
  g_autofree gchar *base = NULL;

  /* a VM id cut in the middle may end in '-' */
  while (vm_part[0] != '\0' && vm_part[strlen (vm_part) - 1] == '-')
    vm_part[strlen (vm_part) - 1] = '\0';

  base = vm_part[0] != '\0' ? g_strdup_printf ("snap-%s-%s", vm_part, stamp)
                            : g_strdup_printf ("snap-%s", stamp);
  if (taken == NULL || !taken (base, user_data))
    return g_steal_pointer (&base);
  for (guint n = 2;; n++) {
    g_autofree gchar *candidate = g_strdup_printf ("%s-%u", base, n);
    if (!taken (candidate, user_data))
      return g_steal_pointer (&candidate);
  }
}

gchar *
smolvm_id_make_vm (SmolvmIdTakenFunc taken, gpointer user_data)
{
  for (;;) {
    g_autofree gchar *candidate = g_strdup_printf ("vm-%08x", g_random_int ());
    if (taken == NULL || !taken (candidate, user_data))
      return g_steal_pointer (&candidate);
  }
}

gchar *
smolvm_id_object_path (const gchar *kind, const gchar *id)
{
  g_autofree gchar *escaped = g_dbus_escape_object_path (id);
  return g_strdup_printf (SMOLVM_MANAGER_PATH "/%s/%s", kind, escaped);
}
