/*
 * admin.c - the Redis store's administration: listing keys (rlctl keys,
 * stats, prune and reset through core/admin.c), totals, the clear of an
 * import, and health checks (rl_doctor).
 *
 * Guarantees:
 *   - keys are walked in byte order from a sorted-set index, a page at a
 *     time (one round trip for the names, one for their rows), so a listing
 *     never holds more than a page; keys that expired meanwhile are skipped
 *     and dropped from the index;
 *   - a walk stops as soon as the callback returns non-zero;
 *   - clearing for an import keeps the policy part of the transaction and
 *     happens in its commit, all or nothing.
 */
#include "rd.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RD_PAGE 512

/* Drops index entries whose key has expired, unless it came back. KEYS:
 * the index, then row names; ARGV[1]: what a row's name has before its
 * key (rd_row_pre: format 1's ends with '{', and the name with '}'). */
static const char unindex_lua[] =
    "local pre = ARGV[1]\n"
    "local post = string.sub(pre, -1) == '{' and 2 or 1\n"
    "for i = 2, #KEYS do\n"
    "  if redis.call('EXISTS', KEYS[i]) == 0 then\n"
    "    redis.call('ZREM', KEYS[1], string.sub(KEYS[i], #pre + 1, -post))\n"
    "  end\n"
    "end\n"
    "return 1\n";

/* ---- listing keys ----------------------------------------------------------------- */

/* Forgets index entries whose hashes expired (names[] are full key names). */
static void unindex(rd_store *s, char (*names)[RD_NAME_MAX], size_t n)
{
    char idx[RD_NAME_MAX], rp[RD_NAME_MAX], nk[24];
    const char **argv = malloc((n + 5) * sizeof *argv);
    redisReply *r = NULL;
    size_t i;
    if (!argv || s->readonly)
        goto out;
    rd_name_of(s, "keys", idx);
    rd_row_pre(s, rp);
    snprintf(nk, sizeof nk, "%zu", n + 1);
    argv[0] = "EVAL";
    argv[1] = unindex_lua;
    argv[2] = nk;
    argv[3] = idx;
    for (i = 0; i < n; i++)
        argv[4 + i] = names[i];
    argv[4 + n] = rp;
    if (rd_cmd(s, &r, "forget expired keys", (int)(n + 5), argv, NULL) != RL_OK)
        s->base.err[0] = 0; /* only housekeeping: the listing stands */
out:
    freeReplyObject(r);
    free(argv);
}

/* Walks the keys after `after` in byte order, page by page: one round trip
 * for the names, one for their rows. fn non-zero stops the walk. */
