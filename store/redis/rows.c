/*
 * rows.c - the Redis store's reads: the transaction's cache of rows, the
 * row and policy operations on it, and the server's clock.
 *
 * Guarantees:
 *   - every key of a decision is read in one round trip (pipelined), with
 *     the policy version and the server's TIME when the transaction has not
 *     read them yet; a key is read at most once per transaction;
 *   - writes stay in the cache until commit (commit.c), which checks every
 *     version read here;
 *   - a value that is not rl's (a foreign hash, a damaged row or lease) is
 *     RL_ECORRUPT, never read past its end;
 *   - inside a transaction, its reads and its clock are one moment.
 */
#include "rd.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the transaction's cache ------------------------------------------------- */

void rd_row_free(rd_row *w)
{
    if (w) {
        free(w->leases);
        free(w->gone);
        free(w);
    }
}

void rd_tx_reset(rd_store *s)
{
    size_t i;
    for (i = 0; i < s->n_rows; i++)
        rd_row_free(s->rows[i]);
    s->n_rows = 0;
    s->in_tx = s->write = s->clear = s->replay = 0;
    s->fl_want = s->fl_used = 0;
    s->fl_id = 0;
    s->fl_len = 0;
    s->have_pver = s->have_time = s->pol_dirty = 0;
    if (s->pol_loaded)
        rl_policy_free(&s->pol);
    s->pol_loaded = 0;
}

rd_row *rd_cached(rd_store *s, const char *key)
{
    size_t i;
    for (i = 0; i < s->n_rows; i++)
        if (strcmp(s->rows[i]->key, key) == 0)
            return s->rows[i];
    return NULL;
}

/* Room for one more element in an array that doubles: returns the array
 * (moved, if it had to grow) and updates *cap, or NULL when out of memory,
 * leaving the old array and *cap as they were. */
void *rd_room(void *v, size_t n, size_t *cap, size_t size, size_t first)
{
    size_t nc;
    void *nv;
    if (n < *cap)
        return v;
    nc = *cap ? *cap * 2 : first;
    if (!(nv = realloc(v, nc * size)))
        return NULL;
    *cap = nc;
    return nv;
}

/* Adds w to the transaction's rows (it owns it then); 0 on success. */
int rd_push_row(rd_store *s, rd_row *w)
{
    rd_row **nr = rd_room(s->rows, s->n_rows, &s->cap_rows, sizeof *nr, 8);
    if (!nr)
        return -1;
    s->rows = nr;
    s->rows[s->n_rows++] = w;
    return 0;
}

static rd_row *new_row(rd_store *s, const char *key)
{
    rd_row *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    snprintf(w->key, sizeof w->key, "%s", key);
    if (rd_push_row(s, w) != 0) {
        free(w);
        return NULL;
    }
    return w;
}

int rd_add_lease(rd_row *w, const rl_lease_rec *rec, const unsigned char *raw, size_t len)
{
    rd_lease *nl = rd_room(w->leases, w->n_leases, &w->cap_leases, sizeof *nl, 4);
    if (!nl)
        return RL_ENOMEM;
    w->leases = nl;
    w->leases[w->n_leases].rec = *rec;
    memcpy(w->leases[w->n_leases].raw, raw, len);
    w->leases[w->n_leases].raw_len = len;
    w->n_leases++;
    return RL_OK;
}

