/*
 * rl.h - the public API of librl, a rate limiter whose state lives in SQLite.
 *
 * Several processes open the same database file and share every bucket: a
 * decision made by one is seen by all, and survives restarts and crashes.
 * The shape follows Go's golang.org/x/time/rate (Allow / Wait / Reserve +
 * Cancel) with per-key state, weighted costs and tiers of several limits that
 * are checked and consumed all together or not at all.
 *
 * Conventions (as in hiredis and libgit2):
 *   - every function that can fail returns an int: RL_OK (0) or a negative
 *     RL_E* code; rl_errmsg(r) then holds a one-line message;
 *   - the caller owns what it passes in; nothing here keeps a pointer to it
 *     after the call returns, except rl_options.clock_ctx;
 *   - time is integer nanoseconds (int64_t) throughout.
 *
 * This header is self-contained C11 (and C++ compatible).
 */
#ifndef RL_H
#define RL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define RL_API __attribute__((visibility("default")))
#else
#define RL_API
#endif

#define RL_VERSION_MAJOR 0
#define RL_VERSION_MINOR 1
#define RL_VERSION_PATCH 0
#define RL_VERSION_STRING "0.1.0"

/* Return codes. Deciding calls return RL_OK whether the request was admitted
 * or refused (rl_result.allowed says which); a code is only for errors. */
enum {
    RL_OK = 0,
    RL_EINVAL = -1,     /* invalid argument (bad key, negative cost, bad limit) */
    RL_ENOMEM = -2,     /* out of memory */
    RL_ETOOBIG = -3,    /* cost exceeds a limit's burst: it can never pass */
    RL_EBUSY = -4,      /* the store stayed locked past busy_timeout_ms */
    RL_ESTORE = -5,     /* store failure: I/O error, cannot open */
    RL_EREADONLY = -6,  /* the store is read-only (file permissions, read-only handle) */
    RL_EFULL = -7,      /* the disk or database is full */
    RL_ECORRUPT = -8,   /* not an rl database, damaged, or tampered with */
    RL_EVERSION = -9,   /* database schema newer than this library */
    RL_ECONFIG = -10,   /* invalid configuration (tier file, limits, options) */
    RL_ENOTFOUND = -11, /* no such key or tier */
    RL_ETIMEOUT = -12,  /* the wait would exceed the timeout; nothing consumed */
    RL_ECANCELED = -13, /* the wait was cancelled; its reservation was returned */
    RL_ENOLIMIT = -14,  /* no tier and no default limits apply to the key */
    RL_ECONNECT = -15,  /* the store's server is unreachable: refused, lost, timed out */
    RL_EAUTH = -16,     /* the store's server refused our credentials */
    RL_EPERM = -17      /* a file is owned by another user or its mode is wider than file_mode */
};

/* Durations. */
#define RL_NANOSECOND ((int64_t)1)
#define RL_MICROSECOND ((int64_t)1000)
#define RL_MILLISECOND ((int64_t)1000000)
#define RL_SECOND ((int64_t)1000000000)
#define RL_MINUTE (60 * RL_SECOND)
#define RL_HOUR (60 * RL_MINUTE)
#define RL_DAY (24 * RL_HOUR)

/* Sizes. Keys are 1..RL_KEY_MAX bytes of valid UTF-8 without control
 * characters; names of tiers, limits and resources are 1..RL_NAME_MAX-1 bytes
 * of [A-Za-z0-9_.:-]. */
#define RL_KEY_MAX 512
#define RL_NAME_MAX 64
#define RL_MAX_LIMITS 8

/* What a limit counts and how (rl_limit.algorithm).
 *   RL_ALGO_GCRA (0, the default): a token bucket of capacity `burst` that
 *     refills at count per period (the Generic Cell Rate Algorithm).
 *   RL_ALGO_SLIDING_WINDOW: the sliding window counter. Time is cut into
 *     fixed windows of period_ns (aligned to the epoch); with cur units
 *     counted in the current window, prev in the one before and e ns
 *     elapsed in the current one, the estimate is
 *         ceil(prev * (period_ns - e) / period_ns) + cur
 *     and a cost c is admitted iff estimate + c <= count. burst is ignored
 *     (it is count). retry_after_ns is the exact wait, rounded up, after
 *     which the same request passes; reset_after_ns lasts until both
 *     windows have aged out (the estimate is 0).
 *   RL_ALGO_CONCURRENT: not a rate but a cap: at most `count` units in
 *     flight, held by leases (rl_lease_begin); period_ns must be 0 and
 *     burst 0 or count. Only this kind may have period 0: a rate limit
 *     with period_ns 0 is RL_EINVAL. RL_CONCURRENT() initialises one. */
