/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "smolvm-generated.h"

G_BEGIN_DECLS

/* org.smolvm.Snapshot's methods, implemented by SmolvmSnapshot. */
void smolvm_snapshot_dbus_iface_init (SmolvmDbusSnapshotIface *iface);

G_END_DECLS
