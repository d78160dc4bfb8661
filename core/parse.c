/*
 * parse.c - rate and duration notation ("600/min", "1m30s") and key globs.
 *
 * Guarantees: integers only, no floating point; every accumulation is
 * checked before it could overflow; whatever rl_format_rate and
 * rl_format_duration print, the matching parser reads back to the same
 * value; rl_glob_match takes at most O(len(pattern) * len(s)) steps, never
 * exponential time, whatever the pattern.
 */
#include "parse.h"
#include "policy.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct rl_parse_unit {
    const char *name;
    int64_t ns;
} rl_parse_unit;

/* "m" is deliberately absent: in a rate it could mean minute or milli. */
static const rl_parse_unit rl_parse_rate_units[] = {
    { "ns", RL_NANOSECOND },  { "us", RL_MICROSECOND }, { "ms", RL_MILLISECOND },
    { "s", RL_SECOND },       { "sec", RL_SECOND },     { "second", RL_SECOND },
    { "seconds", RL_SECOND }, { "min", RL_MINUTE },     { "minute", RL_MINUTE },
    { "minutes", RL_MINUTE }, { "h", RL_HOUR },         { "hr", RL_HOUR },
    { "hour", RL_HOUR },      { "hours", RL_HOUR },     { "d", RL_DAY },
    { "day", RL_DAY },        { "days", RL_DAY },       { "w", 7 * RL_DAY },
    { "week", 7 * RL_DAY },   { "weeks", 7 * RL_DAY },
};

/* Longer spellings first so that "ms" is never read as "m" then "s". The
 * micro sign comes in two code points (U+00B5, U+03BC), as in Go. */
