/*
 * store.h - the one small interface between core/ and persistence.
 *
 * A store keeps rows (one per key: explicit tier, encoded bucket state and
 * counters) and the policy (tiers, rules, settings) with a version that goes
 * up on every policy write. core/ does all the deciding; a store only has to
 * give it serialisable read-modify-write transactions:
 *
 *   begin(write=1) ... row_get / row_put ... commit   (or rollback)
 *
 * A write transaction excludes every other writer in every process until it
 * commits. Stores report failures as RL_E* codes with a one-line message in
 * the handle's error buffer (rl_store.err, written with rl_seterr). No store
 * function keeps pointers to caller memory after it returns.
 *
 * Stores use this header and the engine's (policy.h, parse.h, bytes.h),
 * never the handle's (rl_int.h) nor anything of core/rl.c. A new store
 * fills rl_store_ops by slot name and adds its URL scheme to
 * store/registry.c.
 */
#ifndef RL_STORE_H
#define RL_STORE_H

#include "policy.h"

#include <stddef.h>

#define RL_ERRMSG_MAX 256
#define RL_MAX_COOLDOWNS 4 /* per key: one per resource, or one for all */
#define RL_MAX_SLOTS (RL_MAX_LIMITS + RL_MAX_COOLDOWNS)
#define RL_SLOT_BYTES 49
#define RL_STATE_HEAD 18 /* format 2: format, n, generation, tier fingerprint */
#define RL_STATE_MAX (RL_STATE_HEAD + RL_MAX_SLOTS * RL_SLOT_BYTES)
#define RL_STATE3_HEAD 26 /* format 3: format, n, generation, fingerprint, base */
/* A format 3 blob with every slot explicit and every varint at its longest:
 * stores write it only when it is no longer than format 2 (RL_STATE_MAX). */
#define RL_STATE3_WORST (RL_STATE3_HEAD + RL_MAX_SLOTS * (1 + 8 + 5 * 10))
/* An encoded rl_slotset: n, then kind, id and three varints per entry. */
#define RL_SLOTSET_MAX (1 + RL_MAX_LIMITS * (1 + 8 + 3 * 10))

typedef struct rl_row {
    int exists;
    char tier[RL_NAME_MAX]; /* explicit assignment, "" if none */
    unsigned char state[RL_STATE_MAX];
    size_t state_len;
    int64_t allowed, refused, units, first_seen, last_seen;
} rl_row;

typedef struct rl_store rl_store;

/* Group commit: a process that finds the write lock taken posts its
 * rl_allow, rl_acquire, rl_acquire_keys, reservation (rl_reserve,
 * rl_wait), lease begin, settle or cancel in shared memory and sleeps; whoever holds the lock decides
 * every posted request of the same signature in its own transaction, so
 * one commit answers several processes. The signature covers what decides
 * besides the database: the handle's default limits and durability. Plain
 * data, since it is shared between processes. The keys come last, packed,
 * so that posting copies only the bytes they use (rl_group_req_size). */
#define RL_GROUP_DECIDE 0  /* rl_allow, rl_acquire, rl_acquire_keys: now or never */
#define RL_GROUP_RESERVE 1 /* rl_reserve, rl_wait: max_delay_ns, answered in rv */
#define RL_GROUP_LEASE 2   /* rl_lease_begin: one key, ttl_ns and owner, answered in lease_* */
#define RL_GROUP_END \
    3 /* rl_lease_settle (costs: the actual ones) or rl_lease_cancel
                            * (end_cancel) of lease end_id; answered in expired. The
                            * leader writes the lease's key into keys, by which a dead
                            * leader's batch is settled (store/lock_group.c) */
