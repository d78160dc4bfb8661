/*
 * state.c - the bucket state of one key as a compact, versioned blob.
 *
 * Format 1: byte 0 = 1, byte 1 = n (<= RL_MAX_SLOTS), then n slots of one
 * kind byte and six little-endian 64-bit words: id, count, period_ns, burst,
 * tat, rem. The limit parameters travel with the state so that a changed
 * tier can be rescaled lazily, by the next decision, in whatever process
 * makes it.
 *
 * Kind 3 (RL_SLOT_WINDOW, a sliding window limit) came later in the same
 * format: its words mean id, count, period_ns, prev, start, cur (burst holds
 * the previous window's count, tat the current window's start, rem the
 * current window's count). A blob without window slots is byte for byte
 * what it was before they existed.
 *
 * Format 2 (issue 15) puts two little-endian 64-bit words between n and the
 * slots: byte 0 = 2, byte 1 = n, bytes 2-9 = the state's generation,
 * bytes 10-17 = the fingerprint of the tier it was written for (store.h),
 * then the n slots exactly as in format 1. Both formats decode; a state
 * whose generation and fingerprint are 0 is still written as format 1.
 */
#include "bytes.h"
#include "store.h"
#include "window.h"

#include <string.h>

uint64_t rl_cooldown_id(const char *resource)
{
    /* "\x01" cannot start a valid limit name, so no limit shares the id */
    return rl_limit_id(resource ? resource : "*", "\x01cooldown");
}

/* Never trust stored numbers into the 128-bit math unchecked. */
static int slot_valid(const rl_slot *s)
{
    if (s->kind < RL_SLOT_GCRA || s->kind > RL_SLOT_WINDOW || s->count < 1 ||
        s->count > RL_COUNT_MAX || s->period_ns < 1 || s->period_ns > RL_PERIOD_MAX)
        return 0;
    if (s->kind == RL_SLOT_WINDOW) /* burst = prev, rem = cur, tat = any start */
        return s->burst >= 0 && s->burst <= RL_WINDOW_UNITS_MAX && s->rem >= 0 &&
               s->rem <= RL_WINDOW_UNITS_MAX;
    return s->burst >= 1 && s->burst <= RL_COUNT_MAX && s->rem >= 0 && s->rem < s->count &&
           (s->kind != RL_SLOT_INFLIGHT || s->tat >= 0);
}

int rl_state_decode(rl_state *st, const unsigned char *buf, size_t len)
{
    size_t i, head;
    st->n = 0;
    st->gen = st->fp = 0;
    if (len == 0)
        return RL_OK;
    if (len < 2 || (buf[0] != 1 && buf[0] != 2) || buf[1] > RL_MAX_SLOTS)
        return RL_ECORRUPT;
    head = buf[0] == 2 ? RL_STATE_HEAD : 2;
    if (len != head + (size_t)buf[1] * RL_SLOT_BYTES)
        return RL_ECORRUPT;
    if (buf[0] == 2) {
        st->gen = rl_get64(buf + 2);
        st->fp = rl_get64(buf + 10);
    }
    for (i = 0; i < buf[1]; i++) {
        const unsigned char *p = buf + head + i * RL_SLOT_BYTES;
        rl_slot *s = &st->slot[i];
        s->kind = p[0];
        s->id = rl_get64(p + 1);
        s->count = (int64_t)rl_get64(p + 9);
        s->period_ns = (int64_t)rl_get64(p + 17);
        s->burst = (int64_t)rl_get64(p + 25);
        s->tat = (int64_t)rl_get64(p + 33);
        s->rem = (int64_t)rl_get64(p + 41);
        if (!slot_valid(s))
            return RL_ECORRUPT;
    }
    st->n = buf[1];
    return RL_OK;
}

size_t rl_state_encode(const rl_state *st, unsigned char *buf)
{
    size_t i, head = st->gen || st->fp ? RL_STATE_HEAD : 2;
    buf[0] = head == 2 ? 1 : 2;
    buf[1] = (unsigned char)st->n;
    if (head != 2) {
        rl_put64(buf + 2, st->gen);
        rl_put64(buf + 10, st->fp);
    }
    for (i = 0; i < st->n; i++) {
        unsigned char *p = buf + head + i * RL_SLOT_BYTES;
        const rl_slot *s = &st->slot[i];
        p[0] = (unsigned char)s->kind;
        rl_put64(p + 1, s->id);
        rl_put64(p + 9, (uint64_t)s->count);
        rl_put64(p + 17, (uint64_t)s->period_ns);
        rl_put64(p + 25, (uint64_t)s->burst);
        rl_put64(p + 33, (uint64_t)s->tat);
        rl_put64(p + 41, (uint64_t)s->rem);
    }
    return head + st->n * RL_SLOT_BYTES;
}
