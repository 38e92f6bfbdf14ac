/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define SMOLVM_ID_MAX_LEN 64

#define SMOLVM_MANAGER_PATH "/org/smolvm/Manager"
#define SMOLVM_BUS_NAME "org.smolvm.Manager"

/* ^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$: safe as a file name and a path element
 * by construction (no '/', no '.', no leading '-'). */
gboolean smolvm_id_is_valid (const gchar *id);

/* Sets SMOLVM_ERROR_INVALID_ARGUMENT naming @what ("snapshot id", "VM id"). */
gboolean smolvm_id_validate (const gchar *id, const gchar *what, GError **error);

typedef gboolean (*SmolvmIdTakenFunc) (const gchar *id, gpointer user_data);

/* "snap-VMID-UNIXTIME", with VMID shortened so the whole stays valid, and
 * "-2", "-3"... appended while @taken says the id is in use. */
gchar *smolvm_id_make_snapshot (const gchar *vm_id, gint64 unix_time, SmolvmIdTakenFunc taken,
                                gpointer user_data);

/* "vm-" and eight random hex digits, retried while @taken. */
gchar *smolvm_id_make_vm (SmolvmIdTakenFunc taken, gpointer user_data);

/* /org/smolvm/Manager/KIND/ESCAPED_ID, KIND being "vm" or "snapshot". */
gchar *smolvm_id_object_path (const gchar *kind, const gchar *id);

G_END_DECLS
