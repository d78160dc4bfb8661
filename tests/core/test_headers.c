/*
 * test_headers.c - rate-limit header fields out and in (core/headers.c).
 *
 * What users rely on: a decision prints exactly the lines of the examples
 * in draft-ietf-httpapi-ratelimit-headers-11 for the same numbers, and the
 * classic X-RateLimit-* / Retry-After with seconds rounded up; a buffer too
 * small is refused, never cut. Header sets as OpenAI and Anthropic document
 * them read back to the right numbers; every malformed value is ignored on
 * its own and counted, never misread; all three HTTP-date forms work.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rl.h"

#define S RL_SECOND

static rl_result mk(int allowed, const char *name, int64_t limit, int64_t remaining,
                    int64_t retry_ns, int64_t reset_ns)
{
    rl_result r;
    memset(&r, 0, sizeof r);
    r.allowed = allowed;
    r.limit = limit;
    r.remaining = remaining;
    r.retry_after_ns = retry_ns;
    r.reset_after_ns = reset_ns;
    snprintf(r.limit_name, sizeof r.limit_name, "%s", name);
    return r;
}

static void expect_fmt(const rl_result *r, int64_t window, int flags, const char *want)
{
    char buf[RL_HEADERS_MAX];
    int rc = rl_format_headers(r, window, flags, buf, sizeof buf);
    if (rc != RL_OK)
        fail_msg("format refused (%d)", rc);
    if (strcmp(buf, want) != 0)
        fail_msg("got\n%s\nwant\n%s", buf, want);
}

/* The RateLimit-Policy and RateLimit lines of the draft's examples,
 * verbatim, each from the numbers it describes. */
static void test_ietf_draft_examples(void **state)
{
    rl_result r;
    (void)state;
    /* sections 3.2 and 4.2: "default";q=100;w=10 and "default";r=50;t=30 */
    r = mk(1, "default", 100, 50, 0, 30 * S);
    expect_fmt(&r, 10 * S, RL_HEADERS_IETF,
               "RateLimit-Policy: \"default\";q=100;w=10\r\n"
               "RateLimit: \"default\";r=50;t=30\r\n");
    /* B.2.1: 99 units left for 50 s of a 100/min policy */
    r = mk(1, "fixedwindow", 100, 99, 0, 50 * S);
    expect_fmt(&r, 60 * S, RL_HEADERS_IETF,
               "RateLimit-Policy: \"fixedwindow\";q=100;w=60\r\n"
               "RateLimit: \"fixedwindow\";r=99;t=50\r\n");
    /* B.1.3: two responses of the same policy */
    r = mk(1, "basic", 100, 60, 0, 58 * S);
    expect_fmt(&r, 60 * S, RL_HEADERS_IETF,
               "RateLimit-Policy: \"basic\";q=100;w=60\r\n"
               "RateLimit: \"basic\";r=60;t=58\r\n");
    r = mk(1, "basic", 100, 20, 0, 56 * S);
    expect_fmt(&r, 60 * S, RL_HEADERS_IETF,
               "RateLimit-Policy: \"basic\";q=100;w=60\r\n"
               "RateLimit: \"basic\";r=20;t=56\r\n");
    /* B.2.2 */
    r = mk(1, "dynamic", 100, 9, 0, 50 * S);
    expect_fmt(&r, 60 * S, RL_HEADERS_IETF,
               "RateLimit-Policy: \"dynamic\";q=100;w=60\r\n"
               "RateLimit: \"dynamic\";r=9;t=50\r\n");
    /* B.2.3: refused, nothing for 20 s; Retry-After says the same */
    r = mk(0, "dynamic", 15, 0, 20 * S, 20 * S);
    expect_fmt(&r, 20 * S, RL_HEADERS_IETF,
               "RateLimit-Policy: \"dynamic\";q=15;w=20\r\n"
               "RateLimit: \"dynamic\";r=0;t=20\r\n"
               "Retry-After: 20\r\n");
    /* B.1.4: throttled, RateLimit and Retry-After name the same moment */
    r = mk(0, "default", 10, 0, 5 * S, 5 * S);
    expect_fmt(&r, 0, RL_HEADERS_IETF,
               "RateLimit-Policy: \"default\";q=10\r\n"
               "RateLimit: \"default\";r=0;t=5\r\n"
               "Retry-After: 5\r\n");
    /* section 8.5 */
    r = mk(1, "somepolicy", 10000, 10000, 0, 10 * S);
    expect_fmt(&r, 1000 * S, RL_HEADERS_IETF,
               "RateLimit-Policy: \"somepolicy\";q=10000;w=1000\r\n"
               "RateLimit: \"somepolicy\";r=10000;t=10\r\n");
    /* B.1.2 and section 7 RateLimit lines */
    r = mk(1, "dayLimit", 5000, 100, 0, 36000 * S);
    expect_fmt(&r, 86400 * S, RL_HEADERS_IETF,
               "RateLimit-Policy: \"dayLimit\";q=5000;w=86400\r\n"
               "RateLimit: \"dayLimit\";r=100;t=36000\r\n");
    r = mk(1, "default", 10, 1, 0, 7 * S);
    expect_fmt(&r, 0, RL_HEADERS_IETF,
               "RateLimit-Policy: \"default\";q=10\r\n"
               "RateLimit: \"default\";r=1;t=7\r\n");
}

