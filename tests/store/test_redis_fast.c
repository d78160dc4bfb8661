/*
 * test_redis_fast.c - the Redis store's decision script against core/:
 * a randomized differential test.
 *
 * What users rely on: a decision made on the Redis server in one round
 * trip (store/redis/fast.c) answers exactly what the C library answers,
 * for any policy rl accepts and at any clock, including the edges of
 * int64 time. Two handles with one injected clock, one on the memory
 * store and one on Redis, get the same random trace: tiers of GCRA limits
 * (counts and bursts up to 2^40, periods from 1 ns to 50 years), one to
 * three keys per decision, costs from 0 to past the burst, clocks near the
 * epoch, before it and near INT64_MAX, with resets, assignments,
 * cool-downs and reloads in between (which the script leaves to the usual
 * way). Every rc and result field, and every key's stats, must be equal,
 * and the script must have made most of the decisions. Each Redis
 * decision is also replayed by core and compared byte for byte by the
 * store, so a divergence in what is written fails too.
 *
 * Needs RL_TEST_REDIS (scripts/test and CI set it); skipped without.
 * RL_FAST_SECONDS sets the time (default 3), RL_FAST_SEED replays a run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "redis/rd.h"
#include "rl.h"
#include "rl_admin.h"
#include "rl_int.h"

static int64_t clk, last_retry; /* the last refusal's retry_after_ns */
static uint64_t rng, seed;

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return clk;
}

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int64_t rn(int64_t n) /* 0..n-1 */
{
    return n <= 1 ? 0 : (int64_t)(rnd() % (uint64_t)n);
}

static int chance(int pct)
{
    return rn(100) < pct;
}

#define Y50 ((int64_t)50 * 366 * 24 * 3600 * 1000000000LL)
static const char *const resources[] = { "requests", "tokens", "calls" };

/* A random GCRA limit rl accepts (rl_tier_set checks it; the caller
 * retries on a refusal). */
static void gen_limit(rl_limit *l, char *name, size_t cap, int i)
{
    static const int64_t periods[] = {
        1, 1000, 1000000, 1000000000LL, 60000000000LL, 3600000000000LL
    };
    snprintf(name, cap, "l%d", i);
    l->name = name;
    l->resource = resources[i % 3];
    l->algorithm = RL_ALGO_GCRA;
    l->count = chance(15) ? ((int64_t)1 << 40) - rn(3) : 1 + rn(chance(50) ? 10 : 100000);
    l->period_ns = chance(10) ? 1 + rn(Y50) : periods[rn(6)] * (1 + rn(3));
    l->burst = chance(30) ? 1 + rn(l->count < 20 ? 3 * l->count : l->count) : l->count;
}

/* A tier of 1-3 GCRA limits and, sometimes, a concurrency limit that a
 * plain decision does not name. */
static void gen_tier(rl *a, rl *b, const char *tier)
{
    for (;;) {
        rl_limit l[4];
        char names[4][8];
        size_t n = 1 + (size_t)rn(3), i;
        int ra, rb;
        for (i = 0; i < n; i++)
            gen_limit(&l[i], names[i], sizeof names[i], (int)i);
        if (chance(25)) {
            l[n].name = "slots";
            l[n].resource = "streams";
            l[n].count = l[n].burst = 1 + rn(4);
            l[n].period_ns = 0;
            l[n].algorithm = RL_ALGO_CONCURRENT;
            n++;
        }
        ra = rl_tier_set(a, tier, l, n);
        rb = rl_tier_set(b, tier, l, n);
        assert_int_equal(ra, rb);
        if (ra == RL_OK)
            return;
    }
}

static void next_clock(void)
{
    switch (rn(10)) {
    case 0:
        clk = chance(50) ? -(int64_t)rn(Y50) : INT64_MAX - rn(Y50); /* the edges */
        break;
    case 1:
    case 2:
        break; /* the same instant */
    case 3:
        clk += 1;
        break;
    case 5: /* exactly when the last refusal said, or a nanosecond early */
        if (last_retry > 0 && last_retry < INT64_MAX / 4 && clk < INT64_MAX / 2)
            clk += last_retry - (chance(30) ? 1 : 0);
        break;
    case 4:
        clk += rn(1000000000LL);
        break;
    default:
        clk += rn(chance(50) ? 1000 : 100000000LL);
    }
    if (clk < 0 && clk > -1000)
        clk = 0;
}

