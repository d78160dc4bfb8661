/*
 * sqlite.c - the SQLite store: one database file in WAL mode shared by every
 * process on the machine.
 *
 * Guarantees:
 *   - every read-modify-write runs in BEGIN IMMEDIATE (never a read upgraded
 *     to a write, which fails with SQLITE_BUSY_SNAPSHOT), queued behind the
 *     process-shared lock of lock.c unless RL_BUSY_SQLITE is chosen;
 *   - statements are prepared once per connection (lazily, persistent) and
 *     reused; every value is bound, never pasted into SQL text;
 *   - the schema is brought up to date under the same lock, so processes that
 *     open a new file at the same moment all succeed; a newer schema, another
 *     application's database or unknown schema objects are refused;
 *   - the connection is hardened: defensive mode, untrusted schema, triggers
 *     and views disabled (rl uses neither);
 *   - errors come back as distinct codes: busy, read-only, full, corrupt,
 *     other I/O.
 */
#include "fileperm.h"
#include "lock.h"
#include "parse.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

extern const char *const rl_schema_migrations[];
extern const size_t rl_schema_count;

enum {
    S_BEGIN_W, S_BEGIN_R, S_COMMIT, S_ROLLBACK, S_GET, S_INS, S_UPD, S_DEL, S_VER, S_BUMP,
    S_TOTALS, S_LIST_KEY, S_LIST_ALLOWED, S_LIST_REFUSED, S_LIST_SEEN, S_TIERS, S_LIMITS,
    S_RULES, S_SETTING, S_SET_SETTING, S_TIER_INS, S_LIMIT_INS, S_TIER_DEL, S_LIMITS_DEL,
    S_TIERS_CLEAR, S_LIMITS_CLEAR, S_RULES_CLEAR, S_RULE_INS, S_LEASE_INS, S_LEASE_GET,
    S_LEASE_DEL, S_LEASES_KEY, S_LEASES_ALL, S_PAGE, S_KEYS_CLEAR, S_LEASES_CLEAR,
    S_LEASE_RESTORE, S_P_JOURNAL, S_P_SYNC, S_P_BUSY, S_P_VERSION, S_P_CHECK,
    S_GROUP_MARK, S_COUNT
};

#define LIST_SQL(order)                                                                      \
    "SELECT key, tier, state, allowed, refused, units, first_seen, last_seen FROM rl_keys " \
    "WHERE ?1 IS NULL OR rl_glob(?1, key) ORDER BY " order " LIMIT ?2"

static const char *const sql_text[S_COUNT] = {
    [S_BEGIN_W] = "BEGIN IMMEDIATE",
    [S_BEGIN_R] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_GET] = "SELECT v.value, k.key IS NOT NULL, k.tier, k.state, k.allowed, k.refused, k.units,"
              " k.first_seen, k.last_seen FROM rl_meta AS v LEFT JOIN rl_keys AS k ON k.key = ?1"
              " WHERE v.name = 'policy_version'",
    [S_INS] = "INSERT INTO rl_keys (key, tier, state, allowed, refused, units, first_seen,"
              " last_seen, gmark) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    /* gmark: only a group-commit leader sets it (see sq_resolve) */
    [S_UPD] = "UPDATE rl_keys SET tier = ?2, state = ?3, allowed = ?4, refused = ?5, units = ?6,"
              " first_seen = ?7, last_seen = ?8, gmark = coalesce(?9, gmark) WHERE key = ?1",
    [S_DEL] = "DELETE FROM rl_keys WHERE key = ?1",
    [S_VER] = "SELECT value FROM rl_meta WHERE name = 'policy_version'",
    [S_BUMP] = "UPDATE rl_meta SET value = value + 1 WHERE name = 'policy_version'",
    [S_TOTALS] = "SELECT count(*), total(allowed), total(refused), total(units) FROM rl_keys",
    [S_LIST_KEY] = LIST_SQL("key"),
    [S_LIST_ALLOWED] = LIST_SQL("allowed DESC, key"),
    [S_LIST_REFUSED] = LIST_SQL("refused DESC, key"),
    [S_LIST_SEEN] = LIST_SQL("last_seen DESC, key"),
    [S_TIERS] = "SELECT name, unlimited FROM rl_tiers ORDER BY name",
    [S_LIMITS] = "SELECT tier, name, resource, count, period_ns, burst, kind FROM rl_limits"
                 " ORDER BY tier, pos",
    [S_RULES] = "SELECT match, tier FROM rl_rules ORDER BY pos",
    [S_SETTING] = "SELECT value FROM rl_meta WHERE name = ?1",
    [S_SET_SETTING] = "UPDATE rl_meta SET value = ?2 WHERE name = ?1",
    [S_TIER_INS] = "INSERT OR REPLACE INTO rl_tiers (name, unlimited) VALUES (?1, ?2)",
    [S_LIMIT_INS] = "INSERT INTO rl_limits (tier, pos, name, resource, count, period_ns, burst,"
                    " kind) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_TIER_DEL] = "DELETE FROM rl_tiers WHERE name = ?1",
    [S_LIMITS_DEL] = "DELETE FROM rl_limits WHERE tier = ?1",
    [S_TIERS_CLEAR] = "DELETE FROM rl_tiers",
    [S_LIMITS_CLEAR] = "DELETE FROM rl_limits",
    [S_RULES_CLEAR] = "DELETE FROM rl_rules",
    [S_RULE_INS] = "INSERT INTO rl_rules (pos, match, tier) VALUES (?1, ?2, ?3)",
    [S_LEASE_INS] = "INSERT INTO rl_leases (key, created, expires, pid, pstart, body)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_LEASE_GET] = "SELECT id, key, created, expires, pid, pstart, body FROM rl_leases"
                    " WHERE id = ?1",
    [S_LEASE_DEL] = "DELETE FROM rl_leases WHERE id = ?1",
    [S_LEASES_KEY] = "SELECT id, key, created, expires, pid, pstart, body FROM rl_leases"
                     " WHERE key = ?1 ORDER BY id",
    [S_LEASES_ALL] = "SELECT id, key, created, expires, pid, pstart, body FROM rl_leases"
                     " ORDER BY id",
    /* key > ?1 walks the primary key's b-tree from the cursor on: a page
     * costs the rows it returns (and those the glob skips), never a sort. */
    [S_PAGE] = "SELECT key, tier, state, allowed, refused, units, first_seen, last_seen"
               " FROM rl_keys WHERE key > ?1 AND (?2 IS NULL OR rl_glob(?2, key))"
               " ORDER BY key LIMIT ?3",
    [S_KEYS_CLEAR] = "DELETE FROM rl_keys",
    [S_LEASES_CLEAR] = "DELETE FROM rl_leases",
    [S_LEASE_RESTORE] = "INSERT INTO rl_leases (id, key, created, expires, pid, pstart, body)"
                        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_P_JOURNAL] = "PRAGMA journal_mode",
    [S_P_SYNC] = "PRAGMA synchronous",
    [S_P_BUSY] = "PRAGMA busy_timeout",
    [S_P_VERSION] = "PRAGMA user_version",
    [S_P_CHECK] = "PRAGMA quick_check",
    [S_GROUP_MARK] = "SELECT gmark FROM rl_keys WHERE key = ?1",
};

/* What the migrations (the .sql files of schema/) create, and the version that
 * added each object and column: at version v a database holds exactly the
 * objects and columns "since" v or earlier. Anything else in sqlite_schema
 * (SQLite's own sqlite_* tables and indexes aside), a missing object or a
 * table with other columns means the file was tampered with or belongs to
 * someone else. Columns are compared by name, declared type (as SQLite
 * compares type names, without case) and place in the primary key. */
