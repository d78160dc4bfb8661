/*
 * test_cfg.c - the tiers file format (config/): every valid example gives
 * the expected policy, and every invalid one is refused with exactly the
 * expected "FILE:LINE:COL: message".
 *
 * The invalid files live one per case in tests/config/bad/, the valid ones
 * in tests/config/good/; a file there without an entry in the tables below
 * fails the test, so the tables stay complete.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"

#ifndef RL_SOURCE_DIR
#error "RL_SOURCE_DIR must name the source tree"
#endif

#define BAD_DIR RL_SOURCE_DIR "/tests/config/bad/"
#define GOOD_DIR RL_SOURCE_DIR "/tests/config/good/"

typedef struct bad_case {
    const char *file;
    const char *message; /* the whole message, path included */
} bad_case;

#define BAD(file, rest)         \
    {                           \
        file, BAD_DIR file rest \
    }

static const bad_case bad_cases[] = {
    BAD("algorithm_concurrent.yaml",
        ":5:41: limit 'streams': 'algorithm' is for rates, not 'concurrent'"),
    BAD("algorithm_not_string.yaml", ":7:20: 'algorithm' must be a string, got a sequence"),
    BAD("bad_algorithm.yaml",
        ":5:47: invalid algorithm 'fixed_window' (allowed: gcra, token_bucket, sliding_window)"),
    BAD("alias.yaml", ":3:9: anchors are not supported"),
    BAD("alias_only.yaml", ":3:8: aliases are not supported"),
    BAD("ambiguous_unit.yaml",
        ":5:28: invalid rate '5/m': unit 'm' is ambiguous (write min or ms)"),
    BAD("bad_fail_mode.yaml", ":2:12: invalid fail_mode 'maybe' (allowed: closed, open)"),
    BAD("bad_indent.yaml",
        ":5:3: syntax error: did not find expected key (while parsing a block mapping at 3:3)"),
    BAD("bad_limit_name.yaml",
        ":5:17: invalid limit name 'per/second' (1-63 of A-Z a-z 0-9 _ . : -)"),
    BAD("bad_resource.yaml",
        ":5:43: invalid resource name 'tokens!' (1-63 of A-Z a-z 0-9 _ . : -)"),
    BAD("bad_tier_name.yaml", ":3:3: invalid tier name 'free tier' (1-63 of A-Z a-z 0-9 _ . : -)"),
    BAD("burst_float.yaml", ":5:40: 'burst' must be a decimal integer, got '1.5'"),
    BAD("burst_hex.yaml", ":5:40: 'burst' must be a decimal integer, got '0x10'"),
    BAD("burst_plus.yaml", ":5:40: 'burst' must be a decimal integer, got '+10'"),
    BAD("burst_refill.yaml", ":5:9: limit 'weekly': burst takes more than 50 years to refill"),
    BAD("burst_string.yaml", ":5:40: 'burst' must be an integer, got the string '10'"),
    BAD("burst_too_large.yaml", ":5:9: limit 'rps': burst is too large (at most 2^40)"),
    BAD("comments_only.yaml", ":1:1: empty file: expected a mapping with 'version: 1'"),
    BAD("complex_key.yaml", ":2:3: mapping keys must be strings, got a sequence"),
    BAD("control_char.yaml", ":3:28: control characters are not allowed (U+0001)"),
    BAD("control_match.yaml",
        ":5:14: invalid key pattern 'ip:?*' (1-512 bytes of UTF-8 without control characters)"),
    BAD("count_too_large.yaml",
        ":5:28: invalid rate '1099511627777/s': count is too large (at most 2^40)"),
    BAD("custom_tag.yaml", ":2:8: unsupported tag '!tiers' (only !!str, !!int, !!bool, !!null, "
                           "!!map and !!seq are allowed)"),
    BAD("deep_nesting.yaml", ":2:35: nesting too deep (more than 32 levels)"),
    BAD("dup_key.yaml", ":4:1: duplicate key 'tiers' (first at 2:1)"),
    BAD("dup_key_limit.yaml", ":5:33: duplicate key 'rate' (first at 5:22)"),
    BAD("dup_limit.yaml", ":6:17: duplicate limit 'rps' in tier 'free' (first at 5:17)"),
    BAD("dup_tier.yaml", ":5:3: duplicate tier 'free' (first at 3:3)"),
    BAD("empty.yaml", ":1:1: empty file: expected a mapping with 'version: 1'"),
    BAD("empty_limits.yaml", ":4:13: tier 'free' has no limits (the list is empty)"),
    BAD("empty_match.yaml",
        ":5:14: invalid key pattern '' (1-512 bytes of UTF-8 without control characters)"),
    BAD("empty_tier.yaml", ":3:3: tier 'free' has no limits (give 'limits' or 'unlimited: true')"),
    BAD("float_tag.yaml", ":1:10: unsupported tag '!!float' (only !!str, !!int, !!bool, !!null, "
                          "!!map and !!seq are allowed)"),
    BAD("keys_mapping.yaml", ":5:3: 'keys' must be a sequence of rules, got a mapping"),
    BAD("keys_null.yaml", ":2:6: 'keys' must be a sequence of rules, got null"),
    BAD("limit_scalar.yaml",
        ":5:9: each limit must be a mapping with 'name' and 'rate', got '5/s'"),
    BAD("limits_mapping.yaml", ":4:13: 'limits' must be a sequence, got a mapping"),
    BAD("long_limit_name.yaml",
        ":5:17: invalid limit name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' (1-63 of A-Z a-z "
        "0-9 _ . : -)"),
    BAD("missing_match.yaml", ":5:5: key rule is missing 'match'"),
    BAD("missing_name.yaml", ":5:9: limit is missing 'name'"),
    BAD("missing_rate.yaml", ":5:9: limit 'rps' is missing 'rate'"),
    BAD("missing_rule_tier.yaml", ":5:5: key rule is missing 'tier'"),
    BAD("missing_unit.yaml",
        ":5:28: invalid rate '5/30': missing unit (e.g. 5/s, 100/30s, 600/min)"),
    BAD("missing_version.yaml", ":2:1: missing 'version' (this format is 'version: 1')"),
    BAD("negative_burst.yaml", ":5:40: 'burst' must not be negative"),
    BAD("negative_rate.yaml", ":5:28: invalid rate '-5/s': count must not be negative"),
    BAD("not_utf8.yaml", ":3:5: invalid UTF-8 byte 0xFF (the file must be UTF-8)"),
    BAD("nul_in_name.yaml", ":5:17: 'name' must not contain NUL bytes"),
    BAD("null_document.yaml", ":2:1: expected a mapping with 'version: 1', got null"),
    BAD("overflow_burst.yaml", ":5:40: 'burst' is too large"),
    BAD("overflow_rate.yaml",
        ":5:28: invalid rate '99999999999999999999999/s': count is too large (at most 2^40)"),
    BAD("period_too_long.yaml",
        ":5:29: invalid rate '1/3000w': period is too long (at most 50 years)"),
    BAD("rate_not_string.yaml", ":5:28: 'rate' must be a string, got a sequence"),
    BAD("rate_space.yaml",
        ":5:28: invalid rate '5 / s': expected COUNT/PERIOD, e.g. 600/min or 100/30s"),
    BAD("root_scalar.yaml", ":1:1: expected a mapping with 'version: 1', got 'hello'"),
    BAD("root_sequence.yaml", ":1:1: expected a mapping with 'version: 1', got a sequence"),
    BAD("scalar_for_mapping.yaml",
        ":2:8: 'tiers' must be a mapping of tier names to tiers, got 'free'"),
    BAD("scalar_tier.yaml",
        ":3:9: tier 'free' must be a mapping with 'limits' or 'unlimited', got '5/s'"),
    BAD("seq_for_scalar.yaml", ":5:17: 'name' must be a string, got a sequence"),
    BAD("syntax.yaml", ":3:21: syntax error: did not find expected node content (while parsing a "
                       "flow node at 3:21)"),
    BAD("tab_indent.yaml", ":3:1: syntax error: found character that cannot start any token (while "
                           "scanning for the next token at 3:1)"),
    BAD("tag_mismatch.yaml", ":2:8: tag !!seq does not fit a mapping"),
    BAD("too_many_limits.yaml", ":13:9: tier 'big' has more than 8 limits"),
    BAD("truncated_utf8.yaml",
        ":2:8: invalid UTF-8 sequence starting with byte 0xE2 (the file must be UTF-8)"),
    BAD("two_docs.yaml", ":2:1: only one document is allowed"),
    BAD("unknown_default_tier.yaml", ":2:15: default_tier 'gold' is not a defined tier"),
    BAD("unknown_field.yaml",
        ":2:1: unknown field 'tier' (allowed: version, default_tier, fail_mode, tiers, keys)"),
    BAD("unknown_field_limit.yaml", ":5:33: unknown field 'brust' in limit (allowed: name, rate, "
                                    "burst, resource, concurrent, algorithm)"),
    BAD("unknown_field_rule.yaml",
        ":5:34: unknown field 'priority' in key rule (allowed: match, tier)"),
    BAD("unknown_field_tier.yaml",
        ":5:5: unknown field 'description' in tier 'free' (allowed: limits, unlimited)"),
    BAD("unknown_rule_tier.yaml", ":6:30: tier 'gold' is not a defined tier"),
    BAD("unknown_unit.yaml", ":5:28: invalid rate '5/fortnight': unknown unit 'fortnight' (use ns, "
                             "us, ms, s, min, h, day or week)"),
    BAD("unlimited_false.yaml",
        ":3:3: tier 'free' has no limits (give 'limits' or 'unlimited: true')"),
    BAD("unlimited_not_bool.yaml", ":3:22: 'unlimited' must be true or false, got 'yes'"),
    BAD("unlimited_string.yaml", ":3:22: 'unlimited' must be true or false, got the string 'true'"),
    BAD("unlimited_with_limits.yaml", ":5:5: tier 'free' is unlimited and cannot also have limits"),
    BAD("utf16.yaml", ":1:1: invalid UTF-8 byte 0xFF (the file must be UTF-8)"),
    BAD("version_2.yaml", ":1:10: unsupported version 2 (only version 1 is known)"),
    BAD("version_float.yaml", ":1:10: 'version' must be a decimal integer, got '1.0'"),
    BAD("version_string.yaml", ":1:10: 'version' must be an integer, got the string '1'"),
    BAD("window_burst.yaml", ":5:63: limit 'rpm': 'burst' cannot go with 'algorithm: "
                             "sliding_window' (a sliding window admits its count per period)"),
    BAD("zero_burst.yaml", ":5:40: 'burst' must be at least 1"),
    BAD("zero_period.yaml", ":5:28: invalid rate '5/0s': period must be positive"),
    BAD("zero_rate.yaml", ":5:28: invalid rate '0/s': count must be at least 1"),
};

