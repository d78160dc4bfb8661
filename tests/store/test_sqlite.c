/*
 * test_sqlite.c - what the SQLite store promises about the file itself.
 *
 * New databases are private (0600, and the WAL and shm files follow) unless
 * asked to be group-shared; the file is in WAL mode with the schema version
 * recorded; files that are not rl databases (garbage, truncated, another
 * application's, a newer schema, tampered with) are refused with a distinct
 * code and nothing is run from them; a database the user cannot write opens
 * read-only: reading works, deciding fails clearly.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "common/old_db.h"
#include "lock.h"
#include "rl.h"
#include "store.h"

static const rl_limit limits[] = { RL_LIMIT("rps", NULL, 10, RL_SECOND, 10) };

typedef struct fx {
    char dir[64];
    char path[96];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/rl_test_sqlite.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/rl.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "chmod -R u+w '%s'; rm -rf '%s'", f->dir, f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static int open_db(const char *path, unsigned mode, rl **r)
{
    rl_options o = RL_OPTIONS_INIT;
    o.default_limits = limits;
    o.n_default_limits = 1;
    if (mode)
        o.file_mode = mode;
    return rl_open(r, path, &o);
}

static unsigned mode_of(const char *p)
{
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return st.st_mode & 0777;
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

static void test_new_file_private_and_wal(void **state)
{
    fx *f = *state;
    char p[128];
    rl *r = NULL;
    rl_result res;
    umask(022);
    assert_int_equal(open_db(f->path, 0, &r), RL_OK);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
    assert_int_equal(mode_of(f->path), 0600);
    snprintf(p, sizeof p, "%s-wal", f->path);
    assert_int_equal(mode_of(p), 0600);
    snprintf(p, sizeof p, "%s-shm", f->path);
    assert_int_equal(mode_of(p), 0600);
    snprintf(p, sizeof p, "%s-rlshm", f->path);
    assert_int_equal(mode_of(p), 0600);
    rl_close(r);
    {
        sqlite3 *db;
        sqlite3_stmt *q;
        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
        sqlite3_finalize(q);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_true(sqlite3_column_int(q, 0) >= 2);
        sqlite3_finalize(q);
        sqlite3_close(db);
    }
}

static void test_group_shared_mode(void **state)
{
    fx *f = *state;
    rl *r = NULL;
    umask(077); /* the option wins over a strict umask */
    assert_int_equal(open_db(f->path, 0660, &r), RL_OK);
    assert_int_equal(mode_of(f->path), 0660);
    {
        char p[128];
        rl_result res;
        assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
        snprintf(p, sizeof p, "%s-rlshm", f->path);
        assert_int_equal(mode_of(p), 0660);
        snprintf(p, sizeof p, "%s-wal", f->path);
        assert_int_equal(mode_of(p), 0660);
    }
    rl_close(r);
    umask(022);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    fclose(fp);
    assert_int_equal(chmod(path, 0600), 0); /* wider is refused first (test_fileperm) */
}

static void test_not_sqlite(void **state)
{
    fx *f = *state;
    rl *r = NULL;
    write_file(f->path, "this is not a database, just some text that is long enough......", 64);
    assert_int_equal(open_db(f->path, 0, &r), RL_ECORRUPT);
    assert_true(strlen(rl_errmsg(r)) > 0);
    rl_close(r);
}

static void test_truncated(void **state)
{
    fx *f = *state;
    rl *r = NULL;
    char buf[4096];
    FILE *fp;
    size_t n;
    assert_int_equal(open_db(f->path, 0, &r), RL_OK);
    rl_close(r);
    sql(f->path, "PRAGMA wal_checkpoint(TRUNCATE)");
    fp = fopen(f->path, "rb");
    n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_true(n >= 1024);
    unlink(f->path);
    write_file(f->path, buf, 700); /* half a page: the header survives */
    assert_int_equal(open_db(f->path, 0, &r), RL_ECORRUPT);
    rl_close(r);
}

