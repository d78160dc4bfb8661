/*
 * model_check.c - test_model's log of operations and its comparison of
 * rl's answers (results, error messages, rl_stats) with the model's.
 */
#include "model_driver.h"

int64_t drv_clock(void *ctx)
{
    return ((drv *)ctx)->now;
}

char *logline(drv *d)
{
    return d->log[d->step % LOGN];
}

__attribute__((format(printf, 2, 3))) void logf_(drv *d, const char *fmt, ...)
{
    char *b = logline(d);
    size_t len = strlen(b);
    va_list ap;
    va_start(ap, fmt);
    if (len < LOGW)
        vsnprintf(b + len, LOGW - len, fmt, ap);
    va_end(ap);
}

void dump_tiers(const mtier *tiers)
{
    int t;
    size_t li;
    for (t = 0; t < NTIERS; t++) {
        if (tiers[t].unlimited) {
            printf("  rl_tier_set(\"%s\", NULL, 0)  (unlimited)\n", TIER_NAME[t]);
            continue;
        }
        printf("  rl_tier_set(\"%s\"):", TIER_NAME[t]);
        for (li = 0; li < tiers[t].n; li++) {
            const mlimit *l = &tiers[t].l[li];
            printf(" {%s %s %s count=%lld period=%lld burst=%lld}", l->name, RES_NAME[l->res],
                   l->algo == RL_ALGO_GCRA ? "gcra" : "window", (long long)l->count,
                   (long long)l->period, (long long)l->burst);
        }
        printf("\n");
    }
}

/* Records the first mismatch; tag names its kind (the shrinker keeps it). */
__attribute__((format(printf, 3, 4))) void mismatch(drv *d, const char *tag, const char *fmt, ...)
{
    va_list ap;
    if (d->failed)
        return;
    d->failed = 1;
    snprintf(d->tag, sizeof d->tag, "%s", tag);
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
}

void check_errmsg(drv *d, int rc)
{
#ifndef KNOWN_ISSUE_15_7
    if (rc == RL_OK && strcmp(rl_errmsg(d->r), "no error") != 0)
        mismatch(d, "rl_errmsg",
                 "rl_errmsg after RL_OK is \"%s\", api.md: \"no error\" after a success",
                 rl_errmsg(d->r));
#else
    (void)d;
    (void)rc;
#endif
}

static void fmt_res(char *b, size_t n, int rc, const rl_result *r)
{
    snprintf(b, n,
             "rc=%d allowed=%d limit=%lld remaining=%lld retry=%lld reset=%lld name=\"%s\" "
             "key_index=%d degraded=%d",
             rc, r->allowed, (long long)r->limit, (long long)r->remaining,
             (long long)r->retry_after_ns, (long long)r->reset_after_ns, r->limit_name,
             r->key_index, r->degraded);
}

static void fmt_x(char *b, size_t n, const xres *x)
{
    size_t len;
    int i;
    snprintf(b, n, "rc=%d allowed=%d retry=%lld%s%s%s deciding one of:", x->rc, x->allowed,
             (long long)x->retry, x->skip ? " (only rc/allowed defined)" : "",
             x->no_limit ? " no limit (name \"\")" : "",
             x->unlimited ? " remaining=INT64_MAX" : "");
    for (i = 0; i < x->nc; i++) {
        len = strlen(b);
        if (x->c[i].cooldown)
            snprintf(b + len, n - len, " [key %d cooldown]", x->c[i].key_index);
        else
            snprintf(b + len, n - len, " [key %d %s limit=%lld remaining=%lld reset=%lld]",
                     x->c[i].key_index, x->c[i].name, (long long)x->c[i].limit,
                     (long long)x->c[i].remaining, (long long)x->c[i].reset);
    }
}

