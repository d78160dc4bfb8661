/*
 * headers.c - rate-limit metadata in HTTP header fields, both ways: a
 * decision written out as the IETF RateLimit-Policy and RateLimit fields
 * (draft-ietf-httpapi-ratelimit-headers-11, structured-field syntax) and as
 * the classic X-RateLimit-* and Retry-After; and a model provider's
 * response headers (OpenAI's x-ratelimit-*, Anthropic's
 * anthropic-ratelimit-*, Retry-After) read into numbers a limiter can use.
 *
 * Guarantees: pure functions: no store, no clock (the caller passes now),
 * no locale, no allocation, no floating point. Every number read is
 * checked before it could overflow. A provider field whose value is not
 * exactly of its syntax is ignored on its own and counted, never guessed
 * at. Seconds written are rounded up, so a client that obeys them is never
 * early. Output is never truncated: a buffer too small fails the call and
 * holds "".
 */
#include "policy.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Structured fields (RFC 9651) integers have at most 15 digits. */
#define RL_HDR_SF_INT_MAX INT64_C(999999999999999)

static int64_t rl_hdr_ceil_s(int64_t ns)
{
    return ns <= 0 ? 0 : (ns - 1) / RL_SECOND + 1;
}

typedef struct rl_hdr_out {
    char *buf;
    size_t len, o;
    int over;
} rl_hdr_out;

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
static void
rl_hdr_put(rl_hdr_out *w, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (w->over)
        return;
    va_start(ap, fmt);
    n = vsnprintf(w->buf + w->o, w->len - w->o, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= w->len - w->o)
        w->over = 1;
    else
        w->o += (size_t)n;
}

int rl_format_headers(const rl_result *res, int64_t window_ns, int flags, char *buf, size_t len)
{
    rl_hdr_out w;
    int64_t retry_s = 0;
    int quota;
    if (buf && len)
        buf[0] = '\0';
    if (!res || !buf || !len || !flags || (flags & ~(RL_HEADERS_IETF | RL_HEADERS_CLASSIC)) ||
        window_ns < 0 || res->retry_after_ns < 0 || res->reset_after_ns < 0 ||
        !memchr(res->limit_name, '\0', sizeof res->limit_name))
        return RL_EINVAL;
    /* A result without a deciding limit (no limit applies, or the store
     * failed and the fail mode answered) has no quota anyone measured:
     * advertising q=0 or an unlimited r would be made up. */
    quota = res->limit_name[0] && !res->degraded;
    if (quota &&
        (!rl_name_valid(res->limit_name) || res->limit < 0 || res->limit > RL_HDR_SF_INT_MAX ||
         res->remaining < 0 || res->remaining > RL_HDR_SF_INT_MAX))
        return RL_EINVAL;
    /* "Retry-After: 0" on a refusal would invite an immediate retry loop. */
    if (!res->allowed && (retry_s = rl_hdr_ceil_s(res->retry_after_ns)) < 1)
        retry_s = 1;
    w.buf = buf;
    w.len = len;
    w.o = 0;
    w.over = 0;
    if (quota && (flags & RL_HEADERS_IETF)) {
        /* t is the time within which no more than r can be used: when
         * refused, until the same request would pass (the draft wants
         * Retry-After no earlier than the end of t, so they are equal);
         * when admitted, until the bucket is full again. */
        int64_t t = res->allowed ? rl_hdr_ceil_s(res->reset_after_ns) : retry_s;
        rl_hdr_put(&w, "RateLimit-Policy: \"%s\";q=%" PRId64, res->limit_name, res->limit);
        if (window_ns > 0)
            rl_hdr_put(&w, ";w=%" PRId64, rl_hdr_ceil_s(window_ns));
        rl_hdr_put(&w, "\r\nRateLimit: \"%s\";r=%" PRId64 ";t=%" PRId64 "\r\n", res->limit_name,
                   res->remaining, t);
    }
    if (quota && (flags & RL_HEADERS_CLASSIC))
        rl_hdr_put(&w,
                   "X-RateLimit-Limit: %" PRId64 "\r\nX-RateLimit-Remaining: %" PRId64
                   "\r\nX-RateLimit-Reset: %" PRId64 "\r\n",
                   res->limit, res->remaining, rl_hdr_ceil_s(res->reset_after_ns));
    if (!res->allowed)
        rl_hdr_put(&w, "Retry-After: %" PRId64 "\r\n", retry_s);
    if (w.over) {
        buf[0] = '\0';
        return RL_EINVAL;
    }
    return RL_OK;
}