#define RL_GROUP_KEYS ((size_t)RL_MAX_KEYS * (RL_KEY_MAX + 1))
typedef struct rl_group_req {
    uint64_t sig;
    int kind;             /* RL_GROUP_DECIDE, _RESERVE, _LEASE or _END */
    int rc;               /* the answer: rc, res, rv (a reservation's), err */
    size_t ncosts;        /* rl_acquire's costs; rl_allow's is one of "requests"; an
                           * end's actual costs, 0..RL_MAX_LIMITS */
    size_t nkeys;         /* 1..RL_MAX_KEYS strings in keys (an end's: 0 or 1) */
    size_t keys_len;      /* bytes of keys they take, each with its NUL */
    int64_t max_delay_ns; /* a reservation's horizon */
    int64_t ttl_ns;       /* a lease begin's TTL, and its poster (rl_owner_self) */
    int64_t owner_pid, owner_pstart;
    int64_t lease_id, lease_expires; /* a granted lease begin's answer */
    int64_t end_id;                  /* the lease a settle or cancel ends */
    int end_cancel;                  /* 1: a cancel, 0: a settle */
    int expired;                     /* an end's answer: the lease had expired */
    char resource[RL_MAX_LIMITS][RL_NAME_MAX];
    int64_t amount[RL_MAX_LIMITS];
    rl_result res;
    rl_reservation rv;
    char err[RL_ERRMSG_MAX];
    char keys[RL_GROUP_KEYS]; /* last: nkeys strings, one after another */
} rl_group_req;

/* The bytes of req worth copying: all but the keys' unused room. */
static inline size_t rl_group_req_size(const rl_group_req *req)
{
    size_t n = req->keys_len;
    return offsetof(rl_group_req, keys) + (n < RL_GROUP_KEYS ? n : RL_GROUP_KEYS);
}

/* A lease (rl_lease_begin): its estimate, the in-flight units it holds in
 * concurrency limits, and who holds it, so a dead owner can be detected. */
typedef struct rl_lease_rec {
    int64_t id;
    char key[RL_KEY_MAX + 1];
    int64_t created, expires;
    int64_t pid, pstart; /* owner's pid and start time (clock ticks after boot) */
    size_t n_est;
    char est_resource[RL_MAX_LIMITS][RL_NAME_MAX];
    int64_t est_amount[RL_MAX_LIMITS];
    size_t n_held;
    uint64_t held_id[RL_MAX_LIMITS]; /* concurrency limit ids */
    int64_t held_amount[RL_MAX_LIMITS];
    int waiting;  /* 1: a waiter queued for a slot (rl__lease_wait), holding nothing */
    int priority; /* a waiter's rl_priority */
} rl_lease_rec;

typedef int (*rl_lease_fn)(void *ctx, const rl_lease_rec *rec);

/* The body blob of a lease row (estimate and holdings). */
#define RL_LEASE_BODY_MAX (3 + RL_MAX_LIMITS * (1 + RL_NAME_MAX + 8) + RL_MAX_LIMITS * 16)
size_t rl_lease_encode(const rl_lease_rec *rec, unsigned char *buf);
int rl_lease_decode(rl_lease_rec *rec, const unsigned char *buf, size_t len);

/* Called by keys_list for each key; non-zero stops the walk. */
typedef int (*rl_row_fn)(void *ctx, const char *key, const rl_row *row);

/* One result of a health check (rl_doctor): RL_CHECK_* status. */
typedef int (*rl_check_fn)(void *ctx, const char *check, int status, const char *detail);

/* A decision a store may make in one round trip (decide_fast): rl_allow,
 * rl_acquire, rl_acquire_keys, or a reservation (rl_reserve, rl_wait: a
 * horizon, max_delay_ns), or a lease begin on a key without leases
 * (lease, below), with no place in a slot queue, whose keys' tiers hold
 * only GCRA, sliding window and concurrency limits (named only on keys
 * without leases); keys may be under cool-downs.
 * For a GCRA limit core does every 128-bit product here, so that the
 * server decides with additions and comparisons alone (Redis's Lua has
 * only doubles): per named limit, cost × period and burst × period, each
 * divided by count into whole ns and a remainder in [0, count), as
 * rl_tat holds a GCRA state (core/fast.c). A window's products involve
 * its stored counts and the server's clock, so it gets its period and
 * the server multiplies and divides exactly itself (store/redis/fast.c). */
typedef struct rl_fast_slot {
    int64_t cost;            /* -1: the request does not name this limit */
    int64_t count;           /* the limit's count: remainders are below it */
    int64_t inc_ns, inc_rem; /* GCRA: cost × period / count */
    int64_t tau_ns, tau_rem; /* GCRA: burst × period / count */
    int64_t period_ns;       /* a sliding window's period; 0 for the others */
} rl_fast_slot;

/* What rl_cancel gives back on one limit (reserve.c's cancel_tx, made by
 * the store in one round trip): the reservation's words, and the limit of
 * that id in the key's tier, whose slot the store finds by id. */
