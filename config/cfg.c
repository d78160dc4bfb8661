/*
 * cfg.c - the tiers file schema, version 1: a YAML tree (cfg_yaml.c) to an
 * rl_policy (see cfg.h and docs/tiers.md).
 *
 * Guarantees: every refusal points at the node at fault (the key for
 * unknown, duplicate or misnamed fields, the value for bad values, the
 * limit for limits rl_ldef_check refuses); integers are decimal digits
 * only, overflow-checked, never floating point; nothing is half-applied:
 * on failure the policy is left empty.
 */
#include "cfg.h"
#include "cfg_yaml.h"
#include "parse.h"

#include <stdio.h>
#include <string.h>

#define RL_CFG_NAME_RULE "1-63 of A-Z a-z 0-9 _ . : -"

/* Field names of one mapping kind, and where the values landed. */
typedef struct rl_cfg_fields {
    const char *const *names;
    const char *allowed; /* for messages */
    const rl_cfg_node *key[8];
    const rl_cfg_node *val[8];
} rl_cfg_fields;

static int rl_cfg_is(const rl_cfg_node *n, const char *s)
{
    return n->kind == RL_CFG_SCALAR && n->len == strlen(s) && memcmp(n->text, s, n->len) == 0;
}

static int rl_cfg_is_null(const rl_cfg_node *n)
{
    return n->kind == RL_CFG_SCALAR && n->plain &&
           (n->len == 0 || rl_cfg_is(n, "~") || rl_cfg_is(n, "null") || rl_cfg_is(n, "Null") ||
            rl_cfg_is(n, "NULL"));
}

/* "a mapping", "null", "'foo'": what the user wrote, for "got ..." */
static const char *rl_cfg_describe(const rl_cfg_node *n, char *buf, size_t len)
{
    char q[64];
    if (n->kind == RL_CFG_MAP)
        return "a mapping";
    if (n->kind == RL_CFG_SEQ)
        return "a sequence";
    if (rl_cfg_is_null(n))
        return "null";
    rl_parse_quote(q, sizeof q, n->text, n->len);
    snprintf(buf, len, "%s'%s'", n->plain ? "" : "the string ", q);
    return buf;
}

static const char *rl_cfg_quote(const rl_cfg_node *n, char *buf, size_t len)
{
    rl_parse_quote(buf, len, n->text, n->len);
    return buf;
}

/* Sorts the pairs of map into f by name. Keys must be scalars; a key that
 * is not one of f->names or that repeats one is refused at the key, in
 * document order. `where` completes "unknown field 'x'" (" in limit"). */
static int rl_cfg_fields_get(rl_cfg_ctx *c, const rl_cfg_node *map, rl_cfg_fields *f,
                             const char *where)
{
    size_t i, j;
    char q[64], d[96];
    memset(f->key, 0, sizeof f->key);
    memset(f->val, 0, sizeof f->val);
    for (i = 0; i + 1 < map->n; i += 2) {
        const rl_cfg_node *k = map->kids[i];
        if (k->kind != RL_CFG_SCALAR)
            return rl_cfg_fail_at(c, k, "mapping keys must be strings, got %s",
                                  rl_cfg_describe(k, d, sizeof d));
        for (j = 0; f->names[j]; j++)
            if (rl_cfg_is(k, f->names[j]))
                break;
        if (!f->names[j])
            return rl_cfg_fail_at(c, k, "unknown field '%s'%s (allowed: %s)",
                                  rl_cfg_quote(k, q, sizeof q), where, f->allowed);
        if (f->key[j])
            return rl_cfg_fail_at(c, k, "duplicate key '%s' (first at %zu:%zu)", f->names[j],
                                  f->key[j]->line, f->key[j]->col);
        f->key[j] = k;
        f->val[j] = map->kids[i + 1];
    }
    return RL_OK;
}

/* A string value: any scalar but null, without NUL bytes (C strings would
 * silently cut "ab\0cd" to a different, valid name). */
static int rl_cfg_string(rl_cfg_ctx *c, const rl_cfg_node *n, const char *field)
{
    char d[96];
    if (n->kind != RL_CFG_SCALAR || rl_cfg_is_null(n))
        return rl_cfg_fail_at(c, n, "'%s' must be a string, got %s", field,
                              rl_cfg_describe(n, d, sizeof d));
    if (strlen(n->text) != n->len)
        return rl_cfg_fail_at(c, n, "'%s' must not contain NUL bytes", field);
    return RL_OK;
}

