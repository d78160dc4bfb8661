/*
 * rl_int.h - what config/ and tests may use of the handle's internals.
 */
#ifndef RL_INT_H
#define RL_INT_H

#include "store.h"

/* Replaces all tiers, rules and settings with p in one transaction. */
int rl__policy_replace(rl *r, const rl_policy *p);
/* The handle's error buffer (RL_ERRMSG_MAX bytes). */
char *rl__errbuf(rl *r);
/* The store behind a handle (for tests and core/admin.c). */
rl_store *rl__store(rl *r);
/* The handle's mutex (every public call holds it) and its clock. */
void rl__lock(rl *r);
void rl__unlock(rl *r);
int64_t rl__now(rl *r);
/* The signature of the handle's group-commit requests (rl_group_req.sig). */
uint64_t rl__group_sig(const rl *r);

/* Retrying a transaction an optimistic store refused (RL_ECONFLICT):
 *   rl_retry t = RL_RETRY_INIT;
 *   again: begin ... commit ... if (rl__conflict_retry(r, &t, &rc)) goto again;
 * Returns 1 to run it again; 0 to give up, with *rc unchanged, or turned into
 * RL_EBUSY once busy_timeout_ms has passed. */
typedef struct rl_retry {
    int attempt;
    int64_t deadline;
    uint64_t rng;
} rl_retry;
#define RL_RETRY_INIT { 0, 0, 0x2545F4914F6CDD1DULL }
int rl__conflict_retry(rl *r, rl_retry *t, int *rc);

#endif
