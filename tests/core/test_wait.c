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
#include <stdio.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "api_fixture.h"
#include "rl_int.h"

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
     * CPU hogs on 2 cores made it 90+ ms); the signal interrupts the sleep,
     * so it is seen at once: measured by hand, not asserted. */
    assert_true(took >= 50 && took < 50 + 1000);
    /* the reservation came back: the next unit is 10 s away, not 20 s */
    assert_int_equal(rl_stats(f->r, "c", &st), RL_OK);
    assert_int_equal(st.limits[0].retry_after_ns, 10 * RL_SECOND);
    /* a flag already set: cancelled before anything is consumed */
    assert_int_equal(rl_wait(f->r, "c", 1, RL_SECOND, &cancel_flag, &res), RL_ECANCELED);
}

/* rl_wait sleeps until its time in one sleep (the test build counts them),
 * not in slices: 1, or 2 if one ends early; with a cancel flag too. */
static void test_wait_sleeps_once(void **state)
{
    fixture *f = *state;
    static const rl_limit twenty[] = { RL_LIMIT("twenty", NULL, 20, RL_SECOND, 1) };
    volatile sig_atomic_t never = 0;
    rl_result res;
    unsigned long s;
    assert_int_equal(rl_tier_set(f->r, "default", twenty, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "s", 1, &res), RL_OK);
    assert_true(res.allowed);
    s = rl__test_wait_sleeps;
    assert_int_equal(rl_wait(f->r, "s", 1, RL_SECOND, NULL, &res), RL_OK); /* 50 ms */
    assert_true(rl__test_wait_sleeps - s >= 1 && rl__test_wait_sleeps - s <= 2);
    s = rl__test_wait_sleeps;
    assert_int_equal(rl_wait(f->r, "s", 1, RL_SECOND, &never, &res), RL_OK); /* 100 ms */
    assert_true(rl__test_wait_sleeps - s >= 1 && rl__test_wait_sleeps - s <= 2);
}

typedef struct setter {
    volatile sig_atomic_t *flag;
    unsigned long sleeps; /* the waiter's sleeps before it waits */
    int wake;             /* call rl_wait_wake after setting the flag */
} setter;

/* Once the waiter sleeps, sets its flag (and wakes it). */
static void *set_flag(void *arg)
{
    setter *st = arg;
    struct timespec ts = { 0, 1000000 };
    while (__atomic_load_n(&rl__test_wait_sleeps, __ATOMIC_SEQ_CST) == st->sleeps)
        nanosleep(&ts, NULL);
    __atomic_store_n((sig_atomic_t *)(uintptr_t)st->flag, 1, __ATOMIC_RELEASE);
    if (st->wake)
        rl_wait_wake(st->flag);
    return NULL;
}

/* A wait of an hour, cancelled by another thread. With rl_wait_wake it
 * returns although one sleep would last an hour (the test build's cap):
 * only the wake can end it. Without, it returns at the cap (20 ms here):
 * nothing else would end it within the hour. The order of events is what
 * is asserted, never a duration. */
static void cancel_from_thread(fixture *f, int wake)
{
    static const rl_limit hourly[] = { RL_LIMIT("hourly", NULL, 1, RL_HOUR, 1) };
    static volatile sig_atomic_t flag;
    rl_result res;
    rl_key_stats st;
    pthread_t th;
    setter s;
    assert_int_equal(rl_tier_set(f->r, "default", hourly, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "h", 1, &res), RL_OK);
    flag = 0;
    s.flag = &flag;
    s.sleeps = rl__test_wait_sleeps;
    s.wake = wake;
    rl__test_cancel_poll_ns = wake ? 2 * RL_HOUR : 20 * RL_MILLISECOND;
    pthread_create(&th, NULL, set_flag, &s);
    assert_int_equal(rl_wait(f->r, "h", 1, 2 * RL_HOUR, &flag, &res), RL_ECANCELED);
    pthread_join(th, NULL);
    rl__test_cancel_poll_ns = 0;
    assert_false(res.allowed);
    if (wake)
        assert_int_equal(rl__test_wait_sleeps - s.sleeps, 1);
    /* the reservation came back */
    assert_int_equal(rl_stats(f->r, "h", &st), RL_OK);
    assert_int_equal(st.limits[0].retry_after_ns, RL_HOUR);
}

static void test_wait_wake(void **state)
{
    cancel_from_thread(*state, 1);
}

