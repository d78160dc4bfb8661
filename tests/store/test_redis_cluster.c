/*
 * test_redis_cluster.c - the Redis store on Redis Cluster.
 *
 * What users rely on: pointed at any node of a cluster, rl works unchanged.
 * Every Redis key of one prefix carries the prefix as its hash tag (data
 * format 2), so all of it is one hash slot on one node, every script's keys
 * are in that slot, and a handle that asked another node follows its MOVED
 * reply to the one that serves it. Handles that entered through different
 * nodes share one limit exactly.
 *
 * The cluster is three private redis-server nodes on free loopback ports,
 * each serving a third of the slots, joined by CLUSTER MEET and started and
 * stopped by their PIDs. Without redis-server on PATH the tests are skipped.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "redis_helpers.h"
#include "rl.h"
#include "rl_admin.h"

#define NODES 3

typedef struct cluster {
    char dir[64];
    int port[NODES], bus[NODES];
    pid_t pid[NODES];
} cluster;

/* What CLUSTER INFO says of field (e.g. "cluster_state:") into buf. */
static void info_field(redisContext *c, const char *field, char *buf, size_t size)
{
    redisReply *r = rt_must(c, "CLUSTER INFO");
    const char *p = strstr(r->str, field);
    size_t n = p ? strcspn(p + strlen(field), "\r\n") : 0;
    snprintf(buf, size, "%.*s", (int)n, p ? p + strlen(field) : "");
    freeReplyObject(r);
}

/* Until every node knows all three and says the cluster is ok (gossip
 * takes a moment): a poll with a deadline, not a guess at how long. */
static void wait_ok(const cluster *cl)
{
    int64_t until = rt_mono_ms() + 20000;
    for (;;) {
        int i, ok = 0;
        for (i = 0; i < NODES; i++) {
            redisContext *c = rt_raw(cl->port[i]);
            char state[16], known[16];
            info_field(c, "cluster_state:", state, sizeof state);
            info_field(c, "cluster_known_nodes:", known, sizeof known);
            ok += !strcmp(state, "ok") && atoi(known) == NODES;
            redisFree(c);
        }
        if (ok == NODES)
            return;
        if (rt_mono_ms() > until)
            fail_msg("the cluster did not form within 20 s");
        rt_sleep_ms(50);
    }
}

static int setup(void **state)
{
    cluster *cl = calloc(1, sizeof *cl);
    int i;
    if (!rt_have_redis()) {
        print_message("redis-server not found: nothing to test\n");
        free(cl);
        *state = NULL;
        return 0;
    }
    strcpy(cl->dir, "/tmp/rl_test_cluster.XXXXXX");
    assert_non_null(mkdtemp(cl->dir));
    for (i = 0; i < NODES; i++) {
        char bus[16], conf[32];
        const char *extra[] = { "--cluster-enabled",
                                "yes",
                                "--cluster-config-file",
                                conf,
                                "--cluster-port",
                                bus,
                                "--cluster-node-timeout",
                                "5000",
                                NULL };
        cl->port[i] = rt_free_port();
        do
            cl->bus[i] = rt_free_port();
        while (cl->bus[i] == cl->port[i]);
        snprintf(bus, sizeof bus, "%d", cl->bus[i]);
        snprintf(conf, sizeof conf, "nodes-%d.conf", cl->port[i]);
        cl->pid[i] = rt_start(cl->dir, cl->port[i], extra);
    }
    for (i = 0; i < NODES; i++) {
        redisContext *c = rt_raw(cl->port[i]);
        int lo = 16384 * i / NODES, hi = 16384 * (i + 1) / NODES - 1;
        freeReplyObject(rt_must(c, "CLUSTER SET-CONFIG-EPOCH %d", i + 1));
        freeReplyObject(rt_must(c, "CLUSTER ADDSLOTSRANGE %d %d", lo, hi));
        if (i > 0)
            freeReplyObject(rt_must(c, "CLUSTER MEET 127.0.0.1 %d %d", cl->port[0], cl->bus[0]));
        redisFree(c);
    }
    wait_ok(cl);
    *state = cl;
    return 0;
}

