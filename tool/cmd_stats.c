/*
 * cmd_stats.c - `rlctl stats`: the totals of the database and its busiest
 * keys, or the counters of the keys named.
 *
 * Everything is read before anything is printed, so column widths can be
 * computed and a failure half-way never leaves half a JSON document.
 */
#include "common.h"
#include "json.h"

#include <stdlib.h>
#include <string.h>

static const char use[] =
    "usage: rlctl stats [--top N] [--sort ORDER] [--match GLOB] [--json]\n"
    "       rlctl stats [--json] KEY...\n"
    "\n"
    "Without KEY: the totals of the database (keys, admitted, refused, the\n"
    "refusal rate, units admitted) and the busiest keys. With KEYs: the\n"
    "counters, tier and first and last decision of each.\n"
    "\n"
    "Options:\n"
    "  --top N       how many keys to list (default 10; 0 lists them all)\n"
    "  --sort ORDER  admitted (default), refused or last-seen\n"
    "  --match GLOB  only keys that match GLOB: '*' any run, '?' one byte,\n"
    "                '\\' escapes the next byte\n"
    "  --json        print one JSON object instead of tables\n";

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

static int key_list_add(key_list *l, const rl_key_stats *st)
{
    key_row *row;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        key_row *nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv)
            return -1;
        l->v = nv;
        l->cap = ncap;
    }
    row = &l->v[l->n];
    if (!(row->key = strdup(st->key)))
        return -1;
    snprintf(row->tier, sizeof row->tier, "%s", st->tier);
    row->tier_source = st->tier_source;
    row->allowed = st->allowed;
    row->refused = st->refused;
    row->units = st->units;
    row->first_seen_ns = st->first_seen_ns;
    row->last_seen_ns = st->last_seen_ns;
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

/* rl_keys_list callback: a non-zero return stops the walk and comes back
 * from rl_keys_list, which is how running out of memory is told apart. */
static int collect(void *ctx, const rl_key_stats *st)
{
    return key_list_add(ctx, st) == 0 ? 0 : 1;
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
    static const char *const head[] = { "KEY", "TIER", "ADMITTED", "REFUSED", "UNITS",
                                        "FIRST SEEN", "LAST SEEN" };
    rlctl_table t;
    size_t i;
    int rc = RLCTL_OK;

    rlctl_table_init(&t, 7, 1u << 2 | 1u << 3 | 1u << 4);
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

static int print_totals(const rl_totals *t, const key_list *l, const char *sort,
                        const char *match, int64_t top)
{
    rlctl_table kv;
    char v[5][32];
    const char *row[2];
    static const char *const names[] = { "keys", "admitted", "refused", "refusal rate", "units" };
    int64_t bp = refusal_bp(t);
    size_t i;
    int rc = RLCTL_OK;

    snprintf(v[0], sizeof v[0], "%lld", (long long)t->keys);
    snprintf(v[1], sizeof v[1], "%lld", (long long)t->allowed);
    snprintf(v[2], sizeof v[2], "%lld", (long long)t->refused);
    if (bp < 0)
        snprintf(v[3], sizeof v[3], "-");
    else /* one decimal, rounded from basis points */
        snprintf(v[3], sizeof v[3], "%lld.%lld%%", (long long)((bp + 5) / 100),
                 (long long)((bp + 5) / 10 % 10));
    snprintf(v[4], sizeof v[4], "%lld", (long long)t->units);
    rlctl_table_init(&kv, 2, 0);
    for (i = 0; i < 5; i++) {
        row[0] = names[i];
        row[1] = v[i];
        if ((rc = rlctl_table_add(&kv, row)) != RLCTL_OK)
            goto out;
    }
    rlctl_table_print(&kv, stdout);
    putchar('\n');
    if (l->n == 0) {
        if (match)
            printf("no key matches '%s'\n", match);
        else
            printf("no keys\n");
        goto out;
    }
    if (top > 0)
        printf("top %lld keys by %s", (long long)top, sort);
    else
        printf("all keys by %s", sort);
    if (match)
        printf(" matching '%s'", match);
    printf(":\n");
    rc = print_rows(l);
out:
    rlctl_table_free(&kv);
    return rc;
}

static int json_totals(const rl_totals *t, const key_list *l, const char *sort,
                       const char *match, int64_t top)
{
    rlctl_json j;
    int64_t bp = refusal_bp(t);
    rlctl_json_init(&j, stdout);
    rlctl_json_object(&j);
    rlctl_json_key(&j, "totals");
    rlctl_json_object(&j);
    rlctl_json_kint(&j, "keys", t->keys);
    rlctl_json_kint(&j, "allowed", t->allowed);
    rlctl_json_kint(&j, "refused", t->refused);
    rlctl_json_kint(&j, "units", t->units);
    rlctl_json_key(&j, "refusal_rate_bp");
    if (bp < 0)
        rlctl_json_null(&j);
    else
        rlctl_json_int(&j, bp);
    rlctl_json_end(&j);
    rlctl_json_kstring(&j, "sort", sort);
    rlctl_json_kstring(&j, "match", match);
    rlctl_json_kint(&j, "top", top);
    rlctl_json_key(&j, "keys");
    json_rows(&j, l);
    rlctl_json_end(&j);
    return rlctl_json_done(&j) == 0 ? RLCTL_OK : rlctl_error("internal error: bad JSON");
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
    const char *top_s = NULL, *sort_s = NULL, *match = NULL;
    int json = 0, npos, sort = RL_SORT_ALLOWED, rc;
    const rlctl_opt opts[] = {
        { "--top", RLCTL_OPT_VALUE, &top_s },
        { "--sort", RLCTL_OPT_VALUE, &sort_s },
        { "--match", RLCTL_OPT_VALUE, &match },
        { "--json", RLCTL_OPT_FLAG, &json },
        { NULL, 0, NULL },
    };
    key_list l = { NULL, 0, 0 };
    rl_totals t;
    int64_t top = 10;
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, opts, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos > 0 && (top_s || sort_s || match))
        return rlctl_usage_error(argv[0], "--top, --sort and --match list keys: give no KEY");
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

    if ((rc = rlctl_open(ctx, 1, &r)) != RLCTL_OK)
        goto out;
    if (npos > 0) {
        rc = stats_keys(r, npos, argv + 1, json);
        goto out;
    }
    if (rl_totals_get(r, &t) != RL_OK) {
        rc = rlctl_error("%s", rl_errmsg(r));
        goto out;
    }
    rc = rl_keys_list(r, match, sort, (size_t)top, collect, &l);
    if (rc != RL_OK) {
        rc = rc > 0 ? rlctl_error("out of memory") : rlctl_error("%s", rl_errmsg(r));
        goto out;
    }
    rc = json ? json_totals(&t, &l, sort_s, match, top) : print_totals(&t, &l, sort_s, match, top);
out:
    key_list_free(&l);
    rl_close(r);
    return rc;
}