/* Compares rl's answer with the model's; logs rl's. */
void compare(drv *d, const char *what, const xres *x, int rc, const rl_result *res, int check_msg)
{
    char a[512], b[1024], tag[128];
    const char *bad = NULL;
    int i;
    fmt_res(a, sizeof a, rc, res);
    fmt_x(b, sizeof b, x);
    logf_(d, " -> %s", a);
    d->compared++;
    if (rc != x->rc)
        bad = "return code";
    else if (rc == RL_ETIMEOUT && res->allowed)
        bad = "allowed after RL_ETIMEOUT";
    else if (rc == RL_OK) {
        if (res->allowed != x->allowed)
            bad = "allowed";
        else if (x->skip)
            bad = NULL;
        else if (res->retry_after_ns != x->retry)
            bad = "retry_after_ns";
        else if (res->degraded)
            bad = "degraded";
        else if (x->no_limit) {
            if (res->limit_name[0])
                bad = "limit_name (no limit applied)";
            else if (x->unlimited && res->remaining != INT64_MAX)
                bad = "remaining of an unlimited tier";
        } else {
            const xcand *c = NULL;
            for (i = 0; i < x->nc; i++)
                if (strcmp(x->c[i].name, res->limit_name) == 0 &&
                    x->c[i].key_index == res->key_index)
                    c = &x->c[i];
            if (!c)
                bad = "deciding limit (limit_name / key_index)";
            else if (!c->cooldown) {
                /* AMBIGUOUS: limit, remaining and reset_after of a cool-down's
                 * refusal are not defined ("cooldown" has no burst) */
                if (res->limit != c->limit)
                    bad = "limit";
                else if (res->remaining != c->remaining)
                    bad = "remaining";
                else if (res->reset_after_ns != c->reset)
                    bad = "reset_after_ns";
            }
        }
    }
    if (bad) {
        snprintf(tag, sizeof tag, "%s: %s", what, bad);
        mismatch(d, tag, "%s: %s\n  rl:    %s\n  model: %s", what, bad, a, b);
    }
    if (check_msg)
        check_errmsg(d, rc);
}

