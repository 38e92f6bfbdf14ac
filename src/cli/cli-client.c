/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <glib-unix.h>

#include "smolvm-generated.h"
#include "smolvm-id.h"

#include "cli-client.h"

struct _CliClient {
  gboolean session;
  gboolean no_ask_password;
  SmolvmClient *smolvm;
  GSubprocess *agent; /* pkttyagent, while we may need a password */
};

const gchar *
cli_bus_label (gboolean session)
{
  return session ? "session" : "system";
}

/* Neither running nor activatable: on the system bus, where `meson install`
 * makes smolvmd activatable, that means that it is not installed. */
void
cli_set_not_installed (gboolean session, GError **error)
{
  if (session) {
    cli_set_not_running (session, error);
    return;
  }
  g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN,
               "smolvmd is not installed: %s is neither running nor activatable on the system "
               "bus (see smolvmd(8))",
               SMOLVM_BUS_NAME);
}

void
cli_set_not_running (gboolean session, GError **error)
{
  g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN,
               "smolvmd is not running on the %s bus (%s)", cli_bus_label (session),
               SMOLVM_BUS_NAME);
}

void
cli_client_stop_agent (CliClient *self)
{
  if (self == NULL || self->agent == NULL)
    return;
  g_subprocess_send_signal (self->agent, SIGTERM);
  g_subprocess_wait (self->agent, NULL, NULL);
  g_clear_object (&self->agent);
}

void
cli_client_free (CliClient *self)
{
  if (self == NULL)
    return;
  g_clear_object (&self->smolvm);
  cli_client_stop_agent (self);
  g_free (self);
}

/* Like systemctl: on a terminal, a text agent answers polkit's password
 * questions. Started before the first call, and the call waits until the
 * agent has registered (it closes --notify-fd then), so that polkit finds
 * it. Without pkttyagent the call simply fails with NotAuthorized. */
static void
cli_client_start_agent (CliClient *self)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *pkttyagent = NULL;
  int notify[2];
  gchar byte;

  if (self->session || self->no_ask_password || !isatty (STDIN_FILENO) ||
      (pkttyagent = g_find_program_in_path ("pkttyagent")) == NULL)
    return;
  if (!g_unix_open_pipe (notify, FD_CLOEXEC, NULL))
    return;
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_INHERIT);
  g_subprocess_launcher_take_fd (launcher, notify[1], 3);
  self->agent = g_subprocess_launcher_spawn (launcher, &error, pkttyagent, "--notify-fd", "3",
                                             "--fallback", NULL);
  g_clear_object (&launcher); /* closes our copy of the write end */
  if (self->agent == NULL) {
    g_debug ("cannot start pkttyagent: %s", error->message);
    close (notify[0]);
    return;
  }
  /* EOF once the agent is registered, or has died */
  while (read (notify[0], &byte, 1) < 0 && errno == EINTR)
    ;
  close (notify[0]);
}

CliClient *
cli_client_new (gboolean session, gboolean no_ask_password, gboolean may_prompt, GError **error)
{
  g_autoptr(CliClient) self = g_new0 (CliClient, 1);

  self->session = session;
  self->no_ask_password = no_ask_password;
  /* the library pins smolvmd's unique name: every call of the command
   * reaches the same daemon */
  self->smolvm = smolvm_client_new_sync (session ? SMOLVM_BUS_TYPE_SESSION
                                                 : SMOLVM_BUS_TYPE_SYSTEM,
                                         NULL, error);
  if (self->smolvm == NULL)
    return NULL;
  smolvm_client_set_interactive (self->smolvm, !no_ask_password);
  /* reads need no authorization */
  if (may_prompt)
    cli_client_start_agent (self);
  return g_steal_pointer (&self);
}

SmolvmClient *
cli_client_get_smolvm (CliClient *self)
{
  return self->smolvm;
}

GDBusObjectManager *
cli_client_object_manager_new (CliClient *self, GError **error)
{
  return smolvm_dbus_object_manager_client_new_sync (
      smolvm_client_get_connection (self->smolvm),
      G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_DO_NOT_AUTO_START,
      smolvm_client_get_name_owner (self->smolvm), SMOLVM_MANAGER_PATH, NULL, error);
}
