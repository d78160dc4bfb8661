/*
 * import.c - rl_import: replaces the whole state of a database with an
 * rl_export document (export.c), for moving and restoring databases
 * (rlctl import).
 *
 * Guarantees:
 *   - the whole document is read and checked before the store is touched:
 *     every name, key, number and slot is held to the rules a tiers file
 *     and a decision hold them to, and an unknown, repeated or missing
 *     member is refused with where it is ("keys[3].slots[0]: ...");
 *   - then everything is replaced in one write transaction: all or
 *     nothing, retried when an optimistic store reports a conflict;
 *   - JSON is read by SQLite's JSON functions on a private in-memory
 *     connection (jdb.h), never by hand: the document is bound as a
 *     parameter, never pasted into SQL. What it holds is staged in that
 *     connection's tables, not in the handle's store, until it is whole.
 */
#include "jdb.h"
#include "rl_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the statements that read the document and stage it ------------------ */

enum {
    /* reading */
    J_VALID,
    J_TOP,
    J_EACH0,
    J_EACH1,
    J_EACH2,
    J_EACH3,
    /* staging what an import read */
    J_K_INS,
    J_L_INS,
    J_K_ALL,
    J_L_ALL,
    J_COUNT
};

#define J_EACH_SQL "SELECT key, type, atom, value FROM json_each(?1, ?2)"

static const char *const jsql[J_COUNT] = {
    [J_VALID] = "SELECT json_valid(?1), CASE WHEN json_valid(?1) THEN json_type(?1) END",
    /* No value column: for "keys" it would be a copy of most of the
     * document. atom is NULL for arrays and objects, so costs nothing. */
    [J_TOP] = "SELECT key, type, atom FROM json_each(?1)",
    [J_EACH0] = J_EACH_SQL,
    [J_EACH1] = J_EACH_SQL,
    [J_EACH2] = J_EACH_SQL,
    [J_EACH3] = J_EACH_SQL,
    [J_K_INS] = "INSERT INTO k (key, tier, state, allowed, refused, units, first_seen,"
                " last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [J_L_INS] = "INSERT INTO l (id, key, created, expires, pid, pstart, body)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [J_K_ALL] = "SELECT key, tier, state, allowed, refused, units, first_seen, last_seen"
                " FROM k ORDER BY key",
    [J_L_ALL] = "SELECT id, key, created, expires, pid, pstart, body FROM l ORDER BY id",
};
_Static_assert(J_COUNT <= RL_EXPORT_JDB_MAX, "import: more statements than jdb holds");

/* ---- walking the document, checking what it holds ------------------------ */

/* What json_each says of one member or element. */
typedef struct jv {
    const char *name; /* member name ("" in arrays) */
    int64_t index;    /* element index in arrays */
    const char *type; /* "null", "true", "false", "integer", "real", "text", "array", "object" */
    sqlite3_stmt *q;  /* the row: atom in column 2, JSON text in column 3 */
} jv;

typedef struct importer importer;
typedef int (*jv_fn)(importer *im, const jv *v, void *arg);

struct importer {
    rl__export_jdb j;
    const char *doc;
    size_t doclen;
    rl_policy pol;
    size_t nkeys, nleases;
};

/* Walks the members of an object or the elements of an array: at `path`
 * of the document (text NULL), or of a nested value's JSON text. */
static int each(importer *im, int which, const char *text, size_t len, const char *path, jv_fn fn,
                void *arg)
{
    sqlite3_stmt *q = rl__export_stmt(&im->j, which);
    jv v;
    int rc = RL_OK, step;
    if (!q)
        return RL_ESTORE;
    if (text)
        sqlite3_bind_text64(q, 1, text, len, SQLITE_STATIC, SQLITE_UTF8);
    else
        sqlite3_bind_text64(q, 1, im->doc, im->doclen, SQLITE_STATIC, SQLITE_UTF8);
    sqlite3_bind_text(q, 2, path ? path : "$", -1, SQLITE_STATIC);
    v.q = q;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(q, 1);
        v.type = t ? (const char *)t : "null";
        if (sqlite3_column_type(q, 0) == SQLITE_INTEGER) {
            v.name = "";
            v.index = sqlite3_column_int64(q, 0);
        } else {
            const unsigned char *n = sqlite3_column_text(q, 0);
            v.name = n ? (const char *)n : "";
            v.index = -1;
        }
        if ((rc = fn(im, &v, arg)) != RL_OK)
            break;
    }
    if (rc == RL_OK && step != SQLITE_DONE)
        rc = rl__export_fail(&im->j, "reading JSON");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 4)))
