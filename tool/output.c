/*
 * output.c - everything rlctl prints (see output.h): text made safe to
 * show, messages, colour, whole documents, stdout and its write check,
 * the wording of times, rates and limits, and aligned tables.
 *
 * Guarantees: every byte of text that came from outside rlctl passes
 * through rlctl_text before it is shown; a table cell never ends its row;
 * and the first failed write to stdout is remembered with its errno, so
 * rlctl_stdout_finish can say why and turn the status into 3.
 */
#include "output.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- text that may hold anything ------------------------------------------ */

/* Format characters (Unicode category Cf: bidi controls, zero-width
 * characters, invisible operators, tags) and the line and paragraph
 * separators. librl's messages replace the same ones (core/policy.c). */
static const struct {
    unsigned long lo, hi;
} invisible[] = {
    { 0xad, 0xad },       { 0x600, 0x605 },     { 0x61c, 0x61c },     { 0x6dd, 0x6dd },
    { 0x70f, 0x70f },     { 0x890, 0x891 },     { 0x8e2, 0x8e2 },     { 0x180e, 0x180e },
    { 0x200b, 0x200f },   { 0x2028, 0x202e },   { 0x2060, 0x2064 },   { 0x2066, 0x206f },
    { 0xfeff, 0xfeff },   { 0xfff9, 0xfffb },   { 0x110bd, 0x110bd }, { 0x110cd, 0x110cd },
    { 0x13430, 0x1343f }, { 0x1bca0, 0x1bca3 }, { 0x1d173, 0x1d17a }, { 0xe0001, 0xe0001 },
    { 0xe0020, 0xe007f },
};

size_t rlctl_text_char(const char *s, unsigned long *cp, int *kind)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned long c = p[0];
    size_t n, i;
    *cp = c;
    *kind = 0;
    if (c < 0x80) {
        *kind = c < 0x20 || c == 0x7f ? 2 : 0;
        return 1;
    }
    n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n) {
        c &= 0x7fu >> n;
        for (i = 1; i < n && (p[i] & 0xc0) == 0x80; i++) /* stops at the NUL */
            c = c << 6 | (p[i] & 0x3fu);
        if (i < n || (n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
            (n == 4 && (c < 0x10000 || c > 0x10ffff)))
            n = 0;
    }
    if (!n) {
        *kind = 2;
        return 1;
    }
    *cp = c;
    *kind = c <= 0x9f; /* C1 controls */
    for (i = 0; i < sizeof invisible / sizeof invisible[0]; i++)
        if (c >= invisible[i].lo && c <= invisible[i].hi)
            *kind = 1;
    return n;
}

const char *rlctl_text(const char *s, char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    while (*p) {
        char esc[16];
        unsigned long cp;
        int kind;
        size_t n = rlctl_text_char((const char *)p, &cp, &kind), w;
        const char *out = (const char *)p;
        if (kind == 2 && (cp == '\n' || cp == '\r' || cp == '\t'))
            snprintf(esc, sizeof esc, "\\%c", cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't');
        else if (kind == 2)
            snprintf(esc, sizeof esc, "\\x%02lx", cp);
        else if (kind == 1)
            snprintf(esc, sizeof esc, cp > 0xffff ? "\\U%08lx" : "\\u%04lx", cp);
        if (kind)
            out = esc;
        w = kind ? strlen(esc) : n;
        if (o + w >= len)
            break;
        memcpy(buf + o, out, w);
        o += w;
        p += n;
    }
    if (len)
        buf[o] = '\0';
    return buf;
}

char *rlctl_text_dup(const char *s)
{
    size_t len = 4 * strlen(s) + 1;
    char *buf = malloc(len);
    return buf ? (char *)rlctl_text(s, buf, len) : NULL;
}

/* ---- messages ---------------------------------------------------------- */

/* Prints prefix, the message and suffix and a newline on f, the message
 * through rlctl_text. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 0)))
#endif
static void
say(FILE *f, const char *prefix, const char *fmt, va_list ap, const char *suffix)
{
    char msg[8192], shown[4 * sizeof msg];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(f, "%s%s%s\n", prefix, rlctl_text(msg, shown, sizeof shown), suffix);
}

void rlctl_line(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(stdout, "", fmt, ap, "");
    va_end(ap);
}

int rlctl_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(stderr, "rlctl: ", fmt, ap, "");
    va_end(ap);
    return RLCTL_ERROR;
}

int rlctl_usage_error(const char *cmd, const char *fmt, ...)
{
    char prefix[128], suffix[128], name[64];
    va_list ap;
    rlctl_text(cmd, name, sizeof name);
    snprintf(prefix, sizeof prefix, "rlctl: %s: ", name);
    snprintf(suffix, sizeof suffix, " (see 'rlctl %s --help')", name);
    va_start(ap, fmt);
    say(stderr, prefix, fmt, ap, suffix);
    va_end(ap);
    return RLCTL_USAGE;
}

/* ---- colour -------------------------------------------------------------- */

