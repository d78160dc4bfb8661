/*
 * lock_group.c - group commit on the process-shared write lock (lock.h):
 * the queue slots of the lock file, and what each side does with them:
 * posting (rl_lock_join), taking and answering (rl_lock_take,
 * rl_lock_batch, rl_lock_publish), the lead handed on at each release, and
 * recovery after a leader died. The lock itself, the file and its members
 * are lock.c's; the layout both read is lock_int.h.
 *
 * Group commit (rl_allow, rl_acquire, rl_acquire_keys, rl_reserve,
 * rl_wait's decisions, lease begins, settles and cancels): a writer that finds the lock taken
 * posts its request in a free slot and waits on the slot's state word (a
 * futex), spinning briefly first; the holder takes the posted slots of its
 * signature into its own transaction, and keeps taking those posted while
 * it decides; it writes each answer into its slot, commits, marks the slots
 * done and wakes their posters before it unlocks. Whoever unlocks wakes the
 * oldest slot still posted to lead, and posters poll the lock too, so no
 * slot is left behind. With every slot in use a writer waits on the lock.
 * (bench/ sqlite/4p/1key: about 2x one process's rate.) Guarantees, beside
 * those of lock.c (a slot is taken over only from a dead poster):
 *
 * - Garbage gives an error, never a crash: a slot's word is checked before
 *   use, a request read from a slot is checked by the leader as a caller's
 *   arguments are (core/), and an answer read back is checked before it is
 *   handed to the caller (answer_take: only its answer is read, and every
 *   count or index in it is bounded).
 * - A request's keys are packed at the end of its slot, and a poster
 *   copies only the bytes they use: an rl_allow posts about 2 KiB, not
 *   the 6 KiB a slot has room for.
 * - A dead leader's batch is settled from the database, not guessed: the
 *   leader numbers each batch that holds other processes' requests and the
 *   store records (domain, seq) in the same transaction (rl_lock_batch); the
 *   next holder reads it back (rl_lock_resolve_fn): committed, the answers
 *   in the slots stand; not, the requests are posted again. No other
 *   writer, whatever lock it uses or lacks, can fake or erase that record.
 * - No arithmetic on a time or counter read from the file: times read back
 *   (a slot's posting time) are only compared.
 */
#include "lock_int.h"

#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>

/* ---- the lead, at each release -------------------------------------------- */

/* After unlocking: a slot still posted gets a leader. A poster told to lead
 * (Q_LEAD) and not yet leading is nudged again rather than another one. */
void rl_lock_wake_posted(rl_lock *l)
{
    qslot *oldest = NULL;
    uint32_t ow = 0;
    int i;
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the unlock before any read of a slot */
    if (!__atomic_load_n(&l->h->posted, __ATOMIC_SEQ_CST))
        return;
    for (i = 0; i < RL_QUEUE_SLOTS; i++) {
        qslot *q = slot_at(l, i);
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        if (Q_ST(w) == Q_LEAD) {
            q_wake(&q->state, INT_MAX);
            return;
        }
        if (Q_ST(w) == Q_POSTED && (!oldest || q->since < oldest->since)) {
            oldest = q;
            ow = w;
        }
    }
    if (oldest && cas(&oldest->state, ow, Q_WORD(Q_GEN(ow), Q_M1(ow), Q_LEAD)))
        q_wake(&oldest->state, INT_MAX);
}

/* A batch's mark in the rows it writes: the domain is random, so the marks
 * of two lives of the file differ. */
static uint64_t mark_of(const rl_lock *l, uint64_t seq)
{
    return l->domain + seq;
}

/* ---- recovery ------------------------------------------------------------- */

/* Just after taking the lock from a holder that died: the slots it had
 * taken are settled by the database's record of its batch. Committed:
 * answered; not: posted again (freed if their posters are gone); cannot
 * tell: left for their posters to report. */