static const char *const good_files[] = {
    "algorithms.yaml", "block_style.yaml", "bom.yaml",    "crlf_utf8.yaml",
    "minimal.yaml",    "resources.yaml",   "tagged.yaml", "units.yaml",
};

static int listed(const char *name, int bad)
{
    size_t i;
    if (bad) {
        for (i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++)
            if (strcmp(bad_cases[i].file, name) == 0)
                return 1;
    } else {
        for (i = 0; i < sizeof good_files / sizeof good_files[0]; i++)
            if (strcmp(good_files[i], name) == 0)
                return 1;
    }
    return 0;
}

static void check_dir_listed(const char *dir, int bad)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;
    assert_non_null(d);
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (!listed(e->d_name, bad))
            fail_msg("%s%s has no entry in the test's table", dir, e->d_name);
        n++;
    }
    closedir(d);
    assert_int_equal(n, bad ? sizeof bad_cases / sizeof bad_cases[0]
                            : sizeof good_files / sizeof good_files[0]);
}

static void test_tables_complete(void **state)
{
    (void)state;
    check_dir_listed(BAD_DIR, 1);
    check_dir_listed(GOOD_DIR, 0);
}

static void test_bad_files(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        char path[1024], err[512];
        rl_policy p;
        int rc;
        snprintf(path, sizeof path, "%s%s", BAD_DIR, bad_cases[i].file);
        rc = rl_cfg_parse_file(path, &p, err, sizeof err);
        if (rc != RL_ECONFIG)
            fail_msg("%s: rc %d, want RL_ECONFIG (%s)", bad_cases[i].file, rc, err);
        if (strcmp(err, bad_cases[i].message) != 0)
            fail_msg("%s:\n got  %s\n want %s", bad_cases[i].file, err, bad_cases[i].message);
        /* Nothing half-built is left behind. */
        assert_int_equal(p.n_tiers, 0);
        assert_int_equal(p.n_rules, 0);
        assert_null(p.tiers);
        assert_null(p.rules);
        assert_int_equal(p.fail_mode, RL_FAIL_UNSET);
        assert_string_equal(p.default_tier, "");
        rl_policy_free(&p);
        /* rl_validate_tiers says the same. */
        err[0] = '\0';
        assert_int_equal(rl_validate_tiers(path, err, sizeof err), RL_ECONFIG);
        assert_string_equal(err, bad_cases[i].message);
        /* Every message is one line. */
        assert_null(strchr(err, '\n'));
    }
}