typedef struct sq_col {
    const char *name, *type;
    int pk, since;
} sq_col;

typedef struct sq_obj {
    const char *type, *name, *table; /* table: the table an index is on */
    int since;
    const sq_col *cols; /* a table's columns in order, ending with a NULL name;
                         * an index's, by name */
} sq_obj;

static const sq_col cols_meta[] = {
    { "name", "TEXT", 1, 1 }, { "value", "ANY", 0, 1 }, { NULL, NULL, 0, 0 },
};
static const sq_col cols_keys[] = {
    { "key", "TEXT", 1, 1 },           { "tier", "TEXT", 0, 1 },
    { "state", "BLOB", 0, 1 },         { "allowed", "INTEGER", 0, 1 },
    { "refused", "INTEGER", 0, 1 },    { "units", "INTEGER", 0, 1 },
    { "first_seen", "INTEGER", 0, 1 }, { "last_seen", "INTEGER", 0, 1 },
    { "gmark", "INTEGER", 0, 4 },      { NULL, NULL, 0, 0 },
};
static const sq_col cols_tiers[] = {
    { "name", "TEXT", 1, 1 }, { "unlimited", "INTEGER", 0, 1 }, { NULL, NULL, 0, 0 },
};
static const sq_col cols_limits[] = {
    { "tier", "TEXT", 1, 1 },     { "pos", "INTEGER", 2, 1 },   { "name", "TEXT", 0, 1 },
    { "resource", "TEXT", 0, 1 }, { "count", "INTEGER", 0, 1 }, { "period_ns", "INTEGER", 0, 1 },
    { "burst", "INTEGER", 0, 1 }, { "kind", "INTEGER", 0, 1 },  { NULL, NULL, 0, 0 },
};
static const sq_col cols_rules[] = {
    { "pos", "INTEGER", 1, 2 }, { "match", "TEXT", 0, 2 }, { "tier", "TEXT", 0, 2 },
    { NULL, NULL, 0, 0 },
};
static const sq_col cols_leases[] = {
    { "id", "INTEGER", 1, 3 },      { "key", "TEXT", 0, 3 },    { "created", "INTEGER", 0, 3 },
    { "expires", "INTEGER", 0, 3 }, { "pid", "INTEGER", 0, 3 }, { "pstart", "INTEGER", 0, 3 },
    { "body", "BLOB", 0, 3 },       { NULL, NULL, 0, 0 },
};
static const sq_col cols_leases_key[] = { { "key", NULL, 0, 3 }, { NULL, NULL, 0, 0 } };

static const sq_obj known_objects[] = {
    { "table", "rl_meta", "rl_meta", 1, cols_meta },
    { "table", "rl_keys", "rl_keys", 1, cols_keys },
    { "table", "rl_tiers", "rl_tiers", 1, cols_tiers },
    { "table", "rl_limits", "rl_limits", 1, cols_limits },
    { "table", "rl_rules", "rl_rules", 2, cols_rules },
    { "table", "rl_leases", "rl_leases", 3, cols_leases },
    { "index", "rl_leases_key", "rl_leases", 3, cols_leases_key },
    { NULL, NULL, NULL, 0, NULL },
};

typedef struct sq_store {
    rl_store base;
    sqlite3 *db;
    rl_lock *lock; /* NULL: read-only, or RL_BUSY_SQLITE */
    int readonly;
    int busy_timeout_ms;
    int durability; /* RL_DURABILITY_*, for the doctor's synchronous check */
    unsigned int file_mode; /* rl_options.file_mode, for fileperm.h's checks */
    int shared_group;       /* RL_OPEN_SHARED_GROUP */
    int locked;    /* holds lock */
    int leading;   /* holds lock as a group-commit leader: group_end unlocks */
    int in_txn;
    sqlite3_stmt *st[S_COUNT];
} sq_store;

/* Maps an SQLite result code to an rl code and a one-line message. */
static int sq_fail(sq_store *s, int rc, const char *what)
{
    int code;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: code = RL_EBUSY; break;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH: code = RL_EREADONLY; break;
    case SQLITE_FULL: code = RL_EFULL; break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_SCHEMA:
    case SQLITE_FORMAT: code = RL_ECORRUPT; break;
    case SQLITE_NOMEM: code = RL_ENOMEM; break;
    default: code = RL_ESTORE; break;
    }
    return rl_seterr(s->base.err, code, "%s: %s", what,
                     s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

static int stmt(sq_store *s, int i, sqlite3_stmt **out)
{
    int rc;
    if (!s->st[i]) {
        rc = sqlite3_prepare_v3(s->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
                                NULL);
        if (rc != SQLITE_OK)
            return sq_fail(s, rc, "prepare");
    }
    *out = s->st[i];
    return RL_OK;
}

/* Runs a statement that returns no rows. */
static int run(sq_store *s, int i, const char *what)
{
    sqlite3_stmt *q = NULL;
    int rc = stmt(s, i, &q);
    if (rc != RL_OK)
        return rc;
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? RL_OK : sq_fail(s, rc, what);
}

static int exec(sq_store *s, const char *sql, const char *what)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? RL_OK : sq_fail(s, rc, what);
}

static void text_col(sqlite3_stmt *q, int col, char *buf, size_t len)
{
    const unsigned char *t = sqlite3_column_text(q, col);
    snprintf(buf, len, "%s", t ? (const char *)t : "");
}

/* ---- transactions ------------------------------------------------------- */

static void unlock(sq_store *s);
static int sq_row_get(rl_store *base, const char *key, rl_row *row, int64_t *version);

static int sq_begin(rl_store *base, int write)
{
    sq_store *s = (sq_store *)base;
    int64_t waited = 0;
    int rc;
    if (!write) {
        if ((rc = run(s, S_BEGIN_R, "begin")) == RL_OK)
            s->in_txn = 1;
        return rc;
    }
    if (s->readonly)
        return rl_seterr(base->err, RL_EREADONLY,
                         "database is read-only: deciding and resetting need write access");
    if (s->lock && !s->leading && !rl_lock_damaged(s->lock)) {
        if ((rc = rl_lock_acquire(s->lock, s->busy_timeout_ms, &waited, base->err)) != RL_OK)
            return rc;
        s->locked = 1;
        /* The lock wait counts against the same timeout as SQLite's. */
        if (waited > 0) {
            int64_t left = s->busy_timeout_ms - waited / 1000000;
            sqlite3_busy_timeout(s->db, left > 1 ? (int)left : 1);
        }
    }
    rc = run(s, S_BEGIN_W, "begin");
    if (waited > 0)
        sqlite3_busy_timeout(s->db, s->busy_timeout_ms);
    if (rc != RL_OK) {
        unlock(s);
        return rc;
    }
    s->in_txn = 1;
    return RL_OK;
}

static void unlock(sq_store *s)
{
    if (s->leading)
        return; /* sq_group_end answers the batch first */
    if (s->locked)
        rl_lock_release(s->lock);
    s->locked = 0;
}

static int sq_group_join(rl_store *base, rl_group_req *req)
{
    sq_store *s = (sq_store *)base;
    int rc;
    if (!s->lock || s->locked || rl_lock_damaged(s->lock))
        return RL_GROUP_NONE;
    rc = rl_lock_join(s->lock, s->busy_timeout_ms, req, base->err);
    if (rc == RL_GROUP_LEAD)
        s->locked = s->leading = 1;
    return rc;
}

/* After a leader died: whether its batch, which wrote key's row if it
 * committed, did commit: the row carries the batch's mark (sq_row_put). */
