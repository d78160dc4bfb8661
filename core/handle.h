/*
 * handle.h - the handle (struct rl) and what the files serving it share;
 * private to core/. Other folders and the tests see only rl_int.h.
 *
 * The handle's files, one job each:
 *   rl.c        open and close, messages, the clock, the policy cache
 *   decide.c    the transaction runner and the decide-each-request loop;
 *               rl_allow, rl_acquire, rl_acquire_keys, rl_allow_batch
 *   group.c     group commit: deciding other processes' queued requests
 *   reserve.c   rl_reserve and rl_cancel, leases
 *   refuse.c    the counters of refusals answered from a read snapshot
 *   wait.c      rl_wait, rl_wait_ex, rl_wait_wake
 *   read.c      rl_stats, rl_totals_get, rl_keys_list, rl_leases_list
 *   tiers.c     the policy: tiers, rules, assignments, rl_load_tiers
 *   cooldown.c  rl_penalize, rl_observe_headers
 *   admin.c     rl_reset, rl_reset_match, rl_prune, rl_doctor (rl_int.h, and
 *               rl__lease_live)
 * Below them the engine (eval.c, gcra.c, window.c, state.c, policy.c:
 * no I/O) and the store interface (store.h).
 *
 * Locking: r->mu serialises the calls on a handle. Whatever touches
 * r->store, r->pol or r->err holds it (rl__lock). r->err is the message
 * of the call in progress, where the store writes too (rl_store.err);
 * rl__unlock hands it to the calling thread (rl_errmsg).
 */
#ifndef RL_HANDLE_H
#define RL_HANDLE_H

#include "eval.h"
#include "rl_int.h"

#include <pthread.h>
#include <sys/types.h>

/* ---- refusals decided from a read snapshot (refuse.c) -------------------- */

/* RL_PENDING_MAX and RL_PENDING_BOUND_NS: rl_int.h */

/* One key of the handle's table: refusals answered without a write, whose
 * counters are still to be added to the key's row, and a hint that the
 * key refuses (retry), which is what sends a call to the read path. */
typedef struct rl__pending {
    char key[RL_KEY_MAX + 1];
    int64_t count;      /* refusals not yet in the row; 0: only a hint */
    int64_t last_seen;  /* the last of them, by the handle's clock */
    int64_t row_seen;   /* the row's last_seen when the last of them was read */
    int64_t decisions;  /* the row's allowed + refused then: they only grow, but
                         * for a reset */
    int64_t first_seen; /* the row's when they were decided: its identity */
    int64_t since;      /* monotonic ns of the oldest of them */
    int64_t retry;      /* monotonic ns until which the key refused last; 0: none */
    uint64_t used;      /* last use, for eviction */
    int decided;        /* the transaction running decided the key (put_rows):
                         * its last_seen is the latest decision's */
} rl__pending;

struct rl__decision;

#define RL_ASSIGNED_CACHE 64

struct rl {
    pthread_mutex_t mu;
    rl_store *store;
    rl_policy pol;
    int64_t pol_version; /* -1: not loaded */
    rl_tier defaults;    /* rl_options.default_limits */
    int have_defaults;
    int store_clock;      /* no caller clock: the store's time if it has one */
    uint64_t sig;         /* rl_group_req.sig: what decides besides the database */
    uint64_t *tier_fp;    /* tier_fingerprint of each tier of pol */
    uint64_t defaults_fp; /* ... and of defaults */
    uint64_t rng;         /* draws state generations (rl__state_align) */
    uint64_t id;          /* never reused: tags this handle's messages in threads */
    rl *held_prev;        /* the handle the holder of mu held before (rl__lock) */
    rl_options o;
    int slot_freed;   /* the transaction running released a slot: wake waiters at commit */
    pid_t pid;        /* the process that opened it: a child after fork()
                       * writes none of the parent's pending refusals */
    size_t pend_n;    /* entries of pend in use */
    size_t pend_live; /* of them, with count > 0 */
    uint64_t pend_tick;
    struct rl__decision *rx; /* the read path's scratch, allocated on first use */
    rl__pending pend[RL_PENDING_MAX];
    /* A decision the store makes in one round trip (rl__tx hands it over),
     * and while core replays it, the time it was made at: a caller's clock
     * is read once for both. */
    const rl_fast_req *fast;
    int frozen;
    int64_t frozen_now;
    /* Explicit tiers (rl_key_assign) of keys this handle decided lately,
     * by a hash of the key: a plan for the store tells it which tier a
     * key's row should name (it checks; a miss only costs the usual way). */
    struct {
        uint64_t h;
        char tier[RL_NAME_MAX];
    } assigned[RL_ASSIGNED_CACHE];
    char err[RL_ERRMSG_MAX];
    /* A lease settle or cancel the store makes in one round trip (rl__tx
     * hands it over, as fast), and the leases this handle began lately,
     * which such a plan needs (fast_lease.c; allocated on first use). */
    const rl_fast_lease *fast_lease;
    struct rl__lease_memo *lease_memo;
};