static void test_classic_and_rounding(void **state)
{
    rl_result r;
    (void)state;
    /* 10/s, one unit spent: full again in 100 ms, shown as 1 s */
    r = mk(1, "limit1", 10, 9, 0, 100 * RL_MILLISECOND);
    expect_fmt(&r, S, RL_HEADERS_CLASSIC,
               "X-RateLimit-Limit: 10\r\n"
               "X-RateLimit-Remaining: 9\r\n"
               "X-RateLimit-Reset: 1\r\n");
    /* refused: Retry-After rounded up, never 0 */
    r = mk(0, "limit1", 10, 0, 100 * RL_MILLISECOND, 1500 * RL_MILLISECOND);
    expect_fmt(&r, S, RL_HEADERS_CLASSIC,
               "X-RateLimit-Limit: 10\r\n"
               "X-RateLimit-Remaining: 0\r\n"
               "X-RateLimit-Reset: 2\r\n"
               "Retry-After: 1\r\n");
    r = mk(0, "limit1", 10, 0, 0, 0);
    expect_fmt(&r, S, RL_HEADERS_CLASSIC,
               "X-RateLimit-Limit: 10\r\nX-RateLimit-Remaining: 0\r\nX-RateLimit-Reset: 0\r\n"
               "Retry-After: 1\r\n");
    /* exact seconds stay, one nanosecond more is the next second */
    r = mk(0, "m", 60, 0, 2 * S, 60 * S + 1);
    expect_fmt(&r, RL_MINUTE, RL_HEADERS_IETF | RL_HEADERS_CLASSIC,
               "RateLimit-Policy: \"m\";q=60;w=60\r\n"
               "RateLimit: \"m\";r=0;t=2\r\n"
               "X-RateLimit-Limit: 60\r\n"
               "X-RateLimit-Remaining: 0\r\n"
               "X-RateLimit-Reset: 61\r\n"
               "Retry-After: 2\r\n");
    r = mk(0, "m", 60, 0, 2 * S + 1, 60 * S);
    expect_fmt(&r, RL_MINUTE, RL_HEADERS_CLASSIC,
               "X-RateLimit-Limit: 60\r\nX-RateLimit-Remaining: 0\r\nX-RateLimit-Reset: 60\r\n"
               "Retry-After: 3\r\n");
    /* a sub-second window is w=1 (w must be a positive integer); a full
     * bucket has t=0 */
    r = mk(1, "fast", 5, 5, 0, 0);
    expect_fmt(&r, 100 * RL_MILLISECOND, RL_HEADERS_IETF,
               "RateLimit-Policy: \"fast\";q=5;w=1\r\nRateLimit: \"fast\";r=5;t=0\r\n");
    r = mk(1, "f.1:x-y_z", 5, 4, 0, 1);
    expect_fmt(&r, 1500 * RL_MILLISECOND, RL_HEADERS_IETF,
               "RateLimit-Policy: \"f.1:x-y_z\";q=5;w=2\r\nRateLimit: \"f.1:x-y_z\";r=4;t=1\r\n");
}

