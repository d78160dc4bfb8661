/*
 * gcra.c - GCRA admission math (see gcra.h for the model).
 *
 * All arithmetic is in __int128 "scaled" units of 1/count nanosecond, so a
 * rate's emission interval never has to be rounded. rl_ldef_check bounds
 * count, period and burst so that now * count, burst * period and the sums
 * here stay far below 2^127.
 */
#include "gcra.h"

__extension__ typedef __int128 i128;

static i128 scaled(const rl_ldef *d, rl_tat t)
{
    return (i128)t.ns * d->count + t.rem;
}

/* Floor division, so rem is always in [0, count) even before the epoch. */
static rl_tat unscaled(const rl_ldef *d, i128 s)
{
    rl_tat t;
    i128 q = s / d->count, r = s % d->count;
    if (r < 0) {
        q -= 1;
        r += d->count;
    }
    if (q > INT64_MAX)
        q = INT64_MAX;
    if (q < INT64_MIN)
        q = INT64_MIN;
    t.ns = (int64_t)q;
    t.rem = (int64_t)r;
    return t;
}

/* A positive scaled span in whole nanoseconds, rounded up: a caller told to
 * wait this long is never early. */
static int64_t ceil_ns(const rl_ldef *d, i128 s)
{
    i128 q;
    if (s <= 0)
        return 0;
    q = (s + d->count - 1) / d->count;
    return q > INT64_MAX ? INT64_MAX : (int64_t)q;
}

/* The latest TAT a state can hold: INT64_MAX ns and count - 1 parts. A
 * TAT there is saturated (spent until the end of time, or beyond it). */
static i128 tat_max(const rl_ldef *d)
{
    return (i128)INT64_MAX * d->count + d->count - 1;
}

/* Units admissible from TAT cur at now_s: what the bucket holds, and no
 * more than the state can record (near the end of int64 time, less). */
static int64_t units(const rl_ldef *d, i128 now_s, i128 cur)
{
    i128 room = now_s + (i128)d->burst * d->period_ns - cur, u;
    if (room > tat_max(d) - cur)
        room = tat_max(d) - cur;
    if (room <= 0)
        return 0;
    u = room / d->period_ns;
    return u > d->burst ? d->burst : (int64_t)u;
}

void rl_gcra_decide(const rl_ldef *d, rl_tat tat, int64_t now, int64_t cost, int64_t max_delay_ns,
                    rl_gcra_out *out)
{
    i128 now_s = (i128)now * d->count;
    i128 t = scaled(d, tat);
    i128 cur = t > now_s ? t : now_s;
    i128 tau = (i128)d->burst * d->period_ns;
    i128 nw = cur + (i128)cost * d->period_ns;
    i128 allow_at = nw - tau;

    out->tat = tat;
    if (cost == 0) {
        /* A check: nothing consumed, admitted unless units are owed beyond
         * an empty bucket (reservations ahead, a lease overrun), as a cost
         * of 0 in golang.org/x/time/rate. */
        out->delay_ns = ceil_ns(d, allow_at - now_s);
        out->ok = out->delay_ns <= max_delay_ns;
        out->remaining = units(d, now_s, cur);
        out->reset_after_ns = ceil_ns(d, cur - now_s);
        return;
    }
    /* A TAT past the end of int64 time cannot be kept: clamping it would
     * forget units spent and admit more than the limit. Refused, never. */
    out->delay_ns = nw > tat_max(d) ? INT64_MAX : ceil_ns(d, allow_at - now_s);
    out->ok = nw <= tat_max(d) && out->delay_ns <= max_delay_ns;
    if (out->ok) {
        out->tat = unscaled(d, nw);
        out->remaining = out->delay_ns > 0 ? 0 : units(d, now_s, nw);
        out->reset_after_ns = ceil_ns(d, nw - now_s);
    } else {
        out->remaining = units(d, now_s, cur);
        out->reset_after_ns = ceil_ns(d, cur - now_s);
    }
}

void rl_gcra_peek(const rl_ldef *d, rl_tat tat, int64_t now, int64_t *remaining,
                  int64_t *reset_after_ns, int64_t *retry_after_ns)
{
    i128 now_s = (i128)now * d->count;
    i128 t = scaled(d, tat);
    i128 cur = t > now_s ? t : now_s;
    i128 tau = (i128)d->burst * d->period_ns;
    *remaining = units(d, now_s, cur);
    *reset_after_ns = ceil_ns(d, cur - now_s);
    *retry_after_ns =
        cur + d->period_ns > tat_max(d) ? INT64_MAX : ceil_ns(d, cur + d->period_ns - tau - now_s);
}

int64_t rl_gcra_debt(const rl_ldef *d, rl_tat tat, int64_t now)
{
    i128 over = scaled(d, tat) - (i128)now * d->count - (i128)d->burst * d->period_ns;
    i128 u;
    if (over <= 0)
        return 0;
    u = (over + d->period_ns - 1) / d->period_ns;
    return u > INT64_MAX ? INT64_MAX : (int64_t)u;
}

rl_tat rl_gcra_cancel(const rl_ldef *d, rl_tat cur, rl_tat after, int64_t cost)
{
    i128 inc = (i128)cost * d->period_ns;
    i128 c = scaled(d, cur), a = scaled(d, after);
    /* Later decisions were scheduled behind this one: only what lies after
     * them can be handed back without letting the total exceed the limit. */
    i128 restore = inc - (c - a);
    if (restore <= 0)
        return cur;
    if (restore > inc)
        restore = inc;
    return unscaled(d, c - restore);
}

rl_tat rl_gcra_adjust(const rl_ldef *d, rl_tat tat, int64_t units)
{
    /* a refund that takes TAT below now just means a full bucket: the next
     * decision's max(TAT, now) never hands out more than burst */
    return unscaled(d, scaled(d, tat) + (i128)units * d->period_ns);
}

rl_tat rl_gcra_rescale(const rl_ldef *old, const rl_ldef *nw, rl_tat tat, int64_t now)
{
    i128 level_s = scaled(old, tat) - (i128)now * old->count;
    i128 tau_old, tau_new, level;
    rl_tat out;
    if (level_s <= 0) { /* full bucket: nothing spent to carry over */
        out.ns = now;
        out.rem = 0;
        return out;
    }
    /* Bucket depths in whole ns (rounded up, never 0) keep the product below
     * 2^124: level < 2^63 and depth <= RL_FILL_MAX < 2^61. */
    tau_old = ((i128)old->burst * old->period_ns + old->count - 1) / old->count;
    tau_new = ((i128)nw->burst * nw->period_ns + nw->count - 1) / nw->count;
    level = (i128)ceil_ns(old, level_s) * tau_new / tau_old;
    /* NOLINTNEXTLINE(bugprone-implicit-widening-of-multiplication-result): RL_FILL_MAX < 2^61, so 2 * RL_FILL_MAX cannot overflow int64 */
    if (level > 2 * RL_FILL_MAX)
        /* NOLINTNEXTLINE(bugprone-implicit-widening-of-multiplication-result): RL_FILL_MAX < 2^61, so 2 * RL_FILL_MAX cannot overflow int64 */
        level = 2 * RL_FILL_MAX;
    /* near the end of int64 time the TAT saturates: refuses everything */
    out.ns = (i128)now + level > INT64_MAX ? INT64_MAX : (int64_t)(now + level);
    out.rem = 0;
    return out;
}
