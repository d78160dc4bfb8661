/*
 * test_parse.c - rate and duration notation, their formatting, and globs
 * (core/parse.c).
 *
 * Checks that every documented spelling parses to the exact integer value,
 * that everything outside the notation (signs, spaces, overflow, 'm' in a
 * rate, inexact decimals) is refused, and that format then parse gives the
 * value back, including at the bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "parse.h"
#include "policy.h"

static void expect_rate(const char *s, int64_t count, int64_t period)
{
    int64_t c = -1, p = -1;
    if (rl_parse_rate(s, &c, &p) != RL_OK)
        fail_msg("rate '%s' refused", s);
    if (c != count || p != period)
        fail_msg("rate '%s' gave %lld/%lld", s, (long long)c, (long long)p);
}

static void refuse_rate(const char *s)
{
    int64_t c = 7, p = 9;
    if (rl_parse_rate(s, &c, &p) != RL_EINVAL)
        fail_msg("rate '%s' accepted", s ? s : "(null)");
    assert_int_equal(c, 7); /* outputs untouched on failure */
    assert_int_equal(p, 9);
}

static void test_rate_units(void **state)
{
    (void)state;
    expect_rate("5/s", 5, RL_SECOND);
    expect_rate("5/sec", 5, RL_SECOND);
    expect_rate("5/second", 5, RL_SECOND);
    expect_rate("5/seconds", 5, RL_SECOND);
    expect_rate("600/min", 600, RL_MINUTE);
    expect_rate("600/minute", 600, RL_MINUTE);
    expect_rate("600/minutes", 600, RL_MINUTE);
    expect_rate("1/h", 1, RL_HOUR);
    expect_rate("1/hr", 1, RL_HOUR);
    expect_rate("1/hour", 1, RL_HOUR);
    expect_rate("1/hours", 1, RL_HOUR);
    expect_rate("1000/d", 1000, RL_DAY);
    expect_rate("1000/day", 1000, RL_DAY);
    expect_rate("1000/days", 1000, RL_DAY);
    expect_rate("3/w", 3, 7 * RL_DAY);
    expect_rate("3/week", 3, 7 * RL_DAY);
    expect_rate("3/weeks", 3, 7 * RL_DAY);
    expect_rate("2/ms", 2, RL_MILLISECOND);
    expect_rate("2/us", 2, RL_MICROSECOND);
    expect_rate("2/ns", 2, 1);
}

static void test_rate_multiples(void **state)
{
    (void)state;
    expect_rate("100/30s", 100, 30 * RL_SECOND);
    expect_rate("500/7d", 500, 7 * RL_DAY);
    expect_rate("1/1s", 1, RL_SECOND);
    expect_rate("1/15min", 1, 15 * RL_MINUTE);
    expect_rate("9/250ms", 9, 250 * RL_MILLISECOND);
    expect_rate("1/007s", 1, 7 * RL_SECOND);
}

static void test_rate_bounds(void **state)
{
    char buf[64];
    (void)state;
    expect_rate("1099511627776/s", RL_COUNT_MAX, RL_SECOND);
    refuse_rate("1099511627777/s");
    snprintf(buf, sizeof buf, "1/%lldns", (long long)RL_PERIOD_MAX);
    expect_rate(buf, 1, RL_PERIOD_MAX);
    snprintf(buf, sizeof buf, "1/%lldns", (long long)RL_PERIOD_MAX + 1);
    refuse_rate(buf);
    expect_rate("1/2607w", 1, 2607 * 7 * RL_DAY);
    refuse_rate("1/2615w");                   /* just past 50 * 366 days */
    refuse_rate("99999999999999999999999/s"); /* past int64 */
    refuse_rate("1/99999999999999999999999s");
    refuse_rate("1/9223372036854775807w"); /* multiplication overflow */
}

static void test_rate_refused(void **state)
{
    static const char *const bad[] = {
        "",     "/s",    "5",      "5/",       "5/30",    "0/s",    "00/s",   "-5/s",
        "+5/s", " 5/s",  "5/s ",   "5 /s",     "5/ s",    "5/m",    "5/M",    "5/S",
        "5/0s", "5/-1s", "5/+1s",  "5/1.5s",   "1.5/s",   "5/s/s",  "5/ss",   "5/fortnight",
        "5//s", "0x5/s", "5/1e3s", "5/1_000s", "5/sec\n", "five/s", "5/mins", "5/1m30s",
    };
    size_t i;
    char why[128];
    int64_t c, p;
    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refuse_rate(bad[i]);
    refuse_rate(NULL);
    assert_int_equal(rl_parse_rate("5/s", NULL, &p), RL_EINVAL);
    assert_int_equal(rl_parse_rate("5/s", &c, NULL), RL_EINVAL);

    assert_int_equal(rl_parse_rate_ex("5/m", &c, &p, why, sizeof why), RL_EINVAL);
    assert_string_equal(why, "unit 'm' is ambiguous (write min or ms)");
    assert_int_equal(rl_parse_rate_ex("0/s", &c, &p, why, sizeof why), RL_EINVAL);
    assert_string_equal(why, "count must be at least 1");
    assert_int_equal(rl_parse_rate_ex("5/y\x01", &c, &p, why, sizeof why), RL_EINVAL);
    assert_string_equal(why, "unknown unit 'y?' (use ns, us, ms, s, min, h, day or week)");
}