enum { RL_ALGO_GCRA = 0, RL_ALGO_SLIDING_WINDOW = 1, RL_ALGO_CONCURRENT = 2 };

/* One limit: `count` units per `period_ns` (> 0), bucket capacity `burst`
 * (0 means `count`); or, with algorithm RL_ALGO_CONCURRENT, at most `count`
 * units in flight. `resource` NULL means "requests"; `name` NULL gets
 * "limitN" (its 1-based position). `algorithm` is RL_ALGO_*; it comes last,
 * so that an initialiser that stops before it means GCRA. */
typedef struct rl_limit {
    const char *name;
    const char *resource;
    int64_t count;
    int64_t period_ns;
    int64_t burst;
    int algorithm;
} rl_limit;

/* Initialisers for arrays of rl_limit: rl_limit l[] = { RL_PER_MINUTE(60, 10) }; */
#define RL_LIMIT(name, resource, count, period_ns, burst) \
    { (name), (resource), (count), (period_ns), (burst), RL_ALGO_GCRA }
#define RL_PER_SECOND(n, burst) RL_LIMIT(NULL, NULL, (n), RL_SECOND, (burst))
#define RL_PER_MINUTE(n, burst) RL_LIMIT(NULL, NULL, (n), RL_MINUTE, (burst))
#define RL_PER_HOUR(n, burst) RL_LIMIT(NULL, NULL, (n), RL_HOUR, (burst))
#define RL_PER_DAY(n, burst) RL_LIMIT(NULL, NULL, (n), RL_DAY, (burst))
/* At most n units of resource in flight at once, held by leases
 * (rl_lease_begin) until settled or cancelled (RL_ALGO_CONCURRENT). */
#define RL_CONCURRENT(name, resource, n) \
    { (name), (resource), (n), 0, 0, RL_ALGO_CONCURRENT }
/* At most count units per sliding window of period_ns (RL_ALGO_SLIDING_WINDOW). */
#define RL_SLIDING_WINDOW(name, resource, count, period_ns) \
    { (name), (resource), (count), (period_ns), 0, RL_ALGO_SLIDING_WINDOW }

enum { RL_DURABILITY_NORMAL = 0, RL_DURABILITY_FULL = 1 };
enum { RL_FAIL_CLOSED = 0, RL_FAIL_OPEN = 1 };

/* How a writer waits for another process's write transaction. RL_BUSY_LOCK
 * (default) queues writers on a futex lock kept in the side file
 * PATH-rlshm, whose owners the kernel vouches for (docs/operations.md);
 * RL_BUSY_SQLITE uses SQLite's own busy handler (sleeps of 1..100 ms), kept
 * for comparison in bench/. */
enum { RL_BUSY_LOCK = 0, RL_BUSY_SQLITE = 1 };

/* rl_open flags. */
#define RL_OPEN_READONLY 0x1 /* never write; deciding calls fail with RL_EREADONLY */
/* The database is shared by a group on purpose: its files may belong to
 * other users of one of our groups (their mode still no wider than
 * file_mode), and a read-only handle accepts files our groups may write. */
#define RL_OPEN_SHARED_GROUP 0x2

#define RL_OPTIONS_VERSION 1

typedef struct rl_options {
    unsigned int version;            /* RL_OPTIONS_VERSION */
    const rl_limit *default_limits;  /* for keys that no tier covers */
    size_t n_default_limits;
    int busy_timeout_ms;             /* default 5000 */
    int durability;                  /* RL_DURABILITY_NORMAL */
    int fail_mode;                   /* RL_FAIL_CLOSED */
    int64_t (*clock)(void *ctx);     /* ns; default CLOCK_REALTIME */
    void *clock_ctx;
    unsigned int file_mode;          /* mode of a new database file; default 0600 */
    const char *tiers_file;          /* YAML tiers loaded at open; NULL for none */
    unsigned int flags;              /* RL_OPEN_* */
    int busy_strategy;               /* RL_BUSY_LOCK */
} rl_options;

