/*
 * rd.h - the Redis store's private interface: its blob codecs (codec.c).
 *
 * Redis keeps each rl key as one hash (its row, its leases and a version
 * token) and the policy as one blob. These are the byte formats; they are
 * little-endian and length-checked like core/state.c, so a damaged or
 * foreign value is refused with RL_ECORRUPT and never read past its end.
 */
#ifndef RL_RD_H
#define RL_RD_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

/* Row blob, format 1: byte 0 = 1, byte 1 = tier length, the tier, five
 * 8-byte counters (allowed, refused, units, first_seen, last_seen), then
 * the state blob (core/state.c) to the end. */
#define RD_ROW_MAX (2 + RL_NAME_MAX + 5 * 8 + RL_STATE_MAX)
size_t rd_row_encode(const rl_row *row, unsigned char *buf);
int rd_row_decode(rl_row *row, const unsigned char *buf, size_t len);

/* Lease blob, format 1: byte 0 = 1, then created, expires, pid, pstart and
 * the owner's host id as 8-byte words, then the lease body (core/lease.c).
 * A lease taken on another host keeps its pid on disk but decodes with pid 0
 * ("owner unknown: only the TTL can tell"), because that pid means nothing
 * to this machine's /proc. */
#define RD_LEASE_MAX (1 + 5 * 8 + RL_LEASE_BODY_MAX)
size_t rd_lease_encode(const rl_lease_rec *rec, uint64_t host, unsigned char *buf);
int rd_lease_decode(rl_lease_rec *rec, uint64_t host, const unsigned char *buf, size_t len);
/* This machine's id for lease owners: a hash of its boot id, which also
 * changes at reboot, when every pid is new. */
uint64_t rd_host_id(void);

/* Policy blob, format 1 (malloc'd into *buf): default tier, fail mode,
 * tiers with their limits, rules. Decoding validates every name and limit
 * as a tier file would be, so a tampered value cannot reach the math. */
int rd_policy_encode(const rl_policy *p, unsigned char **buf, size_t *len);
int rd_policy_decode(rl_policy *p, const unsigned char *buf, size_t len);

#endif
