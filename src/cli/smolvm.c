/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smolvm: command line client of smolvmd.
 *
 *   smolvm [--session] [--no-ask-password] COMMAND [ARGS…] [--json]
 *   smolvm [--session] [--no-ask-password] GROUP COMMAND [ARGS…] [--json]
 *
 * This file holds main(), the options every command takes, the command table
 * and the dispatch; the verbs live in one file per verb group (cli-vm.c,
 * cli-snapshot.c, cli-job.c), see cli-verbs.h.
 *
 * Exit status: 0 on success, 1 when the operation failed, 2 on a usage error,
 * 130 when a second Ctrl-C cut a long command short. Usage errors are carried
 * in the G_OPTION_ERROR domain, everything else is a failure.
 */
#include "config.h"

#include <locale.h>
#include <stdlib.h>

#include <gio/gio.h>

#include "smolvm-error.h"

#include "cli-output.h"
#include "cli-verbs.h"
#include "cli.h"

static const CliGroup cli_groups[] = {
  { "snapshot",
    "Manage VM snapshots (Firecracker and QEMU): create, restore, clone, delete, list, "
    "export, import, push, pull." },
  { "job", "Show and cancel the long operations under way: list, cancel." },
};

#define VM_OPTIONS cli_vm_options_new, cli_vm_options_free
#define SNAPSHOT_OPTIONS cli_snapshot_options_new, cli_snapshot_options_free
#define NO_OPTIONS NULL, NULL, NULL

static const CliVerb cli_verbs[] = {
  { NULL, "create", "vm.create", "", 0, "Create a VM from a kernel and a root filesystem image.",
    0, VM_OPTIONS, cli_vm_create_options, cli_vm_create },
  { NULL, "list", "vm.list", "", 0, "List VMs.", CLI_VERB_READ_ONLY, NO_OPTIONS, cli_vm_list },
  { NULL, "start", "vm.start", "VM_ID", 1, "Boot a created or stopped VM.", 0, NO_OPTIONS,
    cli_vm_start },
  { NULL, "pause", "vm.pause", "VM_ID", 1, "Pause a running VM.", 0, NO_OPTIONS, cli_vm_pause },
  { NULL, "resume", "vm.resume", "VM_ID", 1, "Resume a paused VM.", 0, NO_OPTIONS,
    cli_vm_resume },
  { NULL, "stop", "vm.stop", "VM_ID", 1, "Stop a VM; its disk is kept.", 0, NO_OPTIONS,
    cli_vm_stop },
  { NULL, "delete", "vm.delete", "VM_ID", 1, "Delete a VM and its disk.", 0, VM_OPTIONS,
    cli_vm_delete_options, cli_vm_delete },
  { NULL, "console-log", "vm.console-log", "VM_ID", 1,
    "Print what the guest wrote on its serial console.", 0, VM_OPTIONS,
    cli_vm_console_log_options, cli_vm_console_log },
  { "snapshot", "create", "snapshot.create", "VM_ID", 1,
    "Save the full state of a running or paused VM.", 0, SNAPSHOT_OPTIONS,
    cli_snapshot_create_options, cli_snapshot_create },
  { "snapshot", "restore", "snapshot.restore", "SNAPSHOT_ID", 1,
    "Restore a snapshot back into its original VM identity.", 0, SNAPSHOT_OPTIONS,
    cli_snapshot_restore_options, cli_snapshot_restore },
  { "snapshot", "clone", "snapshot.clone", "SNAPSHOT_ID", 1,
    "Make new VMs of a snapshot, each going on from where its guest stopped.", 0,
    SNAPSHOT_OPTIONS, cli_snapshot_clone_options, cli_snapshot_clone },
  { "snapshot", "delete", "snapshot.delete", "SNAPSHOT_ID", 1,
    "Delete a snapshot and its associated files, permanently.", 0, NO_OPTIONS,
    cli_snapshot_delete },
  { "snapshot", "list", "snapshot.list", "", 0,
    "List all snapshots, optionally filtered by source VM.", CLI_VERB_READ_ONLY,
    SNAPSHOT_OPTIONS, cli_snapshot_list_options, cli_snapshot_list },
  { "snapshot", "export", "snapshot.export", "SNAPSHOT_ID FILE|-", 2,
    "Write a snapshot as an OCI archive (oci-archive) to FILE or standard output.", 0,
    SNAPSHOT_OPTIONS, cli_snapshot_export_options, cli_snapshot_export },
  { "snapshot", "import", "snapshot.import", "FILE|-", 1,
    "Make a snapshot of an OCI archive read from FILE or standard input.", 0,
    SNAPSHOT_OPTIONS, cli_snapshot_import_options, cli_snapshot_import },
  { "snapshot", "push", "snapshot.push", "SNAPSHOT_ID REFERENCE", 2,
    "Upload a snapshot to an OCI registry (REGISTRY/REPOSITORY[:TAG]).", 0,
    SNAPSHOT_OPTIONS, cli_snapshot_push_options, cli_snapshot_push },
  { "snapshot", "pull", "snapshot.pull", "REFERENCE", 1,
    "Download a snapshot from an OCI registry.", 0,
    SNAPSHOT_OPTIONS, cli_snapshot_pull_options, cli_snapshot_pull },
  { "job", "list", "job.list", "", 0,
    "List the jobs under way: operation, phase, progress, who started them.",
    CLI_VERB_READ_ONLY, NO_OPTIONS, cli_job_list },
  { "job", "cancel", "job.cancel", "JOB", 1,
    "Cancel a job, given its number N or its path /org/smolvm/Manager/job/N.", 0, NO_OPTIONS,
    cli_job_cancel },
};

