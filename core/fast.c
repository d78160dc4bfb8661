/*
 * fast.c - the plan of a decision that a store makes where the data lives,
 * in one round trip (rl_store_ops.decide_fast: the Redis store's
 * server-side script).
 *
 * A decision without a lease or a place in a slot queue (rl_allow,
 * rl_acquire, rl_acquire_keys, and reservations: rl_reserve, rl_wait's
 * decisions) on keys whose tiers, by rules or the default of the policy
 * this handle has cached, hold only GCRA, sliding window and concurrency
 * limits, can be decided by the server; one that names a concurrency
 * limit only on keys without leases (the server checks), where the usual
 * way would find no lease to reclaim and no waiter ahead. So can a lease
 * begin (rl_lease_begin: one key, now or never) on a key without leases
 * or waiters (the server checks): the plan carries the lease record as
 * put_lease would make it (estimate, owner, the units it holds in each
 * concurrency limit the estimate names) but for its times, which are the
 * server's now and now + TTL, and the server numbers it. A GCRA limit is a few additions and comparisons once two
 * 128-bit products are made: cost × period and burst × period, over
 * count. They are made here, in the same exact arithmetic as gcra.c, so
 * the server needs no more than doubles. A sliding window's products
 * (window.c) involve its stored counts and the server's clock, which are
 * not known here: it gets its count, period and cost, and the server
 * makes them exactly itself. A horizon (max_delay_ns) and the cool-downs
 * that would refuse the request (their ids) are sent as they are:
 * comparing times needs no product. A key new to its tier starts from a
 * template whose windows the server starts at its now (rl_state_fresh_at,
 * which the replay uses too).
 *
 * rl_penalize (cooldown.c's penalize_tx: a key and a cool-down, no tier)
 * and rl_cancel (reserve.c's cancel_tx) are planned here too; for the
 * latter the key's tier resolved as for a decision, the fingerprint and
 * generation its state must have, and per limit the reservation took the
 * limit of that id and, for GCRA, amount × period over count, so that
 * giving back is additions and comparisons (a window's advance the server
 * makes as it decides).
 *
 * Guarantees:
 *   - a plan is made only for a request that the usual way would decide
 *     without an error of its own (keys, costs and resources are checked
 *     as decide.c checks them; a cost above a burst is left to it), so the
 *     server never writes a decision that core would have refused to make;
 *   - core decides every planned request again, on the rows as the server
 *     found them and at its time, and the store checks that the rows core
 *     would write are byte for byte those the server wrote (store.h): the
 *     script and core/ cannot drift apart unnoticed;
 *   - whatever does not fit the plan goes the usual way, unchanged. */
#include "handle.h"

#include <stdio.h>
#include <string.h>

__extension__ typedef __int128 i128;

/* v / count as whole ns and a remainder, v >= 0 (bounded by policy.c's
 * checks: cost and burst at most 2^40, period below 2^61). */
static void split(i128 v, int64_t count, int64_t *ns, int64_t *rem)
{
    *ns = (int64_t)(v / count);
    *rem = (int64_t)(v % count);
}

static uint64_t key_hash(const char *key)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    while (*key)
        h = (h ^ (unsigned char)*key++) * 0x100000001b3ULL;
    return h | 1; /* 0 marks an empty entry */
}

void rl__fast_note(rl *r, const char *key, const char *tier)
{
    uint64_t h = key_hash(key);
    size_t i = (size_t)(h % RL_ASSIGNED_CACHE);
    if (tier[0]) {
        r->assigned[i].h = h;
        snprintf(r->assigned[i].tier, sizeof r->assigned[i].tier, "%s", tier);
    } else if (r->assigned[i].h == h) {
        r->assigned[i].h = 0;
    }
}

/* The tier of key as the usual way would resolve it, if the key's row
 * names the explicit tier it was seen with lately (into tier, "" none);
 * NULL when none does, the store lost its policy or a tier is gone: the
 * usual way. */
