/*
 * cmd_stats.c - `rlctl stats`: the totals of the database and its busiest
 * keys, or the counters of the keys named; for people, as JSON, or in the
 * Prometheus text format for node_exporter's textfile collector.
 *
 * Everything is read before anything is printed, so column widths can be
 * computed and a failure half-way never leaves half a document. The totals
 * are one aggregate query and the busiest keys one sorted, limited query:
 * on a million keys both take a fraction of a second, in read transactions
 * that never hold up a deciding process. --tier and --match need every
 * selected key seen (a key's tier comes from rules the database cannot
 * apply): they walk the keys in stored order and keep the top N in a heap,
 * rather than have SQLite sort every row.
 */
#include "common.h"
#include "json.h"

#include <stdlib.h>
#include <string.h>

static const char use[] =
    "usage: rlctl stats [--top N] [--sort ORDER] [--match GLOB] [--tier TIER]\n"
    "                   [--json | --format FORMAT]\n"
    "       rlctl stats [--json] KEY...\n"
    "\n"
    "Without KEY: the totals of the database (keys, admitted, refused, the\n"
    "refusal rate, units admitted) and the busiest keys; with --match or\n"
    "--tier, also the totals of the keys selected. With KEYs: the counters,\n"
    "tier and first and last decision of each.\n"
    "\n"
    "Options:\n"
    "  --top N          how many keys to list (default 10; 0 lists them all)\n"
    "  --sort ORDER     admitted (default), refused or last-seen\n"
    "  --match GLOB     only keys that match GLOB: '*' any run, '?' one byte,\n"
    "                   '\\' escapes the next byte\n"
    "  --tier TIER      only keys whose tier (as a decision resolves it) is TIER\n"
    "  --json           print one JSON object instead of tables\n"
    "  --format FORMAT  table (default), json, or prometheus: the text format\n"
    "                   of node_exporter's textfile collector, with per-key\n"
    "                   series for the --top keys only\n";

typedef struct key_row {
    char *key;
    char tier[RL_NAME_MAX];
    int tier_source;
    int64_t allowed, refused, units, first_seen_ns, last_seen_ns;
} key_row;

typedef struct key_list {
    key_row *v;
    size_t n, cap;
} key_list;

static int row_set(key_row *row, const rl_key_stats *st)
{
    if (!(row->key = strdup(st->key)))
        return -1;
    snprintf(row->tier, sizeof row->tier, "%s", st->tier);
    row->tier_source = st->tier_source;
    row->allowed = st->allowed;
    row->refused = st->refused;
    row->units = st->units;
    row->first_seen_ns = st->first_seen_ns;
    row->last_seen_ns = st->last_seen_ns;
    return 0;
}

static int key_list_add(key_list *l, const rl_key_stats *st)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        key_row *nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv)
            return -1;
        l->v = nv;
        l->cap = ncap;
    }
    if (row_set(&l->v[l->n], st) != 0)
        return -1;
    l->n++;
    return 0;
}

static void key_list_free(key_list *l)
{
    size_t i;
    for (i = 0; i < l->n; i++)
        free(l->v[i].key);
    free(l->v);
}

/* What a walk over the selected keys gathers. */
typedef struct selection {
    key_list l;
    const char *tier; /* NULL: every key of the walk */
    int sort;         /* RL_SORT_* */
    int heap;         /* keys come in key order: l is a heap of the top ones */
    size_t top;       /* 0: all */
    rl_totals t;      /* of the selected keys */
} selection;

static int64_t sort_value(const key_row *k, int sort)
{
    return sort == RL_SORT_REFUSED     ? k->refused
           : sort == RL_SORT_LAST_SEEN ? k->last_seen_ns
                                       : k->allowed;
}

/* The order of the listing, as the store's query sorts: by the value,
 * highest first, then by key (bytes, as SQLite compares them). */
