/*
 * lease.c - lease records as blobs, and who owns a lease.
 *
 * A lease row's body holds the estimate (resource and amount pairs) and the
 * in-flight units it holds per concurrency limit. Format 1: byte 0 = 1,
 * byte 1 = n_est, n_est x (1-byte length, name, 8-byte amount), then byte
 * n_held and n_held x (8-byte id, 8-byte amount), little-endian. Decoding
 * checks every length and value, so a damaged row is refused, never read
 * past its end. Format 2 is a waiter for a slot (rl__lease_wait): format
 * 1's bytes, then one byte, its priority; it holds nothing (n_held 0).
 * Only waiters are written as format 2, so a library that knows format 1
 * only meets them only while a newer one waits on the same key.
 *
 * An owner is its pid and its start time in clock ticks after boot (field
 * 22 of /proc/PID/stat): a pid alone could have been reused by a new
 * process after the owner died.
 */
#include "bytes.h"
#include "lease.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

size_t rl_lease_encode(const rl_lease_rec *rec, unsigned char *buf)
{
    size_t i, o = 2;
    buf[0] = rec->waiting ? 2 : 1;
    buf[1] = (unsigned char)rec->n_est;
    for (i = 0; i < rec->n_est; i++) {
        size_t len = strlen(rec->est_resource[i]);
        buf[o++] = (unsigned char)len;
        memcpy(buf + o, rec->est_resource[i], len);
        o += len;
        rl_put64(buf + o, (uint64_t)rec->est_amount[i]);
        o += 8;
    }
    buf[o++] = (unsigned char)rec->n_held;
    for (i = 0; i < rec->n_held; i++) {
        rl_put64(buf + o, rec->held_id[i]);
        rl_put64(buf + o + 8, (uint64_t)rec->held_amount[i]);
        o += 16;
    }
    if (rec->waiting)
        buf[o++] = (unsigned char)rec->priority;
    return o;
}

int rl_lease_decode(rl_lease_rec *rec, const unsigned char *buf, size_t len)
{
    size_t i, o = 2;
    if (!buf || len < 3 || (buf[0] != 1 && buf[0] != 2) || buf[1] > RL_MAX_LIMITS)
        return RL_ECORRUPT;
    rec->waiting = buf[0] == 2;
    rec->priority = 0;
    if (rec->waiting) { /* its priority is the last byte; it holds nothing */
        if (buf[--len] > RL_PRIORITY_BATCH)
            return RL_ECORRUPT;
        rec->priority = buf[len];
    }
    rec->n_est = buf[1];
    for (i = 0; i < rec->n_est; i++) {
        size_t n;
        if (o >= len || (n = buf[o]) == 0 || n >= RL_NAME_MAX || o + 1 + n + 8 > len)
            return RL_ECORRUPT;
        memcpy(rec->est_resource[i], buf + o + 1, n);
        rec->est_resource[i][n] = 0;
        if (!rl_name_valid(rec->est_resource[i]))
            return RL_ECORRUPT;
        rec->est_amount[i] = (int64_t)rl_get64(buf + o + 1 + n);
        if (rec->est_amount[i] < 0)
            return RL_ECORRUPT;
        o += 1 + n + 8;
    }
    if (o >= len || buf[o] > RL_MAX_LIMITS)
        return RL_ECORRUPT;
    rec->n_held = buf[o++];
    if (o + rec->n_held * 16 != len || (rec->waiting && rec->n_held != 0))
        return RL_ECORRUPT;
    for (i = 0; i < rec->n_held; i++) {
        rec->held_id[i] = rl_get64(buf + o);
        rec->held_amount[i] = (int64_t)rl_get64(buf + o + 8);
        if (rec->held_amount[i] < 0)
            return RL_ECORRUPT;
        o += 16;
    }
    return RL_OK;
}

/* Start time and state of a process from /proc, or -1 if unreadable. The
 * command name (field 2) may hold spaces and parentheses: parse after the
 * last ')'. */
static int64_t proc_start(int64_t pid, char *state)
{
    char path[64], buf[1024], *p;
    unsigned long long start;
    size_t n;
    int i;
    FILE *fp;
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    if (!(fp = fopen(path, "re")))
        return -1;
    n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    if (!(p = strrchr(buf, ')')) || p[1] != ' ')
        return -1;
    p += 2;
    *state = *p;
    for (i = 3; i < 22; i++) { /* skip to field 22 */
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    if (sscanf(p, "%llu", &start) != 1)
        return -1;
    return (int64_t)start;
}

/* This process's pid and start time, read once per process: every lease
 * begins with them and every lease listed is compared with them, and the
 * /proc read cost a lease pair about a tenth of its time, getpid a few
 * per cent more (bench agent/1p/lease). A child of fork forgets them (an
 * atfork handler) and reads its own. Threads may race to fill them; they
 * write the same values, the start before the pid that vouches for it. */
static int64_t self_pid, self_start;
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static void self_forget(void)
{
    __atomic_store_n(&self_pid, 0, __ATOMIC_RELEASE);
}

static void self_watch_fork(void)
{
    (void)pthread_atfork(NULL, NULL, self_forget);
}

void rl_owner_self(int64_t *pid, int64_t *pstart)
{
    char state;
    (void)pthread_once(&self_once, self_watch_fork);
    if ((*pid = __atomic_load_n(&self_pid, __ATOMIC_ACQUIRE)) != 0) {
        *pstart = __atomic_load_n(&self_start, __ATOMIC_RELAXED);
        return;
    }
    *pid = (int64_t)getpid();
    *pstart = proc_start(*pid, &state);
    if (*pstart >= 0) {
        __atomic_store_n(&self_start, *pstart, __ATOMIC_RELAXED);
        __atomic_store_n(&self_pid, *pid, __ATOMIC_RELEASE);
    }
}

int rl_owner_alive(int64_t pid, int64_t pstart)
{
    char state = 0;
    int64_t start;
    if (pid <= 0 || pid > INT32_MAX)
        return 1; /* unknown owner: only the TTL can tell */
    {
        int64_t me, my_start;
        rl_owner_self(&me, &my_start);
        /* this process: alive, unless it is a namesake */
        if (pid == me && (pstart < 0 || my_start < 0 || pstart == my_start))
            return 1;
    }
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return 0;
    start = proc_start(pid, &state);
    if (start < 0)
        return errno == ENOENT ? 0 : 1;
    /* a zombie has released nothing yet, but it will never settle either */
    return state != 'Z' && state != 'X' && (pstart < 0 || start == pstart);
}
