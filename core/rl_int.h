/*
 * rl_int.h - the narrow part of the handle's internals that the files
 * outside it use: core/admin.c, export/ (rl_export, rl_import) and the
 * tests. The handle itself is core/handle.h, private to core/.
 */
#ifndef RL_INT_H
#define RL_INT_H

#include "store.h"

/* The buffer for the message of the call in progress on r: the handle's
 * own while this thread holds r's mutex (rl__lock; the store writes there
 * too), else this thread's own for r. Either way rl_errmsg(r) shows it to
 * this thread once the call returns (RL_ERRMSG_MAX bytes). */
char *rl__errbuf(rl *r);
/* The store behind a handle (for tests and core/admin.c). */
rl_store *rl__store(rl *r);
/* The handle's mutex, which every public call holds while it uses the
 * store. rl__lock clears the handle's message; rl__unlock hands it to the
 * calling thread (rl_errmsg) and releases the mutex. */
void rl__lock(rl *r);
void rl__unlock(rl *r);
/* The handle's clock: the caller's, the store's, or CLOCK_REALTIME. */
int64_t rl__now(rl *r);
/* The signature of the handle's group-commit requests (rl_group_req.sig). */
uint64_t rl__group_sig(const rl *r);
/* RL_OK, or RL_EINVAL with the message every call gives for a bad key. */
int rl__check_key(rl *r, const char *key);

/* The transaction runner (core/decide.c), with the handle's mutex held:
 * begin a write transaction, run body, commit (or roll back when either
 * fails), and all of it again when an optimistic store (Redis) reports a
 * conflict, until busy_timeout_ms (then RL_EBUSY). */
int rl__tx(rl *r, int (*body)(rl *r, void *ctx), void *ctx);
/* A public call that writes: rl__tx under the handle's mutex, then done,
 * if given, with the final code, returning the call's. A call that
 * returns RL_OK leaves no message. */
int rl__write_tx(rl *r, int (*body)(rl *r, void *ctx), int (*done)(rl *r, void *ctx, int rc),
                 void *ctx);

/* Refusals answered from a read snapshot have their counters written
 * later (core/refuse.c): with the handle's mutex held, writes them now in
 * one transaction. A read that reports counters calls it first; export and
 * import too. A failure leaves them pending (and no message). */
void rl__pending_flush(rl *r);
#define RL_PENDING_MAX 16 /* keys with refusals not yet written, or hints */
/* The longest a refusal decided from a read snapshot waits before its
 * counters are written, while the handle is used (docs/api.md, rl_stats). */
#define RL_PENDING_BOUND_NS RL_SECOND

#ifdef RL_TEST_HOOKS
/* Test builds: write transactions begun by rl__tx (every attempt), and
 * the monotonic clock of the pending refusals (NULL: CLOCK_MONOTONIC). */
extern unsigned long rl__test_write_tx;
extern int64_t (*rl__pending_clock)(void);
/* Test builds: the sleeps of rl_wait, rl_wait_ex and the lease waits, and
 * the longest sleep with a cancel flag (0: RL_CANCEL_POLL_NS, 100 ms). */
extern unsigned long rl__test_wait_sleeps;
extern int64_t rl__test_cancel_poll_ns;
#endif

/* Retrying a transaction an optimistic store refused (RL_ECONFLICT):
 *   rl_retry t = RL_RETRY_INIT;
 *   again: begin ... commit ... if (rl__conflict_retry(r, &t, &rc)) goto again;
 * Returns 1 to run it again; 0 to give up, with *rc unchanged, or turned into
 * RL_EBUSY once busy_timeout_ms has passed. rl__tx does this already. */
typedef struct rl_retry {
    int attempt;
    int64_t deadline;
    uint64_t rng;
} rl_retry;
#define RL_RETRY_INIT               \
    {                               \
        0, 0, 0x2545F4914F6CDD1DULL \
    }
int rl__conflict_retry(rl *r, rl_retry *t, int *rc);

#endif