static int before(const key_row *a, const key_row *b, int sort)
{
    int64_t va = sort_value(a, sort), vb = sort_value(b, sort);
    if (va != vb)
        return va > vb;
    return strcmp(a->key, b->key) < 0;
}

/* A binary heap whose root is the row listed last: the one to drop when a
 * better one comes. */
static void sift_down(key_list *l, size_t i, int sort)
{
    for (;;) {
        size_t c = 2 * i + 1, worst = i;
        key_row tmp;
        if (c < l->n && before(&l->v[worst], &l->v[c], sort))
            worst = c;
        if (c + 1 < l->n && before(&l->v[worst], &l->v[c + 1], sort))
            worst = c + 1;
        if (worst == i)
            return;
        tmp = l->v[i];
        l->v[i] = l->v[worst];
        l->v[worst] = tmp;
        i = worst;
    }
}

static void sift_up(key_list *l, size_t i, int sort)
{
    while (i > 0 && before(&l->v[(i - 1) / 2], &l->v[i], sort)) {
        key_row tmp = l->v[i];
        l->v[i] = l->v[(i - 1) / 2];
        l->v[(i - 1) / 2] = tmp;
        i = (i - 1) / 2;
    }
}

static int sort_arg;

static int cmp_rows(const void *a, const void *b)
{
    return before(a, b, sort_arg) ? -1 : before(b, a, sort_arg) ? 1 : 0;
}

/* rl_keys_list callback: a non-zero return stops the walk and comes back
 * from rl_keys_list, which is how running out of memory is told apart.
 * Without a heap, keys come in the order asked for, so the first `top` are
 * the busiest; with one, every selected key is weighed against the worst
 * kept so far. */
static int collect(void *ctx, const rl_key_stats *st)
{
    selection *sel = ctx;
    key_list *l = &sel->l;
    key_row cand;
    if (sel->tier && strcmp(st->tier, sel->tier) != 0)
        return 0;
    sel->t.keys++;
    sel->t.allowed += st->allowed;
    sel->t.refused += st->refused;
    sel->t.units += st->units;
    if (!sel->top || l->n < sel->top) {
        if (key_list_add(l, st) != 0)
            return 1;
        if (sel->heap && sel->top)
            sift_up(l, l->n - 1, sel->sort);
        return 0;
    }
    if (!sel->heap)
        return 0;
    cand.key = (char *)st->key;
    cand.allowed = st->allowed;
    cand.refused = st->refused;
    cand.last_seen_ns = st->last_seen_ns;
    if (!before(&cand, &l->v[0], sel->sort))
        return 0;
    /* the newcomer takes the root's place, then sinks to its own */
    free(l->v[0].key);
    if (row_set(&l->v[0], st) != 0) {
        l->v[0] = l->v[--l->n];
        return 1;
    }
    sift_down(l, 0, sel->sort);
    return 0;
}

static void json_time(rlctl_json *j, const char *name, int64_t ns)
{
    char key[32], buf[64];
    rlctl_format_time(ns, buf, sizeof buf);
    rlctl_json_kstring(j, name, ns ? buf : NULL);
    snprintf(key, sizeof key, "%s_ns", name);
    rlctl_json_kint(j, key, ns);
}

static void json_rows(rlctl_json *j, const key_list *l)
{
    size_t i;
    rlctl_json_array(j);
    for (i = 0; i < l->n; i++) {
        const key_row *k = &l->v[i];
        rlctl_json_object(j);
        rlctl_json_kstring(j, "key", k->key);
        rlctl_json_kstring(j, "tier", k->tier[0] ? k->tier : NULL);
        rlctl_json_kstring(j, "tier_source", rlctl_tier_source_json(k->tier_source));
        rlctl_json_kint(j, "allowed", k->allowed);
        rlctl_json_kint(j, "refused", k->refused);
        rlctl_json_kint(j, "units", k->units);
        json_time(j, "first_seen", k->first_seen_ns);
        json_time(j, "last_seen", k->last_seen_ns);
        rlctl_json_end(j);
    }
    rlctl_json_end(j);
}

