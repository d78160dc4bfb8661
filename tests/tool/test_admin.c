/*
 * test_admin.c - the administration API behind rlctl (core/admin.c), run
 * against the in-memory store and a SQLite file alike: rl_reset_match,
 * rl_prune, rl_doctor, rl_export and rl_import.
 *
 * What it pins down: selections by glob and by resolved tier, assignments
 * kept, walks longer than one batch, dry runs that count without changing;
 * prune keeping anything with spent, held or cooled-down buckets, recent
 * use or an assigned tier; prune reclaiming leases that expired or whose
 * owner died, and doctor counting them; doctor's checks and their
 * statuses; an export
 * that imports back to the same export byte for byte (tiers of both kinds,
 * rules, settings, assignments, slots of every kind, leases), and imports
 * that fail on every kind of bad input while changing nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "rl.h"
#include "../common/stores.h"

typedef struct fixture {
    int sqlite; /* STORE_* */
    char dir[64];
    char path[512];
    int64_t now;
    rl *r;
} fixture;

static int64_t wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
}

static int64_t fake_clock(void *ctx)
{
    return ((fixture *)ctx)->now;
}

static int open_at(fixture *f, const char *path, rl **out)
{
    rl_options o = RL_OPTIONS_INIT;
    o.clock = fake_clock;
    o.clock_ctx = f;
    return rl_open(out, path, &o);
}