static void parse_ok(const char *path, rl_policy *p)
{
    char err[512] = "";
    int rc = rl_cfg_parse_file(path, p, err, sizeof err);
    if (rc != RL_OK)
        fail_msg("%s: rc %d: %s", path, rc, err);
    assert_string_equal(err, "");
    assert_int_equal(rl_validate_tiers(path, err, sizeof err), RL_OK);
}

static void check_limit(const rl_ldef *d, const char *name, const char *resource, int64_t count,
                        int64_t period, int64_t burst)
{
    assert_string_equal(d->name, name);
    assert_string_equal(d->resource, resource);
    assert_int_equal(d->count, count);
    assert_int_equal(d->period_ns, period);
    assert_int_equal(d->burst, burst);
    assert_int_equal(d->kind, RL_KIND_GCRA);
    assert_int_equal(d->id, rl_limit_id(resource, name));
}

static const rl_tier *tier_at(const rl_policy *p, size_t i, const char *name, int unlimited,
                              size_t n)
{
    const rl_tier *t;
    assert_true(i < p->n_tiers);
    t = &p->tiers[i];
    assert_string_equal(t->name, name);
    assert_int_equal(t->unlimited, unlimited);
    assert_int_equal(t->n, n);
    return t;
}

static void check_rule(const rl_policy *p, size_t i, const char *match, const char *tier)
{
    assert_true(i < p->n_rules);
    assert_string_equal(p->rules[i].match, match);
    assert_string_equal(p->rules[i].tier, tier);
}