static int print_rows(const key_list *l)
{
    static const char *const head[] = { "KEY",   "TIER",       "ADMITTED", "REFUSED",
                                        "UNITS", "FIRST SEEN", "LAST SEEN" };
    rlctl_table t;
    size_t i;
    int rc = RLCTL_OK;

    rlctl_table_init(&t, 7, 1u << 2 | 1u << 3 | 1u << 4);
    t.header = 1;
    if ((rc = rlctl_table_add(&t, head)) != RLCTL_OK)
        goto out;
    for (i = 0; i < l->n; i++) {
        const key_row *k = &l->v[i];
        char a[24], r[24], u[24], first[64], last[64];
        const char *cells[7];
        snprintf(a, sizeof a, "%lld", (long long)k->allowed);
        snprintf(r, sizeof r, "%lld", (long long)k->refused);
        snprintf(u, sizeof u, "%lld", (long long)k->units);
        rlctl_format_time(k->first_seen_ns, first, sizeof first);
        rlctl_format_time(k->last_seen_ns, last, sizeof last);
        cells[0] = k->key;
        cells[1] = k->tier[0] ? k->tier : "-";
        cells[2] = a;
        cells[3] = r;
        cells[4] = u;
        cells[5] = first;
        cells[6] = last;
        if ((rc = rlctl_table_add(&t, cells)) != RLCTL_OK)
            goto out;
    }
    rlctl_table_print(&t, stdout);
out:
    rlctl_table_free(&t);
    return rc;
}

/* The refused share of all decisions in basis points (1/100 of a percent),
 * -1 when there was no decision; an integer so JSON stays integral. */
static int64_t refusal_bp(const rl_totals *t)
{
    double total = (double)t->allowed + (double)t->refused;
    if (total <= 0)
        return -1;
    return (int64_t)((double)t->refused * 10000.0 / total + 0.5);
}

static void format_bp(int64_t bp, char *buf, size_t len)
{
    if (bp < 0)
        snprintf(buf, len, "-");
    else /* one decimal, rounded from basis points */
        snprintf(buf, len, "%lld.%lld%%", (long long)((bp + 5) / 100),
                 (long long)((bp + 5) / 10 % 10));
}

/* "matching 'u:*' in tier pro" for the headings, or "". */
static void describe(const char *match, const char *tier, char *buf, size_t len)
{
    char shown[RLCTL_TEXT_MAX];
    int n = 0;
    buf[0] = 0;
    if (match)
        n = snprintf(buf, len, " matching '%s'", rlctl_text(match, shown, sizeof shown));
    if (tier && n >= 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " in tier %s", rlctl_text(tier, shown, sizeof shown));
}

static int print_totals(const rl_totals *t, const selection *sel, const char *sort,
                        const char *match, const char *tier, int64_t top)
{
    static const char *const names[] = { "keys", "admitted", "refused", "refusal rate", "units" };
    const rl_totals *cols[2] = { t, &sel->t };
    int filtered = match || tier;
    rlctl_table kv;
    char v[2][5][32], what[RLCTL_TEXT_MAX + 128];
    const char *row[3];
    size_t i, c;
    int rc = RLCTL_OK;

    for (c = 0; c < 2; c++) {
        snprintf(v[c][0], sizeof v[c][0], "%lld", (long long)cols[c]->keys);
        snprintf(v[c][1], sizeof v[c][1], "%lld", (long long)cols[c]->allowed);
        snprintf(v[c][2], sizeof v[c][2], "%lld", (long long)cols[c]->refused);
        format_bp(refusal_bp(cols[c]), v[c][3], sizeof v[c][3]);
        snprintf(v[c][4], sizeof v[c][4], "%lld", (long long)cols[c]->units);
    }
    /* With a selection, its totals stand next to the database's. */
    rlctl_table_init(&kv, filtered ? 3 : 2, filtered ? 6u : 0u);
    kv.header = filtered;
    if (filtered) {
        row[0] = "";
        row[1] = "ALL";
        row[2] = "SELECTED";
        if ((rc = rlctl_table_add(&kv, row)) != RLCTL_OK)
            goto out;
    }
    for (i = 0; i < 5; i++) {
        row[0] = names[i];
        row[1] = v[0][i];
        row[2] = v[1][i];
        if ((rc = rlctl_table_add(&kv, row)) != RLCTL_OK)
            goto out;
    }
    rlctl_table_print(&kv, stdout);
    putchar('\n');
    describe(match, tier, what, sizeof what);
    if (sel->l.n == 0) {
        if (filtered)
            printf("no key%s\n", what);
        else
            printf("no keys\n");
        goto out;
    }
    if (top > 0)
        printf("top %lld keys by %s%s:\n", (long long)top, sort, what);
    else
        printf("all keys by %s%s:\n", sort, what);
    rc = print_rows(&sel->l);
out:
    rlctl_table_free(&kv);
    return rc;
}

