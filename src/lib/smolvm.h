/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libsmolvm-1: the client library of smolvmd. pkg-config --cflags --libs smolvm-1 */

#include "smolvm-client.h"
#include "smolvm-enum-types.h"
#include "smolvm-error.h"
#include "smolvm-snapshot-info.h"
#include "smolvm-vm-info.h"
