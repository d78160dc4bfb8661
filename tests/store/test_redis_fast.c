/*
 * test_redis_fast.c - the Redis store's decision script against core/:
 * a randomized differential test.
 *
 * What users rely on: a decision made on the Redis server in one round
 * trip (store/redis/fast.c) answers exactly what the C library answers,
 * for any policy rl accepts and at any clock, including the edges of
 * int64 time. Two handles with one injected clock, one on the memory
 * store and one on Redis, get the same random trace: tiers of GCRA and
 * sliding window limits (counts and bursts up to 2^40, periods from 1 ns
 * to 50 years), one to three keys per decision, costs from 0 to past the
 * burst, reservations with horizons of 0, INT64_MAX, random, exactly the
 * delay last needed and a nanosecond less, their cancelling (at once or
 * later), clocks near the epoch, before it and near INT64_MAX, with
 * cool-downs (of every resource or of one, lifted, until the end of
 * time), resets, assignments and reloads in between (which the script
 * leaves to the usual way, but for cool-downs). Every rc and result field, every
 * reservation's, and every key's stats must be equal, and the script must
 * have made most of the decisions, reservations, cool-down refusals,
 * calls that name a sliding window or a concurrency limit, cancels that
 * give something back and cool-downs set.
 * Each Redis decision is also replayed by core and compared byte for byte
 * by the store, so a divergence in what is written fails too.
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
static int64_t last_delay;      /* the last reservation's delay_ns */
static uint64_t rng, seed;
/* Calls on the Redis handle: plain ones, reservations, and those a
 * cool-down refused; of each, how many took a write transaction (not a
 * refusal answered from a read snapshot, refuse.c) and how many of those
 * the script decided. */
typedef struct tally {
    long n, wrote, hit;
} tally;
static tally t_plain, t_rsv, t_cool, t_win, t_cancel, t_pen, t_slot;
static int win_call;  /* the call being made names a sliding window limit */
static int slot_call; /* ... a concurrency limit */
static uint64_t hits0;
static unsigned long tx0;
static rl_reservation rva, rvb; /* the last reservation of each handle */

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

/* A random GCRA or sliding window limit rl accepts (rl_tier_set checks
 * it; the caller retries on a refusal). */
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
    if (chance(40)) { /* a window has no burst: it is its count */
        l->algorithm = RL_ALGO_SLIDING_WINDOW;
        l->burst = l->count;
    }
}

/* A tier of 1-3 GCRA or sliding window limits and, sometimes, a
 * concurrency limit (of "streams", which a decision names now and then). */
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

static uint64_t hits_of(rl *b)
{
    return ((rd_store *)rl__store(b))->fast_hits;
}

/* Right before a call on the Redis handle. */
static void mark(rl *b)
{
    hits0 = hits_of(b);
    tx0 = rl__test_write_tx;
}

static void tally_add(tally *t, int wrote, int hit)
{
    t->n++;
    t->wrote += wrote;
    t->hit += hit;
}

/* Counts the call on the Redis handle made since mark(). */
static void count(rl *b, int rc, int rsv, int cool)
{
    /* an error (a cost past a burst, a resource no tier limits) is not
     * the script's to answer: only decisions count */
    int hit = hits_of(b) != hits0, wrote = rc == RL_OK && rl__test_write_tx != tx0;
    tally_add(rsv ? &t_rsv : &t_plain, wrote, hit);
    if (cool)
        tally_add(&t_cool, wrote, hit);
    if (win_call)
        tally_add(&t_win, wrote, hit);
    if (slot_call)
        tally_add(&t_slot, wrote, hit);
}

/* Whether a call on keys ks naming the resources of c has a limit of
 * algorithm algo to decide: read from the memory handle before the call. */
static int names_algo(rl *a, const char *const *ks, size_t nk, const rl_cost *c, size_t nc,
                      rl_algorithm algo)
{
    rl_key_stats st;
    size_t k, i, j;
    for (k = 0; k < nk; k++) {
        memset(&st, 0, sizeof st);
        if (rl_stats(a, ks[k], &st) != RL_OK)
            continue;
        for (i = 0; i < st.n_limits; i++)
            for (j = 0; j < nc; j++)
                if (st.limits[i].algorithm == algo &&
                    strcmp(st.limits[i].resource, c[j].resource) == 0)
                    return 1;
    }
    return 0;
}

