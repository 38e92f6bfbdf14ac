/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "smolvm-context.h"
#include "smolvm-job.h"

G_BEGIN_DECLS

typedef struct _SmolvmCall SmolvmCall;
typedef void (*SmolvmCallFunc) (SmolvmCall *call);

/* One D-Bus call in flight: what every operation shares. An operation's
 * own typed state starts with this (SmolvmCall base; then its fields), is
 * made by smolvm_call_new() and ends with exactly one smolvm_call_return()
 * or smolvm_call_fail(), which reply, complete the Job if there is one and
 * free the state (@clear frees the operation's own fields). */
struct _SmolvmCall {
  SmolvmContext *ctx;
  GDBusMethodInvocation *invocation; /* the handler's reference */
  guint32 uid;                       /* of the caller, once authorized */
  SmolvmJob *job;                    /* for long work, from smolvm_call_start_job() */
  gchar *cancelled_summary;          /* what a cancelled call tells, e.g. "... not created" */
  SmolvmCallFunc run;
  SmolvmCallFunc clear;
  /* the end, held while the record writer flushes (see smolvm-call.c) */
  GVariant *reply;
  GError *reply_error;
};

gpointer smolvm_call_new (gsize size, SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                          SmolvmCallFunc clear);
#define smolvm_call_new0(Type, ctx, invocation, clear) \
  ((Type *) smolvm_call_new (sizeof (Type), (ctx), (invocation), (SmolvmCallFunc) (clear)))

/* Unknown keys and non-boolean values are InvalidArgument: nothing a
 * caller asks for is silently ignored. */
gboolean smolvm_call_check_options (GVariant *options, const gchar *const *known, GError **error);
/* The same for options of other types: a table ending with a NULL key. */
typedef struct {
  const gchar *key;
  const gchar *type; /* a GVariant type string */
} SmolvmCallOption;
gboolean smolvm_call_check_typed_options (GVariant *options, const SmolvmCallOption *known,
                                          GError **error);
gboolean smolvm_call_option_bool (GVariant *options, const gchar *key);
/* The descriptor a handle (h) @handle names in the message's @fd_list, as
 * a new descriptor the caller owns; -1 and InvalidArgument naming @what if
 * there is none. */
int smolvm_call_take_fd (GUnixFDList *fd_list, GVariant *handle, const gchar *what,
                         GError **error);

/* The single authorization point of every state-changing call: polkit
 * (through the authority) with the details, then the caller's uid; @run
 * follows, or the call fails and nothing changed. */
void smolvm_call_authorize (SmolvmCall *call, const gchar *action_id, const gchar *vm_id,
                            const gchar *snapshot_id, const gchar *verb, SmolvmCallFunc run);

/* Publishes a Job for the work from here on, working on the objects at the
 * paths that follow (NULL-terminated). @cancelable: whether the work can
 * be rolled back at all. */
SmolvmJob *smolvm_call_start_job (SmolvmCall *call, const gchar *operation,
                                  const gchar *action_id, gboolean cancelable, ...)
  G_GNUC_NULL_TERMINATED;
/* The same with the paths as an array (NULL-terminated). */
SmolvmJob *smolvm_call_start_job_on (SmolvmCall *call, const gchar *operation,
                                     const gchar *action_id, gboolean cancelable,
                                     const gchar *const *object_paths);
/* The Job's progress and cancellable, or NULL without one. */
SmolvmProgress *smolvm_call_get_progress (SmolvmCall *call);
GCancellable *smolvm_call_get_cancellable (SmolvmCall *call);
void smolvm_call_set_phase (SmolvmCall *call, const gchar *phase);
/* A rollback starts: the Job can no longer be cancelled (a Cancel now
 * would only hide the real error), and its phase says so unless it is
 * cancelling already. */
void smolvm_call_begin_rollback (SmolvmCall *call);
/* Removes the record directory @dir (smolvm_store_discard_async) once the
 * record writer has written what was queued before, so that no write of
 * its record lands there meanwhile; @callback gets the store's result
 * (smolvm_store_discard_finish). Nothing waits on the calling thread. */
void smolvm_call_discard_record_dir (SmolvmCall *call, const gchar *dir,
                                     GAsyncReadyCallback callback, gpointer user_data);
/* FALSE and Cancelled once the Job was cancelled: checked between steps. */
gboolean smolvm_call_check_cancelled (SmolvmCall *call, GError **error);

/* Every error leaves as org.smolvm.Error.*, never as UnmappedGError; a
 * cancelled job's as Cancelled. Takes @error. */
void smolvm_call_fail (SmolvmCall *call, GError *error);
void smolvm_call_fail_literal (SmolvmCall *call, gint code, const gchar *format, ...)
  G_GNUC_PRINTF (3, 4);
void smolvm_call_return (SmolvmCall *call, GVariant *value);
/* For a reply the operation sent itself (one that carries descriptors):
 * takes the invocation for it, then smolvm_call_done() ends the call. */
GDBusMethodInvocation *smolvm_call_take_invocation (SmolvmCall *call);
void smolvm_call_done (SmolvmCall *call);

G_END_DECLS
