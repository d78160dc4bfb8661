/*
 * export.c - rl_export: the whole state of a database as one JSON document,
 * for moving and backing up databases (rlctl export). import.c reads it back.
 *
 * Guarantees:
 *   - rl_export streams from one read transaction, one key at a time: the
 *     document is a consistent snapshot, taken while deciders write on, and
 *     is never gathered in memory;
 *   - the store is never written: the transaction is always rolled back;
 *   - JSON is written by SQLite's JSON functions on a private in-memory
 *     connection (jdb.h), never by hand: every value is bound as a
 *     parameter, never pasted into SQL. Only the fixed frame of the
 *     document (its section names and brackets) is constant text, so that
 *     keys can stream without being gathered into one value first;
 *   - a non-zero return of the caller's write callback stops the export
 *     and is what rl_export returns.
 */
#include "jdb.h"
#include "rl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the statements that build the document ------------------------------ */

enum { J_SLOT, J_APPEND, J_KEY, J_LIMIT, J_TIER, J_RULE, J_COST, J_HELD, J_LEASE, J_HEAD, J_COUNT };

static const char *const jsql[J_COUNT] = {
    [J_SLOT] = "SELECT json_object('kind', ?1, 'id', ?2, 'count', ?3, 'period_ns', ?4,"
               " 'burst', ?5, 'tat', ?6, 'rem', ?7)",
    [J_APPEND] = "SELECT json_insert(?1, '$[#]', json(?2))",
    [J_KEY] = "SELECT json_object('key', ?1, 'tier', ?2, 'allowed', ?3, 'refused', ?4,"
              " 'units', ?5, 'first_seen_ns', ?6, 'last_seen_ns', ?7, 'slots', json(?8))",
    [J_LIMIT] = "SELECT json_object('name', ?1, 'resource', ?2, 'kind', ?3, 'count', ?4,"
                " 'period_ns', ?5, 'burst', ?6)",
    [J_TIER] = "SELECT json_object('name', ?1, 'unlimited', json(?2), 'limits', json(?3))",
    [J_RULE] = "SELECT json_object('match', ?1, 'tier', ?2)",
    [J_COST] = "SELECT json_object('resource', ?1, 'amount', ?2)",
    [J_HELD] = "SELECT json_object('id', ?1, 'amount', ?2)",
    [J_LEASE] = "SELECT json_object('id', ?1, 'key', ?2, 'created_ns', ?3, 'expires_ns', ?4,"
                " 'pid', ?5, 'pstart', ?6, 'estimate', json(?7), 'held', json(?8))",
    [J_HEAD] = "SELECT json_object('format', 'rl-export', 'version', 1, 'library', ?1,"
               " 'exported_at_ns', ?2, 'settings', json_object('default_tier', ?3,"
               " 'fail_mode', ?4))",
};
_Static_assert(J_COUNT <= RL_EXPORT_JDB_MAX, "export: more statements than jdb holds");

/* ---- writing the document ------------------------------------------------ */

typedef struct jbuf {
    char *p;
    size_t len, cap;
} jbuf;

static int jbuf_set(jbuf *b, const unsigned char *s, size_t len)
{
    if (len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *np;
        while (cap < len + 1)
            cap *= 2;
        if (!(np = realloc(b->p, cap)))
            return RL_ENOMEM;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p, s, len);
    b->p[len] = 0;
    b->len = len;
    return RL_OK;
}

typedef struct exporter {
    rl__export_jdb j;
    rl *r;
    rl_store *s;
    int (*write)(void *ctx, const char *buf, size_t len);
    void *ctx;
    int stop;      /* write's non-zero return */
    int nelem;     /* elements written in the current section */
    jbuf obj, arr; /* the value just built; an inner array being built */
} exporter;

static int emit(exporter *e, const char *buf, size_t len)
{
    if (e->stop)
        return e->stop;
    if ((e->stop = e->write(e->ctx, buf, len)) != 0)
        return e->stop;
    return RL_OK;
}