static void
cli_clear (Cli *cli)
{
  g_strfreev (cli->args);
  if (cli->options != NULL)
    cli->verb->options_free (cli->options);
  g_clear_pointer (&cli->client, cli_client_free);
  g_clear_pointer (&cli->error_details, json_object_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Cli, cli_clear)

gboolean
cli_connect (Cli *cli, GError **error)
{
  gboolean may_prompt = !(cli->verb->flags & CLI_VERB_READ_ONLY);

  cli->client = cli_client_new (cli->session, cli->no_ask_password, may_prompt, error);
  return cli->client != NULL;
}

gboolean
cli_parse_count (const gchar *option, const gchar *value, guint32 *out, GError **error)
{
  guint64 number;

  if (!g_ascii_string_to_unsigned (value, 10, 1, G_MAXUINT32, &number, NULL)) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "%s needs a positive whole number, not '%s'", option, value);
    return FALSE;
  }
  *out = (guint32) number;
  return TRUE;
}

static const CliVerb *
cli_verb_lookup (const gchar *group, const gchar *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (cli_verbs); i++)
    if (g_strcmp0 (cli_verbs[i].group, group) == 0 && g_str_equal (cli_verbs[i].name, name))
      return &cli_verbs[i];
  return NULL;
}

static const CliGroup *
cli_group_lookup (const gchar *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (cli_groups); i++)
    if (g_str_equal (cli_groups[i].name, name))
      return &cli_groups[i];
  return NULL;
}

/* The command list shown by "smolvm --help" and "smolvm GROUP --help". */
static gchar *
cli_commands_help (const gchar *group)
{
  g_autoptr(GString) help = g_string_new ("Commands:\n");

  for (gsize i = 0; i < G_N_ELEMENTS (cli_verbs); i++)
    if (g_strcmp0 (cli_verbs[i].group, group) == 0)
      g_string_append_printf (help, "  %-12s %s\n", cli_verbs[i].name, cli_verbs[i].summary);
  if (group == NULL)
    for (gsize i = 0; i < G_N_ELEMENTS (cli_groups); i++)
      g_string_append_printf (help, "  %-12s %s\n", cli_groups[i].name, cli_groups[i].summary);
  g_string_append_printf (help, "\nRun 'smolvm %s%sCOMMAND --help' for the options of a command.",
                          group != NULL ? group : "", group != NULL ? " " : "");
  return g_string_free (g_steal_pointer (&help), FALSE);
}

static void
cli_add_common_options (Cli *cli, GOptionContext *context)
{
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &cli->json,
      "Output machine-readable JSON instead of human-friendly text", NULL },
    { "session", 0, 0, G_OPTION_ARG_NONE, &cli->session,
      "Talk to smolvmd on the session bus instead of the system bus", NULL },
    { "no-ask-password", 0, 0, G_OPTION_ARG_NONE, &cli->no_ask_password,
      "Do not ask for a password to authorize the operation", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &cli->version, "Print the version and exit", NULL },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &cli->args, NULL, NULL },
    G_OPTION_ENTRY_NULL
  };
  g_option_context_add_main_entries (context, entries, NULL);
}

/* Position of the first argument from @start on that is no option, or
 * @argc. Options before the command words can only be the flags that every
 * command takes, so none of them swallows the next argument. */