static void test_no_deciding_limit(void **state)
{
    rl_result r;
    (void)state;
    /* what rl_allow gives when no limit applies: nothing to advertise */
    r = mk(1, "", 0, INT64_MAX, 0, 0);
    expect_fmt(&r, S, RL_HEADERS_IETF | RL_HEADERS_CLASSIC, "");
    /* a store failure under RL_FAIL_CLOSED: only a retry hint */
    r = mk(0, "", 0, 0, 0, 0);
    expect_fmt(&r, S, RL_HEADERS_IETF | RL_HEADERS_CLASSIC, "Retry-After: 1\r\n");
    /* fail-open: admitted without the store, no numbers known */
    r = mk(1, "limit1", 0, 0, 0, 0);
    r.degraded = 1;
    expect_fmt(&r, S, RL_HEADERS_IETF | RL_HEADERS_CLASSIC, "");
}

static void test_buffer_exact_and_refused(void **state)
{
    rl_result r = mk(0, "default", 100, 0, 3 * S, 30 * S);
    char full[RL_HEADERS_MAX];
    size_t need, len;
    (void)state;
    assert_int_equal(
        rl_format_headers(&r, 10 * S, RL_HEADERS_IETF | RL_HEADERS_CLASSIC, full, sizeof full),
        RL_OK);
    need = strlen(full) + 1;
    /* every size short of the whole text fails and leaves "" (ASan checks
     * nothing is written past an exactly sized heap buffer) */
    for (len = 1; len <= need; len++) {
        char *b = malloc(len);
        int rc;
        assert_non_null(b);
        memset(b, 'z', len);
        rc = rl_format_headers(&r, 10 * S, RL_HEADERS_IETF | RL_HEADERS_CLASSIC, b, len);
        if (len < need) {
            assert_int_equal(rc, RL_EINVAL);
            assert_int_equal(b[0], '\0');
        } else {
            assert_int_equal(rc, RL_OK);
            assert_string_equal(b, full);
        }
        free(b);
    }
    assert_int_equal(rl_format_headers(&r, 10 * S, RL_HEADERS_IETF, full, 0), RL_EINVAL);
}

static void test_headers_max_suffices(void **state)
{
    rl_result r;
    char name[RL_NAME_MAX], buf[RL_HEADERS_MAX];
    (void)state;
    memset(name, 'n', RL_NAME_MAX - 1);
    name[RL_NAME_MAX - 1] = '\0';
    r = mk(0, name, INT64_C(999999999999999), INT64_C(999999999999999), INT64_MAX, INT64_MAX);
    assert_int_equal(
        rl_format_headers(&r, INT64_MAX, RL_HEADERS_IETF | RL_HEADERS_CLASSIC, buf, sizeof buf),
        RL_OK);
    assert_non_null(strstr(buf, ";w=9223372037\r\n"));
    assert_non_null(strstr(buf, "Retry-After: 9223372037\r\n"));
}

static void test_format_refuses(void **state)
{
    rl_result r = mk(1, "default", 10, 5, 0, S);
    char buf[RL_HEADERS_MAX];
    (void)state;
    assert_int_equal(rl_format_headers(NULL, S, RL_HEADERS_IETF, buf, sizeof buf), RL_EINVAL);
    assert_int_equal(rl_format_headers(&r, S, RL_HEADERS_IETF, NULL, 10), RL_EINVAL);
    assert_int_equal(rl_format_headers(&r, S, 0, buf, sizeof buf), RL_EINVAL);
    assert_int_equal(rl_format_headers(&r, S, 4, buf, sizeof buf), RL_EINVAL);
    assert_int_equal(rl_format_headers(&r, -1, RL_HEADERS_IETF, buf, sizeof buf), RL_EINVAL);
    r = mk(1, "default", 10, -1, 0, S);
    assert_int_equal(rl_format_headers(&r, S, RL_HEADERS_IETF, buf, sizeof buf), RL_EINVAL);
    r = mk(1, "default", INT64_C(1000000000000000), 5, 0, S); /* 16 digits: not an SF integer */
    assert_int_equal(rl_format_headers(&r, S, RL_HEADERS_IETF, buf, sizeof buf), RL_EINVAL);
    r = mk(1, "default", 10, 5, 0, -1);
    assert_int_equal(rl_format_headers(&r, S, RL_HEADERS_IETF, buf, sizeof buf), RL_EINVAL);
    /* a name that would need quoting, or is not terminated */
    r = mk(1, "a\"b", 10, 5, 0, S);
    assert_int_equal(rl_format_headers(&r, S, RL_HEADERS_IETF, buf, sizeof buf), RL_EINVAL);
    assert_string_equal(buf, "");
    r = mk(1, "default", 10, 5, 0, S);
    memset(r.limit_name, 'a', sizeof r.limit_name);
    assert_int_equal(rl_format_headers(&r, S, RL_HEADERS_IETF, buf, sizeof buf), RL_EINVAL);
}

