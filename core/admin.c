/*
 * admin.c - administration of a database, for rlctl and programs alike:
 * resetting one key or many, pruning, and health checks. Export and import
 * (JSON) live in export/, since they use SQLite's JSON functions.
 *
 * Guarantees:
 *   - rl_reset_match and rl_prune never hold the write lock for more than
 *     one batch of BATCH keys: candidates are found in a read transaction
 *     (which in WAL mode blocks nobody), then each is re-read and judged
 *     again inside a short write transaction before it is changed, so a
 *     decision made in between is never lost and deciders never wait long;
 *   - rl_prune first reclaims the leases that are no longer live
 *     (rl__lease_live, the test a lease decision applies), one write
 *     transaction per key that re-reads the key and its leases, so that a
 *     key they alone kept from being pruned goes in the same call;
 *   - like every call on a handle, they hold the handle's mutex, write
 *     through the one transaction runner (rl__tx, rl__write_tx), and
 *     read time from the handle's clock.
 */
#include "gcra.h"
#include "handle.h" /* rl__lease_live only; the handle through rl_int.h */
#include "parse.h"
#include "rl_int.h"
#include "window.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keys per write transaction: a batch of deletes commits in about a
 * millisecond, well inside anyone's busy timeout. */
#define BATCH 256

extern const size_t rl_schema_count;

/* ---- walking keys in batches -------------------------------------------- */

typedef struct walk walk;

/* A lease that is no longer live, and what it holds. */
typedef struct dead_lease {
    char key[RL_KEY_MAX + 1];
    int64_t id;
    size_t n;
    uint64_t held_id[RL_MAX_LIMITS];
    int64_t held_amount[RL_MAX_LIMITS];
} dead_lease;

typedef struct dead_set {
    dead_lease *v;
    size_t n, cap;
    int64_t now;
    char *err;
} dead_set;

struct walk {
    rl *r;
    rl_store *s;
    char *err;
    const char *match, *tier; /* rl_reset_match */
    int64_t idle_ns;          /* rl_prune */
    dead_set dead;            /* rl_prune: leases that are no longer live */
    const char *reclaim_key;  /* the key whose leases reclaim_tx reclaims */
    int64_t now;
    int64_t changed; /* keys changed by the batch being written */
    rl_policy pol;
    int64_t pol_version; /* -1: not read */
    /* whether a key qualifies, and what is done to it under the write lock */
    int (*pred)(walk *w, const char *key, const rl_row *row);
    int (*apply)(walk *w, const char *key, rl_row *row);
    /* the current page */
    size_t n;
    char keys[BATCH][RL_KEY_MAX + 1];
    rl_row rows[BATCH];
    unsigned char cand[BATCH];
};

static int page_row(void *ctx, const char *key, const rl_row *row)
{
    walk *w = ctx;
    if (w->n >= BATCH)
        return 1; /* cannot happen: the page is limited to BATCH */
    snprintf(w->keys[w->n], sizeof w->keys[w->n], "%s", key);
    w->rows[w->n] = *row;
    w->n++;
    return 0;
}

/* The policy as of version, read again only when it changed. */
static int walk_policy(walk *w, int64_t version)
{
    rl_policy p;
    int rc;
    if (version == w->pol_version)
        return RL_OK;
    rl_policy_init(&p);
    if ((rc = w->s->ops->policy_get(w->s, &p)) != RL_OK) {
        rl_policy_free(&p);
        return rc;
    }
    rl_policy_free(&w->pol);
    w->pol = p;
    w->pol_version = version;
    return RL_OK;
}

/* One batch under the write lock: each candidate re-read and judged again,
 * since a decider may have used or reset it since the page was read. */
static int walk_write_tx(rl *r, void *ctx)
{
    walk *w = ctx;
    rl_row row;
    int64_t version;
    size_t i;
    int rc;
    w->changed = 0;
    w->now = rl__now(r);
    for (i = 0; i < w->n; i++) {
        if (!w->cand[i])
            continue;
        if ((rc = w->s->ops->row_get(w->s, w->keys[i], &row, &version)) != RL_OK)
            return rc;
        if (!row.exists)
            continue;
        if ((rc = walk_policy(w, version)) != RL_OK)
            return rc;
        if (!w->pred(w, w->keys[i], &row))
            continue;
        if ((rc = w->apply(w, w->keys[i], &row)) != RL_OK)
            return rc;
        w->changed++;
    }
    return RL_OK;
}

