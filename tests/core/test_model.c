/*
 * test_model.c - random traces compared, call by call, with a reference
 * model of docs/api.md (and of docs/tiers.md, which api.md refers to for
 * sliding windows and tier bounds), on every store: memory, a SQLite file,
 * and Redis when RL_TEST_REDIS is set (tests/common/stores.h).
 *
 * The model is written from the documents' words, not from rl's code: exact
 * integer nanoseconds, 128-bit intermediates, one state per key. It covers
 * GCRA limits (count per period, burst), sliding-window limits, several
 * limits per key and several keys per decision (all or nothing), weighted
 * costs over several resources, rl_allow, rl_acquire, rl_acquire_keys,
 * rl_allow_batch, rl_reserve + rl_cancel, rl_wait (only where it returns at
 * once or sleeps at most a couple of milliseconds), rl_penalize cool-downs,
 * rl_reset, rl_key_assign between tiers, rl_tier_set's bounds, every field of
 * rl_result the documents define and the rl_stats counters and per-limit
 * fields. What the documents leave open is either not generated or not
 * compared; each such place says so in a comment marked AMBIGUOUS.
 *
 * The driver uses the injected clock (rl_options.clock; docs/redis.md: "An
 * injected rl_options.clock still wins", so Redis is compared exactly too)
 * and a seeded PRNG. It prints its seed; RL_MODEL_SEED=N replays a run and
 * RL_MODEL_SECONDS bounds it (per store; default 3), RL_MODEL_OPS=N runs
 * exactly N operations (as a report says, to replay it); RL_MODEL_STORE=memory
 * (sqlite, redis) runs one store only. On the first mismatch
 * it prints the seed, the step, the last operations and both answers.
 *
 * Known bugs being fixed (issue 15) would make rl disagree with the model:
 * while KNOWN_ISSUE_15_N is defined the driver does not generate that
 * situation. Remove the #define once the fix lands.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rl.h"
#include "../common/stores.h"

/* The items of issue 15 being fixed now:
 * 1: rl_cancel of a reservation made before an rl_reset of its key gives
 *    units back (api.md: "Does nothing ... if the key was reset"). The
 *    driver does not cancel across a reset. */
/* fixed: KNOWN_ISSUE_15_1 no longer set */
/* 2: clocks before the epoch: a key's first decision at a negative clock is
 *    refused as "cooldown" until clock 0. Clocks stay positive. */
/* fixed: KNOWN_ISSUE_15_2 no longer set */
/* 3: int64 overflow near the top: a bucket whose end lies beyond INT64_MAX
 *    gives a wrong retry_after_ns. Clocks stay below 4e18 (the year 2096)
 *    and reservations whose ends could pass INT64_MAX are not made. */
/* fixed: KNOWN_ISSUE_15_3 no longer set */
/* 4: a key first decided at clock 0 gets the next decision's time as
 *    first_seen_ns. No segment starts at clock 0. */
/* fixed: KNOWN_ISSUE_15_4 no longer set */
/* 5: rl_wait's deadline: a wait whose needed delay is within its timeout
 *    but by less than the time the call itself takes (need 1 ms, timeout
 *    1 ms + 1 ns) returns RL_ETIMEOUT; api.md: only when admission "would
 *    need more than timeout_ns". Not generated within 1 ms of the timeout. */
/* fixed: KNOWN_ISSUE_15_5 no longer set */
/* 6: a rate limit (GCRA) with period 0 is taken as a concurrency limit;
 *    rl.h (being changed with the fix): "a rate limit with period_ns 0 is
 *    RL_EINVAL". rl_tier_set is not given one. */
/* fixed: KNOWN_ISSUE_15_6 no longer set */
/* 7: rl_errmsg still holds the last error after a call that returned RL_OK
 *    (rl_cancel after a failed rl_allow); api.md: "no error" after a
 *    success. Not checked. */
/* fixed: KNOWN_ISSUE_15_7 no longer set */
/* New bugs this test found (same treatment):
 * 8: a reservation (rl_reserve, rl_wait) delayed by a cool-down or by
 *    another limit is counted in a sliding window's current window instead
 *    of "the window of the time it may act" (tiers.md). */
/* fixed: KNOWN_ISSUE_15_8 no longer set */
/* 9: a cost-0 check on a sliding window whose estimate is above COUNT (a
 *    reservation counted ahead) is admitted; tiers.md: "admitted if and
 *    only if estimate + c <= COUNT". */
/* fixed: KNOWN_ISSUE_15_9 no longer set */
/* 10: rl_reserve / rl_wait refuse (ok = 0) a delay longer than 50 years
 *     (50 × 366 days) that max_delay_ns allows; api.md sets no such bound
 *     (a sliding window's wait may reach two periods of up to 50 years). */
/* fixed: KNOWN_ISSUE_15_10 no longer set */
/* 11: rl_cancel of a reservation that was already cancelled gives its units
 *     back again (GCRA): units that were never reserved. */
/* fixed: KNOWN_ISSUE_15_11 no longer set */
/* 12: rl_cancel after the key was assigned another tier (and before any
 *     decision under it) gives the units back; api.md: "Does nothing ...
 *     if the key was reset or re-tiered since" (a sibling of item 1). */
/* fixed: KNOWN_ISSUE_15_12 no longer set */

__extension__ typedef __int128 i128;

#define MAXL 3      /* limits per tier in the traces */
#define NKEYS 4     /* keys per segment */
#define NRES 3      /* requests, tokens, other (no limit ever counts "other") */
#define NTIERS 3    /* default, alt, unl (unlimited) */
#define LOGN 24     /* operations shown on a mismatch */
#define LOGW 640

static const char *const RES_NAME[NRES] = { "requests", "tokens", "other" };
static const char *const TIER_NAME[NTIERS] = { "default", "alt", "unl" };
static const int64_t Y50 = 50 * 366 * RL_DAY; /* tiers.md: "50 years (50 × 366 days)" */
static const int64_t T0 = (int64_t)1700000000 * RL_SECOND;

/* ------------------------------------------------------------------ */
/* PRNG (splitmix64) */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* 0 .. n-1 (0 for n <= 0) */
static int64_t rn(int64_t n)
{
    return n > 0 ? (int64_t)(rnd() % (uint64_t)n) : 0;
}

static int chance(int pct)
{
    return rn(100) < pct;
}

/* ------------------------------------------------------------------ */
/* The model */

typedef struct mlimit {
    char name[16];
    int res;          /* index in RES_NAME */
    int64_t count, period, burst; /* burst as given to rl_tier_set */
    int algo;
} mlimit;

typedef struct mtier {
    int unlimited;
    size_t n;
    mlimit l[MAXL];
} mtier;

/* One limit's state for one key. GCRA: x is the theoretical arrival time
 * times count (ns·count), so that count per period is exact: the bucket
 * is full from x / count on. Window: start of the current window, prev and
 * cur. has == 0: never charged (a full bucket, empty windows). */
typedef struct mslot {
    int has;
    i128 x;
    int64_t start, prev, cur;
    unsigned epoch; /* GCRA: bumped when a charge starts from a full bucket */
} mslot;

typedef struct mkey {
    char name[48];
    int exists;       /* decided at least once since the last reset */
    int known;        /* assigned or penalized: AMBIGUOUS whether "seen" */
    int64_t allowed, refused, units, first_seen, last_seen, max_seen;
    int assigned;     /* tier index, -1: none (the tier "default" applies) */
    int slots_tier;   /* the tier whose limits slot[] belongs to, -1: none */
    mslot slot[MAXL];
    int cd_has[NRES + 1]; /* [0]: every resource, [1 + r]: resource r */
    int64_t cd_end[NRES + 1];
    unsigned gen;     /* bumped by rl_reset */
    unsigned agen;    /* bumped by rl_key_assign */
} mkey;

typedef struct model {
    mtier tier[NTIERS];
    mkey key[NKEYS];
    int64_t now;
} model;

static model M;

static int64_t eff_burst(const mlimit *l)
{
    if (l->algo == RL_ALGO_SLIDING_WINDOW)
        return l->count; /* "A sliding window's burst is forced to its count" */
    return l->burst ? l->burst : l->count; /* "burst (0 means count)" */
}

static int tier_of(const mkey *k)
{
    return k->assigned >= 0 ? k->assigned : 0;
}

