/*
 * sqlite_tx.c - the SQLite store's transactions, and its glue to group
 * commit (the lock file of lock.c).
 *
 * Guarantees:
 *   - a write transaction is BEGIN IMMEDIATE taken after the process-shared
 *     lock (when the store has one), whose wait counts against the same
 *     busy timeout as SQLite's own; a read transaction takes no lock;
 *   - the lock is released exactly once, after COMMIT or ROLLBACK, except
 *     by a group-commit leader, whose group_end answers the requests it
 *     took and then releases it;
 *   - after a leader died, whether its batch committed is read from the
 *     mark its rows carry (rl_store_sqlite_resolve), never guessed.
 */
#include "sqlite.h"

static void unlock(sq_store *s);

int rl_store_sqlite_begin(rl_store *base, int write)
{
    sq_store *s = (sq_store *)base;
    int64_t waited = 0;
    int rc;
    if (!write) {
        if ((rc = rl_store_sqlite_run(s, S_BEGIN_R, "begin")) == RL_OK) {
            s->in_txn = 1;
            s->txn_write = 0;
        }
        return rc;
    }
    if (s->readonly)
        return rl_seterr(base->err, RL_EREADONLY,
                         "database is read-only: deciding and resetting need write access");
    if (s->lock && !s->leading && !rl_lock_damaged(s->lock)) {
        if ((rc = rl_lock_acquire(s->lock, s->busy_timeout_ms, &waited, base->err)) != RL_OK)
            return rc;
        s->locked = 1;
        /* The lock wait counts against the same timeout as SQLite's. */
        if (waited > 0) {
            int64_t left = s->busy_timeout_ms - waited / 1000000;
            sqlite3_busy_timeout(s->db, left > 1 ? (int)left : 1);
        }
    }
    rc = rl_store_sqlite_run(s, S_BEGIN_W, "begin");
    if (waited > 0)
        sqlite3_busy_timeout(s->db, s->busy_timeout_ms);
    if (rc != RL_OK) {
        unlock(s);
        return rc;
    }
    s->in_txn = 1;
    s->txn_write = 1;
    return RL_OK;
}

static void unlock(sq_store *s)
{
    if (s->leading)
        return; /* rl_store_sqlite_group_end answers the batch first */
    if (s->locked)
        rl_lock_release(s->lock);
    s->locked = 0;
}

int rl_store_sqlite_group_join(rl_store *base, rl_group_req *req)
{
    sq_store *s = (sq_store *)base;
    int rc;
    if (!s->lock || s->locked || rl_lock_damaged(s->lock))
        return RL_GROUP_NONE;
    rc = rl_lock_join(s->lock, s->busy_timeout_ms, req, base->err);
    if (rc == RL_GROUP_LEAD)
        s->locked = s->leading = 1;
    return rc;
}

/* After a leader died: whether its batch, which wrote key's row if it
 * committed, did commit: the row carries the batch's mark (rl_store_sqlite_row_put). */
int rl_store_sqlite_resolve(void *ctx, const char *key, uint64_t mark)
{
    sq_store *s = ctx;
    sqlite3_stmt *q = NULL;
    int rc, step, out = -1;
    if (rl_store_sqlite_stmt(s, S_GROUP_MARK, &q) != RL_OK)
        return -1;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    step = sqlite3_step(q);
    if (step == SQLITE_ROW)
        out = sqlite3_column_type(q, 0) == SQLITE_INTEGER &&
              (uint64_t)sqlite3_column_int64(q, 0) == mark;
    else if (step == SQLITE_DONE)
        out = 0;
    rc = sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_OK ? out : -1;
}

size_t rl_store_sqlite_group_take(rl_store *base, uint64_t sig, rl_group_req **batch, size_t max)
{
    sq_store *s = (sq_store *)base;
    return s->leading ? rl_lock_take(s->lock, sig, batch, max) : 0;
}

void rl_store_sqlite_group_end(rl_store *base)
{
    sq_store *s = (sq_store *)base;
    if (!s->leading)
        return;
    rl_lock_publish(s->lock);
    s->leading = 0;
    unlock(s);
}

int rl_store_sqlite_commit(rl_store *base)
{
    sq_store *s = (sq_store *)base;
    int rc = rl_store_sqlite_run(s, S_COMMIT, "commit");
    if (rc == RL_OK) {
        s->in_txn = 0;
        rl_store_sqlite_sets_end(s, 1);
        if (s->leading)
            RL_LOCK_HOOK(RL_STEP_COMMITTED);
        unlock(s);
    }
    return rc; /* on failure the caller rolls back, which unlocks */
}

void rl_store_sqlite_rollback(rl_store *base)
{
    sq_store *s = (sq_store *)base;
    if (s->in_txn && !sqlite3_get_autocommit(s->db))
        (void)rl_store_sqlite_run(s, S_ROLLBACK, "rollback");
    s->in_txn = 0;
    rl_store_sqlite_sets_end(s, 0);
    unlock(s);
}

/* Slot wake-ups ride on the lock file, which every writer maps; a handle
 * without one (read-only, RL_BUSY_SQLITE) has none, and its slot waiters
 * look again on their own. */
int rl_store_sqlite_slot_epoch(rl_store *base, uint32_t *epoch)
{
    sq_store *s = (sq_store *)base;
    return s->lock ? rl_lock_epoch(s->lock, epoch) : RL_ESTORE;
}

void rl_store_sqlite_slot_wait(rl_store *base, uint32_t seen, int64_t ns)
{
    sq_store *s = (sq_store *)base;
    if (s->lock)
        rl_lock_epoch_wait(s->lock, seen, ns);
}

void rl_store_sqlite_slot_notify(rl_store *base)
{
    sq_store *s = (sq_store *)base;
    if (s->lock)
        rl_lock_epoch_bump(s->lock);
}
