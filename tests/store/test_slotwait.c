/*
 * test_slotwait.c - waiting for a concurrency slot across processes
 * (issue 17): the queue that rl__lease_wait keeps in the store, and the
 * wake-up a release sends to every process (the lock file's word).
 *
 * What users rely on, each with real processes (fork) on one database
 * file, and on Redis when RL_TEST_REDIS names a server:
 *   - waiters of one priority are served in the order they queued, across
 *     processes; a slot released goes to the head of the queue;
 *   - a waiter does not poll: while a slot stays held for a second it
 *     decides a handful of times (a release wakes it; without one it looks
 *     again every 500 ms), and its CPU time stays under 5% of the wait
 *     (on Redis, which has no wake-up, it looks every RL_SLOT_RETRY_NS);
 *   - a waiter that is killed leaves the queue: those behind it are served.
 * No sleep orders anything: each step waits for a state (a waiter row seen
 * by rl_leases_list, a byte in a pipe).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#ifndef RL_TEST_CPU_FACTOR
#define RL_TEST_CPU_FACTOR 1 /* 3 in sanitizer builds (tests/CMakeLists.txt) */
#endif

#include "rl.h"
#include "rl_admin.h"
#include "../common/stores.h"

int rl__lease_wait(rl *r, const char *const *keys, size_t nkeys, const rl_cost *est, size_t n,
                   rl_priority priority, int64_t ttl_ns, int64_t timeout_ns,
                   const volatile sig_atomic_t *cancel, rl_lease *leases, rl_result *res);

static const rl_limit one_stream[] = { RL_CONCURRENT("streams", "streams", 1) };
static const rl_cost stream1[] = { { "streams", 1 } };
static const char *const key = "acct";

typedef struct env {
    int kind;
    char dir[64];
    char path[512];
} env;

static int setup(void **state, int kind)
{
    env *e = calloc(1, sizeof *e);
    rl *r = NULL;
    e->kind = kind;
    strcpy(e->dir, "/tmp/rl_test_sw.XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    assert_int_equal(test_store_path(kind, e->dir, e->path, sizeof e->path), 0);
    assert_int_equal(rl_open(&r, e->path, NULL), RL_OK);
    assert_int_equal(rl_tier_set(r, "default", one_stream, 1), RL_OK);
    rl_close(r);
    *state = e;
    return 0;
}

static int setup_sqlite(void **state)
{
    return setup(state, STORE_SQLITE);
}

static int setup_redis(void **state)
{
    return setup(state, STORE_REDIS);
}

static int teardown(void **state)
{
    env *e = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    assert_int_equal(system(cmd), 0);
    free(e);
    return 0;
}

static rl *open_db(const env *e)
{
    rl *r = NULL;
    assert_int_equal(rl_open(&r, e->path, NULL), RL_OK);
    return r;
}

static int count_cb(void *ctx, const rl_lease_info *l)
{
    *(int *)ctx += l->waiting && l->live;
    return 0;
}

static int waiting(rl *r)
{
    int n = 0;
    assert_int_equal(rl_leases_list(r, key, count_cb, &n), RL_OK);
    return n;
}

/* Until exactly n waiters are queued (a state, polled; not a time). */
static void until_waiting(rl *r, int n)
{
    struct timespec ts = { 0, 1000000L };
    int i;
    for (i = 0; i < 30000 && waiting(r) != n; i++)
        nanosleep(&ts, NULL);
    assert_int_equal(waiting(r), n);
}

/* What a child reports through its pipe. */
typedef struct report {
    int id, rc;
    int64_t cpu_ns;
} report;

static int64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * RL_SECOND +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * RL_MICROSECOND;
}

/* A child: waits for the slot, reports, gives it back, exits. */
static void waiter_child(const env *e, int id, int wfd)
{
    rl *r = NULL;
    rl_lease l;
    rl_result res;
    report rep;
    int64_t c0;
    if (rl_open(&r, e->path, NULL) != RL_OK)
        _exit(2);
    c0 = cpu_ns();
    rep.id = id;
    rep.rc = rl__lease_wait(r, &key, 1, stream1, 1, RL_PRIORITY_INTERACTIVE, RL_MINUTE,
                            60 * RL_SECOND, NULL, &l, &res);
    rep.cpu_ns = cpu_ns() - c0;
    if (write(wfd, &rep, sizeof rep) != (ssize_t)sizeof rep)
        _exit(3);
    if (rep.rc == RL_OK && rl_lease_cancel(r, &l) != RL_OK)
        _exit(4);
    rl_close(r);
    _exit(0);
}

static void read_report(int rfd, report *rep)
{
    ssize_t n;
    do
        n = read(rfd, rep, sizeof *rep);
    while (n < 0 && errno == EINTR);
    assert_int_equal(n, (ssize_t)sizeof *rep);
}