#define RL_OPTIONS_INIT                                                       \
    { RL_OPTIONS_VERSION, NULL, 0, 5000, RL_DURABILITY_NORMAL, RL_FAIL_CLOSED, \
      NULL, NULL, 0600, NULL, 0, RL_BUSY_LOCK }

/* The outcome of a decision. The deciding limit is the one that refused (the
 * largest retry-after) or, when admitted, the one with least room left. */
typedef struct rl_result {
    int allowed;
    int64_t limit;          /* the deciding limit's burst */
    int64_t remaining;      /* units it could still admit now */
    int64_t retry_after_ns; /* 0 if allowed; else when the same request would pass */
    int64_t reset_after_ns; /* when the deciding limit is full again */
    char limit_name[RL_NAME_MAX]; /* "cooldown" when an rl_penalize cool-down refused */
    int degraded;           /* 1: admitted by RL_FAIL_OPEN without the store */
    int key_index;          /* which key of an rl_acquire_keys call it belongs to */
} rl_result;

/* One resource's amount in a decision: { "requests", 1 }, { "tokens", 1500 }.
 * resource NULL means "requests". */
typedef struct rl_cost {
    const char *resource;
    int64_t amount;
} rl_cost;

#define RL_MAX_KEYS 8 /* keys in one rl_acquire_keys decision */

/* A reservation made by rl_reserve. Treat as opaque apart from the first
 * three fields. */
typedef struct rl_reservation {
    int ok;              /* 1: reserved; 0: would wait more than max_delay_ns */
    int64_t delay_ns;    /* how long to wait before acting (ok) or would wait (!ok) */
    int64_t time_to_act; /* clock time at which the caller may act (INT64_MAX at most) */
    /* private */
    uint64_t generation_; /* the generation of the key's state it was made in */
    int64_t amount_[RL_MAX_LIMITS];
    size_t n_;
    uint64_t id_[RL_MAX_LIMITS];
    int64_t tat_[RL_MAX_LIMITS];
    int64_t rem_[RL_MAX_LIMITS];
    char key_[RL_KEY_MAX + 1];
} rl_reservation;

/* Where a key's tier came from. */
enum { RL_TIER_NONE = 0, RL_TIER_ASSIGNED, RL_TIER_RULE, RL_TIER_DEFAULT, RL_TIER_OPTIONS };

typedef struct rl_limit_stats {
    char name[RL_NAME_MAX];
    char resource[RL_NAME_MAX];
    int64_t count, period_ns, burst;
    int64_t remaining;      /* units admissible now */
    int64_t reset_after_ns; /* until the bucket is full */
    int64_t retry_after_ns; /* until one unit is admissible (0: now) */
    int64_t cooldown_ns;    /* left of an rl_penalize cool-down on this resource */
    int64_t debt;           /* units owed beyond an empty bucket (lease overruns) */
    int64_t in_flight;      /* concurrency limits: units held by leases */
    int algorithm;          /* RL_ALGO_* (RL_ALGO_CONCURRENT: a concurrency limit) */
} rl_limit_stats;

typedef struct rl_key_stats {
    char key[RL_KEY_MAX + 1];
    int exists;              /* 0: the key has never been seen */
    char tier[RL_NAME_MAX];  /* "" when default_limits apply */
    int tier_source;         /* RL_TIER_* */
    int64_t allowed;         /* decisions admitted */
    int64_t refused;         /* decisions refused */
    int64_t units;           /* units admitted */
    int64_t first_seen_ns, last_seen_ns;
    int64_t cooldown_ns;     /* left of a cool-down on every resource */
    size_t n_limits;
    rl_limit_stats limits[RL_MAX_LIMITS];
} rl_key_stats;

typedef struct rl_totals {
    int64_t keys, allowed, refused, units;
} rl_totals;

typedef struct rl rl;

/* Opens (creating if needed) the database at `path`; ":memory:" gives an
 * in-process store; NULL means $RL_DB, else $XDG_STATE_HOME/rl/rl.db, else
 * ~/.local/state/rl/rl.db. `o` may be NULL for defaults. An existing file
 * that another user could have planted (the database, PATH-wal, PATH-shm:
 * owned by another user, wider than file_mode, not a regular file) is
 * refused with RL_EPERM; see docs/security.md. On failure *out is
 * still set (unless out is NULL or memory ran out) so that rl_errmsg(*out)
 * says why; rl_close it. */
