/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include <glib/gstdio.h>
#include <gio/gio.h>

#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-qemu.h"
#include "smolvm-vmm.h"

/* The QEMU VMM with the test guest (tests/build-guest.sh, cached in
 * $SMOLVM_GUEST_CACHE): a cancel during the RAM copy of a snapshot stops it
 * and leaves the guest paused in a healthy QEMU; a cancelled load leaves no
 * process. Skipped without QEMU or the cached guest. */

#include "vmm-test.h"

static SmolvmVmm *
new_vmm (Fixture *f, const gchar *qemu)
{
  const gchar *cache = g_getenv ("SMOLVM_GUEST_CACHE");
  g_autofree gchar *kernel = g_build_filename (cache, "vmlinuz", NULL);
  g_autofree gchar *initrd = g_build_filename (cache, "initramfs.cpio.gz", NULL);
  g_autofree gchar *disk = g_build_filename (f->dir, "disk.ext4", NULL);
  g_autofree gchar *console = g_build_filename (f->dir, "console.log", NULL);
  g_autofree gchar *machine = NULL;
  g_autoptr(GVariant) dict = NULL;
  g_autoptr(SmolvmVmConfig) config = NULL;
  g_autoptr(GError) error = NULL;

  machine = smolvm_qemu_probe_machine (qemu, &error);
  g_assert_no_error (error);
  dict = g_variant_ref_sink (g_variant_new_parsed (
    "{'vm_id': <'q'>, 'backend': <'qemu'>, 'kernel_path': <%s>, 'initrd_path': <%s>,"
    " 'rootfs_path': <%s>, 'mem_size_mib': <uint32 256>, 'vcpu_count': <uint32 1>,"
    " 'accel': <'tcg'>, 'machine': <%s>, 'boot_args': <'console=ttyS0 panic=-1'>}",
    kernel, initrd, disk, machine));
  config = smolvm_vm_config_new_from_variant (dict, FALSE, &error);
  g_assert_no_error (error);
  return smolvm_vmm_new (SMOLVM_TYPE_QEMU, "q", config, NULL, disk, f->dir, console, qemu);
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  const gchar *cache = g_getenv ("SMOLVM_GUEST_CACHE");
  g_autofree gchar *qemu = g_find_program_in_path ("qemu-system-x86_64");
  g_autofree gchar *kernel = cache != NULL ? g_build_filename (cache, "vmlinuz", NULL) : NULL;
  g_autofree gchar *rootfs = cache != NULL ? g_build_filename (cache, "rootfs.ext4", NULL) : NULL;
  g_autofree gchar *disk = NULL;

  if (qemu == NULL || kernel == NULL || !g_file_test (kernel, G_FILE_TEST_EXISTS)) {
    g_test_skip ("no qemu-system-x86_64 or no cached test guest");
    return;
  }
  f->dir = g_dir_make_tmp ("svq-XXXXXX", &error);
  g_assert_no_error (error);
  disk = g_build_filename (f->dir, "disk.ext4", NULL);
  g_assert_true (smolvm_copy_file_sparse (rootfs, disk, NULL, NULL, &error));
  g_assert_no_error (error);
  f->vmm = new_vmm (f, qemu);
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
  g_assert_true (smolvm_rm_rf (f->dir, NULL));
  g_free (f->dir);
}

static void
run_op (Result *r)
{
  wait_for (&r->done);
}

static void
on_phase (SmolvmProgress *progress, gpointer user_data)
{
  if (g_str_equal (smolvm_progress_get_phase (progress), "copying-memory"))
    g_cancellable_cancel (user_data);
}

static void
boot_and_pause (Fixture *f)
{
  Result r = { 0 }, p = { 0 };

  smolvm_vmm_boot_async (f->vmm, NULL, on_op, &r);
  run_op (&r);
  g_assert_no_error (r.error);
  smolvm_vmm_set_paused_async (f->vmm, TRUE, NULL, on_op, &p);
  run_op (&p);
  g_assert_no_error (p.error);
}

static void
test_cancel_create (Fixture *f, gconstpointer data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(SmolvmProgress) progress = smolvm_progress_new ();
  g_autofree gchar *vmstate = NULL, *mem = NULL;
  Result r = { 0 }, resume = { 0 }, again = { 0 };

  if (f->vmm == NULL)
    return;
  boot_and_pause (f);
  vmstate = g_build_filename (f->dir, "vmstate.bin", NULL);
  mem = g_build_filename (f->dir, "mem.bin", NULL);
  g_signal_connect (progress, "phase-changed", G_CALLBACK (on_phase), cancellable);
  smolvm_vmm_snapshot_create_async (f->vmm, vmstate, mem, progress, cancellable, on_op, &r);
  run_op (&r);
  g_assert_error (r.error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED);
  g_assert_true (g_str_has_prefix (r.error->message, "Cancelled"));
  g_assert_false (g_file_test (mem, G_FILE_TEST_EXISTS)); /* the copy cleans up */
  g_assert_true (smolvm_vmm_is_running (f->vmm));
  /* the guest resumes (from QEMU's postmigrate state), and a second
   * snapshot, not cancelled, works */
  smolvm_vmm_set_paused_async (f->vmm, FALSE, NULL, on_op, &resume);
  run_op (&resume);
  g_assert_no_error (resume.error);
  smolvm_vmm_set_paused_async (f->vmm, TRUE, NULL, on_op, &resume);
  resume.done = FALSE;
  run_op (&resume);
  g_assert_no_error (resume.error);
  g_unlink (vmstate);
  smolvm_vmm_snapshot_create_async (f->vmm, vmstate, mem, NULL, NULL, on_op, &again);
  run_op (&again);
  g_assert_no_error (again.error);
  g_assert_true (g_file_test (mem, G_FILE_TEST_EXISTS));
  g_clear_error (&r.error);
}

static void
test_cancel_load (Fixture *f, gconstpointer data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(SmolvmProgress) progress = smolvm_progress_new ();
  g_autoptr(SmolvmVmm) restored = NULL;
  g_autofree gchar *vmstate = NULL, *mem = NULL, *qemu = NULL, *ram = NULL;
  Result save = { 0 }, load = { 0 };
  gboolean gone = FALSE;

  if (f->vmm == NULL)
    return;
  boot_and_pause (f);
  vmstate = g_build_filename (f->dir, "vmstate.bin", NULL);
  mem = g_build_filename (f->dir, "mem.bin", NULL);
  smolvm_vmm_snapshot_create_async (f->vmm, vmstate, mem, NULL, NULL, on_op, &save);
  run_op (&save);
  g_assert_no_error (save.error);
  smolvm_vmm_terminate_async (f->vmm, on_terminated, &gone);
  wait_for (&gone);

  qemu = g_strdup (smolvm_vmm_get_binary (f->vmm));
  restored = new_vmm (f, qemu);
  g_signal_connect (progress, "phase-changed", G_CALLBACK (on_phase), cancellable);
  smolvm_vmm_snapshot_load_async (restored, vmstate, mem, TRUE, NULL, progress, cancellable,
                                  on_op, &load);
  run_op (&load);
  g_assert_error (load.error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED);
  g_assert_false (smolvm_vmm_is_running (restored));
  ram = g_build_filename (f->dir, "ram", NULL);
  g_assert_false (g_file_test (ram, G_FILE_TEST_EXISTS));
  g_clear_error (&load.error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  smolvm_error_quark ();
#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/vmm-qemu/cancel-create", test_cancel_create);
  ADD ("/vmm-qemu/cancel-load", test_cancel_load);
#undef ADD
  return g_test_run ();
}
