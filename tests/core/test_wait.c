/*
 * test_wait.c - core/wait.c through the API, on every store
 * (api_fixture.h): rl_wait's timeout (a refusal consumes nothing; exactly
 * the needed delay is enough; INT64_MAX waits for ever) and its
 * cancellation by a flag a signal handler sets, which gives the
 * reservation back; waiting for a concurrency slot (issue 17): a full
 * limit is waited for, looked at again every RL_SLOT_RETRY_NS at most, and
 * a slot freed meanwhile admits the waiter. rl_wait sleeps real time: each
 * wait here is short.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "api_fixture.h"

static void test_wait_timeout_consumes_nothing(void **state)
{
    fixture *f = *state;
    rl_result res;
    rl_key_stats st;
    assert_int_equal(rl_allow(f->r, "w", 10, &res), RL_OK);
    assert_int_equal(rl_wait(f->r, "w", 5, 100 * RL_MILLISECOND, NULL, &res), RL_ETIMEOUT);
    assert_false(res.allowed);
    assert_int_equal(rl_stats(f->r, "w", &st), RL_OK);
    assert_int_equal(st.units, 10);
    assert_int_equal(st.limits[0].retry_after_ns, 100 * RL_MILLISECOND);
    /* a wait that fits the timeout is admitted (the fake clock does not
     * move, but rl_wait sleeps the real delay: keep it short) */
    assert_int_equal(rl_wait(f->r, "w", 1, 200 * RL_MILLISECOND, NULL, &res), RL_OK);
    assert_true(res.allowed);
}

/* The cancel flag is set as the API intends: by a signal handler (here
 * SIGUSR1, sent to the waiting thread after a delay by another thread). */
static volatile sig_atomic_t cancel_flag;

static void on_usr1(int sig)
{
    (void)sig;
    cancel_flag = 1;
}

typedef struct canceller {
    pthread_t target;
    int64_t delay_ms;
} canceller;