/* Fills w from an HGETALL reply. */
int rd_parse_hash(rd_store *s, rd_row *w, const redisReply *r)
{
    size_t i;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return rl_seterr(s->base.err, RL_ECORRUPT, "redis %s: key '%.64s' is not an rl hash",
                         s->where, w->key);
    for (i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || !f->str || !v->str)
            continue;
        if (!strcmp(f->str, "v")) {
            snprintf(w->ver, sizeof w->ver, "%.*s", (int)(v->len < 20 ? v->len : 20), v->str);
        } else if (!strcmp(f->str, "r")) {
            if (rd_row_decode(&w->row, (const unsigned char *)v->str, v->len) != RL_OK)
                goto corrupt;
        } else if (!strncmp(f->str, "l:", 2)) {
            rl_lease_rec rec;
            char *end;
            memset(&rec, 0, sizeof rec);
            rec.id = strtoll(f->str + 2, &end, 10);
            if (*end || rec.id <= 0 || v->len > RD_LEASE_MAX ||
                rd_lease_decode(&rec, s->host_id, (const unsigned char *)v->str, v->len) != RL_OK)
                goto corrupt;
            snprintf(rec.key, sizeof rec.key, "%s", w->key);
            if (rd_add_lease(w, &rec, (const unsigned char *)v->str, v->len) != RL_OK)
                return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
        }
    }
    if (!w->ver[0] && (w->row.exists || w->n_leases)) /* a lone claim (q) is no row */
        goto corrupt;
    return RL_OK;
corrupt:
    return rl_seterr(s->base.err, RL_ECORRUPT, "redis %s: key '%.64s': damaged record", s->where,
                     w->key);
}

/* Reads every key of keys[] not yet in the cache, with the policy version
 * and the server time if this transaction has not read them: one round
 * trip. */
int rd_load(rd_store *s, const char *const *keys, size_t n)
{
    size_t i, m = 0, extra = 0, total = 0, cap = n + 2;
    int *argc = NULL, rc = RL_OK;
    const char ***argv = NULL;
    redisReply **rep = NULL;
    char(*names)[RD_NAME_MAX] = NULL, pname[RD_NAME_MAX];
    const char *(*args)[3] = NULL;
    size_t *need = NULL;
    static const char *time_argv[1] = { "TIME" };

    argc = calloc(cap, sizeof *argc);
    argv = calloc(cap, sizeof *argv);
    rep = calloc(cap, sizeof *rep);
    names = calloc(n ? n : 1, sizeof *names);
    args = calloc(cap, sizeof *args);
    need = calloc(n ? n : 1, sizeof *need);
    if (!argc || !argv || !rep || !names || !args || !need) {
        rc = rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
        goto out;
    }
    if (!s->have_pver) {
        rd_name_of(s, "policy", pname);
        args[m][0] = "HGET";
        args[m][1] = pname;
        args[m][2] = "v";
        argc[m] = 3;
        argv[m] = args[m];
        m++;
    }
    if (!s->have_time) {
        argc[m] = 1;
        argv[m] = time_argv;
        m++;
    }
    extra = m;
    for (i = 0; i < n; i++) {
        rd_row *w;
        size_t j;
        if (rd_cached(s, keys[i]))
            continue;
        for (j = 0; j < i; j++) /* the same key twice in one call */
            if (!strcmp(keys[j], keys[i]))
                break;
        if (j < i)
            continue;
        if (!(w = new_row(s, keys[i]))) {
            rc = rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
            goto out;
        }
        if (s->clear) { /* everything was cleared: absent, written blind */
            snprintf(w->ver, sizeof w->ver, "*");
            continue;
        }
        rd_row_name(s, keys[i], names[i]);
        args[m][0] = "HGETALL";
        args[m][1] = names[i];
        argc[m] = 2;
        argv[m] = args[m];
        need[m - extra] = s->n_rows - 1;
        m++;
    }
    if (m == 0)
        goto out;
    if ((rc = rd_pipeline(s, m, argc, argv, NULL, rep, "read")) != RL_OK)
        goto out;
    total = m;
    m = 0;
    if (!s->have_pver) {
        s->pver = rep[m]->type == REDIS_REPLY_STRING ? strtoll(rep[m]->str, NULL, 10) : 0;
        s->have_pver = 1;
        m++;
    }
    if (!s->have_time) {
        const redisReply *t = rep[m];
        if (t->type == REDIS_REPLY_ARRAY && t->elements == 2 && t->element[0]->str &&
            t->element[1]->str) {
            s->time_ns = strtoll(t->element[0]->str, NULL, 10) * RL_SECOND +
                         strtoll(t->element[1]->str, NULL, 10) * 1000;
            s->have_time = 1;
        }
        m++;
    }
    for (i = extra; i < total; i++)
        if ((rc = rd_parse_hash(s, s->rows[need[i - extra]], rep[i])) != RL_OK)
            goto out;
out:
    if (rep)
        for (i = 0; i < cap; i++)
            freeReplyObject(rep[i]);
    free(argc);
    free(argv);
    free(rep);
    free(names);
    free(args);
    free(need);
    return rc;
}

