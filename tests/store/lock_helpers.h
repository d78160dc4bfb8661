/*
 * lock_helpers.h - what the tests of store/lock.c (test_lock.c) and
 * store/lock_group.c (test_lock_group.c) share: a database per test,
 * children that ask through their own handles, the pipes they answer on,
 * and the pause hooks (rl__lock_hook) and clock (rl__lock_clock) that run
 * a race step by step.
 *
 * No test waits for time to pass: each step of a race is reached through
 * the lock's pause hooks and pipes (a process says which step it reached
 * and, when told to, stops there), and a busy timeout is passed by moving
 * the clock the lock code reads (rl__lock_clock), shared by every process of
 * the run. So the outcome does not depend on how loaded the machine is.
 *
 * test_open.c runs the races of rl_open the same way: the steps of opening
 * (RL_STEP_OPEN_*, store/sqlite.h) come through the same hook.
 */
#ifndef RL_TEST_LOCK_HELPERS_H
#define RL_TEST_LOCK_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rl.h"
#include "lock.h"

extern const rl_limit small[1]; /* 10/s, burst 10 */
extern const rl_limit large[1]; /* 1000/s, burst 1000 */

/* A busy timeout no step of a test comes near, however loaded the machine:
 * where a timeout is what is tested, the clock is moved past it. */
#define WAIT_MS 60000

typedef struct fx {
    char dir[64];
    char path[128];
    char lockpath[160];
} fx;

/* What an asker answers: its call's code, result (a reservation's too)
 * and rl_errmsg. */
typedef struct answer {
    int rc;
    rl_result res;
    rl_reservation rv;
    rl_lease lease; /* a lease begin's */
    int64_t pid;    /* the asker's */
    char msg[256];
} answer;

/* A call an asker makes (asker_call): rl_allow of 1 on keys[0]
 * (CALL_ALLOW), rl_acquire_keys of 1 request on keys[0..nkeys)
 * (CALL_KEYS), rl_reserve of 1 on keys[0] within max_delay_ns
 * (CALL_RESERVE), rl_lease_begin on keys[0] of 1 request and 1 "streams"
 * for an hour (CALL_LEASE), rl_lease_settle of lease_id at `amount`
 * requests (CALL_SETTLE), or rl_lease_cancel of lease_id (CALL_CANCEL). */
enum { CALL_ALLOW, CALL_KEYS, CALL_RESERVE, CALL_LEASE, CALL_SETTLE, CALL_CANCEL };
typedef struct call {
    int kind;
    const char *keys[RL_MAX_KEYS];
    size_t nkeys;
    int64_t max_delay_ns;
    int64_t lease_id, amount;
} call;

/* An asker's pipes: ready (it has opened), go (make the call), out (answer). */
typedef struct pipes {
    int ready[2], go[2], out[2];
} pipes;

/* Pause hooks: the steps of a plan (plan_add) are sets of these. */
#define STEP(s) (1u << (s)) /* enum rl_lock_step */

/* A plan's pipes: up (a step reached), down (go on). */
typedef struct hook {
    int up[2], down[2];
} hook;

/* Call first in main(): sets the shared lock clock up; 0 on success. */
int lock_test_init(void);
/* Moves every process's lock clock on by ms: a caller waiting on a
 * deadline sees it pass at its next look (it looks at least every 2 ms). */
void clock_jump(int ms);

/* cmocka's: a fresh directory with a database (limits small) and its lock
 * file, in an fx; and its removal. */
int setup(void **state);
int teardown(void **state);
/* A handle with one default limit; a failure exits the (child) process. */
rl *open_with(const char *path, const rl_limit *lims, int busy_ms);
/* The lock of dbpath, opened and taken by hand (rl_lock_release to free). */
rl_lock *hold(const char *dbpath);
/* The key's admitted total, read through a handle of its own. */
int64_t allowed_of(const char *path, const char *key);

/* Pause hooks (RL_TEST_HOOKS): a child follows a plan of up to four
 * steps, one after the other. Reaching the next step of its plan (any step
 * of its set), it writes that step as a byte on hook_up; a stop step then
 * waits for a byte on hook_down before it goes on, a tell step goes on at
 * once. So a race is run step by step, without sleeps. */
void plan_clear(void);
void plan_add(unsigned steps, int stop);
void hook_open(hook *h);
void hook_close(hook *h);
/* In the child: follows the plan made before the fork. */
void plan_start(const hook *h);
/* In the child: stops the first time it reaches step. */
void arm(const hook *h, int step);
/* In the parent: waits until a child reached a step of its plan; which. */
int reached(const hook *h);
/* Lets a child stopped at a step go on. */
void resume(const hook *h);
/* Waits until a child stopped by SIGSTOP is stopped. */
void stopped(pid_t pid);

/* Reads n bytes a child writes on fd (failing, not hanging, if none come). */
void read_child(int fd, void *buf, size_t n);
/* 1 when a child has written no further step on h->up: read after the
 * child's last word, that it never reached another step of its plan. */
int no_step(const hook *h);

/* Askers: children that each open a handle, say so on p->ready, wait for a
 * byte on p->go, make one call and write their answer on p->out. */
void pipes_open(pipes *p);
void pipes_close(pipes *p);
/* tokens > 0: rl_acquire of 1 request and that many tokens; else rl_allow.
 * With h, the asker follows the plan made before (plan_clear, plan_add)
 * once its handle is open. */
pid_t asker_n(const char *path, const char *key, const rl_limit *lims, size_t nlims, int busy_ms,
              int64_t tokens, const pipes *p, const hook *h);
pid_t asker(const char *path, const char *key, const rl_limit *lims, int busy_ms, const pipes *p);
/* An asker that makes call c, following the plan made before when h is
 * set. */
pid_t asker_call(const char *path, const call *c, const rl_limit *lims, int busy_ms, const pipes *p,
                 const hook *h);
/* An asker that stops at step (see arm()). */
pid_t asker_paused(const char *path, const char *key, const rl_limit *lims, const pipes *p,
                   const hook *h, int step);
/* An asker that says when it has posted its request, and goes on. */
pid_t asker_posting(const char *path, const char *key, const rl_limit *lims, int busy_ms,
                    const pipes *p, const hook *h);
/* An asker that says when it has queued behind the lock (see queued()). */
pid_t asker_queuing(const char *path, const char *key, const rl_limit *lims, const pipes *p,
                    const hook *h);
/* Behind a held lock: an asker queued, posted in a slot (RL_STEP_POSTED)
 * or, with every slot in use, asleep on the lock (RL_STEP_WAITING). */
int queued(const hook *h);
/* Waits until n askers have their handles open (rl_open takes the lock
 * too, so this comes before hold()). */
void ready(const pipes *p, int n);
/* Tells n askers to make their call. */
void go(const pipes *p, int n);
/* Reads one asker's answer (which asker's: whichever wrote first). */
void collect(const pipes *p, answer *a);
/* Waits for a child, which must have exited 0. */
void reap(pid_t pid);
/* One rl_allow in a child of its own, with nobody else about. */
void ask_once(const char *path, const char *key, int busy_ms, answer *a);

#endif
