/*
 * test_open.c - rl_open of an SQLite database against another process,
 * one interleaving at a time (issue 17, bug 5).
 *
 * What it pins down (the protocol at the top of store/sqlite.c):
 *   - a database that is set up (WAL mode, schema up to date) opens with a
 *     read alone: while another process holds rl's lock, SQLite's write
 *     lock, or both (an rl handle inside a long transaction), rl_open
 *     succeeds and never reaches the lock;
 *   - a new file, a file not in WAL mode and an older schema are set up
 *     under rl's lock, and read again once it is held: of two processes
 *     that both read such a file before either took the lock, the first
 *     switches and migrates it, the second finds it done and does neither;
 *   - setting up waits for the lock within busy_timeout_ms, then fails
 *     with RL_EBUSY and leaves the file as it was; a switch to WAL that
 *     finds the database locked is tried again until then.
 *
 * Every race is run step by step, without sleeps: an opener is a child
 * process that reports each step of the open it reaches (store/sqlite.h's
 * RL_STEP_OPEN_*, and the lock's RL_STEP_WAITING) through a pipe and, when
 * its plan says so, stops there until the parent lets it go on
 * (lock_helpers.h). The other party is a real process too: another
 * opener, a process holding SQLite's locks through sqlite3 itself (as the
 * sqlite3 shell would), or rl's lock held here. Real files in a temporary
 * directory. The one wait of real time is SQLite's own busy timeout, where
 * that timeout running out is what is tested.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "rl.h"
#include "lock.h"
#include "lock_helpers.h"
#include "sqlite.h"
#include "common/old_db.h"

#define OPEN_STEPS                                                                     \
    (STEP(RL_STEP_OPEN_LOCKED) | STEP(RL_STEP_OPEN_SWITCH) | STEP(RL_STEP_OPEN_BUSY) | \
     STEP(RL_STEP_OPEN_MIGRATE) | STEP(RL_STEP_WAITING))

/* What an opener says once rl_open returned. */
typedef struct opened {
    int rc;        /* rl_open's */
    int stats_rc;  /* rl_stats of "k" through the new handle, if it opened */
    int64_t units; /* its units */
    int64_t ms;    /* how long rl_open took */
    char msg[256]; /* rl_errmsg */
} opened;

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Whether openers pass default limits (small, as the fixture did): the
 * store's protocol is tested without them, so that nothing but the store
 * decides what opening takes; test_defaults_open_while_locked passes them. */
static int with_defaults;

/* A child that opens path with busy_ms and flags, following the plan made
 * before the fork on h, reads key "k" if it opened, and writes an opened
 * on p->out; with stay, it then keeps the handle open until a byte comes
 * on p->go. */
static pid_t opener(const char *path, int busy_ms, unsigned flags, int stay, const pipes *p,
                    const hook *h)
{
    pid_t pid = fork();
    if (pid == 0) {
        rl_options o = RL_OPTIONS_INIT;
        rl_key_stats st;
        opened a;
        rl *r = NULL;
        int64_t t0;
        char c;
        if (with_defaults) {
            o.default_limits = small;
            o.n_default_limits = 1;
        }
        o.busy_timeout_ms = busy_ms;
        o.flags = flags;
        memset(&a, 0, sizeof a);
        /* a failed test leaves it stopped on a pipe: it goes with the test */
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        plan_start(h);
        t0 = now_ms();
        a.rc = rl_open(&r, path, &o);
        a.ms = now_ms() - t0;
        rl__lock_hook = NULL; /* the plan is the open's */
        snprintf(a.msg, sizeof a.msg, "%s", rl_errmsg(r));
        if (a.rc == RL_OK) {
            memset(&st, 0, sizeof st);
            a.stats_rc = rl_stats(r, "k", &st);
            a.units = st.units;
        }
        if (write(p->out[1], &a, sizeof a) != (ssize_t)sizeof a)
            _exit(92);
        if (stay && read(p->go[0], &c, 1) != 1)
            _exit(91);
        rl_close(r);
        _exit(0);
    }
    assert_true(pid > 0);
    return pid;
}