static i128 floordiv(i128 a, i128 b)
{
    i128 q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static i128 ceildiv(i128 a, i128 b) /* b > 0 */
{
    return -floordiv(-a, b);
}

/* tiers.md: "fixed windows of PERIOD, aligned to multiples of PERIOD since
 * the Unix epoch". */
static int64_t wstart(int64_t t, int64_t p)
{
    return (int64_t)(floordiv(t, p) * p);
}

/* The state of limit li of tier t for key k at `now`, windows moved on
 * (never back: "windows never move back"). */
static mslot view(const mkey *k, int t, size_t li, int64_t now)
{
    const mlimit *l = &M.tier[t].l[li];
    mslot s;
    if (k->slots_tier == t)
        s = k->slot[li];
    else
        memset(&s, 0, sizeof s); /* limits of another tier start full */
    if (l->algo == RL_ALGO_SLIDING_WINDOW) {
        int64_t ws = wstart(now, l->period);
        if (!s.has) {
            s.has = 1;
            s.start = ws;
            s.prev = s.cur = 0;
        } else if (ws > s.start) {
            s.prev = ((i128)ws - s.start == l->period) ? s.cur : 0;
            s.cur = 0;
            s.start = ws;
        }
    }
    return s;
}

/* GCRA: what is spent, in ns·count (0 when full). */
static i128 g_used(const mlimit *l, const mslot *s, int64_t now)
{
    i128 u;
    if (!s->has)
        return 0;
    u = s->x - (i128)now * l->count;
    return u > 0 ? u : 0;
}

/* Window: the estimate; "a time before the window's start is weighed as
 * e = 0". */
static i128 w_est(const mlimit *l, const mslot *s, int64_t now)
{
    i128 e = (i128)now - s->start;
    if (e < 0)
        e = 0;
    return ceildiv((i128)s->prev * (l->period - e), l->period) + s->cur;
}

/* The smallest wait (ns) after which `c` units pass, nobody asking. */
static int64_t l_wait(const mlimit *l, const mslot *s, int64_t now, int64_t c)
{
    if (l->algo == RL_ALGO_GCRA) {
        /* a token bucket of capacity burst refilling count per period:
         * c pass iff spent + c <= burst, i.e. u + c·P <= B·P */
        i128 need = g_used(l, s, now) + (i128)c * l->period - (i128)eff_burst(l) * l->period;
        /* api.md: a request "whose bucket state would pass INT64_MAX is
         * refused with retry_after_ns = INT64_MAX" (never) */
        if ((i128)now * l->count + g_used(l, s, now) + (i128)c * l->period >
            (i128)INT64_MAX * l->count + l->count - 1)
            return INT64_MAX;
        return need <= 0 ? 0 : (int64_t)ceildiv(need, l->count);
    } else {
        /* tiers.md: admitted iff ceil(prev·(P-e)/P) + cur + c <= COUNT; the
         * exact smallest wait, rounded up */
        const int64_t P = l->period, C = l->count;
        i128 t, k;
        if (w_est(l, s, now) + c <= C)
            return 0;
        /* in the current window [start, start + P): need e >= P - floor(k·P/prev) */
        k = (i128)C - s->cur - c;
        if (k >= 0 && s->prev > 0) {
            i128 e_need = (i128)P - floordiv(k * P, s->prev);
            t = (i128)s->start + e_need;
            if (t < now)
                t = now;
            if (t < (i128)s->start + P)
                return (int64_t)(t - now);
        }
        /* in the next window: prev' = cur, cur' = 0 */
        k = (i128)C - c;
        if (s->cur > 0) {
            i128 e_need = (i128)P - floordiv(k * P, s->cur);
            if (e_need < 0)
                e_need = 0;
            t = (i128)s->start + P + e_need;
        } else {
            t = (i128)s->start + P;
        }
        if (t < now)
            t = now;
        return (int64_t)(t - now);
    }
}

/* "remaining (units it could still admit now)", at least 0 */
static int64_t l_remaining(const mlimit *l, const mslot *s, int64_t now)
{
    if (l->algo == RL_ALGO_GCRA) {
        i128 room = (i128)eff_burst(l) * l->period - g_used(l, s, now);
        /* api.md: near the end of int64_t "remaining counts only the units
         * whose bucket state can still be recorded" (below INT64_MAX) */
        i128 end = (i128)INT64_MAX * l->count + l->count - 1 - (i128)now * l->count -
                   g_used(l, s, now);
        if (end < room)
            room = end;
        return room <= 0 ? 0 : (int64_t)(room / l->period);
    } else {
        i128 r = (i128)l->count - w_est(l, s, now);
        return r <= 0 ? 0 : (int64_t)r;
    }
}

/* "reset_after_ns (when the deciding limit is full again)" */
static int64_t l_reset(const mlimit *l, const mslot *s, int64_t now)
{
    if (l->algo == RL_ALGO_GCRA)
        return (int64_t)ceildiv(g_used(l, s, now), l->count);
    /* tiers.md: until start + 2P if cur counted anything, else start + P if
     * prev did, else 0 */
    if (s->cur > 0)
        return (int64_t)((i128)s->start + 2 * (i128)l->period - now);
    if (s->prev > 0)
        return (int64_t)((i128)s->start + l->period - now);
    return 0;
}

/* The cool-down that covers a decision naming resources res_mask: its end,
 * or INT64_MIN when none is running. */
static int64_t cd_cover(const mkey *k, unsigned res_mask, int64_t now)
{
    int64_t end = INT64_MIN;
    int i;
    for (i = 0; i <= NRES; i++) {
        if (!k->cd_has[i] || k->cd_end[i] <= now)
            continue;
        if (i > 0 && !(res_mask & (1u << (i - 1))))
            continue;
        if (k->cd_end[i] > end)
            end = k->cd_end[i];
    }
    return end;
}

/* ------------------------------------------------------------------ */
/* Expected answers */

typedef struct xcand {
    int key_index;
    int cooldown;
    char name[RL_NAME_MAX];
    int64_t limit, remaining, reset;
} xcand;

typedef struct xres {
    int rc;
    int allowed;
    int64_t retry;
    int skip;        /* only rc and allowed are defined (AMBIGUOUS cases) */
    int win_other;   /* a sliding window's own wait is shorter than the delay */
    int win_behind;  /* AMBIGUOUS: admitted after the delay, a window would count
                        it before the window the key has moved to */
    int amb;         /* AMBIGUOUS in the documents: not generated */
    int no_limit;    /* no limit applied: limit_name "" */
    int unlimited;   /* every key unlimited: remaining INT64_MAX */
    int nc;
    xcand c[RL_MAX_KEYS * (MAXL + 1)];
} xres;

typedef struct mcost {
    int res;
    int64_t amount;
} mcost;

/* A reservation as the model remembers it. */
typedef struct mresv {
    int used, cancelled;
    rl_reservation rv;
    int ki, tier, ok;
    unsigned gen, agen;
    int64_t tta, cost;
    i128 x_after[MAXL];
    unsigned epoch[MAXL];
    int64_t win[MAXL]; /* the window a sliding-window limit counted it in */
} mresv;

enum { M_ALLOW, M_RESERVE, M_WAIT };

/* One decision (rl_allow, rl_acquire, rl_acquire_keys, rl_reserve,
 * rl_wait) on keys ks[0..nk) with valid arguments. limit (max_delay or
 * timeout) for M_RESERVE and M_WAIT. dry: compute the delay only.
 * Returns the delay: the longest wait among limits and cool-downs. */
static int64_t decide(const int *ks, int nk, const mcost *cs, int n, int mode, int64_t lim,
                      int dry, xres *x, mresv *rec)
{
    const int64_t now = M.now;
    unsigned mask = 0;
    int64_t delay = 0, req_amount = cs[0].amount, amt[NRES] = { 0 };
    int i, admitted, all_unl = 1, never = 0;
    size_t li;
    mslot v[RL_MAX_KEYS][MAXL];
    int64_t w[RL_MAX_KEYS][MAXL], cdw[RL_MAX_KEYS];
    int named[RL_MAX_KEYS][MAXL];

    memset(x, 0, sizeof *x);
    for (i = 0; i < n; i++) {
        mask |= 1u << cs[i].res;
        amt[cs[i].res] = cs[i].amount;
        if (cs[i].res == 0)
            req_amount = cs[i].amount; /* "counts the requests amount (or the first cost's)" */
    }
    /* "a cost larger than a limit's burst can never pass and returns RL_ETOOBIG" */
    for (i = 0; i < nk; i++) {
        const mtier *t = &M.tier[tier_of(&M.key[ks[i]])];
        if (t->unlimited)
            continue;
        for (li = 0; li < t->n; li++)
            if ((mask & (1u << t->l[li].res)) && amt[t->l[li].res] > eff_burst(&t->l[li])) {
                x->rc = RL_ETOOBIG;
                return -1;
            }
    }
    for (i = 0; i < nk; i++) {
        const mkey *k = &M.key[ks[i]];
        int t = tier_of(k);
        int64_t end = cd_cover(k, mask, now);
        cdw[i] = end == INT64_MIN ? 0 : end - now;
        if (cdw[i] > delay)
            delay = cdw[i];
        if (!M.tier[t].unlimited)
            all_unl = 0;
        for (li = 0; li < M.tier[t].n; li++) {
            const mlimit *l = &M.tier[t].l[li];
            named[i][li] = (mask & (1u << l->res)) != 0;
            v[i][li] = view(k, t, li, now);
            w[i][li] = named[i][li] ? l_wait(l, &v[i][li], now, amt[l->res]) : 0;
            /* api.md: "a request whose bucket state would pass INT64_MAX is
             * refused with retry_after_ns = INT64_MAX" */
            if (named[i][li] && l->algo == RL_ALGO_GCRA && w[i][li] == INT64_MAX)
                never = 1;
            /* api.md: "A cost of 0 checks without charging: it is admitted
             * unless units are owed beyond an empty bucket or a full
             * window": l_wait gives the time until nothing is owed */
#ifdef KNOWN_ISSUE_15_9
            if (named[i][li] && l->algo == RL_ALGO_SLIDING_WINDOW && amt[l->res] == 0 &&
                w[i][li] > 0)
                x->amb = 1;
#endif
            if (w[i][li] > delay)
                delay = w[i][li];
        }
    }
    for (i = 0; i < nk; i++) {
        const mtier *t = &M.tier[tier_of(&M.key[ks[i]])];
        for (li = 0; !t->unlimited && li < t->n; li++)
            if (named[i][li] && t->l[li].algo == RL_ALGO_SLIDING_WINDOW && w[i][li] < delay) {
                x->win_other = 1;
                if ((i128)now + delay <= INT64_MAX &&
                    wstart(now + delay, t->l[li].period) < v[i][li].start)
                    x->win_behind = 1;
            }
    }
    if (dry)
        return delay;
    admitted = !never && (mode == M_ALLOW ? delay == 0 : delay <= lim);
    x->rc = (mode == M_WAIT && !admitted) ? RL_ETIMEOUT : RL_OK;
    x->allowed = admitted;
    x->retry = admitted ? 0 : delay;

    /* "Every decision updates the key's counters (allowed, refused, units,
     * last_seen)"; acquire_keys: "if any refuses, none is charged (each
     * key's refused counter goes up)".
     * AMBIGUOUS: whether an rl_wait that times out ("consuming nothing")
     * is a refused decision; rl counts it as one, which the model follows. */
    for (i = 0; i < nk; i++) {
        mkey *k = &M.key[ks[i]];
        if (!k->exists) {
            k->exists = 1;
            k->first_seen = now;
        }
        k->last_seen = now;
        if (now > k->max_seen || k->allowed + k->refused == 0)
            k->max_seen = now;
        if (admitted) {
            k->allowed++;
            k->units += req_amount;
        } else {
            k->refused++;
        }
    }
    if (admitted) {
        const int64_t tta = now + delay;
        i128 best_num = -1, best_den = 1;
        for (i = 0; i < nk; i++) {
            mkey *k = &M.key[ks[i]];
            int t = tier_of(k);
            if (k->slots_tier != t) {
                memset(k->slot, 0, sizeof k->slot);
                k->slots_tier = t;
            }
            for (li = 0; li < M.tier[t].n; li++) {
                const mlimit *l = &M.tier[t].l[li];
                mslot s = v[i][li];
                int64_t c = amt[l->res];
                if (!named[i][li])
                    continue;
                if (l->algo == RL_ALGO_GCRA) {
                    /* rl_reserve "Charges cost units ... now" */
                    i128 base = (i128)now * l->count;
                    if (s.has && s.x > base)
                        base = s.x;
                    else
                        s.epoch = k->slot[li].epoch + 1;
                    s.has = 1;
                    s.x = base + (i128)c * l->period;
                } else if (c == 0) {
                    /* a check counts nothing, in no window */
                } else if (delay == 0 || wstart(tta, l->period) <= s.start) {
                    /* (a time to act before the key's window: win_behind,
                     * not generated) */
                    s.cur += c;
                } else {
                    /* tiers.md: "counted in the window of the time it may
                     * act. If that window has not begun, the key's windows
                     * move to it at once and its prev is raised to at least
                     * min(estimate now, COUNT) - c" */
                    i128 est = w_est(l, &s, now), floor_prev;
                    int64_t wt = wstart(tta, l->period);
                    s.prev = ((i128)wt - s.start == l->period) ? s.cur : 0;
                    s.cur = 0;
                    s.start = wt;
                    floor_prev = (est < l->count ? est : l->count) - c;
                    if (floor_prev > s.prev)
                        s.prev = (int64_t)floor_prev;
                    s.cur += c;
                }
                k->slot[li] = s;
                if (rec) {
                    rec->x_after[li] = s.x;
                    rec->epoch[li] = s.epoch;
                    rec->win[li] = s.start;
                }
            }
        }
        /* "when admitted, the one with the smallest share of its burst left" */
        for (i = 0; i < nk; i++) {
            const mkey *k = &M.key[ks[i]];
            int t = tier_of(k);
            for (li = 0; li < M.tier[t].n; li++) {
                const mlimit *l = &M.tier[t].l[li];
                int64_t rem, b = eff_burst(l);
                xcand *c;
                if (!named[i][li])
                    continue;
                rem = l_remaining(l, &k->slot[li], now);
                if (best_num >= 0 && (i128)rem * best_den > best_num * b)
                    continue;
                if (best_num < 0 || (i128)rem * best_den < best_num * b)
                    x->nc = 0; /* strictly smaller share */
                best_num = rem;
                best_den = b;
                c = &x->c[x->nc++];
                c->key_index = i;
                c->cooldown = 0;
                snprintf(c->name, sizeof c->name, "%s", l->name);
                c->limit = b;
                c->remaining = rem;
                c->reset = l_reset(l, &k->slot[li], now);
            }
        }
        if (x->nc == 0) {
            x->no_limit = 1; /* "limit_name ... "" when no limit applied" */
            x->unlimited = all_unl;
        }
        if (delay > 0)
            x->skip = 1; /* AMBIGUOUS: remaining/reset of a delayed admission (rl_wait) */
    } else {
        /* "The deciding limit is the one that refused with the longest wait";
         * a cool-down refuses with "retry_after_ns up to its end" */
        for (i = 0; i < nk; i++) {
            mkey *k = &M.key[ks[i]];
            int t = tier_of(k);
            if (k->slots_tier != t) {
                memset(k->slot, 0, sizeof k->slot);
                k->slots_tier = t;
            }
            if (cdw[i] == delay) {
                xcand *c = &x->c[x->nc++];
                c->key_index = i;
                c->cooldown = 1;
                strcpy(c->name, "cooldown");
            }
            for (li = 0; li < M.tier[t].n; li++) {
                const mlimit *l = &M.tier[t].l[li];
                xcand *c;
                if (!named[i][li] || w[i][li] != delay)
                    continue;
                c = &x->c[x->nc++];
                c->key_index = i;
                c->cooldown = 0;
                snprintf(c->name, sizeof c->name, "%s", l->name);
                c->limit = eff_burst(l);
                c->remaining = l_remaining(l, &v[i][li], now);
                c->reset = l_reset(l, &v[i][li], now);
            }
        }
    }
    return delay;
}

/* rl_cancel, api.md: "Gives back a reservation's units as far as no later
 * decision has built on them (a later reservation keeps its place). Does
 * nothing (RL_OK) once time_to_act has passed (the caller may have acted),
 * for a reservation that was not ok, or if the key was reset or re-tiered
 * since." tiers.md for windows: "takes the units out of the window they
 * were counted in while the key is still in it; if that window has not
 * begun yet they move to prev instead ... Once the key's window has moved
 * past it, nothing comes back."
 * time_to_act "has passed": now >= time_to_act (test_api's
 * test_reserve_cancel cancels at exactly time_to_act and gets nothing). */
static void m_cancel(const mresv *rv)
{
    mkey *k = &M.key[rv->ki];
    int t = rv->tier;
    size_t li;
    /* a reservation's units go back once: a second rl_cancel finds nothing */
    if (!rv->ok || rv->cancelled || M.now >= rv->tta || rv->gen != k->gen || tier_of(k) != t ||
        k->slots_tier != t)
        return;
    for (li = 0; li < M.tier[t].n; li++) {
        const mlimit *l = &M.tier[t].l[li];
        mslot *s = &k->slot[li];
        if (l->res != 0)
            continue; /* rl_reserve charges "requests" only */
        if (l->algo == RL_ALGO_GCRA) {
            /* what later decisions charged on top of it */
            i128 later = s->x - rv->x_after[li], back = (i128)rv->cost * l->period - later;
            if (later < 0)
                later = 0;
            if (back > (i128)rv->cost * l->period)
                back = (i128)rv->cost * l->period;
            if (back > 0)
                s->x -= back;
        } else {
            mslot cur = view(k, t, li, M.now);
            if (cur.start != rv->win[li])
                continue; /* the key's window moved past it */
            *s = cur;
            s->cur -= rv->cost;
            if (s->cur < 0)
                s->cur = 0;
            if (M.now < s->start)
                s->prev += rv->cost; /* that window has not begun */
        }
    }
}

/* ------------------------------------------------------------------ */
/* The driver: operations are data (generated, then executed and compared),
 * so that a failing segment can be replayed on a fresh store and shrunk to a
 * minimal trace. */

enum {
    O_ALLOW, O_ACQUIRE, O_ACQKEYS, O_BATCH, O_RESERVE, O_CANCEL, O_WAIT, O_PENALIZE,
    O_RESET, O_ASSIGN, O_STATS
};

#define MAXB 6 /* items of a batch */

typedef struct op {
    int kind;
    int64_t t;                 /* the clock during the call */
    int nk, ks[NKEYS], dupkey; /* keys (dupkey: the last repeats the first) */
    int n;                     /* costs, or batch items */
    int res[NRES + 1], null_res[NRES + 1];
    int64_t amt[MAXB];         /* amounts, or batch costs */
    int bk[MAXB];              /* batch keys */
    int64_t cost, lim;         /* cost; max_delay, timeout or duration */
    int arg;                   /* penalize: 0 NULL, 1 + resource; assign: tier or -1;
                                  cancel: the index of the O_RESERVE */
} op;

typedef struct drv {
    rl *r;
    int kind;
    char dir[64];
    char path[512];
    int64_t now; /* what the injected clock returns */
    int64_t lo, hi, maxspan;
    int back_ok; /* the clock may step back: every limit is a sliding window */
    uint64_t seed;
    long step, compared, segments, replays;
    char log[LOGN][LOGW];
    int failed, verbose;
    char tag[128];
    char msg[2048];
    mtier tiers[NTIERS]; /* the segment's policy */
    op *ops;             /* the segment's operations */
    size_t nops, cap;
    mresv *rv;           /* per operation: the reservation it made */
    char *done;          /* per operation: executed */
} drv;

static int64_t drv_clock(void *ctx)
{
    return ((drv *)ctx)->now;
}

static char *logline(drv *d)
{
    return d->log[d->step % LOGN];
}

__attribute__((format(printf, 2, 3))) static void logf_(drv *d, const char *fmt, ...)
{
    char *b = logline(d);
    size_t len = strlen(b);
    va_list ap;
    va_start(ap, fmt);
    if (len < LOGW)
        vsnprintf(b + len, LOGW - len, fmt, ap);
    va_end(ap);
}

static void dump_tiers(const mtier *tiers)
{
    int t;
    size_t li;
    for (t = 0; t < NTIERS; t++) {
        if (tiers[t].unlimited) {
            printf("  rl_tier_set(\"%s\", NULL, 0)  (unlimited)\n", TIER_NAME[t]);
            continue;
        }
        printf("  rl_tier_set(\"%s\"):", TIER_NAME[t]);
        for (li = 0; li < tiers[t].n; li++) {
            const mlimit *l = &tiers[t].l[li];
            printf(" {%s %s %s count=%lld period=%lld burst=%lld}", l->name, RES_NAME[l->res],
                   l->algo == RL_ALGO_GCRA ? "gcra" : "window", (long long)l->count,
                   (long long)l->period, (long long)l->burst);
        }
        printf("\n");
    }
}

/* Records the first mismatch; tag names its kind (the shrinker keeps it). */
__attribute__((format(printf, 3, 4))) static void mismatch(drv *d, const char *tag,
                                                          const char *fmt, ...)
{
    va_list ap;
    if (d->failed)
        return;
    d->failed = 1;
    snprintf(d->tag, sizeof d->tag, "%s", tag);
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
}

static void check_errmsg(drv *d, int rc)
{
#ifndef KNOWN_ISSUE_15_7
    if (rc == RL_OK && strcmp(rl_errmsg(d->r), "no error") != 0)
        mismatch(d, "rl_errmsg", "rl_errmsg after RL_OK is \"%s\", api.md: \"no error\" after a success",
                 rl_errmsg(d->r));
#else
    (void)d;
    (void)rc;
#endif
}

static void fmt_res(char *b, size_t n, int rc, const rl_result *r)
{
    snprintf(b, n, "rc=%d allowed=%d limit=%lld remaining=%lld retry=%lld reset=%lld name=\"%s\" "
                   "key_index=%d degraded=%d",
             rc, r->allowed, (long long)r->limit, (long long)r->remaining,
             (long long)r->retry_after_ns, (long long)r->reset_after_ns, r->limit_name,
             r->key_index, r->degraded);
}

static void fmt_x(char *b, size_t n, const xres *x)
{
    size_t len;
    int i;
    snprintf(b, n, "rc=%d allowed=%d retry=%lld%s%s%s deciding one of:", x->rc, x->allowed,
             (long long)x->retry, x->skip ? " (only rc/allowed defined)" : "",
             x->no_limit ? " no limit (name \"\")" : "", x->unlimited ? " remaining=INT64_MAX" : "");
    for (i = 0; i < x->nc; i++) {
        len = strlen(b);
        if (x->c[i].cooldown)
            snprintf(b + len, n - len, " [key %d cooldown]", x->c[i].key_index);
        else
            snprintf(b + len, n - len, " [key %d %s limit=%lld remaining=%lld reset=%lld]",
                     x->c[i].key_index, x->c[i].name, (long long)x->c[i].limit,
                     (long long)x->c[i].remaining, (long long)x->c[i].reset);
    }
}

/* Compares rl's answer with the model's; logs rl's. */
static void compare(drv *d, const char *what, const xres *x, int rc, const rl_result *res,
                    int check_msg)
{
    char a[512], b[1024], tag[128];
    const char *bad = NULL;
    int i;
    fmt_res(a, sizeof a, rc, res);
    fmt_x(b, sizeof b, x);
    logf_(d, " -> %s", a);
    d->compared++;
    if (rc != x->rc)
        bad = "return code";
    else if (rc == RL_ETIMEOUT && res->allowed)
        bad = "allowed after RL_ETIMEOUT";
    else if (rc == RL_OK) {
        if (res->allowed != x->allowed)
            bad = "allowed";
        else if (x->skip)
            bad = NULL;
        else if (res->retry_after_ns != x->retry)
            bad = "retry_after_ns";
        else if (res->degraded)
            bad = "degraded";
        else if (x->no_limit) {
            if (res->limit_name[0])
                bad = "limit_name (no limit applied)";
            else if (x->unlimited && res->remaining != INT64_MAX)
                bad = "remaining of an unlimited tier";
        } else {
            const xcand *c = NULL;
            for (i = 0; i < x->nc; i++)
                if (strcmp(x->c[i].name, res->limit_name) == 0 &&
                    x->c[i].key_index == res->key_index)
                    c = &x->c[i];
            if (!c)
                bad = "deciding limit (limit_name / key_index)";
            else if (!c->cooldown) {
                /* AMBIGUOUS: limit, remaining and reset_after of a cool-down's
                 * refusal are not defined ("cooldown" has no burst) */
                if (res->limit != c->limit)
                    bad = "limit";
                else if (res->remaining != c->remaining)
                    bad = "remaining";
                else if (res->reset_after_ns != c->reset)
                    bad = "reset_after_ns";
            }
        }
    }
    if (bad) {
        snprintf(tag, sizeof tag, "%s: %s", what, bad);
        mismatch(d, tag, "%s: %s\n  rl:    %s\n  model: %s", what, bad, a, b);
    }
    if (check_msg)
        check_errmsg(d, rc);
}

/* Compares rl_stats with the model. */
static void check_stats(drv *d, int ki)
{
    const mkey *k = &M.key[ki];
    int t = tier_of(k), rc;
    const mtier *tr = &M.tier[t];
    rl_key_stats st;
    size_t li;
    char why[512] = "", tag[64] = "";
    int64_t gcd = cd_cover(k, 0, M.now);
    rc = rl_stats(d->r, k->name, &st);
    d->compared++;
    if (rc != RL_OK) {
        mismatch(d, "rl_stats: return code", "rl_stats returned %d", rc);
        return;
    }
    logf_(d, " -> exists=%d allowed=%lld refused=%lld units=%lld first=%lld last=%lld cd=%lld",
          st.exists, (long long)st.allowed, (long long)st.refused, (long long)st.units,
          (long long)st.first_seen_ns, (long long)st.last_seen_ns, (long long)st.cooldown_ns);
    for (li = 0; li < st.n_limits && li < RL_MAX_LIMITS; li++)
        logf_(d, " [%s rem=%lld retry=%lld reset=%lld cd=%lld debt=%lld]", st.limits[li].name,
              (long long)st.limits[li].remaining, (long long)st.limits[li].retry_after_ns,
              (long long)st.limits[li].reset_after_ns, (long long)st.limits[li].cooldown_ns,
              (long long)st.limits[li].debt);
    /* AMBIGUOUS: whether a key that was assigned a tier or penalized, but
     * never decided since its last reset, has been "seen" (exists) */
    if (st.exists != k->exists && !(k->known && !k->exists)) {
        snprintf(tag, sizeof tag, "exists");
        snprintf(why, sizeof why, "exists %d, model %d", st.exists, k->exists);
    } else if (strcmp(st.tier, TIER_NAME[t]) != 0) {
        snprintf(tag, sizeof tag, "tier");
        snprintf(why, sizeof why, "tier \"%s\", model \"%s\"", st.tier, TIER_NAME[t]);
    } else if (k->assigned >= 0 && st.tier_source != RL_TIER_ASSIGNED) {
        snprintf(tag, sizeof tag, "tier_source");
        snprintf(why, sizeof why, "tier_source %d, model RL_TIER_ASSIGNED", st.tier_source);
    } else if (st.allowed != k->allowed || st.refused != k->refused || st.units != k->units) {
        snprintf(tag, sizeof tag, "counters");
        snprintf(why, sizeof why, "counters allowed/refused/units %lld/%lld/%lld, model %lld/%lld/%lld",
                 (long long)st.allowed, (long long)st.refused, (long long)st.units,
                 (long long)k->allowed, (long long)k->refused, (long long)k->units);
    }
    /* AMBIGUOUS: last_seen after the clock stepped back (the last
     * decision's time, or the latest); either is accepted */
    else if (k->exists && (st.first_seen_ns != k->first_seen ||
                           (st.last_seen_ns != k->last_seen && st.last_seen_ns != k->max_seen))) {
        snprintf(tag, sizeof tag, "first/last_seen");
        snprintf(why, sizeof why, "first/last_seen %lld/%lld, model %lld/%lld",
                 (long long)st.first_seen_ns, (long long)st.last_seen_ns,
                 (long long)k->first_seen, (long long)k->last_seen);
    } else if (st.cooldown_ns != (gcd == INT64_MIN ? 0 : gcd - M.now)) {
        snprintf(tag, sizeof tag, "cooldown_ns");
        snprintf(why, sizeof why, "cooldown_ns %lld, model %lld", (long long)st.cooldown_ns,
                 (long long)(gcd == INT64_MIN ? 0 : gcd - M.now));
    } else if (st.n_limits != (tr->unlimited ? 0 : tr->n)) {
        snprintf(tag, sizeof tag, "n_limits");
        snprintf(why, sizeof why, "n_limits %zu, model %zu", st.n_limits, tr->unlimited ? 0 : tr->n);
    }
    for (li = 0; !why[0] && !tr->unlimited && li < tr->n; li++) {
        const mlimit *l = &tr->l[li];
        const rl_limit_stats *ls = &st.limits[li];
        mslot s = view(k, t, li, M.now);
        int64_t rem = l_remaining(l, &s, M.now), retry = l_wait(l, &s, M.now, 1),
                reset = l_reset(l, &s, M.now);
        int64_t rcd = cd_cover(k, 1u << l->res, M.now);
        int64_t own = (k->cd_has[1 + l->res] && k->cd_end[1 + l->res] > M.now)
                          ? k->cd_end[1 + l->res] - M.now
                          : 0;
        rcd = rcd == INT64_MIN ? 0 : rcd - M.now;
        if (strcmp(ls->name, l->name) != 0 || strcmp(ls->resource, RES_NAME[l->res]) != 0 ||
            ls->count != l->count || ls->period_ns != l->period || ls->burst != eff_burst(l) ||
            ls->algorithm != l->algo) {
            snprintf(tag, sizeof tag, "limit definition");
            snprintf(why, sizeof why, "limit %zu definition %s/%s %lld/%lld burst %lld algo %d", li,
                     ls->name, ls->resource, (long long)ls->count, (long long)ls->period_ns,
                     (long long)ls->burst, ls->algorithm);
        } else if (ls->remaining != rem) {
            snprintf(tag, sizeof tag, "limit remaining");
            snprintf(why, sizeof why, "limit %s remaining %lld, model %lld", l->name,
                     (long long)ls->remaining, (long long)rem);
        } else if (ls->retry_after_ns != retry) {
            snprintf(tag, sizeof tag, "limit retry_after_ns");
            snprintf(why, sizeof why, "limit %s retry_after_ns %lld, model %lld", l->name,
                     (long long)ls->retry_after_ns, (long long)retry);
        } else if (ls->reset_after_ns != reset) {
            snprintf(tag, sizeof tag, "limit reset_after_ns");
            snprintf(why, sizeof why, "limit %s reset_after_ns %lld, model %lld", l->name,
                     (long long)ls->reset_after_ns, (long long)reset);
        }
        /* AMBIGUOUS: whether a limit's cooldown_ns ("left of an rl_penalize
         * cool-down on this resource") counts a cool-down on every resource;
         * either reading is accepted */
        else if (ls->cooldown_ns != own && ls->cooldown_ns != rcd) {
            snprintf(tag, sizeof tag, "limit cooldown_ns");
            snprintf(why, sizeof why, "limit %s cooldown_ns %lld, model %lld (or %lld)", l->name,
                     (long long)ls->cooldown_ns, (long long)own, (long long)rcd);
        } else if (ls->in_flight != 0) {
            snprintf(tag, sizeof tag, "limit in_flight");
            snprintf(why, sizeof why, "limit %s in_flight %lld without leases", l->name,
                     (long long)ls->in_flight);
        }
        /* debt: "units owed beyond an empty bucket, from leases"; no leases
         * here, so 0, except where reservations took the bucket below empty
         * (AMBIGUOUS: not compared then) */
        else if (ls->debt != 0 &&
                 !(l->algo == RL_ALGO_GCRA &&
                   g_used(l, &s, M.now) > (i128)eff_burst(l) * l->period) &&
                 !(l->algo == RL_ALGO_SLIDING_WINDOW && w_est(l, &s, M.now) > l->count)) {
            snprintf(tag, sizeof tag, "limit debt");
            snprintf(why, sizeof why, "limit %s debt %lld without leases", l->name,
                     (long long)ls->debt);
        }
    }
    if (why[0]) {
        char full[96];
        snprintf(full, sizeof full, "rl_stats: %s", tag);
        mismatch(d, full, "rl_stats(%s): %s", k->name, why);
    }
    check_errmsg(d, rc);
}

/* ------------------------------------------------------------------ */
/* Policies */

static int64_t pick_count(void)
{
    static const int64_t counts[] = { 1, 2, 3, 5, 7, 10, 10, 60, 100, 1000, 1 << 20 };
    if (chance(2))
        return (int64_t)1 << 40;
    return counts[rn((int64_t)(sizeof counts / sizeof counts[0]))];
}

static int64_t pick_period(void)
{
    static const int64_t periods[] = {
        1, 7, 1000, RL_MILLISECOND, 250 * RL_MILLISECOND, RL_SECOND, RL_SECOND, 3 * RL_SECOND,
        RL_MINUTE, RL_MINUTE, RL_HOUR, RL_DAY, 7 * RL_DAY, 366 * RL_DAY,
    };
    if (chance(2))
        return Y50;
    return periods[rn((int64_t)(sizeof periods / sizeof periods[0]))];
}

static void gen_limit(mlimit *l, const char *name, int windows_only)
{
    for (;;) {
        memset(l, 0, sizeof *l);
        snprintf(l->name, sizeof l->name, "%s", name);
        l->algo = (windows_only || chance(30)) ? RL_ALGO_SLIDING_WINDOW : RL_ALGO_GCRA;
        l->res = chance(70) ? 0 : 1;
        l->count = pick_count();
        l->period = pick_period();
        if (l->algo == RL_ALGO_SLIDING_WINDOW)
            l->burst = chance(20) ? 1 + rn(20) : 0; /* forced to count */
        else if (chance(50))
            l->burst = 0;
        else
            l->burst = 1 + rn(l->count < 20 ? 2 * l->count + 3 : l->count);
        /* tiers.md: COUNT and burst at most 2^40, PERIOD at most 50 years,
         * refilling a whole burst (burst × PERIOD / COUNT) at most 50 years */
        if (eff_burst(l) > ((int64_t)1 << 40))
            continue;
        if ((i128)eff_burst(l) * l->period > (i128)Y50 * l->count)
            continue;
        return;
    }
}

static rl_limit to_rl(const mlimit *l)
{
    rl_limit r;
    r.name = l->name;
    r.resource = RES_NAME[l->res];
    r.count = l->count;
    r.period_ns = l->period;
    r.burst = l->burst;
    r.algorithm = l->algo;
    return r;
}

/* An invalid limit by tiers.md's bounds; rl_tier_set must refuse it. */
static void gen_bad_limit(rl_limit *r, char *what, size_t n)
{
    int64_t k = rn(9);
#ifdef KNOWN_ISSUE_15_6
    if (k == 8)
        k = 0;
#endif
    *r = (rl_limit)RL_LIMIT("bad", NULL, 10, RL_SECOND, 0);
    switch (k) {
    case 0: r->count = 0; snprintf(what, n, "count 0"); break;
    case 1: r->count = ((int64_t)1 << 40) + 1; snprintf(what, n, "count 2^40+1"); break;
    case 2: r->burst = ((int64_t)1 << 40) + 1; r->count = 1 << 20;
            snprintf(what, n, "burst 2^40+1"); break;
    case 3: r->period_ns = Y50 + 1; r->count = 1 << 20; snprintf(what, n, "period 50y+1"); break;
    case 4: r->burst = -1; snprintf(what, n, "burst -1"); break;
    case 5: r->count = 1; r->period_ns = Y50; r->burst = 2;
            snprintf(what, n, "burst takes 100 years to refill"); break;
    case 6: r->algorithm = 3 + (int)rn(5); snprintf(what, n, "algorithm %d", r->algorithm); break;
    case 7: r->period_ns = 0; r->algorithm = RL_ALGO_SLIDING_WINDOW;
            snprintf(what, n, "sliding window with period 0"); break;
    default: r->period_ns = 0; r->burst = 0; snprintf(what, n, "GCRA with period 0"); break;
    }
}

static void set_clock(drv *d, int64_t t)
{
    d->now = t;
    M.now = t;
}

static void drv_open(drv *d)
{
    rl_options o = RL_OPTIONS_INIT;
    o.clock = drv_clock;
    o.clock_ctx = d;
    if (rl_open(&d->r, d->path, &o) != RL_OK)
        fail_msg("rl_open(%s): %s", d->path, rl_errmsg(d->r));
}

/* Writes the model's tiers to the store, fresh keys named for segment seg. */
static void install_policy(drv *d, long seg)
{
    rl_limit rls[MAXL];
    int t, i, rc;
    size_t li;
    memset(&M.key, 0, sizeof M.key);
    for (t = 0; t < NTIERS; t++) {
        for (li = 0; li < M.tier[t].n; li++)
            rls[li] = to_rl(&M.tier[t].l[li]);
        rc = rl_tier_set(d->r, TIER_NAME[t], rls, M.tier[t].unlimited ? 0 : M.tier[t].n);
        if (rc != RL_OK)
            fail_msg("rl_tier_set(%s) returned %d: %s", TIER_NAME[t], rc, rl_errmsg(d->r));
    }
    for (i = 0; i < NKEYS; i++) {
        mkey *k = &M.key[i];
        snprintf(k->name, sizeof k->name, "s%ld:k%d", seg, i);
        k->assigned = -1;
        k->slots_tier = -1;
    }
}

/* ------------------------------------------------------------------ */
/* Executing one operation: the call, the model, the comparison. Returns 0
 * when the operation is skipped because, in the current state, it would hit
 * a documented ambiguity or a known issue. */

/* The amounts of an rl_acquire by resource; *invalid for RL_EINVAL. */
static int op_costs(const op *o, mcost *cs, rl_cost *rc)
{
    int i, j, invalid = o->dupkey;
    for (i = 0; i < o->n; i++) {
        cs[i].res = o->res[i];
        cs[i].amount = o->amt[i];
        rc[i].resource = o->null_res[i] ? NULL : RES_NAME[o->res[i]];
        rc[i].amount = o->amt[i];
        if (o->amt[i] < 0) /* "Costs are non-negative" */
            invalid = 1;
        for (j = 0; j < i; j++) /* "each resource once" */
            if (o->res[j] == o->res[i])
                invalid = 1;
    }
    return invalid;
}

static void log_costs(drv *d, const rl_cost *rc, int n)
{
    int i;
    logf_(d, " {");
    for (i = 0; i < n; i++)
        logf_(d, "%s%s:%lld", i ? " " : "", rc[i].resource ? rc[i].resource : "NULL",
              (long long)rc[i].amount);
    logf_(d, "}");
}

static int ex_allow(drv *d, const op *o)
{
    int ki = o->ks[0], rc;
    mcost c = { 0, o->cost };
    rl_result res;
    xres x;
    if (o->cost >= 0 && (decide(&ki, 1, &c, 1, M_ALLOW, 0, 1, &x, NULL), x.amb))
        return 0;
    logf_(d, "%lld allow %s %lld", (long long)M.now, M.key[ki].name, (long long)o->cost);
    memset(&res, 0x5a, sizeof res);
    rc = rl_allow(d->r, M.key[ki].name, o->cost, &res);
    if (o->cost < 0) {
        memset(&x, 0, sizeof x);
        x.rc = RL_EINVAL;
    } else {
        decide(&ki, 1, &c, 1, M_ALLOW, 0, 0, &x, NULL);
    }
    compare(d, "rl_allow", &x, rc, &res, 1);
    return 1;
}

static int ex_acquire(drv *d, const op *o)
{
    int multi = o->kind == O_ACQKEYS, i, rc, invalid;
    mcost cs[NRES + 1];
    rl_cost rcs[NRES + 1];
    const char *names[NKEYS];
    rl_result res;
    xres x;
    invalid = op_costs(o, cs, rcs);
    for (i = 0; i < o->nk; i++)
        names[i] = M.key[o->ks[i]].name;
    if (o->dupkey)
        names[o->nk - 1] = names[0]; /* "RL_EINVAL if a key is given twice" */
    if (!invalid && (decide(o->ks, o->nk, cs, o->n, M_ALLOW, 0, 1, &x, NULL), x.amb))
        return 0;
    logf_(d, "%lld %s", (long long)M.now, multi ? "acquire_keys" : "acquire");
    for (i = 0; i < o->nk; i++)
        logf_(d, " %s", names[i]);
    log_costs(d, rcs, o->n);
    memset(&res, 0x5a, sizeof res);
    if (multi)
        rc = rl_acquire_keys(d->r, names, (size_t)o->nk, rcs, (size_t)o->n, &res);
    else
        rc = rl_acquire(d->r, names[0], rcs, (size_t)o->n, &res);
    if (invalid) {
        memset(&x, 0, sizeof x);
        x.rc = RL_EINVAL;
    } else {
        decide(o->ks, o->nk, cs, o->n, M_ALLOW, 0, 0, &x, NULL);
    }
    compare(d, multi ? "rl_acquire_keys" : "rl_acquire", &x, rc, &res, 1);
    return 1;
}

static int ex_batch(drv *d, const op *o)
{
    rl_batch_item it[MAXB];
    int i, rc, any_bad = 0;
    static model saved;
    memset(it, 0, sizeof it);
    saved = M;
    for (i = 0; i < o->n; i++) {
        xres x;
        mcost c = { 0, o->amt[i] };
        it[i].key = M.key[o->bk[i]].name;
        it[i].cost = o->amt[i];
        if (c.amount >= 0 && (decide(&o->bk[i], 1, &c, 1, M_ALLOW, 0, 0, &x, NULL), x.amb)) {
            M = saved;
            return 0;
        }
    }
    M = saved;
    logf_(d, "%lld batch", (long long)M.now);
    for (i = 0; i < o->n; i++)
        logf_(d, " %s:%lld", it[i].key, (long long)it[i].cost);
    rc = rl_allow_batch(d->r, it, (size_t)o->n);
    logf_(d, " -> rc=%d", rc);
    d->compared++;
    if (rc != RL_OK)
        mismatch(d, "rl_allow_batch: return code", "rl_allow_batch returned %d", rc);
    for (i = 0; i < o->n; i++) {
        xres x;
        if (it[i].cost < 0) {
            memset(&x, 0, sizeof x);
            x.rc = RL_EINVAL;
        } else {
            mcost c = { 0, it[i].cost };
            decide(&o->bk[i], 1, &c, 1, M_ALLOW, 0, 0, &x, NULL);
        }
        if (x.rc != RL_OK)
            any_bad = 1;
        logf_(d, " [%d]", i);
        compare(d, "rl_allow_batch item", &x, it[i].rc, &it[i].res, 0);
    }
    /* AMBIGUOUS: rl_errmsg after an RL_OK batch with a failed item */
    if (!any_bad)
        check_errmsg(d, rc);
    return 1;
}

static int ex_reserve(drv *d, const op *o, mresv *m)
{
    int ki = o->ks[0], rc;
    int64_t dl;
    mcost c = { 0, o->cost };
    xres x;
    rl_reservation rv;
    const char *bad = NULL;
    if (o->cost >= 0) {
        dl = decide(&ki, 1, &c, 1, M_RESERVE, 0, 1, &x, NULL);
        if (x.amb)
            return 0;
#ifdef KNOWN_ISSUE_15_8
        if (x.win_other && dl >= 0 && dl <= o->lim)
            return 0;
#endif
        if (x.win_behind && dl <= o->lim)
            return 0;
#ifdef KNOWN_ISSUE_15_10
        if (dl > Y50 && dl <= o->lim)
            return 0;
#endif
#ifdef KNOWN_ISSUE_15_3
        if (dl >= 0 && dl <= o->lim && (i128)M.now + dl + 2 * (i128)d->maxspan > INT64_MAX)
            return 0;
#endif
    }
    logf_(d, "%lld reserve %s %lld max_delay=%lld", (long long)M.now, M.key[ki].name,
          (long long)o->cost, (long long)o->lim);
    memset(&rv, 0x5a, sizeof rv);
    rc = rl_reserve(d->r, M.key[ki].name, o->cost, o->lim, &rv);
    logf_(d, " -> rc=%d ok=%d delay=%lld tta=%lld", rc, rc == RL_OK ? rv.ok : -1,
          rc == RL_OK ? (long long)rv.delay_ns : -1, rc == RL_OK ? (long long)rv.time_to_act : -1);
    memset(m, 0, sizeof *m);
    if (o->cost < 0) {
        memset(&x, 0, sizeof x);
        x.rc = RL_EINVAL;
        dl = 0;
    } else {
        dl = decide(&ki, 1, &c, 1, M_RESERVE, o->lim, 0, &x, m);
    }
    d->compared++;
    if (rc != x.rc)
        bad = "return code";
    else if (rc == RL_OK && rv.ok != x.allowed)
        bad = "ok";
    else if (rc == RL_OK && rv.delay_ns != dl)
        bad = "delay_ns";
    else if (rc == RL_OK && rv.ok && rv.time_to_act != M.now + dl)
        bad = "time_to_act";
    if (bad) {
        char tag[64];
        snprintf(tag, sizeof tag, "rl_reserve: %s", bad);
        mismatch(d, tag, "rl_reserve: %s: model rc=%d ok=%d delay=%lld time_to_act=%lld", bad,
                 x.rc, x.allowed, (long long)dl,
                 (long long)((i128)M.now + dl > INT64_MAX ? INT64_MAX : M.now + dl));
    }
    check_errmsg(d, rc);
    if (rc != RL_OK)
        return 1;
    m->used = 1;
    m->rv = rv;
    m->ki = ki;
    m->tier = tier_of(&M.key[ki]);
    m->ok = rv.ok;
    m->gen = M.key[ki].gen;
    m->agen = M.key[ki].agen;
    m->tta = (i128)M.now + dl > INT64_MAX ? INT64_MAX : M.now + dl; /* beyond: not ok */
    m->cost = o->cost;
    return 1;
}

static int ex_cancel(drv *d, const op *o)
{
    mresv *m;
    mkey *k;
    int rc, t;
    size_t li;
    if (!d->done[o->arg] || !d->rv[o->arg].used)
        return 0;
    m = &d->rv[o->arg];
    k = &M.key[m->ki];
    t = m->tier;
#ifdef KNOWN_ISSUE_15_1
    if (m->gen != k->gen)
        return 0; /* the key was reset since */
#endif
#ifdef KNOWN_ISSUE_15_11
    if (m->cancelled)
        return 0;
#endif
    /* AMBIGUOUS: "re-tiered since" when the key was assigned away and back
     * (or to the tier it had) */
    if (m->agen != k->agen && tier_of(k) == t)
        return 0;
#ifdef KNOWN_ISSUE_15_12
    if (m->agen != k->agen)
        return 0;
#endif
    /* AMBIGUOUS: what "no later decision has built on them" means for a
     * token bucket that ran full between the reservation and a later
     * charge (a refill gap): not generated */
    if (m->ok && M.now < m->tta && m->gen == k->gen && tier_of(k) == t && k->slots_tier == t)
        for (li = 0; li < M.tier[t].n; li++)
            if (M.tier[t].l[li].algo == RL_ALGO_GCRA && M.tier[t].l[li].res == 0 &&
                k->slot[li].epoch != m->epoch[li])
                return 0;
    logf_(d, "%lld cancel %s (the reservation of #%d: cost %lld, ok=%d, time_to_act=%lld)",
          (long long)M.now, k->name, o->arg, (long long)m->cost, m->ok, (long long)m->tta);
    rc = rl_cancel(d->r, &m->rv);
    logf_(d, " -> rc=%d", rc);
    d->compared++;
    if (rc != RL_OK)
        mismatch(d, "rl_cancel: return code", "rl_cancel returned %d", rc);
    check_errmsg(d, rc);
    m_cancel(m);
    m->cancelled = 1;
    return 1;
}

/* rl_wait sleeps for real: a watchdog cancels a wait that sleeps much
 * longer than the model's delay (at most a few ms), which would otherwise
 * hang the test when rl and the model disagree. */
static volatile sig_atomic_t wait_cancel;

static void on_alarm(int sig)
{
    (void)sig;
    wait_cancel = 1;
}

static void watchdog(int arm)
{
    struct itimerval it;
    memset(&it, 0, sizeof it);
    if (arm) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sigaction(SIGALRM, &sa, NULL);
        wait_cancel = 0;
        it.it_value.tv_sec = 2;
    }
    setitimer(ITIMER_REAL, &it, NULL);
}

