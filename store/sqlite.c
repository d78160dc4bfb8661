/*
 * sqlite.c - the SQLite store: one database file in WAL mode shared by every
 * process on the machine. This file opens it (files and permissions,
 * connection settings, schema migrations and checks), keeps the statement
 * cache and fills rl_store_ops; the other sqlite_*.c files implement the
 * operations, by concern (sqlite.h lists them).
 *
 * Guarantees:
 *   - every read-modify-write runs in BEGIN IMMEDIATE (never a read upgraded
 *     to a write, which fails with SQLITE_BUSY_SNAPSHOT), queued behind the
 *     process-shared lock of lock.c unless RL_BUSY_SQLITE is chosen;
 *   - statements are prepared once per connection (lazily, persistent) and
 *     reused; every value is bound, never pasted into SQL text;
 *   - opening a database that is set up (WAL mode, schema up to date) only
 *     reads: one read transaction finds the journal mode and the schema
 *     version and checks the schema, with neither rl's lock nor SQLite's
 *     write lock, so a process that holds the write lock for long does not
 *     make rl_open fail; in WAL mode no writer blocks that read;
 *   - a new file, a file not in WAL mode or an older schema is set up under
 *     rl's lock, read again once the lock is held (another process may have
 *     set it up meanwhile), switched to WAL only if that read still finds it
 *     in another mode (PRAGMA journal_mode = WAL is never issued on a WAL
 *     file) and migrated only if still old; all of it, the lock's wait and
 *     SQLite's, ends within busy_timeout_ms, and a switch that finds the
 *     database locked is tried again until then; so processes that open a
 *     new file at the same moment all succeed, and a file is switched and
 *     migrated once;
 *   - a newer schema, another application's database or unknown schema
 *     objects are refused, whether the lock was needed or not;
 *   - the connection is hardened: defensive mode, untrusted schema, triggers
 *     and views disabled (rl uses neither);
 *   - errors come back as distinct codes: busy, read-only, full, corrupt,
 *     other I/O.
 */
#include "fileperm.h"
#include "parse.h"
#include "sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- statements ------------------------------------------------------- */

#define LIST_SQL(order)                                                                     \
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
    /* gmark: only a group-commit leader sets it (see rl_store_sqlite_resolve) */
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
    /* leases (schema/006): tombstones (an empty body) are seen by no reader */
    [S_LEASE_INS] = "INSERT INTO rl_lease_rows (key, id, created, expires, pid, pstart, body)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_LEASE_GET] = "SELECT id, key, created, expires, pid, pstart, body FROM rl_lease_rows"
                    " WHERE key = ?1 AND id = ?2 AND length(body) > 0",
    [S_LEASE_DEL] = "DELETE FROM rl_lease_rows WHERE key = ?1 AND id = ?2",
    [S_LEASE_TOMB] = "UPDATE rl_lease_rows SET created = 0, expires = 0, pid = 0, pstart = 0,"
                     " body = x'' WHERE key = ?1 AND id = ?2",
    [S_LEASE_LAST] = "SELECT id, length(body) = 0 FROM rl_lease_rows WHERE key = ?1"
                     " ORDER BY id DESC LIMIT 1",
    [S_LEASE_OWNER] = "SELECT lo, hi, key FROM rl_lease_ids WHERE lo <= ?1 ORDER BY lo DESC"
                      " LIMIT 1",
    [S_LEASE_IDS_INS] = "INSERT OR REPLACE INTO rl_lease_ids (lo, hi, key) VALUES (?1, ?2, ?3)",
    /* a key's tombstone, when it is the key's only row (rl_store_sqlite_lease_forget) */
    [S_LEASE_FORGET] = "DELETE FROM rl_lease_rows WHERE key = ?1 AND id = ?2 AND length(body) = 0"
                       " AND NOT EXISTS (SELECT 1 FROM rl_lease_rows WHERE key = ?1 AND id < ?2)",
    [S_LEASE_IDS_DEL] = "DELETE FROM rl_lease_ids WHERE key = ?1 AND lo = ?2",
    [S_LEASES_KEY] = "SELECT id, key, created, expires, pid, pstart, body FROM rl_lease_rows"
                     " WHERE key = ?1 AND length(body) > 0 ORDER BY id",
    /* oldest first: ids grow within a key, not across keys */
    [S_LEASES_ALL] = "SELECT id, key, created, expires, pid, pstart, body FROM rl_lease_rows"
                     " WHERE length(body) > 0 ORDER BY created, id",
    [S_PAGE] = "SELECT key, tier, state, allowed, refused, units, first_seen, last_seen"
               " FROM rl_keys WHERE key > ?1 AND (?2 IS NULL OR rl_glob(?2, key))"
               " ORDER BY key LIMIT ?3",
    [S_KEYS_CLEAR] = "DELETE FROM rl_keys",
    [S_LEASES_CLEAR] = "DELETE FROM rl_lease_rows",
    [S_LEASE_IDS_CLEAR] = "DELETE FROM rl_lease_ids",
    [S_P_JOURNAL] = "PRAGMA journal_mode",
    [S_P_SYNC] = "PRAGMA synchronous",
    [S_P_BUSY] = "PRAGMA busy_timeout",
    [S_P_VERSION] = "PRAGMA user_version",
    [S_P_CHECK] = "PRAGMA quick_check",
    [S_GROUP_MARK] = "SELECT gmark FROM rl_keys WHERE key = ?1",
    [S_SET_GET] = "SELECT body FROM rl_limit_sets WHERE fp = ?1",
    [S_SET_INS] = "INSERT OR IGNORE INTO rl_limit_sets (fp, body) VALUES (?1, ?2)",
};