/* Decimal digits only: no sign, no 0x, no 1e3, no 1_000, no quotes. */
static int rl_cfg_int(rl_cfg_ctx *c, const rl_cfg_node *n, const char *field, int64_t *out)
{
    char d[96];
    int64_t v = 0;
    size_t i;
    if (n->kind != RL_CFG_SCALAR || rl_cfg_is_null(n))
        return rl_cfg_fail_at(c, n, "'%s' must be an integer, got %s", field,
                              rl_cfg_describe(n, d, sizeof d));
    if (!n->plain)
        return rl_cfg_fail_at(c, n, "'%s' must be an integer, got %s", field,
                              rl_cfg_describe(n, d, sizeof d));
    if (n->len > 1 && n->text[0] == '-' && n->text[1] >= '0' && n->text[1] <= '9')
        return rl_cfg_fail_at(c, n, "'%s' must not be negative", field);
    for (i = 0; i < n->len; i++)
        if (n->text[i] < '0' || n->text[i] > '9')
            return rl_cfg_fail_at(c, n, "'%s' must be a decimal integer, got %s", field,
                                  rl_cfg_describe(n, d, sizeof d));
    for (i = 0; i < n->len; i++) {
        int dg = n->text[i] - '0';
        if (v > (INT64_MAX - dg) / 10)
            return rl_cfg_fail_at(c, n, "'%s' is too large", field);
        v = v * 10 + dg;
    }
    *out = v;
    return RL_OK;
}

/* YAML 1.2 core booleans; yes/no/on/off are YAML 1.1 only and refused. */
static int rl_cfg_bool(rl_cfg_ctx *c, const rl_cfg_node *n, const char *field, int *out)
{
    char d[96];
    if (n->kind == RL_CFG_SCALAR && n->plain) {
        if (rl_cfg_is(n, "true") || rl_cfg_is(n, "True") || rl_cfg_is(n, "TRUE")) {
            *out = 1;
            return RL_OK;
        }
        if (rl_cfg_is(n, "false") || rl_cfg_is(n, "False") || rl_cfg_is(n, "FALSE")) {
            *out = 0;
            return RL_OK;
        }
    }
    return rl_cfg_fail_at(c, n, "'%s' must be true or false, got %s", field,
                          rl_cfg_describe(n, d, sizeof d));
}

/* A tier, limit or resource name (rl_name_valid). */
static int rl_cfg_name(rl_cfg_ctx *c, const rl_cfg_node *n, const char *field, const char *what)
{
    char q[64];
    int rc = rl_cfg_string(c, n, field);
    if (rc != RL_OK)
        return rc;
    if (!rl_name_valid(n->text))
        return rl_cfg_fail_at(c, n, "invalid %s name '%s' (" RL_CFG_NAME_RULE ")", what,
                              rl_cfg_quote(n, q, sizeof q));
    return RL_OK;
}

static const char *const rl_cfg_limit_fields[] = { "name",       "rate",      "burst", "resource",
                                                   "concurrent", "algorithm", NULL };
enum {
    RL_CFG_L_NAME,
    RL_CFG_L_RATE,
    RL_CFG_L_BURST,
    RL_CFG_L_RESOURCE,
    RL_CFG_L_CONCURRENT,
    RL_CFG_L_ALGORITHM
};

/* algorithm: gcra (the default; token_bucket is the same), or
 * sliding_window. Sets d->kind for a rate limit. */
static int rl_cfg_algorithm(rl_cfg_ctx *c, const rl_cfg_node *n, rl_ldef *d)
{
    char q[64];
    int rc = rl_cfg_string(c, n, "algorithm");
    if (rc != RL_OK)
        return rc;
    if (rl_cfg_is(n, "gcra") || rl_cfg_is(n, "token_bucket"))
        d->kind = RL_KIND_GCRA;
    else if (rl_cfg_is(n, "sliding_window"))
        d->kind = RL_KIND_WINDOW;
    else
        return rl_cfg_fail_at(c, n,
                              "invalid algorithm '%s' (allowed: gcra, token_bucket, "
                              "sliding_window)",
                              rl_cfg_quote(n, q, sizeof q));
    return RL_OK;
}

