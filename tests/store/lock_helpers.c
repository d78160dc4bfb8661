/*
 * lock_helpers.c - what the lock tests share (lock_helpers.h): a database
 * per test, children that ask through their own handles, the pipes they
 * answer on, and the pause hooks and the clock that run a race step by step.
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
#include "lock_helpers.h"

const rl_limit small[1] = { RL_LIMIT("rps", NULL, 10, RL_SECOND, 10) };
const rl_limit large[1] = { RL_LIMIT("rps", NULL, 1000, RL_SECOND, 1000) };

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
void clock_jump(int ms)
{
    __atomic_add_fetch(clock_skew, (int64_t)ms * 1000000, __ATOMIC_ACQ_REL);
}

int setup(void **state)
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

int teardown(void **state)
{
    fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

rl *open_with(const char *path, const rl_limit *lims, int busy_ms)
{
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    o.default_limits = lims;
    o.n_default_limits = 1;
    o.flags = RL_OPEN_OVERRIDE_DEFAULTS; /* each test's own, whatever is stored */
    o.busy_timeout_ms = busy_ms;
    if (rl_open(&r, path, &o) != RL_OK) {
        fprintf(stderr, "open: %s\n", rl_errmsg(r));
        _exit(90);
    }
    return r;
}

void pipes_open(pipes *p)
{
    assert_int_equal(pipe(p->ready), 0);
    assert_int_equal(pipe(p->go), 0);
    assert_int_equal(pipe(p->out), 0);
}

void pipes_close(pipes *p)
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

void plan_clear(void)
{
    plan_len = plan_at = 0;
}

void plan_add(unsigned steps, int stop)
{
    assert_true(plan_len < 4);
    plan[plan_len].steps = steps;
    plan[plan_len++].stop = stop;
}

void hook_open(hook *h)
{
    assert_int_equal(pipe(h->up), 0);
    assert_int_equal(pipe(h->down), 0);
}

void hook_close(hook *h)
{
    close(h->up[0]);
    close(h->up[1]);
    close(h->down[0]);
    close(h->down[1]);
}

/* In the child: follows the plan made before the fork. */
void plan_start(const hook *h)
{
    hook_up = h->up[1];
    hook_down = h->down[0];
    rl__lock_hook = pause_hook;
}

/* In the child: stops the first time it reaches step. */
void arm(const hook *h, int step)
{
    plan_clear();
    plan_add(STEP(step), 1);
    plan_start(h);
}

/* In the parent: waits until a child reached a step of its plan; which. */
int reached(const hook *h)
{
    char c;
    readable(h->up[0]);
    assert_int_equal(read(h->up[0], &c, 1), 1);
    return c;
}

/* Lets a child stopped at a step go on. */
void resume(const hook *h)
{
    assert_int_equal(write(h->down[1], "r", 1), 1);
}

/* Waits until a child stopped by SIGSTOP is stopped. */
void stopped(pid_t pid)
{
    int status;
    assert_int_equal(kill(pid, SIGSTOP), 0);
    assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
    assert_true(WIFSTOPPED(status));
}

/* tokens > 0: rl_acquire of 1 request and that many tokens; else rl_allow.
 * With h, the asker follows the plan made before (plan_clear, plan_add)
 * once its handle is open. */
pid_t asker_n(const char *path, const char *key, const rl_limit *lims, size_t nlims, int busy_ms,
              int64_t tokens, const pipes *p, const hook *h)
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
        o.flags = RL_OPEN_OVERRIDE_DEFAULTS;
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

pid_t asker_call(const char *path, const call *cl, const rl_limit *lims, int busy_ms,
                 const pipes *p, const hook *h)
{
    pid_t pid = fork();
    if (pid == 0) {
        static const rl_cost one = { "requests", 1 };
        answer a;
        char c;
        rl *r = open_with(path, lims, busy_ms);
        if (h)
            plan_start(h);
        memset(&a, 0, sizeof a);
        if (write(p->ready[1], "r", 1) != 1 || read(p->go[0], &c, 1) != 1)
            _exit(91);
        a.pid = (int64_t)getpid();
        if (cl->kind == CALL_KEYS) {
            a.rc = rl_acquire_keys(r, cl->keys, cl->nkeys, &one, 1, &a.res);
        } else if (cl->kind == CALL_RESERVE) {
            a.rc = rl_reserve(r, cl->keys[0], 1, cl->max_delay_ns, &a.rv);
        } else if (cl->kind == CALL_LEASE) {
            static const rl_cost est[] = { { "requests", 1 }, { "streams", 1 } };
            a.rc = rl_lease_begin(r, cl->keys[0], est, 2, RL_HOUR, &a.lease, &a.res);
        } else if (cl->kind == CALL_SETTLE || cl->kind == CALL_CANCEL) {
            rl_lease l;
            rl_cost act = { "requests", cl->amount };
            l.id = cl->lease_id;
            l.expires_at = 0;
            a.rc =
                cl->kind == CALL_SETTLE ? rl_lease_settle(r, &l, &act, 1) : rl_lease_cancel(r, &l);
        } else {
            a.rc = rl_allow(r, cl->keys[0], 1, &a.res);
        }
        snprintf(a.msg, sizeof a.msg, "%s", rl_errmsg(r));
        rl_close(r);
        _exit(write(p->out[1], &a, sizeof a) == (ssize_t)sizeof a ? 0 : 92);
    }
    assert_true(pid > 0);
    return pid;
}