/* ---- the schema --------------------------------------------------------- */

/* What the migrations (the .sql files of schema/) create, and the version that
 * added each object and column (and dropped an object: "until", the last
 * version that has it, 0 for none): at version v a database holds exactly
 * the objects and columns "since" v or earlier, less those dropped. Anything else in sqlite_schema
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
    int since, until;
    const sq_col *cols; /* a table's columns in order, ending with a NULL name;
                         * an index's, by name */
} sq_obj;

static const sq_col cols_meta[] = {
    { "name", "TEXT", 1, 1 },
    { "value", "ANY", 0, 1 },
    { NULL, NULL, 0, 0 },
};
static const sq_col cols_keys[] = {
    { "key", "TEXT", 1, 1 },           { "tier", "TEXT", 0, 1 },
    { "state", "BLOB", 0, 1 },         { "allowed", "INTEGER", 0, 1 },
    { "refused", "INTEGER", 0, 1 },    { "units", "INTEGER", 0, 1 },
    { "first_seen", "INTEGER", 0, 1 }, { "last_seen", "INTEGER", 0, 1 },
    { "gmark", "INTEGER", 0, 4 },      { NULL, NULL, 0, 0 },
};
static const sq_col cols_tiers[] = {
    { "name", "TEXT", 1, 1 },
    { "unlimited", "INTEGER", 0, 1 },
    { NULL, NULL, 0, 0 },
};
static const sq_col cols_limits[] = {
    { "tier", "TEXT", 1, 1 },     { "pos", "INTEGER", 2, 1 },   { "name", "TEXT", 0, 1 },
    { "resource", "TEXT", 0, 1 }, { "count", "INTEGER", 0, 1 }, { "period_ns", "INTEGER", 0, 1 },
    { "burst", "INTEGER", 0, 1 }, { "kind", "INTEGER", 0, 1 },  { NULL, NULL, 0, 0 },
};
static const sq_col cols_rules[] = {
    { "pos", "INTEGER", 1, 2 },
    { "match", "TEXT", 0, 2 },
    { "tier", "TEXT", 0, 2 },
    { NULL, NULL, 0, 0 },
};
static const sq_col cols_leases[] = {
    { "id", "INTEGER", 1, 3 },      { "key", "TEXT", 0, 3 },    { "created", "INTEGER", 0, 3 },
    { "expires", "INTEGER", 0, 3 }, { "pid", "INTEGER", 0, 3 }, { "pstart", "INTEGER", 0, 3 },
    { "body", "BLOB", 0, 3 },       { NULL, NULL, 0, 0 },
};
static const sq_col cols_sets[] = {
    { "fp", "INTEGER", 1, 5 },
    { "body", "BLOB", 0, 5 },
    { NULL, NULL, 0, 0 },
};
static const sq_col cols_leases_key[] = { { "key", NULL, 0, 3 }, { NULL, NULL, 0, 0 } };
static const sq_col cols_lease_rows[] = {
    { "key", "TEXT", 1, 6 },        { "id", "INTEGER", 2, 6 },  { "created", "INTEGER", 0, 6 },
    { "expires", "INTEGER", 0, 6 }, { "pid", "INTEGER", 0, 6 }, { "pstart", "INTEGER", 0, 6 },
    { "body", "BLOB", 0, 6 },       { NULL, NULL, 0, 0 },
};
static const sq_col cols_lease_ids[] = {
    { "lo", "INTEGER", 1, 6 },
    { "hi", "INTEGER", 0, 6 },
    { "key", "TEXT", 0, 6 },
    { NULL, NULL, 0, 0 },
};

