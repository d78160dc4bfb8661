/*
 * common.c - helpers shared by the rlctl commands: option parsing, typo
 * suggestions, error messages, opening the database, confirmation, colour,
 * aligned tables and formatting of times, durations, rates and limits.
 */
#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- command line ------------------------------------------------------- */

static const rlctl_opt *find_opt(const rlctl_opt *opts, const char *name, size_t len)
{
    for (; opts && opts->name; opts++)
        if (strlen(opts->name) == len && strncmp(opts->name, name, len) == 0)
            return opts;
    return NULL;
}

int rlctl_parse_opts(int argc, char **argv, const rlctl_opt *opts, const char *usage,
                     int *npos)
{
    const char *cmd = argv[0];
    int i, n = 0, only_pos = 0;

    for (i = 1; i < argc; i++) {
        char *a = argv[i];
        const rlctl_opt *o;
        const char *eq;
        size_t len;

        if (only_pos || a[0] != '-' || a[1] == '\0') {
            argv[1 + n++] = a; /* n < i, so nothing unread is overwritten */
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return RLCTL_HELP;
        }
        eq = strchr(a, '=');
        len = eq ? (size_t)(eq - a) : strlen(a);
        if (a[1] != '-' || !(o = find_opt(opts, a, len)))
            return rlctl_usage_error(cmd, "unknown option '%.*s'", (int)len, a);
        if (o->kind == RLCTL_OPT_FLAG) {
            if (eq)
                return rlctl_usage_error(cmd, "option '%s' takes no value", o->name);
            *(int *)o->dest = 1;
        } else if (eq) {
            *(const char **)o->dest = eq + 1;
        } else if (i + 1 < argc) {
            *(const char **)o->dest = argv[++i];
        } else {
            return rlctl_usage_error(cmd, "option '%s' needs a value", o->name);
        }
    }
    *npos = n;
    return RLCTL_OK;
}

int rlctl_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;
    /* strtoll alone would take " 5", "+5" and "-0": a count is plain digits. */
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Optimal string alignment distance (Levenshtein plus adjacent swaps, so
 * "stast" is one typo away from "stats"), on short command names only. */