static const rl_tier *key_tier(rl *r, const char *key, char tier[RL_NAME_MAX])
{
    uint64_t h = key_hash(key);
    size_t c = (size_t)(h % RL_ASSIGNED_CACHE);
    rl_row row; /* only its tier is read: the one it was seen with lately */
    const rl_tier *t;
    int source;

    memset(&row, 0, sizeof row);
    if (r->assigned[c].h == h)
        memcpy(row.tier, r->assigned[c].tier, sizeof row.tier);
    if (!(t = rl__key_tier(r, key, &row, &source)) || t == &r->defaults ||
        (row.tier[0] && source != RL_TIER_ASSIGNED))
        return NULL;
    memcpy(tier, row.tier, RL_NAME_MAX);
    return t;
}

/* key_tier, and in st the state of a key new to that tier (GCRA and
 * in-flight slots need no time; a window's start is the server's to set,
 * rl_fast_fresh); NULL also when that state does not fit. Decisions and
 * lease settles (fast_lease.c) plan with it. */
const rl_tier *rl__fast_tier(rl *r, const char *key, char tier[RL_NAME_MAX], rl_state *st)
{
    const rl_tier *t = key_tier(r, key, tier);
    rl_state none;
    if (!t)
        return NULL;
    memset(&none, 0, sizeof none);
    rl__align(r, t, &none, st, 0);
    return st->n == t->n && t->n <= RL_MAX_LIMITS ? t : NULL;
}

/* Fills f for one key; 0 if the key's tier or the request does not fit.
 * lease: a lease begin's record, whose held units (put_lease's: each
 * concurrency limit the request names with units, in the tier's order) are
 * filled here. */
static int plan_key(rl *r, const rl__req *q, const char *key, rl_fast_key *fk, rl_lease_rec *lease)
{
    rl_state st;
    const rl_tier *t;
    size_t i;

    if (!(t = rl__fast_tier(r, key, fk->tier, &st)))
        return 0;
    if (rl__check_resources(r, t, q) != RL_OK) {
        r->err[0] = 0; /* the usual way gives the message */
        return 0;
    }
    fk->key = key;
    fk->n = t->n;
    for (i = 0; i < t->n; i++) {
        const rl_ldef *d = &t->limits[i];
        int64_t amount = rl__amount_of(q->costs, q->ncosts, d->resource);
        rl_fast_slot *s = &fk->slot[i];
        if (amount > d->burst)
            return 0;
        memset(s, 0, sizeof *s);
        s->cost = amount; /* a concurrency limit: checked, not held */
        s->count = d->count;
        if (lease && d->kind == RL_KIND_CONCURRENT && amount > 0) {
            lease->held_id[lease->n_held] = d->id;
            lease->held_amount[lease->n_held++] = amount;
        }
        if (d->kind == RL_KIND_WINDOW) /* the server multiplies (see the top) */
            s->period_ns = d->period_ns;
        if (s->cost < 0 || d->kind != RL_KIND_GCRA)
            continue;
        split((i128)amount * d->period_ns, d->count, &s->inc_ns, &s->inc_rem);
        split((i128)d->burst * d->period_ns, d->count, &s->tau_ns, &s->tau_rem);
    }
    fk->tmpl_len = rl_state_encode(&st, fk->tmpl);
    return 1;
}

