/*
 * test_rl.c - core/rl.c through the API, on every store (api_fixture.h):
 * opening and closing (bad options, a missing directory, a restart that
 * keeps the counters), the policy cache (a tier written through another
 * handle applies to the next decision), one handle shared by threads (no
 * decision lost; each thread reads its own rl_errmsg) and the rule that a
 * call returning RL_OK leaves no message behind.
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>

#include "api_fixture.h"

static void test_open_errors(void **state)
{
    fixture *f = *state;
    rl_options o = RL_OPTIONS_INIT;
    static const rl_limit bad[] = { RL_PER_SECOND(5, -1) };
    rl *r = NULL;
    (void)f;
    rl_close(NULL);
    assert_int_equal(rl_open(NULL, ":memory:", NULL), RL_EINVAL);
    o.version = 99;
    assert_int_equal(rl_open(&r, ":memory:", &o), RL_EINVAL);
    assert_non_null(strstr(rl_errmsg(r), "version"));
    rl_close(r);
    o.version = RL_OPTIONS_VERSION;
    o.default_limits = bad;
    o.n_default_limits = 1;
    assert_int_equal(rl_open(&r, ":memory:", &o), RL_EINVAL);
    assert_non_null(strstr(rl_errmsg(r), "burst"));
    rl_close(r);
    o.n_default_limits = 0;
    o.file_mode = 0400;
    assert_int_equal(rl_open(&r, ":memory:", &o), RL_EINVAL);
    rl_close(r);
    assert_int_equal(rl_open(&r, "/nonexistent-dir/x/rl.db", NULL), RL_ESTORE);
    assert_non_null(strstr(rl_errmsg(r), "/nonexistent-dir/x/rl.db"));
    rl_close(r);
    assert_string_equal(rl_strerror(RL_ETOOBIG),
                        "cost exceeds the limit's burst and can never pass");
    assert_string_equal(rl_strerror(12345), "unknown error");
    assert_string_equal(rl_version(), RL_VERSION_STRING);
}

/* Two handles on one database: a tier written through one applies to the
 * other's next decision (for the memory store each handle is its own). */
