/*
 * rl_admin.h - administration of an rl store: what rlctl does, for programs
 * alike. Listing keys, leases, tiers and rules; totals; resetting and
 * pruning many keys; health checks; export and import; the notations of
 * rates, durations and globs that tiers files and rlctl use.
 *
 * It includes rl.h, whose conventions hold here too (return codes,
 * rl_errmsg, ownership, threads and fork: see the top of rl.h). Two points
 * matter most for these functions:
 *   - Callbacks of rl_keys_list, rl_leases_list, rl_doctor and rl_export
 *     run while the handle's mutex is held: they must not call the same
 *     handle, and should be quick. rl_tiers_list and rl_rules_list call back
 *     on a private copy of the policy, without the lock: theirs may.
 *   - A callback's non-zero return stops the walk, and the walk returns it.
 *
 * Self-contained C11 (and C++ compatible), as rl.h.
 */
#ifndef RL_ADMIN_H
#define RL_ADMIN_H

#include "rl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Which function for which job --------------------------------------
 *   rl_keys_list ........ keys with their stats, sorted, filtered by a glob
 *   rl_totals_get ....... the number of keys and the sums of their counters
 *   rl_leases_list ...... open leases, with their owner process
 *   rl_tiers_list, rl_tier_get, rl_rules_list ... the policy, read back
 *   rl_validate_tiers ... check a tiers file without a database
 *   rl_reset_match ...... rl_reset of every key matching a glob and a tier
 *   rl_prune ............ reclaim dead leases, remove idle keys that hold nothing
 *   rl_doctor ........... health checks of a store
 *   rl_export, rl_import  the whole state as JSON, and back
 *   rl_parse_rate, rl_parse_duration, rl_format_rate, rl_format_duration,
 *   rl_glob_match ....... the notations ("600/min", "1m30s", "user:*")
 */

/* ======================================================================
 * Listing and counting
 * ====================================================================== */

/* The sums over every key of a store. */
typedef struct rl_totals {
    int64_t keys, allowed, refused, units;
} rl_totals;

/* Fills *t with the number of keys and the sums of their `allowed`,
 * `refused` and `units` counters (a read; works on a read-only handle).
 * Returns RL_OK; RL_EINVAL (t NULL); a store failure. */
RL_API int rl_totals_get(rl *r, rl_totals *t);

/* rl_keys_list's order. RL_SORT_KEY by name (bytes), the others by their
 * counter or time, largest first. */
typedef enum rl_sort {
    RL_SORT_KEY = 0,
    RL_SORT_ALLOWED,
    RL_SORT_REFUSED,
    RL_SORT_LAST_SEEN,
    RL_SORT_INT_ = -1 /* private: keeps the type an int (see rl.h) */
} rl_sort;

/* Called by rl_keys_list with one key's stats (valid during the call);
 * non-zero stops the walk and is returned. Runs under the handle's lock. */
typedef int (*rl_key_cb)(void *ctx, const rl_key_stats *st);

/* Calls fn with the stats (as rl_stats) of each key whose name matches the
 * glob `match` (NULL: all), in the order `sort`, at most `limit` keys (0:
 * all), in one read transaction under the handle's lock: fn must not call
 * the same handle.
 * Returns RL_OK; fn's non-zero return; RL_EINVAL (fn NULL, unknown sort);
 * RL_ECORRUPT when a stored key is not a valid key (fn only ever sees valid
 * keys; a valid key may still hold bidi controls or zero-width characters:
 * escape keys before printing them); a store failure. */
RL_API int rl_keys_list(rl *r, const char *match, rl_sort sort, size_t limit, rl_key_cb fn,
                        void *ctx);

/* The most keys one rl_keys_page call lists. */
#define RL_KEYS_PAGE_MAX 1024

/* rl_keys_list in name order, a page at a time, for listings too long for
 * one read transaction and for paging through keys: calls fn with the
 * stats (as rl_stats) of at most `limit` (1..RL_KEYS_PAGE_MAX) keys whose
 * names come after `after` in byte order (NULL or "": from the first) and
 * match the glob `match` (NULL: all). The page is read in one short read
 * transaction, before fn is called for any of its keys, so a listing
 * never holds up deciders or checkpoints, whatever fn does. fn runs
 * without the handle's lock and outside any transaction: unlike
 * rl_keys_list's, it may call the handle.
 *   next  out, RL_KEY_MAX + 1 bytes: on RL_OK, the `after` of the next
 *         page, or "" when no key follows (a full page may be followed by
 *         an empty one).
 * Returns RL_OK; fn's non-zero return; RL_EINVAL (fn or next NULL, limit
 * out of range, after longer than RL_KEY_MAX); RL_ECORRUPT (as
 * rl_keys_list); RL_ENOMEM; a store failure. */
