/*
 * lock.h - the write queue shared by every process using one database.
 *
 * A robust, process-shared pthread mutex kept in a small side file
 * (DB-rllock) that each process maps. Writers take it before SQLite's own
 * write lock, so they wait on a futex (woken one at a time) instead of
 * SQLite's sleep-and-retry busy handler, and whoever commits also runs the
 * WAL checkpoint while no other writer can slip in. A holder that dies is
 * detected by the kernel (EOWNERDEAD) and the next taker carries on; its
 * SQLite transaction was already rolled back with its file locks.
 *
 * The same file carries the group-commit queue (rl_lock_join and friends):
 * a writer that finds the mutex taken may post its request there and be
 * answered by the holder, which decides it in its own transaction.
 */
#ifndef RL_LOCK_H
#define RL_LOCK_H

#include "store.h"

typedef struct rl_lock rl_lock;

/* Whether a request that a dead leader decided was committed: 1 yes, 0 no
 * (or never decided), -1 cannot tell. Called holding the mutex. */
typedef int (*rl_lock_resolve_fn)(void *ctx, const rl_group_req *req);

int rl_lock_open(rl_lock **out, const char *path, unsigned int mode, char *err);
/* Waits at most timeout_ms; RL_EBUSY after that. *waited_ns says how long it waited. */
int rl_lock_acquire(rl_lock *l, int timeout_ms, int64_t *waited_ns, char *err);
/* Unlocks; then wakes a group-commit poster to lead, if one is waiting. */
void rl_lock_release(rl_lock *l);
/* Group commit (see lock.c): RL_OK when another process answered req,
 * RL_GROUP_LEAD when the mutex is ours and req (with what rl_lock_take
 * finds) must be decided, RL_GROUP_NONE when this file has no queue; or a
 * failure. The wait is bounded by timeout_ms as in rl_lock_acquire. */
int rl_lock_join(rl_lock *l, int timeout_ms, rl_group_req *req, char *err);
/* As the leader, inside its transaction: takes the requests posted with
 * signature sig into batch[0..max); how many. */
size_t rl_lock_take(rl_lock *l, uint64_t sig, rl_group_req **batch, size_t max);
/* As the leader, after commit or rollback and before rl_lock_release:
 * wakes the posters of the batch with their answers. */
void rl_lock_publish(rl_lock *l);
/* Who tells, after a holder died, what became of its batch. Set while
 * holding the mutex, it also settles a death noticed before it was set. */
void rl_lock_on_recover(rl_lock *l, rl_lock_resolve_fn fn, void *ctx);
void rl_lock_close(rl_lock *l);

#endif
