/*
 * fuzz_cfg.c - libFuzzer harness for the tiers file parser (config/).
 *
 * Beyond "no crash, no leak, no undefined behaviour" it checks the
 * contract of rl_cfg_parse_buffer: a failure leaves the policy empty and
 * gives one line "fuzz:LINE:COL: ..." (or the out-of-memory message); a
 * success gives only tiers, limits and rules that the C API would accept.
 */
#include "cfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void fuzz_check_policy(const rl_policy *p)
{
    char why[256];
    size_t i, j;
    if (p->fail_mode != RL_FAIL_UNSET && p->fail_mode != RL_FAIL_OPEN &&
        p->fail_mode != RL_FAIL_CLOSED)
        abort();
    if (p->default_tier[0] && !rl_policy_tier(p, p->default_tier))
        abort();
    for (i = 0; i < p->n_tiers; i++) {
        const rl_tier *t = &p->tiers[i];
        if (!rl_name_valid(t->name) || t->n > RL_MAX_LIMITS || (t->unlimited ? t->n : !t->n))
            abort();
        for (j = 0; j < t->n; j++) {
            const rl_ldef *d = &t->limits[j];
            if (rl_ldef_check(d, why, sizeof why) != RL_OK || !rl_name_valid(d->name) ||
                !rl_name_valid(d->resource) || d->id != rl_limit_id(d->resource, d->name))
                abort();
        }
    }
    for (i = 0; i < p->n_rules; i++)
        if (!rl_key_valid(p->rules[i].match) || !rl_policy_tier(p, p->rules[i].tier))
            abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    rl_policy p;
    char err[256];
    size_t line, col;
    int rc = rl_cfg_parse_buffer("fuzz", data, size, &p, err, sizeof err);
    if (rc == RL_OK) {
        fuzz_check_policy(&p);
    } else if (rc == RL_ECONFIG) {
        if (p.n_tiers || p.n_rules || p.tiers || p.rules || strchr(err, '\n') ||
            sscanf(err, "fuzz:%zu:%zu: ", &line, &col) != 2 || line < 1 || col < 1)
            abort();
    } else if (rc != RL_ENOMEM) {
        abort();
    }
    rl_policy_free(&p);
    return 0;
}