void rl_lock_recover(rl_lock *l)
{
    uint64_t seq = 0;
    int i, committed = -2;
    if (!l->resolve) {
        l->unresolved = 1;
        return;
    }
    seq = l->h->seq;
    if (l->h->seq_check != ~seq || !seq)
        committed = -1;
    /* Committed if a row the batch wrote carries its mark: a decided
     * request wrote the row of every one of its keys, so its first key's
     * is looked at. A request the leader had not decided yet still holds
     * the poster's rc 0, but then nothing was committed, and no row
     * carries the mark. */
    for (i = 0; committed == -2 && i < RL_QUEUE_SLOTS; i++) {
        qslot *q = slot_at(l, i);
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        int v;
        if (Q_ST(w) == Q_TAKEN && q->seq == seq && q->req.rc == RL_OK &&
            memchr(q->req.keys, 0, sizeof q->req.keys) && /* its first key */
            (v = l->resolve(l->resolve_ctx, q->req.keys, mark_of(l, seq))) != 0)
            committed = v;
    }
    if (committed == -2)
        committed = 0;
    for (i = 0; i < RL_QUEUE_SLOTS; i++) {
        qslot *q = slot_at(l, i);
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        int m = (int)Q_M1(w) - 1;
        if (Q_ST(w) != Q_TAKEN)
            continue;
        if (q->seq != seq) /* an older batch already left unsettled */
            continue;
        if (committed > 0) {
            if (cas(&q->state, w, Q_WORD(Q_GEN(w), Q_M1(w), Q_DONE)))
                q_wake(&q->state, INT_MAX);
        } else if (committed == 0) {
            if (__atomic_load_n(&q->abandoned, __ATOMIC_ACQUIRE) || bad_member(m) ||
                !member_alive(l, m)) {
                slot_free(l, i, w);
                continue;
            }
            posted_add(l, 1);
            if (cas(&q->state, w, Q_WORD(Q_GEN(w), Q_M1(w), Q_POSTED)))
                q_wake(&q->state, INT_MAX);
            else
                posted_add(l, -1);
        }
    }
}

void rl_lock_on_recover(rl_lock *l, rl_lock_resolve_fn fn, void *ctx)
{
    l->resolve = fn;
    l->resolve_ctx = ctx;
    if (l->unresolved) {
        l->unresolved = 0;
        rl_lock_recover(l);
    }
}

/* ---- group commit --------------------------------------------------------- */

/* A slot for our request: a free one; failing that, one whose poster is
 * gone (never a TAKEN one: its leader owns it until it answers). Answers we
 * gave up on earlier (DONE, ours) are freed on the way. -1 if none. */
static int slot_claim(rl_lock *l, uint32_t *word)
{
    uint32_t m1 = (uint32_t)l->member + 1;
    int i, pass;
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < RL_QUEUE_SLOTS; i++) {
            qslot *q = slot_at(l, i);
            uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
            uint32_t st = Q_ST(w), gen = Q_GEN(w);
            if (st != Q_FREE) {
                int m = (int)Q_M1(w) - 1;
                if (st == Q_DONE && m == l->member) { /* an answer we gave up waiting for */
                    if (!slot_free(l, i, w))
                        continue;
                    w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
                    if (Q_ST(w) != Q_FREE)
                        continue;
                    gen = Q_GEN(w);
                } else if (pass == 0 || st == Q_TAKEN ||
                           (st < Q_NSTATES && !bad_member(m) && member_alive(l, m))) {
                    continue;
                } else {
                    gen++; /* its poster is gone, or the word is garbage */
                }
            }
            if (cas(&q->state, w, Q_WORD(gen, m1, Q_FILLING))) {
                if (is_posted(w))
                    posted_add(l, -1);
                *word = Q_WORD(gen, m1, Q_FILLING);
                return i;
            }
        }
    }
    return -1;
}

size_t rl_lock_take(rl_lock *l, uint64_t sig, rl_group_req **batch, size_t max)
{
    size_t first = l->ntaken, k;
    int i, j;
    if (l->forked || l->damaged || !__atomic_load_n(&l->h->posted, __ATOMIC_SEQ_CST))
        return 0;
    for (i = 0; i < RL_QUEUE_SLOTS && l->ntaken - first < max; i++) {
        qslot *q = slot_at(l, i);
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        if (!is_posted(w) || q->req.sig != sig)
            continue;
        if (!l->seq) { /* numbered before any request is taken: see rl_lock_recover() */
            uint64_t s = l->h->seq + 1;
            l->h->seq = s ? s : 1;
            l->h->seq_check = ~l->h->seq;
            l->seq = l->h->seq;
        }
        q->seq = l->seq;
        if (!cas(&q->state, w, Q_WORD(Q_GEN(w), Q_M1(w), Q_TAKEN))) {
            i--; /* POSTED turned LEAD under us: look again */
            continue;
        }
        posted_add(l, -1);
        for (j = (int)l->ntaken; j > (int)first && slot_at(l, l->taken[j - 1])->since > q->since;
             j--)
            l->taken[j] = l->taken[j - 1];
        l->taken[j] = i;
        l->ntaken++;
    }
    for (k = first; k < l->ntaken; k++)
        batch[k - first] = &slot_at(l, l->taken[k])->req;
    if (l->ntaken > first)
        RL_LOCK_HOOK(RL_STEP_TAKEN);
    return l->ntaken - first;
}