static void test_other_application(void **state)
{
    fx *f = *state;
    rl *r = NULL;
    sql(f->path, "CREATE TABLE invoices(id INTEGER PRIMARY KEY, amount REAL)");
    assert_int_equal(chmod(f->path, 0600), 0); /* not 0644: that is refused first */
    assert_int_equal(open_db(f->path, 0, &r), RL_ECORRUPT);
    assert_non_null(strstr(rl_errmsg(r), "not an rl database"));
    rl_close(r);
}

static void test_newer_schema(void **state)
{
    fx *f = *state;
    rl *r = NULL;
    assert_int_equal(open_db(f->path, 0, &r), RL_OK);
    rl_close(r);
    sql(f->path, "PRAGMA user_version = 999");
    assert_int_equal(open_db(f->path, 0, &r), RL_EVERSION);
    assert_non_null(strstr(rl_errmsg(r), "999"));
    rl_close(r);
}

static void test_tampered_schema(void **state)
{
    fx *f = *state;
    rl *r = NULL;
    assert_int_equal(open_db(f->path, 0, &r), RL_OK);
    rl_close(r);
    /* a trigger that would wipe the policy on every decision */
    sql(f->path, "CREATE TRIGGER evil AFTER UPDATE ON rl_keys BEGIN DELETE FROM rl_tiers; END");
    assert_int_equal(open_db(f->path, 0, &r), RL_ECORRUPT);
    assert_non_null(strstr(rl_errmsg(r), "evil"));
    rl_close(r);
    sql(f->path, "DROP TRIGGER evil; CREATE VIEW v AS SELECT * FROM rl_keys");
    assert_int_equal(open_db(f->path, 0, &r), RL_ECORRUPT);
    rl_close(r);
}

/* Opens path as a writer and read-only: both refused with RL_ECORRUPT and
 * a message that says `says`. */
static void refused_as_corrupt(const char *path, const char *says)
{
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    int i;
    for (i = 0; i < 2; i++) {
        o.flags = i ? RL_OPEN_READONLY : 0;
        r = NULL;
        if (rl_open(&r, path, &o) != RL_ECORRUPT || !strstr(rl_errmsg(r), says))
            fail_msg("%s open, expecting '%s': %s", i ? "read-only" : "writer", says, rl_errmsg(r));
        rl_close(r);
    }
}

/* Issue 15 item 11: SQLite's own objects are told apart by an exact,
 * case-sensitive prefix. LIKE 'sqlite_%' took '_' for any character and
 * ignored case, so these were passed over as SQLite's. */
static void test_schema_names_exact(void **state)
{
    static const char *const plant[][3] = {
        { "CREATE TRIGGER sqliteXevil AFTER UPDATE ON rl_keys BEGIN DELETE FROM rl_tiers; END",
          "DROP TRIGGER sqliteXevil", "trigger 'sqliteXevil'" },
        { "CREATE VIEW sqlite1v AS SELECT * FROM rl_keys", "DROP VIEW sqlite1v",
          "view 'sqlite1v'" },
        { "CREATE TABLE SQLITEXsecret (x)", "DROP TABLE SQLITEXsecret", "table 'SQLITEXsecret'" },
    };
    fx *f = *state;
    rl *r = NULL;
    size_t i;
    assert_int_equal(open_db(f->path, 0, &r), RL_OK);
    rl_close(r);
    for (i = 0; i < sizeof plant / sizeof plant[0]; i++) {
        sql(f->path, plant[i][0]);
        refused_as_corrupt(f->path, plant[i][2]);
        sql(f->path, plant[i][1]);
        assert_int_equal(open_db(f->path, 0, &r), RL_OK);
        rl_close(r);
    }
    /* what SQLite makes of its own (ANALYZE) stays fine */
    sql(f->path, "ANALYZE");
    assert_int_equal(open_db(f->path, 0, &r), RL_OK);
    rl_close(r);
}

