/*
 * leases.c - the Redis store's leases: fields l:ID of their key's hash,
 * numbered by one counter (PREFIX "lease_seq"), found by id through one
 * hash (PREFIX "leases": id -> key).
 *
 * Guarantees: a lease is written and deleted with its key's row, in the
 * same commit, so a lease and the in-flight units it holds never part;
 * leases are listed oldest first; deleting a lease that is gone is no
 * error; an imported owner is taken to be on this host, as the SQLite
 * store does.
 */
#include "rd.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rd_lease_put(rl_store *base, rl_lease_rec *rec)
{
    rd_store *s = (rd_store *)base;
    char name[RD_NAME_MAX];
    const char *argv[2] = { "INCR", name };
    unsigned char raw[RD_LEASE_MAX];
    redisReply *r = NULL;
    rd_row *w;
    int rc;
    if ((rc = rd_row_of(s, rec->key, &w)) != RL_OK)
        return rc;
    if (s->replay) { /* a lease begin the decision script made: its id (fast.c) */
        if (!s->fl_want || s->fl_id <= 0 || s->fl_used)
            return rl_seterr(s->base.err, RL_ESTORE,
                             "redis %s: key '%.64s': the server decided otherwise than the "
                             "library (a bug in rl: please report it)",
                             s->where, rec->key);
        rec->id = s->fl_id;
        s->fl_used = 1;
    } else {
        rd_name_of(s, "lease_seq", name);
        if ((rc = rd_cmd(s, &r, "number a lease", 2, argv, NULL)) != RL_OK)
            return rc;
        rec->id = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        freeReplyObject(r);
        if (rec->id <= 0)
            return rl_seterr(s->base.err, RL_ESTORE, "redis %s: INCR: unexpected reply", s->where);
    }
    if (rd_add_lease(w, rec, raw, rd_lease_encode(rec, s->host_id, raw)) != RL_OK)
        return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
    w->dirty = 1;
    return RL_OK;
}

/* The cached row and index of lease id, reading its key if need be. */
static int find_lease(rd_store *s, int64_t id, rd_row **row, size_t *at)
{
    char name[RD_NAME_MAX], ids[24];
    const char *argv[3] = { "HGET", name, ids };
    redisReply *r = NULL;
    size_t i, j;
    int rc;
    for (i = 0; i < s->n_rows; i++)
        for (j = 0; j < s->rows[i]->n_leases; j++)
            if (s->rows[i]->leases[j].rec.id == id) {
                *row = s->rows[i];
                *at = j;
                return RL_OK;
            }
    if (!s->clear) {
        rd_name_of(s, "leases", name);
        snprintf(ids, sizeof ids, "%" PRId64, id);
        if ((rc = rd_cmd(s, &r, "find a lease", 3, argv, NULL)) != RL_OK)
            return rc;
        if (r->type == REDIS_REPLY_STRING && r->len <= RL_KEY_MAX && !rd_cached(s, r->str)) {
            rd_row *w;
            rc = rd_row_of(s, r->str, &w);
            freeReplyObject(r);
            if (rc != RL_OK)
                return rc;
            for (j = 0; j < w->n_leases; j++)
                if (w->leases[j].rec.id == id) {
                    *row = w;
                    *at = j;
                    return RL_OK;
                }
        } else {
            freeReplyObject(r);
        }
    }
    return rl_seterr(s->base.err, RL_ENOTFOUND,
                     "lease %lld not found: settled, cancelled or reclaimed", (long long)id);
}

int rd_lease_get(rl_store *base, int64_t id, rl_lease_rec *rec)
{
    rd_row *w;
    size_t at;
    int rc = find_lease((rd_store *)base, id, &w, &at);
    if (rc == RL_OK)
        *rec = w->leases[at].rec;
    return rc;
}

