/*
 * bench.c - rl's benchmark: options, the list of cases, one fresh database
 * per case in a mkdtemp directory (removed at the end), and main().
 *
 *   bench [--quick | --seconds S] [--only SUBSTR[,SUBSTR...]] [--dir DIR] [--redis URL] [--json]
 *
 * The Redis rows run against --redis URL, else a private redis-server that
 * the bench starts on a free loopback port and stops at the end, else they
 * are skipped (and say so). Every case gets its own key prefix.
 *
 * Prints figures, never pass/fail; see bench/README.md for how to read them.
 */
#include "bench.h"

#include <dirent.h>
#include <rl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define K100 100000
#define M1 1000000

/* The order of the table. Labels are what --only matches and what
 * report.c looks up for the ratios. Fields after busy: redis, prefill,
 * memory_probe, batch, pad, refuse, call, tier, reader_ms. */
static const bench_case cases[] = {
    { "bare-upsert/1p/1key", "bare-upsert", W_BARE, 0, 1, 1, RL_BUSY_SQLITE, 0, 0, 0, 0, 0, 0, 0, 0,
      0 },
    { "bare-upsert/1p/100k", "bare-upsert", W_BARE, 0, 1, K100, RL_BUSY_SQLITE, 0, 0, 0, 0, 0, 0, 0,
      0, 0 },
    /* the same with a blob as big as an rl row (one limit): row size alone */
    { "bare-upsert-90B/1p/100k", "bare+90B", W_BARE, 0, 1, K100, RL_BUSY_SQLITE, 0, 0, 0, 0, 90, 0,
      0, 0, 0 },
    /* the bare table at a million keys: what the WAL and its checkpoints do
     * to a table this size, whatever the row (issue 20's 1M row) */
    { "bare-upsert/1p/1M", "bare-upsert", W_BARE, 0, 1, M1, RL_BUSY_SQLITE, 0, 1, 0, 0, 0, 0, 0, 0,
      0 },
    { "memory/1p/1key", "memory", W_RL, 1, 1, 1, BUSY_NA, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
    { "memory/1p/100k", "memory", W_RL, 1, 1, K100, BUSY_NA, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
    { "sqlite/1p/1key/lock", "sqlite", W_RL, 0, 1, 1, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
    { "sqlite/1p/100k/lock", "sqlite", W_RL, 0, 1, K100, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
    { "sqlite/1p/1M/lock", "sqlite", W_RL, 0, 1, M1, RL_BUSY_LOCK, 0, 1, 1, 0, 0, 0, 0, 0, 0 },
    { "sqlite/4p/1key/lock", "sqlite", W_RL, 0, 4, 1, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
    { "sqlite/4p/1key/sqlite", "sqlite", W_RL, 0, 4, 1, RL_BUSY_SQLITE, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
    { "sqlite/4p/100k/lock", "sqlite", W_RL, 0, 4, K100, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
    /* issue 20: what a running `rlctl watch` costs 4 writers on a full
     * table, against the same writers alone */
    { "sqlite/4p/1M/lock", "sqlite", W_RL, 0, 4, M1, RL_BUSY_LOCK, 0, 1, 0, 0, 0, 0, 0, 0, 0 },
    { "sqlite/4p/1M/lock/watch1s", "sqlite+watch", W_RL, 0, 4, M1, RL_BUSY_LOCK, 0, 1, 0, 0, 0, 0,
      0, 0, 1000 },
    { "sqlite/4p/1M/lock/watch100ms", "sqlite+watch", W_RL, 0, 4, M1, RL_BUSY_LOCK, 0, 1, 0, 0, 0,
      0, 0, 0, 100 },
    /* a runaway client: one key over its limit, every decision refused */
    { "sqlite/1p/1key/refused", "sqlite ref", W_RL, 0, 1, 1, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 1, 0, 0,
      0 },
    { "sqlite/4p/1key/refused", "sqlite ref", W_RL, 0, 4, 1, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 1, 0, 0,
      0 },
    { "bare-upsert/4p/1key", "bare-upsert", W_BARE, 0, 4, 1, RL_BUSY_SQLITE, 0, 0, 0, 0, 0, 0, 0, 0,
      0 },
    { "redis-lua/1p/1key", "redis-lua", W_LUA, 0, 1, 1, BUSY_NA, 1, 0, 0, 0, 0, 0, 0, 0, 0 },
    { "redis-lua/4p/1key", "redis-lua", W_LUA, 0, 4, 1, BUSY_NA, 1, 0, 0, 0, 0, 0, 0, 0, 0 },
    { "redis/1p/1key", "redis", W_RL, 0, 1, 1, BUSY_NA, 1, 0, 0, 0, 0, 0, 0, 0, 0 },
    /* the plain script made to cost the server what rl's script does
     * (12 extra EXISTS calls): what the server's time per decision alone
     * does to the rate and to the shares of processes (issue 18) */
    { "redis-lua+pad/1p/1key", "lua+pad", W_LUA, 0, 1, 1, BUSY_NA, 1, 0, 0, 0, 12, 0, 0, 0, 0 },
    { "redis/4p/1key", "redis", W_RL, 0, 4, 1, BUSY_NA, 1, 0, 0, 0, 0, 0, 0, 0, 0 },
    /* the fleet of issue 18: more processes than cores on one hot key */
    { "redis-lua/8p/1key", "redis-lua", W_LUA, 0, 8, 1, BUSY_NA, 1, 0, 0, 0, 0, 0, 0, 0, 0 },
    { "redis/8p/1key", "redis", W_RL, 0, 8, 1, BUSY_NA, 1, 0, 0, 0, 0, 0, 0, 0, 0 },
    { "redis-lua+pad/8p/1key", "lua+pad", W_LUA, 0, 8, 1, BUSY_NA, 1, 0, 0, 0, 12, 0, 0, 0, 0 },
    { "redis-lua/16p/1key", "redis-lua", W_LUA, 0, 16, 1, BUSY_NA, 1, 0, 0, 0, 0, 0, 0, 0, 0 },
    { "redis/16p/1key", "redis", W_RL, 0, 16, 1, BUSY_NA, 1, 0, 0, 0, 0, 0, 0, 0, 0 },
    { "redis/1p/100k", "redis", W_RL, 0, 1, K100, BUSY_NA, 1, 0, 1, 0, 0, 0, 0, 0, 0 },
    /* rl_wait on a limit it never waits for, and rl_reserve booking ahead
     * with no horizon: the decisions behind rl_wait and rl_reserve */
    /* a sliding window decided by the script, and the agent's lease pair
     * on Redis (begin and settle, each one script call when it can) */
    { "redis-window/1p/1key", "redis win", W_RL, 0, 1, 1, BUSY_NA, 1, 0, 0, 0, 0, 0, 0, T_WINDOW,
      0 },
    { "redis-agent/1p/allow", "redis ag allow", W_RL, 0, 1, 100, BUSY_NA, 1, 0, 0, 0, 0, 0, C_ALLOW,
      T_AGENT, 0 },
    { "redis-agent/1p/lease", "redis ag lease", W_RL, 0, 1, 100, BUSY_NA, 1, 0, 0, 0, 0, 0, C_LEASE,
      T_AGENT, 0 },
    { "redis-agent/4p/lease", "redis ag lease", W_RL, 0, 4, 100, BUSY_NA, 1, 0, 0, 0, 0, 0, C_LEASE,
      T_AGENT, 0 },
    { "redis-wait/1p/1key", "redis wait", W_RL, 0, 1, 1, BUSY_NA, 1, 0, 0, 0, 0, 0, C_WAIT, 0, 0 },
    { "redis-wait/4p/1key", "redis wait", W_RL, 0, 4, 1, BUSY_NA, 1, 0, 0, 0, 0, 0, C_WAIT, 0, 0 },
    { "redis-reserve/1p/1key", "redis rsv", W_RL, 0, 1, 1, BUSY_NA, 1, 0, 0, 0, 0, 0, C_RESERVE, 0,
      0 },
    { "redis-reserve/4p/1key", "redis rsv", W_RL, 0, 4, 1, BUSY_NA, 1, 0, 0, 0, 0, 0, C_RESERVE, 0,
      0 },
    /* the same 100k keys decided once before timing: existing keys only */
    { "redis/1p/100k/warm", "redis warm", W_RL, 0, 1, K100, BUSY_NA, 1, 1, 0, 0, 0, 0, 0, 0, 0 },
    { "sqlite/1p/100k/batch64", "sqlite b64", W_RL, 0, 1, K100, RL_BUSY_LOCK, 0, 0, 0, 64, 0, 0, 0,
      0, 0 },
    { "redis/1p/100k/batch64", "redis b64", W_RL, 0, 1, K100, BUSY_NA, 1, 0, 0, 64, 0, 0, 0, 0, 0 },
    /* issue 20's fleet on SQLite: more processes than cores on one key */
    { "sqlite/8p/1key/lock", "sqlite", W_RL, 0, 8, 1, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
    { "sqlite/16p/1key/lock", "sqlite", W_RL, 0, 16, 1, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
    { "sqlite/32p/1key/lock", "sqlite", W_RL, 0, 32, 1, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
    /* the scheduler alone: as many processes, each a fixed 20 us of CPU
     * per call and no store, so what fairness, p99 and max the machine
     * gives any worker that never waits for another */
    { "spin/8p", "spin", W_SPIN, 0, 8, 1, BUSY_NA, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
    { "spin/16p", "spin", W_SPIN, 0, 16, 1, BUSY_NA, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
    { "spin/32p", "spin", W_SPIN, 0, 32, 1, BUSY_NA, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
    /* the calls an agent makes (T_AGENT: requests, tokens, a streams slot;
     * 100 user keys and one account key), 1 and 4 processes */
    { "agent/1p/allow", "ag allow", W_RL, 0, 1, 100, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0, C_ALLOW,
      T_AGENT, 0 },
    { "agent/4p/allow", "ag allow", W_RL, 0, 4, 100, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0, C_ALLOW,
      T_AGENT, 0 },
    { "agent/1p/acquire", "ag acquire", W_RL, 0, 1, 100, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0, C_ACQUIRE,
      T_AGENT, 0 },
    { "agent/4p/acquire", "ag acquire", W_RL, 0, 4, 100, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0, C_ACQUIRE,
      T_AGENT, 0 },
    { "agent/1p/keys", "ag keys", W_RL, 0, 1, 100, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0, C_KEYS, T_AGENT,
      0 },
    { "agent/4p/keys", "ag keys", W_RL, 0, 4, 100, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0, C_KEYS, T_AGENT,
      0 },
    { "agent/1p/lease", "ag lease", W_RL, 0, 1, 100, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0, C_LEASE,
      T_AGENT, 0 },
    { "agent/4p/lease", "ag lease", W_RL, 0, 4, 100, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0, C_LEASE,
      T_AGENT, 0 },
    /* rl_wait and rl_reserve on SQLite (issue 20 item 1: through the same
     * group-commit queue as rl_allow), as the Redis rows make them */
    { "sqlite-wait/4p/1key", "sqlite wait", W_RL, 0, 4, 1, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0, C_WAIT,
      0, 0 },
    { "sqlite-reserve/4p/1key", "sqlite rsv", W_RL, 0, 4, 1, RL_BUSY_LOCK, 0, 0, 0, 0, 0, 0,
      C_RESERVE, 0, 0 },
    /* bytes per key of a two-limit tier (issue 20's row goal), 100k keys */
    { "sqlite/1p/100k/2limits", "sqlite 2lim", W_RL, 0, 1, K100, RL_BUSY_LOCK, 0, 1, 1, 0, 0, 0,
      C_ALLOW, T_TWO, 0 },
};
#define NCASES (sizeof cases / sizeof cases[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: bench [--quick | --seconds S] [--only SUBSTR] [--dir DIR] [--redis URL]\n"
               "             [--json]\n"
               "  --seconds S   measuring time per case (default 2)\n"
               "  --quick       0.3 s per case\n"
               "  --only SUBSTR run only the cases whose label contains SUBSTR (several:\n"
               "                SUBSTR,SUBSTR,... runs those that contain any of them)\n"
               "                (labels: bare-upsert/1p/1key, sqlite/4p/1key/lock, ...)\n"
               "  --dir DIR     where to make the temporary directory (default /tmp)\n"
               "  --redis URL   Redis server for the Redis rows (redis://HOST:PORT/DB);\n"
               "                default: a private redis-server if one is on PATH\n"
               "  --json        one JSON object instead of the table\n");
}

/* Removes every file in dir (the database, -wal, -shm, -rlshm). */
static void empty_dir(const char *dir)
{
    char path[4400];
    struct dirent *e;
    DIR *d = opendir(dir);
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* Whether any selected case needs Redis: no server is started otherwise. */
/* Whether label contains one of only's comma-separated substrings (NULL:
 * every label does). */
static int selected(const char *label, const char *only)
{
    char part[128];
    const char *p = only, *comma;
    size_t n;
    if (!only)
        return 1;
    for (;;) {
        comma = strchr(p, ',');
        n = comma ? (size_t)(comma - p) : strlen(p);
        if (n > 0 && n < sizeof part) {
            memcpy(part, p, n);
            part[n] = 0;
            if (strstr(label, part))
                return 1;
        }
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

static int need_redis(const char *only)
{
    size_t k;
    for (k = 0; k < NCASES; k++)
        if (cases[k].redis && selected(cases[k].label, only))
            return 1;
    return 0;
}

/* A case's address: the run's URL plus a prefix of its own, so cases do not
 * see each other's keys and can be cleaned up one by one. rl and redis.c
 * both read the last prefix= of the query. */
static void case_url(char *buf, size_t len, const char *url, size_t k)
{
    snprintf(buf, len, "%s%cprefix=rlbench.%ld.%zu:", url, strchr(url, '?') ? '&' : '?',
             (long)getpid(), k + 1);
}

int main(int argc, char **argv)
{
    bench_result res[NCASES];
    bench_env env;
    const char *only = NULL, *base = "/tmp", *redis_url = NULL;
    char dir[4096], path[4200], url[BENCH_URL_MAX], err[BENCH_ERR_MAX], ver[32];
    double secs = 2.0;
    int json = 0, progress, i, have_redis = 0;
    size_t k;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            secs = 0.3;
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            char *end;
            secs = strtod(argv[++i], &end);
            if (*end || !(secs > 0 && secs <= 600)) {
                fprintf(stderr, "bench: --seconds wants a number in (0, 600]\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            base = argv[++i];
        } else if (strcmp(argv[i], "--redis") == 0 && i + 1 < argc) {
            redis_url = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }

    snprintf(dir, sizeof dir, "%s/rlbench.XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror("bench: mkdtemp");
        return 1;
    }
    bench_env_fill(&env, dir, secs);
    progress = !json && isatty(2);

    /* Redis for the Redis rows: the caller's, else a private one. */
    if (need_redis(only)) {
        if (redis_url) {
            snprintf(url, sizeof url, "%s", redis_url);
            have_redis = 1;
        } else if (bench_redis_start(dir, url, sizeof url, err, sizeof err) == 0) {
            have_redis = 2;
        } else {
            snprintf(env.redis, sizeof env.redis, "none: %s; Redis rows skipped", err);
        }
        if (have_redis && bench_redis_check(url, ver, sizeof ver, err, sizeof err) != 0) {
            snprintf(env.redis, sizeof env.redis, "none: %s; Redis rows skipped", err);
            bench_redis_stop();
            have_redis = 0;
        } else if (have_redis) {
            /* Never print a password: only what follows "user:pass@", and
             * not the options (password= may be one). */
            const char *at = strchr(url, '@'), *show = at ? at + 1 : url;
            snprintf(env.redis, sizeof env.redis, "%s redis-server %s at %s%.*s",
                     have_redis == 2 ? "private" : "given", ver, at ? "redis://" : "",
                     (int)strcspn(show, "?"), show);
        }
    }

    /* Untimed warm-up (CPU clocks, page cache, the allocator), discarded,
     * so the first case of the table is not measured cold. */
    snprintf(path, sizeof path, "%s/warmup.db", dir);
    (void)bench_run(&cases[0], path, secs < 0.3 ? secs : 0.3, &res[0]);
    empty_dir(dir);

    for (k = 0; k < NCASES; k++) {
        const bench_case *c = &cases[k];
        memset(&res[k], 0, sizeof res[k]);
        if (!selected(c->label, only))
            continue;
        if (c->redis && !have_redis) {
            res[k].skipped = 1;
            snprintf(res[k].err, sizeof res[k].err, "skipped: no Redis server");
            continue;
        }
        if (progress) {
            fprintf(stderr, "running %-24s\r", c->label);
            fflush(stderr);
        }
        if (c->redis)
            case_url(path, sizeof path, url, k);
        else
            snprintf(path, sizeof path, "%s/case%02zu.db", dir, k + 1);
        (void)bench_run(c, path, secs, &res[k]);
        if (!res[k].ran && !res[k].err[0])
            snprintf(res[k].err, sizeof res[k].err, "did not run");
        /* Measured before the files or keys go: they are what is measured. */
        if (c->memory_probe && res[k].ran)
            bench_probe_memory(c, path, &res[k]);
        if (c->redis)
            bench_redis_cleanup(path);
        empty_dir(dir);
    }
    if (progress)
        fprintf(stderr, "%-40s\r", "");
    bench_redis_stop();
    rmdir(dir);

    if (json)
        bench_report_json(&env, cases, res, NCASES);
    else
        bench_report_text(&env, cases, res, NCASES);
    return 0;
}
