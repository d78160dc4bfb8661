/*
 * test_multiproc.c - several processes sharing one database file.
 *
 * What users rely on: with 4 processes hammering one key far above its rate,
 * the total admitted is at most burst + rate * elapsed (+ one request's
 * cost) and at least 98% of what the bucket offered while they asked (on a
 * busy machine, preempted processes leave it full for a while, and what the
 * rate adds then is no one's); and when workers are SIGKILLed at random
 * moments while deciding, the database stays intact and the bound still
 * holds for everything that was admitted. Real processes (fork), a real file
 * in a temporary directory, the real clock; and the same tests against a
 * Redis server when RL_TEST_REDIS names one (tests/common/stores.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "rl.h"
#include "../common/stores.h"

#define RATE 2000 /* per second */
#define BURST 100

static const rl_limit limits[] = { RL_LIMIT("rps", NULL, RATE, RL_SECOND, BURST) };

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
}

static void make_dir(char *dir)
{
    strcpy(dir, "/tmp/rl_test_mp.XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* How long the bucket sat full while the workers were away, shared by
 * them (in memory mapped before fork). A full bucket loses what its rate
 * would add: no limiter owes those units, and a loaded machine (CPU hogs,
 * a lock holder preempted, a starved Redis server) makes such pauses. The
 * lower bound of test_four_processes_one_key counts only the units the
 * bucket offered while it was asked: a property of the limiter, not of how
 * fast the machine is. */
typedef struct cover {
    int64_t until; /* monotonic ns: the bucket was not full before it */
    int64_t lost;  /* ns the bucket sat full between decisions */
    int64_t end;   /* when the workers stop asking */
    int64_t last;  /* when the last decision returned: a call begun before
                    * end and slowed down (preempted) may return much later,
                    * and the rate's units meanwhile were not asked for */
} cover;

/* A decision that started at t0 and returned at t1 with reset_after r: the
 * bucket was not full from then until t0 + r at least, and the time it sat
 * full since the last such mark, if any, ended with this decision. The
 * estimate leans towards more loss (the decision took place somewhere in
 * [t0, t1]), by a call's duration at most per pause; pauses are claimed by
 * compare-and-swap, so no pause is counted twice. */
static void cover_add(cover *c, int64_t t0, int64_t t1, int64_t r)
{
    int64_t cur = __atomic_load_n(&c->until, __ATOMIC_SEQ_CST), want, gap, last;
    int64_t upto = t1 < c->end ? t1 : c->end; /* after end: counted as c->last */
    last = __atomic_load_n(&c->last, __ATOMIC_SEQ_CST);
    while (t1 > last &&
           !__atomic_compare_exchange_n(&c->last, &last, t1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        ;
    do {
        gap = cur && upto > cur ? upto - cur : 0;
        want = t0 + r > cur ? t0 + r : cur;
        if (gap && t1 > want)
            want = t1;
        if (want == cur)
            return;
    } while (
        !__atomic_compare_exchange_n(&c->until, &cur, want, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    if (gap)
        __atomic_add_fetch(&c->lost, gap, __ATOMIC_SEQ_CST);
}

/* A worker: decides on one key until `until` (monotonic ns), appending one
 * byte per admitted decision to its own log (O_APPEND: a kill loses at most
 * the byte of the decision in flight), and marking the bucket's coverage in
 * c unless it is NULL. Exit status: 0, or 1 on an error. */
static void worker(const char *path, const char *log, int64_t until, cover *c)
{
    rl_options o = RL_OPTIONS_INIT;
    rl_result res;
    rl *r = NULL;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600), rc;
    int64_t t0;
    o.default_limits = limits;
    o.n_default_limits = 1;
    if (fd < 0 || rl_open(&r, path, &o) != RL_OK) {
        fprintf(stderr, "worker: %s\n", fd < 0 ? strerror(errno) : rl_errmsg(r));
        _exit(1);
    }
    while ((t0 = mono_ns()) < until) {
        rc = rl_allow(r, "hot", 1, &res);
        if (rc != RL_OK) {
            fprintf(stderr, "worker: %s\n", rl_errmsg(r));
            _exit(1);
        }
        if (c)
            cover_add(c, t0, mono_ns(), res.reset_after_ns);
        if (res.allowed && write(fd, "a", 1) != 1)
            _exit(1);
    }
    rl_close(r);
    close(fd);
    _exit(0);
}

static off_t file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? st.st_size : 0;
}

/* The database's own record of the key: admitted units, refused decisions
 * and the clock times of its first and last decision. */
static void db_record(const char *path, int64_t *units, int64_t *first, int64_t *last,
                      int64_t *refused)
{
    rl *r = NULL;
    rl_key_stats st;
    rl_options o = RL_OPTIONS_INIT;
    o.default_limits = limits;
    o.n_default_limits = 1;
    assert_int_equal(rl_open(&r, path, &o), RL_OK);
    assert_int_equal(rl_stats(r, "hot", &st), RL_OK);
    *units = st.units;
    *first = st.first_seen_ns;
    *last = st.last_seen_ns;
    if (refused)
        *refused = st.refused;
    rl_close(r);
}

static void integrity_ok(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    if (strstr(path, "://"))
        return; /* a server's own business */
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);
}

/* bound = burst + rate * elapsed + one request's cost */
static int64_t bound_for(int64_t first, int64_t last)
{
    return BURST + (int64_t)((__int128)RATE * (last - first) / RL_SECOND) + 1;
}

static void test_four_processes_one_key(void **state)
{
    char dir[64], path[512], log[128];
    pid_t pids[4];
    int64_t until, units, first, last, bound, offered, refused, tail, logged = 0;
    int i, status;
    cover *c;
    make_dir(dir);
    assert_int_equal(test_store_path(*(int *)*state, dir, path, sizeof path), 0);
    c = mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(c != MAP_FAILED);
    memset(c, 0, sizeof *c);
    until = c->end = mono_ns() + 2 * RL_SECOND;
    for (i = 0; i < 4; i++) {
        snprintf(log, sizeof log, "%s/log%d", dir, i);
        if ((pids[i] = fork()) == 0)
            worker(path, log, until, c);
        assert_true(pids[i] > 0);
    }
    for (i = 0; i < 4; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        snprintf(log, sizeof log, "%s/log%d", dir, i);
        logged += file_size(log);
    }
    db_record(path, &units, &first, &last, &refused);
    bound = bound_for(first, last);
    /* What the rate added while the bucket was full, or after the workers
     * stopped asking, was no one's to admit. */
    tail = c->last > c->end ? c->last - c->end : 0;
    offered = bound - (int64_t)((__int128)RATE * (c->lost + tail) / RL_SECOND);
    print_message("4 processes, 2 s: admitted %lld, refused %lld, bound %lld (%.2f%%); "
                  "the bucket sat full %.1f ms, the last call returned %.1f ms late, so it "
                  "offered %lld (%.2f%%)\n",
                  (long long)units, (long long)refused, (long long)bound,
                  100.0 * (double)units / (double)bound, (double)c->lost / RL_MILLISECOND,
                  (double)tail / RL_MILLISECOND, (long long)offered,
                  100.0 * (double)units / (double)offered);
    assert_int_equal(logged, units);
    assert_true(units <= bound);              /* never more than the rate */
    assert_true(units * 100 >= offered * 98); /* and what was offered while asked */
    integrity_ok(path);
    munmap(c, sizeof *c);
    remove_dir(dir);
}

/* 50 SIGKILLs at random moments of 4 busy workers, replaced as they die. */
static void test_kill9_while_deciding(void **state)
{
    char dir[64], path[512], log[128];
    pid_t pids[4];
    int64_t units, first, last, logged = 0, end;
    int i, kills = 0, status, seq = 0;
    unsigned seed = (unsigned)getpid();
    make_dir(dir);
    assert_int_equal(test_store_path(*(int *)*state, dir, path, sizeof path), 0);
    end = mono_ns() + 60 * RL_SECOND; /* workers stop by themselves at the latest then */
    for (i = 0; i < 4; i++) {
        snprintf(log, sizeof log, "%s/log%d", dir, seq++);
        if ((pids[i] = fork()) == 0)
            worker(path, log, end, NULL);
    }
    while (kills < 50) {
        struct timespec ts = { 0, (long)(5 + rand_r(&seed) % 30) * 1000000L };
        nanosleep(&ts, NULL);
        i = rand_r(&seed) % 4;
        kill(pids[i], SIGKILL);
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        if (WIFEXITED(status))
            fail_msg("worker exited with %d instead of being killed", WEXITSTATUS(status));
        kills++;
        snprintf(log, sizeof log, "%s/log%d", dir, seq++);
        if ((pids[i] = fork()) == 0)
            worker(path, log, end, NULL);
    }
    for (i = 0; i < 4; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], &status, 0);
    }
    for (i = 0; i < seq; i++) {
        snprintf(log, sizeof log, "%s/log%d", dir, i);
        logged += file_size(log);
    }
    integrity_ok(path);
    db_record(path, &units, &first, &last, NULL);
    print_message("%d kills: admitted %lld (logged %lld), bound %lld\n", kills, (long long)units,
                  (long long)logged, (long long)bound_for(first, last));
    /* the log can only miss decisions whose process died right after commit */
    assert_true(logged <= units && units - logged <= kills);
    assert_true(units <= bound_for(first, last));
    remove_dir(dir);
}

/* Processes opening a brand-new file at the same moment all succeed. */
static void test_concurrent_create(void **state)
{
    char dir[64], path[512];
    pid_t pids[6];
    int i, status;
    make_dir(dir);
    assert_int_equal(test_store_path(*(int *)*state, dir, path, sizeof path), 0);
    for (i = 0; i < 6; i++) {
        if ((pids[i] = fork()) == 0) {
            rl_options o = RL_OPTIONS_INIT;
            rl_result res;
            rl *r = NULL;
            o.default_limits = limits;
            o.n_default_limits = 1;
            if (rl_open(&r, path, &o) != RL_OK || rl_allow(r, "k", 1, &res) != RL_OK) {
                fprintf(stderr, "open: %s\n", rl_errmsg(r));
                _exit(1);
            }
            rl_close(r);
            _exit(0);
        }
    }
    for (i = 0; i < 6; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    integrity_ok(path);
    remove_dir(dir);
}

static rl *open_tier(const char *path, const rl_limit *lims, size_t n)
{
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    o.default_limits = lims;
    o.n_default_limits = n;
    if (rl_open(&r, path, &o) != RL_OK) {
        fprintf(stderr, "open: %s\n", rl_errmsg(r));
        rl_close(r);
        return NULL;
    }
    return r;
}

/* The slot of a lease whose process was SIGKILLed is reclaimed long before
 * the lease's TTL, as soon as another lease needs it. */
static void test_killed_lease_reclaimed(void **state)
{
    static const rl_limit lims[] = { RL_CONCURRENT("streams", "streams", 1) };
    rl_cost one = { "streams", 1 };
    char dir[64], path[512], c;
    int ready[2], status;
    rl_result res;
    rl_lease lease;
    rl *r;
    pid_t pid;
    make_dir(dir);
    assert_int_equal(test_store_path(*(int *)*state, dir, path, sizeof path), 0);
    assert_int_equal(pipe(ready), 0);
    if ((pid = fork()) == 0) {
        rl *cr = open_tier(path, lims, 1);
        close(ready[0]);
        if (!cr || rl_lease_begin(cr, "model", &one, 1, RL_HOUR, &lease, &res) != RL_OK ||
            !res.allowed)
            _exit(1);
        if (write(ready[1], "1", 1) != 1)
            _exit(1);
        pause(); /* holds the only slot until killed */
        _exit(0);
    }
    close(ready[1]);
    assert_int_equal(read(ready[0], &c, 1), 1);
    r = open_tier(path, lims, 1);
    assert_non_null(r);
    assert_int_equal(rl_lease_begin(r, "model", &one, 1, RL_HOUR, &lease, &res), RL_OK);
    assert_false(res.allowed); /* the owner lives: its slot is held */
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(rl_lease_begin(r, "model", &one, 1, RL_HOUR, &lease, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_settle(r, &lease, &one, 1), RL_OK);
    rl_close(r);
    close(ready[0]);
    remove_dir(dir);
}

/* 4 processes taking and returning slots of a cap of 3 as fast as they can:
 * the number in flight, sampled by each holder, never exceeds 3, and does
 * reach 3. What is checked is that property, not a rate: a loaded machine
 * (CPU hogs, a busy Redis) grants fewer leases in a second, so until the cap
 * has been seen reached a holder keeps its slot a while (up to 200 ms) for
 * the others to take theirs, the workers go on past their second until then
 * (30 s at most), and any number of grants will do. */
static void test_concurrency_cap_across_processes(void **state)
{
    static const rl_limit lims[] = { RL_CONCURRENT("streams", "streams", 3) };
    char dir[64], path[512];
    int *shared, i, status;
    pid_t pids[4];
    int64_t until, deadline;
    make_dir(dir);
    assert_int_equal(test_store_path(*(int *)*state, dir, path, sizeof path), 0);
    shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(shared != MAP_FAILED);
    shared[0] = shared[1] = shared[2] = 0; /* in flight, max seen, grants */
    until = mono_ns() + RL_SECOND;
    deadline = until + 29 * RL_SECOND;
    for (i = 0; i < 4; i++) {
        if ((pids[i] = fork()) == 0) {
            rl_cost one = { "streams", 1 };
            rl_result res;
            rl_lease lease;
            rl *r = open_tier(path, lims, 1);
            int64_t now;
            int k, seen;
            if (!r)
                _exit(1);
            while ((now = mono_ns()) < until ||
                   (now < deadline && __atomic_load_n(&shared[1], __ATOMIC_SEQ_CST) < 3)) {
                int now_in;
                if (rl_lease_begin(r, "model", &one, 1, RL_MINUTE, &lease, &res) != RL_OK)
                    _exit(1);
                if (!res.allowed)
                    continue;
                now_in = __atomic_add_fetch(&shared[0], 1, __ATOMIC_SEQ_CST);
                __atomic_add_fetch(&shared[2], 1, __ATOMIC_SEQ_CST);
                seen = __atomic_load_n(&shared[1], __ATOMIC_SEQ_CST);
                while (now_in > seen &&
                       !__atomic_compare_exchange_n(&shared[1], &seen, now_in, 0, __ATOMIC_SEQ_CST,
                                                    __ATOMIC_SEQ_CST))
                    ;
                /* held long against a lease's round trips (three on Redis),
                 * and, until the cap has been reached, until it is */
                for (k = 0; k < 100 && __atomic_load_n(&shared[1], __ATOMIC_SEQ_CST) < 3; k++)
                    usleep(2000);
                usleep(2000);
                __atomic_sub_fetch(&shared[0], 1, __ATOMIC_SEQ_CST);
                if (rl_lease_settle(r, &lease, &one, 1) != RL_OK)
                    _exit(1);
            }
            rl_close(r);
            _exit(0);
        }
    }
    for (i = 0; i < 4; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    print_message("cap 3: %d leases granted, at most %d in flight\n", shared[2], shared[1]);
    assert_true(shared[1] <= 3);    /* the cap held */
    assert_int_equal(shared[1], 3); /* and was reached */
    munmap(shared, 4096);
    remove_dir(dir);
}

/* An account's cap shared by 4 processes, each asking through
 * rl_acquire_keys on (its user's key, the account) and now and then
 * rl_reserve on the account (on SQLite these queue and are decided in
 * other processes' batches): the account admits exactly its 200 per day,
 * no more (the cap held) and no fewer (it was reached: each process asks
 * until the account refuses it), and each key counts exactly what its
 * process was told was admitted. */
static void test_keys_cap_across_processes(void **state)
{
    static const rl_limit acct[] = { RL_LIMIT("acct", "requests", 200, 24 * RL_HOUR, 200) };
    static const rl_limit users[] = { RL_LIMIT("user", "requests", 1000, RL_SECOND, 1000) };
    char dir[64], path[512], user[16];
    int64_t *shared, total = 0;
    int i, status;
    pid_t pids[4];
    rl_key_stats st;
    rl *r;
    make_dir(dir);
    assert_int_equal(test_store_path(*(int *)*state, dir, path, sizeof path), 0);
    shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(shared != MAP_FAILED);
    r = open_tier(path, users, 1);
    assert_non_null(r);
    assert_int_equal(rl_tier_set(r, "acct", acct, 1), RL_OK);
    assert_int_equal(rl_key_assign(r, "acct", "acct"), RL_OK);
    rl_close(r);
    for (i = 0; i < 4; i++) {
        if ((pids[i] = fork()) == 0) {
            const char *keys[2] = { user, "acct" };
            rl_cost one = { "requests", 1 };
            rl_reservation rv;
            rl_result res;
            int k, ok;
            rl *w = open_tier(path, users, 1);
            if (!w)
                _exit(1);
            snprintf(user, sizeof user, "user%d", i);
            for (k = 0;; k++) {
                if (k % 4 == 3) {
                    if (rl_reserve(w, "acct", 1, 0, &rv) != RL_OK)
                        _exit(2);
                    ok = rv.ok;
                } else {
                    if (rl_acquire_keys(w, keys, 2, &one, 1, &res) != RL_OK)
                        _exit(3);
                    if (!res.allowed && (res.key_index != 1 || strcmp(res.limit_name, "acct")))
                        _exit(4); /* only the account refuses */
                    ok = res.allowed;
                    if (ok)
                        shared[1 + i]++; /* this user's admissions */
                }
                if (!ok)
                    break;
                __atomic_add_fetch(&shared[0], 1, __ATOMIC_SEQ_CST);
            }
            rl_close(w);
            _exit(0);
        }
    }
    for (i = 0; i < 4; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    print_message("account cap 200: %lld admitted\n", (long long)shared[0]);
    assert_int_equal(shared[0], 200);
    r = open_tier(path, users, 1);
    assert_non_null(r);
    assert_int_equal(rl_stats(r, "acct", &st), RL_OK);
    assert_int_equal(st.allowed, 200);
    for (i = 0; i < 4; i++) {
        snprintf(user, sizeof user, "user%d", i);
        assert_int_equal(rl_stats(r, user, &st), RL_OK);
        assert_int_equal(st.allowed, shared[1 + i]);
        total += shared[1 + i];
    }
    assert_true(total > 0 && total <= 200);
    rl_close(r);
    munmap(shared, 4096);
    remove_dir(dir);
}

/* A cool-down recorded by one process stops the others at once. */
static void test_cooldown_across_processes(void **state)
{
    static const rl_limit lims[] = { RL_LIMIT("rpm", NULL, 1000, RL_MINUTE, 1000) };
    char dir[64], path[512];
    rl_result res;
    int status;
    pid_t pid;
    rl *r;
    make_dir(dir);
    assert_int_equal(test_store_path(*(int *)*state, dir, path, sizeof path), 0);
    r = open_tier(path, lims, 1);
    assert_non_null(r);
    assert_int_equal(rl_allow(r, "provider", 1, &res), RL_OK);
    assert_true(res.allowed);
    if ((pid = fork()) == 0) {
        rl *cr = open_tier(path, lims, 1);
        _exit(cr && rl_penalize(cr, "provider", NULL, 30 * RL_SECOND) == RL_OK ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(rl_allow(r, "provider", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_string_equal(res.limit_name, "cooldown");
    assert_true(res.retry_after_ns > 29 * RL_SECOND && res.retry_after_ns <= 30 * RL_SECOND);
    rl_close(r);
    remove_dir(dir);
}

/* How long this process has been runnable but waiting for a CPU, in ns
 * (/proc/self/schedstat); 0 where that is unknown. */
static int64_t run_delay_ns(void)
{
    unsigned long long on_cpu, delay;
    FILE *f = fopen("/proc/self/schedstat", "r");
    int n = f ? fscanf(f, "%llu %llu", &on_cpu, &delay) : 0;
    if (f)
        fclose(f);
    return n == 2 ? (int64_t)delay : 0;
}

/* Waiters of 4 processes on one key: each loops on a wait; the limit's
 * throughput is shared evenly (Jain's index) and never exceeded. With two
 * batch and two interactive waiters, the interactive ones go first.
 * delays[i] is how long waiter i was kept from its turns by waiting for a
 * CPU: each waiter holds its place in the queue, 4 turns (10 ms) ahead, so
 * only the part of a wait for a CPU beyond WAITER_SLACK during one call
 * counts (a slower return lets the next waiter's turn, and the following
 * ones, go by). */
#define WAITER_SLACK (5 * RL_MILLISECOND)
static void waiters(const char *path, int *counts, int64_t *delays, const int *priority,
                    double *jain, int64_t *total, int64_t *elapsed_ns)
{
    static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 400, RL_SECOND, 1) };
    int64_t until = mono_ns() + 1500 * RL_MILLISECOND, t0 = mono_ns();
    double sum = 0, sq = 0;
    pid_t pids[4];
    int i, status;
    for (i = 0; i < 4; i++) {
        if ((pids[i] = fork()) == 0) {
            rl_cost one = { NULL, 1 };
            rl_result res;
            rl *r = open_tier(path, lims, 1);
            int64_t d0 = run_delay_ns(), d1;
            int rc;
            if (!r)
                _exit(1);
            while (mono_ns() < until) {
                rc = rl_wait_ex(r, "shared", &one, 1, priority[i], RL_SECOND, NULL, &res);
                if (rc == RL_OK && res.allowed)
                    counts[i]++;
                else if (rc != RL_ETIMEOUT)
                    _exit(1);
                d1 = run_delay_ns();
                if (d1 - d0 > WAITER_SLACK)
                    delays[i] += d1 - d0 - WAITER_SLACK;
                d0 = d1;
            }
            rl_close(r);
            _exit(0);
        }
    }
    *total = 0;
    for (i = 0; i < 4; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        sum += counts[i];
        sq += (double)counts[i] * counts[i];
        *total += counts[i];
    }
    *elapsed_ns = mono_ns() - t0;
    *jain = sum * sum / (4 * sq);
}

/* The waiters' turns lost to waiting for a CPU (see waiters), summed: a
 * waiter that is not running when its turn comes cannot take it (and a
 * lock holder that is not running holds up the others). Past this much of
 * it, or with a store slower than WAITERS_STORE_MAX, shares and rates say
 * something of the machine, not of the limiter, and are not checked (the
 * rate is never exceeded, whatever happens). */
#define WAITERS_CPU_WAIT_MAX (50 * RL_MILLISECOND)

/* The store's answer time now: the median of 21 queries (cost 0: nothing
 * consumed), in ns. The waiters need about one answer per turn, 400 a
 * second between them: a store much slower than that (a starved Redis
 * server, whose waits for a CPU no waiter sees) cannot serve the rate. */
#define WAITERS_STORE_MAX RL_MILLISECOND

static int64_t store_latency(const char *path)
{
    static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 400, RL_SECOND, 1) };
    int64_t d[21], t, x;
    rl_result res;
    rl *r = open_tier(path, lims, 1);
    size_t i, j;
    assert_non_null(r);
    for (i = 0; i < 21; i++) {
        t = mono_ns();
        assert_int_equal(rl_allow(r, "probe", 0, &res), RL_OK);
        x = mono_ns() - t;
        for (j = i; j > 0 && d[j - 1] > x; j--) /* insertion sort */
            d[j] = d[j - 1];
        d[j] = x;
    }
    rl_close(r);
    return d[10];
}

static int64_t cpu_wait(const int64_t *delays, char *buf, size_t len)
{
    int64_t sum = delays[0] + delays[1] + delays[2] + delays[3];
    snprintf(buf, len, "lost %.0f ms to waiting for a CPU (%.0f %.0f %.0f %.0f)",
             (double)sum / RL_MILLISECOND, (double)delays[0] / RL_MILLISECOND,
             (double)delays[1] / RL_MILLISECOND, (double)delays[2] / RL_MILLISECOND,
             (double)delays[3] / RL_MILLISECOND);
    return sum;
}

static void test_waiters_fair_and_prioritised(void **state)
{
    static const int same[4] = { 0, 0, 0, 0 };
    static const int mixed[4] = { RL_PRIORITY_INTERACTIVE, RL_PRIORITY_BATCH,
                                  RL_PRIORITY_INTERACTIVE, RL_PRIORITY_BATCH };
    char dir[64], path[512], waited[128];
    int *counts, busy;
    int64_t *delays, lat, lat2;
    double jain;
    int64_t total, elapsed;
    make_dir(dir);
    assert_int_equal(test_store_path(*(int *)*state, dir, path, sizeof path), 0);
    counts = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(counts != MAP_FAILED);
    delays = (int64_t *)(void *)(counts + 16);
    memset(counts, 0, 4096);
    lat = store_latency(path);
    waiters(path, counts, delays, same, &jain, &total, &elapsed);
    if ((lat2 = store_latency(path)) > lat)
        lat = lat2;
    busy =
        cpu_wait(delays, waited, sizeof waited) > WAITERS_CPU_WAIT_MAX || lat > WAITERS_STORE_MAX;
    print_message("4 waiters: %d %d %d %d admitted, Jain's index %.4f; %s; the store "
                  "answers in %.2f ms\n",
                  counts[0], counts[1], counts[2], counts[3], jain, waited,
                  (double)lat / RL_MILLISECOND);
    /* served at the rate, never more, however busy the machine */
    assert_true(total <= 1 + (int64_t)((__int128)400 * elapsed / RL_SECOND));
    if (!busy) {
        assert_true(jain >= 0.98);                          /* shared evenly */
        assert_true(total * 100 >= 90 * 400 * 1500 / 1000); /* at the rate */
    } else {
        print_message("  fairness and rate not checked: the CPUs or the store are too busy\n");
    }
    memset(counts, 0, 4096);
    lat = store_latency(path);
    waiters(path, counts, delays, mixed, &jain, &total, &elapsed);
    if ((lat2 = store_latency(path)) > lat)
        lat = lat2;
    /* A batch waiter sleeps and looks again: its own waits for a CPU only
     * lower the batch's share. What lets batch go first is an interactive
     * waiter that is not running when its turn comes. */
    cpu_wait(delays, waited, sizeof waited);
    busy = delays[0] + delays[2] > WAITERS_CPU_WAIT_MAX || lat > WAITERS_STORE_MAX;
    print_message("interactive %d %d, batch %d %d; %s; the store answers in %.2f ms\n", counts[0],
                  counts[2], counts[1], counts[3], waited, (double)lat / RL_MILLISECOND);
    assert_true(total <= 1 + (int64_t)((__int128)400 * elapsed / RL_SECOND));
    if (!busy)
        assert_true((counts[0] + counts[2]) * 100 >= 90 * total);
    else
        print_message("  priorities not checked: the CPUs or the store are too busy\n");
    munmap(counts, 4096);
    remove_dir(dir);
}

/* Priorities age (issue 17): two interactive waiters keep a rate busy for
 * 2.5 s, each always queued ahead by a reservation; a batch waiter that
 * asks with a 2 s timeout is served every time, within 1.5 s, not
 * starved: once it has waited RL_BATCH_AGE_NS it reserves like them. (Without ageing it only
 * took room free at the moment it looked, which they never left.) */
static void test_batch_waiter_ages(void **state)
{
    static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 100, RL_SECOND, 1) };
    char dir[64], path[512];
    int64_t until;
    int *out, i, status;
    pid_t pids[3];
    make_dir(dir);
    assert_int_equal(test_store_path(*(int *)*state, dir, path, sizeof path), 0);
    out = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(out != MAP_FAILED);
    memset(out, 0, 4096);
    until = mono_ns() + 2500 * RL_MILLISECOND;
    for (i = 0; i < 3; i++) {
        if ((pids[i] = fork()) == 0) {
            rl_cost one = { NULL, 1 };
            rl_result res;
            rl *r = open_tier(path, lims, 1);
            int prio = i == 2 ? RL_PRIORITY_BATCH : RL_PRIORITY_INTERACTIVE, rc;
            if (!r)
                _exit(1);
            while (mono_ns() < until) {
                int64_t t0 = mono_ns(), took;
                rc = rl_wait_ex(r, "shared", &one, 1, prio, 2 * RL_SECOND, NULL, &res);
                took = (mono_ns() - t0) / RL_MILLISECOND;
                if (took > out[16 + i])
                    out[16 + i] = (int)took;
                if (rc == RL_OK && res.allowed)
                    out[i]++;
                else if (rc == RL_ETIMEOUT)
                    out[8 + i]++;
                else
                    _exit(1);
            }
            rl_close(r);
            _exit(0);
        }
    }
    for (i = 0; i < 3; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    print_message("interactive %d %d, batch %d admitted (%d timeouts), its longest wait %d ms\n",
                  out[0], out[1], out[2], out[10], out[18]);
    assert_true(out[2] >= 1);
    assert_int_equal(out[10], 0); /* the batch waiter never gave up */
    /* ... and waited about RL_BATCH_AGE_NS each time, not until luck */
    assert_true(out[18] <= 1500);
    munmap(out, 4096);
    remove_dir(dir);
}

static int setup_sqlite(void **state)
{
    static int kind = STORE_SQLITE;
    *state = &kind;
    return 0;
}

static int setup_redis(void **state)
{
    static int kind = STORE_REDIS;
    *state = &kind;
    return 0;
}

#define BOTH(fn) cmocka_unit_test_setup(fn, setup_sqlite), cmocka_unit_test_setup(fn, setup_redis)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_concurrent_create),
        BOTH(test_four_processes_one_key),
        BOTH(test_kill9_while_deciding),
        BOTH(test_killed_lease_reclaimed),
        BOTH(test_concurrency_cap_across_processes),
        BOTH(test_keys_cap_across_processes),
        BOTH(test_cooldown_across_processes),
        BOTH(test_waiters_fair_and_prioritised),
        BOTH(test_batch_waiter_ages),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