int rlctl_color(void)
{
    static int cached = -1;
    if (cached < 0) {
        const char *no = getenv("NO_COLOR");
        cached = isatty(STDOUT_FILENO) && !(no && *no);
    }
    return cached;
}

const char *rlctl_sgr(const char *code)
{
    static char buf[8][16];
    static unsigned next;
    char *b;
    if (!rlctl_color())
        return "";
    /* a few rotating buffers: several may appear in one printf */
    b = buf[next++ % 8];
    snprintf(b, sizeof buf[0], "\033[%sm", code);
    return b;
}

/* ---- whole documents ------------------------------------------------------ */

int rlctl_out_open(rlctl_out *o)
{
    o->buf = NULL;
    o->len = 0;
    if (!(o->f = open_memstream(&o->buf, &o->len)))
        return rlctl_error("out of memory");
    return RLCTL_OK;
}

void rlctl_out_flush(rlctl_out *o)
{
    if (o->f && fclose(o->f) == 0 && o->len)
        fwrite(o->buf, 1, o->len, stdout);
    o->f = NULL;
    free(o->buf);
    o->buf = NULL;
}

void rlctl_out_discard(rlctl_out *o)
{
    if (o->f)
        fclose(o->f);
    o->f = NULL;
    free(o->buf);
    o->buf = NULL;
}

/* ---- stdout ------------------------------------------------------------- */

/* The errno of the first write to stdout that failed, 0 if none did. */
static int out_errno;

/* stdout's writes go through here (see wrap_stdout), so that the reason
 * of the first failure is kept when it happens: errno read later, after
 * other stdio and library calls, would blame the wrong thing
 * ("Input/output error" for a full disk). */
static ssize_t out_write(void *cookie, const char *buf, size_t len)
{
    size_t done = 0;
    (void)cookie;
    while (done < len) {
        ssize_t n = write(STDOUT_FILENO, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (!out_errno)
                out_errno = n < 0 ? errno : EIO;
            break;
        }
        done += (size_t)n;
    }
    return (ssize_t)done; /* short: stdio sets the stream's error flag */
}

/* Replaces stdout by a stream over the same descriptor whose writes record
 * their errno, buffered as the C library buffers stdout. glibc lets a
 * program assign stdout; if the stream cannot be made, the plain one stays
 * (and a write error is then reported as "Input/output error"). */
static void wrap_stdout(void)
{
    static const cookie_io_functions_t io = { NULL, out_write, NULL, NULL };
    FILE *f = fopencookie(NULL, "w", io);
    if (!f)
        return;
    if (setvbuf(f, NULL, isatty(STDOUT_FILENO) ? _IOLBF : _IOFBF, BUFSIZ) != 0) {
        fclose(f);
        return;
    }
    stdout = f;
}

void rlctl_stdout_init(void)
{
    /* A reader that goes away (rlctl keys | head -1) makes writes fail with
     * EPIPE instead of killing rlctl with SIGPIPE (status 141): rlctl then
     * stops and exits with status 3, as documented, without a message. */
    signal(SIGPIPE, SIG_IGN);
    wrap_stdout();
}

int rlctl_stdout_finish(int rc)
{
    /* Output that never arrived (a full disk, a closed pipe) must not look
     * like success to a script. */
    if (fflush(stdout) != 0 || ferror(stdout) || out_errno) {
        int e = out_errno ? out_errno : EIO;
        if (e != EPIPE) /* the reader left on purpose: nothing to tell it */
            rlctl_error("write error: %s", strerror(e));
        if (rc != RLCTL_INTERRUPTED)
            rc = RLCTL_ERROR;
    }
    return rc;
}

/* ---- formatting -------------------------------------------------------- */

