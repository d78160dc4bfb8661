/*
 * lease.h - lease records and their owners (see lease.c).
 */
#ifndef RL_LEASE_H
#define RL_LEASE_H

#include "store.h"

/* This process: its pid and start time (-1 if /proc is unreadable). */
void rl_owner_self(int64_t *pid, int64_t *pstart);
/* 0 when the owner is certainly gone (no such pid, a zombie, or a new
 * process under the same pid); 1 when it lives or cannot be told. */
int rl_owner_alive(int64_t pid, int64_t pstart);

#endif
