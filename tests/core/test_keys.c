/*
 * test_keys.c - keys built from a request's identity (core/keys.c).
 *
 * What users rely on: whatever bytes a user id, agent name or address
 * holds, the key is valid, decodes back to exactly that value, never
 * equals the key of another kind or another value (nor "global"), and
 * cannot smuggle glob syntax into a pattern; keys too long or buffers too
 * small are refused, never cut; the identity order is user, agent, org,
 * ip, then global.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

static void expect_key(const char *kind, const char *value, const char *want)
{
    char buf[RL_KEY_MAX + 1], k[RL_NAME_MAX], v[RL_KEY_MAX + 1];
    if (rl_key_build(buf, sizeof buf, kind, value) != RL_OK)
        fail_msg("build(%s, '%s') refused", kind, value);
    if (strcmp(buf, want) != 0)
        fail_msg("build(%s, '%s') gave '%s', want '%s'", kind, value, buf, want);
    assert_true(rl_key_valid(buf));
    assert_int_equal(rl_key_unescape(buf, k, sizeof k, v, sizeof v), RL_OK);
    assert_string_equal(k, kind);
    assert_string_equal(v, value);
}

static void refuse_build(const char *kind, const char *value)
{
    char buf[RL_KEY_MAX + 1] = "junk";
    if (rl_key_build(buf, sizeof buf, kind, value) != RL_EINVAL)
        fail_msg("build(%s, '%s') accepted as '%s'", kind ? kind : "(null)",
                 value ? value : "(null)", buf);
    assert_string_equal(buf, "");
}

static void refuse_unescape(const char *key)
{
    char k[RL_NAME_MAX] = "junk", v[RL_KEY_MAX + 1] = "junk";
    if (rl_key_unescape(key, k, sizeof k, v, sizeof v) != RL_EINVAL)
        fail_msg("unescape('%s') accepted as %s / '%s'", key ? key : "(null)", k, v);
    assert_string_equal(k, "");
    assert_string_equal(v, "");
}

static void test_plain_values_unchanged(void **state)
{
    (void)state;
    expect_key("user", "alice", "user:alice");
    expect_key("ip", "192.168.0.1", "ip:192.168.0.1");
    expect_key("agent", "worker-7.build_bot", "agent:worker-7.build_bot");
    expect_key("org", "acme/research", "org:acme/research");
    expect_key("user", "alice@example.com", "user:alice@example.com");
    /* valid UTF-8 stays readable */
    expect_key("user", "jos\xc3\xa9", "user:jos\xc3\xa9");
    expect_key("user", "\xe6\x97\xa5\xe6\x9c\xac", "user:\xe6\x97\xa5\xe6\x9c\xac");
    expect_key("user", "\xf0\x9f\x98\x80", "user:\xf0\x9f\x98\x80");
    expect_key("user", "\xef\xbf\xbf\xf4\x8f\xbf\xbf", "user:\xef\xbf\xbf\xf4\x8f\xbf\xbf");
    expect_key("my.kind-2", "x", "my.kind-2:x");
}

static void test_escaped_bytes(void **state)
{
    (void)state;
    expect_key("user", "a:b", "user:a%3Ab");
    expect_key("ip", "2001:db8::1", "ip:2001%3Adb8%3A%3A1");
    expect_key("user", "100%", "user:100%25");
    expect_key("user", "a*", "user:a%2A");
    expect_key("user", "a?c", "user:a%3Fc");
    expect_key("user", "a\\b", "user:a%5Cb");
    expect_key("user", "a b", "user:a%20b");
    /* controls: C0, DEL and C1 (U+0085 is two bytes, both escaped) */
    expect_key("user", "\x01\t\n\r\x1f", "user:%01%09%0A%0D%1F");
    expect_key("user", "a\x7f", "user:a%7F");
    expect_key("user", "\xc2\x85", "user:%C2%85");
    expect_key("user", "\xc2\x9f\xc2\xa0", "user:%C2%9F\xc2\xa0");
}