static void result(const pipes *p, opened *a)
{
    read_child(p->out[0], a, sizeof *a);
}

/* A process that holds SQLite's locks on path through sqlite3 itself, as
 * another program would: it runs sql (a BEGIN and what follows), says so
 * with a byte on ready, and rolls back and exits 0 when a byte comes on
 * release. Forked before this process opens the file itself: SQLite's
 * locks do not survive fork(). */
typedef struct holder {
    pid_t pid;
    int ready[2], release[2];
} holder;

static void holder_start(holder *h, const char *path, const char *sql)
{
    char c;
    assert_int_equal(pipe(h->ready), 0);
    assert_int_equal(pipe(h->release), 0);
    h->pid = fork();
    assert_true(h->pid >= 0);
    if (h->pid == 0) {
        sqlite3 *db = NULL;
        int ok = prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 &&
                 sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
                 sqlite3_busy_timeout(db, WAIT_MS) == SQLITE_OK &&
                 sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
        if (!ok) {
            fprintf(stderr, "holder: %s\n", db ? sqlite3_errmsg(db) : "no memory");
            _exit(1);
        }
        if (write(h->ready[1], "h", 1) != 1 || read(h->release[0], &c, 1) != 1)
            _exit(2);
        _exit(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK &&
                      sqlite3_close(db) == SQLITE_OK
                  ? 0
                  : 3);
    }
    read_child(h->ready[0], &c, 1); /* it holds them */
}

static void holder_end(holder *h)
{
    int i;
    assert_int_equal(write(h->release[1], "r", 1), 1);
    reap(h->pid);
    for (i = 0; i < 2; i++) {
        close(h->ready[i]);
        close(h->release[i]);
    }
}

static void sql(const char *path, const char *text)
{
    sqlite3 *db;
    char *err = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, text, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", text, err ? err : "?");
    sqlite3_close(db);
}

static int version_of(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    int v;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    v = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

/* Whether the file's header says WAL mode (bytes 18 and 19 are 2): what
 * the switch writes, read without SQLite. */
static int wal_header(const char *path)
{
    unsigned char b[2];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, b, 2, 18), 2);
    close(fd);
    assert_true(b[0] == b[1] && (b[0] == 1 || b[0] == 2));
    return b[0] == 2;
}

/* The fixture's database with key "k" at 3 units, then left at schema
 * version 3 (before rl_keys.gmark) or in rollback-journal mode, as an
 * older librl or `PRAGMA journal_mode = DELETE` in the sqlite3 shell
 * leaves it. */
static void with_key(const char *path)
{
    rl *r = open_with(path, small, WAIT_MS);
    rl_result res;
    assert_int_equal(rl_allow(r, "k", 3, &res), RL_OK);
    assert_true(res.allowed);
    rl_close(r);
}

static void make_old(const char *path)
{
    with_key(path);
    assert_int_equal(
        test_old_db(path, "ALTER TABLE rl_keys DROP COLUMN gmark; PRAGMA user_version = 3"), 0);
    assert_int_equal(version_of(path), 3);
}

static void make_rollback(const char *path)
{
    with_key(path);
    sql(path, "PRAGMA journal_mode = DELETE");
    assert_false(wal_header(path));
}

/* A child's plan, made before it is forked: up to four steps. */
static void plan(unsigned a, int stop_a, unsigned b, int stop_b, unsigned c, int stop_c, unsigned d)
{
    plan_clear();
    if (a)
        plan_add(a, stop_a);
    if (b)
        plan_add(b, stop_b);
    if (c)
        plan_add(c, stop_c);
    if (d)
        plan_add(d, 0);
}

