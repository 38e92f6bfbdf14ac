/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include <glib/gstdio.h>
#include <gio/gio.h>

#include "smolvm-error.h"
#include "smolvm-firecracker.h"
#include "smolvm-vmm.h"

/* The Firecracker VMM against the project's emulator: the GCancellable of
 * a call reaches the HTTP requests, and what a cancel leaves behind. */

#define SNAPSHOT_DELAY_MS 3000

#include "vmm-test.h"

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *kernel = NULL, *rootfs = NULL, *console = NULL;
  g_autoptr(GVariant) config_dict = NULL;
  g_autoptr(SmolvmVmConfig) config = NULL;
  const gchar *emulator = g_getenv ("SMOLVM_FC_EMULATOR");

  if (emulator == NULL) {
    g_test_skip ("SMOLVM_FC_EMULATOR is not set");
    return;
  }
  /* short: the API socket path must fit in sun_path */
  f->dir = g_dir_make_tmp ("svfc-XXXXXX", &error);
  g_assert_no_error (error);
  kernel = g_build_filename (f->dir, "vmlinux", NULL);
  rootfs = g_build_filename (f->dir, "rootfs", NULL);
  console = g_build_filename (f->dir, "console.log", NULL);
  g_assert_true (g_file_set_contents (kernel, "\x7f" "ELF kernel", -1, NULL));
  g_assert_true (g_file_set_contents (rootfs, "rootfs", -1, NULL));
  config_dict = g_variant_ref_sink (g_variant_new_parsed (
    "{'vm_id': <'fc'>, 'kernel_path': <%s>, 'rootfs_path': <%s>, 'mem_size_mib': <uint32 128>}",
    kernel, rootfs));
  config = smolvm_vm_config_new_from_variant (config_dict, FALSE, &error);
  g_assert_no_error (error);
  g_setenv ("FC_EMULATOR_SNAPSHOT_DELAY_MS", G_STRINGIFY (SNAPSHOT_DELAY_MS), TRUE);
  g_setenv ("FC_EMULATOR_TICK_MS", "50", TRUE);
  f->vmm = smolvm_vmm_new (SMOLVM_TYPE_FIRECRACKER, "fc", config, NULL, rootfs, f->dir, console,
                           emulator);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  gboolean gone = FALSE;

  if (f->vmm == NULL)
    return;
  smolvm_vmm_terminate_async (f->vmm, on_terminated, &gone);
  wait_for (&gone);
  g_clear_object (&f->vmm);
  {
    g_autoptr(GFile) dir = g_file_new_for_path (f->dir);
    g_autoptr(GFileEnumerator) e = g_file_enumerate_children (dir, "standard::name", 0, NULL, NULL);
    GFileInfo *info;
    while (e != NULL && (info = g_file_enumerator_next_file (e, NULL, NULL)) != NULL) {
      g_autofree gchar *path = g_build_filename (f->dir, g_file_info_get_name (info), NULL);
      g_unlink (path);
      g_object_unref (info);
    }
  }
  g_rmdir (f->dir);
  g_free (f->dir);
}

static void
boot (Fixture *f)
{
  Result r = { 0 };
  smolvm_vmm_boot_async (f->vmm, NULL, on_op, &r);
  wait_for (&r.done);
  g_assert_no_error (r.error);
  g_assert_true (smolvm_vmm_is_running (f->vmm));
}

static void
set_paused (Fixture *f, gboolean paused)
{
  Result r = { 0 };
  smolvm_vmm_set_paused_async (f->vmm, paused, NULL, on_op, &r);
  wait_for (&r.done);
  g_assert_no_error (r.error);
}

static gboolean
on_cancel_timer (gpointer user_data)
{
  g_cancellable_cancel (user_data);
  return G_SOURCE_REMOVE;
}

/* A cancelled snapshot stops waiting for Firecracker's answer, waits until
 * the VMM answers again, and leaves the guest paused in a healthy VMM. */
