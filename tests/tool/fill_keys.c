/*
 * fill_keys.c - fills a database with N keys quickly, for benchmarks of
 * rlctl on big databases (bench/stats_1m.sh).
 *
 *     fill_keys DB N
 *
 * The schema and tiers come from librl (rl_open, rl_tier_set); the rows
 * are then inserted directly, in one transaction with one prepared
 * statement, since a million decisions through rl_allow would take minutes.
 * Each row is what decisions would have left: a bucket state encoded as
 * librl encodes it (rl_state_encode), counters, first and last seen within
 * the last day, and every 50th key assigned a tier. Reproducible: the same
 * N gives the same database.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"

static uint64_t rng = 88172645463325252ULL;

static uint64_t next(void)
{
    /* xorshift64: fast, and the same sequence on every machine */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(int argc, char **argv)
{
    static const rl_limit free_l[] = { RL_LIMIT("rps", NULL, 5, RL_SECOND, 10) };
    static const rl_limit pro_l[] = { RL_LIMIT("rpm", NULL, 600, RL_MINUTE, 50) };
    const char *tiers[] = { "free", "pro" };
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    rl_state st;
    unsigned char blob[RL_STATE_MAX];
    char key[32];
    struct timespec ts;
    int64_t now, n, i;
    rl *r = NULL;
    int rc = 1;

    if (argc != 3 || (n = atoll(argv[2])) <= 0) {
        fprintf(stderr, "usage: fill_keys DB N\n");
        return 2;
    }
    if (rl_open(&r, argv[1], NULL) != RL_OK || rl_tier_set(r, "free", free_l, 1) != RL_OK ||
        rl_tier_set(r, "pro", pro_l, 1) != RL_OK) {
        fprintf(stderr, "fill_keys: %s\n", rl_errmsg(r));
        goto out;
    }
    rl_close(r);
    r = NULL;
    clock_gettime(CLOCK_REALTIME, &ts);
    now = (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA synchronous = OFF; BEGIN IMMEDIATE", NULL, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO rl_keys (key, tier, state, allowed, refused, units,"
                           " first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                           -1, &q, NULL) != SQLITE_OK) {
        fprintf(stderr, "fill_keys: %s\n", sqlite3_errmsg(db));
        goto out;
    }
    for (i = 0; i < n; i++) {
        int64_t allowed = (int64_t)(next() % 1000), refused = (int64_t)(next() % 50);
        int64_t last = now - (int64_t)(next() % (uint64_t)RL_DAY);
        size_t len;
        snprintf(key, sizeof key, "user:%08lld", (long long)i);
        memset(&st, 0, sizeof st);
        st.n = 1;
        st.slot[0].kind = RL_SLOT_GCRA;
        st.slot[0].id = rl_limit_id("requests", "rps");
        st.slot[0].count = 5;
        st.slot[0].period_ns = RL_SECOND;
        st.slot[0].burst = 10;
        st.slot[0].tat = last + RL_SECOND;
        len = rl_state_encode(&st, blob);
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
        if (i % 50 == 0)
            sqlite3_bind_text(q, 2, tiers[i / 50 % 2], -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(q, 2);
        sqlite3_bind_blob(q, 3, blob, (int)len, SQLITE_STATIC);
        sqlite3_bind_int64(q, 4, allowed);
        sqlite3_bind_int64(q, 5, refused);
        sqlite3_bind_int64(q, 6, allowed * 2);
        sqlite3_bind_int64(q, 7, last - RL_HOUR);
        sqlite3_bind_int64(q, 8, last);
        if (sqlite3_step(q) != SQLITE_DONE) {
            fprintf(stderr, "fill_keys: %s\n", sqlite3_errmsg(db));
            goto out;
        }
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "fill_keys: %s\n", sqlite3_errmsg(db));
        goto out;
    }
    printf("fill_keys: %lld keys in %s\n", (long long)n, argv[1]);
    rc = 0;
out:
    sqlite3_finalize(q);
    sqlite3_close(db);
    rl_close(r);
    return rc;
}