/* ---- rl.c --------------------------------------------------------------- */

/* Inside a transaction: the cached policy brought to version (the one the
 * store reported with a row read), read again only when it changed. */
int rl__refresh_policy(rl *r, int64_t version);
/* A tier from the public rl_limit array (rl_options defaults, rl_tier_set). */
int rl__build_tier(rl_tier *t, const char *name, const rl_limit *limits, size_t n, char *err);

/* ---- tiers.c ------------------------------------------------------------ */

/* At rl_open: t, the options' default limits (named RL_DEFAULTS_TIER), made
 * the store's in one write transaction if it holds none, or other ones and
 * override is set; RL_OK if it holds the same. RL_EMISMATCH if it holds
 * other ones; a read-only handle only compares. A public call (messages). */
int rl__defaults_open(rl *r, const rl_tier *t, int override);

/* The key's limits: its tier (the stored defaults are the tier "default"),
 * else this handle's own defaults, which serve only when the store lost
 * its policy (a Redis restart); NULL: none. */
static inline const rl_tier *rl__key_tier(rl *r, const char *key, const rl_row *row, int *source)
{
    const rl_tier *t = rl_policy_resolve(&r->pol, key, row->tier, source);
    if (!t && r->have_defaults) {
        *source = RL_TIER_OPTIONS;
        t = &r->defaults;
    }
    return t;
}

/* The fingerprint of t, a tier of the cached policy or the defaults. */
static inline uint64_t rl__tier_fp(const rl *r, const rl_tier *t)
{
    if (t == &r->defaults)
        return r->defaults_fp;
    return r->tier_fp[t - r->pol.tiers];
}

/* rl__state_align for tier t of this handle. */
static inline void rl__align(rl *r, const rl_tier *t, const rl_state *old, rl_state *st,
                             int64_t now)
{
    rl__state_align(t, rl__tier_fp(r, t), &r->rng, old, st, now);
}
/* ---- decide.c ----------------------------------------------------------- */

/* Whether rc says the store failed (the fail mode answers), not the call. */
static inline int rl__store_failure(int rc)
{
    return rc == RL_EBUSY || rc == RL_ESTORE || rc == RL_EREADONLY || rc == RL_EFULL ||
           rc == RL_ECORRUPT || rc == RL_ENOMEM || rc == RL_EVERSION || rc == RL_ECONNECT ||
           rc == RL_EAUTH;
}
/* A store failure's answer: allowed and degraded under RL_FAIL_OPEN. */
void rl__failed_result(const rl *r, rl_result *res);
/* Argument checks, with the message every call gives. */
int rl__check_request(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs,
                      size_t ncosts);

/* One request of a decision: what rl_allow, rl_acquire*, rl_reserve,
 * rl_wait* or rl_lease_begin asks. */