/* Issue 15 item 11: tables with rl's names but not rl's columns, and a
 * missing table, are RL_ECORRUPT when the file is opened, not an
 * RL_ESTORE "no such column" at the first statement that uses them. */
static void test_schema_columns(void **state)
{
    static const char *const tamper[][3] = {
        { "ALTER TABLE rl_keys ADD COLUMN extra INTEGER", "ALTER TABLE rl_keys DROP COLUMN extra",
          "table rl_keys: column extra is not rl's" },
        { "ALTER TABLE rl_tiers RENAME COLUMN unlimited TO unlim",
          "ALTER TABLE rl_tiers RENAME COLUMN unlim TO unlimited",
          "table rl_tiers: column unlimited is not rl's" },
        { "DROP TABLE rl_rules;"
          " CREATE TABLE rl_rules (pos INTEGER PRIMARY KEY, match BLOB, tier TEXT)",
          "DROP TABLE rl_rules;"
          " CREATE TABLE rl_rules (pos INTEGER PRIMARY KEY, match TEXT NOT NULL, tier TEXT NOT "
          "NULL)",
          "table rl_rules: column match is not rl's" },
        { "DROP TABLE rl_tiers; CREATE TABLE rl_tiers (name TEXT, unlimited INTEGER)",
          "DROP TABLE rl_tiers; CREATE TABLE rl_tiers (name TEXT PRIMARY KEY, unlimited INTEGER NOT"
          " NULL DEFAULT 0) WITHOUT ROWID; DELETE FROM rl_limits",
          "table rl_tiers: column name is not rl's" },
        { "DROP TABLE rl_lease_rows; CREATE TABLE rl_lease_rows (key TEXT NOT NULL, id INTEGER"
          " NOT NULL, created INTEGER NOT NULL, expires INTEGER NOT NULL, pid INTEGER NOT NULL,"
          " pstart INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (id, key)) WITHOUT ROWID",
          "DROP TABLE rl_lease_rows; CREATE TABLE rl_lease_rows (key TEXT NOT NULL, id INTEGER"
          " NOT NULL, created INTEGER NOT NULL, expires INTEGER NOT NULL, pid INTEGER NOT NULL,"
          " pstart INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (key, id)) WITHOUT ROWID",
          "table rl_lease_rows: column key is not rl's" },
        { "DROP TABLE rl_rules",
          "CREATE TABLE rl_rules (pos INTEGER PRIMARY KEY, match TEXT NOT"
          " NULL, tier TEXT NOT NULL)",
          "table rl_rules missing" },
    };
    fx *f = *state;
    rl *r = NULL;
    rl_result res;
    size_t i;
    assert_int_equal(open_db(f->path, 0, &r), RL_OK);
    rl_close(r);
    for (i = 0; i < sizeof tamper / sizeof tamper[0]; i++) {
        sql(f->path, tamper[i][0]);
        refused_as_corrupt(f->path, tamper[i][2]);
        sql(f->path, tamper[i][1]);
        if (open_db(f->path, 0, &r) != RL_OK || rl_allow(r, "k", 1, &res) != RL_OK)
            fail_msg("after '%s': %s", tamper[i][1], rl_errmsg(r));
        rl_close(r);
    }
}

/* The columns expected are those of the file's own schema version: a
 * version 3 file (before gmark) is upgraded, not refused; a version 3 file
 * that has gmark already is not one rl wrote. */
static void test_schema_columns_by_version(void **state)
{
    fx *f = *state;
    rl *r = NULL;
    rl_result res;
    assert_int_equal(open_db(f->path, 0, &r), RL_OK);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
    rl_close(r);
    assert_int_equal(test_old_db(f->path, "PRAGMA user_version = 3"), 0);
    assert_int_equal(open_db(f->path, 0, &r), RL_ECORRUPT);
    assert_non_null(strstr(rl_errmsg(r), "table rl_keys: column gmark is not rl's"));
    rl_close(r);
    sql(f->path, "ALTER TABLE rl_keys DROP COLUMN gmark");
    assert_int_equal(open_db(f->path, 0, &r), RL_OK); /* migrated to the latest */
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
    rl_close(r);
}

