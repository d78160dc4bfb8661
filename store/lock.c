/*
 * lock.c - the process-shared write lock (lock.h): the lock file, who is a
 * member of it, its rebuild, and the lock word. The group-commit queue that
 * rides on the lock (posting, taking, answering, recovery after a dead
 * leader) is lock_group.c; the layout both read is lock_int.h.
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
 * - Openers take turns at a damaged file; nobody rebuilds one in use. A
 *   builder killed between truncating and sizing the file leaves it
 *   damaged, and the openers that were waiting for it all find it so at
 *   once, each holding the dead-man byte shared to look: each is a user in
 *   the others' eyes, none is alone, none could rebuild. So every opener
 *   also holds a "rebuild" byte, shared, from before it tries the dead-man
 *   byte until it has built or checked the file. One that finds the file
 *   damaged lets go of both bytes and takes the rebuild byte alone (within
 *   its busy timeout, else RL_EBUSY: a holder may be stopped): then every
 *   other holder of the dead-man byte is a handle attached to a file it
 *   checked. It rebuilds the file if it gets the dead-man byte exclusively;
 *   otherwise it checks it again, and finds it rebuilt by whoever went
 *   before it, or damaged under live users: RL_ECORRUPT, as below.
 * - The file is allocated on creation (posix_fallocate): a full disk gives
 *   RL_EFULL at open, never SIGBUS later. A file truncated under us is
 *   caught by a SIGBUS handler that maps a blank page over the hole and
 *   flags the handle, which then stops using the file (SQLite's own
 *   locking keeps decisions exact without it); nothing crashes.
 * - Garbage gives an error or a rebuild, never a crash: words are checked
 *   before use, and a header that does not match this build and this
 *   database gives RL_ECORRUPT while others have the file open (it is
 *   rebuilt once they close). (A request read from a slot: lock_group.c.)
 * - No arithmetic on a time or counter read from the file: times read back
 *   are only compared.
 *
 * Handoff: a process that just unlocked can take the lock again before a
 * woken waiter runs; one that has released it RL_LOCK_HANDOFF times in a row
 * while others waited yields the CPU once, letting a waiter in.
 *
 * Linux only (futex, OFD locks). A handle must not cross fork(): a child's
 * copies of the handles' files are closed at fork, so a parent's death is
 * seen although its child lives on.
 */
#include "lock_int.h"

#include "fileperm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include <time.h>
#include <unistd.h>

#ifdef RL_TEST_HOOKS
void (*rl__lock_hook)(int step);
int64_t (*rl__lock_clock)(void);
#endif

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

/* ---- small tools (the rest are in lock_int.h) ----------------------------- */

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

static int lock_err(const rl_lock *l, char *err)
{
    return rl_seterr(err, RL_ESTORE, "%s: lock: %s", l->path, strerror(errno));
}

/* Takes the rebuild byte, shared (F_RDLCK) or alone (F_WRLCK), by the
 * deadline (mono_ns), else RL_EBUSY. fcntl has no timed wait, so it tries
 * and naps: the byte is held only while opening, briefly, unless its
 * holder is stopped, and the first try nearly always succeeds. */
static int take_rebuild_byte(rl_lock *l, short type, int64_t deadline, int timeout_ms, char *err)
{
    for (;;) {
        struct timespec ts;
        int64_t now, nap;
        if (ofd_lock(l->fd, F_OFD_SETLK, type, RL_BYTE_REBUILD) == 0)
            return RL_OK;
        if (errno != EAGAIN && errno != EACCES)
            return lock_err(l, err);
        if ((now = mono_ns()) >= deadline)
            return rl_seterr(err, RL_EBUSY,
                             "%s: another process was opening or rebuilding it for over %d ms",
                             l->path, timeout_ms);
        nap = deadline - now < RL_OPEN_NAP ? deadline - now : RL_OPEN_NAP;
        ts.tv_sec = 0;
        ts.tv_nsec = (long)nap;
        (void)nanosleep(&ts, NULL);
    }
}