typedef struct rl_fast_back {
    uint64_t id;
    int64_t kind;                    /* RL_SLOT_* of the tier's limit of that id */
    int64_t amount, tat, rem;        /* as the reservation took them */
    int64_t count, period_ns, burst; /* the limit, as its slot must hold it */
    int64_t inc_ns, inc_rem;         /* GCRA: amount × period / count */
} rl_fast_back;

typedef struct rl_fast_key {
    const char *key;
    char tier[RL_NAME_MAX]; /* the explicit tier its row names, "" none */
    /* The state of a key new to its tier (rl__state_align of nothing): a
     * new key starts from it, and an existing key is decided here only if
     * its row names `tier` and its state has the same layout (format 2,
     * a generation, the tier's fingerprint, the same limits in the same
     * order), followed by nothing but cool-downs as rl_penalize writes
     * them. */
    unsigned char tmpl[RL_STATE_HEAD + RL_MAX_LIMITS * RL_SLOT_BYTES];
    size_t tmpl_len, n;
    rl_fast_slot slot[RL_MAX_LIMITS];
} rl_fast_key;

typedef struct rl_fast_req {
    int64_t pol_version; /* the policy core resolved the tiers with */
    int have_now;        /* a caller's clock: now, not the store's */
    int64_t now;
    int64_t units; /* what an admission adds to each key's units counter */
    /* 0: now or never; else admitted if the caller can act within it
     * (INT64_MAX: no limit), as rl__limit_decide and cool-downs take it */
    int64_t max_delay_ns;
    /* the cool-downs that refuse this request (rl__cooldown_until): the
     * one of every resource, and that of each resource it names */
    size_t ncool;
    uint64_t cool_id[1 + RL_MAX_LIMITS];
    size_t nkeys;
    rl_fast_key k[RL_MAX_KEYS];
    /* rl_cancel instead of a decision (cancel = 1): the reservation's key is
     * k[0], of which only key and tier are set, and of the above only
     * pol_version, have_now and now; the store writes only when the
     * usual way would (before the time to act, the state of the
     * reservation's generation and of the tier's fingerprint) */
    int cancel;
    int64_t time_to_act;
    uint64_t gen, fp;
    size_t nback;
    rl_fast_back back[RL_MAX_LIMITS];
    /* rl_penalize instead (penalize = 1): cooldown.c's penalize_tx on k[0]
     * (its key only) with the cool-down of id pen_id for pen_ns (0 lifts
     * it), at have_now and now; the store writes only what the usual way
     * would, and leaves it errors (a fifth cool-down) */
    int penalize;
    uint64_t pen_id;
    int64_t pen_ns;
    /* rl_lease_begin (lease = 1, one key whose hash the store must find
     * without any lease or waiter: none to reclaim, none ahead): if
     * admitted, the store numbers a lease and writes lease_tmpl (its
     * estimate, the units it holds, its owner) created at its now and
     * expiring ttl later (at most INT64_MAX), as reserve.c's put_lease
     * would; the replay gives core that id (lease_put) and the store checks
     * the record byte for byte */
    int lease;
    int64_t ttl;
    rl_lease_rec lease_tmpl;
} rl_fast_req;

/* The state blob st (len bytes) with each sliding window slot started at
 * the empty window that holds now (rl_window_fresh), as core aligns a key
 * it never saw: a template made without a time (core/fast.c's) becomes the
 * state of a key new at now. The store's replay of a decision made on the
 * server starts a new key from it (store/redis/fast.c). Returns its length
 * in buf (RL_STATE_MAX bytes); a blob that does not decode is copied as it
 * is, for whoever reads it to refuse. */
size_t rl_state_fresh_at(const unsigned char *st, size_t len, int64_t now, unsigned char *buf);

/* A lease settle or cancel a store may make in one round trip
 * (lease_end_fast; planned by core/fast_lease.c): a lease this handle
 * began, whose record core still holds, on a key whose tier holds only
 * GCRA and concurrency limits. Core knows the estimate and the slots the
 * lease holds, so it does the 128-bit products here and the server only
 * adds: per GCRA limit, (actual - estimate) × period / count as whole ns
 * (floor) and a remainder in [0, count); per concurrency limit, the units
 * to free. The server applies the GCRA part only while the lease has not
 * expired (as rl_lease_settle, which settles an expired one at its
 * estimate), and only if the lease it finds is byte for byte rec. */