/* Issue 15 item 10: SQLite itself does not follow a link at the database
 * path (SQLITE_OPEN_NOFOLLOW). The path is checked before the open; a link
 * swapped in after that, here when the open attaches to the lock file
 * just before SQLite opens the file, is refused too, and nothing is read, written or
 * created through it. */
static const char *swap_path, *swap_target;

static void swap_hook(int step)
{
    if (step != RL_STEP_MEMBER || !swap_path)
        return;
    if (unlink(swap_path) != 0 || symlink(swap_target, swap_path) != 0)
        abort();
    swap_path = NULL;
}

static void test_link_swapped_in_before_open(void **state)
{
    static const char *const sides[] = { "-wal", "-shm" };
    fx *f = *state;
    char victim[128], side[160];
    struct stat st;
    rl *r = NULL;
    size_t i;
    int fd;
    snprintf(victim, sizeof victim, "%s/victim.txt", f->dir);
    assert_true((fd = open(victim, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0);
    close(fd);
    swap_path = f->path;
    swap_target = victim;
    rl__lock_hook = swap_hook;
    assert_int_equal(open_db(f->path, 0, &r), RL_EPERM);
    rl__lock_hook = NULL;
    assert_null(swap_path); /* the link was swapped in */
    assert_non_null(strstr(rl_errmsg(r), "symbolic link"));
    rl_close(r);
    assert_int_equal(stat(victim, &st), 0);
    assert_int_equal(st.st_size, 0);
    for (i = 0; i < 2; i++) {
        snprintf(side, sizeof side, "%s%s", victim, sides[i]);
        assert_int_equal(lstat(side, &st), -1);
        snprintf(side, sizeof side, "%s%s", f->path, sides[i]);
        assert_int_equal(lstat(side, &st), -1);
    }
}

/* The checks of a user who may read the database but not write it. */
static int read_only_checks(const char *path)
{
    rl *r = NULL;
    rl_result res;
    rl_key_stats st;
    rl_totals t;
    int ok = open_db(path, 0, &r) == RL_OK && rl_stats(r, "k", &st) == RL_OK && st.units == 3 &&
             rl_totals_get(r, &t) == RL_OK && t.keys == 1 &&
             rl_allow(r, "k", 1, &res) == RL_EREADONLY && strstr(rl_errmsg(r), "read-only") &&
             rl_reset(r, "k") == RL_EREADONLY;
    if (!ok)
        fprintf(stderr, "read-only: %s\n", rl_errmsg(r));
    rl_close(r);
    return ok;
}

static void test_read_only_file(void **state)
{
    fx *f = *state;
    rl *r = NULL;
    rl_result res;
    char cmd[256];
    pid_t pid;
    int status;
    assert_int_equal(open_db(f->path, 0, &r), RL_OK);
    assert_int_equal(rl_allow(r, "k", 3, &res), RL_OK);
    rl_close(r);
    if (geteuid() != 0) {
        snprintf(cmd, sizeof cmd, "chmod a-w '%s'/rl.db*", f->dir);
        assert_int_equal(system(cmd), 0);
        assert_true(read_only_checks(f->path));
        return;
    }
    /* root writes through any permission bits: check as nobody, who may
     * read the files but write neither them nor the directory */
    snprintf(cmd, sizeof cmd, "chmod 755 '%s' && chmod 644 '%s'/rl.db*", f->dir, f->dir);
    assert_int_equal(system(cmd), 0);
    pid = fork();
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(2);
        _exit(read_only_checks(f->path) ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_readonly_flag(void **state)
{
    fx *f = *state;
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    rl_result res;
    rl_key_stats st;
    assert_int_equal(open_db(f->path, 0, &r), RL_OK);
    assert_int_equal(rl_allow(r, "k", 3, &res), RL_OK);
    rl_close(r);
    o.flags = RL_OPEN_READONLY;
    o.default_limits = limits;
    o.n_default_limits = 1;
    assert_int_equal(rl_open(&r, f->path, &o), RL_OK);
    assert_int_equal(rl_stats(r, "k", &st), RL_OK);
    assert_int_equal(st.units, 3);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_EREADONLY);
    assert_false(res.allowed); /* fail closed by default */
    rl_close(r);
    o.fail_mode = RL_FAIL_OPEN;
    assert_int_equal(rl_open(&r, f->path, &o), RL_OK);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_EREADONLY);
    assert_true(res.allowed);
    assert_true(res.degraded);
    rl_close(r);
}

/* A write that fails in the middle of a decision (the file may not grow)
 * returns a store error, and leaves nothing locked: once the disk has room
 * again, the same handle decides at once. */
static int fill_until_failure(const char *path)
{
    struct rlimit lim;
    struct stat st;
    char key[32];
    rl_result res;
    rl *r = NULL;
    int i, rc = RL_OK;
    if (open_db(path, 0, &r) != RL_OK || rl_allow(r, "warm", 1, &res) != RL_OK)
        return 10;
    signal(SIGXFSZ, SIG_IGN);
    snprintf(key, sizeof key, "%s-wal", path);
    stat(key, &st);
    lim.rlim_cur = (rlim_t)st.st_size + 8192;
    lim.rlim_max = RLIM_INFINITY;
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        return 11;
    for (i = 0; i < 100000 && rc == RL_OK; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        rc = rl_allow(r, key, 1, &res);
    }
    if (rc != RL_EFULL && rc != RL_ESTORE)
        return 12;
    if (res.allowed) /* failing closed */
        return 13;
    lim.rlim_cur = RLIM_INFINITY;
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        return 14;
    if (rl_allow(r, "after", 1, &res) != RL_OK || !res.allowed) {
        fprintf(stderr, "after the fault: %s\n", rl_errmsg(r));
        return 15;
    }
    rl_close(r);
    return 0;
}

static void test_failed_write_unlocks(void **state)
{
    fx *f = *state;
    int status;
    pid_t pid = fork();
    if (pid == 0)
        _exit(fill_until_failure(f->path));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- state format 3 (issue 20) ---------------------------------------- */

static const rl_limit two[] = { RL_LIMIT("rpm", NULL, 600, RL_MINUTE, 50),
                                RL_LIMIT("rpd", NULL, 10000, 24 * RL_HOUR, 10000) };
static int64_t clock_now = (int64_t)1700000000 * RL_SECOND;

static int64_t test_clock(void *ctx)
{
    (void)ctx;
    return clock_now;
}

static int open_two(const char *path, const rl_limit *l, size_t n, unsigned flags, rl **r)
{
    rl_options o = RL_OPTIONS_INIT;
    o.default_limits = l;
    o.n_default_limits = n;
    o.clock = test_clock;
    o.flags = flags;
    return rl_open(r, path, &o);
}

/* The state column of key as stored: its first byte and length. */
static int stored_state(const char *path, const char *key, size_t *len)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    int first = -1;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT state FROM rl_keys WHERE key = ?1", -1, &q, NULL),
        SQLITE_OK);
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_bytes(q, 0) > 0) {
        first = ((const unsigned char *)sqlite3_column_blob(q, 0))[0];
        *len = (size_t)sqlite3_column_bytes(q, 0);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    return first;
}

static int64_t remaining_of(rl *r, const char *key, size_t limit)
{
    rl_key_stats st;
    assert_int_equal(rl_stats(r, key, &st), RL_OK);
    return st.limits[limit].remaining;
}

/* A two-limit key is stored in format 3, in at most 48 bytes, and decides
 * as before: the slot set of its tier is in the file. */
static void test_state_format3(void **state)
{
    fx *f = *state;
    rl *r = NULL;
    rl_result res;
    size_t len = 0;
    int i;
    assert_int_equal(open_two(f->path, two, 2, 0, &r), RL_OK);
    for (i = 0; i < 7; i++) {
        assert_int_equal(rl_allow(r, "k", 3, &res), RL_OK);
        assert_true(res.allowed);
    }
    assert_int_equal(remaining_of(r, "k", 0), 50 - 21);
    assert_int_equal(remaining_of(r, "k", 1), 10000 - 21);
    rl_close(r);
    assert_int_equal(stored_state(f->path, "k", &len), 3);
    print_message("two-limit key: %zu bytes of state\n", len);
    assert_true(len <= 48);
    assert_int_equal(open_two(f->path, two, 2, 0, &r), RL_OK);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
    assert_int_equal(res.remaining, 50 - 22);
    rl_close(r);
}

/* Issue 20: a database of schema version 4 with rows in format 2, as
 * older libraries wrote them, is migrated on open, its rows decide on
 * from where they were, and each is rewritten as format 3 by its next
 * write (never before). A tier changed since the row was written is
 * rescaled from the limits the row was written under. */
static void test_format2_rows_upgraded(void **state)
{
    fx *f = *state;
    rl *r = NULL;
    rl_result res;
    size_t len = 0;
    assert_int_equal(open_two(f->path, two, 2, 0, &r), RL_OK);
    assert_int_equal(rl_allow(r, "a", 10, &res), RL_OK);
    assert_int_equal(rl_allow(r, "b", 25, &res), RL_OK);
    rl_close(r);
    assert_int_equal(test_old_db(f->path, "PRAGMA user_version = 4"), 0);
    assert_int_equal(stored_state(f->path, "a", &len), 2);
    assert_int_equal(len, 116);
    assert_int_equal(open_two(f->path, two, 2, 0, &r), RL_OK); /* migrates */
    assert_int_equal(remaining_of(r, "a", 0), 40);             /* read from format 2 */
    assert_int_equal(stored_state(f->path, "a", &len), 2);     /* reading writes nothing */
    assert_int_equal(rl_allow(r, "a", 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(res.remaining, 39);
    assert_int_equal(stored_state(f->path, "a", &len), 3); /* migrated on write */
    assert_true(len <= 48);
    rl_close(r);
    /* b, still format 2, under a tier whose burst doubled: it keeps the
     * share it had spent (25 of 50, so 50 of 100), from the old limits
     * its format 2 row carries */
    {
        rl_limit bigger[2] = { RL_LIMIT("rpm", NULL, 1200, RL_MINUTE, 100), two[1] };
        assert_int_equal(open_two(f->path, bigger, 2, RL_OPEN_OVERRIDE_DEFAULTS, &r), RL_OK);
        assert_int_equal(rl_allow(r, "b", 1, &res), RL_OK);
        assert_int_equal(res.remaining, 49);
        /* and a, format 3 now, from the old limits its slot set keeps */
        assert_int_equal(rl_allow(r, "a", 1, &res), RL_OK);
        assert_int_equal(res.remaining, 100 - 2 * 11 - 1);
        rl_close(r);
    }
    assert_int_equal(stored_state(f->path, "b", &len), 3);
}

/* A format 3 row whose slot set is missing (a damaged or edited file)
 * is damaged: RL_ECORRUPT for its decisions, never a full bucket; other
 * keys decide; rl_reset clears it. Rows written while the set is damaged
 * do without it. */
static void test_unknown_slot_set(void **state)
{
    fx *f = *state;
    rl *r = NULL;
    rl_result res;
    size_t len = 0;
    assert_int_equal(open_two(f->path, two, 2, 0, &r), RL_OK);
    assert_int_equal(rl_allow(r, "k", 50, &res), RL_OK);
    rl_close(r);
    assert_int_equal(stored_state(f->path, "k", &len), 3);
    sql(f->path, "DELETE FROM rl_limit_sets");
    assert_int_equal(open_two(f->path, two, 2, 0, &r), RL_OK);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_ECORRUPT);
    assert_false(res.allowed);
    assert_int_equal(rl_allow(r, "other", 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_reset(r, "k"), RL_OK);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
    assert_true(res.allowed);
    rl_close(r);
    /* a damaged set is damage too */
    sql(f->path, "UPDATE rl_limit_sets SET body = x'09'");
    assert_int_equal(open_two(f->path, two, 2, 0, &r), RL_OK);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_ECORRUPT);
    /* a new key of that tier is written whole (explicit slots), readable */
    assert_int_equal(rl_allow(r, "z", 1, &res), RL_OK);
    assert_int_equal(rl_allow(r, "z", 1, &res), RL_OK);
    assert_int_equal(res.remaining, 48);
    rl_close(r);
    assert_int_equal(stored_state(f->path, "z", &len), 3);
    assert_true(len <= 116);
}

/* A slot set inserted by a write transaction that rolls back is not
 * referred to afterwards: the next row of that tier records its set again,
 * and a fresh connection reads the row. (The store's cache of sets must
 * forget what a rollback undid.) */
static void test_slot_set_rolled_back(void **state)
{
    fx *f = *state;
    char err[RL_ERRMSG_MAX] = "";
    rl_store_config c;
    rl_store *s = NULL;
    rl_tier t;
    rl_state st;
    rl_row row, back;
    int64_t version;
    size_t i;
    rl *r = NULL;
    assert_int_equal(open_db(f->path, 0, &r), RL_OK); /* the schema */
    rl_close(r);
    memset(&c, 0, sizeof c);
    c.busy_timeout_ms = 1000;
    c.durability = RL_DURABILITY_NORMAL;
    c.file_mode = 0600;
    c.busy_strategy = RL_BUSY_LOCK;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", "pro");
    for (i = 0; i < 2; i++)
        assert_int_equal(rl_ldef_from_limit(&t.limits[i], &two[i], i, err, sizeof err), RL_OK);
    t.n = 2;
    assert_int_equal(rl_store_open(&s, f->path, &c, err), RL_OK);
    assert_int_equal(s->ops->begin(s, 1), RL_OK);
    assert_int_equal(s->ops->tier_put(s, &t), RL_OK); /* inserts its set */
    s->ops->rollback(s);
    memset(&st, 0, sizeof st);
    st.gen = 1;
    st.fp = rl_tier_fingerprint(&t);
    st.n = 2;
    for (i = 0; i < 2; i++) {
        rl_slot_template(&t.limits[i], &st.slot[i]);
        st.slot[i].tat = clock_now + (int64_t)i;
    }
    memset(&row, 0, sizeof row);
    row.state_len = rl_state_encode(&st, row.state);
    assert_int_equal(s->ops->begin(s, 1), RL_OK);
    assert_int_equal(s->ops->row_put(s, "k", &row), RL_OK);
    assert_int_equal(s->ops->commit(s), RL_OK);
    s->ops->close(s);
    s = NULL;
    assert_int_equal(rl_store_open(&s, f->path, &c, err), RL_OK);
    assert_int_equal(s->ops->begin(s, 0), RL_OK);
    assert_int_equal(s->ops->row_get(s, "k", &back, &version), RL_OK);
    s->ops->rollback(s);
    s->ops->close(s);
    assert_int_equal(back.state_len, row.state_len);
    assert_memory_equal(back.state, row.state, row.state_len);
    {
        size_t len = 0;
        assert_int_equal(stored_state(f->path, "k", &len), 3);
    }
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_new_file_private_and_wal),
        T(test_group_shared_mode),
        T(test_not_sqlite),
        T(test_truncated),
        T(test_other_application),
        T(test_newer_schema),
        T(test_tampered_schema),
        T(test_read_only_file),
        T(test_readonly_flag),
        T(test_failed_write_unlocks),
        T(test_schema_names_exact),
        T(test_schema_columns),
        T(test_schema_columns_by_version),
        T(test_link_swapped_in_before_open),
        T(test_state_format3),
        T(test_format2_rows_upgraded),
        T(test_unknown_slot_set),
        T(test_slot_set_rolled_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