#endif
static int
bad(importer *im, const char *where, const char *fmt, ...)
{
    char why[RL_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return rl_seterr(im->j.err, RL_EINVAL, "import: %s: %s", where, why);
}

static int is_type(const jv *v, const char *type)
{
    return strcmp(v->type, type) == 0;
}

static int want_int(importer *im, const char *where, const jv *v, int64_t min, int64_t max,
                    int64_t *out)
{
    /* "integer" alone would take 1e999's overflow as a double */
    if (!is_type(v, "integer") || sqlite3_column_type(v->q, 2) != SQLITE_INTEGER)
        return bad(im, where, "'%s' must be an integer", v->name);
    *out = sqlite3_column_int64(v->q, 2);
    if (*out < min || *out > max)
        return bad(im, where, "'%s' is out of range (%lld to %lld)", v->name, (long long)min,
                   (long long)max);
    return RL_OK;
}

/* A string member (null allowed when buf may stay ""), checked by valid. */
static int want_text(importer *im, const char *where, const jv *v, int nullable,
                     int (*valid)(const char *), const char *what, char *buf, size_t len)
{
    const unsigned char *t;
    size_t n;
    buf[0] = 0;
    if (nullable && is_type(v, "null"))
        return RL_OK;
    if (!is_type(v, "text"))
        return bad(im, where, "'%s' must be a string%s", v->name, nullable ? " or null" : "");
    t = sqlite3_column_text(v->q, 2);
    n = (size_t)sqlite3_column_bytes(v->q, 2);
    if (!t || n >= len || strlen((const char *)t) != n || (valid && !valid((const char *)t)))
        return bad(im, where, "'%s' is not a valid %s", v->name, what);
    memcpy(buf, t, n + 1);
    return RL_OK;
}

static int want_kind(importer *im, const char *where, const jv *v, const char *const *names,
                     const int *values, int *out)
{
    char buf[32];
    int rc = want_text(im, where, v, 0, NULL, "kind", buf, sizeof buf), i;
    if (rc != RL_OK)
        return rc;
    for (i = 0; names[i]; i++)
        if (strcmp(buf, names[i]) == 0) {
            *out = values[i];
            return RL_OK;
        }
    return bad(im, where, "unknown %s '%s'", v->name, buf);
}

static int want_id(importer *im, const char *where, const jv *v, uint64_t *out)
{
    char buf[24], *end;
    int rc = want_text(im, where, v, 0, NULL, "id", buf, sizeof buf);
    if (rc != RL_OK)
        return rc;
    if (strlen(buf) != 16 || strspn(buf, "0123456789abcdef") != 16)
        return bad(im, where, "'%s' must be 16 lower-case hex digits", v->name);
    *out = strtoull(buf, &end, 16);
    return RL_OK;
}

/* Which of `names` v is, once: an unknown or repeated member is an error,
 * as in tiers files. */
static int member(importer *im, const char *where, const jv *v, const char *const *names,
                  unsigned *seen)
{
    int i;
    for (i = 0; names[i]; i++) {
        if (strcmp(v->name, names[i]) != 0)
            continue;
        if (*seen & (1u << i)) {
            bad(im, where, "'%s' given twice", v->name);
            return -1;
        }
        *seen |= 1u << i;
        return i;
    }
    bad(im, where, "unknown member '%s'", v->name);
    return -1;
}

static int require(importer *im, const char *where, const char *const *names, unsigned seen)
{
    int i;
    for (i = 0; names[i]; i++)
        if (!(seen & (1u << i)))
            return bad(im, where, "'%s' is missing", names[i]);
    return RL_OK;
}

/* The JSON text of v (an array or object member). */
static const char *jtext(const jv *v, size_t *len)
{
    *len = (size_t)sqlite3_column_bytes(v->q, 3);
    return (const char *)sqlite3_column_text(v->q, 3);
}

/* Walks v, which must be of `type`. */
static int nested(importer *im, int depth, const char *where, const jv *v, const char *type,
                  jv_fn fn, void *arg)
{
    const char *t;
    size_t len;
    if (!is_type(v, type))
        return bad(im, where, "'%s' must be an %s", v->name, type);
    t = jtext(v, &len);
    return each(im, J_EACH0 + depth, t, len, NULL, fn, arg);
}

/* ---- import: settings, tiers, rules ---- */

static const char *const settings_fields[] = { "default_tier", "fail_mode", NULL };

static int settings_member(importer *im, const jv *v, void *arg)
{
    char buf[RL_NAME_MAX];
    int rc;
    /* arg is the section's zeroed argument; its first bytes count members */
    switch (member(im, "settings", v, settings_fields, (unsigned *)arg)) {
    case 0:
        return want_text(im, "settings", v, 1, rl_name_valid, "tier name", im->pol.default_tier,
                         sizeof im->pol.default_tier);
    case 1:
        if ((rc = want_text(im, "settings", v, 1, NULL, "fail mode", buf, sizeof buf)) != RL_OK)
            return rc;
        if (!buf[0] && is_type(v, "null"))
            im->pol.fail_mode = RL_FAIL_UNSET;
        else if (strcmp(buf, "closed") == 0)
            im->pol.fail_mode = RL_FAIL_CLOSED;
        else if (strcmp(buf, "open") == 0)
            im->pol.fail_mode = RL_FAIL_OPEN;
        else
            return bad(im, "settings", "fail_mode must be \"closed\", \"open\" or null");
        return RL_OK;
    default:
        return RL_EINVAL;
    }
}

typedef struct tier_arg {
    rl_tier t;
    char where[32], sub[64];
    unsigned seen, sub_seen;
    int unlimited;
    rl_ldef *d; /* the limit being read */
} tier_arg;

static const char *const limit_fields[] = { "name",      "resource", "kind", "count",
                                            "period_ns", "burst",    NULL };
static const char *const limit_kinds[] = { "rate", "concurrent", "sliding_window", NULL };
static const int limit_kind_values[] = { RL_KIND_GCRA, RL_KIND_CONCURRENT, RL_KIND_WINDOW };

static int limit_member(importer *im, const jv *v, void *arg)
{
    tier_arg *ta = arg;
    rl_ldef *d = ta->d;
    switch (member(im, ta->sub, v, limit_fields, &ta->sub_seen)) {
    case 0:
        return want_text(im, ta->sub, v, 0, rl_name_valid, "name", d->name, sizeof d->name);
    case 1:
        return want_text(im, ta->sub, v, 0, rl_name_valid, "resource name", d->resource,
                         sizeof d->resource);
    case 2:
        return want_kind(im, ta->sub, v, limit_kinds, limit_kind_values, &d->kind);
    case 3:
        return want_int(im, ta->sub, v, 0, INT64_MAX, &d->count);
    case 4:
        return want_int(im, ta->sub, v, 0, INT64_MAX, &d->period_ns);
    case 5:
        return want_int(im, ta->sub, v, 0, INT64_MAX, &d->burst);
    default:
        return RL_EINVAL;
    }
}

static int limit_elem(importer *im, const jv *v, void *arg)
{
    tier_arg *ta = arg;
    char why[RL_ERRMSG_MAX];
    size_t i;
    int rc;
    if (ta->t.n >= RL_MAX_LIMITS)
        return bad(im, ta->where, "more than %d limits", RL_MAX_LIMITS);
    snprintf(ta->sub, sizeof ta->sub, "%s.limits[%lld]", ta->where, (long long)v->index);
    ta->d = &ta->t.limits[ta->t.n];
    memset(ta->d, 0, sizeof *ta->d);
    ta->sub_seen = 0;
    if ((rc = nested(im, 3, ta->sub, v, "object", limit_member, ta)) != RL_OK ||
        (rc = require(im, ta->sub, limit_fields, ta->sub_seen)) != RL_OK)
        return rc;
    ta->d->id = rl_limit_id(ta->d->resource, ta->d->name);
    if (rl_ldef_check(ta->d, why, sizeof why) != RL_OK)
        return bad(im, ta->sub, "%s", why);
    for (i = 0; i < ta->t.n; i++)
        if (strcmp(ta->t.limits[i].name, ta->d->name) == 0)
            return bad(im, ta->sub, "duplicate limit name '%s'", ta->d->name);
    ta->t.n++;
    return RL_OK;
}

static const char *const tier_fields[] = { "name", "unlimited", "limits", NULL };

static int tier_member(importer *im, const jv *v, void *arg)
{
    tier_arg *ta = arg;
    switch (member(im, ta->where, v, tier_fields, &ta->seen)) {
    case 0:
        return want_text(im, ta->where, v, 0, rl_name_valid, "tier name", ta->t.name,
                         sizeof ta->t.name);
    case 1:
        if (!is_type(v, "true") && !is_type(v, "false"))
            return bad(im, ta->where, "'unlimited' must be true or false");
        ta->unlimited = is_type(v, "true");
        return RL_OK;
    case 2:
        return nested(im, 2, ta->where, v, "array", limit_elem, ta);
    default:
        return RL_EINVAL;
    }
}

static int tier_elem(importer *im, const jv *v, void *arg)
{
    tier_arg *ta = arg;
    int rc;
    memset(ta, 0, sizeof *ta);
    snprintf(ta->where, sizeof ta->where, "tiers[%lld]", (long long)v->index);
    if ((rc = nested(im, 1, ta->where, v, "object", tier_member, ta)) != RL_OK ||
        (rc = require(im, ta->where, tier_fields, ta->seen)) != RL_OK)
        return rc;
    if (ta->unlimited != (ta->t.n == 0))
        return bad(im, ta->where, "tier '%s' %s", ta->t.name,
                   ta->unlimited ? "is unlimited but has limits"
                                 : "has no limits but is not unlimited");
    if (rl_policy_tier(&im->pol, ta->t.name))
        return bad(im, ta->where, "duplicate tier '%s'", ta->t.name);
    if (im->pol.n_tiers >= 4096)
        return bad(im, ta->where, "more than 4096 tiers");
    ta->t.unlimited = ta->unlimited;
    if (rl_policy_put_tier(&im->pol, &ta->t) != RL_OK)
        return rl_seterr(im->j.err, RL_ENOMEM, "out of memory");
    return RL_OK;
}

typedef struct rule_arg {
    char where[48];
    unsigned seen;
    char match[RL_KEY_MAX + 1];
    char tier[RL_NAME_MAX];
} rule_arg;

static const char *const rule_fields[] = { "match", "tier", NULL };

static int rule_member(importer *im, const jv *v, void *arg)
{
    rule_arg *ra = arg;
    switch (member(im, ra->where, v, rule_fields, &ra->seen)) {
    case 0:
        return want_text(im, ra->where, v, 0, rl_key_valid, "glob", ra->match, sizeof ra->match);
    case 1:
        return want_text(im, ra->where, v, 0, rl_name_valid, "tier name", ra->tier,
                         sizeof ra->tier);
    default:
        return RL_EINVAL;
    }
}

static int rule_elem(importer *im, const jv *v, void *arg)
{
    rule_arg *ra = arg;
    int rc;
    memset(ra, 0, sizeof *ra);
    snprintf(ra->where, sizeof ra->where, "rules[%lld]", (long long)v->index);
    if ((rc = nested(im, 1, ra->where, v, "object", rule_member, ra)) != RL_OK ||
        (rc = require(im, ra->where, rule_fields, ra->seen)) != RL_OK)
        return rc;
    /* A rule may name a tier that no longer exists, as in the database it
     * came from: decisions skip it there, and will here. */
    if (rl_policy_add_rule(&im->pol, ra->match, ra->tier) != RL_OK)
        return rl_seterr(im->j.err, RL_ENOMEM, "out of memory");
    return RL_OK;
}

/* ---- import: leases and keys ---- */

typedef struct lease_arg {
    rl_lease_rec rec;
    char where[64], sub[96];
    unsigned seen, sub_seen;
    int held; /* reading held (1) or estimate (0) */
} lease_arg;

static const char *const cost_fields[] = { "resource", "amount", NULL };
static const char *const held_fields[] = { "id", "amount", NULL };

static int part_member(importer *im, const jv *v, void *arg)
{
    lease_arg *la = arg;
    rl_lease_rec *rec = &la->rec;
    if (!la->held) {
        switch (member(im, la->sub, v, cost_fields, &la->sub_seen)) {
        case 0:
            return want_text(im, la->sub, v, 0, rl_name_valid, "resource name",
                             rec->est_resource[rec->n_est], RL_NAME_MAX);
        case 1:
            return want_int(im, la->sub, v, 0, INT64_MAX, &rec->est_amount[rec->n_est]);
        default:
            return RL_EINVAL;
        }
    }
    switch (member(im, la->sub, v, held_fields, &la->sub_seen)) {
    case 0:
        return want_id(im, la->sub, v, &rec->held_id[rec->n_held]);
    case 1:
        return want_int(im, la->sub, v, 0, INT64_MAX, &rec->held_amount[rec->n_held]);
    default:
        return RL_EINVAL;
    }
}

static int part_elem(importer *im, const jv *v, void *arg)
{
    lease_arg *la = arg;
    size_t *n = la->held ? &la->rec.n_held : &la->rec.n_est;
    int rc;
    if (*n >= RL_MAX_LIMITS)
        return bad(im, la->where, "more than %d %s", RL_MAX_LIMITS,
                   la->held ? "holdings" : "costs");
    snprintf(la->sub, sizeof la->sub, "%s.%s[%lld]", la->where, la->held ? "held" : "estimate",
             (long long)v->index);
    la->sub_seen = 0;
    if ((rc = nested(im, 3, la->sub, v, "object", part_member, la)) != RL_OK ||
        (rc = require(im, la->sub, la->held ? held_fields : cost_fields, la->sub_seen)) != RL_OK)
        return rc;
    ++*n;
    return RL_OK;
}

static const char *const lease_fields[] = { "id",     "key",      "created_ns", "expires_ns", "pid",
                                            "pstart", "estimate", "held",       NULL };

static int lease_member(importer *im, const jv *v, void *arg)
{
    lease_arg *la = arg;
    rl_lease_rec *rec = &la->rec;
    switch (member(im, la->where, v, lease_fields, &la->seen)) {
    case 0:
        return want_int(im, la->where, v, 1, INT64_MAX, &rec->id);
    case 1:
        return want_text(im, la->where, v, 0, rl_key_valid, "key", rec->key, sizeof rec->key);
    case 2:
        return want_int(im, la->where, v, INT64_MIN, INT64_MAX, &rec->created);
    case 3:
        return want_int(im, la->where, v, INT64_MIN, INT64_MAX, &rec->expires);
    case 4:
        return want_int(im, la->where, v, 0, INT64_MAX, &rec->pid);
    case 5:
        return want_int(im, la->where, v, -1, INT64_MAX, &rec->pstart);
    case 6:
        la->held = 0;
        return nested(im, 2, la->where, v, "array", part_elem, la);
    case 7:
        la->held = 1;
        return nested(im, 2, la->where, v, "array", part_elem, la);
    default:
        return RL_EINVAL;
    }
}

static int lease_elem(importer *im, const jv *v, void *arg)
{
    lease_arg *la = arg;
    unsigned char body[RL_LEASE_BODY_MAX];
    rl_lease_rec back;
    sqlite3_stmt *q;
    size_t len;
    int rc;
    memset(la, 0, sizeof *la);
    snprintf(la->where, sizeof la->where, "leases[%lld]", (long long)v->index);
    if ((rc = nested(im, 1, la->where, v, "object", lease_member, la)) != RL_OK ||
        (rc = require(im, la->where, lease_fields, la->seen)) != RL_OK)
        return rc;
    /* The body as the store keeps it, and decoded again as it is read. */
    len = rl_lease_encode(&la->rec, body);
    if (rl_lease_decode(&back, body, len) != RL_OK)
        return bad(im, la->where, "invalid estimate or holdings");
    if (!(q = rl__export_stmt(&im->j, J_L_INS)))
        return RL_ESTORE;
    sqlite3_bind_int64(q, 1, la->rec.id);
    sqlite3_bind_text(q, 2, la->rec.key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, la->rec.created);
    sqlite3_bind_int64(q, 4, la->rec.expires);
    sqlite3_bind_int64(q, 5, la->rec.pid);
    sqlite3_bind_int64(q, 6, la->rec.pstart);
    sqlite3_bind_blob(q, 7, body, (int)len, SQLITE_STATIC);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc == SQLITE_CONSTRAINT)
        return bad(im, la->where, "lease id %lld given twice", (long long)la->rec.id);
    if (rc != SQLITE_DONE)
        return rl__export_fail(&im->j, "staging leases");
    im->nleases++;
    return RL_OK;
}