static int sq_resolve(void *ctx, const char *key, uint64_t mark)
{
    sq_store *s = ctx;
    sqlite3_stmt *q = NULL;
    int rc, step, out = -1;
    if (stmt(s, S_GROUP_MARK, &q) != RL_OK)
        return -1;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    step = sqlite3_step(q);
    if (step == SQLITE_ROW)
        out = sqlite3_column_type(q, 0) == SQLITE_INTEGER &&
              (uint64_t)sqlite3_column_int64(q, 0) == mark;
    else if (step == SQLITE_DONE)
        out = 0;
    rc = sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_OK ? out : -1;
}

static size_t sq_group_take(rl_store *base, uint64_t sig, rl_group_req **batch, size_t max)
{
    sq_store *s = (sq_store *)base;
    return s->leading ? rl_lock_take(s->lock, sig, batch, max) : 0;
}

static void sq_group_end(rl_store *base)
{
    sq_store *s = (sq_store *)base;
    if (!s->leading)
        return;
    rl_lock_publish(s->lock);
    s->leading = 0;
    unlock(s);
}

static int sq_commit(rl_store *base)
{
    sq_store *s = (sq_store *)base;
    int rc = run(s, S_COMMIT, "commit");
    if (rc == RL_OK) {
        s->in_txn = 0;
        if (s->leading)
            RL_LOCK_HOOK(RL_STEP_COMMITTED);
        unlock(s);
    }
    return rc; /* on failure the caller rolls back, which unlocks */
}

static void sq_rollback(rl_store *base)
{
    sq_store *s = (sq_store *)base;
    if (s->in_txn && !sqlite3_get_autocommit(s->db))
        (void)run(s, S_ROLLBACK, "rollback");
    s->in_txn = 0;
    unlock(s);
}

/* ---- rows --------------------------------------------------------------- */

static int sq_row_get(rl_store *base, const char *key, rl_row *row, int64_t *version)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = stmt(s, S_GET, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        rc = rc == SQLITE_DONE ? rl_seterr(base->err, RL_ECORRUPT, "policy_version row missing")
                               : sq_fail(s, rc, "read key");
        goto out;
    }
    *version = sqlite3_column_int64(q, 0);
    row->exists = sqlite3_column_int(q, 1);
    text_col(q, 2, row->tier, sizeof row->tier);
    row->state_len = (size_t)sqlite3_column_bytes(q, 3);
    if (row->state_len > RL_STATE_MAX) {
        rc = rl_seterr(base->err, RL_ECORRUPT, "key '%.64s': bucket state too large", key);
        goto out;
    }
    if (row->state_len)
        memcpy(row->state, sqlite3_column_blob(q, 3), row->state_len);
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

static int sq_row_put(rl_store *base, const char *key, const rl_row *row)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    uint64_t mark;
    int rc = stmt(s, row->exists ? S_UPD : S_INS, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    if (row->tier[0])
        sqlite3_bind_text(q, 2, row->tier, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 2);
    if (row->state_len)
        sqlite3_bind_blob(q, 3, row->state, (int)row->state_len, SQLITE_STATIC);
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
    rc = rc == SQLITE_DONE ? RL_OK : sq_fail(s, rc, "write key");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

static int sq_row_delete(rl_store *base, const char *key)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = stmt(s, S_DEL, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    return run(s, S_DEL, "delete key");
}

static int sq_policy_version(rl_store *base, int64_t *version)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = stmt(s, S_VER, &q);
    if (rc != RL_OK)
        return rc;
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int64(q, 0);
        rc = RL_OK;
    } else {
        rc = rc == SQLITE_DONE ? rl_seterr(base->err, RL_ECORRUPT, "policy_version row missing")
                               : sq_fail(s, rc, "read policy version");
    }
    sqlite3_reset(q);
    return rc;
}

/* ---- policy ------------------------------------------------------------- */

