/*
 * eval.h - the arithmetic of one decision across a tier's limits (see
 * eval.c): pure functions of limits, a key's state and a time. No I/O,
 * no handle; part of the engine, with gcra.h, window.h and policy.h.
 */
#ifndef RL_EVAL_H
#define RL_EVAL_H

#include "store.h" /* rl_state, rl_slot: the state a key's row holds */

#include <string.h>

/* a + b and a - b saturated to int64: a clock near either end of int64
 * (an injected one) makes times that clamp there, never wrap. */
static inline int64_t rl__sat_add(int64_t a, int64_t b)
{
    int64_t v;
    if (__builtin_add_overflow(a, b, &v))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return v;
}

static inline int64_t rl__sat_sub(int64_t a, int64_t b)
{
    int64_t v;
    if (__builtin_sub_overflow(a, b, &v))
        return b < 0 ? INT64_MAX : INT64_MIN;
    return v;
}

/* A cost's resource: NULL stands for "requests". */
static inline const char *rl__resource_of(const rl_cost *c)
{
    return c->resource ? c->resource : "requests";
}

/* The amount asked of resource, or -1 when the costs do not name it. */
static inline int64_t rl__amount_of(const rl_cost *costs, size_t n, const char *resource)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (strcmp(rl__resource_of(&costs[i]), resource) == 0)
            return costs[i].amount;
    return -1;
}

/* One limit's part in a decision: whatever its kind, the same outcome. */
typedef struct lim_eval {
    const rl_ldef *d;
    rl_slot *slot;
    rl_slot next;           /* the slot once admitted */
    int ok;                 /* admitted now, or within max_delay_ns */
    int64_t delay_ns;       /* wait before acting (ok) or needed (!ok) */
    int64_t remaining;      /* units admissible right after this decision */
    int64_t reset_after_ns; /* until the limit is full again */
    int key;
} lim_eval;

/* Builds in st the state tier t's limits will have, from the stored old:
 * existing slots (rescaled if the limit changed since they were written),
 * fresh full slots for new limits, nothing for limits the tier no longer
 * has; then the cool-downs that are still running. Limit slot i is always
 * the tier's limit i. fp is t's fingerprint; the generation carries over
 * while the state stays with the same tier, else a new one is drawn from
 * *rng (splitmix64, never 0). */
void rl__state_align(const rl_tier *t, uint64_t fp, uint64_t *rng, const rl_state *old,
                     rl_state *st, int64_t now);

/* Decides amount on the limit of ev (ev->d, ev->slot set), by its kind;
 * ev->next is the slot to write if the whole decision admits. soonest: the
 * earliest expiry of a lease that holds units in flight (INT64_MIN: none).
 * A concurrency limit admits while its units in flight plus amount fit its
 * cap, whatever max_delay_ns (a slot's freeing cannot be foreseen); hold
 * (a lease's decision) takes the units, otherwise it is only checked. Its
 * refusal waits delay_ns = the lesser of RL_SLOT_RETRY_NS and the time to
 * soonest (a polling hint), reset_after_ns = the time to soonest. */
void rl__limit_decide(lim_eval *ev, int64_t amount, int64_t now, int64_t max_delay_ns,
                      int64_t soonest, int hold);
/* A window limit admitted by a decision that acts delay_ns from now: the
 * units count in the window of that time. */
void rl__limit_decide_at(lim_eval *ev, int64_t amount, int64_t now, int64_t delay_ns);
/* The answer of a decision over ev[0..n) (n >= 1): the deciding limit is
 * the refusing one that needs the longest wait, else the one with the
 * smallest share of its burst left. */
void rl__fill_result(rl_result *res, const lim_eval *ev, size_t n, int allowed);

/* The latest end of a running cool-down that covers one of the resources;
 * INT64_MIN when none runs. */
int64_t rl__cooldown_until(const rl_state *st, const rl_cost *costs, size_t n, int64_t now);
/* How long the cool-down of slot id still runs (0: none). */
int64_t rl__cooldown_left(const rl_state *st, uint64_t id, int64_t now);

/* Charges (units > 0) or refunds (units < 0) a settled lease's difference
 * from its estimate on one rate limit; the lease was charged at created. */
void rl__limit_settle(const rl_ldef *d, rl_slot *s, int64_t now, int64_t units, int64_t created);
/* Gives back what a reservation took from slot s (a rate: GCRA or window):
 * tat/rem are the slot's words right after it was made, amount its units. */
void rl__slot_cancel(rl_slot *s, int64_t tat, int64_t rem, int64_t amount, int64_t now);
/* Gives back the in-flight units a lease held. */
void rl__release_held(rl_state *st, size_t n, const uint64_t *ids, const int64_t *amounts);

/* The RL_ALGO_* that declares a limit of d's kind (rl_tier_set takes it back). */
int rl__algorithm_of(const rl_ldef *d);
/* ls's numbers for limit d whose aligned slot is s, at now: remaining,
 * reset and retry times, debt, units in flight. */
void rl__limit_stats(const rl_ldef *d, const rl_slot *s, int64_t now, rl_limit_stats *ls);

#endif
