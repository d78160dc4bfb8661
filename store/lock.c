/*
 * lock.c - the process-shared write queue (see lock.h).
 *
 * Guarantees: the mutex in the side file is initialised exactly once even
 * when several processes create the file at the same moment (initialisation
 * runs under flock); a dead holder never blocks the others for longer than
 * it takes the kernel to notice the death; waiting is bounded by the timeout
 * on the monotonic clock, so a wall-clock step does not stretch it.
 *
 * Handoff: a futex mutex lets the process that just unlocked take it again
 * before a woken waiter runs, so on a busy machine one process can keep the
 * lock for tens of milliseconds while the others starve. Waiters therefore
 * count themselves in the file, and a process that has released the lock
 * RL_LOCK_HANDOFF times in a row while others waited yields the CPU once,
 * letting a waiter in. (bench/ sqlite/4p/1key: fairness 0.79-0.94 -> 0.99,
 * worst decision 29-35 ms -> 6 ms, for about 15% of the peak rate.) The
 * count is a hint: a waiter killed while waiting leaves it one too high,
 * which only makes the yields a little more frequent.
 *
 * Group commit (rl_allow only): after the mutex, the file holds
 * RL_QUEUE_SLOTS slots. A writer that finds the mutex taken posts its
 * request in a free slot and waits on the slot's state word (a futex),
 * spinning briefly first; the holder takes the posted slots of its
 * signature into its own transaction, and keeps taking those posted while
 * it decides, so a process answered a moment ago makes the same commit;
 * it writes each answer into its slot, commits, marks the slots done and
 * wakes their posters before it unlocks. Under contention one commit thus
 * answers several processes, and a poster waits for the batch in progress
 * and its own, not for every writer ahead of it. (bench/ sqlite/4p/1key:
 * 105k -> 240k decisions/s, p99 0.83 ms -> 0.08 ms, fairness 0.95.)
 * Whoever unlocks wakes the oldest slot still posted to lead, and posters
 * poll the mutex too, so no slot is left behind. With every slot in use a
 * writer waits on the mutex as before.
 *
 * Invariant: a slot is TAKEN only by the holder of the mutex, which marks
 * it DONE before unlocking. So the process that takes the mutex from a dead
 * holder (EOWNERDEAD) finds that holder's batch still TAKEN, and nothing
 * written since; it asks the store whether the batch was committed (the
 * store compares each key's count of decisions with the one the leader
 * recorded) and marks each slot DONE, or posts it again to be decided anew.
 * So a leader's death costs its followers neither an error nor a double
 * count. Each state word carries a generation, bumped whenever a slot is
 * freed, so a slot reclaimed from a dead poster is never confused with its
 * new use.
 */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <limits.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif
#include <unistd.h>

#define RL_LOCK_MAGIC 0x726c6c6bu /* "rllk" */

typedef struct rl_lock_shm {
    uint32_t magic;
    uint32_t size; /* sizeof(rl_lock_shm) of the writer: guards ABI mismatches */
    pthread_mutex_t mu;
} rl_lock_shm;

/* After rl_lock_shm, at RL_LOCK_EXT_AT, so that libraries which predate it
 * (and check size) share the file unchanged; they just never count. */
typedef struct rl_lock_ext {
    uint32_t waiters; /* processes blocked on mu now */
} rl_lock_ext;

#define RL_LOCK_EXT_AT ((sizeof(rl_lock_shm) + 63) / 64 * 64)
#define RL_LOCK_HANDOFF 64 /* releases in a row before yielding to a waiter */

/* The group-commit queue, after rl_lock_ext. Its header names the slot
 * layout; a build whose layout differs does not use the queue. */
#define RL_QUEUE_MAGIC 0x726c7131u /* "rlq1" */
#define RL_QUEUE_SLOTS 16
#define RL_QUEUE_STALE 1000000000 /* ns: a FILLING or DONE slot this old lost its poster */
#define RL_QUEUE_SPIN 50000       /* ns a poster spins before it sleeps */

enum { Q_FREE, Q_FILLING, Q_POSTED, Q_LEAD, Q_TAKEN, Q_DONE };
#define Q_WORD(gen, st) (((gen) << 4) | (uint32_t)(st))
#define Q_ST(w) ((w)&15u)
#define Q_GEN(w) ((w) >> 4)

typedef struct rl_queue {
    uint32_t magic;
    uint32_t slot_size;
    /* Slots POSTED or LEAD, counted up before a slot becomes one and down
     * after it stops being one, so it is never below the truth: at 0 a
     * writer skips looking at the slots. A poster that dies in between
     * leaves it too high, which only costs those looks. */
    uint32_t posted;
} rl_queue;