RL_API int rl_open(rl **out, const char *path, const rl_options *o);
RL_API void rl_close(rl *r); /* rl_close(NULL) is a no-op */
RL_API const char *rl_errmsg(const rl *r);
RL_API const char *rl_strerror(int code);
RL_API const char *rl_version(void);
/* The path rl_open(NULL) would use, written to buf. */
RL_API int rl_default_path(char *buf, size_t len);

/* Policies. rl_tier_set stores or replaces a tier (n == 0: unlimited). */
RL_API int rl_tier_set(rl *r, const char *tier, const rl_limit *limits, size_t n);
RL_API int rl_tier_delete(rl *r, const char *tier);
RL_API int rl_key_assign(rl *r, const char *key, const char *tier); /* tier NULL: unassign */

/* Decisions on the "requests" resource of `key`. rl_wait's timeout_ns and
 * rl_reserve's max_delay_ns bound the admission delay, measured from the
 * decision (made once the store's lock is held); INT64_MAX is no bound.
 * rl_cancel gives back what no later decision built on, unless
 * time_to_act has passed or the key's state changed generation since (it
 * was reset, or moved to another tier). */
RL_API int rl_allow(rl *r, const char *key, int64_t cost, rl_result *res);
RL_API int rl_wait(rl *r, const char *key, int64_t cost, int64_t timeout_ns,
                   const volatile sig_atomic_t *cancel, rl_result *res);
/* Wait over several resources, with a priority. Interactive waiters are
 * served in the order they arrive: each takes its place at once by
 * reserving, then sleeps until its time (nobody polls, nobody wakes anyone).
 * RL_PRIORITY_BATCH waiters yield to them: they take only room that is free
 * now, and otherwise sleep until room should be free and look again, so an
 * interactive call that arrives meanwhile goes first. */
enum { RL_PRIORITY_INTERACTIVE = 0, RL_PRIORITY_BATCH = 1 };
RL_API int rl_wait_ex(rl *r, const char *key, const rl_cost *costs, size_t n, int priority,
                      int64_t timeout_ns, const volatile sig_atomic_t *cancel, rl_result *res);
RL_API int rl_reserve(rl *r, const char *key, int64_t cost, int64_t max_delay_ns,
                      rl_reservation *rv);
RL_API int rl_cancel(rl *r, rl_reservation *rv); /* marks *rv spent: a second call does nothing */

/* Several resources in one decision: every limit of the key's tier on a
 * resource named in costs is checked, and all of them admit or none is
 * charged; limits on other resources are left alone. At most RL_MAX_LIMITS
 * costs, each resource once. */
RL_API int rl_acquire(rl *r, const char *key, const rl_cost *costs, size_t n, rl_result *res);
/* The same over several distinct keys (user:alice and global): admitted only
 * if every key's limits admit; res->key_index names the deciding key. */
RL_API int rl_acquire_keys(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs,
                           size_t n, rl_result *res);
/* Many independent rl_allow calls in one store transaction: one commit on
 * SQLite, one round trip of reads and one of commit on Redis. Each item is
 * decided on its own, in order (a later item on the same key sees the
 * earlier ones), and gets its own rc and result: an invalid key or cost
 * fails that item only. On a store failure nothing is written and every
 * item gets the error and the fail mode's answer; that error is returned. */
typedef struct rl_batch_item {
    const char *key;
    int64_t cost;  /* units of "requests" */
    int rc;        /* out: RL_OK or this item's RL_E* */
    rl_result res; /* out */
} rl_batch_item;
RL_API int rl_allow_batch(rl *r, rl_batch_item *items, size_t n);
/* Leases: reserve an estimate now, settle the actual amount later (an LLM
 * call's tokens are known only after the response). The unused part goes
 * back; an excess is charged as debt that delays later requests. A lease
 * also holds units of the key's concurrency limits (RL_CONCURRENT) until it
 * ends. Leases live in the database: one neither settled nor cancelled by
 * expires_at is settled at its estimate, and the slots of a process that
 * died are reclaimed as soon as another lease needs them. */
