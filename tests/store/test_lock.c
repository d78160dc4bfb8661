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
 *
 * No test waits for time to pass: each step of a race is reached through
 * the lock's pause hooks and pipes (a process says which step it reached
 * and, when told to, stops there), and a busy timeout is passed by moving
 * the clock the lock code reads (rl__lock_clock), shared by every process of
 * the run. So the outcome does not depend on how loaded the machine is.
 * Nothing here is random: there is no seed.
 */
#include <fcntl.h>
#include <poll.h>
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

#include "rl.h"
#include "rl_int.h"
#include "lock.h"

static const rl_limit small[] = { RL_LIMIT("rps", NULL, 10, RL_SECOND, 10) };
static const rl_limit large[] = { RL_LIMIT("rps", NULL, 1000, RL_SECOND, 1000) };

/* A busy timeout no step of a test comes near, however loaded the machine:
 * where a timeout is what is tested, the clock is moved past it. */
#define WAIT_MS 60000

/* The clock of the lock code in every process of the run: CLOCK_MONOTONIC
 * plus an offset in shared memory that clock_jump() moves on. */
static int64_t *clock_skew;

static int64_t test_clock(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec +
           __atomic_load_n(clock_skew, __ATOMIC_ACQUIRE);
}

/* Before a read from a child: fails, rather than hangs, when the child is
 * stuck or gone (a watchdog only: no step of a test comes near it). */
static void readable(int fd)
{
    struct pollfd pfd = { fd, POLLIN, 0 };
    if (poll(&pfd, 1, 2 * WAIT_MS) != 1)
        fail_msg("no word from a child process in %d s", 2 * WAIT_MS / 1000);
}

/* Moves every process's lock clock on by ms: a caller waiting on a
 * deadline sees it pass at its next look (it looks at least every 2 ms). */
static void clock_jump(int ms)
{
    __atomic_add_fetch(clock_skew, (int64_t)ms * 1000000, __ATOMIC_ACQ_REL);
}

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

/* Pause hooks (RL_TEST_HOOKS): a child follows a plan of up to four
 * steps, one after the other. Reaching the next step of its plan (any step
 * of its set), it writes that step as a byte on hook_up; a stop step then
 * waits for a byte on hook_down before it goes on, a tell step goes on at
 * once. So a race is run step by step, without sleeps. */
#define STEP(s) (1u << (s))

static struct {
    unsigned steps;
    int stop;
} plan[4];
static int plan_len, plan_at, hook_up = -1, hook_down = -1;

static void pause_hook(int step)
{
    char c = (char)step;
    int stop;
    if (plan_at >= plan_len || !(plan[plan_at].steps & STEP(step)))
        return;
    stop = plan[plan_at++].stop;
    if (write(hook_up, &c, 1) != 1 || (stop && read(hook_down, &c, 1) != 1))
        _exit(89);
}

static void plan_clear(void)
{
    plan_len = plan_at = 0;
}

static void plan_add(unsigned steps, int stop)
{
    assert_true(plan_len < 4);
    plan[plan_len].steps = steps;
    plan[plan_len++].stop = stop;
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

/* In the child: follows the plan made before the fork. */
static void plan_start(const hook *h)
{
    hook_up = h->up[1];
    hook_down = h->down[0];
    rl__lock_hook = pause_hook;
}

/* In the child: stops the first time it reaches step. */
static void arm(const hook *h, int step)
{
    plan_clear();
    plan_add(STEP(step), 1);
    plan_start(h);
}

/* In the parent: waits until a child reached a step of its plan; which. */
static int reached(const hook *h)
{
    char c;
    readable(h->up[0]);
    assert_int_equal(read(h->up[0], &c, 1), 1);
    return c;
}

/* Lets a child stopped at a step go on. */
static void resume(const hook *h)
{
    assert_int_equal(write(h->down[1], "r", 1), 1);
}

/* Waits until a child stopped by SIGSTOP is stopped. */
static void stopped(pid_t pid)
{
    int status;
    assert_int_equal(kill(pid, SIGSTOP), 0);
    assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
    assert_true(WIFSTOPPED(status));
}

/* tokens > 0: rl_acquire of 1 request and that many tokens; else rl_allow.
 * With h, the asker follows the plan made before (plan_clear, plan_add)
 * once its handle is open. */
static pid_t asker_n(const char *path, const char *key, const rl_limit *lims, size_t nlims,
                     int busy_ms, int64_t tokens, const pipes *p, const hook *h)
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
        if (h)
            plan_start(h);
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
    return asker_n(path, key, lims, 1, busy_ms, 0, p, NULL);
}

