/*
 * cmd_watch.c - `rlctl watch`: a live, top-like view of the busiest keys,
 * with the decisions per second admitted and refused.
 *
 * Each refresh costs writers a bounded amount, however many keys there are
 * (issue 20): it reads a bounded slice of the keys, a page per short read
 * transaction, none held between refreshes, and keeps both the busiest
 * keys and the totals from those reads (watch_scan.h). Below a refresh's
 * worth of keys everything shown is exact as of the refresh; above, each
 * key counts as of its last read, at most one pass over the keys old.
 * Nothing counts every key: rl_totals_get does, in one read transaction
 * (about 0.2 s of CPU at a million keys), and that is what taxed writers.
 * Each frame is drawn in one write, line by line over the last one, so it
 * does not flicker. On ^C (or SIGTERM) the
 * terminal is left as it was found: cursor shown, attributes reset, prompt
 * on a fresh line.
 */
#include "common.h"
#include "watch_scan.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static const char use[] =
    "usage: rlctl watch [--interval DURATION] [--top N] [--match GLOB]\n"
    "\n"
    "Shows the busiest keys live, like top: for each, the decisions per\n"
    "second admitted and refused, its totals and when it was last used;\n"
    "above them the totals of the database. Each refresh reads at most 10000\n"
    "keys per second of interval: with fewer keys than a refresh reads, every\n"
    "figure is exact at each refresh; with more, each key counts as watch\n"
    "last read it, at most one pass over the keys ago (shown above the\n"
    "table). For exact totals at one moment, use 'rlctl stats'. Needs a\n"
    "terminal; ^C quits.\n"
    "\n"
    "Options:\n"
    "  --interval DURATION  time between refreshes (default 1s; 100ms to 1h)\n"
    "  --top N              at most N keys (default: as many as fit)\n"
    "  --match GLOB         only keys that match GLOB\n";

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
}

static void format_rate(int64_t n, int64_t dt_ns, char *buf, size_t len)
{
    double per_s;
    if (n < 0 || dt_ns <= 0) {
        snprintf(buf, len, "-");
        return;
    }
    per_s = (double)n * 1e9 / (double)dt_ns;
    snprintf(buf, len, per_s < 10 && n ? "%.1f/s" : "%.0f/s", per_s);
}

static void format_ago(int64_t then, int64_t now, char *buf, size_t len)
{
    char d[32];
    if (then == 0) {
        snprintf(buf, len, "-");
        return;
    }
    /* whole seconds: a live view needs no more */
    rlctl_format_duration(now > then ? (now - then) / RL_SECOND * RL_SECOND : 0, d, sizeof d);
    snprintf(buf, len, "%s ago", d);
}

/* Draws the frame into o: the caller writes it out in one go. */
static int draw(FILE *o, const char *db, int64_t interval, watch_scan *w, size_t max_rows,
                size_t cols)
{
    static const char *const head[] = { "KEY",      "TIER",    "ADMITTED/S", "REFUSED/S",
                                        "ADMITTED", "REFUSED", "LAST SEEN" };
    char iv[32], clock[32], ra[32], rr[32], a[24], r[24], ago[48], shown[4096], pass[32];
    const char *cells[7];
    rlctl_table tb;
    time_t secs = time(NULL);
    struct tm tm;
    int64_t now = wall_ns(), da, dr, dt = 0;
    size_t i;
    int rc = RLCTL_OK;

    rlctl_format_duration(interval, iv, sizeof iv);
    if (!localtime_r(&secs, &tm) || !strftime(clock, sizeof clock, "%H:%M:%S", &tm))
        snprintf(clock, sizeof clock, "?");
    fprintf(o, "%srlctl watch%s  %.*s  every %s  %s\n", rlctl_sgr("1"), rlctl_sgr("0"),
            (int)(cols > 60 ? cols - 40 : 20), rlctl_text(db, shown, sizeof shown), iv, clock);
    /* the totals: exact as of the last pass, rates over it */
    if (!watch_scan_rates(w, &da, &dr, &dt))
        da = dr = -1;
    format_rate(da, dt, ra, sizeof ra);
    format_rate(dr, dt, rr, sizeof rr);
    fprintf(o, "keys %lld%s  admitted %s  refused %s%s%s  (totals %s%lld admitted, %lld refused)\n",
            (long long)w->keys, w->pass_ns > 0 ? "" : "+", ra, dr > 0 ? rlctl_sgr("31") : "", rr,
            dr > 0 ? rlctl_sgr("0") : "", w->pass_ns > 0 ? "" : "so far: ", (long long)w->allowed,
            (long long)w->refused);
    /* how old the keys' figures may be: one pass over the keys */
    if (w->pass_ns > 0)
        rlctl_format_duration(w->pass_ns / RL_MILLISECOND * RL_MILLISECOND, pass, sizeof pass);
    fprintf(o, "read %zu keys in %zu transactions; pass %lld: %zu keys", w->rows, w->txns,
            (long long)w->pass, w->pass_rows);
    if (w->pass_done)
        fprintf(o, ", done in %s\n", pass);
    else if (w->pass_ns > 0)
        fprintf(o, " so far; the last took %s\n", pass);
    else
        fprintf(o, " so far\n");
    fputc('\n', o);
    if (w->n_top == 0) {
        fprintf(o, "no keys yet\n");
        return RLCTL_OK;
    }
    watch_scan_sort(w);
    rlctl_table_init(&tb, 7, 0x7cu);
    tb.header = 1;
    tb.width = cols;
    if ((rc = rlctl_table_add(&tb, head)) != RLCTL_OK)
        goto out;
    for (i = 0; i < w->n_top && i < max_rows; i++) {
        const watch_row *k = &w->top[i];
        format_rate(k->da, k->dt, ra, sizeof ra);
        format_rate(k->dr, k->dt, rr, sizeof rr);
        snprintf(a, sizeof a, "%lld", (long long)k->allowed);
        snprintf(r, sizeof r, "%lld", (long long)k->refused);
        format_ago(k->last_seen, now, ago, sizeof ago);
        cells[0] = k->key;
        cells[1] = k->tier;
        cells[2] = ra;
        cells[3] = rr;
        cells[4] = a;
        cells[5] = r;
        cells[6] = ago;
        if ((rc = rlctl_table_add(&tb, cells)) != RLCTL_OK)
            goto out;
    }
    rlctl_table_print(&tb, o);
out:
    rlctl_table_free(&tb);
    return rc;
}

