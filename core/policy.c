/*
 * policy.c - tiers, rules and key resolution (see policy.h).
 *
 * Guarantees: every limit that passes rl_ldef_check keeps the GCRA math of
 * gcra.c and the sliding window math of window.c inside their 128-bit
 * intermediates; names and keys that pass the
 * validators fit the fixed buffers of rl.h.
 */
#include "bytes.h"
#include "policy.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rl_policy_init(rl_policy *p)
{
    memset(p, 0, sizeof *p);
    p->fail_mode = RL_FAIL_UNSET;
}

void rl_policy_free(rl_policy *p)
{
    size_t i;
    if (!p)
        return;
    for (i = 0; i < p->n_rules; i++)
        free(p->rules[i].match);
    free(p->rules);
    free(p->tiers);
    rl_policy_init(p);
}

const rl_tier *rl_policy_tier(const rl_policy *p, const char *name)
{
    size_t i;
    for (i = 0; i < p->n_tiers; i++)
        if (strcmp(p->tiers[i].name, name) == 0)
            return &p->tiers[i];
    return NULL;
}

int rl_policy_put_tier(rl_policy *p, const rl_tier *t)
{
    rl_tier *slot = (rl_tier *)rl_policy_tier(p, t->name);
    if (!slot) {
        if (p->n_tiers == p->cap_tiers) {
            size_t cap = p->cap_tiers ? p->cap_tiers * 2 : 8;
            rl_tier *nt = realloc(p->tiers, cap * sizeof *nt);
            if (!nt)
                return RL_ENOMEM;
            p->tiers = nt;
            p->cap_tiers = cap;
        }
        slot = &p->tiers[p->n_tiers++];
    }
    *slot = *t;
    return RL_OK;
}

int rl_policy_del_tier(rl_policy *p, const char *name)
{
    rl_tier *t = (rl_tier *)rl_policy_tier(p, name);
    if (!t)
        return RL_ENOTFOUND;
    memmove(t, t + 1, (size_t)(p->tiers + p->n_tiers - (t + 1)) * sizeof *t);
    p->n_tiers--;
    return RL_OK;
}

int rl_policy_add_rule(rl_policy *p, const char *match, const char *tier)
{
    char *m;
    if (strlen(tier) >= RL_NAME_MAX)
        return RL_EINVAL;
    if (p->n_rules == p->cap_rules) {
        size_t cap = p->cap_rules ? p->cap_rules * 2 : 8;
        rl_rule *nr = realloc(p->rules, cap * sizeof *nr);
        if (!nr)
            return RL_ENOMEM;
        p->rules = nr;
        p->cap_rules = cap;
    }
    m = strdup(match);
    if (!m)
        return RL_ENOMEM;
    p->rules[p->n_rules].match = m;
    snprintf(p->rules[p->n_rules].tier, RL_NAME_MAX, "%s", tier);
    p->n_rules++;
    return RL_OK;
}

int rl_policy_copy(rl_policy *dst, const rl_policy *src)
{
    size_t i;
    int rc = RL_OK;
    rl_policy_init(dst);
    dst->version = src->version;
    dst->fail_mode = src->fail_mode;
    memcpy(dst->default_tier, src->default_tier, sizeof dst->default_tier);
    for (i = 0; i < src->n_tiers && rc == RL_OK; i++)
        rc = rl_policy_put_tier(dst, &src->tiers[i]);
    for (i = 0; i < src->n_rules && rc == RL_OK; i++)
        rc = rl_policy_add_rule(dst, src->rules[i].match, src->rules[i].tier);
    if (rc != RL_OK)
        rl_policy_free(dst);
    return rc;
}

const rl_tier *rl_policy_resolve(const rl_policy *p, const char *key, const char *assigned,
                                 int *source)
{
    const rl_tier *t;
    size_t i;
    if (assigned && *assigned && (t = rl_policy_tier(p, assigned))) {
        *source = RL_TIER_ASSIGNED;
        return t;
    }
    for (i = 0; i < p->n_rules; i++) {
        if (rl_glob_match(p->rules[i].match, key) && (t = rl_policy_tier(p, p->rules[i].tier))) {
            *source = RL_TIER_RULE;
            return t;
        }
    }
    if (p->default_tier[0] && (t = rl_policy_tier(p, p->default_tier))) {
        *source = RL_TIER_DEFAULT;
        return t;
    }
    /* Only without a default_tier, as before the defaults were stored: a
     * tiers file's default_tier covers every key, whatever a program says. */
    if (!p->default_tier[0] && (t = rl_policy_tier(p, RL_DEFAULTS_TIER))) {
        *source = RL_TIER_OPTIONS;
        return t;
    }
    *source = RL_TIER_NONE;
    return NULL;
}

