/*
 * run.c - one case: fork nproc workers (even for one process, so every case
 * runs the same way and the parent can watch the WAL), let each open its own
 * handle, start them together, sample the size of DB-wal every ~10 ms until
 * they have all exited, then merge their latency samples and sort them.
 *
 * The barrier is two pipes: each worker writes one byte to `ready` when its
 * handle is open and warm, then blocks reading `go`; the parent, having read
 * nproc bytes, writes the deadline into shared memory and closes its end of
 * `go`, which wakes every worker at once (end of file).
 *
 * Samples live in one MAP_SHARED|MAP_NORESERVE anonymous mapping, one fixed
 * array per worker; only the pages a worker touches cost memory.
 *
 * Redis cases: the parent reads INFO (EVALSHA calls, used_memory, DBSIZE)
 * once every worker is open and warm, just before the start, and again
 * after they have all exited, so the differences cover the timed decisions
 * only; EVALSHA calls beyond the decisions are rl's conflict retries.
 */
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Samples reserved per worker per second of run: far above any rate seen. */
#define RATE_CAP 10000000.0

typedef struct ctl {
    int64_t start_ns, end_ns; /* CLOCK_MONOTONIC, written before `go` closes */
    bench_reader_stats reader;
} ctl;

typedef struct barrier_ctx {
    int ready_fd, go_fd;
    ctl *c;
} barrier_ctx;

static int64_t child_barrier(void *p)
{
    barrier_ctx *b = p;
    char ch = 'r';
    ssize_t k;
    while ((k = write(b->ready_fd, &ch, 1)) < 0 && errno == EINTR)
        ;
    while ((k = read(b->go_fd, &ch, 1)) < 0 && errno == EINTR)
        ;
    return __atomic_load_n(&b->c->end_ns, __ATOMIC_ACQUIRE);
}