/* An asker that stops at step (see arm()). */
static pid_t asker_paused(const char *path, const char *key, const rl_limit *lims,
                          const pipes *p, const hook *h, int step)
{
    plan_clear();
    plan_add(STEP(step), 1);
    return asker_n(path, key, lims, 1, WAIT_MS, 0, p, h);
}

/* An asker that says when it has posted its request, and goes on. */
static pid_t asker_posting(const char *path, const char *key, const rl_limit *lims,
                           int busy_ms, const pipes *p, const hook *h)
{
    plan_clear();
    plan_add(STEP(RL_STEP_POSTED), 0);
    return asker_n(path, key, lims, 1, busy_ms, 0, p, h);
}

/* Behind a held lock: an asker queued, posted in a slot (RL_STEP_POSTED)
 * or, with every slot in use, asleep on the lock (RL_STEP_WAITING). */
static int queued(const hook *h)
{
    int step = reached(h);
    assert_true(step == RL_STEP_POSTED || step == RL_STEP_WAITING);
    return step;
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
    readable(p->out[0]);
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
    assert_int_equal(rl_lock_acquire(l, WAIT_MS, &waited, err), RL_OK);
    return l;
}

static int64_t allowed_of(const char *path, const char *key)
{
    rl_key_stats st;
    rl *r = open_with(path, small, WAIT_MS);
    memset(&st, 0, sizeof st);
    assert_int_equal(rl_stats(r, key, &st), RL_OK);
    rl_close(r);
    return st.allowed;
}

/* An asker that says when it has queued behind the lock (see queued()). */
static pid_t asker_queuing(const char *path, const char *key, const rl_limit *lims,
                           const pipes *p, const hook *h)
{
    plan_clear();
    plan_add(STEP(RL_STEP_POSTED) | STEP(RL_STEP_WAITING), 0);
    return asker_n(path, key, lims, 1, WAIT_MS, 0, p, h);
}

/* 20 callers queue behind a held lock, more than the 16 slots (16 post,
 * 4 wait on the lock itself): every one is answered once it is released,
 * and each counted once. */
static void test_more_waiters_than_slots(void **state)
{
    fx *f = *state;
    pid_t pids[20];
    answer a;
    pipes p;
    hook h;
    rl_lock *l;
    int i, posted = 0;
    pipes_open(&p);
    hook_open(&h);
    for (i = 0; i < 20; i++)
        pids[i] = asker_queuing(f->path, "many", large, &p, &h);
    ready(&p, 20);
    l = hold(f->path);
    go(&p, 20);
    for (i = 0; i < 20; i++)
        posted += queued(&h) == RL_STEP_POSTED;
    assert_int_equal(posted, 16);
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
    hook_close(&h);
    assert_int_equal(allowed_of(f->path, "many"), 20);
}

/* Two handles with different default limits queue together: whichever
 * leads, each is decided by its own limits. */
