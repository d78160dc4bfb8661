/*
 * fuzz_state.c - libFuzzer harness for the bucket state decoders of
 * core/state.c: whatever bytes a database holds in a state column or in
 * rl_limit_sets, a decoder either refuses them (RL_ECORRUPT) or yields a
 * state that encodes back to bytes decoding to the same state.
 *
 * The first byte picks the decoder: 0 formats 1 and 2 (rl_state_decode),
 * 1 a slot set (rl_slotset_decode), 2 format 3 with a fixed slot set of
 * three limits (one of each kind a tier has), 3 format 3 with none. Any
 * disagreement aborts.
 */
#include "store.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static int same(const rl_state *a, const rl_state *b)
{
    size_t i;
    if (a->n != b->n || a->gen != b->gen || a->fp != b->fp)
        return 0;
    for (i = 0; i < a->n; i++) {
        const rl_slot *x = &a->slot[i], *y = &b->slot[i];
        if (x->kind != y->kind || x->id != y->id || x->count != y->count ||
            x->period_ns != y->period_ns || x->burst != y->burst || x->tat != y->tat ||
            x->rem != y->rem)
            return 0;
    }
    return 1;
}

/* The set of fingerprint 5 the format 3 inputs refer to. */
static void fixed_set(rl_slotset *set)
{
    static const int kinds[3] = { RL_SLOT_GCRA, RL_SLOT_WINDOW, RL_SLOT_INFLIGHT };
    size_t i;
    memset(set, 0, sizeof *set);
    set->fp = 5;
    set->n = 3;
    for (i = 0; i < 3; i++) {
        rl_slot *e = &set->slot[i];
        e->kind = kinds[i];
        e->id = 0x1000 + i;
        e->count = 600;
        e->period_ns = kinds[i] == RL_SLOT_INFLIGHT ? 1 : 60000000000LL;
        e->burst = kinds[i] == RL_SLOT_WINDOW ? 0 : kinds[i] == RL_SLOT_INFLIGHT ? 600 : 50;
    }
}

static void format3(const unsigned char *p, size_t n, const rl_slotset *set)
{
    static unsigned char buf[RL_STATE3_WORST];
    rl_state a, b;
    size_t len;
    if (rl_state_decode3(&a, p, n, set) != RL_OK)
        return;
    len = rl_state_encode3(&a, set, buf);
    if (len > RL_STATE3_WORST || rl_state_decode3(&b, buf, len, set) != RL_OK || !same(&a, &b))
        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static unsigned char buf[RL_STATE_MAX > RL_SLOTSET_MAX ? RL_STATE_MAX : RL_SLOTSET_MAX];
    rl_slotset set, back;
    rl_state a, b;
    size_t len;
    if (size < 1)
        return 0;
    switch (data[0] & 3) {
    case 0:
        if (rl_state_decode(&a, data + 1, size - 1) != RL_OK)
            return 0;
        len = rl_state_encode(&a, buf);
        if (rl_state_decode(&b, buf, len) != RL_OK || !same(&a, &b))
            abort();
        break;
    case 1:
        if (size - 1 > RL_SLOTSET_MAX || rl_slotset_decode(&set, 9, data + 1, size - 1) != RL_OK)
            return 0;
        len = rl_slotset_encode(&set, buf);
        if (len > RL_SLOTSET_MAX || rl_slotset_decode(&back, 9, buf, len) != RL_OK ||
            back.n != set.n)
            abort();
        break;
    case 2:
        fixed_set(&set);
        format3(data + 1, size - 1, &set);
        break;
    default:
        format3(data + 1, size - 1, NULL);
        break;
    }
    return 0;
}