static int ex_wait(drv *d, const op *o)
{
    int ki = o->ks[0], rc;
    int64_t dl;
    mcost c = { 0, o->cost };
    rl_result res;
    xres x;
    dl = decide(&ki, 1, &c, 1, M_WAIT, 0, 1, &x, NULL);
    if (x.amb || (x.win_behind && dl <= o->lim))
        return 0;
    /* rl_wait sleeps the real delay (the injected clock stands still) */
    if (dl > 2 * RL_MILLISECOND && dl <= o->lim)
        return 0;
#ifdef KNOWN_ISSUE_15_5
    if (dl > 0 && dl <= o->lim && o->lim - dl < RL_MILLISECOND)
        return 0;
#endif
#ifdef KNOWN_ISSUE_15_8
    if (x.win_other && dl >= 0 && dl <= o->lim)
        return 0;
#endif
    logf_(d, "%lld wait %s %lld timeout=%lld", (long long)M.now, M.key[ki].name, (long long)o->cost,
          (long long)o->lim);
    memset(&res, 0x5a, sizeof res);
    watchdog(1);
    rc = rl_wait(d->r, M.key[ki].name, o->cost, o->lim, &wait_cancel, &res);
    watchdog(0);
    if (rc == RL_ECANCELED) {
        logf_(d, " -> rc=%d (cancelled by the watchdog after 2 s)", rc);
        mismatch(d, "rl_wait: slept", "rl_wait slept more than 2 s; the model's delay is %lld ns",
                 (long long)dl);
        return 1;
    }
    decide(&ki, 1, &c, 1, M_WAIT, o->lim, 0, &x, NULL);
    /* "If admission would need more than timeout_ns, it returns
     * RL_ETIMEOUT at once, consuming nothing"; "On success res->allowed = 1
     * and res->retry_after_ns = 0" */
    compare(d, "rl_wait", &x, rc, &res, 1);
    return 1;
}