typedef struct key_arg {
    char key[RL_KEY_MAX + 1];
    rl_row row;
    rl_state st;
    char where[48], sub[80];
    unsigned seen, slot_seen;
} key_arg;

static const char *const slot_fields[] = { "kind",  "id",  "count", "period_ns",
                                           "burst", "tat", "rem",   NULL };
/* A "window" slot's burst, tat and rem are its prev, start and cur, as in
 * the state blob (store.h). */
static const char *const slot_kinds[] = { "gcra", "cooldown", "inflight", "window", NULL };
static const int slot_kind_values[] = { RL_SLOT_GCRA, RL_SLOT_COOLDOWN, RL_SLOT_INFLIGHT,
                                        RL_SLOT_WINDOW };

static int slot_member(importer *im, const jv *v, void *arg)
{
    key_arg *ka = arg;
    rl_slot *s = &ka->st.slot[ka->st.n];
    switch (member(im, ka->sub, v, slot_fields, &ka->slot_seen)) {
    case 0:
        return want_kind(im, ka->sub, v, slot_kinds, slot_kind_values, &s->kind);
    case 1:
        return want_id(im, ka->sub, v, &s->id);
    case 2:
        return want_int(im, ka->sub, v, INT64_MIN, INT64_MAX, &s->count);
    case 3:
        return want_int(im, ka->sub, v, INT64_MIN, INT64_MAX, &s->period_ns);
    case 4:
        return want_int(im, ka->sub, v, INT64_MIN, INT64_MAX, &s->burst);
    case 5:
        return want_int(im, ka->sub, v, INT64_MIN, INT64_MAX, &s->tat);
    case 6:
        return want_int(im, ka->sub, v, INT64_MIN, INT64_MAX, &s->rem);
    default:
        return RL_EINVAL;
    }
}

