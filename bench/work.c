/*
 * work.c - what one worker process does: open its own handle (after fork),
 * make one untimed decision so statements are prepared, wait at the
 * barrier, then decide as fast as it can until the deadline, timing each
 * call with CLOCK_MONOTONIC into a preallocated array.
 *
 * Three workloads:
 *   W_BARE  the floor: raw SQLite with rl's settings (WAL, synchronous=NORMAL,
 *           busy_timeout 5000, SQLite's own busy handler) and one prepared
 *           autocommit upsert ... RETURNING per decision;
 *   W_RL    rl_allow(key, cost 1) with default limits so large that every
 *           decision is admitted and writes its row (a file, ":memory:" or
 *           a redis:// URL); the refusal cases (refuse) with a limit of 1
 *           per hour instead, so every decision after the first is refused;
 *           the agent's cases (call, tier) make the calls an agent makes
 *           instead: rl_acquire, rl_acquire_keys, a lease begun and settled;
 *           rl_wait (never asleep) or rl_reserve (booking ahead) instead of
 *           rl_allow in the wait and reserve cases (bench.h, C_*);
 *   W_LUA   the baseline GCRA Lua script by EVALSHA (redis.c), same limit;
 *   W_SPIN  no store: BENCH_SPIN_NS of CPU work per call, the number of
 *           steps calibrated once on the bench's own CPU clock before the
 *           workers are forked (bench_prepare), so every worker does the
 *           same work per call and a preemption does not shorten it.
 * Keys are "k%d", picked by xorshift64 from a table each worker builds
 * before the barrier (only as many as its case uses, so a 1-key worker
 * does not carry a million of them), so no formatting happens in the loop.
 */
#include "bench.h"

#include <errno.h>
#include <rl.h>
#include <rl_admin.h>
#include <watch_scan.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEY_LEN 8 /* "k999999" + NUL fits */

/* In BSS: pages a worker never writes cost it no memory. */
static char keys[BENCH_NKEYS_MAX][KEY_LEN];

/* 10^9 per second, burst 10^9: 1 ns per unit, never exhausted in a run.
 * count and burst are well under RL_COUNT_MAX (2^40); burst*period/count
 * is one second, well under RL_FILL_MAX. */
static const rl_limit huge_limit[] = { RL_PER_SECOND(1000000000, 1000000000) };
/* The refusal cases: one per hour, so a key admits its first decision and
 * refuses every other one of the run. */
static const rl_limit tiny_limit[] = { RL_PER_HOUR(1, 1) };
/* T_AGENT: what an agent fleet's tier holds, every limit out of reach. */
static const rl_limit agent_limits[] = {
    RL_LIMIT("requests", "requests", 1000000000, RL_SECOND, 1000000000),
    RL_LIMIT("tokens", "tokens", 1000000000, RL_SECOND, 1000000000),
    RL_CONCURRENT("streams", "streams", 1000),
};
/* T_TWO: a tier of two rates, for the bytes a key of two limits takes. */
static const rl_limit two_limits[] = {
    RL_LIMIT("per_second", NULL, 1000000000, RL_SECOND, 1000000000),
    RL_LIMIT("per_minute", NULL, 60000000000, RL_MINUTE, 60000000000),
};
/* T_WINDOW: a sliding window out of reach (the Redis script's window
 * arithmetic against its GCRA's). */
static const rl_limit window_limits[] = {
    RL_SLIDING_WINDOW("window", NULL, 1000000000, RL_SECOND),
};
/* C_RESERVE: 1000 per second, burst 1, so every reservation but the
 * first waits behind the others (booked ahead, with a delay). */
static const rl_limit ahead_limit[] = { RL_PER_SECOND(1000, 1) };

static void keys_init(int n)
{
    int i;
    for (i = 0; i < n && i < BENCH_NKEYS_MAX; i++)
        snprintf(keys[i], KEY_LEN, "k%d", i);
}

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* ---- W_BARE ------------------------------------------------------------- */