static void names(rl *a, const char *const *ks, size_t nk, const rl_cost *c, size_t nc)
{
    win_call = names_algo(a, ks, nk, c, nc, RL_ALGO_SLIDING_WINDOW);
    slot_call = names_algo(a, ks, nk, c, nc, RL_ALGO_CONCURRENT);
}

static int cooled(const rl_result *res)
{
    return !res->allowed && strcmp(res->limit_name, "cooldown") == 0;
}

/* Of the decisions that took the write path and succeeded, at least
 * 1/share were the script's, once there are enough. The rest: a new
 * policy, assignments, resources a tier does not limit, a key new to a
 * cool-down (its row is rl_penalize's), and refusals answered from a read
 * snapshot whose counters wait to be written (refuse.c: the next write on
 * the key goes the usual way and folds them in), which is most of what a
 * cool-down refuses, as it refuses the same key again and again. */
static void tally_check(const char *what, const tally *t, long enough, long share)
{
    printf("[ FAST     ] %s: %ld calls, %ld written, %ld of them by the script\n", what, t->n,
           t->wrote, t->hit);
    if (t->wrote >= enough)
        assert_true(t->hit * share > t->wrote);
}

static void same_rv(int ra, const rl_reservation *a, int rb, const rl_reservation *b)
{
    size_t i;
    int same = ra == rb && a->ok == b->ok && a->delay_ns == b->delay_ns &&
               a->time_to_act == b->time_to_act && a->n_ == b->n_;
    for (i = 0; same && i < a->n_ && i < RL_MAX_LIMITS; i++)
        same = a->amount_[i] == b->amount_[i] && a->id_[i] == b->id_[i] &&
               a->tat_[i] == b->tat_[i] && a->rem_[i] == b->rem_[i];
    if (ra == RL_OK)
        last_delay = a->delay_ns;
    if (!same)
        fail_msg("rl_reserve at %lld (seed RL_FAST_SEED=%llu): memory rc=%d ok=%d delay=%lld "
                 "act=%lld n=%zu; redis rc=%d ok=%d delay=%lld act=%lld n=%zu",
                 (long long)clk, (unsigned long long)seed, ra, a->ok, (long long)a->delay_ns,
                 (long long)a->time_to_act, a->n_, rb, b->ok, (long long)b->delay_ns,
                 (long long)b->time_to_act, b->n_);
}

/* rl_cancel of the last reservation of each handle, at once or later
 * (its window moved on, its key reset or re-tiered, its time come). Of
 * those that still have something to give back, the script must make
 * most. */
static void cancel(rl *a, rl *b)
{
    int live = rvb.ok && rvb.n_ > 0 && rvb.time_to_act > clk, ra, rb;
    ra = rl_cancel(a, &rva);
    mark(b);
    rb = rl_cancel(b, &rvb);
    assert_int_equal(ra, rb);
    assert_int_equal(rva.n_, rvb.n_);
    if (live)
        tally_add(&t_cancel, rb == RL_OK && rl__test_write_tx != tx0, hits_of(b) != hits0);
}

/* A reservation on both handles, with a horizon that hits the edges:
 * none, no limit, exactly the delay the last one needed or just under. */
static void reserve(rl *a, rl *b)
{
    const char *k = keys[rn(4)];
    int64_t cost = chance(10) ? 0 : chance(5) ? ((int64_t)1 << 40) + 1 : 1 + rn(3), d;
    rl_cost rc = { "requests", cost };
    int ra, rb;
    switch (rn(6)) {
    case 0:
        d = 0;
        break;
    case 1:
        d = INT64_MAX;
        break;
    case 2:
        d = last_delay;
        break;
    case 3:
        d = last_delay > 0 ? last_delay - 1 : 0;
        break;
    default:
        d = rn(chance(50) ? 1000000 : 2000000000LL);
    }
    names(a, &k, 1, &rc, 1);
    ra = rl_reserve(a, k, cost, d, &rva);
    mark(b);
    rb = rl_reserve(b, k, cost, d, &rvb);
    count(b, rb, 1, 0);
    same_rv(ra, &rva, rb, &rvb);
    if (chance(15))
        cancel(a, b);
}

