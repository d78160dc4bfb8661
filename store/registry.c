/*
 * registry.c - which store a path names: the one place that knows every
 * store's constructor and URL scheme.
 *
 * Guarantees: rl_open hands every path here, so a path means the same
 * store to every caller (library, rlctl, bindings); entries are tried
 * in order and the first match opens it; a path that no entry matches is a
 * SQLite database file, whatever it looks like. The Redis schemes stay
 * registered in a build without hiredis (redis/none.c), so such a path gets
 * a clear RL_EINVAL rather than a database file named "redis:".
 *
 * Adding a store: its constructor (rl_store_open_fn, declared in store.h)
 * and one line below.
 */
#include "store.h"

#include <string.h>

typedef struct rl_store_scheme {
    const char *prefix;
    int whole; /* the whole path must be prefix, not only its start */
    rl_store_open_fn open;
} rl_store_scheme;

static const rl_store_scheme schemes[] = {
    { ":memory:", 1, rl_store_mem_open },
    { "redis://", 0, rl_store_redis_open },
    { "unix://", 0, rl_store_redis_open }, /* Redis on a Unix socket */
};

int rl_store_open(rl_store **out, const char *path, const rl_store_config *c, char *err)
{
    size_t i, n;
    for (i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        n = strlen(schemes[i].prefix);
        if (strncmp(path, schemes[i].prefix, n) == 0 && (!schemes[i].whole || path[n] == '\0'))
            return schemes[i].open(out, path, c, err);
    }
    return rl_store_sqlite_open(out, path, c, err);
}