static int get_setting(sq_store *s, const char *name, char *buf, size_t len, int *is_null)
{
    sqlite3_stmt *q = NULL;
    int rc = stmt(s, S_SETTING, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    *is_null = 1;
    buf[0] = 0;
    if (rc == SQLITE_ROW) {
        *is_null = sqlite3_column_type(q, 0) == SQLITE_NULL;
        text_col(q, 0, buf, len);
        rc = RL_OK;
    } else {
        rc = rc == SQLITE_DONE ? RL_OK : sq_fail(s, rc, "read setting");
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

static int set_setting(sq_store *s, const char *name, const char *value, int64_t ivalue)
{
    sqlite3_stmt *q = NULL;
    int rc = stmt(s, S_SET_SETTING, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    if (value)
        sqlite3_bind_text(q, 2, value, -1, SQLITE_STATIC);
    else if (ivalue >= 0)
        sqlite3_bind_int64(q, 2, ivalue);
    else
        sqlite3_bind_null(q, 2);
    return run(s, S_SET_SETTING, "write setting");
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

static int sq_policy_get(rl_store *base, rl_policy *p)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    char buf[RL_NAME_MAX], why[128], *match = NULL;
    int rc = RL_OK, step, is_null;
    rl_tier t;

    if ((rc = stmt(s, S_TIERS, &q)) != RL_OK)
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
        return sq_fail(s, step, "read tiers");

    if ((rc = stmt(s, S_LIMITS, &q)) != RL_OK)
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
        return sq_fail(s, step, "read limits");

    if ((rc = stmt(s, S_RULES, &q)) != RL_OK)
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
        return sq_fail(s, step, "read rules");

    if ((rc = get_setting(s, "default_tier", p->default_tier, sizeof p->default_tier, &is_null)))
        return rc;
    if (!is_null && p->default_tier[0] && !rl_name_valid(p->default_tier)) {
        char shown[64];
        rl_parse_quote(shown, sizeof shown, p->default_tier, strlen(p->default_tier));
        return rl_seterr(base->err, RL_ECORRUPT, "stored default tier '%s' is not valid "
                         "(tampered?)", shown);
    }
    if ((rc = get_setting(s, "fail_mode", buf, sizeof buf, &is_null)))
        return rc;
    p->fail_mode = is_null ? RL_FAIL_UNSET : atoi(buf) ? RL_FAIL_OPEN : RL_FAIL_CLOSED;
    return RL_OK;
}

static int put_tier(sq_store *s, const rl_tier *t)
{
    sqlite3_stmt *q = NULL;
    size_t i;
    int rc;
    if ((rc = stmt(s, S_LIMITS_DEL, &q)) != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, t->name, -1, SQLITE_STATIC);
    if ((rc = run(s, S_LIMITS_DEL, "write tier")) != RL_OK)
        return rc;
    if ((rc = stmt(s, S_TIER_INS, &q)) != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, t->unlimited);
    if ((rc = run(s, S_TIER_INS, "write tier")) != RL_OK)
        return rc;
    for (i = 0; i < t->n; i++) {
        const rl_ldef *d = &t->limits[i];
        if ((rc = stmt(s, S_LIMIT_INS, &q)) != RL_OK)
            return rc;
        sqlite3_bind_text(q, 1, t->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)i);
        sqlite3_bind_text(q, 3, d->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, d->resource, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 5, d->count);
        sqlite3_bind_int64(q, 6, d->period_ns);
        sqlite3_bind_int64(q, 7, d->burst);
        sqlite3_bind_int(q, 8, d->kind);
        if ((rc = run(s, S_LIMIT_INS, "write limit")) != RL_OK)
            return rc;
    }
    return RL_OK;
}

static int sq_tier_put(rl_store *base, const rl_tier *t)
{
    sq_store *s = (sq_store *)base;
    int rc = put_tier(s, t);
    return rc != RL_OK ? rc : run(s, S_BUMP, "bump policy version");
}

static int sq_tier_delete(rl_store *base, const char *name)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = stmt(s, S_TIER_DEL, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    if ((rc = run(s, S_TIER_DEL, "delete tier")) != RL_OK)
        return rc;
    if (sqlite3_changes(s->db) == 0)
        return rl_seterr(base->err, RL_ENOTFOUND, "no such tier: '%s'", name);
    if ((rc = stmt(s, S_LIMITS_DEL, &q)) != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    if ((rc = run(s, S_LIMITS_DEL, "delete tier")) != RL_OK)
        return rc;
    return run(s, S_BUMP, "bump policy version");
}

static int sq_policy_put(rl_store *base, const rl_policy *p)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    size_t i;
    int rc;
    if ((rc = run(s, S_TIERS_CLEAR, "clear tiers")) || (rc = run(s, S_LIMITS_CLEAR, "clear limits")) ||
        (rc = run(s, S_RULES_CLEAR, "clear rules")))
        return rc;
    for (i = 0; i < p->n_tiers; i++)
        if ((rc = put_tier(s, &p->tiers[i])) != RL_OK)
            return rc;
    for (i = 0; i < p->n_rules; i++) {
        if ((rc = stmt(s, S_RULE_INS, &q)) != RL_OK)
            return rc;
        sqlite3_bind_int64(q, 1, (sqlite3_int64)i);
        sqlite3_bind_text(q, 2, p->rules[i].match, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, p->rules[i].tier, -1, SQLITE_STATIC);
        if ((rc = run(s, S_RULE_INS, "write rule")) != RL_OK)
            return rc;
    }
    if ((rc = set_setting(s, "default_tier", p->default_tier[0] ? p->default_tier : NULL, -1)))
        return rc;
    if ((rc = set_setting(s, "fail_mode", NULL, p->fail_mode == RL_FAIL_UNSET ? -1 : p->fail_mode)))
        return rc;
    return run(s, S_BUMP, "bump policy version");
}

/* ---- leases ------------------------------------------------------------- */

static int sq_lease_put(rl_store *base, rl_lease_rec *rec)
{
    sq_store *s = (sq_store *)base;
    unsigned char body[RL_LEASE_BODY_MAX];
    size_t len = rl_lease_encode(rec, body);
    sqlite3_stmt *q = NULL;
    int rc = stmt(s, S_LEASE_INS, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, rec->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, rec->created);
    sqlite3_bind_int64(q, 3, rec->expires);
    sqlite3_bind_int64(q, 4, rec->pid);
    sqlite3_bind_int64(q, 5, rec->pstart);
    sqlite3_bind_blob(q, 6, body, (int)len, SQLITE_STATIC);
    if ((rc = run(s, S_LEASE_INS, "write lease")) == RL_OK)
        rec->id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

/* Reads the current row of a lease query into rec. */
static int lease_row(sq_store *s, sqlite3_stmt *q, rl_lease_rec *rec)
{
    const void *body = sqlite3_column_blob(q, 6);
    rec->id = sqlite3_column_int64(q, 0);
    text_col(q, 1, rec->key, sizeof rec->key);
    rec->created = sqlite3_column_int64(q, 2);
    rec->expires = sqlite3_column_int64(q, 3);
    rec->pid = sqlite3_column_int64(q, 4);
    rec->pstart = sqlite3_column_int64(q, 5);
    if (rl_lease_decode(rec, body, (size_t)sqlite3_column_bytes(q, 6)) != RL_OK)
        return rl_seterr(s->base.err, RL_ECORRUPT, "lease %lld: damaged record",
                         (long long)rec->id);
    return RL_OK;
}

static int sq_lease_get(rl_store *base, int64_t id, rl_lease_rec *rec)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = stmt(s, S_LEASE_GET, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_int64(q, 1, id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        rc = lease_row(s, q, rec);
    else if (rc == SQLITE_DONE)
        rc = rl_seterr(base->err, RL_ENOTFOUND,
                       "lease %lld not found: settled, cancelled or reclaimed", (long long)id);
    else
        rc = sq_fail(s, rc, "read lease");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

static int sq_lease_delete(rl_store *base, int64_t id)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = stmt(s, S_LEASE_DEL, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_int64(q, 1, id);
    return run(s, S_LEASE_DEL, "delete lease");
}

static int sq_leases_each(rl_store *base, const char *key, rl_lease_fn fn, void *ctx)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    rl_lease_rec *rec = malloc(sizeof *rec);
    int rc, step = SQLITE_DONE;
    if (!rec)
        return rl_seterr(base->err, RL_ENOMEM, "out of memory");
    if ((rc = stmt(s, key ? S_LEASES_KEY : S_LEASES_ALL, &q)) != RL_OK)
        goto out;
    if (key)
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    while (rc == RL_OK && (step = sqlite3_step(q)) == SQLITE_ROW)
        if ((rc = lease_row(s, q, rec)) == RL_OK)
            rc = fn(ctx, rec);
    if (rc == RL_OK && step != SQLITE_DONE)
        rc = sq_fail(s, step, "list leases");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
out:
    free(rec);
    return rc;
}

/* ---- listing ------------------------------------------------------------ */

static void glob_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const unsigned char *p = sqlite3_value_text(argv[0]), *k = sqlite3_value_text(argv[1]);
    (void)argc;
    sqlite3_result_int(ctx, p && k && rl_glob_match((const char *)p, (const char *)k));
}

/* Steps a listing statement whose columns are key, tier, state, allowed,
 * refused, units, first_seen, last_seen, calling fn for each row. A state
 * too large to be one is passed on as a byte no decoder accepts, so that
 * prune and doctor see damage there, not an empty state (full buckets). */
static int each_row(sq_store *s, sqlite3_stmt *q, rl_row_fn fn, void *ctx)
{
    rl_row *row = malloc(sizeof *row);
    int rc = RL_OK, step = SQLITE_DONE, stop = 0;
    if (!row)
        rc = rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
    while (row && !stop && (step = sqlite3_step(q)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(q, 0);
        size_t len = (size_t)sqlite3_column_bytes(q, 2);
        row->exists = 1;
        text_col(q, 1, row->tier, sizeof row->tier);
        if (len > RL_STATE_MAX) {
            row->state[0] = 0;
            row->state_len = 1;
        } else {
            row->state_len = len;
            if (len)
                memcpy(row->state, sqlite3_column_blob(q, 2), len);
        }
        row->allowed = sqlite3_column_int64(q, 3);
        row->refused = sqlite3_column_int64(q, 4);
        row->units = sqlite3_column_int64(q, 5);
        row->first_seen = sqlite3_column_int64(q, 6);
        row->last_seen = sqlite3_column_int64(q, 7);
        if ((stop = fn(ctx, key ? key : "", row)) != 0)
            rc = stop;
    }
    if (row && !stop && step != SQLITE_DONE)
        rc = sq_fail(s, step, "list keys");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    free(row);
    return rc;
}

static int sq_keys_list(rl_store *base, const char *match, int sort, size_t limit, rl_row_fn fn,
                        void *ctx)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = stmt(s, S_LIST_KEY + sort, &q);
    if (rc != RL_OK)
        return rc;
    if (match)
        sqlite3_bind_text(q, 1, match, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, limit ? (sqlite3_int64)limit : -1);
    return each_row(s, q, fn, ctx);
}

static int sq_totals(rl_store *base, rl_totals *t)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = stmt(s, S_TOTALS, &q);
    if (rc != RL_OK)
        return rc;
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        t->keys = sqlite3_column_int64(q, 0);
        t->allowed = sqlite3_column_int64(q, 1);
        t->refused = sqlite3_column_int64(q, 2);
        t->units = sqlite3_column_int64(q, 3);
        rc = RL_OK;
    } else {
        rc = sq_fail(s, rc, "totals");
    }
    sqlite3_reset(q);
    return rc;
}

/* ---- administration (core/admin.c) --------------------------------------- */

static int sq_keys_page(rl_store *base, const char *after, const char *match, size_t limit,
                        rl_row_fn fn, void *ctx)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *q = NULL;
    int rc = stmt(s, S_PAGE, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_text(q, 1, after ? after : "", -1, SQLITE_STATIC);
    if (match)
        sqlite3_bind_text(q, 2, match, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, limit ? (sqlite3_int64)limit : -1);
    return each_row(s, q, fn, ctx);
}

static int sq_state_clear(rl_store *base)
{
    sq_store *s = (sq_store *)base;
    int rc = run(s, S_KEYS_CLEAR, "clear keys");
    return rc != RL_OK ? rc : run(s, S_LEASES_CLEAR, "clear leases");
}

static int sq_lease_restore(rl_store *base, const rl_lease_rec *rec)
{
    sq_store *s = (sq_store *)base;
    unsigned char body[RL_LEASE_BODY_MAX];
    size_t len = rl_lease_encode(rec, body);
    sqlite3_stmt *q = NULL;
    int rc = stmt(s, S_LEASE_RESTORE, &q);
    if (rc != RL_OK)
        return rc;
    sqlite3_bind_int64(q, 1, rec->id);
    sqlite3_bind_text(q, 2, rec->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, rec->created);
    sqlite3_bind_int64(q, 4, rec->expires);
    sqlite3_bind_int64(q, 5, rec->pid);
    sqlite3_bind_int64(q, 6, rec->pstart);
    sqlite3_bind_blob(q, 7, body, (int)len, SQLITE_STATIC);
    return run(s, S_LEASE_RESTORE, "write lease");
}

/* ---- opening ------------------------------------------------------------ */

static void sq_close(rl_store *base)
{
    sq_store *s = (sq_store *)base;
    int i;
    if (!s)
        return;
    if (s->in_txn || s->locked)
        sq_rollback(base);
    for (i = 0; i < S_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close_v2(s->db);
    rl_lock_close(s->lock);
    free(s);
}

/* The columns of a known table (or index) against what version v of the
 * migrations gives it. */
static int check_columns(sq_store *s, const sq_obj *o, int v)
{
    sqlite3_stmt *q = NULL;
    const sq_col *c = o->cols;
    int rc, step, index = strcmp(o->type, "index") == 0;
    rc = sqlite3_prepare_v2(s->db,
                            index ? "SELECT name, NULL, 0 FROM pragma_index_info(?1) ORDER BY seqno"
                                  : "SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY cid",
                            -1, &q, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(s, rc, "read schema");
    sqlite3_bind_text(q, 1, o->name, -1, SQLITE_STATIC);
    rc = RL_OK;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        const char *type = (const char *)sqlite3_column_text(q, 1);
        while (c->name && c->since > v)
            c++;
        if (!c->name || !name || strcmp(name, c->name) != 0 ||
            (c->type && (!type || sqlite3_stricmp(type, c->type) != 0)) ||
            sqlite3_column_int(q, 2) != c->pk) {
            rc = rl_seterr(s->base.err, RL_ECORRUPT,
                           "%s %s: column %s is not rl's (tampered?)", o->type, o->name,
                           c->name ? c->name : name ? name : "?");
            break;
        }
        c++;
    }
    if (rc == RL_OK && step != SQLITE_DONE)
        rc = sq_fail(s, step, "read schema");
    while (rc == RL_OK && c->name && c->since > v)
        c++;
    if (rc == RL_OK && c->name)
        rc = rl_seterr(s->base.err, RL_ECORRUPT, "%s %s: column %s missing (tampered?)",
                       o->type, o->name, c->name);
    sqlite3_finalize(q);
    return rc;
}

/* Whether the schema is exactly what version v of the migrations creates
 * (known_objects). SQLite's own tables and indexes (sqlite_sequence,
 * sqlite_stat1, sqlite_autoindex_*) are passed over by an exact,
 * case-sensitive prefix: LIKE would take '_' for any character and ignore
 * case, passing over "sqliteXevil" and "SQLITE1secret" too. */
static int check_objects(sq_store *s, int v)
{
    sqlite3_stmt *q = NULL;
    int rc, step, i, seen[sizeof known_objects / sizeof known_objects[0]] = { 0 };
    rc = sqlite3_prepare_v2(s->db,
                            "SELECT type, name, tbl_name, rootpage FROM sqlite_schema WHERE NOT"
                            " (type IN ('table', 'index') AND substr(name, 1, 7) = 'sqlite_')",
                            -1, &q, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(s, rc, "read schema");
    rc = RL_OK;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(q, 0);
        const char *name = (const char *)sqlite3_column_text(q, 1);
        const char *table = (const char *)sqlite3_column_text(q, 2);
        for (i = 0; known_objects[i].name; i++)
            if (known_objects[i].since <= v && type && name && table &&
                strcmp(type, known_objects[i].type) == 0 &&
                strcmp(name, known_objects[i].name) == 0 &&
                strcmp(table, known_objects[i].table) == 0)
                break;
        /* rootpage 0: a virtual table, whose module would run code */
        if (!known_objects[i].name || sqlite3_column_int64(q, 3) <= 0) {
            char shown[64];
            rl_parse_quote(shown, sizeof shown, name ? name : "?", name ? strlen(name) : 1);
            rc = rl_seterr(s->base.err, RL_ECORRUPT,
                           "unexpected %s '%s' in the database: not rl's schema (tampered?)",
                           known_objects[i].name ? "virtual table" : type ? type : "object",
                           shown);
            break;
        }
        seen[i] = 1;
    }
    if (rc == RL_OK && step != SQLITE_DONE)
        rc = sq_fail(s, step, "read schema");
    sqlite3_finalize(q);
    for (i = 0; rc == RL_OK && known_objects[i].name; i++) {
        if (known_objects[i].since > v)
            continue;
        if (!seen[i])
            rc = rl_seterr(s->base.err, RL_ECORRUPT, "%s %s missing: not rl's schema (tampered?)",
                           known_objects[i].type, known_objects[i].name);
        else
            rc = check_columns(s, &known_objects[i], v);
    }
    return rc;
}

static int user_version(sq_store *s, int *v)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        *v = sqlite3_column_int(q, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_OK ? RL_OK : sq_fail(s, rc, "read schema version");
}

static int count_tables(sq_store *s, int *n)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT count(*) FROM sqlite_schema", -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        *n = sqlite3_column_int(q, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_OK ? RL_OK : sq_fail(s, rc, "read schema");
}

/* Brings the schema to rl_schema_count inside one write transaction. */
static int migrate(sq_store *s)
{
    char sql[64];
    int rc, v = 0, ntables = 0;
    size_t i;
    if ((rc = exec(s, "BEGIN IMMEDIATE", "begin migration")) != RL_OK)
        return rc;
    if ((rc = user_version(s, &v)) != RL_OK)
        goto out;
    if (v > (int)rl_schema_count) {
        rc = rl_seterr(s->base.err, RL_EVERSION,
                       "database schema version %d is newer than this library's %zu: upgrade rl",
                       v, rl_schema_count);
        goto out;
    }
    if (v == 0) {
        if ((rc = count_tables(s, &ntables)) != RL_OK)
            goto out;
        if (ntables > 0) {
            rc = rl_seterr(s->base.err, RL_ECORRUPT,
                           "not an rl database: it has tables but no rl schema version");
            goto out;
        }
    }
    /* before migrating what is there (an up-to-date file: checked below) */
    if (v > 0 && v < (int)rl_schema_count && (rc = check_objects(s, v)) != RL_OK)
        goto out;
    for (i = (size_t)v; i < rl_schema_count; i++) {
        if ((rc = exec(s, rl_schema_migrations[i], "migration")) != RL_OK)
            goto out;
        snprintf(sql, sizeof sql, "PRAGMA user_version = %zu", i + 1);
        if ((rc = exec(s, sql, "migration")) != RL_OK)
            goto out;
    }
    if ((rc = check_objects(s, (int)rl_schema_count)) != RL_OK)
        goto out;
    rc = exec(s, "COMMIT", "commit migration");
out:
    if (rc != RL_OK && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Creates the file with the requested mode (SQLite would use 0644 & ~umask);
 * SQLite gives the -wal and -shm files the database file's permissions. */
static int create_file(sq_store *s, const char *path, unsigned int mode)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        if (errno == EEXIST)
            return RL_OK;
        return rl_seterr(s->base.err, errno == EACCES || errno == EROFS ? RL_EREADONLY : RL_ESTORE,
                         "%s: %s", path, strerror(errno));
    }
    (void)fchmod(fd, mode); /* the umask must not narrow a group-shared 0660 */
    close(fd);
    return RL_OK;
}

/* The database, PATH-wal and PATH-shm must be files that no other user
 * could have planted (fileperm.h): a writer applies the writer's rule, a
 * read-only handle the reader's, which trusts the database's owner. First
 * (again 0) before SQLite opens anything: a writer's side files before it
 * creates the database, so that a refused open leaves nothing behind, and
 * *db records the database file. Then (again 1) after the open, against a
 * file planted or swapped in the moment between. */
static int check_files(sq_store *s, const char *path, int again, struct stat *db)
{
    static const char *const sides[] = { "-wal", "-shm" };
    char side[4200];
    struct stat st;
    size_t i;
    int fd, rc;

    if (!again)
        memset(db, 0, sizeof *db);
    for (i = 0; !s->readonly && i < 2; i++) {
        snprintf(side, sizeof side, "%s%s", path, sides[i]);
        if ((rc = rl_fileperm_check_path(side, s->file_mode, s->shared_group, s->base.err)) !=
            RL_OK)
            return rc;
    }
    if (!s->readonly && !again && (rc = create_file(s, path, s->file_mode)) != RL_OK)
        return rc;
    /* O_PATH: no open of a FIFO or device that could block or act */
    if ((fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        if (errno == ELOOP) /* says it is a symbolic link */
            return rl_fileperm_check_path(path, s->file_mode, s->shared_group, s->base.err);
        if (errno == ENOENT && s->readonly && !again)
            return RL_OK; /* SQLite says it is missing */
        return rl_seterr(s->base.err, RL_ESTORE, "%s: %s", path, strerror(errno));
    }
    rc = s->readonly ? rl_fileperm_check_fd_ro(fd, path, s->file_mode, s->shared_group, -1,
                                               s->base.err)
                     : rl_fileperm_check_fd(fd, path, s->file_mode, s->shared_group, s->base.err);
    if (rc == RL_OK && fstat(fd, &st) != 0)
        rc = rl_seterr(s->base.err, RL_ESTORE, "%s: %s", path, strerror(errno));
    close(fd);
    if (rc != RL_OK)
        return rc;
    if (again && db->st_nlink && (st.st_dev != db->st_dev || st.st_ino != db->st_ino))
        return rl_seterr(s->base.err, RL_EPERM,
                         "%s: replaced by another file while it was being opened", path);
    *db = st;
    for (i = 0; s->readonly && i < 2; i++) {
        snprintf(side, sizeof side, "%s%s", path, sides[i]);
        if ((rc = rl_fileperm_check_path_ro(side, s->file_mode, s->shared_group,
                                            (long)st.st_uid, s->base.err)) != RL_OK)
            return rc;
    }
    return RL_OK;
}

/* The name SQLite opens the database by: path with its directory resolved
 * (malloc'd; NULL when memory runs out). SQLITE_OPEN_NOFOLLOW refuses a
 * symbolic link in any component of the name, yet a linked directory is
 * fine (docs/security.md): resolved, only a link at the database itself,
 * swapped in after check_files, makes SQLite refuse. A directory that
 * cannot be resolved is left to SQLite to report. */
static char *open_name(const char *path)
{
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    char *dir, *real, *out;
    size_t dlen = slash ? (size_t)(slash - path) : 0, len;
    if (!(dir = malloc(dlen + 2)))
        return NULL;
    if (!slash)
        memcpy(dir, ".", 2);
    else if (dlen == 0)
        memcpy(dir, "/", 2);
    else {
        memcpy(dir, path, dlen);
        dir[dlen] = '\0';
    }
    real = *base ? realpath(dir, NULL) : NULL;
    free(dir);
    if (!real)
        return strdup(path);
    len = strlen(real) + strlen(base) + 2;
    if ((out = malloc(len)))
        snprintf(out, len, "%s%s%s", real, strcmp(real, "/") == 0 ? "" : "/", base);
    free(real);
    return out;
}

static int configure(sq_store *s, const rl_store_config *c)
{
    sqlite3_stmt *q = NULL;
    const unsigned char *mode;
    int rc, ok;

    sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, NULL);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
    if (s->readonly)
        return RL_OK;
    /* Keep the -wal and -shm files when the last connection closes: a user
     * who may only read the database can open it only if they exist. */
    ok = 1;
    sqlite3_file_control(s->db, "main", SQLITE_FCNTL_PERSIST_WAL, &ok);
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        mode = sqlite3_column_text(q, 0);
        ok = mode && strcmp((const char *)mode, "wal") == 0;
        sqlite3_finalize(q);
        if (!ok)
            return rl_seterr(s->base.err, RL_ESTORE, "could not switch the database to WAL mode");
    } else {
        sqlite3_finalize(q);
        return sq_fail(s, rc, "set WAL mode");
    }
    /* Debian's build makes WAL default to synchronous=FULL: say it explicitly.
     * A bounded journal keeps the WAL file from staying large after a burst. */
    return exec(s, c->durability == RL_DURABILITY_FULL
                       ? "PRAGMA synchronous = FULL; PRAGMA journal_size_limit = 67108864"
                       : "PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = 67108864",
                "configure");
}

/* ---- doctor --------------------------------------------------------------- */

/* Filesystems by statfs f_type. WAL keeps its index in a shared-memory file
 * (-shm) mapped by every process: over NFS, SMB, 9P or FUSE the mapping is
 * not shared between machines (or not coherent), and locks may be advisory
 * only, so processes can corrupt the database or see stale buckets. */
static const struct {
    uint32_t type;
    const char *name;
    int network;
} fs_types[] = {
    { 0x6969, "NFS", 1 },          { 0x517b, "SMB", 1 },         { 0xff534d42, "CIFS", 1 },
    { 0xfe534d42, "SMB2", 1 },     { 0x01021997, "9P", 1 },      { 0x65735546, "FUSE", 1 },
    { 0xef53, "ext2/3/4", 0 },     { 0x58465342, "XFS", 0 },     { 0x9123683e, "Btrfs", 0 },
    { 0x01021994, "tmpfs", 0 },    { 0x794c7630, "overlayfs", 0 }, { 0x2fc12fc1, "ZFS", 0 },
    { 0xf2f52010, "F2FS", 0 },
};

typedef struct doctor_ctx {
    rl_check_fn fn;
    void *ctx;
    int stop; /* fn's non-zero return */
} doctor_ctx;

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 4, 5)))
#endif
static void report(doctor_ctx *d, const char *check, int status, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    if (d->stop)
        return;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    d->stop = d->fn(d->ctx, check, status, detail);
}