static const sq_obj known_objects[] = {
    { "table", "rl_meta", "rl_meta", 1, 0, cols_meta },
    { "table", "rl_keys", "rl_keys", 1, 0, cols_keys },
    { "table", "rl_tiers", "rl_tiers", 1, 0, cols_tiers },
    { "table", "rl_limits", "rl_limits", 1, 0, cols_limits },
    { "table", "rl_rules", "rl_rules", 2, 0, cols_rules },
    { "table", "rl_leases", "rl_leases", 3, 5, cols_leases },
    { "index", "rl_leases_key", "rl_leases", 3, 5, cols_leases_key },
    { "table", "rl_limit_sets", "rl_limit_sets", 5, 0, cols_sets },
    { "table", "rl_lease_rows", "rl_lease_rows", 6, 0, cols_lease_rows },
    { "table", "rl_lease_ids", "rl_lease_ids", 6, 0, cols_lease_ids },
    { NULL, NULL, NULL, 0, 0, NULL },
};

/* ---- the connection ----------------------------------------------------- */

int rl_store_sqlite_fail(sq_store *s, int rc, const char *what)
{
    int code;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        code = RL_EBUSY;
        break;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        code = RL_EREADONLY;
        break;
    case SQLITE_FULL:
        code = RL_EFULL;
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_SCHEMA:
    case SQLITE_FORMAT:
        code = RL_ECORRUPT;
        break;
    case SQLITE_NOMEM:
        code = RL_ENOMEM;
        break;
    default:
        code = RL_ESTORE;
        break;
    }
    return rl_seterr(s->base.err, code, "%s: %s", what,
                     s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

int rl_store_sqlite_stmt(sq_store *s, int i, sqlite3_stmt **out)
{
    int rc;
    if (!s->st[i]) {
        rc = sqlite3_prepare_v3(s->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (rc != SQLITE_OK)
            return rl_store_sqlite_fail(s, rc, "prepare");
    }
    *out = s->st[i];
    return RL_OK;
}

/* Runs a statement that returns no rows. */
int rl_store_sqlite_run(sq_store *s, int i, const char *what)
{
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, i, &q);
    if (rc != RL_OK)
        return rc;
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? RL_OK : rl_store_sqlite_fail(s, rc, what);
}

static int exec(sq_store *s, const char *sql, const char *what)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? RL_OK : rl_store_sqlite_fail(s, rc, what);
}

void rl_store_sqlite_text_col(sqlite3_stmt *q, int col, char *buf, size_t len)
{
    const unsigned char *t = sqlite3_column_text(q, col);
    snprintf(buf, len, "%s", t ? (const char *)t : "");
}

/* rl_glob(pattern, key), the listings' match (rl_glob_match), registered at
 * open. */
static void glob_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const unsigned char *p = sqlite3_value_text(argv[0]), *k = sqlite3_value_text(argv[1]);
    (void)argc;
    sqlite3_result_int(ctx, p && k && rl_glob_match((const char *)p, (const char *)k));
}

/* ---- opening ------------------------------------------------------------ */

