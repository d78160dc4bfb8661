/*
 * none.c - the Redis store's place in a build without hiredis
 * (-DRL_REDIS=OFF): addresses are still recognised, so users get a clear
 * error instead of a database file named "redis:".
 */
#include "store.h"

#include <string.h>

int rl_store_is_redis(const char *path)
{
    return strncmp(path, "redis://", 8) == 0 || strncmp(path, "unix://", 7) == 0;
}

int rl_store_redis_open(rl_store **out, const char *url, const rl_store_config *c, char *err)
{
    (void)url;
    (void)c;
    *out = NULL;
    return rl_seterr(err, RL_EINVAL, "this librl was built without Redis support (RL_REDIS=OFF)");
}