/* Steps a statement that builds one JSON value and keeps it in b. */
static int jvalue(exporter *e, sqlite3_stmt *q, jbuf *b)
{
    int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW)
        return rl__export_fail(&e->j, "JSON writer");
    if (jbuf_set(b, sqlite3_column_text(q, 0), (size_t)sqlite3_column_bytes(q, 0)) != RL_OK)
        return rl_seterr(e->j.err, RL_ENOMEM, "out of memory");
    sqlite3_reset(q);
    return RL_OK;
}

/* arr = arr + [obj] (inner arrays have at most a dozen elements). */
static int append(exporter *e)
{
    sqlite3_stmt *q = rl__export_stmt(&e->j, J_APPEND);
    if (!q)
        return RL_ESTORE;
    sqlite3_bind_text(q, 1, e->arr.p, (int)e->arr.len, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, e->obj.p, (int)e->obj.len, SQLITE_STATIC);
    return jvalue(e, q, &e->arr);
}

static int arr_reset(exporter *e)
{
    return jbuf_set(&e->arr, (const unsigned char *)"[]", 2) == RL_OK
               ? RL_OK
               : rl_seterr(e->j.err, RL_ENOMEM, "out of memory");
}

static int section(exporter *e, const char *name)
{
    char head[64];
    e->nelem = 0;
    snprintf(head, sizeof head, ",\n\"%s\": [", name);
    return emit(e, head, strlen(head));
}

static int element(exporter *e)
{
    int first = e->nelem++ == 0;
    int rc = emit(e, first ? "\n" : ",\n", first ? 1 : 2);
    return rc != RL_OK ? rc : emit(e, e->obj.p, e->obj.len);
}

static void hex_id(uint64_t id, char *buf, size_t len)
{
    snprintf(buf, len, "%016llx", (unsigned long long)id);
}

static const char *limit_kind(int kind)
{
    return kind == RL_KIND_GCRA         ? "rate"
           : kind == RL_KIND_CONCURRENT ? "concurrent"
           : kind == RL_KIND_WINDOW     ? "sliding_window"
                                        : NULL;
}

static const char *slot_kind(int kind)
{
    return kind == RL_SLOT_GCRA       ? "gcra"
           : kind == RL_SLOT_COOLDOWN ? "cooldown"
           : kind == RL_SLOT_INFLIGHT ? "inflight"
           : kind == RL_SLOT_WINDOW   ? "window"
                                      : NULL;
}

static int export_tier(exporter *e, const rl_tier *t)
{
    sqlite3_stmt *q;
    size_t i;
    int rc;
    if ((rc = arr_reset(e)) != RL_OK)
        return rc;
    for (i = 0; i < t->n; i++) {
        const rl_ldef *d = &t->limits[i];
        if (!limit_kind(d->kind))
            return rl_seterr(e->j.err, RL_ECORRUPT, "tier '%s': limit '%s' of unknown kind %d",
                             t->name, d->name, d->kind);
        if (!(q = rl__export_stmt(&e->j, J_LIMIT)))
            return RL_ESTORE;
        sqlite3_bind_text(q, 1, d->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, d->resource, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, limit_kind(d->kind), -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 4, d->count);
        sqlite3_bind_int64(q, 5, d->period_ns);
        sqlite3_bind_int64(q, 6, d->burst);
        if ((rc = jvalue(e, q, &e->obj)) != RL_OK || (rc = append(e)) != RL_OK)
            return rc;
    }
    if (!(q = rl__export_stmt(&e->j, J_TIER)))
        return RL_ESTORE;
    sqlite3_bind_text(q, 1, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, t->unlimited ? "true" : "false", -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, e->arr.p, (int)e->arr.len, SQLITE_STATIC);
    if ((rc = jvalue(e, q, &e->obj)) != RL_OK)
        return rc;
    return element(e);
}

