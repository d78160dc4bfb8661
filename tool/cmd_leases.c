/*
 * cmd_leases.c - `rlctl leases [KEY]`: open leases (rl_lease_begin), their
 * estimates, owners and ages, so an operator can see who holds tokens and
 * stream slots right now, and which leases hold nothing any more: expired,
 * or their owner gone (rl_lease_info.live 0), reclaimable by `rlctl prune`.
 */
#include "common.h"
#include "json.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char use[] = "usage: rlctl leases [--json] [KEY]\n"
                          "\n"
                          "Lists the open leases (all, or KEY's), oldest first: the key, the\n"
                          "estimate each reserved, its owner process and whether that process is\n"
                          "still alive, its age, when it expires (settled at its estimate) and\n"
                          "its state: held, or expired or owner dead, which hold nothing any more\n"
                          "and are reclaimable (by the next lease on the key, or rlctl prune), or\n"
                          "waiting: a process queued for a concurrency slot, which holds nothing\n"
                          "and is served in its turn (ESTIMATE is what it waits for).\n"
                          "\n"
                          "Options:\n"
                          "  --json  print one JSON array\n";

typedef struct leases_ctx {
    int json;
    int64_t now;
    rlctl_table table;
    rlctl_json j;
    int64_t n, reclaimable;
    int rc;
} leases_ctx;

static int64_t wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
}

/* What a lease holds: held, or why it holds nothing any more. A dead
 * owner is named first: such a lease never comes back, expired or not. */
static const char *state_json(const rl_lease_info *l)
{
    return l->live && l->waiting ? "waiting"
           : l->live             ? "held"
           : !l->owner_alive     ? "owner_dead"
                                 : "expired";
}

static const char *state_text(const rl_lease_info *l)
{
    return l->live && l->waiting
               ? (l->priority == RL_PRIORITY_BATCH ? "waiting (batch)" : "waiting")
           : l->live         ? "held"
           : !l->owner_alive ? "owner dead (reclaimable)"
                             : "expired (reclaimable)";
}

static int one_lease(void *arg, const rl_lease_info *l)
{
    leases_ctx *c = arg;
    char id[24], est[256], owner[40], age[32], left[32];
    const char *cells[7];
    size_t i, n = 0;
    c->n++;
    c->reclaimable += !l->live;
    if (c->json) {
        rlctl_json_object(&c->j);
        rlctl_json_kint(&c->j, "id", l->id);
        rlctl_json_kstring(&c->j, "key", l->key);
        rlctl_json_key(&c->j, "estimate");
        rlctl_json_object(&c->j);
        for (i = 0; i < l->n_costs; i++)
            rlctl_json_kint(&c->j, l->costs[i].resource, l->costs[i].amount);
        rlctl_json_end(&c->j);
        rlctl_json_kint(&c->j, "pid", l->pid);
        rlctl_json_kbool(&c->j, "owner_alive", l->owner_alive);
        rlctl_json_kbool(&c->j, "live", l->live);
        rlctl_json_kbool(&c->j, "waiting", l->waiting);
        rlctl_json_kstring(&c->j, "state", state_json(l));
        rlctl_json_kint(&c->j, "created_ns", l->created_ns);
        rlctl_json_kint(&c->j, "expires_ns", l->expires_ns);
        rlctl_json_end(&c->j);
        return 0;
    }
    snprintf(id, sizeof id, "%lld", (long long)l->id);
    est[0] = 0;
    for (i = 0; i < l->n_costs && n < sizeof est; i++)
        n += (size_t)snprintf(est + n, sizeof est - n, "%s%s %lld", i ? ", " : "",
                              l->costs[i].resource, (long long)l->costs[i].amount);
    snprintf(owner, sizeof owner, "%lld%s", (long long)l->pid, l->owner_alive ? "" : " (gone)");
    rlctl_format_duration(c->now > l->created_ns ? c->now - l->created_ns : 0, age, sizeof age);
    /* expired as the library's clock says (the store's, on Redis) */
    if (!l->live && l->owner_alive)
        snprintf(left, sizeof left, "expired");
    else
        rlctl_format_duration(l->expires_ns > c->now ? l->expires_ns - c->now : 0, left,
                              sizeof left);
    cells[0] = id;
    cells[1] = l->key;
    cells[2] = est;
    cells[3] = owner;
    cells[4] = age;
    cells[5] = left;
    cells[6] = state_text(l);
    if (rlctl_table_add(&c->table, cells) != RLCTL_OK) {
        c->rc = RLCTL_ERROR;
        return 1;
    }
    return 0;
}

int rlctl_cmd_leases(const rlctl_ctx *ctx, int argc, char **argv)
{
    static const char *const header[] = { "ID",  "KEY",        "ESTIMATE", "OWNER",
                                          "AGE", "EXPIRES IN", "STATE" };
    leases_ctx c;
    int npos, rc;
    const rlctl_opt opts[] = {
        { "--json", RLCTL_OPT_FLAG, &c.json },
        { NULL, 0, NULL },
    };
    rl *r = NULL;

    memset(&c, 0, sizeof c);
    if ((rc = rlctl_parse_opts(argc, argv, opts, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos > 1)
        return rlctl_usage_error(argv[0], "takes at most one KEY");
    rlctl_table_init(&c.table, 7, 1u << 0);
    c.table.header = 1;
    c.now = wall_now();
    if ((rc = rlctl_open(ctx, 1, &r)) != RLCTL_OK)
        goto out;
    if (c.json) {
        rlctl_json_init(&c.j, stdout);
        rlctl_json_array(&c.j);
    } else if ((rc = rlctl_table_add(&c.table, header)) != RLCTL_OK) {
        goto out;
    }
    if (rl_leases_list(r, npos ? argv[1] : NULL, one_lease, &c) != RL_OK && c.rc == RLCTL_OK) {
        rc = rlctl_error("%s", rl_errmsg(r));
        goto out;
    }
    if ((rc = c.rc) != RLCTL_OK)
        goto out;
    if (c.json) {
        rlctl_json_end(&c.j);
        if (rlctl_json_done(&c.j) != 0)
            rc = rlctl_error("internal error: bad JSON");
    } else if (c.table.nrows == 1) {
        printf("no open leases\n");
    } else {
        rlctl_table_print(&c.table, stdout);
        if (c.reclaimable)
            printf("\n%lld of %lld lease(s) reclaimable: rlctl prune\n", (long long)c.reclaimable,
                   (long long)c.n);
    }
out:
    rlctl_table_free(&c.table);
    rl_close(r);
    return rc;
}