static int walk_write(walk *w, int64_t *done)
{
    int rc = rl__tx(w->r, walk_write_tx, w);
    if (rc == RL_OK)
        *done += w->changed;
    return rc;
}

static int walk_run(walk *w, const char *match, int dry_run, int64_t *count)
{
    char cursor[RL_KEY_MAX + 1] = "";
    int64_t version, total = 0;
    size_t i, ncand;
    int rc;

    for (;;) {
        w->n = 0;
        if ((rc = w->s->ops->begin(w->s, 0)) != RL_OK)
            break;
        rc = w->s->ops->policy_version(w->s, &version);
        if (rc == RL_OK)
            rc = walk_policy(w, version);
        if (rc == RL_OK)
            rc = w->s->ops->keys_page(w->s, cursor, match, BATCH, page_row, w);
        w->s->ops->rollback(w->s);
        if (rc != RL_OK || w->n == 0)
            break;
        w->now = rl__now(w->r);
        for (i = 0, ncand = 0; i < w->n; i++)
            ncand += w->cand[i] = (unsigned char)(w->pred(w, w->keys[i], &w->rows[i]) != 0);
        if (dry_run)
            total += (int64_t)ncand;
        else if (ncand > 0 && (rc = walk_write(w, &total)) != RL_OK)
            break;
        memcpy(cursor, w->keys[w->n - 1], sizeof cursor);
        if (w->n < BATCH)
            break;
    }
    if (rc > 0) /* page_row's "page full": a store that ignored the limit */
        rc = rl_seterr(w->err, RL_ESTORE, "store returned more keys than asked for");
    if (count)
        *count = total;
    return rc;
}

static walk *walk_new(rl *r)
{
    walk *w = calloc(1, sizeof *w);
    if (!w) {
        rl_seterr(rl__errbuf(r), RL_ENOMEM, "out of memory");
        return NULL;
    }
    w->r = r;
    w->s = rl__store(r);
    w->err = rl__errbuf(r);
    w->err[0] = 0;
    rl_policy_init(&w->pol);
    w->pol_version = -1;
    return w;
}

static void walk_free(walk *w)
{
    if (!w)
        return;
    rl_policy_free(&w->pol);
    free(w->dead.v);
    free(w);
}

/* The match of rl_reset_match: the tier a decision would give the key.
 * (Keys under rl_options.default_limits are under the tier "default",
 * which --tier default selects.) */
static int reset_pred(walk *w, const char *key, const rl_row *row)
{
    const rl_tier *t;
    int source;
    if (!w->tier)
        return 1;
    t = rl_policy_resolve(&w->pol, key, row->tier, &source);
    return t && strcmp(t->name, w->tier) == 0;
}

/* A reset: an assigned tier stays, everything else goes (rl_reset, and
 * rl_reset_match for each key). */
static int reset_row(rl_store *s, const char *key, rl_row *row)
{
    if (!row->tier[0])
        return s->ops->row_delete(s, key);
    row->state_len = 0;
    row->allowed = row->refused = row->units = 0;
    row->first_seen = row->last_seen = 0;
    return s->ops->row_put(s, key, row);
}

static int reset_apply(walk *w, const char *key, rl_row *row)
{
    return reset_row(w->s, key, row);
}

static int reset_tx(rl *r, void *ctx)
{
    const char *key = ctx;
    rl_store *s = rl__store(r);
    rl_row row;
    int64_t version;
    int rc = s->ops->row_get(s, key, &row, &version);
    if (rc != RL_OK)
        return rc;
    if (!row.exists)
        return rl_seterr(rl__errbuf(r), RL_ENOTFOUND, "no such key: '%.64s'", key);
    return reset_row(s, key, &row);
}