static int export_policy(exporter *e, const rl_policy *p)
{
    sqlite3_stmt *q = rl__export_stmt(&e->j, J_HEAD);
    size_t i;
    int rc;
    if (!q)
        return RL_ESTORE;
    sqlite3_bind_text(q, 1, RL_VERSION_STRING, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, rl__now(e->r));
    if (p->default_tier[0])
        sqlite3_bind_text(q, 3, p->default_tier, -1, SQLITE_STATIC);
    if (p->fail_mode != RL_FAIL_UNSET)
        sqlite3_bind_text(q, 4, p->fail_mode == RL_FAIL_OPEN ? "open" : "closed", -1,
                          SQLITE_STATIC);
    if ((rc = jvalue(e, q, &e->obj)) != RL_OK)
        return rc;
    /* The header object stays open: the sections below are its members. */
    if ((rc = emit(e, e->obj.p, e->obj.len - 1)) != RL_OK || (rc = section(e, "tiers")))
        return rc;
    for (i = 0; i < p->n_tiers; i++)
        if ((rc = export_tier(e, &p->tiers[i])) != RL_OK)
            return rc;
    if ((rc = emit(e, "]", 1)) != RL_OK || (rc = section(e, "rules")) != RL_OK)
        return rc;
    for (i = 0; i < p->n_rules; i++) {
        if (!(q = rl__export_stmt(&e->j, J_RULE)))
            return RL_ESTORE;
        sqlite3_bind_text(q, 1, p->rules[i].match, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, p->rules[i].tier, -1, SQLITE_STATIC);
        if ((rc = jvalue(e, q, &e->obj)) != RL_OK || (rc = element(e)) != RL_OK)
            return rc;
    }
    return emit(e, "]", 1);
}

