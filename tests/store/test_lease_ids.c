/*
 * test_lease_ids.c - the SQLite store's leases by key (schema 6,
 * schema/006_lease_rows.sql): a lease id is never issued twice, so that a
 * stale lease never settles a new one, whether its key's last lease ended,
 * the key was reset, the database was reopened or an export imported; the
 * tombstone that keeps a key's highest id is seen by no reader; a file of
 * schema 3-5 keeps its open leases, under their ids, and draws new ids
 * above every id it ever issued; the file says version 6, which older
 * libraries refuse (RL_EVERSION); a schema 5 file with a tampered lease
 * index is refused before it is migrated; a key deleted takes its ids'
 * bookkeeping with it; and a pair writes 4 WAL pages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "common/old_db.h"
#include "rl.h"
#include "rl_admin.h"

static const rl_limit limits[] = {
    RL_LIMIT("rps", NULL, 1000000, RL_SECOND, 1000000),
    RL_CONCURRENT("streams", "streams", 100),
};
static const rl_cost est[] = { { "requests", 1 }, { "streams", 1 } };

typedef struct fx {
    char dir[64];
    char path[96];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/rl_test_lease_ids.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/rl.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static rl *open_db(const char *path)
{
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    o.default_limits = limits;
    o.n_default_limits = 2;
    if (rl_open(&r, path, &o) != RL_OK)
        fail_msg("open: %s", rl_errmsg(r));
    return r;
}

static void sql(const char *path, const char *text)
{
    sqlite3 *db;
    char *err = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, text, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", text, err);
    sqlite3_close(db);
}

static int64_t sql_int(const char *path, const char *text)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    int64_t v;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, text, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

static int64_t begin(rl *r, const char *key)
{
    rl_result res;
    rl_lease l;
    assert_int_equal(rl_lease_begin(r, key, est, 2, 3600 * RL_SECOND, &l, &res), RL_OK);
    assert_true(res.allowed);
    assert_true(l.id > 0);
    return l.id;
}

static int settle(rl *r, int64_t id)
{
    rl_lease l = { id, 0 };
    rl_cost used = { "requests", 1 };
    return rl_lease_settle(r, &l, &used, 1);
}

typedef struct seen {
    size_t n;
    int64_t id[16];
    char key[16][16];
} seen;

static int see(void *ctx, const rl_lease_info *l)
{
    seen *s = ctx;
    if (s->n < 16) {
        s->id[s->n] = l->id;
        snprintf(s->key[s->n], sizeof s->key[0], "%.15s", l->key);
    }
    s->n++;
    return 0;
}

static size_t count_leases(rl *r, const char *key)
{
    seen s = { 0 };
    assert_int_equal(rl_leases_list(r, key, see, &s), RL_OK);
    return s.n;
}

static int64_t in_flight(rl *r, const char *key)
{
    rl_key_stats st;
    assert_int_equal(rl_stats(r, key, &st), RL_OK);
    return st.limits[1].in_flight;
}

/* A key's ids only grow, the last one included after it ended (and after
 * a reopen, and a reset of the key); a stale id settles nothing, on its own
 * key or another; no reader sees the tombstone. */