int rl_lock_batch(const rl_lock *l, uint64_t *mark)
{
    if (!l->ntaken || !l->seq)
        return 0;
    *mark = mark_of(l, l->seq);
    return 1;
}

void rl_lock_publish(rl_lock *l)
{
    size_t i;
    for (i = 0; i < l->ntaken; i++) {
        int n = l->taken[i];
        qslot *q = slot_at(l, n);
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        if (Q_ST(w) != Q_TAKEN)
            continue;
        if (__atomic_load_n(&q->abandoned, __ATOMIC_ACQUIRE))
            slot_free(l, n, w);
        else if (cas(&q->state, w, Q_WORD(Q_GEN(w), Q_M1(w), Q_DONE)))
            q_wake(&q->state, INT_MAX);
    }
    l->ntaken = 0;
    l->seq = 0;
}

/* The answer in slot q into req, the poster's own request, made safe to
 * hand to the caller: 0 if it cannot be (damaged). Only the answer is
 * read: what req asked stays the caller's, and a key index or a
 * reservation's count read from the file is bounded before anyone uses it
 * as an index. */
static int answer_take(rl_group_req *req, const qslot *q)
{
    req->rc = q->req.rc;
    req->res = q->req.res;
    memcpy(req->err, q->req.err, sizeof req->err);
    req->err[sizeof req->err - 1] = 0;
    req->res.limit_name[sizeof req->res.limit_name - 1] = 0;
    if (req->kind == RL_GROUP_RESERVE) {
        req->rv = q->req.rv;
        req->rv.key_[sizeof req->rv.key_ - 1] = 0;
        if ((req->rv.ok != 0 && req->rv.ok != 1) || req->rv.n_ > RL_MAX_LIMITS)
            return 0;
    } else if (req->kind == RL_GROUP_LEASE) { /* a granted lease has an id */
        req->lease_id = q->req.lease_id;
        req->lease_expires = q->req.lease_expires;
        if (req->rc == RL_OK && req->res.allowed == 1 ? req->lease_id <= 0 : req->lease_id != 0)
            return 0;
    } else if (req->kind == RL_GROUP_END) { /* an end answers rc and expired only */
        req->expired = q->req.expired;
        return req->rc <= 0 && req->rc >= RL_EPERM && (req->expired == 0 || req->expired == 1);
    }
    return req->rc <= 0 && req->rc >= RL_EPERM &&
           (req->res.allowed == 0 || req->res.allowed == 1) && req->res.key_index >= 0 &&
           (size_t)req->res.key_index < req->nkeys;
}

/* Holding the lock, as a poster whose slot i is in state w: withdraws it
 * to lead (RL_GROUP_LEAD), or returns what became of it. */
static int settle_held(rl_lock *l, int i, uint32_t mine, rl_group_req *req, char *err)
{
    qslot *q = slot_at(l, i);
    int ok;
    for (;;) {
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        if (Q_GEN(w) != Q_GEN(mine) || Q_M1(w) != Q_M1(mine)) {
            rl_lock_release(l);
            return rl_seterr(err, RL_ECORRUPT,
                             "%s: a queue slot was overwritten; this call "
                             "may or may not have been counted",
                             l->path);
        }
        switch (Q_ST(w)) {
        case Q_POSTED:
        case Q_LEAD:
            if (slot_free(l, i, w))
                return RL_GROUP_LEAD;
            continue; /* POSTED turned LEAD */
        case Q_DONE:
            RL_LOCK_HOOK(RL_STEP_ANSWERED);
            ok = answer_take(req, q);
            slot_free(l, i, w);
            rl_lock_release(l);
            return ok ? RL_OK : rl_seterr(err, RL_ECORRUPT, "%s: a damaged answer", l->path);
        default: /* TAKEN by a leader that died, and its batch cannot be settled */
            slot_free(l, i, w);
            rl_lock_release(l);
            return rl_seterr(err, RL_ESTORE,
                             "the process deciding this call died before answering; "
                             "it may or may not have been counted");
        }
    }
}

