/*
 * cmd_which.c - `rlctl which KEY`: the tier a key has and why (assigned, a
 * key rule, the default tier, the default limits), resolved by librl
 * exactly as a decision would resolve it. For the default limits it names
 * them too: programs store them in the database (the tier "default"), and
 * which ones apply is what an operator asks when no tier is meant to.
 */
#include "common.h"
#include "json.h"

#include <stdlib.h>
#include <string.h>

static const char use[] = "usage: rlctl which [--json] KEY\n"
                          "\n"
                          "Prints the tier KEY has and why: assigned (rlctl assign), a key rule\n"
                          "(which one), the default tier, the default limits (with their\n"
                          "limits), or none. KEY need not have been seen.\n"
                          "\n"
                          "Options:\n"
                          "  --json  print one JSON object\n";

/* "default (default limits: rps 10/s burst 10, tpm 90000/min of tokens)". */
static void print_defaults(const rl_key_stats *st)
{
    char tier[4 * RL_NAME_MAX], name[RLCTL_TEXT_MAX], res[RLCTL_TEXT_MAX], rate[64];
    size_t i;
    printf("%s (default limits%s", rlctl_text(st->tier, tier, sizeof tier),
           st->n_limits ? ": " : ": unlimited");
    for (i = 0; i < st->n_limits; i++) {
        const rl_limit_stats *l = &st->limits[i];
        rlctl_text(l->name, name, sizeof name);
        rlctl_text(l->resource, res, sizeof res);
        if (l->algorithm == RL_ALGO_CONCURRENT)
            snprintf(rate, sizeof rate, "%lld in flight", (long long)l->count);
        else
            rlctl_format_rate(l->count, l->period_ns, rate, sizeof rate);
        printf("%s%s %s", i ? ", " : "", name, rate);
        if (l->algorithm == RL_ALGO_GCRA && l->burst != l->count)
            printf(" burst %lld", (long long)l->burst);
        if (l->algorithm == RL_ALGO_SLIDING_WINDOW)
            printf(" window");
        if (strcmp(l->resource, "requests") != 0)
            printf(" of %s", res);
    }
    printf(")\n");
}

int rlctl_cmd_which(const rlctl_ctx *ctx, int argc, char **argv)
{
    int json = 0, npos, rc;
    const rlctl_opt opts[] = {
        { "--json", RLCTL_OPT_FLAG, &json },
        { NULL, 0, NULL },
    };
    char rule[RL_KEY_MAX + 1] = "", shown[RLCTL_TEXT_MAX], tier[4 * RL_NAME_MAX];
    rl_key_stats *st = NULL;
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, opts, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos != 1)
        return rlctl_usage_error(argv[0], "%s", npos ? "takes one KEY" : "needs a KEY");
    if (!(st = malloc(sizeof *st))) {
        rc = rlctl_error("out of memory");
        goto out;
    }
    if ((rc = rlctl_open(ctx, 1, &r)) != RLCTL_OK)
        goto out;
    if ((rc = rlctl_key_tier(r, argv[1], st, rule, sizeof rule)) != RLCTL_OK)
        goto out;
    if (json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_object(&j);
        rlctl_json_kstring(&j, "key", st->key);
        rlctl_json_kstring(&j, "tier", st->tier[0] ? st->tier : NULL);
        rlctl_json_kstring(&j, "tier_source", rlctl_tier_source_json(st->tier_source));
        rlctl_json_kstring(&j, "rule", rule[0] ? rule : NULL);
        rlctl_json_end(&j);
        if (rlctl_json_done(&j) != 0)
            rc = rlctl_error("internal error: bad JSON");
    } else if (st->tier_source == RL_TIER_NONE) {
        printf("none (no rule, default tier or default limits applies)\n");
    } else if (st->tier_source == RL_TIER_OPTIONS) {
        print_defaults(st);
    } else if (rule[0]) {
        printf("%s (rule '%s')\n", rlctl_text(st->tier, tier, sizeof tier),
               rlctl_text(rule, shown, sizeof shown));
    } else {
        printf("%s (%s)\n", st->tier[0] ? rlctl_text(st->tier, tier, sizeof tier) : "-",
               rlctl_tier_source_text(st->tier_source));
    }
out:
    free(st);
    rl_close(r);
    return rc;
}