static int ex_penalize(drv *d, const op *o)
{
    int ri = o->arg, rc, xrc = RL_OK;
    int64_t dur = o->lim;
    mkey *k = &M.key[o->ks[0]];
    /* "RL_EINVAL for a duration beyond 50 years"; AMBIGUOUS which 50
     * years: not generated between 50 × 365 and 50 × 366 days */
    if (dur < 0 || dur > Y50)
        xrc = RL_EINVAL;
    else if (dur > 50 * 365 * RL_DAY)
        return 0;
    if (xrc == RL_OK && (i128)M.now + dur > INT64_MAX)
        return 0;
    logf_(d, "%lld penalize %s %s %lld", (long long)M.now, k->name,
          ri ? RES_NAME[ri - 1] : "NULL", (long long)dur);
    rc = rl_penalize(d->r, k->name, ri ? RES_NAME[ri - 1] : NULL, dur);
    logf_(d, " -> rc=%d", rc);
    d->compared++;
    if (rc != xrc)
        mismatch(d, "rl_penalize: return code", "rl_penalize returned %d, model %d", rc, xrc);
    check_errmsg(d, rc);
    if (xrc != RL_OK)
        return 1;
    k->known = 1;
    /* "refused for duration_ns from now ... A longer cool-down already in
     * place is kept; duration_ns = 0 lifts it." */
    if (dur == 0) {
        k->cd_has[ri] = 0;
    } else if (!k->cd_has[ri] || k->cd_end[ri] <= M.now || k->cd_end[ri] < M.now + dur) {
        k->cd_has[ri] = 1;
        k->cd_end[ri] = M.now + dur;
    }
    return 1;
}