typedef struct bare {
    sqlite3 *db;
    sqlite3_stmt *st;
    int pad; /* bytes of blob written with each row, 0: none */
} bare;

static const char bare_upsert[] =
    "INSERT INTO b(key,tat) VALUES(?1,?2) ON CONFLICT(key) DO UPDATE SET tat = max(tat, ?2) "
    "+ 1000 RETURNING tat";
static const char bare_upsert_pad[] =
    "INSERT INTO b(key,tat,pad) VALUES(?1,?2,?3) ON CONFLICT(key) DO UPDATE SET "
    "tat = max(tat, ?2) + 1000, pad = ?3 RETURNING tat";
static const unsigned char pad_bytes[256];

static int bare_open(bare *b, const char *path, int create, int pad, char *err, size_t errlen)
{
    const char *setup = create ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                 "CREATE TABLE IF NOT EXISTS b(key TEXT PRIMARY KEY, tat INTEGER,"
                                 " pad BLOB) WITHOUT ROWID"
                               : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL";
    int rc;
    memset(b, 0, sizeof *b);
    b->pad = pad > (int)sizeof pad_bytes ? (int)sizeof pad_bytes : pad;
    rc = sqlite3_open_v2(path, &b->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(b->db, 5000);
        rc = sqlite3_exec(b->db, setup, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK && !create)
        rc = sqlite3_prepare_v3(b->db, b->pad ? bare_upsert_pad : bare_upsert, -1,
                                SQLITE_PREPARE_PERSISTENT, &b->st, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "bare-upsert open %s: %s", path,
                 b->db ? sqlite3_errmsg(b->db) : sqlite3_errstr(rc));
        return -1;
    }
    return 0;
}

static void bare_close(bare *b)
{
    sqlite3_finalize(b->st);
    sqlite3_close_v2(b->db);
}