static void expect(const hook *h, int step)
{
    int got = reached(h);
    if (got != step)
        fail_msg("reached step %d, expected %d", got, step);
}

static void ok(const opened *a)
{
    if (a->rc != RL_OK)
        fail_msg("rl_open: %d %s", a->rc, a->msg);
}

/* Two processes open a new file at once: both read it (empty: not WAL,
 * version 0) before either takes the lock. The first to take it switches
 * and migrates; the second, reading again under the lock, finds the file
 * set up and does neither. Both succeed. */
static void test_new_file_both_read_first(void **state)
{
    fx *f = *state;
    char path[160];
    pipes pa, pb;
    hook ha, hb;
    pid_t a, b;
    opened ra, rb;
    snprintf(path, sizeof path, "%s/new.db", f->dir);
    pipes_open(&pa);
    pipes_open(&pb);
    hook_open(&ha);
    hook_open(&hb);
    plan(STEP(RL_STEP_OPEN_READ), 1, STEP(RL_STEP_OPEN_LOCKED), 0, STEP(RL_STEP_OPEN_SWITCH), 0,
         STEP(RL_STEP_OPEN_MIGRATE));
    a = opener(path, WAIT_MS, 0, 0, &pa, &ha);
    expect(&ha, RL_STEP_OPEN_READ);
    plan(STEP(RL_STEP_OPEN_READ), 1, STEP(RL_STEP_OPEN_LOCKED), 0, OPEN_STEPS, 0, 0);
    b = opener(path, WAIT_MS, 0, 0, &pb, &hb);
    expect(&hb, RL_STEP_OPEN_READ);
    resume(&ha);
    expect(&ha, RL_STEP_OPEN_LOCKED);
    expect(&ha, RL_STEP_OPEN_SWITCH);
    expect(&ha, RL_STEP_OPEN_MIGRATE);
    result(&pa, &ra);
    ok(&ra);
    resume(&hb);
    expect(&hb, RL_STEP_OPEN_LOCKED);
    result(&pb, &rb);
    ok(&rb);
    assert_true(no_step(&hb)); /* neither switched nor migrated again */
    reap(a);
    reap(b);
    assert_true(wal_header(path));
    assert_int_equal(version_of(path), (int)rl_schema_count);
    pipes_close(&pa);
    pipes_close(&pb);
    hook_close(&ha);
    hook_close(&hb);
}

/* Two processes open a new file at once: the second reads it while the
 * first holds the lock to set it up, waits for the lock, then finds the
 * file set up. */
static void test_new_file_second_waits(void **state)
{
    fx *f = *state;
    char path[160];
    pipes pa, pb;
    hook ha, hb;
    pid_t a, b;
    opened ra, rb;
    snprintf(path, sizeof path, "%s/new.db", f->dir);
    pipes_open(&pa);
    pipes_open(&pb);
    hook_open(&ha);
    hook_open(&hb);
    plan(STEP(RL_STEP_OPEN_LOCKED), 1, STEP(RL_STEP_OPEN_SWITCH), 0, STEP(RL_STEP_OPEN_MIGRATE), 0,
         0);
    a = opener(path, WAIT_MS, 0, 0, &pa, &ha);
    expect(&ha, RL_STEP_OPEN_LOCKED); /* holds the lock, has not read again */
    plan(STEP(RL_STEP_OPEN_READ), 0, STEP(RL_STEP_WAITING), 0, STEP(RL_STEP_OPEN_LOCKED), 0,
         OPEN_STEPS);
    b = opener(path, WAIT_MS, 0, 0, &pb, &hb);
    expect(&hb, RL_STEP_OPEN_READ);
    expect(&hb, RL_STEP_WAITING); /* behind a's lock */
    resume(&ha);
    expect(&ha, RL_STEP_OPEN_SWITCH);
    expect(&ha, RL_STEP_OPEN_MIGRATE);
    result(&pa, &ra);
    ok(&ra);
    expect(&hb, RL_STEP_OPEN_LOCKED);
    result(&pb, &rb);
    ok(&rb);
    assert_true(no_step(&hb));
    reap(a);
    reap(b);
    assert_true(wal_header(path));
    assert_int_equal(version_of(path), (int)rl_schema_count);
    pipes_close(&pa);
    pipes_close(&pb);
    hook_close(&ha);
    hook_close(&hb);
}