static int each_key(rd_store *s, const char *after, const char *match, size_t limit, rl_row_fn fn,
                    void *ctx)
{
    char idx[RD_NAME_MAX], from[RL_KEY_MAX + 2];
    char(*names)[RD_NAME_MAX] = malloc(RD_PAGE * sizeof *names);
    char(*stale)[RD_NAME_MAX] = malloc(RD_PAGE * sizeof *stale);
    const char *(*args)[3] = malloc(RD_PAGE * sizeof *args);
    const char **argvp[RD_PAGE];
    int argc[RD_PAGE];
    redisReply *page = NULL, **rows = calloc(RD_PAGE, sizeof *rows);
    rl_row *row = malloc(sizeof *row);
    size_t i, seen = 0;
    int rc = RL_OK;

    if (!names || !stale || !args || !rows || !row) {
        rc = rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
        goto out;
    }
    rd_name_of(s, "keys", idx);
    snprintf(from, sizeof from, "(%s", after ? after : "");
    for (;;) {
        const char *zargv[7] = {
            "ZRANGEBYLEX", idx, from[1] ? from : "-", "+", "LIMIT", "0", "512"
        };
        size_t n, nstale = 0;
        if ((rc = rd_cmd(s, &page, "list keys", 7, zargv, NULL)) != RL_OK)
            goto out;
        n = page->type == REDIS_REPLY_ARRAY ? page->elements : 0;
        for (i = 0; i < n; i++) {
            const redisReply *e = page->element[i];
            if (e->type != REDIS_REPLY_STRING || e->len > RL_KEY_MAX) {
                rc = rl_seterr(s->base.err, RL_ECORRUPT, "redis %s: %s: damaged index", s->where,
                               idx);
                goto out;
            }
            rd_row_name(s, e->str, names[i]);
            args[i][0] = "HGET";
            args[i][1] = names[i];
            args[i][2] = "r";
            argc[i] = 3;
            argvp[i] = args[i];
        }
        if (n && (rc = rd_pipeline(s, n, argc, argvp, NULL, rows, "read keys")) != RL_OK)
            goto out;
        for (i = 0; i < n && rc == RL_OK; i++) {
            const char *key = page->element[i]->str;
            if (rows[i]->type != REDIS_REPLY_STRING) {
                memcpy(stale[nstale++], names[i], RD_NAME_MAX);
                continue;
            }
            memset(row, 0, sizeof *row);
            if (rd_row_decode(row, (const unsigned char *)rows[i]->str, rows[i]->len) != RL_OK) {
                rc = rl_seterr(s->base.err, RL_ECORRUPT, "redis %s: key '%.64s': damaged record",
                               s->where, key);
                break;
            }
            if (match && !rl_glob_match(match, key))
                continue;
            rc = fn(ctx, key, row);
            if (limit && ++seen >= limit && rc == RL_OK)
                rc = 1; /* enough: stop quietly */
        }
        if (n)
            snprintf(from, sizeof from, "(%s", page->element[n - 1]->str);
        for (i = 0; i < n; i++) {
            freeReplyObject(rows[i]);
            rows[i] = NULL;
        }
        freeReplyObject(page);
        page = NULL;
        if (nstale)
            unindex(s, stale, nstale);
        if (rc != RL_OK || n < RD_PAGE)
            break;
    }
    if (rc == 1 && limit && seen >= limit)
        rc = RL_OK;
out:
    freeReplyObject(page);
    if (rows)
        for (i = 0; i < RD_PAGE; i++)
            freeReplyObject(rows[i]);
    free(rows);
    free(names);
    free(stale);
    free(args);
    free(row);
    return rc;
}

int rd_keys_page(rl_store *base, const char *after, const char *match, size_t limit, rl_row_fn fn,
                 void *ctx)
{
    return each_key((rd_store *)base, after, match, limit, fn, ctx);
}

typedef struct sorted {
    char *key;
    rl_row row;
} sorted;

typedef struct collect {
    sorted *v;
    size_t n, cap;
    int sort;
} collect;

static int64_t sort_value(const rl_row *r, int sort)
{
    return sort == RL_SORT_ALLOWED     ? r->allowed
           : sort == RL_SORT_REFUSED   ? r->refused
           : sort == RL_SORT_LAST_SEEN ? r->last_seen
                                       : 0;
}

static int collect_one(void *ctx, const char *key, const rl_row *row)
{
    collect *c = ctx;
    sorted *nv = rd_room(c->v, c->n, &c->cap, sizeof *nv, 256);
    if (!nv)
        return RL_ENOMEM;
    c->v = nv;
    if (!(c->v[c->n].key = strdup(key)))
        return RL_ENOMEM;
    c->v[c->n++].row = *row;
    return RL_OK;
}

static int cmp_sorted(const void *a, const void *b, void *ctx)
{
    const sorted *x = a, *y = b;
    int sort = *(const int *)ctx;
    int64_t vx = sort_value(&x->row, sort), vy = sort_value(&y->row, sort);
    if (vx != vy)
        return vx > vy ? -1 : 1; /* busiest first */
    return strcmp(x->key, y->key);
}