static void test_each_by_its_own_limits(void **state)
{
    fx *f = *state;
    int i, round, seen_small, seen_large;
    pipes p;
    hook h;
    rl_lock *l;
    pid_t pa, pb;
    pipes_open(&p);
    hook_open(&h);
    for (round = 0; round < 5; round++) {
        char ka[16], kb[16];
        snprintf(ka, sizeof ka, "small%d", round);
        snprintf(kb, sizeof kb, "large%d", round);
        pa = asker_posting(f->path, ka, small, WAIT_MS, &p, &h);
        pb = asker_posting(f->path, kb, large, WAIT_MS, &p, &h);
        ready(&p, 2);
        l = hold(f->path);
        go(&p, 2);
        assert_int_equal(reached(&h), RL_STEP_POSTED); /* both queued together */
        assert_int_equal(reached(&h), RL_STEP_POSTED);
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
    hook_close(&h);
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
    hook h;
    rl_lock *l;
    pipes_open(&p);
    hook_open(&h);
    for (i = 0; i < 4; i++) {
        plan_clear();
        plan_add(STEP(RL_STEP_POSTED), 0);
        pids[i] = asker_n(f->path, "agent", two, 2, WAIT_MS, 300, &p, &h);
    }
    ready(&p, 4);
    l = hold(f->path);
    go(&p, 4);
    for (i = 0; i < 4; i++) /* all four queued */
        assert_int_equal(reached(&h), RL_STEP_POSTED);
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
    hook_close(&h);
    assert_int_equal(passed, 3);
    assert_int_equal(refused, 1);
    assert_int_equal(allowed_of(f->path, "agent"), 3);
}

/* A caller whose limits differ from those of the callers around it (so no
 * leader of theirs may decide its call) is not starved by them while they
 * keep the lock busy. The worst order is forced, step by step: the lone
 * caller posts first, then hot callers post behind it, and the lone caller
 * is stopped (SIGSTOP) so that it cannot run when it is woken. A hot leader
 * decides the hot callers and not the lone one; at its release the lone
 * caller, the oldest posted, is told to lead, ahead of a hot caller posted
 * later; that hot caller takes the lock first; the lone caller, let run,
 * still holds the lead, takes the lock at the next release and decides its
 * call by its own limits. (A slot not handed the lead would only poll the
 * lock, and a busy crowd could keep it out until its busy timeout.) This
 * was a hammering test with a 1 s timeout, which a loaded machine failed:
 * the lead is a wake-up, not a reservation, so a hot caller that comes back
 * first still wins the lock, as here, and a lone caller kept off the CPU can
 * lose that race for a second. */
static void test_lone_signature_not_starved(void **state)
{
    fx *f = *state;
    pipes pl, p1, p23, p4;
    hook hl, h1, h23, h4;
    pid_t lone, hot1, hot2, hot3, hot4;
    answer a;
    int i;
    pipes_open(&pl);
    pipes_open(&p1);
    pipes_open(&p23);
    pipes_open(&p4);
    hook_open(&hl);
    hook_open(&h1);
    hook_open(&h23);
    hook_open(&h4);
    plan_clear(); /* posts; then stops when told to lead (or, wrongly, answered or locked) */
    plan_add(STEP(RL_STEP_POSTED), 0);
    plan_add(STEP(RL_STEP_LEAD) | STEP(RL_STEP_ANSWERED) | STEP(RL_STEP_LOCKED), 1);
    lone = asker_n(f->path, "lone", small, 1, WAIT_MS, 0, &pl, &hl);
    plan_clear(); /* the hot leader: stops holding the lock, then once it has committed */
    plan_add(STEP(RL_STEP_LOCKED), 1);
    plan_add(STEP(RL_STEP_COMMITTED), 1);
    hot1 = asker_n(f->path, "hot", large, 1, WAIT_MS, 0, &p1, &h1);
    hot2 = asker_posting(f->path, "hot", large, WAIT_MS, &p23, &h23);
    hot3 = asker_posting(f->path, "hot", large, WAIT_MS, &p23, &h23);
    plan_clear(); /* posts after the leader's batch; stops once it has the lock */
    plan_add(STEP(RL_STEP_POSTED), 0);
    plan_add(STEP(RL_STEP_LOCKED), 1);
    hot4 = asker_n(f->path, "hot", large, 1, WAIT_MS, 0, &p4, &h4);
    ready(&pl, 1);
    ready(&p1, 1);
    ready(&p23, 2);
    ready(&p4, 1);

    go(&p1, 1);
    assert_int_equal(reached(&h1), RL_STEP_LOCKED); /* hot1 holds the lock */
    go(&pl, 1);
    assert_int_equal(reached(&hl), RL_STEP_POSTED); /* the lone caller first */
    go(&p23, 2);
    assert_int_equal(reached(&h23), RL_STEP_POSTED); /* then two hot ones */
    assert_int_equal(reached(&h23), RL_STEP_POSTED);
    stopped(lone);
    resume(&h1);
    assert_int_equal(reached(&h1), RL_STEP_COMMITTED); /* hot1's batch: hot2, hot3 */
    go(&p4, 1);
    assert_int_equal(reached(&h4), RL_STEP_POSTED); /* hot4 posted after the lone caller */
    resume(&h1);                                     /* hot1 answers and releases */
    collect(&p1, &a);
    assert_int_equal(a.rc, RL_OK);
    assert_int_equal(a.res.limit, 1000);
    for (i = 0; i < 2; i++) { /* answered by hot1's batch */
        collect(&p23, &a);
        assert_int_equal(a.rc, RL_OK);
        assert_true(a.res.allowed);
        assert_int_equal(a.res.limit, 1000);
    }
    assert_int_equal(reached(&h4), RL_STEP_LOCKED); /* hot4 took the lock first */
    assert_int_equal(kill(lone, SIGCONT), 0);
    /* still posted, told to lead: not answered by a hot leader, nor passed over */
    assert_int_equal(reached(&hl), RL_STEP_LEAD);
    resume(&hl);
    resume(&h4); /* hot4 decides its own call and releases */
    collect(&p4, &a);
    assert_int_equal(a.rc, RL_OK);
    assert_int_equal(a.res.limit, 1000);
    collect(&pl, &a); /* the lone caller led: its own limits */
    assert_int_equal(a.rc, RL_OK);
    assert_true(a.res.allowed);
    assert_int_equal(a.res.limit, 10);
    assert_int_equal(a.res.remaining, 9);
    reap(lone);
    reap(hot1);
    reap(hot2);
    reap(hot3);
    reap(hot4);
    pipes_close(&pl);
    pipes_close(&p1);
    pipes_close(&p23);
    pipes_close(&p4);
    hook_close(&hl);
    hook_close(&h1);
    hook_close(&h23);
    hook_close(&h4);
    assert_int_equal(allowed_of(f->path, "hot"), 4);
    assert_int_equal(allowed_of(f->path, "lone"), 1);
}

/* A caller queued behind a writer that never lets go gives up after its
 * busy_timeout_ms with RL_EBUSY and the fail mode's answer, and its slot is
 * free again: once the lock is released the next call is answered. (Its
 * 200 ms pass on the lock's clock, moved on once it has posted.) */
static void test_queued_caller_times_out(void **state)
{
    fx *f = *state;
    answer a;
    pipes p;
    hook h;
    rl_lock *l;
    pid_t pid;
    pipes_open(&p);
    hook_open(&h);
    pid = asker_posting(f->path, "slow", small, 200, &p, &h);
    ready(&p, 1);
    l = hold(f->path);
    go(&p, 1);
    assert_int_equal(reached(&h), RL_STEP_POSTED);
    clock_jump(200);
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
    hook_close(&h);
    assert_int_equal(allowed_of(f->path, "slow"), 1);
}

/* A leader driven by hand: takes the lock as a group-commit leader, says
 * "x" on ready_fd, and once told on cont_fd (the request is posted) takes
 * the one posted request, "decides" it (one more admitted decision on its
 * key, and the marker answer remaining = 4242), commits or not, and dies
 * without answering. DIE_LATE and ANSWER_LATE say "t" when they have taken
 * it (and committed, for ANSWER_LATE) and wait to be told again: to die, or
 * to answer. */
enum { DIE_BEFORE_COMMIT, DIE_AFTER_COMMIT, DIE_LATE, ANSWER_LATE };

static void fake_leader_with(const char *path, const rl_limit *lims, int when, int ready_fd,
                             int cont_fd)
{
    rl *r = open_with(path, lims, WAIT_MS);
    rl_store *s = rl__store(r);
    rl_group_req me, *batch[16];
    rl_row row;
    int64_t version;
    size_t n;
    char c;
    memset(&me, 0, sizeof me);
    strcpy(me.key, "self");
    me.sig = rl__group_sig(r);
    if (s->ops->group_join(s, &me) != RL_GROUP_LEAD || s->ops->begin(s, 1) != RL_OK)
        _exit(92);
    if (write(ready_fd, "x", 1) != 1 || read(cont_fd, &c, 1) != 1)
        _exit(93);
    n = s->ops->group_take(s, me.sig, batch, 16);
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
    if (when == ANSWER_LATE || when == DIE_LATE) {
        if (write(ready_fd, "t", 1) != 1 || read(cont_fd, &c, 1) != 1)
            _exit(97);
    }
    if (when == ANSWER_LATE) { /* committed; answers when told to */
        s->ops->group_end(s);
        rl_close(r);
        _exit(0);
    }
    kill(getpid(), SIGKILL);
}

static void fake_leader(const char *path, int when, int ready_fd, int cont_fd)
{
    fake_leader_with(path, small, when, ready_fd, cont_fd);
}

/* An asker of key "k" queues behind a fake leader, which takes its request
 * and dies at when. DIE_LATE: the asker's busy timeout passes (on the lock's
 * clock) while its request is taken, before the leader dies. */
static void leader_dies(fx *f, int when, int busy_ms, answer *a)
{
    int up[2], cont[2], status;
    char c;
    pipes p;
    hook h;
    pid_t leader, pid;
    pipes_open(&p);
    hook_open(&h);
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(cont), 0);
    pid = asker_posting(f->path, "k", small, busy_ms, &p, &h);
    ready(&p, 1);
    if ((leader = fork()) == 0)
        fake_leader(f->path, when, up[1], cont[0]);
    assert_true(leader > 0);
    assert_int_equal(read(up[0], &c, 1), 1); /* the leader holds the lock */
    go(&p, 1);
    assert_int_equal(reached(&h), RL_STEP_POSTED);
    assert_int_equal(write(cont[1], "t", 1), 1); /* take it */
    if (when == DIE_LATE) {
        assert_int_equal(read(up[0], &c, 1), 1); /* taken, and the leader hangs */
        clock_jump(busy_ms);
        collect(&p, a); /* the asker gave up */
        assert_int_equal(write(cont[1], "d", 1), 1);
    }
    assert_int_equal(waitpid(leader, &status, 0), leader);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    if (when != DIE_LATE)
        collect(&p, a);
    reap(pid);
    close(up[0]);
    close(up[1]);
    close(cont[0]);
    close(cont[1]);
    pipes_close(&p);
    hook_close(&h);
}

