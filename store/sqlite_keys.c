/*
 * sqlite_keys.c - the SQLite store's leases, key listings and the
 * administration calls of core/admin.c (pages of keys, import).
 *
 * Guarantees:
 *   - leases are kept in rl_lease_rows by key (schema/006_lease_rows.sql):
 *     a lease begun or ended writes one page of them, no index and no
 *     counter; ids are never issued twice (an import's restored ids
 *     included), only grow on a key, and an id finds its key through
 *     rl_lease_ids; leases are listed oldest first (a key's by id, all by
 *     creation time, then id);
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
/* Leases live in rl_lease_rows by (key, id), and rl_lease_ids finds an
 * id's key (schema/006_lease_rows.sql says why and how ids are drawn). */

#define RANGE_BITS 24
#define RANGE_SIZE ((int64_t)1 << RANGE_BITS)
#define RANGES_MAX ((int64_t)1 << 38) /* range << 24 stays below 2^62 */

/* The key whose ids include id: *found 0 when none does. RL_ECORRUPT for a
 * row of rl_lease_ids that is not one rl writes. */
static int lease_owner(sq_store *s, int64_t id, int *found, int64_t *lo, int64_t *hi, char *key)
{
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_LEASE_OWNER, &q);
    *found = 0;
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_int64(q, 1, id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const unsigned char *k = sqlite3_column_text(q, 2);
        *lo = sqlite3_column_int64(q, 0);
        *hi = sqlite3_column_int64(q, 1);
        rc = RL_OK;
        if (!k || (size_t)sqlite3_column_bytes(q, 2) > RL_KEY_MAX ||
            sqlite3_column_type(q, 1) != SQLITE_INTEGER || *hi < *lo ||
            (*hi != *lo && (*lo % RANGE_SIZE != 0 || *hi != *lo + RANGE_SIZE - 1)))
            rc = rl_seterr(s->base.err, RL_ECORRUPT, "lease ids: damaged row at %lld",
                           (long long)*lo);
        else if (id <= *hi) {
            memcpy(key, k, (size_t)sqlite3_column_bytes(q, 2) + 1);
            *found = 1;
        }
    } else if (rc == SQLITE_DONE) {
        rc = RL_OK;
    } else {
        rc = rl_store_sqlite_fail(s, rc, "read lease ids");
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

/* The highest id key has in rl_lease_rows (a lease or its tombstone):
 * *have 0 when it has none. */
static int lease_last(sq_store *s, const char *key, int *have, int64_t *id, int *tomb)
{
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_LEASE_LAST, &q);
    *have = 0;
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *have = 1;
        *id = sqlite3_column_int64(q, 0);
        *tomb = sqlite3_column_int(q, 1);
        rc = RL_OK;
    } else {
        rc = rc == SQLITE_DONE ? RL_OK : rl_store_sqlite_fail(s, rc, "read leases");
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

static int ids_put(sq_store *s, int64_t lo, int64_t hi, const char *key)
{
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_LEASE_IDS_INS, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_int64(q, 1, lo);
    sqlite3_bind_int64(q, 2, hi);
    sqlite3_bind_text(q, 3, key, -1, SQLITE_STATIC);
    return rl_store_sqlite_run(s, S_LEASE_IDS_INS, "write lease ids");
}

/* rl_meta's lease_ranges, the last range drawn (at least `floor`, and
 * `add` more, when add or floor asks for a write). */
static int ranges_move(sq_store *s, int64_t add, int64_t floor, int64_t *out)
{
    sqlite3_stmt *q = NULL;
    int64_t v = -1;
    int rc = rl_store_sqlite_stmt(s, S_SETTING, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, "lease_ranges", -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && sqlite3_column_type(q, 0) == SQLITE_INTEGER)
        v = sqlite3_column_int64(q, 0);
    rc =
        rc == SQLITE_ROW || rc == SQLITE_DONE ? RL_OK : rl_store_sqlite_fail(s, rc, "read setting");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if (rc != RL_OK)
        return rc;
    if (v < 0 || v >= RANGES_MAX)
        return rl_seterr(s->base.err, RL_ECORRUPT, "lease_ranges: damaged or used up");
    if (v < floor)
        v = floor;
    v += add;
    if (v >= RANGES_MAX)
        return rl_seterr(s->base.err, RL_EFULL, "lease ids used up");
    if ((rc = rl_store_sqlite_stmt(s, S_SET_SETTING, &q)) != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, "lease_ranges", -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, v);
    if ((rc = rl_store_sqlite_run(s, S_SET_SETTING, "write setting")) == RL_OK)
        *out = v;
    return rc;
}

static int lease_write(sq_store *s, const rl_lease_rec *rec)
{
    unsigned char body[RL_LEASE_BODY_MAX];
    size_t len = rl_lease_encode(rec, body);
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_LEASE_INS, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, rec->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, rec->id);
    sqlite3_bind_int64(q, 3, rec->created);
    sqlite3_bind_int64(q, 4, rec->expires);
    sqlite3_bind_int64(q, 5, rec->pid);
    sqlite3_bind_int64(q, 6, rec->pstart);
    sqlite3_bind_blob(q, 7, body, (int)len, SQLITE_STATIC);
    return rl_store_sqlite_run(s, S_LEASE_INS, "write lease");
}

