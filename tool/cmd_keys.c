/*
 * cmd_keys.c - `rlctl keys`: every key with its tier and what it may still
 * spend, by its tightest limit or limit by limit; --limited keeps the keys
 * that would be refused right now; --limit and --after page through them.
 *
 * "Right now" is as of the read: the remaining budgets come from the same
 * computation a decision makes (librl's rl_keys_page, as rl_stats). The
 * listing streams: keys are read a page at a time in name order (the
 * primary key's order, so nothing is sorted), each page printed and
 * flushed before the next is read, with no read transaction open while
 * rlctl writes. Memory stays that of one page and the first line comes at
 * once whatever the number of keys. The price: a failure half-way leaves
 * the lines (or the start of the JSON document) printed before it, and
 * the status says so (3); a table's columns are as wide as the widest cell
 * seen so far, so a wider key further down shifts the lines after it.
 */
#include "common.h"
#include "json.h"

#include <string.h>

static const char use[] =
    "usage: rlctl keys [--match GLOB] [--tier TIER] [--limited] [--all-limits]\n"
    "                  [--limit N] [--after KEY] [--json]\n"
    "\n"
    "Lists keys in byte order of their names with their tier and remaining\n"
    "budget: the units each limit could still admit now. Without --all-limits,\n"
    "one line per key for its tightest limit (the one refusing longest, else\n"
    "the one with the smallest share of its burst left). The listing streams,\n"
    "a page of keys at a time: the first lines come at once and memory stays\n"
    "small on any number of keys.\n"
    "\n"
    "Options:\n"
    "  --match GLOB   only keys that match GLOB ('*' any run, '?' one byte)\n"
    "  --tier TIER    only keys whose tier (as a decision resolves it) is TIER\n"
    "  --limited      only keys refused right now: a limit has nothing left\n"
    "                 (retry after > 0) or a cool-down runs\n"
    "  --all-limits   one line per limit of each key\n"
    "  --limit N      at most N keys (0: all, the default)\n"
    "  --after KEY    only keys whose names come after KEY: the last key of one\n"
    "                 page is the --after of the next (with --json, \"next\")\n"
    "  --json         print one JSON object instead of a table, streamed: its\n"
    "                 \"next\" is the --after of the next page, or null when\n"
    "                 the listing reached the last key\n";

/* Keys read per rl_keys_page call: one page's rows are what a table holds
 * at a time. */
#define PAGE 256

enum { NCOLS = 7 };
/* REMAINING, RETRY AFTER and RESET AFTER: numbers, right-aligned. */
#define RIGHT_COLS (1u << 4 | 1u << 5 | 1u << 6)

/* What each_key returns to stop the listing (librl's errors are negative):
 * --limit is reached; or a row could not be kept (said already). */
enum { STOP_FULL = 1, STOP_FAILED = 2 };

typedef struct keys_ctx {
    const char *tier;
    int limited_only, all_limits, json;
    int64_t limit;             /* --limit: keys to print at most, 0 for all */
    int64_t n;                 /* keys printed */
    int full;                  /* --limit reached: the listing stopped there */
    char last[RL_KEY_MAX + 1]; /* the last key printed: the next --after */
    rlctl_table t;             /* the page's rows, the header first */
    size_t widths[NCOLS];      /* the widest cell of each column so far */
    rlctl_json j;
} keys_ctx;

/* Refused now: some limit has no unit left, or a cool-down covers it. */
static int is_limited(const rl_key_stats *st)
{
    size_t i;
    if (st->cooldown_ns > 0)
        return 1;
    for (i = 0; i < st->n_limits; i++)
        if (st->limits[i].remaining == 0 || st->limits[i].retry_after_ns > 0 ||
            st->limits[i].cooldown_ns > 0)
            return 1;
    return 0;
}

/* The limit that decides, as librl picks it for a result: the refusing one
 * with the longest wait, else the smallest share of its burst left. */
static const rl_limit_stats *tightest(const rl_key_stats *st)
{
    const rl_limit_stats *best = NULL;
    size_t i;
    for (i = 0; i < st->n_limits; i++) {
        const rl_limit_stats *l = &st->limits[i];
        int lref = l->remaining == 0, bref;
        if (!best) {
            best = l;
            continue;
        }
        bref = best->remaining == 0;
        if (lref != bref) {
            if (lref)
                best = l;
        } else if (lref) {
            if (l->retry_after_ns > best->retry_after_ns)
                best = l;
        } else if ((double)l->remaining / (double)l->burst <
                   (double)best->remaining / (double)best->burst) {
            best = l;
        }
    }
    return best;
}

static int64_t wait_of(const rl_key_stats *st, const rl_limit_stats *l)
{
    int64_t w = l->retry_after_ns;
    if (l->cooldown_ns > w)
        w = l->cooldown_ns;
    if (st->cooldown_ns > w)
        w = st->cooldown_ns;
    return w;
}

