/*
 * graceful_degradation.c - what a program can do when rl says no, and when
 * rl itself cannot answer.
 *
 * When refused: (1) retry after exactly res.retry_after_ns; (2) queue with
 * rl_reserve, and give the reservation back with rl_cancel if the work is
 * dropped; (3) serve a cheaper fallback instead of waiting.
 * When the store fails (here: a read-only handle, whose deciding calls fail
 * with RL_EREADONLY): (4) fail closed refuses, (5) fail open admits and marks
 * the result degraded.
 *
 *   graceful_degradation [DATABASE]   (default: a temporary directory, removed at exit)
 *
 * Exits 0 when every step behaved as the comments say, 1 otherwise.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw, nanosleep when built with -std=c11 */
#endif
#include <rl.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    return remove(path);
}

static void remove_tree(const char *dir)
{
    if (nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "graceful_degradation: could not remove %s\n", dir);
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / RL_SECOND);
    ts.tv_nsec = (long)(ns % RL_SECOND);
    nanosleep(&ts, NULL);
}

static int check(int cond, const char *what)
{
    printf("  [%s] %s\n", cond ? "ok" : "FAILED", what);
    return cond;
}

/* Spends the whole bucket of a key so that the next call is refused. */
static void drain(rl *r, const char *key)
{
    rl_result res;
    do {
        if (rl_allow(r, key, 1, &res) != RL_OK)
            return;
    } while (res.allowed);
}

/* How long until the key's first limit admits one unit. */
static int64_t wait_of(rl *r, const char *key)
{
    rl_key_stats st;
    if (rl_stats(r, key, &st) != RL_OK || st.n_limits == 0)
        return -1;
    return st.limits[0].retry_after_ns;
}

/* (1) The answer says how long until the same request would pass: sleeping
 * exactly that long beats blind exponential back-off, and no other process
 * is hammered meanwhile. Bounded, so a long wait becomes an error instead. */
static int retry_after(rl *r)
{
    rl_result res;
    int tries;
    printf("1. refused: retry after res.retry_after_ns\n");
    drain(r, "job:retry");
    for (tries = 0; tries < 3; tries++) {
        if (rl_allow(r, "job:retry", 1, &res) != RL_OK) {
            fprintf(stderr, "%s\n", rl_errmsg(r));
            return 0;
        }
        if (res.allowed)
            break;
        printf("  refused by '%s', retrying in %lld ms\n", res.limit_name,
               (long long)(res.retry_after_ns / RL_MILLISECOND));
        sleep_ns(res.retry_after_ns);
    }
    return check(res.allowed && tries == 1, "admitted on the first retry");
}

/* (2) A reservation takes the units now and says when to act, so requests
 * queue in arrival order across every process. If the work is abandoned
 * before its time (the client hung up), rl_cancel returns the units, as far
 * as no later reservation was built on them. */
static int queue_and_cancel(rl *r)
{
    rl_reservation rv;
    int64_t before, after;
    int ok;
    printf("2. refused: queue with rl_reserve, give back with rl_cancel\n");
    drain(r, "job:queue");
    if (rl_reserve(r, "job:queue", 1, RL_SECOND, &rv) != RL_OK) {
        fprintf(stderr, "%s\n", rl_errmsg(r));
        return 0;
    }
    printf("  reserved: act in %lld ms\n", (long long)(rv.delay_ns / RL_MILLISECOND));
    ok = check(rv.ok && rv.delay_ns > 0, "queued behind the bucket");
    before = wait_of(r, "job:queue");
    /* ... the caller gives up before its turn ... */
    if (rl_cancel(r, &rv) != RL_OK) {
        fprintf(stderr, "%s\n", rl_errmsg(r));
        return 0;
    }
    after = wait_of(r, "job:queue");
    printf("  the next caller would wait %lld ms before the cancel, %lld ms after\n",
           (long long)(before / RL_MILLISECOND), (long long)(after / RL_MILLISECOND));
    /* One unit at 20/s is 50 ms of the bucket: that much came back. */
    ok &= check(before - after >= 40 * RL_MILLISECOND && before - after <= 60 * RL_MILLISECOND,
                "the cancelled unit went back to the bucket");
    return ok;
}

