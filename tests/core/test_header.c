/*
 * test_header.c - the public headers as a user compiles them, and the
 * versions of rl_options that rl_options_init and rl_open accept.
 *
 * tests/CMakeLists.txt builds this file in two ways:
 *   - as objects, with RL_TEST_HEADER = 1 (rl.h), 2 (rl_admin.h),
 *     3 (rl_http.h) or 4 (rl.h with RL_NO_COMPAT_INCLUDES, as the next
 *     release will have it): each header alone, first and only, as strict
 *     C11 (-std=c11 -pedantic, no _GNU_SOURCE, -Wconversion). A header that
 *     needs an extension, a feature macro or another header first fails
 *     the build;
 *   - as the test program test_header: rl_options_init, the version range
 *     of rl_open, and the ABI promises of the typed enumerations.
 */
#ifdef RL_TEST_HEADER

#ifdef _GNU_SOURCE
#error "the public headers are checked without _GNU_SOURCE"
#endif

#if RL_TEST_HEADER == 1
#include "rl.h"
#elif RL_TEST_HEADER == 2
#include "rl_admin.h"
#ifndef RL_H
#error "rl_admin.h must include rl.h"
#endif
#elif RL_TEST_HEADER == 3
#include "rl_http.h"
#ifndef RL_H
#error "rl_http.h must include rl.h"
#endif
#elif RL_TEST_HEADER == 4
#define RL_NO_COMPAT_INCLUDES
#include "rl.h"
#if defined(RL_ADMIN_H) || defined(RL_HTTP_H)
#error "RL_NO_COMPAT_INCLUDES: rl.h must not include rl_admin.h or rl_http.h"
#endif
#else
#error "RL_TEST_HEADER must be 1..4"
#endif

/* The enumerations replace ints: same size, same signedness. */
_Static_assert(sizeof(rl_algorithm) == sizeof(int), "rl_algorithm is not int-sized");
_Static_assert(sizeof(rl_fail_mode) == sizeof(int), "rl_fail_mode is not int-sized");
_Static_assert(sizeof(rl_durability) == sizeof(int), "rl_durability is not int-sized");
_Static_assert(sizeof(rl_priority) == sizeof(int), "rl_priority is not int-sized");
_Static_assert(sizeof(rl_tier_source) == sizeof(int), "rl_tier_source is not int-sized");
_Static_assert(sizeof(rl_error_code) == sizeof(int), "rl_error_code is not int-sized");
#if RL_TEST_HEADER == 2
_Static_assert(sizeof(rl_sort) == sizeof(int), "rl_sort is not int-sized");
_Static_assert(sizeof(rl_check_status) == sizeof(int), "rl_check_status is not int-sized");
#endif

int rl_header_test_anchor(void);
int rl_header_test_anchor(void)
{
    const rl_limit limits[] = { RL_PER_SECOND(10, 20), RL_PER_MINUTE(600, 0),
                                RL_CONCURRENT("slots", NULL, 4),
                                RL_SLIDING_WINDOW("w", "tokens", 1000, RL_MINUTE) };
    rl_options opts = RL_OPTIONS_INIT;
    rl_result res;
    int (*init)(rl_options *, unsigned int) = rl_options_init;
    int (*open)(rl **, const char *, const rl_options *) = rl_open;
    int (*wait_ex)(rl *, const char *, const rl_cost *, size_t, rl_priority, int64_t,
                   const volatile sig_atomic_t *, rl_result *) = rl_wait_ex;
    int n = 0;
    opts.default_limits = limits;
    opts.n_default_limits = sizeof limits / sizeof limits[0];
    opts.fail_mode = RL_FAIL_OPEN;
    res.allowed = 0;
    n += init != NULL;
    n += open != NULL;
    n += wait_ex != NULL;
#if RL_TEST_HEADER == 2
    {
        rl_key_cb key_cb = NULL;
        rl_check_cb check_cb = NULL;
        rl_write_cb write_cb = NULL;
        int (*keys_list)(rl *, const char *, rl_sort, size_t, rl_key_cb, void *) = rl_keys_list;
        int (*doctor)(rl *, rl_check_cb, void *) = rl_doctor;
        int (*export_)(rl *, rl_write_cb, void *) = rl_export;
        n += key_cb == NULL && check_cb == NULL && write_cb == NULL;
        n += keys_list != NULL && doctor != NULL && export_ != NULL;
    }
#endif
#if RL_TEST_HEADER == 3
    {
        char buf[RL_HEADERS_MAX];
        n += rl_format_headers(&res, 0, RL_HEADERS_IETF, buf, sizeof buf) == RL_OK;
    }
#endif
    return (int)opts.n_default_limits + (int)opts.version + res.allowed + n;
}

#else /* the test program */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rl.h"

/* A struct with every byte set, to see what a call wrote. */
static void poison(rl_options *o)
{
    memset(o, 0xA5, sizeof *o);
}

static int untouched(const rl_options *o)
{
    const unsigned char *p = (const unsigned char *)o;
    size_t i;
    for (i = 0; i < sizeof *o; i++)
        if (p[i] != 0xA5)
            return 0;
    return 1;
}