/* A file in rollback-journal mode: one process switches it to WAL while
 * another opens. b reads it (not WAL) while a holds the lock about to
 * switch, waits, and finds it switched: it never asks for the switch
 * itself. */
static void test_switch_while_another_opens(void **state)
{
    fx *f = *state;
    pipes pa, pb;
    hook ha, hb;
    pid_t a, b;
    opened ra, rb;
    make_rollback(f->path);
    pipes_open(&pa);
    pipes_open(&pb);
    hook_open(&ha);
    hook_open(&hb);
    plan(STEP(RL_STEP_OPEN_READ), 0, STEP(RL_STEP_OPEN_LOCKED), 0, STEP(RL_STEP_OPEN_SWITCH), 1,
         OPEN_STEPS);
    a = opener(f->path, WAIT_MS, 0, 0, &pa, &ha);
    expect(&ha, RL_STEP_OPEN_READ);
    expect(&ha, RL_STEP_OPEN_LOCKED);
    expect(&ha, RL_STEP_OPEN_SWITCH);
    plan(STEP(RL_STEP_OPEN_READ), 0, STEP(RL_STEP_WAITING), 0, STEP(RL_STEP_OPEN_LOCKED), 0,
         OPEN_STEPS);
    b = opener(f->path, WAIT_MS, 0, 0, &pb, &hb);
    expect(&hb, RL_STEP_OPEN_READ);
    expect(&hb, RL_STEP_WAITING);
    resume(&ha);
    result(&pa, &ra);
    ok(&ra);
    assert_true(no_step(&ha)); /* up to date: switched, not migrated */
    expect(&hb, RL_STEP_OPEN_LOCKED);
    result(&pb, &rb);
    ok(&rb);
    assert_true(no_step(&hb));
    assert_int_equal(rb.units, 3);
    reap(a);
    reap(b);
    assert_true(wal_header(f->path));
    pipes_close(&pa);
    pipes_close(&pb);
    hook_close(&ha);
    hook_close(&hb);
}

/* The interleaving of the reverted attempt (aa881a9): b reads the file
 * (not WAL) and is held there; a switches it and stays open in WAL mode,
 * and another process reads it in WAL mode; then b goes on. Reading again
 * under the lock, b sees WAL and does not ask for the switch, which with
 * others using the file would need them all gone. */
static void test_switched_after_read(void **state)
{
    fx *f = *state;
    pipes pa, pb;
    hook ha, hb;
    pid_t a, b;
    opened ra, rb;
    holder reader;
    make_rollback(f->path);
    pipes_open(&pa);
    pipes_open(&pb);
    hook_open(&ha);
    hook_open(&hb);
    plan(STEP(RL_STEP_OPEN_READ), 1, STEP(RL_STEP_OPEN_LOCKED), 0, OPEN_STEPS, 0, 0);
    b = opener(f->path, WAIT_MS, 0, 0, &pb, &hb);
    expect(&hb, RL_STEP_OPEN_READ); /* saw it not in WAL mode */
    plan(STEP(RL_STEP_OPEN_SWITCH), 0, OPEN_STEPS, 0, 0, 0, 0);
    a = opener(f->path, WAIT_MS, 0, 1, &pa, &ha);
    expect(&ha, RL_STEP_OPEN_SWITCH);
    result(&pa, &ra);
    ok(&ra);
    assert_true(no_step(&ha));
    assert_true(wal_header(f->path));
    holder_start(&reader, f->path, "BEGIN; SELECT count(*) FROM rl_keys");
    resume(&hb);
    expect(&hb, RL_STEP_OPEN_LOCKED);
    result(&pb, &rb);
    ok(&rb);
    assert_true(no_step(&hb)); /* no switch asked of a WAL file */
    assert_int_equal(rb.units, 3);
    holder_end(&reader);
    go(&pa, 1);
    reap(a);
    reap(b);
    pipes_close(&pa);
    pipes_close(&pb);
    hook_close(&ha);
    hook_close(&hb);
}

