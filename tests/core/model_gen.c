/*
 * model_gen.c - test_model's random traces: the PRNG, a segment's policy
 * (generated, then installed in the store) and its operations.
 */
#include "model_driver.h"

/* ------------------------------------------------------------------ */
/* PRNG (splitmix64) */

uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* 0 .. n-1 (0 for n <= 0) */
int64_t rn(int64_t n)
{
    return n > 0 ? (int64_t)(rnd() % (uint64_t)n) : 0;
}

int chance(int pct)
{
    return rn(100) < pct;
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
        1,         7,         1000,          RL_MILLISECOND, 250 * RL_MILLISECOND,
        RL_SECOND, RL_SECOND, 3 * RL_SECOND, RL_MINUTE,      RL_MINUTE,
        RL_HOUR,   RL_DAY,    7 * RL_DAY,    366 * RL_DAY,
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
    case 0:
        r->count = 0;
        snprintf(what, n, "count 0");
        break;
    case 1:
        r->count = ((int64_t)1 << 40) + 1;
        snprintf(what, n, "count 2^40+1");
        break;
    case 2:
        r->burst = ((int64_t)1 << 40) + 1;
        r->count = 1 << 20;
        snprintf(what, n, "burst 2^40+1");
        break;
    case 3:
        r->period_ns = Y50 + 1;
        r->count = 1 << 20;
        snprintf(what, n, "period 50y+1");
        break;
    case 4:
        r->burst = -1;
        snprintf(what, n, "burst -1");
        break;
    case 5:
        r->count = 1;
        r->period_ns = Y50;
        r->burst = 2;
        snprintf(what, n, "burst takes 100 years to refill");
        break;
    case 6:
        r->algorithm = 3 + (int)rn(5);
        snprintf(what, n, "algorithm %d", r->algorithm);
        break;
    case 7:
        r->period_ns = 0;
        r->algorithm = RL_ALGO_SLIDING_WINDOW;
        snprintf(what, n, "sliding window with period 0");
        break;
    default:
        r->period_ns = 0;
        r->burst = 0;
        snprintf(what, n, "GCRA with period 0");
        break;
    }
}

void set_clock(drv *d, int64_t t)
{
    d->now = t;
    M.now = t;
}

void drv_open(drv *d)
{
    rl_options o = RL_OPTIONS_INIT;
    o.clock = drv_clock;
    o.clock_ctx = d;
    if (rl_open(&d->r, d->path, &o) != RL_OK)
        fail_msg("rl_open(%s): %s", d->path, rl_errmsg(d->r));
}

/* Writes the model's tiers to the store, fresh keys named for segment seg. */
void install_policy(drv *d, long seg)
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
    case 0:
    case 1:
        return 0;
    case 2:
        return minb;
    case 3:
        return minb + 1 + rn(3);
    case 4:
        return maxb;
    case 5:
        return minb > 3 ? minb - 1 - rn(2) : 1;
    case 6:
    case 7:
    case 8:
        return 1 + rn(minb < 1000 ? minb : 1000);
    case 9:
        return 1 + rn(minb);
    default:
        return 1;
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
    case 0:
    case 1:
    case 2:
        step = 0;
        break;
    case 3:
    case 4:
        step = 1;
        break;
    case 5:
        step = rn(1000);
        break;
    case 6:
    case 7:
        step = em * rn(4) + rn(3);
        break;
    case 8:
        step = em - 1;
        break;
    case 9:
        step = 1 + rn(P);
        break;
    case 10:
        step = P;
        break;
    case 11:
        step = (int64_t)((i128)wstart(d->now, P) + P - d->now) + rn(3) - 1;
        break;
    case 12:
    case 13:
        step = rn(10 * RL_SECOND);
        break;
    case 14:
        step = rn(P < Y50 / 2 ? 2 * P : P);
        break;
    case 15:
        step = chance(20) ? rn(5 * 366 * RL_DAY) : rn(RL_DAY);
        break;
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
    default:
        step = rn(3 * em);
        break;
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
int gen_op(drv *d, op *o)
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
            case 0:
                o->lim = 0;
                break;
            case 1:
                o->lim = dl > 0 ? dl : 0;
                break;
            case 2:
                o->lim = dl > 0 ? dl - 1 : 0;
                break;
            case 3:
                o->lim = Y50;
                break;
            default:
                /* dl may be INT64_MAX ("never"): no doubling past it */
                o->lim = rn(dl > 0 ? (dl > INT64_MAX / 2 ? INT64_MAX : 2 * dl) : RL_SECOND);
                break;
            }
        } else if (dl <= 0) {
            o->lim = chance(50) ? 0 : rn(RL_SECOND);
        } else if (dl <= 2 * RL_MILLISECOND && chance(50)) {
            /* sleeps dl, really */
            switch (rn(10)) {
            case 0:
                o->lim = dl;
                break;
            case 1:
            case 2:
                o->lim = dl + rn(1000);
                break;
            default:
                o->lim = dl + RL_MILLISECOND + rn(RL_MILLISECOND);
                break;
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
        case 0:
            o->lim = 0;
            break;
        case 1:
            o->lim = 1 + rn(1000);
            break;
        case 2:
            o->lim = 1 + rn(10 * RL_SECOND);
            break;
        case 3:
            o->lim = 1 + rn(RL_HOUR);
            break;
        case 4:
            o->lim = 1 + rn(50 * 365 * RL_DAY);
            break;
        case 5:
            o->lim = chance(50) ? -1 - rn(RL_SECOND) : Y50 + 1 + rn(Y50);
            break;
        default:
            o->lim = 1 + rn(RL_MINUTE);
            break;
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

void seg_reserve(drv *d, size_t n)
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
void new_segment(drv *d)
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
                char name[3]; /* li < MAXL <= 10: one digit */
                name[0] = t == 0 ? 'd' : 'a';
                name[1] = (char)('0' + li);
                name[2] = 0;
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
                mismatch(
                    d, "rl_tier_set: return code",
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
    case 0:
    case 1:
    case 2:
        base = T0 + rn(RL_DAY);
        break;
#ifndef KNOWN_ISSUE_15_4
    case 3:
        base = 0;
        break;
#endif
#ifndef KNOWN_ISSUE_15_2
    case 4:
        base = -rn(Y50) - 1;
        break;
    case 5:
        base = -rn(RL_SECOND) - 1;
        break;
#endif
#ifndef KNOWN_ISSUE_15_3
    /* near the top: ends of buckets and windows may lie beyond INT64_MAX,
     * what rl reports (durations, a time to act) does not */
    case 6:
        base = d->hi - rn(chance(50) ? RL_DAY : d->maxspan);
        break;
#endif
    default:
        break;
    }
    if (base > d->hi || base < d->lo)
        base = T0 + rn(RL_DAY);
    set_clock(d, base);
}
