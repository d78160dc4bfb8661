/*
 * lock.c - the process-shared write lock and group-commit queue (lock.h).
 *
 * The file PATH-rlshm is shared, writable and mapped by every writer, so
 * it is treated as input: any byte of it may be garbage, and nothing in it
 * decides who owns what. Guarantees:
 *
 * - Ownership is kernel state. Each handle holds an open-file-description
 *   (OFD) write lock on one "member" byte, far past the end of the file,
 *   for as long as it is open; the kernel drops it when the process dies.
 *   The lock word and each queue slot name their owner's member (with a
 *   generation, against reuse), set in the same compare-and-swap that
 *   takes them. Another process takes over a lock or a slot only when the
 *   owner's member byte is free: a dead owner, never a slow or stopped one.
 *   So a poster stalled for any time (SIGSTOP, swap) gets its own answer.
 * - A file nobody has open is rebuilt. Every handle holds a shared OFD lock
 *   on a "dead-man" byte; the process that gets it exclusively is alone,
 *   so it rebuilds the file from scratch (new domain id, every word zero)
 *   before it downgrades. A file copied, restored or left by a power loss
 *   with its lock word set therefore never blocks anyone.
 * - The file is allocated on creation (posix_fallocate): a full disk gives
 *   RL_EFULL at open, never SIGBUS later. A file truncated under us is
 *   caught by a SIGBUS handler that maps a blank page over the hole and
 *   flags the handle, which then stops using the file (SQLite's own
 *   locking keeps decisions exact without it); nothing crashes.
 * - Garbage gives an error or a rebuild, never a crash: words are checked
 *   before use, a request read from a slot is checked by the leader as a
 *   caller's arguments are (core/rl.c), and a header that does not match
 *   this build and this database gives RL_ECORRUPT while others have the
 *   file open (it is rebuilt once they close).
 * - A dead leader's batch is settled from the database, not guessed: the
 *   leader numbers each batch that holds other processes' requests and the
 *   store records (domain, seq) in the same transaction (rl_lock_batch); the
 *   next holder reads it back (rl_lock_resolve_fn): committed, the answers
 *   in the slots stand; not, the requests are posted again. No other
 *   writer, whatever lock it uses or lacks, can fake or erase that record.
 * - No arithmetic on a time or counter read from the file: times read back
 *   are only compared.
 *
 * Group commit (rl_allow, rl_acquire): a writer that finds the lock taken
 * posts its request in a free slot and waits on the slot's state word (a
 * futex), spinning briefly first; the holder takes the posted slots of its
 * signature into its own transaction, and keeps taking those posted while
 * it decides; it writes each answer into its slot, commits, marks the slots
 * done and wakes their posters before it unlocks. Whoever unlocks wakes the
 * oldest slot still posted to lead, and posters poll the lock too, so no
 * slot is left behind. With every slot in use a writer waits on the lock.
 * (bench/ sqlite/4p/1key: about 2x one process's rate.)
 *
 * Handoff: a process that just unlocked can take the lock again before a
 * woken waiter runs; one that has released it RL_LOCK_HANDOFF times in a row
 * while others waited yields the CPU once, letting a waiter in.
 *
 * Linux only (futex, OFD locks). A handle must not cross fork(): a child's
 * copies of the handles' files are closed at fork, so a parent's death is
 * seen although its child lives on.
 */
#include "lock.h"

#include "fileperm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifdef RL_TEST_HOOKS
void (*rl__lock_hook)(int step);
int64_t (*rl__lock_clock)(void);
#endif

#define RL_SHM_MAGIC 0x726c7132u /* "rlq2" */
#define RL_MEMBERS 1024
#define RL_QUEUE_SLOTS 16
#define RL_QUEUE_SPIN 50000   /* ns a poster spins before it sleeps */
#define RL_LIVE_NAP 2000000   /* ns a waiter sleeps before it asks whether the holder lives */
#define RL_LOCK_HANDOFF 64    /* releases in a row before yielding to a waiter */
#define RL_REG_MAX 1024       /* open handles per process with a lock file */