static void test_hot_reload(void **state)
{
    fixture *f = *state;
    static const rl_limit tight[] = { RL_LIMIT("one", NULL, 1, RL_MINUTE, 1) };
    rl *other;
    rl_result res;
    assert_int_equal(open_with(f, NULL, 0, &other), RL_OK);
    assert_int_equal(rl_allow(f->r, "k", 2, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_tier_set(other, "default", tight, 1), RL_OK);
    assert_int_equal(rl_allow(f->r, "k", 2, &res), RL_ETOOBIG);
    assert_int_equal(rl_allow(f->r, "fresh", 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_string_equal(res.limit_name, "one");
    rl_close(other);
}

static void test_restart_survival(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 10, RL_SECOND, 10) };
    rl_result res;
    rl_key_stats st;
    assert_int_equal(rl_allow(f->r, "k", 10, &res), RL_OK);
    assert_int_equal(rl_key_assign(f->r, "vip", "nope"), RL_ENOTFOUND);
    rl_close(f->r);
    assert_int_equal(open_with(f, lims, 1, &f->r), RL_OK);
    assert_int_equal(rl_allow(f->r, "k", 1, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(rl_stats(f->r, "k", &st), RL_OK);
    assert_int_equal(st.allowed, 1);
    assert_int_equal(st.units, 10);
    assert_int_equal(st.refused, 1);
}

typedef struct thr_arg {
    rl *r;
    int admitted;
} thr_arg;

static void *hammer(void *arg)
{
    thr_arg *a = arg;
    rl_result res;
    int i;
    for (i = 0; i < 500; i++)
        if (rl_allow(a->r, "shared", 1, &res) == RL_OK && res.allowed)
            a->admitted++;
    return NULL;
}

/* One handle shared by threads: decisions are serialised, none is lost. */
static void test_threads_share_handle(void **state)
{
    fixture *f = *state;
    static const rl_limit lims[] = { RL_LIMIT("big", NULL, 1000, RL_HOUR, 1000) };
    thr_arg a[4];
    pthread_t th[4];
    int i, total = 0;
    assert_int_equal(rl_tier_set(f->r, "default", lims, 1), RL_OK);
    for (i = 0; i < 4; i++) {
        a[i].r = f->r;
        a[i].admitted = 0;
        pthread_create(&th[i], NULL, hammer, &a[i]);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += a[i].admitted;
    }
    assert_int_equal(total, 1000);
}

typedef struct msg_arg {
    rl *r;
    int which;
    int wrong;
} msg_arg;

/* Fails (thread 0: a bad key, refused before the handle's mutex; thread 1:
 * an unknown tier, found under it) or succeeds (thread 1, in between), and
 * reads its own message back while the other thread makes calls. */
static void *fail_and_read(void *arg)
{
    msg_arg *a = arg;
    rl_result res;
    rl_tier_info ti;
    int i, j;
    for (i = 0; i < 300; i++) {
        if (a->which == 0) {
            if (rl_allow(a->r, "", 1, &res) != RL_EINVAL)
                a->wrong++;
            for (j = 0; j < 3; j++) {
                if (!strstr(rl_errmsg(a->r), "invalid key"))
                    a->wrong++;
                sched_yield();
            }
        } else {
            if (rl_tier_get(a->r, "nope", &ti) != RL_ENOTFOUND)
                a->wrong++;
            sched_yield();
            if (strcmp(rl_errmsg(a->r), "no such tier: 'nope'") != 0)
                a->wrong++;
            if (rl_allow(a->r, "k", 1, &res) != RL_OK || strcmp(rl_errmsg(a->r), "no error") != 0)
                a->wrong++;
        }
    }
    return NULL;
}

/* A handle shared by threads: each thread reads the message of its own
 * last call (thread-local, as libgit2's last error), whatever the others'
 * calls said meanwhile. */
static void test_threads_own_errmsg(void **state)
{
    fixture *f = *state;
    msg_arg a[2];
    pthread_t th[2];
    int i;
    for (i = 0; i < 2; i++) {
        a[i].r = f->r;
        a[i].which = i;
        a[i].wrong = 0;
        pthread_create(&th[i], NULL, fail_and_read, &a[i]);
    }
    for (i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(a[0].wrong, 0);
    assert_int_equal(a[1].wrong, 0);
    /* and this thread, which made no call since its last success, sees none */
    assert_string_equal(rl_errmsg(f->r), "no error");
}

static int fail_inside(void *ctx, const rl_tier_info *t)
{
    rl_result res;
    (void)t;
    return rl_allow(ctx, "", 1, &res) == RL_EINVAL ? 0 : 1;
}

static void fail_once(fixture *f)
{
    rl_result res;
    assert_int_equal(rl_allow(f->r, "bad\tkey", 1, &res), RL_EINVAL);
    assert_string_not_equal(rl_errmsg(f->r), "no error");
}

/* 8. A call that returns RL_OK leaves no message behind, whatever failed
 * before it or inside it. */
static void test_errmsg_empty_after_ok(void **state)
{
    fixture *f = *state;
    const char *names[] = { "x-ratelimit-remaining-requests" }, *values[] = { "42" };
    rl_batch_item it[2];
    rl_reservation rv;
    memset(it, 0, sizeof it);
    fail_once(f);
    assert_int_equal(rl_observe_headers(f->r, "p", names, values, 1), RL_OK);
    assert_string_equal(rl_errmsg(f->r), "no error");
    fail_once(f);
    assert_int_equal(rl_reserve(f->r, "k", 100, 0, &rv), RL_ETOOBIG);
    assert_int_equal(rl_cancel(f->r, &rv), RL_OK); /* not ok: nothing to give back */
    assert_string_equal(rl_errmsg(f->r), "no error");
    fail_once(f);
    assert_int_equal(rl_allow_batch(f->r, it, 0), RL_OK);
    assert_string_equal(rl_errmsg(f->r), "no error");
    it[0].key = "fine";
    it[0].cost = 1;
    it[1].key = "too:big";
    it[1].cost = 11;
    assert_int_equal(rl_allow_batch(f->r, it, 2), RL_OK);
    assert_int_equal(it[1].rc, RL_ETOOBIG);
    assert_string_equal(rl_errmsg(f->r), "no error");
    fail_once(f);
    assert_int_equal(rl_tiers_list(f->r, fail_inside, f->r), RL_OK);
    assert_string_equal(rl_errmsg(f->r), "no error");
    fail_once(f);
    assert_int_equal(rl_allow(f->r, "k", 1, &it[0].res), RL_OK);
    assert_string_equal(rl_errmsg(f->r), "no error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_open_errors),        SHARED(test_hot_reload),
        SHARED(test_restart_survival), BOTH(test_threads_share_handle),
        BOTH(test_threads_own_errmsg), BOTH(test_errmsg_empty_after_ok),
    };
    return run_store_tests(tests, sizeof tests / sizeof tests[0], setup_redis);
}