static void test_ids_never_reused(void **state)
{
    fx *f = *state;
    rl *r = open_db(f->path);
    int64_t a1, a2, a3, b1, a4;
    a1 = begin(r, "a");
    assert_int_equal(settle(r, a1), RL_OK);
    assert_int_equal(count_leases(r, "a"), 0);
    assert_int_equal(count_leases(r, NULL), 0);
    a2 = begin(r, "a");
    assert_true(a2 > a1);
    assert_int_equal(settle(r, a1), RL_ENOTFOUND); /* stale: the new lease is untouched */
    assert_int_equal(count_leases(r, "a"), 1);
    assert_int_equal(in_flight(r, "a"), 1);
    b1 = begin(r, "b");
    assert_true(b1 != a1 && b1 != a2);
    assert_int_equal(settle(r, a2), RL_OK);
    assert_int_equal(settle(r, a2), RL_ENOTFOUND);
    assert_int_equal(in_flight(r, "a"), 0);
    assert_int_equal(count_leases(r, "b"), 1);
    rl_close(r);
    /* a tombstone row holds a's highest id; no reader sees it */
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM rl_lease_rows WHERE key = 'a'"), 1);
    r = open_db(f->path);
    assert_int_equal(count_leases(r, NULL), 1);
    a3 = begin(r, "a");
    assert_true(a3 > a2);
    assert_int_equal(rl_lease_cancel(r, &(rl_lease){ a3, 0 }), RL_OK);
    assert_int_equal(rl_reset(r, "a"), RL_OK);
    a4 = begin(r, "a");
    assert_true(a4 > a3);
    assert_int_equal(settle(r, a3), RL_ENOTFOUND);
    assert_int_equal(settle(r, b1), RL_OK);
    assert_int_equal(settle(r, a4), RL_OK);
    rl_close(r);
}

/* A key with no row of leases left, or whose range is used up, draws a
 * new range: still above every id it had. Here the tombstone goes first,
 * as a damaged or edited file could lose it: the next id comes from a
 * range never drawn before; then the range runs out. */
static void test_new_range_above(void **state)
{
    fx *f = *state;
    rl *r = open_db(f->path);
    int64_t a1, a2, b1;
    a1 = begin(r, "a");
    b1 = begin(r, "b");
    assert_int_equal(settle(r, a1), RL_OK);
    rl_close(r);
    sql(f->path, "DELETE FROM rl_lease_rows WHERE key = 'a'");
    r = open_db(f->path);
    a2 = begin(r, "a");
    assert_true(a2 > a1 && a2 > b1);
    assert_int_equal(settle(r, a1), RL_ENOTFOUND);
    assert_int_equal(settle(r, a2), RL_OK);
    assert_int_equal(settle(r, b1), RL_OK);
    rl_close(r);
    /* a's range used up: its tombstone at the range's last id */
    sql(f->path, "UPDATE rl_lease_rows SET id = (SELECT hi FROM rl_lease_ids WHERE key = 'a'"
                 " ORDER BY lo DESC LIMIT 1) WHERE key = 'a'");
    r = open_db(f->path);
    a1 = begin(r, "a");
    assert_true(a1 > a2 && a1 > b1);
    assert_int_equal(a1 % (1 << 24), 0); /* the first of a new range */
    assert_int_equal(settle(r, a2), RL_ENOTFOUND);
    assert_int_equal(settle(r, a1), RL_OK);
    rl_close(r);
}

/* A key that is deleted (rl_reset of a key with no tier, rl_prune) takes
 * its tombstone and its range of ids with it, so that keys that come and
 * go leave nothing behind; not while a lease of it is still open (its id
 * must still find it). Its next lease draws a new range: still above every
 * id issued, and a stale id from the old range settles nothing. */
static void test_deleted_key_leaves_no_ids(void **state)
{
    fx *f = *state;
    rl *r = open_db(f->path);
    int64_t a1, a2, b1, c1, c2, n = 0;
    a1 = begin(r, "a");
    assert_int_equal(settle(r, a1), RL_OK); /* a: its tombstone alone */
    b1 = begin(r, "b");                     /* b: a lease open */
    c1 = begin(r, "c");
    c2 = begin(r, "c");
    assert_int_equal(settle(r, c2), RL_OK); /* c: a tombstone above an open lease */
    assert_int_equal(rl_reset(r, "a"), RL_OK);
    assert_int_equal(rl_reset(r, "b"), RL_OK);
    assert_int_equal(rl_reset(r, "c"), RL_OK);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM rl_lease_rows WHERE key = 'a'"), 0);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM rl_lease_ids WHERE key = 'a'"), 0);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM rl_lease_rows WHERE key = 'b'"), 1);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM rl_lease_ids WHERE key = 'b'"), 1);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM rl_lease_rows WHERE key = 'c'"), 2);
    assert_int_equal(settle(r, b1), RL_OK); /* open leases still settle */
    assert_int_equal(settle(r, c1), RL_OK);
    a2 = begin(r, "a");
    assert_true(a2 > a1 && a2 > b1 && a2 > c2);
    assert_int_equal(a2 % (1 << 24), 0); /* the first of a new range */
    assert_int_equal(settle(r, a1), RL_ENOTFOUND);
    assert_int_equal(settle(r, a2), RL_OK);
    /* every key idle and its leases ended: pruned, with all their ids */
    assert_int_equal(rl_prune(r, 0, 0, &n), RL_OK);
    assert_int_equal(n, 3);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM rl_keys"), 0);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM rl_lease_rows"), 0);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM rl_lease_ids"), 0);
    b1 = begin(r, "b");
    assert_true(b1 > a2);
    assert_int_equal(settle(r, a2), RL_ENOTFOUND);
    assert_int_equal(settle(r, b1), RL_OK);
    rl_close(r);
}

