/*
 * eval.c - the arithmetic of one decision across a tier's limits: a key's
 * stored slots brought to the limits its tier has now, each limit decided
 * by its kind (GCRA, sliding window, concurrency), cool-downs, the answer
 * a caller sees, and what settling a lease or cancelling a reservation
 * gives back.
 *
 * Guarantees:
 *   - pure: no I/O, no handle, no clock; the same inputs give the same
 *     outputs (the one draw, a state's new generation, comes from the
 *     caller's generator);
 *   - every kind of limit goes through the same few entry points
 *     (rl__state_align, rl__limit_decide, rl__limit_settle,
 *     rl__slot_cancel, rl__limit_stats): a new algorithm is added here,
 *     next to gcra.c and window.c, and nowhere in the handle;
 *   - times saturate at the ends of int64 (rl__sat_add), never wrap.
 */
#include "eval.h"
#include "gcra.h"
#include "window.h"

#include <stdio.h>
#include <string.h>

/* ---- a key's state, brought to its tier's limits ---------------------- */

static int slot_kind_of(const rl_ldef *d)
{
    return d->kind == RL_KIND_CONCURRENT ? RL_SLOT_INFLIGHT
           : d->kind == RL_KIND_WINDOW   ? RL_SLOT_WINDOW
                                         : RL_SLOT_GCRA;
}

/* A window slot's words (see store.h): tat = start, rem = cur, burst = prev. */
static rl_window window_of(const rl_slot *s)
{
    rl_window w;
    w.start = s->tat;
    w.cur = s->rem;
    w.prev = s->burst;
    return w;
}

static void set_window(rl_slot *s, rl_window w)
{
    s->tat = w.start;
    s->rem = w.cur;
    s->burst = w.prev;
}

/* The limit a GCRA or window slot was written under, as d's kind. */
static rl_ldef ldef_of_slot(const rl_ldef *d, const rl_slot *o)
{
    rl_ldef od = *d;
    od.kind = o->kind == RL_SLOT_WINDOW ? RL_KIND_WINDOW : RL_KIND_GCRA;
    od.count = o->count;
    od.period_ns = o->period_ns;
    od.burst = o->kind == RL_SLOT_WINDOW ? o->count : o->burst;
    return od;
}

/* ceil(used * to / from), at most twice `to`: a carried-over debt beyond
 * that would outlast any meaning. */
static int64_t carry_units(int64_t used, int64_t from, int64_t to)
{
    __extension__ __int128 u = ((__int128)used * to + from - 1) / from;
    return u > 2 * (__int128)to ? 2 * to : u < 0 ? 0 : (int64_t)u;
}

/* A limit whose algorithm changed keeps the share of it that is spent
 * (what a GCRA bucket lacks of full, or a window's estimate). */
static void carry_across(const rl_ldef *d, const rl_slot *o, rl_slot *s, int64_t now)
{
    rl_ldef od = ldef_of_slot(d, o);
    if (o->kind == RL_SLOT_GCRA) {
        rl_tat tat = { o->tat, o->rem };
        int64_t remaining, reset, retry, used;
        rl_gcra_peek(&od, tat, now, &remaining, &reset, &retry);
        /* the debt saturates at INT64_MAX (a TAT far ahead): so does the sum */
        used = rl__sat_add(od.burst - remaining, rl_gcra_debt(&od, tat, now));
        set_window(s, rl_window_from_used(d, carry_units(used, od.burst, d->count), now));
    } else {
        rl_tat tat = { now, 0 };
        int64_t used = rl_window_estimate(&od, window_of(o), now);
        tat = rl_gcra_adjust(d, tat, carry_units(used, od.count, d->burst));
        s->tat = tat.ns;
        s->rem = tat.rem;
    }
}