typedef struct rl__req {
    const char *const *keys;
    size_t nkeys;
    const rl_cost *costs;
    size_t ncosts;
    int64_t max_delay_ns;   /* 0: now or never; INT64_MAX: no limit */
    int64_t ttl;            /* a lease's */
    rl_lease_rec *lease;    /* NULL: no lease; else one per key */
    int64_t rank;           /* a slot waiter's place (rl__rank_of); 0: arrives now */
    const int64_t *wait_id; /* NULL, or per key the caller's own waiter row (0: none),
                             * deleted when it is admitted */
    rl_result *res;         /* its answer */
    rl_reservation *rv;     /* NULL: not a reservation */
    const char *key1;       /* room for keys, when a request has one key */
    int64_t owner_pid;      /* a lease's owner, when not this process (group
                             * commit: the poster's); 0: this process */
    int64_t owner_pstart;
    struct rl__end *end; /* not NULL: a lease settle or cancel, not a
                             * decision (group commit); keys unused */
} rl__req;

/* A lease settle (actual, n: its costs; n 0 settles each at its estimate)
 * or cancel (actual NULL), inside a write transaction (reserve.c): the
 * lease as it was is left in rec, and whether it had expired (then only
 * its slots were freed) in expired. */
typedef struct rl__end {
    int64_t id;
    const rl_cost *actual;
    size_t n;
    rl_lease_rec rec;
    int expired;
} rl__end;
int rl__lease_end_in(rl *r, rl__end *e);
/* The answer to an end whose lease had expired: RL_ETIMEOUT, its message. */
int rl__lease_expired(rl *r, int64_t id);

/* Whether every resource q names is counted by tier t or by some other one
 * (or the handle admits any): else RL_ENOLIMIT, with its message. */
int rl__check_resources(rl *r, const rl_tier *t, const rl__req *q);

/* ---- fast.c ------------------------------------------------------------- */

/* Whether the store can decide q in one round trip (decide_fast): then f
 * holds what it needs. Under the handle's mutex. */
int rl__fast_plan(rl *r, const rl__req *q, rl_fast_req *f);
/* The same for rl_cancel of rv (reserve.c's cancel_tx). */
int rl__fast_cancel_plan(rl *r, const rl_reservation *rv, rl_fast_req *f);
/* The same for rl_penalize of key (cooldown.c's penalize_tx). */
int rl__fast_penalize_plan(rl *r, const char *key, uint64_t id, int64_t duration_ns,
                           rl_fast_req *f);
/* What decide_key read of key's explicit tier ("" none), for later plans. */
void rl__fast_note(rl *r, const char *key, const char *tier);
/* The tier a planned call on key is decided under, and in st the state of
 * a key new to it; NULL: the usual way (fast.c). */
const rl_tier *rl__fast_tier(rl *r, const char *key, char tier[RL_NAME_MAX], rl_state *st);

/* ---- fast_lease.c ------------------------------------------------------- */

/* A lease this handle was granted: remembered (by id) for a settle or
 * cancel that the store may make in one round trip. Under the mutex. */
void rl__lease_note(rl *r, const rl_lease_rec *rec);
/* Whether the store can settle (actual != NULL) or cancel lease in one
 * round trip: then f holds what it needs. Under the handle's mutex; the
 * lease is forgotten either way (it ends now, or goes the usual way). */
int rl__fast_lease_plan(rl *r, const rl_lease *lease, const rl_cost *actual, size_t n,
                        rl_fast_lease *f);
/* Frees what fast_lease.c keeps in the handle (rl_close). */
void rl__lease_memo_free(rl *r);

/* The decide loop's scratch: one decision in the making. */
typedef struct key_eval {
    rl_row row;
    rl_state st;
    const rl_tier *t;
} key_eval;

typedef struct rl__decision {
    lim_eval ev[RL_MAX_KEYS * RL_MAX_LIMITS];
    key_eval ke[RL_MAX_KEYS];
    size_t n;
    int allowed, cool_key;
    int snapshot; /* in a read transaction: nothing is written (a dry reclaim) */
    int64_t now, version, cool_delay, delay;
} decision;

/* Requests decided in one write transaction, in order, each as it would be
 * alone: the one loop behind rl_allow, rl_acquire*, rl_reserve, rl_wait*,
 * rl_lease_begin, rl_allow_batch and group commit. The caller says where
 * the requests come from and where their answers go. */