static void expect_dur(const char *s, int64_t ns)
{
    int64_t v = -1;
    if (rl_parse_duration(s, &v) != RL_OK)
        fail_msg("duration '%s' refused", s);
    if (v != ns)
        fail_msg("duration '%s' gave %lld, want %lld", s, (long long)v, (long long)ns);
}

static void refuse_dur(const char *s)
{
    int64_t v = 42;
    if (rl_parse_duration(s, &v) != RL_EINVAL)
        fail_msg("duration '%s' accepted", s ? s : "(null)");
    assert_int_equal(v, 42);
}

static void test_duration(void **state)
{
    (void)state;
    expect_dur("0", 0);
    expect_dur("0s", 0);
    expect_dur("1m30s", 90 * RL_SECOND);
    expect_dur("90s", 90 * RL_SECOND);
    expect_dur("250ms", 250 * RL_MILLISECOND);
    expect_dur("2h", 2 * RL_HOUR);
    expect_dur("1d", RL_DAY);
    expect_dur("10us", 10 * RL_MICROSECOND);
    expect_dur("10\xc2\xb5s", 10 * RL_MICROSECOND);
    expect_dur("10\xce\xbcs", 10 * RL_MICROSECOND);
    expect_dur("5ns", 5);
    expect_dur("1h2m3s4ms5us6ns", RL_HOUR + 2 * RL_MINUTE + 3 * RL_SECOND + 4 * RL_MILLISECOND +
                                      5 * RL_MICROSECOND + 6);
    expect_dur("1s1s", 2 * RL_SECOND); /* Go accepts repeats; so do we */
    expect_dur("1.5s", 1500 * RL_MILLISECOND);
    expect_dur("0.5h", 30 * RL_MINUTE);
    expect_dur("1.25ms", 1250 * RL_MICROSECOND);
    expect_dur("0.000000001s", 1);
    expect_dur("1.500000000000000000000000s", 1500 * RL_MILLISECOND);
    expect_dur("0.1d", 8640 * RL_SECOND);
    expect_dur("9223372036854775807ns", INT64_MAX);
    expect_dur("106751d23h47m16.854775807s", INT64_MAX);
}