/* One random decision on both handles. */
static void decide(rl *a, rl *b)
{
    rl_cost c[4];
    rl_result x, y;
    const char *ks[3];
    size_t nc = 0, nk, i;
    int op = (int)rn(4), ra, rb;
    int64_t big = chance(10) ? ((int64_t)1 << 40) + 1 : 0;
    for (i = 0; i < 3; i++)
        if (i == 0 || chance(40)) {
            c[nc].resource = resources[i];
            c[nc++].amount = big ? big : chance(20) ? 0 : 1 + rn(chance(70) ? 3 : 1000000);
        }
    if (chance(20)) { /* a concurrency limit, checked and not held */
        c[nc].resource = "streams";
        c[nc++].amount = rn(4);
    }
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    if (op == 3) {
        if (chance(10))
            cancel(a, b); /* a reservation made a while ago */
        else
            reserve(a, b);
        return;
    }
    if (op == 0) {
        const char *k = keys[rn(4)];
        names(a, &k, 1, c, 1);
        ra = rl_allow(a, k, c[0].amount, &x);
        mark(b);
        rb = rl_allow(b, k, c[0].amount, &y);
        count(b, rb, 0, cooled(&y));
        same_result("rl_allow", ra, &x, rb, &y);
        return;
    }
    if (op == 1) {
        const char *k = keys[rn(4)];
        names(a, &k, 1, c, nc);
        ra = rl_acquire(a, k, c, nc, &x);
        mark(b);
        rb = rl_acquire(b, k, c, nc, &y);
        count(b, rb, 0, cooled(&y));
        same_result("rl_acquire", ra, &x, rb, &y);
        return;
    }
    nk = 1 + (size_t)rn(3);
    i = (size_t)rn(4);
    for (size_t j = 0; j < nk; j++)
        ks[j] = keys[(i + j) % 4];
    names(a, ks, nk, c, nc);
    ra = rl_acquire_keys(a, ks, nk, c, nc, &x);
    mark(b);
    rb = rl_acquire_keys(b, ks, nk, c, nc, &y);
    count(b, rb, 0, cooled(&y));
    same_result("rl_acquire_keys", ra, &x, rb, &y);
}