static void sq_close(rl_store *base)
{
    sq_store *s = (sq_store *)base;
    int i;
    if (!s)
        return;
    if (s->in_txn || s->locked)
        rl_store_sqlite_rollback(base);
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
        return rl_store_sqlite_fail(s, rc, "read schema");
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
            rc = rl_seterr(s->base.err, RL_ECORRUPT, "%s %s: column %s is not rl's (tampered?)",
                           o->type, o->name,
                           c->name ? c->name
                           : name  ? name
                                   : "?");
            break;
        }
        c++;
    }
    if (rc == RL_OK && step != SQLITE_DONE)
        rc = rl_store_sqlite_fail(s, step, "read schema");
    while (rc == RL_OK && c->name && c->since > v)
        c++;
    if (rc == RL_OK && c->name)
        rc = rl_seterr(s->base.err, RL_ECORRUPT, "%s %s: column %s missing (tampered?)", o->type,
                       o->name, c->name);
    sqlite3_finalize(q);
    return rc;
}

/* Whether version v of the migrations has object o. */
static int obj_in(const sq_obj *o, int v)
{
    return o->since <= v && (o->until == 0 || v <= o->until);
}

/* Whether the schema is exactly what version v of the migrations creates
 * (known_objects). SQLite's own tables and indexes (sqlite_sequence,
 * sqlite_stat1, sqlite_autoindex_*) are passed over by an exact,
 * case-sensitive prefix: LIKE would take '_' for any character and ignore
 * case, passing over "sqliteXevil" and "SQLITE1secret" too. */
int rl_store_sqlite_check_objects(sq_store *s, int v)
{
    sqlite3_stmt *q = NULL;
    int rc, step, i, seen[sizeof known_objects / sizeof known_objects[0]] = { 0 };
    rc = sqlite3_prepare_v2(s->db,
                            "SELECT type, name, tbl_name, rootpage FROM sqlite_schema WHERE NOT"
                            " (type IN ('table', 'index') AND substr(name, 1, 7) = 'sqlite_')",
                            -1, &q, NULL);
    if (rc != SQLITE_OK)
        return rl_store_sqlite_fail(s, rc, "read schema");
    rc = RL_OK;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(q, 0);
        const char *name = (const char *)sqlite3_column_text(q, 1);
        const char *table = (const char *)sqlite3_column_text(q, 2);
        for (i = 0; known_objects[i].name; i++)
            if (obj_in(&known_objects[i], v) && type && name && table &&
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
                           known_objects[i].name ? "virtual table"
                           : type                ? type
                                                 : "object",
                           shown);
            break;
        }
        seen[i] = 1;
    }
    if (rc == RL_OK && step != SQLITE_DONE)
        rc = rl_store_sqlite_fail(s, step, "read schema");
    sqlite3_finalize(q);
    for (i = 0; rc == RL_OK && known_objects[i].name; i++) {
        if (!obj_in(&known_objects[i], v))
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
    return rc == SQLITE_OK ? RL_OK : rl_store_sqlite_fail(s, rc, "read schema version");
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
    return rc == SQLITE_OK ? RL_OK : rl_store_sqlite_fail(s, rc, "read schema");
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
                       "database schema version %d is newer than this library's %zu: upgrade rl", v,
                       rl_schema_count);
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
    if (v > 0 && v < (int)rl_schema_count && (rc = rl_store_sqlite_check_objects(s, v)) != RL_OK)
        goto out;
    for (i = (size_t)v; i < rl_schema_count; i++) {
        if ((rc = exec(s, rl_schema_migrations[i], "migration")) != RL_OK)
            goto out;
        snprintf(sql, sizeof sql, "PRAGMA user_version = %zu", i + 1);
        if ((rc = exec(s, sql, "migration")) != RL_OK)
            goto out;
    }
    if ((rc = rl_store_sqlite_check_objects(s, (int)rl_schema_count)) != RL_OK)
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
    rc = s->readonly
             ? rl_fileperm_check_fd_ro(fd, path, s->file_mode, s->shared_group, -1, s->base.err)
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
        if ((rc = rl_fileperm_check_path_ro(side, s->file_mode, s->shared_group, (long)st.st_uid,
                                            s->base.err)) != RL_OK)
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