static void json_counts(rlctl_json *j, const char *name, const rl_totals *t)
{
    int64_t bp = refusal_bp(t);
    rlctl_json_key(j, name);
    rlctl_json_object(j);
    rlctl_json_kint(j, "keys", t->keys);
    rlctl_json_kint(j, "allowed", t->allowed);
    rlctl_json_kint(j, "refused", t->refused);
    rlctl_json_kint(j, "units", t->units);
    rlctl_json_key(j, "refusal_rate_bp");
    if (bp < 0)
        rlctl_json_null(j);
    else
        rlctl_json_int(j, bp);
    rlctl_json_end(j);
}

static int json_totals(const rl_totals *t, const selection *sel, const char *sort,
                       const char *match, const char *tier, int64_t top)
{
    rlctl_json j;
    rlctl_json_init(&j, stdout);
    rlctl_json_object(&j);
    json_counts(&j, "totals", t);
    if (match || tier)
        json_counts(&j, "selected", &sel->t);
    rlctl_json_kstring(&j, "sort", sort);
    rlctl_json_kstring(&j, "match", match);
    rlctl_json_kstring(&j, "tier", tier);
    rlctl_json_kint(&j, "top", top);
    rlctl_json_key(&j, "keys");
    json_rows(&j, &sel->l);
    rlctl_json_end(&j);
    return rlctl_json_done(&j) == 0 ? RLCTL_OK : rlctl_error("internal error: bad JSON");
}

/* ---- Prometheus text exposition format (version 0.0.4) ---- */

/* A label value: first through rlctl_text (a key from a tampered database
 * may hold escape sequences or bytes that are not UTF-8, which the format
 * does not allow), then backslash, double quote and line feed escaped, as
 * the format requires; anything else (UTF-8 included) as it is. */
static void prom_label(FILE *f, const char *name, const char *raw)
{
    char shown[RLCTL_TEXT_MAX];
    const char *value = rlctl_text(raw, shown, sizeof shown);
    fprintf(f, "%s=\"", name);
    for (; *value; value++) {
        if (*value == '\\' || *value == '"')
            fprintf(f, "\\%c", *value);
        else if (*value == '\n')
            fputs("\\n", f);
        else
            fputc(*value, f);
    }
    fputc('"', f);
}

static void prom_family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_key_labels(FILE *f, const key_row *k)
{
    prom_label(f, "key", k->key);
    fputc(',', f);
    prom_label(f, "tier", k->tier);
}

