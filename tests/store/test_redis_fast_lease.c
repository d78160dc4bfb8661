/*
 * test_redis_fast_lease.c - the Redis store's lease script against core/:
 * a randomized differential test of leases.
 *
 * What users rely on: a lease settled or cancelled on the Redis server in
 * one round trip (store/redis/fast_lease.c) ends exactly as the C library
 * ends it. Two handles with one injected clock, one on an SQLite file and
 * one on Redis, get the same random trace: tiers of GCRA limits
 * (counts and bursts up to 2^40, periods from 1 ns to 50 years) and
 * sometimes a concurrency limit, lease begins with estimates over one to
 * three resources (and slots), settles with actual amounts above, below
 * or equal to the estimate, named or not, cancels, settles of expired
 * leases, of leases settled already, plain decisions in between, and
 * cool-downs, resets, assignments and policy changes (which the script
 * leaves to the usual way), and some ends made by a second Redis handle
 * that began none of the leases (the usual way, on rows the script
 * wrote). Every rc, every result field and every key's stats must be
 * equal, the lease map must name exactly the leases in the keys' hashes,
 * and the script must have ended most of the leases that the handle that
 * began them ended, and begun at least half of the begins answered on
 * keys without leases, and none on keys with one (the shares are printed;
 * a begin that is an error, such as a cost above a burst, goes the usual
 * way, which reports it). An edge test pins a begin on a key with a lease
 * (the usual way), one refused by the script (no id used, no lease
 * written) and ids that only grow, whichever way a begin goes. Each Redis settle is also
 * replayed by core and compared byte for byte by the store, so a
 * divergence in what is written fails too. (SQLite, not ":memory:", is
 * the reference: the memory store keeps what a failed transaction wrote,
 * such as the reclaim of an expired lease by a begin refused with
 * RL_ETOOBIG, where SQLite and Redis roll it back.)
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

static int64_t clk;
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
static const char *const keys[] = { "k0", "k1", "user:2" };

static void gen_limit(rl_limit *l, char *name, size_t cap, int i)
{
    static const int64_t periods[] = {
        1, 1000, 1000000, 1000000000LL, 60000000000LL, 3600000000000LL
    };
    snprintf(name, cap, "l%d", i);
    l->name = name;
    l->resource = resources[i % 3];
    l->algorithm = RL_ALGO_GCRA;
    l->count = chance(10) ? ((int64_t)1 << 40) - rn(3) : 1 + rn(chance(50) ? 10 : 100000);
    l->period_ns = chance(10) ? 1 + rn(Y50) : periods[rn(6)] * (1 + rn(3));
    l->burst = chance(30) ? 1 + rn(l->count < 20 ? 3 * l->count : l->count) : l->count;
}

/* 1-3 GCRA limits and, half the time, a concurrency limit ("streams"). */
static void gen_tier(rl *a, rl *b, const char *tier)
{
    for (;;) {
        rl_limit l[4];
        char names[4][8];
        size_t n = 1 + (size_t)rn(3), i;
        int ra, rb;
        for (i = 0; i < n; i++)
            gen_limit(&l[i], names[i], sizeof names[i], (int)i);
        if (chance(50)) {
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
    switch (rn(12)) {
    case 0:
        if (chance(20))
            clk = chance(50) ? -(int64_t)rn(Y50) : INT64_MAX - rn(Y50); /* the edges */
        break;
    case 1:
    case 2:
        break;
    case 3:
        clk += 1;
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
    if (ra != rb || a->allowed != b->allowed || a->limit != b->limit ||
        a->remaining != b->remaining || a->retry_after_ns != b->retry_after_ns ||
        a->reset_after_ns != b->reset_after_ns || strcmp(a->limit_name, b->limit_name) != 0 ||
        a->degraded != b->degraded || a->key_index != b->key_index) {
        fail_msg("%s at %lld (seed RL_FAST_SEED=%llu): sqlite rc=%d allowed=%d limit=%lld rem=%lld "
                 "retry=%lld reset=%lld name=%s idx=%d; redis rc=%d allowed=%d limit=%lld "
                 "rem=%lld retry=%lld reset=%lld name=%s idx=%d",
                 what, (long long)clk, (unsigned long long)seed, ra, a->allowed,
                 (long long)a->limit, (long long)a->remaining, (long long)a->retry_after_ns,
                 (long long)a->reset_after_ns, a->limit_name, a->key_index, rb, b->allowed,
                 (long long)b->limit, (long long)b->remaining, (long long)b->retry_after_ns,
                 (long long)b->reset_after_ns, b->limit_name, b->key_index);
    }
}

static void same_rc(const char *what, int ra, int rb, int hit)
{
    if (ra != rb)
        fail_msg("%s at %lld (seed RL_FAST_SEED=%llu): sqlite rc=%d, redis rc=%d (%s)", what,
                 (long long)clk, (unsigned long long)seed, ra, rb,
                 hit ? "by the script" : "the usual way");
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
        assert_int_equal(sa.limits[i].in_flight, sb.limits[i].in_flight);
    }
}

/* Leases granted on both handles (ids may differ: each store numbers its
 * own), the same lease at the same index; ended ones stay a while, so a
 * second settle is tried too. */
#define NL 24
static rl_lease la[NL], lb[NL];
static size_t nl;

/* Lease ends on the Redis handle and, of them, those the script made. */
typedef struct tally {
    long n, hit, ended, ended_hit; /* ended: RL_OK or RL_ETIMEOUT */
} tally;
static tally t_settle, t_cancel, t_other; /* t_other: on b2 */
/* Lease begins on the Redis handle on keys whose hash held no lease (nor
 * waiter) and on keys that held one, and of each those the script made. */
static long begins_free, begins_free_hit, begins_held, begins_held_hit;
/* of begins_free, those answered with RL_OK (admitted or refused, not an
 * error such as a cost above a burst, which the usual way reports) */
static long begins_ok, begins_ok_hit;

static uint64_t hits_of(rl *b)
{
    return ((rd_store *)rl__store(b))->lease_hits;
}

static uint64_t begin_hits_of(rl *b)
{
    return ((rd_store *)rl__store(b))->begin_hits;
}

/* The lease fields (l:ID) in key's hash on b's server. */
static long leases_in(rl *b, const char *key)
{
    rd_store *s = (rd_store *)rl__store(b);
    char row[RD_NAME_MAX];
    redisReply *rep;
    long n = 0;
    size_t i;
    rd_row_name(s, key, row);
    rep = redisCommand(s->c, "HKEYS %s", row);
    assert_non_null(rep);
    for (i = 0; i < rep->elements; i++)
        n += strncmp(rep->element[i]->str, "l:", 2) == 0;
    freeReplyObject(rep);
    return n;
}

static void tally_add(tally *t, int rc, int hit)
{
    int ended = rc == RL_OK || rc == RL_ETIMEOUT;
    t->n++;
    t->hit += hit;
    t->ended += ended;
    t->ended_hit += ended && hit;
}

static void tally_print(const char *what, const tally *t)
{
    printf("[ LEASE    ] %s: %ld, by the script %ld (%.0f%%); of the %ld that ended a lease, "
           "%ld (%.0f%%)\n",
           what, t->n, t->hit, t->n ? 100.0 * (double)t->hit / (double)t->n : 0.0, t->ended,
           t->ended_hit, t->ended ? 100.0 * (double)t->ended_hit / (double)t->ended : 0.0);
}

/* 1-3 costs over the resources (and sometimes a slot), amounts from 0 to
 * past a small burst, now and then very large. */
static size_t gen_costs(rl_cost *c, int slots)
{
    size_t n = 1 + (size_t)rn(3), i;
    size_t first = (size_t)rn(3);
    for (i = 0; i < n; i++) {
        c[i].resource = resources[(first + i) % 3];
        c[i].amount = chance(5) ? ((int64_t)1 << 40) - rn(1000) : rn(chance(70) ? 10 : 200000);
    }
    if (slots && chance(60)) {
        c[n].resource = "streams";
        c[n].amount = 1 + rn(2);
        n++;
    }
    return n;
}

static void begin(rl *a, rl *b)
{
    rl_cost est[4];
    size_t n = gen_costs(est, 1);
    const char *k = keys[rn(3)];
    int64_t ttl = chance(20) ? 1 + rn(1000) : chance(5) ? Y50 : 1 + rn(2000000000LL);
    rl_lease x, y;
    rl_result rx, ry;
    long held = leases_in(b, k);
    uint64_t h = begin_hits_of(b);
    int ra = rl_lease_begin(a, k, est, n, ttl, &x, &rx);
    int rb = rl_lease_begin(b, k, est, n, ttl, &y, &ry);
    int hit = begin_hits_of(b) != h;
    same_result("rl_lease_begin", ra, &rx, rb, &ry);
    if (held) { /* their owners' lives are the usual way's to judge */
        begins_held++;
        begins_held_hit += hit;
    } else {
        begins_free++;
        begins_free_hit += hit;
        begins_ok += rb == RL_OK;
        begins_ok_hit += rb == RL_OK && hit;
    }
    /* the script began it on a key without leases: the key has this one
     * now, if granted (the lease map is checked at the end of a segment) */
    if (hit)
        assert_int_equal(leases_in(b, k), rb == RL_OK && y.id > 0);
    assert_int_equal(x.expires_at, y.expires_at);
    assert_int_equal(x.id > 0, y.id > 0);
    if (x.id > 0) {
        size_t i = nl < NL ? nl++ : (size_t)rn(NL); /* a full table forgets one */
        la[i] = x;
        lb[i] = y;
    }
}

/* b2: another handle on the same Redis prefix, which began none of the
 * leases: what it ends goes the usual way, on rows the script wrote, and
 * a later settle of the same lease by b must find it gone. */
static void end(rl *a, rl *b, rl *b2)
{
    size_t i = (size_t)rn((int64_t)nl);
    int other = chance(15), ra, rb;
    rl *c = other ? b2 : b;
    uint64_t h = hits_of(c);
    if (nl == 0)
        return;
    if (chance(30)) {
        ra = rl_lease_cancel(a, &la[i]);
        rb = rl_lease_cancel(c, &lb[i]);
        same_rc("rl_lease_cancel", ra, rb, hits_of(c) != h);
        tally_add(other ? &t_other : &t_cancel, rb, hits_of(c) != h);
    } else {
        rl_cost act[4];
        size_t n = chance(10) ? 0 : gen_costs(act, 0);
        ra = rl_lease_settle(a, &la[i], act, n);
        rb = rl_lease_settle(c, &lb[i], act, n);
        same_rc("rl_lease_settle", ra, rb, hits_of(c) != h);
        tally_add(other ? &t_other : &t_settle, rb, hits_of(c) != h);
    }
    if (chance(70)) { /* forgotten by the caller, or kept for a second try */
        la[i] = la[nl - 1];
        lb[i] = lb[nl - 1];
        nl--;
    }
}

static void acquire(rl *a, rl *b)
{
    rl_cost c[4];
    size_t n = gen_costs(c, 0);
    const char *k = keys[rn(3)];
    rl_result rx, ry;
    int ra = rl_acquire(a, k, c, n, &rx), rb = rl_acquire(b, k, c, n, &ry);
    same_result("rl_acquire", ra, &rx, rb, &ry);
}

static void disturb(rl *a, rl *b)
{
    const char *k = keys[rn(3)];
    switch (rn(6)) {
    case 0:
        assert_int_equal(rl_reset(a, k), rl_reset(b, k));
        break;
    case 1:
    case 2: {
        static const char *const res[] = { NULL, "requests", "tokens", "calls" };
        const char *rs = res[rn(4)];
        int64_t d = chance(10) ? 0 : 1 + rn(chance(50) ? 1000 : 1000000000LL);
        assert_int_equal(rl_penalize(a, k, rs, d), rl_penalize(b, k, rs, d));
        break;
    }
    case 3: {
        const char *t = chance(50) ? "alt" : NULL;
        assert_int_equal(rl_key_assign(a, k, t), rl_key_assign(b, k, t));
        break;
    }
    default:
        gen_tier(a, b, chance(50) ? "default" : "alt");
    }
}

/* Every entry of the lease map (id -> key) names a lease that is in its
 * key's hash, and every lease in the keys' hashes is in the map: the
 * script deletes both, as the usual commit does. */
static void check_lease_map(rl *b)
{
    rd_store *s = (rd_store *)rl__store(b);
    char map[RD_NAME_MAX], row[RD_NAME_MAX], field[32];
    redisReply *ids, *rep;
    long in_rows = 0;
    size_t i, k;
    rd_name_of(s, "leases", map);
    ids = redisCommand(s->c, "HGETALL %s", map);
    assert_non_null(ids);
    assert_int_equal(ids->type, REDIS_REPLY_ARRAY);
    for (i = 0; i + 1 < ids->elements; i += 2) {
        rd_row_name(s, ids->element[i + 1]->str, row);
        snprintf(field, sizeof field, "l:%s", ids->element[i]->str);
        rep = redisCommand(s->c, "HEXISTS %s %s", row, field);
        assert_non_null(rep);
        if (rep->integer != 1)
            fail_msg("lease map names lease %s of key %s, which is gone (seed RL_FAST_SEED=%llu)",
                     ids->element[i]->str, ids->element[i + 1]->str, (unsigned long long)seed);
        freeReplyObject(rep);
    }
    for (k = 0; k < 3; k++) {
        rd_row_name(s, keys[k], row);
        rep = redisCommand(s->c, "HKEYS %s", row);
        assert_non_null(rep);
        for (i = 0; i < rep->elements; i++)
            in_rows += strncmp(rep->element[i]->str, "l:", 2) == 0;
        freeReplyObject(rep);
    }
    assert_int_equal((long)ids->elements / 2, in_rows);
    freeReplyObject(ids);
}

/* The reference database and the files SQLite and rl keep beside it. */
static void unlink_db(const char *db)
{
    static const char *const side[] = { "", "-wal", "-shm", "-rlshm", "-journal" };
    char f[160];
    size_t i;
    for (i = 0; i < sizeof side / sizeof side[0]; i++) {
        snprintf(f, sizeof f, "%s%s", db, side[i]);
        unlink(f);
    }
}

static void test_lease_script_matches_core(void **state)
{
    const char *url = getenv("RL_TEST_REDIS"), *env;
    char path[512], db[128];
    double seconds = (env = getenv("RL_FAST_SECONDS")) ? atof(env) : 3.0;
    struct timespec t0, t1;
    rl_options o = RL_OPTIONS_INIT;
    rl *a = NULL, *b = NULL, *b2 = NULL;
    long ops = 0, segments = 0;
    (void)state;
    seed = (env = getenv("RL_FAST_SEED")) ? strtoull(env, NULL, 10) : 0;
    if (!url || !*url) {
        skip();
        return;
    }
    if (!seed)
        seed = (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
    rng = seed | 1;
    printf("[ LEASE    ] seed %llu (RL_FAST_SEED replays), %.1f s\n", (unsigned long long)seed,
           seconds);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        o.clock = fake_clock;
        clk = (int64_t)1700000000 * 1000000000LL + rn(1000000000LL);
        snprintf(path, sizeof path, "%s%sprefix=flease%ld.%lld:", url, strchr(url, '?') ? "&" : "?",
                 (long)getpid(), (long long)segments);
        snprintf(db, sizeof db, "/tmp/rl_flease.%ld.%lld.db", (long)getpid(), (long long)segments);
        assert_int_equal(rl_open(&a, db, &o), RL_OK);
        assert_int_equal(rl_open(&b, path, &o), RL_OK);
        assert_int_equal(rl_open(&b2, path, &o), RL_OK);
        gen_tier(a, b, "default");
        gen_tier(a, b, "alt");
        nl = 0;
        for (int i = 0; i < 400; i++, ops++) {
            int op = (int)rn(100);
            next_clock();
            if (op < 35)
                begin(a, b);
            else if (op < 75)
                end(a, b, b2);
            else if (op < 95)
                acquire(a, b);
            else
                disturb(a, b);
            if (chance(5))
                same_stats(a, b, keys[rn(3)]);
        }
        for (size_t k = 0; k < 3; k++)
            same_stats(a, b, keys[k]);
        check_lease_map(b);
        assert_int_equal(rl_reset_match(b, "*", NULL, 0, NULL), RL_OK);
        rl_close(a);
        rl_close(b);
        rl_close(b2);
        a = b = b2 = NULL;
        unlink_db(db);
        segments++;
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
    printf("[ LEASE    ] %ld operations in %ld segments, every answer the same\n", ops, segments);
    tally_print("settles", &t_settle);
    tally_print("cancels", &t_cancel);
    tally_print("ends on another handle", &t_other);
    printf("[ LEASE    ] begins on keys without leases: %ld, by the script %ld (%.0f%%); on keys "
           "with leases: %ld, by the script %ld\n",
           begins_free, begins_free_hit,
           begins_free ? 100.0 * (double)begins_free_hit / (double)begins_free : 0.0, begins_held,
           begins_held_hit);
    printf("[ LEASE    ] of those without, answered (admitted or refused, not an error): %ld, by "
           "the script %ld (%.0f%%)\n",
           begins_ok, begins_ok_hit,
           begins_ok ? 100.0 * (double)begins_ok_hit / (double)begins_ok : 0.0);
    /* a lease ended twice goes the usual way (to RL_ENOTFOUND), and so
     * does one on a key whose tier or policy changed since, or that a
     * cool-down moved, or that another lease begin touched in a way the
     * plan cannot tell; of the leases that ended, most went by the script
     * (the script never answers otherwise than core: see above). The
     * shares are checked once there are enough of each, as test_redis_fast
     * does: a slow run (valgrind) draws too few in its time to judge, and
     * still compares every answer. */
    if (t_settle.ended > 100)
        assert_true(t_settle.ended_hit * 2 > t_settle.ended);
    if (t_cancel.ended > 50)
        assert_true(t_cancel.ended_hit * 2 > t_cancel.ended);
    assert_true(t_other.hit == 0);
    /* a begin on a key that has a lease asks whether its owner lives: the
     * usual way; on one without, at least half go by the script (a tier
     * or policy changed since, a cost above a burst, go the usual way) */
    if (begins_ok > 100)
        assert_true(begins_ok_hit * 2 >= begins_ok);
    assert_true(begins_held_hit == 0);
}

/* The lease sequence of b's prefix. */
static long long lease_seq(rl *b)
{
    rd_store *s = (rd_store *)rl__store(b);
    char name[RD_NAME_MAX];
    redisReply *rep;
    long long v;
    rd_name_of(s, "lease_seq", name);
    rep = redisCommand(s->c, "GET %s", name);
    assert_non_null(rep);
    v = rep->type == REDIS_REPLY_STRING ? atoll(rep->str) : 0;
    freeReplyObject(rep);
    return v;
}

/* The script's edges: a key with another lease goes the usual way; a begin
 * refused by its estimate numbers and writes no lease; ids only grow, one
 * per granted lease of either way; a lease's key lives as long as it. */
static void test_lease_begin_edges(void **state)
{
    const char *url = getenv("RL_TEST_REDIS");
    char path[512], row[RD_NAME_MAX];
    rl_options o = RL_OPTIONS_INIT;
    rl_limit l[2] = { { 0 } };
    rl_cost two[2] = { { "requests", 2 }, { "streams", 1 } }, one = { "requests", 1 };
    rl_lease x, y, z;
    rl_result res;
    redisReply *rep;
    uint64_t h;
    long long seq;
    rl *b = NULL;
    (void)state;
    if (!url || !*url) {
        skip();
        return;
    }
    o.clock = fake_clock;
    clk = (int64_t)1700000000 * 1000000000LL;
    snprintf(path, sizeof path, "%s%sprefix=fledge%ld:", url, strchr(url, '?') ? "&" : "?",
             (long)getpid());
    assert_int_equal(rl_open(&b, path, &o), RL_OK);
    assert_int_equal(rl_reset_match(b, "*", NULL, 0, NULL), RL_OK);
    l[0].name = "rate";
    l[0].resource = "requests";
    l[0].algorithm = RL_ALGO_GCRA;
    l[0].count = l[0].burst = 2;
    l[0].period_ns = 3600000000000LL;
    l[1].name = "slots";
    l[1].resource = "streams";
    l[1].algorithm = RL_ALGO_CONCURRENT;
    l[1].count = l[1].burst = 1;
    assert_int_equal(rl_tier_set(b, "default", l, 2), RL_OK);
    rd_row_name((rd_store *)rl__store(b), "e", row);
    /* a first decision brings the policy into the handle's cache, which a
     * plan needs */
    assert_int_equal(rl_acquire(b, "warm", &one, 1, &res), RL_OK);
    seq = lease_seq(b);

    /* a new key: by the script, its slot held, and its key kept past the
     * lease's expiry (ten hours) */
    h = begin_hits_of(b);
    assert_int_equal(rl_lease_begin(b, "e", two, 2, 36000000000000LL, &x, &res), RL_OK);
    assert_true(res.allowed && x.id == seq + 1 && begin_hits_of(b) == h + 1);
    assert_int_equal(leases_in(b, "e"), 1);
    rep = redisCommand(((rd_store *)rl__store(b))->c, "PTTL %s", row);
    assert_true(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer >= 36000000);
    freeReplyObject(rep);

    /* a key with a lease: the usual way, which finds the slot taken */
    h = begin_hits_of(b);
    assert_int_equal(rl_lease_begin(b, "e", two, 2, 1000000000LL, &y, &res), RL_OK);
    assert_true(!res.allowed && y.id == 0 && begin_hits_of(b) == h);
    assert_true(lease_seq(b) == seq + 1 && leases_in(b, "e") == 1);

    /* settled at its estimate: the rate is spent; a begin refused by it,
     * by the script, numbers and writes no lease */
    assert_int_equal(rl_lease_settle(b, &x, two, 1), RL_OK);
    assert_int_equal(leases_in(b, "e"), 0);
    h = begin_hits_of(b);
    assert_int_equal(rl_lease_begin(b, "e", &one, 1, 1000000000LL, &y, &res), RL_OK);
    assert_true(!res.allowed && y.id == 0 && begin_hits_of(b) == h + 1);
    assert_true(lease_seq(b) == seq + 1 && leases_in(b, "e") == 0);

    /* an hour later: admitted by the script with the next id, then one of
     * the usual way beside it, then the script's again once both ended */
    clk += 3600000000000LL;
    h = begin_hits_of(b);
    assert_int_equal(rl_lease_begin(b, "e", &one, 1, 1000000000LL, &y, &res), RL_OK);
    assert_true(res.allowed && y.id == seq + 2 && begin_hits_of(b) == h + 1);
    assert_int_equal(rl_lease_begin(b, "e", &one, 1, 1000000000LL, &z, &res), RL_OK);
    assert_true(res.allowed && z.id == seq + 3 && begin_hits_of(b) == h + 1);
    assert_int_equal(leases_in(b, "e"), 2);
    assert_int_equal(rl_lease_cancel(b, &y), RL_OK);
    assert_int_equal(rl_lease_cancel(b, &z), RL_OK);
    assert_int_equal(rl_lease_begin(b, "e", two, 2, 1000000000LL, &x, &res), RL_OK);
    assert_true(res.allowed && x.id == seq + 4 && begin_hits_of(b) == h + 2);
    assert_int_equal(rl_lease_cancel(b, &x), RL_OK);
    assert_int_equal(rl_reset_match(b, "*", NULL, 0, NULL), RL_OK);
    rl_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lease_script_matches_core),
        cmocka_unit_test(test_lease_begin_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