static void test_wait_cancel_polled(void **state)
{
    cancel_from_thread(*state, 0);
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

/* A slot waiter woken while its limit is still full (here by a release on
 * another key, which moves the store's word) looks from a read snapshot
 * and sleeps again: it writes nothing. The order of events is asserted
 * through the test build's counters, never a duration. */
typedef struct slot_waiter {
    rl *r;
    int rc;
    rl_result res;
} slot_waiter;

static void *wait_for_stream(void *arg)
{
    slot_waiter *w = arg;
    rl_cost c[] = { { "streams", 1 } };
    w->rc = rl_wait_ex(w->r, "k", c, 1, RL_PRIORITY_INTERACTIVE, 60 * RL_SECOND, NULL, &w->res);
    return NULL;
}

static void sleeps_past(unsigned long n)
{
    struct timespec ts = { 0, 1000000 };
    while (__atomic_load_n(&rl__test_wait_sleeps, __ATOMIC_SEQ_CST) <= n)
        nanosleep(&ts, NULL);
}

static void test_woken_waiter_writes_nothing(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_CONCURRENT("streams", "streams", 1) };
    rl_cost c[] = { { "streams", 1 } };
    rl_lease a, d;
    rl_result res;
    slot_waiter w;
    pthread_t th;
    unsigned long s, writes;
    assert_int_equal(rl_tier_set(f->r, "default", lims, 1), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "k", c, 1, 10 * RL_MINUTE, &a, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_begin(f->r, "d", c, 1, 10 * RL_MINUTE, &d, &res), RL_OK);
    assert_true(res.allowed);
    w.r = f->r;
    w.rc = -100;
    s = __atomic_load_n(&rl__test_wait_sleeps, __ATOMIC_SEQ_CST);
    pthread_create(&th, NULL, wait_for_stream, &w);
    sleeps_past(s); /* refused on the write path, asleep */
    writes = rl__test_write_tx;
    s = __atomic_load_n(&rl__test_wait_sleeps, __ATOMIC_SEQ_CST);
    assert_int_equal(rl_lease_cancel(f->r, &d), RL_OK); /* wakes it: "k" is still full */
    sleeps_past(s);                                     /* it looked, and sleeps again */
    assert_int_equal(rl__test_write_tx, writes + 1);    /* the cancel's write only */
    assert_int_equal(rl_lease_cancel(f->r, &a), RL_OK); /* now it is admitted */
    pthread_join(th, NULL);
    assert_int_equal(w.rc, RL_OK);
    assert_true(w.res.allowed);
}

/* ---- waiting for leases: the slot queue (rl__lease_wait) ------------------ */

#include "rl_admin.h"

int rl__lease_wait(rl *r, const char *const *keys, size_t nkeys, const rl_cost *est, size_t n,
                   rl_priority priority, int64_t ttl_ns, int64_t timeout_ns,
                   const volatile sig_atomic_t *cancel, rl_lease *leases, rl_result *res);

static const rl_limit one_stream[] = { RL_CONCURRENT("streams", "streams", 1) };
static rl_cost stream1[] = { { "streams", 1 } };

/* A handle on the fixture's store whose clock stands still at *at. */
static int64_t fixed_clock(void *ctx)
{
    return *(const int64_t *)ctx;
}

static rl *open_at(fixture *f, const int64_t *at)
{
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    o.clock = fixed_clock;
    o.clock_ctx = (void *)at;
    assert_int_equal(rl_open(&r, f->path, &o), RL_OK);
    return r;
}

static int count_waiting_cb(void *ctx, const rl_lease_info *l)
{
    *(int *)ctx += l->waiting && l->live;
    return 0;
}

static int count_waiting(rl *r)
{
    int n = 0;
    assert_int_equal(rl_leases_list(r, NULL, count_waiting_cb, &n), RL_OK);
    return n;
}

/* Until n waiters are queued: a state to reach, not a time to wait. */
static void until_waiting(rl *r, int n)
{
    struct timespec ts = { 0, 1000000L };
    int i;
    for (i = 0; i < 20000 && count_waiting(r) < n; i++)
        nanosleep(&ts, NULL);
    assert_int_equal(count_waiting(r), n);
}

typedef struct waiter {
    rl *r;
    int id, priority, rc;
    int64_t timeout;
    rl_lease lease;
    pthread_mutex_t *mu;
    int *order, *norder;
    int release; /* cancel the lease once taken, so the next one gets it */
} waiter;

static void *wait_thread(void *arg)
{
    waiter *w = arg;
    const char *key = "k";
    rl_result res;
    w->rc = rl__lease_wait(w->r, &key, 1, stream1, 1, (rl_priority)w->priority, 10 * RL_MINUTE,
                           w->timeout, NULL, &w->lease, &res);
    if (w->rc == RL_OK) {
        pthread_mutex_lock(w->mu);
        w->order[(*w->norder)++] = w->id;
        pthread_mutex_unlock(w->mu);
        if (w->release)
            w->rc = rl_lease_cancel(w->r, &w->lease);
    }
    return NULL;
}

