/*
 * fuzz_redis_codec.c - libFuzzer harness for the Redis store's value
 * decoders (store/redis/codec.c): whatever bytes a Redis key holds, a
 * decoder either refuses them or yields values that pass core's checks and
 * that encode back to bytes decoding to the same thing.
 *
 * The first byte picks the decoder (row, lease, policy); the rest is the
 * value. Any disagreement aborts.
 */
#include "rd.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void row(const unsigned char *p, size_t n)
{
    static unsigned char buf[RD_ROW_MAX];
    rl_row a, b;
    rl_state st;
    size_t len;
    memset(&a, 0, sizeof a);
    if (rd_row_decode(&a, p, n) != RL_OK)
        return;
    if (a.tier[0] && !rl_name_valid(a.tier))
        abort();
    (void)rl_state_decode(&st, a.state, a.state_len);
    len = rd_row_encode(&a, buf);
    memset(&b, 0, sizeof b);
    if (len != n || rd_row_decode(&b, buf, len) != RL_OK || memcmp(buf, p, n) != 0)
        abort();
}

static void lease(const unsigned char *p, size_t n)
{
    static unsigned char buf[RD_LEASE_MAX];
    rl_lease_rec a, b;
    size_t len;
    memset(&a, 0, sizeof a);
    if (n > RD_LEASE_MAX || rd_lease_decode(&a, 7, p, n) != RL_OK)
        return;
    len = rd_lease_encode(&a, 7, buf);
    memset(&b, 0, sizeof b);
    if (rd_lease_decode(&b, 7, buf, len) != RL_OK || b.n_est != a.n_est || b.n_held != a.n_held ||
        b.expires != a.expires || memcmp(b.est_amount, a.est_amount, sizeof a.est_amount) != 0)
        abort();
}

static void policy(const unsigned char *p, size_t n)
{
    rl_policy a, b;
    unsigned char *buf = NULL;
    size_t len, i;
    rl_policy_init(&a);
    rl_policy_init(&b);
    if (rd_policy_decode(&a, p, n) != RL_OK)
        goto out;
    for (i = 0; i < a.n_rules; i++)
        if (!rl_policy_tier(&a, a.rules[i].tier))
            abort();
    if (rd_policy_encode(&a, &buf, &len) != RL_OK)
        goto out;
    if (rd_policy_decode(&b, buf, len) != RL_OK || b.n_tiers != a.n_tiers ||
        b.n_rules != a.n_rules || strcmp(a.default_tier, b.default_tier) != 0)
        abort();
out:
    free(buf);
    rl_policy_free(&a);
    rl_policy_free(&b);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        row(data + 1, size - 1);
        break;
    case 1:
        lease(data + 1, size - 1);
        break;
    default:
        policy(data + 1, size - 1);
        break;
    }
    return 0;
}