/* The connection's settings. None of them takes a lock: the switch to WAL
 * mode, which does, is setup()'s, and only for a file not in WAL mode. */
static int configure(sq_store *s, const rl_store_config *c)
{
    int ok;

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
    /* Debian's build makes WAL default to synchronous=FULL: say it explicitly.
     * A bounded journal keeps the WAL file from staying large after a burst. */
    return exec(s,
                c->durability == RL_DURABILITY_FULL
                    ? "PRAGMA synchronous = FULL; PRAGMA journal_size_limit = 67108864"
                    : "PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = 67108864",
                "configure");
}

/* ---- opening: reading the file, and setting it up under the lock --------- */

/* What one read of the file found. */
typedef struct sq_file {
    int v;   /* PRAGMA user_version: the schema's version, 0 for a new file */
    int wal; /* SQLite uses the file in WAL mode */
} sq_file;

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* What is left of the open's busy timeout, which ends at deadline
 * (mono_ms), for SQLite's own waits: at least 1 ms, so that a wait begun
 * in time still tries once, unless the caller asked for no wait at all. */
static int left_ms(const sq_store *s, int64_t deadline)
{
    int64_t left = deadline - mono_ms();
    if (s->busy_timeout_ms == 0)
        return 0;
    return left > 1 ? (int)left : 1;
}

/* Reads the file in one read transaction: the schema version, the journal
 * mode and, against that version, the schema. Starting a read transaction
 * makes SQLite look at the file afresh (it opens the WAL when it finds one,
 * so a file another process switched to WAL since this connection last
 * looked is seen in WAL mode), and it takes no write lock: in WAL mode no
 * writer blocks it, in another mode only a commit in progress does, for
 * the busy timeout at most. RL_EVERSION for a newer schema, RL_ECORRUPT for
 * a file that is not rl's; an older schema is the caller's to judge. */
static int probe(sq_store *s, sq_file *f)
{
    sqlite3_stmt *q = NULL;
    const unsigned char *mode;
    int rc, ntables = 0;
    f->v = 0;
    f->wal = 0;
    if ((rc = exec(s, "BEGIN", "read schema")) != RL_OK)
        return rc;
    /* the first read starts the transaction: the journal mode is asked after it */
    if ((rc = user_version(s, &f->v)) != RL_OK)
        goto out;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        mode = sqlite3_column_text(q, 0);
        f->wal = mode && strcmp((const char *)mode, "wal") == 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_OK) {
        rc = rl_store_sqlite_fail(s, rc, "read journal mode");
        goto out;
    }
    if (f->v > (int)rl_schema_count)
        rc = rl_seterr(s->base.err, RL_EVERSION,
                       "database schema version %d is newer than this library's %zu: upgrade rl",
                       f->v, rl_schema_count);
    else if (f->v == 0 && !s->readonly && (rc = count_tables(s, &ntables)) == RL_OK && ntables > 0)
        rc = rl_seterr(s->base.err, RL_ECORRUPT,
                       "not an rl database: it has tables but no rl schema version");
    else if (f->v > 0 && (f->v == (int)rl_schema_count || !s->readonly))
        rc = rl_store_sqlite_check_objects(s, f->v);
out:
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); /* it read: nothing to keep */
    return rc;
}

/* One attempt to switch the file to WAL mode, which takes SQLite's write
 * lock and, to commit, the file to itself. RL_EBUSY when another
 * connection stood in the way: SQLite gives up at once when another holds
 * the write lock (the switch reads first, and a read that turns into a
 * write does not wait), and after the busy timeout when others read. */
static int switch_wal(sq_store *s)
{
    sqlite3_stmt *q = NULL;
    const unsigned char *mode;
    int rc, wal = 0;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        mode = sqlite3_column_text(q, 0);
        wal = mode && strcmp((const char *)mode, "wal") == 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    if (!sqlite3_get_autocommit(s->db)) /* a failed switch leaves nothing open */
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return rl_store_sqlite_fail(s, rc, "set WAL mode");
    return wal ? RL_OK
               : rl_seterr(s->base.err, RL_ESTORE, "could not switch the database to WAL mode");
}