static int ex_reset(drv *d, const op *o)
{
    int rc, xrc;
    mkey *k = &M.key[o->ks[0]];
    logf_(d, "%lld reset %s", (long long)M.now, k->name);
    rc = rl_reset(d->r, k->name);
    logf_(d, " -> rc=%d", rc);
    /* "RL_ENOTFOUND if the key has never been seen" (AMBIGUOUS for a key
     * only assigned or penalized: either answer, and the model follows) */
    xrc = k->exists ? RL_OK : RL_ENOTFOUND;
    if (k->known && !k->exists && (rc == RL_OK || rc == RL_ENOTFOUND))
        xrc = rc;
    d->compared++;
    if (rc != xrc)
        mismatch(d, "rl_reset: return code", "rl_reset returned %d, model %d", rc, xrc);
    check_errmsg(d, rc);
    if (rc == RL_OK) {
        /* "Forgets the key's buckets, cool-downs and counters: its next
         * request meets full buckets. An explicitly assigned tier is kept." */
        int assigned = k->assigned;
        unsigned gen = k->gen, agen = k->agen;
        char name[48];
        memcpy(name, k->name, sizeof name);
        memset(k, 0, sizeof *k);
        memcpy(k->name, name, sizeof name);
        k->assigned = assigned;
        k->known = assigned >= 0;
        k->slots_tier = -1;
        k->gen = gen + 1;
        k->agen = agen;
    }
    return 1;
}

