/*
 * sqlite_rows.c - the SQLite store's rows (one per key) and its policy
 * (tiers, limits, rules and settings, with a version).
 *
 * Guarantees:
 *   - every call runs inside the caller's transaction and binds every value;
 *   - a row read comes with the policy version in the same statement, so
 *     core/ sees a tier loaded by another process from its next decision;
 *   - every policy write bumps the version;
 *   - names, rules and limits read back from the file are checked as the
 *     API's arguments are (RL_ECORRUPT otherwise), so a tampered file cannot
 *     reach the math or put control characters in a caller's output.
 */
#include "parse.h"
#include "sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- rows --------------------------------------------------------------- */

int rl_store_sqlite_row_get(rl_store *base, const char *key, rl_row *row, int64_t *version)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_GET, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        rc = rc == SQLITE_DONE ? rl_seterr(base->err, RL_ECORRUPT, "policy_version row missing")
                               : rl_store_sqlite_fail(s, rc, "read key");
        goto out;
    }
    *version = sqlite3_column_int64(q, 0);
    row->exists = sqlite3_column_int(q, 1);
    rl_store_sqlite_text_col(q, 2, row->tier, sizeof row->tier);
    row->state_len = (size_t)sqlite3_column_bytes(q, 3);
    if (row->state_len > RL_STATE_MAX) {
        rc = rl_seterr(base->err, RL_ECORRUPT, "key '%.64s': bucket state too large", key);
        goto out;
    }
    if ((rc = rl_store_sqlite_state_in(s, sqlite3_column_blob(q, 3), row->state_len, row)))
        goto out;
    row->allowed = sqlite3_column_int64(q, 4);
    row->refused = sqlite3_column_int64(q, 5);
    row->units = sqlite3_column_int64(q, 6);
    row->first_seen = sqlite3_column_int64(q, 7);
    row->last_seen = sqlite3_column_int64(q, 8);
    rc = RL_OK;
out:
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

int rl_store_sqlite_row_put(rl_store *base, const char *key, const rl_row *row)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    unsigned char buf[RL_STATE3_WORST];
    const unsigned char *state;
    size_t state_len;
    uint64_t mark;
    int rc = rl_store_sqlite_state_out(s, row, buf, &state, &state_len);
    if (rc != RL_OK)
        return rc;
    if ((rc = rl_store_sqlite_stmt(s, row->exists ? S_UPD : S_INS, &q)) != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    if (row->tier[0])
        sqlite3_bind_text(q, 2, row->tier, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 2);
    if (state_len)
        sqlite3_bind_blob(q, 3, state, (int)state_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 3);
    sqlite3_bind_int64(q, 4, row->allowed);
    sqlite3_bind_int64(q, 5, row->refused);
    sqlite3_bind_int64(q, 6, row->units);
    sqlite3_bind_int64(q, 7, row->first_seen);
    sqlite3_bind_int64(q, 8, row->last_seen);
    if (s->leading && rl_lock_batch(s->lock, &mark))
        sqlite3_bind_int64(q, 9, (sqlite3_int64)mark);
    rc = sqlite3_step(q);
    rc = rc == SQLITE_DONE ? RL_OK : rl_store_sqlite_fail(s, rc, "write key");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

int rl_store_sqlite_row_delete(rl_store *base, const char *key)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_DEL, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    if ((rc = rl_store_sqlite_run(s, S_DEL, "delete key")) != RL_OK)
        return rc;
    return rl_store_sqlite_lease_forget(s, key);
}

int rl_store_sqlite_policy_version(rl_store *base, int64_t *version)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_VER, &q);
    if (rc != RL_OK)
        return rc;
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int64(q, 0);
        rc = RL_OK;
    } else {
        rc = rc == SQLITE_DONE ? rl_seterr(base->err, RL_ECORRUPT, "policy_version row missing")
                               : rl_store_sqlite_fail(s, rc, "read policy version");
    }
    sqlite3_reset(q);
    return rc;
}

/* ---- policy ------------------------------------------------------------- */

