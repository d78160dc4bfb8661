/*
 * report.c - what bench prints: the machine, one table row per case, the
 * ratios the project tracks, and notes (errors, refusals, early stops).
 * Plain ASCII text that pastes into an issue, or one JSON object (--json).
 */
#include "bench.h"

#include <math.h>
#include <rl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

/* ---- machine ------------------------------------------------------------ */

static const char *fs_name(long type)
{
    switch ((unsigned long)type) {
    case 0x01021994ul:
        return "tmpfs";
    case 0xEF53ul:
        return "ext2/3/4";
    case 0x794C7630ul:
        return "overlayfs";
    case 0x58465342ul:
        return "xfs";
    case 0x9123683Eul:
        return "btrfs";
    case 0x2FC12FC1ul:
        return "zfs";
    case 0x6969ul:
        return "nfs";
    case 0x65735546ul:
        return "fuse";
    default:
        return "other";
    }
}

void bench_env_fill(bench_env *e, const char *dir, double secs)
{
    struct utsname u;
    struct statfs sf;
    char line[256];
    FILE *f;
    memset(e, 0, sizeof *e);
    e->nproc = sysconf(_SC_NPROCESSORS_ONLN);
    e->sqlite_version = sqlite3_libversion();
    e->rl_version = rl_version();
    e->dir = dir;
    e->secs = secs;
    snprintf(e->cpu, sizeof e->cpu, "unknown");
    if ((f = fopen("/proc/cpuinfo", "r")) != NULL) {
        while (fgets(line, sizeof line, f)) {
            char *c = strchr(line, ':');
            if (strncmp(line, "model name", 10) == 0 && c) {
                c++;
                while (*c == ' ' || *c == '\t')
                    c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(e->cpu, sizeof e->cpu, "%s", c);
                break;
            }
        }
        fclose(f);
    }
    if (uname(&u) == 0)
        snprintf(e->kernel, sizeof e->kernel, "%s %s %s", u.sysname, u.release, u.machine);
    snprintf(e->fs, sizeof e->fs, "%s", statfs(dir, &sf) == 0 ? fs_name((long)sf.f_type) : "?");
}

/* ---- helpers ------------------------------------------------------------ */

const bench_result *bench_find(const bench_case *cases, const bench_result *res, size_t n,
                               const char *label)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (strcmp(cases[i].label, label) == 0)
            return res[i].ran ? &res[i] : NULL;
    return NULL;
}

static void fmt_ns(char *buf, size_t len, int64_t ns)
{
    if (ns < 1000)
        snprintf(buf, len, "%lldns", (long long)ns);
    else if (ns < 1000000)
        snprintf(buf, len, "%.1fus", (double)ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, len, "%.2fms", (double)ns / 1e6);
    else
        snprintf(buf, len, "%.2fs", (double)ns / 1e9);
}

static void fmt_bytes(char *buf, size_t len, int64_t b)
{
    if (b < 0)
        snprintf(buf, len, "-");
    else if (b < 1024)
        snprintf(buf, len, "%lldB", (long long)b);
    else if (b < 1024 * 1024)
        snprintf(buf, len, "%.1fKiB", (double)b / 1024);
    else
        snprintf(buf, len, "%.1fMiB", (double)b / (1024.0 * 1024));
}

/* 1234567 -> "1,234,567" */
static void fmt_count(char *buf, size_t len, double v)
{
    char raw[32], out[48];
    size_t n, i, o = 0;
    snprintf(raw, sizeof raw, "%.0f", v);
    n = strlen(raw);
    for (i = 0; i < n && o + 2 < sizeof out; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = raw[i];
    }
    out[o] = 0;
    snprintf(buf, len, "%s", out);
}

static const char *busy_name(int busy)
{
    return busy == RL_BUSY_LOCK ? "lock" : busy == RL_BUSY_SQLITE ? "sqlite" : "-";
}

/* Conflicts rl retried on Redis: EVALSHA commits beyond one per decision
 * (the Lua baseline never retries, so its difference is 0). -1 unknown. */