typedef struct rl__batch rl__batch;
struct rl__batch {
    size_t n;
    void *ctx;
    /* Request i into q, checked as a caller's arguments would be: RL_OK,
     * or why it cannot be decided, with the message in r->err; q->res is
     * set, and its result zeroed, either way. q->key1 and cost
     * (RL_MAX_LIMITS) are room for a request not kept in this form. */
    int (*get)(rl *r, rl__batch *b, size_t i, rl__req *q, rl_cost *cost);
    /* Request i's outcome: rc, with *q->res filled when rc is RL_OK. */
    void (*put)(rl *r, rl__batch *b, size_t i, int rc);
    /* Optional: called once every request so far is decided; appends
     * more (group commit: those queued since) and returns how many. */
    size_t (*more)(rl *r, rl__batch *b);
    const unsigned char *skip; /* requests answered already; NULL: none */
    size_t prefetch_min;       /* read rows ahead when at least this many keys */
    const char **keys;         /* room for every request's keys, for prefetch */
    decision *x;
    size_t failed; /* out: the request whose store failure ended the loop,
                    * SIZE_MAX if none did */
};
/* Inside a write transaction: decides b's requests. A request that cannot
 * be decided is answered alone and the others go on; a store failure
 * stops the loop (b->failed) and is returned, since the transaction is
 * lost. */
int rl__decide_each(rl *r, rl__batch *b);
/* One request as a public call: checked, decided in its own transaction
 * (or, without a lease, through group commit when the store offers it:
 * rl__decide_grouped), answered. max_delay_ns < 0 is 0; for a lease it is
 * the lease's TTL. */
int rl__decide(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs, size_t ncosts,
               int64_t max_delay_ns, rl_result *res, rl_reservation *rv, rl_lease_rec *lease);
/* The same for a request the caller built (a lease with a delay, a slot
 * waiter's): q->res, q->keys and q->costs set, the rest as rl__req says. */
int rl__decide_req(rl *r, const rl__req *q);

/* rl_allow, rl_acquire and rl_acquire_keys, when the handle's last
 * decision on one of keys was a refusal whose retry time is still ahead:
 * the decision made in a read transaction, without the write lock. A
 * refusal that would write nothing but counters is answered from it
 * (RL_OK), its counters left pending (refuse.c); anything else
 * (admitted, a store failure, an argument error, a row not aligned yet)
 * returns RL_GROUP_NONE and the caller takes the write path, which
 * decides again. */
int rl__decide_read(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs, size_t n,
                    rl_result *res);

/* A slot waiter woken (rl_wait_ex, rl__lease_wait): whether q, a request
 * already checked, is still refused within its horizon (a concurrency
 * limit is full), decided from a read snapshot without writing anything
 * (leases that would be reclaimed are freed in its copy only); q->res is
 * then set as the write path would. 0: admitted, or anything else: the
 * caller decides on the write path. */
int rl__decide_peek_full(rl *r, const rl__req *q);

/* ---- refuse.c ----------------------------------------------------------- */

/* Monotonic ns, or the test hook's (rl__pending_clock). */
int64_t rl__pending_mono(void);
/* Whether one of keys refused last with a retry time still ahead. */
int rl__pending_hinted(rl *r, const char *const *keys, size_t nkeys);
/* Whether one of keys has refusals not yet written (they are folded by the
 * next usual write transaction that decides it). */
int rl__pending_counts(rl *r, const char *const *keys, size_t nkeys);
/* After a write-path decision of rl_allow/rl_acquire/rl_acquire_keys:
 * a refusal hints its deciding key; an admission clears the keys' hints. */
void rl__pending_note(rl *r, const char *const *keys, size_t nkeys, const rl_result *res);
/* A refusal answered from a read snapshot: one pending refusal on each
 * key of the decision (rows[k] as read). Returns RL_OK, or an error when
 * there is no room even after a flush (the caller decides again on the
 * write path). */
int rl__pending_add(rl *r, const char *const *keys, size_t nkeys, const rl_row *rows, int64_t now,
                    int64_t retry_after_ns);
/* Inside a write transaction, after its body: adds the pending counts to
 * their rows (rl__tx calls it; rl__pending_done after the commit). */
int rl__pending_fold(rl *r);
void rl__pending_done(rl *r);
/* put_rows decided key in the transaction running (rl__tx clears the
 * marks when it begins). */
