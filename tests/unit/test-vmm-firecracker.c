/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

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
  g_autofree gchar *kernel = NULL, *rootfs = NULL, *console = NULL, *request_log = NULL;
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
  request_log = g_build_filename (f->dir, "requests.log", NULL);
  g_assert_true (g_file_set_contents (kernel, "\x7f" "ELF kernel", -1, NULL));
  g_assert_true (g_file_set_contents (rootfs, "rootfs", -1, NULL));
  config_dict = g_variant_ref_sink (g_variant_new_parsed (
    "{'vm_id': <'fc'>, 'kernel_path': <%s>, 'rootfs_path': <%s>, 'mem_size_mib': <uint32 128>}",
    kernel, rootfs));
  config = smolvm_vm_config_new_from_variant (config_dict, FALSE, &error);
  g_assert_no_error (error);
  g_setenv ("FC_EMULATOR_SNAPSHOT_DELAY_MS", G_STRINGIFY (SNAPSHOT_DELAY_MS), TRUE);
  g_setenv ("FC_EMULATOR_TICK_MS", "50", TRUE);
  g_setenv ("FC_EMULATOR_REQUEST_LOG", request_log, TRUE);
  f->vmm = smolvm_vmm_new (SMOLVM_TYPE_FIRECRACKER, "fc", config, NULL, rootfs, f->dir, console,
                           emulator);
}

static void
remove_tree (const gchar *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const gchar *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
    g_autofree gchar *child = g_build_filename (path, name, NULL);

    if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
      remove_tree (child);
    else
      g_unlink (child);
  }
  g_rmdir (path);
}

/* The emulator's requests go on to the log that the integration suite's
 * last test checks against the Swagger contract (SMOLVM_REQUEST_LOG). */
static void
keep_request_log (Fixture *f)
{
  const gchar *keep = g_getenv ("SMOLVM_REQUEST_LOG");
  g_autofree gchar *log = g_build_filename (f->dir, "requests.log", NULL);
  g_autofree gchar *contents = NULL;
  gsize length = 0;
  FILE *out;

  if (keep == NULL || !g_file_get_contents (log, &contents, &length, NULL))
    return;
  out = fopen (keep, "ae");
  g_assert_nonnull (out);
  g_assert_cmpuint (fwrite (contents, 1, length, out), ==, length);
  g_assert_cmpint (fclose (out), ==, 0);
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
  keep_request_log (f);
  remove_tree (f->dir);
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

/* ---- one snapshot, many VMs (clones) ---- */

static void
run_ok (SmolvmVmm *vmm, Result *r)
{
  wait_for (&r->done);
  g_assert_no_error (r->error);
  g_assert_true (r->ok);
  g_assert_true (smolvm_vmm_is_running (vmm));
}

static void
stop_vmm (SmolvmVmm *vmm)
{
  gboolean gone = FALSE;

  smolvm_vmm_terminate_async (vmm, on_terminated, &gone);
  wait_for (&gone);
}

/* A VMM of its own (runtime dir @name in the fixture's) for a VM with a
 * network interface on the TAP device @tap (the emulator opens none). */
static SmolvmVmm *
new_net_vmm (Fixture *f, const gchar *name, const gchar *tap)
{
  g_autofree gchar *run = g_build_filename (f->dir, name, NULL);
  g_autofree gchar *console = g_build_filename (run, "console.log", NULL);
  g_autoptr(GVariant) net = g_variant_ref_sink (
    g_variant_new_parsed ("{'tap_device': <%s>, 'guest_mac': <'06:00:ac:10:00:02'>}", tap));

  g_assert_cmpint (g_mkdir (run, 0700), ==, 0);
  return smolvm_vmm_new (SMOLVM_TYPE_FIRECRACKER, name, smolvm_vmm_get_config (f->vmm), net,
                         smolvm_vmm_get_disk_path (f->vmm), run, console,
                         smolvm_vmm_get_binary (f->vmm));
}

static gchar *
file_sha256 (const gchar *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GMappedFile) file = g_mapped_file_new (path, FALSE, &error);

  g_assert_no_error (error);
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256,
                                      (const guchar *) g_mapped_file_get_contents (file),
                                      g_mapped_file_get_length (file));
}