typedef struct rl_lease {
    int64_t id;         /* > 0 for a lease that was granted */
    int64_t expires_at; /* clock time */
} rl_lease;

RL_API int rl_lease_begin(rl *r, const char *key, const rl_cost *estimate, size_t n,
                          int64_t ttl_ns, rl_lease *lease, rl_result *res);
/* actual names resources to settle; one the estimate had but actual does not
 * name is settled at its estimate. RL_ENOTFOUND once settled, cancelled or
 * reclaimed; RL_ETIMEOUT past expires_at (then settled at its estimate). */
RL_API int rl_lease_settle(rl *r, const rl_lease *lease, const rl_cost *actual, size_t n);
/* Gives the whole estimate back and frees the slots. */
RL_API int rl_lease_cancel(rl *r, const rl_lease *lease);

typedef struct rl_lease_info {
    int64_t id;
    char key[RL_KEY_MAX + 1];
    int64_t created_ns, expires_ns;
    int64_t pid;     /* owner process */
    int owner_alive; /* 0 when the owner is known to be gone */
    size_t n_costs;
    struct {
        char resource[RL_NAME_MAX];
        int64_t amount;
    } costs[RL_MAX_LIMITS];
} rl_lease_info;

/* Open leases of key (NULL: all), oldest first. */
RL_API int rl_leases_list(rl *r, const char *key,
                          int (*fn)(void *ctx, const rl_lease_info *l), void *ctx);

/* A shared cool-down: every process refuses `resource` (NULL: everything)
 * of `key` for duration_ns from now (a provider's 429 or Retry-After). A
 * longer cool-down already in place is kept; duration 0 lifts it. */
RL_API int rl_penalize(rl *r, const char *key, const char *resource, int64_t duration_ns);

/* Reading and resetting. */
RL_API int rl_stats(rl *r, const char *key, rl_key_stats *st);
RL_API int rl_totals_get(rl *r, rl_totals *t);
RL_API int rl_reset(rl *r, const char *key);

/* Keys in order of `sort` (RL_SORT_*), at most `limit` (0: all), whose
 * names match the glob `match` (NULL: all). fn returning non-zero stops the
 * walk and is returned. */
enum { RL_SORT_KEY = 0, RL_SORT_ALLOWED, RL_SORT_REFUSED, RL_SORT_LAST_SEEN };
RL_API int rl_keys_list(rl *r, const char *match, int sort, size_t limit,
                        int (*fn)(void *ctx, const rl_key_stats *st), void *ctx);

/* Reading the policy. */
typedef struct rl_tier_info {
    char name[RL_NAME_MAX];
    int unlimited;  /* no limits at all */
    int is_default; /* the default tier */
    size_t n_limits;
    struct {
        char name[RL_NAME_MAX];
        char resource[RL_NAME_MAX];
        int64_t count, period_ns, burst;
        int algorithm; /* RL_ALGO_* (RL_ALGO_CONCURRENT: a concurrency limit) */
    } limits[RL_MAX_LIMITS];
} rl_tier_info;

/* Every tier, by name; fn returning non-zero stops the walk and is returned. */
RL_API int rl_tiers_list(rl *r, int (*fn)(void *ctx, const rl_tier_info *t), void *ctx);
RL_API int rl_tier_get(rl *r, const char *tier, rl_tier_info *t); /* RL_ENOTFOUND */
/* Key rules in the order they are tried. */
RL_API int rl_rules_list(rl *r, int (*fn)(void *ctx, const char *match, const char *tier),
                         void *ctx);

/* Tiers (YAML). rl_load_tiers replaces all tiers and rules from the file in one
 * transaction; rl_validate_tiers checks a file without a database and
 * writes "FILE:LINE:COL: message" to err on failure. */
RL_API int rl_load_tiers(rl *r, const char *yaml_path);
RL_API int rl_validate_tiers(const char *yaml_path, char *err, size_t errlen);

/* Parsers used by rlctl: "600/min", "100/30s" and "1m30s", "250ms". */
RL_API int rl_parse_rate(const char *s, int64_t *count, int64_t *period_ns);
RL_API int rl_parse_duration(const char *s, int64_t *ns);
RL_API int rl_format_duration(int64_t ns, char *buf, size_t len);
RL_API int rl_format_rate(int64_t count, int64_t period_ns, char *buf, size_t len);