static void test_duration_refused(void **state)
{
    static const char *const bad[] = {
        "",
        "s",
        "1",
        "10",
        "-1s",
        "+1s",
        " 1s",
        "1s ",
        "1 s",
        "1S",
        "1.s",
        ".5s",
        "1.5ns",
        "0.0000000001s",
        "1.5",
        "1e3s",
        "1w",
        "1y",
        "1m30",
        "1ms2",
        "0x10s",
        "1,5s",
        "1..5s",
        "9223372036854775808ns",
        "106751d23h47m16.854775808s",
        "9223372036854775807s",
        "99999999999999999999d",
        "1.0000000000000000001s",
        "5000000000000000000ns5000000000000000000ns",
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refuse_dur(bad[i]);
    refuse_dur(NULL);
    assert_int_equal(rl_parse_duration("1s", NULL), RL_EINVAL);
}

static void expect_fmt_dur(int64_t ns, const char *want)
{
    char buf[64];
    int64_t back = -1;
    assert_int_equal(rl_format_duration(ns, buf, sizeof buf), RL_OK);
    assert_string_equal(buf, want);
    assert_int_equal(rl_parse_duration(buf, &back), RL_OK);
    assert_int_equal(back, ns);
}

static void test_format_duration(void **state)
{
    char small[4];
    (void)state;
    expect_fmt_dur(0, "0s");
    expect_fmt_dur(1, "1ns");
    expect_fmt_dur(999, "999ns");
    expect_fmt_dur(1500, "1.5us");
    expect_fmt_dur(250 * RL_MILLISECOND, "250ms");
    expect_fmt_dur(1250 * RL_MICROSECOND, "1.25ms");
    expect_fmt_dur(RL_SECOND, "1s");
    expect_fmt_dur(1500 * RL_MILLISECOND, "1.5s");
    expect_fmt_dur(90 * RL_SECOND, "1m30s");
    expect_fmt_dur(RL_MINUTE + 1, "1m0.000000001s");
    expect_fmt_dur(2 * RL_HOUR, "2h");
    expect_fmt_dur(RL_DAY + 30 * RL_SECOND, "1d30s");
    expect_fmt_dur(RL_DAY + RL_HOUR + RL_MINUTE + RL_SECOND, "1d1h1m1s");
    expect_fmt_dur(INT64_MAX, "106751d23h47m16.854775807s");

    assert_int_equal(rl_format_duration(-1, small, sizeof small), RL_EINVAL);
    assert_int_equal(rl_format_duration(RL_SECOND, NULL, 8), RL_EINVAL);
    assert_int_equal(rl_format_duration(250 * RL_MILLISECOND, small, sizeof small), RL_EINVAL);
    assert_int_equal(rl_format_duration(RL_SECOND, small, 2), RL_EINVAL);
    assert_int_equal(rl_format_duration(RL_SECOND, small, 3), RL_OK);
    assert_string_equal(small, "1s");
}

static void expect_fmt_rate(int64_t count, int64_t period, const char *want)
{
    char buf[64];
    int64_t c = -1, p = -1;
    assert_int_equal(rl_format_rate(count, period, buf, sizeof buf), RL_OK);
    assert_string_equal(buf, want);
    assert_int_equal(rl_parse_rate(buf, &c, &p), RL_OK);
    assert_int_equal(c, count);
    assert_int_equal(p, period);
}

static void test_format_rate(void **state)
{
    char buf[8];
    (void)state;
    expect_fmt_rate(600, RL_MINUTE, "600/min");
    expect_fmt_rate(100, 30 * RL_SECOND, "100/30s");
    expect_fmt_rate(5, RL_SECOND, "5/s");
    expect_fmt_rate(1000, RL_DAY, "1000/day");
    expect_fmt_rate(1, RL_HOUR, "1/h");
    expect_fmt_rate(500, 7 * RL_DAY, "500/week");
    expect_fmt_rate(500, 14 * RL_DAY, "500/2w");
    expect_fmt_rate(3, 3 * RL_DAY, "3/3d");
    expect_fmt_rate(3, 90 * RL_MINUTE, "3/90min");
    expect_fmt_rate(3, 90 * RL_SECOND, "3/90s");
    expect_fmt_rate(7, 250 * RL_MILLISECOND, "7/250ms");
    expect_fmt_rate(7, RL_MICROSECOND, "7/us");
    expect_fmt_rate(7, 1, "7/ns");
    expect_fmt_rate(7, RL_SECOND + 1, "7/1000000001ns");
    expect_fmt_rate(RL_COUNT_MAX, RL_PERIOD_MAX, "1099511627776/18300d");

    assert_int_equal(rl_format_rate(0, RL_SECOND, buf, sizeof buf), RL_EINVAL);
    assert_int_equal(rl_format_rate(RL_COUNT_MAX + 1, RL_SECOND, buf, sizeof buf), RL_EINVAL);
    assert_int_equal(rl_format_rate(1, 0, buf, sizeof buf), RL_EINVAL);
    assert_int_equal(rl_format_rate(1, RL_PERIOD_MAX + 1, buf, sizeof buf), RL_EINVAL);
    assert_int_equal(rl_format_rate(1, RL_SECOND, NULL, 8), RL_EINVAL);
    assert_int_equal(rl_format_rate(1000, RL_DAY, buf, sizeof buf), RL_EINVAL); /* 8 + NUL */
    assert_string_equal(buf, "");
    assert_int_equal(rl_format_rate(100, RL_DAY, buf, sizeof buf), RL_OK);
    assert_string_equal(buf, "100/day");
}

/* Every count/period pair on a grid round-trips through the notation. */
static void test_rate_roundtrip_grid(void **state)
{
    static const int64_t counts[] = { 1, 2, 3, 7, 10, 999, 1000, 86400, RL_COUNT_MAX };
    static const int64_t periods[] = { 1,
                                       999,
                                       RL_MICROSECOND,
                                       RL_MILLISECOND,
                                       RL_SECOND,
                                       RL_SECOND + 1,
                                       59 * RL_SECOND,
                                       RL_MINUTE,
                                       61 * RL_MINUTE,
                                       RL_HOUR,
                                       RL_DAY,
                                       6 * RL_DAY,
                                       7 * RL_DAY,
                                       8 * RL_DAY,
                                       RL_PERIOD_MAX - 1,
                                       RL_PERIOD_MAX };
    size_t i, j;
    (void)state;
    for (i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        for (j = 0; j < sizeof periods / sizeof periods[0]; j++) {
            char buf[64];
            int64_t c, p;
            assert_int_equal(rl_format_rate(counts[i], periods[j], buf, sizeof buf), RL_OK);
            assert_int_equal(rl_parse_rate(buf, &c, &p), RL_OK);
            assert_int_equal(c, counts[i]);
            assert_int_equal(p, periods[j]);
        }
    }
}

static void test_duration_roundtrip_walk(void **state)
{
    /* A deterministic walk over magnitudes: multiply by 7 and add a small
     * odd part, which hits every unit boundary and leaves remainders. */
    int64_t v = 0;
    (void)state;
    while (v <= INT64_MAX / 8) {
        char buf[64];
        int64_t back;
        assert_int_equal(rl_format_duration(v, buf, sizeof buf), RL_OK);
        assert_int_equal(rl_parse_duration(buf, &back), RL_OK);
        assert_int_equal(back, v);
        v = v * 7 + 3;
    }
}

static void test_glob(void **state)
{
    static const struct {
        const char *pat, *s;
        int want;
    } cases[] = {
        { "*", "", 1 },
        { "*", "anything", 1 },
        { "", "", 1 },
        { "", "a", 0 },
        { "a", "", 0 },
        { "ip:*", "ip:1.2.3.4", 1 },
        { "ip:*", "ip:", 1 },
        { "ip:*", "user:1", 0 },
        { "user:admin-*", "user:admin-bob", 1 },
        { "user:admin-*", "user:bob", 0 },
        { "?", "a", 1 },
        { "?", "", 0 },
        { "?", "ab", 0 },
        { "a?c", "abc", 1 },
        { "a?c", "ac", 0 },
        { "*b", "aaab", 1 },
        { "*b", "aaba", 0 },
        { "a*b*c", "aXbYc", 1 },
        { "a*b*c", "abc", 1 },
        { "a*b*c", "acb", 0 },
        { "*a*a*", "banana", 1 },
        { "**", "x", 1 },
        { "*?", "", 0 },
        { "*?", "x", 1 },
        { "a\\*", "a*", 1 },
        { "a\\*", "ab", 0 },
        { "a\\?", "a?", 1 },
        { "a\\?", "ab", 0 },
        { "a\\\\b", "a\\b", 1 },
        { "\\a", "a", 1 },
        { "a\\", "a\\", 1 }, /* a lone trailing backslash is itself */
        { "a\\", "a", 0 },
        { "*\\*", "abc*", 1 },
        { "*\\*", "abc", 0 },
        { "[ab]", "a", 0 }, /* no classes: brackets are literal */
        { "[ab]", "[ab]", 1 },
        { "caf\xc3\xa9:*", "caf\xc3\xa9:1", 1 },
        { "caf?:*", "caf\xc3\xa9:1", 0 }, /* '?' is one byte, not one character */
        { "caf??:*", "caf\xc3\xa9:1", 1 },
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (rl_glob_match(cases[i].pat, cases[i].s) != cases[i].want)
            fail_msg("glob '%s' on '%s': want %d", cases[i].pat, cases[i].s, cases[i].want);
    assert_int_equal(rl_glob_match(NULL, "a"), 0);
    assert_int_equal(rl_glob_match("a", NULL), 0);
}

/* Patterns that take exponential time in naive recursive matchers finish
 * at once here; the test would time out otherwise. */
static void test_glob_pathological(void **state)
{
    char pat[200], s[4096];
    size_t i;
    (void)state;
    for (i = 0; i < 99; i++) {
        pat[2 * i] = 'a';
        pat[2 * i + 1] = '*';
    }
    pat[198] = 'b';
    pat[199] = '\0';
    memset(s, 'a', sizeof s - 1);
    s[sizeof s - 1] = '\0';
    for (i = 0; i < 1000; i++)
        assert_int_equal(rl_glob_match(pat, s), 0);
    s[sizeof s - 2] = 'b';
    assert_int_equal(rl_glob_match(pat, s), 1);
}

static void test_quote(void **state)
{
    char buf[64];
    char longs[100];
    (void)state;
    rl_parse_quote(buf, sizeof buf,
                   "a\nb\x7f"
                   "c\xc2\x85"
                   "d\xc3\xa9",
                   10);
    assert_string_equal(buf, "a?b?c?d\xc3\xa9");
    memset(longs, 'x', sizeof longs);
    rl_parse_quote(buf, sizeof buf, longs, sizeof longs);
    assert_int_equal(strlen(buf), 43);
    assert_string_equal(buf + 40, "...");
    rl_parse_quote(buf, 5, "abcdef", 6);
    assert_true(strlen(buf) < 5);
    rl_parse_quote(buf, sizeof buf, "a\0b", 3);
    assert_string_equal(buf, "a?b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_units),
        cmocka_unit_test(test_rate_multiples),
        cmocka_unit_test(test_rate_bounds),
        cmocka_unit_test(test_rate_refused),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_duration_refused),
        cmocka_unit_test(test_format_duration),
        cmocka_unit_test(test_format_rate),
        cmocka_unit_test(test_rate_roundtrip_grid),
        cmocka_unit_test(test_duration_roundtrip_walk),
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_glob_pathological),
        cmocka_unit_test(test_quote),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
