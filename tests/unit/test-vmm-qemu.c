/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <gio/gio.h>

#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-qemu.h"
#include "smolvm-vmm.h"

/* The QEMU VMM with the test guest (tests/build-guest.sh, cached in
 * $SMOLVM_GUEST_CACHE): a cancel during the RAM copy of a snapshot stops it
 * and leaves the guest paused in a healthy QEMU; a cancelled load leaves no
 * process; a restored guest maps mem.bin, which stays as it was, and a
 * cancel while its state (RAM included) is split leaves the guest paused
 * in a healthy QEMU too. Skipped without QEMU or the cached guest. */

#include "vmm-test.h"

/* A VMM whose runtime files, disk and console log are in @dir. */
static SmolvmVmm *
new_vmm_in (const gchar *dir, const gchar *qemu)
{
  const gchar *cache = g_getenv ("SMOLVM_GUEST_CACHE");
  g_autofree gchar *kernel = g_build_filename (cache, "vmlinuz", NULL);
  g_autofree gchar *initrd = g_build_filename (cache, "initramfs.cpio.gz", NULL);
  g_autofree gchar *disk = g_build_filename (dir, "disk.ext4", NULL);
  g_autofree gchar *console = g_build_filename (dir, "console.log", NULL);
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
  return smolvm_vmm_new (SMOLVM_TYPE_QEMU, "q", config, NULL, disk, dir, console, qemu);
}

