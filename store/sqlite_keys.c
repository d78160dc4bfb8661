/*
 * sqlite_keys.c - the SQLite store's leases, key listings and the
 * administration calls of core/admin.c (pages of keys, import).
 *
 * Guarantees:
 *   - leases are kept in rl_leases under ids SQLite assigns (or the ids an
 *     import restores), and listed oldest first;
 *   - listings step one statement, hold no row past the callback and stop
 *     when it returns non-zero; a page walks the key's b-tree from its
 *     cursor on, never sorting;
 *   - a damaged state or lease is reported (RL_ECORRUPT, or a state no
 *     decoder accepts), never read as an empty one.
 */
#include "sqlite.h"

#include <stdlib.h>
#include <string.h>

/* ---- leases ------------------------------------------------------------- */

int rl_store_sqlite_lease_put(rl_store *base, rl_lease_rec *rec)
{
    sq_store *s = (sq_store *)base;
    unsigned char body[RL_LEASE_BODY_MAX];
    size_t len = rl_lease_encode(rec, body);
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_LEASE_INS, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, rec->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, rec->created);
    sqlite3_bind_int64(q, 3, rec->expires);
    sqlite3_bind_int64(q, 4, rec->pid);
    sqlite3_bind_int64(q, 5, rec->pstart);
    sqlite3_bind_blob(q, 6, body, (int)len, SQLITE_STATIC);
    if ((rc = rl_store_sqlite_run(s, S_LEASE_INS, "write lease")) == RL_OK)
        rec->id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

/* Reads the current row of a lease query into rec. */
static int lease_row(sq_store *s, sqlite3_stmt *q, rl_lease_rec *rec)
{
    const void *body = sqlite3_column_blob(q, 6);
    rec->id = sqlite3_column_int64(q, 0);
    rl_store_sqlite_text_col(q, 1, rec->key, sizeof rec->key);
    rec->created = sqlite3_column_int64(q, 2);
    rec->expires = sqlite3_column_int64(q, 3);
    rec->pid = sqlite3_column_int64(q, 4);
    rec->pstart = sqlite3_column_int64(q, 5);
    if (rl_lease_decode(rec, body, (size_t)sqlite3_column_bytes(q, 6)) != RL_OK)
        return rl_seterr(s->base.err, RL_ECORRUPT, "lease %lld: damaged record",
                         (long long)rec->id);
    return RL_OK;
}

int rl_store_sqlite_lease_get(rl_store *base, int64_t id, rl_lease_rec *rec)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_LEASE_GET, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_int64(q, 1, id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        rc = lease_row(s, q, rec);
    else if (rc == SQLITE_DONE)
        rc = rl_seterr(base->err, RL_ENOTFOUND,
                       "lease %lld not found: settled, cancelled or reclaimed", (long long)id);
    else
        rc = rl_store_sqlite_fail(s, rc, "read lease");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

int rl_store_sqlite_lease_delete(rl_store *base, int64_t id)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_LEASE_DEL, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_int64(q, 1, id);
    return rl_store_sqlite_run(s, S_LEASE_DEL, "delete lease");
}

int rl_store_sqlite_leases_each(rl_store *base, const char *key, rl_lease_fn fn, void *ctx)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    rl_lease_rec *rec = malloc(sizeof *rec);
    int rc, step = SQLITE_DONE;
    if (!rec)
        return rl_seterr(base->err, RL_ENOMEM, "out of memory");
    if ((rc = rl_store_sqlite_stmt(s, key ? S_LEASES_KEY : S_LEASES_ALL, &q)) != RL_OK)
        goto out;
    if (key)
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    while (rc == RL_OK && (step = sqlite3_step(q)) == SQLITE_ROW)
        if ((rc = lease_row(s, q, rec)) == RL_OK)
            rc = fn(ctx, rec);
    if (rc == RL_OK && step != SQLITE_DONE)
        rc = rl_store_sqlite_fail(s, step, "list leases");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
out:
    free(rec);
    return rc;
}

