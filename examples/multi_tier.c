/*
 * multi_tier.c - free, pro and unlimited tiers from a YAML file, and keys
 * moved between tiers at run time with rl_key_assign (an upgrade, say).
 *
 *   multi_tier [TIERS.yaml]   (default: a small file written to a temporary
 *                              directory, which also holds the database and
 *                              is removed at exit)
 *
 * Exits 0 when every key got the tier and the admissions the comments say
 * (with the built-in file), 1 otherwise.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw when built with -std=c11 */
#endif
#include <rl.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bursts are small and refills slow so the counts below are exact whatever
 * the speed of the machine. Rules map key names to tiers; anything else
 * gets default_tier. An assignment (rl_key_assign) beats every rule. */
static const char tiers_yaml[] = "version: 1\n"
                                 "default_tier: free\n"
                                 "tiers:\n"
                                 "  free:\n"
                                 "    limits:\n"
                                 "      - { name: free_rpm, rate: 10/min, burst: 3 }\n"
                                 "      - { name: daily,    rate: 100/day }\n"
                                 "  pro:\n"
                                 "    limits:\n"
                                 "      - { name: rpm,   rate: 600/min, burst: 10 }\n"
                                 "      - { name: tpm,   rate: 9000/min, resource: tokens }\n"
                                 "  unlimited: { unlimited: true }\n"
                                 "keys:\n"
                                 "  - { match: \"user:admin-*\", tier: unlimited }\n"
                                 "  - { match: \"team:*\",       tier: pro }\n";

static const char *const source_names[] = { "none", "assigned", "rule", "default_tier", "options" };

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    return remove(path);
}

static void remove_tree(const char *dir)
{
    if (nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "multi_tier: could not remove %s\n", dir);
}

/* n requests at once on key; prints the key's tier and why it has it. */
static int try_n(rl *r, const char *key, int n)
{
    rl_result res;
    rl_key_stats st;
    int i, admitted = 0;
    for (i = 0; i < n; i++) {
        if (rl_allow(r, key, 1, &res) != RL_OK) {
            fprintf(stderr, "multi_tier: %s\n", rl_errmsg(r));
            return -1;
        }
        admitted += res.allowed;
    }
    if (rl_stats(r, key, &st) != RL_OK) {
        fprintf(stderr, "multi_tier: %s\n", rl_errmsg(r));
        return -1;
    }
    printf("  %-16s tier %-9s (%-12s) %2d of %d admitted\n", key, st.tier,
           source_names[st.tier_source], admitted, n);
    return admitted;
}

int main(int argc, char **argv)
{
    char dir[] = "/tmp/rl-tiers.XXXXXX", db[64], yaml[64], err[256];
    const char *tiers = argc > 1 ? argv[1] : yaml;
    rl_cost chat[2] = { { "requests", 1 }, { "tokens", 2500 } };
    rl_result res;
    rl *r = NULL;
    FILE *f;
    int ok = 1, own_file = argc <= 1;

    if (!mkdtemp(dir)) {
        perror("multi_tier: mkdtemp");
        return 1;
    }
    snprintf(db, sizeof db, "%s/rl.db", dir);
    snprintf(yaml, sizeof yaml, "%s/tiers.yaml", dir);
    if (own_file) {
        if (!(f = fopen(yaml, "w")) || fputs(tiers_yaml, f) < 0 || fclose(f) != 0) {
            perror("multi_tier: writing tiers.yaml");
            return 1;
        }
    }
    /* Validating first gives "FILE:LINE:COL: message" without a database,
     * as `rlctl tiers validate` does; loading would refuse the file too. */
    if (rl_validate_tiers(tiers, err, sizeof err) != RL_OK) {
        fprintf(stderr, "multi_tier: %s\n", err);
        remove_tree(dir);
        return 1;
    }
    /* Loading replaces every tier and rule in one transaction; every
     * process sharing the database applies it from its next decision. */
    if (rl_open(&r, db, NULL) != RL_OK || rl_load_tiers(r, tiers) != RL_OK) {
        fprintf(stderr, "multi_tier: %s\n", rl_errmsg(r));
        rl_close(r);
        remove_tree(dir);
        return 1;
    }

    printf("12 requests at once per key:\n");
    ok &= try_n(r, "user:alice", 12) == 3;       /* default_tier free: burst 3 */
    ok &= try_n(r, "team:research", 12) == 10;   /* rule team:* -> pro: burst 10 */
    ok &= try_n(r, "user:admin-root", 12) == 12; /* rule -> unlimited */

    /* alice upgrades: the assignment applies from her next request, in
     * every process. A limit's state is kept by its resource and name: her
     * pro limits have other names than her free ones, so she starts them with
     * full buckets. (Had free's limit also been called "rpm", she would keep
     * the share of it she had spent: 3 of 3 becomes 10 of 10.) */
    printf("alice buys pro (rl_key_assign):\n");
    if (rl_key_assign(r, "user:alice", "pro") != RL_OK) {
        fprintf(stderr, "multi_tier: %s\n", rl_errmsg(r));
        ok = 0;
    }
    ok &= try_n(r, "user:alice", 12) == 10;

    /* pro also limits tokens: an LLM call charges requests and tokens in one
     * all-or-nothing decision, so neither is spent if the other refuses. */
    printf("bob (pro by assignment) makes chat calls of 2500 tokens (9000 tokens/min):\n");
    if (rl_key_assign(r, "user:bob", "pro") != RL_OK) {
        fprintf(stderr, "multi_tier: %s\n", rl_errmsg(r));
        ok = 0;
    } else {
        int i, admitted = 0;
        for (i = 0; i < 5; i++)
            if (rl_acquire(r, "user:bob", chat, 2, &res) == RL_OK && res.allowed)
                admitted++;
        printf("  user:bob         %d of 5 admitted, then refused by '%s'\n", admitted,
               res.limit_name);
        ok &= admitted == 3 && strcmp(res.limit_name, "tpm") == 0;
    }

    /* Downgrade: NULL removes the assignment, and the rules apply again. */
    printf("alice cancels (rl_key_assign NULL):\n");
    if (rl_key_assign(r, "user:alice", NULL) != RL_OK) {
        fprintf(stderr, "multi_tier: %s\n", rl_errmsg(r));
        ok = 0;
    }
    /* Back on free. A key keeps state only for the limits of the tier it
     * was last decided under, so her emptied free bucket was dropped while
     * she was on pro and she starts it full again: tier changes are not a
     * way to take quota away. */
    ok &= try_n(r, "user:alice", 4) == 3;

    rl_close(r);
    remove_tree(dir);
    if (!own_file)
        return 0; /* someone else's tiers: the counts above need not hold */
    printf("%s\n", ok ? "multi_tier: ok" : "multi_tier: FAILED");
    return ok ? 0 : 1;
}