static int ex_assign(drv *d, const op *o)
{
    int t = o->arg, rc;
    mkey *k = &M.key[o->ks[0]];
    logf_(d, "%lld assign %s %s", (long long)M.now, k->name, t < 0 ? "NULL" : TIER_NAME[t]);
    rc = rl_key_assign(d->r, k->name, t < 0 ? NULL : TIER_NAME[t]);
    logf_(d, " -> rc=%d", rc);
    d->compared++;
    if (rc != RL_OK)
        mismatch(d, "rl_key_assign: return code", "rl_key_assign returned %d", rc);
    check_errmsg(d, rc);
    /* "limits with the same resource and name carry over (rescaled to the
     * new burst), others start full": the tiers here name their limits
     * apart, so a key meets a new tier's limits full (view()) */
    k->assigned = t;
    k->known = 1;
    k->agen++;
    return 1;
}

static int exec_op(drv *d, const op *o, size_t idx)
{
    int64_t was = d->now;
    int ran = 0, i, j;
    if (o->t < d->now) {
        /* AMBIGUOUS: whether a cool-down that ran out before the clock
         * stepped back still refuses (rl forgets one that has run out):
         * the clock does not step back over the end of one */
        for (i = 0; i < NKEYS; i++)
            for (j = 0; j <= NRES; j++)
                if (M.key[i].cd_has[j] && M.key[i].cd_end[j] > o->t &&
                    M.key[i].cd_end[j] <= d->now)
                    return 0;
    }
    d->step++;
    logline(d)[0] = 0;
    set_clock(d, o->t);
    switch (o->kind) {
    case O_ALLOW: ran = ex_allow(d, o); break;
    case O_ACQUIRE:
    case O_ACQKEYS: ran = ex_acquire(d, o); break;
    case O_BATCH: ran = ex_batch(d, o); break;
    case O_RESERVE: ran = ex_reserve(d, o, &d->rv[idx]); break;
    case O_CANCEL: ran = ex_cancel(d, o); break;
    case O_WAIT: ran = ex_wait(d, o); break;
    case O_PENALIZE: ran = ex_penalize(d, o); break;
    case O_RESET: ran = ex_reset(d, o); break;
    case O_ASSIGN: ran = ex_assign(d, o); break;
    default:
        logf_(d, "%lld stats %s", (long long)M.now, M.key[o->ks[0]].name);
        check_stats(d, o->ks[0]);
        ran = 1;
        break;
    }
    if (!ran) {
        set_clock(d, was);
        d->step--;
        return 0;
    }
    d->done[idx] = 1;
    if (d->verbose)
        printf("  #%zu %s\n", idx, logline(d));
    return 1;
}