/* It committed: the queued caller gets the answer it was given, without an
 * error, and the key counts that one decision once. */
static void test_leader_killed_after_commit(void **state)
{
    fx *f = *state;
    answer a;
    leader_dies(f, DIE_AFTER_COMMIT, WAIT_MS, &a);
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
    leader_dies(f, DIE_BEFORE_COMMIT, WAIT_MS, &a);
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
    leader_dies(f, DIE_LATE, WAIT_MS, &a);
    assert_int_equal(a.rc, RL_EBUSY);
    assert_false(a.res.allowed);
    assert_non_null(strstr(a.msg, "may or may not have been counted"));
    ask_once(f->path, "k", WAIT_MS, &a);
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
    int up[2], cont[2], i, posted = 0;
    answer a;
    pipes p, p2;
    pid_t leader, pid, pids[20];
    hook h, h2;
    rl_lock *l;
    char c;
    pipes_open(&p);
    pipes_open(&p2);
    hook_open(&h);
    hook_open(&h2);
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(cont), 0);
    plan_clear(); /* says it posted; stops when its answer has come */
    plan_add(STEP(RL_STEP_POSTED), 0);
    plan_add(STEP(RL_STEP_ANSWERED), 1);
    pid = asker_n(f->path, "k", small, 1, WAIT_MS, 0, &p, &h);
    for (i = 0; i < 20; i++)
        pids[i] = asker_queuing(f->path, "other", large, &p2, &h2);
    ready(&p, 1);
    ready(&p2, 20);
    if ((leader = fork()) == 0)
        fake_leader(f->path, ANSWER_LATE, up[1], cont[0]);
    assert_true(leader > 0);
    assert_int_equal(read(up[0], &c, 1), 1); /* the leader holds the lock */
    go(&p, 1);
    assert_int_equal(reached(&h), RL_STEP_POSTED);
    assert_int_equal(write(cont[1], "t", 1), 1);
    assert_int_equal(read(up[0], &c, 1), 1); /* it took and committed the request */
    assert_int_equal(write(cont[1], "c", 1), 1);
    assert_int_equal(waitpid(leader, NULL, 0), leader);
    assert_int_equal(reached(&h), RL_STEP_ANSWERED); /* the caller sees its answer... */
    stopped(pid); /* ...and stops before reading it */
    resume(&h);
    l = hold(f->path);
    go(&p2, 20); /* they post into every other slot, and queue for the lock */
    for (i = 0; i < 20; i++)
        posted += queued(&h2) == RL_STEP_POSTED;
    assert_int_equal(posted, 15); /* the stalled caller's slot is still its own */
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
    hook_close(&h2);
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
    hook ha, hp;
    rl_lock *l;
    pid_t poster, pid;
    pipes_open(&p);
    pipes_open(&pp);
    hook_open(&ha);
    hook_open(&hp);
    pid = asker_posting(f->path, "good", small, WAIT_MS, &p, &ha);
    if ((poster = fork()) == 0) {
        rl *r = open_with(f->path, small, WAIT_MS); /* for its signature only */
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
        plan_clear();
        plan_add(STEP(RL_STEP_POSTED), 0);
        plan_start(&hp);
        if (write(pp.ready[1], "r", 1) != 1 || read(pp.go[0], &c, 1) != 1)
            _exit(91);
        rc = rl_lock_join(pl, WAIT_MS, &bad, err);
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
    assert_int_equal(reached(&hp), RL_STEP_POSTED); /* posted, and waiting... */
    stopped(poster);                                /* ...and stopped */
    go(&p, 1);
    assert_int_equal(reached(&ha), RL_STEP_POSTED);
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
    hook_close(&ha);
    hook_close(&hp);
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
    rl *r = open_with(f->path, hourly, WAIT_MS); /* nothing refills on a slow machine */
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
    int up[2], cont[2], status;
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
    assert_int_equal(pipe(cont), 0);
    plan_clear(); /* says it posted; stops once it has the lock */
    plan_add(STEP(RL_STEP_POSTED), 0);
    plan_add(STEP(RL_STEP_LOCKED), 1);
    pid = asker_n(f->path, "k", one, 1, WAIT_MS, 0, &p, &h);
    ready(&p, 1);
    if ((leader = fork()) == 0)
        fake_leader_with(f->path, one, DIE_BEFORE_COMMIT, up[1], cont[0]);
    assert_true(leader > 0);
    assert_int_equal(read(up[0], &c, 1), 1); /* the leader holds the lock */
    go(&p, 1);
    assert_int_equal(reached(&h), RL_STEP_POSTED);
    assert_int_equal(write(cont[1], "t", 1), 1); /* it takes the request and dies */
    assert_int_equal(waitpid(leader, &status, 0), leader);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* the follower took the dead leader's lock, before recovery */
    assert_int_equal(reached(&h), RL_STEP_LOCKED);
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
    close(cont[0]);
    close(cont[1]);
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
 * at once, since a handle's files are closed in a child at fork. (The child
 * lives until the end of the test: were the lock not taken over, the next
 * caller would wait its whole busy timeout and fail.) */
