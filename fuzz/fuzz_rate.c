/*
 * fuzz_rate.c - libFuzzer harness for the notation parsers of core/parse.c.
 *
 * One input exercises everything: the whole input as a rate and as a
 * duration (each value parsed must format and parse back to itself), the
 * input split at its first newline as glob pattern and subject (checked
 * against a plain dynamic-programming matcher), and its first 16 bytes as
 * raw integers for the formatters. Any disagreement aborts.
 */
#include "parse.h"
#include "policy.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* The obvious O(n*m) table over (pattern position, subject position),
 * slow but clearly right: the reference the fast matcher must agree with. */
static int fuzz_glob_ref(const char *p, const char *s)
{
    size_t np = strlen(p), ns = strlen(s), i, j;
    unsigned char *t;
    int r;
    /* Pattern atoms first: escapes make one atom of two bytes. */
    char *kind = malloc(np + 1), *lit = malloc(np + 1);
    size_t na = 0;
    for (i = 0; i < np; i++) {
        if (p[i] == '\\' && i + 1 < np) {
            kind[na] = 'l';
            lit[na++] = p[++i];
        } else if (p[i] == '*' || p[i] == '?') {
            kind[na++] = p[i];
        } else {
            kind[na] = 'l';
            lit[na++] = p[i];
        }
    }
    /* t[a][k]: the first a atoms match the first k bytes. */
    t = calloc((na + 1) * (ns + 1), 1);
    t[0] = 1;
    for (i = 1; i <= na; i++) {
        for (j = 0; j <= ns; j++) {
            unsigned char v = 0;
            if (kind[i - 1] == '*')
                v = t[(i - 1) * (ns + 1) + j] || (j > 0 && t[i * (ns + 1) + j - 1]);
            else if (j > 0 && (kind[i - 1] == '?' || lit[i - 1] == s[j - 1]))
                v = t[(i - 1) * (ns + 1) + j - 1];
            t[i * (ns + 1) + j] = v;
        }
    }
    r = t[na * (ns + 1) + ns];
    free(t);
    free(kind);
    free(lit);
    return r;
}

static void fuzz_rate_roundtrip(const char *s)
{
    int64_t c, p, c2, p2;
    char buf[64], why[128];
    int rc = rl_parse_rate(s, &c, &p);
    if ((rl_parse_rate_ex(s, &c2, &p2, why, sizeof why) == RL_OK) != (rc == RL_OK))
        abort();
    if (rc != RL_OK) {
        if (!why[0] || strchr(why, '\n'))
            abort();
        return;
    }
    if (c < 1 || c > RL_COUNT_MAX || p < 1 || p > RL_PERIOD_MAX)
        abort();
    if (rl_format_rate(c, p, buf, sizeof buf) != RL_OK)
        abort();
    if (rl_parse_rate(buf, &c2, &p2) != RL_OK || c2 != c || p2 != p)
        abort();
}

static void fuzz_duration_roundtrip(const char *s)
{
    int64_t ns, back;
    char buf[64];
    if (rl_parse_duration(s, &ns) != RL_OK)
        return;
    if (ns < 0 || rl_format_duration(ns, buf, sizeof buf) != RL_OK)
        abort();
    if (rl_parse_duration(buf, &back) != RL_OK || back != ns)
        abort();
}

static void fuzz_format_raw(const unsigned char *data, size_t size)
{
    int64_t a, b, c, p, ns;
    char buf[64];
    if (size < 16)
        return;
    memcpy(&a, data, 8);
    memcpy(&b, data + 8, 8);
    if (rl_format_rate(a, b, buf, sizeof buf) == RL_OK) {
        if (rl_parse_rate(buf, &c, &p) != RL_OK || c != a || p != b)
            abort();
    } else if (a >= 1 && a <= RL_COUNT_MAX && b >= 1 && b <= RL_PERIOD_MAX) {
        abort(); /* every valid rate has a notation that fits 64 bytes */
    }
    if (rl_format_duration(a, buf, sizeof buf) == RL_OK) {
        if (rl_parse_duration(buf, &ns) != RL_OK || ns != a)
            abort();
    } else if (a >= 0) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char *s = malloc(size + 1), *nl;
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    fuzz_rate_roundtrip(s);
    fuzz_duration_roundtrip(s);
    fuzz_format_raw(data, size);
    nl = strchr(s, '\n');
    if (nl && size <= 512) {
        *nl = '\0';
        if (rl_glob_match(s, nl + 1) != fuzz_glob_ref(s, nl + 1))
            abort();
    }
    free(s);
    return 0;
}
