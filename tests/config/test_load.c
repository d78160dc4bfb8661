/*
 * test_load.c - tier files into the database: whole or not at all, seen by
 * every process on its next decision.
 *
 * What users rely on: a bad file changes nothing in the database; a process
 * that already has the database open applies a tier that `rlctl tiers load`
 * wrote from another process on its very next decision; keys resolve by
 * assignment, then rule, then default tier, then default limits; a changed
 * limit keeps what keys have spent, rescaled. Run against every store that
 * processes share: a SQLite file, and Redis when RL_TEST_REDIS is set.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "rl.h"
#include "../common/stores.h"

typedef struct fx {
    char dir[64];
    char db[512];
    char yaml[96];
    int64_t now;
} fx;

static int64_t fake_clock(void *ctx)
{
    return ((fx *)ctx)->now;
}

static int setup(void **state, int kind)
{
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/rl_test_load.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(test_store_path(kind, f->dir, f->db, sizeof f->db), 0);
    snprintf(f->yaml, sizeof f->yaml, "%s/tiers.yaml", f->dir);
    f->now = (int64_t)1700000000 * RL_SECOND;
    *state = f;
    return 0;
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
    fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void write_yaml(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static rl *open_db(fx *f, const rl_limit *defaults, size_t n)
{
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    o.clock = fake_clock;
    o.clock_ctx = f;
    o.default_limits = defaults;
    o.n_default_limits = n;
    if (rl_open(&r, f->db, &o) != RL_OK)
        fail_msg("open: %s", rl_errmsg(r));
    return r;
}

static const char *const policy_a = "version: 1\n"
                                    "default_tier: free\n"
                                    "tiers:\n"
                                    "  free:\n"
                                    "    limits:\n"
                                    "      - { name: rps, rate: 5/s, burst: 10 }\n"
                                    "  pro:\n"
                                    "    limits:\n"
                                    "      - { name: rpm, rate: 600/min, burst: 50 }\n"
                                    "      - { name: tpm, rate: 90000/min, resource: tokens }\n"
                                    "  unlimited: { unlimited: true }\n"
                                    "keys:\n"
                                    "  - { match: \"user:admin-*\", tier: unlimited }\n"
                                    "  - { match: \"ip:*\", tier: pro }\n";

static int collect_tier(void *ctx, const rl_tier_info *t)
{
    char *buf = ctx;
    size_t i, n = strlen(buf);
    n += (size_t)snprintf(buf + n, 4096 - n, "%s%s%s:", t->name, t->unlimited ? "(u)" : "",
                          t->is_default ? "(d)" : "");
    for (i = 0; i < t->n_limits; i++)
        n += (size_t)snprintf(buf + n, 4096 - n, " %s/%s/%lld/%lld/%lld", t->limits[i].name,
                              t->limits[i].resource, (long long)t->limits[i].count,
                              (long long)t->limits[i].period_ns, (long long)t->limits[i].burst);
    snprintf(buf + n, 4096 - n, ";");
    return 0;
}

static int collect_rule(void *ctx, const char *match, const char *tier)
{
    char *buf = ctx;
    size_t n = strlen(buf);
    snprintf(buf + n, 4096 - n, "%s=>%s;", match, tier);
    return 0;
}

static void snapshot(rl *r, char *buf)
{
    buf[0] = 0;
    assert_int_equal(rl_tiers_list(r, collect_tier, buf), RL_OK);
    assert_int_equal(rl_rules_list(r, collect_rule, buf), RL_OK);
}

static void test_load_and_resolve(void **state)
{
    fx *f = *state;
    static const rl_limit defaults[] = { RL_LIMIT("fallback", NULL, 1, RL_SECOND, 1) };
    char snap[4096];
    rl_key_stats st;
    rl *r;
    write_yaml(f->yaml, policy_a);
    r = open_db(f, defaults, 1);
    /* before any tier: the options' default limits */
    assert_int_equal(rl_stats(r, "someone", &st), RL_OK);
    assert_int_equal(st.tier_source, RL_TIER_OPTIONS);
    assert_int_equal(rl_load_tiers(r, f->yaml), RL_OK);
    snapshot(r, snap);
    assert_string_equal(snap, "free(d): rps/requests/5/1000000000/10;"
                              "pro: rpm/requests/600/60000000000/50 "
                              "tpm/tokens/90000/60000000000/90000;unlimited(u):;"
                              "user:admin-*=>unlimited;ip:*=>pro;");
    /* rule, then default tier; assignment beats the rule */
    assert_int_equal(rl_stats(r, "ip:1.2.3.4", &st), RL_OK);
    assert_string_equal(st.tier, "pro");
    assert_int_equal(st.tier_source, RL_TIER_RULE);
    assert_int_equal(rl_stats(r, "user:admin-joe", &st), RL_OK);
    assert_string_equal(st.tier, "unlimited");
    assert_int_equal(rl_stats(r, "user:bob", &st), RL_OK);
    assert_string_equal(st.tier, "free");
    assert_int_equal(st.tier_source, RL_TIER_DEFAULT);
    assert_int_equal(rl_key_assign(r, "ip:1.2.3.4", "free"), RL_OK);
    assert_int_equal(rl_stats(r, "ip:1.2.3.4", &st), RL_OK);
    assert_string_equal(st.tier, "free");
    assert_int_equal(st.tier_source, RL_TIER_ASSIGNED);
    rl_close(r);
}