static int prometheus(const rl_totals *t, const selection *sel)
{
    static const char *const results[] = { "admitted", "refused" };
    rlctl_out o;
    size_t i, r;
    int rc;
    /* Built whole first: the textfile collector must never read half a
     * file (write it to a temporary file and rename it into place). */
    if ((rc = rlctl_out_open(&o)) != RLCTL_OK)
        return rc;
    prom_family(o.f, "rl_keys", "gauge", "Keys in the rate-limit database.");
    fprintf(o.f, "rl_keys %lld\n", (long long)t->keys);
    prom_family(o.f, "rl_decisions_total", "counter",
                "Decisions made on all keys, by result (reset keys no longer count).");
    fprintf(o.f, "rl_decisions_total{result=\"admitted\"} %lld\n", (long long)t->allowed);
    fprintf(o.f, "rl_decisions_total{result=\"refused\"} %lld\n", (long long)t->refused);
    prom_family(o.f, "rl_units_total", "counter", "Units admitted on all keys.");
    fprintf(o.f, "rl_units_total %lld\n", (long long)t->units);
    if (sel->l.n > 0) {
        prom_family(o.f, "rl_key_decisions_total", "counter",
                    "Decisions made on each of the busiest keys, by result.");
        for (i = 0; i < sel->l.n; i++)
            for (r = 0; r < 2; r++) {
                const key_row *k = &sel->l.v[i];
                fputs("rl_key_decisions_total{", o.f);
                prom_key_labels(o.f, k);
                fprintf(o.f, ",result=\"%s\"} %lld\n", results[r],
                        (long long)(r ? k->refused : k->allowed));
            }
        prom_family(o.f, "rl_key_units_total", "counter",
                    "Units admitted on each of the busiest keys.");
        for (i = 0; i < sel->l.n; i++) {
            fputs("rl_key_units_total{", o.f);
            prom_key_labels(o.f, &sel->l.v[i]);
            fprintf(o.f, "} %lld\n", (long long)sel->l.v[i].units);
        }
        prom_family(
            o.f, "rl_key_last_seen_seconds", "gauge",
            "Time of the last decision on each of the busiest keys, in seconds since the epoch.");
        for (i = 0; i < sel->l.n; i++) {
            int64_t ns = sel->l.v[i].last_seen_ns;
            fputs("rl_key_last_seen_seconds{", o.f);
            prom_key_labels(o.f, &sel->l.v[i]);
            fprintf(o.f, "} %lld.%09lld\n", (long long)(ns / RL_SECOND),
                    (long long)(ns % RL_SECOND));
        }
    }
    rlctl_out_flush(&o);
    return RLCTL_OK;
}

static int stats_keys(rl *r, int nkeys, char **keys, int json)
{
    key_list l = { NULL, 0, 0 };
    rl_key_stats *st = NULL;
    int i, rc = RLCTL_OK;

    if (!(st = malloc(sizeof *st))) {
        rc = rlctl_error("out of memory");
        goto out;
    }
    for (i = 0; i < nkeys; i++) {
        if (rl_stats(r, keys[i], st) != RL_OK) {
            rc = rlctl_error("%s", rl_errmsg(r));
            continue;
        }
        if (!st->exists) {
            rc = rlctl_error("no such key: '%s'", keys[i]);
            continue;
        }
        if (key_list_add(&l, st) != 0) {
            rc = rlctl_error("out of memory");
            goto out;
        }
    }
    /* Keys that exist are shown even when another does not: the error says
     * which one, and the exit status that something was missing. */
    if (json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_object(&j);
        rlctl_json_key(&j, "keys");
        json_rows(&j, &l);
        rlctl_json_end(&j);
        if (rlctl_json_done(&j) != 0)
            rc = rlctl_error("internal error: bad JSON");
    } else if (l.n > 0) {
        int prc = print_rows(&l);
        if (prc != RLCTL_OK)
            rc = prc;
    }
out:
    free(st);
    key_list_free(&l);
    return rc;
}

