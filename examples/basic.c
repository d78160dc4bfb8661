/*
 * basic.c - one limit, used the two ways most programs need: Allow (decide
 * now, never block) and Wait (block until admitted, with a timeout and a
 * cancel flag that a signal handler can set).
 *
 *   basic [DATABASE]     (default: a temporary directory, removed at exit)
 *
 * Exits 0 when every step behaved as the comments say, 1 otherwise.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw, setitimer when built with -std=c11 */
#endif
#include <rl.h>

#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* volatile sig_atomic_t: the only type a signal handler may safely write,
 * and the one rl_wait polls (every few milliseconds) while it sleeps. */
static volatile sig_atomic_t cancel_flag;

static void on_alarm(int sig)
{
    (void)sig;
    cancel_flag = 1;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    return remove(path);
}

/* The database comes with -wal, -shm and -rlshm side files: remove the
 * whole directory rather than guessing their names. */
static void remove_tree(const char *dir)
{
    if (nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "basic: could not remove %s\n", dir);
}

static int check(int cond, const char *what)
{
    printf("  [%s] %s\n", cond ? "ok" : "FAILED", what);
    return cond;
}

int main(int argc, char **argv)
{
    /* 10 per second with bursts of 5: the first 5 calls pass at once, then
     * one more every 100 ms. */
    rl_limit limits[] = { RL_PER_SECOND(10, 5) };
    rl_options o = RL_OPTIONS_INIT;
    rl_result res;
    rl *r = NULL;
    char dir[] = "/tmp/rl-basic.XXXXXX", db[64];
    const char *path = argc > 1 ? argv[1] : db;
    struct itimerval it;
    int i, rc, ok = 1, admitted = 0;

    if (argc <= 1) {
        if (!mkdtemp(dir)) {
            perror("basic: mkdtemp");
            return 1;
        }
        snprintf(db, sizeof db, "%s/rl.db", dir);
    }
    o.default_limits = limits; /* every key that no tier covers gets these */
    o.n_default_limits = 1;
    if ((rc = rl_open(&r, path, &o)) != RL_OK) {
        /* rl_open sets r even on failure so that the message can be read */
        fprintf(stderr, "basic: %s: %s\n", rl_strerror(rc), rl_errmsg(r));
        rl_close(r);
        return 1;
    }

    printf("Allow: 8 calls at once on a burst of 5\n");
    for (i = 0; i < 8; i++) {
        /* RL_OK means "decided": admitted or refused is in res.allowed.
         * Only real errors (store, arguments) return something else. */
        if ((rc = rl_allow(r, "user:alice", 1, &res)) != RL_OK) {
            fprintf(stderr, "basic: %s\n", rl_errmsg(r));
            ok = 0;
            break;
        }
        admitted += res.allowed;
        printf("  call %d: %s, remaining %lld, retry after %lld ms\n", i + 1,
               res.allowed ? "admitted" : "refused ", (long long)res.remaining,
               (long long)(res.retry_after_ns / RL_MILLISECOND));
    }
    ok &= check(admitted == 5, "exactly the burst was admitted");

    printf("Wait: block until one more is admitted (at most 1 s)\n");
    rc = rl_wait(r, "user:alice", 1, RL_SECOND, &cancel_flag, &res);
    ok &= check(rc == RL_OK && res.allowed, "admitted after waiting about 100 ms");

    printf("Wait with a short timeout: 5 units need ~500 ms, we allow 10 ms\n");
    /* A wait that could not finish in time returns at once and consumes
     * nothing, so a caller can choose something else immediately. */
    rc = rl_wait(r, "user:alice", 5, 10 * RL_MILLISECOND, &cancel_flag, &res);
    printf("  rl_wait: %s (%s)\n", rl_strerror(rc), rl_errmsg(r));
    ok &= check(rc == RL_ETIMEOUT, "RL_ETIMEOUT, nothing consumed");

    printf("Wait cancelled by a signal: a timer fires SIGALRM after 50 ms\n");
    /* Real programs set the flag from SIGINT/SIGTERM so that shutdown does
     * not wait for the rate limit. The cancelled wait gives its reservation
     * back, so later callers are not charged for it. */
    signal(SIGALRM, on_alarm);
    memset(&it, 0, sizeof it);
    it.it_value.tv_usec = 50000;
    setitimer(ITIMER_REAL, &it, NULL);
    rc = rl_wait(r, "user:alice", 5, 5 * RL_SECOND, &cancel_flag, &res);
    printf("  rl_wait: %s (%s)\n", rl_strerror(rc), rl_errmsg(r));
    ok &= check(rc == RL_ECANCELED && !res.allowed, "RL_ECANCELED, reservation returned");

    rl_close(r);
    if (argc <= 1)
        remove_tree(dir);
    printf("%s\n", ok ? "basic: ok" : "basic: FAILED");
    return ok ? 0 : 1;
}
