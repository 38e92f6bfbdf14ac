/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <locale.h>
#include <stdlib.h>
#include <unistd.h>

#include <glib-unix.h>

#include "smolvm-error.h"
#include "smolvm-id.h"
#include "smolvm-manager.h"

typedef struct {
  GMainLoop *loop;
  SmolvmManager *manager;
  int exit_code;
} Daemon;

static void
on_bus_acquired (GDBusConnection *connection, const gchar *name, gpointer user_data)
{
  Daemon *daemon = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_manager_export (daemon->manager, connection, &error)) {
    g_printerr ("smolvmd: cannot export objects: %s\n", error->message);
    daemon->exit_code = EXIT_FAILURE;
    g_main_loop_quit (daemon->loop);
  }
}

static void
on_name_acquired (GDBusConnection *connection, const gchar *name, gpointer user_data)
{
  g_message ("smolvmd %s owns %s", PACKAGE_VERSION, name);
}

static void
on_name_lost (GDBusConnection *connection, const gchar *name, gpointer user_data)
{
  Daemon *daemon = user_data;
  if (connection == NULL)
    g_printerr ("smolvmd: cannot connect to the bus\n");
  else
    g_printerr ("smolvmd: cannot own %s (is another smolvmd running?)\n", name);
  daemon->exit_code = EXIT_FAILURE;
  g_main_loop_quit (daemon->loop);
}

static gboolean
on_signal (gpointer user_data)
{
  Daemon *daemon = user_data;
  g_message ("Shutting down; running VMs keep running and are taken over at the next start");
  g_main_loop_quit (daemon->loop);
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  gboolean session = FALSE;
  gboolean verbose = FALSE;
  gboolean version = FALSE;
  g_autofree gchar *state_dir = NULL;
  g_autofree gchar *runtime_dir = NULL;
  g_autofree gchar *firecracker_bin = NULL;
  g_autofree gchar *network_pool = NULL;
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  SmolvmManagerOptions options = { 0 };
  Daemon daemon = { 0 };
  guint owner_id;
  const GOptionEntry entries[] = {
    { "session", 0, 0, G_OPTION_ARG_NONE, &session,
      "Use the session bus and per-user directories (unprivileged use, tests)", NULL },
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir,
      "Directory for VM and snapshot records (default " SMOLVM_SYSTEM_STATE_DIR
      ", or $XDG_STATE_HOME/smolvm with --session)",
      "DIR" },
    { "runtime-dir", 0, 0, G_OPTION_ARG_FILENAME, &runtime_dir,
      "Directory for sockets and console logs (default " SMOLVM_SYSTEM_RUNTIME_DIR
      ", or $XDG_RUNTIME_DIR/smolvm with --session)",
      "DIR" },
    { "firecracker-bin", 0, 0, G_OPTION_ARG_FILENAME, &firecracker_bin,
      "The firecracker binary (default: firecracker on PATH)", "PATH" },
    { "network-pool", 0, 0, G_OPTION_ARG_STRING, &network_pool,
      "IPv4 pool for VM networks (default 172.16.0.0/16)", "CIDR" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Print debug messages", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
    { NULL }
  };

  setlocale (LC_ALL, "");
  context = g_option_context_new ("- the smolvm microVM snapshot service");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error)) {
    g_printerr ("smolvmd: %s\n", error->message);
    return 2;
  }
  if (version) {
    g_print ("smolvmd %s\n", PACKAGE_VERSION);
    return EXIT_SUCCESS;
  }
  if (verbose)
    g_setenv ("G_MESSAGES_DEBUG", "all", TRUE);
  smolvm_error_quark ();

  if (state_dir == NULL)
    state_dir = session ? g_build_filename (g_get_user_state_dir (), "smolvm", NULL)
                        : g_strdup (SMOLVM_SYSTEM_STATE_DIR);
  if (runtime_dir == NULL)
    runtime_dir = session ? g_build_filename (g_get_user_runtime_dir (), "smolvm", NULL)
                          : g_strdup (SMOLVM_SYSTEM_RUNTIME_DIR);
  if (firecracker_bin == NULL)
    firecracker_bin = g_find_program_in_path ("firecracker");
  else if (!g_file_test (firecracker_bin, G_FILE_TEST_IS_EXECUTABLE)) {
    g_printerr ("smolvmd: --firecracker-bin %s is not an executable file\n", firecracker_bin);
    return EXIT_FAILURE;
  }
  if (firecracker_bin == NULL)
    g_warning ("No firecracker binary on PATH: the Firecracker backend is unavailable");

  options.session = session;
  options.state_dir = state_dir;
  options.runtime_dir = runtime_dir;
  options.firecracker_bin = firecracker_bin;
  options.network_pool = network_pool != NULL ? network_pool : (gchar *) "172.16.0.0/16";

  daemon.manager = smolvm_manager_new (&options, &error);
  if (daemon.manager == NULL) {
    g_printerr ("smolvmd: %s\n", error->message);
    return EXIT_FAILURE;
  }
  daemon.loop = g_main_loop_new (NULL, FALSE);
  g_unix_signal_add (SIGTERM, on_signal, &daemon);
  g_unix_signal_add (SIGINT, on_signal, &daemon);
  owner_id = g_bus_own_name (session ? G_BUS_TYPE_SESSION : G_BUS_TYPE_SYSTEM, SMOLVM_BUS_NAME,
                             G_BUS_NAME_OWNER_FLAGS_DO_NOT_QUEUE, on_bus_acquired,
                             on_name_acquired, on_name_lost, &daemon, NULL);
  g_main_loop_run (daemon.loop);
  g_bus_unown_name (owner_id);
  g_clear_object (&daemon.manager);
  g_main_loop_unref (daemon.loop);
  return daemon.exit_code;
}