int rl_reset(rl *r, const char *key)
{
    int rc;
    if (!r)
        return RL_EINVAL;
    if ((rc = rl__check_key(r, key)) != RL_OK)
        return rc;
    return rl__write_tx(r, reset_tx, NULL, (void *)key); /* only read */
}

static int reset_match(rl *r, const char *match, const char *tier, int dry_run, int64_t *count)
{
    walk *w;
    int rc;
    if (count)
        *count = 0;
    if (!r)
        return RL_EINVAL;
    if (match && !rl_key_valid(match))
        return rl_seterr(rl__errbuf(r), RL_EINVAL,
                         "invalid glob: 1-%d bytes of UTF-8 without control characters",
                         RL_KEY_MAX);
    if (tier && !rl_name_valid(tier))
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "invalid tier name");
    if (!(w = walk_new(r)))
        return RL_ENOMEM;
    w->match = match;
    w->tier = tier;
    w->pred = reset_pred;
    w->apply = reset_apply;
    rc = walk_run(w, match, dry_run, count);
    walk_free(w);
    return rc;
}

/* ---- reclaiming leases ---------------------------------------------------- */

static int find_dead(void *ctx, const rl_lease_rec *rec)
{
    dead_set *d = ctx;
    dead_lease *e;
    if (rl__lease_live(rec, d->now))
        return 0;
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 16;
        dead_lease *nv = realloc(d->v, cap * sizeof *nv);
        if (!nv)
            return rl_seterr(d->err, RL_ENOMEM, "out of memory");
        d->v = nv;
        d->cap = cap;
    }
    e = &d->v[d->n++];
    snprintf(e->key, sizeof e->key, "%s", rec->key);
    e->id = rec->id;
    e->n = rec->n_held;
    memcpy(e->held_id, rec->held_id, sizeof e->held_id);
    memcpy(e->held_amount, rec->held_amount, sizeof e->held_amount);
    return 0;
}

static int dead_cmp(const void *a, const void *b)
{
    const dead_lease *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->id > y->id) - (x->id < y->id);
}

/* The leases of key (NULL: all) that are no longer live at now, sorted by
 * key, into d (emptied first); inside a transaction. */
static int dead_find(walk *w, const char *key, int64_t now, dead_set *d)
{
    int rc;
    d->n = 0;
    d->now = now;
    d->err = w->err;
    rc = w->s->ops->leases_each(w->s, key, find_dead, d);
    if (rc == RL_OK && d->n > 1)
        qsort(d->v, d->n, sizeof *d->v, dead_cmp);
    return rc;
}

