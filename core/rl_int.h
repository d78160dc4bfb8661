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

#endif
