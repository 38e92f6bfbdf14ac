/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What every part of the CLI shares: the parsed command line (global options,
 * the command, its positional arguments and its verb group's option struct)
 * and the connection to smolvmd. smolvm.c fills it in; the verb files
 * (cli-vm.c, cli-snapshot.c, cli-job.c) run with it. */

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "cli-client.h"

G_BEGIN_DECLS

#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_INTERRUPTED 130 /* 128 + SIGINT, like a shell */

typedef struct _Cli Cli;
typedef struct _CliVerb CliVerb;

typedef struct {
  const gchar *name; /* "snapshot" in "smolvm snapshot create" */
  const gchar *summary;
} CliGroup;

typedef enum {
  CLI_VERB_READ_ONLY = 1 << 0, /* needs no authorization: no polkit agent */
} CliVerbFlags;

typedef gboolean (*CliRunFunc) (Cli *cli, GError **error);
/* Registers the verb's options, which point into @options. */
typedef void (*CliOptionsFunc) (gpointer options, GOptionContext *context);

struct _CliVerb {
  const gchar *group;   /* "snapshot" for "smolvm snapshot NAME", NULL for top-level */
  const gchar *name;
  const gchar *command; /* the JSON envelope's "command" */
  const gchar *params;  /* positional arguments, for --help and error messages */
  guint n_args;
  const gchar *summary;
  CliVerbFlags flags;
  /* The option struct of the verb's group, made before parsing: */
  gpointer (*options_new) (void);
  GDestroyNotify options_free;
  CliOptionsFunc add_options;
  CliRunFunc run;
};

struct _Cli {
  /* Options every command takes, before or after the command words. */
  gboolean session;
  gboolean no_ask_password;
  gboolean version;
  gboolean json;

  /* Positional arguments after the command words. */
  gchar **args;

  const CliGroup *group; /* set once a group word is seen, even without a command */
  const CliVerb *verb;
  gpointer options; /* the verb group's option struct (CliVmOptions...) */

  CliClient *client; /* once connected */

  /* Set by a verb that fails: with --json, the error object's "details". */
  JsonObject *error_details;
};

/* --no-progress, of the verbs that show a progress bar. */
#define CLI_NO_PROGRESS_ENTRY(flag) \
  { "no-progress", 0, 0, G_OPTION_ARG_NONE, (flag), "Do not show a progress bar", NULL }

/* Connects to smolvmd on the bus the options name (smolvm.c). */
gboolean cli_connect (Cli *cli, GError **error);

/* The value of @option, a positive whole number; else a usage error. */
gboolean cli_parse_count (const gchar *option, const gchar *value, guint32 *out, GError **error);

G_END_DECLS
