/*
 * rd.h - the Redis store's private interface, shared by its files:
 *
 *   redis.c   opening: the URL and its options, the connection and its
 *             round trips (errors, backoff, SIGPIPE), rl_store_ops
 *   rows.c    the transaction's cache of rows, rows and the policy, TIME
 *   commit.c  transactions: begin, the optimistic commit script,
 *             conflicts and claims
 *   fast.c    the decision script: one round trip for plain decisions
 *   fast_lease.c  the lease script: one round trip for a lease settle or
 *             cancel
 *   leases.c  leases
 *   admin.c   listing keys, totals, import's clear, health checks
 *   codec.c   the byte formats of stored values
 *
 * Redis keeps each rl key as one hash (its row, its leases and a version
 * token) and the policy as one blob. The codecs' byte formats are
 * little-endian and length-checked like core/state.c, so a damaged or
 * foreign value is refused with RL_ECORRUPT and never read past its end.
 * Nothing here is seen outside store/redis/: core/ knows the store only
 * through rl_store_ops and rl_store_redis_open (store.h).
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

/* ---- the store (every file but codec.c) ----------------------------------- */

struct redisContext; /* hiredis: the files that talk to Redis include it */
struct redisReply;

#define RD_PREFIX_MAX 64
#define RD_NAME_MAX (RD_PREFIX_MAX + 4 + RL_KEY_MAX + 2)
#define RD_VER_MAX 24
#define RD_SHA_MAX 48 /* a script's SHA1 in hex, and its NUL */
/* The data format this library writes on a new server. Format 2 names
 * every Redis key "{PREFIX}..." so that all of one limiter's data is one
 * Redis Cluster hash slot and every script's keys are on one shard;
 * format 1 named them "PREFIX..." and rows "PREFIX k:{KEY}". The format is
 * kept in PREFIX "format" (format 1's name, which every library reads) and,
 * from format 2, also in "{PREFIX}format". A server that holds format 1 is
 * read and written in format 1 (s->format), so old and new libraries go on
 * sharing it; a newer format is refused with RL_EVERSION. */
#define RD_FORMAT 2
/* Redirections (MOVED) followed by one call before it gives up. */
#define RD_HOPS_MAX 3

typedef struct rd_lease {
    rl_lease_rec rec;
    unsigned char raw[RD_LEASE_MAX]; /* as stored: re-written byte for byte */
    size_t raw_len;
} rd_lease;

/* One key read by the current transaction. */
typedef struct rd_row {
    char key[RL_KEY_MAX + 1];
    char ver[RD_VER_MAX]; /* version read: "" absent, "*" do not check */
    rl_row row;
    rd_lease *leases;
    size_t n_leases, cap_leases;
    int64_t *gone; /* lease ids removed by this transaction */
    size_t n_gone, cap_gone;
    int dirty;
    /* decided on the server (fast.c): the row it wrote, which core's
     * replay must put byte for byte */
    unsigned char expect[RD_ROW_MAX];
    size_t expect_len;
} rd_row;

typedef struct rd_store {
    rl_store base;
    struct redisContext *c;
    char where[300]; /* for messages: the URL without its password */
    char host[256], sock[256], user[128], pass[256];
    int port, db, timeout_ms, readonly;
    int64_t idle_ttl_ms;
    char prefix[RD_PREFIX_MAX];
    int format;                          /* of the server's data: 1 or 2, set when connecting */
    char moved[300];                     /* HOST:PORT of a MOVED reply, until followed */
    char seed_host[256], seed_sock[256]; /* the address given, where a lost */
    int seed_port;                       /* connection starts again */
    char sha[RD_SHA_MAX];                /* of the commit script, "" until loaded */
    char sha_fast[RD_SHA_MAX];           /* of the decision script (fast.c) */
    char sha_cancel[RD_SHA_MAX];         /* of rl_cancel's script (fast.c) */
    char sha_penalize[RD_SHA_MAX];       /* of rl_penalize's script (fast.c) */
    uint64_t fast_hits;                  /* decisions the server made (tests read it) */
    int64_t retry_at;
    int backoff_ms;
    uint64_t host_id, rng;
    /* the transaction; replay: core decides again what the decision
     * script decided (fast.c), and commit only compares */
    int in_tx, write, clear, replay;
    rd_row **rows;
    size_t n_rows, cap_rows;
    int have_pver, have_time, pol_loaded, pol_dirty;
    int64_t pver, time_ns;
    rl_policy pol;
    /* What a conflicting commit sent back, for the retry that follows at
     * once (see rd_begin): the rows it wrote, as they are now. */
    rd_row **warm;
    size_t n_warm;
    int64_t warm_pver, warm_time, warm_at;
    char token[20];             /* this handle's name in claims */
    int losses;                 /* conflicts in a row: from RD_CLAIM_AFTER on, claim */
    char sha_lease[RD_SHA_MAX]; /* of the lease script (fast_lease.c) */
    uint64_t lease_hits;        /* lease ends the server made (tests read it) */
    /* the replay of a lease begin that the decision script made (fast.c):
     * fl_want set, the id it gave (0: it refused) and the record it wrote,
     * which rd_lease_put hands core (fl_used) and rd_fast_check compares */
    int fl_want, fl_used;
    int64_t fl_id;
    unsigned char fl_raw[RD_LEASE_MAX];
    size_t fl_len;
    uint64_t begin_hits; /* lease begins the server made (tests read it) */
} rd_store;

/* s->replay of a lease settle or cancel (fast_lease.c); 1: fast.c's */
#define RD_REPLAY_LEASE 2