int rd_row_of(rd_store *s, const char *key, rd_row **out)
{
    int rc;
    if ((*out = rd_cached(s, key)))
        return RL_OK;
    if ((rc = rd_load(s, &key, 1)) != RL_OK)
        return rc;
    *out = rd_cached(s, key);
    return RL_OK;
}

/* ---- rows ---------------------------------------------------------------------- */

int rd_row_get(rl_store *base, const char *key, rl_row *row, int64_t *version)
{
    rd_store *s = (rd_store *)base;
    rd_row *w;
    int rc = rd_row_of(s, key, &w);
    if (rc != RL_OK)
        return rc;
    *row = w->row;
    if (!row->exists) {
        row->tier[0] = 0;
        row->state_len = 0;
        row->allowed = row->refused = row->units = row->first_seen = row->last_seen = 0;
    }
    *version = s->pver;
    return RL_OK;
}

int rd_row_put(rl_store *base, const char *key, const rl_row *row)
{
    rd_store *s = (rd_store *)base;
    rd_row *w;
    int rc = rd_row_of(s, key, &w);
    if (rc != RL_OK)
        return rc;
    w->row = *row;
    w->row.exists = 1;
    w->dirty = 1;
    return RL_OK;
}

int rd_row_delete(rl_store *base, const char *key)
{
    rd_store *s = (rd_store *)base;
    rd_row *w;
    int rc = rd_row_of(s, key, &w);
    if (rc != RL_OK)
        return rc;
    w->row.exists = 0;
    w->dirty = 1;
    return RL_OK;
}

/* ---- the policy ---------------------------------------------------------------- */

static int read_policy(rd_store *s, rl_policy *p, int64_t *version)
{
    char name[RD_NAME_MAX];
    const char *argv[4] = { "HMGET", name, "v", "b" };
    redisReply *r = NULL;
    int rc;
    *version = 0;
    rd_name_of(s, "policy", name);
    if ((rc = rd_cmd(s, &r, "read the policy", 4, argv, NULL)) != RL_OK)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        rc = rl_seterr(s->base.err, RL_ESTORE, "redis %s: HMGET: unexpected reply", s->where);
        goto out;
    }
    *version =
        r->element[0]->type == REDIS_REPLY_STRING ? strtoll(r->element[0]->str, NULL, 10) : 0;
    if (r->element[1]->type == REDIS_REPLY_STRING &&
        (rc = rd_policy_decode(p, (const unsigned char *)r->element[1]->str, r->element[1]->len)) !=
            RL_OK)
        rc = rl_seterr(s->base.err, rc,
                       rc == RL_ENOMEM ? "out of memory"
                                       : "redis %s: %s holds a damaged policy "
                                         "(loading a whole one replaces it)",
                       s->where, name);
out:
    freeReplyObject(r);
    return rc;
}

int rd_policy_version(rl_store *base, int64_t *version)
{
    rd_store *s = (rd_store *)base;
    char name[RD_NAME_MAX];
    const char *argv[3] = { "HGET", name, "v" };
    redisReply *r = NULL;
    int rc;
    if (s->have_pver) {
        *version = s->pver;
        return RL_OK;
    }
    rd_name_of(s, "policy", name);
    if ((rc = rd_cmd(s, &r, "read the policy version", 3, argv, NULL)) != RL_OK)
        return rc;
    *version = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    freeReplyObject(r);
    s->pver = *version;
    s->have_pver = 1;
    return RL_OK;
}

