/*
 * work.c - what one worker process does: open its own handle (after fork),
 * make one untimed decision so statements are prepared, wait at the
 * barrier, then decide as fast as it can until the deadline, timing each
 * call with CLOCK_MONOTONIC into a preallocated array.
 *
 * Two workloads:
 *   W_BARE  the floor: raw SQLite with rl's settings (WAL, synchronous=NORMAL,
 *           busy_timeout 5000, SQLite's own busy handler) and one prepared
 *           autocommit upsert ... RETURNING per decision;
 *   W_RL    rl_allow(key, cost 1) with default limits so large that every
 *           decision is admitted and writes its row.
 * Keys are "k%d", picked by xorshift64 from a table built once before fork,
 * so no formatting happens in the loop.
 */
#include "bench.h"

#include <rl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KEY_LEN 8 /* "k99999" + NUL fits */

static char keys[BENCH_NKEYS_MAX][KEY_LEN];

/* 10^9 per second, burst 10^9: 1 ns per unit, never exhausted in a run.
 * count and burst are well under RL_COUNT_MAX (2^40); burst*period/count
 * is one second, well under RL_FILL_MAX. */
static const rl_limit huge_limit[] = { RL_PER_SECOND(1000000000, 1000000000) };

void bench_keys_init(void)
{
    int i;
    for (i = 0; i < BENCH_NKEYS_MAX; i++)
        snprintf(keys[i], KEY_LEN, "k%d", i);
}

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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
} bare;

static const char bare_upsert[] =
    "INSERT INTO b(key,tat) VALUES(?1,?2) ON CONFLICT(key) DO UPDATE SET tat = max(tat, ?2) "
    "+ 1000 RETURNING tat";

static int bare_open(bare *b, const char *path, int create, char *err, size_t errlen)
{
    const char *setup = create ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                 "CREATE TABLE IF NOT EXISTS b(key TEXT PRIMARY KEY, tat INTEGER)"
                                 " WITHOUT ROWID"
                               : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL";
    int rc;
    memset(b, 0, sizeof *b);
    rc = sqlite3_open_v2(path, &b->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(b->db, 5000);
        rc = sqlite3_exec(b->db, setup, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK && !create)
        rc = sqlite3_prepare_v3(b->db, bare_upsert, -1, SQLITE_PREPARE_PERSISTENT, &b->st, NULL);
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
    o.default_limits = huge_limit;
    o.n_default_limits = 1;
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

/* 0 admitted, 1 refused, -1 error (message in err). */
static int rl_op(void *h, const char *key, char *err, size_t errlen)
{
    rl *r = h;
    rl_result res;
    int rc = rl_allow(r, key, 1, &res);
    if (rc != RL_OK) {
        if (err)
            snprintf(err, errlen, "rl_allow: %s (%s)", rl_strerror(rc), rl_errmsg(r));
        return -1;
    }
    return res.allowed ? 0 : 1;
}

/* ---- both --------------------------------------------------------------- */

int bench_prepare(const bench_case *c, const char *path, char *err, size_t errlen)
{
    bare b;
    rl *r = NULL;
    if (c->workload == W_BARE) {
        int rc = bare_open(&b, path, 1, err, errlen);
        bare_close(&b);
        return rc;
    }
    if (c->memory)
        return 0;
    if (rl_open_case(&r, c, path, err, errlen) != 0)
        return -1;
    rl_close(r);
    return 0;
}

void bench_work(const bench_case *c, const char *path, int idx, bench_slot *slot,
                int64_t *samples, size_t cap, bench_barrier_fn barrier, void *bctx)
{
    int (*op)(void *h, const char *key, char *err, size_t errlen);
    uint64_t seed = 0x9E3779B97F4A7C15ull * (uint64_t)(idx + 1) ^ (uint64_t)getpid();
    uint64_t nkeys = (uint64_t)c->nkeys;
    int64_t end, t0, t1;
    size_t n = 0;
    bare b;
    rl *r = NULL;
    void *h;
    int rc;

    if (c->workload == W_BARE) {
        if (bare_open(&b, path, 0, slot->err, sizeof slot->err) != 0) {
            bare_close(&b);
            slot->open_failed = 1;
        }
        h = &b;
        op = bare_op;
    } else {
        if (rl_open_case(&r, c, path, slot->err, sizeof slot->err) != 0)
            slot->open_failed = 1;
        h = r;
        op = rl_op;
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
    for (;;) {
        const char *key = keys[nkeys > 1 ? xorshift64(&seed) % nkeys : 0];
        t0 = bench_now_ns();
        rc = op(h, key, slot->errors ? NULL : slot->err, sizeof slot->err);
        t1 = bench_now_ns();
        samples[n++] = t1 - t0;
        if (rc < 0)
            slot->errors++;
        else if (rc > 0)
            slot->refused++;
        if (t1 >= end)
            break;
        if (n == cap) {
            slot->capped = 1;
            break;
        }
    }
    slot->n = n;
    slot->t_last = t1;

    if (c->workload == W_BARE)
        bare_close(&b);
    else
        rl_close(r);
}