static void same_result(const char *what, int ra, const rl_result *a, int rb, const rl_result *b)
{
    if (ra == RL_OK && !a->allowed)
        last_retry = a->retry_after_ns;
    if (ra != rb || a->allowed != b->allowed || a->limit != b->limit ||
        a->remaining != b->remaining || a->retry_after_ns != b->retry_after_ns ||
        a->reset_after_ns != b->reset_after_ns || strcmp(a->limit_name, b->limit_name) != 0 ||
        a->degraded != b->degraded || a->key_index != b->key_index) {
        fail_msg("%s at %lld (seed RL_FAST_SEED=%llu): memory rc=%d allowed=%d limit=%lld rem=%lld "
                 "retry=%lld reset=%lld name=%s idx=%d; redis rc=%d allowed=%d limit=%lld "
                 "rem=%lld retry=%lld reset=%lld name=%s idx=%d",
                 what, (long long)clk, (unsigned long long)seed, ra, a->allowed,
                 (long long)a->limit, (long long)a->remaining, (long long)a->retry_after_ns,
                 (long long)a->reset_after_ns, a->limit_name, a->key_index, rb, b->allowed,
                 (long long)b->limit, (long long)b->remaining, (long long)b->retry_after_ns,
                 (long long)b->reset_after_ns, b->limit_name, b->key_index);
    }
}

static void same_stats(rl *a, rl *b, const char *key)
{
    rl_key_stats sa, sb;
    size_t i;
    memset(&sa, 0, sizeof sa);
    memset(&sb, 0, sizeof sb);
    assert_int_equal(rl_stats(a, key, &sa), RL_OK);
    assert_int_equal(rl_stats(b, key, &sb), RL_OK);
    assert_int_equal(sa.exists, sb.exists);
    assert_string_equal(sa.tier, sb.tier);
    assert_int_equal(sa.allowed, sb.allowed);
    assert_int_equal(sa.refused, sb.refused);
    assert_int_equal(sa.units, sb.units);
    assert_int_equal(sa.first_seen_ns, sb.first_seen_ns);
    assert_int_equal(sa.last_seen_ns, sb.last_seen_ns);
    assert_int_equal(sa.n_limits, sb.n_limits);
    for (i = 0; i < sa.n_limits; i++) {
        assert_int_equal(sa.limits[i].remaining, sb.limits[i].remaining);
        assert_int_equal(sa.limits[i].reset_after_ns, sb.limits[i].reset_after_ns);
        assert_int_equal(sa.limits[i].retry_after_ns, sb.limits[i].retry_after_ns);
        assert_int_equal(sa.limits[i].debt, sb.limits[i].debt);
    }
}

static const char *const keys[] = { "k0", "k1", "k2", "user:3" };

/* One random decision on both handles. */
static void decide(rl *a, rl *b)
{
    rl_cost c[3];
    rl_result x, y;
    const char *ks[3];
    size_t nc = 0, nk, i;
    int op = (int)rn(3), ra, rb;
    int64_t big = chance(10) ? ((int64_t)1 << 40) + 1 : 0;
    for (i = 0; i < 3; i++)
        if (i == 0 || chance(40)) {
            c[nc].resource = resources[i];
            c[nc++].amount = big ? big : chance(20) ? 0 : 1 + rn(chance(70) ? 3 : 1000000);
        }
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    if (op == 0) {
        const char *k = keys[rn(4)];
        ra = rl_allow(a, k, c[0].amount, &x);
        rb = rl_allow(b, k, c[0].amount, &y);
        same_result("rl_allow", ra, &x, rb, &y);
        return;
    }
    if (op == 1) {
        const char *k = keys[rn(4)];
        ra = rl_acquire(a, k, c, nc, &x);
        rb = rl_acquire(b, k, c, nc, &y);
        same_result("rl_acquire", ra, &x, rb, &y);
        return;
    }
    nk = 1 + (size_t)rn(3);
    i = (size_t)rn(4);
    for (size_t j = 0; j < nk; j++)
        ks[j] = keys[(i + j) % 4];
    ra = rl_acquire_keys(a, ks, nk, c, nc, &x);
    rb = rl_acquire_keys(b, ks, nk, c, nc, &y);
    same_result("rl_acquire_keys", ra, &x, rb, &y);
}

/* What the usual way does between decisions: the script must notice. */
static void disturb(rl *a, rl *b)
{
    const char *k = keys[rn(4)];
    switch (rn(4)) {
    case 0:
        assert_int_equal(rl_reset(a, k), rl_reset(b, k));
        break;
    case 1: {
        int64_t d = 1 + rn(1000000000LL);
        assert_int_equal(rl_penalize(a, k, NULL, d), rl_penalize(b, k, NULL, d));
        break;
    }
    case 2: {
        const char *t = chance(50) ? "alt" : NULL; /* NULL: back to rules and default */
        assert_int_equal(rl_key_assign(a, k, t), rl_key_assign(b, k, t));
        break;
    }
    default:
        gen_tier(a, b, chance(50) ? "default" : "alt");
    }
}