int rd_policy_get(rl_store *base, rl_policy *p)
{
    rd_store *s = (rd_store *)base;
    int64_t v;
    int rc;
    if (s->pol_loaded) {
        if (rl_policy_copy(p, &s->pol) != RL_OK)
            return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
        p->version = s->pver;
        return RL_OK;
    }
    if ((rc = read_policy(s, p, &v)) != RL_OK)
        return rc;
    p->version = v;
    if (!s->have_pver) {
        s->pver = v;
        s->have_pver = 1;
    }
    return RL_OK;
}

/* The transaction's own copy of the policy, to change and write at commit. */
static int tx_policy(rd_store *s)
{
    rl_policy p;
    int rc;
    if (s->pol_loaded)
        return RL_OK;
    rl_policy_init(&p);
    if ((rc = read_policy(s, &p, &s->pver)) != RL_OK) {
        rl_policy_free(&p);
        return rc;
    }
    s->have_pver = 1;
    s->pol = p;
    s->pol_loaded = 1;
    return RL_OK;
}

/* A whole new policy: the stored one is not read (only its version, which
 * the commit checks), so a damaged one is replaced rather than refused. */
int rd_policy_put(rl_store *base, const rl_policy *p)
{
    rd_store *s = (rd_store *)base;
    rl_policy copy;
    int64_t version;
    int rc = rd_policy_version(base, &version);
    if (rc != RL_OK)
        return rc;
    if (rl_policy_copy(&copy, p) != RL_OK)
        return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
    if (s->pol_loaded)
        rl_policy_free(&s->pol);
    s->pol = copy;
    s->pol_loaded = 1;
    s->pol_dirty = 1;
    return RL_OK;
}

int rd_tier_put(rl_store *base, const rl_tier *t)
{
    rd_store *s = (rd_store *)base;
    int rc = tx_policy(s);
    if (rc != RL_OK)
        return rc;
    if (rl_policy_put_tier(&s->pol, t) != RL_OK)
        return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
    s->pol_dirty = 1;
    return RL_OK;
}

int rd_tier_delete(rl_store *base, const char *name)
{
    rd_store *s = (rd_store *)base;
    int rc = tx_policy(s);
    if (rc != RL_OK)
        return rc;
    if (rl_policy_del_tier(&s->pol, name) != RL_OK)
        return rl_seterr(s->base.err, RL_ENOTFOUND, "no such tier: '%s'", name);
    s->pol_dirty = 1;
    return RL_OK;
}

/* ---- the clock ------------------------------------------------------------------ */

int rd_now(rl_store *base, int64_t *ns)
{
    rd_store *s = (rd_store *)base;
    const char *argv[1] = { "TIME" };
    redisReply *r = NULL;
    int rc;
    if (s->have_time) {
        *ns = s->time_ns;
        return RL_OK;
    }
    if ((rc = rd_cmd(s, &r, "TIME", 1, argv, NULL)) != RL_OK)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !r->element[0]->str ||
        !r->element[1]->str) {
        freeReplyObject(r);
        return rl_seterr(s->base.err, RL_ESTORE, "redis %s: TIME: unexpected reply", s->where);
    }
    s->time_ns = strtoll(r->element[0]->str, NULL, 10) * RL_SECOND +
                 strtoll(r->element[1]->str, NULL, 10) * 1000;
    freeReplyObject(r);
    /* inside a transaction, its reads and its clock are one moment */
    s->have_time = s->in_tx;
    *ns = s->time_ns;
    return RL_OK;
}

int rd_prefetch(rl_store *base, const char *const *keys, size_t n)
{
    return rd_load((rd_store *)base, keys, n);
}