static size_t typo_distance(const char *a, const char *b)
{
    enum { MAXLEN = 32 };
    size_t d[MAXLEN + 1][MAXLEN + 1];
    size_t la = strlen(a), lb = strlen(b), i, j;
    if (la > MAXLEN || lb > MAXLEN)
        return (size_t)-1;
    for (i = 0; i <= la; i++)
        d[i][0] = i;
    for (j = 0; j <= lb; j++)
        d[0][j] = j;
    for (i = 1; i <= la; i++) {
        for (j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1], best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

const char *rlctl_suggest(const char *s, const char *const *names)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1, len = strlen(s);
    /* Short words are a typo apart from everything: allow less for them. */
    size_t max_d = len >= 5 ? 2 : 1;
    for (; *names; names++) {
        size_t d = typo_distance(s, *names);
        if (len >= 3 && strncmp(*names, s, len) == 0 && d > max_d)
            d = max_d; /* an abbreviation, like "insp" */
        if (d < best_d) {
            best_d = d;
            best = *names;
        }
    }
    return best_d <= max_d ? best : NULL;
}

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
static void say(FILE *f, const char *prefix, const char *fmt, va_list ap, const char *suffix)
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

/* ---- the database ------------------------------------------------------ */

void rlctl_options(const rlctl_ctx *ctx, rl_options *o)
{
    static const rl_options defaults = RL_OPTIONS_INIT;
    *o = defaults;
    if (ctx->shared_group) {
        o->flags |= RL_OPEN_SHARED_GROUP;
        o->file_mode = 0660;
    }
}

int rlctl_open(const rlctl_ctx *ctx, int readonly, rl **out)
{
    rl_options o;
    rl *r = NULL;
    int rc;
    rlctl_options(ctx, &o);
    if (readonly)
        o.flags |= RL_OPEN_READONLY;
    *out = NULL;
    if ((rc = rl_open(&r, ctx->db, &o)) != RL_OK) {
        rlctl_error("%s", rl_errmsg(r));
        rl_close(r);
        return rc == RL_EPERM ? RLCTL_PERM : RLCTL_ERROR;
    }
    *out = r;
    return RLCTL_OK;
}

int rlctl_check_tier(rl *r, const char *tier)
{
    rl_tier_info ti;
    if (!tier)
        return RLCTL_OK;
    if (rl_tier_get(r, tier, &ti) != RL_OK)
        return rlctl_error("%s", rl_errmsg(r));
    return RLCTL_OK;
}

int rlctl_confirm(const char *question)
{
    char line[64];
    FILE *tty = fopen("/dev/tty", "r+");
    int yes = 0;
    if (!tty)
        return 0;
    fprintf(tty, "%s [y/N] ", question);
    fflush(tty);
    if (fgets(line, sizeof line, tty)) {
        line[strcspn(line, "\r\n")] = 0;
        yes = strcmp(line, "y") == 0 || strcmp(line, "Y") == 0 || strcmp(line, "yes") == 0 ||
              strcmp(line, "YES") == 0 || strcmp(line, "Yes") == 0;
    } else {
        (void)fseek(tty, 0, SEEK_CUR); /* C11 7.21.5.3: input, then output */
        fputc('\n', tty);              /* ^D: leave the prompt's line ended */
    }
    fclose(tty);
    return yes;
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
    int64_t g = ns < RL_MICROSECOND ? 1
                : ns < RL_MILLISECOND ? RL_MICROSECOND
                : ns < RL_SECOND ? RL_MILLISECOND
                : ns < RL_MINUTE ? 10 * RL_MILLISECOND
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

void rlctl_format_limit(const char *name, const char *resource, int64_t count,
                        int64_t period_ns, int64_t burst, int algorithm, char *buf, size_t len)
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
    return period_ns == 0                          ? "concurrent"
           : algorithm == RL_ALGO_SLIDING_WINDOW ? "sliding_window"
                                                  : "rate";
}

const char *rlctl_tier_source_text(int source)
{
    switch (source) {
    case RL_TIER_ASSIGNED: return "assigned";
    case RL_TIER_RULE: return "rule";
    case RL_TIER_DEFAULT: return "default tier";
    case RL_TIER_OPTIONS: return "default limits";
    default: return "none";
    }
}

const char *rlctl_tier_source_json(int source)
{
    switch (source) {
    case RL_TIER_ASSIGNED: return "assigned";
    case RL_TIER_RULE: return "rule";
    case RL_TIER_DEFAULT: return "default_tier";
    case RL_TIER_OPTIONS: return "default_limits";
    default: return "none";
    }
}

typedef struct rule_find {
    const char *key, *tier;
    char *match;
    size_t len;
} rule_find;

static int rule_cb(void *ctx, const char *match, const char *tier)
{
    rule_find *f = ctx;
    /* A rule naming a missing tier is skipped by the library, so it is
     * the first matching rule with the key's actual tier that counts. */
    if (strcmp(tier, f->tier) != 0 || !rl_glob_match(match, f->key))
        return 0;
    snprintf(f->match, f->len, "%s", match);
    return 1;
}

int rlctl_find_rule(rl *r, const char *key, const char *tier, char *match, size_t len)
{
    rule_find f;
    int rc;
    f.key = key;
    f.tier = tier;
    f.match = match;
    f.len = len;
    match[0] = '\0';
    rc = rl_rules_list(r, rule_cb, &f);
    return rc < 0 ? rc : RL_OK;
}

int rlctl_key_tier(rl *r, const char *key, rl_key_stats *st, char *rule, size_t len)
{
    rule[0] = 0;
    if (rl_stats(r, key, st) != RL_OK ||
        (st->tier_source == RL_TIER_RULE && rlctl_find_rule(r, key, st->tier, rule, len) != RL_OK))
        return rlctl_error("%s", rl_errmsg(r));
    return RLCTL_OK;
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