typedef struct rl_fast_lease {
    int64_t pol_version; /* the policy core resolved the tier with */
    int have_now;        /* a caller's clock: now, not the store's */
    int64_t now;
    rl_lease_rec rec;       /* the lease as this handle wrote it */
    char tier[RL_NAME_MAX]; /* the explicit tier its key's row names, "" none */
    /* the state of a key new to its tier: the row's must have its layout
     * (as rl_fast_key's tmpl), cool-downs after it */
    unsigned char tmpl[RL_STATE_HEAD + RL_MAX_LIMITS * RL_SLOT_BYTES];
    size_t tmpl_len, n;
    int64_t add_ns[RL_MAX_LIMITS], add_rem[RL_MAX_LIMITS]; /* GCRA limits */
    int64_t release[RL_MAX_LIMITS];                        /* concurrency limits */
    int64_t units; /* added to the key's units counter, unless expired */
} rl_fast_lease;

typedef struct rl_store_ops {
    const char *name;
    void (*close)(rl_store *s);
    int (*begin)(rl_store *s, int write);
    int (*commit)(rl_store *s);
    void (*rollback)(rl_store *s);
    /* Inside a transaction. row_get fills row (exists = 0 if absent) and the
     * current policy version. */
    int (*row_get)(rl_store *s, const char *key, rl_row *row, int64_t *policy_version);
    int (*row_put)(rl_store *s, const char *key, const rl_row *row);
    int (*row_delete)(rl_store *s, const char *key);
    int (*policy_version)(rl_store *s, int64_t *version);
    /* Policy: read all (p initialised by caller), replace all, one tier. Each
     * write bumps the version. */
    int (*policy_get)(rl_store *s, rl_policy *p);
    int (*policy_put)(rl_store *s, const rl_policy *p);
    int (*tier_put)(rl_store *s, const rl_tier *t);
    int (*tier_delete)(rl_store *s, const char *name);
    /* Outside or inside a transaction. */
    int (*keys_list)(rl_store *s, const char *match, int sort, size_t limit, rl_row_fn fn,
                     void *ctx);
    int (*totals)(rl_store *s, rl_totals *t);
    /* Leases, inside a transaction. lease_put assigns rec->id. */
    int (*lease_put)(rl_store *s, rl_lease_rec *rec);
    int (*lease_get)(rl_store *s, int64_t id, rl_lease_rec *rec); /* RL_ENOTFOUND */
    /* Lease id of key goes (nothing if it is not there): callers know the
     * key, so a store that keeps leases by key finds it at once. */
    int (*lease_delete)(rl_store *s, const char *key, int64_t id);
    /* Leases of key (NULL: all), oldest first; fn non-zero stops the walk. */
    int (*leases_each)(rl_store *s, const char *key, rl_lease_fn fn, void *ctx);
    /* Administration (core/admin.c). keys_page: at most `limit` keys after
     * `after` ("" for the first) in byte order, whose names match the glob
     * `match` (NULL: all); inside or outside a transaction. admin.c walks
     * big tables with it one short transaction at a time. */
    int (*keys_page)(rl_store *s, const char *after, const char *match, size_t limit, rl_row_fn fn,
                     void *ctx);
    /* Inside a write transaction: forget every key and lease (rl_import). */
    int (*state_clear)(rl_store *s);
    /* Inside a write transaction: a lease stored under its own id, which a
     * live holder may still present (rl_import). */
    int (*lease_restore)(rl_store *s, const rl_lease_rec *rec);
    /* Outside a transaction: the store's own health checks (rl_doctor);
     * fn returning non-zero stops them and is returned. */
    int (*doctor)(rl_store *s, rl_check_fn fn, void *ctx);
    /* Optional (NULL: the local realtime clock). The store's time in ns;
     * inside a transaction, the same moment as its reads (Redis: TIME). */
    int (*now)(rl_store *s, int64_t *ns);
    /* Optional: reads rows of keys[] ahead, in one round trip, for a
     * transaction that will row_get each of them. */
    int (*prefetch)(rl_store *s, const char *const *keys, size_t n);
    /* Optional: group commit (see rl_group_req). group_join returns
     * RL_OK when another process decided req (its rc, res and err are set),
     * RL_GROUP_LEAD when this handle holds the write lock, with no
     * transaction begun, and must decide req and what group_take adds in
     * one transaction and then call group_end, or RL_GROUP_NONE when the
     * store cannot group this handle's calls; else an RL_E* failure. */
    int (*group_join)(rl_store *s, rl_group_req *req);
    /* As the leader, inside its transaction: appends requests posted since
     * to batch[0..max) and returns how many. */
    size_t (*group_take)(rl_store *s, uint64_t sig, rl_group_req **batch, size_t max);
    /* After the leader's commit or rollback: answers the batch, unlocks. */
    void (*group_end)(rl_store *s);
    /* Optional: a word every process of the store sees, moved by
     * slot_notify after a transaction that released a concurrency slot.
     * slot_epoch reads it (RL_OK; an error when it cannot be used) before
     * a decision; slot_wait sleeps until it differs from seen, at most ns.
     * Without them, slot waiters look again every RL_SLOT_RETRY_NS. */
    int (*slot_epoch)(rl_store *s, uint32_t *epoch);
    void (*slot_wait)(rl_store *s, uint32_t seen, int64_t ns);
    void (*slot_notify)(rl_store *s);
    /* Optional: decides q (or makes q's rl_cancel or rl_penalize) where
     * the data lives, in one round trip, and writes its outcome; then opens a write transaction that replays it:
     * row_get gives each key's row as it was before, now() the decision's
     * time, and commit checks that every row core puts is byte for byte
     * what the store wrote (RL_ESTORE if not), and, for a lease begin,
     * that lease_put gets the id the store gave and puts its record byte
     * for byte, writing nothing. RL_FAST_NO:
     * not decided (another layout, an explicit tier, a claim, another
     * policy version), nothing written, no transaction open. */
    int (*decide_fast)(rl_store *s, const rl_fast_req *q);
    /* Optional: settles or cancels q->rec where the data lives, in one
     * round trip, as decide_fast decides: then a write transaction is open
     * that replays it (lease_get finds q->rec, row_get gives the row as it
     * was), and commit checks that core deletes that lease and puts the
     * row byte for byte as the store wrote it. RL_FAST_NO: not done (the
     * lease is not q->rec, another layout or policy version, a claim, a
     * result the server cannot make exactly), nothing written. */
    int (*lease_end_fast)(rl_store *s, const rl_fast_lease *q);
} rl_store_ops;

