/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The verbs, one file per verb group, for the command table of smolvm.c.
 * Each group has its own option struct, made by its _options_new() before
 * the command line is parsed. */

#include "cli.h"

G_BEGIN_DECLS

/* cli-vm.c: create, list, start, pause, resume, stop, delete, console-log */
gpointer cli_vm_options_new (void);
void cli_vm_options_free (gpointer options);
void cli_vm_create_options (gpointer options, GOptionContext *context);
void cli_vm_delete_options (gpointer options, GOptionContext *context);
void cli_vm_console_log_options (gpointer options, GOptionContext *context);
gboolean cli_vm_create (Cli *cli, GError **error);
gboolean cli_vm_list (Cli *cli, GError **error);
gboolean cli_vm_start (Cli *cli, GError **error);
gboolean cli_vm_pause (Cli *cli, GError **error);
gboolean cli_vm_resume (Cli *cli, GError **error);
gboolean cli_vm_stop (Cli *cli, GError **error);
gboolean cli_vm_delete (Cli *cli, GError **error);
gboolean cli_vm_console_log (Cli *cli, GError **error);

/* cli-snapshot.c: snapshot create, restore, clone, delete, list, export, import, push, pull */
gpointer cli_snapshot_options_new (void);
void cli_snapshot_options_free (gpointer options);
void cli_snapshot_create_options (gpointer options, GOptionContext *context);
void cli_snapshot_restore_options (gpointer options, GOptionContext *context);
void cli_snapshot_clone_options (gpointer options, GOptionContext *context);
void cli_snapshot_list_options (gpointer options, GOptionContext *context);
void cli_snapshot_export_options (gpointer options, GOptionContext *context);
void cli_snapshot_import_options (gpointer options, GOptionContext *context);
void cli_snapshot_push_options (gpointer options, GOptionContext *context);
void cli_snapshot_pull_options (gpointer options, GOptionContext *context);
gboolean cli_snapshot_create (Cli *cli, GError **error);
gboolean cli_snapshot_restore (Cli *cli, GError **error);
gboolean cli_snapshot_clone (Cli *cli, GError **error);
gboolean cli_snapshot_delete (Cli *cli, GError **error);
gboolean cli_snapshot_list (Cli *cli, GError **error);
gboolean cli_snapshot_export (Cli *cli, GError **error);
gboolean cli_snapshot_import (Cli *cli, GError **error);
gboolean cli_snapshot_push (Cli *cli, GError **error);
gboolean cli_snapshot_pull (Cli *cli, GError **error);

/* cli-job.c: job list, cancel */
gboolean cli_job_list (Cli *cli, GError **error);
gboolean cli_job_cancel (Cli *cli, GError **error);

G_END_DECLS
