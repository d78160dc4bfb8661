/*
 * policy.h - tiers, limits and key rules as plain structs.
 *
 * This is the form every layer shares: config/ parses YAML into it, store/
 * persists it, core/ resolves a key to a tier with it. A policy owns all its
 * memory; rl_policy_free releases it. Names are validated before they get
 * here (rl_name_valid), so fixed-size arrays always hold them.
 */
#ifndef RL_POLICY_H
#define RL_POLICY_H

#include "rl.h"

/* Limit kinds: a rate (GCRA), a cap on units in flight held by leases
 * (count = the cap; period_ns 0; burst = count), or a rate kept by a
 * sliding window counter (window.h; burst = count). The value is what the
 * store's rl_limits.kind column holds. */
enum { RL_KIND_GCRA = 0, RL_KIND_CONCURRENT = 1, RL_KIND_WINDOW = 2 };

/* Bounds that keep all admission math inside 128-bit intermediates and every
 * theoretical arrival time inside int64 nanoseconds. */
#define RL_COUNT_MAX ((int64_t)1 << 40)          /* ~1.1e12 units */
#define RL_FILL_MAX ((int64_t)50 * 366 * RL_DAY) /* burst * period / count */
#define RL_PERIOD_MAX RL_FILL_MAX

typedef struct rl_ldef {
    char name[RL_NAME_MAX];
    char resource[RL_NAME_MAX];
    int64_t count;
    int64_t period_ns;
    int64_t burst; /* already defaulted: never 0 */
    int kind;
    uint64_t id; /* rl_limit_id(resource, name): identifies state across reloads */
} rl_ldef;

typedef struct rl_tier {
    char name[RL_NAME_MAX];
    int unlimited; /* no limits at all */
    size_t n;
    rl_ldef limits[RL_MAX_LIMITS];
} rl_tier;

typedef struct rl_rule {
    char *match; /* glob over keys (rl_glob_match) */
    char tier[RL_NAME_MAX];
} rl_rule;

#define RL_FAIL_UNSET (-1)

typedef struct rl_policy {
    int64_t version;                /* store's policy version it was read at */
    char default_tier[RL_NAME_MAX]; /* "" when unset */
    int fail_mode;                  /* RL_FAIL_* or RL_FAIL_UNSET */
    rl_tier *tiers;
    size_t n_tiers, cap_tiers;
    rl_rule *rules;
    size_t n_rules, cap_rules;
} rl_policy;

void rl_policy_init(rl_policy *p);
void rl_policy_free(rl_policy *p);
/* Appends a copy of t (or replaces the tier of the same name). RL_ENOMEM. */
int rl_policy_put_tier(rl_policy *p, const rl_tier *t);
int rl_policy_del_tier(rl_policy *p, const char *name); /* RL_ENOTFOUND */
int rl_policy_add_rule(rl_policy *p, const char *match, const char *tier);
const rl_tier *rl_policy_tier(const rl_policy *p, const char *name);
/* Deep copy of src into dst (dst initialised by the call). */
int rl_policy_copy(rl_policy *dst, const rl_policy *src);

/* The tier that holds the default limits: rl_options.default_limits are
 * stored under this name (core/tiers.c), so that every process sharing the
 * store, and rlctl, resolve a key that nothing else covers alike. */
#define RL_DEFAULTS_TIER "default"

/* Which tier applies to key: the explicit assignment (may be "" for none),
 * then the first matching rule, then default_tier (RL_TIER_DEFAULT), then
 * the default limits, the tier named RL_DEFAULTS_TIER (RL_TIER_OPTIONS).
 * Returns NULL if none; *source says which (RL_TIER_*). */
const rl_tier *rl_policy_resolve(const rl_policy *p, const char *key, const char *assigned,
                                 int *source);

/* 1..RL_NAME_MAX-1 bytes of [A-Za-z0-9_.:-]. */
int rl_name_valid(const char *s);
/* 1..RL_KEY_MAX bytes of valid UTF-8, no control characters. */
int rl_key_valid(const char *s);
/* Bytes of the UTF-8 sequence at p that a key may hold, or 0. */
size_t rl_utf8_len(const unsigned char *p);
/* The bytes of the character at p (at most avail, avail >= 1), with
 * *unsafe set when it must not be shown as it is in a message or on a
 * terminal: a C0 or C1 control, DEL, a byte that does not start valid
 * UTF-8 (counted alone), or a character that reorders, hides or breaks
 * text (bidi controls such as U+202E, zero-width characters, line
 * separators). Valid keys may hold the last kind. */
size_t rl_text_char(const unsigned char *p, size_t avail, int *unsafe);
uint64_t rl_limit_id(const char *resource, const char *name);
/* What a key's slots are written for (rl_state.fp): the tier's name and
 * each limit's identity, kind and numbers, in the same bytes on every
 * machine. Never 0, which stands for unknown. Stores key slot sets by it
 * (store.h). */
uint64_t rl_tier_fingerprint(const rl_tier *t);

/* Checks one public rl_limit and fills d (defaults applied, name "limitN"
 * for position pos when NULL). Writes a one-line reason into err. */
int rl_ldef_from_limit(rl_ldef *d, const rl_limit *l, size_t pos, char *err, size_t errlen);
/* Checks the numbers of a limit; the reason goes to err. */
int rl_ldef_check(const rl_ldef *d, char *err, size_t errlen);

#endif