static int add_row(keys_ctx *c, const rl_key_stats *st, const rl_limit_stats *l)
{
    char rem[48], rate[64], retry[64], reset[64];
    const char *tier = st->tier[0] ? st->tier : "-";
    const char *cells[7];
    if (!l) {
        const char *what = st->tier_source == RL_TIER_NONE ? "no tier" : "unlimited";
        cells[0] = st->key;
        cells[1] = tier;
        cells[2] = "-";
        cells[3] = "-";
        cells[4] = what;
        cells[5] = "-";
        cells[6] = "-";
        return rlctl_table_add(&c->t, cells);
    }
    rlctl_format_rate(l->count, l->period_ns, rate, sizeof rate);
    snprintf(rem, sizeof rem, "%lld/%lld", (long long)l->remaining, (long long)l->burst);
    rlctl_format_duration(wait_of(st, l), retry, sizeof retry);
    rlctl_format_duration(l->reset_after_ns, reset, sizeof reset);
    cells[0] = st->key;
    cells[1] = tier;
    cells[2] = l->name;
    cells[3] = rate;
    cells[4] = rem;
    cells[5] = retry;
    cells[6] = reset;
    return rlctl_table_add(&c->t, cells);
}

static void json_key(keys_ctx *c, const rl_key_stats *st, const rl_limit_stats *tight)
{
    rlctl_json *j = &c->j;
    size_t i;
    rlctl_json_object(j);
    rlctl_json_kstring(j, "key", st->key);
    rlctl_json_kstring(j, "tier", st->tier[0] ? st->tier : NULL);
    rlctl_json_kstring(j, "tier_source", rlctl_tier_source_json(st->tier_source));
    rlctl_json_kbool(j, "limited", is_limited(st));
    rlctl_json_kstring(j, "tightest", tight ? tight->name : NULL);
    rlctl_json_kint(j, "cooldown_ns", st->cooldown_ns);
    rlctl_json_key(j, "limits");
    rlctl_json_array(j);
    for (i = 0; i < st->n_limits; i++) {
        const rl_limit_stats *l = &st->limits[i];
        char rate[64];
        rlctl_format_rate(l->count, l->period_ns, rate, sizeof rate);
        rlctl_json_object(j);
        rlctl_json_kstring(j, "name", l->name);
        rlctl_json_kstring(j, "resource", l->resource);
        rlctl_json_kstring(j, "kind", rlctl_limit_kind(l->period_ns, l->algorithm));
        rlctl_json_kstring(j, "rate", rate);
        rlctl_json_kint(j, "burst", l->burst);
        rlctl_json_kint(j, "remaining", l->remaining);
        rlctl_json_kint(j, "retry_after_ns", l->retry_after_ns);
        rlctl_json_kint(j, "reset_after_ns", l->reset_after_ns);
        rlctl_json_kint(j, "cooldown_ns", l->cooldown_ns);
        rlctl_json_end(j);
    }
    rlctl_json_end(j);
    rlctl_json_end(j);
}

/* Terminal columns of a cell (escaped already): code points, as the
 * tables of output.c count them. */
static size_t cell_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

/* Prints the page's rows (the header first on the first page) aligned to
 * the widest cells seen so far, and forgets them. rlctl_table_print would
 * align each page to itself only, so columns would jump between pages. */
static void print_page(keys_ctx *c)
{
    rlctl_table *t = &c->t;
    size_t r, col;
    for (r = 0; r < t->nrows; r++)
        for (col = 0; col < NCOLS; col++) {
            size_t w = cell_width(t->cells[r * NCOLS + col]);
            if (w > c->widths[col])
                c->widths[col] = w;
        }
    for (r = 0; r < t->nrows; r++) {
        int bold = t->header && r == 0 && rlctl_color();
        if (bold)
            fputs(rlctl_sgr("1"), stdout);
        for (col = 0; col < NCOLS; col++) {
            const char *cell = t->cells[r * NCOLS + col];
            int pad = (int)(c->widths[col] - cell_width(cell));
            if (col > 0)
                fputs("  ", stdout);
            if (t->right & (1u << col))
                printf("%*s%s", pad, "", cell);
            else if (col + 1 < NCOLS)
                printf("%s%*s", cell, pad, "");
            else
                fputs(cell, stdout);
        }
        if (bold)
            fputs(rlctl_sgr("0"), stdout);
        putchar('\n');
    }
    rlctl_table_free(t);
    rlctl_table_init(t, NCOLS, RIGHT_COLS);
}

/* Called by rl_keys_page for each key of a page, outside any transaction:
 * a JSON item is written at once, a table row waits for its page. */