static void start_waiter(waiter *w, pthread_t *th, rl *r, int id, int priority, pthread_mutex_t *mu,
                         int *order, int *norder)
{
    memset(w, 0, sizeof *w);
    w->r = r;
    w->id = id;
    w->priority = priority;
    w->timeout = 30 * RL_SECOND;
    w->mu = mu;
    w->order = order;
    w->norder = norder;
    w->release = 1;
    w->rc = -100;
    assert_int_equal(pthread_create(th, NULL, wait_thread, w), 0);
}

/* A slot that comes free goes to the waiter with the earliest place: its
 * arrival, a batch waiter's RL_BATCH_AGE_NS later. Each waiter's handle
 * has its own clock, so the places are exact: batch at T0 (place
 * T0 + 1 s), interactive at T0 + 0.5 s and at T0 + 1.5 s. */
static void test_lease_wait_queue_order(void **state)
{
    fixture *f = *state;
    static const int64_t at1 = (int64_t)1700000000 * RL_SECOND,
                         at2 = (int64_t)1700000000 * RL_SECOND + RL_SECOND / 2,
                         at3 = (int64_t)1700000000 * RL_SECOND + 3 * RL_SECOND / 2;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    int order[3], norder = 0, i;
    waiter w[3];
    pthread_t th[3];
    rl *h[3];
    rl_lease held;
    rl_result res;
    assert_int_equal(rl_tier_set(f->r, "default", one_stream, 1), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "k", stream1, 1, 10 * RL_MINUTE, &held, &res), RL_OK);
    assert_true(res.allowed);
    h[0] = open_at(f, &at1);
    h[1] = open_at(f, &at2);
    h[2] = open_at(f, &at3);
    start_waiter(&w[0], &th[0], h[0], 1, RL_PRIORITY_BATCH, &mu, order, &norder);
    until_waiting(f->r, 1);
    start_waiter(&w[1], &th[1], h[1], 2, RL_PRIORITY_INTERACTIVE, &mu, order, &norder);
    until_waiting(f->r, 2);
    start_waiter(&w[2], &th[2], h[2], 3, RL_PRIORITY_INTERACTIVE, &mu, order, &norder);
    until_waiting(f->r, 3);
    assert_int_equal(rl_lease_cancel(f->r, &held), RL_OK);
    for (i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].rc, RL_OK);
    }
    assert_int_equal(norder, 3);
    assert_int_equal(order[0], 2); /* interactive, before the batch waiter's place */
    assert_int_equal(order[1], 1); /* batch: served before a later interactive one */
    assert_int_equal(order[2], 3);
    assert_int_equal(count_waiting(f->r), 0); /* each left the queue as it was served */
    for (i = 0; i < 3; i++)
        rl_close(h[i]);
}

/* A caller that did not wait comes after every waiter: a slot released
 * while one waits is not taken by a caller passing by. */
static void test_lease_wait_no_barging(void **state)
{
    fixture *f = *state;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    int order[1], norder = 0;
    waiter w;
    pthread_t th;
    rl *h;
    rl_lease held, other;
    rl_result res;
    rl_key_stats st;
    assert_int_equal(rl_tier_set(f->r, "default", one_stream, 1), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "k", stream1, 1, 10 * RL_MINUTE, &held, &res), RL_OK);
    assert_int_equal(open_with(f, NULL, 0, &h), RL_OK);
    start_waiter(&w, &th, h, 1, RL_PRIORITY_INTERACTIVE, &mu, order, &norder);
    w.release = 0;
    until_waiting(f->r, 1);
    assert_int_equal(rl_lease_cancel(f->r, &held), RL_OK);
    /* the slot is free or the waiter's already: either way not ours */
    assert_int_equal(rl_lease_begin(f->r, "k", stream1, 1, 10 * RL_MINUTE, &other, &res), RL_OK);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "streams");
    assert_int_equal(other.id, 0);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, RL_OK);
    assert_true(w.lease.id > 0);
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(st.limits[0].in_flight, 1);
    assert_int_equal(rl_lease_settle(h, &w.lease, stream1, 1), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "k", stream1, 1, 10 * RL_MINUTE, &other, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_cancel(f->r, &other), RL_OK);
    rl_close(h);
}

/* A waiter that gives up leaves the queue, and holds nothing meanwhile. */
static void test_lease_wait_timeout_leaves_queue(void **state)
{
    fixture *f = *state;
    const char *key = "k";
    rl_lease held, got;
    rl_result res;
    rl_key_stats st;
    assert_int_equal(rl_tier_set(f->r, "default", one_stream, 1), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "k", stream1, 1, 10 * RL_MINUTE, &held, &res), RL_OK);
    assert_int_equal(rl__lease_wait(f->r, &key, 1, stream1, 1, RL_PRIORITY_INTERACTIVE, RL_MINUTE,
                                    0, NULL, &got, &res),
                     RL_ETIMEOUT);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "streams");
    assert_int_equal(got.id, 0);
    assert_int_equal(rl__lease_wait(f->r, &key, 1, stream1, 1, RL_PRIORITY_BATCH, RL_MINUTE,
                                    60 * RL_MILLISECOND, NULL, &got, &res),
                     RL_ETIMEOUT);
    assert_int_equal(got.id, 0);
    assert_int_equal(count_waiting(f->r), 0);
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(st.limits[0].in_flight, 1);
    assert_int_equal(rl_lease_cancel(f->r, &held), RL_OK);
}

