/*
 * fuzz_import.c - libFuzzer harness for rl_import, the JSON document that
 * `rlctl import` reads: whatever the bytes, the call returns a code (never
 * crashes, leaks or trips a sanitizer), and a refused document leaves the
 * state it found. The in-memory store keeps each run cheap; the document is
 * parsed the same way for every store.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_key(void *ctx, const rl_key_stats *st)
{
    (void)st;
    (*(int64_t *)ctx)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rl *r;
    static const rl_limit lims[] = { RL_PER_SECOND(10, 0) };
    static const char empty[] = "{\"format\":\"rl-export\",\"version\":1}";
    rl_result res;
    int64_t before = 0, after = 0;
    int rc;
    if (!r) {
        rl_options o = RL_OPTIONS_INIT;
        o.default_limits = lims;
        o.n_default_limits = 1;
        if (rl_open(&r, ":memory:", &o) != RL_OK)
            abort();
    }
    /* a known state: one key, so a refused import can be seen to keep it.
     * The empty document has no tiers, so it removes the stored default
     * limits too (they are the tier "default"): they are set again. */
    if (rl_import(r, empty, strlen(empty)) != RL_OK ||
        rl_tier_set(r, "default", lims, 1) != RL_OK || rl_allow(r, "seed", 1, &res) != RL_OK)
        abort();
    rl_keys_list(r, NULL, RL_SORT_KEY, 0, count_key, &before);
    rc = rl_import(r, (const char *)data, size);
    rl_keys_list(r, NULL, RL_SORT_KEY, 0, count_key, &after);
    if (rc != RL_OK && after != before)
        abort(); /* all or nothing */
    return 0;
}