static int setup(void **state, int kind)
{
    fixture *f = calloc(1, sizeof *f);
    f->sqlite = kind;
    /* The handle's clock starts an hour back; tests move it as they need. */
    f->now = wall() - RL_HOUR;
    strcpy(f->dir, "/tmp/rl_test_admin.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(test_store_path(kind, f->dir, f->path, sizeof f->path), 0);
    assert_int_equal(open_at(f, f->path, &f->r), RL_OK);
    *state = f;
    return 0;
}

static int setup_mem(void **state)
{
    return setup(state, STORE_MEM);
}
static int setup_sqlite(void **state)
{
    return setup(state, STORE_SQLITE);
}
static int setup_redis(void **state)
{
    return setup(state, STORE_REDIS);
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[160];
    rl_close(f->r);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void allow(rl *r, const char *key, int64_t cost)
{
    rl_result res;
    assert_int_equal(rl_allow(r, key, cost, &res), RL_OK);
}

static int exists(rl *r, const char *key)
{
    rl_key_stats st;
    assert_int_equal(rl_stats(r, key, &st), RL_OK);
    return st.exists;
}

static void two_tiers(rl *r)
{
    static const rl_limit free_l[] = { RL_LIMIT("rps", NULL, 10, RL_SECOND, 10) };
    static const rl_limit pro_l[] = { RL_LIMIT("rpm", NULL, 600, RL_MINUTE, 50),
                                      RL_CONCURRENT("streams", "streams", 2) };
    assert_int_equal(rl_tier_set(r, "default", free_l, 1), RL_OK);
    assert_int_equal(rl_tier_set(r, "pro", pro_l, 2), RL_OK);
}

/* ---- rl_reset_match ----------------------------------------------------- */

static void test_reset_match(void **state)
{
    fixture *f = *state;
    rl_key_stats st;
    int64_t n = -1;
    two_tiers(f->r);
    allow(f->r, "user:a", 3);
    allow(f->r, "user:b", 1);
    allow(f->r, "ip:1", 1);
    assert_int_equal(rl_key_assign(f->r, "user:c", "pro"), RL_OK);
    allow(f->r, "user:c", 5);

    /* a dry run counts and changes nothing */
    assert_int_equal(rl_reset_match(f->r, "user:*", NULL, 1, &n), RL_OK);
    assert_int_equal(n, 3);
    assert_true(exists(f->r, "user:a"));

    /* by tier: only user:c resolves to pro; its assignment stays */
    assert_int_equal(rl_reset_match(f->r, NULL, "pro", 0, &n), RL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(rl_stats(f->r, "user:c", &st), RL_OK);
    assert_int_equal(st.allowed, 0);
    assert_string_equal(st.tier, "pro");
    assert_int_equal(st.tier_source, RL_TIER_ASSIGNED);
    assert_int_equal(st.limits[0].remaining, 50);

    /* by glob and tier together */
    assert_int_equal(rl_reset_match(f->r, "user:*", "default", 0, &n), RL_OK);
    assert_int_equal(n, 2);
    assert_false(exists(f->r, "user:a"));
    assert_false(exists(f->r, "user:b"));
    assert_true(exists(f->r, "ip:1"));

    /* everything */
    assert_int_equal(rl_reset_match(f->r, NULL, NULL, 0, &n), RL_OK);
    assert_int_equal(n, 2); /* ip:1, and user:c's assignment row */
    assert_false(exists(f->r, "ip:1"));
    assert_int_equal(rl_stats(f->r, "user:c", &st), RL_OK);
    assert_string_equal(st.tier, "pro");

    assert_int_equal(rl_reset_match(f->r, "bad\x01", NULL, 0, &n), RL_EINVAL);
    assert_int_equal(rl_reset_match(f->r, NULL, "no tier!", 0, &n), RL_EINVAL);
    assert_int_equal(rl_reset_match(f->r, "nothing*", NULL, 0, NULL), RL_OK);
}

static void test_reset_match_many_batches(void **state)
{
    fixture *f = *state;
    rl_totals t;
    char key[32];
    int64_t n = 0;
    int i;
    two_tiers(f->r);
    for (i = 0; i < 700; i++) {
        snprintf(key, sizeof key, "k:%04d", i);
        allow(f->r, key, 1);
    }
    allow(f->r, "other", 1);
    assert_int_equal(rl_reset_match(f->r, "k:*", NULL, 1, &n), RL_OK);
    assert_int_equal(n, 700);
    assert_int_equal(rl_reset_match(f->r, "k:*", NULL, 0, &n), RL_OK);
    assert_int_equal(n, 700);
    assert_int_equal(rl_totals_get(f->r, &t), RL_OK);
    assert_int_equal(t.keys, 1);
}

/* ---- rl_prune ------------------------------------------------------------- */

static void test_prune(void **state)
{
    fixture *f = *state;
    rl_lease lease;
    rl_result res;
    rl_cost stream = { "streams", 1 };
    int64_t n = -1, now = wall();
    two_tiers(f->r);

    /* an hour ago, refilled since: pruned */
    allow(f->r, "old:full", 10);
    /* an hour ago but assigned: kept */
    assert_int_equal(rl_key_assign(f->r, "old:assigned", "default"), RL_OK);
    allow(f->r, "old:assigned", 1);
    /* an hour ago, but a lease still holds a stream: kept */
    assert_int_equal(rl_key_assign(f->r, "old:lease", "pro"), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "old:lease", &stream, 1, 2 * RL_HOUR, &lease, &res),
                     RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_key_assign(f->r, "old:lease", NULL), RL_OK);
    assert_int_equal(rl_key_assign(f->r, "old:lease", "pro"), RL_OK);
    /* an hour ago, with a cool-down for another hour: kept */
    allow(f->r, "old:cool", 1);
    assert_int_equal(rl_penalize(f->r, "old:cool", NULL, 2 * RL_HOUR), RL_OK);
    /* ten seconds ago, refilled since: kept unless idle is shorter */
    f->now = now - 10 * RL_SECOND;
    allow(f->r, "recent:full", 10);
    /* now, bucket spent: kept whatever the idle time */
    f->now = now;
    allow(f->r, "now:spent", 10);

    assert_int_equal(rl_prune(f->r, RL_MINUTE, 1, &n), RL_OK);
    assert_int_equal(n, 1);
    assert_true(exists(f->r, "old:full"));
    assert_int_equal(rl_prune(f->r, RL_MINUTE, 0, &n), RL_OK);
    assert_int_equal(n, 1);
    assert_false(exists(f->r, "old:full"));
    assert_true(exists(f->r, "old:assigned"));
    assert_true(exists(f->r, "old:lease"));
    assert_true(exists(f->r, "old:cool"));
    assert_true(exists(f->r, "recent:full"));
    assert_true(exists(f->r, "now:spent"));

    assert_int_equal(rl_prune(f->r, 5 * RL_SECOND, 0, &n), RL_OK);
    assert_int_equal(n, 1);
    assert_false(exists(f->r, "recent:full"));
    assert_true(exists(f->r, "now:spent"));

    /* the lease ends: its stream comes back, and the key can go */
    assert_int_equal(rl_lease_cancel(f->r, &lease), RL_OK);
    assert_int_equal(rl_key_assign(f->r, "old:lease", NULL), RL_OK);
    assert_int_equal(rl_prune(f->r, RL_MINUTE, 0, &n), RL_OK);
    assert_true(n >= 1);
    assert_false(exists(f->r, "old:lease"));

    assert_int_equal(rl_prune(f->r, -1, 0, &n), RL_EINVAL);
}

typedef struct lease_count {
    int n, live;
} lease_count;

static int count_lease(void *ctx, const rl_lease_info *l)
{
    lease_count *c = ctx;
    c->n++;
    c->live += l->live != 0;
    return 0;
}

static lease_count leases(rl *r, const char *key)
{
    lease_count c = { 0, 0 };
    assert_int_equal(rl_leases_list(r, key, count_lease, &c), RL_OK);
    return c;
}

/* A child process that takes a lease of one stream on key for an hour;
 * killed with SIGKILL and reaped before this returns. */
static void lease_and_die(fixture *f, const char *key)
{
    int fd[2], status;
    char c = 0;
    pid_t pid;
    assert_int_equal(pipe(fd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rl_cost one = { "streams", 1 };
        rl_lease l;
        rl_result res;
        rl *r = NULL;
        close(fd[0]);
        if (open_at(f, f->path, &r) != RL_OK ||
            rl_lease_begin(r, key, &one, 1, RL_HOUR, &l, &res) != RL_OK || !res.allowed)
            _exit(90);
        if (write(fd[1], "y", 1) != 1)
            _exit(91);
        for (;;)
            pause();
    }
    close(fd[1]);
    assert_int_equal(read(fd[0], &c, 1), 1);
    close(fd[0]);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
}

/* Leases past their TTL, and on a shared store those of a killed process,
 * hold their slots until a lease on the same key reclaims them: prune
 * reclaims them everywhere (a dry run changes nothing), and a key they
 * alone kept from being pruned goes in the same call. */
static void test_prune_reclaims_leases(void **state)
{
    fixture *f = *state;
    rl_cost stream = { "streams", 1 };
    rl_lease a, b, live;
    rl_result res;
    rl_key_stats st;
    lease_count c;
    int64_t n = -1;
    int shared = f->sqlite != STORE_MEM;
    two_tiers(f->r);
    assert_int_equal(rl_key_assign(f->r, "s:full", "pro"), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "s:full", &stream, 1, 10 * RL_SECOND, &a, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_begin(f->r, "s:full", &stream, 1, 10 * RL_SECOND, &b, &res), RL_OK);
    assert_true(res.allowed);
    /* held by a lease that lives on: kept */
    assert_int_equal(rl_key_assign(f->r, "s:live", "pro"), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "s:live", &stream, 1, 2 * RL_HOUR, &live, &res), RL_OK);
    assert_true(res.allowed);
    /* an idle key whose only hold is an expired lease: reclaimed, then pruned */
    assert_int_equal(rl_key_assign(f->r, "s:idle", "pro"), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "s:idle", &stream, 1, 10 * RL_SECOND, &a, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_key_assign(f->r, "s:idle", NULL), RL_OK);
    if (shared) {
        assert_int_equal(rl_key_assign(f->r, "s:dead", "pro"), RL_OK);
        lease_and_die(f, "s:dead");
    }
    f->now += 20 * RL_SECOND;
    c = leases(f->r, NULL);
    assert_int_equal(c.n, 4 + shared);
    assert_int_equal(c.live, 1);

    assert_int_equal(rl_prune(f->r, 10 * RL_SECOND, 1, &n), RL_OK);
    assert_int_equal(n, 1); /* s:idle, once its lease is reclaimed */
    assert_int_equal(leases(f->r, NULL).n, 4 + shared);
    assert_true(exists(f->r, "s:idle"));

    assert_int_equal(rl_prune(f->r, 10 * RL_SECOND, 0, &n), RL_OK);
    assert_int_equal(n, 1);
    c = leases(f->r, NULL);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.live, 1);
    assert_int_equal(leases(f->r, "s:live").n, 1);
    assert_false(exists(f->r, "s:idle"));
    assert_true(exists(f->r, "s:full"));
    assert_true(exists(f->r, "s:live"));
    /* the slots are free in the stored state, not only as readers show it */
    assert_int_equal(rl_stats(f->r, "s:full", &st), RL_OK);
    assert_int_equal(st.limits[1].in_flight, 0);
    assert_int_equal(rl_stats(f->r, "s:live", &st), RL_OK);
    assert_int_equal(st.limits[1].in_flight, 1);
    if (shared) {
        assert_int_equal(rl_stats(f->r, "s:dead", &st), RL_OK);
        assert_int_equal(st.limits[1].in_flight, 0);
    }
    /* nothing left to reclaim; a settle of a reclaimed lease finds nothing */
    assert_int_equal(rl_prune(f->r, RL_HOUR, 0, &n), RL_OK);
    assert_int_equal(leases(f->r, NULL).n, 1);
    assert_int_equal(rl_lease_settle(f->r, &b, &stream, 1), RL_ENOTFOUND);
    assert_int_equal(rl_lease_settle(f->r, &live, &stream, 1), RL_OK);
}

/* ---- rl_doctor ------------------------------------------------------------ */

typedef struct checks {
    size_t n;
    char name[32][32];
    int status[32];
    char detail[32][512];
} checks;

static int collect_check(void *ctx, const char *check, int status, const char *detail)
{
    checks *c = ctx;
    if (c->n < 32) {
        snprintf(c->name[c->n], sizeof c->name[c->n], "%s", check);
        snprintf(c->detail[c->n], sizeof c->detail[c->n], "%s", detail);
        c->status[c->n] = status;
        c->n++;
    }
    return 0;
}

static int status_of(const checks *c, const char *name)
{
    size_t i;
    for (i = 0; i < c->n; i++)
        if (strcmp(c->name[i], name) == 0)
            return c->status[i];
    fail_msg("no check named '%s'", name);
    return -1;
}

static int stop_at_two(void *ctx, const char *check, int status, const char *detail)
{
    (void)check;
    (void)status;
    (void)detail;
    return ++*(int *)ctx == 2 ? 42 : 0;
}

static void test_doctor(void **state)
{
    fixture *f = *state;
    checks c;
    int calls = 0;
    size_t i;
    two_tiers(f->r);
    allow(f->r, "k", 1);
    memset(&c, 0, sizeof c);
    assert_int_equal(rl_doctor(f->r, collect_check, &c), RL_OK);
    if (f->sqlite == STORE_MEM) {
        assert_int_equal(status_of(&c, "store"), RL_CHECK_OK);
    } else if (f->sqlite == STORE_REDIS) { /* the test server runs without persistence */
        assert_int_equal(status_of(&c, "store"), RL_CHECK_OK);
        assert_int_equal(status_of(&c, "eviction"), RL_CHECK_OK);
        assert_int_equal(status_of(&c, "persistence"), RL_CHECK_WARN);
    } else {
        for (i = 0; i < c.n; i++)
            assert_true(c.status[i] == RL_CHECK_OK || strcmp(c.name[i], "filesystem") == 0);
        assert_int_equal(status_of(&c, "journal mode"), RL_CHECK_OK);
        assert_int_equal(status_of(&c, "synchronous"), RL_CHECK_OK);
        assert_int_equal(status_of(&c, "busy timeout"), RL_CHECK_OK);
        assert_int_equal(status_of(&c, "schema"), RL_CHECK_OK);
        assert_int_equal(status_of(&c, "integrity"), RL_CHECK_OK);
        assert_int_equal(status_of(&c, "permissions"), RL_CHECK_OK);
        assert_int_equal(status_of(&c, "side files"), RL_CHECK_OK);
        status_of(&c, "filesystem");
    }
    assert_int_equal(status_of(&c, "policy"), RL_CHECK_OK);
    assert_int_equal(status_of(&c, "bucket states"), RL_CHECK_OK);
    assert_int_equal(status_of(&c, "assignments"), RL_CHECK_OK);
    assert_int_equal(rl_doctor(f->r, stop_at_two, &calls), 42);
    assert_int_equal(rl_doctor(f->r, NULL, NULL), RL_EINVAL);
}

static const char *detail_of(const checks *c, const char *name)
{
    size_t i;
    for (i = 0; i < c->n; i++)
        if (strcmp(c->name[i], name) == 0)
            return c->detail[i];
    fail_msg("no check named '%s'", name);
    return NULL;
}

/* Leases that expired or whose owner died are a warning, with the fix. */
static void test_doctor_counts_reclaimable_leases(void **state)
{
    fixture *f = *state;
    rl_cost stream = { "streams", 1 };
    rl_lease a, b;
    rl_result res;
    checks c;
    two_tiers(f->r);
    assert_int_equal(rl_key_assign(f->r, "s:1", "pro"), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "s:1", &stream, 1, 10 * RL_SECOND, &a, &res), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "s:1", &stream, 1, RL_HOUR, &b, &res), RL_OK);
    memset(&c, 0, sizeof c);
    assert_int_equal(rl_doctor(f->r, collect_check, &c), RL_OK);
    assert_int_equal(status_of(&c, "leases"), RL_CHECK_OK);
    f->now += 20 * RL_SECOND;
    memset(&c, 0, sizeof c);
    assert_int_equal(rl_doctor(f->r, collect_check, &c), RL_OK);
    assert_int_equal(status_of(&c, "leases"), RL_CHECK_WARN);
    assert_non_null(strstr(detail_of(&c, "leases"), "1 of 2"));
    assert_non_null(strstr(detail_of(&c, "leases"), "rlctl prune"));
    assert_int_equal(rl_prune(f->r, RL_HOUR, 0, NULL), RL_OK);
    memset(&c, 0, sizeof c);
    assert_int_equal(rl_doctor(f->r, collect_check, &c), RL_OK);
    assert_int_equal(status_of(&c, "leases"), RL_CHECK_OK);
}