static int slot_elem(importer *im, const jv *v, void *arg)
{
    key_arg *ka = arg;
    int rc;
    if (ka->st.n >= RL_MAX_SLOTS)
        return bad(im, ka->where, "more than %d slots", RL_MAX_SLOTS);
    snprintf(ka->sub, sizeof ka->sub, "%s.slots[%lld]", ka->where, (long long)v->index);
    memset(&ka->st.slot[ka->st.n], 0, sizeof ka->st.slot[ka->st.n]);
    ka->slot_seen = 0;
    if ((rc = nested(im, 3, ka->sub, v, "object", slot_member, ka)) != RL_OK ||
        (rc = require(im, ka->sub, slot_fields, ka->slot_seen)) != RL_OK)
        return rc;
    ka->st.n++;
    return RL_OK;
}

static const char *const key_fields[] = { "key",          "tier",  "allowed",
                                          "refused",      "units", "first_seen_ns",
                                          "last_seen_ns", "slots", NULL };

static int key_member(importer *im, const jv *v, void *arg)
{
    key_arg *ka = arg;
    rl_row *row = &ka->row;
    switch (member(im, ka->where, v, key_fields, &ka->seen)) {
    case 0:
        return want_text(im, ka->where, v, 0, rl_key_valid, "key", ka->key, sizeof ka->key);
    case 1:
        return want_text(im, ka->where, v, 1, rl_name_valid, "tier name", row->tier,
                         sizeof row->tier);
    case 2:
        return want_int(im, ka->where, v, 0, INT64_MAX, &row->allowed);
    case 3:
        return want_int(im, ka->where, v, 0, INT64_MAX, &row->refused);
    case 4:
        return want_int(im, ka->where, v, 0, INT64_MAX, &row->units);
    case 5:
        return want_int(im, ka->where, v, INT64_MIN, INT64_MAX, &row->first_seen);
    case 6:
        return want_int(im, ka->where, v, INT64_MIN, INT64_MAX, &row->last_seen);
    case 7:
        return nested(im, 2, ka->where, v, "array", slot_elem, ka);
    default:
        return RL_EINVAL;
    }
}