/* ---- listing ------------------------------------------------------------ */
/* Steps a listing statement whose columns are key, tier, state, allowed,
 * refused, units, first_seen, last_seen, calling fn for each row. A state
 * too large to be one is passed on as a byte no decoder accepts, so that
 * prune and doctor see damage there, not an empty state (full buckets). */
static int each_row(sq_store *s, sqlite3_stmt *q, rl_row_fn fn, void *ctx)
{
    rl_row *row = malloc(sizeof *row);
    int rc = RL_OK, step = SQLITE_DONE, stop = 0;
    if (!row)
        rc = rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
    while (row && !stop && (step = sqlite3_step(q)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(q, 0);
        size_t len = (size_t)sqlite3_column_bytes(q, 2);
        row->exists = 1;
        rl_store_sqlite_text_col(q, 1, row->tier, sizeof row->tier);
        if ((rc = rl_store_sqlite_state_in(s, sqlite3_column_blob(q, 2), len, row)) != RL_OK) {
            stop = 1; /* rc: reading a slot set failed */
            break;
        }
        row->allowed = sqlite3_column_int64(q, 3);
        row->refused = sqlite3_column_int64(q, 4);
        row->units = sqlite3_column_int64(q, 5);
        row->first_seen = sqlite3_column_int64(q, 6);
        row->last_seen = sqlite3_column_int64(q, 7);
        if ((stop = fn(ctx, key ? key : "", row)) != 0)
            rc = stop;
    }
    if (row && !stop && step != SQLITE_DONE)
        rc = rl_store_sqlite_fail(s, step, "list keys");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    free(row);
    return rc;
}

int rl_store_sqlite_keys_list(rl_store *base, const char *match, int sort, size_t limit,
                              rl_row_fn fn, void *ctx)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_LIST_KEY + sort, &q);
    if (rc != RL_OK)
        return rc;
    if (match)
        sqlite3_bind_text(q, 1, match, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, limit ? (sqlite3_int64)limit : -1);
    return each_row(s, q, fn, ctx);
}

int rl_store_sqlite_totals(rl_store *base, rl_totals *t)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_TOTALS, &q);
    if (rc != RL_OK)
        return rc;
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        t->keys = sqlite3_column_int64(q, 0);
        t->allowed = sqlite3_column_int64(q, 1);
        t->refused = sqlite3_column_int64(q, 2);
        t->units = sqlite3_column_int64(q, 3);
        rc = RL_OK;
    } else {
        rc = rl_store_sqlite_fail(s, rc, "totals");
    }
    sqlite3_reset(q);
    return rc;
}

/* ---- administration (core/admin.c) --------------------------------------- */

int rl_store_sqlite_keys_page(rl_store *base, const char *after, const char *match, size_t limit,
                              rl_row_fn fn, void *ctx)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_PAGE, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, after ? after : "", -1, SQLITE_STATIC);
    if (match)
        sqlite3_bind_text(q, 2, match, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, limit ? (sqlite3_int64)limit : -1);
    return each_row(s, q, fn, ctx);
}

int rl_store_sqlite_state_clear(rl_store *base)
{
    sq_store *s = (sq_store *)base;
    int rc = rl_store_sqlite_run(s, S_KEYS_CLEAR, "clear keys");
    return rc != RL_OK ? rc : rl_store_sqlite_run(s, S_LEASES_CLEAR, "clear leases");
}

int rl_store_sqlite_lease_restore(rl_store *base, const rl_lease_rec *rec)
{
    sq_store *s = (sq_store *)base;
    unsigned char body[RL_LEASE_BODY_MAX];
    size_t len = rl_lease_encode(rec, body);
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_LEASE_RESTORE, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_int64(q, 1, rec->id);
    sqlite3_bind_text(q, 2, rec->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, rec->created);
    sqlite3_bind_int64(q, 4, rec->expires);
    sqlite3_bind_int64(q, 5, rec->pid);
    sqlite3_bind_int64(q, 6, rec->pstart);
    sqlite3_bind_blob(q, 7, body, (int)len, SQLITE_STATIC);
    return rl_store_sqlite_run(s, S_LEASE_RESTORE, "write lease");
}
