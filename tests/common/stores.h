/*
 * stores.h - one test suite, every store: the memory store, a SQLite file
 * in a fresh temporary directory, and Redis when RL_TEST_REDIS names a
 * server (redis://127.0.0.1:6399/0). Each Redis fixture gets its own key
 * prefix, so tests never see one another's keys, even run in parallel.
 * Without RL_TEST_REDIS the Redis cases are skipped, and say so.
 */
#ifndef RL_TEST_STORES_H
#define RL_TEST_STORES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { STORE_MEM = 0, STORE_SQLITE = 1, STORE_REDIS = 2 };

/* The address a fixture of `kind` opens; dir is its temporary directory.
 * Returns 0, or -1 when the store is not available here. */
static inline int test_store_path(int kind, const char *dir, char *buf, size_t len)
{
    static unsigned seq;
    const char *url = getenv("RL_TEST_REDIS");
    struct timespec ts;
    switch (kind) {
    case STORE_MEM:
        snprintf(buf, len, ":memory:");
        return 0;
    case STORE_SQLITE:
        snprintf(buf, len, "%s/rl.db", dir);
        return 0;
    default:
        if (!url || !*url)
            return -1;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(buf, len, "%s%sprefix=t%ld.%ld.%u:", url, strchr(url, '?') ? "&" : "?",
                 (long)getpid(), (long)(ts.tv_nsec / 1000), ++seq);
        return 0;
    }
}

static inline const char *test_store_name(int kind)
{
    return kind == STORE_MEM ? "memory" : kind == STORE_SQLITE ? "sqlite" : "redis";
}

/* Runs tests[] without the Redis cases (those set up by redis_setup) when no
 * server is configured: cmocka has no skip from a setup function. */
#define run_store_tests(tests, n, redis_setup) \
    run_store_tests_((tests), (n), (redis_setup), __FILE__)
static inline int run_store_tests_(const struct CMUnitTest *tests, size_t n,
                                   CMFixtureFunction redis_setup, const char *file)
{
    struct CMUnitTest *keep = calloc(n, sizeof *keep);
    size_t i, m = 0;
    int have_redis = getenv("RL_TEST_REDIS") && *getenv("RL_TEST_REDIS"), rc;
    for (i = 0; i < n; i++)
        if (have_redis || tests[i].setup_func != redis_setup)
            keep[m++] = tests[i];
    if (m < n)
        printf("[ SKIPPED  ] %zu Redis case(s) of %s: RL_TEST_REDIS is not set\n", n - m, file);
    rc = _cmocka_run_group_tests(file, keep, m, NULL, NULL);
    free(keep);
    return rc;
}

#endif