static void
test_cancel_snapshot_create (Fixture *f, gconstpointer data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autofree gchar *vmstate = NULL, *mem = NULL;
  Result r = { 0 };
  gint64 start;

  if (f->vmm == NULL)
    return;
  boot (f);
  set_paused (f, TRUE);
  vmstate = g_build_filename (f->dir, "vmstate.bin", NULL);
  mem = g_build_filename (f->dir, "mem.bin", NULL);
  start = g_get_monotonic_time ();
  g_timeout_add (200, on_cancel_timer, cancellable);
  smolvm_vmm_snapshot_create_async (f->vmm, vmstate, mem, NULL, cancellable, on_op, &r);
  wait_for (&r.done);
  g_assert_false (r.ok);
  g_assert_error (r.error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED);
  g_assert_true (g_str_has_prefix (r.error->message, "Cancelled"));
  /* well before the emulator's answer would have come */
  g_assert_cmpint (g_get_monotonic_time () - start, <, SNAPSHOT_DELAY_MS * 1000 * 2 / 3);
  g_assert_true (smolvm_vmm_is_running (f->vmm));
  set_paused (f, FALSE); /* the caller can resume it */
  set_paused (f, TRUE);
  g_clear_error (&r.error);
}

/* Cancelled before its first call: nothing is sent, the VM stays as is. */
static void
test_cancelled_pause (Fixture *f, gconstpointer data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  Result r = { 0 };

  if (f->vmm == NULL)
    return;
  boot (f);
  g_cancellable_cancel (cancellable);
  smolvm_vmm_set_paused_async (f->vmm, TRUE, cancellable, on_op, &r);
  wait_for (&r.done);
  g_assert_error (r.error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED);
  g_clear_error (&r.error);
  set_paused (f, TRUE);
}

/* A cancelled launch leaves no process behind. */
static void
test_cancel_boot (Fixture *f, gconstpointer data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  Result r = { 0 };

  if (f->vmm == NULL)
    return;
  smolvm_vmm_boot_async (f->vmm, cancellable, on_op, &r);
  g_cancellable_cancel (cancellable); /* during the socket wait */
  wait_for (&r.done);
  g_assert_error (r.error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED);
  g_assert_true (g_str_has_prefix (r.error->message, "Cancelled"));
  g_assert_false (smolvm_vmm_is_running (f->vmm));
  g_clear_error (&r.error);
  boot (f); /* and a new one starts */
}

/* The socket wait gives up as soon as the process is gone. */
static void
test_process_exits_early (Fixture *f, gconstpointer data)
{
  g_autoptr(SmolvmVmm) broken = NULL;
  Result r = { 0 };
  gint64 start = g_get_monotonic_time ();

  if (f->vmm == NULL)
    return;
  broken = smolvm_vmm_new (SMOLVM_TYPE_FIRECRACKER, "fc", smolvm_vmm_get_config (f->vmm), NULL,
                           smolvm_vmm_get_disk_path (f->vmm), f->dir,
                           smolvm_vmm_get_console_log_path (f->vmm), "/bin/false");
  smolvm_vmm_boot_async (broken, NULL, on_op, &r);
  wait_for (&r.done);
  g_assert_error (r.error, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND);
  g_assert_nonnull (strstr (r.error->message, "exited before opening its socket"));
  g_assert_cmpint (g_get_monotonic_time () - start, <, 5 * G_USEC_PER_SEC);
  g_clear_error (&r.error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  smolvm_error_quark ();
#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/vmm-firecracker/cancel-snapshot-create", test_cancel_snapshot_create);
  ADD ("/vmm-firecracker/cancelled-pause", test_cancelled_pause);
  ADD ("/vmm-firecracker/cancel-boot", test_cancel_boot);
  ADD ("/vmm-firecracker/process-exits-early", test_process_exits_early);
#undef ADD
  return g_test_run ();
}