/* What the usual way does between decisions: the script must notice. */
static void disturb(rl *a, rl *b)
{
    const char *k = keys[rn(4)];
    switch (rn(8)) {
    case 0:
        assert_int_equal(rl_reset(a, k), rl_reset(b, k));
        break;
    case 1:
    case 3:
    case 4:
    case 5: { /* a cool-down: of every resource or of one; lifted; for ever */
        static const char *const res[] = { NULL, "requests", "tokens", "calls" };
        const char *rs = res[rn(4)];
        int64_t d = chance(10) ? 0 : chance(5) ? Y50 : 1 + rn(chance(50) ? 1000 : 1000000000LL);
        int ra = rl_penalize(a, k, rs, d), rb;
        mark(b);
        rb = rl_penalize(b, k, rs, d);
        assert_int_equal(ra, rb);
        tally_add(&t_pen, rb == RL_OK && rl__test_write_tx != tx0, hits_of(b) != hits0);
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
    if (!url || !*url) {
        skip();
        return; /* skip() does not return: for the analyzer */
    }
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
        memset(&rva, 0, sizeof rva);
        memset(&rvb, 0, sizeof rvb);
        for (int i = 0; i < 400; i++, ops++) {
            next_clock();
            if (chance(6))
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
    tally_check("plain decisions", &t_plain, 200, 2);
    tally_check("reservations", &t_rsv, 200, 2);
    tally_check("refusals by a cool-down", &t_cool, 100, 5);
    tally_check("calls naming a sliding window", &t_win, 200, 2);
    tally_check("cancels with something to give back", &t_cancel, 100, 2);
    tally_check("cool-downs set (rl_penalize)", &t_pen, 100, 2);
    tally_check("calls naming a concurrency limit", &t_slot, 100, 2);
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
    if (!url || !*url) {
        skip();
        return; /* skip() does not return: for the analyzer */
    }
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

/* ---- edges, one by one: each call on both stores, the same answer, and
 * the Redis one decided by the script ------------------------------------- */

typedef struct pair {
    rl *a, *b; /* memory, Redis */
} pair;

/* Refusal hints (refuse.c) in the injected clock too, so that a refusal
 * does not send the next call on its key to a read snapshot for real
 * time: every call here takes the write path. */
static int64_t pending_clock(void)
{
    return clk;
}

static int pair_open(pair *p, const rl_limit *l, size_t n, const char *tag)
{
    const char *url = getenv("RL_TEST_REDIS");
    char path[512];
    rl_options o = RL_OPTIONS_INIT;
    rl_reservation warm;
    p->a = p->b = NULL;
    if (!url || !*url)
        return 0;
    o.clock = fake_clock;
    o.default_limits = l;
    o.n_default_limits = n;
    snprintf(path, sizeof path, "%s%sprefix=fast%s%ld:", url, strchr(url, '?') ? "&" : "?", tag,
             (long)getpid());
    assert_int_equal(rl_open(&p->a, ":memory:", &o), RL_OK);
    assert_int_equal(rl_open(&p->b, path, &o), RL_OK);
    rl__pending_clock = pending_clock;
    /* the first decision of a handle learns the policy the usual way */
    clk = 0;
    assert_int_equal(rl_reserve(p->a, "warm-up", 0, 0, &warm), RL_OK);
    assert_int_equal(rl_reserve(p->b, "warm-up", 0, 0, &warm), RL_OK);
    return 1;
}

static void pair_close(pair *p)
{
    assert_int_equal(rl_reset_match(p->b, "*", NULL, 0, NULL), RL_OK);
    rl_close(p->a);
    rl_close(p->b);
    rl__pending_clock = NULL;
}

/* rl_acquire of one resource on both; the Redis one by the script. */
static rl_result both_acquire(pair *p, const char *k, const char *resource, int64_t cost)
{
    rl_cost c = { resource, cost };
    rl_result x, y;
    uint64_t h = hits_of(p->b);
    int ra = rl_acquire(p->a, k, &c, 1, &x), rb = rl_acquire(p->b, k, &c, 1, &y);
    same_result("rl_acquire", ra, &x, rb, &y);
    assert_int_equal(ra, RL_OK);
    assert_int_equal(hits_of(p->b), h + 1);
    return x;
}

static rl_reservation both_reserve(pair *p, const char *k, int64_t cost, int64_t max_delay)
{
    rl_reservation x, y;
    uint64_t h = hits_of(p->b);
    int ra = rl_reserve(p->a, k, cost, max_delay, &x),
        rb = rl_reserve(p->b, k, cost, max_delay, &y);
    same_rv(ra, &x, rb, &y);
    assert_int_equal(ra, RL_OK);
    assert_int_equal(hits_of(p->b), h + 1);
    return x;
}

static void both_penalize(pair *p, const char *k, const char *resource, int64_t d)
{
    assert_int_equal(rl_penalize(p->a, k, resource, d), RL_OK);
    assert_int_equal(rl_penalize(p->b, k, resource, d), RL_OK);
}

/* The bytes of key k's state on Redis (after the row's 2 + tier + 40). */
static size_t state_len(pair *p, const char *k)
{
    rd_store *s = (rd_store *)rl__store(p->b);
    char name[RD_NAME_MAX];
    redisReply *rep;
    size_t len;
    rd_row_name(s, k, name);
    rep = redisCommand(s->c, "HGET %s r", name);
    assert_true(rep && rep->type == REDIS_REPLY_STRING && rep->len >= 42);
    len = rep->len - 42 - (unsigned char)rep->str[1];
    freeReplyObject(rep);
    return len;
}

/* A cool-down refuses until its end and not at it; one of another
 * resource refuses only that one; a reservation waits for it when it ends
 * within the horizon, exactly at it too; ended ones leave the state. */
static void test_cooldown_edges(void **state)
{
    static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 10, RL_SECOND, 10),
                                     RL_LIMIT("tok", "tokens", 1000, RL_SECOND, 1000) };
    const int64_t t0 = (int64_t)1700000000 * RL_SECOND;
    rl_result res;
    rl_reservation rv;
    uint64_t h;
    pair p;
    (void)state;
    if (!pair_open(&p, lims, 2, "cool")) {
        skip();
        return;
    }
    clk = t0;
    assert_true(both_acquire(&p, "k", "requests", 1).allowed); /* a row of this tier */
    both_penalize(&p, "k", NULL, 1000);
    assert_int_equal(state_len(&p, "k"), 18 + 3 * 49);
    clk = t0 + 999;
    res = both_acquire(&p, "k", "requests", 1);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "cooldown");
    assert_int_equal(res.retry_after_ns, 1);
    both_penalize(&p, "k", "tokens", 5000); /* until t0 + 5999 */
    clk = t0 + 1000;                        /* the cool-down of every resource ends: admitted */
    assert_true(both_acquire(&p, "k", "requests", 1).allowed);
    assert_int_equal(state_len(&p, "k"), 18 + 3 * 49); /* the ended one left */
    res = both_acquire(&p, "k", "tokens", 1);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ns, 4999);
    both_penalize(&p, "k", NULL, 5000); /* until t0 + 6000 */
    rv = both_reserve(&p, "k", 1, 4999);
    assert_false(rv.ok);
    assert_int_equal(rv.delay_ns, 5000);
    rv = both_reserve(&p, "k", 1, 5000); /* exactly at the horizon */
    assert_true(rv.ok);
    assert_int_equal(rv.time_to_act, t0 + 6000);
    clk = t0 + 6000; /* both ended at once: the state holds the limits only */
    assert_true(both_acquire(&p, "k", "tokens", 1).allowed);
    assert_int_equal(state_len(&p, "k"), 18 + 2 * 49);
    both_penalize(&p, "k", "requests", 1000);
    both_penalize(&p, "k", "requests", 0); /* lifted */
    assert_true(both_reserve(&p, "k", 1, 0).ok);
    same_stats(p.a, p.b, "k");
    /* rl_penalize by the script: one that ends a nanosecond from now
     * stays when another is set, one that ends now leaves */
    h = hits_of(p.b);
    both_penalize(&p, "k", "calls", 2);
    clk += 1;
    both_penalize(&p, "k", "tokens", 10);
    assert_int_equal(state_len(&p, "k"), 18 + 4 * 49);
    clk += 1;
    both_penalize(&p, "k", "tokens", 10);
    assert_int_equal(state_len(&p, "k"), 18 + 3 * 49);
    assert_int_equal(hits_of(p.b), h + 3);
    same_stats(p.a, p.b, "k");
    pair_close(&p);
}