/* ------------------------------------------------------------------ */
/* Generating operations */

/* An amount of resource `res` worth asking of the keys' limits: 0, 1, up
 * to and at the smallest burst, and beyond it (RL_ETOOBIG). */
static int64_t gen_amount(const int *ks, int nk, int res)
{
    int64_t minb = INT64_MAX, maxb = 0;
    int i;
    size_t li;
    for (i = 0; i < nk; i++) {
        const mtier *t = &M.tier[tier_of(&M.key[ks[i]])];
        for (li = 0; !t->unlimited && li < t->n; li++)
            if (t->l[li].res == res) {
                int64_t b = eff_burst(&t->l[li]);
                if (b < minb)
                    minb = b;
                if (b > maxb)
                    maxb = b;
            }
    }
    if (maxb == 0)
        minb = maxb = 10;
    switch (rn(20)) {
    case 0: case 1: return 0;
    case 2: return minb;
    case 3: return minb + 1 + rn(3);
    case 4: return maxb;
    case 5: return minb > 3 ? minb - 1 - rn(2) : 1;
    case 6: case 7: case 8: return 1 + rn(minb < 1000 ? minb : 1000);
    case 9: return 1 + rn(minb);
    default: return 1;
    }
}

/* The next clock value: the same, a nanosecond on, a rate's step, a window
 * edge, a period, years; backwards only where that is exactly defined. */
static int64_t next_time(drv *d)
{
    const mtier *t = &M.tier[rn(2)];
    const mlimit *l = t->unlimited ? NULL : &t->l[rn((int64_t)t->n)];
    int64_t P = l ? l->period : RL_SECOND, em = l ? l->period / l->count : 1, step = 0;
    i128 to;
    if (em < 1)
        em = 1;
    if (!chance(45))
        return d->now;
    switch (rn(20)) {
    case 0: case 1: case 2: step = 0; break;
    case 3: case 4: step = 1; break;
    case 5: step = rn(1000); break;
    case 6: case 7: step = em * rn(4) + rn(3); break;
    case 8: step = em - 1; break;
    case 9: step = 1 + rn(P); break;
    case 10: step = P; break;
    case 11: step = (int64_t)((i128)wstart(d->now, P) + P - d->now) + rn(3) - 1; break;
    case 12: case 13: step = rn(10 * RL_SECOND); break;
    case 14: step = rn(P < Y50 / 2 ? 2 * P : P); break;
    case 15: step = chance(20) ? rn(5 * 366 * RL_DAY) : rn(RL_DAY); break;
    case 16: /* backwards: exact for sliding windows (tiers.md: "a time
              * before the window's start is weighed as e = 0"); AMBIGUOUS
              * for GCRA beyond "a clock stepping back grants nothing", and
              * for windows whether a cost-0 check moves a key's window (so
              * the clock does not step back over a window's start) */
        if (d->back_ok) {
            int ti;
            size_t li;
            step = -rn(P < RL_SECOND ? P : RL_SECOND) - 1;
            for (ti = 0; ti < 2; ti++)
                for (li = 0; li < M.tier[ti].n; li++)
                    if ((i128)d->now + step < wstart(d->now, M.tier[ti].l[li].period))
                        step = wstart(d->now, M.tier[ti].l[li].period) - d->now;
        }
        break;
    default: step = rn(3 * em); break;
    }
    if (step < 0 && !d->back_ok)
        step = 0;
    to = (i128)d->now + step;
    if (to > d->hi || to < d->lo)
        to = d->now;
    return (int64_t)to;
}

static int pick_key(void)
{
    return (int)rn(NKEYS);
}

/* Fills *o with a random operation on the current state; returns 0 if there
 * is none to make (a cancel without reservations). */