static int key_elem(importer *im, const jv *v, void *arg)
{
    key_arg *ka = arg;
    rl_state back;
    sqlite3_stmt *q;
    int rc;
    memset(ka, 0, sizeof *ka);
    snprintf(ka->where, sizeof ka->where, "keys[%lld]", (long long)v->index);
    if ((rc = nested(im, 1, ka->where, v, "object", key_member, ka)) != RL_OK ||
        (rc = require(im, ka->where, key_fields, ka->seen)) != RL_OK)
        return rc;
    /* The slots as the store keeps them, and decoded again as every
     * decision reads them: what rl_state_decode refuses is refused here. */
    ka->row.state_len = ka->st.n ? rl_state_encode(&ka->st, ka->row.state) : 0;
    if (rl_state_decode(&back, ka->row.state, ka->row.state_len) != RL_OK)
        return bad(im, ka->where, "key '%.64s': a slot's numbers are out of range", ka->key);
    if (!(q = rl__export_stmt(&im->j, J_K_INS)))
        return RL_ESTORE;
    sqlite3_bind_text(q, 1, ka->key, -1, SQLITE_STATIC);
    if (ka->row.tier[0])
        sqlite3_bind_text(q, 2, ka->row.tier, -1, SQLITE_STATIC);
    if (ka->row.state_len)
        sqlite3_bind_blob(q, 3, ka->row.state, (int)ka->row.state_len, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, ka->row.allowed);
    sqlite3_bind_int64(q, 5, ka->row.refused);
    sqlite3_bind_int64(q, 6, ka->row.units);
    sqlite3_bind_int64(q, 7, ka->row.first_seen);
    sqlite3_bind_int64(q, 8, ka->row.last_seen);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc == SQLITE_CONSTRAINT)
        return bad(im, ka->where, "key '%.64s' given twice", ka->key);
    if (rc != SQLITE_DONE)
        return rl__export_fail(&im->j, "staging keys");
    im->nkeys++;
    return RL_OK;
}