static void test_doctor_finds_problems(void **state)
{
    fixture *f = *state;
    sqlite3 *db;
    checks c;
    two_tiers(f->r);
    allow(f->r, "k", 1);
    assert_int_equal(rl_key_assign(f->r, "lost", "pro"), RL_OK);
    assert_int_equal(rl_tier_delete(f->r, "pro"), RL_OK);
    /* a damaged bucket, written behind the library's back */
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "UPDATE rl_keys SET state = x'0102' WHERE key = 'k'", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(chmod(f->path, 0644), 0);
    memset(&c, 0, sizeof c);
    assert_int_equal(rl_doctor(f->r, collect_check, &c), RL_OK);
    assert_int_equal(status_of(&c, "permissions"), RL_CHECK_FAIL);
    assert_int_equal(status_of(&c, "side files"), RL_CHECK_FAIL); /* -wal is still 0600 */
    assert_int_equal(status_of(&c, "bucket states"), RL_CHECK_FAIL);
    assert_int_equal(status_of(&c, "assignments"), RL_CHECK_WARN);
    assert_int_equal(status_of(&c, "journal mode"), RL_CHECK_OK);
}

/* ---- rl_export / rl_import ------------------------------------------------ */

typedef struct buf {
    char *p;
    size_t len, cap;
    size_t calls;
} buf;