/* The shipped example: what docs/tiers.md walks through. */
static void test_example(void **state)
{
    rl_policy p;
    const rl_tier *t;
    int src;
    (void)state;
    parse_ok(RL_SOURCE_DIR "/config/tiers.example.yaml", &p);
    assert_string_equal(p.default_tier, "free");
    assert_int_equal(p.fail_mode, RL_FAIL_CLOSED);
    assert_int_equal(p.n_tiers, 4);
    t = tier_at(&p, 0, "free", 0, 2);
    check_limit(&t->limits[0], "rps", "requests", 5, RL_SECOND, 10);
    check_limit(&t->limits[1], "daily", "requests", 1000, RL_DAY, 1000);
    t = tier_at(&p, 1, "pro", 0, 2);
    check_limit(&t->limits[0], "rpm", "requests", 600, RL_MINUTE, 50);
    check_limit(&t->limits[1], "tpm", "tokens", 90000, RL_MINUTE, 90000);
    tier_at(&p, 2, "unlimited", 1, 0);
    t = tier_at(&p, 3, "agents", 0, 3);
    check_limit(&t->limits[0], "rpm", "requests", 600, RL_MINUTE, 10);
    check_limit(&t->limits[1], "tpm", "tokens", 300000, RL_MINUTE, 5000);
    assert_int_equal(t->limits[2].kind, RL_KIND_CONCURRENT);
    assert_int_equal(t->limits[2].count, 2);
    assert_string_equal(t->limits[2].resource, "streams");
    assert_int_equal(p.n_rules, 3);
    check_rule(&p, 0, "user:admin-*", "unlimited");
    check_rule(&p, 1, "ip:*", "free");
    check_rule(&p, 2, "provider:*", "agents");

    /* The policy resolves as the file says. */
    t = rl_policy_resolve(&p, "user:admin-1", NULL, &src);
    assert_string_equal(t->name, "unlimited");
    assert_int_equal(src, RL_TIER_RULE);
    t = rl_policy_resolve(&p, "ip:10.0.0.1", NULL, &src);
    assert_string_equal(t->name, "free");
    t = rl_policy_resolve(&p, "user:bob", NULL, &src);
    assert_string_equal(t->name, "free");
    assert_int_equal(src, RL_TIER_DEFAULT);
    t = rl_policy_resolve(&p, "user:bob", "pro", &src);
    assert_string_equal(t->name, "pro");
    assert_int_equal(src, RL_TIER_ASSIGNED);
    rl_policy_free(&p);
}