/* Slot s of limit d takes over the old slot o of the same limit id. */
static void carry_slot(const rl_ldef *d, const rl_slot *o, rl_slot *s, int64_t now)
{
    rl_ldef od;
    if (s->kind == RL_SLOT_INFLIGHT) {
        s->tat = o->tat; /* units held by leases, whatever the cap is now */
        return;
    }
    if (o->kind != s->kind) {
        carry_across(d, o, s, now);
        return;
    }
    od = ldef_of_slot(d, o);
    if (od.count == d->count && od.period_ns == d->period_ns && od.burst == d->burst) {
        s->tat = o->tat;
        s->rem = o->rem;
        s->burst = o->burst; /* a window's prev; a GCRA burst, unchanged */
    } else if (s->kind == RL_SLOT_WINDOW) {
        set_window(s, rl_window_rescale(&od, d, window_of(o), now));
    } else {
        rl_tat tat = { o->tat, o->rem };
        tat = rl_gcra_rescale(&od, d, tat, now);
        s->tat = tat.ns;
        s->rem = tat.rem;
    }
}

/* An old slot that carries over into one of kind `kind`: the same kind, or
 * the other kind of rate (a limit whose algorithm changed). */
static int carries(int kind, int old_kind)
{
    if (kind == RL_SLOT_INFLIGHT || old_kind == RL_SLOT_INFLIGHT)
        return kind == old_kind;
    return (kind == RL_SLOT_GCRA || kind == RL_SLOT_WINDOW) &&
           (old_kind == RL_SLOT_GCRA || old_kind == RL_SLOT_WINDOW);
}

/* A state generation (rl_state.gen) nobody else draws: splitmix64 over a
 * seed the handle draws at open. Never 0. */