/* A reservation is admitted when the caller can act within its horizon,
 * exactly at it too, refused a nanosecond short of it; a horizon of 0 is
 * now or never; a cancel gives the units back. */
static void test_reserve_horizon_edges(void **state)
{
    static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 1, RL_SECOND, 1) };
    const int64_t t0 = -(int64_t)1700000000 * RL_SECOND; /* before the epoch */
    rl_reservation rv, ra, rb;
    uint64_t h;
    pair p;
    (void)state;
    if (!pair_open(&p, lims, 1, "rsv")) {
        skip();
        return;
    }
    clk = t0;
    rv = both_reserve(&p, "k", 1, 0);
    assert_true(rv.ok);
    assert_int_equal(rv.delay_ns, 0);
    rv = both_reserve(&p, "k", 1, 0);
    assert_false(rv.ok);
    assert_int_equal(rv.delay_ns, RL_SECOND);
    assert_false(both_reserve(&p, "k", 1, RL_SECOND - 1).ok);
    rv = both_reserve(&p, "k", 1, RL_SECOND);
    assert_true(rv.ok);
    assert_int_equal(rv.delay_ns, RL_SECOND);
    assert_int_equal(rv.time_to_act, t0 + RL_SECOND);
    assert_false(both_reserve(&p, "k", 0, RL_SECOND - 1).ok); /* a check: 2 s owed */
    assert_true(both_reserve(&p, "k", 0, 2 * RL_SECOND).ok);
    /* cancelled on both, on Redis by the script too: the next one waits
     * 1 s again */
    assert_int_equal(rl_reserve(p.a, "k", 1, INT64_MAX, &ra), RL_OK);
    h = hits_of(p.b);
    assert_int_equal(rl_reserve(p.b, "k", 1, INT64_MAX, &rb), RL_OK);
    same_rv(RL_OK, &ra, RL_OK, &rb);
    assert_int_equal(rb.delay_ns, 2 * RL_SECOND);
    assert_int_equal(rl_cancel(p.a, &ra), RL_OK);
    assert_int_equal(rl_cancel(p.b, &rb), RL_OK);
    assert_int_equal(hits_of(p.b), h + 2);
    rv = both_reserve(&p, "k", 1, INT64_MAX);
    assert_int_equal(rv.delay_ns, 2 * RL_SECOND);
    same_stats(p.a, p.b, "k");
    pair_close(&p);
}

