/*
 * per_user.c - per-user limits taken from a request's context, with a
 * fallback key for requests that carry no user, and one global limit that
 * every request also counts against (user + global in one decision).
 *
 *   per_user [DATABASE]     (default: a temporary directory, removed at exit)
 *
 * Exits 0 when the limits behaved as the comments say, 1 otherwise.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw when built with -std=c11 */
#endif
#include <rl.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a server knows about a request when it has to decide. */
typedef struct request {
    const char *user_id; /* NULL: not signed in */
    const char *ip;      /* NULL: unknown (a Unix socket, a queue, ...) */
} request;

/* Decides one request against its caller's key and the global key
 * together: it passes only if both admit, and if one refuses neither is
 * charged, so a caller who is over their own limit does not eat into
 * everyone's quota. *decided_by names the key that decided.
 *
 * rl_key_for picks the most specific identity present: a signed-in user
 * gets a bucket of their own whatever address they come from, an anonymous
 * caller one per IP, and a request with neither falls back to "global"
 * alone, so it is still limited rather than let through. It also escapes
 * the values (':', '*', '%', control bytes...), so that a user called
 * "alice:x" or "*" can neither share nor match another caller's key. */
static int handle(rl *r, const request *req, rl_result *res, const char **decided_by)
{
    char key[RL_KEY_MAX + 1];
    const char *keys[2];
    rl_cost cost = { "requests", 1 };
    rl_key_ctx ctx;
    size_t nkeys = 2;
    int rc;
    memset(&ctx, 0, sizeof ctx);
    ctx.user = req->user_id;
    ctx.ip = req->ip;
    if ((rc = rl_key_for(key, sizeof key, &ctx)) != RL_OK)
        return rc;
    keys[0] = key;
    keys[1] = "global";
    if (strcmp(key, "global") == 0)
        nkeys = 1; /* a key may appear only once in a decision */
    rc = rl_acquire_keys(r, keys, nkeys, &cost, 1, res);
    *decided_by = strcmp(keys[res->key_index], "global") == 0 ? "global" : "caller";
    return rc;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    return remove(path);
}

static void remove_tree(const char *dir)
{
    if (nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "per_user: could not remove %s\n", dir);
}

/* Sends n requests from one caller; returns how many were admitted, or -1. */
static int burst_of(rl *r, const request *req, int n, int *refused_by_global)
{
    rl_result res;
    int i, admitted = 0;
    const char *by;
    for (i = 0; i < n; i++) {
        if (handle(r, req, &res, &by) != RL_OK) {
            fprintf(stderr, "per_user: %s\n", rl_errmsg(r));
            return -1;
        }
        admitted += res.allowed;
        if (!res.allowed && strcmp(by, "global") == 0)
            ++*refused_by_global;
    }
    return admitted;
}

int main(int argc, char **argv)
{
    /* Per caller: 3 at once, then 1/s. Everyone together: 8 at once. The
     * global key gets its own tier by assignment; every other key falls back
     * to the options' default limits. */
    rl_limit per_caller[] = { RL_PER_SECOND(1, 3) };
    rl_limit global[] = { RL_LIMIT("all", NULL, 8, RL_SECOND, 8) };
    static const request alice = { "alice", "10.0.0.1" }, bob = { "bob", "10.0.0.1" },
                         guest = { NULL, "10.0.0.9" }, nobody = { NULL, NULL },
                         carol = { "carol", NULL };
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    char dir[] = "/tmp/rl-per-user.XXXXXX", db[64];
    const char *path = argc > 1 ? argv[1] : db;
    int a, b, g, n, c, by_global = 0, ok;

    if (argc <= 1) {
        if (!mkdtemp(dir)) {
            perror("per_user: mkdtemp");
            return 1;
        }
        snprintf(db, sizeof db, "%s/rl.db", dir);
    }
    o.default_limits = per_caller;
    o.n_default_limits = 1;
    if (rl_open(&r, path, &o) != RL_OK || rl_tier_set(r, "global", global, 1) != RL_OK ||
        rl_key_assign(r, "global", "global") != RL_OK) {
        fprintf(stderr, "per_user: %s\n", rl_errmsg(r));
        rl_close(r);
        return 1;
    }

    /* alice and bob share an IP but not a bucket; the guest gets one for
     * its IP. 3 x 3 = 9 would pass on per-caller limits alone, but the
     * global limit stops the total at 8; the request with no identity has
     * only the global bucket, already empty. */
    a = burst_of(r, &alice, 5, &by_global);
    b = burst_of(r, &bob, 5, &by_global);
    g = burst_of(r, &guest, 5, &by_global);
    n = burst_of(r, &nobody, 5, &by_global);
    printf("admitted: alice %d, bob %d, ip 10.0.0.9 %d, no identity %d (of 5 each)\n", a, b, g, n);
    printf("refused by the global limit: %d\n", by_global);
    ok = a == 3 && b == 3 && g == 2 && n == 0 && a + b + g + n == 8 && by_global == 8;

    /* carol has room in her own bucket, but the global one is empty. */
    c = burst_of(r, &carol, 1, &by_global);
    printf("carol: %s (global bucket empty)\n", c == 1 ? "admitted" : "refused");
    ok &= c == 0;

    rl_close(r);
    if (argc <= 1)
        remove_tree(dir);
    printf("%s\n", ok ? "per_user: ok" : "per_user: FAILED");
    return ok ? 0 : 1;
}