/* GET @path on the API socket of @vmm's process: the 200 answer's JSON. */
static JsonNode *
api_get (SmolvmVmm *vmm, const gchar *path)
{
  g_autofree gchar *socket_path =
    g_build_filename (smolvm_vmm_get_runtime_dir (vmm), "firecracker.sock", NULL);
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new (socket_path);
  g_autoptr(SoupSession) session =
    soup_session_new_with_options ("remote-connectable", address, NULL);
  g_autofree gchar *uri = g_strconcat ("http://localhost", path, NULL);
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", uri);
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = soup_session_send_and_read (session, msg, NULL, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (soup_message_get_status (msg), ==, SOUP_STATUS_OK);
  json_parser_load_from_data (parser, g_bytes_get_data (body, NULL),
                              (gssize) g_bytes_get_size (body), &error);
  g_assert_no_error (error);
  return json_parser_steal_root (parser);
}

/* "iface_id=host_dev_name" of each network interface @vmm's process has. */
static gchar *
api_ifaces (SmolvmVmm *vmm)
{
  g_autoptr(JsonNode) config = api_get (vmm, "/vm/config");
  JsonArray *ifaces =
    json_object_get_array_member (json_node_get_object (config), "network-interfaces");
  g_autoptr(GString) out = g_string_new (NULL);

  for (guint i = 0; i < json_array_get_length (ifaces); i++) {
    JsonObject *iface = json_array_get_object_element (ifaces, i);

    g_string_append_printf (out, "%s%s=%s", i > 0 ? " " : "",
                            json_object_get_string_member (iface, "iface_id"),
                            json_object_get_string_member (iface, "host_dev_name"));
  }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* The access mode (O_RDONLY...) of each descriptor process @pid holds on
 * @path, from /proc/PID/fdinfo: how the VMM really opened it, which the
 * file's own mode cannot show when the test runs as root. */
static gchar *
open_modes (GPid pid, const gchar *path)
{
  static const gchar *const access_names[] = {
    [O_RDONLY] = "r", [O_WRONLY] = "w", [O_RDWR] = "rw", [O_ACCMODE] = "?",
  };
  g_autofree gchar *fd_dir = g_strdup_printf ("/proc/%d/fd", (int) pid);
  g_autoptr(GDir) dir = g_dir_open (fd_dir, 0, NULL);
  g_autoptr(GString) out = g_string_new (NULL);
  const gchar *name;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL) {
    g_autofree gchar *link = g_build_filename (fd_dir, name, NULL);
    g_autofree gchar *target = g_file_read_link (link, NULL);
    g_autofree gchar *info_path = NULL;
    g_autofree gchar *info = NULL;
    const gchar *flags;
    guint64 value;

    if (g_strcmp0 (target, path) != 0)
      continue;
    info_path = g_strdup_printf ("/proc/%d/fdinfo/%s", (int) pid, name);
    g_assert_true (g_file_get_contents (info_path, &info, NULL, NULL));
    flags = strstr (info, "flags:");
    g_assert_nonnull (flags);
    value = g_ascii_strtoull (flags + strlen ("flags:"), NULL, 8);
    g_string_append_printf (out, "%s%s", out->len > 0 ? " " : "", access_names[value & O_ACCMODE]);
  }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

static gboolean
on_poll_timer (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Waits (the meson timeout bounds it) until the guest of @vmm has ticked
 * @ticks times since its snapshot load: it has written its memory. */
static void
wait_ticks_after_load (SmolvmVmm *vmm, guint ticks)
{
  const gchar *console = smolvm_vmm_get_console_log_path (vmm);

  for (;;) {
    g_autofree gchar *log = NULL;
    const gchar *p;
    guint seen = 0;
    gboolean later = FALSE;

    g_assert_true (smolvm_vmm_is_running (vmm));
    if (g_file_get_contents (console, &log, NULL, NULL) &&
        (p = strstr (log, "fc-emulator: snapshot loaded\n")) != NULL) {
      while ((p = strstr (p, "\ntick ")) != NULL) {
        seen++;
        p++;
      }
    }
    if (seen >= ticks)
      return;
    g_timeout_add (20, on_poll_timer, &later);
    wait_for (&later);
  }
}

/* The bodies of the PUT /snapshot/load requests in the fixture's emulator
 * request log, in order. */
static GPtrArray *
logged_loads (Fixture *f)
{
  g_autofree gchar *path = g_build_filename (f->dir, "requests.log", NULL);
  g_autofree gchar *contents = NULL;
  g_auto(GStrv) lines = NULL;
  GPtrArray *loads = g_ptr_array_new_with_free_func ((GDestroyNotify) json_node_unref);

  g_assert_true (g_file_get_contents (path, &contents, NULL, NULL));
  lines = g_strsplit (contents, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++) {
    g_autoptr(JsonParser) parser = json_parser_new ();
    JsonObject *request;

    if (lines[i][0] == '\0')
      continue;
    g_assert_true (json_parser_load_from_data (parser, lines[i], -1, NULL));
    request = json_node_get_object (json_parser_get_root (parser));
    if (g_str_equal (json_object_get_string_member (request, "method"), "PUT") &&
        g_str_equal (json_object_get_string_member (request, "path"), "/snapshot/load"))
      g_ptr_array_add (loads, json_node_copy (json_object_get_member (request, "body")));
  }
  return loads;
}

/* "iface_id=host_dev_name" of each network override of a logged load body,
 * or "(none)" without the member. */
static gchar *
logged_overrides (JsonNode *body)
{
  JsonObject *load = json_node_get_object (body);
  JsonArray *overrides;
  g_autoptr(GString) out = g_string_new (NULL);

  if (!json_object_has_member (load, "network_overrides"))
    return g_strdup ("(none)");
  overrides = json_object_get_array_member (load, "network_overrides");
  for (guint i = 0; i < json_array_get_length (overrides); i++) {
    JsonObject *o = json_array_get_object_element (overrides, i);

    g_string_append_printf (out, "%s%s=%s", i > 0 ? " " : "",
                            json_object_get_string_member (o, "iface_id"),
                            json_object_get_string_member (o, "host_dev_name"));
  }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* One snapshot loaded into two VMMs at once, each on its own TAP device
 * (network_overrides), both from the one mem.bin: read-only on disk, open
 * read-only by both, and unchanged although both guests run on. A plain
 * load after them sends no override and keeps the snapshot's TAP. */
static void
test_load_clones (Fixture *f, gconstpointer data)
{
  const gchar *taps[] = { "svclone0", "svclone1" };
  g_autoptr(SmolvmVmm) source = NULL;
  g_autoptr(SmolvmVmm) plain = NULL;
  SmolvmVmm *clones[G_N_ELEMENTS (taps)] = { NULL };
  Result loads[G_N_ELEMENTS (taps)] = { { 0 } };
  g_autofree gchar *vmstate = NULL, *mem = NULL, *mem_real = NULL, *sha_before = NULL;
  g_autofree gchar *sha_after = NULL, *plain_ifaces = NULL;
  g_autoptr(GPtrArray) logged = NULL;
  Result r = { 0 };
  struct stat st;

  if (f->vmm == NULL)
    return;
  /* a snapshot of a VM on TAP svsource */
  source = new_net_vmm (f, "source", "svsource");
  smolvm_vmm_boot_async (source, NULL, on_op, &r);
  run_ok (source, &r);
  memset (&r, 0, sizeof r);
  smolvm_vmm_set_paused_async (source, TRUE, NULL, on_op, &r);
  run_ok (source, &r);
  g_unsetenv ("FC_EMULATOR_SNAPSHOT_DELAY_MS");
  vmstate = g_build_filename (f->dir, "vmstate.bin", NULL);
  mem = g_build_filename (f->dir, "mem.bin", NULL);
  memset (&r, 0, sizeof r);
  smolvm_vmm_snapshot_create_async (source, vmstate, mem, NULL, NULL, on_op, &r);
  run_ok (source, &r);
  stop_vmm (source);
  /* as a committed snapshot's: nobody may write them */
  g_assert_cmpint (g_chmod (vmstate, 0400), ==, 0);
  g_assert_cmpint (g_chmod (mem, 0400), ==, 0);
  sha_before = file_sha256 (mem);
  mem_real = realpath (mem, NULL);
  g_assert_nonnull (mem_real);

  /* both loads under way at once */
  for (guint i = 0; i < G_N_ELEMENTS (taps); i++) {
    g_autofree gchar *name = g_strdup_printf ("clone%u", i);

    clones[i] = new_net_vmm (f, name, taps[i]);
    smolvm_vmm_snapshot_load_async (clones[i], vmstate, mem, TRUE, taps[i], NULL, NULL, on_op,
                                    &loads[i]);
  }
  for (guint i = 0; i < G_N_ELEMENTS (taps); i++)
    run_ok (clones[i], &loads[i]);

  for (guint i = 0; i < G_N_ELEMENTS (taps); i++) {
    g_autofree gchar *expected = g_strdup_printf ("eth0=%s", taps[i]);
    g_autofree gchar *ifaces = api_ifaces (clones[i]);
    g_autofree gchar *modes = open_modes (smolvm_vmm_get_pid (clones[i]), mem_real);

    g_assert_cmpstr (ifaces, ==, expected);
    /* the guest keeps mem.bin open (and mapped) while it runs */
    g_assert_cmpstr (modes, ==, "r");
    wait_ticks_after_load (clones[i], 3);
  }
  sha_after = file_sha256 (mem);
  g_assert_cmpstr (sha_after, ==, sha_before);
  g_assert_cmpint (g_stat (mem, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, 0400);

  logged = logged_loads (f);
  g_assert_cmpuint (logged->len, ==, G_N_ELEMENTS (taps));
  {
    g_autofree gchar *a = logged_overrides (g_ptr_array_index (logged, 0));
    g_autofree gchar *b = logged_overrides (g_ptr_array_index (logged, 1));
    /* the two requests may reach the log in either order */
    g_autofree gchar *both = g_strcmp0 (a, b) < 0 ? g_strdup_printf ("%s %s", a, b)
                                                  : g_strdup_printf ("%s %s", b, a);

    g_assert_cmpstr (both, ==, "eth0=svclone0 eth0=svclone1");
  }
  for (guint i = 0; i < G_N_ELEMENTS (taps); i++) {
    stop_vmm (clones[i]);
    g_clear_object (&clones[i]);
  }

  /* a plain restore: no override sent, the saved TAP device */
  plain = new_net_vmm (f, "plain", "svsource");
  memset (&r, 0, sizeof r);
  smolvm_vmm_snapshot_load_async (plain, vmstate, mem, FALSE, NULL, NULL, NULL, on_op, &r);
  run_ok (plain, &r);
  plain_ifaces = api_ifaces (plain);
  g_assert_cmpstr (plain_ifaces, ==, "eth0=svsource");
  g_clear_pointer (&logged, g_ptr_array_unref);
  logged = logged_loads (f);
  g_assert_cmpuint (logged->len, ==, G_N_ELEMENTS (taps) + 1);
  {
    g_autofree gchar *last = logged_overrides (g_ptr_array_index (logged, logged->len - 1));

    g_assert_cmpstr (last, ==, "(none)");
  }
  stop_vmm (plain);
}

int
main (int argc, char **argv)
{
  const gchar *keep = g_getenv ("SMOLVM_REQUEST_LOG");

  g_test_init (&argc, &argv, NULL);
  smolvm_error_quark ();
  /* a fresh log of this run's requests */
  if (keep != NULL) {
    g_autofree gchar *dir = g_path_get_dirname (keep);

    g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
    g_assert_true (g_file_set_contents (keep, "", 0, NULL));
  }
#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/vmm-firecracker/cancel-snapshot-create", test_cancel_snapshot_create);
  ADD ("/vmm-firecracker/cancelled-pause", test_cancelled_pause);
  ADD ("/vmm-firecracker/cancel-boot", test_cancel_boot);
  ADD ("/vmm-firecracker/process-exits-early", test_process_exits_early);
  ADD ("/vmm-firecracker/load-clones", test_load_clones);
#undef ADD
  return g_test_run ();
}