static void assert_defaults(const rl_options *o, unsigned int version)
{
    const rl_options d = RL_OPTIONS_INIT;
    assert_int_equal(o->version, version);
    assert_null(o->default_limits);
    assert_int_equal(o->n_default_limits, d.n_default_limits);
    assert_int_equal(o->busy_timeout_ms, d.busy_timeout_ms);
    assert_int_equal(o->durability, d.durability);
    assert_int_equal(o->fail_mode, d.fail_mode);
    assert_null(o->clock);
    assert_null(o->clock_ctx);
    assert_int_equal(o->file_mode, d.file_mode);
    assert_null(o->tiers_file);
    assert_int_equal(o->flags, d.flags);
    assert_int_equal(o->busy_strategy, d.busy_strategy);
}

/* rl_options_init gives RL_OPTIONS_INIT, for every version it knows. */
static void test_options_init(void **state)
{
    rl_options o;
    unsigned int v;
    (void)state;
    for (v = 1; v <= RL_OPTIONS_VERSION; v++) {
        poison(&o);
        assert_int_equal(rl_options_init(&o, v), RL_OK);
        assert_defaults(&o, v);
    }
    assert_int_equal(o.version, RL_OPTIONS_VERSION);
    assert_int_equal(o.busy_timeout_ms, 5000);
    assert_int_equal(o.file_mode, 0600);
    assert_int_equal(o.fail_mode, RL_FAIL_CLOSED);
}

/* A version it does not know, or no struct: RL_EINVAL, nothing written. */
static void test_options_init_refuses(void **state)
{
    static const unsigned int bad[] = { 0, RL_OPTIONS_VERSION + 1, RL_OPTIONS_VERSION + 100, ~0u };
    rl_options o;
    size_t i;
    (void)state;
    assert_int_equal(rl_options_init(NULL, RL_OPTIONS_VERSION), RL_EINVAL);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        poison(&o);
        assert_int_equal(rl_options_init(&o, bad[i]), RL_EINVAL);
        assert_true(untouched(&o));
    }
}

/* rl_open takes every version from 1 to RL_OPTIONS_VERSION, and options
 * made either way decide alike. */
static void test_open_version_range(void **state)
{
    static const rl_limit lim[] = { RL_PER_MINUTE(2, 0) };
    rl_options o;
    rl_result res;
    unsigned int v;
    rl *r = NULL;
    (void)state;
    for (v = 1; v <= RL_OPTIONS_VERSION; v++) {
        assert_int_equal(rl_options_init(&o, v), RL_OK);
        o.default_limits = lim;
        o.n_default_limits = 1;
        assert_int_equal(rl_open(&r, ":memory:", &o), RL_OK);
        assert_int_equal(rl_allow(r, "k", 2, &res), RL_OK);
        assert_true(res.allowed);
        assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
        assert_false(res.allowed);
        assert_string_equal(rl_errmsg(r), "no error");
        rl_close(r);
        r = NULL;
    }
}

/* A newer version (a program built with a newer rl.h) and version 0 (a
 * struct not initialised) are refused, each with a message that says so. */
static void test_open_version_refused(void **state)
{
    static const unsigned int newer[] = { RL_OPTIONS_VERSION + 1, ~0u };
    rl_options o = RL_OPTIONS_INIT;
    size_t i;
    rl *r = NULL;
    (void)state;
    for (i = 0; i < sizeof newer / sizeof newer[0]; i++) {
        o.version = newer[i];
        assert_int_equal(rl_open(&r, ":memory:", &o), RL_EINVAL);
        assert_non_null(r);
        assert_non_null(strstr(rl_errmsg(r), "newer"));
        assert_non_null(strstr(rl_errmsg(r), "version"));
        rl_close(r);
        r = NULL;
    }
    o.version = 0;
    assert_int_equal(rl_open(&r, ":memory:", &o), RL_EINVAL);
    assert_non_null(strstr(rl_errmsg(r), "RL_OPTIONS_INIT"));
    rl_close(r);
}

/* The typed enumerations keep the ABI of the ints they replace: int-sized
 * and signed, in structs and as arguments. */
static void test_enum_abi(void **state)
{
    rl_options o = RL_OPTIONS_INIT;
    rl_limit l = RL_PER_SECOND(1, 1);
    rl_key_stats st;
    (void)state;
    assert_int_equal(sizeof o.fail_mode, sizeof(int));
    assert_int_equal(sizeof o.durability, sizeof(int));
    assert_int_equal(sizeof l.algorithm, sizeof(int));
    assert_int_equal(sizeof st.tier_source, sizeof(int));
    assert_int_equal(sizeof(rl_priority), sizeof(int));
    assert_int_equal(sizeof(rl_sort), sizeof(int));
    assert_int_equal(sizeof(rl_check_status), sizeof(int));
    assert_true((rl_algorithm)-1 < 0); /* signed, as int */
    assert_true((rl_sort)-1 < 0);
    assert_true((rl_check_status)-1 < 0);
    assert_string_equal(rl_version(), RL_VERSION_STRING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_init),       cmocka_unit_test(test_options_init_refuses),
        cmocka_unit_test(test_open_version_range), cmocka_unit_test(test_open_version_refused),
        cmocka_unit_test(test_enum_abi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