static gint
argv_next_word (gint argc, gchar **argv, gint start)
{
  gint i = start;

  while (i < argc && argv[i][0] == '-')
    i++;
  return i;
}

/* A usage error must come as JSON too when --json was given, even if the
 * command line cannot be parsed. */
static gboolean
argv_wants_json (gint argc, gchar **argv)
{
  for (gint i = 1; i < argc && !g_str_equal (argv[i], "--"); i++)
    if (g_str_equal (argv[i], "--json"))
      return TRUE;
  return FALSE;
}

static gboolean
cli_parse (Cli *cli, gint argc, gchar **argv, GError **error)
{
  gint first = argv_next_word (argc, argv, 1);
  gint second = argc;
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
  g_auto(GStrv) args = NULL;
  g_autofree gchar *params = NULL;
  guint n_args;

  cli->json = argv_wants_json (argc, argv);

  /* Find the command words: VERB, or GROUP VERB. */
  if (first < argc) {
    cli->group = cli_group_lookup (argv[first]);
    if (cli->group != NULL) {
      second = argv_next_word (argc, argv, first + 1);
      if (second < argc) {
        cli->verb = cli_verb_lookup (cli->group->name, argv[second]);
        if (cli->verb == NULL) {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "Unknown %s command '%s'",
                       cli->group->name, argv[second]);
          return FALSE;
        }
      }
    } else {
      cli->verb = cli_verb_lookup (NULL, argv[first]);
      if (cli->verb == NULL) {
        g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "Unknown command '%s'",
                     argv[first]);
        return FALSE;
      }
    }
  }

  if (cli->verb != NULL) {
    params = g_strdup_printf ("%s%s%s%s%s", cli->group != NULL ? cli->group->name : "",
                              cli->group != NULL ? " " : "", cli->verb->name,
                              cli->verb->n_args > 0 ? " " : "", cli->verb->params);
    context = g_option_context_new (params);
    g_option_context_set_summary (context, cli->verb->summary);
    if (cli->verb->options_new != NULL)
      cli->options = cli->verb->options_new ();
    if (cli->verb->add_options != NULL)
      cli->verb->add_options (cli->options, context);
  } else {
    const gchar *group = cli->group != NULL ? cli->group->name : NULL;
    g_autofree gchar *commands = cli_commands_help (group);

    params = g_strdup_printf ("%s%sCOMMAND [ARGUMENTS…]", group != NULL ? group : "",
                              group != NULL ? " " : "");
    context = g_option_context_new (params);
    g_option_context_set_summary (context, cli->group != NULL
                                               ? cli->group->summary
                                               : "Run and snapshot microVMs through smolvmd.");
    g_option_context_set_description (context, commands);
  }
  cli_add_common_options (cli, context);

  /* The command words are not arguments of the command. */
  for (gint i = 0; i < argc; i++)
    if (i != first && i != second)
      g_strv_builder_add (builder, argv[i]);
  args = g_strv_builder_end (builder);
  if (!g_option_context_parse_strv (context, &args, error)) {
    /* GOption reverts every option when it fails. */
    cli->json = argv_wants_json (argc, argv);
    return FALSE;
  }

  if (cli->version)
    return TRUE;
  if (cli->verb == NULL) {
    if (cli->group != NULL)
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "Missing %s command",
                   cli->group->name);
    else
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "Missing command");
    return FALSE;
  }

  n_args = cli->args != NULL ? g_strv_length (cli->args) : 0;
  if (n_args < cli->verb->n_args) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "Missing argument %s",
                 cli->verb->params);
    return FALSE;
  }
  if (n_args > cli->verb->n_args) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "Unexpected argument '%s'",
                 cli->args[cli->verb->n_args]);
    return FALSE;
  }
  return TRUE;
}

int
main (int argc, char **argv)
{
  g_auto(Cli) cli = { 0 };
  g_autoptr(GError) error = NULL;

  setlocale (LC_ALL, "");
  g_set_prgname ("smolvm");
  /* Registers org.smolvm.Error.* so that remote errors come back as
   * SMOLVM_ERROR codes. */
  smolvm_error_quark ();

  if (!cli_parse (&cli, argc, argv, &error))
    return cli_report_error (&cli, error);
  if (cli.version) {
    g_print ("smolvm %s\n", PACKAGE_VERSION);
    return EXIT_SUCCESS;
  }
  if (!cli.verb->run (&cli, &error))
    return cli_report_error (&cli, error);
  return EXIT_SUCCESS;
}
