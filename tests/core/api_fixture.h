/*
 * api_fixture.h - what the tests of the handle's API share (test_rl.c,
 * test_decide.c, test_reserve.c, test_wait.c, test_read.c, test_tiers.c,
 * test_cooldown.c, one per file of core/ they test): a fixture with a fake
 * clock, its setup for each store and its teardown, and BOTH()/SHARED(),
 * which register a test once per store.
 *
 * The public API as a user calls it, run against every store (memory, a
 * SQLite file, Redis when RL_TEST_REDIS is set; tests/common/stores.h): all
 * must behave alike. The fake clock makes every time-dependent answer
 * exact. Each fixture opens a handle whose default tier is 10/s, burst 10,
 * on a fresh temporary directory (or Redis key prefix).
 */
#ifndef RL_TEST_API_FIXTURE_H
#define RL_TEST_API_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rl.h"
#include "../common/stores.h"

typedef struct fixture {
    int sqlite; /* a store shared through its address: STORE_SQLITE or STORE_REDIS */
    int kind;
    char dir[64];
    char path[512];
    int64_t now;
    rl *r;
} fixture;

/* The fake clock's start: (int64_t)1700000000 * RL_SECOND. */
extern const int64_t T0;
/* Sliding windows of a minute: T0 lies 20 s into the window that began at
 * WIN0 = T0 - 20 s (windows are aligned to the epoch). */
extern const int64_t WIN0;

/* Opens another handle on the fixture's store and clock, with lims as the
 * default tier (none when n is 0). */
int open_with(fixture *f, const rl_limit *lims, size_t n, rl **out);

int setup_mem(void **state);
int setup_sqlite(void **state);
int setup_redis(void **state);
int teardown(void **state);

/* A test on every store, and on the stores that two handles share. */
#define BOTH(fn)                                                     \
    cmocka_unit_test_setup_teardown(fn, setup_mem, teardown),        \
        cmocka_unit_test_setup_teardown(fn, setup_sqlite, teardown), \
        cmocka_unit_test_setup_teardown(fn, setup_redis, teardown)
#define SHARED(fn)                                               \
    cmocka_unit_test_setup_teardown(fn, setup_sqlite, teardown), \
        cmocka_unit_test_setup_teardown(fn, setup_redis, teardown)

#endif