/* The switch finds the database locked: a process writes it in rollback
 * mode (SQLite's write lock, taken through sqlite3). SQLite gives up at
 * once there; the opener says so (RL_STEP_OPEN_BUSY), and tries again
 * until the writer is gone, within busy_timeout_ms. */
static void test_switch_retried_while_locked(void **state)
{
    fx *f = *state;
    pipes pa;
    hook ha;
    pid_t a;
    opened ra;
    holder writer;
    make_rollback(f->path);
    holder_start(&writer, f->path, "BEGIN IMMEDIATE; UPDATE rl_keys SET units = 4");
    pipes_open(&pa);
    hook_open(&ha);
    plan(STEP(RL_STEP_OPEN_READ), 0, STEP(RL_STEP_OPEN_LOCKED), 0, STEP(RL_STEP_OPEN_SWITCH), 0,
         STEP(RL_STEP_OPEN_BUSY));
    a = opener(f->path, WAIT_MS, 0, 0, &pa, &ha);
    expect(&ha, RL_STEP_OPEN_READ);
    expect(&ha, RL_STEP_OPEN_LOCKED);
    expect(&ha, RL_STEP_OPEN_SWITCH);
    expect(&ha, RL_STEP_OPEN_BUSY); /* locked: it will try again */
    holder_end(&writer);            /* rolled back: units stay 3 */
    result(&pa, &ra);
    ok(&ra);
    assert_int_equal(ra.units, 3);
    reap(a);
    assert_true(wal_header(f->path));
    pipes_close(&pa);
    hook_close(&ha);
}

/* ... and when the writer stays past busy_timeout_ms, RL_EBUSY, the file
 * left in its mode. */
static void test_switch_gives_up_in_time(void **state)
{
    fx *f = *state;
    pipes pa;
    hook ha;
    pid_t a;
    opened ra;
    holder writer;
    make_rollback(f->path);
    holder_start(&writer, f->path, "BEGIN IMMEDIATE; UPDATE rl_keys SET units = 4");
    pipes_open(&pa);
    hook_open(&ha);
    plan(STEP(RL_STEP_OPEN_SWITCH), 0, STEP(RL_STEP_OPEN_BUSY), 0, STEP(RL_STEP_OPEN_MIGRATE), 0,
         0);
    a = opener(f->path, 300, 0, 0, &pa, &ha);
    expect(&ha, RL_STEP_OPEN_SWITCH);
    expect(&ha, RL_STEP_OPEN_BUSY);
    result(&pa, &ra);
    assert_int_equal(ra.rc, RL_EBUSY);
    assert_non_null(strstr(ra.msg, "WAL"));
    assert_true(ra.ms >= 250); /* it waited for the writer, not less */
    print_message("gave up after %lld ms: %s\n", (long long)ra.ms, ra.msg);
    reap(a);
    holder_end(&writer);
    assert_false(wal_header(f->path));
    pipes_close(&pa);
    hook_close(&ha);
}

/* The switch waits for readers in rollback mode (its commit needs the file
 * to itself), within busy_timeout_ms: a process reading when the switch
 * starts delays it, and it goes through once the reader ends. */
