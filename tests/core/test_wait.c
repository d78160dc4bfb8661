/*
 * test_wait.c - core/wait.c through the API, on every store
 * (api_fixture.h): rl_wait's timeout (a refusal consumes nothing; exactly
 * the needed delay is enough; INT64_MAX waits for ever) and its
 * cancellation by a flag a signal handler sets, which gives the
 * reservation back. rl_wait sleeps real time: each wait here is short.
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_wait_timeout_consumes_nothing),
        BOTH(test_wait_cancel_returns_reservation),
        BOTH(test_wait_timeout_is_the_delay),
        BOTH(test_wait_forever),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