/* Leases on several keys at once, all or nothing; RL_FOREVER is a
 * timeout; bad arguments are refused. */
static void test_lease_wait_keys_and_args(void **state)
{
    fixture *f = *state;
    static const rl_limit user[] = { RL_LIMIT("tpm", "tokens", 1000, RL_MINUTE, 1000) };
    static const rl_limit acct[] = { RL_LIMIT("tpm", "tokens", 5000, RL_MINUTE, 5000),
                                     RL_CONCURRENT("streams", "streams", 1) };
    const char *keys[] = { "user:1", "acct" };
    rl_cost est[] = { { "tokens", 400 }, { "streams", 1 } };
    rl_cost used[] = { { "tokens", 100 }, { "streams", 1 } };
    rl_lease l[2], l2[2];
    rl_result res;
    rl_key_stats st;
    assert_int_equal(rl_tier_set(f->r, "user", user, 1), RL_OK);
    assert_int_equal(rl_tier_set(f->r, "acct", acct, 2), RL_OK);
    assert_int_equal(rl_key_assign(f->r, "user:1", "user"), RL_OK);
    assert_int_equal(rl_key_assign(f->r, "acct", "acct"), RL_OK);
    assert_int_equal(rl__lease_wait(f->r, keys, 2, est, 2, RL_PRIORITY_INTERACTIVE, RL_MINUTE,
                                    RL_FOREVER, NULL, l, &res),
                     RL_OK);
    assert_true(res.allowed);
    assert_true(l[0].id > 0 && l[1].id > 0 && l[0].id != l[1].id);
    assert_int_equal(rl_stats(f->r, "acct", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 4600);
    assert_int_equal(st.limits[1].in_flight, 1);
    assert_int_equal(rl_stats(f->r, "user:1", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 600);
    /* the account's slot is taken: nothing is taken on the user either */
    assert_int_equal(rl__lease_wait(f->r, keys, 2, est, 2, RL_PRIORITY_INTERACTIVE, RL_MINUTE, 0,
                                    NULL, l2, &res),
                     RL_ETIMEOUT);
    assert_int_equal(res.key_index, 1);
    assert_int_equal(rl_stats(f->r, "user:1", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 600);
    /* each key's lease is settled on its own: the slot is the account's */
    assert_int_equal(rl_lease_settle(f->r, &l[0], used, 1), RL_OK);
    assert_int_equal(rl_lease_settle(f->r, &l[1], used, 2), RL_OK);
    assert_int_equal(rl_stats(f->r, "user:1", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 900);
    assert_int_equal(rl_stats(f->r, "acct", &st), RL_OK);
    assert_int_equal(st.limits[0].remaining, 4900);
    assert_int_equal(st.limits[1].in_flight, 0);
    assert_int_equal(
        rl__lease_wait(f->r, keys, 2, est, 2, (rl_priority)7, RL_MINUTE, 0, NULL, l2, &res),
        RL_EINVAL);
    assert_int_equal(
        rl__lease_wait(f->r, keys, 0, est, 2, RL_PRIORITY_BATCH, RL_MINUTE, 0, NULL, l2, &res),
        RL_EINVAL);
    assert_int_equal(rl__lease_wait(f->r, keys, 2, est, 2, RL_PRIORITY_BATCH, 0, 0, NULL, l2, &res),
                     RL_EINVAL);
    assert_int_equal(
        rl__lease_wait(f->r, keys, 2, est, 2, RL_PRIORITY_BATCH, RL_MINUTE, 0, NULL, NULL, &res),
        RL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_wait_timeout_consumes_nothing),
        BOTH(test_wait_cancel_returns_reservation),
        BOTH(test_wait_timeout_is_the_delay),
        BOTH(test_wait_sleeps_once),
        BOTH(test_wait_wake),
        BOTH(test_wait_cancel_polled),
        BOTH(test_wait_forever),
        BOTH(test_wait_for_slot),
        /* the store's wake-up word: the SQLite store's lock file */
        cmocka_unit_test_setup_teardown(test_woken_waiter_writes_nothing, setup_sqlite, teardown),
        SHARED(test_lease_wait_queue_order),
        SHARED(test_lease_wait_no_barging),
        BOTH(test_lease_wait_timeout_leaves_queue),
        BOTH(test_lease_wait_keys_and_args),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
