/*
 * window.c - sliding window counter math (see window.h for the model).
 *
 * All arithmetic is in __int128: prev and cur are at most
 * RL_WINDOW_UNITS_MAX < 2^42 and period at most RL_PERIOD_MAX < 2^61, so
 * prev * period < 2^103, and window starts plus two periods stay far from
 * 2^127 whatever int64 a state holds.
 *
 * What the decide path's other operations mean for a window:
 *   - Reserve with a delay counts the units in the window of the time the
 *     caller may act. If that window lies ahead of the key's current one,
 *     the state moves to it early, and its prev is raised to at least
 *     min(estimate(now), count) - cost: until that window begins, times
 *     before start are weighed as e = 0 (prev + cur), so requests made
 *     meanwhile see an estimate no lower than what the older windows still
 *     weigh (the estimate only falls with time; and past count, count
 *     already refuses everything), are counted in full in the new window,
 *     and in the window itself a larger prev only refuses more. (Dropping
 *     the older windows' counts without this would let the meantime admit
 *     more than the policy.)
 *   - Cancel takes the units out of the window they were counted in, if the
 *     key is still in that window (later decisions admitted with them
 *     counted stay valid without them: the estimate only goes down). If that
 *     window has not begun yet, the units move from cur to prev instead:
 *     the interim estimate (prev + cur) must not drop, see above, and in the
 *     window they then decay rather than count in full. Once the key's
 *     window has moved past it, nothing comes back.
 *   - Settling a lease: an overrun is added to cur (debt, at most
 *     RL_WINDOW_UNITS_MAX, gone once its window ages out); a refund comes out
 *     of the window the lease was charged in, found from the lease's
 *     creation time (cur if it is the current window, prev if the one
 *     before, nothing if older or while the state is ahead of now). When
 *     that lookup errs it errs towards taking back from prev, which weighs
 *     less: refunds never give back more than was counted.
 *   - A changed limit keeps the fraction of count spent: with the same
 *     period prev and cur are each scaled (rounded up) and the windows
 *     kept; with another period the whole estimate at now, scaled, becomes
 *     cur of a fresh window that holds now.
 */
#include "window.h"

__extension__ typedef __int128 i128;

static int64_t clamp64(i128 v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : (int64_t)v;
}

/* Floor division (b > 0), so times before the epoch align too. */
static i128 floor_div(i128 a, i128 b)
{
    return a / b - (a % b < 0);
}

/* The start of the epoch-aligned window holding t. */
static i128 aligned(const rl_ldef *d, int64_t t)
{
    return floor_div(t, d->period_ns) * d->period_ns;
}

rl_window rl_window_fresh(const rl_ldef *d, int64_t now)
{
    rl_window w;
    w.start = clamp64(aligned(d, now), INT64_MIN, INT64_MAX);
    w.cur = 0;
    w.prev = 0;
    return w;
}

/* The state as of time t: windows that ended by t are shifted out, keeping
 * the state's own alignment. A t before start changes nothing. */
static rl_window advance(const rl_ldef *d, rl_window w, int64_t t)
{
    i128 k;
    if (t < w.start)
        return w;
    k = ((i128)t - w.start) / d->period_ns;
    if (k == 0)
        return w;
    w.prev = k == 1 ? w.cur : 0;
    w.cur = 0;
    w.start = (int64_t)(w.start + k * d->period_ns); /* <= t */
    return w;
}

/* ceil(prev * (period - e) / period) + cur, with e clamped to [0, period]. */
static i128 estimate(const rl_ldef *d, rl_window w, int64_t now)
{
    i128 e = (i128)now - w.start, left;
    if (e < 0)
        e = 0; /* the clock is behind the state: the window's largest estimate */
    if (e > d->period_ns)
        e = d->period_ns;
    left = (i128)w.prev * (d->period_ns - e);
    return (left + d->period_ns - 1) / d->period_ns + w.cur;
}

int64_t rl_window_estimate(const rl_ldef *d, rl_window w, int64_t now)
{
    return clamp64(estimate(d, advance(d, w, now), now), 0, INT64_MAX);
}

/* The first e in [0, period) at which ceil(n * (period - e) / period) <=
 * room, or period if none: n * (period - e) <= room * period, so
 * e >= period - floor(room * period / n). */
static i128 first_fit(const rl_ldef *d, int64_t n, i128 room)
{
    i128 e;
    if (room < 0)
        return d->period_ns;
    if (n == 0)
        return 0;
    e = d->period_ns - room * d->period_ns / n;
    return e < 0 ? 0 : e;
}

/* The exact wait from now until cost fits, w already advanced to now.
 * The estimate never grows while nobody asks (inside a window it falls;
 * at a boundary it drops from ceil(prev / period) + cur to cur), so the
 * first fit is the only boundary between refused and admitted. */
static i128 wait_for(const rl_ldef *d, rl_window w, int64_t now, int64_t cost)
{
    i128 e = first_fit(d, w.prev, (i128)d->count - w.cur - cost);
    if (e == 0)
        return 0; /* fits at the window's start, so now (clamped to it) too */
    if (e < d->period_ns)
        return (i128)w.start + e - now > 0 ? (i128)w.start + e - now : 0;
    e = first_fit(d, w.cur, (i128)d->count - cost);
    if (e < d->period_ns)
        return (i128)w.start + d->period_ns + e - now;
    return (i128)w.start + 2 * (i128)d->period_ns - now; /* both windows aged out */
}

/* Until the estimate is 0: cur ages out at start + 2 period, prev at
 * start + period. w already advanced to now. */