static int get_setting(sq_store *s, const char *name, char *buf, size_t len, int *is_null)
{
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_SETTING, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    *is_null = 1;
    buf[0] = 0;
    if (rc == SQLITE_ROW) {
        *is_null = sqlite3_column_type(q, 0) == SQLITE_NULL;
        rl_store_sqlite_text_col(q, 0, buf, len);
        rc = RL_OK;
    } else {
        rc = rc == SQLITE_DONE ? RL_OK : rl_store_sqlite_fail(s, rc, "read setting");
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

static int set_setting(sq_store *s, const char *name, const char *value, int64_t ivalue)
{
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_SET_SETTING, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    if (value)
        sqlite3_bind_text(q, 2, value, -1, SQLITE_STATIC);
    else if (ivalue >= 0)
        sqlite3_bind_int64(q, 2, ivalue);
    else
        sqlite3_bind_null(q, 2);
    return rl_store_sqlite_run(s, S_SET_SETTING, "write setting");
}

/* Column col of the current row, a name or key read back from the file,
 * into buf (len bytes): RL_ECORRUPT unless it is whole (not cut, no NUL
 * inside) and passes valid (rl_name_valid, rl_key_valid), as the API's
 * arguments do, so that no control character or escape sequence written
 * into the file reaches a caller's terminal or log. */
static int valid_col(sq_store *s, sqlite3_stmt *q, int col, char *buf, size_t len,
                     int (*valid)(const char *), const char *what)
{
    const unsigned char *t = sqlite3_column_text(q, col);
    size_t n = (size_t)sqlite3_column_bytes(q, col);
    char shown[64];
    snprintf(buf, len, "%s", t ? (const char *)t : "");
    if (t && n < len && strlen(buf) == n && valid(buf))
        return RL_OK;
    rl_parse_quote(shown, sizeof shown, t ? (const char *)t : "", t ? n : 0);
    return rl_seterr(s->base.err, RL_ECORRUPT, "stored %s '%s' is not valid (tampered?)", what,
                     shown);
}

int rl_store_sqlite_policy_get(rl_store *base, rl_policy *p)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    char buf[RL_NAME_MAX], why[128], *match = NULL;
    int rc = RL_OK, step, is_null;
    rl_tier t;

    if ((rc = rl_store_sqlite_stmt(s, S_TIERS, &q)) != RL_OK)
        return rc;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        memset(&t, 0, sizeof t);
        if ((rc = valid_col(s, q, 0, t.name, sizeof t.name, rl_name_valid, "tier name")))
            break;
        t.unlimited = sqlite3_column_int(q, 1);
        if ((rc = rl_policy_put_tier(p, &t)) != RL_OK) {
            rc = rl_seterr(base->err, rc, "out of memory");
            break;
        }
    }
    sqlite3_reset(q);
    if (rc != RL_OK)
        return rc;
    if (step != SQLITE_DONE)
        return rl_store_sqlite_fail(s, step, "read tiers");

    if ((rc = rl_store_sqlite_stmt(s, S_LIMITS, &q)) != RL_OK)
        return rc;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        rl_tier *pt;
        rl_ldef *d;
        if ((rc = valid_col(s, q, 0, buf, sizeof buf, rl_name_valid, "tier name")))
            break;
        pt = (rl_tier *)rl_policy_tier(p, buf);
        if (!pt || pt->n >= RL_MAX_LIMITS) {
            rc = rl_seterr(base->err, RL_ECORRUPT, "limits of unknown or overfull tier '%s'", buf);
            break;
        }
        d = &pt->limits[pt->n];
        memset(d, 0, sizeof *d);
        if ((rc = valid_col(s, q, 1, d->name, sizeof d->name, rl_name_valid, "limit name")) ||
            (rc = valid_col(s, q, 2, d->resource, sizeof d->resource, rl_name_valid,
                            "resource name")))
            break;
        d->count = sqlite3_column_int64(q, 3);
        d->period_ns = sqlite3_column_int64(q, 4);
        d->burst = sqlite3_column_int64(q, 5);
        d->kind = sqlite3_column_int(q, 6);
        d->id = rl_limit_id(d->resource, d->name);
        /* Stored limits feed the 128-bit math: check them like user input. */
        if (rl_ldef_check(d, why, sizeof why) != RL_OK) {
            rc = rl_seterr(base->err, RL_ECORRUPT, "tier '%s': stored %s", buf, why);
            break;
        }
        pt->n++;
    }
    sqlite3_reset(q);
    if (rc != RL_OK)
        return rc;
    if (step != SQLITE_DONE)
        return rl_store_sqlite_fail(s, step, "read limits");

    if ((rc = rl_store_sqlite_stmt(s, S_RULES, &q)) != RL_OK)
        return rc;
    if (!(match = malloc(RL_KEY_MAX + 1)))
        return rl_seterr(base->err, RL_ENOMEM, "out of memory");
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        if ((rc = valid_col(s, q, 0, match, RL_KEY_MAX + 1, rl_key_valid, "key rule")) ||
            (rc = valid_col(s, q, 1, buf, sizeof buf, rl_name_valid, "tier name")))
            break;
        if ((rc = rl_policy_add_rule(p, match, buf)) != RL_OK) {
            rc = rl_seterr(base->err, rc, "out of memory");
            break;
        }
    }
    sqlite3_reset(q);
    free(match);
    if (rc != RL_OK)
        return rc;
    if (step != SQLITE_DONE)
        return rl_store_sqlite_fail(s, step, "read rules");

    if ((rc = get_setting(s, "default_tier", p->default_tier, sizeof p->default_tier, &is_null)))
        return rc;
    if (!is_null && p->default_tier[0] && !rl_name_valid(p->default_tier)) {
        char shown[64];
        rl_parse_quote(shown, sizeof shown, p->default_tier, strlen(p->default_tier));
        return rl_seterr(base->err, RL_ECORRUPT,
                         "stored default tier '%s' is not valid "
                         "(tampered?)",
                         shown);
    }
    if ((rc = get_setting(s, "fail_mode", buf, sizeof buf, &is_null)))
        return rc;
    p->fail_mode = is_null ? RL_FAIL_UNSET : atoi(buf) ? RL_FAIL_OPEN : RL_FAIL_CLOSED;
    return RL_OK;
}