int rl_name_valid(const char *s)
{
    size_t n = 0;
    if (!s)
        return 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n + 1 >= RL_NAME_MAX)
            return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return 0;
    }
    return n > 0;
}

/* The length of the UTF-8 sequence at p, or 0 if p does not start one a
 * key may hold: strict UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF) and no C1 control. It stops at the first byte that is not a
 * continuation, so it never reads past the NUL. */
size_t rl_utf8_len(const unsigned char *p)
{
    unsigned c = p[0], cp, need, i;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (i = 1; i <= need; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0x80 && cp <= 0x9f))
        return 0;
    return need + 1;
}

/* Format characters (Unicode category Cf: bidi controls such as U+202E,
 * zero-width characters, invisible operators, tags) and the line and
 * paragraph separators: they reorder, hide or break the text around them.
 * tool/output.c keeps the same list for rlctl's output. */
static const struct {
    unsigned lo, hi;
} rl_invisible[] = {
    { 0xad, 0xad },       { 0x600, 0x605 },     { 0x61c, 0x61c },     { 0x6dd, 0x6dd },
    { 0x70f, 0x70f },     { 0x890, 0x891 },     { 0x8e2, 0x8e2 },     { 0x180e, 0x180e },
    { 0x200b, 0x200f },   { 0x2028, 0x202e },   { 0x2060, 0x2064 },   { 0x2066, 0x206f },
    { 0xfeff, 0xfeff },   { 0xfff9, 0xfffb },   { 0x110bd, 0x110bd }, { 0x110cd, 0x110cd },
    { 0x13430, 0x1343f }, { 0x1bca0, 0x1bca3 }, { 0x1d173, 0x1d17a }, { 0xe0001, 0xe0001 },
    { 0xe0020, 0xe007f },
};

size_t rl_text_char(const unsigned char *p, size_t avail, int *unsafe)
{
    unsigned cp;
    size_t n, i;
    *unsafe = 0;
    if (p[0] < 0x80) {
        *unsafe = p[0] < 0x20 || p[0] == 0x7f;
        return 1;
    }
    if (avail >= 2 && p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
        *unsafe = 1; /* a C1 control, which rl_utf8_len refuses as a character */
        return 2;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3;
    else
        n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
    /* rl_utf8_len reads up to n bytes: not past avail */
    if (!n || n > avail || rl_utf8_len(p) != n) {
        *unsafe = 1; /* not UTF-8: this byte alone */
        return 1;
    }
    cp = p[0] & (0x7fu >> n);
    for (i = 1; i < n; i++)
        cp = cp << 6 | (p[i] & 0x3fu);
    for (i = 0; i < sizeof rl_invisible / sizeof rl_invisible[0]; i++)
        if (cp >= rl_invisible[i].lo && cp <= rl_invisible[i].hi)
            *unsafe = 1;
    return n;
}

/* No C0 controls or DEL either: a key must print safely in rlctl's tables. */
int rl_key_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0, len;
    if (!s || !*s)
        return 0;
    while (p[n]) {
        if (p[n] < 0x80) {
            if (p[n] < 0x20 || p[n] == 0x7f)
                return 0;
            len = 1;
        } else if (!(len = rl_utf8_len(p + n))) {
            return 0;
        }
        n += len;
        if (n > RL_KEY_MAX)
            return 0;
    }
    return 1;
}