int rd_lease_delete(rl_store *base, const char *key, int64_t id)
{
    (void)key; /* the id finds it */
    rd_store *s = (rd_store *)base;
    rd_row *w;
    int64_t *ng;
    size_t at;
    int rc = find_lease(s, id, &w, &at);
    if (rc == RL_ENOTFOUND) {
        s->base.err[0] = 0;
        return RL_OK;
    }
    if (rc != RL_OK)
        return rc;
    if (!(ng = rd_room(w->gone, w->n_gone, &w->cap_gone, sizeof *ng, 4)))
        return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
    w->gone = ng;
    w->gone[w->n_gone++] = id;
    memmove(&w->leases[at], &w->leases[at + 1], (w->n_leases - at - 1) * sizeof *w->leases);
    w->n_leases--;
    w->dirty = 1;
    return RL_OK;
}

static int cmp_lease(const void *a, const void *b)
{
    const rl_lease_rec *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* Every lease of the given keys' rows, by id; fn may delete the lease it is
 * given, so it sees copies. */
static int leases_of(rd_store *s, const char *const *keys, size_t n, rl_lease_fn fn, void *ctx)
{
    rl_lease_rec *all = NULL;
    size_t i, j, m = 0, cap = 0;
    int rc;
    if ((rc = rd_load(s, keys, n)) != RL_OK)
        return rc;
    for (i = 0; i < n; i++) {
        rd_row *w = rd_cached(s, keys[i]);
        for (j = 0; w && j < w->n_leases; j++) {
            rl_lease_rec *na = rd_room(all, m, &cap, sizeof *na, 16);
            if (!na) {
                free(all);
                return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
            }
            all = na;
            all[m++] = w->leases[j].rec;
        }
    }
    if (m)
        qsort(all, m, sizeof *all, cmp_lease);
    for (i = 0, rc = RL_OK; i < m && rc == RL_OK; i++)
        rc = fn(ctx, &all[i]);
    free(all);
    return rc;
}

int rd_leases_each(rl_store *base, const char *key, rl_lease_fn fn, void *ctx)
{
    rd_store *s = (rd_store *)base;
    char name[RD_NAME_MAX];
    const char *argv[2] = { "HVALS", name };
    const char **keys = NULL;
    redisReply *r = NULL;
    size_t i, n = 0;
    int rc, own_tx = !s->in_tx;
    if (key)
        return leases_of(s, &key, 1, fn, ctx);
    rd_name_of(s, "leases", name);
    if ((rc = rd_cmd(s, &r, "list leases", 2, argv, NULL)) != RL_OK)
        return rc;
    if (r->type == REDIS_REPLY_ARRAY && r->elements &&
        !(keys = malloc(r->elements * sizeof *keys))) {
        rc = rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        size_t j;
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING || e->len > RL_KEY_MAX)
            continue;
        for (j = 0; j < n && strcmp(keys[j], e->str) != 0; j++)
            ;
        if (j == n)
            keys[n++] = e->str;
    }
    rc = leases_of(s, keys, n, fn, ctx);
    if (own_tx) /* reading outside a transaction caches nothing */
        rd_tx_reset(s);
out:
    free(keys);
    freeReplyObject(r);
    return rc;
}

/* ---- import ------------------------------------------------------------------ */

int rd_lease_restore(rl_store *base, const rl_lease_rec *rec)
{
    rd_store *s = (rd_store *)base;
    unsigned char raw[RD_LEASE_MAX];
    rd_row *w;
    size_t at;
    int rc;
    if (find_lease(s, rec->id, &w, &at) == RL_OK)
        return rl_seterr(s->base.err, RL_EINVAL, "lease %lld exists already", (long long)rec->id);
    s->base.err[0] = 0;
    if ((rc = rd_row_of(s, rec->key, &w)) != RL_OK)
        return rc;
    /* as the SQLite store does, an imported owner is taken to be local */
    if (rd_add_lease(w, rec, raw, rd_lease_encode(rec, s->host_id, raw)) != RL_OK)
        return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
    w->dirty = 1;
    return RL_OK;
}