/* The reader is not one of the workers: it only waits for `go`. */
static int64_t reader_barrier(void *p)
{
    barrier_ctx *b = p;
    char ch;
    ssize_t k;
    while ((k = read(b->go_fd, &ch, 1)) < 0 && errno == EINTR)
        ;
    return __atomic_load_n(&b->c->end_ns, __ATOMIC_ACQUIRE);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least p% of samples <= it. */
static int64_t percentile(const int64_t *s, size_t n, double p)
{
    size_t rank;
    if (n == 0)
        return 0;
    rank = (size_t)((p / 100.0) * (double)n + 0.999999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return s[rank - 1];
}

static void sample_wal(const char *walpath, int64_t *max)
{
    struct stat st;
    if (walpath && stat(walpath, &st) == 0 && (int64_t)st.st_size > *max)
        *max = (int64_t)st.st_size;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { 0, ms * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int bench_run(const bench_case *c, const char *path, double secs, bench_result *out)
{
    char walpath[4200];
    const char *wal = NULL;
    size_t cap = (size_t)(secs * RATE_CAP / c->nproc) + 4096, total = 0, off;
    size_t hdr = sizeof(ctl) + (size_t)c->nproc * sizeof(bench_slot);
    size_t maplen;
    unsigned char *map;
    ctl *cl;
    bench_slot *slots;
    int64_t *samples, *all, t_last = 0;
    pid_t pids[65];
    int ready[2], go[2], alive = 0, p, got = 0, rc = 0;
    char ch;

    bench_redis_stats rs0 = { -1, -1, -1, -1 }, rs1;

    memset(out, 0, sizeof *out);
    out->wal_max = -1;
    out->fill_ns = out->commits = out->server_usec = out->redis_mem_delta = out->redis_keys_delta =
        -1;
    out->file_bytes = out->rss_base = out->rss_open = -1;
    out->reader_refreshes = out->reader_mean_ns = out->reader_max_ns = out->reader_cpu_ns = -1;
    if (c->nproc < 1 || c->nproc > 64) {
        snprintf(out->err, sizeof out->err, "nproc %d out of range", c->nproc);
        return -1;
    }
    if (bench_prepare(c, path, out) != 0)
        return -1;
    if (!c->memory && !c->redis) {
        snprintf(walpath, sizeof walpath, "%s-wal", path);
        wal = walpath;
        out->wal_max = 0;
    }

    hdr = (hdr + 63) & ~(size_t)63;
    maplen = hdr + (size_t)c->nproc * cap * sizeof(int64_t);
    map = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1,
               0);
    if (map == MAP_FAILED) {
        snprintf(out->err, sizeof out->err, "mmap %zu bytes: %s", maplen, strerror(errno));
        return -1;
    }
    cl = (ctl *)map;
    slots = (bench_slot *)(map + sizeof(ctl));
    samples = (int64_t *)(map + hdr);
    if (pipe(ready) != 0 || pipe(go) != 0) {
        snprintf(out->err, sizeof out->err, "pipe: %s", strerror(errno));
        munmap(map, maplen);
        return -1;
    }
    fflush(NULL);
    for (p = 0; p < c->nproc; p++) {
        pid_t pid = fork();
        if (pid == 0) {
            barrier_ctx b = { ready[1], go[0], cl };
            close(ready[0]);
            close(go[1]);
            bench_work(c, path, p, &slots[p], samples + (size_t)p * cap, cap, child_barrier, &b);
            _exit(0);
        }
        if (pid < 0) {
            snprintf(out->err, sizeof out->err, "fork: %s", strerror(errno));
            rc = -1;
            break;
        }
        pids[alive++] = pid;
    }
    if (rc == 0 && c->reader_ms > 0) {
        /* forked last, so `alive - 1` workers write to `ready` */
        pid_t pid = fork();
        if (pid == 0) {
            barrier_ctx b = { ready[1], go[0], cl };
            close(ready[0]);
            close(go[1]);
            bench_reader(c, path, &cl->reader, reader_barrier, &b);
            _exit(0);
        }
        if (pid < 0) {
            snprintf(out->err, sizeof out->err, "fork: %s", strerror(errno));
            rc = -1;
        } else {
            pids[alive++] = pid;
        }
    }
    close(ready[1]);
    close(go[0]);

    /* Wait until every worker is open and warm; give up if one dies first
     * (waitid with WNOWAIT looks without reaping; only at our workers, as the
     * bench has another child, the Redis server). */
    while (rc == 0 && got < c->nproc) {
        struct pollfd pf = { ready[0], POLLIN, 0 };
        int pr = poll(&pf, 1, 100), dead = 0, j;
        if (pr > 0) {
            ssize_t k = read(ready[0], &ch, 1);
            if (k == 1)
                got++;
            else if (k == 0)
                break;
            continue;
        }
        if (pr < 0 && errno == EINTR)
            continue;
        for (j = 0; j < alive && !dead; j++) {
            siginfo_t si;
            memset(&si, 0, sizeof si);
            dead = waitid(P_PID, (id_t)pids[j], &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                   si.si_pid != 0;
        }
        if (pr < 0 || dead)
            break;
    }
    if (c->redis)
        bench_redis_stats_get(path, &rs0);
    cl->start_ns = bench_now_ns();
    __atomic_store_n(&cl->end_ns, cl->start_ns + (int64_t)(secs * 1e9), __ATOMIC_RELEASE);
    if (rc != 0)
        __atomic_store_n(&cl->end_ns, cl->start_ns, __ATOMIC_RELEASE);
    close(go[1]); /* go */

    /* Sample the WAL until every worker has exited. */
    while (alive > 0) {
        int st, j;
        sample_wal(wal, &out->wal_max);
        for (j = 0; j < alive;) {
            pid_t w = waitpid(pids[j], &st, WNOHANG);
            if (w == pids[j] || (w < 0 && errno == ECHILD)) {
                if (w == pids[j] && (!WIFEXITED(st) || WEXITSTATUS(st) != 0) && !out->err[0])
                    snprintf(out->err, sizeof out->err, "worker %d died (status 0x%x)", j, st);
                pids[j] = pids[--alive];
            } else {
                j++;
            }
        }
        if (alive > 0)
            sleep_ms(10);
    }
    sample_wal(wal, &out->wal_max);
    close(ready[0]);
    if (c->redis && bench_redis_stats_get(path, &rs1) == 0 && rs0.dbsize >= 0) {
        out->commits = rs1.evalsha_calls - rs0.evalsha_calls;
        out->server_usec = rs1.evalsha_usec - rs0.evalsha_usec;
        out->redis_mem_delta = rs1.used_memory - rs0.used_memory;
        out->redis_keys_delta = rs1.dbsize - rs0.dbsize;
    }

    if (c->reader_ms > 0) {
        if (cl->reader.err[0] && !out->err[0])
            snprintf(out->err, sizeof out->err, "reader: %.150s", cl->reader.err);
        out->reader_refreshes = cl->reader.refreshes;
        out->reader_mean_ns = cl->reader.refreshes ? cl->reader.total_ns / cl->reader.refreshes : 0;
        out->reader_max_ns = cl->reader.max_ns;
        out->reader_cpu_ns = cl->reader.cpu_ns;
    }

    /* Merge. */
    out->per_min = UINT64_MAX;
    out->cpu_min_ns = INT64_MAX;
    out->per_cpu_min = 1e300;
    for (p = 0; p < c->nproc; p++) {
        bench_slot *s = &slots[p];
        double per_cpu = s->cpu_ns > 0 ? (double)s->n * 1e9 / (double)s->cpu_ns : 0;
        if (s->open_failed)
            rc = -1;
        if (s->err[0] && !out->err[0])
            snprintf(out->err, sizeof out->err, "%s", s->err);
        total += s->n;
        out->errors += s->errors;
        out->ebusy += s->ebusy;
        out->refused += s->refused;
        out->capped |= s->capped;
        if (s->n < out->per_min)
            out->per_min = s->n;
        if (s->n > out->per_max)
            out->per_max = s->n;
        if (s->t_last > t_last)
            t_last = s->t_last;
        out->cpu_total_ns += s->cpu_ns;
        out->ivcsw += s->ivcsw;
        if (s->cpu_ns < out->cpu_min_ns)
            out->cpu_min_ns = s->cpu_ns;
        if (s->cpu_ns > out->cpu_max_ns)
            out->cpu_max_ns = s->cpu_ns;
        if (per_cpu < out->per_cpu_min)
            out->per_cpu_min = per_cpu;
        if (per_cpu > out->per_cpu_max)
            out->per_cpu_max = per_cpu;
    }
    if (rc == 0 && total > 0 && (all = malloc(total * sizeof *all)) != NULL) {
        for (off = 0, p = 0; p < c->nproc; p++) {
            memcpy(all + off, samples + (size_t)p * cap, slots[p].n * sizeof *all);
            off += slots[p].n;
        }
        qsort(all, total, sizeof *all, cmp_i64);
        /* a batch case's samples are calls of c->batch decisions each */
        out->calls = total;
        out->n = total * (uint64_t)(c->batch > 1 ? c->batch : 1);
        out->secs = (double)(t_last - cl->start_ns) / 1e9;
        out->rate = out->secs > 0 ? (double)out->n / out->secs : 0;
        out->p50 = percentile(all, total, 50);
        out->p99 = percentile(all, total, 99);
        out->max = all[total - 1];
        out->fairness = out->per_max ? (double)out->per_min / (double)out->per_max : 0;
        out->ran = 1;
        free(all);
    } else if (rc == 0) {
        if (!out->err[0])
            snprintf(out->err, sizeof out->err, "no samples (%s)",
                     total ? "out of memory" : "workers made no decision");
        rc = -1;
    }
    munmap(map, maplen);
    return rc;
}