static void *cancel_later(void *arg)
{
    canceller *c = arg;
    struct timespec ts = { 0, (long)c->delay_ms * 1000000L };
    nanosleep(&ts, NULL);
    pthread_kill(c->target, SIGUSR1);
    return NULL;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_wait_cancel_returns_reservation(void **state)
{
    fixture *f = *state;
    static const rl_limit slow[] = { RL_LIMIT("slow", NULL, 1, 10 * RL_SECOND, 1) };
    canceller c;
    pthread_t th;
    struct sigaction sa;
    rl_result res;
    rl_key_stats st;
    int64_t t0, took;
    assert_int_equal(rl_tier_set(f->r, "default", slow, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "c", 1, &res), RL_OK);
    assert_true(res.allowed);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    cancel_flag = 0;
    c.target = pthread_self();
    c.delay_ms = 50;
    pthread_create(&th, NULL, cancel_later, &c);
    t0 = mono_ms();
    assert_int_equal(rl_wait(f->r, "c", 1, 60 * RL_SECOND, &cancel_flag, &res), RL_ECANCELED);
    took = mono_ms() - t0;
    pthread_join(th, NULL);
    assert_false(res.allowed);
    /* seen once the flag is set (50 ms), long before the 10 s refill: what
     * a caller relies on. The bound leaves room for a loaded machine (two
     * CPU hogs on 2 cores made it 90+ ms); prompt sighting, within a 5 ms
     * nap when idle, is measured by hand, not asserted. */
    assert_true(took >= 50 && took < 50 + 1000);
    /* the reservation came back: the next unit is 10 s away, not 20 s */
    assert_int_equal(rl_stats(f->r, "c", &st), RL_OK);
    assert_int_equal(st.limits[0].retry_after_ns, 10 * RL_SECOND);
    /* a flag already set: cancelled before anything is consumed */
    assert_int_equal(rl_wait(f->r, "c", 1, RL_SECOND, &cancel_flag, &res), RL_ECANCELED);
}

/* 6. rl_wait's timeout is the admission delay it accepts: exactly the
 * needed delay is enough; the decision's own time does not count. */
static void test_wait_timeout_is_the_delay(void **state)
{
    fixture *f = *state;
    static const rl_limit fast[] = { RL_LIMIT("fast", NULL, 1000, RL_SECOND, 1) };
    rl_result res;
    assert_int_equal(rl_tier_set(f->r, "default", fast, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "w", 1, &res), RL_OK); /* next at +1 ms */
    assert_int_equal(rl_wait(f->r, "w", 1, RL_MILLISECOND, NULL, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_wait(f->r, "w", 1, 2 * RL_MILLISECOND + 100, NULL, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_wait(f->r, "w", 1, 3 * RL_MILLISECOND - 1, NULL, &res), RL_ETIMEOUT);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ns, 3 * RL_MILLISECOND);
}

/* 9. rl_wait's INT64_MAX timeout waits for ever. */
static void test_wait_forever(void **state)
{
    fixture *f = *state;
    static const rl_limit fast[] = { RL_LIMIT("fast", NULL, 1000, RL_SECOND, 1) };
    rl_result res;
    assert_int_equal(rl_tier_set(f->r, "default", fast, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "w", 1, &res), RL_OK);
    assert_int_equal(rl_wait(f->r, "w", 1, INT64_MAX, NULL, &res), RL_OK); /* 1 ms */
    assert_true(res.allowed);
}

/* Issue 17, bug 1: rl_wait_ex on a key whose concurrency limit is full (2
 * of 2 streams held by leases) returned allowed while both slots were
 * still held. It waits instead: until the timeout (RL_ETIMEOUT, nothing
 * charged), or until a holder ends its lease. */
typedef struct lease_ender {
    rl *r;
    rl_lease lease;
    int64_t delay_ms;
    int rc;
} lease_ender;

static void *end_lease_later(void *arg)
{
    lease_ender *e = arg;
    struct timespec ts = { 0, (long)e->delay_ms * 1000000L };
    nanosleep(&ts, NULL);
    e->rc = rl_lease_cancel(e->r, &e->lease);
    return NULL;
}

static void test_wait_for_slot(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_CONCURRENT("streams", "streams", 2),
                                     RL_LIMIT("rpm", NULL, 100, RL_MINUTE, 100) };
    rl_cost one[] = { { "requests", 1 }, { "streams", 1 } };
    rl_lease a, b;
    lease_ender e;
    pthread_t th;
    rl_result res;
    rl_key_stats st;
    int64_t t0, took;
    assert_int_equal(rl_tier_set(f->r, "default", lims, 2), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "k", one, 2, 10 * RL_MINUTE, &a, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_begin(f->r, "k", one, 2, 10 * RL_MINUTE, &b, &res), RL_OK);
    assert_true(res.allowed);
    /* both slots held: not admitted, whatever the timeout allows */
    assert_int_equal(rl_wait_ex(f->r, "k", one, 2, RL_PRIORITY_INTERACTIVE, 0, NULL, &res),
                     RL_ETIMEOUT);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "streams");
    assert_int_equal(res.retry_after_ns, 50 * RL_MILLISECOND); /* RL_SLOT_RETRY_NS */
    t0 = mono_ms();
    assert_int_equal(
        rl_wait_ex(f->r, "k", one, 2, RL_PRIORITY_INTERACTIVE, 120 * RL_MILLISECOND, NULL, &res),
        RL_ETIMEOUT);
    took = mono_ms() - t0;
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "streams");
    assert_true(took >= 120 && took < 120 + 1000); /* it waited the whole timeout */
    assert_int_equal(
        rl_wait_ex(f->r, "k", one, 2, RL_PRIORITY_BATCH, 60 * RL_MILLISECOND, NULL, &res),
        RL_ETIMEOUT);
    assert_false(res.allowed);
    /* nothing was charged by the refusals: 2 requests of 100 */
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(st.limits[0].in_flight, 2);
    assert_int_equal(st.limits[1].remaining, 98);
    /* a slot freed while waiting admits the waiter; it holds nothing (only
     * a lease does), so both slots are free once b ends too */
    e.r = f->r;
    e.lease = a;
    e.delay_ms = 80;
    e.rc = -100;
    pthread_create(&th, NULL, end_lease_later, &e);
    t0 = mono_ms();
    assert_int_equal(
        rl_wait_ex(f->r, "k", one, 2, RL_PRIORITY_INTERACTIVE, 10 * RL_SECOND, NULL, &res), RL_OK);
    took = mono_ms() - t0;
    pthread_join(th, NULL);
    assert_int_equal(e.rc, RL_OK);
    assert_true(res.allowed);
    assert_true(took >= 70 && took < 80 + 1000); /* t0 was read after the thread started */
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(st.limits[0].in_flight, 1);
    assert_int_equal(st.limits[1].remaining, 98); /* a's request came back, the wait's went */
    assert_int_equal(rl_lease_cancel(f->r, &b), RL_OK);
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(st.limits[0].in_flight, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_wait_timeout_consumes_nothing),
        BOTH(test_wait_cancel_returns_reservation),
        BOTH(test_wait_timeout_is_the_delay),
        BOTH(test_wait_forever),
        BOTH(test_wait_for_slot),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