static void test_switch_waits_for_reader(void **state)
{
    fx *f = *state;
    pipes pa;
    hook ha;
    pid_t a;
    opened ra;
    holder reader;
    make_rollback(f->path);
    holder_start(&reader, f->path, "BEGIN; SELECT count(*) FROM rl_keys");
    pipes_open(&pa);
    hook_open(&ha);
    plan(STEP(RL_STEP_OPEN_READ), 0, STEP(RL_STEP_OPEN_SWITCH), 0, STEP(RL_STEP_OPEN_MIGRATE), 0,
         0);
    a = opener(f->path, WAIT_MS, 0, 0, &pa, &ha);
    expect(&ha, RL_STEP_OPEN_READ); /* its read went beside the other's */
    expect(&ha, RL_STEP_OPEN_SWITCH);
    holder_end(&reader);
    result(&pa, &ra);
    ok(&ra);
    assert_true(no_step(&ha));
    reap(a);
    assert_true(wal_header(f->path));
    pipes_close(&pa);
    hook_close(&ha);
}

/* An older schema: one process migrates it while another opens. b reads
 * version 3 while a holds the lock about to migrate, waits, and finds it
 * migrated: a migrates once, b not at all, and the key's state is kept. */
static void test_migrate_while_another_opens(void **state)
{
    fx *f = *state;
    pipes pa, pb;
    hook ha, hb;
    pid_t a, b;
    opened ra, rb;
    make_old(f->path);
    pipes_open(&pa);
    pipes_open(&pb);
    hook_open(&ha);
    hook_open(&hb);
    plan(STEP(RL_STEP_OPEN_LOCKED), 0, STEP(RL_STEP_OPEN_MIGRATE), 1, OPEN_STEPS, 0, 0);
    a = opener(f->path, WAIT_MS, 0, 0, &pa, &ha);
    expect(&ha, RL_STEP_OPEN_LOCKED);
    expect(&ha, RL_STEP_OPEN_MIGRATE); /* WAL already: no switch */
    plan(STEP(RL_STEP_OPEN_READ), 0, STEP(RL_STEP_WAITING), 0, STEP(RL_STEP_OPEN_LOCKED), 0,
         OPEN_STEPS);
    b = opener(f->path, WAIT_MS, 0, 0, &pb, &hb);
    expect(&hb, RL_STEP_OPEN_READ);
    expect(&hb, RL_STEP_WAITING);
    assert_int_equal(version_of(f->path), 3);
    resume(&ha);
    result(&pa, &ra);
    ok(&ra);
    assert_true(no_step(&ha));
    expect(&hb, RL_STEP_OPEN_LOCKED);
    result(&pb, &rb);
    ok(&rb);
    assert_true(no_step(&hb)); /* not migrated twice */
    assert_int_equal(ra.units, 3);
    assert_int_equal(rb.units, 3);
    reap(a);
    reap(b);
    assert_int_equal(version_of(f->path), (int)rl_schema_count);
    pipes_close(&pa);
    pipes_close(&pb);
    hook_close(&ha);
    hook_close(&hb);
}

/* ... b read version 3 and is held there while a migrates it all through
 * and closes; b, reading again under the lock, does not migrate. */
static void test_migrated_after_read(void **state)
{
    fx *f = *state;
    pipes pa, pb;
    hook ha, hb;
    pid_t a, b;
    opened ra, rb;
    make_old(f->path);
    pipes_open(&pa);
    pipes_open(&pb);
    hook_open(&ha);
    hook_open(&hb);
    plan(STEP(RL_STEP_OPEN_READ), 1, STEP(RL_STEP_OPEN_LOCKED), 0, OPEN_STEPS, 0, 0);
    b = opener(f->path, WAIT_MS, 0, 0, &pb, &hb);
    expect(&hb, RL_STEP_OPEN_READ);
    plan(STEP(RL_STEP_OPEN_MIGRATE), 0, OPEN_STEPS, 0, 0, 0, 0);
    a = opener(f->path, WAIT_MS, 0, 0, &pa, &ha);
    expect(&ha, RL_STEP_OPEN_MIGRATE);
    result(&pa, &ra);
    ok(&ra);
    assert_true(no_step(&ha));
    reap(a);
    assert_int_equal(version_of(f->path), (int)rl_schema_count);
    resume(&hb);
    expect(&hb, RL_STEP_OPEN_LOCKED);
    result(&pb, &rb);
    ok(&rb);
    assert_true(no_step(&hb));
    assert_int_equal(rb.units, 3);
    reap(b);
    pipes_close(&pa);
    pipes_close(&pb);
    hook_close(&ha);
    hook_close(&hb);
}