/* 0 done, -1 error (message in err). */
static int bare_op(void *h, const char *key, char *err, size_t errlen)
{
    bare *b = h;
    int rc;
    sqlite3_bind_text(b->st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(b->st, 2, realtime_ns());
    if (b->pad)
        sqlite3_bind_blob(b->st, 3, pad_bytes, b->pad, SQLITE_STATIC);
    rc = sqlite3_step(b->st);
    if (rc == SQLITE_ROW) {
        (void)sqlite3_column_int64(b->st, 0);
        rc = sqlite3_step(b->st);
    }
    if (rc != SQLITE_DONE && err)
        snprintf(err, errlen, "bare-upsert: %s", sqlite3_errmsg(b->db));
    sqlite3_reset(b->st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- W_RL --------------------------------------------------------------- */

static int rl_open_case(rl **r, const bench_case *c, const char *path, char *err, size_t errlen)
{
    rl_options o = RL_OPTIONS_INIT;
    int rc;
    o.default_limits = c->refuse ? tiny_limit : c->call == C_RESERVE ? ahead_limit : huge_limit;
    o.n_default_limits = 1;
    if (c->tier == T_AGENT) {
        o.default_limits = agent_limits;
        o.n_default_limits = sizeof agent_limits / sizeof agent_limits[0];
    } else if (c->tier == T_TWO) {
        o.default_limits = two_limits;
        o.n_default_limits = sizeof two_limits / sizeof two_limits[0];
    } else if (c->tier == T_WINDOW) {
        o.default_limits = window_limits;
        o.n_default_limits = 1;
    }
    o.busy_strategy = c->busy == BUSY_NA ? RL_BUSY_LOCK : c->busy;
    rc = rl_open(r, c->memory ? ":memory:" : path, &o);
    if (rc != RL_OK) {
        snprintf(err, errlen, "rl_open %s: %s", c->memory ? ":memory:" : path, rl_errmsg(*r));
        rl_close(*r);
        *r = NULL;
        return -1;
    }
    return 0;
}

/* 0 admitted, 1 refused, -1 error, -2 the error was RL_EBUSY (message in
 * err). */
static int rl_op(void *h, const char *key, char *err, size_t errlen)
{
    rl *r = h;
    rl_result res;
    int rc = rl_allow(r, key, 1, &res);
    if (rc != RL_OK) {
        if (err)
            snprintf(err, errlen, "rl_allow: %s (%s)", rl_strerror(rc), rl_errmsg(r));
        return rc == RL_EBUSY ? -2 : -1;
    }
    return res.allowed ? 0 : 1;
}

/* The agent's calls (C_*), on user key `key` and the account. */
static int call_result(rl *r, int rc, const rl_result *res, const char *what, char *err,
                       size_t errlen)
{
    if (rc != RL_OK) {
        if (err)
            snprintf(err, errlen, "%s: %s (%s)", what, rl_strerror(rc), rl_errmsg(r));
        return rc == RL_EBUSY ? -2 : -1;
    }
    return res->allowed ? 0 : 1;
}

static const rl_cost agent_cost[] = { { "requests", 1 }, { "tokens", 1500 }, { "streams", 1 } };
static const rl_cost agent_used[] = { { "tokens", 900 } };

static int acquire_op(void *h, const char *key, char *err, size_t errlen)
{
    rl_result res;
    (void)key;
    return call_result(h, rl_acquire(h, "account", agent_cost, 2, &res), &res, "rl_acquire", err,
                       errlen);
}

static int keys_op(void *h, const char *key, char *err, size_t errlen)
{
    const char *k[2] = { key, "account" };
    rl_result res;
    return call_result(h, rl_acquire_keys(h, k, 2, agent_cost, 2, &res), &res, "rl_acquire_keys",
                       err, errlen);
}

/* A lease begun and settled: the pair is one timed call. */
static int lease_op(void *h, const char *key, char *err, size_t errlen)
{
    rl_result res;
    rl_lease l;
    int rc = rl_lease_begin(h, "account", agent_cost, 3, 60 * RL_SECOND, &l, &res);
    (void)key;
    if (rc != RL_OK || !res.allowed)
        return call_result(h, rc, &res, "rl_lease_begin", err, errlen);
    rc = rl_lease_settle(h, &l, agent_used, 1);
    return call_result(h, rc, &res, "rl_lease_settle", err, errlen);
}

/* rl_wait with a second's timeout on the huge limit: admitted at once,
 * never asleep, so what is timed is the reservation behind it. */
static int rl_op_wait(void *h, const char *key, char *err, size_t errlen)
{
    rl *r = h;
    rl_result res;
    int rc = rl_wait(r, key, 1, 1000000000, NULL, &res);
    if (rc != RL_OK) {
        if (err)
            snprintf(err, errlen, "rl_wait: %s (%s)", rl_strerror(rc), rl_errmsg(r));
        return rc == RL_EBUSY ? -2 : -1;
    }
    return res.allowed ? 0 : 1;
}

/* rl_reserve with no horizon: admitted with a delay that grows all run. */
static int rl_op_reserve(void *h, const char *key, char *err, size_t errlen)
{
    rl *r = h;
    rl_reservation rv;
    int rc = rl_reserve(r, key, 1, INT64_MAX, &rv);
    if (rc != RL_OK) {
        if (err)
            snprintf(err, errlen, "rl_reserve: %s (%s)", rl_strerror(rc), rl_errmsg(r));
        return rc == RL_EBUSY ? -2 : -1;
    }
    return rv.ok ? 0 : 1;
}

/* This process's CPU time so far, user and system, and how often the
 * scheduler took the CPU from it while it could run (ivcsw, if asked). */
static int64_t cpu_ns_ivcsw(int64_t *ivcsw)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    if (ivcsw)
        *ivcsw = ru.ru_nivcsw;
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static int64_t cpu_ns(void)
{
    return cpu_ns_ivcsw(NULL);
}

/* ---- prefill ------------------------------------------------------------ */

/* The technique of tests/tool/fill_keys.c: rl_open makes the schema, then
 * the rows go in directly, in one transaction with one prepared statement,
 * since a million decisions through rl_allow would take longer than the
 * rest of the run. Each row is a copy of what one real rl_allow left for
 * k0 (state blob, counters, times), so it is exactly what the library
 * writes without the bench knowing the encoding. Keys are inserted in a
 * shuffled order, as traffic would add them: the b-tree's pages end up as
 * full as in a table grown by decisions, not packed by a sorted load. */
static int fill_rows(const bench_case *c, const char *path, const char *ins, bench_result *out)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    uint32_t *order = NULL;
    uint64_t seed = 0x2545F4914F6CDD1Dull;
    int64_t t0 = bench_now_ns();
    char key[16];
    int rc, i;

    if (c->nkeys > 1 && (order = malloc((size_t)c->nkeys * sizeof *order)) == NULL) {
        snprintf(out->err, sizeof out->err, "prefill: out of memory");
        return -1;
    }
    for (i = 1; i < c->nkeys; i++)
        order[i] = (uint32_t)i;
    for (i = c->nkeys - 1; i > 1; i--) { /* Fisher-Yates over 1..nkeys-1 */
        int j = 1 + (int)(xorshift64(&seed) % (uint64_t)i);
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    /* Untimed and thrown away on failure: no durability needed, and a
     * cache large enough that the load does not spill to the WAL. */
    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA synchronous=OFF; PRAGMA cache_size=-262144; BEGIN IMMEDIATE",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, ins, -1, &q, NULL);
    for (i = 1; rc == SQLITE_OK && i < c->nkeys; i++) {
        snprintf(key, sizeof key, "k%u", order[i]);
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_bind_parameter_count(q) > 1)
            sqlite3_bind_int(q, 2, c->pad);
        rc = sqlite3_step(q);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_reset(q);
    }
    sqlite3_finalize(q);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        snprintf(out->err, sizeof out->err, "prefill %s: %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close_v2(db);
    free(order);
    out->fill_ns = bench_now_ns() - t0;
    return rc == SQLITE_OK ? 0 : -1;
}

static int prefill(const bench_case *c, const char *path, rl *r, bench_result *out)
{
    static const char ins[] =
        "INSERT INTO rl_keys (key, tier, state, allowed, refused, units, first_seen,"
        " last_seen) SELECT ?1, tier, state, allowed, refused, units, first_seen, last_seen"
        " FROM rl_keys WHERE key = 'k0'";
    rl_result res;
    if (rl_allow(r, "k0", 1, &res) != RL_OK) {
        snprintf(out->err, sizeof out->err, "prefill rl_allow: %s", rl_errmsg(r));
        return -1;
    }
    return fill_rows(c, path, ins, out);
}

/* The bare table's rows k1..: as if each key had been decided once (k0 is
 * made by the first decision, as with rl). */
static int prefill_bare(const bench_case *c, const char *path, bench_result *out)
{
    return fill_rows(c, path,
                     c->pad ? "INSERT INTO b (key, tat, pad) VALUES (?1, 1000, zeroblob(?2))"
                            : "INSERT INTO b (key, tat) VALUES (?1, 1000)",
                     out);
}

/* ---- both --------------------------------------------------------------- */

/* Redis: every key decided once before timing, in batches (one round trip
 * per 256 keys), so the run measures keys that exist, as in steady state,
 * rather than their creation. */
static int prefill_redis(const bench_case *c, rl *r, bench_result *out)
{
    rl_batch_item items[256];
    int64_t t0 = bench_now_ns();
    int i = 0, n, rc;
    keys_init(c->nkeys);
    while (i < c->nkeys) {
        for (n = 0; n < 256 && i < c->nkeys; n++, i++) {
            items[n].key = keys[i];
            items[n].cost = 1;
        }
        if ((rc = rl_allow_batch(r, items, (size_t)n)) != RL_OK) {
            snprintf(out->err, sizeof out->err, "prefill rl_allow_batch: %s", rl_errmsg(r));
            return -1;
        }
    }
    out->fill_ns = bench_now_ns() - t0;
    return 0;
}

/* ---- W_SPIN --------------------------------------------------------------- */

typedef struct spin {
    uint64_t steps; /* xorshift steps per call */
    uint64_t x;
} spin;

static uint64_t spin_steps; /* set by bench_prepare, before the fork */

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int spin_op(void *h, const char *key, char *err, size_t errlen)
{
    spin *sp = h;
    uint64_t i;
    (void)key;
    (void)err;
    (void)errlen;
    for (i = 0; i < sp->steps; i++)
        (void)xorshift64(&sp->x);
    __asm__ volatile("" : : "r"(sp->x) : "memory"); /* the work is kept */
    return 0;
}

/* Steps for BENCH_SPIN_NS: timed over about 20 ms of this thread's CPU. */
static uint64_t spin_calibrate(void)
{
    spin sp;
    int64_t t0 = thread_cpu_ns(), t;
    uint64_t done = 0, steps;
    sp.x = 88172645463325252ull;
    sp.steps = 4096;
    do {
        spin_op(&sp, NULL, NULL, 0);
        done += sp.steps;
    } while ((t = thread_cpu_ns() - t0) < 20000000);
    steps = (uint64_t)((double)done * BENCH_SPIN_NS / (double)t);
    return steps ? steps : 1;
}

int bench_prepare(const bench_case *c, const char *path, bench_result *out)
{
    bare b;
    rl *r = NULL;
    int rc = 0;
    if (c->workload == W_BARE) {
        rc = bare_open(&b, path, 1, c->pad, out->err, sizeof out->err);
        bare_close(&b);
        return rc == 0 && c->prefill ? prefill_bare(c, path, out) : rc;
    }
    if (c->workload == W_LUA)
        return bench_lua_prepare(path, c->pad, out->err, sizeof out->err);
    if (c->workload == W_SPIN && !spin_steps)
        spin_steps = spin_calibrate();
    if (c->memory || c->workload == W_SPIN)
        return 0;
    if (rl_open_case(&r, c, path, out->err, sizeof out->err) != 0)
        return -1;
    if (c->prefill && !c->redis)
        rc = prefill(c, path, r, out);
    else if (c->prefill)
        rc = prefill_redis(c, r, out);
    rl_close(r);
    return rc;
}

/* ---- memory ------------------------------------------------------------- */

int64_t bench_vmrss(void)
{
    char line[256];
    long long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : (int64_t)kb * 1024;
}

void bench_probe_memory(const bench_case *c, const char *path, bench_result *out)
{
    int64_t v[2] = { -1, -1 };
    int fd[2], st;
    pid_t pid;

    out->file_bytes = out->rss_base = out->rss_open = -1;
    if (c->workload == W_RL && !c->redis && !c->memory) {
        /* Fold the WAL back in so the file holds every row, and nothing else. */
        sqlite3 *db = NULL;
        struct stat sb;
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
            sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) == SQLITE_OK &&
            stat(path, &sb) == 0)
            out->file_bytes = (int64_t)sb.st_size;
        sqlite3_close_v2(db);
    }
    if (c->workload != W_RL || pipe(fd) != 0)
        return;
    /* A fresh process, so the figure is one handle's, not the bench's:
     * VmRSS before rl_open, then after opening and a few decisions on keys
     * the case left behind. */
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        char err[BENCH_ERR_MAX], key[16];
        rl *r = NULL;
        rl_result res;
        int i, step = c->nkeys / BENCH_PROBE_DECISIONS > 0 ? c->nkeys / BENCH_PROBE_DECISIONS : 1;
        close(fd[0]);
        v[0] = bench_vmrss();
        if (rl_open_case(&r, c, path, err, sizeof err) == 0) {
            for (i = 0; i < BENCH_PROBE_DECISIONS; i++) {
                snprintf(key, sizeof key, "k%d", (i * step) % c->nkeys);
                (void)rl_allow(r, key, 1, &res);
            }
            v[1] = bench_vmrss();
            rl_close(r);
        }
        if (write(fd[1], v, sizeof v) != (ssize_t)sizeof v)
            _exit(1);
        _exit(0);
    }
    close(fd[1]);
    if (pid > 0) {
        ssize_t k;
        while ((k = read(fd[0], v, sizeof v)) < 0 && errno == EINTR)
            ;
        if (k == (ssize_t)sizeof v) {
            out->rss_base = v[0];
            out->rss_open = v[1];
        }
        waitpid(pid, &st, 0);
    }
    close(fd[0]);
}