/* Runs a cached one-row PRAGMA; its first column as text (and int). */
static int pragma_value(sq_store *s, int i, char *buf, size_t len, int64_t *v)
{
    sqlite3_stmt *q = NULL;
    int rc = stmt(s, i, &q);
    if (rc != RL_OK)
        return rc;
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        text_col(q, 0, buf, len);
        *v = sqlite3_column_int64(q, 0);
        rc = RL_OK;
    } else {
        rc = sq_fail(s, rc == SQLITE_DONE ? SQLITE_ERROR : rc, "pragma");
    }
    sqlite3_reset(q);
    return rc;
}

static void doctor_pragmas(sq_store *s, doctor_ctx *d)
{
    static const char *const sync_names[] = { "OFF", "NORMAL", "FULL", "EXTRA" };
    char buf[64];
    int64_t v = 0, want;

    if (pragma_value(s, S_P_JOURNAL, buf, sizeof buf, &v) != RL_OK)
        report(d, "journal mode", RL_CHECK_FAIL, "cannot read: %s", s->base.err);
    else if (strcmp(buf, "wal") == 0)
        report(d, "journal mode", RL_CHECK_OK, "wal");
    else
        report(d, "journal mode", RL_CHECK_FAIL,
               "%s: processes need wal to read while one writes (open it once with write "
               "access)", buf);

    want = s->durability == RL_DURABILITY_FULL ? 2 : 1;
    if (pragma_value(s, S_P_SYNC, buf, sizeof buf, &v) != RL_OK)
        report(d, "synchronous", RL_CHECK_FAIL, "cannot read: %s", s->base.err);
    else if (v < 0 || v > 3)
        report(d, "synchronous", RL_CHECK_FAIL, "unknown value %lld", (long long)v);
    else if (s->readonly)
        report(d, "synchronous", RL_CHECK_OK,
               "%s here; this handle is read-only, and every writer sets NORMAL or FULL "
               "(rl_options.durability) itself", sync_names[v]);
    else if (v == want)
        report(d, "synchronous", RL_CHECK_OK, "%s, as configured", sync_names[v]);
    else
        report(d, "synchronous", RL_CHECK_FAIL, "%s, but the handle asked for %s",
               sync_names[v], sync_names[want]);

    if (pragma_value(s, S_P_BUSY, buf, sizeof buf, &v) != RL_OK)
        report(d, "busy timeout", RL_CHECK_FAIL, "cannot read: %s", s->base.err);
    else if (v <= 0)
        report(d, "busy timeout", RL_CHECK_WARN,
               "0 ms: a write meeting another fails at once with RL_EBUSY");
    else
        report(d, "busy timeout", v == s->busy_timeout_ms ? RL_CHECK_OK : RL_CHECK_WARN,
               "%lld ms%s", (long long)v,
               v == s->busy_timeout_ms ? "" : ", not the configured value");
}