/* FNV-1a over "resource\0name": stable across processes and versions. */
uint64_t rl_limit_id(const char *resource, const char *name)
{
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *p;
    for (p = (const unsigned char *)resource; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    h = (h ^ 0) * 1099511628211ULL;
    for (p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

int rl_ldef_check(const rl_ldef *d, char *err, size_t errlen)
{
    __extension__ typedef __int128 i128;
    const char *why = NULL;
    if (d->kind == RL_KIND_CONCURRENT) {
        if (d->count < 1 || d->count > RL_COUNT_MAX)
            why = "concurrent must be 1 to 2^40";
        else if (d->period_ns != 0 || d->burst != d->count)
            why = "a concurrency limit has no period and no burst";
    } else if (d->kind != RL_KIND_GCRA && d->kind != RL_KIND_WINDOW)
        why = "unknown kind of limit";
    /* A window's math (window.c) multiplies counts of at most twice count by
     * period, the same bounds as GCRA's burst * period: one set of checks
     * serves both; burst == count makes the refill bound period's. */
    else if (d->kind == RL_KIND_WINDOW && d->burst != d->count)
        why = "a sliding window has no burst (it is its count)";
    else if (d->count < 1)
        why = "count must be at least 1";
    else if (d->count > RL_COUNT_MAX)
        why = "count is too large (at most 2^40)";
    else if (d->period_ns < 1)
        why = "period must be positive";
    else if (d->period_ns > RL_PERIOD_MAX)
        why = "period is too long (at most 50 years)";
    else if (d->burst < 1)
        why = "burst must be at least 1";
    else if (d->burst > RL_COUNT_MAX)
        why = "burst is too large (at most 2^40)";
    /* NOLINTNEXTLINE(bugprone-implicit-widening-of-multiplication-result): RL_FILL_MAX is a constant (< 2^61) computed in int64 without overflow */
    else if ((i128)d->burst * d->period_ns / d->count > RL_FILL_MAX)
        why = "burst takes more than 50 years to refill";
    if (why) {
        snprintf(err, errlen, "limit '%s': %s", d->name, why);
        return RL_EINVAL;
    }
    return RL_OK;
}

int rl_ldef_from_limit(rl_ldef *d, const rl_limit *l, size_t pos, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    if (l->name) {
        if (!rl_name_valid(l->name)) {
            snprintf(err, errlen, "invalid limit name (1-63 of A-Z a-z 0-9 _ . : -)");
            return RL_EINVAL;
        }
        snprintf(d->name, sizeof d->name, "%s", l->name);
    } else {
        snprintf(d->name, sizeof d->name, "limit%zu", pos + 1);
    }
    if (l->resource && !rl_name_valid(l->resource)) {
        snprintf(err, errlen, "limit '%s': invalid resource name", d->name);
        return RL_EINVAL;
    }
    snprintf(d->resource, sizeof d->resource, "%s", l->resource ? l->resource : "requests");
    d->count = l->count;
    d->period_ns = l->period_ns;
    d->burst = l->burst == 0 ? l->count : l->burst;
    /* A cap on units in flight is asked for by name (RL_CONCURRENT), never
     * inferred from period 0: a rate whose period is 0 by mistake would
     * otherwise limit nothing that rl_allow decides. */
    if (l->algorithm == RL_ALGO_CONCURRENT) {
        d->kind = RL_KIND_CONCURRENT;
    } else if (l->algorithm == RL_ALGO_GCRA || l->algorithm == RL_ALGO_SLIDING_WINDOW) {
        if (l->period_ns == 0) {
            snprintf(err, errlen,
                     "limit '%s': period must be positive (a cap on units in flight is "
                     "RL_CONCURRENT)",
                     d->name);
            return RL_EINVAL;
        }
        d->kind = RL_KIND_GCRA;
        if (l->algorithm == RL_ALGO_SLIDING_WINDOW) {
            d->kind = RL_KIND_WINDOW;
            d->burst = l->count; /* a window admits count per period, no more */
        }
    } else {
        snprintf(err, errlen, "limit '%s': unknown algorithm %d", d->name, l->algorithm);
        return RL_EINVAL;
    }
    d->id = rl_limit_id(d->resource, d->name);
    return rl_ldef_check(d, err, errlen);
}

static uint64_t fp_fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n--)
        h = (h ^ *b++) * 0x100000001b3ULL;
    return h;
}

uint64_t rl_tier_fingerprint(const rl_tier *t)
{
    uint64_t h = fp_fnv(0xcbf29ce484222325ULL, t->name, strlen(t->name) + 1);
    unsigned char w[40];
    size_t i;
    for (i = 0; i < t->n; i++) {
        const rl_ldef *d = &t->limits[i];
        rl_put64(w, d->id);
        rl_put64(w + 8, (uint64_t)d->kind);
        rl_put64(w + 16, (uint64_t)d->count);
        rl_put64(w + 24, (uint64_t)d->period_ns);
        rl_put64(w + 32, (uint64_t)d->burst);
        h = fp_fnv(h, w, sizeof w);
    }
    return h ? h : 1;
}
