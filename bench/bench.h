/*
 * bench.h - what the files of bench/ share.
 *
 *   bench.c   options, the list of cases, the temporary directory, main()
 *   run.c     one case: fork the workers, start them together, sample the
 *             WAL, merge and sort the latencies
 *   work.c    what a worker does: open its own handle, then decide in a loop
 *   report.c  the table, the ratios, the machine line (text or --json)
 *
 * The program prints figures, never pass/fail.
 */
#ifndef RL_BENCH_H
#define RL_BENCH_H

#include <stddef.h>
#include <stdint.h>

enum { W_BARE = 0, W_RL = 1 };          /* raw SQLite upsert, or rl_allow */
enum { BUSY_NA = -1 };                  /* memory store: no busy strategy */

#define BENCH_NKEYS_MAX 100000
#define BENCH_ERR_MAX 200

typedef struct bench_case {
    const char *label;  /* unique, e.g. "sqlite/4p/1key/lock"; --only matches it */
    const char *store;  /* "bare-upsert", "memory" or "sqlite" */
    int workload;       /* W_* */
    int memory;         /* W_RL on ":memory:" */
    int nproc;
    int nkeys;
    int busy;           /* RL_BUSY_LOCK, RL_BUSY_SQLITE, or BUSY_NA */
} bench_case;

typedef struct bench_result {
    int ran;            /* 0: filtered out or could not run */
    uint64_t n;         /* decisions timed, all processes */
    double secs;        /* from the common start to the last decision's end */
    double rate;        /* n / secs */
    int64_t p50, p99, max;  /* ns, exact from the sorted samples */
    uint64_t per_min, per_max; /* decisions of the slowest and the fastest process */
    double fairness;    /* per_min / per_max (1 with one process) */
    int64_t wal_max;    /* bytes; -1: no WAL file (memory store) */
    uint64_t errors;    /* calls that returned an error */
    uint64_t refused;   /* decisions refused (should be 0: the limit is huge) */
    int capped;         /* a worker filled its sample array and stopped early */
    char err[BENCH_ERR_MAX]; /* first error seen, "" if none */
} bench_result;

/* What each worker reports back, in memory shared with the parent. */
typedef struct bench_slot {
    uint64_t n, errors, refused;
    int64_t t_last;     /* CLOCK_MONOTONIC ns at the end of its last decision */
    int capped;
    int open_failed;
    char err[BENCH_ERR_MAX];
} bench_slot;

/* Called by a worker once its handle is open and warm: blocks until every
 * worker is ready, returns the CLOCK_MONOTONIC deadline of the run. */
typedef int64_t (*bench_barrier_fn)(void *ctx);

/* work.c */
void bench_keys_init(void);
/* Creates the database (schema or table) before the workers open it. */
int bench_prepare(const bench_case *c, const char *path, char *err, size_t errlen);
/* Runs in the child: open, warm up, barrier, loop until the deadline. */
void bench_work(const bench_case *c, const char *path, int idx, bench_slot *slot,
                int64_t *samples, size_t cap, bench_barrier_fn barrier, void *bctx);
int64_t bench_now_ns(void); /* CLOCK_MONOTONIC */

/* run.c */
int bench_run(const bench_case *c, const char *path, double secs, bench_result *out);

/* report.c */
typedef struct bench_env {
    long nproc;
    const char *sqlite_version;
    const char *rl_version;
    char cpu[128];
    char kernel[200];
    char fs[32];        /* file system of the database directory */
    const char *dir;
    double secs;
} bench_env;

void bench_env_fill(bench_env *e, const char *dir, double secs);
void bench_report_text(const bench_env *e, const bench_case *cases, const bench_result *res,
                       size_t n);
void bench_report_json(const bench_env *e, const bench_case *cases, const bench_result *res,
                       size_t n);
/* Finds a case's result by label; NULL if absent or not run. */
const bench_result *bench_find(const bench_case *cases, const bench_result *res, size_t n,
                               const char *label);

#endif