RL_API int rl_keys_page(rl *r, const char *match, const char *after, size_t limit, rl_key_cb fn,
                        void *ctx, char *next);

/* An open lease, as rl_leases_list reports it. A lease that is not live
 * (its TTL is over at the handle's clock, or its owner is gone) holds
 * nothing any more: it is reclaimable, and only waits for the next lease
 * decision on its key or rl_prune to be deleted. rl_stats and
 * rl_keys_list do not count it in in_flight. */
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
    int live;     /* 1: held; 0: expired or owner gone (reclaimable) */
    int waiting;  /* 1: not a lease but a waiter queued for a slot (it holds
                   * nothing; its costs are what it waits for) */
    int priority; /* a waiter's rl_priority */
} rl_lease_info;

/* Called by rl_leases_list with one lease (valid during the call); non-zero
 * stops the walk and is returned. Runs under the handle's lock. */
typedef int (*rl_lease_cb)(void *ctx, const rl_lease_info *l);

/* Calls fn for the open leases of `key` (NULL: all keys), oldest first,
 * reclaimable ones included (live 0), in one read transaction under the
 * handle's lock. Returns RL_OK; fn's non-zero return; RL_EINVAL
 * (fn NULL, bad key); RL_ECORRUPT (a stored key or lease that is not
 * valid); RL_ENOMEM; a store failure. */
RL_API int rl_leases_list(rl *r, const char *key, rl_lease_cb fn, void *ctx);

/* ======================================================================
 * Reading the policy
 * ====================================================================== */

/* A tier, as rl_tiers_list and rl_tier_get report it. */
typedef struct rl_tier_info {
    char name[RL_NAME_MAX];
    int unlimited;  /* no limits at all */
    int is_default; /* the default tier */
    size_t n_limits;
    struct {
        char name[RL_NAME_MAX];
        char resource[RL_NAME_MAX];
        int64_t count, period_ns, burst;
        rl_algorithm algorithm; /* RL_ALGO_CONCURRENT for a concurrency limit */
    } limits[RL_MAX_LIMITS];
} rl_tier_info;

/* Called by rl_tiers_list with one tier; non-zero stops the walk and is
 * returned. Runs on a private copy, without the lock: may use the handle. */
typedef int (*rl_tier_cb)(void *ctx, const rl_tier_info *t);

/* Calls fn with every tier of the current policy, by name. Returns RL_OK;
 * fn's non-zero return; RL_EINVAL (fn NULL); RL_ENOMEM; a store failure
 * (RL_ECORRUPT for a damaged stored policy). */
RL_API int rl_tiers_list(rl *r, rl_tier_cb fn, void *ctx);

/* Fills *t with the tier named `tier`. Returns RL_OK; RL_ENOTFOUND;
 * RL_EINVAL (bad name, t NULL); a store failure. */
RL_API int rl_tier_get(rl *r, const char *tier, rl_tier_info *t);

/* Called by rl_rules_list with one key rule: keys matching the glob
 * `match` get `tier`. Non-zero stops the walk and is returned. Runs on a
 * private copy, without the lock: may use the handle. */
typedef int (*rl_rule_cb)(void *ctx, const char *match, const char *tier);

/* Calls fn with the key rules, in the order they are tried. Returns as
 * rl_tiers_list. */
RL_API int rl_rules_list(rl *r, rl_rule_cb fn, void *ctx);

/* Checks the tiers file yaml_path as rl_load_tiers would, without any
 * store; thread-safe (no handle).
 *   err, errlen  out: on failure, "FILE:LINE:COL: message" (may be NULL/0).
 * Returns RL_OK; RL_ECONFIG (a bad file); RL_ESTORE (cannot read it);
 * RL_ENOMEM; RL_EINVAL. */
RL_API int rl_validate_tiers(const char *yaml_path, char *err, size_t errlen);

/* ======================================================================
 * Maintenance: many keys at once
 *
 * Walking calls (rl_reset_match, rl_prune) go through the keys a few hundred
 * at a time, each batch in a write transaction of its own that re-reads
 * every row it changes, so deciding processes wait for a moment at most and
 * no decision made between two batches is lost. Like every call they hold
 * the handle's mutex, and judge idle times and full buckets by the handle's
 * clock (rl_options.clock).
 * ====================================================================== */

/* Resets (as rl_reset: an assigned tier stays) every key whose name
 * matches the glob `match` and whose tier (as a decision would resolve it)
 * is `tier`; NULL for either means any.
 *   dry_run  non-zero: only count.
 *   count    out (may be NULL): the number of keys reset, or that would be,
 *            even when an error stops the walk half-way.
 * Returns RL_OK; RL_EINVAL; RL_EREADONLY; a store failure. */
RL_API int rl_reset_match(rl *r, const char *match, const char *tier, int dry_run, int64_t *count);