static int rl_cfg_limit(rl_cfg_ctx *c, const rl_cfg_node *n, rl_tier *t, const rl_cfg_node **names)
{
    rl_cfg_fields f = {
        rl_cfg_limit_fields, "name, rate, burst, resource, concurrent, algorithm", { 0 }, { 0 }
    };
    rl_ldef *d = &t->limits[t->n];
    char d80[96], why[160], q[64];
    size_t i;
    int rc;

    if (n->kind != RL_CFG_MAP)
        return rl_cfg_fail_at(c, n, "each limit must be a mapping with 'name' and 'rate', got %s",
                              rl_cfg_describe(n, d80, sizeof d80));
    if ((rc = rl_cfg_fields_get(c, n, &f, " in limit")) != RL_OK)
        return rc;
    if (!f.val[RL_CFG_L_NAME])
        return rl_cfg_fail_at(c, n, "limit is missing 'name'");
    if ((rc = rl_cfg_name(c, f.val[RL_CFG_L_NAME], "name", "limit")) != RL_OK)
        return rc;
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", f.val[RL_CFG_L_NAME]->text);
    for (i = 0; i < t->n; i++)
        if (strcmp(t->limits[i].name, d->name) == 0)
            return rl_cfg_fail_at(
                c, f.val[RL_CFG_L_NAME], "duplicate limit '%s' in tier '%s' (first at %zu:%zu)",
                d->name,
                /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): names[0..t->n-1] are set before t->n grows; the analyzer loses t->n after snprintf into t->name */
                t->name, names[i]->line, names[i]->col);
    names[t->n] = f.val[RL_CFG_L_NAME];
    if (f.val[RL_CFG_L_CONCURRENT]) {
        /* units in flight, held by leases: no rate, no burst */
        if (f.val[RL_CFG_L_RATE] || f.val[RL_CFG_L_BURST])
            return rl_cfg_fail_at(c, f.val[RL_CFG_L_CONCURRENT],
                                  "limit '%s': 'concurrent' cannot go with 'rate' or 'burst'",
                                  d->name);
        if (f.key[RL_CFG_L_ALGORITHM])
            return rl_cfg_fail_at(c, f.key[RL_CFG_L_ALGORITHM],
                                  "limit '%s': 'algorithm' is for rates, not 'concurrent'",
                                  d->name);
        if ((rc = rl_cfg_int(c, f.val[RL_CFG_L_CONCURRENT], "concurrent", &d->count)) != RL_OK)
            return rc;
        if (d->count < 1)
            return rl_cfg_fail_at(c, f.val[RL_CFG_L_CONCURRENT], "'concurrent' must be at least 1");
        d->burst = d->count;
        d->period_ns = 0;
        d->kind = RL_KIND_CONCURRENT;
    } else if (!f.val[RL_CFG_L_RATE])
        return rl_cfg_fail_at(c, n, "limit '%s' is missing 'rate'", d->name);
    else {
        if ((rc = rl_cfg_string(c, f.val[RL_CFG_L_RATE], "rate")) != RL_OK)
            return rc;
        if (rl_parse_rate_ex(f.val[RL_CFG_L_RATE]->text, &d->count, &d->period_ns, why,
                             sizeof why) != RL_OK)
            return rl_cfg_fail_at(c, f.val[RL_CFG_L_RATE], "invalid rate '%s': %s",
                                  rl_cfg_quote(f.val[RL_CFG_L_RATE], q, sizeof q), why);
        d->burst = d->count;
        d->kind = RL_KIND_GCRA;
        if (f.val[RL_CFG_L_ALGORITHM] &&
            (rc = rl_cfg_algorithm(c, f.val[RL_CFG_L_ALGORITHM], d)) != RL_OK)
            return rc;
        /* a window admits count per period: a burst would silently mean
         * nothing, so it is refused where it was written */
        if (f.val[RL_CFG_L_BURST] && d->kind == RL_KIND_WINDOW)
            return rl_cfg_fail_at(c, f.key[RL_CFG_L_BURST],
                                  "limit '%s': 'burst' cannot go with 'algorithm: "
                                  "sliding_window' (a sliding window admits its count per "
                                  "period)",
                                  d->name);
        if (f.val[RL_CFG_L_BURST]) {
            if ((rc = rl_cfg_int(c, f.val[RL_CFG_L_BURST], "burst", &d->burst)) != RL_OK)
                return rc;
            if (d->burst < 1)
                return rl_cfg_fail_at(c, f.val[RL_CFG_L_BURST], "'burst' must be at least 1");
        }
    }
    snprintf(d->resource, sizeof d->resource, "requests");
    if (f.val[RL_CFG_L_RESOURCE]) {
        if ((rc = rl_cfg_name(c, f.val[RL_CFG_L_RESOURCE], "resource", "resource")) != RL_OK)
            return rc;
        snprintf(d->resource, sizeof d->resource, "%s", f.val[RL_CFG_L_RESOURCE]->text);
    }
    d->id = rl_limit_id(d->resource, d->name);
    if (rl_ldef_check(d, why, sizeof why) != RL_OK)
        return rl_cfg_fail_at(c, n, "%s", why);
    t->n++;
    return RL_OK;
}

