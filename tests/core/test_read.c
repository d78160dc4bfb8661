/*
 * test_read.c - core/read.c through the API, on every store
 * (api_fixture.h): rl_stats and rl_totals_get (before and after rl_reset),
 * first_seen_ns, rl_keys_list (a pattern, sorting, a limit, a bad sort
 * refused), and what readers show of leases that expired or whose owner
 * died: not held (rl_stats' in_flight, rl_leases_list's live), without
 * writing.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api_fixture.h"

static void test_stats_and_reset(void **state)
{
    fixture *f = *state;
    rl_result res;
    rl_key_stats st;
    rl_totals t;
    int i;
    for (i = 0; i < 12; i++)
        assert_int_equal(rl_allow(f->r, "s", 1, &res), RL_OK);
    f->now += RL_SECOND;
    assert_int_equal(rl_allow(f->r, "s", 3, &res), RL_OK);
    assert_int_equal(rl_allow(f->r, "other", 1, &res), RL_OK);
    assert_int_equal(rl_stats(f->r, "s", &st), RL_OK);
    assert_true(st.exists);
    assert_int_equal(st.allowed, 11);
    assert_int_equal(st.refused, 2);
    assert_int_equal(st.units, 13);
    assert_int_equal(st.first_seen_ns, T0);
    assert_int_equal(st.last_seen_ns, T0 + RL_SECOND);
    assert_int_equal(st.tier_source, RL_TIER_OPTIONS);
    assert_int_equal(st.limits[0].remaining, 7);
    assert_int_equal(rl_totals_get(f->r, &t), RL_OK);
    assert_int_equal(t.keys, 2);
    assert_int_equal(t.allowed, 12);
    assert_int_equal(t.refused, 2);
    assert_int_equal(rl_reset(f->r, "s"), RL_OK);
    assert_int_equal(rl_stats(f->r, "s", &st), RL_OK);
    assert_false(st.exists);
    assert_int_equal(st.limits[0].remaining, 10);
    assert_int_equal(rl_reset(f->r, "s"), RL_ENOTFOUND);
    assert_int_equal(rl_reset(f->r, "never"), RL_ENOTFOUND);
    assert_int_equal(rl_totals_get(f->r, &t), RL_OK);
    assert_int_equal(t.keys, 1);
}

static int count_key(void *ctx, const rl_key_stats *st)
{
    (void)st;
    (*(int *)ctx)++;
    return 0;
}

typedef struct first_keys {
    char keys[4][16];
    int n;
} first_keys;

static int record_key(void *ctx, const rl_key_stats *st)
{
    first_keys *fk = ctx;
    snprintf(fk->keys[fk->n++], 16, "%.15s", st->key);
    return fk->n == 4;
}

static void test_keys_list(void **state)
{
    fixture *f = *state;
    rl_result res;
    first_keys fk;
    int i, n = 0;
    for (i = 0; i < 5; i++)
        assert_int_equal(rl_allow(f->r, "ip:1", 1, &res), RL_OK);
    for (i = 0; i < 3; i++)
        assert_int_equal(rl_allow(f->r, "ip:2", 1, &res), RL_OK);
    assert_int_equal(rl_allow(f->r, "user:1", 1, &res), RL_OK);
    assert_int_equal(rl_keys_list(f->r, "ip:*", RL_SORT_KEY, 0, count_key, &n), RL_OK);
    assert_int_equal(n, 2);
    memset(&fk, 0, sizeof fk);
    assert_int_equal(rl_keys_list(f->r, NULL, RL_SORT_ALLOWED, 2, record_key, &fk), RL_OK);
    assert_int_equal(fk.n, 2);
    assert_string_equal(fk.keys[0], "ip:1");
    assert_string_equal(fk.keys[1], "ip:2");
    assert_int_equal(rl_keys_list(f->r, NULL, 99, 0, count_key, &n), RL_EINVAL);
}

/* 5. first_seen_ns is the time of the first decision, 0 included. */
static void test_first_seen_at_zero(void **state)
{
    fixture *f = *state;
    rl_key_stats st;
    rl_result res;
    f->now = 0;
    assert_int_equal(rl_allow(f->r, "z", 1, &res), RL_OK);
    f->now = 5 * RL_SECOND;
    assert_int_equal(rl_allow(f->r, "z", 1, &res), RL_OK);
    assert_int_equal(rl_stats(f->r, "z", &st), RL_OK);
    assert_int_equal(st.first_seen_ns, 0);
    assert_int_equal(st.last_seen_ns, 5 * RL_SECOND);
    assert_int_equal(st.allowed, 2);
}

/* ---- leases that hold nothing any more ----------------------------------- */

static const rl_limit stream_lims[] = { RL_CONCURRENT("streams", "streams", 2),
                                        RL_LIMIT("rpm", NULL, 100, RL_MINUTE, 100) };

typedef struct lease_seen {
    int n, live, owner_dead;
} lease_seen;

static int see_lease(void *ctx, const rl_lease_info *l)
{
    lease_seen *s = ctx;
    s->n++;
    s->live += l->live != 0;
    s->owner_dead += !l->owner_alive;
    return 0;
}

static lease_seen leases_of(rl *r, const char *key)
{
    lease_seen s = { 0, 0, 0 };
    assert_int_equal(rl_leases_list(r, key, see_lease, &s), RL_OK);
    return s;
}