int rlctl_cmd_stats(const rlctl_ctx *ctx, int argc, char **argv)
{
    const char *top_s = NULL, *sort_s = NULL, *match = NULL, *tier = NULL, *format = NULL;
    int json = 0, npos, sort = RL_SORT_ALLOWED, rc, prom = 0;
    const rlctl_opt opts[] = {
        { "--top", RLCTL_OPT_VALUE, &top_s },
        { "--sort", RLCTL_OPT_VALUE, &sort_s },
        { "--match", RLCTL_OPT_VALUE, &match },
        { "--tier", RLCTL_OPT_VALUE, &tier },
        { "--json", RLCTL_OPT_FLAG, &json },
        { "--format", RLCTL_OPT_VALUE, &format },
        { NULL, 0, NULL },
    };
    selection sel;
    rl_totals t;
    int64_t top = 10;
    rl *r = NULL;

    memset(&sel, 0, sizeof sel);
    if ((rc = rlctl_parse_opts(argc, argv, opts, use, &npos)) != RLCTL_OK)
        return rc;
    if (format) {
        if (json)
            return rlctl_usage_error(argv[0], "--json and --format exclude each other");
        if (strcmp(format, "json") == 0)
            json = 1;
        else if (strcmp(format, "prometheus") == 0)
            prom = 1;
        else if (strcmp(format, "table") != 0)
            return rlctl_usage_error(argv[0], "--format takes table, json or prometheus, not '%s'",
                                     format);
    }
    if (npos > 0 && (top_s || sort_s || match || tier))
        return rlctl_usage_error(argv[0],
                                 "--top, --sort, --match and --tier list keys: give no KEY");
    if (npos > 0 && prom)
        return rlctl_usage_error(argv[0], "--format prometheus lists the --top keys: give no KEY");
    if (top_s && rlctl_parse_int(top_s, 0, 1000000000, &top) != 0)
        return rlctl_usage_error(argv[0], "--top takes a count, not '%s'", top_s);
    if (!sort_s || strcmp(sort_s, "admitted") == 0)
        sort_s = "admitted";
    else if (strcmp(sort_s, "refused") == 0)
        sort = RL_SORT_REFUSED;
    else if (strcmp(sort_s, "last-seen") == 0)
        sort = RL_SORT_LAST_SEEN;
    else
        return rlctl_usage_error(argv[0], "--sort takes admitted, refused or last-seen, not '%s'",
                                 sort_s);

    if (match && !*match)
        return rlctl_usage_error(argv[0], "--match needs a non-empty GLOB");

    if ((rc = rlctl_open(ctx, 1, &r)) != RLCTL_OK)
        goto out;
    if (npos > 0) {
        rc = stats_keys(r, npos, argv + 1, json);
        goto out;
    }
    if ((rc = rlctl_check_tier(r, tier)) != RLCTL_OK)
        goto out;
    if (rl_totals_get(r, &t) != RL_OK) {
        rc = rlctl_error("%s", rl_errmsg(r));
        goto out;
    }
    sel.tier = tier;
    sel.top = (size_t)top;
    sel.sort = sort;
    /* Without a filter the database's totals are the selection's and SQL's
     * LIMIT finds the top keys; a filter needs every selected key walked,
     * in stored order (no sort of every row), into a heap of the top. */
    sel.heap = match || tier;
    rc = rl_keys_list(r, match, sel.heap ? RL_SORT_KEY : sort, sel.heap ? 0 : (size_t)top, collect,
                      &sel);
    if (rc != RL_OK) {
        rc = rc > 0 ? rlctl_error("out of memory") : rlctl_error("%s", rl_errmsg(r));
        goto out;
    }
    if (sel.heap && sel.l.n > 0) { /* qsort must not get v NULL, even for 0 rows */
        sort_arg = sort;
        qsort(sel.l.v, sel.l.n, sizeof *sel.l.v, cmp_rows);
    }
    if (prom)
        rc = prometheus(&t, &sel);
    else if (json)
        rc = json_totals(&t, &sel, sort_s, match, tier, top);
    else
        rc = print_totals(&t, &sel, sort_s, match, tier, top);
out:
    key_list_free(&sel.l);
    rl_close(r);
    return rc;
}