/* First reclaims the leases that are not live (rl_lease_info.live 0:
 * expired, or their owner died): deletes them and frees the slots they
 * hold, in one write transaction per key, as the next lease decision on
 * the key would. Then removes keys that hold nothing worth keeping: every
 * bucket full (no units spent, none in flight, no cool-down running), last
 * decision at least idle_ns ago, and no assigned tier. Their next request
 * meets the same full buckets, so pruning changes no decision. dry_run and
 * count (of keys) as rl_reset_match; a dry run reclaims nothing but counts
 * the keys that would go once their leases are reclaimed. Returns RL_OK;
 * RL_EINVAL (idle_ns outside 0..50 years); RL_EREADONLY; a store
 * failure. */
RL_API int rl_prune(rl *r, int64_t idle_ns, int dry_run, int64_t *count);

/* ======================================================================
 * Health checks
 * ====================================================================== */

/* A check's outcome (rl_check_cb's status). */
typedef enum rl_check_status {
    RL_CHECK_OK = 0,
    RL_CHECK_WARN = 1,
    RL_CHECK_FAIL = 2,
    RL_CHECK_INT_ = -1 /* private: keeps the type an int (see rl.h) */
} rl_check_status;

/* Called once per check with its short name ("journal_mode"), its status
 * and a one-line detail (both strings valid during the call). Non-zero
 * stops the checks and is returned. Runs under the handle's lock. */
typedef int (*rl_check_cb)(void *ctx, const char *check, rl_check_status status,
                           const char *detail);

/* Health checks of the store: journal mode, synchronous, busy timeout,
 * schema version, integrity, file permissions, filesystem, stored policy,
 * bucket states (on Redis, those that apply) and "leases" (a warning when
 * some are reclaimable: expired, or their owner died). Returns RL_OK when every
 * check ran, whatever their statuses; fn's non-zero return; RL_EINVAL (fn
 * NULL); a store failure that kept the checks from running. */
RL_API int rl_doctor(rl *r, rl_check_cb fn, void *ctx);

/* ======================================================================
 * Export and import
 * ====================================================================== */

/* Called by rl_export with the next piece of the document: len bytes at
 * buf (not NUL-terminated, valid during the call). Non-zero stops the
 * export and is returned. Runs under the handle's lock. */
typedef int (*rl_write_cb)(void *ctx, const char *buf, size_t len);

/* The whole state as one JSON document ("format": "rl-export", "version":
 * 1): settings, tiers with their limits, key rules, open leases, and every
 * key with its assigned tier, counters and bucket slots. Written through
 * `write` in pieces, from one read transaction, so deciding goes on and
 * memory stays small whatever the number of keys. Returns RL_OK; write's
 * non-zero return; RL_EINVAL (write NULL); RL_ENOMEM; a store failure. */
RL_API int rl_export(rl *r, rl_write_cb write, void *ctx);

/* Replaces the whole state with an rl_export document of len bytes at
 * json (read during the call), in one write transaction: all of it, or on
 * any error nothing. Every value is checked as the library checks its own
 * input. Returns RL_OK; RL_EINVAL with the place and reason in rl_errmsg
 * for a document that is not valid; RL_ENOMEM; RL_EREADONLY; a store
 * failure. */
RL_API int rl_import(rl *r, const char *json, size_t len);

/* ======================================================================
 * Notations: rates, durations, globs (no handle; thread-safe)
 * ====================================================================== */

/* Parses a rate as tiers files write it: "600/min", "100/30s", "5/s",
 * "1000/hour", "10000/day" (docs/tiers.md); "5/m" is ambiguous and refused.
 *   count, period_ns  out.
 * Returns RL_OK; RL_EINVAL for anything else. */
RL_API int rl_parse_rate(const char *s, int64_t *count, int64_t *period_ns);

/* Parses a duration in Go's notation: "1m30s", "250ms", "2h". Returns
 * RL_OK with *ns set; RL_EINVAL. */
RL_API int rl_parse_duration(const char *s, int64_t *ns);

/* Writes ns as rl_parse_duration reads it ("1m30s") to buf (len bytes).
 * Returns RL_OK; RL_EINVAL if ns < 0 or buf is too small. */
RL_API int rl_format_duration(int64_t ns, char *buf, size_t len);

/* Writes a rate as rl_parse_rate reads it ("600/min") to buf (len bytes).
 * Returns RL_OK; RL_EINVAL if buf is too small or the rate invalid. */
RL_API int rl_format_rate(int64_t count, int64_t period_ns, char *buf, size_t len);

/* 1 if s matches the glob pattern, else 0, as tier rules and rlctl --match
 * use it: '*' any run, '?' one byte, '\\' escapes the next byte. Linear
 * time. */
RL_API int rl_glob_match(const char *pattern, const char *s);

#ifdef __cplusplus
}
#endif

#endif /* RL_ADMIN_H */