static int64_t in_flight_of(rl *r, const char *key)
{
    rl_key_stats st;
    assert_int_equal(rl_stats(r, key, &st), RL_OK);
    assert_int_equal(st.limits[0].in_flight + st.limits[0].remaining, 2);
    return st.limits[0].in_flight;
}

static int keys_in_flight(void *ctx, const rl_key_stats *st)
{
    *(int64_t *)ctx += st->limits[0].in_flight;
    return 0;
}

/* 6. Two leases whose TTL has passed hold nothing: rl_stats, rl_keys_list
 * and rl_leases_list say so at once, before any other lease on the key
 * reclaims them, and reading deletes nothing. */
static void test_expired_leases_not_held(void **state)
{
    fixture *f = *state;
    rl_cost one[] = { { "streams", 1 } };
    rl_lease a, b;
    rl_result res;
    lease_seen s;
    int64_t sum = 0;
    assert_int_equal(rl_tier_set(f->r, "default", stream_lims, 2), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "k", one, 1, 10 * RL_SECOND, &a, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_begin(f->r, "k", one, 1, 20 * RL_SECOND, &b, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(in_flight_of(f->r, "k"), 2);
    s = leases_of(f->r, "k");
    assert_int_equal(s.n, 2);
    assert_int_equal(s.live, 2);
    /* a's TTL is over: one of two held */
    f->now += 10 * RL_SECOND;
    assert_int_equal(in_flight_of(f->r, "k"), 1);
    s = leases_of(f->r, "k");
    assert_int_equal(s.n, 2);
    assert_int_equal(s.live, 1);
    assert_int_equal(s.owner_dead, 0);
    /* both over: nothing held, whatever the listing */
    f->now += 10 * RL_SECOND;
    assert_int_equal(in_flight_of(f->r, "k"), 0);
    assert_int_equal(rl_keys_list(f->r, NULL, RL_SORT_KEY, 0, keys_in_flight, &sum), RL_OK);
    assert_int_equal(sum, 0);
    s = leases_of(f->r, NULL);
    assert_int_equal(s.n, 2); /* a reader reclaims nothing */
    assert_int_equal(s.live, 0);
    /* the next lease reclaims them, as before */
    assert_int_equal(rl_lease_begin(f->r, "k", one, 1, 10 * RL_SECOND, &a, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(in_flight_of(f->r, "k"), 1);
    s = leases_of(f->r, NULL);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.live, 1);
}

/* A child process that takes n leases of one stream on key, for an hour,
 * and waits to be killed. */
static pid_t lease_holder(fixture *f, const char *key, int n)
{
    int fd[2];
    char c = 0;
    pid_t pid;
    assert_int_equal(pipe(fd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rl_cost one[] = { { "streams", 1 } };
        rl_lease l;
        rl_result res;
        rl *r = NULL;
        int i;
        close(fd[0]);
        if (open_with(f, NULL, 0, &r) != RL_OK)
            _exit(90);
        for (i = 0; i < n; i++)
            if (rl_lease_begin(r, key, one, 1, RL_HOUR, &l, &res) != RL_OK || !res.allowed)
                _exit(91);
        if (write(fd[1], "y", 1) != 1)
            _exit(92);
        for (;;)
            pause();
    }
    close(fd[1]);
    assert_int_equal(read(fd[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    close(fd[0]);
    return pid;
}

static int64_t clock_of(void *ctx)
{
    return ((fixture *)ctx)->now;
}

static void kill_holder(pid_t pid)
{
    int status;
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
}

/* 7. A process killed while its leases run: "2 of 2 held" no more. Its
 * slots show as free, its leases as not live with their owner dead, to
 * this handle and to a read-only reader, before anything reclaims them. */
static void test_dead_owners_leases_not_held(void **state)
{
    fixture *f = *state;
    rl_cost one[] = { { "streams", 1 } };
    rl_options o = RL_OPTIONS_INIT;
    rl_lease mine;
    rl_result res;
    lease_seen s;
    rl *ro = NULL;
    pid_t pid;
    assert_int_equal(rl_tier_set(f->r, "default", stream_lims, 2), RL_OK);
    pid = lease_holder(f, "k", 2);
    assert_int_equal(in_flight_of(f->r, "k"), 2);
    s = leases_of(f->r, "k");
    assert_int_equal(s.live, 2);
    kill_holder(pid);
    assert_int_equal(in_flight_of(f->r, "k"), 0);
    s = leases_of(f->r, "k");
    assert_int_equal(s.n, 2);
    assert_int_equal(s.live, 0);
    assert_int_equal(s.owner_dead, 2);
    /* a reader that may not write sees the same */
    o.clock = clock_of;
    o.clock_ctx = f;
    o.flags |= RL_OPEN_READONLY;
    assert_int_equal(rl_open(&ro, f->path, &o), RL_OK);
    assert_int_equal(in_flight_of(ro, "k"), 0);
    s = leases_of(ro, "k");
    assert_int_equal(s.live, 0);
    rl_close(ro);
    /* what is shown is what a decision meets: both slots are free */
    assert_int_equal(rl_lease_begin(f->r, "k", one, 1, RL_MINUTE, &mine, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_begin(f->r, "k", one, 1, RL_MINUTE, &mine, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(in_flight_of(f->r, "k"), 2);
    s = leases_of(f->r, "k");
    assert_int_equal(s.n, 2);
    assert_int_equal(s.live, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_stats_and_reset),
        BOTH(test_keys_list),
        BOTH(test_first_seen_at_zero),
        BOTH(test_expired_leases_not_held),
        SHARED(test_dead_owners_leases_not_held),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