static int each_key(void *ctx, const rl_key_stats *st)
{
    static const char *const head[NCOLS] = { "KEY",       "TIER",        "LIMIT",      "RATE",
                                             "REMAINING", "RETRY AFTER", "RESET AFTER" };
    keys_ctx *c = ctx;
    const rl_limit_stats *tight;
    size_t i;
    if (c->tier && strcmp(st->tier, c->tier) != 0)
        return 0;
    if (c->limited_only && !is_limited(st))
        return 0;
    c->n++;
    snprintf(c->last, sizeof c->last, "%s", st->key);
    tight = tightest(st);
    if (c->json) {
        json_key(c, st, tight);
    } else {
        if (c->n == 1) {
            c->t.header = 1;
            if (rlctl_table_add(&c->t, head) != RLCTL_OK)
                return STOP_FAILED;
        }
        if (!c->all_limits || st->n_limits == 0) {
            if (add_row(c, st, tight) != RLCTL_OK)
                return STOP_FAILED;
        } else {
            for (i = 0; i < st->n_limits; i++)
                if (add_row(c, st, &st->limits[i]) != RLCTL_OK)
                    return STOP_FAILED;
        }
    }
    if (c->limit && c->n >= c->limit) {
        c->full = 1;
        return STOP_FULL;
    }
    return 0;
}

/* The listing, page by page from `after`. Returns an RLCTL_* status; a
 * reader that left (a failed write to stdout) stops it early, quietly:
 * main's rlctl_stdout_finish turns that into status 3. */
static int list(rl *r, keys_ctx *c, const char *match, const char *after)
{
    char cursor[RL_KEY_MAX + 1], next[RL_KEY_MAX + 1];
    int lrc;
    snprintf(cursor, sizeof cursor, "%s", after ? after : "");
    for (;;) {
        lrc = rl_keys_page(r, match, cursor, PAGE, each_key, c, next);
        if (!c->json)
            print_page(c);
        fflush(stdout); /* a page's lines now, not when the buffer fills */
        if (lrc == STOP_FAILED)
            return RLCTL_ERROR;
        if (lrc != RL_OK && lrc != STOP_FULL)
            return rlctl_error("%s", rl_errmsg(r));
        if (lrc == STOP_FULL || !next[0] || ferror(stdout))
            return RLCTL_OK;
        memcpy(cursor, next, sizeof cursor);
    }
}

int rlctl_cmd_keys(const rlctl_ctx *ctx, int argc, char **argv)
{
    const char *match = NULL, *after = NULL, *limit = NULL;
    keys_ctx c;
    int npos, rc;
    rl *r = NULL;
    const rlctl_opt opts[] = {
        { "--match", RLCTL_OPT_VALUE, &match },
        { "--tier", RLCTL_OPT_VALUE, &c.tier },
        { "--limited", RLCTL_OPT_FLAG, &c.limited_only },
        { "--all-limits", RLCTL_OPT_FLAG, &c.all_limits },
        { "--limit", RLCTL_OPT_VALUE, &limit },
        { "--after", RLCTL_OPT_VALUE, &after },
        { "--json", RLCTL_OPT_FLAG, &c.json },
        { NULL, 0, NULL },
    };

    memset(&c, 0, sizeof c);
    rlctl_table_init(&c.t, NCOLS, RIGHT_COLS);
    if ((rc = rlctl_parse_opts(argc, argv, opts, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos > 0)
        return rlctl_usage_error(argv[0], "unexpected argument '%s' (use --match)", argv[1]);
    if (match && !*match)
        return rlctl_usage_error(argv[0], "--match needs a non-empty GLOB");
    if (c.json && c.all_limits)
        return rlctl_usage_error(argv[0], "--json lists every limit already: drop --all-limits");
    if (limit && rlctl_parse_int(limit, 0, INT64_MAX, &c.limit) != 0)
        return rlctl_usage_error(argv[0], "--limit needs a number of keys (0: all), not '%s'",
                                 limit);
    if (after && (!*after || strlen(after) > RL_KEY_MAX))
        return rlctl_usage_error(argv[0], "--after needs a KEY of 1 to %d bytes", RL_KEY_MAX);
    if ((rc = rlctl_open(ctx, 1, &r)) != RLCTL_OK)
        goto out;
    if ((rc = rlctl_check_tier(r, c.tier)) != RLCTL_OK)
        goto out;
    if (c.json) {
        rlctl_json_init(&c.j, stdout);
        rlctl_json_object(&c.j);
        rlctl_json_kstring(&c.j, "match", match);
        rlctl_json_kstring(&c.j, "tier", c.tier);
        rlctl_json_kbool(&c.j, "limited", c.limited_only);
        rlctl_json_kstring(&c.j, "after", after);
        rlctl_json_key(&c.j, "limit");
        if (c.limit)
            rlctl_json_int(&c.j, c.limit);
        else
            rlctl_json_null(&c.j);
        rlctl_json_key(&c.j, "keys");
        rlctl_json_array(&c.j);
    }
    /* On an error the document stays cut: no JSON parser takes it whole. */
    if ((rc = list(r, &c, match, after)) != RLCTL_OK)
        goto out;
    if (c.json) {
        rlctl_json_end(&c.j);
        rlctl_json_kint(&c.j, "count", c.n);
        rlctl_json_kstring(&c.j, "next", c.full ? c.last : NULL);
        rlctl_json_end(&c.j);
        if (rlctl_json_done(&c.j) != 0)
            rc = rlctl_error("internal error: bad JSON");
    } else if (c.n == 0) {
        printf("no %skeys\n", c.limited_only ? "limited " : "");
    }
out:
    rlctl_table_free(&c.t);
    rl_close(r);
    return rc;
}
