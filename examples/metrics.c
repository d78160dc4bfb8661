/*
 * metrics.c - exporting rl's counters to Prometheus (text exposition format
 * 0.0.4) from a running process, with rl_totals_get and rl_keys_list.
 *
 *   metrics [OUT.prom]   (default: print to stdout only)
 *
 * The program makes some traffic on a temporary database, then renders
 * the metrics once. A real exporter renders on every scrape (an HTTP
 * handler for /metrics), or rewrites a file for node_exporter's textfile
 * collector on a timer; with OUT.prom this writes such a file the safe way,
 * to a temporary name renamed over the old one, so a scrape never reads a
 * half-written file. Exits 0 if the rendered numbers add up, 1 otherwise.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw when built with -std=c11 */
#endif
#include <rl.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per-key series multiply: one per key, limit and result. A server with
 * millions of keys must not export them all, so only the busiest few are
 * exported one by one; the totals always cover every key. */
#define TOP_KEYS 10

typedef struct export_ctx {
    FILE *out;
    int family;          /* 0: decisions, 1: remaining */
    int64_t allowed_sum; /* of the exported keys, to check the output */
    int nkeys;
} export_ctx;

/* Label values are quoted: backslash, double quote and newline must be
 * escaped. Keys cannot hold control characters, but they may hold '"' and
 * '\\' (user input often ends up in keys). */
static void put_label(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', out);
        if (*s == '\n') {
            fputs("\\n", out);
            continue;
        }
        fputc(*s, out);
    }
    fputc('"', out);
}

/* rl_keys_list runs this for each key while the handle is locked: it must
 * not call back into the same rl handle, and it should be quick. */
static int export_key(void *ctx, const rl_key_stats *st)
{
    static const char *const results[] = { "allowed", "refused" };
    export_ctx *e = ctx;
    int64_t counts[2];
    size_t i;
    if (e->family == 0) {
        counts[0] = st->allowed;
        counts[1] = st->refused;
        for (i = 0; i < 2; i++) {
            fputs("rl_key_decisions_total{key=", e->out);
            put_label(e->out, st->key);
            fprintf(e->out, ",tier=\"%s\",result=\"%s\"} %lld\n", st->tier, results[i],
                    (long long)counts[i]);
        }
        e->allowed_sum += st->allowed;
        e->nkeys++;
        return 0;
    }
    for (i = 0; i < st->n_limits; i++) {
        const rl_limit_stats *l = &st->limits[i];
        fputs("rl_key_remaining{key=", e->out);
        put_label(e->out, st->key);
        fprintf(e->out, ",limit=\"%s\",resource=\"%s\"} %lld\n", l->name, l->resource,
                (long long)l->remaining);
    }
    return 0;
}

