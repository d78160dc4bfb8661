/*
 * model.c - the reference model of docs/api.md (and of docs/tiers.md) that
 * test_model compares rl with: the state of every key (model.h) and, from
 * it, the expected answer of each call. Written from the documents' words,
 * not from rl's code (test_model.c says more).
 */
#include <stdio.h>
#include <string.h>

#include "model.h"

const char *const RES_NAME[NRES] = { "requests", "tokens", "other" };
const char *const TIER_NAME[NTIERS] = { "default", "alt", "unl" };
const int64_t Y50 = 50 * 366 * RL_DAY; /* tiers.md: "50 years (50 × 366 days)" */
const int64_t T0 = (int64_t)1700000000 * RL_SECOND;

/* ------------------------------------------------------------------ */
/* The model */

model M;

int64_t eff_burst(const mlimit *l)
{
    if (l->algo == RL_ALGO_SLIDING_WINDOW)
        return l->count;                   /* "A sliding window's burst is forced to its count" */
    return l->burst ? l->burst : l->count; /* "burst (0 means count)" */
}

int tier_of(const mkey *k)
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

/* api.md: "durations that would pass [INT64_MAX] are INT64_MAX", and so are
 * clock times */
static int64_t sat64(i128 v)
{
    return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

static i128 ceildiv(i128 a, i128 b) /* b > 0 */
{
    return -floordiv(-a, b);
}

/* tiers.md: "fixed windows of PERIOD, aligned to multiples of PERIOD since
 * the Unix epoch". */
int64_t wstart(int64_t t, int64_t p)
{
    return (int64_t)(floordiv(t, p) * p);
}

/* The state of limit li of tier t for key k at `now`, windows moved on
 * (never back: "windows never move back"). */
mslot view(const mkey *k, int t, size_t li, int64_t now)
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
i128 g_used(const mlimit *l, const mslot *s, int64_t now)
{
    i128 u;
    if (!s->has)
        return 0;
    u = s->x - (i128)now * l->count;
    return u > 0 ? u : 0;
}

/* Window: the estimate; "a time before the window's start is weighed as
 * e = 0". */
i128 w_est(const mlimit *l, const mslot *s, int64_t now)
{
    i128 e = (i128)now - s->start;
    if (e < 0)
        e = 0;
    return ceildiv((i128)s->prev * (l->period - e), l->period) + s->cur;
}

/* The smallest wait (ns) after which `c` units pass, nobody asking. */
int64_t l_wait(const mlimit *l, const mslot *s, int64_t now, int64_t c)
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
                return sat64(t - now);
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
        return sat64(t - now);
    }
}

/* "remaining (units it could still admit now)", at least 0 */
int64_t l_remaining(const mlimit *l, const mslot *s, int64_t now)
{
    if (l->algo == RL_ALGO_GCRA) {
        i128 room = (i128)eff_burst(l) * l->period - g_used(l, s, now);
        /* api.md: near the end of int64_t "remaining counts only the units
         * whose bucket state can still be recorded" (below INT64_MAX) */
        i128 end =
            (i128)INT64_MAX * l->count + l->count - 1 - (i128)now * l->count - g_used(l, s, now);
        if (end < room)
            room = end;
        return room <= 0 ? 0 : (int64_t)(room / l->period);
    } else {
        i128 r = (i128)l->count - w_est(l, s, now);
        return r <= 0 ? 0 : (int64_t)r;
    }
}

/* "reset_after_ns (when the deciding limit is full again)" */
int64_t l_reset(const mlimit *l, const mslot *s, int64_t now)
{
    if (l->algo == RL_ALGO_GCRA)
        return (int64_t)ceildiv(g_used(l, s, now), l->count);
    /* tiers.md: until start + 2P if cur counted anything, else start + P if
     * prev did, else 0 */
    if (s->cur > 0)
        return sat64((i128)s->start + 2 * (i128)l->period - now);
    if (s->prev > 0)
        return sat64((i128)s->start + l->period - now);
    return 0;
}

/* The cool-down that covers a decision naming resources res_mask: its end,
 * or INT64_MIN when none is running. */
int64_t cd_cover(const mkey *k, unsigned res_mask, int64_t now)
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

/* Whether some limit of the policy counts resource res (the model's
 * handle has no default limits; an unlimited tier counts nothing). */
static int res_known(int res)
{
    int t;
    size_t li;
    if (res == 0) /* api.md: "requests" is always known */
        return 1;
    for (t = 0; t < NTIERS; t++)
        for (li = 0; !M.tier[t].unlimited && li < M.tier[t].n; li++)
            if (M.tier[t].l[li].res == res)
                return 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Expected answers */

/* One decision (rl_allow, rl_acquire, rl_acquire_keys, rl_reserve,
 * rl_wait) on keys ks[0..nk) with valid arguments. limit (max_delay or
 * timeout) for M_RESERVE and M_WAIT. dry: compute the delay only.
 * Returns the delay: the longest wait among limits and cool-downs. */
int64_t decide(const int *ks, int nk, const mcost *cs, int n, int mode, int64_t lim, int dry,
               xres *x, mresv *rec)
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
    /* api.md: "a resource that no limit of the whole policy counts (no tier,
     * nor default_limits) is RL_ENOLIMIT ... unless the key's tier is
     * unlimited": any key with limits refuses it, before any RL_ETOOBIG */
    for (i = 0; i < n; i++)
        if (!res_known(cs[i].res)) {
            int j;
            for (j = 0; j < nk; j++) {
                const mtier *t = &M.tier[tier_of(&M.key[ks[j]])];
                if (!t->unlimited && t->n > 0) {
                    x->rc = RL_ENOLIMIT;
                    return -1;
                }
            }
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
        const int64_t tta = sat64((i128)now + delay);
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
 * time_to_act "has passed": now >= time_to_act (test_reserve.c's
 * test_reserve_cancel cancels at exactly time_to_act and gets nothing). */
void m_cancel(const mresv *rv)
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
            int64_t back;
            if (cur.start != rv->win[li])
                continue; /* the key's window moved past it */
            *s = cur;
            back = rv->cost < s->cur ? rv->cost : s->cur; /* what is still there */
            s->cur -= back;
            if (M.now < s->start) { /* that window has not begun */
                /* tiers.md: "prev and cur each hold at most 2^41 units" */
                s->prev += back;
                if (s->prev > ((int64_t)1 << 41))
                    s->prev = (int64_t)1 << 41;
            }
        }
    }
}