/* Glob match as used by tier rules and rlctl --match: '*' any run, '?' one
 * byte, '\\' escapes the next byte. */
RL_API int rl_glob_match(const char *pattern, const char *s);

/* Administration (rlctl).
 *
 * Walking calls (rl_reset_match, rl_prune) go through the keys a few hundred
 * at a time, each batch in a write transaction of its own that re-reads
 * every row it changes, so deciding processes wait for a moment at most and
 * no decision made between two batches is lost. Like every call they hold
 * the handle's mutex, and judge idle times and full buckets by the handle's
 * clock (rl_options.clock). Callbacks must not call back into the handle. */

/* Resets (as rl_reset: an assigned tier stays) every key whose name
 * matches the glob `match` and whose tier (as a decision would resolve it)
 * is `tier`; NULL for either means any. dry_run: only counts. *count (may
 * be NULL) is the number of keys reset, or that would be, even when an
 * error stops the walk half-way. */
RL_API int rl_reset_match(rl *r, const char *match, const char *tier, int dry_run,
                          int64_t *count);
/* Removes keys that hold nothing worth keeping: every bucket full (no
 * units spent, none in flight, no cool-down running), last decision at
 * least idle_ns ago, and no assigned tier. Their next request meets the
 * same full buckets, so pruning changes no decision. dry_run and *count as
 * for rl_reset_match. */
RL_API int rl_prune(rl *r, int64_t idle_ns, int dry_run, int64_t *count);

/* Health checks of the database: journal mode, synchronous, busy timeout,
 * schema version, integrity, file permissions, filesystem, stored policy
 * and bucket states. fn is called once per check with a short name, a
 * status and a one-line detail; its non-zero return stops the checks and is
 * returned. RL_OK when every check ran, whatever their statuses. */
enum { RL_CHECK_OK = 0, RL_CHECK_WARN = 1, RL_CHECK_FAIL = 2 };
RL_API int rl_doctor(rl *r,
                     int (*fn)(void *ctx, const char *check, int status, const char *detail),
                     void *ctx);

/* The whole state as one JSON document ("format": "rl-export", "version":
 * 1): settings, tiers with their limits, key rules, open leases, and every
 * key with its assigned tier, counters and bucket slots. Written through
 * `write` (non-zero return: stop, and it is returned) in pieces, from one
 * read transaction, so deciding goes on and memory stays small whatever the
 * number of keys. */
RL_API int rl_export(rl *r, int (*write)(void *ctx, const char *buf, size_t len), void *ctx);
/* Replaces the whole state with an rl_export document, in one write
 * transaction: all of it, or on any error nothing (RL_EINVAL with the place
 * and reason in rl_errmsg for a document that is not valid). Every value is
 * checked as the library checks its own input. */
RL_API int rl_import(rl *r, const char *json, size_t len);

/* Agent helpers: keys and response headers. */

/* Who a request is for. A field that is NULL or "" is absent. Values are
 * taken byte for byte: canonicalise them first if several spellings mean
 * one identity (lower-case e-mail addresses, inet_ntop for addresses). */
typedef struct rl_key_ctx {
    const char *user;  /* the accountable end user: account id, e-mail */
    const char *ip;    /* the client's address */
    const char *agent; /* the agent or worker acting: name, credential id */
    const char *org;   /* the organisation or tenant */
} rl_key_ctx;

/* rl_keys_for never gives more keys than this: user, agent, org, ip, global. */
#define RL_KEYS_FOR_MAX 5

/* Writes "KIND:VALUE" to buf. KIND is a name (rl_tier_set's rules) without
 * ':'; VALUE is any non-empty C string, written with ':', '%', '*', '?',
 * '\\', space, control bytes and bytes that are not strict UTF-8 (or are
 * C1 controls) as %XX in upper-case hex. The key is always valid, contains
 * no glob metacharacter, never equals another kind's or another value's
 * key, and never equals "global". RL_EINVAL if an argument is invalid, the
 * key would exceed RL_KEY_MAX or buf is too small (buf then holds ""). */