static const char *const rl_cfg_tier_fields[] = { "limits", "unlimited", NULL };
enum { RL_CFG_T_LIMITS, RL_CFG_T_UNLIMITED };

static int rl_cfg_tier(rl_cfg_ctx *c, const rl_cfg_node *key, const rl_cfg_node *n, rl_policy *p)
{
    rl_cfg_fields f = { rl_cfg_tier_fields, "limits, unlimited", { 0 }, { 0 } };
    const rl_cfg_node *names[RL_MAX_LIMITS], *lim;
    rl_tier t;
    char d[96], where[RL_NAME_MAX + 16];
    size_t i;
    int rc;

    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", key->text);
    if (n->kind != RL_CFG_MAP)
        return rl_cfg_fail_at(c, n,
                              "tier '%s' must be a mapping with 'limits' or 'unlimited', "
                              "got %s",
                              t.name, rl_cfg_describe(n, d, sizeof d));
    snprintf(where, sizeof where, " in tier '%s'", t.name);
    if ((rc = rl_cfg_fields_get(c, n, &f, where)) != RL_OK)
        return rc;
    if (f.val[RL_CFG_T_UNLIMITED] &&
        (rc = rl_cfg_bool(c, f.val[RL_CFG_T_UNLIMITED], "unlimited", &t.unlimited)) != RL_OK)
        return rc;
    lim = f.val[RL_CFG_T_LIMITS];
    if (t.unlimited && lim)
        return rl_cfg_fail_at(c, f.key[RL_CFG_T_LIMITS],
                              "tier '%s' is unlimited and cannot also have limits", t.name);
    if (!t.unlimited) {
        if (!lim)
            return rl_cfg_fail_at(c, key,
                                  "tier '%s' has no limits (give 'limits' or "
                                  "'unlimited: true')",
                                  t.name);
        if (lim->kind != RL_CFG_SEQ)
            return rl_cfg_fail_at(c, lim, "'limits' must be a sequence, got %s",
                                  rl_cfg_describe(lim, d, sizeof d));
        if (lim->n == 0)
            return rl_cfg_fail_at(c, lim, "tier '%s' has no limits (the list is empty)", t.name);
        for (i = 0; i < lim->n; i++) {
            if (i == RL_MAX_LIMITS)
                return rl_cfg_fail_at(c, lim->kids[i], "tier '%s' has more than %d limits", t.name,
                                      RL_MAX_LIMITS);
            if ((rc = rl_cfg_limit(c, lim->kids[i], &t, names)) != RL_OK)
                return rc;
        }
    }
    if (rl_policy_put_tier(p, &t) != RL_OK)
        return rl_cfg_nomem(c);
    return RL_OK;
}

