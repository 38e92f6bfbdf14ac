/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The CLI's side of the bus: a SmolvmClient of libsmolvm-1 (which makes the
 * calls), interactive authorization unless --no-ask-password, and the text
 * polkit agent (pkttyagent) the CLI runs on a terminal. */

#include <gio/gio.h>

#include "smolvm.h"

G_BEGIN_DECLS

typedef struct _CliClient CliClient;

/* Connects to smolvmd on the system bus (@session: the session bus).
 * @may_prompt: the command changes state, so on a terminal pkttyagent is
 * started for polkit's password questions (unless @no_ask_password or
 * @session). Fails if smolvmd is not running and cannot be activated. */
CliClient *cli_client_new (gboolean session, gboolean no_ask_password, gboolean may_prompt,
                           GError **error);
void cli_client_free (CliClient *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CliClient, cli_client_free)

SmolvmClient *cli_client_get_smolvm (CliClient *self);

/* Ends pkttyagent, if it runs; for a quick exit. */
void cli_client_stop_agent (CliClient *self);

/* "system" or "session". */
const gchar *cli_bus_label (gboolean session);
/* Sets the error of a smolvmd that is neither running nor activatable. */
void cli_set_not_running (gboolean session, GError **error);
void cli_set_not_installed (gboolean session, GError **error);

/* An ObjectManager client of the objects (VMs, snapshots, jobs) of the
 * smolvmd the client is bound to, with typed proxies (SmolvmDbusJob...). */
GDBusObjectManager *cli_client_object_manager_new (CliClient *self, GError **error);

G_END_DECLS