/* As a poster: waits until the slot is answered, or the lock is ours.
 * It spins first (yielding the CPU each turn), since an answer usually
 * comes within a commit or two: a poster that sleeps at once leaves its CPU
 * idle, and waking an idle CPU costs more than the commit, most of all on a
 * virtual machine (bench/ sqlite/4p/1key: 100k/s asleep, 230k/s spinning). */
static int wait_posted(rl_lock *l, int i, uint32_t mine, int64_t deadline, rl_group_req *req,
                       char *err)
{
    qslot *q = slot_at(l, i);
    int64_t now, nap, spin_end = mono_ns() + RL_QUEUE_SPIN;
    int live = 0, ok;
    for (;;) {
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        uint32_t st = Q_ST(w);
        if (Q_GEN(w) != Q_GEN(mine) || Q_M1(w) != Q_M1(mine) || l->damaged)
            return rl_seterr(err, RL_ECORRUPT,
                             "%s: a queue slot was overwritten or truncated; "
                             "this call may or may not have been counted",
                             l->path);
        if (st == Q_DONE) {
            RL_LOCK_HOOK(RL_STEP_ANSWERED);
            ok = answer_take(req, q);
            if (!slot_free(l, i, w))
                continue; /* changed under us: look again */
            return ok ? RL_OK : rl_seterr(err, RL_ECORRUPT, "%s: a damaged answer", l->path);
        }
        if (st == Q_LEAD)
            RL_LOCK_HOOK(RL_STEP_LEAD);
        if (rl_lock_try_take(l, live))
            return settle_held(l, i, mine, req, err);
        live = 0;
        now = mono_ns();
        if (now >= deadline) {
            if (is_posted(w) && slot_free(l, i, w))
                return rl_seterr(err, RL_EBUSY, "another process held the write lock for too long");
            if (st == Q_TAKEN) { /* left to its leader, which frees it */
                __atomic_store_n(&q->abandoned, 1, __ATOMIC_RELEASE);
                return rl_seterr(err, RL_EBUSY,
                                 "the process deciding this call took too long; "
                                 "it may or may not have been counted");
            }
            continue;
        }
        if (now < spin_end) {
            sched_yield();
            continue;
        }
        /* A leader is deciding (TAKEN) or will be told to (POSTED): the
         * naps only bound a wake-up that never comes, as when the leader
         * died: after a nap with no change, the kernel is asked. */
        nap = st == Q_LEAD ? 100000 : RL_LIVE_NAP;
        if (deadline - now < nap)
            nap = deadline - now;
        live = q_sleep(&q->state, w, nap);
        spin_end = mono_ns() + RL_QUEUE_SPIN;
    }
}

int rl_lock_join(rl_lock *l, int timeout_ms, rl_group_req *req, char *err)
{
    int64_t waited = 0;
    uint32_t w;
    int i, rc;
    if (l->forked)
        return forked_err(err);
    if (l->damaged)
        return RL_GROUP_NONE;
    if (!rl_lock_try_take(l, 0)) {
        if ((i = slot_claim(l, &w)) >= 0) {
            qslot *q = slot_at(l, i);
            uint32_t pw = Q_WORD(Q_GEN(w), Q_M1(w), Q_POSTED);
            int64_t now = mono_ns();
            RL_LOCK_HOOK(RL_STEP_CLAIMED);
            memcpy(&q->req, req, rl_group_req_size(req)); /* not the keys' unused room */
            q->abandoned = 0;
            q->since = now;
            posted_add(l, 1);
            if (cas(&q->state, w, pw)) {
                RL_LOCK_HOOK(RL_STEP_POSTED);
                rc = wait_posted(l, i, pw, now + (int64_t)timeout_ms * 1000000, req, err);
                if (rc != RL_GROUP_LEAD)
                    return rc; /* answered by another process, or failed */
                goto lead;
            }
            posted_add(l, -1); /* only garbage written over our slot gets here */
        }
        /* every slot in use: wait for the lock itself */
        if ((rc = rl_lock_acquire(l, timeout_ms, &waited, err)) != RL_OK)
            return rc;
    }
lead:
    l->ntaken = 0;
    l->seq = 0;
    return RL_GROUP_LEAD;
}