static void reap(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Three processes queue one after the other while the slot is held; on
 * release each is served in turn, in the order it queued. */
static void test_served_in_queue_order(void **state)
{
    env *e = *state;
    rl *r = open_db(e);
    rl_lease held;
    rl_result res;
    pid_t pid[3];
    int fds[2], i;
    report rep;
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(rl_lease_begin(r, key, stream1, 1, RL_MINUTE, &held, &res), RL_OK);
    assert_true(res.allowed);
    for (i = 0; i < 3; i++) {
        if ((pid[i] = fork()) == 0) {
            close(fds[0]);
            waiter_child(e, i, fds[1]);
        }
        until_waiting(r, i + 1);
    }
    close(fds[1]);
    assert_int_equal(rl_lease_cancel(r, &held), RL_OK);
    for (i = 0; i < 3; i++) {
        read_report(fds[0], &rep);
        assert_int_equal(rep.rc, RL_OK);
        assert_int_equal(rep.id, i);
    }
    for (i = 0; i < 3; i++)
        reap(pid[i]);
    close(fds[0]);
    assert_int_equal(waiting(r), 0);
    rl_close(r);
}

/* A waiter for a slot held for a second sleeps: it decides a handful of
 * times, not every 50 ms, and burns under 5% of a core meanwhile. */
static void test_waiter_sleeps(void **state)
{
    env *e = *state;
    rl *r = open_db(e);
    rl_lease held;
    rl_result res;
    rl_key_stats st;
    struct timespec hold = { 1, 0 };
    pid_t pid;
    int fds[2];
    report rep;
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(rl_lease_begin(r, key, stream1, 1, RL_MINUTE, &held, &res), RL_OK);
    if ((pid = fork()) == 0) {
        close(fds[0]);
        waiter_child(e, 0, fds[1]);
    }
    close(fds[1]);
    until_waiting(r, 1);
    nanosleep(&hold, NULL); /* the interval measured, not an ordering */
    assert_int_equal(rl_lease_cancel(r, &held), RL_OK);
    read_report(fds[0], &rep);
    reap(pid);
    close(fds[0]);
    assert_int_equal(rep.rc, RL_OK);
    assert_true(rep.cpu_ns < RL_TEST_CPU_FACTOR * RL_SECOND / 20); /* see test_agents.c */
    assert_int_equal(rl_stats(r, key, &st), RL_OK);
    /* refusals: the first look, the one after queuing, and one per 500 ms
     * at most without a release; polling every 50 ms would give ~20. Redis
     * has no wake-up (docs/redis.md): its waiters look again every
     * RL_SLOT_RETRY_NS, which still costs little CPU */
    print_message("waiter: %lld refusals, %lld us CPU in about 1 s\n", (long long)st.refused,
                  (long long)(rep.cpu_ns / 1000));
    assert_true(st.refused <= (e->kind == STORE_SQLITE ? 6 : 2 + 2 * RL_SECOND / RL_SLOT_RETRY_NS));
    rl_close(r);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
}

/* On SQLite a release wakes a sleeping waiter at once: it has the slot
 * well before it would have looked again by itself (500 ms after its last
 * look). A release with nobody asleep makes no futex call (store/lock.c),
 * so this is what shows the sleeper's flag is seen. */
static void test_release_wakes_at_once(void **state)
{
    env *e = *state;
    rl *r = open_db(e);
    rl_lease held;
    rl_result res;
    struct timespec asleep = { 0, 100000000L };
    int64_t t0, took;
    pid_t pid;
    int fds[2];
    report rep;
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(rl_lease_begin(r, key, stream1, 1, RL_MINUTE, &held, &res), RL_OK);
    /* releases with nobody waiting move the word too */
    {
        rl_lease other;
        assert_int_equal(rl_lease_cancel(r, &held), RL_OK);
        assert_int_equal(rl_lease_begin(r, key, stream1, 1, RL_MINUTE, &other, &res), RL_OK);
        held = other;
    }
    if ((pid = fork()) == 0) {
        close(fds[0]);
        waiter_child(e, 0, fds[1]);
    }
    close(fds[1]);
    until_waiting(r, 1);
    nanosleep(&asleep, NULL); /* it is asleep by now (not an ordering: the wake is) */
    t0 = mono_ns();
    assert_int_equal(rl_lease_cancel(r, &held), RL_OK);
    read_report(fds[0], &rep);
    took = mono_ns() - t0;
    reap(pid);
    close(fds[0]);
    assert_int_equal(rep.rc, RL_OK);
    print_message("waiter served %lld us after the release\n", (long long)(took / 1000));
    assert_true(took < 250 * RL_MILLISECOND);
    rl_close(r);
}

/* A waiter killed while queued leaves the queue: the next one is served
 * when the slot comes free, not blocked behind a dead place. */
static void test_killed_waiter_leaves_queue(void **state)
{
    env *e = *state;
    rl *r = open_db(e);
    rl_lease held;
    rl_result res;
    pid_t dead, live;
    int fds[2];
    report rep;
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(rl_lease_begin(r, key, stream1, 1, RL_MINUTE, &held, &res), RL_OK);
    if ((dead = fork()) == 0) {
        close(fds[0]);
        waiter_child(e, 0, fds[1]);
    }
    until_waiting(r, 1);
    if ((live = fork()) == 0) {
        close(fds[0]);
        waiter_child(e, 1, fds[1]);
    }
    close(fds[1]);
    until_waiting(r, 2);
    assert_int_equal(kill(dead, SIGKILL), 0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    assert_int_equal(rl_lease_cancel(r, &held), RL_OK);
    read_report(fds[0], &rep);
    assert_int_equal(rep.rc, RL_OK);
    assert_int_equal(rep.id, 1);
    reap(live);
    close(fds[0]);
    assert_int_equal(waiting(r), 0);
    rl_close(r);
}

#define BOTH(fn)                                                 \
    cmocka_unit_test_setup_teardown(fn, setup_sqlite, teardown), \
        cmocka_unit_test_setup_teardown(fn, setup_redis, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_served_in_queue_order),
        BOTH(test_waiter_sleeps),
        BOTH(test_killed_waiter_leaves_queue),
        cmocka_unit_test_setup_teardown(test_release_wakes_at_once, setup_sqlite, teardown),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