/* Writes the whole exposition; returns 0 when the store could be read. */
static int render(rl *r, FILE *out, rl_totals *t, export_ctx *e)
{
    int rc;
    if ((rc = rl_totals_get(r, t)) != RL_OK) {
        /* Say so in the metrics rather than exporting nothing: a missing
         * series is easy to miss, an error gauge is easy to alert on. */
        fprintf(out, "# rl_totals_get: %s\nrl_up 0\n", rl_errmsg(r));
        return -1;
    }
    fprintf(out, "# HELP rl_up Whether the rl database could be read.\n"
                 "# TYPE rl_up gauge\nrl_up 1\n");
    fprintf(out,
            "# HELP rl_keys Keys in the rl database.\n"
            "# TYPE rl_keys gauge\nrl_keys %lld\n",
            (long long)t->keys);
    fprintf(out,
            "# HELP rl_decisions_total Decisions, by result, over every key.\n"
            "# TYPE rl_decisions_total counter\n"
            "rl_decisions_total{result=\"allowed\"} %lld\n"
            "rl_decisions_total{result=\"refused\"} %lld\n",
            (long long)t->allowed, (long long)t->refused);
    fprintf(out,
            "# HELP rl_units_total Units admitted over every key.\n"
            "# TYPE rl_units_total counter\nrl_units_total %lld\n",
            (long long)t->units);
    /* The format wants each family's samples together, so the keys are
     * walked once per family. */
    e->out = out;
    e->allowed_sum = 0;
    e->nkeys = 0;
    fprintf(out, "# HELP rl_key_decisions_total Decisions of the busiest keys, by result.\n"
                 "# TYPE rl_key_decisions_total counter\n");
    e->family = 0;
    if ((rc = rl_keys_list(r, NULL, RL_SORT_ALLOWED, TOP_KEYS, export_key, e)) != RL_OK) {
        fprintf(out, "# rl_keys_list: %s\n", rl_errmsg(r));
        return -1;
    }
    /* A gauge of what is left now: alert when it sits at 0. */
    fprintf(out, "# HELP rl_key_remaining Units a limit of a busy key could admit now.\n"
                 "# TYPE rl_key_remaining gauge\n");
    e->family = 1;
    if ((rc = rl_keys_list(r, NULL, RL_SORT_ALLOWED, TOP_KEYS, export_key, e)) != RL_OK) {
        fprintf(out, "# rl_keys_list: %s\n", rl_errmsg(r));
        return -1;
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    return remove(path);
}

static void remove_tree(const char *dir)
{
    if (nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "metrics: could not remove %s\n", dir);
}

/* Writes OUT.prom.tmp then renames it over OUT.prom: rename is atomic. */
static int write_textfile(rl *r, const char *path)
{
    char tmp[4096];
    rl_totals t;
    export_ctx e;
    FILE *f;
    int rc;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp || !(f = fopen(tmp, "w")))
        return -1;
    rc = render(r, f, &t, &e);
    if (fclose(f) != 0 || rc != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    rl_limit limits[] = { RL_PER_MINUTE(60, 5) };
    static const char *const keys[] = { "user:alice", "user:bob", "ip:10.0.0.7",
                                        "user:\"quoted\\name\"" };
    rl_options o = RL_OPTIONS_INIT;
    rl_result res;
    rl_totals t;
    export_ctx e;
    rl *r = NULL;
    char dir[] = "/tmp/rl-metrics.XXXXXX", db[64];
    size_t k;
    int i, ok;

    if (!mkdtemp(dir)) {
        perror("metrics: mkdtemp");
        return 1;
    }
    snprintf(db, sizeof db, "%s/rl.db", dir);
    o.default_limits = limits;
    o.n_default_limits = 1;
    if (rl_open(&r, db, &o) != RL_OK) {
        fprintf(stderr, "metrics: %s\n", rl_errmsg(r));
        rl_close(r);
        remove_tree(dir);
        return 1;
    }
    /* Some traffic: key k makes 2 + 2k requests on a burst of 5. */
    for (k = 0; k < sizeof keys / sizeof keys[0]; k++)
        for (i = 0; i < 2 + 2 * (int)k; i++)
            if (rl_allow(r, keys[k], 1, &res) != RL_OK)
                fprintf(stderr, "metrics: %s\n", rl_errmsg(r));

    ok = render(r, stdout, &t, &e) == 0;
    /* Every key fits in TOP_KEYS here, so the per-key series add up to the
     * totals: 2+4+5+5 admitted, 0+0+1+3 refused. */
    ok &= t.keys == 4 && t.allowed == 16 && t.refused == 4 && e.nkeys == 4 &&
          e.allowed_sum == t.allowed;
    if (argc > 1 && write_textfile(r, argv[1]) != 0) {
        fprintf(stderr, "metrics: could not write %s\n", argv[1]);
        ok = 0;
    }
    rl_close(r);
    remove_tree(dir);
    fprintf(stderr, "%s\n", ok ? "metrics: ok" : "metrics: FAILED");
    return ok ? 0 : 1;
}