/* Near the ends of int64 time: a reservation that would pass INT64_MAX is
 * refused for ever; a delay past INT64_MAX (a clock near INT64_MIN, a
 * state or a cool-down near INT64_MAX) saturates there, which a horizon
 * of INT64_MAX admits and INT64_MAX - 1 does not, as in core. */
static void test_reserve_int64_edges(void **state)
{
    static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 1, RL_SECOND, 1) };
    rl_reservation rv;
    pair p;
    (void)state;
    if (!pair_open(&p, lims, 1, "edge")) {
        skip();
        return;
    }
    clk = INT64_MAX - 3 * RL_SECOND;
    assert_true(both_reserve(&p, "k", 1, INT64_MAX).ok);
    assert_int_equal(both_reserve(&p, "k", 1, INT64_MAX).delay_ns, RL_SECOND);
    rv = both_reserve(&p, "k", 1, INT64_MAX); /* its TAT: INT64_MAX */
    assert_true(rv.ok);
    assert_int_equal(rv.time_to_act, INT64_MAX - RL_SECOND);
    rv = both_reserve(&p, "k", 1, INT64_MAX);
    assert_false(rv.ok);
    assert_int_equal(rv.delay_ns, INT64_MAX);
    assert_true(both_reserve(&p, "k2", 1, INT64_MAX).ok); /* TAT INT64_MAX - 2 s */
    assert_true(both_reserve(&p, "k3", 1, 0).ok);
    clk = INT64_MAX - 10;
    both_penalize(&p, "k3", NULL, RL_FILL_MAX); /* until INT64_MAX */
    clk = INT64_MIN + 1000;
    assert_false(both_reserve(&p, "k2", 1, INT64_MAX - 1).ok);
    rv = both_reserve(&p, "k2", 1, INT64_MAX);
    assert_true(rv.ok);
    assert_int_equal(rv.delay_ns, INT64_MAX);
    assert_false(both_reserve(&p, "k3", 1, INT64_MAX - 1).ok);
    rv = both_reserve(&p, "k3", 1, INT64_MAX);
    assert_true(rv.ok);
    assert_int_equal(rv.delay_ns, INT64_MAX);
    assert_false(both_acquire(&p, "k3", "requests", 0).allowed);
    same_stats(p.a, p.b, "k");
    same_stats(p.a, p.b, "k2");
    same_stats(p.a, p.b, "k3");
    pair_close(&p);
}

/* A sliding window on the server as in window.c: a key new before the
 * epoch starts at the window that holds now (rounded down); the window
 * rolls into prev, weighted and rounded up, and after two periods idle
 * starts over; a reservation waits until the weighted prev or cur leaves
 * room, to the nanosecond; one that a cool-down sends into a later
 * window keeps there at least what the older windows still weigh. */
static void test_window_edges(void **state)
{
    static const rl_limit lims[] = { RL_SLIDING_WINDOW("win", NULL, 10, RL_SECOND),
                                     RL_LIMIT("tok", "tokens", 1000, RL_SECOND, 1000) };
    const int64_t t0 = -3 * RL_SECOND, ms = RL_MILLISECOND;
    rl_reservation rv;
    pair p;
    (void)state;
    if (!pair_open(&p, lims, 2, "win")) {
        skip();
        return;
    }
    clk = t0 + 500 * ms; /* -2.5 s: its window is [-3 s, -2 s) */
    assert_true(both_acquire(&p, "k", "requests", 9).allowed);
    same_stats(p.a, p.b, "k");
    assert_true(both_acquire(&p, "k", "tokens", 5).allowed); /* the window not named */
    clk = t0 + 1300 * ms;                                    /* prev 9 weighs ceil(6.3) = 7 */
    assert_false(both_acquire(&p, "k", "requests", 4).allowed);
    assert_false(both_reserve(&p, "k", 4, 0).ok);
    same_stats(p.a, p.b, "k");
    both_penalize(&p, "k", NULL, RL_SECOND); /* until t0 + 2.3 s */
    rv = both_reserve(&p, "k", 1, 2 * RL_SECOND);
    assert_true(rv.ok);
    assert_int_equal(rv.delay_ns, RL_SECOND);
    same_stats(p.a, p.b, "k"); /* the window of t0 + 2 s holds prev 7 - 1 and 1 */
    clk = t0 + 10700 * ms;     /* idle for longer than two periods */
    assert_true(both_acquire(&p, "k", "requests", 10).allowed);
    assert_true(both_acquire(&p, "k", "requests", 0).allowed); /* a check: 10 of 10 */
    clk = t0 + 11300 * ms; /* prev 10 weighs 7: 5 more fit once it weighs 5 */
    rv = both_reserve(&p, "k", 5, INT64_MAX);
    assert_true(rv.ok);
    assert_int_equal(rv.delay_ns, 200 * ms);
    rv = both_reserve(&p, "k", 9, INT64_MAX); /* cur 5 must weigh 1: 1.5 s */
    assert_true(rv.ok);
    assert_int_equal(rv.delay_ns, 1500 * ms);
    assert_false(both_reserve(&p, "k", 1, 1500 * ms - 1).ok);
    same_stats(p.a, p.b, "k");
    pair_close(&p);
}