/* ---- reading ---- */

#define N(a) (sizeof(a) / sizeof((a)[0]))

static rl_provider_limits parse(const char *const *names, const char *const *values, size_t n,
                                int64_t now)
{
    rl_provider_limits o;
    assert_int_equal(rl_parse_provider_headers(names, values, n, now, &o), RL_OK);
    return o;
}

static void expect_quota(const rl_provider_quota *q, int64_t limit, int64_t rem, int64_t reset)
{
    assert_int_equal(q->limit, limit);
    assert_int_equal(q->remaining, rem);
    assert_int_equal(q->reset_after_ns, reset);
}

static const int64_t NOW = INT64_C(1761393570) * S; /* 2025-10-25T11:59:30Z */

/* OpenAI's rate-limit guide, sample values, names as HTTP/1.1 may case them */
static void test_openai_docs(void **state)
{
    static const char *const names[] = { "x-ratelimit-limit-requests",
                                         "X-RateLimit-Limit-Tokens",
                                         "x-ratelimit-remaining-requests",
                                         "x-ratelimit-remaining-tokens",
                                         "x-ratelimit-reset-requests",
                                         "X-RATELIMIT-RESET-TOKENS",
                                         "content-type" };
    static const char *const values[] = { "60",   "150000",          "59", "149984", "1s",
                                          "6m0s", "application/json" };
    rl_provider_limits o = parse(names, values, N(names), NOW);
    (void)state;
    expect_quota(&o.requests, 60, 59, 1 * S);
    expect_quota(&o.tokens, 150000, 149984, 6 * RL_MINUTE);
    assert_int_equal(o.retry_after_ns, -1);
    assert_int_equal(o.n_read, 6);
    assert_int_equal(o.n_bad, 0);
}

/* A response as OpenAI sends it today, with look-alike fields to ignore */
static void test_openai_real_response(void **state)
{
    static const char *const names[] = {
        "x-ratelimit-limit-requests",           "x-ratelimit-limit-tokens",
        "x-ratelimit-limit-tokens_usage_based", "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",         "x-ratelimit-remaining-tokens_usage_based",
        "x-ratelimit-reset-requests",           "x-ratelimit-reset-tokens",
        "x-ratelimit-reset-tokens_usage_based", "openai-processing-ms"
    };
    static const char *const values[] = { "5000",   "160000", "160000", "4999", "159976",
                                          "159976", "12ms",   "9ms",    "9ms",  "1032" };
    rl_provider_limits o = parse(names, values, N(names), NOW);
    (void)state;
    expect_quota(&o.requests, 5000, 4999, 12 * RL_MILLISECOND);
    expect_quota(&o.tokens, 160000, 159976, 9 * RL_MILLISECOND);
    assert_int_equal(o.n_read, 6);
    assert_int_equal(o.n_bad, 0);
}