typedef struct rl_qslot {
    uint32_t state;     /* Q_WORD(generation, Q_*): the futex word */
    uint32_t abandoned; /* its poster gave up waiting for a leader */
    int64_t since; /* CLOCK_MONOTONIC ns of the last change: age and order */
    rl_group_req req;
} rl_qslot;

#define RL_QUEUE_AT (RL_LOCK_EXT_AT + 64)
#define RL_QSLOT_SIZE ((sizeof(rl_qslot) + 63) / 64 * 64)
#define RL_QSLOTS_AT (RL_QUEUE_AT + 64)
#define RL_LOCK_MAP (RL_QSLOTS_AT + RL_QUEUE_SLOTS * RL_QSLOT_SIZE)

struct rl_lock {
    int fd;
    rl_lock_shm *shm;
    rl_lock_ext *ext;
    unsigned char *slots; /* NULL: no group commit with this file */
    uint32_t *posted;     /* rl_queue.posted */
    rl_lock_resolve_fn resolve;
    void *resolve_ctx;
    int unresolved; /* took the mutex from a dead holder before resolve was set */
    int streak; /* releases in a row while others waited */
    size_t ntaken;
    int taken[RL_QUEUE_SLOTS]; /* slots this holder must answer */
};

static void recover(rl_lock *l);
static int slot_free(rl_lock *l, int i, uint32_t w);
static void posted_add(rl_lock *l, int d);

/* Under flock: claims the queue for this layout, or leaves it to the one
 * that claimed it first. */
static void init_queue(rl_lock *l)
{
#ifdef __linux__
    rl_queue *q = (rl_queue *)((char *)l->shm + RL_QUEUE_AT);
    if (q->magic == 0) {
        q->slot_size = (uint32_t)sizeof(rl_qslot);
        __atomic_store_n(&q->magic, RL_QUEUE_MAGIC, __ATOMIC_RELEASE);
    }
    if (q->magic == RL_QUEUE_MAGIC && q->slot_size == sizeof(rl_qslot)) {
        l->slots = (unsigned char *)l->shm + RL_QSLOTS_AT;
        l->posted = &q->posted;
    }
#else
    (void)l;
#endif
}

static int init_shared(rl_lock *l, char *err)
{
    pthread_mutexattr_t a;
    struct stat st;
    int rc = RL_OK;
    if (flock(l->fd, LOCK_EX) != 0)
        return rl_seterr(err, RL_ESTORE, "lock file: flock: %s", strerror(errno));
    if (fstat(l->fd, &st) != 0) {
        rc = rl_seterr(err, RL_ESTORE, "lock file: stat: %s", strerror(errno));
        goto out;
    }
    if ((size_t)st.st_size < RL_LOCK_MAP && ftruncate(l->fd, RL_LOCK_MAP) != 0) {
        rc = rl_seterr(err, errno == ENOSPC ? RL_EFULL : RL_ESTORE, "lock file: %s",
                       strerror(errno));
        goto out;
    }
    l->shm = mmap(NULL, RL_LOCK_MAP, PROT_READ | PROT_WRITE, MAP_SHARED, l->fd, 0);
    if (l->shm == MAP_FAILED) {
        l->shm = NULL;
        rc = rl_seterr(err, RL_ESTORE, "lock file: mmap: %s", strerror(errno));
        goto out;
    }
    l->ext = (rl_lock_ext *)((char *)l->shm + RL_LOCK_EXT_AT);
    init_queue(l);
    if (l->shm->magic == RL_LOCK_MAGIC) {
        if (l->shm->size != sizeof(rl_lock_shm))
            rc = rl_seterr(err, RL_ECORRUPT, "lock file was written by an incompatible build");
        goto out;
    }
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&l->shm->mu, &a);
    pthread_mutexattr_destroy(&a);
    l->shm->size = sizeof(rl_lock_shm);
    __atomic_store_n(&l->shm->magic, RL_LOCK_MAGIC, __ATOMIC_RELEASE);
out:
    flock(l->fd, LOCK_UN);
    return rc;
}

int rl_lock_open(rl_lock **out, const char *path, unsigned int mode, char *err)
{
    rl_lock *l;
    int rc;
    *out = NULL;
    if (!(l = calloc(1, sizeof *l)))
        return rl_seterr(err, RL_ENOMEM, "out of memory");
    l->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (l->fd >= 0)
        (void)fchmod(l->fd, mode); /* as the database: the umask must not narrow it */
    else if (errno == EEXIST)
        l->fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (l->fd < 0) {
        rc = rl_seterr(err, errno == EACCES || errno == EROFS ? RL_EREADONLY : RL_ESTORE,
                       "%s: %s", path, strerror(errno));
        free(l);
        return rc;
    }
    if ((rc = init_shared(l, err)) != RL_OK) {
        rl_lock_close(l);
        return rc;
    }
    *out = l;
    return RL_OK;
}