/* algorithm: picks the kind; a window's burst is its count. */
static void test_good_algorithms(void **state)
{
    rl_policy p;
    const rl_tier *t;
    (void)state;
    parse_ok(GOOD_DIR "algorithms.yaml", &p);
    t = tier_at(&p, 0, "mixed", 0, 5);
    check_limit(&t->limits[0], "rps", "requests", 5, RL_SECOND, 10);
    assert_int_equal(t->limits[1].kind, RL_KIND_WINDOW);
    assert_int_equal(t->limits[1].count, 60);
    assert_int_equal(t->limits[1].period_ns, RL_MINUTE);
    assert_int_equal(t->limits[1].burst, 60);
    check_limit(&t->limits[2], "rph", "requests", 600, RL_HOUR, 20);
    check_limit(&t->limits[3], "rpd", "requests", 1000, RL_DAY, 1000);
    assert_string_equal(t->limits[4].name, "tpm");
    assert_string_equal(t->limits[4].resource, "tokens");
    assert_int_equal(t->limits[4].kind, RL_KIND_WINDOW);
    assert_int_equal(t->limits[4].count, 7);
    assert_int_equal(t->limits[4].period_ns, 13 * RL_SECOND);
    assert_int_equal(t->limits[4].burst, 7);
    assert_int_equal(t->limits[4].id, rl_limit_id("tokens", "tpm"));
    rl_policy_free(&p);
}

static void test_good_block_style(void **state)
{
    rl_policy p;
    const rl_tier *t;
    (void)state;
    parse_ok(GOOD_DIR "block_style.yaml", &p);
    assert_int_equal(p.fail_mode, RL_FAIL_OPEN);
    assert_string_equal(p.default_tier, "basic");
    assert_int_equal(p.n_tiers, 2);
    t = tier_at(&p, 0, "basic", 0, 2);
    check_limit(&t->limits[0], "per_second", "requests", 10, RL_SECOND, 20);
    check_limit(&t->limits[1], "per-hour", "requests", 3600, RL_HOUR, 3600);
    tier_at(&p, 1, "gold.v2", 1, 0);
    assert_int_equal(p.n_rules, 2);
    check_rule(&p, 0, "team:*", "gold.v2");
    check_rule(&p, 1, "literal\\*star", "basic");
    rl_policy_free(&p);
}