void rl__pending_decided(rl *r, const char *key);
void rl__pending_begin(rl *r);

/* ---- wait.c ------------------------------------------------------------- */

/* Waits until a lease on each of keys[0..nkeys) is admitted (the rates,
 * cool-downs and concurrency slots of every key at once) and takes them in
 * one transaction: leases[k] is keys[k]'s, each with the whole estimate and
 * the slots of its own key. Waiters for a slot queue in the store, in
 * priority order and in arrival order within a priority (rl_wait_ex's
 * rules), and are woken when a slot is released. timeout_ns as rl_wait's
 * (RL_FOREVER: no limit). On RL_OK every lease is held and its time to act
 * has come. Returns RL_OK; RL_ETIMEOUT (nothing held; res names the limit
 * that refused and when to retry); RL_ECANCELED; rl_lease_begin's errors. */
int rl__lease_wait(rl *r, const char *const *keys, size_t nkeys, const rl_cost *est, size_t n,
                   rl_priority priority, int64_t ttl_ns, int64_t timeout_ns,
                   const volatile sig_atomic_t *cancel, rl_lease *leases, rl_result *res);

/* ---- group.c ------------------------------------------------------------ */

/* rl_allow, rl_acquire, rl_acquire_keys (rv NULL: max_delay_ns unused),
 * reservations (rl_reserve, rl_wait: rv set) and lease begins (lease set,
 * one key: max_delay_ns is its TTL; lease->id and ->expires answered)
 * through group commit, when the store offers it and the handle reads the
 * shared clock: RL_GROUP_NONE when not. Else the call's answer, exactly as
 * rl__decide would have given it (rv zeroed unless reserved). */
int rl__decide_grouped(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs, size_t n,
                       int64_t max_delay_ns, rl_result *res, rl_reservation *rv,
                       rl_lease_rec *lease);
/* rl_lease_settle (actual set) and rl_lease_cancel (actual NULL) of lease
 * id through group commit, as rl__decide_grouped: RL_GROUP_NONE when it
 * cannot, else the call's answer (RL_ETIMEOUT when the lease had expired).
 * Arguments are checked. */
int rl__end_grouped(rl *r, int64_t id, const rl_cost *actual, size_t n);

/* ---- reserve.c ---------------------------------------------------------- */

/* The units of each resource that live slot waiters ranked before the
 * caller want (filled by rl__reclaim): a concurrency limit counts them as
 * taken, so a slot that comes free goes to the head of the queue. */
typedef struct rl__ahead {
    int64_t rank, self; /* in: the caller's place and its own waiter row (0: none) */
    size_t n;           /* out */
    char resource[RL_MAX_LIMITS][RL_NAME_MAX];
    int64_t amount[RL_MAX_LIMITS];
} rl__ahead;

/* Inside a write transaction: ends the key's expired leases and those of
 * dead owners, freeing what they hold in st; *soonest is the earliest
 * expiry of a lease that stays (INT64_MIN: none). dry (in a read
 * transaction): frees them in st only and deletes nothing. */
int rl__reclaim(rl *r, const char *key, rl_state *st, int64_t now, int64_t *soonest,
                rl__ahead *ahead, int dry);
/* A slot waiter's place in the queue: when it came, a batch waiter as if
 * RL_BATCH_AGE_NS later (it ages into the interactive queue). */
static inline int64_t rl__rank_of(int64_t since, int priority)
{
    return priority == RL_PRIORITY_BATCH ? rl__sat_add(since, RL_BATCH_AGE_NS) : since;
}
/* Whether a lease still holds what it took at time now: 1 while its TTL
 * runs and its owner lives (or cannot be told dead); 0 when it is
 * reclaimable. The one test of rl__reclaim, the readers (read.c) and
 * rl_prune and rl_doctor (admin.c). */
int rl__lease_live(const rl_lease_rec *rec, int64_t now);
/* A lease record of this process on key from now until expires, with the
 * estimate costs[0..n): what a granted lease and a slot waiter share. */
void rl__lease_fill(rl_lease_rec *rec, const char *key, int64_t now, int64_t expires,
                    const rl_cost *costs, size_t n);

#endif