/* A database that is set up opens while another process holds the write
 * locks, as an rl handle inside a long transaction does (rl's lock here,
 * SQLite's write lock in a second process), or SQLite's alone (the sqlite3
 * shell): a writer and a read-only handle alike open with the read alone,
 * never reaching the lock, and read the key. */
static void test_set_up_opens_while_locked(void **state)
{
    fx *f = *state;
    rl_lock *l = NULL;
    holder writer;
    pipes p;
    hook h;
    pid_t pid;
    opened o;
    int with_rl, ro;
    with_key(f->path);
    for (with_rl = 0; with_rl < 2; with_rl++) {
        holder_start(&writer, f->path, "BEGIN IMMEDIATE; UPDATE rl_keys SET units = 4");
        if (with_rl)
            l = hold(f->path);
        for (ro = 0; ro < 2; ro++) {
            pipes_open(&p);
            hook_open(&h);
            plan(STEP(RL_STEP_OPEN_READ), 0, OPEN_STEPS, 0, 0, 0, 0);
            pid = opener(f->path, WAIT_MS, ro ? RL_OPEN_READONLY : 0, 0, &p, &h);
            expect(&h, RL_STEP_OPEN_READ);
            result(&p, &o);
            if (o.rc != RL_OK)
                fail_msg("%s%s: %s", with_rl ? "rl's lock and SQLite's" : "SQLite's lock",
                         ro ? ", read-only" : "", o.msg);
            assert_true(no_step(&h)); /* never went for the lock */
            assert_int_equal(o.stats_rc, RL_OK);
            assert_int_equal(o.units, 3); /* the writer's 4 is not committed */
            reap(pid);
            pipes_close(&p);
            hook_close(&h);
        }
        if (l) {
            rl_lock_release(l);
            rl_lock_close(l);
            l = NULL;
        }
        holder_end(&writer);
    }
}

/* An older schema while another process holds rl's lock: the opener
 * waits for the lock and, once busy_timeout_ms has passed (the lock's
 * clock is moved past it), fails with RL_EBUSY, the file unchanged; once
 * the lock is free, it opens and migrates. */
static void test_migration_waits_for_rl_lock(void **state)
{
    fx *f = *state;
    rl_lock *l;
    pipes p;
    hook h;
    pid_t pid;
    opened o;
    make_old(f->path);
    l = hold(f->path);
    pipes_open(&p);
    hook_open(&h);
    plan(STEP(RL_STEP_OPEN_READ), 0, STEP(RL_STEP_WAITING), 0, OPEN_STEPS & ~STEP(RL_STEP_WAITING),
         0, 0);
    pid = opener(f->path, 1000, 0, 0, &p, &h);
    expect(&h, RL_STEP_OPEN_READ);
    expect(&h, RL_STEP_WAITING);
    clock_jump(2000);
    result(&p, &o);
    assert_int_equal(o.rc, RL_EBUSY);
    assert_non_null(strstr(o.msg, "setting up"));
    assert_true(no_step(&h));
    reap(pid);
    pipes_close(&p);
    hook_close(&h);
    assert_int_equal(version_of(f->path), 3);
    rl_lock_release(l);
    rl_lock_close(l);

    pipes_open(&p);
    hook_open(&h);
    plan(STEP(RL_STEP_OPEN_LOCKED), 0, STEP(RL_STEP_OPEN_MIGRATE), 0, OPEN_STEPS, 0, 0);
    pid = opener(f->path, 1000, 0, 0, &p, &h);
    expect(&h, RL_STEP_OPEN_LOCKED);
    expect(&h, RL_STEP_OPEN_MIGRATE);
    result(&p, &o);
    ok(&o);
    assert_int_equal(o.units, 3);
    reap(pid);
    pipes_close(&p);
    hook_close(&h);
    assert_int_equal(version_of(f->path), (int)rl_schema_count);
}

