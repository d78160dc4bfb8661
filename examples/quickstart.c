/* quickstart.c - the README's C example: 60 requests/minute per user. */
#include <rl.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    rl_limit per_user[] = { RL_PER_MINUTE(60, 10) }; /* 60/min, bursts of 10 */
    rl_options o = RL_OPTIONS_INIT;
    o.default_limits = per_user;
    o.n_default_limits = 1;
    rl *r;
    if (rl_open(&r, argc > 1 ? argv[1] : "agents.db", &o) != RL_OK) {
        fprintf(stderr, "%s\n", rl_errmsg(r));
        rl_close(r);
        return 1;
    }
    rl_result res;
    if (rl_allow(r, "user:alice", 1, &res) == RL_OK && res.allowed)
        printf("go: %lld left\n", (long long)res.remaining);
    else
        printf("wait %lld ms\n", (long long)(res.retry_after_ns / RL_MILLISECOND));
    rl_close(r);
}
