/*
 * model_exec.c - test_model's execution of one operation: the call to rl,
 * the model's answer, their comparison.
 */
#include "model_driver.h"

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
        mismatch(d, tag, "rl_reserve: %s: model rc=%d ok=%d delay=%lld time_to_act=%lld", bad, x.rc,
                 x.allowed, (long long)dl,
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
    logf_(d, "%lld penalize %s %s %lld", (long long)M.now, k->name, ri ? RES_NAME[ri - 1] : "NULL",
          (long long)dur);
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

int exec_op(drv *d, const op *o, size_t idx)
{
    int64_t was = d->now;
    int ran = 0, i, j;
    if (o->t < d->now) {
        /* AMBIGUOUS: whether a cool-down that ran out before the clock
         * stepped back still refuses (rl forgets one that has run out):
         * the clock does not step back over the end of one */
        for (i = 0; i < NKEYS; i++)
            for (j = 0; j <= NRES; j++)
                if (M.key[i].cd_has[j] && M.key[i].cd_end[j] > o->t && M.key[i].cd_end[j] <= d->now)
                    return 0;
    }
    d->step++;
    logline(d)[0] = 0;
    set_clock(d, o->t);
    switch (o->kind) {
    case O_ALLOW:
        ran = ex_allow(d, o);
        break;
    case O_ACQUIRE:
    case O_ACQKEYS:
        ran = ex_acquire(d, o);
        break;
    case O_BATCH:
        ran = ex_batch(d, o);
        break;
    case O_RESERVE:
        ran = ex_reserve(d, o, &d->rv[idx]);
        break;
    case O_CANCEL:
        ran = ex_cancel(d, o);
        break;
    case O_WAIT:
        ran = ex_wait(d, o);
        break;
    case O_PENALIZE:
        ran = ex_penalize(d, o);
        break;
    case O_RESET:
        ran = ex_reset(d, o);
        break;
    case O_ASSIGN:
        ran = ex_assign(d, o);
        break;
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