static int rl_cfg_tiers(rl_cfg_ctx *c, const rl_cfg_node *n, rl_policy *p)
{
    char d[96], q[64];
    size_t i, j;
    int rc;
    if (n->kind != RL_CFG_MAP)
        return rl_cfg_fail_at(c, n, "'tiers' must be a mapping of tier names to tiers, got %s",
                              rl_cfg_describe(n, d, sizeof d));
    for (i = 0; i + 1 < n->n; i += 2) {
        const rl_cfg_node *k = n->kids[i];
        if (k->kind != RL_CFG_SCALAR)
            return rl_cfg_fail_at(c, k, "mapping keys must be strings, got %s",
                                  rl_cfg_describe(k, d, sizeof d));
        if (i / 2 == RL_CFG_MAX_TIERS)
            return rl_cfg_fail_at(c, k, "too many tiers (more than %d)", RL_CFG_MAX_TIERS);
        if (strlen(k->text) != k->len || !rl_name_valid(k->text))
            return rl_cfg_fail_at(c, k, "invalid tier name '%s' (" RL_CFG_NAME_RULE ")",
                                  rl_cfg_quote(k, q, sizeof q));
        if (rl_policy_tier(p, k->text)) {
            /* Rare, so finding where it was first is left to this path. */
            for (j = 0; j < i && strcmp(n->kids[j]->text, k->text) != 0; j += 2)
                ;
            return rl_cfg_fail_at(c, k, "duplicate tier '%s' (first at %zu:%zu)", k->text,
                                  n->kids[j]->line, n->kids[j]->col);
        }
        if ((rc = rl_cfg_tier(c, k, n->kids[i + 1], p)) != RL_OK)
            return rc;
    }
    return RL_OK;
}

/* A tier name given as a value: valid, and defined by this file. */
static int rl_cfg_tier_ref(rl_cfg_ctx *c, const rl_cfg_node *n, const char *field,
                           const rl_policy *p)
{
    int rc = rl_cfg_name(c, n, field, "tier");
    if (rc != RL_OK)
        return rc;
    if (!rl_policy_tier(p, n->text))
        return rl_cfg_fail_at(c, n, "%s '%s' is not a defined tier", field, n->text);
    return RL_OK;
}

static const char *const rl_cfg_rule_fields[] = { "match", "tier", NULL };
enum { RL_CFG_R_MATCH, RL_CFG_R_TIER };

static int rl_cfg_keys(rl_cfg_ctx *c, const rl_cfg_node *n, rl_policy *p)
{
    char d[96], q[64];
    size_t i;
    int rc;
    if (n->kind != RL_CFG_SEQ)
        return rl_cfg_fail_at(c, n, "'keys' must be a sequence of rules, got %s",
                              rl_cfg_describe(n, d, sizeof d));
    for (i = 0; i < n->n; i++) {
        const rl_cfg_node *r = n->kids[i], *m, *t;
        rl_cfg_fields f = { rl_cfg_rule_fields, "match, tier", { 0 }, { 0 } };
        if (r->kind != RL_CFG_MAP)
            return rl_cfg_fail_at(c, r,
                                  "each key rule must be a mapping with 'match' and "
                                  "'tier', got %s",
                                  rl_cfg_describe(r, d, sizeof d));
        if ((rc = rl_cfg_fields_get(c, r, &f, " in key rule")) != RL_OK)
            return rc;
        m = f.val[RL_CFG_R_MATCH];
        t = f.val[RL_CFG_R_TIER];
        if (!m)
            return rl_cfg_fail_at(c, r, "key rule is missing 'match'");
        if (!t)
            return rl_cfg_fail_at(c, r, "key rule is missing 'tier'");
        if ((rc = rl_cfg_string(c, m, "match")) != RL_OK)
            return rc;
        if (!rl_key_valid(m->text))
            return rl_cfg_fail_at(c, m,
                                  "invalid key pattern '%s' (1-%d bytes of UTF-8 without "
                                  "control characters)",
                                  rl_cfg_quote(m, q, sizeof q), RL_KEY_MAX);
        if ((rc = rl_cfg_tier_ref(c, t, "tier", p)) != RL_OK)
            return rc;
        if ((rc = rl_policy_add_rule(p, m->text, t->text)) != RL_OK)
            return rc == RL_ENOMEM ? rl_cfg_nomem(c) : rl_cfg_fail_at(c, t, "invalid rule");
    }
    return RL_OK;
}

static const char *const rl_cfg_top_fields[] = { "version", "default_tier", "fail_mode",
                                                 "tiers",   "keys",         NULL };
enum { RL_CFG_VERSION, RL_CFG_DEFAULT_TIER, RL_CFG_FAIL_MODE, RL_CFG_TIERS, RL_CFG_KEYS };