/* Compares rl_stats with the model. */
void check_stats(drv *d, int ki)
{
    const mkey *k = &M.key[ki];
    int t = tier_of(k), rc;
    const mtier *tr = &M.tier[t];
    rl_key_stats st;
    size_t li;
    char why[512] = "", tag[64] = "";
    int64_t gcd = cd_cover(k, 0, M.now);
    rc = rl_stats(d->r, k->name, &st);
    d->compared++;
    if (rc != RL_OK) {
        mismatch(d, "rl_stats: return code", "rl_stats returned %d", rc);
        return;
    }
    logf_(d, " -> exists=%d allowed=%lld refused=%lld units=%lld first=%lld last=%lld cd=%lld",
          st.exists, (long long)st.allowed, (long long)st.refused, (long long)st.units,
          (long long)st.first_seen_ns, (long long)st.last_seen_ns, (long long)st.cooldown_ns);
    for (li = 0; li < st.n_limits && li < RL_MAX_LIMITS; li++)
        logf_(d, " [%s rem=%lld retry=%lld reset=%lld cd=%lld debt=%lld]", st.limits[li].name,
              (long long)st.limits[li].remaining, (long long)st.limits[li].retry_after_ns,
              (long long)st.limits[li].reset_after_ns, (long long)st.limits[li].cooldown_ns,
              (long long)st.limits[li].debt);
    /* AMBIGUOUS: whether a key that was assigned a tier or penalized, but
     * never decided since its last reset, has been "seen" (exists) */
    if (st.exists != k->exists && !(k->known && !k->exists)) {
        snprintf(tag, sizeof tag, "exists");
        snprintf(why, sizeof why, "exists %d, model %d", st.exists, k->exists);
    } else if (strcmp(st.tier, TIER_NAME[t]) != 0) {
        snprintf(tag, sizeof tag, "tier");
        snprintf(why, sizeof why, "tier \"%s\", model \"%s\"", st.tier, TIER_NAME[t]);
    } else if (k->assigned >= 0 && st.tier_source != RL_TIER_ASSIGNED) {
        snprintf(tag, sizeof tag, "tier_source");
        snprintf(why, sizeof why, "tier_source %d, model RL_TIER_ASSIGNED", st.tier_source);
    } else if (st.allowed != k->allowed || st.refused != k->refused || st.units != k->units) {
        snprintf(tag, sizeof tag, "counters");
        snprintf(why, sizeof why,
                 "counters allowed/refused/units %lld/%lld/%lld, model %lld/%lld/%lld",
                 (long long)st.allowed, (long long)st.refused, (long long)st.units,
                 (long long)k->allowed, (long long)k->refused, (long long)k->units);
    }
    /* AMBIGUOUS: last_seen after the clock stepped back (the last
     * decision's time, or the latest); either is accepted */
    else if (k->exists && (st.first_seen_ns != k->first_seen ||
                           (st.last_seen_ns != k->last_seen && st.last_seen_ns != k->max_seen))) {
        snprintf(tag, sizeof tag, "first/last_seen");
        snprintf(why, sizeof why, "first/last_seen %lld/%lld, model %lld/%lld",
                 (long long)st.first_seen_ns, (long long)st.last_seen_ns, (long long)k->first_seen,
                 (long long)k->last_seen);
    } else if (st.cooldown_ns != (gcd == INT64_MIN ? 0 : gcd - M.now)) {
        snprintf(tag, sizeof tag, "cooldown_ns");
        snprintf(why, sizeof why, "cooldown_ns %lld, model %lld", (long long)st.cooldown_ns,
                 (long long)(gcd == INT64_MIN ? 0 : gcd - M.now));
    } else if (st.n_limits != (tr->unlimited ? 0 : tr->n)) {
        snprintf(tag, sizeof tag, "n_limits");
        snprintf(why, sizeof why, "n_limits %zu, model %zu", st.n_limits,
                 tr->unlimited ? 0 : tr->n);
    }
    for (li = 0; !why[0] && !tr->unlimited && li < tr->n; li++) {
        const mlimit *l = &tr->l[li];
        const rl_limit_stats *ls = &st.limits[li];
        mslot s = view(k, t, li, M.now);
        int64_t rem = l_remaining(l, &s, M.now), retry = l_wait(l, &s, M.now, 1),
                reset = l_reset(l, &s, M.now);
        int64_t rcd = cd_cover(k, 1u << l->res, M.now);
        int64_t own = (k->cd_has[1 + l->res] && k->cd_end[1 + l->res] > M.now)
                          ? k->cd_end[1 + l->res] - M.now
                          : 0;
        rcd = rcd == INT64_MIN ? 0 : rcd - M.now;
        if (strcmp(ls->name, l->name) != 0 || strcmp(ls->resource, RES_NAME[l->res]) != 0 ||
            ls->count != l->count || ls->period_ns != l->period || ls->burst != eff_burst(l) ||
            ls->algorithm != l->algo) {
            snprintf(tag, sizeof tag, "limit definition");
            snprintf(why, sizeof why, "limit %zu definition %s/%s %lld/%lld burst %lld algo %d", li,
                     ls->name, ls->resource, (long long)ls->count, (long long)ls->period_ns,
                     (long long)ls->burst, ls->algorithm);
        } else if (ls->remaining != rem) {
            snprintf(tag, sizeof tag, "limit remaining");
            snprintf(why, sizeof why, "limit %s remaining %lld, model %lld", l->name,
                     (long long)ls->remaining, (long long)rem);
        } else if (ls->retry_after_ns != retry) {
            snprintf(tag, sizeof tag, "limit retry_after_ns");
            snprintf(why, sizeof why, "limit %s retry_after_ns %lld, model %lld", l->name,
                     (long long)ls->retry_after_ns, (long long)retry);
        } else if (ls->reset_after_ns != reset) {
            snprintf(tag, sizeof tag, "limit reset_after_ns");
            snprintf(why, sizeof why, "limit %s reset_after_ns %lld, model %lld", l->name,
                     (long long)ls->reset_after_ns, (long long)reset);
        }
        /* AMBIGUOUS: whether a limit's cooldown_ns ("left of an rl_penalize
         * cool-down on this resource") counts a cool-down on every resource;
         * either reading is accepted */
        else if (ls->cooldown_ns != own && ls->cooldown_ns != rcd) {
            snprintf(tag, sizeof tag, "limit cooldown_ns");
            snprintf(why, sizeof why, "limit %s cooldown_ns %lld, model %lld (or %lld)", l->name,
                     (long long)ls->cooldown_ns, (long long)own, (long long)rcd);
        } else if (ls->in_flight != 0) {
            snprintf(tag, sizeof tag, "limit in_flight");
            snprintf(why, sizeof why, "limit %s in_flight %lld without leases", l->name,
                     (long long)ls->in_flight);
        }
        /* debt: "units owed beyond an empty bucket, from leases"; no leases
         * here, so 0, except where reservations took the bucket below empty
         * (AMBIGUOUS: not compared then) */
        else if (ls->debt != 0 &&
                 !(l->algo == RL_ALGO_GCRA &&
                   g_used(l, &s, M.now) > (i128)eff_burst(l) * l->period) &&
                 !(l->algo == RL_ALGO_SLIDING_WINDOW && w_est(l, &s, M.now) > l->count)) {
            snprintf(tag, sizeof tag, "limit debt");
            snprintf(why, sizeof why, "limit %s debt %lld without leases", l->name,
                     (long long)ls->debt);
        }
    }
    if (why[0]) {
        char full[96];
        snprintf(full, sizeof full, "rl_stats: %s", tag);
        mismatch(d, full, "rl_stats(%s): %s", k->name, why);
    }
    check_errmsg(d, rc);
}