/* Every file in tests/config/bad is refused and leaves the database as it was. */
static void test_bad_files_change_nothing(void **state)
{
    fx *f = *state;
    char before[4096], after[4096], path[512];
    struct dirent *de;
    DIR *d;
    rl *r;
    int n = 0;
    write_yaml(f->yaml, policy_a);
    r = open_db(f, NULL, 0);
    assert_int_equal(rl_load_tiers(r, f->yaml), RL_OK);
    snapshot(r, before);
    d = opendir(RL_SOURCE_DIR "/tests/config/bad");
    assert_non_null(d);
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/tests/config/bad/%s", RL_SOURCE_DIR, de->d_name);
        if (rl_load_tiers(r, path) == RL_OK)
            fail_msg("%s was accepted", de->d_name);
        /* the message starts with the file's name */
        assert_memory_equal(rl_errmsg(r), path, strlen(path));
        snapshot(r, after);
        assert_string_equal(before, after);
        n++;
    }
    closedir(d);
    assert_true(n >= 10);
    assert_int_equal(rl_load_tiers(r, "/nonexistent/tiers.yaml"), RL_ESTORE);
    rl_close(r);
}

/* A tier loaded by `rlctl tiers load` in another process applies to an open
 * handle's next decision. */
static void test_other_process_load_applies(void **state)
{
    fx *f = *state;
    int to_child[2], to_parent[2], status;
    char c;
    pid_t pid;
    assert_int_equal(pipe(to_child), 0);
    assert_int_equal(pipe(to_parent), 0);
    write_yaml(f->yaml, policy_a);
    {
        rl *r = open_db(f, NULL, 0); /* create the file and load policy A */
        assert_int_equal(rl_load_tiers(r, f->yaml), RL_OK);
        rl_close(r);
    }
    pid = fork();
    if (pid == 0) {
        rl_result res;
        rl *r;
        int ok;
        /* only the parent's ends are left open, so its death ends our read */
        close(to_child[1]);
        close(to_parent[0]);
        r = open_db(f, NULL, 0);
        ok = rl_allow(r, "user:x", 10, &res) == RL_OK && res.allowed &&
             strcmp(res.limit_name, "rps") == 0;
        ok &= write(to_parent[1], "1", 1) == 1;
        ok &= read(to_child[0], &c, 1) == 1;
        /* policy B gives free a burst of 3: a cost of 10 can never pass */
        ok &= rl_allow(r, "user:y", 10, &res) == RL_ETOOBIG;
        ok &= rl_allow(r, "user:y", 3, &res) == RL_OK && res.allowed &&
              strcmp(res.limit_name, "rps2") == 0;
        rl_close(r);
        _exit(ok ? 0 : 1);
    }
    close(to_child[0]);
    close(to_parent[1]);
    assert_int_equal(read(to_parent[0], &c, 1), 1);
    write_yaml(f->yaml, "version: 1\n"
                        "default_tier: free\n"
                        "tiers:\n"
                        "  free:\n"
                        "    limits:\n"
                        "      - { name: rps2, rate: 1/s, burst: 3 }\n");
    {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "'%s' --db '%s' tiers load '%s' >/dev/null", RLCTL_PATH, f->db,
                 f->yaml);
        assert_int_equal(system(cmd), 0);
    }
    assert_int_equal(write(to_child[1], "1", 1), 1);
    close(to_child[1]);
    close(to_parent[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Reloading with a bigger limit keeps each key's spent fraction. */
static void test_reload_rescales(void **state)
{
    fx *f = *state;
    rl_result res;
    rl *r;
    write_yaml(f->yaml, policy_a);
    r = open_db(f, NULL, 0);
    assert_int_equal(rl_load_tiers(r, f->yaml), RL_OK);
    assert_int_equal(rl_allow(r, "user:z", 5, &res), RL_OK);
    assert_int_equal(res.remaining, 5); /* half of burst 10 spent */
    write_yaml(f->yaml, "version: 1\n"
                        "default_tier: free\n"
                        "tiers:\n"
                        "  free:\n"
                        "    limits:\n"
                        "      - { name: rps, rate: 50/s, burst: 100 }\n");
    assert_int_equal(rl_load_tiers(r, f->yaml), RL_OK);
    assert_int_equal(rl_allow(r, "user:z", 0, &res), RL_OK);
    assert_int_equal(res.remaining, 50); /* still half spent */
    rl_close(r);
}

int main(void)
{
#define T(fn)                                                    \
    cmocka_unit_test_setup_teardown(fn, setup_sqlite, teardown), \
        cmocka_unit_test_setup_teardown(fn, setup_redis, teardown)
    const struct CMUnitTest tests[] = {
        T(test_load_and_resolve),
        T(test_bad_files_change_nothing),
        T(test_other_process_load_applies),
        T(test_reload_rescales),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
