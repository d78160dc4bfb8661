/*
 * api_fixture.c - the fixture of the API tests (api_fixture.h): a handle
 * on a fresh store with a fake clock, and its teardown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_fixture.h"

const int64_t T0 = (int64_t)1700000000 * RL_SECOND;
const int64_t WIN0 = (int64_t)1699999980 * RL_SECOND;

static int64_t fake_clock(void *ctx)
{
    return ((fixture *)ctx)->now;
}

int open_with(fixture *f, const rl_limit *lims, size_t n, rl **out)
{
    rl_options o = RL_OPTIONS_INIT;
    o.clock = fake_clock;
    o.clock_ctx = f;
    o.default_limits = lims;
    o.n_default_limits = n;
    return rl_open(out, f->path, &o);
}

static int setup(void **state, int kind)
{
    static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 10, RL_SECOND, 10) };
    fixture *f = calloc(1, sizeof *f);
    f->kind = kind;
    f->sqlite = kind != STORE_MEM;
    f->now = T0;
    strcpy(f->dir, "/tmp/rl_test_core.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(test_store_path(kind, f->dir, f->path, sizeof f->path), 0);
    assert_int_equal(open_with(f, lims, 1, &f->r), RL_OK);
    *state = f;
    return 0;
}

int setup_mem(void **state)
{
    return setup(state, STORE_MEM);
}
int setup_sqlite(void **state)
{
    return setup(state, STORE_SQLITE);
}
int setup_redis(void **state)
{
    return setup(state, STORE_REDIS);
}

int teardown(void **state)
{
    fixture *f = *state;
    char cmd[160];
    rl_close(f->r);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}
