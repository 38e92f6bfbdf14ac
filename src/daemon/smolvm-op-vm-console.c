/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <gio/gunixfdlist.h>

#include "smolvm-authority.h"
#include "smolvm-call.h"
#include "smolvm-error-map.h"
#include "smolvm-ops.h"
#include "smolvm-registry.h"

/* OpenConsoleLog: smolvmd opens the console log for the caller, whose own
 * rights need not reach its runtime files; polkit decides who may. */
typedef struct {
  SmolvmCall call;
  SmolvmVm *vm;
} VmConsole;

static void
vm_console_clear (VmConsole *op)
{
  g_clear_object (&op->vm);
}

static void
vm_console_run (SmolvmCall *call)
{
  VmConsole *op = (VmConsole *) call;
  const gchar *id = smolvm_vm_get_id (op->vm);
  const gchar *path = smolvm_dbus_vm_get_console_log_path (SMOLVM_DBUS_VM (op->vm));
  g_autoptr(GUnixFDList) fds = NULL;
  g_autoptr(GError) error = NULL;
  int fd, index;

  if (smolvm_registry_lookup_vm (call->ctx->registry, id) != op->vm) {
    smolvm_call_fail_literal (call, SMOLVM_ERROR_NOT_FOUND, "VM '%s' not found", id);
    return;
  }
  /* O_NOFOLLOW: the file is ours; a link in its place is not */
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT)
      smolvm_call_fail_literal (call, SMOLVM_ERROR_NOT_FOUND,
                                "VM '%s' has not written anything on its console yet", id);
    else {
      smolvm_error_set_errno (&error, errno, "Cannot open %s", path);
      smolvm_call_fail (call, g_steal_pointer (&error));
    }
    return;
  }
  fds = g_unix_fd_list_new ();
  index = g_unix_fd_list_append (fds, fd, &error);
  close (fd);
  if (index < 0) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  /* the complete function takes the invocation's reference */
  smolvm_dbus_vm_complete_open_console_log (SMOLVM_DBUS_VM (op->vm),
                                            smolvm_call_take_invocation (call), fds,
                                            g_variant_new_handle (index));
  smolvm_call_done (call);
}

void
smolvm_op_vm_console (SmolvmVm *vm, GDBusMethodInvocation *invocation, GVariant *options)
{
  VmConsole *op = smolvm_call_new0 (VmConsole, smolvm_vm_get_context (vm), invocation,
                                    vm_console_clear);
  g_autoptr(GError) error = NULL;

  op->vm = g_object_ref (vm);
  if (!smolvm_call_check_options (options, (const gchar *[]){ NULL }, &error)) {
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  smolvm_call_authorize (&op->call, SMOLVM_ACTION_VM_CONSOLE, smolvm_vm_get_id (vm), NULL,
                         "console", vm_console_run);
}