static void test_good_units(void **state)
{
    rl_policy p;
    const rl_tier *t;
    (void)state;
    parse_ok(GOOD_DIR "units.yaml", &p);
    assert_int_equal(p.fail_mode, RL_FAIL_UNSET);
    assert_string_equal(p.default_tier, "");
    t = tier_at(&p, 0, "units", 0, 8);
    check_limit(&t->limits[0], "a", "requests", 1, 1, 1);
    check_limit(&t->limits[1], "b", "requests", 2, 250 * RL_MICROSECOND, 2);
    check_limit(&t->limits[2], "c", "requests", 3, 100 * RL_MILLISECOND, 3);
    check_limit(&t->limits[3], "d", "requests", 4, 30 * RL_SECOND, 4);
    check_limit(&t->limits[4], "e", "requests", 5, 15 * RL_MINUTE, 5);
    check_limit(&t->limits[5], "f", "requests", 6, 2 * RL_HOUR, 6);
    check_limit(&t->limits[6], "g", "requests", 7, 7 * RL_DAY, 7);
    check_limit(&t->limits[7], "h", "requests", 8, 14 * RL_DAY, 1);
    assert_int_equal(p.n_rules, 0);
    rl_policy_free(&p);
}

static void test_good_resources(void **state)
{
    rl_policy p;
    const rl_tier *t;
    int src;
    (void)state;
    parse_ok(GOOD_DIR "resources.yaml", &p);
    assert_string_equal(p.default_tier, "llm");
    assert_int_equal(p.n_tiers, 3);
    t = tier_at(&p, 0, "llm", 0, 3);
    check_limit(&t->limits[0], "rpm", "requests", 60, RL_MINUTE, 60);
    check_limit(&t->limits[1], "tpm", "tokens", 90000, RL_MINUTE, 100000);
    check_limit(&t->limits[2], "tpd", "tokens", 1000000, RL_DAY, 1000000);
    t = tier_at(&p, 1, "default", 0, 1);
    check_limit(&t->limits[0], "rps", "requests", 1, RL_SECOND, 1);
    tier_at(&p, 2, "0", 1, 0);
    assert_int_equal(p.n_rules, 0);
    /* default_tier wins over the tier named "default". */
    t = rl_policy_resolve(&p, "k", NULL, &src);
    assert_string_equal(t->name, "llm");
    rl_policy_free(&p);
}

static void test_good_small(void **state)
{
    rl_policy p;
    const rl_tier *t;
    (void)state;
    parse_ok(GOOD_DIR "minimal.yaml", &p);
    assert_int_equal(p.n_tiers, 0);
    assert_int_equal(p.n_rules, 0);
    assert_int_equal(p.fail_mode, RL_FAIL_UNSET);
    rl_policy_free(&p);

    parse_ok(GOOD_DIR "tagged.yaml", &p);
    tier_at(&p, 0, "free", 1, 0);
    t = tier_at(&p, 1, "paid", 0, 1);
    check_limit(&t->limits[0], "123", "requests", 9, RL_SECOND, 12);
    rl_policy_free(&p);

    parse_ok(GOOD_DIR "crlf_utf8.yaml", &p);
    t = tier_at(&p, 0, "free", 0, 1);
    check_limit(&t->limits[0], "rps", "requests", 5, RL_SECOND, 5);
    check_rule(&p, 0, "caf\xc3\xa9:*", "free");
    rl_policy_free(&p);

    parse_ok(GOOD_DIR "bom.yaml", &p);
    t = tier_at(&p, 0, "free", 0, 1);
    check_limit(&t->limits[0], "x", "requests", 1, RL_DAY, 1);
    rl_policy_free(&p);
}

