/*
 * test_lock_group.c - the write lock's group commit (store/lock_group.c), as
 * processes sharing one database file see it.
 *
 * What users rely on: callers (rl_allow, rl_acquire, rl_acquire_keys,
 * rl_reserve) that queue behind a busy writer are all answered, each by its
 * keys' limits and in the order they queued, even when more of them wait
 * than the queue has slots; a damaged request or answer in the lock file
 * gives RL_ECORRUPT for that call alone; a caller waits no longer than busy_timeout_ms;
 * and when the process deciding for others is killed, its batch is settled
 * by what the database holds: answered if it was committed, decided again
 * if it was not, never counted twice and never reported as a failure.
 * Real processes (fork) and real files; the dying leader is a child driving
 * the store's group-commit calls by hand, so it can die at a chosen point.
 *
 * No test waits for time to pass (lock_helpers.h says how). Nothing here is
 * random: there is no seed. The lock file itself, its members and its
 * rebuild (store/lock.c) are test_lock.c's.
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
#include <unistd.h>

#include <cmocka.h>

#include "rl.h"
#include "rl_admin.h"
#include "rl_int.h"
#include "lock.h"
#include "lock_helpers.h"

/* Default limits are the database's (one set for every process), so a
 * key's own limits come from its tier: the parent gives key the tier
 * `tier` with lims before the askers start. The askers still open with
 * different default limits: their handles' signatures differ (rl.c keeps
 * a handle's own defaults for a store that lost its data), so a leader
 * decides only its own kind. */
static void key_tier_n(const char *path, const char *key, const char *tier, const rl_limit *lims,
                       size_t n)
{
    rl *r = NULL;
    assert_int_equal(rl_open(&r, path, NULL), RL_OK);
    assert_int_equal(rl_tier_set(r, tier, lims, n), RL_OK);
    assert_int_equal(rl_key_assign(r, key, tier), RL_OK);
    rl_close(r);
}

