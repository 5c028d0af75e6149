/*
 * sink_loader.h - finds sink modules and checks their ABI.
 *
 * A module of type T is the file <module_dir>/lf_sink_T.so exporting
 * LF_SINK_ENTRY_SYMBOL. Before anything else of the table is read, the
 * loader checks abi_version and struct_size and refuses a mismatch with a
 * message naming the file and both versions. Loaded modules stay loaded
 * until the registry is freed (a module is never unloaded while an
 * instance could still run its code).
 */
#ifndef LOGFERRY_SINK_LOADER_H
#define LOGFERRY_SINK_LOADER_H

#include <stddef.h>

#include "logferry/sink.h"

typedef struct sink_registry sink_registry;

/* A new, empty registry; NULL on allocation failure. */
sink_registry *sink_registry_new(void);

/* dlclose every module. Accepts NULL. Call only once no instance lives. */
void sink_registry_free(sink_registry *reg);

/* The ops of module `type`, loading it from `dir` on first use. The table
 * is owned by the module and valid until sink_registry_free(). On failure
 * returns NULL and writes the reason (naming the file) into err. */
const lf_sink_ops *sink_registry_get(sink_registry *reg, const char *dir,
                                     const char *type, char *err,
                                     size_t errlen);

/* Check a table as the loader does (exposed for tests). `path` is only
 * used in the message. Returns 0 or -1 with err set. */
int sink_ops_check(const lf_sink_ops *ops, const char *path, char *err,
                   size_t errlen);

#endif