/* W_RL with batch > 1: each call decides c->batch random keys in one
 * transaction (rl_allow_batch); slot->n counts calls, one sample each. */
static void batch_loop(const bench_case *c, rl *r, uint64_t *seed, uint64_t nkeys, int64_t end,
                       bench_slot *slot, int64_t *samples, size_t cap)
{
    rl_batch_item items[256];
    size_t n = 0, i, m = (size_t)c->batch < 256 ? (size_t)c->batch : 256;
    int64_t t0, t1 = 0;
    for (;;) {
        int rc;
        for (i = 0; i < m; i++) {
            items[i].key = keys[nkeys > 1 ? xorshift64(seed) % nkeys : 0];
            items[i].cost = 1;
        }
        t0 = bench_now_ns();
        rc = rl_allow_batch(r, items, m);
        t1 = bench_now_ns();
        samples[n++] = t1 - t0;
        if (rc != RL_OK) {
            if (!slot->errors)
                snprintf(slot->err, sizeof slot->err, "rl_allow_batch: %s (%s)", rl_strerror(rc),
                         rl_errmsg(r));
            slot->errors++;
            slot->ebusy += rc == RL_EBUSY;
        }
        for (i = 0; i < m && rc == RL_OK; i++)
            slot->refused += items[i].rc == RL_OK && !items[i].res.allowed;
        if (t1 >= end)
            break;
        if (n == cap) {
            slot->capped = 1;
            break;
        }
    }
    slot->n = n;
    slot->t_last = t1;
}

