/*
 * refuse.c - the counters of refusals answered from a read snapshot.
 *
 * A key over its limit is what a runaway or retrying worker hammers. Once
 * the handle's last decision on a key was a refusal whose retry time is
 * still ahead, rl_allow, rl_acquire and rl_acquire_keys decide it first in
 * a read transaction (decide.c, rl__decide_read): a refusal changes no
 * limit state, so when it would write nothing but the row's counters it
 * is answered from there, and its counters wait here, in a small table of
 * the handle, to be written later:
 *
 *   - folded into the next write transaction of the handle, whatever it
 *     is (rl__tx calls rl__pending_fold after its body, before commit);
 *   - by a transaction of their own (rl__pending_flush) when the oldest is
 *     RL_PENDING_BOUND_NS old (checked by each read-path refusal), when the
 *     table has no room, before a read of the same handle that reports
 *     counters (rl_stats, rl_keys_list, rl_keys_page, rl_totals_get,
 *     rl_export), before rl_import, and at rl_close.
 *
 * Guarantees:
 *   - a pending refusal is added to its key's row only if the row still
 *     exists with the first_seen it had when the refusal was decided, and
 *     its counters did not go down: a reset or prune since (by any
 *     process) means it happened before them, and it is dropped; a flush never creates a row; last_seen
 *     becomes the last refusal's if no decision wrote the row since it
 *     was read (so an injected clock that goes back reads as if every
 *     refusal had written), else the latest of the row's and theirs;
 *   - in the same handle nothing is lost or reordered: its own writes fold
 *     the counts in, in the same transaction, after what the write did (a
 *     reset by the handle drops them, as above);
 *   - a child after fork() never writes its parent's pending refusals
 *     (the handle remembers the pid that opened it);
 *   - counts are forgotten only once written (commit) or dropped as
 *     above; a failed flush keeps them for the next one (rl_close drops
 *     what it cannot write).
 */
#include "handle.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef RL_TEST_HOOKS
unsigned long rl__test_write_tx;
int64_t (*rl__pending_clock)(void);
#endif

int64_t rl__pending_mono(void)
{
    struct timespec ts;
#ifdef RL_TEST_HOOKS
    if (rl__pending_clock)
        return rl__pending_clock();
#endif
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
}

static rl__pending *find(rl *r, const char *key)
{
    size_t i;
    for (i = 0; i < r->pend_n; i++)
        if (strcmp(r->pend[i].key, key) == 0)
            return &r->pend[i];
    return NULL;
}

/* A free entry for key: unused, else the least recently used one that
 * holds no count; NULL when every entry holds one. */
static rl__pending *take(rl *r, const char *key)
{
    rl__pending *e = NULL;
    size_t i;
    if (r->pend_n < RL_PENDING_MAX) {
        e = &r->pend[r->pend_n++];
    } else {
        for (i = 0; i < r->pend_n; i++)
            if (r->pend[i].count == 0 && (!e || r->pend[i].used < e->used))
                e = &r->pend[i];
        if (!e)
            return NULL;
    }
    memset(e, 0, sizeof *e);
    memcpy(e->key, key, strlen(key) + 1);
    return e;
}

int rl__pending_hinted(rl *r, const char *const *keys, size_t nkeys)
{
    int64_t now;
    size_t k;
    rl__pending *e;
    if (r->pend_n == 0)
        return 0;
    now = rl__pending_mono();
    for (k = 0; k < nkeys; k++)
        if ((e = find(r, keys[k])) != NULL && e->retry > now)
            return 1;
    return 0;
}

int rl__pending_counts(rl *r, const char *const *keys, size_t nkeys)
{
    rl__pending *e;
    size_t k;
    for (k = 0; r->pend_live > 0 && k < nkeys; k++)
        if ((e = find(r, keys[k])) != NULL && e->count > 0)
            return 1;
    return 0;
}

void rl__pending_note(rl *r, const char *const *keys, size_t nkeys, const rl_result *res)
{
    rl__pending *e;
    size_t k;
    if (res->allowed) {
        for (k = 0; k < nkeys && r->pend_n; k++)
            if ((e = find(r, keys[k])) != NULL)
                e->retry = 0;
        return;
    }
    if (res->key_index < 0 || (size_t)res->key_index >= nkeys || res->retry_after_ns <= 0 ||
        res->degraded)
        return;
    e = find(r, keys[res->key_index]);
    if (!e && !(e = take(r, keys[res->key_index])))
        return;
    e->retry = rl__sat_add(rl__pending_mono(), res->retry_after_ns);
    e->used = ++r->pend_tick;
}

