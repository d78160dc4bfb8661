/*
 * cmd_allow.c - `rlctl allow KEY`: one decision from a shell script, with
 * the answer in the exit status (0 admitted, 1 refused or timed out).
 *
 * With --wait it sleeps in rl_wait until admitted; ^C sets the cancel flag,
 * rl_wait gives the reservation back, and main re-raises SIGINT so the
 * calling script stops as well.
 */
#include "common.h"
#include "json.h"

#include <signal.h>
#include <string.h>

static const char use[] =
    "usage: rlctl allow [--cost N] [--wait DURATION] [--quiet | --json] KEY\n"
    "\n"
    "Asks for COST units of KEY's \"requests\" limits now and takes them if\n"
    "every limit has room. Exit status 0: admitted; 1: refused (or, with\n"
    "--wait, not admissible within DURATION; nothing is taken then); 3: error.\n"
    "Prints 'allowed remaining=N limit=BURST reset_after=D' or\n"
    "'refused retry_after=D limit=NAME'.\n"
    "\n"
    "Options:\n"
    "  --cost N         units to take (default 1)\n"
    "  --wait DURATION  wait up to DURATION (1m30s, 250ms, 1.5s) to be admitted;\n"
    "                   ^C gives the reserved units back\n"
    "  --quiet          print nothing: the exit status says it all\n"
    "  --json           print one JSON object\n";

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int install_sigint(void)
{
    struct sigaction sa, old;
    /* A shell starts background jobs with SIGINT ignored: ^C is not meant
     * for them, so neither is it for this wait. */
    if (sigaction(SIGINT, NULL, &old) != 0)
        return -1;
    if (old.sa_handler == SIG_IGN)
        return 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGINT, &sa, NULL);
}

/* Whether a limit decided: a tier without limits on "requests" admits
 * everything and names none. */
static int has_limit(const rl_result *res)
{
    return res->limit_name[0] != '\0';
}

static void print_line(const rl_result *res, int timed_out)
{
    char d[64], name[4 * RL_NAME_MAX];
    if (res->allowed) {
        if (!has_limit(res)) {
            printf("allowed unlimited%s\n", res->degraded ? " degraded" : "");
            return;
        }
        rlctl_format_duration(res->reset_after_ns, d, sizeof d);
        printf("allowed remaining=%lld limit=%lld reset_after=%s%s\n", (long long)res->remaining,
               (long long)res->limit, d, res->degraded ? " degraded" : "");
        return;
    }
    rlctl_format_duration(res->retry_after_ns, d, sizeof d);
    printf("%s retry_after=%s limit=%s\n", timed_out ? "timed out" : "refused", d,
           res->limit_name[0] ? rlctl_text(res->limit_name, name, sizeof name) : "-");
}

static int print_json(const char *key, int64_t cost, const rl_result *res, int timed_out)
{
    rlctl_json j;
    rlctl_json_init(&j, stdout);
    rlctl_json_object(&j);
    rlctl_json_kstring(&j, "key", key);
    rlctl_json_kint(&j, "cost", cost);
    rlctl_json_kbool(&j, "allowed", res->allowed);
    rlctl_json_kbool(&j, "timed_out", timed_out);
    rlctl_json_kbool(&j, "degraded", res->degraded);
    if (has_limit(res)) {
        rlctl_json_kstring(&j, "limit_name", res->limit_name);
        rlctl_json_kint(&j, "limit", res->limit);
        rlctl_json_kint(&j, "remaining", res->remaining);
    } else { /* unlimited: INT64_MAX would lose precision in most parsers */
        rlctl_json_kstring(&j, "limit_name", NULL);
        rlctl_json_key(&j, "limit");
        rlctl_json_null(&j);
        rlctl_json_key(&j, "remaining");
        rlctl_json_null(&j);
    }
    rlctl_json_kint(&j, "retry_after_ns", res->retry_after_ns);
    rlctl_json_kint(&j, "reset_after_ns", res->reset_after_ns);
    rlctl_json_end(&j);
    return rlctl_json_done(&j) == 0 ? RLCTL_OK : rlctl_error("internal error: bad JSON");
}

int rlctl_cmd_allow(const rlctl_ctx *ctx, int argc, char **argv)
{
    const char *cost_s = NULL, *wait_s = NULL;
    int json = 0, quiet = 0, npos, rc, drc, timed_out = 0;
    const rlctl_opt opts[] = {
        { "--cost", RLCTL_OPT_VALUE, &cost_s },
        { "--wait", RLCTL_OPT_VALUE, &wait_s },
        { "--quiet", RLCTL_OPT_FLAG, &quiet },
        { "--json", RLCTL_OPT_FLAG, &json },
        { NULL, 0, NULL },
    };
    int64_t cost = 1, timeout = 0;
    rl_result res;
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, opts, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos != 1)
        return rlctl_usage_error(argv[0], "%s", npos ? "takes one KEY" : "needs a KEY");
    if (quiet && json)
        return rlctl_usage_error(argv[0], "--quiet and --json exclude each other");
    if (cost_s && rlctl_parse_int(cost_s, 0, INT64_MAX, &cost) != 0)
        return rlctl_usage_error(argv[0], "--cost takes a count of units, not '%s'", cost_s);
    if (wait_s && rl_parse_duration(wait_s, &timeout) != RL_OK)
        return rlctl_usage_error(argv[0], "--wait takes a duration like 1m30s or 250ms, not '%s'",
                                 wait_s);
    if ((rc = rlctl_open(ctx, 0, &r)) != RLCTL_OK)
        return rc;
    if (wait_s) {
        if (install_sigint() != 0) {
            rc = rlctl_error("cannot handle SIGINT");
            goto out;
        }
        drc = rl_wait(r, argv[1], cost, timeout, &interrupted, &res);
    } else {
        drc = rl_allow(r, argv[1], cost, &res);
    }
    if (drc == RL_ECANCELED) {
        rlctl_error("interrupted: %s", rl_errmsg(r));
        rc = RLCTL_INTERRUPTED;
        goto out;
    }
    if (drc == RL_ETIMEOUT) {
        timed_out = 1;
    } else if (drc != RL_OK && res.allowed && res.degraded) {
        /* The tiers file chose fail_mode: open; say why, but admit. */
        rlctl_error("warning: admitted without the database: %s", rl_errmsg(r));
    } else if (drc != RL_OK) {
        rc = rlctl_error("%s", rl_errmsg(r));
        goto out;
    }
    rc = res.allowed ? RLCTL_OK : RLCTL_NO;
    if (json) {
        int jrc = print_json(argv[1], cost, &res, timed_out);
        if (jrc != RLCTL_OK)
            rc = jrc;
    } else if (!quiet) {
        print_line(&res, timed_out);
    }
out:
    rl_close(r);
    return rc;
}