/* Holding the rebuild byte: builds the file if we are alone with it (the
 * dead-man byte ours exclusively), else waits for its builder, if any, and
 * checks it (RL_ECORRUPT: damaged or foreign). */
static int build_or_attach(rl_lock *l, const struct stat *db, uint64_t *old_domain, char *err)
{
    int rc;
    if (ofd_lock(l->fd, F_OFD_SETLK, F_WRLCK, RL_BYTE_DMS) == 0) {
        if ((rc = rebuild(l, db, old_domain, err)) != RL_OK)
            return rc;
        /* Downgrading is atomic: nobody attaches to a half-built file. */
        return ofd_lock(l->fd, F_OFD_SETLKW, F_RDLCK, RL_BYTE_DMS) == 0 ? RL_OK : lock_err(l, err);
    }
    if (errno != EAGAIN && errno != EACCES)
        return lock_err(l, err);
    RL_LOCK_HOOK(RL_STEP_ATTACHING);
    if (ofd_lock(l->fd, F_OFD_SETLKW, F_RDLCK, RL_BYTE_DMS) != 0)
        return lock_err(l, err);
    return attach(l, db, err);
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
                 int timeout_ms, uint64_t *old_domain, char *err)
{
    struct stat db;
    rl_lock *l;
    char *real;
    size_t n;
    int64_t deadline;
    int rc, created = 0;
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
                       e == EACCES || e == EROFS    ? RL_EREADONLY
                       : e == ENOSPC || e == EDQUOT ? RL_EFULL
                       : e == ELOOP                 ? RL_EPERM
                                                    : RL_ESTORE,
                       "%s: %s", l->path, e == ELOOP ? "is a symbolic link: refused" : strerror(e));
        goto out;
    }
    if (!created && (rc = rl_fileperm_check_fd(l->fd, l->path, mode, shared_group, err)) != RL_OK)
        goto out;
    /* Every opener holds the rebuild byte, shared, from before it tries the
     * dead-man byte until it has built or checked the file: so whoever
     * holds it alone knows that every dead-man holder but itself is a user
     * of a file it checked. */
    deadline = mono_ns() + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
    if ((rc = take_rebuild_byte(l, F_RDLCK, deadline, timeout_ms, err)) != RL_OK)
        goto out;
    rc = build_or_attach(l, &db, old_domain, err);
    if (rc == RL_ECORRUPT) {
        /* Damaged (a builder killed half-way, say): the other openers that
         * found it so at the same time hold it as we do, so none of us is
         * alone. We let go of both bytes, and take turns with the rebuild
         * byte alone: the first rebuilds, the others find it rebuilt. */
        RL_LOCK_HOOK(RL_STEP_DAMAGED);
        if (l->map) {
            munmap(l->map, SHM_SIZE);
            l->map = NULL;
        }
        l->damaged = 0; /* a fault while checking was that mapping's */
        (void)ofd_lock(l->fd, F_OFD_SETLK, F_UNLCK, RL_BYTE_DMS);
        (void)ofd_lock(l->fd, F_OFD_SETLK, F_UNLCK, RL_BYTE_REBUILD);
        if ((rc = take_rebuild_byte(l, F_WRLCK, deadline, timeout_ms, err)) != RL_OK)
            goto out;
        /* Alone with the rebuild byte: a file still damaged now is damaged
         * under processes that use it, and is reported, not rebuilt. */
        rc = build_or_attach(l, &db, old_domain, err);
    }
    if (rc != RL_OK)
        goto out;
    (void)ofd_lock(l->fd, F_OFD_SETLK, F_UNLCK, RL_BYTE_REBUILD);
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
        rl_lock_recover(l);
}

/* 1: this handle holds the lock now; 0: another does. live: a holder that
 * looks alive is asked the kernel about. */
