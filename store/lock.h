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
 */
#ifndef RL_LOCK_H
#define RL_LOCK_H

#include "store.h"

typedef struct rl_lock rl_lock;

int rl_lock_open(rl_lock **out, const char *path, unsigned int mode, char *err);
/* Waits at most timeout_ms; RL_EBUSY after that. *waited_ns says how long it waited. */
int rl_lock_acquire(rl_lock *l, int timeout_ms, int64_t *waited_ns, char *err);
void rl_lock_release(rl_lock *l);
void rl_lock_close(rl_lock *l);

#endif