static void doctor_schema(sq_store *s, doctor_ctx *d)
{
    char buf[64];
    int64_t v = 0;
    size_t nproblems = 0;
    sqlite3_stmt *q = NULL;
    int step;

    if (pragma_value(s, S_P_VERSION, buf, sizeof buf, &v) != RL_OK)
        report(d, "schema", RL_CHECK_FAIL, "cannot read the version: %s", s->base.err);
    else if (v != (int64_t)rl_schema_count)
        report(d, "schema", RL_CHECK_FAIL, "version %lld, this library's is %zu",
               (long long)v, rl_schema_count);
    else if (check_objects(s, (int)v) != RL_OK)
        report(d, "schema", RL_CHECK_FAIL, "%s", s->base.err);
    else
        report(d, "schema", RL_CHECK_OK, "version %lld, as this library's", (long long)v);

    /* quick_check reads every page, in a read transaction of its own: WAL
     * lets deciding processes write meanwhile. */
    if (stmt(s, S_P_CHECK, &q) != RL_OK) {
        report(d, "integrity", RL_CHECK_FAIL, "%s", s->base.err);
        return;
    }
    buf[0] = 0;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        if (nproblems++ == 0)
            text_col(q, 0, buf, sizeof buf);
    }
    if (step != SQLITE_DONE)
        report(d, "integrity", RL_CHECK_FAIL, "check failed: %s", sqlite3_errmsg(s->db));
    else if (nproblems == 1 && strcmp(buf, "ok") == 0)
        report(d, "integrity", RL_CHECK_OK, "quick_check: ok");
    else
        report(d, "integrity", RL_CHECK_FAIL, "quick_check: %zu problem(s), first: %s",
               nproblems, buf);
    sqlite3_reset(q);
}