/* Byte-range locks, past any data: the dead-man byte, then one per member. */
#define RL_BYTE_DMS ((off_t)1 << 30)
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
    uint32_t waiters; /* a hint: processes blocked on lock */
    uint32_t posted;  /* a hint: slots POSTED or LEAD (never below the truth when intact) */
    uint32_t pad;
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
#define SHM_LAYOUT ((uint32_t)(sizeof(shm_head) ^ (QSLOT_SIZE << 8) ^ (RL_MEMBERS << 20)))

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

/* ---- the process's handles: fork and SIGBUS ------------------------------ */

static rl_lock *registry[RL_REG_MAX];
static struct sigaction old_bus;
static long page_size;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* In a child after fork(): its copies of the handles' files and mappings
 * are dropped (a mapping holds the open file too), so the member and
 * dead-man locks live only as long as the parent. */
static void at_fork_child(void)
{
    int i;
    for (i = 0; i < RL_REG_MAX; i++) {
        rl_lock *l = __atomic_load_n(&registry[i], __ATOMIC_ACQUIRE);
        if (l && !l->forked) {
            unsigned char *map = l->map;
            l->forked = 1;
            l->map = NULL;
            if (map)
                munmap(map, SHM_SIZE);
            close(l->fd);
            l->fd = -1;
        }
    }
}

/* A fault in a lock file's mapping is its truncation: a blank private page
 * over the hole lets the access finish, and the handle is flagged. Any other
 * fault goes to the handler that was there before, or kills as by default. */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    unsigned char *a = si->si_addr;
    int i;
    for (i = 0; i < RL_REG_MAX; i++) {
        rl_lock *l = __atomic_load_n(&registry[i], __ATOMIC_ACQUIRE);
        if (l && l->map && a >= l->map && a < l->map + SHM_SIZE) {
            void *page = (void *)((uintptr_t)a & ~(uintptr_t)(page_size - 1));
            if (mmap(page, (size_t)page_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
                l->damaged = 1;
                return;
            }
        }
    }
    if ((old_bus.sa_flags & SA_SIGINFO) && old_bus.sa_sigaction) {
        old_bus.sa_sigaction(sig, si, uc);
    } else if (old_bus.sa_handler != SIG_DFL && old_bus.sa_handler != SIG_IGN) {
        old_bus.sa_handler(sig);
    } else {
        signal(SIGBUS, SIG_DFL); /* the access faults again and kills, as it would have */
    }
}

static void init_once(void)
{
    page_size = sysconf(_SC_PAGESIZE);
    if (page_size <= 0)
        page_size = 4096;
    (void)pthread_atfork(NULL, NULL, at_fork_child);
}

/* At each open: our SIGBUS handler goes first, before whatever handler the
 * program has installed since (which it chains to). */
static void hook_sigbus(void)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    struct sigaction sa, cur;
    pthread_mutex_lock(&mu);
    if (sigaction(SIGBUS, NULL, &cur) == 0 &&
        !((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigbus)) {
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigbus;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        old_bus = cur;
        (void)sigaction(SIGBUS, &sa, NULL);
    }
    pthread_mutex_unlock(&mu);
}

