/*
 * cooldown.c - cool-downs: a provider's "slow down" (a 429, Retry-After,
 * RateLimit headers) shared by every worker of a key, through rl_penalize
 * and rl_observe_headers.
 *
 * A cool-down is a slot in the key's state (store.h, RL_SLOT_COOLDOWN) that
 * refuses one resource, or all of them, until its end; every decision on
 * the key reads it (eval.c, rl__cooldown_until).
 *
 * Guarantees:
 *   - a cool-down only grows: a shorter one leaves a longer one running;
 *     a duration of 0 lifts it;
 *   - ended cool-downs are dropped whenever one is written, and a key holds
 *     at most RL_MAX_COOLDOWNS running ones (RL_EINVAL beyond);
 *   - rl_observe_headers writes nothing for headers that ask for nothing,
 *     and leaves no message then either.
 */
#include "handle.h"
#include "parse.h"

#include <stdlib.h>
#include <string.h>

typedef struct penalize_arg {
    const char *key;
    uint64_t id;
    int64_t duration_ns;
} penalize_arg;

static int penalize_tx(rl *r, void *ctx)
{
    const penalize_arg *a = ctx;
    rl_row row;
    rl_state st;
    int64_t now = rl__now(r), version;
    size_t i, j, ncool = 0;
    int rc, found = 0;
    if ((rc = r->store->ops->row_get(r->store, a->key, &row, &version)) != RL_OK)
        return rc;
    if (rl_state_decode(&st, row.state, row.state_len) != RL_OK)
        return rl_seterr(r->err, RL_ECORRUPT, "key '%.64s': damaged bucket state", a->key);
    /* drop ended cool-downs, extend or lift this one */
    for (i = j = 0; i < st.n; i++) {
        rl_slot *s = &st.slot[i];
        if (s->kind == RL_SLOT_COOLDOWN) {
            if (s->id == a->id) {
                found = 1;
                if (a->duration_ns == 0)
                    continue;
                if (s->tat < rl__sat_add(now, a->duration_ns))
                    s->tat = rl__sat_add(now, a->duration_ns);
            } else if (s->tat <= now) {
                continue;
            }
            ncool++;
        }
        st.slot[j++] = *s;
    }
    st.n = j;
    if (!found && a->duration_ns > 0) {
        if (ncool >= RL_MAX_COOLDOWNS || st.n >= RL_MAX_SLOTS)
            return rl_seterr(r->err, RL_EINVAL, "key '%.64s' already has %d cool-downs", a->key,
                             RL_MAX_COOLDOWNS);
        memset(&st.slot[st.n], 0, sizeof st.slot[st.n]);
        st.slot[st.n].kind = RL_SLOT_COOLDOWN;
        st.slot[st.n].id = a->id;
        st.slot[st.n].count = st.slot[st.n].period_ns = st.slot[st.n].burst = 1;
        st.slot[st.n].tat = rl__sat_add(now, a->duration_ns);
        st.n++;
    }
    row.state_len = rl_state_encode(&st, row.state);
    return r->store->ops->row_put(r->store, a->key, &row);
}

int rl_penalize(rl *r, const char *key, const char *resource, int64_t duration_ns)
{
    penalize_arg a;
    rl_fast_req *f;
    int rc;
    if (!r)
        return RL_EINVAL;
    if ((rc = rl__check_key(r, key)) != RL_OK)
        return rc;
    if (resource && !rl_name_valid(resource))
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "invalid resource name");
    if (duration_ns < 0 || duration_ns > RL_FILL_MAX)
        return rl_seterr(rl__errbuf(r), RL_EINVAL,
                         "cool-down duration out of range (0 to 50 years)");
    a.key = key;
    a.id = rl_cooldown_id(resource);
    a.duration_ns = duration_ns;
    if (!(f = malloc(sizeof *f)))
        return rl_seterr(rl__errbuf(r), RL_ENOMEM, "out of memory");
    /* rl__write_tx, with the plan of the store making it in one round trip
     * (core/fast.c): penalize_tx replays it and the store checks the bytes */
    rl__lock(r);
    if (rl__fast_penalize_plan(r, key, a.id, duration_ns, f))
        r->fast = f;
    rc = rl__tx(r, penalize_tx, &a);
    if (rc == RL_OK)
        r->err[0] = 0;
    rl__unlock(r);
    free(f);
    return rc;
}

int rl_observe_headers(rl *r, const char *key, const char *const *names, const char *const *values,
                       size_t n)
{
    rl_provider_limits pl;
    int64_t now;
    int rc;
    if (!r)
        return RL_EINVAL;
    /* the clock may be the store's: read under the mutex, which also
     * leaves no message (headers that change nothing leave none either) */
    rl__lock(r);
    now = rl__now(r);
    rl__unlock(r);
    if ((rc = rl_parse_provider_headers(names, values, n, now, &pl)) != RL_OK)
        return rl_seterr(rl__errbuf(r), rc, "could not read the response headers");
    if (pl.retry_after_ns > 0 && (rc = rl_penalize(r, key, NULL, pl.retry_after_ns)) != RL_OK)
        return rc;
    if (pl.requests.remaining == 0 && pl.requests.reset_after_ns > 0 &&
        (rc = rl_penalize(r, key, "requests", pl.requests.reset_after_ns)) != RL_OK)
        return rc;
    if (pl.tokens.remaining == 0 && pl.tokens.reset_after_ns > 0 &&
        (rc = rl_penalize(r, key, "tokens", pl.tokens.reset_after_ns)) != RL_OK)
        return rc;
    return RL_OK;
}