/* ---- import: the document ---- */

enum { T_FORMAT, T_VERSION, T_LIBRARY, T_EXPORTED, T_SETTINGS, T_TIERS, T_RULES, T_LEASES, T_KEYS };
static const char *const top_fields[] = { "format",   "version", "library", "exported_at_ns",
                                          "settings", "tiers",   "rules",   "leases",
                                          "keys",     NULL };
static const char *const top_types[] = { "text",  "integer", "text",  "integer", "object",
                                         "array", "array",   "array", "array" };

typedef struct top_arg {
    unsigned seen;
} top_arg;

static int top_member(importer *im, const jv *v, void *arg)
{
    top_arg *ta = arg;
    const unsigned char *t;
    int i = member(im, "document", v, top_fields, &ta->seen);
    if (i < 0)
        return RL_EINVAL;
    if (!is_type(v, top_types[i]))
        return bad(im, "document", "'%s' must be %s %s", v->name,
                   top_types[i][0] == 'a' || top_types[i][0] == 'i' || top_types[i][0] == 'o' ? "an"
                                                                                              : "a",
                   top_types[i]);
    if (i == T_FORMAT) {
        t = sqlite3_column_text(v->q, 2);
        if (!t || strcmp((const char *)t, "rl-export") != 0)
            return bad(im, "document", "\"format\" is \"%.32s\", not \"rl-export\"",
                       t ? (const char *)t : "");
    } else if (i == T_VERSION && (sqlite3_column_type(v->q, 2) != SQLITE_INTEGER ||
                                  sqlite3_column_int64(v->q, 2) != 1)) {
        return bad(im, "document", "\"version\" %.20s is not supported (this library reads 1)",
                   (const char *)sqlite3_column_text(v->q, 2));
    }
    return RL_OK;
}

