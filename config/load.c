/*
 * load.c - rl_load_tiers: a YAML tier file into the database, whole or not
 * at all.
 *
 * The file is parsed and validated completely before the store is touched;
 * the store then replaces every tier, rule and setting in one transaction
 * and bumps the policy version, which every process notices on its next
 * decision.
 */
#include "cfg.h"
#include "rl_int.h"

#include <stdio.h>

int rl_load_tiers(rl *r, const char *yaml_path)
{
    rl_policy p;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!yaml_path)
        return rl_seterr(rl__errbuf(r), RL_EINVAL, "tier file path is NULL");
    rc = rl_cfg_parse_file(yaml_path, &p, rl__errbuf(r), RL_ERRMSG_MAX);
    if (rc != RL_OK)
        return rc;
    rc = rl__policy_replace(r, &p);
    rl_policy_free(&p);
    return rc;
}
