/*
 * statistics.c - reading what rl knows about keys: one key in full with
 * rl_stats, and the keys that were refused most with rl_keys_list.
 *
 *   statistics [DATABASE [KEY...]]
 *
 * Without arguments it makes some traffic on a temporary database (removed
 * at exit) and checks the numbers it reads back; with a DATABASE it opens
 * it read-only, as a monitoring user would, and prints KEYs (or the top
 * keys). Exits 0 on success, 1 otherwise.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw when built with -std=c11 */
#endif
#include <rl.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const source_names[] = { "none", "assigned", "rule", "default_tier", "options" };

/* Milliseconds are plenty for a human, and easier to read. */
static const char *dur(int64_t ns, char *buf, size_t len)
{
    if (ns >= RL_MILLISECOND)
        ns -= ns % RL_MILLISECOND;
    if (rl_format_duration(ns, buf, len) != RL_OK)
        snprintf(buf, len, "%lldns", (long long)ns);
    return buf;
}

/* Everything rl_stats returns, one limit per line. The counters are since
 * the key was first seen (or last reset); remaining, retry-after and
 * reset-after are computed for now without changing anything. */
static void print_key(const rl_key_stats *st)
{
    char rate[32], a[32], b[32], c[32];
    size_t i;
    if (!st->exists) {
        printf("%s: never seen\n", st->key);
        return;
    }
    printf("%s: tier '%s' (%s), %lld allowed, %lld refused, %lld units, active for %s\n", st->key,
           st->tier, source_names[st->tier_source], (long long)st->allowed, (long long)st->refused,
           (long long)st->units, dur(st->last_seen_ns - st->first_seen_ns, a, sizeof a));
    if (st->cooldown_ns > 0)
        printf("  cool-down on everything for %s more\n", dur(st->cooldown_ns, a, sizeof a));
    for (i = 0; i < st->n_limits; i++) {
        const rl_limit_stats *l = &st->limits[i];
        rl_format_rate(l->count, l->period_ns, rate, sizeof rate);
        printf("  %-8s %-9s %10s burst %-4lld remaining %-4lld retry after %-8s full in %s%s%s\n",
               l->name, l->resource, rate, (long long)l->burst, (long long)l->remaining,
               dur(l->retry_after_ns, a, sizeof a), dur(l->reset_after_ns, b, sizeof b),
               l->cooldown_ns > 0 ? ", cool-down " : "",
               l->cooldown_ns > 0 ? dur(l->cooldown_ns, c, sizeof c) : "");
    }
}

typedef struct top_ctx {
    int n;
    int64_t last_refused;
    int sorted; /* stays 1 if the walk came in RL_SORT_REFUSED order */
} top_ctx;

/* Called under the handle's lock: no calls back into the handle here. */
static int print_top(void *ctx, const rl_key_stats *st)
{
    top_ctx *t = ctx;
    double share = st->allowed + st->refused
                       ? 100.0 * (double)st->refused / (double)(st->allowed + st->refused)
                       : 0.0;
    if (t->n > 0 && st->refused > t->last_refused)
        t->sorted = 0;
    t->last_refused = st->refused;
    t->n++;
    printf("  %-14s %-10s %6lld allowed %6lld refused (%5.1f%%)\n", st->key,
           st->tier[0] ? st->tier : "(default)", (long long)st->allowed, (long long)st->refused,
           share);
    return 0;
}

static int show(rl *r, int nkeys, char **keys)
{
    rl_key_stats st;
    top_ctx top = { 0, 0, 1 };
    int i;
    for (i = 0; i < nkeys; i++) {
        if (rl_stats(r, keys[i], &st) != RL_OK) {
            fprintf(stderr, "statistics: %s\n", rl_errmsg(r));
            return -1;
        }
        print_key(&st);
    }
    printf("most refused (user:* only, top 5):\n");
    /* The match is a glob, as in rlctl --match; the limit keeps a large
     * database from being walked in full. */
    if (rl_keys_list(r, "user:*", RL_SORT_REFUSED, 5, print_top, &top) != RL_OK) {
        fprintf(stderr, "statistics: %s\n", rl_errmsg(r));
        return -1;
    }
    return top.sorted ? top.n : -1;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    return remove(path);
}

static void remove_tree(const char *dir)
{
    if (nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "statistics: could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
    rl_limit limits[] = { RL_LIMIT("burst", NULL, 10, RL_SECOND, 4),
                          RL_LIMIT("hourly", NULL, 100, RL_HOUR, 0) };
    static char *demo_keys[] = { "user:alice", "user:nobody" };
    static const char *const traffic[] = { "user:alice", "user:bob", "user:carol", "ip:10.1.2.3" };
    rl_options o = RL_OPTIONS_INIT;
    rl_result res;
    rl_key_stats st;
    rl *r = NULL;
    char dir[] = "/tmp/rl-stats.XXXXXX", db[64];
    size_t k;
    int i, n, ok;

    if (argc > 1) {
        /* Reading needs no write access: a read-only handle cannot change
         * anything even by mistake. */
        o.flags = RL_OPEN_READONLY;
        if (rl_open(&r, argv[1], &o) != RL_OK) {
            fprintf(stderr, "statistics: %s\n", rl_errmsg(r));
            rl_close(r);
            return 1;
        }
        n = show(r, argc - 2, argv + 2);
        rl_close(r);
        return n < 0;
    }

    if (!mkdtemp(dir)) {
        perror("statistics: mkdtemp");
        return 1;
    }
    snprintf(db, sizeof db, "%s/rl.db", dir);
    o.default_limits = limits;
    o.n_default_limits = 2;
    if (rl_open(&r, db, &o) != RL_OK) {
        fprintf(stderr, "statistics: %s\n", rl_errmsg(r));
        rl_close(r);
        remove_tree(dir);
        return 1;
    }
    /* key k makes 3 + 2k requests on a burst of 4, alice is told to cool
     * down for a minute on everything (as after a provider's 429). */
    for (k = 0; k < sizeof traffic / sizeof traffic[0]; k++)
        for (i = 0; i < 3 + 2 * (int)k; i++)
            rl_allow(r, traffic[k], 1, &res);
    rl_penalize(r, "user:alice", NULL, RL_MINUTE);

    n = show(r, 2, demo_keys);
    ok = n == 3; /* alice, bob, carol: the ip: key does not match */
    ok &= rl_stats(r, "user:carol", &st) == RL_OK && st.exists && st.allowed == 4 &&
          st.refused == 3 && st.units == 4 && st.n_limits == 2 &&
          st.tier_source == RL_TIER_OPTIONS && st.limits[0].remaining == 0 &&
          st.limits[1].remaining == 96;
    ok &= rl_stats(r, "user:alice", &st) == RL_OK && st.cooldown_ns > 59 * RL_SECOND;
    ok &= rl_stats(r, "user:nobody", &st) == RL_OK && !st.exists;
    rl_close(r);
    remove_tree(dir);
    printf("%s\n", ok ? "statistics: ok" : "statistics: FAILED");
    return ok ? 0 : 1;
}