void bench_work(const bench_case *c, const char *path, int idx, bench_slot *slot, int64_t *samples,
                size_t cap, bench_barrier_fn barrier, void *bctx)
{
    int (*op)(void *h, const char *key, char *err, size_t errlen);
    uint64_t seed = 0x9E3779B97F4A7C15ull * (uint64_t)(idx + 1) ^ (uint64_t)getpid();
    uint64_t nkeys = (uint64_t)c->nkeys;
    int64_t end, t0, t1, ivcsw0 = 0;
    size_t n = 0;
    bare b;
    spin sp;
    rl *r = NULL;
    void *h;
    int rc;

    keys_init(c->nkeys);
    if (c->workload == W_SPIN) {
        sp.x = seed | 1;
        sp.steps = spin_steps;
        h = &sp;
        op = spin_op;
    } else if (c->workload == W_BARE) {
        if (bare_open(&b, path, 0, c->pad, slot->err, sizeof slot->err) != 0) {
            bare_close(&b);
            slot->open_failed = 1;
        }
        h = &b;
        op = bare_op;
    } else if (c->workload == W_LUA) {
        if ((h = bench_lua_open(path, c->pad, slot->err, sizeof slot->err)) == NULL)
            slot->open_failed = 1;
        op = bench_lua_op;
    } else {
        if (rl_open_case(&r, c, path, slot->err, sizeof slot->err) != 0)
            slot->open_failed = 1;
        h = r;
        op = c->call == C_ACQUIRE   ? acquire_op
             : c->call == C_KEYS    ? keys_op
             : c->call == C_LEASE   ? lease_op
             : c->call == C_WAIT    ? rl_op_wait
             : c->call == C_RESERVE ? rl_op_reserve
                                    : rl_op;
    }
    if (slot->open_failed) {
        (void)barrier(bctx);
        return;
    }
    /* Untimed warm-up on a key no timed decision uses. */
    if (op(h, "warmup", slot->err, sizeof slot->err) < 0)
        slot->errors++;
    if (!seed)
        seed = 1;

    end = barrier(bctx);
    slot->cpu_ns = -cpu_ns_ivcsw(&ivcsw0);
    if (c->batch > 1) { /* one sample per rl_allow_batch call */
        batch_loop(c, r, &seed, nkeys, end, slot, samples, cap);
        slot->cpu_ns += cpu_ns_ivcsw(&slot->ivcsw);
        slot->ivcsw -= ivcsw0;
        rl_close(r);
        return;
    }
    for (;;) {
        const char *key = keys[nkeys > 1 ? xorshift64(&seed) % nkeys : 0];
        t0 = bench_now_ns();
        rc = op(h, key, slot->errors ? NULL : slot->err, sizeof slot->err);
        t1 = bench_now_ns();
        samples[n++] = t1 - t0;
        if (rc < 0)
            slot->errors++;
        if (rc == -2)
            slot->ebusy++;
        else if (rc > 0)
            slot->refused++;
        if (t1 >= end)
            break;
        if (n == cap) {
            slot->capped = 1;
            break;
        }
    }
    slot->cpu_ns += cpu_ns_ivcsw(&slot->ivcsw);
    slot->ivcsw -= ivcsw0;
    slot->n = n;
    slot->t_last = t1;

    if (c->workload == W_BARE)
        bare_close(&b);
    else if (c->workload == W_LUA)
        bench_lua_close(h);
    else if (c->workload == W_RL)
        rl_close(r);
}