int rd_keys_list(rl_store *base, const char *match, int sort, size_t limit, rl_row_fn fn, void *ctx)
{
    rd_store *s = (rd_store *)base;
    collect c = { NULL, 0, 0, sort };
    size_t i;
    int rc;
    if (sort == RL_SORT_KEY) /* the index's own order: stream it */
        return each_key(s, NULL, match, limit, fn, ctx);
    rc = each_key(s, NULL, match, 0, collect_one, &c);
    if (rc == RL_ENOMEM)
        rc = rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
    if (rc == RL_OK && c.n) {
        qsort_r(c.v, c.n, sizeof *c.v, cmp_sorted, &sort);
        for (i = 0; i < c.n && (limit == 0 || i < limit) && rc == RL_OK; i++)
            rc = fn(ctx, c.v[i].key, &c.v[i].row);
    }
    for (i = 0; i < c.n; i++)
        free(c.v[i].key);
    free(c.v);
    return rc;
}

static int add_total(void *ctx, const char *key, const rl_row *row)
{
    rl_totals *t = ctx;
    (void)key;
    t->keys++;
    t->allowed += row->allowed;
    t->refused += row->refused;
    t->units += row->units;
    return RL_OK;
}

int rd_totals(rl_store *base, rl_totals *t)
{
    memset(t, 0, sizeof *t);
    return each_key((rd_store *)base, NULL, NULL, 0, add_total, t);
}

/* ---- import ------------------------------------------------------------------ */

int rd_state_clear(rl_store *base)
{
    rd_store *s = (rd_store *)base;
    int w = s->write, pl = s->pol_loaded, pd = s->pol_dirty, hv = s->have_pver;
    int64_t pv = s->pver;
    rl_policy keep = s->pol;
    s->pol_loaded = 0; /* keep the policy part of the transaction */
    rd_tx_reset(s);
    s->in_tx = 1;
    s->write = w;
    s->pol_loaded = pl;
    s->pol_dirty = pd;
    s->have_pver = hv;
    s->pver = pv;
    if (pl)
        s->pol = keep;
    s->clear = 1;
    return RL_OK;
}

/* ---- health ------------------------------------------------------------------ */

static const char *info_field(const char *info, const char *name, char *buf, size_t len)
{
    const char *p = strstr(info, name);
    size_t n = 0;
    buf[0] = 0;
    if (!p)
        return buf;
    p += strlen(name);
    while (p[n] && p[n] != '\r' && p[n] != '\n' && n + 1 < len)
        n++;
    memcpy(buf, p, n);
    buf[n] = 0;
    return buf;
}

int rd_doctor(rl_store *base, rl_check_fn fn, void *ctx)
{
    rd_store *s = (rd_store *)base;
    const char *info_argv[2] = { "INFO", "all" };
    redisReply *r = NULL;
    char ver[32], pol[48], aof[8], detail[RL_ERRMSG_MAX + 128];
    int rc = rd_cmd(s, &r, "INFO", 2, info_argv, NULL);
    if (rc != RL_OK) {
        snprintf(detail, sizeof detail, "%s", s->base.err);
        s->base.err[0] = 0;
        return fn(ctx, "store", RL_CHECK_FAIL, detail);
    }
    info_field(r->str ? r->str : "", "redis_version:", ver, sizeof ver);
    info_field(r->str ? r->str : "", "maxmemory_policy:", pol, sizeof pol);
    info_field(r->str ? r->str : "", "aof_enabled:", aof, sizeof aof);
    freeReplyObject(r);
    snprintf(detail, sizeof detail, "redis %s at %s, data format %d", ver, s->where, s->format);
    if ((rc = fn(ctx, "store", RL_CHECK_OK, detail)) != 0)
        return rc;
    if (strcmp(pol, "noeviction") != 0) {
        snprintf(detail, sizeof detail,
                 "maxmemory-policy is %s: under memory pressure Redis may evict buckets and "
                 "admit over the limit; use noeviction",
                 pol[0] ? pol : "unknown");
        rc = fn(ctx, "eviction", RL_CHECK_WARN, detail);
    } else {
        rc = fn(ctx, "eviction", RL_CHECK_OK, "maxmemory-policy noeviction");
    }
    if (rc != 0)
        return rc;
    if (strcmp(aof, "1") != 0)
        return fn(ctx, "persistence", RL_CHECK_WARN,
                  "appendonly is off: a Redis restart loses what was spent since the last "
                  "snapshot (if any), and tiers loaded since");
    return fn(ctx, "persistence", RL_CHECK_OK, "appendonly on");
}