/* Whether rl_open, opening file as this user does (with the writer's rule
 * if it may write the database), refuses it with RL_EPERM (fileperm.h);
 * msg then says why and what to do. */
static int doctor_refused(sq_store *s, const char *file, int writer, long db_owner, char *msg)
{
    char err[RL_ERRMSG_MAX];
    int rc = writer ? rl_fileperm_check_path(file, s->file_mode, s->shared_group, err)
                    : rl_fileperm_check_path_ro(file, s->file_mode, s->shared_group, db_owner, err);
    if (rc != RL_EPERM)
        return 0;
    memcpy(msg, err, sizeof err);
    return 1;
}

static void doctor_files(sq_store *s, doctor_ctx *d)
{
    static const char *const sides[] = { "-wal", "-shm", "-rlshm" };
    const char *path = sqlite3_db_filename(s->db, "main");
    char side[4200], issues[400];
    struct stat db, st;
    struct statfs sf;
    size_t i, o = 0;
    int status = RL_CHECK_OK;
    char refused[RL_ERRMSG_MAX] = "", msg[RL_ERRMSG_MAX];
    int writer;

    if (!path || !*path || stat(path, &db) != 0) {
        report(d, "permissions", RL_CHECK_FAIL, "cannot stat the database: %s",
               path && *path ? strerror(errno) : "no file name");
        return;
    }
    writer = access(path, W_OK) == 0;
    if (db.st_mode & (S_IROTH | S_IWOTH))
        report(d, "permissions", RL_CHECK_FAIL,
               "mode %04o: every user of the machine may %s it (chmod o-rwx %s)",
               (unsigned)(db.st_mode & 07777),
               db.st_mode & S_IWOTH ? "write" : "read", path);
    else if (doctor_refused(s, path, writer, -1, msg))
        report(d, "permissions", RL_CHECK_FAIL, "rl_open refuses it (RL_EPERM): %s", msg);
    else
        report(d, "permissions", RL_CHECK_OK, "mode %04o, owner %u:%u",
               (unsigned)(db.st_mode & 07777), (unsigned)db.st_uid, (unsigned)db.st_gid);

    /* SQLite gives -wal and -shm the database's mode and owner; when they
     * differ (created by root, by another umask) some users cannot open it. */
    issues[0] = 0;
    for (i = 0; i < sizeof sides / sizeof sides[0]; i++) {
        int n = 0;
        snprintf(side, sizeof side, "%s%s", path, sides[i]);
        if (stat(side, &st) != 0) {
            if (errno == ENOENT && i < 2) {
                n = snprintf(issues + o, sizeof issues - o, "%s%s missing (read-only users "
                             "cannot open the database until a writer has)", o ? "; " : "",
                             sides[i]);
                if (status < RL_CHECK_WARN)
                    status = RL_CHECK_WARN;
            }
        } else if ((st.st_mode & 0777) != (db.st_mode & 0777) || st.st_uid != db.st_uid ||
                   st.st_gid != db.st_gid) {
            n = snprintf(issues + o, sizeof issues - o, "%s%s has mode %04o owner %u:%u",
                         o ? "; " : "", sides[i], (unsigned)(st.st_mode & 0777),
                         (unsigned)st.st_uid, (unsigned)st.st_gid);
            status = RL_CHECK_FAIL;
        }
        if (n > 0)
            o = (size_t)n < sizeof issues - o ? o + (size_t)n : sizeof issues - 1;
        /* the lock file is opened by writers only */
        if (!refused[0] && (writer || i < 2) &&
            doctor_refused(s, side, writer, (long)db.st_uid, msg))
            memcpy(refused, msg, sizeof msg);
    }
    if (refused[0])
        report(d, "side files", RL_CHECK_FAIL, "rl_open refuses it (RL_EPERM): %s", refused);
    else if (status == RL_CHECK_OK)
        report(d, "side files", status, "-wal, -shm and -rlshm match the database");
    else
        report(d, "side files", status, "%s%s", issues,
               status == RL_CHECK_FAIL ? " (the database: same mode and owner expected)" : "");

    if (statfs(path, &sf) != 0) {
        report(d, "filesystem", RL_CHECK_WARN, "cannot tell: %s", strerror(errno));
        return;
    }
    for (i = 0; i < sizeof fs_types / sizeof fs_types[0]; i++)
        if ((uint32_t)sf.f_type == fs_types[i].type)
            break;
    if (i == sizeof fs_types / sizeof fs_types[0])
        report(d, "filesystem", RL_CHECK_OK, "local (type 0x%x)", (unsigned)sf.f_type);
    else if (fs_types[i].network)
        report(d, "filesystem", RL_CHECK_WARN,
               "%s: WAL needs shared memory between processes, which does not work there; "
               "keep the database on a local disk", fs_types[i].name);
    else
        report(d, "filesystem", RL_CHECK_OK, "local (%s)", fs_types[i].name);
}

