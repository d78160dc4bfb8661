/*
 * lock.c - the process-shared write queue (see lock.h).
 *
 * Guarantees: the mutex in the side file is initialised exactly once even
 * when several processes create the file at the same moment (initialisation
 * runs under flock); a dead holder never blocks the others for longer than
 * it takes the kernel to notice the death; waiting is bounded by the timeout
 * on the monotonic clock, so a wall-clock step does not stretch it.
 */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

struct rl_lock {
    int fd;
    rl_lock_shm *shm;
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
    if ((size_t)st.st_size < sizeof(rl_lock_shm) && ftruncate(l->fd, sizeof(rl_lock_shm)) != 0) {
        rc = rl_seterr(err, errno == ENOSPC ? RL_EFULL : RL_ESTORE, "lock file: %s",
                       strerror(errno));
        goto out;
    }
    l->shm = mmap(NULL, sizeof(rl_lock_shm), PROT_READ | PROT_WRITE, MAP_SHARED, l->fd, 0);
    if (l->shm == MAP_FAILED) {
        l->shm = NULL;
        rc = rl_seterr(err, RL_ESTORE, "lock file: mmap: %s", strerror(errno));
        goto out;
    }
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
        rc = pthread_mutex_clocklock(&l->shm->mu, CLOCK_MONOTONIC, &dl);
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
}

void rl_lock_close(rl_lock *l)
{
    if (!l)
        return;
    if (l->shm)
        munmap(l->shm, sizeof(rl_lock_shm));
    if (l->fd >= 0)
        close(l->fd);
    free(l);
}