int rl_lock_acquire(rl_lock *l, int timeout_ms, int64_t *waited_ns, char *err)
{
    struct timespec t0, t1, dl;
    int rc;
    *waited_ns = 0;
    rc = pthread_mutex_trylock(&l->shm->mu);
    if (rc == EBUSY) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        dl = t0;
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        __atomic_add_fetch(&l->ext->waiters, 1, __ATOMIC_RELAXED);
        rc = pthread_mutex_clocklock(&l->shm->mu, CLOCK_MONOTONIC, &dl);
        __atomic_sub_fetch(&l->ext->waiters, 1, __ATOMIC_RELAXED);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        *waited_ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
    }
    if (rc == EOWNERDEAD && /* the holder died; SQLite already rolled its work back */
        (rc = pthread_mutex_consistent(&l->shm->mu)) == 0)
        recover(l);
    if (rc == 0)
        return RL_OK;
    if (rc == ETIMEDOUT)
        return rl_seterr(err, RL_EBUSY, "another process held the write lock for over %d ms",
                         timeout_ms);
    return rl_seterr(err, RL_ESTORE, "write lock: %s", strerror(rc));
}

/* ---- group commit --------------------------------------------------------- */

static rl_qslot *slot_at(const rl_lock *l, int i)
{
    return (rl_qslot *)(void *)(l->slots + (size_t)i * RL_QSLOT_SIZE);
}

