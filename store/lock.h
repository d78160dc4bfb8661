/*
 * lock.h - the write queue shared by every process using one database.
 *
 * A small side file, PATH-rlshm, that each writing process maps: a futex
 * word that writers take before SQLite's own write lock (so they wait on a
 * futex, woken one at a time, instead of SQLite's sleep-and-retry busy
 * handler, and whoever commits also runs the WAL checkpoint while no other
 * writer can slip in), and the group-commit queue (rl_lock_join and
 * friends): a writer that finds the lock taken may post its request there
 * and be answered by the holder, which decides it in its own transaction.
 *
 * Nothing in the file is trusted (see lock.c): who holds the lock or a
 * slot is proven by a byte-range lock the kernel keeps for the owner's
 * open file, not by anything written in the file, so a dead owner is told
 * from a live one without guessing by age, and the file is rebuilt by the
 * first process to open a database that nobody else has open.
 */
#ifndef RL_LOCK_H
#define RL_LOCK_H

#include "store.h"

typedef struct rl_lock rl_lock;

/* Whether a dead leader's batch, whose mark is mark, committed its write
 * of key's row: 1 yes, 0 no, -1 cannot tell. Called holding the lock. */
typedef int (*rl_lock_resolve_fn)(void *ctx, const char *key, uint64_t mark);

/* Opens (creating or rebuilding it as needed) the lock file of the
 * database at db_path, which must exist. mode is the database's file_mode;
 * shared_group accepts a lock file owned by another user of our group.
 * It waits for another process that is building the file, and at most
 * timeout_ms (then RL_EBUSY) for those that are opening or rebuilding it
 * when it finds the file damaged (lock.c). *old_domain is set to the domain
 * of a lock file this call rebuilt (0 if none), for diagnostics. */
int rl_lock_open(rl_lock **out, const char *db_path, unsigned int mode, int shared_group,
                 int timeout_ms, uint64_t *old_domain, char *err);
/* Waits at most timeout_ms; RL_EBUSY after that. *waited_ns says how long it waited. */
int rl_lock_acquire(rl_lock *l, int timeout_ms, int64_t *waited_ns, char *err);
/* Unlocks; then wakes a group-commit poster to lead, if one is waiting. */
void rl_lock_release(rl_lock *l);
/* Group commit (see lock.c): RL_OK when another process answered req
 * (its rc, res, err and, for a reservation, rv are set, bounded; what it
 * asked is left as the caller made it), RL_GROUP_LEAD when the lock is ours and req (with what rl_lock_take
 * finds) must be decided, RL_GROUP_NONE when the queue cannot be used; or
 * a failure. The wait is bounded by timeout_ms as in rl_lock_acquire. */
int rl_lock_join(rl_lock *l, int timeout_ms, rl_group_req *req, char *err);
/* As the leader, inside its transaction: takes the requests posted with
 * signature sig into batch[0..max); how many. */
size_t rl_lock_take(rl_lock *l, uint64_t sig, rl_group_req **batch, size_t max);
/* As the leader, in its transaction: 1 and the batch's mark once it took
 * requests of other processes; the store writes it into every key row the
 * batch writes from then on (rl_lock_resolve_fn reads it back); else 0. */
int rl_lock_batch(const rl_lock *l, uint64_t *mark);
/* As the leader, after commit or rollback and before rl_lock_release:
 * wakes the posters of the batch with their answers. */
void rl_lock_publish(rl_lock *l);
/* Who tells, after a holder died, what became of its batch. Set while
 * holding the lock, it also settles a death noticed before it was set. */
void rl_lock_on_recover(rl_lock *l, rl_lock_resolve_fn fn, void *ctx);
/* 1 when the file was found damaged while in use (truncated under us):
 * the handle stops using it and relies on SQLite's own locking. */
int rl_lock_damaged(const rl_lock *l);
/* Slot wake-ups (rl_store_ops.slot_*): the word a release moves, a sleep
 * until it moves from seen (at most ns), and the move, which wakes every
 * sleeper of every process. rl_lock_epoch fails when the file cannot be
 * used (then sleep without it). */
int rl_lock_epoch(rl_lock *l, uint32_t *epoch);
void rl_lock_epoch_wait(rl_lock *l, uint32_t seen, int64_t ns);
void rl_lock_epoch_bump(rl_lock *l);
void rl_lock_close(rl_lock *l);

/* Test builds (RL_TEST_HOOKS) call rl__lock_hook at each step of the
 * protocol, so a test can stop a process at an exact point and race
 * another against it without sleeps. */
enum rl_lock_step {
    RL_STEP_MEMBER,     /* holds its member byte, before clearing what a dead one left */
    RL_STEP_CLAIMED,    /* claimed a slot, before copying its request in */
    RL_STEP_POSTED,     /* posted, before waiting */
    RL_STEP_TAKEN,      /* leader: took posted requests, before deciding them */
    RL_STEP_COMMITTED,  /* leader: committed, before answering */
    RL_STEP_ANSWERED,   /* poster: read its answer, before freeing its slot */
    RL_STEP_LOCKED,     /* took the lock (from a dead owner too), before recovery */
    RL_STEP_REBUILDING, /* alone: truncated the file, before allocating it */
    RL_STEP_ATTACHING,  /* not alone: before waiting for the builder to finish */
    RL_STEP_WAITING,    /* found the lock taken (and no slot, or none wanted): before sleeping */
    RL_STEP_LEAD,       /* poster: its slot was told to lead, before it tries the lock */
    RL_STEP_DAMAGED     /* opening: found the file damaged, before letting it go */
};
/* Test builds also read the time through rl__lock_clock when it is set
 * (monotonic ns; CLOCK_MONOTONIC otherwise): every decision the lock code
 * takes by time reads it (a caller's busy timeout, a poster's spin, the
 * order of posting), so a test moves a process past its deadline instead of
 * waiting for it. Futex naps stay real time: they only bound a wake-up that
 * may not come, after which the kernel is asked who is alive. */
#ifdef RL_TEST_HOOKS
extern void (*rl__lock_hook)(int step);
extern int64_t (*rl__lock_clock)(void);
#define RL_LOCK_HOOK(step)       \
    do {                         \
        if (rl__lock_hook)       \
            rl__lock_hook(step); \
    } while (0)
#else
#define RL_LOCK_HOOK(step) ((void)0)
#endif

#endif
