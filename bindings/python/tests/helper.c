/*
 * helper.c - the C side of the Python binding's tests (test_pyrl.py, test_http.py).
 *
 *   pyrl_helper layout                  sizes, field offsets and constants of
 *                                       rl.h, as the C compiler sees them
 *   pyrl_helper hammer DB KEY SECONDS   rl_allow(KEY) as fast as possible for
 *                                       SECONDS; prints "admitted N refused M"
 *   pyrl_helper keys USER IP AGENT ORG  rl_key_for, then rl_keys_for, one key a
 *                                       line ("-" is a NULL field)
 *   pyrl_helper headers ALLOWED LIMIT REMAINING RETRY_NS RESET_NS NAME
 *                       DEGRADED WINDOW_NS FLAGS
 *                                       rl_format_headers' output as is, or
 *                                       "rc N" on failure
 *
 * `keys` and `headers` are the C side of the comparisons of test_http.py: what
 * pyrl returns must be what a C program gets for the same input.
 *
 * `layout` is what keeps the ctypes mirror of rl.h honest: the test compares
 * every line with ctypes.sizeof / Field.offset, so a header change that the
 * binding does not follow fails the test instead of corrupting memory.
 */
#include <rl.h>
#include <rl_http.h>

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIZE(T) printf("size %s %zu\n", #T, sizeof(T))
#define OFF(T, F) printf("offset %s %s %zu\n", #T, #F, offsetof(T, F))
#define CONST(C) printf("const %s %lld\n", #C, (long long)(C))

static void layout(void)
{
    SIZE(rl_limit);
    OFF(rl_limit, name);
    OFF(rl_limit, resource);
    OFF(rl_limit, count);
    OFF(rl_limit, period_ns);
    OFF(rl_limit, burst);
    OFF(rl_limit, algorithm);

    SIZE(rl_options);
    OFF(rl_options, version);
    OFF(rl_options, default_limits);
    OFF(rl_options, n_default_limits);
    OFF(rl_options, busy_timeout_ms);
    OFF(rl_options, durability);
    OFF(rl_options, fail_mode);
    OFF(rl_options, clock);
    OFF(rl_options, clock_ctx);
    OFF(rl_options, file_mode);
    OFF(rl_options, tiers_file);
    OFF(rl_options, flags);
    OFF(rl_options, busy_strategy);

    SIZE(rl_result);
    OFF(rl_result, allowed);
    OFF(rl_result, limit);
    OFF(rl_result, remaining);
    OFF(rl_result, retry_after_ns);
    OFF(rl_result, reset_after_ns);
    OFF(rl_result, limit_name);
    OFF(rl_result, degraded);
    OFF(rl_result, key_index);

    SIZE(rl_cost);
    OFF(rl_cost, resource);
    OFF(rl_cost, amount);

    SIZE(rl_reservation);
    OFF(rl_reservation, ok);
    OFF(rl_reservation, delay_ns);
    OFF(rl_reservation, time_to_act);
    /* the rest is private: only its size and alignment matter */

    SIZE(rl_limit_stats);
    OFF(rl_limit_stats, name);
    OFF(rl_limit_stats, resource);
    OFF(rl_limit_stats, count);
    OFF(rl_limit_stats, period_ns);
    OFF(rl_limit_stats, burst);
    OFF(rl_limit_stats, remaining);
    OFF(rl_limit_stats, reset_after_ns);
    OFF(rl_limit_stats, retry_after_ns);
    OFF(rl_limit_stats, cooldown_ns);
    OFF(rl_limit_stats, debt);
    OFF(rl_limit_stats, in_flight);
    OFF(rl_limit_stats, algorithm);

    SIZE(rl_key_stats);
    OFF(rl_key_stats, key);
    OFF(rl_key_stats, exists);
    OFF(rl_key_stats, tier);
    OFF(rl_key_stats, tier_source);
    OFF(rl_key_stats, allowed);
    OFF(rl_key_stats, refused);
    OFF(rl_key_stats, units);
    OFF(rl_key_stats, first_seen_ns);
    OFF(rl_key_stats, last_seen_ns);
    OFF(rl_key_stats, cooldown_ns);
    OFF(rl_key_stats, n_limits);
    OFF(rl_key_stats, limits);

    SIZE(rl_totals);
    OFF(rl_totals, keys);
    OFF(rl_totals, allowed);
    OFF(rl_totals, refused);
    OFF(rl_totals, units);

    SIZE(rl_tier_info);
    OFF(rl_tier_info, name);
    OFF(rl_tier_info, unlimited);
    OFF(rl_tier_info, is_default);
    OFF(rl_tier_info, n_limits);
    OFF(rl_tier_info, limits);

    SIZE(rl_lease);
    OFF(rl_lease, id);
    OFF(rl_lease, expires_at);

    SIZE(sig_atomic_t);

    SIZE(rl_guard_options);
    OFF(rl_guard_options, version);
    OFF(rl_guard_options, ttl_ns);
    OFF(rl_guard_options, cooldown_key);
    OFF(rl_guard_options, cancel);

    SIZE(rl_guard);
    OFF(rl_guard, n);
    OFF(rl_guard, lease);
    /* the rest is private: only its size and alignment matter */

    SIZE(rl_key_ctx);
    OFF(rl_key_ctx, user);
    OFF(rl_key_ctx, ip);
    OFF(rl_key_ctx, agent);
    OFF(rl_key_ctx, org);

    CONST(RL_KEY_MAX);
    CONST(RL_NAME_MAX);
    CONST(RL_MAX_LIMITS);
    CONST(RL_MAX_KEYS);
    CONST(RL_OPTIONS_VERSION);
    CONST(RL_OPEN_READONLY);
    CONST(RL_OPEN_SHARED_GROUP);
    CONST(RL_FAIL_CLOSED);
    CONST(RL_FAIL_OPEN);
    CONST(RL_ALGO_GCRA);
    CONST(RL_ALGO_SLIDING_WINDOW);
    CONST(RL_DURABILITY_NORMAL);
    CONST(RL_DURABILITY_FULL);
    CONST(RL_BUSY_LOCK);
    CONST(RL_BUSY_SQLITE);
    CONST(RL_SORT_KEY);
    CONST(RL_SORT_ALLOWED);
    CONST(RL_SORT_REFUSED);
    CONST(RL_SORT_LAST_SEEN);
    CONST(RL_TIER_NONE);
    CONST(RL_TIER_ASSIGNED);
    CONST(RL_TIER_RULE);
    CONST(RL_TIER_DEFAULT);
    CONST(RL_TIER_OPTIONS);
    CONST(RL_OK);
    CONST(RL_EINVAL);
    CONST(RL_ENOMEM);
    CONST(RL_ETOOBIG);
    CONST(RL_EBUSY);
    CONST(RL_ESTORE);
    CONST(RL_EREADONLY);
    CONST(RL_EFULL);
    CONST(RL_ECORRUPT);
    CONST(RL_EVERSION);
    CONST(RL_ECONFIG);
    CONST(RL_ENOTFOUND);
    CONST(RL_ETIMEOUT);
    CONST(RL_ECANCELED);
    CONST(RL_ENOLIMIT);
    CONST(RL_ECONNECT);
    CONST(RL_EAUTH);
    CONST(RL_EPERM);
    CONST(RL_ELIMITED);
    CONST(RL_PRIORITY_INTERACTIVE);
    CONST(RL_PRIORITY_BATCH);
    CONST(RL_GUARD_OPTIONS_VERSION);
    CONST(RL_KEYS_FOR_MAX);
    CONST(RL_HEADERS_IETF);
    CONST(RL_HEADERS_CLASSIC);
    CONST(RL_HEADERS_MAX);
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* No default limits: the key's limits come from the tiers the Python side
 * loaded into the database, as they would for any second program. */
static int hammer(const char *db, const char *key, double seconds)
{
    rl *r = NULL;
    rl_result res;
    long admitted = 0, refused = 0;
    double end;
    if (rl_open(&r, db, NULL) != RL_OK) {
        fprintf(stderr, "pyrl_helper: %s\n", rl_errmsg(r));
        rl_close(r);
        return 1;
    }
    end = mono() + seconds;
    while (mono() < end) {
        if (rl_allow(r, key, 1, &res) != RL_OK) {
            fprintf(stderr, "pyrl_helper: %s\n", rl_errmsg(r));
            rl_close(r);
            return 1;
        }
        if (res.allowed)
            admitted++;
        else
            refused++;
    }
    rl_close(r);
    printf("admitted %ld refused %ld\n", admitted, refused);
    return 0;
}

static const char *field(const char *arg)
{
    return strcmp(arg, "-") == 0 ? NULL : arg;
}

static int keys(char **argv)
{
    rl_key_ctx ctx;
    char key[RL_KEY_MAX + 1], all[RL_KEYS_FOR_MAX][RL_KEY_MAX + 1];
    size_t n = 0, i;
    int rc;
    ctx.user = field(argv[0]);
    ctx.ip = field(argv[1]);
    ctx.agent = field(argv[2]);
    ctx.org = field(argv[3]);
    rc = rl_key_for(key, sizeof key, &ctx);
    if (rc == RL_OK)
        printf("key %s\n", key);
    else
        printf("key rc %d\n", rc);
    rc = rl_keys_for(&ctx, all, RL_KEYS_FOR_MAX, &n);
    if (rc != RL_OK)
        printf("keys rc %d\n", rc);
    for (i = 0; rc == RL_OK && i < n; i++)
        printf("keys %s\n", all[i]);
    return 0;
}

static int headers(char **argv)
{
    rl_result res;
    char buf[RL_HEADERS_MAX];
    int rc;
    memset(&res, 0, sizeof res);
    res.allowed = atoi(argv[0]);
    res.limit = strtoll(argv[1], NULL, 10);
    res.remaining = strtoll(argv[2], NULL, 10);
    res.retry_after_ns = strtoll(argv[3], NULL, 10);
    res.reset_after_ns = strtoll(argv[4], NULL, 10);
    snprintf(res.limit_name, sizeof res.limit_name, "%s", argv[5]);
    res.degraded = atoi(argv[6]);
    rc = rl_format_headers(&res, strtoll(argv[7], NULL, 10), atoi(argv[8]), buf, sizeof buf);
    if (rc != RL_OK)
        printf("rc %d", rc);
    else
        fputs(buf, stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "layout") == 0) {
        layout();
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "hammer") == 0)
        return hammer(argv[2], argv[3], atof(argv[4]));
    if (argc == 6 && strcmp(argv[1], "keys") == 0)
        return keys(argv + 2);
    if (argc == 11 && strcmp(argv[1], "headers") == 0)
        return headers(argv + 2);
    fprintf(stderr, "usage: pyrl_helper layout | hammer DB KEY SECONDS | keys USER IP AGENT ORG"
                    " | headers ALLOWED LIMIT REMAINING RETRY_NS RESET_NS NAME DEGRADED"
                    " WINDOW_NS FLAGS\n");
    return 2;
}