/* ---- the watch-equivalent reader ----------------------------------------- */

/* What `rlctl watch` reads each refresh (tool/cmd_watch.c), without the
 * drawing: its slice of the keys, from which it keeps its totals too
 * (tool/watch_scan.c, the same code). */
static int watch_refresh(rl *r, watch_scan *w)
{
    return watch_scan_refresh(r, w) == RL_OK ? 0 : -1;
}

void bench_reader(const bench_case *c, const char *path, bench_reader_stats *st,
                  bench_barrier_fn barrier, void *bctx)
{
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    watch_scan w;
    int64_t deadline;
    o.flags |= RL_OPEN_READONLY; /* as rlctl watch opens it */
    watch_scan_init(&w, NULL, (int64_t)c->reader_ms * 1000000);
    if (rl_open(&r, path, &o) != RL_OK) {
        snprintf(st->err, sizeof st->err, "rl_open: %s", rl_errmsg(r));
        rl_close(r);
        barrier(bctx);
        return;
    }
    deadline = barrier(bctx);
    st->cpu_ns = -cpu_ns();
    while (bench_now_ns() < deadline) {
        int64_t t0 = bench_now_ns(), dt;
        struct timespec ts;
        if (watch_refresh(r, &w) != 0) {
            snprintf(st->err, sizeof st->err, "refresh: %s", rl_errmsg(r));
            break;
        }
        dt = bench_now_ns() - t0;
        st->refreshes++;
        st->total_ns += dt;
        if (dt > st->max_ns)
            st->max_ns = dt;
        /* sleep the interval after the refresh, as watch does */
        ts.tv_sec = c->reader_ms / 1000;
        ts.tv_nsec = (long)(c->reader_ms % 1000) * 1000000L;
        if (bench_now_ns() + (int64_t)c->reader_ms * 1000000 >= deadline)
            break;
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    st->cpu_ns += cpu_ns();
    watch_scan_free(&w);
    rl_close(r);
}