int rl_lock_try_take(rl_lock *l, int live)
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
    if (rl_lock_try_take(l, 0))
        return RL_OK;
    t0 = mono_ns();
    deadline = t0 + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
    for (;;) {
        uint32_t w;
        int64_t nap;
        if (rl_lock_try_take(l, live)) {
            *waited_ns = mono_ns() - t0;
            return RL_OK;
        }
        if (l->damaged)
            return rl_seterr(err, RL_ECORRUPT, "%s: truncated while in use", l->path);
        if ((now = mono_ns()) >= deadline)
            return rl_seterr(err, RL_EBUSY, "another process held the write lock for over %d ms",
                             timeout_ms);
        nap = deadline - now < RL_LIVE_NAP ? deadline - now : RL_LIVE_NAP;
        w = __atomic_load_n(&l->h->lock, __ATOMIC_ACQUIRE);
        __atomic_add_fetch(&l->h->waiters, 1, __ATOMIC_SEQ_CST);
        RL_LOCK_HOOK(RL_STEP_WAITING);
        /* a word unchanged for a whole nap: is its holder still there? */
        live = w != 0 && q_sleep(&l->h->lock, w, nap);
        __atomic_sub_fetch(&l->h->waiters, 1, __ATOMIC_SEQ_CST);
    }
}

void rl_lock_release(rl_lock *l)
{
    if (l->forked || !l->held)
        return;
    l->held = 0;
    __atomic_store_n(&l->h->lock, 0, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&l->h->waiters, __ATOMIC_SEQ_CST))
        q_wake(&l->h->lock, 1);
    rl_lock_wake_posted(l);
    if (!__atomic_load_n(&l->h->waiters, __ATOMIC_RELAXED)) {
        l->streak = 0;
    } else if (++l->streak >= RL_LOCK_HANDOFF) {
        l->streak = 0;
        sched_yield(); /* let a woken waiter take it before we come back */
    }
}

/* ---- slot wake-ups -------------------------------------------------------- */

/* The word is only compared and slept on, never trusted: garbage in it
 * costs a waiter one early look, nothing else. Its low 31 bits are the
 * epoch; the top bit says a waiter may be asleep on it, set by the waiter
 * before it sleeps and cleared by the next move, which wakes sleepers only
 * then: with nobody waiting, a release (every lease settled) makes no
 * futex call. */
#define EPOCH_SLEEPER 0x80000000u

static int epoch_usable(const rl_lock *l)
{
    return l->map && !l->forked && !l->damaged;
}

int rl_lock_epoch(rl_lock *l, uint32_t *epoch)
{
    if (!epoch_usable(l))
        return RL_ESTORE;
    *epoch = __atomic_load_n(&l->h->released, __ATOMIC_ACQUIRE) & ~EPOCH_SLEEPER;
    return RL_OK;
}

void rl_lock_epoch_wait(rl_lock *l, uint32_t seen, int64_t ns)
{
    if (ns <= 0)
        return;
    if (epoch_usable(l)) {
        uint32_t w = __atomic_load_n(&l->h->released, __ATOMIC_ACQUIRE);
        seen &= ~EPOCH_SLEEPER;
        /* flag it, unless the epoch moved already (a failed exchange
         * reloads w) or another sleeper flagged it */
        while ((w & ~EPOCH_SLEEPER) == seen && !(w & EPOCH_SLEEPER) &&
               !__atomic_compare_exchange_n(&l->h->released, &w, w | EPOCH_SLEEPER, 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            ;
        /* a move after the flag changes the word: the futex does not sleep */
        if ((w & ~EPOCH_SLEEPER) == seen)
            (void)q_sleep(&l->h->released, seen | EPOCH_SLEEPER, ns);
    } else {
        struct timespec ts;
        ts.tv_sec = (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        nanosleep(&ts, NULL);
    }
}

void rl_lock_epoch_bump(rl_lock *l)
{
    uint32_t w;
    if (!epoch_usable(l))
        return;
    w = __atomic_load_n(&l->h->released, __ATOMIC_ACQUIRE);
    while (!__atomic_compare_exchange_n(&l->h->released, &w,
                                        ((w & ~EPOCH_SLEEPER) + 1u) & ~EPOCH_SLEEPER, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        ;
    if (w & EPOCH_SLEEPER)
        q_wake(&l->h->released, INT_MAX);
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