/* rl_cancel on the server as in core: a reservation gives back what no
 * later decision was scheduled behind (GCRA: its cost less what came
 * after it, in parts of a nanosecond; a window: the units, while the key
 * is still in their window), once; after its time to act nothing comes
 * back, and the script leaves that to the usual way, which writes
 * nothing. */
static void test_cancel_edges(void **state)
{
    static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 3, RL_SECOND, 3),
                                     RL_SLIDING_WINDOW("win", NULL, 10, RL_SECOND) };
    const int64_t t0 = (int64_t)1700000000 * RL_SECOND;
    rl_reservation a1, b1, a2, b2;
    uint64_t h;
    pair p;
    (void)state;
    if (!pair_open(&p, lims, 2, "cancel")) {
        skip();
        return;
    }
    clk = t0;
    assert_true(both_acquire(&p, "k", "requests", 1).allowed); /* 1/3 s spent */
    assert_int_equal(rl_reserve(p.a, "k", 3, INT64_MAX, &a1), RL_OK);
    assert_int_equal(rl_reserve(p.b, "k", 3, INT64_MAX, &b1), RL_OK);
    same_rv(RL_OK, &a1, RL_OK, &b1);
    assert_int_equal(rl_reserve(p.a, "k", 1, INT64_MAX, &a2), RL_OK);
    assert_int_equal(rl_reserve(p.b, "k", 1, INT64_MAX, &b2), RL_OK);
    same_rv(RL_OK, &a2, RL_OK, &b2);
    assert_int_equal(b1.delay_ns, RL_SECOND / 3 + 1);
    assert_int_equal(b2.delay_ns, 2 * RL_SECOND / 3 + 1);
    h = hits_of(p.b);
    assert_int_equal(rl_cancel(p.a, &a1), RL_OK);
    assert_int_equal(rl_cancel(p.b, &b1), RL_OK); /* 2/3 s back: 1 s less 1/3 */
    assert_int_equal(hits_of(p.b), h + 1);
    assert_int_equal(rl_cancel(p.a, &a1), RL_OK); /* once */
    assert_int_equal(rl_cancel(p.b, &b1), RL_OK);
    assert_int_equal(hits_of(p.b), h + 1);
    same_stats(p.a, p.b, "k");
    clk = b2.time_to_act;
    assert_int_equal(rl_cancel(p.a, &a2), RL_OK);
    assert_int_equal(rl_cancel(p.b, &b2), RL_OK);
    assert_int_equal(hits_of(p.b), h + 1);
    same_stats(p.a, p.b, "k");
    assert_true(both_acquire(&p, "k", "requests", 1).allowed);
    same_stats(p.a, p.b, "k");
    pair_close(&p);
}

/* A call that names a concurrency limit, on a key without leases, is the
 * script's: admitted while the units in flight leave room for its cost,
 * holding nothing. A state that holds units with no lease (written here
 * by hand: an import, a lost lease record) refuses what does not fit, as
 * core does; once a lease is on the key, the usual way decides, which
 * reclaims what it must. */