/* The offset of the first \u0000 escape in the strings of a JSON text, or
 * -1. SQLite's JSON functions end a string there (SQLite 3.40 reads
 * "t\u0000x" as "t"), and no name or key can hold a NUL: such a document
 * is refused rather than read cut. Outside strings a valid text has no
 * backslash, so a string's quotes and escapes are all there is to follow. */
static long long nul_escape(const char *s, size_t len)
{
    size_t i;
    int in_str = 0;
    for (i = 0; i < len; i++) {
        if (!in_str) {
            in_str = s[i] == '"';
        } else if (s[i] == '"') {
            in_str = 0;
        } else if (s[i] == '\\' && i + 1 < len) {
            if (s[i + 1] == 'u' && len - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0)
                return (long long)i;
            i++; /* the escaped character: \" does not end the string */
        }
    }
    return -1;
}

/* Reads and checks the whole document into im->pol and the staging tables. */
static int import_read(importer *im)
{
    static const char *const paths[] = { "$.settings", "$.tiers", "$.rules", "$.leases", "$.keys" };
    static const jv_fn fns[] = { settings_member, tier_elem, rule_elem, lease_elem, key_elem };
    union {
        unsigned seen;
        tier_arg t;
        rule_arg r;
        lease_arg l;
        key_arg k;
    } *arg = NULL;
    top_arg top = { 0 };
    sqlite3_stmt *q;
    const unsigned char *fmt;
    long long at;
    int rc, i, max;

    if (memchr(im->doc, 0, im->doclen))
        return bad(im, "document", "not JSON text (it contains a NUL byte)");
    /* SQLite takes no longer text: binding it would fail, and the document
     * would look like invalid JSON. */
    max = sqlite3_limit(im->j.db, SQLITE_LIMIT_LENGTH, -1);
    if (im->doclen > (size_t)max)
        return bad(im, "document", "too large: %zu bytes, more than the %d an import reads",
                   im->doclen, max);
    if (!(q = rl__export_stmt(&im->j, J_VALID)))
        return RL_ESTORE;
    sqlite3_bind_text64(q, 1, im->doc, im->doclen, SQLITE_STATIC, SQLITE_UTF8);
    rc = sqlite3_step(q);
    if (rc != SQLITE_ROW)
        return rl__export_fail(&im->j, "reading JSON");
    if (!sqlite3_column_int(q, 0))
        return bad(im, "document", "not valid JSON");
    if ((at = nul_escape(im->doc, im->doclen)) >= 0)
        return bad(im, "document",
                   "a string holds \\u0000 (byte %lld): no name or key can hold a NUL", at);
    fmt = sqlite3_column_text(q, 1);
    if (!fmt || strcmp((const char *)fmt, "object") != 0)
        return bad(im, "document", "not a JSON object");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if ((rc = each(im, J_TOP, NULL, 0, "$", top_member, &top)) != RL_OK)
        return rc;
    if (!(top.seen & (1u << T_FORMAT)) || !(top.seen & (1u << T_VERSION)))
        return bad(im, "document", "not an rl export (no \"format\" and \"version\")");
    if ((rc = sqlite3_exec(im->j.db,
                           "CREATE TABLE k (key TEXT PRIMARY KEY, tier TEXT, state "
                           "BLOB, allowed INTEGER, refused INTEGER, units INTEGER, "
                           "first_seen INTEGER, last_seen INTEGER) WITHOUT ROWID; "
                           "CREATE TABLE l (id INTEGER PRIMARY KEY, key TEXT, created "
                           "INTEGER, expires INTEGER, pid INTEGER, pstart INTEGER, "
                           "body BLOB)",
                           NULL, NULL, NULL)) != SQLITE_OK)
        return rl__export_fail(&im->j, "staging");
    if (!(arg = malloc(sizeof *arg)))
        return rl_seterr(im->j.err, RL_ENOMEM, "out of memory");
    rc = RL_OK;
    for (i = 0; i < 5 && rc == RL_OK; i++) {
        if (!(top.seen & (1u << (T_SETTINGS + i))))
            continue; /* an absent section is empty */
        memset(arg, 0, sizeof *arg);
        rc = each(im, J_EACH0, NULL, 0, paths[i], fns[i], arg);
    }
    free(arg);
    return rc;
}