static int grow(void *ctx, const char *data, size_t len)
{
    char **buf = ctx;
    size_t have = *buf ? strlen(*buf) : 0;
    char *n = realloc(*buf, have + len + 1);
    if (!n)
        return -1;
    memcpy(n + have, data, len);
    n[have + len] = 0;
    *buf = n;
    return 0;
}

/* An import restores leases under their ids (a live holder may present
 * them); ids issued after it are above those and above every id issued
 * before it, which settle nothing any more. */
static void test_import_keeps_ids_unique(void **state)
{
    fx *f = *state;
    rl *r = open_db(f->path);
    char *doc = NULL;
    int64_t a1, a2, a3, b1;
    seen s = { 0 };
    a1 = begin(r, "a");
    assert_int_equal(rl_export(r, grow, &doc), RL_OK);
    assert_non_null(doc);
    a2 = begin(r, "a");
    b1 = begin(r, "b");
    assert_int_equal(rl_import(r, doc, strlen(doc)), RL_OK);
    free(doc);
    assert_int_equal(rl_leases_list(r, NULL, see, &s), RL_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.id[0], a1);
    assert_int_equal(settle(r, a2), RL_ENOTFOUND);
    assert_int_equal(settle(r, b1), RL_ENOTFOUND);
    a3 = begin(r, "a");
    assert_true(a3 > a2 && a3 > b1);
    assert_int_equal(settle(r, a1), RL_OK);
    assert_int_equal(settle(r, a3), RL_OK);
    assert_int_equal(in_flight(r, "a"), 0);
    rl_close(r);
}

/* A schema 3 file (here with AUTOINCREMENT's high mark past 2^24, as after
 * 40 million leases) keeps its open leases under their ids: listed,
 * holding their slots, settled by id; a new lease's id is above the high
 * mark, so no id the old file ever issued comes back. The file is at
 * version 6 after, which a library of 5 migrations refuses (RL_EVERSION,
 * test_sqlite's test_newer_schema). */
static void test_schema3_leases_migrated(void **state)
{
    fx *f = *state;
    rl *r = open_db(f->path);
    int64_t a1, a2, b1, a3;
    seen s = { 0 };
    a1 = begin(r, "a");
    a2 = begin(r, "a");
    b1 = begin(r, "b");
    assert_int_equal(settle(r, a2), RL_OK);
    rl_close(r);
    assert_int_equal(test_old_db(f->path,
                                 "DELETE FROM sqlite_sequence WHERE name = 'rl_leases';"
                                 "INSERT INTO sqlite_sequence VALUES ('rl_leases', 40000000);"
                                 "ALTER TABLE rl_keys DROP COLUMN gmark;"
                                 "PRAGMA user_version = 3"),
                     0);
    assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 3);
    assert_int_equal(sql_int(f->path, "SELECT seq FROM sqlite_sequence WHERE name = 'rl_leases'"),
                     40000000);
    r = open_db(f->path);
    assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 6);
    assert_int_equal(rl_leases_list(r, NULL, see, &s), RL_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.id[0], a1);
    assert_string_equal(s.key[0], "a");
    assert_int_equal(s.id[1], b1);
    assert_string_equal(s.key[1], "b");
    assert_int_equal(in_flight(r, "a"), 1);
    a3 = begin(r, "a");
    assert_true(a3 > 40000000);
    assert_int_equal(settle(r, a2), RL_ENOTFOUND);
    assert_int_equal(settle(r, a1), RL_OK);
    assert_int_equal(settle(r, b1), RL_OK);
    assert_int_equal(settle(r, a3), RL_OK);
    assert_int_equal(in_flight(r, "a"), 0);
    assert_int_equal(count_leases(r, NULL), 0);
    rl_close(r);
}

