/*
 * none.c - the Redis store's place in a build without hiredis
 * (-DRL_REDIS=OFF): the registry (store/registry.c) still sends Redis
 * addresses here, so users get a clear error instead of a database file
 * named "redis:".
 */
#include "store.h"

int rl_store_redis_open(rl_store **out, const char *url, const rl_store_config *c, char *err)
{
    (void)url;
    (void)c;
    *out = NULL;
    return rl_seterr(err, RL_EINVAL, "this librl was built without Redis support (RL_REDIS=OFF)");
}