/* Sets the file up, holding rl's lock (when the store has one): reads it
 * again first, since another process may have switched or migrated it
 * after this one's unlocked read, then switches it to WAL mode if it still
 * is not, and migrates it if it is still old. SQLite's waits end at
 * deadline; a switch that finds the database locked is tried again, after
 * a nap and a new read, until then. */
static int setup(sq_store *s, int64_t deadline)
{
    struct timespec ts;
    sq_file f;
    int64_t left;
    int rc, nap = 1;
    for (;;) {
        sqlite3_busy_timeout(s->db, left_ms(s, deadline));
        if ((rc = probe(s, &f)) != RL_OK || f.wal)
            break;
        RL_LOCK_HOOK(RL_STEP_OPEN_SWITCH);
        if ((rc = switch_wal(s)) != RL_EBUSY)
            break;
        if (mono_ms() >= deadline) {
            rc = rl_seterr(s->base.err, RL_EBUSY,
                           "switch to WAL mode: the database stayed locked for over %d ms",
                           s->busy_timeout_ms);
            break;
        }
        RL_LOCK_HOOK(RL_STEP_OPEN_BUSY);
        /* whoever holds it commits soon: a short nap, longer each time */
        left = deadline - mono_ms();
        if (nap > left)
            nap = left > 0 ? (int)left : 1;
        ts.tv_sec = 0;
        ts.tv_nsec = (long)nap * 1000000L;
        nanosleep(&ts, NULL);
        nap = nap < 16 ? nap * 2 : 16;
    }
    if (rc == RL_OK && f.v < (int)rl_schema_count) {
        RL_LOCK_HOOK(RL_STEP_OPEN_MIGRATE);
        sqlite3_busy_timeout(s->db, left_ms(s, deadline));
        rc = migrate(s); /* which reads the version again in its transaction */
    }
    sqlite3_busy_timeout(s->db, s->busy_timeout_ms);
    return rc;
}

/* Every slot but now (the local clock serves) and prefetch (one statement
 * reads a row: nothing to gain by reading ahead). */
static const rl_store_ops sq_ops = {
    .name = "sqlite",
    .close = sq_close,
    .begin = rl_store_sqlite_begin,
    .commit = rl_store_sqlite_commit,
    .rollback = rl_store_sqlite_rollback,
    .row_get = rl_store_sqlite_row_get,
    .row_put = rl_store_sqlite_row_put,
    .row_delete = rl_store_sqlite_row_delete,
    .policy_version = rl_store_sqlite_policy_version,
    .policy_get = rl_store_sqlite_policy_get,
    .policy_put = rl_store_sqlite_policy_put,
    .tier_put = rl_store_sqlite_tier_put,
    .tier_delete = rl_store_sqlite_tier_delete,
    .keys_list = rl_store_sqlite_keys_list,
    .totals = rl_store_sqlite_totals,
    .lease_put = rl_store_sqlite_lease_put,
    .lease_get = rl_store_sqlite_lease_get,
    .lease_delete = rl_store_sqlite_lease_delete,
    .leases_each = rl_store_sqlite_leases_each,
    .keys_page = rl_store_sqlite_keys_page,
    .state_clear = rl_store_sqlite_state_clear,
    .lease_restore = rl_store_sqlite_lease_restore,
    .doctor = rl_store_sqlite_doctor,
    .group_join = rl_store_sqlite_group_join,
    .group_take = rl_store_sqlite_group_take,
    .group_end = rl_store_sqlite_group_end,
    .slot_epoch = rl_store_sqlite_slot_epoch,
    .slot_wait = rl_store_sqlite_slot_wait,
    .slot_notify = rl_store_sqlite_slot_notify,
};