/* Frees in st what d's leases of key hold. */
static void dead_release(const dead_set *d, const char *key, rl_state *st)
{
    size_t lo = 0, hi = d->n;
    while (lo < hi) { /* the first lease of key */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(d->v[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < d->n && strcmp(d->v[lo].key, key) == 0; lo++)
        rl__release_held(st, d->v[lo].n, d->v[lo].held_id, d->v[lo].held_amount);
}

/* One key under the write lock: its leases judged again, those no longer
 * live deleted and what they hold freed in the stored state (as it is:
 * the next decision brings it to the key's tier). A key whose state is
 * damaged is left for rl_doctor and rl_reset to deal with. */
static int reclaim_tx(rl *r, void *ctx)
{
    walk *w = ctx;
    dead_set found = { NULL, 0, 0, 0, NULL };
    rl_row row;
    rl_state st;
    int64_t version;
    size_t i;
    int rc;
    w->changed = 0;
    if ((rc = w->s->ops->row_get(w->s, w->reclaim_key, &row, &version)) != RL_OK)
        return rc;
    if (row.exists && rl_state_decode(&st, row.state, row.state_len) != RL_OK)
        return RL_OK;
    if ((rc = dead_find(w, w->reclaim_key, rl__now(r), &found)) != RL_OK)
        goto out;
    for (i = 0; i < found.n; i++) {
        if ((rc = w->s->ops->lease_delete(w->s, w->reclaim_key, found.v[i].id)) != RL_OK)
            goto out;
        w->changed++;
    }
    if (row.exists && found.n > 0) {
        dead_release(&found, w->reclaim_key, &st);
        row.state_len = rl_state_encode(&st, row.state);
        rc = w->s->ops->row_put(w->s, w->reclaim_key, &row);
    }
out:
    free(found.v);
    return rc;
}

/* Finds the leases that are no longer live; unless dry_run, reclaims them,
 * one write transaction per key. *count: how many were found, or
 * reclaimed (a lease decision may have reclaimed some in between). */
static int reclaim_leases(walk *w, int dry_run, int64_t *count)
{
    size_t i;
    int rc;
    *count = 0;
    if ((rc = w->s->ops->begin(w->s, 0)) != RL_OK)
        return rc;
    rc = dead_find(w, NULL, rl__now(w->r), &w->dead);
    w->s->ops->rollback(w->s);
    if (rc != RL_OK || dry_run) {
        *count = (int64_t)w->dead.n;
        return rc;
    }
    for (i = 0; i < w->dead.n; i++) {
        if (i > 0 && strcmp(w->dead.v[i].key, w->dead.v[i - 1].key) == 0)
            continue;
        w->reclaim_key = w->dead.v[i].key;
        if ((rc = rl__tx(w->r, reclaim_tx, w)) != RL_OK)
            return rc;
        *count += w->changed;
    }
    w->dead.n = 0; /* reclaimed: the states read from now on are freed */
    return RL_OK;
}

/* Full: what the key's next request would meet if the row did not exist
 * (after a dry run's reclaiming, when dead is given). */
static int state_full(const char *key, const unsigned char *buf, size_t len, int64_t now,
                      const dead_set *dead)
{
    rl_state st;
    size_t i;
    if (rl_state_decode(&st, buf, len) != RL_OK)
        return 0; /* damaged: kept for rl_doctor and the next decision to report */
    if (dead)
        dead_release(dead, key, &st);
    for (i = 0; i < st.n; i++) {
        const rl_slot *s = &st.slot[i];
        if (s->kind == RL_SLOT_GCRA) {
            rl_ldef d;
            rl_tat tat = { s->tat, s->rem };
            int64_t remaining, reset_after, retry_after;
            memset(&d, 0, sizeof d);
            d.count = s->count;
            d.period_ns = s->period_ns;
            d.burst = s->burst;
            rl_gcra_peek(&d, tat, now, &remaining, &reset_after, &retry_after);
            if (remaining != s->burst)
                return 0;
        } else if (s->kind == RL_SLOT_WINDOW) {
            rl_ldef d;
            rl_window w = { s->tat, s->rem, s->burst }; /* store.h: start, cur, prev */
            memset(&d, 0, sizeof d);
            d.kind = RL_KIND_WINDOW;
            d.count = d.burst = s->count;
            d.period_ns = s->period_ns;
            if (rl_window_estimate(&d, w, now) != 0)
                return 0; /* a fresh window counts nothing */
        } else if (s->kind == RL_SLOT_COOLDOWN) {
            if (s->tat > now)
                return 0;
        } else if (s->kind == RL_SLOT_INFLIGHT) {
            if (s->tat != 0)
                return 0; /* units held by leases */
        } else {
            return 0;
        }
    }
    return 1;
}

static int prune_pred(walk *w, const char *key, const rl_row *row)
{
    /* an injected clock may sit less than idle_ns after INT64_MIN: nothing
     * can have been idle that long */
    return !row->tier[0] && w->now >= INT64_MIN + w->idle_ns &&
           row->last_seen <= w->now - w->idle_ns &&
           state_full(key, row->state, row->state_len, w->now, w->dead.n ? &w->dead : NULL);
}

static int prune_apply(walk *w, const char *key, rl_row *row)
{
    (void)row;
    return w->s->ops->row_delete(w->s, key);
}

static int prune(rl *r, int64_t idle_ns, int dry_run, int64_t *count)
{
    walk *w;
    int64_t leases;
    int rc;
    if (count)
        *count = 0;
    if (!r)
        return RL_EINVAL;
    if (idle_ns < 0 || idle_ns > RL_FILL_MAX)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "idle time out of range (0 to 50 years)");
    if (!(w = walk_new(r)))
        return RL_ENOMEM;
    w->idle_ns = idle_ns;
    w->pred = prune_pred;
    w->apply = prune_apply;
    if ((rc = reclaim_leases(w, dry_run, &leases)) == RL_OK)
        rc = walk_run(w, NULL, dry_run, count);
    walk_free(w);
    return rc;
}

/* ---- doctor ------------------------------------------------------------- */

/* Keys and tier names in details are quoted (rl_parse_quote): they come
 * from the store, and may hold anything a tampered file does. */
typedef struct scan_ctx {
    const rl_policy *pol;
    int64_t keys, damaged, invalid, assigned, orphans;
    char damaged_key[80], invalid_key[80], orphan_key[80], orphan_tier[80];
} scan_ctx;

static int scan_row(void *ctx, const char *key, const rl_row *row)
{
    scan_ctx *c = ctx;
    rl_state st;
    c->keys++;
    if (!rl_key_valid(key) && c->invalid++ == 0)
        rl_parse_quote(c->invalid_key, sizeof c->invalid_key, key, strlen(key));
    if (rl_state_decode(&st, row->state, row->state_len) != RL_OK && c->damaged++ == 0)
        rl_parse_quote(c->damaged_key, sizeof c->damaged_key, key, strlen(key));
    if (row->tier[0]) {
        c->assigned++;
        if (!rl_policy_tier(c->pol, row->tier) && c->orphans++ == 0) {
            rl_parse_quote(c->orphan_key, sizeof c->orphan_key, key, strlen(key));
            rl_parse_quote(c->orphan_tier, sizeof c->orphan_tier, row->tier, strlen(row->tier));
        }
    }
    return 0;
}

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 5, 6)))
#endif
static int
check(rl_check_fn fn, void *ctx, const char *name, int status, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return fn(ctx, name, status, detail);
}