static SmolvmVmm *
new_vmm (Fixture *f, const gchar *qemu)
{
  return new_vmm_in (f->dir, qemu);
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

/* Cancels @cancellable once @phase is measured; notes whether @vmm (if
 * any) had a process then. */
typedef struct {
  const gchar *phase;
  GCancellable *cancellable;
  SmolvmVmm *vmm;
  gboolean vmm_ran;
} CancelAt;

static void
on_phase (SmolvmProgress *progress, gpointer user_data)
{
  CancelAt *at = user_data;
  if (g_str_equal (smolvm_progress_get_phase (progress), at->phase) &&
      smolvm_progress_get_measurable (progress))
    g_cancellable_cancel (at->cancellable);
}

/* Cancels @cancellable as @phase starts, measured or not. */
static void
on_phase_any (SmolvmProgress *progress, gpointer user_data)
{
  CancelAt *at = user_data;
  if (!g_str_equal (smolvm_progress_get_phase (progress), at->phase))
    return;
  at->vmm_ran = at->vmm != NULL && smolvm_vmm_is_running (at->vmm);
  g_cancellable_cancel (at->cancellable);
}

static void
assert_mode (const gchar *path, mode_t mode)
{
  struct stat st;
  g_assert_cmpint (stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, mode);
}

static gchar *
sha256_of (const gchar *path)
{
  g_autoptr(GError) error = NULL;
  gchar *sum = smolvm_file_sha256 (path, NULL, NULL, &error);
  g_assert_no_error (error);
  return sum;
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
  CancelAt at = { "copying-memory", cancellable };

  if (f->vmm == NULL)
    return;
  boot_and_pause (f);
  vmstate = g_build_filename (f->dir, "vmstate.bin", NULL);
  mem = g_build_filename (f->dir, "mem.bin", NULL);
  g_signal_connect (progress, "phase-changed", G_CALLBACK (on_phase), &at);
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

/* Saves the booted guest into @vmstate and @mem, and ends its QEMU. */
static void
save_booted (Fixture *f, const gchar *vmstate, const gchar *mem)
{
  Result save = { 0 };
  gboolean gone = FALSE;

  boot_and_pause (f);
  smolvm_vmm_snapshot_create_async (f->vmm, vmstate, mem, NULL, NULL, on_op, &save);
  run_op (&save);
  g_assert_no_error (save.error);
  smolvm_vmm_terminate_async (f->vmm, on_terminated, &gone);
  wait_for (&gone);
}

static void
test_cancel_load (Fixture *f, gconstpointer data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(SmolvmProgress) progress = smolvm_progress_new ();
  g_autoptr(SmolvmVmm) restored = NULL;
  g_autofree gchar *vmstate = NULL, *mem = NULL, *ram = NULL, *mem_sum = NULL, *after = NULL;
  Result load = { 0 };
  CancelAt at = { "loading-state", cancellable };

  if (f->vmm == NULL)
    return;
  vmstate = g_build_filename (f->dir, "vmstate.bin", NULL);
  mem = g_build_filename (f->dir, "mem.bin", NULL);
  save_booted (f, vmstate, mem);
  g_assert_cmpint (chmod (mem, 0400), ==, 0);
  mem_sum = sha256_of (mem);

  restored = new_vmm (f, smolvm_vmm_get_binary (f->vmm));
  /* loading-state is not measured: cancel as it starts, with QEMU up */
  at.vmm = restored;
  g_signal_connect (progress, "phase-changed", G_CALLBACK (on_phase_any), &at);
  smolvm_vmm_snapshot_load_async (restored, vmstate, mem, TRUE, NULL, progress, cancellable,
                                  on_op, &load);
  run_op (&load);
  g_assert_error (load.error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED);
  g_assert_true (at.vmm_ran);
  g_assert_false (smolvm_vmm_is_running (restored));
  ram = g_build_filename (f->dir, "ram", NULL);
  g_assert_false (g_file_test (ram, G_FILE_TEST_EXISTS));
  after = sha256_of (mem);
  g_assert_cmpstr (after, ==, mem_sum);
  assert_mode (mem, 0400);
  g_clear_error (&load.error);
}

/* Cancels @cancellable once @path holds data. */
typedef struct {
  const gchar *path;
  GCancellable *cancellable;
  guint watch;
} CancelOnFile;

static gboolean
cancel_on_file (gpointer user_data)
{
  CancelOnFile *c = user_data;
  struct stat st;

  if (stat (c->path, &st) != 0 || st.st_blocks == 0)
    return G_SOURCE_CONTINUE;
  g_cancellable_cancel (c->cancellable);
  c->watch = 0;
  return G_SOURCE_REMOVE;
}

/* Until @path has grown by @bytes (the guest printed more). */
static void
wait_growth (const gchar *path, goffset bytes)
{
  struct stat st;
  goffset start;

  g_assert_cmpint (stat (path, &st), ==, 0);
  start = st.st_size;
  while (stat (path, &st) == 0 && st.st_size < start + bytes)
    g_usleep (50000);
}

/* The -object argument of QEMU @pid's guest RAM. */
static gchar *
ram_object (GPid pid)
{
  g_autofree gchar *path = g_strdup_printf ("/proc/%d/cmdline", pid);
  g_autofree gchar *cmdline = NULL;
  gsize len = 0;

  g_assert_true (g_file_get_contents (path, &cmdline, &len, NULL));
  for (gsize i = 0; i < len; i += strlen (cmdline + i) + 1)
    if (g_str_has_prefix (cmdline + i, "memory-backend-file,"))
      return g_strdup (cmdline + i);
  g_assert_not_reached ();
}

/* Whether QEMU @pid maps @path. */
static gboolean
maps_file (GPid pid, const gchar *path)
{
  g_autofree gchar *maps_path = g_strdup_printf ("/proc/%d/maps", pid);
  g_autofree gchar *maps = NULL;
  g_auto(GStrv) lines = NULL;

  g_assert_true (g_file_get_contents (maps_path, &maps, NULL, NULL));
  lines = g_strsplit (maps, "\n", -1);
  for (gsize i = 0; lines[i] != NULL; i++)
    if (g_str_has_suffix (lines[i], path))
      return TRUE;
  return FALSE;
}

static void
test_restored_save (Fixture *f, gconstpointer data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(SmolvmProgress) progress = smolvm_progress_new ();
  g_autoptr(SmolvmVmm) restored = NULL;
  g_autofree gchar *vmstate = NULL, *mem = NULL, *mem_sum = NULL, *ram = NULL;
  g_autofree gchar *vmstate2 = NULL, *mem2 = NULL, *console = NULL, *after = NULL;
  Result load = { 0 }, r = { 0 }, p = { 0 }, again = { 0 };
  CancelOnFile at = { NULL, cancellable, 0 };
  gboolean gone = FALSE;
  struct stat st;

  if (f->vmm == NULL)
    return;
  vmstate = g_build_filename (f->dir, "vmstate.bin", NULL);
  mem = g_build_filename (f->dir, "mem.bin", NULL);
  vmstate2 = g_build_filename (f->dir, "vmstate2.bin", NULL);
  mem2 = g_build_filename (f->dir, "mem2.bin", NULL);
  ram = g_build_filename (f->dir, "ram", NULL);
  save_booted (f, vmstate, mem);
  g_assert_cmpint (chmod (mem, 0400), ==, 0);
  mem_sum = sha256_of (mem);

  /* restored: mem.bin mapped, no RAM file */
  restored = new_vmm (f, smolvm_vmm_get_binary (f->vmm));
  smolvm_vmm_snapshot_load_async (restored, vmstate, mem, TRUE, NULL, NULL, NULL, on_op, &load);
  run_op (&load);
  g_assert_no_error (load.error);
  g_assert_true (maps_file (smolvm_vmm_get_pid (restored), mem));
  g_assert_false (g_file_test (ram, G_FILE_TEST_EXISTS));
  assert_mode (mem, 0400);
  {
    g_autofree gchar *object = ram_object (smolvm_vmm_get_pid (restored));
    g_autofree gchar *expected = g_strdup_printf (
      "memory-backend-file,id=ram0,size=256M,mem-path=%s,share=off%s", mem,
      smolvm_qemu_probe_readonly_ram (smolvm_vmm_get_binary (restored)) ? ",readonly=on,rom=off"
                                                                          : "");
    g_assert_cmpstr (object, ==, expected);
  }
  /* loaded again while the first maps it, as clones are one after the
   * other: each load finds mem.bin 0400 again (a QEMU that opens it
   * read-write and does not run as root gets it lent writable anew) */
  for (guint i = 0; i < 2; i++) {
    g_autofree gchar *clone_dir = g_strdup_printf ("%s/clone%u", f->dir, i);
    g_autofree gchar *clone_disk = g_build_filename (clone_dir, "disk.ext4", NULL);
    g_autofree gchar *disk = g_build_filename (f->dir, "disk.ext4", NULL);
    g_autoptr(SmolvmVmm) clone = NULL;
    g_autoptr(GError) error = NULL;
    Result cl = { 0 };
    gboolean clone_gone = FALSE;

    g_assert_cmpint (g_mkdir (clone_dir, 0700), ==, 0);
    g_assert_true (smolvm_copy_file_sparse (disk, clone_disk, NULL, NULL, &error));
    g_assert_no_error (error);
    clone = new_vmm_in (clone_dir, smolvm_vmm_get_binary (f->vmm));
    smolvm_vmm_snapshot_load_async (clone, vmstate, mem, TRUE, NULL, NULL, NULL, on_op, &cl);
    run_op (&cl);
    g_assert_no_error (cl.error);
    g_assert_true (maps_file (smolvm_vmm_get_pid (clone), mem));
    assert_mode (mem, 0400);
    smolvm_vmm_terminate_async (clone, on_terminated, &clone_gone);
    wait_for (&clone_gone);
  }
  g_assert_true (smolvm_vmm_is_running (restored));
  /* the guest runs on, writing its RAM (it prints as it goes) */
  console = g_build_filename (f->dir, "console.log", NULL);
  wait_growth (console, 2 * strlen ("tick NN\n"));
  smolvm_vmm_set_paused_async (restored, TRUE, NULL, on_op, &p);
  run_op (&p);
  g_assert_no_error (p.error);

  /* a save cancelled while its stream, RAM included, is split: once the
   * worker has written pages to mem2.bin (QEMU streams for a good 50 ms) */
  at.path = mem2;
  at.watch = g_timeout_add (1, cancel_on_file, &at);
  smolvm_vmm_snapshot_create_async (restored, vmstate2, mem2, progress, cancellable, on_op, &r);
  run_op (&r);
  g_clear_handle_id (&at.watch, g_source_remove);
  g_assert_error (r.error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED);
  g_test_message ("cancelled save: %s", r.error->message);
  g_assert_false (g_file_test (vmstate2, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (mem2, G_FILE_TEST_EXISTS));
  g_assert_true (smolvm_vmm_is_running (restored));

  /* the guest resumes, and a save that is not cancelled works: the usual
   * layout, memory measured in the stream, no RAM file copied */
  p.done = FALSE;
  smolvm_vmm_set_paused_async (restored, FALSE, NULL, on_op, &p);
  run_op (&p);
  g_assert_no_error (p.error);
  p.done = FALSE;
  smolvm_vmm_set_paused_async (restored, TRUE, NULL, on_op, &p);
  run_op (&p);
  g_assert_no_error (p.error);
  g_clear_object (&progress);
  progress = smolvm_progress_new ();
  smolvm_vmm_snapshot_create_async (restored, vmstate2, mem2, progress, NULL, on_op, &again);
  run_op (&again);
  g_assert_no_error (again.error);
  g_assert_cmpstr (smolvm_progress_get_phase (progress), ==, "saving-state");
  g_assert_cmpuint (smolvm_progress_get_total (progress), >=, 256 * 1024 * 1024);
  g_assert_cmpint (stat (mem2, &st), ==, 0);
  g_assert_cmpint (st.st_size, ==, 256 * 1024 * 1024);
  g_assert_cmpint (stat (vmstate2, &st), ==, 0);
  g_assert_cmpint (st.st_size, <, 2 * 1024 * 1024);
  /* and the snapshot it was restored from is as it was */
  after = sha256_of (mem);
  g_assert_cmpstr (after, ==, mem_sum);
  g_clear_error (&r.error);
  /* a VMM's process outlives its object (as VMs outlive smolvmd) */
  smolvm_vmm_terminate_async (restored, on_terminated, &gone);
  wait_for (&gone);
}

/* QEMU here (7.2) posing as one with the memory backend option "rom" (8.1
 * and later): it logs its arguments, then drops readonly=on,rom=off, which
 * 7.2 cannot do, and runs. */
static const gchar rom_wrapper[] =
  "#!/bin/sh\n"
  "real='%s'\n"
  "log='%s'\n"
  "case \"$*\" in\n"
  "*memory-backend-file,help*)\n"
  "  \"$real\" \"$@\"\n"
  "  echo '  rom=<OnOffAuto>        - Whether to create Read Only Memory (ROM)'\n"
  "  exit 0 ;;\n"
  "esac\n"
  "i=0\n"
  "for a in \"$@\"; do\n"
  "  [ $i -eq 0 ] && set --\n"
  "  i=$((i + 1))\n"
  "  printf '%%s\\n' \"$a\" >> \"$log\"\n"
  "  set -- \"$@\" \"${a%%,readonly=on,rom=off}\"\n"
  "done\n"
  "exec \"$real\" \"$@\"\n";

/* The -object arguments the wrapper saw, in order. */
static GPtrArray *
logged_ram_objects (const gchar *log)
{
  g_autofree gchar *contents = NULL;
  g_auto(GStrv) lines = NULL;
  GPtrArray *objects = g_ptr_array_new_with_free_func (g_free);

  g_assert_true (g_file_get_contents (log, &contents, NULL, NULL));
  lines = g_strsplit (contents, "\n", -1);
  for (gsize i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], "memory-backend-file,"))
      g_ptr_array_add (objects, g_strdup (lines[i]));
  return objects;
}

static void
test_readonly_rom (Fixture *f, gconstpointer data)
{
  g_autofree gchar *wrapper = NULL, *log = NULL, *script = NULL, *vmstate = NULL, *mem = NULL;
  g_autofree gchar *booted = NULL, *restored_object = NULL;
  g_autoptr(SmolvmVmm) restored = NULL;
  g_autoptr(GPtrArray) objects = NULL;
  g_autoptr(GError) error = NULL;
  Result load = { 0 };
  gboolean gone = FALSE;

  if (f->vmm == NULL)
    return;
  wrapper = g_build_filename (f->dir, "qemu-rom", NULL);
  log = g_build_filename (f->dir, "qemu-rom.log", NULL);
  script = g_strdup_printf (rom_wrapper, smolvm_vmm_get_binary (f->vmm), log);
  g_assert_true (g_file_set_contents (wrapper, script, -1, &error));
  g_assert_cmpint (g_chmod (wrapper, 0755), ==, 0);
  g_assert_true (smolvm_qemu_probe_readonly_ram (wrapper));

  /* the fixture's VMM, on the wrapper */
  g_clear_object (&f->vmm);
  f->vmm = new_vmm (f, wrapper);
  vmstate = g_build_filename (f->dir, "vmstate.bin", NULL);
  mem = g_build_filename (f->dir, "mem.bin", NULL);
  save_booted (f, vmstate, mem);
  restored = new_vmm (f, wrapper);
  smolvm_vmm_snapshot_load_async (restored, vmstate, mem, TRUE, NULL, NULL, NULL, on_op, &load);
  run_op (&load);
  g_assert_no_error (load.error);
  g_assert_true (maps_file (smolvm_vmm_get_pid (restored), mem));

  objects = logged_ram_objects (log);
  g_assert_cmpuint (objects->len, ==, 2);
  booted = g_strdup_printf ("memory-backend-file,id=ram0,size=256M,mem-path=%s/ram,share=on",
                            f->dir);
  restored_object = g_strdup_printf (
    "memory-backend-file,id=ram0,size=256M,mem-path=%s,share=off,readonly=on,rom=off", mem);
  g_assert_cmpstr (g_ptr_array_index (objects, 0), ==, booted);
  g_assert_cmpstr (g_ptr_array_index (objects, 1), ==, restored_object);
  smolvm_vmm_terminate_async (restored, on_terminated, &gone);
  wait_for (&gone);
}

/* A QEMU that, for a load (-incoming), starts only once the file @release
 * exists; probes pass through. */
static const gchar held_wrapper[] =
  "#!/bin/sh\n"
  "case \"$*\" in\n"
  "*-incoming*) while [ ! -e '%s' ]; do sleep 0.05; done ;;\n"
  "esac\n"
  "exec '%s' \"$@\"\n";

typedef struct {
  SmolvmVmm *vmm;
  const gchar *vmstate, *mem;
  Result *result;
} LoadLater;

/* The first load has checked mem.bin and started its QEMU: the second
 * begins. */
static void
on_first_loading (SmolvmProgress *progress, gpointer user_data)
{
  LoadLater *later = user_data;

  if (later->vmm == NULL || !g_str_equal (smolvm_progress_get_phase (progress), "loading-state"))
    return;
  smolvm_vmm_snapshot_load_async (g_steal_pointer (&later->vmm), later->vmstate, later->mem, TRUE,
                                  NULL, NULL, NULL, on_op, later->result);
}

/* Clones: two loads of one 0400 mem.bin at the same time, the second
 * begun once the first has checked it, and its QEMU held until the first
 * is up. Both map it, and it is 0400 again at the end. As nobody (see
 * unprivileged), QEMU 7.2 opens it read-write on a loan of the owner's
 * write permission: the first one up must not end the loan while the
 * second QEMU has still to open the file. */
static void
test_loads_at_once (Fixture *f, gconstpointer data)
{
  g_autoptr(SmolvmProgress) progress = smolvm_progress_new ();
  g_autoptr(SmolvmVmm) first = NULL, second = NULL;
  g_autofree gchar *vmstate = NULL, *mem = NULL, *release = NULL, *wrapper = NULL;
  g_autofree gchar *script = NULL;
  g_auto(GStrv) dirs = g_new0 (gchar *, 3);
  g_autoptr(GError) error = NULL;
  Result loads[2] = { { 0 } };
  LoadLater later = { 0 };
  gboolean gone[2] = { FALSE };

  if (f->vmm == NULL)
    return;
  vmstate = g_build_filename (f->dir, "vmstate.bin", NULL);
  mem = g_build_filename (f->dir, "mem.bin", NULL);
  release = g_build_filename (f->dir, "release", NULL);
  wrapper = g_build_filename (f->dir, "qemu-held", NULL);
  script = g_strdup_printf (held_wrapper, release, smolvm_vmm_get_binary (f->vmm));
  g_assert_true (g_file_set_contents (wrapper, script, -1, &error));
  g_assert_cmpint (g_chmod (wrapper, 0755), ==, 0);
  save_booted (f, vmstate, mem);
  g_assert_cmpint (chmod (mem, 0400), ==, 0);
  for (guint i = 0; i < 2; i++) {
    g_autofree gchar *name = g_strdup_printf ("clone%u", i);
    g_autofree gchar *disk = g_build_filename (f->dir, "disk.ext4", NULL);
    g_autofree gchar *own_disk = NULL;

    dirs[i] = g_build_filename (f->dir, name, NULL);
    own_disk = g_build_filename (dirs[i], "disk.ext4", NULL);
    g_assert_cmpint (g_mkdir (dirs[i], 0700), ==, 0);
    g_assert_true (smolvm_copy_file_sparse (disk, own_disk, NULL, NULL, &error));
    g_assert_no_error (error);
  }
  first = new_vmm_in (dirs[0], smolvm_vmm_get_binary (f->vmm));
  second = new_vmm_in (dirs[1], wrapper);
  later = (LoadLater){ g_object_ref (second), vmstate, mem, &loads[1] };
  g_signal_connect (progress, "phase-changed", G_CALLBACK (on_first_loading), &later);
  smolvm_vmm_snapshot_load_async (first, vmstate, mem, TRUE, NULL, progress, NULL, on_op,
                                  &loads[0]);
  run_op (&loads[0]);
  g_assert_no_error (loads[0].error);
  g_assert_null (later.vmm);
  g_assert_true (g_file_set_contents (release, "", 0, &error));
  run_op (&loads[1]);
  g_assert_no_error (loads[1].error);
  g_assert_true (maps_file (smolvm_vmm_get_pid (first), mem));
  g_assert_true (maps_file (smolvm_vmm_get_pid (second), mem));
  assert_mode (mem, 0400);
  smolvm_vmm_terminate_async (first, on_terminated, &gone[0]);
  smolvm_vmm_terminate_async (second, on_terminated, &gone[1]);
  wait_for (&gone[0]);
  wait_for (&gone[1]);
}

static const gchar *self_path;

/* restored-save and loads-at-once again as nobody (smolvmd --session of a
 * user): QEMU 7.2 must open the 0400 mem.bin read-write, which only root
 * may as it is. */
static void
test_unprivileged (Fixture *f, gconstpointer data)
{
  g_autofree gchar *setpriv = g_find_program_in_path ("setpriv");
  g_autofree gchar *out = NULL;
  g_autoptr(GError) error = NULL;
  gint status = 0;

  if (f->vmm == NULL)
    return;
  if (geteuid () != 0 || setpriv == NULL) {
    g_test_skip ("not root (restored-save runs unprivileged already), or no setpriv");
    return;
  }
  g_assert_true (g_spawn_sync (NULL,
                               (gchar *[]){ setpriv, "--reuid=65534", "--regid=65534",
                                            "--clear-groups", (gchar *) self_path, "-p",
                                            "/vmm-qemu/restored-save", "-p",
                                            "/vmm-qemu/loads-at-once", NULL },
                               NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out, NULL, &status,
                               &error));
  g_assert_no_error (error);
  g_test_message ("as nobody:\n%s", out);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  g_assert_nonnull (strstr (out, "ok 1 /vmm-qemu/restored-save"));
  g_assert_nonnull (strstr (out, "ok 2 /vmm-qemu/loads-at-once"));
}

int
main (int argc, char **argv)
{
  self_path = argv[0];
  g_test_init (&argc, &argv, NULL);
  smolvm_error_quark ();
#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/vmm-qemu/cancel-create", test_cancel_create);
  ADD ("/vmm-qemu/cancel-load", test_cancel_load);
  ADD ("/vmm-qemu/restored-save", test_restored_save);
  ADD ("/vmm-qemu/readonly-rom", test_readonly_rom);
  ADD ("/vmm-qemu/loads-at-once", test_loads_at_once);
  ADD ("/vmm-qemu/unprivileged", test_unprivileged);
#undef ADD
  return g_test_run ();
}