static void test_buffer(void **state)
{
    static const char yaml[] = "version: 1\ntiers:\n  t: {limits: [{name: a, rate: 2/s}]}\n";
    rl_policy p;
    char err[256];
    unsigned char *big;
    (void)state;
    assert_int_equal(
        rl_cfg_parse_buffer("mem", (const unsigned char *)yaml, strlen(yaml), &p, err, sizeof err),
        RL_OK);
    assert_int_equal(p.n_tiers, 1);
    rl_policy_free(&p);

    /* Messages name what the caller passed, or a placeholder. */
    assert_int_equal(
        rl_cfg_parse_buffer("inline", (const unsigned char *)"version: 3", 10, &p, err, sizeof err),
        RL_ECONFIG);
    assert_string_equal(err, "inline:1:10: unsupported version 3 (only version 1 is known)");
    assert_int_equal(rl_cfg_parse_buffer(NULL, (const unsigned char *)"", 0, &p, err, sizeof err),
                     RL_ECONFIG);
    assert_string_equal(err, "<buffer>:1:1: empty file: expected a mapping with 'version: 1'");
    assert_int_equal(rl_cfg_parse_buffer("n", NULL, 0, &p, err, sizeof err), RL_ECONFIG);
    assert_string_equal(err, "n:1:1: empty file: expected a mapping with 'version: 1'");

    /* A NUL byte in the input is a control character for YAML. */
    assert_int_equal(
        rl_cfg_parse_buffer("z", (const unsigned char *)"version: 1\0x", 12, &p, err, sizeof err),
        RL_ECONFIG);
    assert_string_equal(err, "z:1:11: control characters are not allowed (U+0000)");

    /* Over the cap is refused before parsing; at the cap is parsed. */
    big = malloc(RL_CFG_MAX_BYTES + 1);
    assert_non_null(big);
    memset(big, '#', RL_CFG_MAX_BYTES + 1);
    memcpy(big, "version: 1\n", 11);
    assert_int_equal(rl_cfg_parse_buffer("big", big, RL_CFG_MAX_BYTES + 1, &p, err, sizeof err),
                     RL_ECONFIG);
    assert_string_equal(err, "big:1:1: file too large (more than 1048576 bytes)");
    assert_int_equal(rl_cfg_parse_buffer("big", big, RL_CFG_MAX_BYTES, &p, err, sizeof err), RL_OK);
    rl_policy_free(&p);
    free(big);

    /* A short or absent error buffer is never overrun. */
    memset(err, 'X', sizeof err);
    assert_int_equal(rl_cfg_parse_buffer("abcdef", (const unsigned char *)"x: [", 4, &p, err, 8),
                     RL_ECONFIG);
    assert_string_equal(err, "abcdef:");
    assert_int_equal(err[8], 'X');
    assert_int_equal(rl_cfg_parse_buffer("n", (const unsigned char *)"x: [", 4, &p, NULL, 0),
                     RL_ECONFIG);
}

static void test_file_errors(void **state)
{
    rl_policy p;
    char err[512], path[] = "/tmp/rl_test_cfg_XXXXXX";
    FILE *f;
    int fd;
    size_t i;
    (void)state;
    assert_int_equal(
        rl_cfg_parse_file(RL_SOURCE_DIR "/tests/config/no-such.yaml", &p, err, sizeof err),
        RL_ESTORE);
    assert_string_equal(err, RL_SOURCE_DIR
                        "/tests/config/no-such.yaml: cannot read: No such file or directory");
    assert_int_equal(p.n_tiers, 0);
    rl_policy_free(&p);
    assert_int_equal(rl_cfg_parse_file(RL_SOURCE_DIR "/tests/config", &p, err, sizeof err),
                     RL_ESTORE);
    assert_string_equal(err, RL_SOURCE_DIR "/tests/config: cannot read: Is a directory");
    assert_int_equal(rl_validate_tiers(NULL, err, sizeof err), RL_EINVAL);
    assert_int_equal(rl_cfg_parse_file(NULL, &p, err, sizeof err), RL_EINVAL);

    /* A file over the cap: refused after reading at most cap + 1 bytes. */
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("version: 1\n", f);
    for (i = 0; i < RL_CFG_MAX_BYTES / 8; i++)
        fputs("# pad.\n\n", f);
    fclose(f);
    assert_int_equal(rl_cfg_parse_file(path, &p, err, sizeof err), RL_ECONFIG);
    assert_true(strstr(err, ":1:1: file too large (more than 1048576 bytes)") != NULL);
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    unlink(path);
}