int rl_store_sqlite_open(rl_store **out, const char *path, const rl_store_config *c, char *err)
{
    sq_store *s;
    char *name;
    int rc, flags, held = 0;
    int64_t waited, deadline;
    struct stat dbst;
    sq_file f;
    uint64_t old_domain = 0;

    *out = NULL;
    if (!(s = calloc(1, sizeof *s)))
        return rl_seterr(err, RL_ENOMEM, "out of memory");
    *out = &s->base;
    s->base.ops = &sq_ops;
    s->base.err = err;
    s->busy_timeout_ms = c->busy_timeout_ms;
    s->durability = c->durability;
    if (strlen(path) > 4096) {
        rc = rl_seterr(err, RL_EINVAL, "database path too long");
        goto out;
    }
    s->readonly =
        (c->flags & RL_OPEN_READONLY) || (access(path, F_OK) == 0 && access(path, W_OK) != 0);
    s->file_mode = c->file_mode;
    s->shared_group = (c->flags & RL_OPEN_SHARED_GROUP) != 0;
    if ((rc = check_files(s, path, 0, &dbst)) != RL_OK) /* and creates a writer's file */
        goto out;
    /* Attaching to the lock file takes no write lock: only setup() needs
     * it. It waits only for a process building the file, or rebuilding a
     * damaged one (at most the busy timeout). */
    if (!s->readonly && c->busy_strategy == RL_BUSY_LOCK &&
        (rc = rl_lock_open(&s->lock, path, c->file_mode, (c->flags & RL_OPEN_SHARED_GROUP) != 0,
                           c->busy_timeout_ms, &old_domain, err)) != RL_OK)
        goto out;
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
            rc =
                rl_seterr(err, RL_EPERM, "%s: was a symbolic link while it was being opened", path);
        goto out;
    }
    if (rc != SQLITE_OK) {
        rc = rl_store_sqlite_fail(s, rc, path);
        goto out;
    }
    /* Before any statement: a PRAGMA run without it fails with "database is
     * locked" while another process holds the lock. */
    sqlite3_busy_timeout(s->db, c->busy_timeout_ms);
    if ((rc = configure(s, c)) != RL_OK)
        goto out;
    /* Every wait of the open (SQLite's and the lock's) ends here. */
    deadline = mono_ms() + c->busy_timeout_ms;
    if ((rc = probe(s, &f)) != RL_OK)
        goto out;
    RL_LOCK_HOOK(RL_STEP_OPEN_READ);
    if (s->readonly) {
        if (f.v < (int)rl_schema_count) {
            rc = rl_seterr(err, f.v == 0 ? RL_ECORRUPT : RL_EREADONLY,
                           f.v == 0 ? "not an rl database"
                                    : "database schema is old and it is read-only: open it once "
                                      "with write access to upgrade");
            goto out;
        }
    } else if (!f.wal || f.v < (int)rl_schema_count) {
        /* A new file, a file not in WAL mode or an older schema: set up
         * under the lock, one process at a time, so two processes opening
         * a new file at once both succeed. A file that is set up never
         * comes here, so a long writer does not make opening it fail. */
        if (s->lock) {
            int64_t left = deadline - mono_ms();
            rc = rl_lock_acquire(s->lock, left > 0 ? (int)left : 0, &waited, err);
            if (rc == RL_EBUSY)
                rc = rl_seterr(err, RL_EBUSY,
                               "the database needs setting up (a new file, an older schema or "
                               "not in WAL mode) and another process held the write lock for "
                               "over %d ms",
                               c->busy_timeout_ms);
            if (rc != RL_OK)
                goto out;
            held = 1;
        }
        RL_LOCK_HOOK(RL_STEP_OPEN_LOCKED);
        if ((rc = setup(s, deadline)) != RL_OK)
            goto out;
    }
    if ((rc = sqlite3_create_function(s->db, "rl_glob", 2,
                                      SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, NULL,
                                      glob_fn, NULL, NULL)) != SQLITE_OK) {
        rc = rl_store_sqlite_fail(s, rc, "register rl_glob");
        goto out;
    }
    if ((rc = check_files(s, path, 1, &dbst)) != RL_OK)
        goto out;
    rc = RL_OK;
    if (s->lock)
        rl_lock_on_recover(s->lock, rl_store_sqlite_resolve, s);

out:
    if (held)
        rl_lock_release(s->lock);
    return rc;
}