/* Writes a frame over the previous one: home, each line cleared to its
 * end, the rest of the screen cleared. */
static void show(const char *buf, size_t len)
{
    size_t i;
    fputs("\033[H", stdout);
    for (i = 0; i < len; i++) {
        if (buf[i] == '\n')
            fputs("\033[K", stdout);
        putchar(buf[i]);
    }
    fputs("\033[J", stdout);
    fflush(stdout);
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / RL_SECOND);
    ts.tv_nsec = (long)(ns % RL_SECOND);
    /* a signal ends the sleep early (no SA_RESTART): ^C quits at once */
    while (!stop && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGINT, &sa, NULL) == 0 && sigaction(SIGTERM, &sa, NULL) == 0 &&
                   sigaction(SIGHUP, &sa, NULL) == 0
               ? 0
               : -1;
}

int rlctl_cmd_watch(const rlctl_ctx *ctx, int argc, char **argv)
{
    const char *interval_s = NULL, *top_s = NULL, *match = NULL;
    const rlctl_opt opts[] = {
        { "--interval", RLCTL_OPT_VALUE, &interval_s },
        { "--top", RLCTL_OPT_VALUE, &top_s },
        { "--match", RLCTL_OPT_VALUE, &match },
        { NULL, 0, NULL },
    };
    int64_t interval = RL_SECOND, top = 0;
    char path[4096];
    const char *db = ctx->db;
    watch_scan w;
    rlctl_out o = { NULL, NULL, 0 };
    int npos, rc, drawn = 0;
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, opts, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos > 0)
        return rlctl_usage_error(argv[0], "unexpected argument '%s'", argv[1]);
    if (interval_s && (rl_parse_duration(interval_s, &interval) != RL_OK ||
                       interval < 100 * RL_MILLISECOND || interval > RL_HOUR))
        return rlctl_usage_error(argv[0], "--interval takes a duration from 100ms to 1h, not '%s'",
                                 interval_s);
    if (top_s && rlctl_parse_int(top_s, 1, 100000, &top) != 0)
        return rlctl_usage_error(argv[0], "--top takes a count from 1, not '%s'", top_s);
    if (match && !*match)
        return rlctl_usage_error(argv[0], "--match needs a non-empty GLOB");
    if (!isatty(STDOUT_FILENO))
        return rlctl_usage_error(argv[0], "stdout is not a terminal: for scripts, use "
                                          "'rlctl stats' or 'rlctl keys'");
    if (!db && rl_default_path(path, sizeof path) == RL_OK)
        db = path;
    watch_scan_init(&w, match, interval);
    if ((rc = rlctl_open(ctx, 1, &r)) != RLCTL_OK)
        return rc;
    if (install() != 0) {
        rc = rlctl_error("cannot handle SIGINT");
        goto out;
    }
    fputs("\033[?25l\033[H\033[2J", stdout); /* cursor hidden, screen cleared */
    drawn = 1;
    while (!stop) {
        struct winsize ws;
        size_t rows = 24, cols = 80, max_rows;
        int src;
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
            rows = ws.ws_row;
            cols = ws.ws_col;
        }
        /* the four header lines, the table's, and one for the cursor */
        max_rows = rows > 7 ? rows - 6 : 1;
        if (top > 0 && (size_t)top < max_rows)
            max_rows = (size_t)top;
        if ((src = watch_scan_refresh(r, &w)) != RL_OK) {
            rc = rlctl_error("%s", src == RL_ENOMEM ? "out of memory" : rl_errmsg(r));
            break;
        }
        if ((rc = rlctl_out_open(&o)) != RLCTL_OK)
            break;
        rc = draw(o.f, db ? db : "", interval, &w, max_rows, cols);
        if (rc != RLCTL_OK)
            break;
        if (fclose(o.f) == 0)
            show(o.buf, o.len);
        o.f = NULL;
        rlctl_out_discard(&o);
        sleep_ns(interval);
    }
out:
    if (drawn) {
        /* attributes off, cursor back, and the shell's prompt below */
        fputs("\033[0m\033[?25h\n", stdout);
        fflush(stdout);
    }
    rlctl_out_discard(&o);
    watch_scan_free(&w);
    rl_close(r);
    return rc;
}
