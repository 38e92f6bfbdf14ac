/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "smolvm-generated.h"

G_BEGIN_DECLS

#define SMOLVM_TYPE_MANAGER (smolvm_manager_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmManager, smolvm_manager, SMOLVM, MANAGER, SmolvmDbusManagerSkeleton)

typedef struct {
  gboolean session;        /* per-user daemon on the session bus */
  gchar *state_dir;
  gchar *runtime_dir;
  gchar *firecracker_bin;  /* NULL: not available */
  gchar *qemu_bin;         /* NULL: not available */
  gchar *qemu_machine;     /* its versioned q35 machine type */
  gchar *network_pool;     /* CIDR */
  gchar *default_kernel;   /* absolute; NULL: none */
  gchar *default_initrd;
  gchar *default_rootfs;
  gchar *default_backend;
  gchar *default_accel;
  gchar *registry_auth_file;         /* NULL: none */
  gchar **insecure_registries;       /* NULL-terminated, may be NULL */
} SmolvmManagerOptions;

/* Loads every VM and snapshot record from the state directory. */
SmolvmManager *smolvm_manager_new (const SmolvmManagerOptions *options, GError **error);

/* Publishes the manager and all objects on @connection. */
gboolean smolvm_manager_export (SmolvmManager *self, GDBusConnection *connection, GError **error);

G_END_DECLS