/* ---- reading a provider's headers ---- */

static int rl_hdr_isdigit(char c)
{
    return c >= '0' && c <= '9';
}

/* ASCII only: header names are tokens, and a locale must not change them. */
static int rl_hdr_name_eq(const char *a, const char *lower)
{
    for (; *a && *lower; a++, lower++) {
        char c = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
        if (c != *lower)
            return 0;
    }
    return *a == *lower;
}

/* A run of exactly p[0..n) decimal digits, at most max. */
static int rl_hdr_uint(const char *p, size_t n, int64_t max, int64_t *v)
{
    int64_t acc = 0;
    size_t i;
    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        int d;
        if (!rl_hdr_isdigit(p[i]))
            return 0;
        d = p[i] - '0';
        if (acc > (max - d) / 10)
            return 0;
        acc = acc * 10 + d;
    }
    *v = acc;
    return 1;
}

/* OpenAI writes Go durations ("6m0s", "20ms", "2m59.56s"); plain seconds
 * ("30", "1.5") are read as if followed by "s". */
static int rl_hdr_duration(const char *p, size_t n, int64_t *ns)
{
    char tmp[64];
    size_t i, dots = 0, digits = 0;
    if (n == 0 || n + 2 > sizeof tmp)
        return 0;
    for (i = 0; i < n; i++) {
        if (p[i] == '.')
            dots++;
        else if (rl_hdr_isdigit(p[i]))
            digits++;
    }
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    if (dots + digits == n && dots <= 1) {
        tmp[n] = 's';
        tmp[n + 1] = '\0';
    }
    return rl_parse_duration(tmp, ns) == RL_OK;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil): exact integers, no table, any year. */