#define RL_GROUP_LEAD 1
#define RL_GROUP_NONE 2
#define RL_GROUP_MAX 17 /* a leader's own request and 16 posted ones */

/* From commit, in optimistic stores (Redis): a row or the policy read by the
 * transaction changed before it committed, and nothing was written. The
 * caller runs the whole transaction again. Never returned to users. */
#define RL_ECONFLICT (-100)
/* From decide_fast: not decided that way; the caller goes the usual way. */
#define RL_FAST_NO (-101)

struct rl_store {
    const rl_store_ops *ops;
    char *err; /* the handle's RL_ERRMSG_MAX buffer */
};

/* Settings a store needs from rl_options. */
typedef struct rl_store_config {
    int busy_timeout_ms;
    int durability;
    unsigned int file_mode;
    unsigned int flags;
    int busy_strategy;
} rl_store_config;

/* Opens the store that path names (store/registry.c), with err (an
 * RL_ERRMSG_MAX buffer that outlives the store) for its messages:
 *   ":memory:"                       the memory store (mem.c), one per call
 *   "redis://..." or "unix://..."    Redis (redis/), RL_EINVAL when built
 *                                    without hiredis
 *   anything else                    a SQLite database file (sqlite.c)
 * On failure *out may still be set and must be closed. */
int rl_store_open(rl_store **out, const char *path, const rl_store_config *c, char *err);

/* A store's constructor, as the registry calls it; the same contract. */
typedef int (*rl_store_open_fn)(rl_store **out, const char *path, const rl_store_config *c,
                                char *err);
int rl_store_mem_open(rl_store **out, const char *path, const rl_store_config *c, char *err);
int rl_store_sqlite_open(rl_store **out, const char *path, const rl_store_config *c, char *err);
int rl_store_redis_open(rl_store **out, const char *url, const rl_store_config *c, char *err);

/* One-line error message into an RL_ERRMSG_MAX buffer; returns code. A line
 * break or tab becomes a space, any other character that could act on a
 * terminal or reorder the text a '?' (core/err.c: nothing of the handle). */