static int put_tier(sq_store *s, const rl_tier *t)
{
    sqlite3_stmt *q = NULL;
    rl_slotset set;
    size_t i;
    int rc;
    if ((rc = rl_store_sqlite_stmt(s, S_LIMITS_DEL, &q)) != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, t->name, -1, SQLITE_STATIC);
    if ((rc = rl_store_sqlite_run(s, S_LIMITS_DEL, "write tier")) != RL_OK)
        return rc;
    if ((rc = rl_store_sqlite_stmt(s, S_TIER_INS, &q)) != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, t->unlimited);
    if ((rc = rl_store_sqlite_run(s, S_TIER_INS, "write tier")) != RL_OK)
        return rc;
    /* the slot set its keys' states will name (sqlite_state.c) */
    rl_slotset_of_tier(t, rl_tier_fingerprint(t), &set);
    if ((rc = rl_store_sqlite_set_put(s, &set)) != RL_OK)
        return rc;
    for (i = 0; i < t->n; i++) {
        const rl_ldef *d = &t->limits[i];
        if ((rc = rl_store_sqlite_stmt(s, S_LIMIT_INS, &q)) != RL_OK)
            return rc;
        sqlite3_bind_text(q, 1, t->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)i);
        sqlite3_bind_text(q, 3, d->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, d->resource, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 5, d->count);
        sqlite3_bind_int64(q, 6, d->period_ns);
        sqlite3_bind_int64(q, 7, d->burst);
        sqlite3_bind_int(q, 8, d->kind);
        if ((rc = rl_store_sqlite_run(s, S_LIMIT_INS, "write limit")) != RL_OK)
            return rc;
    }
    return RL_OK;
}

int rl_store_sqlite_tier_put(rl_store *base, const rl_tier *t)
{
    sq_store *s = (sq_store *)base;
    int rc = put_tier(s, t);
    return rc != RL_OK ? rc : rl_store_sqlite_run(s, S_BUMP, "bump policy version");
}

int rl_store_sqlite_tier_delete(rl_store *base, const char *name)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, S_TIER_DEL, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    if ((rc = rl_store_sqlite_run(s, S_TIER_DEL, "delete tier")) != RL_OK)
        return rc;
    if (sqlite3_changes(s->db) == 0)
        return rl_seterr(base->err, RL_ENOTFOUND, "no such tier: '%s'", name);
    if ((rc = rl_store_sqlite_stmt(s, S_LIMITS_DEL, &q)) != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    if ((rc = rl_store_sqlite_run(s, S_LIMITS_DEL, "delete tier")) != RL_OK)
        return rc;
    return rl_store_sqlite_run(s, S_BUMP, "bump policy version");
}

int rl_store_sqlite_policy_put(rl_store *base, const rl_policy *p)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    size_t i;
    int rc;
    if ((rc = rl_store_sqlite_run(s, S_TIERS_CLEAR, "clear tiers")) ||
        (rc = rl_store_sqlite_run(s, S_LIMITS_CLEAR, "clear limits")) ||
        (rc = rl_store_sqlite_run(s, S_RULES_CLEAR, "clear rules")))
        return rc;
    for (i = 0; i < p->n_tiers; i++)
        if ((rc = put_tier(s, &p->tiers[i])) != RL_OK)
            return rc;
    for (i = 0; i < p->n_rules; i++) {
        if ((rc = rl_store_sqlite_stmt(s, S_RULE_INS, &q)) != RL_OK)
            return rc;
        sqlite3_bind_int64(q, 1, (sqlite3_int64)i);
        sqlite3_bind_text(q, 2, p->rules[i].match, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, p->rules[i].tier, -1, SQLITE_STATIC);
        if ((rc = rl_store_sqlite_run(s, S_RULE_INS, "write rule")) != RL_OK)
            return rc;
    }
    if ((rc = set_setting(s, "default_tier", p->default_tier[0] ? p->default_tier : NULL, -1)))
        return rc;
    if ((rc = set_setting(s, "fail_mode", NULL, p->fail_mode == RL_FAIL_UNSET ? -1 : p->fail_mode)))
        return rc;
    return rl_store_sqlite_run(s, S_BUMP, "bump policy version");
}
