/* rl.h must compile alone as strict C11: no extensions, no other header first. */
#include "rl.h"

int rl_header_test_anchor(void);
int rl_header_test_anchor(void)
{
    const rl_limit limits[] = { RL_PER_SECOND(10, 20), RL_PER_MINUTE(600, 0) };
    rl_options opts = RL_OPTIONS_INIT;
    rl_result res;
    opts.default_limits = limits;
    opts.n_default_limits = sizeof limits / sizeof limits[0];
    res.allowed = 0;
    return (int)opts.n_default_limits + (int)opts.version + res.allowed;
}