static void test_openai_durations(void **state)
{
    static const char *const names[] = { "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens" };
    const char *values[2];
    rl_provider_limits o;
    (void)state;
    values[0] = "2m59.56s";
    values[1] = "30";
    o = parse(names, values, 2, NOW);
    assert_int_equal(o.requests.reset_after_ns, 179560 * RL_MILLISECOND);
    assert_int_equal(o.tokens.reset_after_ns, 30 * S);
    values[0] = "1.5";
    values[1] = "0s";
    o = parse(names, values, 2, NOW);
    assert_int_equal(o.requests.reset_after_ns, 1500 * RL_MILLISECOND);
    assert_int_equal(o.tokens.reset_after_ns, 0);
    values[0] = "1h2m3s";
    values[1] = "20ms";
    o = parse(names, values, 2, NOW);
    assert_int_equal(o.requests.reset_after_ns, RL_HOUR + 2 * RL_MINUTE + 3 * S);
    assert_int_equal(o.tokens.reset_after_ns, 20 * RL_MILLISECOND);
}

/* Anthropic's rate-limit headers: resets are RFC 3339 times */
static void test_anthropic_docs(void **state)
{
    static const char *const names[] = { "anthropic-ratelimit-requests-limit",
                                         "anthropic-ratelimit-requests-remaining",
                                         "anthropic-ratelimit-requests-reset",
                                         "anthropic-ratelimit-tokens-limit",
                                         "anthropic-ratelimit-tokens-remaining",
                                         "anthropic-ratelimit-tokens-reset",
                                         "anthropic-ratelimit-input-tokens-remaining",
                                         "retry-after",
                                         "request-id" };
    static const char *const values[] = { "50",    "49",    "2025-10-25T12:00:00Z",
                                          "50000", "49500", "2025-10-25T12:01:00Z",
                                          "40000", "60",    "req_018EeWyXxfu5pfWkrYcMdjWG" };
    rl_provider_limits o = parse(names, values, N(names), NOW);
    (void)state;
    expect_quota(&o.requests, 50, 49, 30 * S);
    expect_quota(&o.tokens, 50000, 49500, 90 * S);
    assert_int_equal(o.retry_after_ns, 60 * S);
    assert_int_equal(o.n_read, 7);
    assert_int_equal(o.n_bad, 0);
}

static void test_anthropic_second_sample(void **state)
{
    static const char *const names[] = {
        "anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-tokens-limit",   "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset"
    };
    static const char *const values[] = {
        "4000", "3201", "400000", "312000", "2025-01-15T14:24:00Z", "2025-01-15T14:23:15Z"
    };
    int64_t now = INT64_C(1736950980) * S; /* 2025-01-15T14:23:00Z */
    rl_provider_limits o = parse(names, values, N(names), now);
    (void)state;
    expect_quota(&o.requests, 4000, 3201, 60 * S);
    expect_quota(&o.tokens, 400000, 312000, 15 * S);
    /* a reset already past is 0, not negative */
    o = parse(names, values, N(names), now + RL_HOUR);
    assert_int_equal(o.requests.reset_after_ns, 0);
    assert_int_equal(o.tokens.reset_after_ns, 0);
}

static int64_t reset_at(const char *v, int64_t now)
{
    static const char *const names[] = { "anthropic-ratelimit-requests-reset" };
    rl_provider_limits o = parse(names, &v, 1, now);
    return o.n_bad ? -2 : o.requests.reset_after_ns;
}