static int64_t conflicts(const bench_case *c, const bench_result *r)
{
    if (!c->redis || !r->ran || r->commits < 0)
        return -1;
    /* one commit per call; a lease pair is two calls, begin and settle */
    return r->commits - (int64_t)r->calls * (c->call == C_LEASE ? 2 : 1);
}

static void fmt_keys(char *buf, size_t len, int nkeys)
{
    if (nkeys >= 1000000 && nkeys % 1000000 == 0)
        snprintf(buf, len, "%dM", nkeys / 1000000);
    else if (nkeys >= 1000 && nkeys % 1000 == 0)
        snprintf(buf, len, "%dk", nkeys / 1000);
    else
        snprintf(buf, len, "%d", nkeys);
}

/* ---- ratios ------------------------------------------------------------- */

enum { M_RATE, M_P99, M_MAX, M_FAIR, M_WAL };

typedef struct ratio_item {
    int m;           /* M_* */
    const char *den; /* NULL: the line's */
    const char *tag; /* shown instead of the metric's name; JSON suffix */
} ratio_item;

typedef struct ratio_line {
    const char *key;  /* JSON name */
    const char *text; /* table label */
    const char *num, *den;
    int n;
    ratio_item it[4];
} ratio_line;

#define RATE_VS(den, tag) \
    {                     \
        M_RATE, den, tag  \
    }