static uint64_t new_generation(uint64_t *rng)
{
    uint64_t z = (*rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return z ? z : 1;
}

void rl__state_align(const rl_tier *t, uint64_t fp, uint64_t *rng, const rl_state *old,
                     rl_state *st, int64_t now)
{
    size_t i, j;
    st->fp = fp;
    st->gen = old->gen != 0 && old->fp == st->fp ? old->gen : new_generation(rng);
    st->n = t->n;
    for (i = 0; i < t->n; i++) {
        const rl_ldef *d = &t->limits[i];
        rl_slot *s = &st->slot[i];
        int kind = slot_kind_of(d);
        /* the same words as the tier's slot set (store.h), so a store
         * refers to them instead of copying them */
        rl_slot_template(d, s);
        /* GCRA: a full bucket at any clock (before the epoch too); in
         * flight: none */
        s->tat = kind == RL_SLOT_GCRA ? INT64_MIN : 0;
        s->rem = 0;
        if (kind == RL_SLOT_WINDOW) /* an empty window */
            set_window(s, rl_window_fresh(d, now));
        for (j = 0; j < old->n; j++) {
            const rl_slot *o = &old->slot[j];
            if (o->id != d->id || !carries(kind, o->kind))
                continue;
            carry_slot(d, o, s, now);
            break;
        }
    }
    for (j = 0; j < old->n && st->n < RL_MAX_SLOTS; j++)
        if (old->slot[j].kind == RL_SLOT_COOLDOWN && old->slot[j].tat > now)
            st->slot[st->n++] = old->slot[j];
}

/* ---- deciding one limit ------------------------------------------------- */

/* Units in flight on a concurrency limit: admitted while they fit the cap;
 * taken only by a decision that holds them (a lease's). */
static void inflight_decide(lim_eval *ev, int64_t amount, int64_t now, int64_t soonest, int hold)
{
    const rl_ldef *d = ev->d;
    int64_t expiry;
    ev->ok = ev->slot->tat <= d->count - amount; /* amount <= burst = count */
    if (ev->ok && hold)
        ev->next.tat += amount;
    ev->remaining = d->count > ev->next.tat ? d->count - ev->next.tat : 0;
    ev->delay_ns = ev->reset_after_ns = 0;
    if (ev->ok)
        return;
    /* A slot comes free when a holder settles or cancels, at any moment:
     * look again soon, and by the first expiry at the latest (without a
     * known holder, after the hint). */
    expiry = soonest > now ? rl__sat_sub(soonest, now) : 0;
    ev->delay_ns = expiry > 0 && expiry < RL_SLOT_RETRY_NS ? expiry : RL_SLOT_RETRY_NS;
    ev->reset_after_ns = expiry > 0 ? expiry : ev->delay_ns;
}

static void gcra_decide(lim_eval *ev, int64_t amount, int64_t now, int64_t max_delay_ns)
{
    rl_tat tat = { ev->slot->tat, ev->slot->rem };
    rl_gcra_out out;
    rl_gcra_decide(ev->d, tat, now, amount, max_delay_ns, &out);
    ev->ok = out.ok;
    ev->next.tat = out.tat.ns;
    ev->next.rem = out.tat.rem;
    ev->delay_ns = out.delay_ns;
    ev->remaining = out.remaining;
    ev->reset_after_ns = out.reset_after_ns;
}

static void window_decide(lim_eval *ev, int64_t amount, int64_t now, int64_t max_delay_ns)
{
    rl_window_out out;
    rl_window_decide(ev->d, window_of(ev->slot), now, amount, max_delay_ns, &out);
    ev->ok = out.ok;
    set_window(&ev->next, out.w);
    ev->delay_ns = out.delay_ns;
    ev->remaining = out.remaining;
    ev->reset_after_ns = out.reset_after_ns;
}

void rl__limit_decide_at(lim_eval *ev, int64_t amount, int64_t now, int64_t delay_ns)
{
    rl_window_out out;
    rl_window_decide_at(ev->d, window_of(ev->slot), now, amount, delay_ns, &out);
    set_window(&ev->next, out.w);
    ev->delay_ns = out.delay_ns;
    ev->remaining = out.remaining;
    ev->reset_after_ns = out.reset_after_ns;
}

void rl__limit_decide(lim_eval *ev, int64_t amount, int64_t now, int64_t max_delay_ns,
                      int64_t soonest, int hold)
{
    ev->next = *ev->slot;
    if (ev->d->kind == RL_KIND_CONCURRENT)
        inflight_decide(ev, amount, now, soonest, hold);
    else if (ev->d->kind == RL_KIND_WINDOW)
        window_decide(ev, amount, now, max_delay_ns);
    else
        gcra_decide(ev, amount, now, max_delay_ns);
}

void rl__fill_result(rl_result *res, const lim_eval *ev, size_t n, int allowed)
{
    size_t i, best = 0;
    for (i = 1; i < n; i++) {
        const lim_eval *a = &ev[i], *b = &ev[best];
        if (!allowed) {
            if (!a->ok && (b->ok || a->delay_ns > b->delay_ns))
                best = i;
        } else {
            /* a.rem/a.burst < b.rem/b.burst, cross-multiplied in 128 bits */
            __extension__ __int128 l = (__int128)a->remaining * ev[best].d->burst;
            __extension__ __int128 rr = (__int128)b->remaining * ev[i].d->burst;
            if (l < rr)
                best = i;
        }
    }
    memset(res, 0, sizeof *res);
    res->allowed = allowed;
    res->limit = ev[best].d->burst;
    res->remaining = ev[best].remaining;
    res->retry_after_ns = allowed ? 0 : ev[best].delay_ns;
    res->reset_after_ns = ev[best].reset_after_ns;
    res->key_index = ev[best].key;
    snprintf(res->limit_name, sizeof res->limit_name, "%s", ev[best].d->name);
}

/* ---- cool-downs --------------------------------------------------------- */

int64_t rl__cooldown_until(const rl_state *st, const rl_cost *costs, size_t n, int64_t now)
{
    int64_t until = INT64_MIN; /* no instant, 0 included, means "none" */
    size_t i, j;
    for (i = 0; i < st->n; i++) {
        const rl_slot *s = &st->slot[i];
        int hit;
        if (s->kind != RL_SLOT_COOLDOWN || s->tat <= now || s->tat <= until)
            continue;
        hit = s->id == rl_cooldown_id(NULL);
        for (j = 0; j < n && !hit; j++)
            hit = s->id == rl_cooldown_id(rl__resource_of(&costs[j]));
        if (hit)
            until = s->tat;
    }
    return until;
}

int64_t rl__cooldown_left(const rl_state *st, uint64_t id, int64_t now)
{
    size_t i;
    for (i = 0; i < st->n; i++)
        if (st->slot[i].kind == RL_SLOT_COOLDOWN && st->slot[i].id == id && st->slot[i].tat > now)
            return rl__sat_sub(st->slot[i].tat, now);
    return 0;
}

/* ---- settling, cancelling, releasing ------------------------------------ */

void rl__limit_settle(const rl_ldef *d, rl_slot *s, int64_t now, int64_t units, int64_t created)
{
    rl_tat tat = { s->tat, s->rem };
    if (d->kind == RL_KIND_WINDOW) {
        set_window(s, rl_window_adjust(d, window_of(s), now, units, created));
        return;
    }
    tat = rl_gcra_adjust(d, tat, units);
    s->tat = tat.ns;
    s->rem = tat.rem;
}

/* The limit a slot was written under, from its own words. */
static rl_ldef ldef_of(const rl_slot *s)
{
    rl_ldef d;
    memset(&d, 0, sizeof d);
    d.kind = s->kind == RL_SLOT_WINDOW ? RL_KIND_WINDOW : RL_KIND_GCRA;
    d.count = s->count;
    d.period_ns = s->period_ns;
    d.burst = s->kind == RL_SLOT_WINDOW ? s->count : s->burst;
    return d;
}

/* A reservation's TAT right after it was (after_ns, after_rem). */
static void cancel_gcra(rl_slot *s, int64_t after_ns, int64_t after_rem, int64_t amount)
{
    rl_ldef d = ldef_of(s);
    rl_tat cur = { s->tat, s->rem }, after = { after_ns, after_rem };
    if (after.rem < 0 || after.rem >= d.count || amount <= 0 || amount > d.burst)
        return;
    cur = rl_gcra_cancel(&d, cur, after, amount);
    s->tat = cur.ns;
    s->rem = cur.rem;
}

/* A reservation counted in the window that begins at charged_start. */
static void cancel_window(rl_slot *s, int64_t charged_start, int64_t amount, int64_t now)
{
    rl_ldef d = ldef_of(s);
    if (amount <= 0 || amount > d.count)
        return;
    set_window(s, rl_window_cancel(&d, window_of(s), charged_start, amount, now));
}

void rl__slot_cancel(rl_slot *s, int64_t tat, int64_t rem, int64_t amount, int64_t now)
{
    if (s->kind == RL_SLOT_WINDOW)
        cancel_window(s, tat, amount, now);
    else if (s->kind == RL_SLOT_GCRA)
        cancel_gcra(s, tat, rem, amount);
}

void rl__release_held(rl_state *st, size_t n, const uint64_t *ids, const int64_t *amounts)
{
    size_t i, j;
    for (i = 0; i < n; i++)
        for (j = 0; j < st->n; j++)
            if (st->slot[j].kind == RL_SLOT_INFLIGHT && st->slot[j].id == ids[i]) {
                st->slot[j].tat = st->slot[j].tat > amounts[i] ? st->slot[j].tat - amounts[i] : 0;
                break;
            }
}

/* ---- reading a limit ---------------------------------------------------- */

int rl__algorithm_of(const rl_ldef *d)
{
    return d->kind == RL_KIND_WINDOW       ? RL_ALGO_SLIDING_WINDOW
           : d->kind == RL_KIND_CONCURRENT ? RL_ALGO_CONCURRENT
                                           : RL_ALGO_GCRA;
}

void rl__limit_stats(const rl_ldef *d, const rl_slot *s, int64_t now, rl_limit_stats *ls)
{
    if (d->kind == RL_KIND_CONCURRENT) {
        ls->in_flight = s->tat;
        ls->remaining = d->count > ls->in_flight ? d->count - ls->in_flight : 0;
    } else if (d->kind == RL_KIND_WINDOW) {
        rl_window w = window_of(s);
        rl_window_peek(d, w, now, &ls->remaining, &ls->reset_after_ns, &ls->retry_after_ns);
        ls->debt = rl_window_debt(d, w, now);
    } else {
        rl_tat tat = { s->tat, s->rem };
        rl_gcra_peek(d, tat, now, &ls->remaining, &ls->reset_after_ns, &ls->retry_after_ns);
        ls->debt = rl_gcra_debt(d, tat, now);
    }
}
