/*
 * sink_loader.c - dlopen() of sink modules with an ABI check. See
 * sink_loader.h.
 */
#include "sink_loader.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct loaded_module {
    char *type;
    void *handle;
    const lf_sink_ops *ops;
} loaded_module;

struct sink_registry {
    pthread_mutex_t lock;
    loaded_module *mods;
    size_t n;
};

/* The members a host of ABI 1 needs; a table shorter than this is not
 * usable whatever its version says. */
#define OPS_MIN_SIZE (offsetof(lf_sink_ops, destroy) + sizeof(void *))

sink_registry *sink_registry_new(void)
{
    sink_registry *r = calloc(1, sizeof *r);
    if (r)
        pthread_mutex_init(&r->lock, NULL);
    return r;
}

void sink_registry_free(sink_registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n; i++) {
        free(reg->mods[i].type);
        /* Under LeakSanitizer an unloaded module's allocations show as
           leaks without symbols; unloading at exit is still right. */
        dlclose(reg->mods[i].handle);
    }
    free(reg->mods);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

int sink_ops_check(const lf_sink_ops *ops, const char *path, char *err,
                   size_t errlen)
{
    if (!ops) {
        snprintf(err, errlen, "%s: %s() returned NULL", path,
                 LF_SINK_ENTRY_SYMBOL);
        return -1;
    }
    if (ops->abi_version != LF_SINK_ABI_VERSION) {
        snprintf(err, errlen,
                 "%s: not binary compatible: module ABI version %u, agent "
                 "ABI version %u",
                 path, ops->abi_version, LF_SINK_ABI_VERSION);
        return -1;
    }
    if (ops->struct_size < OPS_MIN_SIZE) {
        snprintf(err, errlen,
                 "%s: not binary compatible: ops table of %u bytes, agent "
                 "needs at least %zu (ABI version %u)",
                 path, ops->struct_size, (size_t)OPS_MIN_SIZE,
                 LF_SINK_ABI_VERSION);
        return -1;
    }
    if (!ops->name || !ops->create || !ops->deliver || !ops->destroy) {
        snprintf(err, errlen,
                 "%s: ops table lacks name, create, deliver or destroy", path);
        return -1;
    }
    for (size_t i = 0; i < ops->n_config_keys; i++) {
        const lf_conf_key *k = &ops->config_keys[i];
        if (!k->name || k->type < LF_CONF_BOOL || k->type > LF_CONF_STRLIST ||
            (k->type == LF_CONF_ENUM && !k->enum_values)) {
            snprintf(err, errlen, "%s: config key #%zu is malformed", path, i);
            return -1;
        }
    }
    return 0;
}

static int type_name_ok(const char *type)
{
    if (!*type || strlen(type) > 64)
        return 0;
    for (const char *p = type; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return 0;
    return 1;
}

const lf_sink_ops *sink_registry_get(sink_registry *reg, const char *dir,
                                     const char *type, char *err, size_t errlen)
{
    const lf_sink_ops *ops = NULL;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n; i++)
        if (strcmp(reg->mods[i].type, type) == 0) {
            ops = reg->mods[i].ops;
            goto out;
        }
    /* The type becomes part of a path: keep it to a safe alphabet. */
    if (!type_name_ok(type)) {
        snprintf(err, errlen,
                 "sink type '%s' is not a valid module name ([a-z0-9_])", type);
        goto out;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/lf_sink_%s.so", dir, type);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "cannot load sink module %s: %s", path,
                 dlerror());
        goto out;
    }
    lf_sink_entry_fn entry;
    /* POSIX blesses this conversion of dlsym's result. */
    *(void **)(&entry) = dlsym(h, LF_SINK_ENTRY_SYMBOL);
    if (!entry) {
        snprintf(err, errlen, "%s: missing symbol %s (not a logferry sink?)",
                 path, LF_SINK_ENTRY_SYMBOL);
        dlclose(h);
        goto out;
    }
    const lf_sink_ops *o = entry();
    if (sink_ops_check(o, path, err, errlen) != 0) {
        dlclose(h);
        goto out;
    }
    if (strcmp(o->name, type) != 0) {
        snprintf(err, errlen, "%s: module calls itself '%s', expected '%s'",
                 path, o->name, type);
        dlclose(h);
        goto out;
    }
    loaded_module *m = realloc(reg->mods, (reg->n + 1) * sizeof *m);
    char *t = strdup(type);
    if (!m || !t) {
        if (m)
            reg->mods = m;
        free(t);
        dlclose(h);
        snprintf(err, errlen, "out of memory loading %s", path);
        goto out;
    }
    reg->mods = m;
    reg->mods[reg->n++] = (loaded_module){t, h, o};
    ops = o;
out:
    pthread_mutex_unlock(&reg->lock);
    return ops;
}
