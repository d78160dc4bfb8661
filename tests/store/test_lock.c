/*
 * test_lock.c - the write lock's group commit (store/lock.c), as processes
 * sharing one database file see it.
 *
 * What users rely on: callers (rl_allow, rl_acquire) that queue behind a
 * busy writer are all answered, each by its own handle's limits, even when more of them wait
 * than the queue has slots; a caller waits no longer than busy_timeout_ms;
 * and when the process deciding for others is killed, its batch is settled
 * by what the database holds: answered if it was committed, decided again
 * if it was not, never counted twice and never reported as a failure.
 * Real processes (fork) and real files; the dying leader is a child driving
 * the store's group-commit calls by hand, so it can die at a chosen point.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rl.h"
#include "rl_int.h"
#include "lock.h"

static const rl_limit small[] = { RL_LIMIT("rps", NULL, 10, RL_SECOND, 10) };
static const rl_limit large[] = { RL_LIMIT("rps", NULL, 1000, RL_SECOND, 1000) };

typedef struct fx {
    char dir[64];
    char path[128];
    char lockpath[160];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    int rc = -1;
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/rl_test_lock.XXXXXX");
    if (!mkdtemp(f->dir))
        goto out;
    snprintf(f->path, sizeof f->path, "%s/rl.db", f->dir);
    snprintf(f->lockpath, sizeof f->lockpath, "%s-rlshm", f->path);
    o.default_limits = small;
    o.n_default_limits = 1;
    if (rl_open(&r, f->path, &o) == RL_OK) /* the file and its lock file exist */
        rc = 0;
    rl_close(r);
out:
    if (rc != 0)
        free(f);
    else
        *state = f;
    return rc;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static rl *open_with(const char *path, const rl_limit *lims, int busy_ms)
{
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    o.default_limits = lims;
    o.n_default_limits = 1;
    o.busy_timeout_ms = busy_ms;
    if (rl_open(&r, path, &o) != RL_OK) {
        fprintf(stderr, "open: %s\n", rl_errmsg(r));
        _exit(90);
    }
    return r;
}

/* A child that opens a handle, says so on ready_fd, waits for a byte on
 * go_fd, makes one rl_allow and writes its code and result to fd. */
typedef struct answer {
    int rc;
    rl_result res;
    char msg[256];
} answer;

typedef struct pipes {
    int ready[2], go[2], out[2];
} pipes;

static void pipes_open(pipes *p)
{
    assert_int_equal(pipe(p->ready), 0);
    assert_int_equal(pipe(p->go), 0);
    assert_int_equal(pipe(p->out), 0);
}

static void pipes_close(pipes *p)
{
    int i;
    for (i = 0; i < 2; i++) {
        close(p->ready[i]);
        close(p->go[i]);
        close(p->out[i]);
    }
}

/* Pause hooks (RL_TEST_HOOKS): a child armed with arm() stops the first
 * time it reaches step, says so with a byte on hook_up and goes on when it
 * reads one from hook_down. So a race is run step by step, without sleeps. */
static int pause_at = -1, hook_up = -1, hook_down = -1;

static void pause_hook(int step)
{
    char c;
    if (step != pause_at)
        return;
    pause_at = -1;
    if (write(hook_up, "h", 1) != 1 || read(hook_down, &c, 1) != 1)
        _exit(89);
}

typedef struct hook {
    int up[2], down[2];
} hook;

static void hook_open(hook *h)
{
    assert_int_equal(pipe(h->up), 0);
    assert_int_equal(pipe(h->down), 0);
}

static void hook_close(hook *h)
{
    close(h->up[0]);
    close(h->up[1]);
    close(h->down[0]);
    close(h->down[1]);
}

/* In the child. */
static void arm(const hook *h, int step)
{
    pause_at = step;
    hook_up = h->up[1];
    hook_down = h->down[0];
    rl__lock_hook = pause_hook;
}

/* In the parent: waits until the child stopped at its step / lets it go. */
static void reached(const hook *h)
{
    char c;
    assert_int_equal(read(h->up[0], &c, 1), 1);
}

static void resume(const hook *h)
{
    assert_int_equal(write(h->down[1], "r", 1), 1);
}

static const hook *asker_hook; /* set around a fork of a paused asker */
static int asker_step;

/* tokens > 0: rl_acquire of 1 request and that many tokens; else rl_allow. */
static pid_t asker_n(const char *path, const char *key, const rl_limit *lims, size_t nlims,
                     int busy_ms, int64_t tokens, const pipes *p)
{
    pid_t pid = fork();
    if (pid == 0) {
        rl_options o = RL_OPTIONS_INIT;
        rl_cost costs[2] = { { "requests", 1 }, { "tokens", tokens } };
        answer a;
        char c;
        rl *r = NULL;
        o.default_limits = lims;
        o.n_default_limits = nlims;
        o.busy_timeout_ms = busy_ms;
        if (rl_open(&r, path, &o) != RL_OK)
            _exit(90);
        if (asker_hook)
            arm(asker_hook, asker_step);
        memset(&a, 0, sizeof a);
        if (write(p->ready[1], "r", 1) != 1 || read(p->go[0], &c, 1) != 1)
            _exit(91);
        if (tokens > 0)
            a.rc = rl_acquire(r, key, costs, 2, &a.res);
        else
            a.rc = rl_allow(r, key, 1, &a.res);
        snprintf(a.msg, sizeof a.msg, "%s", rl_errmsg(r));
        rl_close(r);
        _exit(write(p->out[1], &a, sizeof a) == (ssize_t)sizeof a ? 0 : 92);
    }
    assert_true(pid > 0);
    return pid;
}