static void test_slot_by_script(void **state)
{
    static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 100, RL_SECOND, 100),
                                     RL_CONCURRENT("slots", "streams", 3) };
    const char *url = getenv("RL_TEST_REDIS");
    char path[512], name[RD_NAME_MAX];
    rl_options o = RL_OPTIONS_INIT;
    rl_cost c[2] = { { "requests", 1 }, { "streams", 1 } };
    rl_result res;
    rl_lease lease;
    redisReply *rep;
    unsigned char row[RD_ROW_MAX];
    size_t len;
    uint64_t h;
    rd_store *s;
    rl *r = NULL;
    (void)state;
    if (!url || !*url) {
        skip();
        return; /* skip() does not return: for the analyzer */
    }
    o.default_limits = lims;
    o.n_default_limits = 2;
    snprintf(path, sizeof path, "%s%sprefix=fastslot%ld:", url, strchr(url, '?') ? "&" : "?",
             (long)getpid());
    assert_int_equal(rl_open(&r, path, &o), RL_OK);
    s = (rd_store *)rl__store(r);
    assert_int_equal(rl_acquire(r, "k", c, 2, &res), RL_OK); /* the policy, the usual way */
    h = s->fast_hits;
    assert_int_equal(rl_acquire(r, "k", c, 2, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(s->fast_hits, h + 1);
    /* two units in flight with no lease: 1 more fits, 2 do not */
    rd_row_name(s, "k", name);
    rep = redisCommand(s->c, "HGET %s r", name);
    assert_true(rep && rep->type == REDIS_REPLY_STRING && rep->len == 2 + 40 + 18 + 2 * 49);
    len = rep->len;
    memcpy(row, rep->str, len);
    freeReplyObject(rep);
    row[2 + 40 + 18 + 49 + 33] = 2; /* slot 1's tat: units in flight */
    rep = redisCommand(s->c, "HSET %s r %b", name, row, len);
    freeReplyObject(rep);
    assert_int_equal(rl_acquire(r, "k", c, 2, &res), RL_OK);
    assert_true(res.allowed);
    c[1].amount = 2;
    assert_int_equal(rl_acquire(r, "k", c, 2, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(s->fast_hits, h + 3);
    /* a lease on the key: the usual way */
    c[1].amount = 1;
    assert_int_equal(rl_lease_begin(r, "k", c, 2, RL_SECOND, &lease, &res), RL_OK);
    assert_true(res.allowed);
    h = s->fast_hits;
    c[1].amount = 0; /* full, and 0 more fit */
    assert_int_equal(rl_acquire(r, "k", c, 2, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(s->fast_hits, h);
    assert_int_equal(rl_lease_cancel(r, &lease), RL_OK);
    assert_int_equal(rl_reset_match(r, "*", NULL, 0, NULL), RL_OK);
    rl_close(r);
}

/* rl_wait on Redis: each of its decisions is one script run, the one that
 * sleeps (1 ms of real time) as well. */
static void test_wait_by_script(void **state)
{
    static const rl_limit lims[] = { RL_LIMIT("w", NULL, 1000, RL_SECOND, 1) };
    rl_result x, y;
    uint64_t h;
    pair p;
    int i;
    (void)state;
    if (!pair_open(&p, lims, 1, "wait")) {
        skip();
        return;
    }
    clk = 5 * RL_SECOND;
    for (i = 0; i < 2; i++) {
        h = hits_of(p.b);
        assert_int_equal(rl_wait(p.b, "k", 1, RL_SECOND, NULL, &y), RL_OK);
        assert_int_equal(hits_of(p.b), h + 1);
        assert_int_equal(rl_wait(p.a, "k", 1, RL_SECOND, NULL, &x), RL_OK);
        same_result("rl_wait", RL_OK, &x, RL_OK, &y);
        assert_true(y.allowed);
    }
    same_stats(p.a, p.b, "k");
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_script_matches_core), cmocka_unit_test(test_damaged_row_untouched),
        cmocka_unit_test(test_cooldown_edges),      cmocka_unit_test(test_reserve_horizon_edges),
        cmocka_unit_test(test_reserve_int64_edges), cmocka_unit_test(test_wait_by_script),
        cmocka_unit_test(test_window_edges),        cmocka_unit_test(test_cancel_edges),
        cmocka_unit_test(test_slot_by_script),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