static void test_rfc3339_forms(void **state)
{
    (void)state;
    assert_int_equal(reset_at("2025-10-25T14:00:00+02:00", NOW), 30 * S);
    assert_int_equal(reset_at("2025-10-25T07:00:00-05:00", NOW), 30 * S);
    assert_int_equal(reset_at("2025-10-25T12:00:00-00:00", NOW), 30 * S);
    assert_int_equal(reset_at("2025-10-25t12:00:00z", NOW), 30 * S);
    assert_int_equal(reset_at("2025-10-25T11:59:59.5Z", NOW), 29500 * RL_MILLISECOND);
    assert_int_equal(reset_at("2025-10-25T11:59:59.123456789Z", NOW), 29123456789);
    /* digits past the nanosecond round up: never early */
    assert_int_equal(reset_at("2025-10-25T11:59:59.1234567891Z", NOW), 29123456790);
    assert_int_equal(reset_at("2025-10-25T11:59:59.1234567890000Z", NOW), 29123456789);
    /* leap day, leap second */
    assert_int_equal(reset_at("2024-02-29T00:00:00Z", INT64_C(1709164800) * S - S), S);
    assert_int_equal(reset_at("2016-12-31T23:59:60Z", INT64_C(1483228800) * S - S), S);
    /* malformed: refused, not misread */
    assert_int_equal(reset_at("2025-10-25T12:00:00", NOW), -2);  /* no offset */
    assert_int_equal(reset_at("2025-10-25 12:00:00Z", NOW), -2); /* space */
    assert_int_equal(reset_at("2025-02-29T00:00:00Z", NOW), -2); /* not a leap year */
    assert_int_equal(reset_at("2025-13-01T00:00:00Z", NOW), -2);
    assert_int_equal(reset_at("2025-00-01T00:00:00Z", NOW), -2);
    assert_int_equal(reset_at("2025-04-31T00:00:00Z", NOW), -2);
    assert_int_equal(reset_at("2025-10-25T24:00:00Z", NOW), -2);
    assert_int_equal(reset_at("2025-10-25T12:60:00Z", NOW), -2);
    assert_int_equal(reset_at("2025-10-25T12:00:61Z", NOW), -2);
    assert_int_equal(reset_at("2025-10-25T12:00:00.Z", NOW), -2);
    assert_int_equal(reset_at("2025-10-25T12:00:00+0200", NOW), -2);
    assert_int_equal(reset_at("2025-10-25T12:00:00+24:00", NOW), -2);
    assert_int_equal(reset_at("2025-10-25T12:00:00Zjunk", NOW), -2);
    assert_int_equal(reset_at("25-10-25T12:00:00Z", NOW), -2);
    assert_int_equal(reset_at("+2025-10-25T12:00:00Z", NOW), -2);
    assert_int_equal(reset_at("1761393600", NOW), -2);
    /* beyond int64 nanoseconds (year 2262) */
    assert_int_equal(reset_at("2263-01-01T00:00:00Z", NOW), -2);
    assert_int_equal(reset_at("9999-12-31T23:59:59Z", NOW), -2);
    /* a far-past now cannot overflow the difference */
    assert_int_equal(reset_at("2262-01-01T00:00:00Z", INT64_MIN), -2);
}

static int64_t retry_after(const char *v, int64_t now)
{
    static const char *const names[] = { "Retry-After" };
    rl_provider_limits o = parse(names, &v, 1, now);
    return o.n_bad ? -2 : o.retry_after_ns;
}