void rlctl_format_time(int64_t ns, char *buf, size_t len)
{
    struct tm tm;
    time_t secs;
    if (ns == 0) {
        snprintf(buf, len, "-");
        return;
    }
    /* Round towards minus infinity so a time before 1970 keeps its second. */
    secs = (time_t)(ns / RL_SECOND - (ns % RL_SECOND < 0));
    if (!gmtime_r(&secs, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "%lldns", (long long)ns);
}

void rlctl_format_duration(int64_t ns, char *buf, size_t len)
{
    /* Nanosecond-exact values ("396.163518ms") are noise to a reader: keep
     * about three digits, rounding up, so that retrying after the printed
     * time never comes too early. JSON keeps the exact value. */
    int64_t g = ns < RL_MICROSECOND   ? 1
                : ns < RL_MILLISECOND ? RL_MICROSECOND
                : ns < RL_SECOND      ? RL_MILLISECOND
                : ns < RL_MINUTE      ? 10 * RL_MILLISECOND
                                      : RL_SECOND;
    if (ns % g != 0 && ns <= INT64_MAX - g)
        ns += g - ns % g;
    if (rl_format_duration(ns, buf, len) != RL_OK)
        snprintf(buf, len, "?");
}

void rlctl_format_rate(int64_t count, int64_t period_ns, char *buf, size_t len)
{
    if (period_ns == 0)
        snprintf(buf, len, "%lld in flight", (long long)count);
    else if (rl_format_rate(count, period_ns, buf, len) != RL_OK)
        snprintf(buf, len, "%lld/%lldns", (long long)count, (long long)period_ns);
}

void rlctl_format_limit(const char *name, const char *resource, int64_t count, int64_t period_ns,
                        int64_t burst, int algorithm, char *buf, size_t len)
{
    char rate[64], b[40] = "", res[RL_NAME_MAX + 8] = "";
    rlctl_format_rate(count, period_ns, rate, sizeof rate);
    if (period_ns != 0 && algorithm == RL_ALGO_SLIDING_WINDOW)
        snprintf(b, sizeof b, " sliding window");
    else if (period_ns != 0 && burst != count)
        snprintf(b, sizeof b, " burst %lld", (long long)burst);
    if (strcmp(resource, "requests") != 0)
        snprintf(res, sizeof res, " of %s", resource);
    snprintf(buf, len, "%s %s%s%s", name, rate, b, res);
}

const char *rlctl_limit_kind(int64_t period_ns, int algorithm)
{
    return period_ns == 0                        ? "concurrent"
           : algorithm == RL_ALGO_SLIDING_WINDOW ? "sliding_window"
                                                 : "rate";
}

const char *rlctl_tier_source_text(int source)
{
    switch (source) {
    case RL_TIER_ASSIGNED:
        return "assigned";
    case RL_TIER_RULE:
        return "rule";
    case RL_TIER_DEFAULT:
        return "default tier";
    case RL_TIER_OPTIONS:
        return "default limits";
    default:
        return "none";
    }
}

const char *rlctl_tier_source_json(int source)
{
    switch (source) {
    case RL_TIER_ASSIGNED:
        return "assigned";
    case RL_TIER_RULE:
        return "rule";
    case RL_TIER_DEFAULT:
        return "default_tier";
    case RL_TIER_OPTIONS:
        return "default_limits";
    default:
        return "none";
    }
}

/* ---- aligned tables ---------------------------------------------------- */

void rlctl_table_init(rlctl_table *t, size_t ncols, unsigned right)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    t->right = right;
}

int rlctl_table_add(rlctl_table *t, const char *const *cells)
{
    size_t i, base;
    if (t->nrows == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 16;
        char **nc = realloc(t->cells, ncap * t->ncols * sizeof *nc);
        if (!nc)
            return rlctl_error("out of memory");
        t->cells = nc;
        t->cap = ncap;
    }
    base = t->nrows * t->ncols;
    for (i = 0; i < t->ncols; i++) {
        if (!(t->cells[base + i] = rlctl_text_dup(cells[i] ? cells[i] : ""))) {
            while (i-- > 0)
                free(t->cells[base + i]);
            return rlctl_error("out of memory");
        }
    }
    t->nrows++;
    return RLCTL_OK;
}

/* Terminal columns of UTF-8 text, counted as code points: keys may hold
 * any UTF-8, and counting bytes would push "café" one column off. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

/* Writes s, at most *left columns of it (SIZE_MAX: all). */
static void put_cut(FILE *f, const char *s, size_t *left)
{
    for (; *s && *left > 0; s++) {
        fputc(*s, f);
        /* a character ends where the next byte is not a continuation */
        if (((unsigned char)s[1] & 0xc0) != 0x80)
            --*left;
    }
}

static void put_pad(FILE *f, size_t n, size_t *left)
{
    for (; n > 0 && *left > 0; n--, --*left)
        fputc(' ', f);
}

void rlctl_table_print(const rlctl_table *t, FILE *f)
{
    size_t widths[16] = { 0 };
    size_t r, c;
    if (t->ncols > sizeof widths / sizeof widths[0])
        return;
    for (r = 0; r < t->nrows; r++)
        for (c = 0; c < t->ncols; c++) {
            size_t w = text_width(t->cells[r * t->ncols + c]);
            if (w > widths[c])
                widths[c] = w;
        }
    for (r = 0; r < t->nrows; r++) {
        size_t left = t->width ? t->width : (size_t)-1;
        int bold = t->header && r == 0 && rlctl_color();
        if (bold)
            fputs(rlctl_sgr("1"), f);
        for (c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            size_t pad = widths[c] - text_width(cell);
            int last = c + 1 == t->ncols;
            if (c > 0)
                put_pad(f, 2, &left);
            if (t->right & (1u << c)) {
                put_pad(f, pad, &left);
                put_cut(f, cell, &left);
            } else {
                put_cut(f, cell, &left);
                if (!last)
                    put_pad(f, pad, &left);
            }
        }
        if (bold)
            fputs(rlctl_sgr("0"), f);
        fputc('\n', f);
    }
}

void rlctl_table_free(rlctl_table *t)
{
    size_t i;
    for (i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}