static int teardown(void **state)
{
    cluster *cl = *state;
    char cmd[128];
    int i;
    if (!cl)
        return 0;
    for (i = 0; i < NODES; i++)
        rt_stop(cl->pid[i], SIGTERM);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cl->dir);
    assert_int_equal(system(cmd), 0);
    free(cl);
    return 0;
}

#define CL()              \
    cluster *cl = *state; \
    if (!cl)              \
        skip();

/* A handle that asks node `node` first, on keys under `prefix`. */
static rl *open_at(const cluster *cl, int node, const char *prefix)
{
    char url[128];
    static const rl_limit lims[] = { RL_LIMIT("rph", NULL, 30, RL_HOUR, 30) };
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    o.default_limits = lims;
    o.n_default_limits = 1;
    o.busy_timeout_ms = 5000;
    o.fail_mode = RL_FAIL_CLOSED;
    snprintf(url, sizeof url, "redis://127.0.0.1:%d?prefix=%s", cl->port[node], prefix);
    if (rl_open(&r, url, &o) != RL_OK)
        fail_msg("open %s: %s", url, rl_errmsg(r));
    return r;
}

/* Handles through each of the three nodes decide on one hot key, in turn:
 * exactly the limit is admitted, whichever node each one asked first. */
static void test_one_limit_through_every_node(void **state)
{
    CL();
    rl *r[NODES];
    rl_result res;
    int i, n, admitted = 0;
    for (i = 0; i < NODES; i++)
        r[i] = open_at(cl, i, "hot:");
    for (n = 0; n < 90; n++) {
        assert_int_equal(rl_allow(r[n % NODES], "hot", 1, &res), RL_OK);
        admitted += res.allowed;
    }
    assert_int_equal(admitted, 30);
    rl_close(r[0]); /* each handle's refusals are written by then */
    rl_close(r[2]);
    {
        rl_key_stats st;
        assert_int_equal(rl_stats(r[1], "hot", &st), RL_OK);
        assert_int_equal(st.allowed, 30);
        assert_int_equal(st.refused, 60);
    }
    rl_close(r[1]);
}

static int count_key(void *ctx, const rl_key_stats *k)
{
    (void)k;
    ++*(int *)ctx;
    return 0;
}

/* Multi-key decisions, leases, reservations, tiers and assignments, the
 * admin walk, reset and rlctl: each touches several Redis keys at once,
 * which Cluster allows only within one slot. Then every key the store
 * wrote carries the prefix's hash tag, on one node. */
