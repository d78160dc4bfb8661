/*
 * cmd_penalize.c - `rlctl penalize KEY DURATION [--resource R]`: a shared
 * cool-down, as when a provider answered 429: every process refuses the
 * key (or one of its resources) until it ends. `0s` lifts it.
 */
#include "common.h"

static const char use[] = "usage: rlctl penalize [--resource R] KEY DURATION\n"
                          "\n"
                          "Every process refuses KEY (or only its resource R) for DURATION from\n"
                          "now, e.g. 30s or 1m30s: what a worker does on a provider's 429. A\n"
                          "longer cool-down already in place is kept; 0s lifts it.\n"
                          "\n"
                          "Options:\n"
                          "  --resource R  only decisions that spend resource R (e.g. tokens)\n";

int rlctl_cmd_penalize(const rlctl_ctx *ctx, int argc, char **argv)
{
    const char *resource = NULL;
    const rlctl_opt opts[] = {
        { "--resource", RLCTL_OPT_VALUE, &resource },
        { NULL, 0, NULL },
    };
    char text[32], key[RLCTL_TEXT_MAX], res[4 * RL_NAME_MAX];
    int64_t ns;
    int npos, rc;
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, opts, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos != 2)
        return rlctl_usage_error(argv[0], "needs a KEY and a DURATION");
    if (rl_parse_duration(argv[2], &ns) != RL_OK)
        return rlctl_usage_error(argv[0], "invalid duration '%s' (e.g. 30s, 1m30s, 250ms)",
                                 argv[2]);
    if ((rc = rlctl_open(ctx, 0, &r)) != RLCTL_OK)
        return rc;
    if (rl_penalize(r, argv[1], resource, ns) != RL_OK) {
        rc = rlctl_error("%s", rl_errmsg(r));
    } else if (ns == 0) {
        printf("lifted the cool-down of %s%s%s\n", rlctl_text(argv[1], key, sizeof key),
               resource ? " on " : "", resource ? rlctl_text(resource, res, sizeof res) : "");
    } else {
        rlctl_format_duration(ns, text, sizeof text);
        printf("%s%s%s refused for %s\n", rlctl_text(argv[1], key, sizeof key), resource ? " " : "",
               resource ? rlctl_text(resource, res, sizeof res) : "", text);
    }
    rl_close(r);
    return rc;
}
