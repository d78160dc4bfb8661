/*
 * lock_int.h - what lock.c and lock_group.c share, and nothing else does:
 * the layout of the lock file PATH-rlshm (a header, the member generations,
 * the queue slots), the handle, and the small tools both use. Private to
 * store/lock*.c; every symbol is hidden (the build's visibility is hidden),
 * and the functions declared here carry the rl_lock_ prefix.
 *
 * Nothing read from the mapping is trusted (lock.c says why and how): the
 * words below are checked where they are used.
 */
#ifndef RL_LOCK_INT_H
#define RL_LOCK_INT_H

#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define RL_SHM_MAGIC 0x726c7132u /* "rlq2" */
#define RL_MEMBERS 1024
#define RL_QUEUE_SLOTS 16
#define RL_QUEUE_SPIN 50000 /* ns a poster spins before it sleeps */
#define RL_LIVE_NAP 2000000 /* ns a waiter sleeps before it asks whether the holder lives */
#define RL_LOCK_HANDOFF 64  /* releases in a row before yielding to a waiter */
#define RL_OPEN_NAP 1000000 /* ns an opener sleeps between tries of the rebuild byte */
#define RL_REG_MAX 1024     /* open handles per process with a lock file */

/* Byte-range locks, past any data: the rebuild byte, the dead-man byte,
 * then one per member (lock.c says who holds which, and when). */
#define RL_BYTE_DMS ((off_t)1 << 30)
#define RL_BYTE_REBUILD (RL_BYTE_DMS - 1)
#define RL_BYTE_MEMBER(m) (RL_BYTE_DMS + 1 + (off_t)(m))

/* The lock word: 0 free, LOCK_DEAD (its holder died), or the holder's
 * OWNER(member, generation). */
#define M_BITS 11u
#define M_MASK ((1u << M_BITS) - 1u) /* member + 1: 1..RL_MEMBERS */
#define G_MASK ((1u << (32u - M_BITS)) - 1u)
#define LOCK_DEAD 0xffffffffu
#define OWNER(m, g) ((((g)&G_MASK) << M_BITS) | ((uint32_t)(m) + 1u))
#define W_MEMBER(w) ((int)((w)&M_MASK) - 1)

/* A slot's state word (its futex): generation, poster's member + 1, state. */
enum { Q_FREE, Q_FILLING, Q_POSTED, Q_LEAD, Q_TAKEN, Q_DONE, Q_NSTATES };
#define QG_MASK 0x1ffffu
#define Q_WORD(gen, m1, st) ((((gen)&QG_MASK) << 15) | (((m1)&M_MASK) << 4) | (uint32_t)(st))
#define Q_ST(w) ((w)&15u)
#define Q_M1(w) (((w) >> 4) & M_MASK)
#define Q_GEN(w) ((w) >> 15)

typedef struct shm_head {
    uint32_t magic;
    uint32_t layout; /* this build's sizes: another build's file is not used */
    uint64_t dev, ino;
    uint64_t domain; /* random, new at each rebuild: names this file's batches */
    uint32_t lock;
    uint32_t waiters;        /* a hint: processes blocked on lock */
    uint32_t posted;         /* a hint: slots POSTED or LEAD (never below the truth when intact) */
    uint32_t released;       /* moved after a slot is released: slot waiters sleep on it
                              * (top bit: one may be asleep, see lock.c) */
    uint64_t seq, seq_check; /* the last batch numbered, and ~seq */
} shm_head;

typedef struct qslot {
    uint32_t state;
    uint32_t abandoned; /* its poster gave up waiting: free it, do not answer */
    int64_t since;      /* CLOCK_MONOTONIC ns when posted: order only */
    uint64_t seq;       /* the batch that took it */
    rl_group_req req;
} qslot;

#define GENS_AT 4096u
#define SLOTS_AT (GENS_AT + RL_MEMBERS * 4u)
#define QSLOT_SIZE ((sizeof(qslot) + 63u) / 64u * 64u)
#define SHM_SIZE ((SLOTS_AT + RL_QUEUE_SLOTS * QSLOT_SIZE + 4095u) / 4096u * 4096u)
/* This build's sizes: a file laid out otherwise (an older build's slots,
 * whose requests had one key and no reservation) is not used, and
 * rl_lock_open says RL_ECORRUPT while others have it open (lock.c). */