static void test_script_matches_core(void **state)
{
    const char *url = getenv("RL_TEST_REDIS"), *env;
    char path[512];
    double seconds = (env = getenv("RL_FAST_SECONDS")) ? atof(env) : 3.0;
    struct timespec t0, t1;
    rl_options o = RL_OPTIONS_INIT;
    rl *a = NULL, *b = NULL;
    long ops = 0, segments = 0;
    uint64_t hits = 0;
    rd_store *s;
    (void)state;
    seed = (env = getenv("RL_FAST_SEED")) ? strtoull(env, NULL, 10) : 0;
    if (!url || !*url)
        skip();
    if (!seed)
        seed = (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
    rng = seed | 1;
    printf("[ FAST     ] seed %llu (RL_FAST_SEED replays), %.1f s\n", (unsigned long long)seed,
           seconds);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        o.clock = fake_clock;
        clk = (int64_t)1700000000 * 1000000000LL + rn(1000000000LL);
        snprintf(path, sizeof path, "%s%sprefix=fast%ld.%lld:", url, strchr(url, '?') ? "&" : "?",
                 (long)getpid(), (long long)segments);
        assert_int_equal(rl_open(&a, ":memory:", &o), RL_OK);
        assert_int_equal(rl_open(&b, path, &o), RL_OK);
        gen_tier(a, b, "default");
        gen_tier(a, b, "alt");
        for (int i = 0; i < 400; i++, ops++) {
            next_clock();
            if (chance(4))
                disturb(a, b);
            else
                decide(a, b);
            if (chance(5))
                same_stats(a, b, keys[rn(4)]);
        }
        for (size_t k = 0; k < 4; k++)
            same_stats(a, b, keys[k]);
        s = (rd_store *)rl__store(b);
        /* the script decided most plain decisions (the rest: new policy,
         * cool-downs, assignments, costs past a burst) */
        assert_true(s->fast_hits > 0);
        hits += s->fast_hits;
        assert_int_equal(rl_reset_match(b, "*", NULL, 0, NULL), RL_OK);
        rl_close(a);
        rl_close(b);
        a = b = NULL;
        segments++;
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
    printf("[ FAST     ] %ld operations in %ld segments, %llu decided by the script, every answer "
           "the same\n",
           ops, segments, (unsigned long long)hits);
}

/* A row damaged where the script reads it (a remainder not below its
 * limit's count: state.c refuses it) is not decided on the server: the
 * usual way reports RL_ECORRUPT, and the row is left as it was. */
static void test_damaged_row_untouched(void **state)
{
    static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 10, 1000000000LL, 10) };
    const char *url = getenv("RL_TEST_REDIS");
    char path[512], name[RD_NAME_MAX];
    rl_options o = RL_OPTIONS_INIT;
    rl_result res;
    redisReply *rep;
    rd_store *s;
    rl *r = NULL;
    unsigned char row[RD_ROW_MAX];
    size_t len;
    int i;
    (void)state;
    if (!url || !*url)
        skip();
    o.default_limits = lims;
    o.n_default_limits = 1;
    snprintf(path, sizeof path, "%s%sprefix=fastbad%ld:", url, strchr(url, '?') ? "&" : "?",
             (long)getpid());
    assert_int_equal(rl_open(&r, path, &o), RL_OK);
    for (i = 0; i < 2; i++) /* the second is decided by the script */
        assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
    s = (rd_store *)rl__store(r);
    assert_true(s->fast_hits > 0);
    rd_row_name(s, "k", name);
    rep = redisCommand(s->c, "HGET %s r", name);
    assert_true(rep && rep->type == REDIS_REPLY_STRING && rep->len == 2 + 40 + 18 + 49);
    len = rep->len;
    memcpy(row, rep->str, len);
    freeReplyObject(rep);
    row[2 + 40 + 18 + 41] = 10; /* slot 0's rem = count */
    rep = redisCommand(s->c, "HSET %s r %b", name, row, len);
    freeReplyObject(rep);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_ECORRUPT);
    assert_non_null(strstr(rl_errmsg(r), "damaged"));
    rep = redisCommand(s->c, "HGET %s r", name);
    assert_true(rep && rep->type == REDIS_REPLY_STRING && rep->len == len);
    assert_memory_equal(rep->str, row, len); /* nothing written */
    freeReplyObject(rep);
    assert_int_equal(rl_reset_match(r, "*", NULL, 0, NULL), RL_OK);
    rl_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_script_matches_core),
        cmocka_unit_test(test_damaged_row_untouched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