/* The largest count and period the C API accepts are accepted here too. */
static void test_limit_checks_match_api(void **state)
{
    static const char *const yaml =
        "version: 1\ntiers:\n  t:\n    limits:\n"
        "      - { name: a, rate: 1099511627776/s, burst: 1099511627776 }\n"
        "      - { name: b, rate: 1/18300d }\n";
    rl_policy p;
    char err[256];
    (void)state;
    assert_int_equal(
        rl_cfg_parse_buffer("x", (const unsigned char *)yaml, strlen(yaml), &p, err, sizeof err),
        RL_OK);
    assert_int_equal(p.tiers[0].limits[0].count, RL_COUNT_MAX);
    assert_int_equal(p.tiers[0].limits[1].period_ns, RL_PERIOD_MAX);
    rl_policy_free(&p);
}

/* Each tier holds up to RL_MAX_LIMITS; thousands of tiers and rules are
 * fine, up to RL_CFG_MAX_TIERS tiers. */
static void test_many(void **state)
{
    char *buf;
    size_t cap = 1 << 20, n = 0, i;
    rl_policy p;
    char err[256];
    (void)state;
    buf = malloc(cap);
    assert_non_null(buf);
    n += (size_t)snprintf(buf + n, cap - n, "version: 1\ntiers:\n");
    for (i = 0; i < 2000; i++) {
        n += (size_t)snprintf(buf + n, cap - n, "  t%zu:\n    limits:\n", i);
        n += (size_t)snprintf(buf + n, cap - n,
                              "      - {name: a, rate: 1/s}\n      - {name: b, rate: 2/s}\n"
                              "      - {name: c, rate: 3/s}\n      - {name: d, rate: 4/s}\n"
                              "      - {name: e, rate: 5/s}\n      - {name: f, rate: 6/s}\n"
                              "      - {name: g, rate: 7/s}\n      - {name: h, rate: 8/s}\n");
    }
    n += (size_t)snprintf(buf + n, cap - n, "keys:\n");
    for (i = 0; i < 2000; i++)
        n += (size_t)snprintf(buf + n, cap - n, "  - {match: \"k%zu:*\", tier: t%zu}\n", i, i);
    assert_true(n < cap);
    assert_int_equal(rl_cfg_parse_buffer("many", (unsigned char *)buf, n, &p, err, sizeof err),
                     RL_OK);
    assert_int_equal(p.n_tiers, 2000);
    assert_int_equal(p.n_rules, 2000);
    assert_int_equal(p.tiers[1999].n, RL_MAX_LIMITS);
    assert_string_equal(p.rules[1999].tier, "t1999");
    rl_policy_free(&p);

    /* At most RL_CFG_MAX_TIERS tiers. */
    n = (size_t)snprintf(buf, cap, "version: 1\ntiers:\n");
    for (i = 0; i <= RL_CFG_MAX_TIERS; i++)
        n += (size_t)snprintf(buf + n, cap - n, "  t%zu: {unlimited: true}\n", i);
    assert_true(n < cap);
    assert_int_equal(rl_cfg_parse_buffer("many", (unsigned char *)buf, n, &p, err, sizeof err),
                     RL_ECONFIG);
    assert_string_equal(err, "many:4099:3: too many tiers (more than 4096)");
    n -= strlen("  t4096: {unlimited: true}\n");
    assert_int_equal(rl_cfg_parse_buffer("many", (unsigned char *)buf, n, &p, err, sizeof err),
                     RL_OK);
    assert_int_equal(p.n_tiers, RL_CFG_MAX_TIERS);
    rl_policy_free(&p);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_complete),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_good_algorithms),
        cmocka_unit_test(test_good_block_style),
        cmocka_unit_test(test_good_units),
        cmocka_unit_test(test_good_resources),
        cmocka_unit_test(test_good_small),
        cmocka_unit_test(test_buffer),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_limit_checks_match_api),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