/* Everything checked and staged: now the one write transaction. */
static int import_write(importer *im, rl_store *s)
{
    sqlite3_stmt *q;
    rl_lease_rec *rec = malloc(sizeof *rec);
    rl_row *row = malloc(sizeof *row);
    int rc, step = SQLITE_DONE, began = 0;

    if (!rec || !row) {
        rc = rl_seterr(im->j.err, RL_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = s->ops->begin(s, 1)) != RL_OK)
        goto out;
    began = 1;
    if ((rc = s->ops->state_clear(s)) != RL_OK || (rc = s->ops->policy_put(s, &im->pol)) != RL_OK)
        goto out;
    if (!(q = rl__export_stmt(&im->j, J_L_ALL))) {
        rc = RL_ESTORE;
        goto out;
    }
    while (rc == RL_OK && (step = sqlite3_step(q)) == SQLITE_ROW) {
        memset(rec, 0, sizeof *rec);
        rec->id = sqlite3_column_int64(q, 0);
        snprintf(rec->key, sizeof rec->key, "%s", (const char *)sqlite3_column_text(q, 1));
        rec->created = sqlite3_column_int64(q, 2);
        rec->expires = sqlite3_column_int64(q, 3);
        rec->pid = sqlite3_column_int64(q, 4);
        rec->pstart = sqlite3_column_int64(q, 5);
        if (rl_lease_decode(rec, sqlite3_column_blob(q, 6), (size_t)sqlite3_column_bytes(q, 6)))
            rc = rl_seterr(im->j.err, RL_ECORRUPT, "staged lease damaged");
        else
            rc = s->ops->lease_restore(s, rec);
    }
    if (rc == RL_OK && step != SQLITE_DONE)
        rc = rl__export_fail(&im->j, "staged leases");
    sqlite3_reset(q);
    if (rc != RL_OK)
        goto out;
    if (!(q = rl__export_stmt(&im->j, J_K_ALL))) {
        rc = RL_ESTORE;
        goto out;
    }
    while (rc == RL_OK && (step = sqlite3_step(q)) == SQLITE_ROW) {
        const unsigned char *tier = sqlite3_column_text(q, 1);
        memset(row, 0, sizeof *row);
        snprintf(row->tier, sizeof row->tier, "%s", tier ? (const char *)tier : "");
        row->state_len = (size_t)sqlite3_column_bytes(q, 2);
        if (row->state_len)
            memcpy(row->state, sqlite3_column_blob(q, 2), row->state_len);
        row->allowed = sqlite3_column_int64(q, 3);
        row->refused = sqlite3_column_int64(q, 4);
        row->units = sqlite3_column_int64(q, 5);
        row->first_seen = sqlite3_column_int64(q, 6);
        row->last_seen = sqlite3_column_int64(q, 7);
        rc = s->ops->row_put(s, (const char *)sqlite3_column_text(q, 0), row);
    }
    if (rc == RL_OK && step != SQLITE_DONE)
        rc = rl__export_fail(&im->j, "staged keys");
    sqlite3_reset(q);
    if (rc == RL_OK)
        rc = s->ops->commit(s);
out:
    if (began && rc != RL_OK)
        s->ops->rollback(s);
    free(rec);
    free(row);
    return rc;
}

static int import_all(rl *r, const char *json, size_t len)
{
    rl_retry retry = RL_RETRY_INIT;
    importer *im = NULL;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!json)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "import: document is NULL");
    rl__errbuf(r)[0] = 0;
    if (!(im = calloc(1, sizeof *im)))
        return rl_seterr(rl__errbuf(r), RL_ENOMEM, "out of memory");
    rl_policy_init(&im->pol);
    im->doc = json;
    im->doclen = len;
    if ((rc = rl__export_jdb_open(&im->j, jsql, rl__errbuf(r))) != RL_OK)
        goto out;
    if ((rc = import_read(im)) != RL_OK)
        goto out;
    do /* an optimistic store may ask for the write again */
        rc = import_write(im, rl__store(r));
    while (rl__conflict_retry(r, &retry, &rc));
out:
    rl__export_jdb_close(&im->j);
    rl_policy_free(&im->pol);
    free(im);
    return rc;
}

int rl_import(rl *r, const char *json, size_t len)
{
    int rc;
    if (!r)
        return RL_EINVAL;
    rl__lock(r);
    rl__pending_flush(r); /* before what the import replaces */
    rc = import_all(r, json, len);
    rl__unlock(r);
    return rc;
}