/* Leases no longer live (rl__lease_live) at now, among how many. */
typedef struct lease_scan {
    int64_t now, open, dead;
    char dead_key[80];
} lease_scan;

static int scan_lease(void *ctx, const rl_lease_rec *rec)
{
    lease_scan *c = ctx;
    c->open++;
    if (!rl__lease_live(rec, c->now) && c->dead++ == 0)
        rl_parse_quote(c->dead_key, sizeof c->dead_key, rec->key, strlen(rec->key));
    return 0;
}

static int doctor_leases(rl_store *s, int64_t now, rl_check_fn fn, void *ctx)
{
    lease_scan c;
    memset(&c, 0, sizeof c);
    c.now = now;
    if (s->ops->leases_each(s, NULL, scan_lease, &c) != RL_OK)
        return check(fn, ctx, "leases", RL_CHECK_FAIL, "cannot read leases: %s", s->err);
    if (c.dead)
        return check(fn, ctx, "leases", RL_CHECK_WARN,
                     "%lld of %lld open lease(s) expired or held by a dead process (first on "
                     "'%s'): they hold nothing, but keep their slots taken in the store until "
                     "the next lease on their key; 'rlctl prune' reclaims them",
                     (long long)c.dead, (long long)c.open, c.dead_key);
    if (c.open)
        return check(fn, ctx, "leases", RL_CHECK_OK, "%lld open lease(s), all live",
                     (long long)c.open);
    return check(fn, ctx, "leases", RL_CHECK_OK, "no open leases");
}

/* What the store cannot judge: the policy it holds, every key's row and
 * the leases. */
