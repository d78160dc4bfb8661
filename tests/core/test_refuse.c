/*
 * test_refuse.c - core/refuse.c and rl__decide_read through the API, on
 * every store (api_fixture.h): once a key refused, the next refusals of
 * the same handle are answered from a read snapshot, without a write
 * transaction (rl__test_write_tx counts them), with the answer the write
 * path gives; their counters are written before rl_stats of the same
 * handle, folded into its next write, at the bound (RL_PENDING_BOUND_NS,
 * on the test clock rl__pending_clock), when the table is full, and at
 * rl_close; a reset by another process (fork) drops them; an admission
 * goes through the write path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api_fixture.h"
#include "rl_int.h"

static const rl_limit one_per_hour[] = { RL_LIMIT("hourly", NULL, 1, RL_HOUR, 1) };

static int64_t mono_now;
static int64_t test_mono(void)
{
    return mono_now;
}

/* The handle refuses key: admitted once, refused once on the write path
 * (which leaves the hint). The write path's refusal is *first. */
static void exhaust(rl *r, const char *key, rl_result *first)
{
    rl_result res;
    assert_int_equal(rl_allow(r, key, 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_allow(r, key, 1, first), RL_OK);
    assert_false(first->allowed);
}

static void same_result(const rl_result *a, const rl_result *b)
{
    assert_int_equal(a->allowed, b->allowed);
    assert_int_equal(a->limit, b->limit);
    assert_int_equal(a->remaining, b->remaining);
    assert_int_equal(a->retry_after_ns, b->retry_after_ns);
    assert_int_equal(a->reset_after_ns, b->reset_after_ns);
    assert_string_equal(a->limit_name, b->limit_name);
    assert_int_equal(a->key_index, b->key_index);
    assert_int_equal(a->degraded, b->degraded);
}

static void set_policy(fixture *f)
{
    assert_int_equal(rl_tier_set(f->r, "default", one_per_hour, 1), RL_OK);
}

/* Refusals without a write, the write path's answers, counters exact in
 * rl_stats of the same handle (which writes them first). */
static void test_refusals_read_only(void **state)
{
    fixture *f = *state;
    rl_result first, res;
    rl_key_stats st;
    unsigned long w;
    int i;
    rl__pending_clock = NULL;
    set_policy(f);
    exhaust(f->r, "hot", &first);
    w = rl__test_write_tx;
    for (i = 0; i < 5; i++) {
        assert_int_equal(rl_allow(f->r, "hot", 1, &res), RL_OK);
        same_result(&res, &first);
    }
    assert_int_equal(rl__test_write_tx, w); /* none written */
    f->now += RL_MILLISECOND;               /* a later refusal: last_seen moves */
    assert_int_equal(rl_allow(f->r, "hot", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ns, first.retry_after_ns - RL_MILLISECOND);
    assert_int_equal(rl__test_write_tx, w);
    /* rl_acquire too */
    {
        rl_cost c = { "requests", 1 };
        assert_int_equal(rl_acquire(f->r, "hot", &c, 1, &res), RL_OK);
        assert_false(res.allowed);
    }
    assert_int_equal(rl__test_write_tx, w);
    assert_int_equal(rl_stats(f->r, "hot", &st), RL_OK);
    assert_int_equal(rl__test_write_tx, w + 1); /* one flush */
    assert_int_equal(st.allowed, 1);
    assert_int_equal(st.refused, 8);
    assert_int_equal(st.first_seen_ns, T0);
    assert_int_equal(st.last_seen_ns, T0 + RL_MILLISECOND);
    /* nothing pending: a second read writes nothing */
    assert_int_equal(rl_stats(f->r, "hot", &st), RL_OK);
    assert_int_equal(rl__test_write_tx, w + 1);
    /* an admission takes the write path, which writes what is pending */
    f->now += RL_HOUR;
    assert_int_equal(rl_allow(f->r, "hot", 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl__test_write_tx, w + 2);
    assert_int_equal(rl_stats(f->r, "hot", &st), RL_OK);
    assert_int_equal(st.allowed, 2);
    assert_int_equal(st.refused, 8);
}

/* Another handle's write path gives the same answer at the same time, and
 * another handle sees the counts once they are written. */
static void test_same_answer_as_write_path(void **state)
{
    fixture *f = *state;
    rl_result first, res, other;
    rl_key_stats st;
    rl *r2;
    set_policy(f);
    exhaust(f->r, "k", &first);
    assert_int_equal(open_with(f, NULL, 0, &r2), RL_OK);
    f->now += 7 * RL_SECOND;
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK); /* read path */
    assert_int_equal(rl_allow(r2, "k", 1, &other), RL_OK); /* write path */
    same_result(&res, &other);
    assert_int_equal(rl_stats(r2, "k", &st), RL_OK);
    assert_int_equal(st.refused, 2); /* f->r's pending one is not written yet */
    rl_close(f->r);                  /* ... until rl_close */
    assert_int_equal(rl_stats(r2, "k", &st), RL_OK);
    assert_int_equal(st.refused, 3);
    assert_int_equal(st.last_seen_ns, T0 + 7 * RL_SECOND);
    f->r = r2;
}

/* The bound: the oldest pending refusal is written by the call that finds
 * it RL_PENDING_BOUND_NS old (the test's monotonic clock). */
static void test_flush_at_bound(void **state)
{
    fixture *f = *state;
    rl_result first, res;
    rl_key_stats st;
    unsigned long w;
    mono_now = 1000 * RL_SECOND;
    rl__pending_clock = test_mono;
    set_policy(f);
    exhaust(f->r, "b", &first);
    w = rl__test_write_tx;
    assert_int_equal(rl_allow(f->r, "b", 1, &res), RL_OK);
    mono_now += RL_PENDING_BOUND_NS - 1;
    assert_int_equal(rl_allow(f->r, "b", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(rl__test_write_tx, w); /* not due yet */
    mono_now += 1;
    assert_int_equal(rl_allow(f->r, "b", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(rl__test_write_tx, w + 1); /* due: written */
    if (f->sqlite) {                            /* seen by another handle */
        rl *r2;
        assert_int_equal(open_with(f, NULL, 0, &r2), RL_OK);
        assert_int_equal(rl_stats(r2, "b", &st), RL_OK);
        assert_int_equal(st.refused, 4);
        rl_close(r2);
    }
    assert_int_equal(rl_stats(f->r, "b", &st), RL_OK);
    assert_int_equal(rl__test_write_tx, w + 1);
    assert_int_equal(st.refused, 4);
    rl__pending_clock = NULL;
}

/* A table with no room is written first (one transaction). rl_acquire_keys
 * of a hinted key and one the table does not hold needs a new entry. */
static void test_flush_when_full(void **state)
{
    fixture *f = *state;
    rl_result first, res;
    rl_key_stats st;
    char key[RL_PENDING_MAX][16];
    const char *two[2];
    rl_cost c = { "requests", 1 };
    unsigned long w;
    int i;
    rl__pending_clock = NULL;
    set_policy(f);
    assert_int_equal(rl_allow(f->r, "x", 1, &res), RL_OK);
    for (i = 0; i < RL_PENDING_MAX; i++) {
        snprintf(key[i], sizeof key[i], "k%d", i);
        exhaust(f->r, key[i], &first);
    }
    w = rl__test_write_tx;
    for (i = 0; i < RL_PENDING_MAX; i++) {
        assert_int_equal(rl_allow(f->r, key[i], 1, &res), RL_OK);
        assert_false(res.allowed);
    }
    assert_int_equal(rl__test_write_tx, w);
    two[0] = key[0];
    two[1] = "x";
    assert_int_equal(rl_acquire_keys(f->r, two, 2, &c, 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(rl__test_write_tx, w + 1);
    assert_int_equal(rl_stats(f->r, key[RL_PENDING_MAX - 1], &st), RL_OK);
    assert_int_equal(st.refused, 2);
    assert_int_equal(rl_stats(f->r, key[0], &st), RL_OK);
    assert_int_equal(st.refused, 3);
    assert_int_equal(rl_stats(f->r, "x", &st), RL_OK);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.allowed, 1);
}

/* The handle's own reset drops what was pending: the refusals came before
 * it. */
static void test_own_reset_drops(void **state)
{
    fixture *f = *state;
    rl_result first, res;
    rl_key_stats st;
    set_policy(f);
    exhaust(f->r, "r", &first);
    assert_int_equal(rl_allow(f->r, "r", 1, &res), RL_OK);
    assert_int_equal(rl_reset(f->r, "r"), RL_OK);
    assert_int_equal(rl_allow(f->r, "r", 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_stats(f->r, "r", &st), RL_OK);
    assert_int_equal(st.allowed, 1);
    assert_int_equal(st.refused, 0);
}

/* A reset by another process drops them too, even when that process makes
 * the key again at the same clock time (the same first_seen). */
static void test_other_reset_drops(void **state)
{
    fixture *f = *state;
    rl_result first, res;
    rl_key_stats st;
    int status;
    pid_t pid;
    set_policy(f);
    exhaust(f->r, "o", &first);
    assert_int_equal(rl_allow(f->r, "o", 1, &res), RL_OK); /* pending */
    assert_false(res.allowed);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rl *r2;
        int ok = open_with(f, NULL, 0, &r2) == RL_OK && rl_reset(r2, "o") == RL_OK &&
                 rl_allow(r2, "o", 1, &res) == RL_OK && res.allowed;
        rl_close(r2);
        _exit(ok ? 0 : 1); /* f->r crossed fork(): left alone here */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(rl_stats(f->r, "o", &st), RL_OK);
    assert_int_equal(st.allowed, 1);
    assert_int_equal(st.refused, 0);
    assert_int_equal(st.first_seen_ns, T0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_refusals_read_only), SHARED(test_same_answer_as_write_path),
        BOTH(test_flush_at_bound),     BOTH(test_flush_when_full),
        BOTH(test_own_reset_drops),    SHARED(test_other_reset_drops),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
