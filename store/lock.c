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
#define RL_LOCK_MAP (RL_LOCK_EXT_AT + 64)
#define RL_LOCK_HANDOFF 64 /* releases in a row before yielding to a waiter */

struct rl_lock {
    int fd;
    rl_lock_shm *shm;
    rl_lock_ext *ext;
    int streak; /* releases in a row while others waited */
};

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
    if (rc == EOWNERDEAD) /* the holder died; SQLite already rolled its work back */
        rc = pthread_mutex_consistent(&l->shm->mu);
    if (rc == 0)
        return RL_OK;
    if (rc == ETIMEDOUT)
        return rl_seterr(err, RL_EBUSY, "another process held the write lock for over %d ms",
                         timeout_ms);
    return rl_seterr(err, RL_ESTORE, "write lock: %s", strerror(rc));
}

void rl_lock_release(rl_lock *l)
{
    pthread_mutex_unlock(&l->shm->mu);
    if (!__atomic_load_n(&l->ext->waiters, __ATOMIC_RELAXED)) {
        l->streak = 0;
    } else if (++l->streak >= RL_LOCK_HANDOFF) {
        l->streak = 0;
        sched_yield(); /* let a woken waiter take it before we come back */
    }
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