static int doctor_policy(rl_store *s, int64_t now, rl_check_fn fn, void *ctx)
{
    rl_policy p;
    scan_ctx c;
    size_t i, missing = 0;
    const char *missing_tier = "";
    int rc, stop = 0;

    rl_policy_init(&p);
    memset(&c, 0, sizeof c);
    if ((rc = s->ops->begin(s, 0)) != RL_OK)
        return check(fn, ctx, "policy", RL_CHECK_FAIL, "cannot read: %s", s->err);
    if ((rc = s->ops->policy_get(s, &p)) != RL_OK) {
        stop = check(fn, ctx, "policy", RL_CHECK_FAIL, "%s", s->err);
        goto out;
    }
    for (i = 0; i < p.n_rules; i++)
        if (!rl_policy_tier(&p, p.rules[i].tier) && missing++ == 0)
            missing_tier = p.rules[i].tier;
    if (p.default_tier[0] && !rl_policy_tier(&p, p.default_tier))
        stop =
            check(fn, ctx, "policy", RL_CHECK_WARN,
                  "default tier '%s' does not exist: unmatched keys fall through", p.default_tier);
    else if (missing)
        stop = check(fn, ctx, "policy", RL_CHECK_WARN,
                     "%zu key rule(s) name a tier that does not exist (first: '%s'): they "
                     "are skipped",
                     missing, missing_tier);
    else if (p.n_tiers == 0)
        stop = check(fn, ctx, "policy", RL_CHECK_WARN,
                     "no tiers: only programs' rl_options.default_limits limit anything");
    else
        stop = check(fn, ctx, "policy", RL_CHECK_OK,
                     "%zu tier(s), %zu key rule(s), default "
                     "tier %s",
                     p.n_tiers, p.n_rules,
                     p.default_tier[0]               ? p.default_tier
                     : rl_policy_tier(&p, "default") ? "'default'"
                                                     : "none");
    if (stop)
        goto out;
    c.pol = &p;
    if ((rc = s->ops->keys_page(s, "", NULL, 0, scan_row, &c)) != RL_OK) {
        stop = check(fn, ctx, "bucket states", RL_CHECK_FAIL, "cannot read keys: %s", s->err);
        goto out;
    }
    if (c.invalid)
        stop = check(fn, ctx, "bucket states", RL_CHECK_FAIL,
                     "%lld of %lld key(s) stored under a name that is not a valid key "
                     "(first: '%s'; tampered?): listings refuse it; 'rlctl reset --all' "
                     "removes those with no assigned tier",
                     (long long)c.invalid, (long long)c.keys, c.invalid_key);
    else if (c.damaged)
        stop = check(fn, ctx, "bucket states", RL_CHECK_FAIL,
                     "%lld of %lld key(s) damaged (first: '%s'); 'rlctl reset' them",
                     (long long)c.damaged, (long long)c.keys, c.damaged_key);
    else
        stop = check(fn, ctx, "bucket states", RL_CHECK_OK, "%lld key(s), all readable",
                     (long long)c.keys);
    if (stop)
        goto out;
    if (c.orphans)
        stop = check(fn, ctx, "assignments", RL_CHECK_WARN,
                     "%lld key(s) assigned to a tier that does not exist (first: '%s' to "
                     "'%s'): rules decide for them",
                     (long long)c.orphans, c.orphan_key, c.orphan_tier);
    else
        stop = check(fn, ctx, "assignments", RL_CHECK_OK, "%lld key(s) with an assigned tier",
                     (long long)c.assigned);
    if (!stop)
        stop = doctor_leases(s, now, fn, ctx);
out:
    s->ops->rollback(s);
    rl_policy_free(&p);
    return stop;
}

int rl_doctor(rl *r, int (*fn)(void *ctx, const char *check, int status, const char *detail),
              void *ctx)
{
    rl_store *s;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!fn)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "callback is NULL");
    s = rl__store(r);
    rl__lock(r);
    rl__errbuf(r)[0] = 0;
    if ((rc = s->ops->doctor(s, fn, ctx)) == 0 && (rc = doctor_policy(s, rl__now(r), fn, ctx)) == 0)
        rl__errbuf(r)[0] = 0;
    rl__unlock(r);
    return rc;
}

int rl_reset_match(rl *r, const char *match, const char *tier, int dry_run, int64_t *count)
{
    int rc;
    if (!r)
        return RL_EINVAL;
    rl__lock(r);
    rc = reset_match(r, match, tier, dry_run, count);
    rl__unlock(r);
    return rc;
}

int rl_prune(rl *r, int64_t idle_ns, int dry_run, int64_t *count)
{
    int rc;
    if (!r)
        return RL_EINVAL;
    rl__lock(r);
    rc = prune(r, idle_ns, dry_run, count);
    rl__unlock(r);
    return rc;
}