static int64_t reset_after(const rl_ldef *d, rl_window w, int64_t now)
{
    i128 end = w.cur > 0    ? (i128)w.start + 2 * (i128)d->period_ns
               : w.prev > 0 ? (i128)w.start + d->period_ns
                            : (i128)now;
    return clamp64(end - now, 0, INT64_MAX);
}

static int64_t room(const rl_ldef *d, i128 est)
{
    return clamp64((i128)d->count - est, 0, d->count);
}

/* Counts cost, admitted to act delay_ns from now, in the window of that
 * time (at the end of time, the last one: counting units early only
 * refuses more). w0 is w advanced to now, est its estimate then. */
static void charge(const rl_ldef *d, rl_window w0, i128 est, int64_t now, int64_t cost,
                   int64_t delay_ns, rl_window_out *out)
{
    rl_window w1 = advance(d, w0, clamp64((i128)now + delay_ns, INT64_MIN, INT64_MAX));
    if (w1.start != w0.start) { /* see the top comment */
        i128 floor_ = (est < d->count ? est : d->count) - cost;
        if (w1.prev < floor_)
            w1.prev = (int64_t)floor_; /* < count */
    }
    w1.cur += cost;
    out->ok = 1;
    out->w = w1;
    out->delay_ns = delay_ns;
    out->remaining = delay_ns > 0 ? 0 : room(d, est + cost);
    out->reset_after_ns = reset_after(d, w1, now);
}

void rl_window_decide(const rl_ldef *d, rl_window w, int64_t now, int64_t cost,
                      int64_t max_delay_ns, rl_window_out *out)
{
    rl_window w0 = advance(d, w, now);
    i128 est = estimate(d, w0, now);

    out->w = w;
    out->delay_ns = clamp64(wait_for(d, w0, now, cost), 0, INT64_MAX);
    out->ok = out->delay_ns <= max_delay_ns;
    if (!out->ok || cost == 0) { /* a cost of 0 is a check: nothing counted */
        out->remaining = room(d, est);
        out->reset_after_ns = reset_after(d, w0, now);
        return;
    }
    charge(d, w0, est, now, cost, out->delay_ns, out);
}

void rl_window_decide_at(const rl_ldef *d, rl_window w, int64_t now, int64_t cost, int64_t delay_ns,
                         rl_window_out *out)
{
    rl_window w0 = advance(d, w, now);
    i128 est = estimate(d, w0, now);
    out->w = w;
    if (cost == 0) {
        out->ok = 1;
        out->delay_ns = delay_ns;
        out->remaining = room(d, est);
        out->reset_after_ns = reset_after(d, w0, now);
        return;
    }
    charge(d, w0, est, now, cost, delay_ns, out);
}

void rl_window_peek(const rl_ldef *d, rl_window w, int64_t now, int64_t *remaining,
                    int64_t *reset_after_ns, int64_t *retry_after_ns)
{
    rl_window w0 = advance(d, w, now);
    *remaining = room(d, estimate(d, w0, now));
    *reset_after_ns = reset_after(d, w0, now);
    *retry_after_ns = clamp64(wait_for(d, w0, now, 1), 0, INT64_MAX);
}

int64_t rl_window_debt(const rl_ldef *d, rl_window w, int64_t now)
{
    return clamp64(estimate(d, advance(d, w, now), now) - d->count, 0, INT64_MAX);
}

rl_window rl_window_cancel(const rl_ldef *d, rl_window w, int64_t charged_start, int64_t cost,
                           int64_t now)
{
    int64_t back;
    w = advance(d, w, now);
    if (w.start != charged_start || cost <= 0)
        return w; /* moved on: the units are prev now, or gone */
    back = cost < w.cur ? cost : w.cur;
    w.cur -= back;
    if (w.start > now) /* not begun: keep prev + cur for the interim */
        w.prev = clamp64((i128)w.prev + back, 0, RL_WINDOW_UNITS_MAX);
    return w;
}

rl_window rl_window_adjust(const rl_ldef *d, rl_window w, int64_t now, int64_t units,
                           int64_t charged_at)
{
    i128 at;
    int64_t back;
    w = advance(d, w, now);
    if (units > 0) {
        w.cur = clamp64((i128)w.cur + units, 0, RL_WINDOW_UNITS_MAX);
        return w;
    }
    if (units == 0 || w.start > now)
        return w; /* ahead of now: where the lease was counted is unknown */
    back = units < -RL_WINDOW_UNITS_MAX ? RL_WINDOW_UNITS_MAX : -units;
    /* the lease's window, in the state's own alignment */
    at = w.start + floor_div((i128)charged_at - w.start, d->period_ns) * d->period_ns;
    if (at == w.start)
        w.cur -= back < w.cur ? back : w.cur;
    else if (at == (i128)w.start - d->period_ns)
        w.prev -= back < w.prev ? back : w.prev;
    return w;
}

/* ceil(v * nw->count / old->count) */
static int64_t scale(const rl_ldef *old, const rl_ldef *nw, i128 v)
{
    return clamp64((v * nw->count + old->count - 1) / old->count, 0, RL_WINDOW_UNITS_MAX);
}

rl_window rl_window_rescale(const rl_ldef *old, const rl_ldef *nw, rl_window w, int64_t now)
{
    w = advance(old, w, now);
    if (old->period_ns == nw->period_ns) {
        w.cur = scale(old, nw, w.cur);
        w.prev = scale(old, nw, w.prev);
        return w;
    }
    return rl_window_from_used(nw, scale(old, nw, estimate(old, w, now)), now);
}

rl_window rl_window_from_used(const rl_ldef *nw, int64_t used, int64_t now)
{
    rl_window w = rl_window_fresh(nw, now);
    w.cur = clamp64(used, 0, RL_WINDOW_UNITS_MAX);
    return w;
}