static int64_t rl_hdr_days(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The Gregorian year that day number `days` falls in (civil_from_days). */
static int64_t rl_hdr_year_of(int64_t days)
{
    int64_t era, doe, yoe, doy, mp;
    days += 719468;
    era = (days >= 0 ? days : days - 146096) / 146097;
    doe = days - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    return yoe + era * 400 + (mp >= 10);
}

static int rl_hdr_mdays(int64_t y, int m)
{
    static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* A calendar time in UTC, shifted by off_s seconds, as nanoseconds since
 * the epoch; 0 if a field is out of range or the result leaves int64.
 * Second 60 is a leap second and reads as the next minute's first. */
static int rl_hdr_epoch(int64_t y, int mo, int d, int h, int mi, int s, int64_t frac_ns,
                        int64_t off_s, int64_t *ns)
{
    int64_t secs;
    if (y < 0 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > rl_hdr_mdays(y, mo) || h > 23 ||
        mi > 59 || s > 60)
        return 0;
    /* NOLINTNEXTLINE(bugprone-implicit-widening-of-multiplication-result): h <= 23 and mi <= 59 (checked above): h * 3600 and mi * 60 fit int */
    secs = rl_hdr_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s + off_s;
    if (secs > (INT64_MAX - RL_SECOND) / RL_SECOND || secs < INT64_MIN / RL_SECOND + 1)
        return 0;
    *ns = secs * RL_SECOND + frac_ns;
    return 1;
}

/* A cursor over p[0..n) for the fixed-layout date formats. */
typedef struct rl_hdr_cur {
    const char *p;
    size_t n;
} rl_hdr_cur;

static int rl_hdr_lit(rl_hdr_cur *c, const char *s)
{
    size_t k = strlen(s);
    if (c->n < k || memcmp(c->p, s, k) != 0)
        return 0;
    c->p += k;
    c->n -= k;
    return 1;
}

static int rl_hdr_num(rl_hdr_cur *c, size_t k, int *v)
{
    int64_t x;
    if (c->n < k || !rl_hdr_uint(c->p, k, 9999, &x))
        return 0;
    *v = (int)x;
    c->p += k;
    c->n -= k;
    return 1;
}

/* One of the words in tab (case-sensitive, as RFC 9110 has them); its
 * 0-based index in *idx. */
static int rl_hdr_word(rl_hdr_cur *c, const char *const *tab, int ntab, int *idx)
{
    int i;
    for (i = 0; i < ntab; i++) {
        if (rl_hdr_lit(c, tab[i])) {
            *idx = i;
            return 1;
        }
    }
    return 0;
}

static int rl_hdr_clock(rl_hdr_cur *c, int *h, int *mi, int *s)
{
    return rl_hdr_num(c, 2, h) && rl_hdr_lit(c, ":") && rl_hdr_num(c, 2, mi) &&
           rl_hdr_lit(c, ":") && rl_hdr_num(c, 2, s);
}

/* RFC 3339 date-time: 2025-10-25T12:00:00Z, 2025-10-25T14:00:00.5+02:00.
 * Fraction digits past nanoseconds round up: a reset is never read early. */
static int rl_hdr_rfc3339(const char *p, size_t n, int64_t *ns)
{
    rl_hdr_cur c;
    int y, mo, d, h, mi, s, oh, om;
    int64_t frac = 0, off = 0;
    c.p = p;
    c.n = n;
    if (!rl_hdr_num(&c, 4, &y) || !rl_hdr_lit(&c, "-") || !rl_hdr_num(&c, 2, &mo) ||
        !rl_hdr_lit(&c, "-") || !rl_hdr_num(&c, 2, &d) ||
        !(rl_hdr_lit(&c, "T") || rl_hdr_lit(&c, "t")) || !rl_hdr_clock(&c, &h, &mi, &s))
        return 0;
    if (rl_hdr_lit(&c, ".")) {
        int digits = 0, more = 0;
        if (!c.n || !rl_hdr_isdigit(*c.p))
            return 0;
        for (; c.n && rl_hdr_isdigit(*c.p); c.p++, c.n--) {
            if (digits < 9) {
                frac = frac * 10 + (*c.p - '0');
                digits++;
            } else if (*c.p != '0') {
                more = 1;
            }
        }
        for (; digits < 9; digits++)
            frac *= 10;
        frac += more;
    }
    if (rl_hdr_lit(&c, "Z") || rl_hdr_lit(&c, "z")) {
        off = 0;
    } else if (c.n && (*c.p == '+' || *c.p == '-')) {
        int64_t sign = *c.p == '+' ? -1 : 1; /* local time minus offset is UTC */
        c.p++;
        c.n--;
        if (!rl_hdr_num(&c, 2, &oh) || !rl_hdr_lit(&c, ":") || !rl_hdr_num(&c, 2, &om) || oh > 23 ||
            om > 59)
            return 0;
        off = sign * (oh * 3600 + om * 60);
    } else {
        return 0;
    }
    return c.n == 0 && rl_hdr_epoch(y, mo, d, h, mi, s, frac, off, ns);
}

static const char *const rl_hdr_wday[7] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
static const char *const rl_hdr_wday_l[7] = { "Monday", "Tuesday",  "Wednesday", "Thursday",
                                              "Friday", "Saturday", "Sunday" };
static const char *const rl_hdr_month[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* HTTP-date (RFC 9110 section 5.6.7): recipients must read all three
 * forms. The day name is checked for syntax only, as the RFC asks no
 * more. */
static int rl_hdr_http_date(const char *p, size_t n, int64_t now_ns, int64_t *ns)
{
    rl_hdr_cur c;
    int wd, d, mo, y, h, mi, s;
    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    c.p = p;
    c.n = n;
    if (rl_hdr_word(&c, rl_hdr_wday, 7, &wd) && rl_hdr_lit(&c, ", ") && rl_hdr_num(&c, 2, &d) &&
        rl_hdr_lit(&c, " ") && rl_hdr_word(&c, rl_hdr_month, 12, &mo) && rl_hdr_lit(&c, " ") &&
        rl_hdr_num(&c, 4, &y) && rl_hdr_lit(&c, " ") && rl_hdr_clock(&c, &h, &mi, &s) &&
        rl_hdr_lit(&c, " GMT") && c.n == 0)
        return rl_hdr_epoch(y, mo + 1, d, h, mi, s, 0, 0, ns);
    /* rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT */
    c.p = p;
    c.n = n;
    if (rl_hdr_word(&c, rl_hdr_wday_l, 7, &wd) && rl_hdr_lit(&c, ", ") && rl_hdr_num(&c, 2, &d) &&
        rl_hdr_lit(&c, "-") && rl_hdr_word(&c, rl_hdr_month, 12, &mo) && rl_hdr_lit(&c, "-") &&
        rl_hdr_num(&c, 2, &y) && rl_hdr_lit(&c, " ") && rl_hdr_clock(&c, &h, &mi, &s) &&
        rl_hdr_lit(&c, " GMT") && c.n == 0) {
        /* The RFC's rule for two-digit years: one that would be more than
         * 50 years ahead is the most recent past year with those digits. */
        int64_t day = now_ns / RL_DAY - (now_ns % RL_DAY < 0);
        int64_t now_y = rl_hdr_year_of(day), full = now_y - now_y % 100 + y;
        if (full > now_y + 50)
            full -= 100;
        else if (full + 100 <= now_y + 50)
            full += 100;
        return rl_hdr_epoch(full, mo + 1, d, h, mi, s, 0, 0, ns);
    }
    /* asctime-date: Sun Nov  6 08:49:37 1994 */
    c.p = p;
    c.n = n;
    if (rl_hdr_word(&c, rl_hdr_wday, 7, &wd) && rl_hdr_lit(&c, " ") &&
        rl_hdr_word(&c, rl_hdr_month, 12, &mo) && rl_hdr_lit(&c, " ") &&
        (rl_hdr_num(&c, 2, &d) || (rl_hdr_lit(&c, " ") && rl_hdr_num(&c, 1, &d))) &&
        rl_hdr_lit(&c, " ") && rl_hdr_clock(&c, &h, &mi, &s) && rl_hdr_lit(&c, " ") &&
        rl_hdr_num(&c, 4, &y) && c.n == 0)
        return rl_hdr_epoch(y, mo + 1, d, h, mi, s, 0, 0, ns);
    return 0;
}

/* How long from now until `at`; a moment already past is 0. */
static int rl_hdr_until(int64_t at, int64_t now_ns, int64_t *ns)
{
    if (at <= now_ns) {
        *ns = 0;
        return 1;
    }
    if (now_ns < 0 && at > INT64_MAX + now_ns)
        return 0;
    *ns = at - now_ns;
    return 1;
}

enum {
    RL_HDR_LIMIT,     /* integer */
    RL_HDR_REMAINING, /* integer */
    RL_HDR_RESET_IN,  /* duration from now */
    RL_HDR_RESET_AT,  /* RFC 3339 timestamp */
    RL_HDR_RETRY,     /* delta-seconds or HTTP-date */
    RL_HDR_RETRY_MS   /* integer milliseconds */
};

static const struct {
    const char *name; /* lower case */
    int what;
    int tokens; /* 1: the tokens window, 0: requests, -1: neither */
} rl_hdr_fields[] = {
    { "x-ratelimit-limit-requests", RL_HDR_LIMIT, 0 },
    { "x-ratelimit-limit-tokens", RL_HDR_LIMIT, 1 },
    { "x-ratelimit-remaining-requests", RL_HDR_REMAINING, 0 },
    { "x-ratelimit-remaining-tokens", RL_HDR_REMAINING, 1 },
    { "x-ratelimit-reset-requests", RL_HDR_RESET_IN, 0 },
    { "x-ratelimit-reset-tokens", RL_HDR_RESET_IN, 1 },
    { "anthropic-ratelimit-requests-limit", RL_HDR_LIMIT, 0 },
    { "anthropic-ratelimit-tokens-limit", RL_HDR_LIMIT, 1 },
    { "anthropic-ratelimit-requests-remaining", RL_HDR_REMAINING, 0 },
    { "anthropic-ratelimit-tokens-remaining", RL_HDR_REMAINING, 1 },
    { "anthropic-ratelimit-requests-reset", RL_HDR_RESET_AT, 0 },
    { "anthropic-ratelimit-tokens-reset", RL_HDR_RESET_AT, 1 },
    { "retry-after", RL_HDR_RETRY, -1 },
    { "retry-after-ms", RL_HDR_RETRY_MS, -1 },
};

/* When a number arrives twice (a repeated field, or both OpenAI and
 * Anthropic names through a proxy), the cautious one wins: the lower
 * limit and remaining, the later reset and retry. */
static void rl_hdr_keep_min(int64_t *dst, int64_t v)
{
    if (*dst < 0 || v < *dst)
        *dst = v;
}

static void rl_hdr_keep_max(int64_t *dst, int64_t v)
{
    if (v > *dst)
        *dst = v;
}

static int rl_hdr_read(int what, const char *p, size_t n, int64_t now_ns, int64_t *v)
{
    int64_t x;
    switch (what) {
    case RL_HDR_LIMIT:
    case RL_HDR_REMAINING:
        return rl_hdr_uint(p, n, INT64_MAX, v);
    case RL_HDR_RESET_IN:
        return rl_hdr_duration(p, n, v);
    case RL_HDR_RESET_AT:
        return rl_hdr_rfc3339(p, n, &x) && rl_hdr_until(x, now_ns, v);
    case RL_HDR_RETRY:
        if (n && rl_hdr_isdigit(p[0])) {
            if (!rl_hdr_uint(p, n, INT64_MAX / RL_SECOND, &x))
                return 0;
            *v = x * RL_SECOND;
            return 1;
        }
        return rl_hdr_http_date(p, n, now_ns, &x) && rl_hdr_until(x, now_ns, v);
    case RL_HDR_RETRY_MS:
        if (!rl_hdr_uint(p, n, INT64_MAX / RL_MILLISECOND, &x))
            return 0;
        *v = x * RL_MILLISECOND;
        return 1;
    default:
        return 0;
    }
}

int rl_parse_provider_headers(const char *const *names, const char *const *values, size_t n,
                              int64_t now_ns, rl_provider_limits *out)
{
    size_t i, f;
    if (!out)
        return RL_EINVAL;
    memset(out, 0, sizeof *out);
    out->requests.limit = out->requests.remaining = out->requests.reset_after_ns = -1;
    out->tokens.limit = out->tokens.remaining = out->tokens.reset_after_ns = -1;
    out->retry_after_ns = -1;
    if (n && (!names || !values))
        return RL_EINVAL;
    for (i = 0; i < n; i++) {
        const char *p = values[i];
        size_t len;
        int64_t v;
        if (!names[i] || !p)
            continue;
        for (f = 0; f < sizeof rl_hdr_fields / sizeof rl_hdr_fields[0]; f++)
            if (rl_hdr_name_eq(names[i], rl_hdr_fields[f].name))
                break;
        if (f == sizeof rl_hdr_fields / sizeof rl_hdr_fields[0])
            continue;
        /* Optional whitespace around a field value is not part of it
         * (RFC 9110 section 5.5); anything else stray makes it garbage. */
        while (*p == ' ' || *p == '\t')
            p++;
        len = strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (!rl_hdr_read(rl_hdr_fields[f].what, p, len, now_ns, &v)) {
            out->n_bad++;
            continue;
        }
        out->n_read++;
        if (rl_hdr_fields[f].tokens < 0) {
            rl_hdr_keep_max(&out->retry_after_ns, v);
        } else {
            rl_provider_quota *q = rl_hdr_fields[f].tokens ? &out->tokens : &out->requests;
            if (rl_hdr_fields[f].what == RL_HDR_LIMIT)
                rl_hdr_keep_min(&q->limit, v);
            else if (rl_hdr_fields[f].what == RL_HDR_REMAINING)
                rl_hdr_keep_min(&q->remaining, v);
            else
                rl_hdr_keep_max(&q->reset_after_ns, v);
        }
    }
    return RL_OK;
}