static void test_invalid_utf8_escaped_bytewise(void **state)
{
    (void)state;
    expect_key("user", "\xff", "user:%FF");
    expect_key("user", "\x80x", "user:%80x");
    expect_key("user", "\xc0\xaf", "user:%C0%AF");               /* overlong '/' */
    expect_key("user", "\xe0\x80\xaf", "user:%E0%80%AF");        /* overlong */
    expect_key("user", "\xed\xa0\x80", "user:%ED%A0%80");        /* surrogate */
    expect_key("user", "\xf4\x90\x80\x80", "user:%F4%90%80%80"); /* past U+10FFFF */
    expect_key("user", "\xf5\x80\x80\x80", "user:%F5%80%80%80");
    expect_key("user", "\xe2\x82", "user:%E2%82"); /* truncated at the end */
    /* truncated in the middle: what follows is judged afresh, not swallowed */
    expect_key("user",
               "\xe2\x82"
               "A\xc3\xa9",
               "user:%E2%82A\xc3\xa9");
    expect_key("user", "\xe2\x82\xe2\x82\xac", "user:%E2%82\xe2\x82\xac");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every value of up to 3 bytes over an alphabet of the bytes that matter
 * (the escape character, hex digits that follow it, the separator, glob
 * characters, a lead byte and a C1 continuation), under three kinds: all
 * keys distinct, all valid, all free of glob syntax, all round trips. */
static void test_no_collisions_exhaustive(void **state)
{
    static const char alpha[] = { ':',  '%', '3',        'A',        'a',        '*', '?',
                                  '\\', ' ', (char)0xc2, (char)0x85, (char)0xa0, 'x' };
    static const char *const kinds[] = { "user", "agent", "u" };
    const size_t na = sizeof alpha, nk = sizeof kinds / sizeof kinds[0];
    size_t total = 0, cap = nk * (na + na * na + na * na * na) + 1, i, k;
    char **keys = calloc(cap, sizeof *keys);
    (void)state;
    assert_non_null(keys);
    for (k = 0; k < nk; k++) {
        size_t len;
        for (len = 1; len <= 3; len++) {
            size_t count = len == 1 ? na : len == 2 ? na * na : na * na * na, j;
            for (j = 0; j < count; j++) {
                char value[4], key[RL_KEY_MAX + 1], kk[RL_NAME_MAX], vv[RL_KEY_MAX + 1];
                size_t x = j, m;
                for (m = 0; m < len; m++, x /= na)
                    value[m] = alpha[x % na];
                value[len] = '\0';
                assert_int_equal(rl_key_build(key, sizeof key, kinds[k], value), RL_OK);
                assert_true(rl_key_valid(key));
                assert_null(strpbrk(key, "*?\\ "));
                assert_int_equal(strchr(key, ':') - key, (ptrdiff_t)strlen(kinds[k]));
                assert_int_equal(rl_key_unescape(key, kk, sizeof kk, vv, sizeof vv), RL_OK);
                assert_string_equal(kk, kinds[k]);
                assert_string_equal(vv, value);
                keys[total] = strdup(key);
                assert_non_null(keys[total]);
                total++;
            }
        }
    }
    keys[total++] = strdup("global");
    qsort(keys, total, sizeof *keys, cmp_str);
    for (i = 1; i < total; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            fail_msg("two values share the key '%s'", keys[i]);
    for (i = 0; i < total; i++)
        free(keys[i]);
    free(keys);
}

static void test_collision_attempts(void **state)
{
    char a[RL_KEY_MAX + 1], b[RL_KEY_MAX + 1];
    (void)state;
    /* a value cannot reach into another kind: "user" + "agent:x" is not
     * "user:agent:x" split differently, and kinds cannot hold ':' */
    assert_int_equal(rl_key_build(a, sizeof a, "user", "agent:x"), RL_OK);
    assert_string_equal(a, "user:agent%3Ax");
    refuse_build("user:agent", "x");
    refuse_build("user:", "x");
    /* a value that looks escaped is escaped again */
    assert_int_equal(rl_key_build(a, sizeof a, "user", "a:b"), RL_OK);
    assert_int_equal(rl_key_build(b, sizeof b, "user", "a%3Ab"), RL_OK);
    assert_string_not_equal(a, b);
    assert_string_equal(b, "user:a%253Ab");
    /* no value of kind "global" gives "global" */
    assert_int_equal(rl_key_build(a, sizeof a, "global", "x"), RL_OK);
    assert_string_equal(a, "global:x");
    /* the same value under two kinds differs */
    assert_int_equal(rl_key_build(a, sizeof a, "user", "bob"), RL_OK);
    assert_int_equal(rl_key_build(b, sizeof b, "agent", "bob"), RL_OK);
    assert_string_not_equal(a, b);
}

static void test_glob_cannot_be_injected(void **state)
{
    char k[RL_KEY_MAX + 1];
    (void)state;
    /* a key used as a pattern (rlctl --match, a rule) matches only itself */
    assert_int_equal(rl_key_build(k, sizeof k, "user", "*"), RL_OK);
    assert_false(rl_glob_match(k, "user:bob"));
    assert_true(rl_glob_match(k, k));
    assert_int_equal(rl_key_build(k, sizeof k, "user", "a?c"), RL_OK);
    assert_false(rl_glob_match(k, "user:abc"));
    assert_true(rl_glob_match(k, k));
    assert_int_equal(rl_key_build(k, sizeof k, "user", "\\*"), RL_OK);
    assert_string_equal(k, "user:%5C%2A");
    assert_false(rl_glob_match(k, "user:*"));
    /* and a tier rule "user:*" still covers every escaped user */
    assert_int_equal(rl_key_build(k, sizeof k, "user", "x:*?\\\xff"), RL_OK);
    assert_true(rl_glob_match("user:*", k));
    assert_false(rl_glob_match("agent:*", k));
}

static void test_refused_arguments(void **state)
{
    char buf[64];
    char kind64[RL_NAME_MAX + 1];
    (void)state;
    refuse_build(NULL, "x");
    refuse_build("user", NULL);
    refuse_build("user", "");
    refuse_build("", "x");
    refuse_build("us er", "x");
    refuse_build("us/er", "x");
    refuse_build("us*", "x");
    refuse_build("\xc3\xa9", "x");
    memset(kind64, 'k', RL_NAME_MAX);
    kind64[RL_NAME_MAX] = '\0';
    refuse_build(kind64, "x");
    kind64[RL_NAME_MAX - 1] = '\0'; /* 63 bytes: the longest name */
    assert_int_equal(rl_key_build(buf, sizeof buf, "u", "x"), RL_OK);
    assert_int_equal(rl_key_build(NULL, 10, "u", "x"), RL_EINVAL);
    {
        char big[RL_KEY_MAX + 1];
        assert_int_equal(rl_key_build(big, sizeof big, kind64, "x"), RL_OK);
        assert_int_equal(strlen(big), RL_NAME_MAX + 1);
    }
}

static void test_buffer_too_small_and_key_max(void **state)
{
    char buf[RL_KEY_MAX + 8], value[RL_KEY_MAX + 8];
    (void)state;
    /* "user:alice" is 10 bytes: it needs 11 */
    memset(buf, 'z', sizeof buf);
    assert_int_equal(rl_key_build(buf, 10, "user", "alice"), RL_EINVAL);
    assert_string_equal(buf, "");
    assert_int_equal(rl_key_build(buf, 11, "user", "alice"), RL_OK);
    assert_string_equal(buf, "user:alice");
    buf[0] = 'z';
    assert_int_equal(rl_key_build(buf, 0, "user", "alice"), RL_EINVAL);
    assert_int_equal(buf[0], 'z'); /* len 0: not even the NUL is written */
    /* RL_KEY_MAX counts the escaped form: 5 + 507 fits, 5 + 508 does not */
    memset(value, 'a', 507);
    value[507] = '\0';
    assert_int_equal(rl_key_build(buf, sizeof buf, "user", value), RL_OK);
    assert_int_equal(strlen(buf), RL_KEY_MAX);
    value[507] = 'a';
    value[508] = '\0';
    assert_int_equal(rl_key_build(buf, sizeof buf, "user", value), RL_EINVAL);
    /* 169 ':' escape to 507 bytes; 170 would be 510 */
    memset(value, ':', 169);
    value[169] = '\0';
    assert_int_equal(rl_key_build(buf, sizeof buf, "user", value), RL_OK);
    assert_int_equal(strlen(buf), RL_KEY_MAX);
    value[169] = ':';
    value[170] = '\0';
    assert_int_equal(rl_key_build(buf, sizeof buf, "user", value), RL_EINVAL);
    /* a 4-byte character is never split at the limit */
    memset(value, 'a', 504);
    memcpy(value + 504, "\xf0\x9f\x98\x80", 5);
    assert_int_equal(rl_key_build(buf, sizeof buf, "user", value), RL_EINVAL);
    memcpy(value + 503, "\xf0\x9f\x98\x80", 5);
    assert_int_equal(rl_key_build(buf, sizeof buf, "user", value), RL_OK);
    assert_int_equal(strlen(buf), RL_KEY_MAX);
}

static void test_unescape_strict(void **state)
{
    char k[RL_NAME_MAX], v[8];
    (void)state;
    refuse_unescape(NULL);
    refuse_unescape("global");
    refuse_unescape("user:");
    refuse_unescape(":x");
    refuse_unescape("us er:x");
    refuse_unescape("user:%41"); /* 'A' needs no escape */
    refuse_unescape("user:%3a"); /* lower-case hex is not what build writes */
    refuse_unescape("user:%3");
    refuse_unescape("user:%");
    refuse_unescape("user:%ZZ");
    refuse_unescape("user:%00"); /* NUL cannot have come from a C string */
    refuse_unescape("user:a:b"); /* a raw ':' in the value */
    refuse_unescape("user:a*");
    refuse_unescape("user:a b");
    refuse_unescape("user:\xff"); /* not even a valid key */
    /* outputs may be skipped, and must fit */
    assert_int_equal(rl_key_unescape("user:a%3Ab", NULL, 0, v, sizeof v), RL_OK);
    assert_string_equal(v, "a:b");
    assert_int_equal(rl_key_unescape("user:a%3Ab", k, sizeof k, NULL, 0), RL_OK);
    assert_string_equal(k, "user");
    assert_int_equal(rl_key_unescape("user:a%3Ab", NULL, 0, NULL, 0), RL_OK);
    assert_int_equal(rl_key_unescape("user:a%3Ab", k, 4, v, sizeof v), RL_EINVAL);
    assert_int_equal(rl_key_unescape("user:a%3Ab", k, 5, v, 3), RL_EINVAL);
    assert_int_equal(rl_key_unescape("user:a%3Ab", k, 5, v, 4), RL_OK);
    assert_string_equal(v, "a:b");
}

static void expect_for(const rl_key_ctx *ctx, const char *want)
{
    char buf[RL_KEY_MAX + 1];
    assert_int_equal(rl_key_for(buf, sizeof buf, ctx), RL_OK);
    assert_string_equal(buf, want);
}

static void test_key_for_order(void **state)
{
    rl_key_ctx c;
    char buf[RL_KEY_MAX + 1], longv[RL_KEY_MAX + 1];
    (void)state;
    memset(&c, 0, sizeof c);
    expect_for(NULL, "global");
    expect_for(&c, "global");
    c.ip = "10.0.0.1";
    expect_for(&c, "ip:10.0.0.1");
    c.org = "acme";
    expect_for(&c, "org:acme");
    c.agent = "coder:1";
    expect_for(&c, "agent:coder%3A1");
    c.user = "alice";
    expect_for(&c, "user:alice");
    /* "" counts as absent */
    c.user = "";
    expect_for(&c, "agent:coder%3A1");
    c.agent = "";
    c.org = "";
    expect_for(&c, "ip:10.0.0.1");
    c.ip = "";
    expect_for(&c, "global");
    /* present but unusable: refused, not charged to a wider key */
    memset(longv, 'a', RL_KEY_MAX);
    longv[RL_KEY_MAX] = '\0';
    c.user = longv;
    c.ip = "10.0.0.1";
    assert_int_equal(rl_key_for(buf, sizeof buf, &c), RL_EINVAL);
    assert_string_equal(buf, "");
    /* "global" needs 7 bytes */
    memset(&c, 0, sizeof c);
    assert_int_equal(rl_key_for(buf, 6, &c), RL_EINVAL);
    assert_int_equal(rl_key_for(buf, 7, &c), RL_OK);
    assert_int_equal(rl_key_for(NULL, 7, &c), RL_EINVAL);
    assert_int_equal(rl_key_for(buf, sizeof buf, NULL), RL_OK); /* no identity at all */
    assert_string_equal(buf, "global");
}

static void test_keys_for(void **state)
{
    rl_key_ctx c;
    char keys[RL_KEYS_FOR_MAX][RL_KEY_MAX + 1];
    size_t n = 99;
    (void)state;
    memset(&c, 0, sizeof c);
    assert_int_equal(rl_keys_for(&c, keys, RL_KEYS_FOR_MAX, &n), RL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(keys[0], "global");
    c.user = "alice";
    assert_int_equal(rl_keys_for(&c, keys, RL_KEYS_FOR_MAX, &n), RL_OK);
    assert_int_equal(n, 2);
    assert_string_equal(keys[0], "user:alice");
    assert_string_equal(keys[1], "global");
    c.ip = "::1";
    c.org = "acme";
    c.agent = "a1";
    assert_int_equal(rl_keys_for(&c, keys, RL_KEYS_FOR_MAX, &n), RL_OK);
    assert_int_equal(n, RL_KEYS_FOR_MAX);
    assert_string_equal(keys[0], "user:alice");
    assert_string_equal(keys[1], "agent:a1");
    assert_string_equal(keys[2], "org:acme");
    assert_string_equal(keys[3], "ip:%3A%3A1");
    assert_string_equal(keys[4], "global");
    /* too few slots: refused, and *n says how many are needed */
    n = 0;
    assert_int_equal(rl_keys_for(&c, keys, 4, &n), RL_EINVAL);
    assert_int_equal(n, 5);
    assert_int_equal(rl_keys_for(&c, NULL, 0, &n), RL_EINVAL);
    assert_int_equal(n, 5);
    assert_int_equal(rl_keys_for(&c, keys, 5, NULL), RL_EINVAL);
    assert_int_equal(rl_keys_for(NULL, keys, 1, &n), RL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(keys[0], "global");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_values_unchanged),
        cmocka_unit_test(test_escaped_bytes),
        cmocka_unit_test(test_invalid_utf8_escaped_bytewise),
        cmocka_unit_test(test_no_collisions_exhaustive),
        cmocka_unit_test(test_collision_attempts),
        cmocka_unit_test(test_glob_cannot_be_injected),
        cmocka_unit_test(test_refused_arguments),
        cmocka_unit_test(test_buffer_too_small_and_key_max),
        cmocka_unit_test(test_unescape_strict),
        cmocka_unit_test(test_key_for_order),
        cmocka_unit_test(test_keys_for),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