static void key_tier(const char *path, const char *key, const char *tier, const rl_limit *lims)
{
    key_tier_n(path, key, tier, lims, 1);
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

/* Two handles with different default limits, asking for keys of
 * different tiers, queue together: whichever leads, each is decided by
 * its key's limits. */
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
        key_tier(f->path, ka, "small", small);
        key_tier(f->path, kb, "large", large);
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

/* Calls cl[0..n) (n <= 8) made in order: cl[0] by a leader that holds the
 * lock (stopped there) while each of the others posts, one after the
 * other, behind it; then the leader goes on, and each poster must be
 * answered by its batch. Answers in a[], in the same order. */
static void queued_in_order(fx *f, const call *cl, int n, const rl_limit *lims, answer *a)
{
    pipes p[8];
    hook h[8];
    pid_t pids[8];
    int i;
    assert_true(n <= 8);
    for (i = 0; i < n; i++) {
        pipes_open(&p[i]);
        hook_open(&h[i]);
        plan_clear();
        if (i == 0) { /* the leader: stops holding the lock */
            plan_add(STEP(RL_STEP_LOCKED), 1);
        } else { /* posts; then says it was answered, or that it leads */
            plan_add(STEP(RL_STEP_POSTED), 0);
            plan_add(STEP(RL_STEP_ANSWERED) | STEP(RL_STEP_LEAD) | STEP(RL_STEP_LOCKED), 0);
        }
        pids[i] = asker_call(f->path, &cl[i], lims, WAIT_MS, &p[i], &h[i]);
        ready(&p[i], 1);
    }
    go(&p[0], 1);
    assert_int_equal(reached(&h[0]), RL_STEP_LOCKED);
    for (i = 1; i < n; i++) { /* one after the other: the queue's order */
        go(&p[i], 1);
        assert_int_equal(reached(&h[i]), RL_STEP_POSTED);
    }
    resume(&h[0]);
    for (i = 0; i < n; i++) {
        if (i > 0) /* answered by the leader's batch */
            assert_int_equal(reached(&h[i]), RL_STEP_ANSWERED);
        collect(&p[i], &a[i]);
        reap(pids[i]);
        pipes_close(&p[i]);
        hook_close(&h[i]);
    }
}

/* rl_acquire_keys of (its user's key, one account key), rl_reserve and
 * rl_allow on the account queue behind a leader that holds the lock, and
 * the leader decides them all in its batch (each poster is answered, none
 * leads), in the order they queued, each exactly as it would be alone: the
 * account's 4 per hour go to the leader and the first three posted, and the
 * last two are refused by the account's limit, the second of the keys. */
static void test_keys_queued_in_order(void **state)
{
    static const rl_limit acct[] = { RL_LIMIT("acct", "requests", 4, RL_HOUR, 4) };
    static const char *users[] = { "u0", "u1", "u2", "u3", "u4", "u5" };
    static const int kinds[] = { CALL_KEYS, CALL_KEYS, CALL_RESERVE,
                                 CALL_KEYS, CALL_KEYS, CALL_ALLOW };
    fx *f = *state;
    call c[6];
    answer a[6];
    int i;
    key_tier(f->path, "acct", "acct", acct);
    memset(c, 0, sizeof c);
    for (i = 0; i < 6; i++) {
        c[i].kind = kinds[i];
        c[i].keys[0] = kinds[i] == CALL_KEYS ? users[i] : "acct";
        c[i].keys[1] = "acct";
        c[i].nkeys = 2;
    }
    queued_in_order(f, c, 6, large, a);
    for (i = 0; i < 6; i++)
        assert_int_equal(a[i].rc, RL_OK);
    for (i = 0; i < 6; i++) {
        if (kinds[i] == CALL_RESERVE) {
            assert_int_equal(a[i].rv.ok, i < 4);
            assert_int_equal(a[i].rv.delay_ns, i < 4 ? 0 : 3600 * RL_SECOND / 4);
            continue;
        }
        assert_int_equal(a[i].res.allowed, i < 4);
        assert_string_equal(a[i].res.limit_name, "acct");
        assert_int_equal(a[i].res.key_index, kinds[i] == CALL_KEYS ? 1 : 0);
        assert_int_equal(a[i].res.remaining, i < 4 ? 3 - i : 0);
        if (i >= 4)
            assert_true(a[i].res.retry_after_ns > 0);
    }
    assert_int_equal(a[2].rv.n_, 1);
    assert_string_equal(a[2].rv.key_, "acct");
    assert_true(a[2].rv.time_to_act > 0);
    assert_int_equal(allowed_of(f->path, "acct"), 4);
    assert_int_equal(allowed_of(f->path, "u0"), 1);
    assert_int_equal(allowed_of(f->path, "u1"), 1);
    assert_int_equal(allowed_of(f->path, "u3"), 1);
    assert_int_equal(allowed_of(f->path, "u4"), 0);
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
    key_tier(f->path, "lone", "small", small);
    key_tier(f->path, "hot", "large", large);
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
    resume(&h1);                                    /* hot1 answers and releases */
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
enum { DIE_BEFORE_COMMIT, DIE_AFTER_COMMIT, DIE_LATE, ANSWER_LATE, ANSWER_BAD_RV };

static void fake_leader_with(const char *path, const rl_limit *lims, int when, int ready_fd,
                             int cont_fd)
{
    rl *r = open_with(path, lims, WAIT_MS);
    rl_store *s = rl__store(r);
    rl_group_req me, *batch[16];
    rl_row row;
    int64_t version;
    size_t n, k;
    const char *key;
    char c;
    memset(&me, 0, sizeof me);
    strcpy(me.keys, "self");
    me.nkeys = 1;
    me.keys_len = 5;
    me.sig = rl__group_sig(r);
    if (s->ops->group_join(s, &me) != RL_GROUP_LEAD || s->ops->begin(s, 1) != RL_OK)
        _exit(92);
    if (write(ready_fd, "x", 1) != 1 || read(cont_fd, &c, 1) != 1)
        _exit(93);
    n = s->ops->group_take(s, me.sig, batch, 16);
    if (n != 1 || batch[0]->nkeys < 1 || batch[0]->nkeys > RL_MAX_KEYS)
        _exit(94);
    for (k = 0, key = batch[0]->keys; k < batch[0]->nkeys; k++, key += strlen(key) + 1) {
        if (s->ops->row_get(s, key, &row, &version) != RL_OK)
            _exit(94);
        row.allowed++;
        row.units++;
        if (s->ops->row_put(s, key, &row) != RL_OK)
            _exit(95);
    }
    batch[0]->rc = RL_OK;
    batch[0]->res.allowed = 1;
    batch[0]->res.limit = 10;
    batch[0]->res.remaining = 4242;
    if ((when == DIE_AFTER_COMMIT || when == ANSWER_LATE || when == ANSWER_BAD_RV) &&
        s->ops->commit(s) != RL_OK)
        _exit(96);
    if (when == ANSWER_BAD_RV) { /* a reservation answered with a count past its arrays */
        batch[0]->rv.ok = 1;
        batch[0]->rv.n_ = 1000;
        s->ops->group_end(s);
    }
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

/* An asker of key "k" (or of call cl, if set) queues behind a fake leader,
 * which takes its request, writes a decision on each of its keys, and dies
 * at when. DIE_LATE: the asker's busy timeout passes (on the lock's clock)
 * while its request is taken, before the leader dies. */
static void leader_dies_with(fx *f, const call *cl, int when, int busy_ms, answer *a)
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
    if (cl) {
        plan_clear();
        plan_add(STEP(RL_STEP_POSTED), 0);
        pid = asker_call(f->path, cl, small, busy_ms, &p, &h);
    } else {
        pid = asker_posting(f->path, "k", small, busy_ms, &p, &h);
    }
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

static void leader_dies(fx *f, int when, int busy_ms, answer *a)
{
    leader_dies_with(f, NULL, when, busy_ms, a);
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

/* The same with an rl_acquire_keys on ("k", "acct") queued: the batch is
 * settled by the mark on its first key's row, and both keys count the one
 * decision once, whether the leader committed (its answer stands) or not
 * (decided again, by the caller itself). */
static void test_leader_killed_keys(void **state)
{
    fx *f = *state;
    answer a;
    call c;
    memset(&c, 0, sizeof c);
    c.kind = CALL_KEYS;
    c.keys[0] = "k";
    c.keys[1] = "acct";
    c.nkeys = 2;
    leader_dies_with(f, &c, DIE_AFTER_COMMIT, WAIT_MS, &a);
    assert_int_equal(a.rc, RL_OK);
    assert_true(a.res.allowed);
    assert_int_equal(a.res.remaining, 4242);
    assert_int_equal(allowed_of(f->path, "k"), 1);
    assert_int_equal(allowed_of(f->path, "acct"), 1);
    c.keys[0] = "k2";
    c.keys[1] = "acct2";
    leader_dies_with(f, &c, DIE_BEFORE_COMMIT, WAIT_MS, &a);
    assert_int_equal(a.rc, RL_OK);
    assert_true(a.res.allowed);
    assert_int_equal(a.res.remaining, 9);
    assert_int_equal(allowed_of(f->path, "k2"), 1);
    assert_int_equal(allowed_of(f->path, "acct2"), 1);
    c.kind = CALL_RESERVE; /* a reservation: its rl_reservation is the caller's own */
    c.keys[0] = "k3";
    c.max_delay_ns = RL_SECOND;
    leader_dies_with(f, &c, DIE_BEFORE_COMMIT, WAIT_MS, &a);
    assert_int_equal(a.rc, RL_OK);
    assert_int_equal(a.rv.ok, 1);
    assert_int_equal(a.rv.delay_ns, 0);
    assert_string_equal(a.rv.key_, "k3");
    assert_int_equal(allowed_of(f->path, "k3"), 1);
}

/* A reservation's answer read back is checked before the caller gets it:
 * one whose count of limits is past the arrays it indexes (a damaged lock
 * file) gives RL_ECORRUPT and an empty rl_reservation, never a struct that
 * rl_cancel would read past the end of. */
static void test_damaged_reservation_answer(void **state)
{
    fx *f = *state;
    answer a;
    call c;
    memset(&c, 0, sizeof c);
    c.kind = CALL_RESERVE;
    c.keys[0] = "k";
    c.nkeys = 1;
    c.max_delay_ns = RL_SECOND;
    leader_dies_with(f, &c, ANSWER_BAD_RV, WAIT_MS, &a);
    assert_int_equal(a.rc, RL_ECORRUPT);
    assert_non_null(strstr(a.msg, "damaged answer"));
    assert_int_equal(a.rv.ok, 0);
    assert_int_equal(a.rv.n_, 0);
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
    key_tier(f->path, "k", "small", small);
    key_tier(f->path, "other", "large", large);
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
    stopped(pid);                                    /* ...and stops before reading it */
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

/* ---- leases through the queue --------------------------------------------- */

/* A key with 2 "streams" slots and 100 requests an hour. */
static const rl_limit streams2[] = { RL_LIMIT("rate", "requests", 100, RL_HOUR, 100),
                                     RL_CONCURRENT("streams", "streams", 2) };

/* A lease held by this (the test's) process on key: 5 requests, 1 stream. */
static int64_t own_lease(const char *path, const char *key)
{
    static const rl_cost est[] = { { "requests", 5 }, { "streams", 1 } };
    rl *r = open_with(path, small, WAIT_MS);
    rl_lease l;
    rl_result res;
    assert_int_equal(rl_lease_begin(r, key, est, 2, RL_HOUR, &l, &res), RL_OK);
    assert_true(res.allowed);
    rl_close(r);
    return l.id;
}

/* The leases open on key, up to 8, by id. */
typedef struct lease_list {
    size_t n;
    rl_lease_info l[8];
} lease_list;

static int list_one(void *ctx, const rl_lease_info *li)
{
    lease_list *ls = ctx;
    if (ls->n < 8)
        ls->l[ls->n] = *li;
    ls->n++;
    return 0;
}

static void leases_of(const char *path, const char *key, lease_list *ls)
{
    rl *r = open_with(path, small, WAIT_MS);
    memset(ls, 0, sizeof *ls);
    assert_int_equal(rl_leases_list(r, key, list_one, ls), RL_OK);
    rl_close(r);
}

/* Lease begins, a settle and a cancel queue behind a leader (an rl_allow)
 * and are decided in the order they queued, each as it would be alone: on
 * a key with 2 stream slots, one held by this process, the first begin is
 * granted, the second refused by "streams", the settle of the held lease
 * frees its slot, so the third begin is granted; the cancel of a lease
 * that does not exist is RL_ENOTFOUND. A lease a leader began is its
 * poster's: it carries the poster's pid, so it is reclaimed when the poster
 * dies, not when the leader does. */
static void test_leases_queued_in_order(void **state)
{
    static const int kinds[] = { CALL_ALLOW,  CALL_LEASE, CALL_LEASE,
                                 CALL_SETTLE, CALL_LEASE, CALL_CANCEL };
    fx *f = *state;
    call c[6];
    answer a[6];
    lease_list ls;
    int64_t held;
    int i;
    key_tier_n(f->path, "s", "st", streams2, 2);
    held = own_lease(f->path, "s");
    memset(c, 0, sizeof c);
    for (i = 0; i < 6; i++) {
        c[i].kind = kinds[i];
        c[i].keys[0] = "s";
        c[i].nkeys = 1;
        c[i].lease_id = kinds[i] == CALL_CANCEL ? 999999 : held;
        c[i].amount = 2;
    }
    queued_in_order(f, c, 6, small, a);
    assert_int_equal(a[0].rc, RL_OK);
    assert_true(a[0].res.allowed);
    assert_int_equal(a[1].rc, RL_OK); /* the second slot */
    assert_true(a[1].res.allowed);
    assert_true(a[1].lease.id > held);
    assert_true(a[1].lease.expires_at > 0);
    assert_int_equal(a[2].rc, RL_OK); /* no slot left */
    assert_false(a[2].res.allowed);
    assert_string_equal(a[2].res.limit_name, "streams");
    assert_int_equal(a[2].lease.id, 0);
    assert_int_equal(a[3].rc, RL_OK); /* the held lease settled: its slot is free */
    assert_int_equal(a[4].rc, RL_OK);
    assert_true(a[4].res.allowed);
    assert_true(a[4].lease.id > a[1].lease.id);
    assert_int_equal(a[5].rc, RL_ENOTFOUND);
    assert_non_null(strstr(a[5].msg, "999999"));
    /* the two granted leases are their posters', who are gone */
    leases_of(f->path, "s", &ls);
    assert_int_equal(ls.n, 2);
    assert_int_equal(ls.l[0].id, a[1].lease.id);
    assert_int_equal(ls.l[0].pid, a[1].pid);
    assert_int_equal(ls.l[1].id, a[4].lease.id);
    assert_int_equal(ls.l[1].pid, a[4].pid);
    for (i = 0; i < 2; i++) {
        assert_int_equal(ls.l[i].owner_alive, 0);
        assert_int_equal(ls.l[i].live, 0);
    }
    /* so both slots are free for the next begin, which reclaims them */
    own_lease(f->path, "s");
    own_lease(f->path, "s");
    leases_of(f->path, "s", &ls);
    assert_int_equal(ls.n, 2);
    assert_int_equal(ls.l[0].pid, (int64_t)getpid());
    assert_int_equal(ls.l[1].pid, (int64_t)getpid());
}

/* A leader (a real one, deciding an rl_allow of its own) is killed with a
 * lease call of another process in its batch, after committing it or
 * before deciding it (when): the call's outcome is what the database holds,
 * once. Committed, its answer stands: a settle's lease is gone and the
 * caller gets RL_OK (its slot names the lease's key, whose row carries the
 * batch's mark), not a second settle's RL_ENOTFOUND; a begin's lease is
 * the caller's and is the only one. Not committed, the call is decided
 * again, by the caller itself. */
static void leader_killed_with(fx *f, const char *key, int kind, int when)
{
    int status;
    pipes pl, pc;
    hook hl, hc;
    pid_t leader, caller;
    answer a;
    lease_list ls;
    call c;
    int64_t held = 0;
    key_tier_n(f->path, key, "st", streams2, 2);
    if (kind == CALL_SETTLE)
        held = own_lease(f->path, key);
    pipes_open(&pl);
    pipes_open(&pc);
    hook_open(&hl);
    hook_open(&hc);
    plan_clear();
    plan_add(STEP(RL_STEP_LOCKED), 1);
    plan_add(STEP(when), 1);
    memset(&c, 0, sizeof c);
    c.kind = CALL_ALLOW;
    c.keys[0] = "x";
    c.nkeys = 1;
    leader = asker_call(f->path, &c, small, WAIT_MS, &pl, &hl);
    c.kind = kind;
    c.keys[0] = key;
    c.lease_id = held;
    c.amount = 2;
    plan_clear();
    plan_add(STEP(RL_STEP_POSTED), 0);
    caller = asker_call(f->path, &c, small, WAIT_MS, &pc, &hc);
    ready(&pl, 1);
    ready(&pc, 1);
    go(&pl, 1);
    assert_int_equal(reached(&hl), RL_STEP_LOCKED);
    go(&pc, 1);
    assert_int_equal(reached(&hc), RL_STEP_POSTED);
    resume(&hl);
    assert_int_equal(reached(&hl), when);
    assert_int_equal(kill(leader, SIGKILL), 0);
    assert_int_equal(waitpid(leader, &status, 0), leader);
    assert_true(WIFSIGNALED(status));
    collect(&pc, &a);
    reap(caller);
    assert_int_equal(a.rc, RL_OK);
    leases_of(f->path, key, &ls);
    if (kind == CALL_SETTLE) {
        assert_int_equal(ls.n, 0);
    } else {
        assert_true(a.res.allowed);
        assert_true(a.lease.id > 0);
        assert_int_equal(ls.n, 1);
        assert_int_equal(ls.l[0].id, a.lease.id);
        assert_int_equal(ls.l[0].pid, a.pid);
    }
    pipes_close(&pl);
    pipes_close(&pc);
    hook_close(&hl);
    hook_close(&hc);
}

static void test_leader_killed_with_lease_calls(void **state)
{
    fx *f = *state;
    leader_killed_with(f, "s1", CALL_SETTLE, RL_STEP_COMMITTED);
    leader_killed_with(f, "s2", CALL_SETTLE, RL_STEP_TAKEN);
    leader_killed_with(f, "s3", CALL_LEASE, RL_STEP_COMMITTED);
    leader_killed_with(f, "s4", CALL_LEASE, RL_STEP_TAKEN);
}

/* How a posted request is damaged (damaged_request). */
enum {
    BAD_NCOSTS,   /* 1000 costs where there is room for RL_MAX_LIMITS */
    BAD_NKEYS,    /* 9 keys where there is room for RL_MAX_KEYS */
    BAD_KEYS_LEN, /* its keys said to take more than their room */
    BAD_KEY_CUT,  /* its second key not ended within keys_len */
    BAD_NO_KEYS,  /* no key at all */
    BAD_KIND,     /* neither a decision, a reservation nor a lease call */
    BAD_TTL,      /* a lease begin of TTL 0 */
    BAD_OWNER,    /* a lease begin whose owner is pid 0 */
    BAD_LEASE_2,  /* a lease begin on two keys */
    BAD_END_ID,   /* a settle of lease 0 */
    BAD_END_HOW,  /* an end neither a settle nor a cancel */
    BAD_END_COSTS /* a settle whose actual costs overflow their names */
};

/* A damaged request in the lock file posted by a process that then stops
 * (a multi-key rl_acquire_keys of 1 request on "bad", "acct", spoilt as
 * `how` says): the next leader answers it RL_ECORRUPT instead of reading
 * and writing past its bounds, and decides its own call (rl_allow of
 * `good`) as usual. */
static void damaged_request(fx *f, int how, const char *good)
{
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
    pid = asker_posting(f->path, good, small, WAIT_MS, &p, &ha);
    if ((poster = fork()) == 0) {
        rl *r = open_with(f->path, small, WAIT_MS); /* for its signature only */
        rl_group_req bad;
        rl_lock *pl = NULL;
        char err[RL_ERRMSG_MAX], c;
        size_t k;
        memset(&bad, 0, sizeof bad);
        memcpy(bad.keys, "bad\0acct", 9); /* and the rest of keys all 0 */
        bad.nkeys = 2;
        bad.keys_len = 9;
        for (k = 0; k < RL_MAX_LIMITS; k++) /* valid names: only a count is wrong */
            snprintf(bad.resource[k], RL_NAME_MAX, "r%zu", k);
        bad.ncosts = 1;
        bad.amount[0] = 1;
        if (how == BAD_NCOSTS)
            bad.ncosts = 1000;
        else if (how == BAD_NKEYS)
            bad.nkeys = 9;
        else if (how == BAD_KEYS_LEN)
            bad.keys_len = sizeof bad.keys + 1;
        else if (how == BAD_KEY_CUT)
            bad.keys_len = 6; /* "bad", then "ac" of "acct" */
        else if (how == BAD_NO_KEYS)
            bad.nkeys = 0;
        else if (how == BAD_KIND)
            bad.kind = 7;
        if (how >= BAD_TTL && how <= BAD_LEASE_2) { /* else a good lease begin on "bad" */
            bad.kind = RL_GROUP_LEASE;
            bad.nkeys = how == BAD_LEASE_2 ? 2 : 1;
            bad.keys_len = how == BAD_LEASE_2 ? 9 : 4;
            bad.ttl_ns = how == BAD_TTL ? 0 : RL_HOUR;
            bad.owner_pid = how == BAD_OWNER ? 0 : (int64_t)getpid();
        } else if (how >= BAD_END_ID) { /* else a good settle of lease 1 */
            bad.kind = RL_GROUP_END;
            bad.nkeys = bad.keys_len = 0;
            bad.end_id = how == BAD_END_ID ? 0 : 1;
            bad.end_cancel = how == BAD_END_HOW ? 2 : 0;
            if (how == BAD_END_COSTS)
                memset(bad.resource[0], 'r', RL_NAME_MAX);
        }
        bad.sig = rl__group_sig(r);
        rl_close(r);
        uint64_t old;
        if (rl_lock_open(&pl, f->path, 0600, 0, WAIT_MS, &old, err) != RL_OK)
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
    /* answered by the leader as damaged (a poster that names no key can
     * take no answer: it finds the answer damaged too) */
    assert_int_equal(rc, how == BAD_NO_KEYS ? RL_ECORRUPT : RL_OK);
    assert_int_equal(brc, RL_ECORRUPT);
    assert_int_equal(waitpid(poster, &status, 0), poster);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    rl_lock_close(l);
    pipes_close(&p);
    pipes_close(&pp);
    hook_close(&ha);
    hook_close(&hp);
    assert_int_equal(allowed_of(f->path, good), 1);
    assert_int_equal(allowed_of(f->path, "bad"), 0);
    assert_int_equal(allowed_of(f->path, "acct"), 0);
}

/* Each way a posted request can be damaged, multi-key ones and lease
 * calls too. */
static void test_damaged_request_refused(void **state)
{
    fx *f = *state;
    char good[16];
    int how;
    for (how = BAD_NCOSTS; how <= BAD_END_COSTS; how++) {
        snprintf(good, sizeof good, "good%d", how);
        damaged_request(f, how, good);
    }
}

/* ---- the queue's slots as input (issue 14) -------------------------------- */

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

int main(void)
{
    if (lock_test_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_more_waiters_than_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_by_its_own_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acquire_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_queued_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lone_signature_not_starved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queued_caller_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_killed_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_killed_before_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_killed_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_reservation_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leases_queued_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_killed_with_lease_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_too_slow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stalled_caller_keeps_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_request_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_slot_not_stolen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_leader_other_writer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