/* redis.c: names and round trips. Every failure sets the message and
 * returns its RL_E* code; error replies are failures too, and a lost
 * connection is dropped (RL_ECONNECT) and retried after a backoff. */
int64_t rd_mono_ms(void);
/* A key's row name and the name of another of the store's values, into
 * RD_NAME_MAX bytes: "{PREFIX}k:KEY" and "{PREFIX}what" in format 2,
 * PREFIX "k:{KEY}" and PREFIX what in format 1. */
size_t rd_row_name(const rd_store *s, const char *key, char *buf);
void rd_name_of(const rd_store *s, const char *what, char *buf);
/* What comes before the key in a row's name, for scripts that name rows
 * from the index: "{PREFIX}k:", or in format 1 PREFIX "k:{", where the
 * name then ends with "}" (a prefix never holds a brace). */
void rd_row_pre(const rd_store *s, char *buf);
/* One command on a connection that exists (connecting uses it too). */
int rd_plain(rd_store *s, struct redisReply **out, const char *what, int argc, const char **argv,
             const size_t *len);
/* One command, connecting first if need be. */
int rd_cmd(rd_store *s, struct redisReply **out, const char *what, int argc, const char **argv,
           const size_t *len);
/* n commands in one write, their n replies into out[]; on failure every
 * reply is freed. */
int rd_pipeline(rd_store *s, size_t n, int *argc, const char ***argv, size_t **len,
                struct redisReply **out, const char *what);

/* rows.c: the transaction's cache. */
void rd_row_free(rd_row *w);
/* Forgets the transaction: its rows, its policy copy, what it read. */
void rd_tx_reset(rd_store *s);
/* The transaction's row of key, or NULL if it has not read it. */
rd_row *rd_cached(rd_store *s, const char *key);
/* Room for one more element in an array that doubles: returns the array
 * (moved, if it had to grow) and updates *cap, or NULL when out of memory,
 * leaving the old array and *cap as they were. */
void *rd_room(void *v, size_t n, size_t *cap, size_t size, size_t first);
/* Adds w to the transaction's rows (it owns it then); 0 on success. */
int rd_push_row(rd_store *s, rd_row *w);
int rd_add_lease(rd_row *w, const rl_lease_rec *rec, const unsigned char *raw, size_t len);
/* Fills w from an HGETALL reply. */
int rd_parse_hash(rd_store *s, rd_row *w, const struct redisReply *r);
/* Reads every key of keys[] not yet in the cache (one round trip). */
int rd_load(rd_store *s, const char *const *keys, size_t n);
/* The cached row of key, read first if need be. */
int rd_row_of(rd_store *s, const char *key, rd_row **out);
int rd_row_get(rl_store *base, const char *key, rl_row *row, int64_t *version);
int rd_row_put(rl_store *base, const char *key, const rl_row *row);
int rd_row_delete(rl_store *base, const char *key);
int rd_policy_version(rl_store *base, int64_t *version);
int rd_policy_get(rl_store *base, rl_policy *p);
int rd_policy_put(rl_store *base, const rl_policy *p);
int rd_tier_put(rl_store *base, const rl_tier *t);
int rd_tier_delete(rl_store *base, const char *name);
int rd_now(rl_store *base, int64_t *ns);
int rd_prefetch(rl_store *base, const char *const *keys, size_t n);

/* commit.c */
/* SCRIPT LOAD of text into sha; what names it in messages. */
int rd_script_load(rd_store *s, const char *text, char sha[RD_SHA_MAX], const char *what);
/* SCRIPT LOAD of the commit script into s->sha. */
int rd_load_script(rd_store *s);
/* Forgets a conflict's snapshot (s->warm). */
void rd_warm_drop(rd_store *s);
/* xorshift64* over s->rng: version tokens, the handle's claim token. */
uint64_t rd_next_rand(rd_store *s);
int rd_begin(rl_store *base, int write);
int rd_commit(rl_store *base);
void rd_rollback(rl_store *base);

/* fast.c: the one-round-trip decision (rl_store_ops.decide_fast) */
int rd_load_fast_script(rd_store *s);
int rd_decide_fast(rl_store *base, const rl_fast_req *q);
/* The commit of a replay (a decision's, or a lease settle's or cancel's:
 * RD_REPLAY_LEASE): core's rows and leases against the script's; writes
 * nothing, ends the transaction. */
int rd_fast_check(rd_store *s);

/* fast_lease.c: the one-round-trip lease settle and cancel
 * (rl_store_ops.lease_end_fast) */
int rd_load_lease_script(rd_store *s);
int rd_lease_end_fast(rl_store *base, const rl_fast_lease *q);

/* leases.c */
int rd_lease_put(rl_store *base, rl_lease_rec *rec);
int rd_lease_get(rl_store *base, int64_t id, rl_lease_rec *rec);
int rd_lease_delete(rl_store *base, const char *key, int64_t id);
int rd_leases_each(rl_store *base, const char *key, rl_lease_fn fn, void *ctx);
int rd_lease_restore(rl_store *base, const rl_lease_rec *rec);

/* admin.c */
int rd_keys_list(rl_store *base, const char *match, int sort, size_t limit, rl_row_fn fn,
                 void *ctx);
int rd_keys_page(rl_store *base, const char *after, const char *match, size_t limit, rl_row_fn fn,
                 void *ctx);
int rd_totals(rl_store *base, rl_totals *t);
int rd_state_clear(rl_store *base);
int rd_doctor(rl_store *base, rl_check_fn fn, void *ctx);

#endif