int rl__fast_plan(rl *r, const rl__req *q, rl_fast_req *f)
{
    size_t k;
    if (!r->store->ops->decide_fast || r->pol_version < 0 || (q->lease && q->nkeys != 1) ||
        q->rank || q->wait_id || q->max_delay_ns < 0 || (r->o.flags & RL_OPEN_READONLY) ||
        rl__pending_counts(r, q->keys, q->nkeys))
        return 0; /* a key with unwritten refusals: the usual write folds them (refuse.c) */
    f->cancel = f->penalize = 0;
    f->lease = q->lease != NULL;
    f->ttl = q->ttl;
    if (f->lease) { /* its times are the server's to set */
        memset(&f->lease_tmpl, 0, sizeof f->lease_tmpl);
        rl__lease_fill(&f->lease_tmpl, q->keys[0], 0, 0, q->costs, q->ncosts);
    }
    f->pol_version = r->pol_version;
    f->max_delay_ns = q->max_delay_ns;
    /* as rl__cooldown_until matches them: the cool-down of every resource,
     * then each named resource's (RL_MAX_LIMITS costs at most) */
    f->cool_id[0] = rl_cooldown_id(NULL);
    f->ncool = 1;
    for (k = 0; k < q->ncosts && f->ncool < sizeof f->cool_id / sizeof f->cool_id[0]; k++)
        f->cool_id[f->ncool++] = rl_cooldown_id(rl__resource_of(&q->costs[k]));
    f->have_now = !r->store_clock;
    f->now = f->have_now ? r->o.clock(r->o.clock_ctx) : 0;
    f->units = rl__amount_of(q->costs, q->ncosts, "requests");
    if (f->units < 0)
        f->units = q->costs[0].amount;
    f->nkeys = q->nkeys;
    for (k = 0; k < q->nkeys; k++)
        if (!plan_key(r, q, q->keys[k], &f->k[k], f->lease ? &f->lease_tmpl : NULL))
            return 0;
    return 1;
}

int rl__fast_cancel_plan(rl *r, const rl_reservation *rv, rl_fast_req *f)
{
    const char *key = rv->key_;
    const rl_tier *t;
    size_t i, j;
    if (!r->store->ops->decide_fast || r->pol_version < 0 || (r->o.flags & RL_OPEN_READONLY) ||
        rl__pending_counts(r, &key, 1) || !(t = key_tier(r, key, f->k[0].tier)))
        return 0;
    f->cancel = 1;
    f->lease = 0;
    f->penalize = 0;
    f->pol_version = r->pol_version;
    f->have_now = !r->store_clock;
    f->now = f->have_now ? r->o.clock(r->o.clock_ctx) : 0;
    f->time_to_act = rv->time_to_act;
    f->gen = rv->generation_;
    f->fp = rl__tier_fp(r, t);
    f->nkeys = 1;
    f->k[0].key = key;
    f->k[0].n = 0;
    f->nback = rv->n_;
    for (i = 0; i < rv->n_; i++) {
        rl_fast_back *b = &f->back[i];
        rl_slot s;
        for (j = 0; j < t->n && t->limits[j].id != rv->id_[i]; j++)
            ;
        if (j == t->n)
            return 0; /* not a limit of the tier: the usual way */
        rl_slot_template(&t->limits[j], &s);
        memset(b, 0, sizeof *b);
        b->id = rv->id_[i];
        b->kind = s.kind;
        b->amount = rv->amount_[i];
        b->tat = rv->tat_[i];
        b->rem = rv->rem_[i];
        b->count = s.count;
        b->period_ns = s.period_ns;
        b->burst = s.burst;
        /* eval.c's cancel_gcra gives back nothing otherwise */
        if (s.kind == RL_SLOT_GCRA && b->amount > 0 && b->amount <= s.burst)
            split((i128)b->amount * s.period_ns, s.count, &b->inc_ns, &b->inc_rem);
    }
    return 1;
}

int rl__fast_penalize_plan(rl *r, const char *key, uint64_t id, int64_t duration_ns, rl_fast_req *f)
{
    if (!r->store->ops->decide_fast || (r->o.flags & RL_OPEN_READONLY) ||
        rl__pending_counts(r, &key, 1))
        return 0; /* a key with unwritten refusals: the usual write folds them (refuse.c) */
    f->cancel = 0;
    f->penalize = 1;
    f->lease = 0;
    f->pol_version = r->pol_version; /* not read: a cool-down is no tier's */
    f->have_now = !r->store_clock;
    f->now = f->have_now ? r->o.clock(r->o.clock_ctx) : 0;
    f->nkeys = 1;
    f->k[0].key = key;
    f->k[0].tier[0] = 0;
    f->k[0].n = 0;
    f->pen_id = id;
    f->pen_ns = duration_ns;
    return 1;
}