int rl_seterr(char *err, int code, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Bucket state encoding shared by the row stores. A GCRA slot holds one
 * limit's theoretical arrival time with the parameters it was computed
 * under; a cool-down slot (rl_penalize) holds in tat the time until which
 * its resource (id = rl_cooldown_id) is refused; an in-flight slot holds in
 * tat the units that leases hold in a concurrency limit. A window slot
 * (sliding window limit, window.h) keeps count and period_ns as the limit's
 * and re-uses the other words: tat = the current window's start (ns), rem =
 * cur (units counted in it), burst = prev (units of the window before);
 * cur and prev are 0..RL_WINDOW_UNITS_MAX. */
enum { RL_SLOT_GCRA = 0, RL_SLOT_COOLDOWN = 1, RL_SLOT_INFLIGHT = 2, RL_SLOT_WINDOW = 3 };

typedef struct rl_slot {
    int kind;
    uint64_t id;
    int64_t count, period_ns, burst;
    int64_t tat, rem;
} rl_slot;

/* gen: the state's generation, a random non-zero number drawn when the
 * state starts afresh (a new or reset key) or is re-tiered (fp changes);
 * 0 when unknown (a format-1 blob, an imported state). A reservation
 * records it, and rl_cancel gives nothing back once it has changed.
 * fp: the fingerprint of the tier the slots were written for (its name
 * and every limit's parameters), 0 when unknown. */
typedef struct rl_state {
    size_t n;
    uint64_t gen;
    uint64_t fp;
    rl_slot slot[RL_MAX_SLOTS];
} rl_state;

/* The slot id of a cool-down on resource (NULL: every resource). */
uint64_t rl_cooldown_id(const char *resource);

/* Decode: RL_ECORRUPT on a malformed blob (an empty blob is an empty state,
 * generation 0). Encode writes format 2, or format 1 (byte for byte what
 * older libraries wrote) when gen and fp are both 0. These are the formats
 * core/ reads and writes, and the memory and Redis stores keep. */
int rl_state_decode(rl_state *st, const unsigned char *buf, size_t len);
size_t rl_state_encode(const rl_state *st, unsigned char *buf);

/* The slot d of a tier gets in a state that starts afresh, tat and rem 0
 * (rl__state_align starts from it). */
void rl_slot_template(const rl_ldef *d, rl_slot *s);

/* Format 3 (state.c's header), the SQLite store's on-disk form: a state's
 * slots name the limits they were written for by the tier fingerprint, in
 * a slot set, instead of copying them. A slot set lists, for a
 * fingerprint, the limit words of each slot of a state written for that
 * tier (kind, id, count, period_ns, burst; 0 for a window's burst, which
 * is state). A fingerprint names one slot set for ever: a store keeps them
 * append-only, so a row can always be read with the set it was written
 * with. */
typedef struct rl_slotset {
    uint64_t fp;
    size_t n;
    rl_slot slot[RL_MAX_LIMITS]; /* tat and rem 0 */
} rl_slotset;

/* The set of tier t (fingerprint fp), as rl__state_align lays its slots. */
void rl_slotset_of_tier(const rl_tier *t, uint64_t fp, rl_slotset *set);
/* The set a state's own slots describe (those before its first cool-down):
 * what a store records for a fingerprint it has no set for. */
void rl_slotset_of_state(const rl_state *st, rl_slotset *set);
/* A set as stored (at most RL_SLOTSET_MAX bytes), and back: RL_ECORRUPT
 * unless every entry is a valid limit of a kind a tier has. */
size_t rl_slotset_encode(const rl_slotset *set, unsigned char *buf);
int rl_slotset_decode(rl_slotset *set, uint64_t fp, const unsigned char *buf, size_t len);
/* Encodes st as format 3 into buf (RL_STATE3_WORST bytes): each slot that
 * is entry i of set (set->fp == st->fp; NULL: none) refers to it, others
 * are written whole. Returns the length. */
size_t rl_state_encode3(const rl_state *st, const rl_slotset *set, unsigned char *buf);
/* The fingerprint a format 3 blob names, to find its set: RL_ECORRUPT if
 * buf is not format 3. */
int rl_state_fp3(const unsigned char *buf, size_t len, uint64_t *fp);
/* Decodes a format 3 blob with the set of its fingerprint (NULL, or a set
 * of another fingerprint: none). RL_ECORRUPT for a malformed blob, and for
 * a slot that refers to a set entry it does not have: a state whose limits
 * are unknown is damaged, never guessed. */
int rl_state_decode3(rl_state *st, const unsigned char *buf, size_t len, const rl_slotset *set);

#endif
