/*
 * mem.c - the in-process store behind ":memory:".
 *
 * Same semantics as the SQLite store for one process: a hash table of rows
 * and a policy. The handle's mutex already serialises every transaction, so
 * begin/commit have nothing to lock. Writes are applied in place; the core
 * writes rows only after every check of the transaction has passed (rl_import
 * validates the whole document first), so there is nothing for rollback to
 * undo. Only running out of memory half-way through a many-row write (an
 * import) could leave part of it applied.
 */
#include "store.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct mem_node {
    struct mem_node *next;
    rl_row row;
    char key[];
} mem_node;

typedef struct mem_store {
    rl_store base;
    mem_node **buckets;
    size_t nbuckets, nkeys;
    rl_policy pol;
    int64_t version;
    rl_lease_rec *leases; /* by id, ascending */
    size_t n_leases, cap_leases;
    int64_t next_lease;
} mem_store;

static uint64_t hash_key(const char *k)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ULL;
    return h;
}

static mem_node **find(mem_store *m, const char *key)
{
    mem_node **pp = &m->buckets[hash_key(key) & (m->nbuckets - 1)];
    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    return pp;
}

static int grow(mem_store *m)
{
    size_t nb = m->nbuckets * 2, i;
    mem_node **b = calloc(nb, sizeof *b);
    if (!b)
        return RL_ENOMEM;
    for (i = 0; i < m->nbuckets; i++) {
        mem_node *n = m->buckets[i], *next;
        for (; n; n = next) {
            size_t h = hash_key(n->key) & (nb - 1);
            next = n->next;
            n->next = b[h];
            b[h] = n;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
    return RL_OK;
}

static void mem_close(rl_store *s)
{
    mem_store *m = (mem_store *)s;
    size_t i;
    for (i = 0; i < m->nbuckets; i++) {
        mem_node *n = m->buckets[i], *next;
        for (; n; n = next) {
            next = n->next;
            free(n);
        }
    }
    free(m->buckets);
    rl_policy_free(&m->pol);
    free(m->leases);
    free(m);
}

static int mem_begin(rl_store *s, int write)
{
    (void)s;
    (void)write;
    return RL_OK;
}

static int mem_commit(rl_store *s)
{
    (void)s;
    return RL_OK;
}

static void mem_rollback(rl_store *s)
{
    (void)s;
}

static int mem_row_get(rl_store *s, const char *key, rl_row *row, int64_t *version)
{
    mem_store *m = (mem_store *)s;
    mem_node *n = *find(m, key);
    if (n) {
        *row = n->row;
    } else {
        memset(row, 0, offsetof(rl_row, state));
        row->state_len = 0;
        row->allowed = row->refused = row->units = row->first_seen = row->last_seen = 0;
    }
    *version = m->version;
    return RL_OK;
}

static int mem_row_put(rl_store *s, const char *key, const rl_row *row)
{
    mem_store *m = (mem_store *)s;
    mem_node **pp = find(m, key), *n = *pp;
    if (!n) {
        size_t len = strlen(key) + 1;
        if (m->nkeys >= m->nbuckets && grow(m) == RL_OK)
            pp = find(m, key);
        if (!(n = malloc(sizeof *n + len)))
            return rl_seterr(s->err, RL_ENOMEM, "out of memory");
        memcpy(n->key, key, len);
        n->next = NULL;
        *pp = n;
        m->nkeys++;
    }
    n->row = *row;
    n->row.exists = 1;
    return RL_OK;
}

static int mem_row_delete(rl_store *s, const char *key)
{
    mem_store *m = (mem_store *)s;
    mem_node **pp = find(m, key), *n = *pp;
    if (n) {
        *pp = n->next;
        free(n);
        m->nkeys--;
    }
    return RL_OK;
}

static int mem_policy_version(rl_store *s, int64_t *version)
{
    *version = ((mem_store *)s)->version;
    return RL_OK;
}

static int mem_policy_get(rl_store *s, rl_policy *p)
{
    mem_store *m = (mem_store *)s;
    int rc = rl_policy_copy(p, &m->pol);
    if (rc != RL_OK)
        return rl_seterr(s->err, rc, "out of memory");
    p->version = m->version;
    return RL_OK;
}

static int mem_policy_put(rl_store *s, const rl_policy *p)
{
    mem_store *m = (mem_store *)s;
    rl_policy copy;
    if (rl_policy_copy(&copy, p) != RL_OK)
        return rl_seterr(s->err, RL_ENOMEM, "out of memory");
    rl_policy_free(&m->pol);
    m->pol = copy;
    m->version++;
    return RL_OK;
}

static int mem_tier_put(rl_store *s, const rl_tier *t)
{
    mem_store *m = (mem_store *)s;
    if (rl_policy_put_tier(&m->pol, t) != RL_OK)
        return rl_seterr(s->err, RL_ENOMEM, "out of memory");
    m->version++;
    return RL_OK;
}

static int mem_tier_delete(rl_store *s, const char *name)
{
    mem_store *m = (mem_store *)s;
    if (rl_policy_del_tier(&m->pol, name) != RL_OK)
        return rl_seterr(s->err, RL_ENOTFOUND, "no such tier: '%s'", name);
    m->version++;
    return RL_OK;
}

static int64_t sort_value(const mem_node *n, int sort)
{
    switch (sort) {
    case RL_SORT_ALLOWED:
        return n->row.allowed;
    case RL_SORT_REFUSED:
        return n->row.refused;
    case RL_SORT_LAST_SEEN:
        return n->row.last_seen;
    default:
        return 0;
    }
}

static int cmp_nodes(const void *a, const void *b, void *ctx)
{
    const mem_node *x = *(mem_node *const *)a, *y = *(mem_node *const *)b;
    int sort = *(const int *)ctx;
    int64_t vx = sort_value(x, sort), vy = sort_value(y, sort);
    if (vx != vy)
        return vx > vy ? -1 : 1; /* busiest first */
    return strcmp(x->key, y->key);
}

static int mem_keys_list(rl_store *s, const char *match, int sort, size_t limit, rl_row_fn fn,
                         void *ctx)
{
    mem_store *m = (mem_store *)s;
    mem_node **all = malloc((m->nkeys + 1) * sizeof *all);
    size_t i, n = 0;
    int rc = RL_OK;
    if (!all)
        return rl_seterr(s->err, RL_ENOMEM, "out of memory");
    for (i = 0; i < m->nbuckets; i++) {
        mem_node *nd;
        for (nd = m->buckets[i]; nd; nd = nd->next)
            if (!match || rl_glob_match(match, nd->key))
                all[n++] = nd;
    }
    qsort_r(all, n, sizeof *all, cmp_nodes, &sort);
    for (i = 0; i < n && (limit == 0 || i < limit) && rc == 0; i++)
        rc = fn(ctx, all[i]->key, &all[i]->row);
    free(all);
    return rc;
}

static int mem_totals(rl_store *s, rl_totals *t)
{
    mem_store *m = (mem_store *)s;
    size_t i;
    memset(t, 0, sizeof *t);
    for (i = 0; i < m->nbuckets; i++) {
        mem_node *n;
        for (n = m->buckets[i]; n; n = n->next) {
            t->keys++;
            t->allowed += n->row.allowed;
            t->refused += n->row.refused;
            t->units += n->row.units;
        }
    }
    return RL_OK;
}

static rl_lease_rec *find_lease(mem_store *m, int64_t id)
{
    size_t i;
    for (i = 0; i < m->n_leases; i++)
        if (m->leases[i].id == id)
            return &m->leases[i];
    return NULL;
}

static int mem_lease_put(rl_store *s, rl_lease_rec *rec)
{
    mem_store *m = (mem_store *)s;
    if (m->n_leases == m->cap_leases) {
        size_t cap = m->cap_leases ? m->cap_leases * 2 : 16;
        rl_lease_rec *nl = realloc(m->leases, cap * sizeof *nl);
        if (!nl)
            return rl_seterr(s->err, RL_ENOMEM, "out of memory");
        m->leases = nl;
        m->cap_leases = cap;
    }
    rec->id = ++m->next_lease;
    m->leases[m->n_leases++] = *rec;
    return RL_OK;
}

static int mem_lease_get(rl_store *s, int64_t id, rl_lease_rec *rec)
{
    rl_lease_rec *l = find_lease((mem_store *)s, id);
    if (!l)
        return rl_seterr(s->err, RL_ENOTFOUND,
                         "lease %lld not found: settled, cancelled or reclaimed", (long long)id);
    *rec = *l;
    return RL_OK;
}

static int mem_lease_delete(rl_store *s, const char *key, int64_t id)
{
    mem_store *m = (mem_store *)s;
    rl_lease_rec *l = find_lease(m, id);
    if (l && strcmp(l->key, key) == 0) {
        memmove(l, l + 1, (size_t)(m->leases + m->n_leases - (l + 1)) * sizeof *l);
        m->n_leases--;
    }
    return RL_OK;
}

static int mem_leases_each(rl_store *s, const char *key, rl_lease_fn fn, void *ctx)
{
    mem_store *m = (mem_store *)s;
    rl_lease_rec rec;
    int64_t after = 0;
    int rc = RL_OK;
    /* by id, re-finding each time: fn may delete the lease it is given */
    for (;;) {
        size_t i;
        rl_lease_rec *next = NULL;
        for (i = 0; i < m->n_leases; i++)
            if (m->leases[i].id > after && (!key || strcmp(m->leases[i].key, key) == 0) &&
                (!next || m->leases[i].id < next->id))
                next = &m->leases[i];
        if (!next)
            return rc;
        rec = *next;
        after = rec.id;
        if ((rc = fn(ctx, &rec)) != 0)
            return rc;
    }
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp((*(mem_node *const *)a)->key, (*(mem_node *const *)b)->key);
}

/* A page costs a pass over every key (this store has no order): fine for
 * the in-process store of tests and small programs. */
static int mem_keys_page(rl_store *s, const char *after, const char *match, size_t limit,
                         rl_row_fn fn, void *ctx)
{
    mem_store *m = (mem_store *)s;
    mem_node **all = malloc((m->nkeys + 1) * sizeof *all);
    size_t i, n = 0;
    int rc = RL_OK;
    if (!all)
        return rl_seterr(s->err, RL_ENOMEM, "out of memory");
    for (i = 0; i < m->nbuckets; i++) {
        mem_node *nd;
        for (nd = m->buckets[i]; nd; nd = nd->next)
            if ((!after || strcmp(nd->key, after) > 0) && (!match || rl_glob_match(match, nd->key)))
                all[n++] = nd;
    }
    qsort(all, n, sizeof *all, cmp_keys);
    for (i = 0; i < n && (limit == 0 || i < limit) && rc == 0; i++)
        rc = fn(ctx, all[i]->key, &all[i]->row);
    free(all);
    return rc;
}

static int mem_state_clear(rl_store *s)
{
    mem_store *m = (mem_store *)s;
    size_t i;
    for (i = 0; i < m->nbuckets; i++) {
        mem_node *n = m->buckets[i], *next;
        for (; n; n = next) {
            next = n->next;
            free(n);
        }
        m->buckets[i] = NULL;
    }
    m->nkeys = 0;
    m->n_leases = 0;
    return RL_OK;
}

static int mem_lease_restore(rl_store *s, const rl_lease_rec *rec)
{
    mem_store *m = (mem_store *)s;
    size_t i;
    if (find_lease(m, rec->id))
        return rl_seterr(s->err, RL_EINVAL, "lease %lld exists already", (long long)rec->id);
    if (m->n_leases == m->cap_leases) {
        size_t cap = m->cap_leases ? m->cap_leases * 2 : 16;
        rl_lease_rec *nl = realloc(m->leases, cap * sizeof *nl);
        if (!nl)
            return rl_seterr(s->err, RL_ENOMEM, "out of memory");
        m->leases = nl;
        m->cap_leases = cap;
    }
    /* kept in id order, and ids never reused: next_lease stays above */
    for (i = m->n_leases; i > 0 && m->leases[i - 1].id > rec->id; i--)
        m->leases[i] = m->leases[i - 1];
    m->leases[i] = *rec;
    m->n_leases++;
    if (m->next_lease < rec->id)
        m->next_lease = rec->id;
    return RL_OK;
}

static int mem_doctor(rl_store *s, rl_check_fn fn, void *ctx)
{
    (void)s;
    return fn(ctx, "store", RL_CHECK_OK, "in-process memory store: nothing on disk to check");
}

/* No now (the local clock serves), prefetch (rows are in memory) or
 * group commit (one process: the handle's mutex serialises it). */
static const rl_store_ops mem_ops = {
    .name = "memory",
    .close = mem_close,
    .begin = mem_begin,
    .commit = mem_commit,
    .rollback = mem_rollback,
    .row_get = mem_row_get,
    .row_put = mem_row_put,
    .row_delete = mem_row_delete,
    .policy_version = mem_policy_version,
    .policy_get = mem_policy_get,
    .policy_put = mem_policy_put,
    .tier_put = mem_tier_put,
    .tier_delete = mem_tier_delete,
    .keys_list = mem_keys_list,
    .totals = mem_totals,
    .lease_put = mem_lease_put,
    .lease_get = mem_lease_get,
    .lease_delete = mem_lease_delete,
    .leases_each = mem_leases_each,
    .keys_page = mem_keys_page,
    .state_clear = mem_state_clear,
    .lease_restore = mem_lease_restore,
    .doctor = mem_doctor,
};

int rl_store_mem_open(rl_store **out, const char *path, const rl_store_config *c, char *err)
{
    mem_store *m = calloc(1, sizeof *m);
    (void)path; /* ":memory:": every handle has a store of its own */
    (void)c;
    *out = NULL;
    if (!m)
        return rl_seterr(err, RL_ENOMEM, "out of memory");
    m->base.ops = &mem_ops;
    m->base.err = err;
    m->nbuckets = 64;
    rl_policy_init(&m->pol);
    if (!(m->buckets = calloc(m->nbuckets, sizeof *m->buckets))) {
        free(m);
        return rl_seterr(err, RL_ENOMEM, "out of memory");
    }
    m->version = 1;
    *out = &m->base;
    return RL_OK;
}
