/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _SmolvmStore SmolvmStore;
typedef struct _SmolvmRegistry SmolvmRegistry;
typedef struct _SmolvmAuthority SmolvmAuthority;
typedef struct _SmolvmNetwork SmolvmNetwork;
typedef struct _SmolvmRecordWriter SmolvmRecordWriter;

/* What every operation works with: the daemon's parts, set up once at
 * start-up by the manager, which owns them and outlives every VM, snapshot
 * and job (those keep a plain pointer to it). */
typedef struct {
  gboolean session;        /* a per-user --session daemon */
  gboolean network_default; /* VMs get networking unless they say otherwise */
  SmolvmStore *store;
  SmolvmRecordWriter *records; /* vm.json and snapshot.json, off the main loop */
  SmolvmRegistry *registry;
  SmolvmAuthority *authority;
  SmolvmNetwork *network;
  GHashTable *binaries; /* backend -> VMM binary */
  gchar *qemu_machine;  /* the versioned q35 of the QEMU binary */
  /* what CreateVM uses for images and backend a caller leaves out (the
   * admin's choice, read with the daemon's rights); NULL: none */
  gchar *default_kernel;
  gchar *default_initrd;
  gchar *default_rootfs;
  gchar *default_backend;
  gchar *default_accel;
  /* OCI registries: the admin's credentials file (containers auth.json
   * format; NULL: anonymous only) and the registries ("host:port") reached
   * over plain HTTP instead of TLS */
  gchar *registry_auth_file;
  gchar **insecure_registries;
} SmolvmContext;

G_END_DECLS
