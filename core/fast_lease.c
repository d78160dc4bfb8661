/*
 * fast_lease.c - the plan of a lease settle or cancel that a store makes
 * where the data lives, in one round trip (rl_store_ops.lease_end_fast:
 * the Redis store's lease script).
 *
 * Settling needs the lease's estimate and the slots it holds, which live
 * in the store; so a plan is made only for a lease this handle began
 * (rl__lease_note remembers the last few by id): core then knows them, and
 * the server only checks that the lease it finds is byte for byte the one
 * remembered. On keys whose tier holds only GCRA and concurrency limits,
 * settling is then additions: per GCRA limit (actual - estimate) × period
 * over count, made here in the same exact arithmetic as gcra.c's
 * rl_gcra_adjust; per concurrency limit the units to free.
 *
 * Guarantees:
 *   - a plan is made only where the usual way (reserve.c's lease_end_tx)
 *     would do exactly these additions: a lease of this handle, a tier of
 *     the cached policy that is not the handle's own defaults, no sliding
 *     window, at most one GCRA limit counting "requests" (the units
 *     counter); everything else goes the usual way, unchanged;
 *   - core replays every planned settle on the row as the server found it
 *     and at its time, and the store checks that what core would write is
 *     byte for byte what the server wrote (store.h);
 *   - a remembered lease is forgotten once it is planned, so a second
 *     settle of it (RL_ENOTFOUND) always goes the usual way.
 */
#include "handle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__extension__ typedef __int128 i128;

#define RL_LEASE_MEMO 16 /* leases remembered per handle, by id */

struct rl__lease_memo {
    rl_lease_rec rec[RL_LEASE_MEMO]; /* id 0: empty */
};

void rl__lease_note(rl *r, const rl_lease_rec *rec)
{
    if (!r->store->ops->lease_end_fast || rec->id <= 0 || rec->waiting)
        return;
    if (!r->lease_memo && !(r->lease_memo = calloc(1, sizeof *r->lease_memo)))
        return; /* only the one round trip is lost */
    r->lease_memo->rec[(uint64_t)rec->id % RL_LEASE_MEMO] = *rec;
}

void rl__lease_memo_free(rl *r)
{
    free(r->lease_memo);
    r->lease_memo = NULL;
}

int rl__fast_lease_plan(rl *r, const rl_lease *lease, const rl_cost *actual, size_t n,
                        rl_fast_lease *f)
{
    rl_lease_rec *m;
    rl_state st;
    const rl_tier *t;
    size_t i, j, nreq = 0;

    if (!r->lease_memo || !r->store->ops->lease_end_fast || r->pol_version < 0 ||
        (r->o.flags & RL_OPEN_READONLY) || lease->id <= 0)
        return 0;
    m = &r->lease_memo->rec[(uint64_t)lease->id % RL_LEASE_MEMO];
    if (m->id != lease->id)
        return 0;
    f->rec = *m;
    m->id = 0;
    if (!(t = rl__fast_tier(r, f->rec.key, f->tier, &st)))
        return 0;
    f->n = t->n;
    f->units = 0;
    for (i = 0; i < t->n; i++) {
        const rl_ldef *d = &t->limits[i];
        int64_t est = 0, act;
        i128 v, q, rem;
        f->add_ns[i] = f->add_rem[i] = f->release[i] = 0;
        if (d->kind == RL_KIND_WINDOW)
            return 0;
        if (d->kind == RL_KIND_CONCURRENT) {
            /* rl__release_held frees each holding from the first in-flight
             * slot with its id: one limit per id, or the usual way */
            for (j = 0; j < i; j++)
                if (t->limits[j].kind == RL_KIND_CONCURRENT && t->limits[j].id == d->id)
                    return 0;
            for (j = 0; j < f->rec.n_held; j++)
                if (f->rec.held_id[j] == d->id)
                    f->release[i] = rl__sat_add(f->release[i], f->rec.held_amount[j]);
            continue;
        }
        /* as lease_end_tx: the last estimate of the resource, the actual
         * amount if named (a cancel: 0), else the estimate */
        for (j = 0; j < f->rec.n_est; j++)
            if (strcmp(f->rec.est_resource[j], d->resource) == 0)
                est = f->rec.est_amount[j];
        act = actual ? rl__amount_of(actual, n, d->resource) : 0;
        if (act < 0)
            act = est;
        if (act == est)
            continue;
        /* (act - est) × period, floor-divided by count as gcra.c's unscaled */
        v = ((i128)act - est) * d->period_ns;
        q = v / d->count;
        rem = v % d->count;
        if (rem < 0) {
            q -= 1;
            rem += d->count;
        }
        if (q > INT64_MAX || q < INT64_MIN)
            return 0;
        f->add_ns[i] = (int64_t)q;
        f->add_rem[i] = (int64_t)rem;
        if (strcmp(d->resource, "requests") == 0) {
            if (nreq++) /* two sums on the counter: each may saturate */
                return 0;
            f->units = act - est;
        }
    }
    f->tmpl_len = rl_state_encode(&st, f->tmpl);
    f->pol_version = r->pol_version;
    f->have_now = !r->store_clock;
    f->now = f->have_now ? r->o.clock(r->o.clock_ctx) : 0;
    return 1;
}
