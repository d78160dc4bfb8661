/*
 * options.c - rl_options_init: rl_options filled with the defaults of
 * RL_OPTIONS_INIT, for bindings and code that cannot use the macro.
 *
 * How versions work (libgit2's git_*_options_init): a program records in
 * rl_options.version the layout it was compiled with (RL_OPTIONS_VERSION of
 * its rl.h). The library accepts every version from 1 to its own, and
 * refuses a newer one, whose struct may hold fields it does not know.
 * Fields are only ever added at the end, each new layout with a new
 * version, so an older program's struct is a prefix of today's: options_size
 * says how long each version's struct is, and nothing beyond it is read or
 * written. rl_open applies the same range check (core/rl.c).
 *
 * Guarantees: on success exactly options_size(version) bytes of *o are
 * written; on failure *o is untouched.
 */
#include "rl.h"

#include <string.h>

/* Each version's struct size; a new version adds its line. */
static size_t options_size(unsigned int version)
{
    switch (version) {
    case 1: /* version .. busy_strategy */
        return sizeof(rl_options);
    default:
        return 0;
    }
}

int rl_options_init(rl_options *o, unsigned int version)
{
    static const rl_options defaults = RL_OPTIONS_INIT;
    size_t size = options_size(version);
    if (!o || size == 0)
        return RL_EINVAL;
    memcpy(o, &defaults, size);
    o->version = version;
    return RL_OK;
}