static int rl_cfg_top(rl_cfg_ctx *c, const rl_cfg_node *root, rl_policy *p)
{
    rl_cfg_fields f = {
        rl_cfg_top_fields, "version, default_tier, fail_mode, tiers, keys", { 0 }, { 0 }
    };
    const rl_cfg_node *v = NULL;
    char d[96], q[64];
    int64_t version;
    size_t i;
    int rc;

    if (!root)
        return rl_cfg_fail(c, RL_ECONFIG, 1, 1, "empty file: expected a mapping with 'version: 1'");
    if (root->kind != RL_CFG_MAP)
        return rl_cfg_fail_at(c, root, "expected a mapping with 'version: 1', got %s",
                              rl_cfg_describe(root, d, sizeof d));
    /* The version decides how to read everything else, so it goes first:
     * a newer file should say "unsupported version", not "unknown field". */
    for (i = 0; i + 1 < root->n && !v; i += 2)
        if (rl_cfg_is(root->kids[i], "version"))
            v = root->kids[i + 1];
    if (!v)
        return rl_cfg_fail_at(c, root, "missing 'version' (this format is 'version: 1')");
    if ((rc = rl_cfg_int(c, v, "version", &version)) != RL_OK)
        return rc;
    /* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult): rl_cfg_int sets version whenever it returns RL_OK; the analyzer does not inline the variadic rl_cfg_fail_at (other TU) and assumes it may return RL_OK */
    if (version != 1)
        return rl_cfg_fail_at(c, v, "unsupported version %lld (only version 1 is known)",
                              (long long)version);
    if ((rc = rl_cfg_fields_get(c, root, &f, "")) != RL_OK)
        return rc;
    /* Tiers before anything that names them, wherever they are written. */
    if (f.val[RL_CFG_TIERS] && (rc = rl_cfg_tiers(c, f.val[RL_CFG_TIERS], p)) != RL_OK)
        return rc;
    if (f.val[RL_CFG_DEFAULT_TIER]) {
        if ((rc = rl_cfg_tier_ref(c, f.val[RL_CFG_DEFAULT_TIER], "default_tier", p)) != RL_OK)
            return rc;
        snprintf(p->default_tier, sizeof p->default_tier, "%s", f.val[RL_CFG_DEFAULT_TIER]->text);
    }
    if (f.val[RL_CFG_FAIL_MODE]) {
        const rl_cfg_node *m = f.val[RL_CFG_FAIL_MODE];
        if ((rc = rl_cfg_string(c, m, "fail_mode")) != RL_OK)
            return rc;
        if (rl_cfg_is(m, "closed"))
            p->fail_mode = RL_FAIL_CLOSED;
        else if (rl_cfg_is(m, "open"))
            p->fail_mode = RL_FAIL_OPEN;
        else
            return rl_cfg_fail_at(c, m, "invalid fail_mode '%s' (allowed: closed, open)",
                                  rl_cfg_quote(m, q, sizeof q));
    }
    if (f.val[RL_CFG_KEYS] && (rc = rl_cfg_keys(c, f.val[RL_CFG_KEYS], p)) != RL_OK)
        return rc;
    return RL_OK;
}

int rl_cfg_parse_buffer(const char *name, const unsigned char *buf, size_t len, rl_policy *out,
                        char *err, size_t errlen)
{
    rl_cfg_ctx c = { name ? name : "<buffer>", err, errlen };
    rl_cfg_node *root = NULL;
    int rc;

    rl_policy_init(out);
    if (err && errlen)
        err[0] = '\0';
    if (!buf && len)
        return rl_cfg_fail(&c, RL_EINVAL, 1, 1, "no input");
    if (len > RL_CFG_MAX_BYTES) {
        rc = rl_cfg_fail(&c, RL_ECONFIG, 1, 1, "file too large (more than %zu bytes)",
                         RL_CFG_MAX_BYTES);
        goto out;
    }
    if ((rc = rl_cfg_yaml_load(&c, buf ? buf : (const unsigned char *)"", len, &root)) != RL_OK)
        goto out;
    rc = rl_cfg_top(&c, root, out);
out:
    rl_cfg_node_free(root);
    if (rc != RL_OK)
        rl_policy_free(out);
    return rc;
}