static pid_t asker(const char *path, const char *key, const rl_limit *lims, int busy_ms,
                   const pipes *p)
{
    return asker_n(path, key, lims, 1, busy_ms, 0, p);
}

/* An asker that stops at step (see arm()). */
static pid_t asker_paused(const char *path, const char *key, const rl_limit *lims,
                          const pipes *p, const hook *h, int step)
{
    pid_t pid;
    asker_hook = h;
    asker_step = step;
    pid = asker_n(path, key, lims, 1, 5000, 0, p);
    asker_hook = NULL;
    return pid;
}

/* Waits until n askers have their handles open (rl_open takes the lock
 * too, so this comes before hold()). */
static void ready(const pipes *p, int n)
{
    char c;
    int i;
    for (i = 0; i < n; i++)
        assert_int_equal(read(p->ready[0], &c, 1), 1);
}

static void go(const pipes *p, int n)
{
    int i;
    for (i = 0; i < n; i++)
        assert_int_equal(write(p->go[1], "g", 1), 1);
}

static void collect(const pipes *p, answer *a)
{
    assert_int_equal(read(p->out[0], a, sizeof *a), (ssize_t)sizeof *a);
}

static void reap(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* One rl_allow in a child of its own, with nobody else about. */
static void ask_once(const char *path, const char *key, int busy_ms, answer *a)
{
    pipes p;
    pid_t pid;
    pipes_open(&p);
    pid = asker(path, key, small, busy_ms, &p);
    ready(&p, 1);
    go(&p, 1);
    collect(&p, a);
    reap(pid);
    pipes_close(&p);
}

static rl_lock *hold(const char *dbpath)
{
    rl_lock *l = NULL;
    char err[RL_ERRMSG_MAX];
    int64_t waited;
    uint64_t old;
    assert_int_equal(rl_lock_open(&l, dbpath, 0600, 0, &old, err), RL_OK);
    assert_int_equal(rl_lock_acquire(l, 5000, &waited, err), RL_OK);
    return l;
}

static int64_t allowed_of(const char *path, const char *key)
{
    rl_key_stats st;
    rl *r = open_with(path, small, 5000);
    memset(&st, 0, sizeof st);
    assert_int_equal(rl_stats(r, key, &st), RL_OK);
    rl_close(r);
    return st.allowed;
}

/* 20 callers queue behind a held lock, more than the 16 slots: every one
 * is answered once it is released, and each counted once. */
static void test_more_waiters_than_slots(void **state)
{
    fx *f = *state;
    pid_t pids[20];
    answer a;
    pipes p;
    rl_lock *l;
    int i;
    pipes_open(&p);
    for (i = 0; i < 20; i++)
        pids[i] = asker(f->path, "many", large, 5000, &p);
    ready(&p, 20);
    l = hold(f->path);
    go(&p, 20);
    sleep_ms(300);
    rl_lock_release(l);
    for (i = 0; i < 20; i++) {
        collect(&p, &a);
        assert_int_equal(a.rc, RL_OK);
        assert_true(a.res.allowed);
    }
    for (i = 0; i < 20; i++)
        reap(pids[i]);
    rl_lock_close(l);
    pipes_close(&p);
    assert_int_equal(allowed_of(f->path, "many"), 20);
}

/* Two handles with different default limits queue together: whichever
 * leads, each is decided by its own limits. */
static void test_each_by_its_own_limits(void **state)
{
    fx *f = *state;
    int i, round, seen_small, seen_large;
    pipes p;
    rl_lock *l;
    pid_t pa, pb;
    pipes_open(&p);
    for (round = 0; round < 5; round++) {
        char ka[16], kb[16];
        snprintf(ka, sizeof ka, "small%d", round);
        snprintf(kb, sizeof kb, "large%d", round);
        pa = asker(f->path, ka, small, 5000, &p);
        pb = asker(f->path, kb, large, 5000, &p);
        ready(&p, 2);
        l = hold(f->path);
        go(&p, 2);
        sleep_ms(100);
        rl_lock_release(l);
        seen_small = seen_large = 0;
        for (i = 0; i < 2; i++) {
            answer x;
            collect(&p, &x);
            assert_int_equal(x.rc, RL_OK);
            if (x.res.limit == 10) {
                assert_int_equal(x.res.remaining, 9);
                seen_small++;
            } else {
                assert_int_equal(x.res.limit, 1000);
                assert_int_equal(x.res.remaining, 999);
                seen_large++;
            }
        }
        assert_int_equal(seen_small, 1);
        assert_int_equal(seen_large, 1);
        reap(pa);
        reap(pb);
        rl_lock_close(l);
    }
    pipes_close(&p);
}

/* rl_acquire calls with several costs queue and are decided together, each
 * against every limit, in the order they queued: with 1000 tokens an hour
 * (so that a slow machine refills nothing that matters), three calls of
 * 300 tokens pass and the fourth, asking for 300 of the 100 left, is
 * refused with what remains. */
static void test_acquire_queued(void **state)
{
    static const rl_limit two[] = {
        RL_LIMIT("rph", "requests", 100, RL_HOUR, 100),
        RL_LIMIT("tph", "tokens", 1000, RL_HOUR, 1000),
    };
    fx *f = *state;
    pid_t pids[4];
    int i, passed = 0, refused = 0;
    answer a;
    pipes p;
    rl_lock *l;
    pipes_open(&p);
    for (i = 0; i < 4; i++)
        pids[i] = asker_n(f->path, "agent", two, 2, 5000, 300, &p);
    ready(&p, 4);
    l = hold(f->path);
    go(&p, 4);
    sleep_ms(200);
    rl_lock_release(l);
    for (i = 0; i < 4; i++) {
        collect(&p, &a);
        assert_int_equal(a.rc, RL_OK);
        if (a.res.allowed) {
            passed++;
        } else {
            refused++;
            assert_string_equal(a.res.limit_name, "tph");
            assert_true(a.res.remaining >= 100 && a.res.remaining <= 101);
            assert_true(a.res.retry_after_ns > 0);
        }
    }
    for (i = 0; i < 4; i++)
        reap(pids[i]);
    rl_lock_close(l);
    pipes_close(&p);
    assert_int_equal(passed, 3);
    assert_int_equal(refused, 1);
    assert_int_equal(allowed_of(f->path, "agent"), 3);
}

/* Three processes hammer one key with the same limits, and a fourth, whose
 * limits differ (so no leader of theirs may decide its calls), asks now and
 * then: every one of its calls is answered within its busy timeout. (Its
 * slot is handed the lead after each release; measured here, its slowest
 * call took 2-3 ms.) */
static void test_lone_signature_not_starved(void **state)
{
    fx *f = *state;
    pid_t pids[4];
    int i, status, go_fd[2];
    char c;
    assert_int_equal(pipe(go_fd), 0);
    for (i = 0; i < 4; i++) {
        if ((pids[i] = fork()) == 0) {
            rl *r = open_with(f->path, i < 3 ? large : small, 1000);
            rl_result res;
            int k, rc = RL_OK;
            if (read(go_fd[0], &c, 1) != 1)
                _exit(91);
            if (i < 3) {
                time_t end = time(NULL) + 2;
                while (rc == RL_OK && time(NULL) < end)
                    rc = rl_allow(r, "hot", 1, &res);
            } else {
                for (k = 0; rc == RL_OK && k < 40; k++) {
                    rc = rl_allow(r, "lone", 0, &res);
                    sleep_ms(20);
                }
            }
            if (rc != RL_OK)
                fprintf(stderr, "process %d: %s\n", i, rl_errmsg(r));
            rl_close(r);
            _exit(rc == RL_OK ? 0 : 1);
        }
        assert_true(pids[i] > 0);
    }
    sleep_ms(200); /* all open before any starts */
    for (i = 0; i < 4; i++)
        assert_int_equal(write(go_fd[1], "g", 1), 1);
    for (i = 0; i < 4; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    close(go_fd[0]);
    close(go_fd[1]);
}

/* A caller queued behind a writer that never lets go gives up after its
 * busy_timeout_ms with RL_EBUSY and the fail mode's answer, and its slot is
 * free again: once the lock is released the next call is answered. */
static void test_queued_caller_times_out(void **state)
{
    fx *f = *state;
    answer a;
    pipes p;
    rl_lock *l;
    pid_t pid;
    pipes_open(&p);
    pid = asker(f->path, "slow", small, 200, &p);
    ready(&p, 1);
    l = hold(f->path);
    go(&p, 1);
    collect(&p, &a);
    reap(pid);
    assert_int_equal(a.rc, RL_EBUSY);
    assert_false(a.res.allowed);
    assert_non_null(strstr(a.msg, "write lock"));
    rl_lock_release(l);
    ask_once(f->path, "slow", 200, &a);
    assert_int_equal(a.rc, RL_OK);
    assert_true(a.res.allowed);
    rl_lock_close(l);
    pipes_close(&p);
    assert_int_equal(allowed_of(f->path, "slow"), 1);
}

/* A leader driven by hand: takes the lock as a group-commit leader, waits
 * for one posted request, "decides" it (one more admitted decision on its
 * key, and the marker answer remaining = 4242), commits or not, and dies
 * without answering. */
enum { DIE_BEFORE_COMMIT, DIE_AFTER_COMMIT, DIE_LATE, ANSWER_LATE };

static void fake_leader_with(const char *path, const rl_limit *lims, int when, int ready_fd,
                             int cont_fd)
{
    rl *r = open_with(path, lims, 5000);
    rl_store *s = rl__store(r);
    rl_group_req me, *batch[16];
    rl_row row;
    int64_t version, deadline = time(NULL) + 10;
    size_t n = 0;
    memset(&me, 0, sizeof me);
    strcpy(me.key, "self");
    me.sig = rl__group_sig(r);
    if (s->ops->group_join(s, &me) != RL_GROUP_LEAD || s->ops->begin(s, 1) != RL_OK)
        _exit(92);
    if (write(ready_fd, "x", 1) != 1)
        _exit(93);
    while (n == 0 && time(NULL) < deadline) {
        n = s->ops->group_take(s, me.sig, batch, 16);
        if (n == 0)
            sleep_ms(1);
    }
    if (n != 1 || s->ops->row_get(s, batch[0]->key, &row, &version) != RL_OK)
        _exit(94);
    row.allowed++;
    row.units++;
    if (s->ops->row_put(s, batch[0]->key, &row) != RL_OK)
        _exit(95);
    batch[0]->rc = RL_OK;
    batch[0]->res.allowed = 1;
    batch[0]->res.limit = 10;
    batch[0]->res.remaining = 4242;
    if ((when == DIE_AFTER_COMMIT || when == ANSWER_LATE) && s->ops->commit(s) != RL_OK)
        _exit(96);
    if (when == ANSWER_LATE) { /* committed; answers when told to */
        char c;
        if (write(ready_fd, "t", 1) != 1 || read(cont_fd, &c, 1) != 1)
            _exit(97);
        s->ops->group_end(s);
        rl_close(r);
        _exit(0);
    }
    if (when == DIE_LATE) /* longer than the asker's busy timeout */
        sleep_ms(600);
    kill(getpid(), SIGKILL);
}

static void fake_leader(const char *path, int when, int ready_fd, int cont_fd)
{
    fake_leader_with(path, small, when, ready_fd, cont_fd);
}

static void leader_dies(fx *f, int when, int busy_ms, answer *a)
{
    int up[2], status;
    char c;
    pipes p;
    pid_t leader, pid;
    pipes_open(&p);
    assert_int_equal(pipe(up), 0);
    pid = asker(f->path, "k", small, busy_ms, &p);
    ready(&p, 1);
    if ((leader = fork()) == 0)
        fake_leader(f->path, when, up[1], -1);
    assert_true(leader > 0);
    assert_int_equal(read(up[0], &c, 1), 1); /* the leader holds the lock */
    go(&p, 1);
    assert_int_equal(waitpid(leader, &status, 0), leader);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    collect(&p, a);
    reap(pid);
    close(up[0]);
    close(up[1]);
    pipes_close(&p);
}

/* It committed: the queued caller gets the answer it was given, without an
 * error, and the key counts that one decision once. */
static void test_leader_killed_after_commit(void **state)
{
    fx *f = *state;
    answer a;
    leader_dies(f, DIE_AFTER_COMMIT, 5000, &a);
    assert_int_equal(a.rc, RL_OK);
    assert_true(a.res.allowed);
    assert_int_equal(a.res.remaining, 4242);
    assert_int_equal(allowed_of(f->path, "k"), 1);
}

/* It died before committing: nothing of its batch was written, the queued
 * caller's request is decided again (by the caller itself here), and the
 * key counts one decision. */
static void test_leader_killed_before_commit(void **state)
{
    fx *f = *state;
    answer a;
    leader_dies(f, DIE_BEFORE_COMMIT, 5000, &a);
    assert_int_equal(a.rc, RL_OK);
    assert_true(a.res.allowed);
    assert_int_equal(a.res.remaining, 9);
    assert_int_equal(allowed_of(f->path, "k"), 1);
}

/* The leader took the request and then hung for longer than the caller's
 * busy timeout: the caller gets RL_EBUSY saying it cannot know whether it
 * was counted (as after any timeout), and the fail mode's answer. Once
 * that leader is gone, its abandoned slot is freed, not decided, and the
 * next call is answered. */
static void test_leader_too_slow(void **state)
{
    fx *f = *state;
    answer a;
    leader_dies(f, DIE_LATE, 200, &a);
    assert_int_equal(a.rc, RL_EBUSY);
    assert_false(a.res.allowed);
    assert_non_null(strstr(a.msg, "may or may not have been counted"));
    ask_once(f->path, "k", 5000, &a);
    assert_int_equal(a.rc, RL_OK);
    assert_true(a.res.allowed);
    assert_int_equal(a.res.remaining, 9);
    assert_int_equal(allowed_of(f->path, "k"), 1);
}

/* A caller stalled (SIGSTOP) after its answer came, however long: its
 * slot is never taken from it, since it is alive, even while 20 other
 * callers (more than the 16 slots) go through the queue; resumed, it reads
 * its own answer (the marker 4242 its leader gave it). Old rule, for the
 * record: a slot over a second old was taken, and the caller told "the
 * answer was lost". */
static void test_stalled_caller_keeps_answer(void **state)
{
    fx *f = *state;
    int up[2], cont[2], i;
    answer a;
    pipes p, p2;
    pid_t leader, pid, pids[20];
    hook h;
    rl_lock *l;
    char c;
    pipes_open(&p);
    pipes_open(&p2);
    hook_open(&h);
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(cont), 0);
    pid = asker_paused(f->path, "k", small, &p, &h, RL_STEP_ANSWERED);
    for (i = 0; i < 20; i++)
        pids[i] = asker(f->path, "other", large, 5000, &p2);
    ready(&p, 1);
    ready(&p2, 20);
    if ((leader = fork()) == 0)
        fake_leader(f->path, ANSWER_LATE, up[1], cont[0]);
    assert_true(leader > 0);
    assert_int_equal(read(up[0], &c, 1), 1); /* the leader holds the lock */
    go(&p, 1);
    assert_int_equal(read(up[0], &c, 1), 1); /* it took and committed the request */
    assert_int_equal(write(cont[1], "c", 1), 1);
    assert_int_equal(waitpid(leader, NULL, 0), leader);
    reached(&h); /* the caller sees its answer... */
    kill(pid, SIGSTOP); /* ...and stops before reading it */
    resume(&h);
    l = hold(f->path);
    go(&p2, 20); /* they post into every other slot, and queue for the lock */
    rl_lock_release(l);
    for (i = 0; i < 20; i++) {
        collect(&p2, &a);
        assert_int_equal(a.rc, RL_OK);
        assert_true(a.res.allowed);
        assert_int_equal(a.res.limit, 1000);
        reap(pids[i]);
    }
    kill(pid, SIGCONT);
    collect(&p, &a);
    reap(pid);
    assert_int_equal(a.rc, RL_OK);
    assert_true(a.res.allowed);
    assert_int_equal(a.res.remaining, 4242);
    rl_lock_close(l);
    pipes_close(&p);
    pipes_close(&p2);
    hook_close(&h);
    close(up[0]);
    close(up[1]);
    close(cont[0]);
    close(cont[1]);
    assert_int_equal(allowed_of(f->path, "k"), 1);
    assert_int_equal(allowed_of(f->path, "other"), 20);
}

/* A damaged request in the lock file (1000 costs where there is room for
 * RL_MAX_LIMITS) posted by a process that then stops: the next leader
 * answers it RL_ECORRUPT instead of reading and writing past its bounds,
 * and decides its own call as usual. */
static void test_damaged_request_refused(void **state)
{
    fx *f = *state;
    int status, rc, brc;
    answer a;
    pipes p, pp;
    rl_lock *l;
    pid_t poster, pid;
    pipes_open(&p);
    pipes_open(&pp);
    pid = asker(f->path, "good", small, 5000, &p);
    if ((poster = fork()) == 0) {
        rl *r = open_with(f->path, small, 5000); /* for its signature only */
        rl_group_req bad;
        rl_lock *pl = NULL;
        char err[RL_ERRMSG_MAX], c;
        size_t k;
        memset(&bad, 0, sizeof bad);
        strcpy(bad.key, "bad");
        for (k = 0; k < RL_MAX_LIMITS; k++) /* valid names: only the count is wrong */
            snprintf(bad.resource[k], RL_NAME_MAX, "r%zu", k);
        bad.ncosts = 1000;
        bad.sig = rl__group_sig(r);
        rl_close(r);
        uint64_t old;
        if (rl_lock_open(&pl, f->path, 0600, 0, &old, err) != RL_OK)
            _exit(90);
        if (write(pp.ready[1], "r", 1) != 1 || read(pp.go[0], &c, 1) != 1)
            _exit(91);
        rc = rl_lock_join(pl, 5000, &bad, err);
        if (write(pp.out[1], &rc, sizeof rc) != (ssize_t)sizeof rc ||
            write(pp.out[1], &bad.rc, sizeof bad.rc) != (ssize_t)sizeof bad.rc)
            _exit(92);
        rl_lock_close(pl);
        _exit(0);
    }
    assert_true(poster > 0);
    ready(&p, 1);
    ready(&pp, 1);
    l = hold(f->path);
    go(&pp, 1);
    sleep_ms(100); /* posted, and waiting */
    kill(poster, SIGSTOP);
    go(&p, 1);
    sleep_ms(100);
    rl_lock_release(l); /* the asker leads and takes the damaged request too */
    collect(&p, &a);
    reap(pid);
    assert_int_equal(a.rc, RL_OK);
    assert_true(a.res.allowed);
    assert_int_equal(a.res.remaining, 9);
    kill(poster, SIGCONT);
    assert_int_equal(read(pp.out[0], &rc, sizeof rc), (ssize_t)sizeof rc);
    assert_int_equal(read(pp.out[0], &brc, sizeof brc), (ssize_t)sizeof brc);
    assert_int_equal(rc, RL_OK);        /* answered by the leader... */
    assert_int_equal(brc, RL_ECORRUPT); /* ...as damaged */
    assert_int_equal(waitpid(poster, &status, 0), poster);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    rl_lock_close(l);
    pipes_close(&p);
    pipes_close(&pp);
    assert_int_equal(allowed_of(f->path, "good"), 1);
}


/* ---- the lock file as input (issue 14) ------------------------------------ */

/* Finding 1: a slot claimed by a live caller cannot be taken by another.
 * alice's caller stops between claiming a slot and copying its request in;
 * bob's caller (bob has no budget left) posts meanwhile. Each gets its own
 * answer, and the database charges alice once and refuses bob once. (On the
 * old protocol bob took alice's never-used slot, whose age read as over a
 * second, and was admitted with alice's answer.) */
static void test_live_slot_not_stolen(void **state)
{
    static const rl_limit hourly[] = { RL_LIMIT("rph", NULL, 10, RL_HOUR, 10) };
    fx *f = *state;
    rl *r = open_with(f->path, hourly, 5000); /* nothing refills on a slow machine */
    rl_result res;
    rl_key_stats st;
    answer a;
    pipes pa, pb;
    hook ha, hb;
    rl_lock *l;
    pid_t ka, kb;
    int i;
    for (i = 0; i < 10; i++)
        assert_int_equal(rl_allow(r, "bob", 1, &res), RL_OK);
    assert_false(res.allowed == 0);
    pipes_open(&pa);
    pipes_open(&pb);
    hook_open(&ha);
    hook_open(&hb);
    ka = asker_paused(f->path, "alice", hourly, &pa, &ha, RL_STEP_CLAIMED);
    kb = asker_paused(f->path, "bob", hourly, &pb, &hb, RL_STEP_POSTED);
    ready(&pa, 1);
    ready(&pb, 1);
    l = hold(f->path);
    go(&pa, 1);
    reached(&ha); /* alice: slot claimed, request not yet copied */
    go(&pb, 1);
    reached(&hb); /* bob: posted */
    resume(&hb);
    resume(&ha);
    rl_lock_release(l);
    collect(&pa, &a);
    assert_int_equal(a.rc, RL_OK);
    assert_true(a.res.allowed);
    assert_int_equal(a.res.remaining, 9);
    collect(&pb, &a);
    assert_int_equal(a.rc, RL_OK);
    assert_false(a.res.allowed);
    assert_int_equal(a.res.remaining, 0);
    reap(ka);
    reap(kb);
    memset(&st, 0, sizeof st);
    assert_int_equal(rl_stats(r, "alice", &st), RL_OK);
    assert_int_equal(st.allowed, 1);
    assert_int_equal(rl_stats(r, "bob", &st), RL_OK);
    assert_int_equal(st.allowed, 10);
    assert_int_equal(st.refused, 1);
    rl_close(r);
    rl_lock_close(l);
    pipes_close(&pa);
    pipes_close(&pb);
    hook_close(&ha);
    hook_close(&hb);
}

/* Finding 2: a leader dies before committing a follower's request (burst
 * 1), and before anyone settles its batch another writer that does not use
 * the lock (RL_BUSY_SQLITE) spends the key's one unit. The follower's
 * request is decided again, and refused: one admission in all. (The old
 * rule compared the key's decision count with the leader's, and counted the
 * other writer's decision as the dead leader's commit: two admissions.) */
static void test_dead_leader_other_writer(void **state)
{
    static const rl_limit one[] = { RL_LIMIT("rph", NULL, 1, RL_HOUR, 1) };
    fx *f = *state;
    int up[2], status;
    answer a;
    pipes p;
    hook h;
    pid_t leader, pid;
    rl_options o = RL_OPTIONS_INIT;
    rl_result res;
    rl *other = NULL;
    char c;
    pipes_open(&p);
    hook_open(&h);
    assert_int_equal(pipe(up), 0);
    pid = asker_paused(f->path, "k", one, &p, &h, RL_STEP_LOCKED);
    ready(&p, 1);
    if ((leader = fork()) == 0)
        fake_leader_with(f->path, one, DIE_BEFORE_COMMIT, up[1], -1);
    assert_true(leader > 0);
    assert_int_equal(read(up[0], &c, 1), 1); /* the leader holds the lock */
    go(&p, 1);
    assert_int_equal(waitpid(leader, &status, 0), leader);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    reached(&h); /* the follower took the dead leader's lock, before recovery */
    o.default_limits = one;
    o.n_default_limits = 1;
    o.busy_strategy = RL_BUSY_SQLITE;
    assert_int_equal(rl_open(&other, f->path, &o), RL_OK);
    assert_int_equal(rl_allow(other, "k", 1, &res), RL_OK);
    assert_true(res.allowed);
    rl_close(other);
    resume(&h);
    collect(&p, &a);
    reap(pid);
    assert_int_equal(a.rc, RL_OK);
    assert_false(a.res.allowed);
    assert_int_equal(allowed_of(f->path, "k"), 1);
    hook_close(&h);
    pipes_close(&p);
    close(up[0]);
    close(up[1]);
}

/* Finding 4: the lock file is allocated when it is made, so a full disk is
 * RL_EFULL at rl_open, not SIGBUS at the first contention. A 1 MiB tmpfs
 * holds the database; a filler takes the rest. Skipped where mounting is
 * not allowed (not root, or in a container without CAP_SYS_ADMIN). */
static void test_disk_full_lock_file(void **state)
{
    fx *f = *state;
    char dir[160], db[200], lockf[220], filler[220], cmd[400], buf[4096];
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    int fd, rc;
    snprintf(dir, sizeof dir, "%s/small", f->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=1m tmpfs '%s' 2>/dev/null", dir);
    if (geteuid() != 0 || system(cmd) != 0) {
        printf("[ SKIPPED  ] test_disk_full_lock_file: cannot mount a tmpfs here\n");
        return;
    }
    snprintf(db, sizeof db, "%s/rl.db", dir);
    snprintf(lockf, sizeof lockf, "%s-rlshm", db);
    snprintf(filler, sizeof filler, "%s/filler", dir);
    o.default_limits = small;
    o.n_default_limits = 1;
    assert_int_equal(rl_open(&r, db, &o), RL_OK);
    rl_close(r);
    r = NULL;
    assert_int_equal(unlink(lockf), 0);
    memset(buf, 'x', sizeof buf);
    fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    while (write(fd, buf, sizeof buf) > 0)
        ;
    close(fd);
    rc = rl_open(&r, db, &o);
    assert_int_equal(rc, RL_EFULL);
    assert_non_null(strstr(rl_errmsg(r), "rlshm"));
    rl_close(r);
    r = NULL;
    assert_int_equal(unlink(filler), 0);
    assert_int_equal(rl_open(&r, db, &o), RL_OK);
    rl_close(r);
    snprintf(cmd, sizeof cmd, "umount '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Overwrites the whole lock file with a repeated 8-byte pattern, size kept. */
static void scribble(const char *lockpath, const unsigned char pat[8])
{
    unsigned char buf[4096];
    struct stat st;
    off_t at;
    int fd = open(lockpath, O_WRONLY);
    size_t i;
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    for (i = 0; i < sizeof buf; i++)
        buf[i] = pat[i % 8];
    for (at = 0; at < st.st_size; at += (off_t)sizeof buf)
        assert_true(pwrite(fd, buf, sizeof buf, at) > 0);
    close(fd);
}

/* Four processes that each open a handle, wait, then decide 200 times on
 * one key and report their admissions and failures. */
typedef struct crowd {
    pid_t pids[4];
    int out[2];
    hook h;
} crowd;

static void crowd_start(fx *f, crowd *c)
{
    int i;
    hook_open(&c->h);
    assert_int_equal(pipe(c->out), 0);
    for (i = 0; i < 4; i++) {
        if ((c->pids[i] = fork()) == 0) {
            rl *r = open_with(f->path, large, 5000);
            rl_result res;
            int64_t n[2] = { 0, 0 }; /* admitted, failed */
            int k;
            char b;
            if (write(c->h.up[1], "o", 1) != 1 || read(c->h.down[0], &b, 1) != 1)
                _exit(91);
            for (k = 0; k < 200; k++) {
                int rc = rl_allow(r, "hot", 1, &res);
                if (rc == RL_OK && res.allowed)
                    n[0]++;
                else if (rc != RL_OK)
                    n[1]++;
            }
            rl_close(r);
            _exit(write(c->out[1], n, sizeof n) == (ssize_t)sizeof n ? 0 : 92);
        }
        assert_true(c->pids[i] > 0);
    }
    for (i = 0; i < 4; i++)
        reached(&c->h); /* every handle is open */
}

/* Lets them run; every process must exit normally (no SIGBUS, SIGSEGV or
 * abort), and the database must count exactly the admissions reported.
 * Returns how many calls failed (each with a clear error). */
static int64_t crowd_finish(fx *f, crowd *c)
{
    int64_t n[2], admitted = 0, failed = 0;
    int i, status;
    for (i = 0; i < 4; i++)
        resume(&c->h);
    for (i = 0; i < 4; i++) {
        assert_int_equal(waitpid(c->pids[i], &status, 0), c->pids[i]);
        if (WIFSIGNALED(status))
            fail_msg("a process died of signal %d", WTERMSIG(status));
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(read(c->out[0], n, sizeof n), (ssize_t)sizeof n);
        admitted += n[0];
        failed += n[1];
    }
    assert_int_equal(allowed_of(f->path, "hot"), admitted);
    assert_true(admitted > 0);
    close(c->out[0]);
    close(c->out[1]);
    hook_close(&c->h);
    return failed;
}

/* Findings 5 and 7: the lock file overwritten while processes use it, with
 * patterns that make every word garbage, every time INT64_MIN or INT64_MAX,
 * every lock word "dead" or naming members that do not exist. Nobody dies
 * (the sanitizer build aborts on any signed overflow), the database counts
 * exactly what was reported admitted; once everyone has closed, the file is
 * rebuilt and works. A new handle opened while the damaged file is in use
 * is refused with RL_ECORRUPT saying so. */
static void test_lock_file_scribbled(void **state)
{
    static const unsigned char pats[][8] = {
        { 0, 0, 0, 0, 0, 0, 0, 0x80 },             /* INT64_MIN */
        { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f }, /* INT64_MAX */
        { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
        { 0x5a, 0xa5, 0x13, 0x37, 0xc3, 0x3c, 0x99, 0x66 },
    };
    fx *f = *state;
    size_t i;
    for (i = 0; i < sizeof pats / sizeof pats[0]; i++) {
        crowd c;
        rl *r = NULL;
        rl_options o = RL_OPTIONS_INIT;
        r = open_with(f->path, small, 1000); /* counts start from 0 each round */
        assert_true(rl_reset(r, "hot") == RL_OK || i == 0);
        rl_close(r);
        r = NULL;
        crowd_start(f, &c);
        scribble(f->lockpath, pats[i]);
        assert_int_equal(rl_open(&r, f->path, &o), RL_ECORRUPT);
        assert_non_null(strstr(rl_errmsg(r), "rebuilt once they all close"));
        rl_close(r);
        (void)crowd_finish(f, &c);
        r = open_with(f->path, small, 1000); /* alone now: rebuilt */
        rl_close(r);
    }
}

/* Finding 5: the lock file truncated to nothing while processes use it.
 * Their next touch of it faults; the fault is caught, the call reports
 * RL_ECORRUPT or goes on under SQLite's own locking, and nothing dies. */
static void test_lock_file_truncated(void **state)
{
    fx *f = *state;
    crowd c;
    crowd_start(f, &c);
    assert_int_equal(truncate(f->lockpath, 0), 0);
    (void)crowd_finish(f, &c);
}

/* Finding 6: the lock file as a power loss or a copy leaves it, with the
 * lock word set by a process that no longer exists (here: the bytes of a
 * file whose lock was held, written back after that process died). The
 * first process to open it alone rebuilds it: no wait, no error. */
static void test_lock_left_held(void **state)
{
    fx *f = *state;
    unsigned char img[65536];
    ssize_t n;
    int fd, status, up[2];
    answer a;
    pid_t pid;
    char c;
    assert_int_equal(pipe(up), 0);
    if ((pid = fork()) == 0) {
        rl_lock *l = hold(f->path);
        (void)l;
        if (write(up[1], "h", 1) != 1)
            _exit(90);
        pause();
        _exit(0);
    }
    assert_int_equal(read(up[0], &c, 1), 1);
    fd = open(f->lockpath, O_RDONLY);
    assert_true(fd >= 0);
    n = read(fd, img, sizeof img);
    assert_true(n > 0 && n < (ssize_t)sizeof img);
    close(fd);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    fd = open(f->lockpath, O_WRONLY | O_TRUNC); /* as the disk had it */
    assert_true(fd >= 0);
    assert_int_equal(write(fd, img, (size_t)n), n);
    close(fd);
    ask_once(f->path, "after", 200, &a);
    assert_int_equal(a.rc, RL_OK);
    assert_true(a.res.allowed);
    close(up[0]);
    close(up[1]);
}

/* A parent takes the lock and is killed while a child it forked (which
 * never uses rl) lives on with copies of its files: the lock is taken over
 * at once, since a handle's files are closed in a child at fork. */
static void test_dead_parent_forked_child(void **state)
{
    fx *f = *state;
    int up[2], status;
    answer a;
    pid_t parent;
    char c;
    assert_int_equal(pipe(up), 0);
    if ((parent = fork()) == 0) {
        rl_lock *l = hold(f->path);
        pid_t child = fork();
        (void)l;
        if (child == 0) { /* outlives its parent for a while */
            struct timespec ts = { 3, 0 };
            nanosleep(&ts, NULL);
            _exit(0);
        }
        if (write(up[1], "h", 1) != 1)
            _exit(90);
        pause();
        _exit(0);
    }
    assert_int_equal(read(up[0], &c, 1), 1);
    kill(parent, SIGKILL);
    assert_int_equal(waitpid(parent, &status, 0), parent);
    ask_once(f->path, "taken-over", 1000, &a);
    assert_int_equal(a.rc, RL_OK);
    assert_true(a.res.allowed);
    close(up[0]);
    close(up[1]);
}

/* Finding 2, the other half: the old path to a second lock domain, a
 * symbolic link to the database (LINK-rllock), is closed: a link at the
 * database path is refused with RL_EPERM and creates nothing beside it,
 * and a database reached through a linked directory uses the same lock file
 * (its real path). */
static void test_symlink_same_lock_file(void **state)
{
    fx *f = *state;
    char link[200], linklock[240], dlink[200], viadir[220];
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    rl_result res;
    struct stat st, real;
    snprintf(link, sizeof link, "%s/link.db", f->dir);
    snprintf(linklock, sizeof linklock, "%s-rlshm", link);
    assert_int_equal(symlink(f->path, link), 0);
    assert_int_equal(rl_open(&r, link, &o), RL_EPERM);
    rl_close(r);
    assert_int_equal(lstat(linklock, &st), -1);
    snprintf(dlink, sizeof dlink, "%s/dirlink", f->dir);
    assert_int_equal(symlink(f->dir, dlink), 0);
    snprintf(viadir, sizeof viadir, "%s/rl.db", dlink);
    r = open_with(viadir, small, 1000);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
    rl_close(r);
    assert_int_equal(stat(f->lockpath, &real), 0);
    snprintf(linklock, sizeof linklock, "%s-rlshm", viadir);
    assert_int_equal(stat(linklock, &st), 0);
    assert_true(st.st_ino == real.st_ino);
}

/* Finding 3: a lock file planted by another user (nobody, mode 0666,
 * before the owner's first open) is refused with RL_EPERM naming it, and
 * left as it was; the owner's database is not opened through it. Needs
 * root to plant as nobody; skipped otherwise. */
static void test_planted_lock_file(void **state)
{
    fx *f = *state;
    rl_options o = RL_OPTIONS_INIT;
    struct stat st;
    rl *r = NULL;
    int fd;
    if (geteuid() != 0) {
        printf("[ SKIPPED  ] test_planted_lock_file: planting as nobody needs root\n");
        return;
    }
    assert_int_equal(unlink(f->lockpath), 0);
    fd = open(f->lockpath, O_RDWR | O_CREAT | O_EXCL, 0666);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, 0666), 0);
    assert_int_equal(fchown(fd, 65534, 65534), 0);
    close(fd);
    assert_int_equal(rl_open(&r, f->path, &o), RL_EPERM);
    assert_non_null(strstr(rl_errmsg(r), "-rlshm"));
    rl_close(r);
    assert_int_equal(stat(f->lockpath, &st), 0);
    assert_int_equal(st.st_size, 0);
    assert_int_equal((int)st.st_uid, 65534);
}

/* A process killed while building the lock file (alone, the file emptied,
 * not yet allocated), while another waits to attach: the waiter finds the
 * file damaged, lets go, and builds it itself; it is not refused until
 * every process has closed the database. */
static void test_builder_killed(void **state)
{
    fx *f = *state;
    hook hb, hw;
    answer a;
    pipes p;
    pid_t builder, waiter;
    int status;
    assert_int_equal(unlink(f->lockpath), 0);
    hook_open(&hb);
    hook_open(&hw);
    pipes_open(&p);
    if ((builder = fork()) == 0) {
        rl *r;
        arm(&hb, RL_STEP_REBUILDING);
        r = open_with(f->path, small, 5000);
        rl_close(r);
        _exit(0);
    }
    assert_true(builder > 0);
    reached(&hb); /* alone, the file emptied */
    if ((waiter = fork()) == 0) { /* armed before rl_open: it stops inside it */
        rl_options o = RL_OPTIONS_INIT;
        rl_result res;
        rl *r = NULL;
        int rc;
        memset(&res, 0, sizeof res);
        arm(&hw, RL_STEP_ATTACHING);
        o.default_limits = small;
        o.n_default_limits = 1;
        rc = rl_open(&r, f->path, &o);
        if (rc == RL_OK)
            rc = rl_allow(r, "k", 1, &res);
        memset(&a, 0, sizeof a);
        a.rc = rc;
        a.res = res;
        snprintf(a.msg, sizeof a.msg, "%s", rl_errmsg(r));
        rl_close(r);
        _exit(write(p.out[1], &a, sizeof a) == (ssize_t)sizeof a ? 0 : 92);
    }
    assert_true(waiter > 0);
    reached(&hw); /* the builder holds the file: the waiter is about to wait */
    kill(builder, SIGKILL);
    assert_int_equal(waitpid(builder, &status, 0), builder);
    resume(&hw);
    collect(&p, &a);
    reap(waiter);
    if (a.rc != RL_OK)
        fail_msg("after the builder died: %d %s", a.rc, a.msg);
    assert_true(a.res.allowed);
    hook_close(&hb);
    hook_close(&hw);
    pipes_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_more_waiters_than_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_by_its_own_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acquire_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lone_signature_not_starved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queued_caller_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_killed_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_killed_before_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_too_slow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stalled_caller_keeps_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_request_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_slot_not_stolen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_leader_other_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_lock_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_file_scribbled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_file_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_left_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_parent_forked_child, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_same_lock_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_planted_lock_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_builder_killed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