static int export_lease(void *ctx, const rl_lease_rec *rec)
{
    exporter *e = ctx;
    jbuf est = { NULL, 0, 0 };
    sqlite3_stmt *q;
    char id[24];
    size_t i;
    int rc;
    if (rec->waiting)
        return 0; /* a waiter's place in a queue: it waits in this database only */
    if ((rc = arr_reset(e)) != RL_OK)
        goto out;
    for (i = 0; i < rec->n_est; i++) {
        if (!(q = rl__export_stmt(&e->j, J_COST))) {
            rc = RL_ESTORE;
            goto out;
        }
        sqlite3_bind_text(q, 1, rec->est_resource[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, rec->est_amount[i]);
        if ((rc = jvalue(e, q, &e->obj)) != RL_OK || (rc = append(e)) != RL_OK)
            goto out;
    }
    if (jbuf_set(&est, (const unsigned char *)e->arr.p, e->arr.len) != RL_OK ||
        (rc = arr_reset(e)) != RL_OK) {
        rc = rl_seterr(e->j.err, RL_ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < rec->n_held; i++) {
        if (!(q = rl__export_stmt(&e->j, J_HELD))) {
            rc = RL_ESTORE;
            goto out;
        }
        hex_id(rec->held_id[i], id, sizeof id);
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, rec->held_amount[i]);
        if ((rc = jvalue(e, q, &e->obj)) != RL_OK || (rc = append(e)) != RL_OK)
            goto out;
    }
    if (!(q = rl__export_stmt(&e->j, J_LEASE))) {
        rc = RL_ESTORE;
        goto out;
    }
    sqlite3_bind_int64(q, 1, rec->id);
    sqlite3_bind_text(q, 2, rec->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, rec->created);
    sqlite3_bind_int64(q, 4, rec->expires);
    sqlite3_bind_int64(q, 5, rec->pid);
    sqlite3_bind_int64(q, 6, rec->pstart);
    sqlite3_bind_text(q, 7, est.p, (int)est.len, SQLITE_STATIC);
    sqlite3_bind_text(q, 8, e->arr.p, (int)e->arr.len, SQLITE_STATIC);
    if ((rc = jvalue(e, q, &e->obj)) == RL_OK)
        rc = element(e);
out:
    free(est.p);
    return rc;
}

static int export_key(void *ctx, const char *key, const rl_row *row)
{
    exporter *e = ctx;
    sqlite3_stmt *q;
    rl_state st;
    char id[24];
    size_t i;
    int rc;
    if (rl_state_decode(&st, row->state, row->state_len) != RL_OK)
        return rl_seterr(e->j.err, RL_ECORRUPT,
                         "key '%.64s': damaged bucket state ('rlctl reset' it first)", key);
    if ((rc = arr_reset(e)) != RL_OK)
        return rc;
    for (i = 0; i < st.n; i++) {
        const rl_slot *s = &st.slot[i];
        if (!slot_kind(s->kind))
            return rl_seterr(e->j.err, RL_ECORRUPT, "key '%.64s': slot of unknown kind", key);
        if (!(q = rl__export_stmt(&e->j, J_SLOT)))
            return RL_ESTORE;
        hex_id(s->id, id, sizeof id);
        sqlite3_bind_text(q, 1, slot_kind(s->kind), -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, s->count);
        sqlite3_bind_int64(q, 4, s->period_ns);
        sqlite3_bind_int64(q, 5, s->burst);
        sqlite3_bind_int64(q, 6, s->tat);
        sqlite3_bind_int64(q, 7, s->rem);
        if ((rc = jvalue(e, q, &e->obj)) != RL_OK || (rc = append(e)) != RL_OK)
            return rc;
    }
    if (!(q = rl__export_stmt(&e->j, J_KEY)))
        return RL_ESTORE;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    if (row->tier[0])
        sqlite3_bind_text(q, 2, row->tier, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, row->allowed);
    sqlite3_bind_int64(q, 4, row->refused);
    sqlite3_bind_int64(q, 5, row->units);
    sqlite3_bind_int64(q, 6, row->first_seen);
    sqlite3_bind_int64(q, 7, row->last_seen);
    sqlite3_bind_text(q, 8, e->arr.p, (int)e->arr.len, SQLITE_STATIC);
    if ((rc = jvalue(e, q, &e->obj)) != RL_OK)
        return rc;
    return element(e);
}

static int export_all(rl *r, int (*write)(void *ctx, const char *buf, size_t len), void *ctx)
{
    exporter *e = NULL;
    rl_policy p;
    int rc, began = 0;
    if (!r)
        return RL_EINVAL;
    if (!write)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "write callback is NULL");
    rl__errbuf(r)[0] = 0;
    rl_policy_init(&p);
    if (!(e = calloc(1, sizeof *e))) {
        rc = rl_seterr(rl__errbuf(r), RL_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = rl__export_jdb_open(&e->j, jsql, rl__errbuf(r))) != RL_OK)
        goto out;
    e->r = r;
    e->s = rl__store(r);
    e->write = write;
    e->ctx = ctx;
    /* One read transaction: a consistent snapshot, while deciders write on. */
    if ((rc = e->s->ops->begin(e->s, 0)) != RL_OK)
        goto out;
    began = 1;
    if ((rc = e->s->ops->policy_get(e->s, &p)) != RL_OK || (rc = export_policy(e, &p)) != RL_OK)
        goto out;
    if ((rc = section(e, "leases")) != RL_OK ||
        (rc = e->s->ops->leases_each(e->s, NULL, export_lease, e)) != RL_OK ||
        (rc = emit(e, "]", 1)) != RL_OK)
        goto out;
    if ((rc = section(e, "keys")) != RL_OK ||
        (rc = e->s->ops->keys_page(e->s, "", NULL, 0, export_key, e)) != RL_OK)
        goto out;
    rc = emit(e, "]}\n", 3);
out:
    if (e && e->stop)
        rc = e->stop; /* the writer's own code, as documented */
    if (began)
        e->s->ops->rollback(e->s);
    if (e) {
        rl__export_jdb_close(&e->j);
        free(e->obj.p);
        free(e->arr.p);
    }
    free(e);
    rl_policy_free(&p);
    return rc;
}

int rl_export(rl *r, int (*write)(void *ctx, const char *buf, size_t len), void *ctx)
{
    int rc;
    if (!r)
        return RL_EINVAL;
    rl__lock(r);
    rl__pending_flush(r); /* this handle's refusals count in what it exports */
    rc = export_all(r, write, ctx);
    rl__unlock(r);
    return rc;
}