static void test_every_part_in_one_slot(void **state)
{
    CL();
    static const rl_limit gold[] = { RL_LIMIT("rps", NULL, 100, RL_SECOND, 100),
                                     RL_CONCURRENT("streams", "streams", 1) };
    static const rl_cost stream[] = { { "streams", 1 } }, one[] = { { "requests", 1 } };
    const char *keys[] = { "user:1", "account" };
    rl *r = open_at(cl, 2, "t:");
    rl_result res;
    rl_lease l;
    rl_reservation rv;
    int i, nkeys = 0, tagged = 0;
    int64_t reset = 0;
    char cmd[512], *dump = calloc(1, RT_DUMP_MAX);

    assert_non_null(dump);
    assert_int_equal(rl_tier_set(r, "gold", gold, 2), RL_OK);
    assert_int_equal(rl_key_assign(r, "account", "gold"), RL_OK);
    assert_int_equal(rl_acquire_keys(r, keys, 2, one, 1, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_begin(r, "account", stream, 1, RL_SECOND, &l, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_begin(r, "account", stream, 1, RL_SECOND, &l, &res), RL_OK);
    assert_false(res.allowed); /* the one slot is held */
    assert_int_equal(rl_reserve(r, "user:2", 1, 0, &rv), RL_OK);
    assert_true(rv.ok);
    assert_int_equal(rl_cancel(r, &rv), RL_OK);
    assert_int_equal(rl_keys_list(r, NULL, RL_SORT_KEY, 0, count_key, &nkeys), RL_OK);
    assert_int_equal(nkeys, 3);
    assert_int_equal(rl_reset_match(r, "user:*", NULL, 0, &reset), RL_OK);
    assert_int_equal(reset, 2);
    /* an import clears every key first, inside the commit script */
    assert_int_equal(rl_export(r, rt_append, dump), RL_OK);
    assert_int_equal(rl_import(r, dump, strlen(dump)), RL_OK);
    nkeys = 0;
    assert_int_equal(rl_keys_list(r, NULL, RL_SORT_KEY, 0, count_key, &nkeys), RL_OK);
    assert_int_equal(nkeys, 1); /* the account, assigned; the reset users are gone */
    free(dump);
    rl_close(r);
    snprintf(cmd, sizeof cmd, "'%s' --db 'redis://127.0.0.1:%d?prefix=t:' stats >/dev/null",
             RLCTL_PATH, cl->port[0]);
    assert_int_equal(system(cmd), 0);

    for (i = 0; i < NODES; i++) {
        redisContext *c = rt_raw(cl->port[i]);
        redisReply *k = rt_must(c, "KEYS *");
        size_t j;
        for (j = 0; j < k->elements; j++) {
            const char *name = k->element[j]->str;
            if (!strcmp(name, "t:format")) /* format 1's marker, where its slot is */
                continue;
            if (!strncmp(name, "t:", 2)) /* under the prefix, but not its tag */
                fail_msg("%s on node %d has no hash tag", name, i);
            tagged += !strncmp(name, "{t:}", 4);
        }
        freeReplyObject(k);
        redisFree(c);
    }
    assert_true(tagged >= 6); /* format, policy, keys, leases, lease_seq, account */
}

/* A slot on its way to another node answers TRYAGAIN (the keys of one
 * call split between the nodes) or ASK (all of them moved already): rl
 * says RL_EBUSY (the fail mode applies) rather than misreading the keys.
 * A slot moved for good is followed. */
static void test_slot_moved_is_followed(void **state)
{
    CL();
    rl *r = open_at(cl, 0, "m:");
    redisContext *c;
    redisReply *rep;
    rl_result res;
    int slot, owner = -1, to, i;
    char id[64];

    assert_int_equal(rl_allow(r, "m", 1, &res), RL_OK);
    c = rt_raw(cl->port[0]);
    rep = rt_must(c, "CLUSTER KEYSLOT {m:}");
    slot = (int)rep->integer;
    freeReplyObject(rep);
    redisFree(c);
    for (i = 0; i < NODES; i++)
        if (slot >= 16384 * i / NODES && slot <= 16384 * (i + 1) / NODES - 1)
            owner = i;
    if (owner < 0)
        fail_msg("slot %d has no owner", slot);
    to = (owner + 1) % NODES;
    c = rt_raw(cl->port[to]);
    rep = rt_must(c, "CLUSTER MYID");
    snprintf(id, sizeof id, "%s", rep->str);
    freeReplyObject(rep);
    redisFree(c);

    /* the operator's resharding of one slot, by hand: importing, then
     * migrating, then every key moved, then the slot assigned */
    {
        redisContext *src = rt_raw(cl->port[owner]), *dst = rt_raw(cl->port[to]);
        redisReply *src_id = rt_must(src, "CLUSTER MYID");
        freeReplyObject(rt_must(dst, "CLUSTER SETSLOT %d IMPORTING %s", slot, src_id->str));
        freeReplyObject(rt_must(src, "CLUSTER SETSLOT %d MIGRATING %s", slot, id));
        freeReplyObject(src_id);
        /* half moved: the key's row is there, the policy still here */
        freeReplyObject(rt_must(src, "MIGRATE 127.0.0.1 %d {m:}k:m 0 5000", cl->port[to]));
        {
            int64_t t0 = rt_mono_ms();
            int rc = rl_allow(r, "m", 1, &res);
            print_message("during the move: %s (%lld ms)\n", rl_errmsg(r),
                          (long long)(rt_mono_ms() - t0));
            assert_int_equal(rc, RL_EBUSY);
            assert_false(res.allowed);
        }
        for (;;) {
            redisReply *k = rt_must(src, "CLUSTER GETKEYSINSLOT %d 100", slot);
            size_t j;
            if (k->elements == 0) {
                freeReplyObject(k);
                break;
            }
            for (j = 0; j < k->elements; j++)
                freeReplyObject(rt_must(src, "MIGRATE 127.0.0.1 %d %s 0 5000", cl->port[to],
                                        k->element[j]->str));
            freeReplyObject(k);
        }
        /* every key moved, the slot not yet assigned: the old owner sends
         * each command on with ASK, which rl does not follow */
        {
            int rc = rl_allow(r, "m", 1, &res);
            print_message("keys moved, slot migrating: %s\n", rl_errmsg(r));
            assert_int_equal(rc, RL_EBUSY);
            assert_non_null(strstr(rl_errmsg(r), "ASK"));
            assert_false(res.allowed);
        }
        for (i = 0; i < NODES; i++) {
            redisContext *n = rt_raw(cl->port[i]);
            freeReplyObject(rt_must(n, "CLUSTER SETSLOT %d NODE %s", slot, id));
            redisFree(n);
        }
        redisFree(src);
        redisFree(dst);
    }
    /* the handle still talks to the old owner: MOVED, followed */
    assert_int_equal(rl_allow(r, "m", 1, &res), RL_OK);
    assert_true(res.allowed);
    {
        rl_key_stats st;
        assert_int_equal(rl_stats(r, "m", &st), RL_OK);
        assert_int_equal(st.allowed, 2); /* the state moved with the slot */
    }
    rl_close(r);
}

/* After a lost connection the handle starts again from the address it was
 * given, not from the node MOVED sent it to. With that node killed, the
 * given one answers for the cluster (CLUSTERDOWN, RL_EBUSY, once the other
 * masters have marked the dead one failed), which a handle left on the
 * dead node would never hear: it would only be refused. Last, as it leaves
 * the cluster down. */
static void test_lost_node_starts_again_from_the_address_given(void **state)
{
    CL();
    rl *r;
    rl_result res;
    int owner = -1, seed, i, rc = RL_OK;
    int64_t until;
    for (i = 0; i < NODES && owner < 0; i++) {
        redisContext *c = rt_raw(cl->port[i]);
        redisReply *rep = redisCommand(c, "GET {d:}x");
        assert_non_null(rep);
        if (rep->type != REDIS_REPLY_ERROR) /* no MOVED: this node serves it */
            owner = i;
        freeReplyObject(rep);
        redisFree(c);
    }
    assert_true(owner >= 0);
    seed = (owner + 1) % NODES;
    r = open_at(cl, seed, "d:");
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK); /* through MOVED, to the owner */
    rt_stop(cl->pid[owner], SIGKILL);
    cl->pid[owner] = 0;
    until = rt_mono_ms() + 30000;
    while (rt_mono_ms() < until) {
        rc = rl_allow(r, "k", 1, &res);
        if (rc == RL_EBUSY && strstr(rl_errmsg(r), "CLUSTERDOWN"))
            break;
        assert_true(rc == RL_ECONNECT || rc == RL_EBUSY);
        assert_false(res.allowed); /* fail closed */
        rt_sleep_ms(50);
    }
    if (rc != RL_EBUSY)
        fail_msg("never back at the address given: %s", rl_errmsg(r));
    rl_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_limit_through_every_node),
        cmocka_unit_test(test_every_part_in_one_slot),
        cmocka_unit_test(test_slot_moved_is_followed),
        cmocka_unit_test(test_lost_node_starts_again_from_the_address_given),
    };
    signal(SIGPIPE, SIG_DFL);
    return cmocka_run_group_tests(tests, setup, teardown);
}
