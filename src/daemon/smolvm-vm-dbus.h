/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "smolvm-generated.h"

G_BEGIN_DECLS

/* org.smolvm.VM's methods, implemented by SmolvmVm (the D-Bus face of the
 * model in smolvm-vm.c): each starts its operation. */
void smolvm_vm_dbus_iface_init (SmolvmDbusVmIface *iface);

G_END_DECLS