static const rl_parse_unit rl_parse_duration_units[] = {
    { "ns", RL_NANOSECOND },
    { "us", RL_MICROSECOND },
    { "\xc2\xb5s", RL_MICROSECOND },
    { "\xce\xbcs", RL_MICROSECOND },
    { "ms", RL_MILLISECOND },
    { "s", RL_SECOND },
    { "m", RL_MINUTE },
    { "h", RL_HOUR },
    { "d", RL_DAY },
};

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 4)))
#endif
static int
rl_parse_why(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    if (why && whylen) {
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return RL_EINVAL;
}

static int rl_parse_isdigit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads a run of decimal digits. Returns 0 when there is none, -1 when the
 * value exceeds max (the whole run is still consumed, so callers can report
 * "too large" rather than "garbage after the number"), 1 otherwise. */
static int rl_parse_digits(const char **pp, int64_t max, int64_t *v)
{
    const char *p = *pp;
    int64_t acc = 0;
    int over = 0;
    if (!rl_parse_isdigit(*p))
        return 0;
    for (; rl_parse_isdigit(*p); p++) {
        int d = *p - '0';
        if (over || acc > (max - d) / 10)
            over = 1;
        else
            acc = acc * 10 + d;
    }
    *pp = p;
    *v = acc;
    return over ? -1 : 1;
}

void rl_parse_quote(char *dst, size_t dstlen, const char *s, size_t len)
{
    const size_t show = 40;
    size_t i = 0, o = 0, n;
    int unsafe;
    if (!dst || !dstlen)
        return;
    while (i < len && o + 4 < dstlen) {
        unsigned char c = (unsigned char)s[i];
        if (i >= show && (c & 0xc0) != 0x80) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        n = rl_text_char((const unsigned char *)s + i, len - i, &unsafe);
        if (unsafe) {
            dst[o++] = '?';
            i += n;
        } else if (o + n + 4 > dstlen) {
            break;
        } else {
            memcpy(dst + o, s + i, n);
            o += n;
            i += n;
        }
    }
    dst[o] = '\0';
}

int rl_parse_rate_ex(const char *s, int64_t *count, int64_t *period_ns, char *why, size_t whylen)
{
    const char *p = s;
    int64_t c = 0, mult = 1, unit = 0;
    size_t i;
    int r;
    char shown[64];

    if (!s || !*s)
        return rl_parse_why(why, whylen, "empty rate (expected COUNT/PERIOD, e.g. 600/min)");
    if (*p == '-')
        return rl_parse_why(why, whylen, "count must not be negative");
    r = rl_parse_digits(&p, RL_COUNT_MAX, &c);
    if (r == 0 || *p != '/')
        return rl_parse_why(why, whylen, "expected COUNT/PERIOD, e.g. 600/min or 100/30s");
    if (r < 0)
        return rl_parse_why(why, whylen, "count is too large (at most 2^40)");
    if (c < 1)
        return rl_parse_why(why, whylen, "count must be at least 1");
    p++;
    if (*p == '-')
        return rl_parse_why(why, whylen, "period must not be negative");
    r = rl_parse_digits(&p, RL_PERIOD_MAX, &mult);
    if (r < 0)
        return rl_parse_why(why, whylen, "period is too long (at most 50 years)");
    if (r > 0 && mult < 1)
        return rl_parse_why(why, whylen, "period must be positive");
    if (!*p)
        return rl_parse_why(why, whylen, "missing unit (e.g. 5/s, 100/30s, 600/min)");
    if (strcmp(p, "m") == 0)
        return rl_parse_why(why, whylen, "unit 'm' is ambiguous (write min or ms)");
    for (i = 0; i < sizeof rl_parse_rate_units / sizeof rl_parse_rate_units[0]; i++)
        if (strcmp(p, rl_parse_rate_units[i].name) == 0)
            unit = rl_parse_rate_units[i].ns;
    if (!unit) {
        rl_parse_quote(shown, sizeof shown, p, strlen(p));
        return rl_parse_why(why, whylen,
                            "unknown unit '%s' (use ns, us, ms, s, min, h, day or week)", shown);
    }
    if (mult > RL_PERIOD_MAX / unit)
        return rl_parse_why(why, whylen, "period is too long (at most 50 years)");
    *count = c;
    *period_ns = mult * unit;
    return RL_OK;
}

int rl_parse_rate(const char *s, int64_t *count, int64_t *period_ns)
{
    int64_t c = 0, pns = 0; /* set whenever rl_parse_rate_ex returns RL_OK */
    if (!count || !period_ns || rl_parse_rate_ex(s, &c, &pns, NULL, 0) != RL_OK)
        return RL_EINVAL;
    *count = c;
    *period_ns = pns;
    return RL_OK;
}

static uint64_t rl_parse_gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* frac / 10^digits of one unit, in whole nanoseconds; RL_EINVAL when that
 * is not a whole number ("1.5ns"). Dividing out the gcd first keeps every
 * step inside 64 bits: the result is below one unit. */
static int rl_parse_frac(uint64_t frac, int digits, int64_t unit, int64_t *out)
{
    uint64_t pow = 1, g, den;
    int i;
    for (i = 0; i < digits; i++)
        pow *= 10;
    g = rl_parse_gcd((uint64_t)unit, pow);
    den = pow / g;
    if (frac % den)
        return RL_EINVAL;
    *out = (int64_t)(frac / den * ((uint64_t)unit / g));
    return RL_OK;
}

int rl_parse_duration(const char *s, int64_t *ns)
{
    const char *p = s;
    int64_t total = 0;
    if (!s || !ns || !*s)
        return RL_EINVAL;
    if (strcmp(s, "0") == 0) {
        *ns = 0;
        return RL_OK;
    }
    while (*p) {
        int64_t whole = 0, unit = 0, part = 0, fpart = 0;
        uint64_t frac = 0;
        int digits = 0, zeros = 0;
        size_t i, ulen = 0;
        if (rl_parse_digits(&p, INT64_MAX, &whole) != 1)
            return RL_EINVAL;
        if (*p == '.') {
            p++;
            if (!rl_parse_isdigit(*p))
                return RL_EINVAL;
            /* Trailing zeros are held back, so "1.500000000000000000000s"
             * is as exact as "1.5s"; 18 significant digits fit in 64 bits
             * and are more than any unit (at most 8.64e13 ns) can use. */
            for (; rl_parse_isdigit(*p); p++) {
                if (*p == '0') {
                    zeros++;
                    continue;
                }
                if (digits + zeros + 1 > 18)
                    return RL_EINVAL;
                for (; zeros; zeros--, digits++)
                    frac *= 10;
                frac = frac * 10 + (uint64_t)(*p - '0');
                digits++;
            }
        }
        for (i = 0; i < sizeof rl_parse_duration_units / sizeof rl_parse_duration_units[0]; i++) {
            size_t n = strlen(rl_parse_duration_units[i].name);
            if (strncmp(p, rl_parse_duration_units[i].name, n) == 0) {
                unit = rl_parse_duration_units[i].ns;
                ulen = n;
                break;
            }
        }
        if (!unit)
            return RL_EINVAL;
        p += ulen;
        if (whole > INT64_MAX / unit)
            return RL_EINVAL;
        part = whole * unit;
        if (rl_parse_frac(frac, digits, unit, &fpart) != RL_OK || part > INT64_MAX - fpart)
            return RL_EINVAL;
        part += fpart;
        if (total > INT64_MAX - part)
            return RL_EINVAL;
        total += part;
    }
    *ns = total;
    return RL_OK;
}

/* Writes v / unit with the remainder as decimal digits, trailing zeros
 * dropped: 1500000 ns in ms is "1.5". */
static int rl_parse_fmt_scaled(char *dst, size_t len, int64_t v, int64_t unit, const char *sfx)
{
    char frac[24];
    int64_t r = v % unit, w;
    size_t k = 0;
    int n;
    /* Digit by digit from the most significant, stopping once the rest is
     * zero: that drops the trailing zeros without a second pass. */
    if (r)
        frac[k++] = '.';
    for (w = unit / 10; r && w > 0; w /= 10) {
        /* cppcheck-suppress zerodivcond ; w > 0 is part of the loop condition */
        frac[k++] = (char)('0' + r / w);
        r %= w;
    }
    frac[k] = '\0';
    n = snprintf(dst, len, "%" PRId64 "%s%s", v / unit, frac, sfx);
    return n < 0 || (size_t)n >= len ? -1 : n;
}

int rl_format_duration(int64_t ns, char *buf, size_t len)
{
    char tmp[64];
    size_t o = 0;
    int n;
    if (!buf || ns < 0)
        return RL_EINVAL;
    if (ns == 0) {
        snprintf(tmp, sizeof tmp, "0s");
    } else if (ns < RL_SECOND) {
        int64_t unit = ns >= RL_MILLISECOND   ? RL_MILLISECOND
                       : ns >= RL_MICROSECOND ? RL_MICROSECOND
                                              : RL_NANOSECOND;
        const char *sfx = unit == RL_MILLISECOND ? "ms" : unit == RL_MICROSECOND ? "us" : "ns";
        if (rl_parse_fmt_scaled(tmp, sizeof tmp, ns, unit, sfx) < 0)
            return RL_EINVAL;
    } else {
        static const struct {
            int64_t ns;
            const char *sfx;
        } big[] = { { RL_DAY, "d" }, { RL_HOUR, "h" }, { RL_MINUTE, "m" } };
        size_t i;
        int64_t rest = ns;
        for (i = 0; i < sizeof big / sizeof big[0]; i++) {
            if (rest >= big[i].ns) {
                n = snprintf(tmp + o, sizeof tmp - o, "%" PRId64 "%s", rest / big[i].ns,
                             big[i].sfx);
                o += (size_t)n;
                rest %= big[i].ns;
            }
        }
        if (rest && rl_parse_fmt_scaled(tmp + o, sizeof tmp - o, rest, RL_SECOND, "s") < 0)
            return RL_EINVAL;
    }
    if (strlen(tmp) >= len)
        return RL_EINVAL;
    memcpy(buf, tmp, strlen(tmp) + 1);
    return RL_OK;
}

int rl_format_rate(int64_t count, int64_t period_ns, char *buf, size_t len)
{
    /* The largest unit that divides the period exactly; its one-unit name
     * is the word people write ("600/min", "1000/day"), a multiple gets the
     * short suffix ("100/30s", "500/2w"). */
    static const struct {
        int64_t ns;
        const char *one, *many;
    } units[] = {
        { 7 * RL_DAY, "week", "w" },    { RL_DAY, "day", "d" },
        { RL_HOUR, "h", "h" },          { RL_MINUTE, "min", "min" },
        { RL_SECOND, "s", "s" },        { RL_MILLISECOND, "ms", "ms" },
        { RL_MICROSECOND, "us", "us" }, { RL_NANOSECOND, "ns", "ns" },
    };
    size_t i;
    int n = -1;
    if (!buf || count < 1 || count > RL_COUNT_MAX || period_ns < 1 || period_ns > RL_PERIOD_MAX)
        return RL_EINVAL;
    for (i = 0; i < sizeof units / sizeof units[0]; i++) {
        int64_t m;
        if (period_ns % units[i].ns)
            continue;
        m = period_ns / units[i].ns;
        if (m == 1)
            n = snprintf(buf, len, "%" PRId64 "/%s", count, units[i].one);
        else
            n = snprintf(buf, len, "%" PRId64 "/%" PRId64 "%s", count, m, units[i].many);
        break;
    }
    if (n < 0 || (size_t)n >= len) {
        if (len)
            buf[0] = '\0';
        return RL_EINVAL;
    }
    return RL_OK;
}

/* Reads one pattern atom at p that is a literal: an escaped byte or a plain
 * byte. A lone trailing backslash stands for itself. */
static const char *rl_parse_literal(const char *p, char *c)
{
    if (p[0] == '\\' && p[1]) {
        *c = p[1];
        return p + 2;
    }
    *c = p[0];
    return p + 1;
}

int rl_glob_match(const char *pattern, const char *s)
{
    /* Two pointers plus the position after the last '*': on a mismatch the
     * star absorbs one more byte and matching resumes from there. Earlier
     * stars never need revisiting, which is what keeps this linear-ish. */
    const char *p = pattern, *star_p = NULL, *star_s = NULL;
    if (!pattern || !s)
        return 0;
    while (*s) {
        if (*p == '*') {
            while (*p == '*')
                p++;
            star_p = p;
            star_s = s;
            continue;
        }
        if (*p == '?') {
            p++;
            s++;
            continue;
        }
        if (*p) {
            char c;
            const char *next = rl_parse_literal(p, &c);
            if (c == *s) {
                p = next;
                s++;
                continue;
            }
        }
        if (!star_p)
            return 0;
        p = star_p;
        s = ++star_s;
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}