/* An older schema while another program holds SQLite's write lock (not
 * rl's): the opener takes rl's lock and waits for SQLite's within
 * busy_timeout_ms (SQLite's busy timeout, real time), then RL_EBUSY, the
 * file unchanged. */
static void test_migration_waits_for_sqlite_lock(void **state)
{
    fx *f = *state;
    holder writer;
    pipes p;
    hook h;
    pid_t pid;
    opened o;
    make_old(f->path);
    holder_start(&writer, f->path, "BEGIN IMMEDIATE; UPDATE rl_keys SET units = 4");
    pipes_open(&p);
    hook_open(&h);
    plan(STEP(RL_STEP_OPEN_READ), 0, STEP(RL_STEP_OPEN_LOCKED), 0, STEP(RL_STEP_OPEN_MIGRATE), 0,
         OPEN_STEPS);
    pid = opener(f->path, 300, 0, 0, &p, &h);
    expect(&h, RL_STEP_OPEN_READ);
    expect(&h, RL_STEP_OPEN_LOCKED);
    expect(&h, RL_STEP_OPEN_MIGRATE);
    result(&p, &o);
    assert_int_equal(o.rc, RL_EBUSY);
    assert_true(o.ms >= 250); /* it waited, not less */
    print_message("gave up after %lld ms: %s\n", (long long)o.ms, o.msg);
    assert_true(no_step(&h));
    reap(pid);
    pipes_close(&p);
    hook_close(&h);
    holder_end(&writer);
    assert_int_equal(version_of(f->path), 3);
}

/* The same promise through the whole of rl_open: a program that passes
 * the default limits the database already has (every worker of a pool
 * does) opens while another process holds the write locks. Nothing is
 * written, so nothing waits for the lock. */
static void test_defaults_open_while_locked(void **state)
{
    fx *f = *state;
    rl_lock *l;
    holder writer;
    pipes p;
    hook h;
    pid_t pid;
    opened o;
    with_key(f->path);
    holder_start(&writer, f->path, "BEGIN IMMEDIATE; UPDATE rl_keys SET units = 4");
    l = hold(f->path);
    pipes_open(&p);
    hook_open(&h);
    plan(STEP(RL_STEP_OPEN_READ), 0, OPEN_STEPS, 0, 0, 0, 0);
    with_defaults = 1;
    pid = opener(f->path, 1000, 0, 0, &p, &h);
    with_defaults = 0;
    expect(&h, RL_STEP_OPEN_READ);
    result(&p, &o);
    if (o.rc != RL_OK)
        fail_msg("rl_open with the database's default limits: %s", o.msg);
    assert_true(no_step(&h));
    assert_int_equal(o.units, 3);
    reap(pid);
    pipes_close(&p);
    hook_close(&h);
    rl_lock_release(l);
    rl_lock_close(l);
    holder_end(&writer);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_new_file_both_read_first),    T(test_new_file_second_waits),
        T(test_switch_while_another_opens),  T(test_switched_after_read),
        T(test_switch_retried_while_locked), T(test_switch_gives_up_in_time),
        T(test_switch_waits_for_reader),     T(test_migrate_while_another_opens),
        T(test_migrated_after_read),         T(test_set_up_opens_while_locked),
        T(test_migration_waits_for_rl_lock), T(test_migration_waits_for_sqlite_lock),
        T(test_defaults_open_while_locked),
    };
    if (lock_test_init() != 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