static int reg_add(rl_lock *l)
{
    int i;
    for (i = 0; i < RL_REG_MAX; i++) {
        rl_lock *none = NULL;
        if (__atomic_compare_exchange_n(&registry[i], &none, l, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return 1;
    }
    return 0;
}

static void reg_del(rl_lock *l)
{
    int i;
    for (i = 0; i < RL_REG_MAX; i++) {
        rl_lock *me = l;
        if (__atomic_compare_exchange_n(&registry[i], &me, NULL, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return;
    }
}

/* ---- small tools ---------------------------------------------------------- */

/* Every time the lock code reads: deadlines, spins and the posting order.
 * A test build reads the test's clock instead when it has one (lock.h). */
static int64_t mono_ns(void)
{
    struct timespec t;
#ifdef RL_TEST_HOOKS
    if (rl__lock_clock)
        return rl__lock_clock();
#endif
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int cas(uint32_t *w, uint32_t from, uint32_t to)
{
    return __atomic_compare_exchange_n(w, &from, to, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* Sleeps while *w == v, at most ns (or until woken); 1 if it timed out. */
static int q_sleep(uint32_t *w, uint32_t v, int64_t ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return syscall(SYS_futex, w, FUTEX_WAIT, v, &ts, NULL, 0) != 0 && errno == ETIMEDOUT;
}

static void q_wake(uint32_t *w, int n)
{
    (void)syscall(SYS_futex, w, FUTEX_WAKE, n, NULL, NULL, 0);
}

static int ofd_lock(int fd, int cmd, short type, off_t at)
{
    struct flock f;
    memset(&f, 0, sizeof f);
    f.l_type = type;
    f.l_whence = SEEK_SET;
    f.l_start = at;
    f.l_len = 1;
    return fcntl(fd, cmd, &f);
}

/* Whether member m's handle is open in a live process: its byte is locked.
 * When the kernel cannot say, it is taken as alive: never steal. */
static int member_alive(const rl_lock *l, int m)
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

static int bad_member(int m)
{
    return m < 0 || m >= RL_MEMBERS;
}

static qslot *slot_at(const rl_lock *l, int i)
{
    return (qslot *)(void *)(l->map + SLOTS_AT + (size_t)i * QSLOT_SIZE);
}

static void posted_add(rl_lock *l, int d)
{
    __atomic_add_fetch(&l->h->posted, (uint32_t)d, __ATOMIC_SEQ_CST);
}

static int is_posted(uint32_t w)
{
    return Q_ST(w) == Q_POSTED || Q_ST(w) == Q_LEAD;
}

/* Frees slot i whose state is still w; the generation moves on. */
static int slot_free(rl_lock *l, int i, uint32_t w)
{
    qslot *q = slot_at(l, i);
    if (!cas(&q->state, w, Q_WORD(Q_GEN(w) + 1, 0, Q_FREE)))
        return 0;
    if (is_posted(w))
        posted_add(l, -1);
    return 1;
}

static int forked_err(char *err)
{
    return rl_seterr(err, RL_ESTORE,
                     "this handle was opened before fork(): open a new one in the child");
}

/* ---- opening: rebuild or attach, then a member byte ----------------------- */

static int map_file(rl_lock *l, char *err)
{
    void *p = mmap(NULL, SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, l->fd, 0);
    if (p == MAP_FAILED)
        return rl_seterr(err, RL_ESTORE, "%s: mmap: %s", l->path, strerror(errno));
    l->map = p;
    l->h = p;
    l->gens = (uint32_t *)(void *)(l->map + GENS_AT);
    return RL_OK;
}

static uint64_t new_domain(void)
{
    uint64_t d = 0;
    if (getrandom(&d, sizeof d, GRND_NONBLOCK) != (ssize_t)sizeof d)
        d = (uint64_t)mono_ns() ^ ((uint64_t)getpid() << 32);
    return d ? d : 1;
}

/* Alone with the file (the dead-man byte is ours exclusively): whatever it
 * holds, it is made anew. The old domain is reported so that its batch
 * records can be dropped. */
static int rebuild(rl_lock *l, const struct stat *db, uint64_t *old_domain, char *err)
{
    shm_head old;
    int e;
    if (pread(l->fd, &old, sizeof old, 0) == (ssize_t)sizeof old && old.magic == RL_SHM_MAGIC &&
        old.layout == SHM_LAYOUT)
        *old_domain = old.domain;
    if (ftruncate(l->fd, 0) != 0)
        return rl_seterr(err, RL_ESTORE, "%s: truncate: %s", l->path, strerror(errno));
    RL_LOCK_HOOK(RL_STEP_REBUILDING);
    if ((e = posix_fallocate(l->fd, 0, SHM_SIZE)) != 0)
        return rl_seterr(err, e == ENOSPC || e == EDQUOT ? RL_EFULL : RL_ESTORE,
                         "%s: cannot allocate the lock file: %s", l->path, strerror(e));
    if (map_file(l, err) != RL_OK)
        return RL_ESTORE;
    l->h->layout = SHM_LAYOUT;
    l->h->dev = (uint64_t)db->st_dev;
    l->h->ino = (uint64_t)db->st_ino;
    l->h->domain = new_domain();
    l->h->seq_check = ~(uint64_t)0;
    __atomic_store_n(&l->h->magic, RL_SHM_MAGIC, __ATOMIC_RELEASE);
    return RL_OK;
}

/* Others have the file open: it must be this build's, for this database. */
static int attach(rl_lock *l, const struct stat *db, char *err)
{
    struct stat st;
    if (fstat(l->fd, &st) != 0)
        return rl_seterr(err, RL_ESTORE, "%s: stat: %s", l->path, strerror(errno));
    if (st.st_size != (off_t)SHM_SIZE)
        return rl_seterr(err, RL_ECORRUPT,
                         "%s: damaged (size %lld, expected %u) while other processes use it: "
                         "it is rebuilt once they all close the database",
                         l->path, (long long)st.st_size, (unsigned)SHM_SIZE);
    if (map_file(l, err) != RL_OK)
        return RL_ESTORE;
    if (l->h->magic != RL_SHM_MAGIC || l->h->layout != SHM_LAYOUT ||
        l->h->dev != (uint64_t)db->st_dev || l->h->ino != (uint64_t)db->st_ino)
        return rl_seterr(err, RL_ECORRUPT,
                         "%s: damaged, from another build of rl, or of another database, while "
                         "other processes use it: it is rebuilt once they all close the database",
                         l->path);
    return RL_OK;
}

/* What a dead handle that had our member index left behind: its lock is
 * marked dead for the next taker to recover, its slots are freed (one a
 * leader has taken is left to that leader, which frees it abandoned). */
static void clear_member(rl_lock *l)
{
    uint32_t w = __atomic_load_n(&l->h->lock, __ATOMIC_ACQUIRE);
    int i;
    if (w != 0 && w != LOCK_DEAD && W_MEMBER(w) == l->member && cas(&l->h->lock, w, LOCK_DEAD))
        q_wake(&l->h->lock, INT_MAX);
    for (i = 0; i < RL_QUEUE_SLOTS; i++) {
        qslot *q = slot_at(l, i);
        w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        if (Q_ST(w) == Q_FREE || (int)Q_M1(w) != l->member + 1)
            continue;
        if (Q_ST(w) == Q_TAKEN)
            __atomic_store_n(&q->abandoned, 1, __ATOMIC_RELEASE);
        else
            slot_free(l, i, w);
    }
}

static int claim_member(rl_lock *l, char *err)
{
    int k, start = (int)(new_domain() % RL_MEMBERS);
    for (k = 0; k < RL_MEMBERS; k++) {
        int m = (start + k) % RL_MEMBERS;
        if (ofd_lock(l->fd, F_OFD_SETLK, F_WRLCK, RL_BYTE_MEMBER(m)) == 0) {
            uint32_t g = __atomic_add_fetch(&l->gens[m], 1, __ATOMIC_ACQ_REL);
            l->member = m;
            l->me = OWNER(m, g);
            if (l->me == LOCK_DEAD) /* all-ones is reserved */
                l->me = OWNER(m, g + 1);
            RL_LOCK_HOOK(RL_STEP_MEMBER);
            clear_member(l);
            return RL_OK;
        }
        if (errno != EAGAIN && errno != EACCES)
            return rl_seterr(err, RL_ESTORE, "%s: lock: %s", l->path, strerror(errno));
    }
    return RL_GROUP_NONE; /* 1024 handles have it open: this one goes without */
}

int rl_lock_open(rl_lock **out, const char *db_path, unsigned int mode, int shared_group,
                 uint64_t *old_domain, char *err)
{
    struct stat db;
    rl_lock *l;
    char *real;
    size_t n;
    int rc, tries, created = 0;
    *out = NULL;
    *old_domain = 0;
    pthread_once(&once, init_once);
    hook_sigbus();
    if (stat(db_path, &db) != 0)
        return rl_seterr(err, RL_ESTORE, "%s: %s", db_path, strerror(errno));
    /* Beside the database's real path: every path to it through symbolic
     * links shares one lock file. */
    if (!(real = realpath(db_path, NULL)))
        return rl_seterr(err, errno == ENOMEM ? RL_ENOMEM : RL_ESTORE, "%s: %s", db_path,
                         strerror(errno));
    n = strlen(real) + 8;
    if (!(l = calloc(1, sizeof *l)) || !(l->path = malloc(n))) {
        free(l);
        free(real);
        return rl_seterr(err, RL_ENOMEM, "out of memory");
    }
    l->fd = -1;
    l->member = -1;
    snprintf(l->path, n, "%s-rlshm", real);
    free(real);
    l->fd = open(l->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode & 0666);
    if (l->fd >= 0) {
        created = 1;
        (void)fchmod(l->fd, mode & 0666); /* as the database: the umask must not narrow it */
    } else if (errno == EEXIST) {
        l->fd = open(l->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    }
    if (l->fd >= 0 && !reg_add(l)) { /* 1024 handles in this process: SQLite's locking alone */
        rl_lock_close(l);
        return RL_OK;
    }
    if (l->fd < 0) {
        int e = errno;
        rc = rl_seterr(err,
                       e == EACCES || e == EROFS ? RL_EREADONLY
                       : e == ENOSPC || e == EDQUOT ? RL_EFULL
                       : e == ELOOP ? RL_EPERM
                                    : RL_ESTORE,
                       "%s: %s", l->path, e == ELOOP ? "is a symbolic link: refused" : strerror(e));
        goto out;
    }
    if (!created && (rc = rl_fileperm_check_fd(l->fd, l->path, mode, shared_group, err)) != RL_OK)
        goto out;
    /* A builder killed half-way leaves a damaged file and drops its lock:
     * whoever attaches next finds it so, lets go, and tries again, alone
     * this time unless others attached to a good file since. */
    for (tries = 0;; tries++) {
        if (ofd_lock(l->fd, F_OFD_SETLK, F_WRLCK, RL_BYTE_DMS) == 0) {
            if ((rc = rebuild(l, &db, old_domain, err)) != RL_OK)
                goto out;
            /* Downgrading is atomic: nobody attaches to a half-built file. */
            if (ofd_lock(l->fd, F_OFD_SETLKW, F_RDLCK, RL_BYTE_DMS) != 0) {
                rc = rl_seterr(err, RL_ESTORE, "%s: lock: %s", l->path, strerror(errno));
                goto out;
            }
            break;
        }
        if (errno != EAGAIN && errno != EACCES) {
            rc = rl_seterr(err, RL_ESTORE, "%s: lock: %s", l->path, strerror(errno));
            goto out;
        }
        RL_LOCK_HOOK(RL_STEP_ATTACHING);
        if (ofd_lock(l->fd, F_OFD_SETLKW, F_RDLCK, RL_BYTE_DMS) != 0) {
            rc = rl_seterr(err, RL_ESTORE, "%s: lock: %s", l->path, strerror(errno));
            goto out;
        }
        if ((rc = attach(l, &db, err)) == RL_OK)
            break;
        if (rc != RL_ECORRUPT || tries == 3)
            goto out;
        if (l->map) {
            munmap(l->map, SHM_SIZE);
            l->map = NULL;
        }
        (void)ofd_lock(l->fd, F_OFD_SETLK, F_UNLCK, RL_BYTE_DMS);
    }
    l->domain = l->h->domain;
    if ((rc = claim_member(l, err)) != RL_OK) {
        rl_lock_close(l);
        return rc == RL_GROUP_NONE ? RL_OK : rc; /* no member left: SQLite's locking alone */
    }
    *out = l;
    return RL_OK;
out:
    rl_lock_close(l);
    return rc;
}

/* ---- the lock ------------------------------------------------------------- */

static void recover(rl_lock *l);

/* A batch's mark in the rows it writes: the domain is random, so the marks
 * of two lives of the file differ. */
static uint64_t mark_of(const rl_lock *l, uint64_t seq)
{
    return l->domain + seq;
}

/* Whether lock word w names a holder that cannot hold it: marked dead,
 * garbage, or a member nobody has open. live: ask the kernel too. */
static int holder_gone(const rl_lock *l, uint32_t w, int live)
{
    int m = W_MEMBER(w);
    if (w == LOCK_DEAD || bad_member(m))
        return 1;
    return live && !member_alive(l, m);
}

/* Took the lock; from a holder that died (gone) its batch is settled. */
static void locked(rl_lock *l, int gone)
{
    l->held = 1;
    l->ntaken = 0;
    l->seq = 0;
    RL_LOCK_HOOK(RL_STEP_LOCKED);
    if (gone)
        recover(l);
}

/* 1: this handle holds the lock now; 0: another does. live: a holder that
 * looks alive is asked the kernel about. */
static int try_take(rl_lock *l, int live)
{
    uint32_t w = __atomic_load_n(&l->h->lock, __ATOMIC_ACQUIRE);
    if (w == 0 && cas(&l->h->lock, 0, l->me)) {
        locked(l, 0);
        return 1;
    }
    if (w != 0 && holder_gone(l, w, live) && cas(&l->h->lock, w, l->me)) {
        locked(l, 1);
        return 1;
    }
    return 0;
}

int rl_lock_acquire(rl_lock *l, int timeout_ms, int64_t *waited_ns, char *err)
{
    int64_t t0, now, deadline;
    int live = 0;
    *waited_ns = 0;
    if (l->forked)
        return forked_err(err);
    if (try_take(l, 0))
        return RL_OK;
    t0 = mono_ns();
    deadline = t0 + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
    for (;;) {
        uint32_t w;
        int64_t nap;
        if (try_take(l, live)) {
            *waited_ns = mono_ns() - t0;
            return RL_OK;
        }
        if (l->damaged)
            return rl_seterr(err, RL_ECORRUPT, "%s: truncated while in use", l->path);
        if ((now = mono_ns()) >= deadline)
            return rl_seterr(err, RL_EBUSY,
                             "another process held the write lock for over %d ms", timeout_ms);
        nap = deadline - now < RL_LIVE_NAP ? deadline - now : RL_LIVE_NAP;
        w = __atomic_load_n(&l->h->lock, __ATOMIC_ACQUIRE);
        __atomic_add_fetch(&l->h->waiters, 1, __ATOMIC_SEQ_CST);
        RL_LOCK_HOOK(RL_STEP_WAITING);
        /* a word unchanged for a whole nap: is its holder still there? */
        live = w != 0 && q_sleep(&l->h->lock, w, nap);
        __atomic_sub_fetch(&l->h->waiters, 1, __ATOMIC_SEQ_CST);
    }
}

void rl_lock_release(rl_lock *l);

/* After unlocking: a slot still posted gets a leader. A poster told to lead
 * (Q_LEAD) and not yet leading is nudged again rather than another one. */
static void wake_posted(rl_lock *l)
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

void rl_lock_release(rl_lock *l)
{
    if (l->forked || !l->held)
        return;
    l->held = 0;
    __atomic_store_n(&l->h->lock, 0, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&l->h->waiters, __ATOMIC_SEQ_CST))
        q_wake(&l->h->lock, 1);
    wake_posted(l);
    if (!__atomic_load_n(&l->h->waiters, __ATOMIC_RELAXED)) {
        l->streak = 0;
    } else if (++l->streak >= RL_LOCK_HANDOFF) {
        l->streak = 0;
        sched_yield(); /* let a woken waiter take it before we come back */
    }
}

/* ---- recovery ------------------------------------------------------------- */

/* Just after taking the lock from a holder that died: the slots it had
 * taken are settled by the database's record of its batch. Committed:
 * answered; not: posted again (freed if their posters are gone); cannot
 * tell: left for their posters to report. */
static void recover(rl_lock *l)
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
    /* Committed if a row the batch wrote carries its mark. A request the
     * leader had not decided yet still holds the poster's rc 0, but then
     * nothing was committed, and no row carries the mark. */
    for (i = 0; committed == -2 && i < RL_QUEUE_SLOTS; i++) {
        qslot *q = slot_at(l, i);
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        int v;
        if (Q_ST(w) == Q_TAKEN && q->seq == seq && q->req.rc == RL_OK &&
            memchr(q->req.key, 0, sizeof q->req.key) &&
            (v = l->resolve(l->resolve_ctx, q->req.key, mark_of(l, seq))) != 0)
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
        recover(l);
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
        if (!l->seq) { /* numbered before any request is taken: see recover() */
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

/* An answer read from the file, made safe to hand to the caller. */
static int answer_ok(rl_group_req *req)
{
    req->err[sizeof req->err - 1] = 0;
    return req->rc <= 0 && req->rc >= RL_EPERM && (req->res.allowed == 0 || req->res.allowed == 1);
}

/* Holding the lock, as a poster whose slot i is in state w: withdraws it
 * to lead (RL_GROUP_LEAD), or returns what became of it. */
static int settle_held(rl_lock *l, int i, uint32_t mine, rl_group_req *req, char *err)
{
    qslot *q = slot_at(l, i);
    for (;;) {
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        if (Q_GEN(w) != Q_GEN(mine) || Q_M1(w) != Q_M1(mine)) {
            rl_lock_release(l);
            return rl_seterr(err, RL_ECORRUPT, "%s: a queue slot was overwritten; this call "
                             "may or may not have been counted", l->path);
        }
        switch (Q_ST(w)) {
        case Q_POSTED:
        case Q_LEAD:
            if (slot_free(l, i, w))
                return RL_GROUP_LEAD;
            continue; /* POSTED turned LEAD */
        case Q_DONE:
            RL_LOCK_HOOK(RL_STEP_ANSWERED);
            memcpy(req, &q->req, sizeof *req);
            slot_free(l, i, w);
            rl_lock_release(l);
            return answer_ok(req) ? RL_OK
                                  : rl_seterr(err, RL_ECORRUPT, "%s: a damaged answer", l->path);
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
    int live = 0;
    for (;;) {
        uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        uint32_t st = Q_ST(w);
        if (Q_GEN(w) != Q_GEN(mine) || Q_M1(w) != Q_M1(mine) || l->damaged)
            return rl_seterr(err, RL_ECORRUPT, "%s: a queue slot was overwritten or truncated; "
                             "this call may or may not have been counted", l->path);
        if (st == Q_DONE) {
            RL_LOCK_HOOK(RL_STEP_ANSWERED);
            memcpy(req, &q->req, sizeof *req);
            if (!slot_free(l, i, w))
                continue; /* changed under us: look again */
            return answer_ok(req) ? RL_OK
                                  : rl_seterr(err, RL_ECORRUPT, "%s: a damaged answer", l->path);
        }
        if (st == Q_LEAD)
            RL_LOCK_HOOK(RL_STEP_LEAD);
        if (try_take(l, live))
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
    if (!try_take(l, 0)) {
        if ((i = slot_claim(l, &w)) >= 0) {
            qslot *q = slot_at(l, i);
            uint32_t pw = Q_WORD(Q_GEN(w), Q_M1(w), Q_POSTED);
            int64_t now = mono_ns();
            RL_LOCK_HOOK(RL_STEP_CLAIMED);
            memcpy(&q->req, req, sizeof *req);
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

int rl_lock_damaged(const rl_lock *l)
{
    return l->damaged != 0;
}

void rl_lock_close(rl_lock *l)
{
    int i;
    if (!l)
        return;
    reg_del(l);
    if (l->map && !l->forked && !l->damaged && l->member >= 0) {
        rl_lock_release(l);
        for (i = 0; i < RL_QUEUE_SLOTS; i++) { /* answers we gave up waiting for */
            qslot *q = slot_at(l, i);
            uint32_t w = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
            if (Q_ST(w) == Q_DONE && (int)Q_M1(w) == l->member + 1)
                slot_free(l, i, w);
        }
    }
    if (l->map)
        munmap(l->map, SHM_SIZE);
    if (l->fd >= 0)
        close(l->fd); /* drops the member and dead-man byte locks */
    free(l->path);
    free(l);
}
