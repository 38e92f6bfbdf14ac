/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <locale.h>
#if HAVE_GLIBC_MALLOC
#include <malloc.h>
#endif
#include <stdlib.h>
#include <unistd.h>

#include <glib-unix.h>

#include "smolvm-error.h"
#include "smolvm-id.h"
#include "smolvm-manager.h"
#include "smolvm-oci-ref.h"
#include "smolvm-qemu.h"
#include "smolvm-vmm.h"

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
  else if (g_dbus_connection_is_closed (connection))
    g_printerr ("smolvmd: the bus connection closed\n");
  else
    g_printerr ("smolvmd: cannot own %s (is another smolvmd running?)\n", name);
  daemon->exit_code = EXIT_FAILURE;
  g_main_loop_quit (daemon->loop);
}

/* [daemon] keys of smolvmd.conf, each the twin of a command-line option:
 * a string (@value) or a list (@list). */
typedef struct {
  const gchar *key;
  gchar **value;
  gchar ***list;
} ConfigKey;

/* Fills every value the command line left unset from @path. A missing
 * file is fine unless the admin named it with --config. */
static gboolean
load_config (const gchar *path, gboolean explicit, ConfigKey *keys, GError **error)
{
  g_autoptr(GKeyFile) file = g_key_file_new ();
  g_autoptr(GError) local_error = NULL;
  g_auto(GStrv) present = NULL;

  if (!g_key_file_load_from_file (file, path, G_KEY_FILE_NONE, &local_error)) {
    if (!explicit && g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      return TRUE;
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s: %s", path, local_error->message);
    return FALSE;
  }
  present = g_key_file_get_keys (file, "daemon", NULL, NULL);
  for (gsize i = 0; present != NULL && present[i] != NULL; i++) {
    ConfigKey *key = NULL;
    for (ConfigKey *k = keys; k->key != NULL; k++)
      if (g_str_equal (k->key, present[i]))
        key = k;
    if (key == NULL) {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND,
                   "%s: unknown key '%s' in [daemon]", path, present[i]);
      return FALSE;
    }
    if (key->list != NULL) {
      if (*key->list != NULL)
        continue; /* the command line wins */
      *key->list = g_key_file_get_string_list (file, "daemon", key->key, NULL, error);
      if (*key->list == NULL) {
        g_prefix_error (error, "%s: ", path);
        return FALSE;
      }
      continue;
    }
    if (*key->value != NULL)
      continue; /* the command line wins */
    *key->value = g_key_file_get_string (file, "daemon", key->key, error);
    if (*key->value == NULL) {
      g_prefix_error (error, "%s: ", path);
      return FALSE;
    }
  }
  return TRUE;
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
  g_autofree gchar *config_path = NULL;
  g_autofree gchar *qemu_bin = NULL;
  g_autofree gchar *qemu_machine = NULL;
  g_autofree gchar *default_kernel = NULL;
  g_autofree gchar *default_initrd = NULL;
  g_autofree gchar *default_rootfs = NULL;
  g_autofree gchar *default_backend = NULL;
  g_autofree gchar *default_accel = NULL;
  g_autofree gchar *registry_auth_file = NULL;
  g_auto(GStrv) insecure_registries = NULL;
  /* a string until the config file is read: unset means "not given" there
   * too, and one parser checks both sources */
  g_autofree gchar *vmm_timeout = NULL;
  guint64 vmm_timeout_s = 30;
  gboolean timeout_on_command_line;
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
    { "qemu-bin", 0, 0, G_OPTION_ARG_FILENAME, &qemu_bin,
      "The QEMU binary (default: qemu-system-x86_64 on PATH)", "PATH" },
    { "vmm-timeout", 0, 0, G_OPTION_ARG_STRING, &vmm_timeout,
      "Seconds a VMM may take to answer a call other than saving or loading state "
      "(default 30; 0 waits for ever)",
      "SECONDS" },
    { "network-pool", 0, 0, G_OPTION_ARG_STRING, &network_pool,
      "IPv4 pool for VM networks (default 172.16.0.0/16)", "CIDR" },
    { "default-kernel", 0, 0, G_OPTION_ARG_FILENAME, &default_kernel,
      "Kernel of a VM created without one (e.g. SmolVM() in Python)", "PATH" },
    { "default-initrd", 0, 0, G_OPTION_ARG_FILENAME, &default_initrd,
      "Initrd that goes with --default-kernel", "PATH" },
    { "default-rootfs", 0, 0, G_OPTION_ARG_FILENAME, &default_rootfs,
      "Root filesystem image of a VM created without one", "PATH" },
    { "default-backend", 0, 0, G_OPTION_ARG_STRING, &default_backend,
      "Backend of a VM created without one: firecracker (the default) or qemu", "NAME" },
    { "default-accel", 0, 0, G_OPTION_ARG_STRING, &default_accel,
      "QEMU accelerator of a VM created without one: kvm, tcg or auto (the default)", "ACCEL" },
    { "registry-auth-file", 0, 0, G_OPTION_ARG_FILENAME, &registry_auth_file,
      "Credentials for OCI registries, in the containers auth.json format (default "
      SMOLVM_SYSCONFDIR "/smolvm/registries-auth.json, none with --session)",
      "FILE" },
    { "insecure-registry", 0, 0, G_OPTION_ARG_STRING_ARRAY, &insecure_registries,
      "An OCI registry to reach over plain HTTP instead of TLS (repeatable)", "HOST:PORT" },
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path,
      "Configuration file (default " SMOLVM_SYSCONFDIR "/smolvm/smolvmd.conf; command-line "
      "options override it)",
      "FILE" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Print debug messages", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
    { NULL }
  };

  setlocale (LC_ALL, "");
