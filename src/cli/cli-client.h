/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The CLI's side of the bus: the connection, the proxies it makes, the call
 * flags (interactive authorization unless --no-ask-password) and the text
 * polkit agent (pkttyagent) it runs on a terminal. */

#include <gio/gio.h>

#include "smolvm-generated.h"

G_BEGIN_DECLS

/* Snapshots of many GiB take long; never give up waiting on smolvmd. */
#define CLI_CALL_TIMEOUT G_MAXINT

typedef struct _CliClient CliClient;

/* Connects to the system bus (@session: the session bus) and makes the
 * org.smolvm.Manager proxy. @may_prompt: the command changes state, so on a
 * terminal pkttyagent is started for polkit's password questions (unless
 * @no_ask_password or @session). Fails if smolvmd is not running and cannot
 * be activated. */
CliClient *cli_client_new (gboolean session, gboolean no_ask_password, gboolean may_prompt,
                           GError **error);
void cli_client_free (CliClient *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CliClient, cli_client_free)

GDBusConnection *cli_client_get_bus (CliClient *self);
SmolvmDbusManager *cli_client_get_manager (CliClient *self);
GDBusCallFlags cli_client_call_flags (CliClient *self);

/* Ends pkttyagent, if it runs; for a quick exit. */
void cli_client_stop_agent (CliClient *self);

/* "system" or "session". */
const gchar *cli_bus_label (gboolean session);
/* Sets the error of a smolvmd that is neither running nor activatable. */
void cli_set_not_running (gboolean session, GError **error);
void cli_set_not_installed (gboolean session, GError **error);

/* The unique name of the daemon behind the manager proxy, so that every
 * later call reaches the same smolvmd. */
gchar *cli_client_dup_owner (CliClient *self, GError **error);

SmolvmDbusVm *cli_client_vm_proxy_new (CliClient *self, const gchar *path, GError **error);
/* GetVM, then a proxy of that VM. */
SmolvmDbusVm *cli_client_get_vm (CliClient *self, const gchar *vm_id, GError **error);
SmolvmDbusJob *cli_client_job_proxy_new (CliClient *self, const gchar *path, GError **error);

/* The ListVMs entry (a{sv}) of the VM at @path. */
GVariant *cli_client_find_vm (CliClient *self, const gchar *path, GError **error);
/* The SnapshotInfo of the snapshot at @path, or else of @snapshot_id, from
 * ListSnapshots(@vm_filter). */
GVariant *cli_client_find_snapshot (CliClient *self, const gchar *vm_filter, const gchar *path,
                                    const gchar *snapshot_id, GError **error);

/* An ObjectManager client of smolvmd's objects (VMs, snapshots, jobs), with
 * typed proxies (SmolvmDbusJob...). */
GDBusObjectManager *cli_client_object_manager_new (CliClient *self, GError **error);

G_END_DECLS
