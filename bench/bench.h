/*
 * bench.h - what the files of bench/ share.
 *
 *   bench.c   options, the list of cases, the temporary directory, main()
 *   run.c     one case: fork the workers, start them together, sample the
 *             WAL, merge and sort the latencies
 *   work.c    what a worker does: open its own handle, then decide in a loop
 *   report.c  the table, the ratios, the machine line (text or --json)
 *   redis.c   the Redis side: a private redis-server for the run, the
 *             baseline GCRA Lua script by EVALSHA, INFO figures, clean-up
 *   clock.c   the clock (CLOCK_MONOTONIC ns) that all of them read
 *
 * Calls go one way only, with no cycle:
 *   bench.c -> run.c, work.c, redis.c, report.c
 *   run.c -> work.c, redis.c, clock.c
 *   work.c -> redis.c (the Lua baseline), clock.c
 *   redis.c -> clock.c
 *   report.c and clock.c call no other file of bench/.
 *
 * The program prints figures, never pass/fail.
 */
#ifndef RL_BENCH_H
#define RL_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* raw SQLite upsert, rl_allow, the baseline GCRA Lua script on Redis, or
 * no store at all: a fixed slice of CPU work per "decision" (the
 * scheduler's own fairness and latency, for the 8/16/32-process cases) */
enum { W_BARE = 0, W_RL = 1, W_LUA = 2, W_SPIN = 3 };
/* W_SPIN's work per call: about rl_allow's CPU per decision at 4 processes
 * on the machines of issue 20 (20 us; the "workers' CPU" section). */
#define BENCH_SPIN_NS 20000
/* W_RL's call: rl_allow; rl_acquire on the account (requests and tokens);
 * rl_acquire_keys on a user and the account (the same); a lease on the
 * account (requests, tokens, a stream) begun and settled (one pair = one
 * timed "decision") */
enum { C_ALLOW = 0, C_ACQUIRE = 1, C_KEYS = 2, C_LEASE = 3, C_WAIT = 4, C_RESERVE = 5 };
/* W_RL's default tier: one huge rate; the agent's (requests and tokens,
 * both huge, and 1000 streams at once); two huge rates; one huge sliding
 * window */
enum { T_HUGE = 0, T_AGENT = 1, T_TWO = 2, T_WINDOW = 3 };
enum { BUSY_NA = -1 }; /* memory and Redis: no busy strategy */
/* ... C_WAIT: rl_wait on the huge limit (admitted at once, it never
 * sleeps); C_RESERVE: rl_reserve with no horizon on a limit of 1000 per
 * second, so each reservation books its units further ahead (admitted with
 * a delay, nothing sleeps). */

#define BENCH_NKEYS_MAX 1000000
#define BENCH_ERR_MAX 200
#define BENCH_URL_MAX 600
#define BENCH_PROBE_DECISIONS 100 /* made by the memory probe before reading VmRSS */

typedef struct bench_case {
    const char *label; /* unique, e.g. "sqlite/4p/1key/lock"; --only matches it */
    const char *store; /* "bare-upsert", "memory" or "sqlite" */
    int workload;      /* W_* */
    int memory;        /* W_RL on ":memory:" */
    int nproc;
    int nkeys;
    int busy;         /* RL_BUSY_LOCK, RL_BUSY_SQLITE, or BUSY_NA */
    int redis;        /* runs against the run's Redis server (W_RL or W_LUA) */
    int prefill;      /* every key's row is inserted before timing (SQLite) */
    int memory_probe; /* after the run: file size / Redis memory, and the
                         * resident memory of a process with a handle open */
    int batch;        /* W_RL: decisions per rl_allow_batch call (0: rl_allow) */
    int pad;          /* W_BARE: bytes of blob stored with each row (0: none);
                       * W_LUA: extra EXISTS calls in the script (0: none) */
    int refuse;       /* W_RL: a limit of 1 per hour, so every decision after the
                       * first on a key is refused (the refusal cases) */
    int call;         /* W_RL: C_* */
    int tier;         /* W_RL: T_* */
    int reader_ms;    /* SQLite: one more process runs what `rlctl watch --interval
                       * reader_ms` reads each refresh, alongside the writers
                       * (0: none) */
} bench_case;

typedef struct bench_result {
    int ran;                   /* 0: filtered out or could not run */
    uint64_t n;                /* decisions timed, all processes */
    uint64_t calls;            /* calls timed (n / batch for batch cases) */
    double secs;               /* from the common start to the last decision's end */
    double rate;               /* n / secs */
    int64_t p50, p99, max;     /* ns, exact from the sorted samples */
    uint64_t per_min, per_max; /* decisions of the slowest and the fastest process */
    double fairness;           /* per_min / per_max (1 with one process) */
    int64_t wal_max;           /* bytes; -1: no WAL file (memory store) */
    uint64_t errors;           /* calls that returned an error */
    uint64_t refused;          /* decisions refused (should be 0: the limit is huge) */
    int capped;                /* a worker filled its sample array and stopped early */
    int skipped;               /* not run on purpose (no Redis server); err says why */
    uint64_t ebusy;            /* errors that were RL_EBUSY (Redis: conflicts past the timeout) */
    char err[BENCH_ERR_MAX];   /* first error seen, "" if none */
    /* Each of the following is -1 when it does not apply or was not measured. */
    int64_t fill_ns;          /* prefill: time to insert the rows (untimed) */
    int64_t commits;          /* Redis: EVALSHA calls from start to end (INFO commandstats) */
    int64_t server_usec;      /* Redis: the server's time in them, microseconds */
    int64_t redis_mem_delta;  /* Redis: used_memory after - before (INFO memory) */
    int64_t redis_keys_delta; /* Redis: DBSIZE after - before */
    int64_t file_bytes;       /* memory_probe, SQLite: database file after a checkpoint */
    int64_t rss_base;         /* memory_probe: VmRSS of a fresh worker before opening */
    int64_t rss_open;         /* memory_probe: VmRSS with the handle open, after decisions */
    /* reader_ms cases: the watch-equivalent reader's refreshes in the timed
     * window, and how long one took (mean and worst); -1 otherwise */
    int64_t reader_refreshes, reader_mean_ns, reader_max_ns;
    int64_t reader_cpu_ns; /* CPU time (user + system) the reader used in the window */
    /* the workers' CPU time in the window: each one's least and most, the
     * least and most decisions per CPU second of one, and their
     * involuntary context switches (the scheduler took a runnable worker's
     * CPU) in all; with more processes than cores, who gets a CPU when
     * decides the shares, and these say how much */
    int64_t cpu_total_ns, cpu_min_ns, cpu_max_ns, ivcsw;
    double per_cpu_min, per_cpu_max;
} bench_result;

/* What the reader reports back, in memory shared with the parent. */
typedef struct bench_reader_stats {
    int64_t refreshes, total_ns, max_ns;
    int64_t cpu_ns; /* user + system, from the start to the deadline */
    char err[BENCH_ERR_MAX];
} bench_reader_stats;

/* What each worker reports back, in memory shared with the parent. */
typedef struct bench_slot {
    uint64_t n, errors, refused;
    int64_t t_last; /* CLOCK_MONOTONIC ns at the end of its last decision */
    uint64_t ebusy;
    int64_t cpu_ns; /* user + system in the timed window */
    int64_t ivcsw;  /* involuntary context switches in it: preempted */
    int capped;
    int open_failed;
    char err[BENCH_ERR_MAX];
} bench_slot;

/* Called by a worker once its handle is open and warm: blocks until every
 * worker is ready, returns the CLOCK_MONOTONIC deadline of the run. */
typedef int64_t (*bench_barrier_fn)(void *ctx);

/* work.c */
/* Creates the database (schema or table) before the workers open it, and
 * fills it for a prefill case (out->fill_ns). */
int bench_prepare(const bench_case *c, const char *path, bench_result *out);
/* Runs in the child: open, warm up, barrier, loop until the deadline. */
void bench_work(const bench_case *c, const char *path, int idx, bench_slot *slot, int64_t *samples,
                size_t cap, bench_barrier_fn barrier, void *bctx);
/* Runs in the reader child of a reader_ms case: opens its own read-only
 * handle, waits for the start (barrier returns the deadline, as for a
 * worker, but the reader is not counted among the workers), then refreshes
 * as `rlctl watch` does every reader_ms until the deadline. */
void bench_reader(const bench_case *c, const char *path, bench_reader_stats *st,
                  bench_barrier_fn barrier, void *bctx);
/* After a memory_probe case: the file size after a checkpoint (SQLite) and
 * the VmRSS of a fresh process before and after opening a handle and
 * making a few decisions on existing keys. */
void bench_probe_memory(const bench_case *c, const char *path, bench_result *out);
int64_t bench_vmrss(void); /* this process's VmRSS in bytes, -1 if unknown */

/* redis.c. `url` is a redis:// or unix:// address with ?prefix=P. */
typedef struct bench_redis_stats {
    int64_t evalsha_calls, evalsha_usec, used_memory, dbsize;
} bench_redis_stats;
int bench_redis_available(void); /* built with hiredis */
/* Starts a private redis-server on a free loopback port; 0 and the URL,
 * or -1 with the reason (not on PATH, did not answer PING). */
int bench_redis_start(const char *dir, char *url, size_t urllen, char *err, size_t errlen);
void bench_redis_stop(void); /* SIGTERM + waitpid; no-op if none started */
/* Connects and PINGs; fills `version` with redis_version from INFO. */
int bench_redis_check(const char *url, char *version, size_t vlen, char *err, size_t errlen);
int bench_redis_stats_get(const char *url, bench_redis_stats *st);
/* Deletes every Redis key under the URL's prefix (SCAN + UNLINK). */
void bench_redis_cleanup(const char *url);
/* The baseline: hiredis, SCRIPT LOAD once per connection, EVALSHA per call. */
int bench_lua_prepare(const char *url, int pad, char *err, size_t errlen);
void *bench_lua_open(const char *url, int pad, char *err, size_t errlen);
int bench_lua_op(void *h, const char *key, char *err, size_t errlen);
void bench_lua_close(void *h);

/* clock.c */
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
    char fs[32]; /* file system of the database directory */
    const char *dir;
    double secs;
    char redis[BENCH_URL_MAX + 100]; /* which Redis server the Redis rows ran on, or why none */
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