static void test_retry_after(void **state)
{
    const int64_t y2k = INT64_C(946684740) * S;   /* 1999-12-31T23:59:00Z */
    const int64_t nov94 = INT64_C(784111777) * S; /* 1994-11-06T08:49:37Z */
    (void)state;
    /* RFC 9110 section 10.2.3's examples */
    assert_int_equal(retry_after("120", NOW), 120 * S);
    assert_int_equal(retry_after("Fri, 31 Dec 1999 23:59:59 GMT", y2k), 59 * S);
    /* the three HTTP-date forms of RFC 9110 section 5.6.7 */
    assert_int_equal(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", nov94 - 10 * S), 10 * S);
    assert_int_equal(retry_after("Sunday, 06-Nov-94 08:49:37 GMT", nov94 - 10 * S), 10 * S);
    assert_int_equal(retry_after("Sun Nov  6 08:49:37 1994", nov94 - 10 * S), 10 * S);
    assert_int_equal(retry_after("Fri Dec 31 23:59:59 1999", y2k), 59 * S);
    /* the draft's B.1.4: Date 09:27:00, Retry-After 09:27:05 */
    assert_int_equal(retry_after("Mon, 05 Aug 2019 09:27:05 GMT", INT64_C(1564997220) * S), 5 * S);
    /* a date in the past means now */
    assert_int_equal(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", NOW), 0);
    assert_int_equal(retry_after("0", NOW), 0);
    /* two-digit years: more than 50 years ahead means the century before */
    assert_int_equal(retry_after("Friday, 01-Feb-30 00:00:00 GMT", NOW),
                     INT64_C(1896134400) * S - NOW);
    assert_int_equal(retry_after("Friday, 01-Feb-75 00:00:00 GMT", NOW),
                     INT64_C(3316204800) * S - NOW);
    assert_int_equal(retry_after("Friday, 01-Feb-76 00:00:00 GMT", NOW), 0); /* 1976 */
    assert_int_equal(retry_after("Sunday, 06-Nov-94 08:49:37 GMT", NOW), 0); /* 1994 */
    /* largest delta that fits */
    assert_int_equal(retry_after("9223372036", NOW), INT64_C(9223372036) * S);
    /* malformed */
    assert_int_equal(retry_after("9223372037", NOW), -2);
    assert_int_equal(retry_after("99999999999999999999999", NOW), -2);
    assert_int_equal(retry_after("1.5", NOW), -2);
    assert_int_equal(retry_after("-1", NOW), -2);
    assert_int_equal(retry_after("+5", NOW), -2);
    assert_int_equal(retry_after("5s", NOW), -2);
    assert_int_equal(retry_after("", NOW), -2);
    assert_int_equal(retry_after("Fri, 31 Dec 1999 23:59:59 UTC", y2k), -2);
    assert_int_equal(retry_after("fri, 31 Dec 1999 23:59:59 GMT", y2k), -2);
    assert_int_equal(retry_after("Fri, 31 dec 1999 23:59:59 GMT", y2k), -2);
    assert_int_equal(retry_after("Fri, 31 Dec 99 23:59:59 GMT", y2k), -2);
    assert_int_equal(retry_after("Fri, 32 Dec 1999 23:59:59 GMT", y2k), -2);
    assert_int_equal(retry_after("Fri, 31 Dec 1999 23:59:59 GMT junk", y2k), -2);
    assert_int_equal(retry_after("Fri,  31 Dec 1999 23:59:59 GMT", y2k), -2);
    assert_int_equal(retry_after("Fri Dec 31 23:59:59 99", y2k), -2);
    assert_int_equal(retry_after("Sun Nov 6 08:49:37 1994", nov94), -2);
}

static void test_retry_after_ms_and_caution(void **state)
{
    static const char *const names[] = { "retry-after-ms", "retry-after" };
    const char *values[2];
    rl_provider_limits o;
    (void)state;
    values[0] = "1500";
    values[1] = "1";
    o = parse(names, values, 2, NOW);
    assert_int_equal(o.retry_after_ns, 1500 * RL_MILLISECOND); /* the later of the two */
    values[1] = "2";
    o = parse(names, values, 2, NOW);
    assert_int_equal(o.retry_after_ns, 2 * S);
    values[0] = "1.5";
    o = parse(names, values, 1, NOW);
    assert_int_equal(o.retry_after_ns, -1);
    assert_int_equal(o.n_bad, 1);
}

static void test_duplicates_keep_cautious(void **state)
{
    static const char *const names[] = { "x-ratelimit-remaining-requests",
                                         "anthropic-ratelimit-requests-remaining",
                                         "x-ratelimit-reset-requests",
                                         "anthropic-ratelimit-requests-reset",
                                         "x-ratelimit-limit-requests",
                                         "X-RateLimit-Limit-Requests",
                                         "retry-after",
                                         "Retry-After" };
    static const char *const values[] = { "10",  "5",  "90s", "2025-10-25T12:00:00Z",
                                          "100", "50", "3",   "7" };
    rl_provider_limits o = parse(names, values, N(names), NOW);
    (void)state;
    expect_quota(&o.requests, 50, 5, 90 * S);
    assert_int_equal(o.retry_after_ns, 7 * S);
    expect_quota(&o.tokens, -1, -1, -1);
}

static void test_malformed_fields_ignored_alone(void **state)
{
    static const char *const bad_int[] = { "-1",
                                           "+5",
                                           "1e3",
                                           "0x10",
                                           "",
                                           "   ",
                                           "12 34",
                                           "59.5",
                                           "\xd9\xa1\xd9\xa2",
                                           "59\r",
                                           "99999999999999999999" };
    static const char *const bad_dur[] = { "6m0",   "1h-1s", "abc",
                                           "1.5.2", "-1s",   "s",
                                           ".5s",   "1.s",   "99999999999999999999s",
                                           "1 s",   "1s1" };
    const char *names[3], *values[3];
    rl_provider_limits o;
    size_t i;
    (void)state;
    names[0] = "x-ratelimit-remaining-tokens";
    names[1] = "x-ratelimit-remaining-requests";
    values[1] = "7";
    for (i = 0; i < N(bad_int); i++) {
        values[0] = bad_int[i];
        o = parse(names, values, 2, NOW);
        if (o.tokens.remaining != -1 || o.n_bad != 1)
            fail_msg("remaining '%s' read as %lld", bad_int[i], (long long)o.tokens.remaining);
        assert_int_equal(o.requests.remaining, 7); /* its neighbour still read */
        assert_int_equal(o.n_read, 1);
    }
    names[0] = "x-ratelimit-reset-tokens";
    for (i = 0; i < N(bad_dur); i++) {
        values[0] = bad_dur[i];
        o = parse(names, values, 2, NOW);
        if (o.tokens.reset_after_ns != -1 || o.n_bad != 1)
            fail_msg("reset '%s' read as %lld", bad_dur[i], (long long)o.tokens.reset_after_ns);
        assert_int_equal(o.requests.remaining, 7);
    }
    /* surrounding spaces and tabs are not part of a value */
    values[0] = " \t 6m0s \t";
    o = parse(names, values, 2, NOW);
    assert_int_equal(o.tokens.reset_after_ns, 6 * RL_MINUTE);
    assert_int_equal(o.n_bad, 0);
    /* largest integer that fits */
    names[0] = "x-ratelimit-limit-tokens";
    values[0] = "9223372036854775807";
    o = parse(names, values, 2, NOW);
    assert_int_equal(o.tokens.limit, INT64_MAX);
    values[0] = "9223372036854775808";
    o = parse(names, values, 2, NOW);
    assert_int_equal(o.tokens.limit, -1);
    assert_int_equal(o.n_bad, 1);
}

static void test_parse_arguments(void **state)
{
    const char *names[3], *values[3];
    rl_provider_limits o;
    (void)state;
    assert_int_equal(rl_parse_provider_headers(NULL, NULL, 0, NOW, NULL), RL_EINVAL);
    memset(&o, 0x55, sizeof o);
    assert_int_equal(rl_parse_provider_headers(NULL, NULL, 1, NOW, &o), RL_EINVAL);
    expect_quota(&o.requests, -1, -1, -1); /* still initialised */
    expect_quota(&o.tokens, -1, -1, -1);
    assert_int_equal(o.retry_after_ns, -1);
    assert_int_equal(rl_parse_provider_headers(NULL, NULL, 0, NOW, &o), RL_OK);
    assert_int_equal(o.n_read + o.n_bad, 0);
    /* NULL entries are skipped */
    names[0] = NULL;
    values[0] = "5";
    names[1] = "retry-after";
    values[1] = NULL;
    names[2] = "retry-after";
    values[2] = "4";
    o = parse(names, values, 3, NOW);
    assert_int_equal(o.retry_after_ns, 4 * S);
    assert_int_equal(o.n_read, 1);
    /* a name must match whole */
    names[2] = "retry-after-";
    o = parse(names, values, 3, NOW);
    assert_int_equal(o.retry_after_ns, -1);
    names[2] = "retry-afte";
    o = parse(names, values, 3, NOW);
    assert_int_equal(o.retry_after_ns, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ietf_draft_examples),
        cmocka_unit_test(test_classic_and_rounding),
        cmocka_unit_test(test_no_deciding_limit),
        cmocka_unit_test(test_buffer_exact_and_refused),
        cmocka_unit_test(test_headers_max_suffices),
        cmocka_unit_test(test_format_refuses),
        cmocka_unit_test(test_openai_docs),
        cmocka_unit_test(test_openai_real_response),
        cmocka_unit_test(test_openai_durations),
        cmocka_unit_test(test_anthropic_docs),
        cmocka_unit_test(test_anthropic_second_sample),
        cmocka_unit_test(test_rfc3339_forms),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_retry_after_ms_and_caution),
        cmocka_unit_test(test_duplicates_keep_cautious),
        cmocka_unit_test(test_malformed_fields_ignored_alone),
        cmocka_unit_test(test_parse_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
