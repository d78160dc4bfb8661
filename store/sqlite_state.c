/*
 * sqlite_state.c - bucket states on disk in format 3 (core/state.c's
 * header), and the slot sets they refer to (table rl_limit_sets).
 *
 * core/ reads and writes formats 1 and 2, which copy every limit's count,
 * period, burst and id into every row. This store writes format 3
 * instead, about a third of the size: a state names its tier's
 * fingerprint, and the limits' words are kept once, in rl_limit_sets, as
 * that fingerprint's slot set. Rows are translated at the edge: format 3
 * to format 2 when read (row_get, listings), format 2 to format 3 when
 * written (row_put). So every reader of slots in core/, the read-path
 * refusal's byte comparison and rl_export work unchanged, and rows in
 * formats 1 and 2 from older libraries are read as they are and rewritten
 * as format 3 by their next write.
 *
 * Guarantees:
 *   - a fingerprint names one set for ever: sets are only inserted (INSERT
 *     OR IGNORE), never updated or deleted, not even by rl_import; a row
 *     refers to a set only when that set was in the table, or inserted in
 *     the same transaction, when the row was written, so every reader sees
 *     the set with the row;
 *   - sets are recorded when a tier is written (policy_put, tier_put: the
 *     tiers files, rl_tier_set, the default limits of rl_options) and, for
 *     a state whose fingerprint has none (a tier written before this
 *     format, an import), from the state's own slots; a set that disagrees
 *     with a state only makes its slots explicit, never wrong;
 *   - a format 3 blob that cannot be decoded - damaged, or naming a set
 *     that is missing or damaged - reaches core/ as a blob no decoder
 *     accepts: the key is damaged (RL_ECORRUPT for its decisions, counted
 *     by rlctl doctor, cleared by rlctl reset), never decided as a full
 *     bucket;
 *   - a set read or inserted inside a write transaction is cached only
 *     until that transaction ends unless it commits, so a rolled-back
 *     insert is never referred to; sets are immutable once committed, so
 *     the cache needs no other invalidation.
 */
#include "sqlite.h"

#include <string.h>

/* The cached set of fp, or NULL. */
static sq_set *cached(sq_store *s, uint64_t fp)
{
    size_t i;
    for (i = 0; i < s->nsets; i++)
        if (s->sets[i].set.fp == fp)
            return &s->sets[i];
    return NULL;
}

static const rl_slotset *cache(sq_store *s, const rl_slotset *set)
{
    sq_set *c;
    if (s->nsets < RL_SQ_SETS) {
        c = &s->sets[s->nsets++];
    } else { /* round robin: a handle sees a few tiers at a time */
        c = &s->sets[s->next_set];
        s->next_set = (s->next_set + 1) % RL_SQ_SETS;
    }
    c->set = *set;
    c->pending = s->in_txn && s->txn_write;
    return &c->set;
}

void rl_store_sqlite_sets_end(sq_store *s, int committed)
{
    size_t i, j;
    for (i = j = 0; i < s->nsets; i++) {
        if (s->sets[i].pending && !committed)
            continue;
        s->sets[i].pending = 0;
        s->sets[j++] = s->sets[i];
    }
    s->nsets = j;
    s->next_set = 0;
}

/* The set of fp: RL_OK with *out (NULL: none stored), RL_ECORRUPT with
 * *out NULL when the stored one is damaged, or a store failure. */
static int set_find(sq_store *s, uint64_t fp, const rl_slotset **out)
{
    sqlite3_stmt *q = NULL;
    sq_set *c = cached(s, fp);
    rl_slotset set;
    int rc, step;
    *out = NULL;
    if (c) {
        *out = &c->set;
        return RL_OK;
    }
    if ((rc = rl_store_sqlite_stmt(s, S_SET_GET, &q)) != RL_OK)
        return rc;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)fp);
    step = sqlite3_step(q);
    if (step == SQLITE_ROW) {
        size_t len = (size_t)sqlite3_column_bytes(q, 0);
        const unsigned char *body = sqlite3_column_blob(q, 0);
        if (len <= RL_SLOTSET_MAX && body && rl_slotset_decode(&set, fp, body, len) == RL_OK)
            *out = cache(s, &set);
        else
            rc = RL_ECORRUPT;
    } else if (step != SQLITE_DONE) {
        rc = rl_store_sqlite_fail(s, step, "read limit set");
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

int rl_store_sqlite_set_put(sq_store *s, const rl_slotset *set)
{
    unsigned char body[RL_SLOTSET_MAX];
    size_t len = rl_slotset_encode(set, body);
    sqlite3_stmt *q = NULL;
    int rc;
    if (set->n == 0 || cached(s, set->fp))
        return RL_OK; /* nothing to refer to; or there already */
    if ((rc = rl_store_sqlite_stmt(s, S_SET_INS, &q)) != RL_OK)
        return rc;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)set->fp);
    sqlite3_bind_blob(q, 2, body, (int)len, SQLITE_STATIC);
    if ((rc = rl_store_sqlite_run(s, S_SET_INS, "write limit set")) != RL_OK)
        return rc;
    /* ignored: the fingerprint has a set already, which set_find reads */
    if (sqlite3_changes(s->db) == 1)
        cache(s, set);
    return RL_OK;
}

int rl_store_sqlite_state_in(sq_store *s, const unsigned char *blob, size_t len, rl_row *row)
{
    const rl_slotset *set = NULL;
    rl_state st;
    uint64_t fp;
    int rc;
    if (len > RL_STATE_MAX || !blob) { /* passed on as a byte no decoder accepts */
        row->state[0] = 0;
        row->state_len = len ? 1 : 0;
        return RL_OK;
    }
    if (len == 0 || blob[0] != 3) { /* formats 1 and 2 (or damage): core/ judges */
        memcpy(row->state, blob, len);
        row->state_len = len;
        return RL_OK;
    }
    row->state[0] = 0; /* damaged, unless decoded below */
    row->state_len = 1;
    if (rl_state_fp3(blob, len, &fp) != RL_OK)
        return RL_OK;
    rc = set_find(s, fp, &set);
    if (rc != RL_OK && rc != RL_ECORRUPT)
        return rc; /* reading the set failed: a store failure, not damage */
    if (rl_state_decode3(&st, blob, len, set) == RL_OK)
        row->state_len = rl_state_encode(&st, row->state);
    return RL_OK;
}

int rl_store_sqlite_state_out(sq_store *s, const rl_row *row, unsigned char *buf,
                              const unsigned char **out, size_t *len)
{
    const rl_slotset *set = NULL;
    rl_slotset mine;
    rl_state st;
    size_t n;
    int rc;
    *out = row->state;
    *len = row->state_len;
    if (row->state_len == 0 || rl_state_decode(&st, row->state, row->state_len) != RL_OK)
        return RL_OK; /* core/ writes no other; kept as it is */
    rl_slotset_of_state(&st, &mine);
    if (st.fp && mine.n > 0) { /* slots a set could name */
        rc = set_find(s, st.fp, &set);
        if (rc == RL_OK && !set) {
            if ((rc = rl_store_sqlite_set_put(s, &mine)) != RL_OK)
                return rc;
            rc = set_find(s, st.fp, &set);
        }
        /* RL_ECORRUPT, a damaged stored set: this state's slots are
         * written whole, so the row stays readable */
        if (rc != RL_OK && rc != RL_ECORRUPT)
            return rc;
    }
    n = rl_state_encode3(&st, set, buf);
    if (n <= row->state_len) { /* else format 2 is shorter: keep it */
        *out = buf;
        *len = n;
    }
    return RL_OK;
}