static int lease_key_run(sq_store *s, int i, const char *key, int64_t id, const char *what)
{
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, i, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, id);
    return rl_store_sqlite_run(s, i, what);
}

/* The id after the key's highest, if that one was drawn from a range of
 * the key's and the range has room; else the first of a new range. Either
 * is above every id the key had: a key's ids only grow, and each is
 * issued once (the highest outlives its lease as a tombstone). */
int rl_store_sqlite_lease_put(rl_store *base, rl_lease_rec *rec)
{
    sq_store *s = (sq_store *)base;
    char owner[RL_KEY_MAX + 1];
    int64_t last = 0, lo = 0, hi = 0, range = 0, id = 0;
    int have, tomb = 0, found = 0, rc;
    if ((rc = lease_last(s, rec->key, &have, &last, &tomb)) != RL_OK)
        return rc;
    if (have && last > 0 && (rc = lease_owner(s, last, &found, &lo, &hi, owner)) != RL_OK)
        return rc;
    if (found && hi > lo && last < hi && strcmp(owner, rec->key) == 0)
        id = last + 1;
    if (!id) {
        if ((rc = ranges_move(s, 1, 0, &range)) != RL_OK)
            return rc;
        id = range << RANGE_BITS;
        if ((rc = ids_put(s, id, id + RANGE_SIZE - 1, rec->key)) != RL_OK)
            return rc;
    }
    /* the tombstone's work is done: the key's highest id is the new one */
    if (have && tomb &&
        (rc = lease_key_run(s, S_LEASE_DEL, rec->key, last, "delete lease")) != RL_OK)
        return rc;
    rec->id = id;
    return lease_write(s, rec);
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
    char key[RL_KEY_MAX + 1];
    int64_t lo, hi;
    int found, rc = lease_owner(s, id, &found, &lo, &hi, key);
    if (rc != RL_OK)
        return rc;
    if (found && (rc = rl_store_sqlite_stmt(s, S_LEASE_GET, &q)) != RL_OK)
        return rc;
    rc = SQLITE_DONE;
    if (found) {
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, id);
        rc = sqlite3_step(q);
    }
    if (rc == SQLITE_ROW)
        rc = lease_row(s, q, rec);
    else if (rc == SQLITE_DONE)
        rc = rl_seterr(base->err, RL_ENOTFOUND,
                       "lease %lld not found: settled, cancelled or reclaimed", (long long)id);
    else
        rc = rl_store_sqlite_fail(s, rc, "read lease");
    if (q) {
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
    }
    return rc;
}

/* The key's highest id becomes a tombstone instead (see lease_put). */
int rl_store_sqlite_lease_delete(rl_store *base, const char *key, int64_t id)
{
    sq_store *s = (sq_store *)base;
    int64_t last = 0;
    int have, tomb, rc = lease_last(s, key, &have, &last, &tomb);
    if (rc != RL_OK)
        return rc;
    return lease_key_run(s, have && last == id ? S_LEASE_TOMB : S_LEASE_DEL, key, id,
                         "delete lease");
}

int rl_store_sqlite_lease_forget(sq_store *s, const char *key)
{
    char owner[RL_KEY_MAX + 1];
    int64_t last = 0, lo = 0, hi = 0;
    int have, tomb = 0, found = 0, rc = lease_last(s, key, &have, &last, &tomb);
    if (rc != RL_OK || !have || !tomb)
        return rc; /* no row, or a lease still open: the ids stay */
    if ((rc = lease_key_run(s, S_LEASE_FORGET, key, last, "forget lease ids")) != RL_OK ||
        sqlite3_changes(s->db) == 0)
        return rc; /* an older lease still open below it */
    /* the range the tombstone's id came from, if it is the key's (not a
     * row of its own: an id kept from schema 3 or an import) */
    if ((rc = lease_owner(s, last, &found, &lo, &hi, owner)) != RL_OK || !found || hi == lo ||
        strcmp(owner, key) != 0)
        return rc;
    return lease_key_run(s, S_LEASE_IDS_DEL, key, lo, "forget lease ids");
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

/* Leases and their ids go; lease_ranges stays, so that no range drawn
 * before is drawn again. */
int rl_store_sqlite_state_clear(rl_store *base)
{
    sq_store *s = (sq_store *)base;
    int rc = rl_store_sqlite_run(s, S_KEYS_CLEAR, "clear keys");
    if (rc == RL_OK)
        rc = rl_store_sqlite_run(s, S_LEASES_CLEAR, "clear leases");
    return rc != RL_OK ? rc : rl_store_sqlite_run(s, S_LEASE_IDS_CLEAR, "clear lease ids");
}

/* Under its own id, with a row of rl_lease_ids of its own; ranges are
 * drawn above it from then on. */
int rl_store_sqlite_lease_restore(rl_store *base, const rl_lease_rec *rec)
{
    sq_store *s = (sq_store *)base;
    int64_t range;
    int rc;
    if (rec->id <= 0)
        return rl_seterr(base->err, RL_EINVAL, "lease id %lld: not one rl issues",
                         (long long)rec->id);
    if ((rc = lease_write(s, rec)) != RL_OK ||
        (rc = ids_put(s, rec->id, rec->id, rec->key)) != RL_OK)
        return rc;
    return ranges_move(s, 0, rec->id >> RANGE_BITS, &range);
}