/* (3) When the expensive path is out of quota, a degraded but useful answer
 * is often better than a wait: a smaller model, a cached page, a summary. */
static int cheaper_fallback(rl *r)
{
    rl_result res;
    const char *served = NULL;
    printf("3. refused: serve a cheaper fallback\n");
    drain(r, "model:large");
    if (rl_allow(r, "model:large", 1, &res) == RL_OK && res.allowed)
        served = "large model";
    else if (rl_allow(r, "model:small", 1, &res) == RL_OK && res.allowed)
        served = "small model";
    else
        served = "cached answer";
    printf("  served by the %s\n", served);
    return check(strcmp(served, "small model") == 0, "fell back to the small model");
}

/* (4), (5) A read-only handle stands in for a store that fails: a disk
 * that went read-only, a permission change, a full disk. The deciding call
 * returns the error either way; the fail mode chooses what res.allowed
 * says, so a caller that only looks at res.allowed still does the chosen
 * thing. Fail closed protects what is behind the limit; fail open keeps the
 * service up and says so with res.degraded so it can be logged or counted. */
static int store_failure(const char *path, int mode)
{
    rl_limit l[] = { RL_PER_SECOND(5, 5) };
    rl_options o = RL_OPTIONS_INIT;
    rl_result res;
    rl *r = NULL;
    int rc, ok;
    printf("%d. store failure, %s\n", mode == RL_FAIL_OPEN ? 5 : 4,
           mode == RL_FAIL_OPEN ? "fail open" : "fail closed");
    (void)l; /* the default limits are the database's: main() stored them */
    o.fail_mode = mode;
    o.flags = RL_OPEN_READONLY;
    if (rl_open(&r, path, &o) != RL_OK) {
        fprintf(stderr, "%s\n", rl_errmsg(r));
        rl_close(r);
        return 0;
    }
    rc = rl_allow(r, "job:any", 1, &res);
    printf("  rl_allow: %s (%s); allowed=%d degraded=%d\n", rl_strerror(rc), rl_errmsg(r),
           res.allowed, res.degraded);
    ok = check(rc == RL_EREADONLY, "the error is reported");
    if (mode == RL_FAIL_OPEN)
        ok &= check(res.allowed == 1 && res.degraded == 1, "admitted, marked degraded");
    else
        ok &= check(res.allowed == 0 && res.degraded == 0, "refused");
    rl_close(r);
    return ok;
}

int main(int argc, char **argv)
{
    /* 20/s with bursts of 2: refusals come quickly and clear in 50 ms. */
    rl_limit limits[] = { RL_PER_SECOND(20, 2) };
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    char dir[] = "/tmp/rl-degrade.XXXXXX", db[64];
    const char *path = argc > 1 ? argv[1] : db;
    int ok = 1;

    if (argc <= 1) {
        if (!mkdtemp(dir)) {
            perror("graceful_degradation: mkdtemp");
            return 1;
        }
        snprintf(db, sizeof db, "%s/rl.db", dir);
    }
    o.default_limits = limits;
    o.n_default_limits = 1;
    if (rl_open(&r, path, &o) != RL_OK) {
        fprintf(stderr, "graceful_degradation: %s\n", rl_errmsg(r));
        rl_close(r);
        return 1;
    }
    ok &= retry_after(r);
    ok &= queue_and_cancel(r);
    ok &= cheaper_fallback(r);
    rl_close(r);
    ok &= store_failure(path, RL_FAIL_CLOSED);
    ok &= store_failure(path, RL_FAIL_OPEN);
    if (argc <= 1)
        remove_tree(dir);
    printf("%s\n", ok ? "graceful_degradation: ok" : "graceful_degradation: FAILED");
    return ok ? 0 : 1;
}