static const ratio_line ratio_lines[] = {
    { "sqlite_over_bare_1p_1key",
      "sqlite 1p 1 key / bare-upsert 1p 1 key",
      "sqlite/1p/1key/lock",
      "bare-upsert/1p/1key",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "sqlite_over_bare_1p_100k",
      "sqlite 1p 100k / bare-upsert 1p 100k",
      "sqlite/1p/100k/lock",
      "bare-upsert/1p/100k",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "sqlite_over_bare90_1p_100k",
      "sqlite 1p 100k / bare-upsert+90B 1p 100k",
      "sqlite/1p/100k/lock",
      "bare-upsert-90B/1p/100k",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "lock_over_sqlitebusy_4p_1key",
      "4p 1 key: ours (lock) / SQLite busy handler",
      "sqlite/4p/1key/lock",
      "sqlite/4p/1key/sqlite",
      4,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    { "sqlite_4p_1key_aggregate_over",
      "4p aggregate decisions/s, sqlite lock 1 key /",
      "sqlite/4p/1key/lock",
      NULL,
      2,
      { RATE_VS("bare-upsert/1p/1key", "bare-upsert 1p"),
        RATE_VS("sqlite/1p/1key/lock", "sqlite 1p") } },
    { "sqlite_4p_100k_aggregate_over",
      "4p aggregate decisions/s, sqlite lock 100k /",
      "sqlite/4p/100k/lock",
      NULL,
      2,
      { RATE_VS("bare-upsert/1p/100k", "bare-upsert 1p"),
        RATE_VS("sqlite/1p/100k/lock", "sqlite 1p") } },
    { "bare_4p_1key_aggregate_over",
      "4p aggregate decisions/s, bare-upsert 1 key /",
      "bare-upsert/4p/1key",
      NULL,
      1,
      { RATE_VS("bare-upsert/1p/1key", "bare-upsert 1p") } },
    { "sqlite_refused_over_admitted_1p_1key",
      "refusals / admissions, sqlite 1p 1 key",
      "sqlite/1p/1key/refused",
      "sqlite/1p/1key/lock",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "sqlite_refused_over_admitted_4p_1key",
      "refusals / admissions, sqlite 4p 1 key",
      "sqlite/4p/1key/refused",
      "sqlite/4p/1key/lock",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "sqlite_1m_over_1key",
      "sqlite 1p 1M keys / sqlite 1p 1 key",
      "sqlite/1p/1M/lock",
      "sqlite/1p/1key/lock",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "bare_1m_over_1key",
      "bare-upsert 1p 1M keys / bare 1p 1 key",
      "bare-upsert/1p/1M",
      "bare-upsert/1p/1key",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "sqlite_1m_over_bare_1m",
      "sqlite 1p 1M keys / bare-upsert 1p 1M",
      "sqlite/1p/1M/lock",
      "bare-upsert/1p/1M",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "sqlite_4p_1m_watch1s_over_alone",
      "4p 1M keys: watch every 1 s / no reader",
      "sqlite/4p/1M/lock/watch1s",
      "sqlite/4p/1M/lock",
      3,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 }, { M_WAL, 0, 0 } } },
    { "sqlite_4p_1m_watch100ms_over_alone",
      "4p 1M keys: watch every 100 ms / no reader",
      "sqlite/4p/1M/lock/watch100ms",
      "sqlite/4p/1M/lock",
      3,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 }, { M_WAL, 0, 0 } } },
    { "sqlite_over_redislua_1p_1key",
      "sqlite 1p 1 key / redis-lua 1p 1 key",
      "sqlite/1p/1key/lock",
      "redis-lua/1p/1key",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "sqlite_over_redislua_4p_1key",
      "sqlite 4p 1 key / redis-lua 4p 1 key",
      "sqlite/4p/1key/lock",
      "redis-lua/4p/1key",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "redis_over_redislua_1p_1key",
      "rl redis 1p 1 key / redis-lua 1p 1 key",
      "redis/1p/1key",
      "redis-lua/1p/1key",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "redis_over_redislua_4p_1key",
      "rl redis 4p 1 key / redis-lua 4p 1 key",
      "redis/4p/1key",
      "redis-lua/4p/1key",
      4,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    { "redis_over_redislua_8p_1key",
      "rl redis 8p 1 key / redis-lua 8p 1 key",
      "redis/8p/1key",
      "redis-lua/8p/1key",
      4,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    /* the padded plain script costs the server what rl's does: against it,
     * what is left of a gap is rl's own (client side, reply size) */
    { "redislua_pad_over_redislua_1p_1key",
      "redis-lua+pad 1p / redis-lua 1p 1 key",
      "redis-lua+pad/1p/1key",
      "redis-lua/1p/1key",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "redis_over_redislua_pad_1p_1key",
      "rl redis 1p / redis-lua+pad 1p 1 key",
      "redis/1p/1key",
      "redis-lua+pad/1p/1key",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "redislua_pad_over_redislua_8p_1key",
      "redis-lua+pad 8p / redis-lua 8p 1 key",
      "redis-lua+pad/8p/1key",
      "redis-lua/8p/1key",
      4,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    { "redis_over_redislua_pad_8p_1key",
      "rl redis 8p / redis-lua+pad 8p 1 key",
      "redis/8p/1key",
      "redis-lua+pad/8p/1key",
      4,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    { "redis_over_redislua_16p_1key",
      "rl redis 16p 1 key / redis-lua 16p 1 key",
      "redis/16p/1key",
      "redis-lua/16p/1key",
      4,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    { "redis_window_over_1key",
      "rl redis 1p: sliding window / GCRA",
      "redis-window/1p/1key",
      "redis/1p/1key",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "redis_agent_lease_over_allow_1p",
      "rl redis agent 1p: lease pairs / rl_allow",
      "redis-agent/1p/lease",
      "redis-agent/1p/allow",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "redis_100k_over_1key",
      "rl redis 1p 100k / rl redis 1p 1 key",
      "redis/1p/100k",
      "redis/1p/1key",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "sqlite_8p_1key_over_1p",
      "sqlite 8p 1 key / sqlite 1p 1 key",
      "sqlite/8p/1key/lock",
      "sqlite/1p/1key/lock",
      4,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    { "sqlite_8p_1key_over_spin",
      "sqlite 8p 1 key / spin 8p (no store)",
      "sqlite/8p/1key/lock",
      "spin/8p",
      3,
      { { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    { "sqlite_16p_1key_over_1p",
      "sqlite 16p 1 key / sqlite 1p 1 key",
      "sqlite/16p/1key/lock",
      "sqlite/1p/1key/lock",
      4,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    { "sqlite_16p_1key_over_spin",
      "sqlite 16p 1 key / spin 16p (no store)",
      "sqlite/16p/1key/lock",
      "spin/16p",
      3,
      { { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    { "sqlite_32p_1key_over_1p",
      "sqlite 32p 1 key / sqlite 1p 1 key",
      "sqlite/32p/1key/lock",
      "sqlite/1p/1key/lock",
      4,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    { "sqlite_32p_1key_over_spin",
      "sqlite 32p 1 key / spin 32p (no store)",
      "sqlite/32p/1key/lock",
      "spin/32p",
      3,
      { { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    { "agent_acquire_over_allow_4p",
      "agent 4p: rl_acquire / rl_allow",
      "agent/4p/acquire",
      "agent/4p/allow",
      4,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    { "agent_keys_over_allow_4p",
      "agent 4p: rl_acquire_keys / rl_allow",
      "agent/4p/keys",
      "agent/4p/allow",
      4,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    { "sqlite_wait_over_allow_4p",
      "sqlite 4p 1 key: rl_wait / rl_allow",
      "sqlite-wait/4p/1key",
      "sqlite/4p/1key/lock",
      4,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    { "sqlite_reserve_over_allow_4p",
      "sqlite 4p 1 key: rl_reserve / rl_allow",
      "sqlite-reserve/4p/1key",
      "sqlite/4p/1key/lock",
      4,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    { "agent_lease_over_allow_4p",
      "agent 4p: lease pairs / rl_allow",
      "agent/4p/lease",
      "agent/4p/allow",
      4,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 }, { M_MAX, 0, 0 }, { M_FAIR, 0, 0 } } },
    { "agent_lease_over_allow_1p",
      "agent 1p: lease pairs / rl_allow",
      "agent/1p/lease",
      "agent/1p/allow",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "redis_100k_warm_over_1key",
      "rl redis 1p 100k existing / rl redis 1p 1 key",
      "redis/1p/100k/warm",
      "redis/1p/1key",
      2,
      { { M_RATE, 0, 0 }, { M_P99, 0, 0 } } },
    { "sqlite_batch64_over_single_100k",
      "sqlite batches of 64 / rl_allow, 1p 100k",
      "sqlite/1p/100k/batch64",
      "sqlite/1p/100k/lock",
      1,
      { { M_RATE, 0, 0 } } },
    { "sqlite_batch64_over_bare_100k",
      "sqlite batches of 64 / bare-upsert, 1p 100k",
      "sqlite/1p/100k/batch64",
      "bare-upsert/1p/100k",
      1,
      { { M_RATE, 0, 0 } } },
    { "redis_batch64_over_single_100k",
      "rl redis batches of 64 / rl_allow, 1p 100k",
      "redis/1p/100k/batch64",
      "redis/1p/100k",
      1,
      { { M_RATE, 0, 0 } } },
    { "redis_batch64_over_redislua_1p",
      "rl redis batches of 64 / redis-lua 1p",
      "redis/1p/100k/batch64",
      "redis-lua/1p/1key",
      1,
      { { M_RATE, 0, 0 } } },
};
#define NRATIOS (sizeof ratio_lines / sizeof ratio_lines[0])

static const char *metric_name(int m)
{
    return m == M_RATE  ? "decisions/s"
           : m == M_P99 ? "p99"
           : m == M_MAX ? "max"
           : m == M_WAL ? "WAL max"
                        : "fairness";
}

static double ratio(const bench_result *a, const bench_result *b, int m)
{
    double x, y;
    if (!a || !b)
        return NAN;
    x = m == M_RATE  ? a->rate
        : m == M_P99 ? (double)a->p99
        : m == M_WAL ? (double)a->wal_max
                     : (double)a->max;
    y = m == M_RATE  ? b->rate
        : m == M_P99 ? (double)b->p99
        : m == M_WAL ? (double)b->wal_max
                     : (double)b->max;
    return y > 0 ? x / y : NAN;
}

/* ---- text --------------------------------------------------------------- */

/* The watch-equivalent reader of the reader_ms cases: how often it
 * refreshed and what one refresh took, beside the writers it ran with. */
static void report_readers(const bench_case *cases, const bench_result *res, size_t n)
{
    char mean[24], mx[24];
    size_t i;
    int head = 0;
    for (i = 0; i < n; i++) {
        const bench_case *c = &cases[i];
        const bench_result *r = &res[i];
        if (!r->ran || c->reader_ms <= 0 || r->reader_refreshes < 0)
            continue;
        if (!head++)
            printf("\nwatch-equivalent reader (totals and keys, as rlctl watch reads them)\n");
        fmt_ns(mean, sizeof mean, r->reader_mean_ns);
        fmt_ns(mx, sizeof mx, r->reader_max_ns);
        printf("  %-30s every %d ms: %lld refreshes, %s each (mean), %s worst; CPU %.1f%% of one"
               " core\n",
               c->label, c->reader_ms, (long long)r->reader_refreshes, mean, mx,
               r->secs > 0 ? 100.0 * (double)r->reader_cpu_ns / 1e9 / r->secs : 0.0);
    }
}

/* Bytes per key in the database file, memory of one handle, and Redis
 * memory per key, from the memory_probe cases. */
static void report_memory(const bench_case *cases, const bench_result *res, size_t n)
{
    char a[24], b[24], keys[16];
    size_t i;
    int head = 0;
    for (i = 0; i < n; i++) {
        const bench_case *c = &cases[i];
        const bench_result *r = &res[i];
        if (!r->ran || (!c->memory_probe && r->fill_ns < 0))
            continue;
        if (!head++)
            printf("\nmemory\n");
        fmt_keys(keys, sizeof keys, c->nkeys);
        if (r->fill_ns >= 0)
            printf("  %-22s %s keys written before timing in %.1f s (untimed)\n", c->label, keys,
                   (double)r->fill_ns / 1e9);
        if (r->file_bytes >= 0) {
            fmt_bytes(a, sizeof a, r->file_bytes);
            printf("  %-22s database file %s after a checkpoint = %.1f bytes/key\n", c->label, a,
                   (double)r->file_bytes / c->nkeys);
        }
        if (r->redis_mem_delta >= 0 && r->redis_keys_delta > 0) {
            fmt_bytes(a, sizeof a, r->redis_mem_delta);
            printf("  %-22s Redis used_memory +%s for +%lld Redis keys = %.1f bytes/key\n",
                   c->label, a, (long long)r->redis_keys_delta,
                   (double)r->redis_mem_delta / (double)r->redis_keys_delta);
        }
        if (r->rss_open >= 0) {
            fmt_bytes(a, sizeof a, r->rss_open);
            fmt_bytes(b, sizeof b, r->rss_base);
            printf("  %-22s VmRSS of a fresh process with a %s handle open after %d decisions:"
                   " %s (%s before rl_open)\n",
                   c->label, c->store, BENCH_PROBE_DECISIONS, a, b);
        }
    }
}

/* What the optimistic transactions cost on Redis: commits per decision. */
static void report_redis(const bench_case *cases, const bench_result *res, size_t n)
{
    char a[48], b[48], d[48];
    size_t i;
    int head = 0;
    for (i = 0; i < n; i++) {
        const bench_case *c = &cases[i];
        const bench_result *r = &res[i];
        int64_t x = conflicts(c, r);
        if (x < 0 && !(c->redis && r->ran))
            continue;
        if (!head++)
            printf("\nredis commits (EVALSHA calls from start to end, INFO commandstats)\n");
        if (r->commits < 0) {
            printf("  %-22s n/a\n", c->label);
            continue;
        }
        fmt_count(a, sizeof a, (double)r->commits);
        fmt_count(b, sizeof b, (double)r->n);
        fmt_count(d, sizeof d, (double)(x > 0 ? x : 0));
        printf("  %-22s %s EVALSHA for %s decisions: %s conflicts retried (%.3f per decision),"
               " %llu RL_EBUSY, %.1f us of server time per EVALSHA\n",
               c->label, a, b, d, r->n ? (double)x / (double)r->n : 0.0,
               (unsigned long long)r->ebusy,
               r->commits > 0 && r->server_usec >= 0 ? (double)r->server_usec / (double)r->commits
                                                     : 0.0);
    }
}

/* Where the shares of a multi-process case come from: if the workers'
 * decisions per CPU second are alike while their CPU times are not, the
 * scheduler's sharing of the cores made the unfairness, not rl. */
static void report_cpu(const bench_case *cases, const bench_result *res, size_t n)
{
    size_t i;
    int head = 0;
    for (i = 0; i < n; i++) {
        const bench_case *c = &cases[i];
        const bench_result *r = &res[i];
        if (!r->ran || c->nproc < 2 || r->n == 0 || r->cpu_max_ns <= 0)
            continue;
        if (!head++)
            printf("\nworkers' CPU in the timed window (processes > 1)\n"
                   "  %-30s %9s %9s %9s %11s %13s\n",
                   "case", "fair", "cpu fair", "dec/cpu", "cpu/dec", "preempt/1k");
        printf("  %-30s %9.2f %9.2f %9.2f %9.1fus %13.1f\n", c->label, r->fairness,
               (double)r->cpu_min_ns / (double)r->cpu_max_ns,
               r->per_cpu_max > 0 ? r->per_cpu_min / r->per_cpu_max : 0.0,
               (double)r->cpu_total_ns / 1e3 / (double)r->n,
               1000.0 * (double)r->ivcsw / (double)r->n);
    }
    if (head)
        printf("  (fair: decisions of the slowest / the fastest worker; cpu fair: the same of\n"
               "  CPU time; dec/cpu: of decisions per CPU second; cpu/dec: all workers' CPU\n"
               "  per decision; preempt/1k: involuntary context switches per 1000 decisions)\n");
}

void bench_report_text(const bench_env *e, const bench_case *cases, const bench_result *res,
                       size_t n)
{
    char rate[48], p50[24], p99[24], mx[24], wal[24], fair[16], keys[16], errs[24];
    size_t i;
    int j, notes = 0;

    printf("rl bench: rl %s, SQLite %s, nproc %ld, %s, %s\n", e->rl_version, e->sqlite_version,
           e->nproc, e->cpu, e->kernel);
    printf("db: fresh file per case in %s (%s), %.1f s per case, limit 1e9/s burst 1e9 "
           "(every decision admitted and written; the refused cases: 1 per hour)\n",
           e->dir, e->fs, e->secs);
    if (e->redis[0])
        printf("redis: %s%s\n", e->redis,
               strncmp(e->redis, "none", 4) != 0 ? ", a key prefix per case" : "");
    printf("\n");
    printf("%-12s %5s %5s %6s %12s %8s %8s %8s %5s %8s %6s\n", "store", "procs", "keys", "busy",
           "decisions/s", "p50", "p99", "max", "fair", "WAL max", "errors");
    for (i = 0; i < n; i++) {
        const bench_case *c = &cases[i];
        const bench_result *r = &res[i];
        if (!r->ran && !r->err[0])
            continue; /* not selected */
        fmt_keys(keys, sizeof keys, c->nkeys);
        if (!r->ran) {
            printf("%-12s %5d %5s %6s %12s  (%s)\n", c->store, c->nproc, keys, busy_name(c->busy),
                   "-", r->skipped ? "skipped: no Redis server" : "failed: see notes");
            continue;
        }
        fmt_count(rate, sizeof rate, r->rate);
        fmt_ns(p50, sizeof p50, r->p50);
        fmt_ns(p99, sizeof p99, r->p99);
        fmt_ns(mx, sizeof mx, r->max);
        fmt_bytes(wal, sizeof wal, r->wal_max);
        if (c->nproc > 1)
            snprintf(fair, sizeof fair, "%.2f", r->fairness);
        else
            snprintf(fair, sizeof fair, "-");
        snprintf(errs, sizeof errs, "%llu", (unsigned long long)r->errors);
        printf("%-12s %5d %5s %6s %12s %8s %8s %8s %5s %8s %6s\n", c->store, c->nproc, keys,
               busy_name(c->busy), rate, p50, p99, mx, fair, wal, errs);
    }
    printf("(b64 rows: rl_allow_batch of 64 random keys per call; decisions/s counts "
           "decisions, p50/p99/max are per call)\n");

    printf("\nratios (x = first / second; decisions/s above 1 and latency below 1 favour the "
           "first)\n");
    for (i = 0; i < NRATIOS; i++) {
        const ratio_line *l = &ratio_lines[i];
        const bench_result *a = bench_find(cases, res, n, l->num);
        printf("  %-46s", l->text);
        for (j = 0; j < l->n; j++) {
            const ratio_item *it = &l->it[j];
            const bench_result *b = bench_find(cases, res, n, it->den ? it->den : l->den);
            const char *name = it->tag ? it->tag : metric_name(it->m);
            double v = ratio(a, b, it->m);
            if (it->m == M_FAIR) {
                if (a && b)
                    printf("  fairness %.2f vs %.2f", a->fairness, b->fairness);
                else
                    printf("  fairness n/a");
            } else if (isnan(v)) {
                printf("  %s n/a", name);
            } else {
                printf("  %s %.2fx", name, v);
            }
        }
        printf("\n");
    }

    report_memory(cases, res, n);
    report_readers(cases, res, n);
    report_redis(cases, res, n);
    report_cpu(cases, res, n);

    for (i = 0; i < n; i++) {
        const bench_result *r = &res[i];
        if (!r->ran && !r->err[0])
            continue;
        if (r->skipped) {
            continue; /* its row and the header say why */
        } else if (r->errors || r->refused || r->capped || r->err[0]) {
            if (!notes++)
                printf("\nnotes\n");
            printf("  %s: %llu errors (%llu RL_EBUSY), %llu refused%s%s%s\n", cases[i].label,
                   (unsigned long long)r->errors, (unsigned long long)r->ebusy,
                   (unsigned long long)r->refused,
                   r->capped ? ", a worker filled its sample array and stopped early" : "",
                   r->err[0] ? "; first: " : "", r->err);
        }
    }
}

/* ---- JSON --------------------------------------------------------------- */

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void json_num(double v)
{
    if (isnan(v))
        printf("null");
    else
        printf("%.4g", v);
}

static void json_opt(const char *name, int64_t v)
{
    if (v < 0)
        printf(",\"%s\":null", name);
    else
        printf(",\"%s\":%lld", name, (long long)v);
}

void bench_report_json(const bench_env *e, const bench_case *cases, const bench_result *res,
                       size_t n)
{
    size_t i;
    int j, first = 1;
    printf("{\"machine\":{\"nproc\":%ld,\"sqlite\":", e->nproc);
    json_str(e->sqlite_version);
    printf(",\"rl\":");
    json_str(e->rl_version);
    printf(",\"cpu\":");
    json_str(e->cpu);
    printf(",\"kernel\":");
    json_str(e->kernel);
    printf(",\"fs\":");
    json_str(e->fs);
    printf(",\"redis\":");
    json_str(e->redis);
    printf("},\"seconds_per_case\":%.3f,\"cases\":[", e->secs);
    for (i = 0; i < n; i++) {
        const bench_case *c = &cases[i];
        const bench_result *r = &res[i];
        if (!r->ran && !r->err[0])
            continue;
        printf("%s\n{\"label\":", first ? "" : ",");
        first = 0;
        json_str(c->label);
        printf(",\"store\":");
        json_str(c->store);
        printf(",\"procs\":%d,\"keys\":%d,\"busy\":", c->nproc, c->nkeys);
        json_str(busy_name(c->busy));
        printf(",\"ran\":%s,\"decisions\":%llu,\"seconds\":%.4f,\"decisions_per_s\":%.1f,"
               "\"p50_ns\":%lld,\"p99_ns\":%lld,\"max_ns\":%lld,\"per_proc_min\":%llu,"
               "\"per_proc_max\":%llu,\"fairness\":%.4f,\"wal_max_bytes\":%lld,\"errors\":%llu,"
               "\"refused\":%llu,\"capped\":%s,\"error\":",
               r->ran ? "true" : "false", (unsigned long long)r->n, r->secs, r->rate,
               (long long)r->p50, (long long)r->p99, (long long)r->max,
               (unsigned long long)(r->ran ? r->per_min : 0), (unsigned long long)r->per_max,
               r->fairness, (long long)r->wal_max, (unsigned long long)r->errors,
               (unsigned long long)r->refused, r->capped ? "true" : "false");
        json_str(r->err);
        printf(",\"skipped\":%s,\"ebusy\":%llu", r->skipped ? "true" : "false",
               (unsigned long long)r->ebusy);
        /* -1 in the result means not measured: null here. */
        json_opt("fill_ns", r->fill_ns);
        json_opt("redis_evalsha_calls", r->commits);
        json_opt("redis_server_usec", r->server_usec);
        json_opt("redis_conflicts", conflicts(c, r));
        json_opt("redis_used_memory_delta", r->redis_mem_delta);
        json_opt("redis_keys_delta", r->redis_keys_delta);
        json_opt("db_file_bytes", r->file_bytes);
        printf(",\"db_file_bytes_per_key\":");
        json_num(r->file_bytes >= 0 ? (double)r->file_bytes / c->nkeys : NAN);
        printf(",\"redis_bytes_per_key\":");
        json_num(r->redis_mem_delta >= 0 && r->redis_keys_delta > 0
                     ? (double)r->redis_mem_delta / (double)r->redis_keys_delta
                     : NAN);
        json_opt("rss_before_open", r->rss_base);
        json_opt("rss_handle_open", r->rss_open);
        json_opt("reader_refreshes", r->reader_refreshes);
        json_opt("reader_mean_ns", r->reader_mean_ns);
        json_opt("reader_max_ns", r->reader_max_ns);
        json_opt("reader_cpu_ns", r->reader_cpu_ns);
        json_opt("cpu_total_ns", r->ran ? r->cpu_total_ns : -1);
        json_opt("cpu_min_ns", r->ran ? r->cpu_min_ns : -1);
        json_opt("cpu_max_ns", r->ran ? r->cpu_max_ns : -1);
        json_opt("involuntary_switches", r->ran ? r->ivcsw : -1);
        printf("}");
    }
    printf("\n],\"ratios\":{");
    first = 1;
    for (i = 0; i < NRATIOS; i++) {
        const ratio_line *l = &ratio_lines[i];
        const bench_result *a = bench_find(cases, res, n, l->num);
        for (j = 0; j < l->n; j++) {
            static const char *const suffix[] = { "rate", "p99", "max", "fairness", "wal" };
            const ratio_item *it = &l->it[j];
            const bench_result *b = bench_find(cases, res, n, it->den ? it->den : l->den);
            printf("%s\n\"%s_", first ? "" : ",", l->key);
            if (it->tag) {
                const char *t;
                for (t = it->tag; *t; t++)
                    putchar(*t == ' ' || *t == '-' ? '_' : *t);
            } else {
                fputs(suffix[it->m], stdout);
            }
            if (it->m == M_FAIR) {
                printf("_first\":");
                json_num(a ? a->fairness : NAN);
                printf(",\n\"%s_fairness_second\":", l->key);
                json_num(b ? b->fairness : NAN);
            } else {
                printf("\":");
                json_num(ratio(a, b, it->m));
            }
            first = 0;
        }
    }
    printf("\n}}\n");
}