#if HAVE_GLIBC_MALLOC
  /* A fixed threshold (glibc raises it after each large free otherwise):
   * the multi-MiB buffers of a 10,000-snapshot reply go back to the system
   * when freed, instead of staying in the heap. */
  mallopt (M_MMAP_THRESHOLD, 128 * 1024);
#endif
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
  timeout_on_command_line = vmm_timeout != NULL;

  {
    ConfigKey keys[] = { { "state-dir", &state_dir },
                         { "runtime-dir", &runtime_dir },
                         { "firecracker-bin", &firecracker_bin },
                         { "qemu-bin", &qemu_bin },
                         { "network-pool", &network_pool },
                         { "vmm-timeout", &vmm_timeout },
                         { "default-kernel", &default_kernel },
                         { "default-initrd", &default_initrd },
                         { "default-rootfs", &default_rootfs },
                         { "default-backend", &default_backend },
                         { "default-accel", &default_accel },
                         { "registry-auth-file", &registry_auth_file },
                         { "insecure_registries", NULL, &insecure_registries },
                         { NULL, NULL } };
    gboolean explicit = config_path != NULL;
    /* the system's file configures the system daemon, not per-user ones */
    if (!explicit && !session)
      config_path = g_build_filename (SMOLVM_SYSCONFDIR, "smolvm", "smolvmd.conf", NULL);
    if (config_path != NULL && !load_config (config_path, explicit, keys, &error)) {
      g_printerr ("smolvmd: %s\n", error->message);
      return EXIT_FAILURE;
    }
  }
  if (vmm_timeout != NULL &&
      !g_ascii_string_to_unsigned (vmm_timeout, 10, 0, G_MAXUINT, &vmm_timeout_s, &error)) {
    /* a usage error on the command line, a bad file otherwise */
    if (timeout_on_command_line) {
      g_printerr ("smolvmd: --vmm-timeout must be 0 or more seconds: %s\n", error->message);
      return 2;
    }
    g_printerr ("smolvmd: %s: vmm-timeout must be 0 or more seconds: %s\n", config_path,
                error->message);
    return EXIT_FAILURE;
  }
  smolvm_vmm_set_call_timeout ((guint) vmm_timeout_s);

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
    g_message ("No firecracker binary on PATH: the Firecracker backend is unavailable");
  if (qemu_bin == NULL)
    qemu_bin = g_find_program_in_path ("qemu-system-x86_64");
  else if (!g_file_test (qemu_bin, G_FILE_TEST_IS_EXECUTABLE)) {
    g_printerr ("smolvmd: --qemu-bin %s is not an executable file\n", qemu_bin);
    return EXIT_FAILURE;
  }
  if (qemu_bin != NULL) {
    g_autoptr(GError) probe_error = NULL;
    qemu_machine = smolvm_qemu_probe_machine (qemu_bin, &probe_error);
    if (qemu_machine == NULL)
      g_warning ("The QEMU backend is unavailable: %s", probe_error->message);
  } else {
    g_message ("No qemu-system-x86_64 on PATH: the QEMU backend is unavailable");
  }

  {
    /* "default-kernel=" in the file means none, as the key's absence does */
    gchar **defaults[] = { &default_kernel, &default_initrd, &default_rootfs, &default_backend,
                           &default_accel };
    for (gsize i = 0; i < G_N_ELEMENTS (defaults); i++)
      if (*defaults[i] != NULL && (*defaults[i])[0] == '\0')
        g_clear_pointer (defaults[i], g_free);
  }
  if (default_backend != NULL && !g_str_equal (default_backend, "firecracker") &&
      !g_str_equal (default_backend, "qemu")) {
    g_printerr ("smolvmd: default-backend must be firecracker or qemu, not '%s'\n",
                default_backend);
    return EXIT_FAILURE;
  }
  if (default_accel != NULL && !g_str_equal (default_accel, "kvm") &&
      !g_str_equal (default_accel, "tcg") && !g_str_equal (default_accel, "auto")) {
    g_printerr ("smolvmd: default-accel must be kvm, tcg or auto, not '%s'\n", default_accel);
    return EXIT_FAILURE;
  }

  /* the system daemon's credentials are the admin's file; a session
   * daemon's only what its user names */
  if (registry_auth_file == NULL && !session)
    registry_auth_file =
      g_build_filename (SMOLVM_SYSCONFDIR, "smolvm", "registries-auth.json", NULL);
  else if (registry_auth_file != NULL && registry_auth_file[0] == '\0')
    g_clear_pointer (&registry_auth_file, g_free);
  for (gsize i = 0; insecure_registries != NULL && insecure_registries[i] != NULL; i++) {
    if (!smolvm_oci_registry_name_is_valid (insecure_registries[i])) {
      g_printerr ("smolvmd: insecure registry '%s' is not HOST or HOST:PORT\n",
                  insecure_registries[i]);
      return EXIT_FAILURE;
    }
  }

  /* VMMs run with their runtime directory as working directory */
  {
    gchar **paths[] = { &state_dir,      &runtime_dir,    &firecracker_bin, &qemu_bin,
                        &default_kernel, &default_initrd, &default_rootfs, &registry_auth_file };
    for (gsize i = 0; i < G_N_ELEMENTS (paths); i++) {
      if (*paths[i] != NULL && !g_path_is_absolute (*paths[i])) {
        gchar *absolute = g_canonicalize_filename (*paths[i], NULL);
        g_free (*paths[i]);
        *paths[i] = absolute;
      }
    }
  }

  /* by the absolute path the VMMs are made with */
  if (qemu_machine != NULL && !smolvm_qemu_probe_readonly_ram (qemu_bin))
    g_message ("%s cannot open guest RAM files read-only: restored VMs map their snapshot's "
               "mem.bin (privately) from a read-write descriptor", qemu_bin);

  options.session = session;
  options.state_dir = state_dir;
  options.runtime_dir = runtime_dir;
  options.firecracker_bin = firecracker_bin;
  options.qemu_bin = qemu_bin;
  options.qemu_machine = qemu_machine;
  options.network_pool = network_pool != NULL ? network_pool : (gchar *) "172.16.0.0/16";
  options.default_kernel = default_kernel;
  options.default_initrd = default_initrd;
  options.default_rootfs = default_rootfs;
  options.default_backend = default_backend;
  options.default_accel = default_accel;
  options.registry_auth_file = registry_auth_file;
  options.insecure_registries = insecure_registries;

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