static int empty_body(rl *r, void *ctx)
{
    (void)r;
    (void)ctx;
    return RL_OK;
}

void rl__pending_flush(rl *r)
{
    char keep[RL_ERRMSG_MAX];
    if (r->pend_live == 0)
        return;
    memcpy(keep, r->err, sizeof keep);
    (void)rl__tx(r, empty_body, NULL); /* rl__tx folds them in */
    memcpy(r->err, keep, sizeof keep);
}

int rl__pending_add(rl *r, const char *const *keys, size_t nkeys, const rl_row *rows, int64_t now,
                    int64_t retry_after_ns)
{
    rl__pending *e[RL_MAX_KEYS];
    int64_t mono;
    size_t k, need = 0, room = RL_PENDING_MAX - r->pend_n, i;
    /* room: free entries, and entries of other keys that hold no count;
     * this call's own are marked used last, so take() leaves them */
    for (k = 0; k < nkeys; k++)
        if ((e[k] = find(r, keys[k])) == NULL)
            need++;
        else
            e[k]->used = ++r->pend_tick;
    for (i = 0; i < r->pend_n; i++) {
        for (k = 0; k < nkeys && strcmp(r->pend[i].key, keys[k]) != 0; k++)
            ;
        room += r->pend[i].count == 0 && k == nkeys;
    }
    if (need > room) {
        rl__pending_flush(r);
        if (r->pend_live > 0)
            return RL_EBUSY; /* could not be written: the write path decides */
    }
    mono = rl__pending_mono();
    for (k = 0; k < nkeys; k++) {
        if (!e[k] && !(e[k] = take(r, keys[k])))
            return RL_EBUSY; /* not reached: room was counted */
        e[k]->used = ++r->pend_tick;
    }
    for (k = 0; k < nkeys; k++) {
        rl__pending *p = e[k];
        if (p->count > 0 && p->first_seen != rows[k].first_seen) {
            /* the row was reset and made again since: those would be
             * dropped by the flush anyway */
            p->count = 0;
            r->pend_live--;
        }
        if (p->count == 0) {
            p->since = mono;
            p->last_seen = now;
            p->first_seen = rows[k].first_seen;
            r->pend_live++;
        }
        p->count = rl__sat_add(p->count, 1);
        p->last_seen = now; /* the last, as a decision writes it */
        p->row_seen = rows[k].last_seen;
        p->decisions = rl__sat_add(rows[k].allowed, rows[k].refused);
        p->retry = retry_after_ns > 0 ? rl__sat_add(mono, retry_after_ns) : 0;
    }
    /* the bound: the oldest pending refusal is written once it is due */
    for (i = 0; i < r->pend_n; i++)
        if (r->pend[i].count > 0 && mono - r->pend[i].since >= RL_PENDING_BOUND_NS) {
            rl__pending_flush(r);
            break;
        }
    return RL_OK;
}

int rl__pending_fold(rl *r)
{
    rl_row row;
    int64_t version;
    size_t i;
    int rc;
    if (r->pend_live == 0 || getpid() != r->pid)
        return RL_OK;
    for (i = 0; i < r->pend_n; i++) {
        const rl__pending *p = &r->pend[i];
        if (p->count == 0)
            continue;
        if ((rc = r->store->ops->row_get(r->store, p->key, &row, &version)) != RL_OK)
            return rc;
        /* reset or pruned since (counters that went down tell a reset
         * that kept the row for its assignment, at the same first_seen):
         * they happened before it */
        if (!row.exists || row.first_seen != p->first_seen ||
            rl__sat_add(row.allowed, row.refused) < p->decisions)
            continue;
        row.refused = rl__sat_add(row.refused, p->count);
        /* a decision of this transaction came after them, whatever the
         * clocks say; if no decision wrote the row since the last of them
         * read it, they are the last (an injected clock may go back);
         * else the latest of both */
        if (!p->decided && (row.last_seen == p->row_seen || p->last_seen > row.last_seen))
            row.last_seen = p->last_seen;
        if ((rc = r->store->ops->row_put(r->store, p->key, &row)) != RL_OK)
            return rc;
    }
    return RL_OK;
}

void rl__pending_begin(rl *r)
{
    size_t i;
    for (i = 0; i < r->pend_n; i++)
        r->pend[i].decided = 0;
}

void rl__pending_decided(rl *r, const char *key)
{
    rl__pending *e = find(r, key);
    if (e)
        e->decided = 1;
}

void rl__pending_done(rl *r)
{
    size_t i;
    for (i = 0; i < r->pend_n; i++)
        r->pend[i].count = 0;
    r->pend_live = 0;
}