static int sq_doctor(rl_store *base, rl_check_fn fn, void *ctx)
{
    sq_store *s = (sq_store *)base;
    doctor_ctx d;
    d.fn = fn;
    d.ctx = ctx;
    d.stop = 0;
    doctor_pragmas(s, &d);
    doctor_schema(s, &d);
    doctor_files(s, &d);
    base->err[0] = 0; /* what failed is in the reports, not an error of the call */
    return d.stop;
}

int rl_store_sqlite_open(rl_store **out, const char *path, const rl_store_config *c, char *err)
{
    static const rl_store_ops ops = {
        "sqlite",       sq_close,      sq_begin,         sq_commit,        sq_rollback,
        sq_row_get,     sq_row_put,    sq_row_delete,    sq_policy_version,
        sq_policy_get,  sq_policy_put, sq_tier_put,      sq_tier_delete,
        sq_keys_list,   sq_totals,     sq_lease_put,     sq_lease_get,     sq_lease_delete,
        sq_leases_each, sq_keys_page,  sq_state_clear,   sq_lease_restore, sq_doctor,
        NULL,           NULL,          sq_group_join,    sq_group_take,    sq_group_end,
    };
    sq_store *s;
    char *name;
    int rc, flags, v = 0, held = 0;
    int64_t waited;
    struct stat dbst;
    uint64_t old_domain = 0;

    *out = NULL;
    if (!(s = calloc(1, sizeof *s)))
        return rl_seterr(err, RL_ENOMEM, "out of memory");
    *out = &s->base;
    s->base.ops = &ops;
    s->base.err = err;
    s->busy_timeout_ms = c->busy_timeout_ms;
    s->durability = c->durability;
    if (strlen(path) > 4096) {
        rc = rl_seterr(err, RL_EINVAL, "database path too long");
        goto out;
    }
    s->readonly = (c->flags & RL_OPEN_READONLY) || (access(path, F_OK) == 0 && access(path, W_OK) != 0);
    s->file_mode = c->file_mode;
    s->shared_group = (c->flags & RL_OPEN_SHARED_GROUP) != 0;
    if ((rc = check_files(s, path, 0, &dbst)) != RL_OK) /* and creates a writer's file */
        goto out;
    if (!s->readonly && c->busy_strategy == RL_BUSY_LOCK) {
        if ((rc = rl_lock_open(&s->lock, path, c->file_mode,
                               (c->flags & RL_OPEN_SHARED_GROUP) != 0, &old_domain, err)) !=
            RL_OK)
            goto out;
        /* Opening, WAL switch and migration run under the lock, one process
         * at a time, so two processes creating a file at once both succeed. */
        if (s->lock) {
            if ((rc = rl_lock_acquire(s->lock, c->busy_timeout_ms, &waited, err)) != RL_OK)
                goto out;
            held = 1;
        }
    }
    /* NOFOLLOW: a link swapped in after check_files is refused by SQLite
     * too, before it reads or writes through it or creates -wal and -shm
     * beside its target. */
    flags = (s->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX |
            SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_NOFOLLOW;
    if (!(name = open_name(path))) {
        rc = rl_seterr(err, RL_ENOMEM, "out of memory");
        goto out;
    }
    rc = sqlite3_open_v2(name, &s->db, flags, NULL);
    free(name);
    if (rc == SQLITE_CANTOPEN_SYMLINK) {
        rc = rl_fileperm_check_path(path, s->file_mode, s->shared_group, err);
        if (rc == RL_OK) /* a link that went again: the open is still refused */
            rc = rl_seterr(err, RL_EPERM, "%s: was a symbolic link while it was being opened",
                           path);
        goto out;
    }
    if (rc != SQLITE_OK) {
        rc = sq_fail(s, rc, path);
        goto out;
    }
    /* Before any statement: a PRAGMA run without it fails with "database is
     * locked" while another process holds the lock. */
    sqlite3_busy_timeout(s->db, c->busy_timeout_ms);
    if ((rc = configure(s, c)) != RL_OK)
        goto out;
    if (s->readonly) {
        if ((rc = user_version(s, &v)) != RL_OK)
            goto out;
        if (v > (int)rl_schema_count)
            rc = rl_seterr(err, RL_EVERSION, "database schema version %d is newer than this "
                           "library's %zu: upgrade rl", v, rl_schema_count);
        else if (v < (int)rl_schema_count)
            rc = rl_seterr(err, v == 0 ? RL_ECORRUPT : RL_EREADONLY,
                           v == 0 ? "not an rl database"
                                  : "database schema is old and it is read-only: open it once "
                                    "with write access to upgrade");
        else
            rc = check_objects(s, v);
        if (rc != RL_OK)
            goto out;
    } else if ((rc = migrate(s)) != RL_OK) {
        goto out;
    }
    if ((rc = sqlite3_create_function(s->db, "rl_glob", 2,
                                      SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY,
                                      NULL, glob_fn, NULL, NULL)) != SQLITE_OK) {
        rc = sq_fail(s, rc, "register rl_glob");
        goto out;
    }
    if ((rc = check_files(s, path, 1, &dbst)) != RL_OK)
        goto out;
    rc = RL_OK;
    if (s->lock)
        rl_lock_on_recover(s->lock, sq_resolve, s);

out:
    if (held)
        rl_lock_release(s->lock);
    return rc;
}