static int64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int cas(uint32_t *w, uint32_t from, uint32_t to)
{
    return __atomic_compare_exchange_n(w, &from, to, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

#ifdef __linux__
/* Sleeps while *w == v, at most ns (or until woken). */
static void q_sleep(uint32_t *w, uint32_t v, int64_t ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    (void)syscall(SYS_futex, w, FUTEX_WAIT, v, &ts, NULL, 0);
}

static void q_wake(uint32_t *w)
{
    (void)syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}
#else
static void q_sleep(uint32_t *w, uint32_t v, int64_t ns)
{
    (void)w, (void)v, (void)ns;
}
static void q_wake(uint32_t *w)
{
    (void)w;
}
#endif

/* Just after taking the mutex from a holder that died: the slots it had
 * taken are settled by what the database says of their keys. Committed:
 * answered; rolled back (or never decided): posted again, to be decided
 * by the next leader; unknown: left for the poster to report. */
static void recover(rl_lock *l)
{
    int i;
    if (!l->resolve) {
        l->unresolved = 1;
        return;
    }
    for (i = 0; l->slots && i < RL_QUEUE_SLOTS; i++) {
        rl_qslot *q = slot_at(l, i);
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        int done;
        if (Q_ST(w) != Q_TAKEN)
            continue;
        done = l->resolve(l->resolve_ctx, &q->req);
        if (done > 0) {
            q->since = mono_ns();
            if (cas(&q->state, w, Q_WORD(Q_GEN(w), Q_DONE)))
                q_wake(&q->state);
        } else if (done == 0) {
            if (__atomic_load_n(&q->abandoned, __ATOMIC_ACQUIRE)) {
                slot_free(l, i, w);
                continue;
            }
            posted_add(l, 1);
            if (cas(&q->state, w, Q_WORD(Q_GEN(w), Q_POSTED)))
                q_wake(&q->state);
            else
                posted_add(l, -1);
        }
    }
}

/* 1: this process holds the mutex now; 0: another does; else -errno. */
static int try_take(rl_lock *l)
{
    int rc = pthread_mutex_trylock(&l->shm->mu);
    if (rc == EOWNERDEAD && (rc = pthread_mutex_consistent(&l->shm->mu)) == 0)
        recover(l);
    return rc == 0 ? 1 : rc == EBUSY ? 0 : -rc;
}

void rl_lock_on_recover(rl_lock *l, rl_lock_resolve_fn fn, void *ctx)
{
    l->resolve = fn;
    l->resolve_ctx = ctx;
    if (l->unresolved) {
        l->unresolved = 0;
        recover(l);
    }
}

static void posted_add(rl_lock *l, int d)
{
    __atomic_add_fetch(l->posted, (uint32_t)d, __ATOMIC_SEQ_CST);
}

static int is_posted(uint32_t w)
{
    return Q_ST(w) == Q_POSTED || Q_ST(w) == Q_LEAD;
}

/* Frees slot i whose state is still w; the generation moves on. */
static int slot_free(rl_lock *l, int i, uint32_t w)
{
    rl_qslot *q = slot_at(l, i);
    if (!cas(&q->state, w, Q_WORD(Q_GEN(w) + 1, Q_FREE)))
        return 0;
    if (is_posted(w))
        posted_add(l, -1);
    return 1;
}

/* A free slot, or one whose poster is gone; -1 if none. */
static int slot_claim(rl_lock *l, uint32_t *word)
{
    int64_t now = 0;
    int i;
    for (i = 0; i < RL_QUEUE_SLOTS; i++) {
        rl_qslot *q = slot_at(l, i);
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        uint32_t st = Q_ST(w), gen = Q_GEN(w);
        if (st != Q_FREE) {
            if (st != Q_FILLING && st != Q_DONE)
                continue;
            if (!now)
                now = mono_ns();
            if (now - __atomic_load_n(&q->since, __ATOMIC_RELAXED) < RL_QUEUE_STALE)
                continue;
            gen++; /* abandoned: a poster that died filling it or before reading it */
        }
        if (cas(&q->state, w, Q_WORD(gen, Q_FILLING))) {
            *word = Q_WORD(gen, Q_FILLING);
            return i;
        }
    }
    return -1;
}

/* As the holder: takes the posted slots of signature sig, oldest first,
 * into batch[0..max); returns how many. A slot TAKEN while we hold the
 * mutex was left by a leader that died; once its poster has had time to
 * notice, it is freed. */
size_t rl_lock_take(rl_lock *l, uint64_t sig, rl_group_req **batch, size_t max)
{
    size_t first = l->ntaken, k;
    int i, j;
    if (!l->slots || !__atomic_load_n(l->posted, __ATOMIC_SEQ_CST))
        return 0;
    for (i = 0; i < RL_QUEUE_SLOTS && l->ntaken - first < max; i++) {
        rl_qslot *q = slot_at(l, i);
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        uint32_t st = Q_ST(w);
        if (st == Q_TAKEN && mono_ns() - q->since > RL_QUEUE_STALE) {
            for (k = 0; k < l->ntaken && l->taken[k] != i; k++)
                ;
            if (k == l->ntaken) /* not one of ours */
                slot_free(l, i, w);
            continue;
        }
        if ((st != Q_POSTED && st != Q_LEAD) || q->req.sig != sig)
            continue;
        if (!cas(&q->state, w, Q_WORD(Q_GEN(w), Q_TAKEN))) {
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
    return l->ntaken - first;
}

void rl_lock_publish(rl_lock *l)
{
    size_t i;
    for (i = 0; i < l->ntaken; i++) {
        rl_qslot *q = slot_at(l, l->taken[i]);
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_RELAXED);
        q->since = mono_ns();
        __atomic_store_n(&q->state, Q_WORD(Q_GEN(w), Q_DONE), __ATOMIC_RELEASE);
        q_wake(&q->state);
    }
    l->ntaken = 0;
}

/* After unlocking: a slot still posted gets a leader. A poster told to lead
 * (Q_LEAD) and not yet leading is nudged again rather than another one. */
static void wake_posted(rl_lock *l)
{
    rl_qslot *oldest = NULL;
    uint32_t ow = 0;
    int i;
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the unlock before any read of a slot */
    if (!__atomic_load_n(l->posted, __ATOMIC_SEQ_CST))
        return;
    for (i = 0; i < RL_QUEUE_SLOTS; i++) {
        rl_qslot *q = slot_at(l, i);
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        if (Q_ST(w) == Q_LEAD) {
            q_wake(&q->state);
            return;
        }
        if (Q_ST(w) == Q_POSTED && (!oldest || q->since < oldest->since)) {
            oldest = q;
            ow = w;
        }
    }
    if (oldest && cas(&oldest->state, ow, Q_WORD(Q_GEN(ow), Q_LEAD)))
        q_wake(&oldest->state);
}

void rl_lock_release(rl_lock *l)
{
    pthread_mutex_unlock(&l->shm->mu);
    if (l->slots)
        wake_posted(l);
    if (!__atomic_load_n(&l->ext->waiters, __ATOMIC_RELAXED)) {
        l->streak = 0;
    } else if (++l->streak >= RL_LOCK_HANDOFF) {
        l->streak = 0;
        sched_yield(); /* let a woken waiter take it before we come back */
    }
}

/* Holding the mutex, as a poster whose slot i is in state w: withdraws it
 * to lead (RL_GROUP_LEAD), or returns what became of it. */
static int settle_held(rl_lock *l, int i, rl_group_req *req, char *err)
{
    rl_qslot *q = slot_at(l, i);
    for (;;) {
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        switch (Q_ST(w)) {
        case Q_POSTED:
        case Q_LEAD:
            if (slot_free(l, i, w))
                return RL_GROUP_LEAD;
            continue; /* POSTED turned LEAD */
        case Q_DONE:
            memcpy(req, &q->req, sizeof *req);
            slot_free(l, i, w);
            rl_lock_release(l);
            return RL_OK;
        default: /* TAKEN by a leader that died holding the mutex */
            slot_free(l, i, w);
            rl_lock_release(l);
            return rl_seterr(err, RL_ESTORE,
                             "the process deciding this call died before answering; "
                             "it may or may not have been counted");
        }
    }
}

/* As a poster: waits until the slot is answered, or the mutex is ours.
 * It spins first (yielding the CPU each turn), since an answer usually
 * comes within a commit or two: a poster that sleeps at once leaves its CPU
 * idle, and waking an idle CPU costs more than the commit, most of all on a
 * virtual machine (bench/ sqlite/4p/1key: 100k/s asleep, 230k/s spinning). */
static int wait_posted(rl_lock *l, int i, uint32_t gen, int64_t deadline, rl_group_req *req,
                       char *err)
{
    rl_qslot *q = slot_at(l, i);
    int64_t now, nap, spin_end = mono_ns() + RL_QUEUE_SPIN;
    for (;;) {
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        uint32_t st = Q_ST(w);
        int got;
        if (Q_GEN(w) != gen)
            return rl_seterr(err, RL_ESTORE, "group commit: the answer was lost");
        if (st == Q_DONE) {
            memcpy(req, &q->req, sizeof *req);
            if (!slot_free(l, i, w)) /* reclaimed while we read it */
                return rl_seterr(err, RL_ESTORE, "group commit: the answer was lost");
            return RL_OK;
        }
        if ((got = try_take(l)) < 0) {
            if (!is_posted(w) || !slot_free(l, i, w)) /* taken: left to its leader */
                __atomic_store_n(&q->abandoned, 1, __ATOMIC_RELEASE);
            return rl_seterr(err, RL_ESTORE, "write lock: %s", strerror(-got));
        }
        if (got)
            return settle_held(l, i, req, err);
        now = mono_ns();
        if (now >= deadline) {
            if (is_posted(w) && slot_free(l, i, w))
                return rl_seterr(err, RL_EBUSY, "another process held the write lock for too long");
            if (st == Q_TAKEN) { /* left to its leader; reclaimed once stale */
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
         * naps only bound a wake-up that never comes. */
        nap = st == Q_LEAD ? 100000 : 2000000;
        if (deadline - now < nap)
            nap = deadline - now;
        q_sleep(&q->state, w, nap);
        spin_end = mono_ns() + RL_QUEUE_SPIN;
    }
}

int rl_lock_join(rl_lock *l, int timeout_ms, rl_group_req *req, char *err)
{
    int64_t waited = 0;
    uint32_t w;
    int got, i, rc;
    if (!l->slots)
        return RL_GROUP_NONE;
    if ((got = try_take(l)) < 0)
        return rl_seterr(err, RL_ESTORE, "write lock: %s", strerror(-got));
    if (!got) {
        if ((i = slot_claim(l, &w)) >= 0) {
            rl_qslot *q = slot_at(l, i);
            memcpy(&q->req, req, sizeof *req);
            q->abandoned = 0;
            q->since = mono_ns();
            posted_add(l, 1);
            if (cas(&q->state, w, Q_WORD(Q_GEN(w), Q_POSTED))) {
                rc = wait_posted(l, i, Q_GEN(w), q->since + (int64_t)timeout_ms * 1000000, req,
                                 err);
                if (rc != RL_GROUP_LEAD)
                    return rc; /* answered by another process, or failed */
                goto lead;
            }
            posted_add(l, -1); /* reclaimed while we filled it: stalled for a second */
        }
        /* every slot in use: wait for the mutex itself */
        if ((rc = rl_lock_acquire(l, timeout_ms, &waited, err)) != RL_OK)
            return rc;
    }
lead:
    l->ntaken = 0;
    return RL_GROUP_LEAD;
}

void rl_lock_close(rl_lock *l)
{
    if (!l)
        return;
    if (l->shm)
        munmap(l->shm, RL_LOCK_MAP);
    if (l->fd >= 0)
        close(l->fd);
    free(l);
}