#define SHM_LAYOUT                                                          \
    ((uint32_t)(sizeof(shm_head) ^ (QSLOT_SIZE << 8) ^ (RL_MEMBERS << 20) ^ \
                (offsetof(rl_group_req, keys) << 14)))

struct rl_lock {
    int fd;
    char *path;
    unsigned char *map;
    shm_head *h;
    uint32_t *gens;
    uint64_t domain;
    int member;
    uint32_t me; /* OWNER(member, generation): our lock word */
    int held;
    volatile sig_atomic_t damaged; /* set by the SIGBUS handler */
    int forked;
    rl_lock_resolve_fn resolve;
    void *resolve_ctx;
    int unresolved; /* took the lock from a dead holder before resolve was set */
    int streak;     /* releases in a row while others waited */
    uint64_t seq;   /* this batch's number, once it took another's request */
    size_t ntaken;
    int taken[RL_QUEUE_SLOTS]; /* slots this holder must answer */
};

/* ---- between lock.c and lock_group.c ------------------------------------- */

/* lock.c: 1: this handle holds the lock now; 0: another does. live: a holder
 * that looks alive is asked the kernel about. */
int rl_lock_try_take(rl_lock *l, int live);
/* lock_group.c: just after taking the lock from a holder that died, settles
 * the slots it had taken (see there). */
void rl_lock_recover(rl_lock *l);
/* lock_group.c: after unlocking, a slot still posted gets a leader. */
void rl_lock_wake_posted(rl_lock *l);

/* ---- small tools ---------------------------------------------------------- */

/* Every time the lock code reads: deadlines, spins and the posting order.
 * A test build reads the test's clock instead when it has one (lock.h). */
static inline int64_t mono_ns(void)
{
    struct timespec t;
#ifdef RL_TEST_HOOKS
    if (rl__lock_clock)
        return rl__lock_clock();
#endif
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static inline int cas(uint32_t *w, uint32_t from, uint32_t to)
{
    return __atomic_compare_exchange_n(w, &from, to, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* Sleeps while *w == v, at most ns (or until woken); 1 if it timed out. */
static inline int q_sleep(uint32_t *w, uint32_t v, int64_t ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return syscall(SYS_futex, w, FUTEX_WAIT, v, &ts, NULL, 0) != 0 && errno == ETIMEDOUT;
}

static inline void q_wake(uint32_t *w, int n)
{
    (void)syscall(SYS_futex, w, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* Whether member m's handle is open in a live process: its byte is locked.
 * When the kernel cannot say, it is taken as alive: never steal. */
static inline int member_alive(const rl_lock *l, int m)
{
    struct flock f;
    if (m == l->member)
        return 1;
    memset(&f, 0, sizeof f);
    f.l_type = F_WRLCK;
    f.l_whence = SEEK_SET;
    f.l_start = RL_BYTE_MEMBER(m);
    f.l_len = 1;
    if (fcntl(l->fd, F_OFD_GETLK, &f) != 0)
        return 1;
    return f.l_type != F_UNLCK;
}

static inline int bad_member(int m)
{
    return m < 0 || m >= RL_MEMBERS;
}

static inline qslot *slot_at(const rl_lock *l, int i)
{
    return (qslot *)(void *)(l->map + SLOTS_AT + (size_t)i * QSLOT_SIZE);
}

static inline void posted_add(rl_lock *l, int d)
{
    __atomic_add_fetch(&l->h->posted, (uint32_t)d, __ATOMIC_SEQ_CST);
}

static inline int is_posted(uint32_t w)
{
    return Q_ST(w) == Q_POSTED || Q_ST(w) == Q_LEAD;
}

/* Frees slot i whose state is still w; the generation moves on. */
static inline int slot_free(rl_lock *l, int i, uint32_t w)
{
    qslot *q = slot_at(l, i);
    if (!cas(&q->state, w, Q_WORD(Q_GEN(w) + 1, 0, Q_FREE)))
        return 0;
    if (is_posted(w))
        posted_add(l, -1);
    return 1;
}

static inline int forked_err(char *err)
{
    return rl_seterr(err, RL_ESTORE,
                     "this handle was opened before fork(): open a new one in the child");
}

#endif