static int gen_op(drv *d, op *o)
{
    int r = (int)rn(100), i;
    memset(o, 0, sizeof *o);
    o->t = next_time(d);
    o->ks[0] = pick_key();
    o->nk = 1;
    if (r < 28) {
        o->kind = O_ALLOW;
        o->cost = chance(1) ? -1 : gen_amount(o->ks, 1, 0);
    } else if (r < 47) {
        int perm[NRES] = { 0, 1, 2 };
        o->kind = r < 40 ? O_ACQUIRE : O_ACQKEYS;
        if (o->kind == O_ACQKEYS) {
            int ks[NKEYS] = { 0, 1, 2, 3 };
            for (i = NKEYS - 1; i > 0; i--) {
                int j = (int)rn(i + 1), tmp = ks[i];
                ks[i] = ks[j];
                ks[j] = tmp;
            }
            o->nk = 1 + (int)rn(NKEYS);
            memcpy(o->ks, ks, sizeof ks);
            o->dupkey = o->nk > 1 && chance(2);
        }
        for (i = NRES - 1; i > 0; i--) {
            int j = (int)rn(i + 1), tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        o->n = 1 + (int)rn(3);
        for (i = 0; i < o->n; i++) {
            o->res[i] = perm[i];
            o->null_res[i] = perm[i] == 0 && chance(30);
            o->amt[i] = gen_amount(o->ks, o->nk, perm[i]);
        }
        if (chance(2)) { /* a resource twice: RL_EINVAL */
            o->res[o->n] = o->res[0];
            o->null_res[o->n] = !o->null_res[0] && o->res[0] == 0;
            o->amt[o->n] = o->amt[0];
            o->n++;
        } else if (chance(1)) {
            o->amt[0] = -1 - rn(5);
        }
    } else if (r < 51) {
        o->kind = O_BATCH;
        o->n = 1 + (int)rn(MAXB);
        for (i = 0; i < o->n; i++) {
            o->bk[i] = pick_key();
            o->amt[i] = chance(3) ? -1 : gen_amount(&o->bk[i], 1, 0);
        }
    } else if (r < 62 || r >= 97) {
        /* max_delay around the delay the model expects */
        int64_t dl, saved = d->now;
        mcost c;
        xres x;
        o->kind = r < 62 ? O_RESERVE : O_WAIT;
        o->cost = (o->kind == O_RESERVE && chance(1)) ? -1 : gen_amount(o->ks, 1, 0);
        c.res = 0;
        c.amount = o->cost;
        set_clock(d, o->t);
        dl = o->cost >= 0 ? decide(o->ks, 1, &c, 1, M_RESERVE, 0, 1, &x, NULL) : 0;
        set_clock(d, saved);
        if (o->kind == O_RESERVE) {
            switch (rn(6)) {
            case 0: o->lim = 0; break;
            case 1: o->lim = dl > 0 ? dl : 0; break;
            case 2: o->lim = dl > 0 ? dl - 1 : 0; break;
            case 3: o->lim = Y50; break;
            default: o->lim = rn(dl > 0 ? 2 * dl : RL_SECOND); break;
            }
        } else if (dl <= 0) {
            o->lim = chance(50) ? 0 : rn(RL_SECOND);
        } else if (dl <= 2 * RL_MILLISECOND && chance(50)) {
            /* sleeps dl, really */
            switch (rn(10)) {
            case 0: o->lim = dl; break;
            case 1: case 2: o->lim = dl + rn(1000); break;
            default: o->lim = dl + RL_MILLISECOND + rn(RL_MILLISECOND); break;
            }
        } else {
            o->lim = rn(dl); /* RL_ETIMEOUT at once */
        }
        if ((i128)o->t + o->lim > INT64_MAX)
            o->lim = INT64_MAX - o->t;
    } else if (r < 70) {
        size_t n = 0, i2, pick;
        o->kind = O_CANCEL;
        for (i2 = 0; i2 < d->nops; i2++)
            if (d->ops[i2].kind == O_RESERVE && d->done[i2])
                n++;
        if (n == 0)
            return 0;
        pick = (size_t)rn((int64_t)(n < 16 ? n : 16)); /* one of the last 16 */
        for (i2 = d->nops; i2-- > 0;)
            if (d->ops[i2].kind == O_RESERVE && d->done[i2] && pick-- == 0) {
                o->arg = (int)i2;
                break;
            }
    } else if (r < 78) {
        o->kind = O_PENALIZE;
        o->arg = (int)rn(NRES + 1);
        switch (rn(8)) {
        case 0: o->lim = 0; break;
        case 1: o->lim = 1 + rn(1000); break;
        case 2: o->lim = 1 + rn(10 * RL_SECOND); break;
        case 3: o->lim = 1 + rn(RL_HOUR); break;
        case 4: o->lim = 1 + rn(50 * 365 * RL_DAY); break;
        case 5: o->lim = chance(50) ? -1 - rn(RL_SECOND) : Y50 + 1 + rn(Y50); break;
        default: o->lim = 1 + rn(RL_MINUTE); break;
        }
    } else if (r < 81) {
        o->kind = O_RESET;
    } else if (r < 83) {
        o->kind = O_ASSIGN;
        o->arg = (int)rn(NTIERS + 1) - 1;
    } else {
        o->kind = O_STATS;
    }
    return 1;
}

static void seg_reserve(drv *d, size_t n)
{
    if (n <= d->cap)
        return;
    d->cap = n * 2;
    d->ops = realloc(d->ops, d->cap * sizeof *d->ops);
    d->rv = realloc(d->rv, d->cap * sizeof *d->rv);
    d->done = realloc(d->done, d->cap);
    assert_non_null(d->ops);
    assert_non_null(d->rv);
    assert_non_null(d->done);
}

/* A new segment: new tiers, new keys, maybe a new clock. */
static void new_segment(drv *d)
{
    int t, rc, windows_only = chance(20);
    size_t li;
    int64_t base;
    d->segments++;
    d->nops = 0;
    for (t = 0; t < NTIERS; t++) {
        mtier *tr = &M.tier[t];
        memset(tr, 0, sizeof *tr);
        if (t == 2) {
            tr->unlimited = 1;
        } else {
            tr->n = (size_t)(1 + rn(t == 0 ? MAXL : 2));
            for (li = 0; li < tr->n; li++) {
                char name[16];
                snprintf(name, sizeof name, "%c%zu", t == 0 ? 'd' : 'a', li);
                gen_limit(&tr->l[li], name, windows_only);
            }
        }
        if (chance(15)) {
            /* an invalid limit: refused, nothing changes */
            rl_limit bad;
            char what[64];
            gen_bad_limit(&bad, what, sizeof what);
            rc = rl_tier_set(d->r, TIER_NAME[t], &bad, 1);
            d->compared++;
            if (rc != RL_EINVAL) {
                mismatch(d, "rl_tier_set: return code",
                         "rl_tier_set(\"%s\", {%s}) returned %d, expected RL_EINVAL (tiers.md's bounds)",
                         TIER_NAME[t], what, rc);
                return;
            }
        }
    }
    memcpy(d->tiers, M.tier, sizeof d->tiers);
    install_policy(d, d->segments);
    /* the largest span a decision can reach ahead of the clock */
    d->maxspan = RL_SECOND;
    d->back_ok = 1;
    for (t = 0; t < 2; t++)
        for (li = 0; li < M.tier[t].n; li++) {
            const mlimit *l = &M.tier[t].l[li];
            int64_t span = (int64_t)((i128)eff_burst(l) * l->period / l->count) + 2 * l->period;
            if (l->algo != RL_ALGO_SLIDING_WINDOW)
                d->back_ok = 0;
            if (span > d->maxspan)
                d->maxspan = span;
        }
    /* the clock: on from where it was, or a new start */
    /* the highest clock from which every clock time rl has to keep (a
     * bucket's end, a window's end, a cool-down's end, a time to act) still
     * fits in int64 */
    d->lo = INT64_MIN / 4;
    d->hi = INT64_MAX - RL_SECOND;
#ifdef KNOWN_ISSUE_15_2
    d->lo = 0;
#endif
#ifdef KNOWN_ISSUE_15_3
    {
        /* every clock time rl keeps (a bucket's end, a window's end, a
         * cool-down's end, a time to act) stays below INT64_MAX */
        i128 h = (i128)INT64_MAX - d->maxspan - Y50 - RL_SECOND;
        d->hi = h < 2 * (i128)T0 ? 2 * T0 : (int64_t)h;
        if (d->hi > (int64_t)4000000000 * RL_SECOND) /* about the year 2096 */
            d->hi = (int64_t)4000000000 * RL_SECOND;
    }
#endif
    base = d->now;
    switch (rn(12)) {
    case 0: case 1: case 2: base = T0 + rn(RL_DAY); break;
#ifndef KNOWN_ISSUE_15_4
    case 3: base = 0; break;
#endif
#ifndef KNOWN_ISSUE_15_2
    case 4: base = -rn(Y50) - 1; break;
    case 5: base = -rn(RL_SECOND) - 1; break;
#endif
#ifndef KNOWN_ISSUE_15_3
    /* near the top: ends of buckets and windows may lie beyond INT64_MAX,
     * what rl reports (durations, a time to act) does not */
    case 6: base = d->hi - rn(chance(50) ? RL_DAY : d->maxspan); break;
#endif
    default: break;
    }
    if (base > d->hi || base < d->lo)
        base = T0 + rn(RL_DAY);
    set_clock(d, base);
}

/* ------------------------------------------------------------------ */
/* Replaying and shrinking a failing segment */

static long replay_seq;

/* Runs the kept operations of d's segment on a fresh store; returns 1 if it
 * fails with d's tag. */
static int replay(drv *d, const char *keep, int verbose)
{
    drv *e = calloc(1, sizeof *e);
    size_t i;
    int same;
    assert_non_null(e);
    e->kind = d->kind;
    e->verbose = verbose;
    memcpy(e->dir, d->dir, sizeof e->dir);
    if (d->kind == STORE_SQLITE)
        snprintf(e->path, sizeof e->path, "%s/replay%ld.db", d->dir, ++replay_seq);
    else
        assert_int_equal(test_store_path(d->kind, d->dir, e->path, sizeof e->path), 0);
    e->now = d->nops ? d->ops[0].t : d->now;
    for (i = 0; i < d->nops; i++)
        if (keep[i]) {
            e->now = d->ops[i].t;
            break;
        }
    M.now = e->now;
    drv_open(e);
    memcpy(M.tier, d->tiers, sizeof M.tier);
    install_policy(e, d->segments);
    e->ops = d->ops;
    e->nops = d->nops;
    e->rv = calloc(d->nops + 1, sizeof *e->rv);
    e->done = calloc(d->nops + 1, 1);
    for (i = 0; i < d->nops && !e->failed; i++)
        if (keep[i])
            exec_op(e, &d->ops[i], i);
    same = e->failed && strcmp(e->tag, d->tag) == 0;
    if (verbose && e->failed)
        printf("  mismatch: %s\n", e->msg);
    rl_close(e->r);
    if (d->kind == STORE_SQLITE) {
        char f[600];
        unlink(e->path);
        snprintf(f, sizeof f, "%s-wal", e->path);
        unlink(f);
        snprintf(f, sizeof f, "%s-shm", e->path);
        unlink(f);
        snprintf(f, sizeof f, "%s-rlshm", e->path);
        unlink(f);
    }
    free(e->rv);
    free(e->done);
    free(e);
    d->replays++;
    return same;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Delta debugging light: drops chunks of operations, halving the chunk,
 * while the same kind of mismatch remains; bounded in time. */
static void shrink(drv *d, char *keep)
{
    size_t n = d->nops, chunk = n / 2, i, j;
    double until = mono_s() + 60;
    char *trial = malloc(n + 1);
    assert_non_null(trial);
    if (chunk == 0)
        chunk = 1;
    for (;;) {
        int changed = 0;
        for (i = 0; i < n && mono_s() < until; i += chunk) {
            int any = 0;
            memcpy(trial, keep, n);
            for (j = i; j < i + chunk && j < n; j++) {
                any |= trial[j];
                trial[j] = 0;
            }
            if (any && replay(d, trial, 0)) {
                memcpy(keep, trial, n);
                changed = 1;
            }
        }
        if (mono_s() >= until)
            break;
        if (!changed) {
            if (chunk == 1)
                break;
            chunk /= 2;
        }
    }
    free(trial);
}

static void report(drv *d)
{
    long i, from = d->step - (LOGN - 1) < 1 ? 1 : d->step - (LOGN - 1);
    char *keep;
    size_t k, kept = 0;
    printf("\n*** MODEL MISMATCH on %s: seed %llu, operation %ld, segment %ld\n"
           "replay: RL_MODEL_SEED=%llu RL_MODEL_OPS=%ld RL_MODEL_STORE=%s\n",
           test_store_name(d->kind), (unsigned long long)d->seed, d->step, d->segments,
           (unsigned long long)d->seed, d->step, test_store_name(d->kind));
    printf("policy of this segment:\n");
    dump_tiers(d->tiers);
    printf("last operations (clock, call, rl's answer):\n");
    for (i = from; i <= d->step; i++)
        printf("  %s\n", d->log[i % LOGN]);
    printf("mismatch: %s\n", d->msg);
    fflush(stdout);
    if (d->nops == 0)
        return;
    keep = malloc(d->nops + 1);
    assert_non_null(keep);
    memset(keep, 1, d->nops);
    if (!replay(d, keep, 0)) {
        printf("(the segment replayed on a fresh store does not fail the same way: no minimal trace)\n");
        free(keep);
        return;
    }
    shrink(d, keep);
    for (k = 0; k < d->nops; k++)
        kept += keep[k] != 0;
    printf("minimal trace (%zu of %zu operations, %ld replays), on a fresh %s store with "
           "the policy above; keys s%ld:k0..3:\n",
           kept, d->nops, d->replays, test_store_name(d->kind), d->segments);
    replay(d, keep, 1);
    fflush(stdout);
    free(keep);
}

/* ------------------------------------------------------------------ */

static uint64_t the_seed(void)
{
    static uint64_t seed;
    static int have;
    const char *s = getenv("RL_MODEL_SEED");
    if (!have) {
        if (s && *s) {
            seed = strtoull(s, NULL, 0);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^
                   ((uint64_t)getpid() << 32);
        }
        have = 1;
    }
    return seed;
}

/* RL_MODEL_OPS: run exactly this many operations (a replay of a failure
 * reported with it), whatever the time. */
static long ops_limit(void)
{
    const char *s = getenv("RL_MODEL_OPS");
    return s && *s ? strtol(s, NULL, 10) : 0;
}

static double budget_s(void)
{
    const char *s = getenv("RL_MODEL_SECONDS");
    double v = s && *s ? strtod(s, NULL) : 3.0;
    return v > 0 ? v : 3.0;
}

static void run_model(int kind)
{
    drv *d;
    double t_end, t_start = mono_s();
    long seg_left = 0;
    const char *only = getenv("RL_MODEL_STORE");
    char cmd[160];
    if (only && *only && strcmp(only, test_store_name(kind)) != 0) {
        printf("[ MODEL    ] %s: skipped (RL_MODEL_STORE=%s)\n", test_store_name(kind), only);
        return;
    }
    d = calloc(1, sizeof *d);
    assert_non_null(d);
    d->kind = kind;
    d->seed = the_seed();
    rng_state = d->seed;
    memset(&M, 0, sizeof M);
    strcpy(d->dir, "/tmp/rl_test_model.XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    assert_int_equal(test_store_path(kind, d->dir, d->path, sizeof d->path), 0);
    set_clock(d, T0);
    drv_open(d);
    printf("[ MODEL    ] %s: seed %llu (RL_MODEL_SEED=%llu replays), %.1f s\n",
           test_store_name(kind), (unsigned long long)d->seed, (unsigned long long)d->seed,
           budget_s());
    fflush(stdout);
    t_end = t_start + budget_s();
    while (!d->failed && (ops_limit() > 0 ? d->step < ops_limit() : mono_s() < t_end)) {
        op o;
        if (seg_left-- <= 0) {
            new_segment(d);
            seg_left = 20 + rn(chance(50) ? 200 : 2000);
            continue;
        }
        if (!gen_op(d, &o))
            continue;
        seg_reserve(d, d->nops + 1);
        d->ops[d->nops] = o;
        d->done[d->nops] = 0;
        memset(&d->rv[d->nops], 0, sizeof d->rv[d->nops]);
        if (exec_op(d, &d->ops[d->nops], d->nops))
            d->nops++;
    }
    if (d->failed) {
        char msg[2200];
        snprintf(msg, sizeof msg, "%s", d->msg);
        report(d);
        rl_close(d->r);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
        if (system(cmd) != 0)
            printf("could not remove %s\n", d->dir);
        free(d->ops);
        free(d->rv);
        free(d->done);
        free(d);
        fail_msg("model mismatch on %s (seed %s%llu): %s", test_store_name(kind),
                 "", (unsigned long long)the_seed(), msg);
        return;
    }
    printf("[ MODEL    ] %s: %ld calls compared in %ld operations, %ld segments, %.2f s\n",
           test_store_name(kind), d->compared, d->step, d->segments, mono_s() - t_start);
    fflush(stdout);
    rl_close(d->r);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
    assert_int_equal(system(cmd), 0);
    free(d->ops);
    free(d->rv);
    free(d->done);
    free(d);
}

static int setup_mem(void **state)
{
    *state = (void *)(intptr_t)STORE_MEM;
    return 0;
}

static int setup_sqlite(void **state)
{
    *state = (void *)(intptr_t)STORE_SQLITE;
    return 0;
}

static int setup_redis(void **state)
{
    *state = (void *)(intptr_t)STORE_REDIS;
    return 0;
}

static void test_model(void **state)
{
    run_model((int)(intptr_t)*state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_model, setup_mem),
        cmocka_unit_test_setup(test_model, setup_sqlite),
        cmocka_unit_test_setup(test_model, setup_redis),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