pid_t asker(const char *path, const char *key, const rl_limit *lims, int busy_ms, const pipes *p)
{
    return asker_n(path, key, lims, 1, busy_ms, 0, p, NULL);
}

/* An asker that stops at step (see arm()). */
pid_t asker_paused(const char *path, const char *key, const rl_limit *lims, const pipes *p,
                   const hook *h, int step)
{
    plan_clear();
    plan_add(STEP(step), 1);
    return asker_n(path, key, lims, 1, WAIT_MS, 0, p, h);
}

/* An asker that says when it has posted its request, and goes on. */
pid_t asker_posting(const char *path, const char *key, const rl_limit *lims, int busy_ms,
                    const pipes *p, const hook *h)
{
    plan_clear();
    plan_add(STEP(RL_STEP_POSTED), 0);
    return asker_n(path, key, lims, 1, busy_ms, 0, p, h);
}

/* Behind a held lock: an asker queued, posted in a slot (RL_STEP_POSTED)
 * or, with every slot in use, asleep on the lock (RL_STEP_WAITING). */
int queued(const hook *h)
{
    int step = reached(h);
    assert_true(step == RL_STEP_POSTED || step == RL_STEP_WAITING);
    return step;
}

/* Waits until n askers have their handles open (rl_open takes the lock
 * too, so this comes before hold()). */
void ready(const pipes *p, int n)
{
    char c;
    int i;
    for (i = 0; i < n; i++)
        assert_int_equal(read(p->ready[0], &c, 1), 1);
}

void go(const pipes *p, int n)
{
    int i;
    for (i = 0; i < n; i++)
        assert_int_equal(write(p->go[1], "g", 1), 1);
}

void collect(const pipes *p, answer *a)
{
    readable(p->out[0]);
    assert_int_equal(read(p->out[0], a, sizeof *a), (ssize_t)sizeof *a);
}

void reap(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* One rl_allow in a child of its own, with nobody else about. */
void ask_once(const char *path, const char *key, int busy_ms, answer *a)
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

rl_lock *hold(const char *dbpath)
{
    rl_lock *l = NULL;
    char err[RL_ERRMSG_MAX];
    int64_t waited;
    uint64_t old;
    assert_int_equal(rl_lock_open(&l, dbpath, 0600, 0, WAIT_MS, &old, err), RL_OK);
    assert_int_equal(rl_lock_acquire(l, WAIT_MS, &waited, err), RL_OK);
    return l;
}

int64_t allowed_of(const char *path, const char *key)
{
    rl_key_stats st;
    rl *r = open_with(path, small, WAIT_MS);
    memset(&st, 0, sizeof st);
    assert_int_equal(rl_stats(r, key, &st), RL_OK);
    rl_close(r);
    return st.allowed;
}

/* An asker that says when it has queued behind the lock (see queued()). */
pid_t asker_queuing(const char *path, const char *key, const rl_limit *lims, const pipes *p,
                    const hook *h)
{
    plan_clear();
    plan_add(STEP(RL_STEP_POSTED) | STEP(RL_STEP_WAITING), 0);
    return asker_n(path, key, lims, 1, WAIT_MS, 0, p, h);
}

/* Before the tests: the lock clock every process of the run reads (see
 * test_clock), zero skew, in memory shared with every child. */
int lock_test_init(void)
{
    void *skew =
        mmap(NULL, sizeof *clock_skew, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (skew == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    clock_skew = skew; /* zero, shared with every child */
    rl__lock_clock = test_clock;
    return 0;
}

void read_child(int fd, void *buf, size_t n)
{
    readable(fd);
    assert_int_equal(read(fd, buf, n), (ssize_t)n);
}

int no_step(const hook *h)
{
    struct pollfd pfd = { h->up[0], POLLIN, 0 };
    return poll(&pfd, 1, 0) == 0;
}