RL_API int rl_key_build(char *buf, size_t len, const char *kind, const char *value);
/* The inverse: splits a key rl_key_build wrote into its kind and decoded
 * value (either output may be NULL to skip it). RL_EINVAL for any key
 * rl_key_build cannot have written ("global", "%41" for "A", ...), or a
 * buffer too small. */
RL_API int rl_key_unescape(const char *key, char *kind, size_t kindlen, char *value,
                           size_t valuelen);
/* The key of the most specific identity present, in this order: user,
 * agent, org, ip; "global" when there is none. A present field that cannot
 * make a key fails the call (RL_EINVAL) rather than falling back. */
RL_API int rl_key_for(char *buf, size_t len, const rl_key_ctx *ctx);
/* Every applicable key, in rl_key_for's order, then "global": for limiting
 * a request on all of them at once. *n is the number of keys; if max is
 * smaller, RL_EINVAL with *n saying how many are needed. */
RL_API int rl_keys_for(const rl_key_ctx *ctx, char keys[][RL_KEY_MAX + 1], size_t max,
                       size_t *n);

/* rl_format_headers flags, and a buffer size that always suffices. */
#define RL_HEADERS_IETF 0x1    /* RateLimit-Policy and RateLimit (IETF draft 11) */
#define RL_HEADERS_CLASSIC 0x2 /* X-RateLimit-Limit, -Remaining, -Reset */
#define RL_HEADERS_MAX 512

/* Writes a decision as HTTP header lines, each ending in CRLF:
 *   RateLimit-Policy: "NAME";q=LIMIT;w=WINDOW
 *   RateLimit: "NAME";r=REMAINING;t=SECONDS
 *   X-RateLimit-Limit / -Remaining / -Reset (seconds until full)
 *   Retry-After: SECONDS (only when refused, whatever the flags)
 * NAME is res->limit_name, LIMIT its burst. window_ns is the time the
 * deciding limit takes to refill LIMIT units: its period when burst equals
 * count (the default), else burst * period / count; 0 leaves out w. t is
 * the Retry-After value when refused, else the seconds until full. Seconds
 * are rounded up. A result without a deciding limit (limit_name "": no
 * limit applied, or the store failed) gives only Retry-After, if refused.
 * RL_EINVAL for bad arguments or a buffer too small (buf then holds ""). */
RL_API int rl_format_headers(const rl_result *res, int64_t window_ns, int flags, char *buf,
                             size_t len);

/* What a provider's response headers say about one of its windows; -1 for
 * what they do not say. */
typedef struct rl_provider_quota {
    int64_t limit;          /* units per window */
    int64_t remaining;      /* units left */
    int64_t reset_after_ns; /* until the window is full again (0: already) */
} rl_provider_quota;

typedef struct rl_provider_limits {
    rl_provider_quota requests;
    rl_provider_quota tokens;
    int64_t retry_after_ns; /* -1 when no Retry-After */
    unsigned int n_read;    /* fields recognised and read */
    unsigned int n_bad;     /* fields recognised but malformed, so ignored */
} rl_provider_limits;

/* Reads the rate-limit fields among n response headers (names compared
 * without case): x-ratelimit-{limit,remaining}-{requests,tokens}
 * (integers) and x-ratelimit-reset-{requests,tokens} (durations such as
 * "6m0s", "20ms", or plain seconds), as OpenAI sends them;
 * anthropic-ratelimit-{requests,tokens}-{limit,remaining} and -reset (an
 * RFC 3339 time); Retry-After (delta-seconds or any HTTP-date) and
 * retry-after-ms. Times are made relative to now_ns (clock time, ns since
 * the epoch). A malformed field is skipped on its own; a field given twice
 * keeps the cautious value (lower limit or remaining, later reset or
 * retry). RL_EINVAL only for bad arguments. */
RL_API int rl_parse_provider_headers(const char *const *names, const char *const *values,
                                     size_t n, int64_t now_ns, rl_provider_limits *out);
/* Applies a provider's rate-limit response headers to key: Retry-After (or
 * retry-after-ms) becomes a cool-down on every resource, and a quota read
 * as exhausted (remaining 0) becomes a cool-down on "requests" or "tokens"
 * until its reset. Headers that say there is room change nothing: the
 * local limits stay in charge. */
RL_API int rl_observe_headers(rl *r, const char *key, const char *const *names,
                              const char *const *values, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* RL_H */