static void test_dead_parent_forked_child(void **state)
{
    fx *f = *state;
    int up[2], child_go[2], status;
    answer a;
    pid_t parent, child;
    char c;
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(child_go), 0);
    if ((parent = fork()) == 0) {
        rl_lock *l = hold(f->path);
        int born[2];
        (void)l;
        if (pipe(born) != 0)
            _exit(90);
        if ((child = fork()) == 0) { /* outlives its parent, until told */
            close(child_go[1]);
            if (write(born[1], "b", 1) != 1 || read(child_go[0], &c, 1) < 0)
                _exit(91);
            _exit(0);
        }
        /* once the child runs (past its fork handlers), the parent may die */
        if (child < 0 || read(born[0], &c, 1) != 1 ||
            write(up[1], &child, sizeof child) != (ssize_t)sizeof child)
            _exit(90);
        pause();
        _exit(0);
    }
    assert_true(parent > 0);
    assert_int_equal(read(up[0], &child, sizeof child), (ssize_t)sizeof child);
    kill(parent, SIGKILL);
    assert_int_equal(waitpid(parent, &status, 0), parent);
    ask_once(f->path, "taken-over", WAIT_MS, &a);
    assert_int_equal(a.rc, RL_OK);
    assert_true(a.res.allowed);
    assert_int_equal(kill(child, 0), 0); /* it was there all along */
    assert_int_equal(write(child_go[1], "x", 1), 1);
    close(up[0]);
    close(up[1]);
    close(child_go[0]);
    close(child_go[1]);
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
    void *skew = mmap(NULL, sizeof *clock_skew, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (skew == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    clock_skew = skew; /* zero, shared with every child */
    rl__lock_clock = test_clock;
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