/* A schema 5 file is checked against schema 5 before it is migrated: its
 * lease index on another column is not rl's. */
static void test_schema5_index_checked(void **state)
{
    fx *f = *state;
    rl *r = open_db(f->path);
    rl_options o = RL_OPTIONS_INIT;
    rl_close(r);
    assert_int_equal(test_old_db(f->path, "CREATE TABLE rl_limit_sets (fp INTEGER PRIMARY KEY,"
                                          " body BLOB NOT NULL);"
                                          "DROP INDEX rl_leases_key;"
                                          "CREATE INDEX rl_leases_key ON rl_leases (pid);"
                                          "PRAGMA user_version = 5"),
                     0);
    r = NULL;
    assert_int_equal(rl_open(&r, f->path, &o), RL_ECORRUPT);
    assert_non_null(strstr(rl_errmsg(r), "index rl_leases_key: column key is not rl's"));
    rl_close(r);
    sql(f->path, "DROP INDEX rl_leases_key; CREATE INDEX rl_leases_key ON rl_leases (key)");
    r = open_db(f->path);
    assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 6);
    rl_close(r);
}

/* Damaged rows of rl_lease_ids or lease_ranges are refused, never read as
 * another key's or a range to draw from. */
static void test_damaged_ids_refused(void **state)
{
    fx *f = *state;
    rl *r = open_db(f->path);
    rl_result res;
    rl_lease l;
    int64_t a1 = begin(r, "a");
    rl_close(r);
    sql(f->path, "UPDATE rl_lease_ids SET hi = lo - 1");
    r = open_db(f->path);
    assert_int_equal(settle(r, a1), RL_ECORRUPT);
    rl_close(r);
    sql(f->path, "UPDATE rl_lease_ids SET hi = lo + 16777215;"
                 "UPDATE rl_meta SET value = 'x' WHERE name = 'lease_ranges';"
                 "DELETE FROM rl_lease_rows");
    r = open_db(f->path);
    assert_int_equal(rl_lease_begin(r, "c", est, 2, RL_SECOND, &l, &res), RL_ECORRUPT);
    rl_close(r);
}

/* What a pair writes: the key's row and one page of leases in each of its
 * two transactions (the seventh-page table of schema 3 is gone): 4 WAL
 * frames for the pair, against 1 for rl_allow. */
static void test_pair_pages(void **state)
{
    fx *f = *state;
    rl *r = open_db(f->path);
    rl_result res;
    struct stat a, b;
    char wal[128];
    int i;
    (void)begin(r, "warm");
    assert_int_equal(settle(r, begin(r, "k")), RL_OK);
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    assert_int_equal(stat(wal, &a), 0);
    for (i = 0; i < 10; i++)
        assert_int_equal(settle(r, begin(r, "k")), RL_OK);
    assert_int_equal(stat(wal, &b), 0);
    /* 4096-byte pages and 24-byte frame headers, no checkpoint in 40 */
    assert_int_equal((b.st_size - a.st_size) / (4096 + 24), 40);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
    assert_int_equal(stat(wal, &a), 0);
    assert_int_equal((a.st_size - b.st_size) / (4096 + 24), 1);
    rl_close(r);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ids_never_reused),          T(test_new_range_above),
        T(test_deleted_key_leaves_no_ids), T(test_import_keeps_ids_unique),
        T(test_schema3_leases_migrated),   T(test_schema5_index_checked),
        T(test_damaged_ids_refused),       T(test_pair_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