static int buf_write(void *ctx, const char *data, size_t len)
{
    buf *b = ctx;
    if (b->len + len + 1 > b->cap) {
        b->cap = (b->len + len + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = 0;
    b->calls++;
    return 0;
}

/* The export without its time stamp, which is all that may differ. */
static char *export_of(rl *r)
{
    buf b = { NULL, 0, 0, 0 };
    char *ts, *end;
    int rc = rl_export(r, buf_write, &b);
    if (rc != RL_OK)
        fail_msg("rl_export: %d %s", rc, rl_errmsg(r));
    assert_non_null(b.p);
    ts = strstr(b.p, ",\"exported_at_ns\":");
    assert_non_null(ts);
    end = ts + strlen(",\"exported_at_ns\":");
    while (*end >= '0' && *end <= '9')
        end++;
    memmove(ts, end, strlen(end) + 1);
    return b.p;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static void rich_state(fixture *f)
{
    static const char yaml[] =
        "version: 1\n"
        "default_tier: free\n"
        "fail_mode: open\n"
        "tiers:\n"
        "  free:\n"
        "    limits:\n"
        "      - { name: rps, rate: 5/s, burst: 10 }\n"
        "      - { name: daily, rate: 1000/day }\n"
        "  pro:\n"
        "    limits:\n"
        "      - { name: rpm, rate: 600/min, burst: 50 }\n"
        "      - { name: tpm, rate: 90000/min, resource: tokens }\n"
        "      - { name: streams, concurrent: 2, resource: streams }\n"
        "  unlimited: { unlimited: true }\n"
        "  window:\n"
        "    limits:\n"
        "      - { name: rpm, rate: 3/min, algorithm: sliding_window }\n"
        "      - { name: tpm, rate: 7/13s, resource: tokens, algorithm: sliding_window }\n"
        "keys:\n"
        "  - { match: \"user:admin-*\", tier: unlimited }\n"
        "  - { match: \"ip:*\", tier: free }\n";
    char path[512];
    rl_cost cost[] = { { "streams", 1 }, { "tokens", 700 } };
    rl_lease lease;
    rl_result res;
    snprintf(path, sizeof path, "%s/tiers.yaml", f->dir);
    write_file(path, yaml);
    assert_int_equal(rl_load_tiers(f->r, path), RL_OK);
    allow(f->r, "ip:1.2.3.4", 3);
    allow(f->r, "user:admin-x", 1);
    allow(f->r, "caf\xc3\xa9 \"q\\", 2);
    assert_int_equal(rl_key_assign(f->r, "user:bob", "pro"), RL_OK);
    assert_int_equal(rl_lease_begin(f->r, "user:bob", cost, 2, RL_HOUR, &lease, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_key_assign(f->r, "user:only-assigned", "pro"), RL_OK);
    assert_int_equal(rl_penalize(f->r, "ip:1.2.3.4", "requests", RL_MINUTE), RL_OK);
    assert_int_equal(rl_key_assign(f->r, "user:carol", "window"), RL_OK);
    assert_int_equal(rl_acquire(f->r, "user:carol", cost + 1, 1, &res), RL_ETOOBIG);
    cost[1].amount = 5;
    assert_int_equal(rl_acquire(f->r, "user:carol", cost + 1, 1, &res), RL_OK);
    assert_true(res.allowed);
    allow(f->r, "user:carol", 2);
}

static void test_export_import_round_trip(void **state)
{
    fixture *f = *state;
    fixture g = *f;
    char *a, *b, path[160];
    rl_key_stats s1, s2;
    rl_tier_info ti;
    rl *r2;
    rich_state(f);
    a = export_of(f->r);
    assert_non_null(strstr(a, "\"format\":\"rl-export\""));
    assert_non_null(strstr(a, "\"kind\":\"concurrent\""));
    assert_non_null(strstr(a, "\"kind\":\"cooldown\""));
    assert_non_null(strstr(a, "\"kind\":\"inflight\""));
    assert_non_null(strstr(a, "\"kind\":\"sliding_window\""));
    assert_non_null(strstr(a, "\"kind\":\"window\""));
    assert_non_null(strstr(a, "\"fail_mode\":\"open\""));

    assert_int_equal(test_store_path(f->sqlite, f->dir, path, sizeof path), 0);
    if (f->sqlite == STORE_SQLITE)
        snprintf(path, sizeof path, "%s/copy.db", f->dir);
    assert_int_equal(open_at(&g, path, &r2), RL_OK);
    if (rl_import(r2, a, strlen(a)) != RL_OK)
        fail_msg("import: %s\n%s", rl_errmsg(r2), a);
    b = export_of(r2);
    assert_string_equal(a, b);

    assert_int_equal(rl_stats(f->r, "user:bob", &s1), RL_OK);
    assert_int_equal(rl_stats(r2, "user:bob", &s2), RL_OK);
    assert_int_equal(s2.tier_source, RL_TIER_ASSIGNED);
    assert_int_equal(s1.limits[1].remaining, s2.limits[1].remaining);
    assert_int_equal(s2.limits[2].remaining, 1); /* one stream held by the lease */
    assert_int_equal(rl_tier_get(r2, "free", &ti), RL_OK);
    assert_true(ti.is_default);
    /* sliding windows: their kind, their counts */
    assert_int_equal(rl_tier_get(r2, "window", &ti), RL_OK);
    assert_int_equal(ti.limits[0].algorithm, RL_ALGO_SLIDING_WINDOW);
    assert_int_equal(ti.limits[1].period_ns, 13 * RL_SECOND);
    assert_int_equal(rl_stats(f->r, "user:carol", &s1), RL_OK);
    assert_int_equal(rl_stats(r2, "user:carol", &s2), RL_OK);
    assert_memory_equal(s1.limits, s2.limits, sizeof s1.limits);
    assert_int_equal(s2.limits[0].algorithm, RL_ALGO_SLIDING_WINDOW);

    /* importing over existing state replaces it all */
    allow(r2, "extra", 1);
    assert_int_equal(rl_import(r2, a, strlen(a)), RL_OK);
    assert_false(exists(r2, "extra"));
    free(b);
    b = export_of(r2);
    assert_string_equal(a, b);
    rl_close(r2);
    free(a);
    free(b);
}

static int fail_third(void *ctx, const char *data, size_t len)
{
    (void)data;
    (void)len;
    return ++*(int *)ctx == 3 ? 7 : 0;
}

static void test_export_streams(void **state)
{
    fixture *f = *state;
    buf b = { NULL, 0, 0, 0 };
    char key[32];
    int i, calls = 0;
    two_tiers(f->r);
    for (i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "k%03d", i);
        allow(f->r, key, 1);
    }
    assert_int_equal(rl_export(f->r, buf_write, &b), RL_OK);
    /* a piece per key at least: nothing gathered the keys first */
    assert_true(b.calls > 600);
    assert_int_equal(b.p[b.len - 1], '\n');
    assert_int_equal(rl_export(f->r, fail_third, &calls), 7);
    assert_int_equal(calls, 3);
    assert_int_equal(rl_export(f->r, NULL, NULL), RL_EINVAL);
    free(b.p);
}

static void test_import_refuses_bad_documents(void **state)
{
    static const struct {
        const char *doc;
        const char *msg; /* in rl_errmsg */
    } bad[] = {
        { "not json", "not valid JSON" },
        { "[1]", "not a JSON object" },
        { "{}", "not an rl export" },
        { "{\"format\":\"other\",\"version\":1}", "rl-export" },
        { "{\"format\":\"rl-export\",\"version\":2}", "not supported" },
        { "{\"format\":\"rl-export\",\"version\":\"1\"}", "must be an integer" },
        { "{\"format\":\"rl-export\",\"version\":1,\"extra\":1}", "unknown member 'extra'" },
        { "{\"format\":\"rl-export\",\"version\":1,\"version\":1}", "given twice" },
        { "{\"format\":\"rl-export\",\"version\":1,\"keys\":{}}", "must be an array" },
        { "{\"format\":\"rl-export\",\"version\":1,\"settings\":{\"fail_mode\":\"maybe\"}}",
          "fail_mode" },
        { "{\"format\":\"rl-export\",\"version\":1,\"settings\":{\"default_tier\":\"a b\"}}",
          "not a valid tier name" },
        { "{\"format\":\"rl-export\",\"version\":1,\"tiers\":[{\"name\":\"t\",\"unlimited\":"
          "false,\"limits\":[{\"name\":\"l\",\"resource\":\"requests\",\"kind\":\"rate\","
          "\"count\":0,\"period_ns\":1000000000,\"burst\":1}]}]}",
          "count must be at least 1" },
        { "{\"format\":\"rl-export\",\"version\":1,\"tiers\":[{\"name\":\"t\",\"unlimited\":"
          "false,\"limits\":[]}]}",
          "has no limits" },
        { "{\"format\":\"rl-export\",\"version\":1,\"tiers\":[{\"name\":\"t\",\"unlimited\":"
          "true,\"limits\":[]},{\"name\":\"t\",\"unlimited\":true,\"limits\":[]}]}",
          "duplicate tier" },
        { "{\"format\":\"rl-export\",\"version\":1,\"rules\":[{\"match\":\"a\"}]}",
          "'tier' is missing" },
        { "{\"format\":\"rl-export\",\"version\":1,\"keys\":[{\"key\":\"a\\u0001\",\"tier\":"
          "null,\"allowed\":0,\"refused\":0,\"units\":0,\"first_seen_ns\":0,\"last_seen_ns\":0,"
          "\"slots\":[]}]}",
          "not a valid key" },
        { "{\"format\":\"rl-export\",\"version\":1,\"keys\":[{\"key\":\"a\",\"tier\":null,"
          "\"allowed\":-1,\"refused\":0,\"units\":0,\"first_seen_ns\":0,\"last_seen_ns\":0,"
          "\"slots\":[]}]}",
          "out of range" },
        { "{\"format\":\"rl-export\",\"version\":1,\"keys\":[{\"key\":\"a\",\"tier\":null,"
          "\"allowed\":1e999,\"refused\":0,\"units\":0,\"first_seen_ns\":0,\"last_seen_ns\":0,"
          "\"slots\":[]}]}",
          "must be an integer" },
        { "{\"format\":\"rl-export\",\"version\":1,\"keys\":[{\"key\":\"a\",\"tier\":null,"
          "\"allowed\":0,\"refused\":0,\"units\":0,\"first_seen_ns\":0,\"last_seen_ns\":0,"
          "\"slots\":[{\"kind\":\"gcra\",\"id\":\"00000000000000ff\",\"count\":5,"
          "\"period_ns\":1000,\"burst\":5,\"tat\":0,\"rem\":5}]}]}",
          "out of range" },
        { "{\"format\":\"rl-export\",\"version\":1,\"keys\":[{\"key\":\"a\",\"tier\":null,"
          "\"allowed\":0,\"refused\":0,\"units\":0,\"first_seen_ns\":0,\"last_seen_ns\":0,"
          "\"slots\":[{\"kind\":\"window\",\"id\":\"00000000000000ff\",\"count\":5,"
          "\"period_ns\":1000,\"burst\":0,\"tat\":0,\"rem\":-1}]}]}",
          "out of range" },
        { "{\"format\":\"rl-export\",\"version\":1,\"tiers\":[{\"name\":\"t\",\"unlimited\":"
          "false,\"limits\":[{\"name\":\"l\",\"resource\":\"requests\",\"kind\":"
          "\"sliding_window\",\"count\":5,\"period_ns\":1000000000,\"burst\":6}]}]}",
          "has no burst" },
        { "{\"format\":\"rl-export\",\"version\":1,\"keys\":[{\"key\":\"a\",\"tier\":null,"
          "\"allowed\":0,\"refused\":0,\"units\":0,\"first_seen_ns\":0,\"last_seen_ns\":0,"
          "\"slots\":[{\"kind\":\"gcra\",\"id\":\"xyz\",\"count\":5,"
          "\"period_ns\":1000,\"burst\":5,\"tat\":0,\"rem\":0}]}]}",
          "hex digits" },
        { "{\"format\":\"rl-export\",\"version\":1,\"keys\":[{\"key\":\"a\",\"tier\":null,"
          "\"allowed\":0,\"refused\":0,\"units\":0,\"first_seen_ns\":0,\"last_seen_ns\":0,"
          "\"slots\":[]},{\"key\":\"a\",\"tier\":null,\"allowed\":0,\"refused\":0,\"units\":0,"
          "\"first_seen_ns\":0,\"last_seen_ns\":0,\"slots\":[]}]}",
          "given twice" },
        { "{\"format\":\"rl-export\",\"version\":1,\"leases\":[{\"id\":1,\"key\":\"a\","
          "\"created_ns\":0,\"expires_ns\":0,\"pid\":1,\"pstart\":1,\"estimate\":[{\"resource\":"
          "\"bad name\",\"amount\":1}],\"held\":[]}]}",
          "not a valid resource name" },
    };
    fixture *f = *state;
    static const char tiny[] = "{\"version\":1,\"format\":\"rl-export\"}";
    char *before, *after, nul[] = "{\"format\":\"rl-export\",\"version\":1}\0{}";
    size_t i;
    rich_state(f);
    before = export_of(f->r);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = rl_import(f->r, bad[i].doc, strlen(bad[i].doc));
        if (rc != RL_EINVAL || !strstr(rl_errmsg(f->r), bad[i].msg))
            fail_msg("document %zu: rc %d, '%s' (wanted '%s')", i, rc, rl_errmsg(f->r), bad[i].msg);
    }
    assert_int_equal(rl_import(f->r, nul, sizeof nul - 1), RL_EINVAL);
    assert_non_null(strstr(rl_errmsg(f->r), "NUL"));
    after = export_of(f->r);
    assert_string_equal(before, after);
    /* the smallest document: everything empty */
    if (rl_import(f->r, tiny, strlen(tiny)) != RL_OK)
        fail_msg("the smallest document: %s", rl_errmsg(f->r));
    assert_false(exists(f->r, "ip:1.2.3.4"));
    free(before);
    free(after);
}

#define BOTH(fn)                                                     \
    cmocka_unit_test_setup_teardown(fn, setup_mem, teardown),        \
        cmocka_unit_test_setup_teardown(fn, setup_sqlite, teardown), \
        cmocka_unit_test_setup_teardown(fn, setup_redis, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_reset_match),
        BOTH(test_reset_match_many_batches),
        BOTH(test_prune),
        BOTH(test_prune_reclaims_leases),
        BOTH(test_doctor),
        BOTH(test_doctor_counts_reclaimable_leases),
        cmocka_unit_test_setup_teardown(test_doctor_finds_problems, setup_sqlite, teardown),
        BOTH(test_export_import_round_trip),
        BOTH(test_export_streams),
        BOTH(test_import_refuses_bad_documents),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
