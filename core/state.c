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
 * The memory and Redis stores keep format 2 (Redis's decision script reads
 * it at fixed offsets), and core/ only ever sees formats 1 and 2.
 *
 * Format 3 (issue 20) is the SQLite store's on-disk form, about a third of
 * format 2's size: the limits' parameters are not copied into every row
 * but named once, by the tier fingerprint, in a slot set (rl_slotset, the
 * store's table rl_limit_sets), and numbers are LEB128 varints:
 *
 *   byte 0 = 3, byte 1 = n, bytes 2-9 = generation, 10-17 = fingerprint,
 *   18-25 = base (a time, little-endian), then n slots, each a tag byte
 *     bits 0-1  kind (RL_SLOT_*)
 *     bit 2     explicit: id (8 bytes LE), count, period_ns, burst follow
 *               as varints; otherwise they are those of entry i of the
 *               slot set of the fingerprint, whose kind must be the tag's
 *     bit 3     tat is INT64_MIN (a full GCRA bucket): no tat field
 *     bit 4     rem is not 0: a varint follows
 *     bit 5     a window slot's prev (burst) is not 0 and not explicit: a
 *               varint follows
 *     bits 6-7  0
 *   in that order: [explicit words] [tat] [rem] [prev]. tat is a zigzag
 *   varint of tat - base (wrapping, so every int64 round-trips) for times,
 *   of tat itself for in-flight units. The base is the first tat that is a
 *   time, so that slot's delta is one byte and the others' are short.
 *
 * Decoding is strict: a varint longer than 10 bytes, overlong (a final 0
 * byte after the first) or above INT64_MAX where a count is meant, a flag
 * set where it means nothing, a reference with no slot set or beyond it,
 * trailing bytes: RL_ECORRUPT, and every slot is checked by slot_valid as
 * in formats 1 and 2. The store turns format 3 into format 2 for core/ on
 * reading and back on writing (store/sqlite_state.c).
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

size_t rl_state_fresh_at(const unsigned char *blob, size_t len, int64_t now, unsigned char *buf)
{
    rl_state st;
    rl_ldef d;
    size_t i;
    memcpy(buf, blob, len);
    if (rl_state_decode(&st, blob, len) != RL_OK)
        return len;
    memset(&d, 0, sizeof d);
    for (i = 0; i < st.n; i++)
        if (st.slot[i].kind == RL_SLOT_WINDOW) {
            d.kind = RL_KIND_WINDOW;
            d.count = d.burst = st.slot[i].count;
            d.period_ns = st.slot[i].period_ns;
            st.slot[i].tat = rl_window_fresh(&d, now).start;
        }
    return rl_state_encode(&st, buf);
}

/* ---- format 3 ----------------------------------------------------------- */

#define TAG_KIND 0x03
#define TAG_EXPLICIT 0x04
#define TAG_TAT_MIN 0x08
#define TAG_REM 0x10
#define TAG_PREV 0x20

static unsigned char *put_varint(unsigned char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

/* A varint at *p (end excluded) into *v: 0 if it runs past end, is longer
 * than 10 bytes, overflows 64 bits or is overlong (ends in a 0 byte after
 * its first), so that every value has exactly one encoding. */
static int get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    const unsigned char *q = *p;
    uint64_t r = 0;
    unsigned shift = 0;
    for (;;) {
        unsigned char b;
        if (q == end || shift > 63)
            return 0;
        b = *q++;
        if (shift == 63 && b > 1)
            return 0;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (b == 0 && shift > 0)
                return 0;
            break;
        }
        shift += 7;
    }
    *p = q;
    *v = r;
    return 1;
}

/* A non-negative int64 as a varint: counts, periods, units. */
static int get_count(const unsigned char **p, const unsigned char *end, int64_t *v)
{
    uint64_t u;
    if (!get_varint(p, end, &u) || u > (uint64_t)INT64_MAX)
        return 0;
    *v = (int64_t)u;
    return 1;
}

static uint64_t zigzag(uint64_t d)
{
    return (d << 1) ^ (uint64_t) - (int64_t)(d >> 63);
}

static uint64_t unzigzag(uint64_t z)
{
    return (z >> 1) ^ (uint64_t) - (int64_t)(z & 1);
}

static int is_time(int kind)
{
    return kind != RL_SLOT_INFLIGHT;
}

void rl_slot_template(const rl_ldef *d, rl_slot *s)
{
    s->kind = d->kind == RL_KIND_CONCURRENT ? RL_SLOT_INFLIGHT
              : d->kind == RL_KIND_WINDOW   ? RL_SLOT_WINDOW
                                            : RL_SLOT_GCRA;
    s->id = d->id;
    s->count = d->count;
    s->period_ns = s->kind == RL_SLOT_INFLIGHT ? 1 : d->period_ns;
    s->burst = d->burst;
    s->tat = s->rem = 0;
}

/* What a slot set entry keeps of a slot: the limit, not the state. A
 * window's burst word is its prev, state, so it is 0 in the set. */
static void set_entry(const rl_slot *s, rl_slot *e)
{
    *e = *s;
    e->tat = e->rem = 0;
    if (e->kind == RL_SLOT_WINDOW)
        e->burst = 0;
}

static int matches(const rl_slot *s, const rl_slot *e)
{
    return s->kind == e->kind && s->id == e->id && s->count == e->count &&
           s->period_ns == e->period_ns && (s->kind == RL_SLOT_WINDOW || s->burst == e->burst);
}

void rl_slotset_of_tier(const rl_tier *t, uint64_t fp, rl_slotset *set)
{
    size_t i;
    rl_slot s;
    set->fp = fp;
    set->n = t->n;
    for (i = 0; i < t->n; i++) {
        rl_slot_template(&t->limits[i], &s);
        set_entry(&s, &set->slot[i]);
    }
}

void rl_slotset_of_state(const rl_state *st, rl_slotset *set)
{
    size_t i;
    set->fp = st->fp;
    for (i = 0; i < st->n && i < RL_MAX_LIMITS && st->slot[i].kind != RL_SLOT_COOLDOWN; i++)
        set_entry(&st->slot[i], &set->slot[i]);
    set->n = i;
}

size_t rl_slotset_encode(const rl_slotset *set, unsigned char *buf)
{
    unsigned char *p = buf;
    size_t i;
    *p++ = (unsigned char)set->n;
    for (i = 0; i < set->n; i++) {
        const rl_slot *e = &set->slot[i];
        *p++ = (unsigned char)e->kind;
        rl_put64(p, e->id);
        p += 8;
        p = put_varint(p, (uint64_t)e->count);
        p = put_varint(p, (uint64_t)e->period_ns);
        p = put_varint(p, (uint64_t)e->burst);
    }
    return (size_t)(p - buf);
}

int rl_slotset_decode(rl_slotset *set, uint64_t fp, const unsigned char *buf, size_t len)
{
    const unsigned char *p = buf, *end = buf + len;
    size_t i;
    set->fp = fp;
    set->n = 0;
    if (len < 1 || buf[0] > RL_MAX_LIMITS)
        return RL_ECORRUPT;
    p++;
    for (i = 0; i < buf[0]; i++) {
        rl_slot *e = &set->slot[i];
        if (end - p < 9 || p[0] == RL_SLOT_COOLDOWN || p[0] > RL_SLOT_WINDOW)
            return RL_ECORRUPT;
        e->kind = p[0];
        e->id = rl_get64(p + 1);
        p += 9;
        e->tat = e->rem = 0;
        if (!get_count(&p, end, &e->count) || !get_count(&p, end, &e->period_ns) ||
            !get_count(&p, end, &e->burst) || !slot_valid(e) ||
            (e->kind == RL_SLOT_WINDOW && e->burst != 0))
            return RL_ECORRUPT;
    }
    if (p != end)
        return RL_ECORRUPT;
    set->n = buf[0];
    return RL_OK;
}

size_t rl_state_encode3(const rl_state *st, const rl_slotset *set, unsigned char *buf)
{
    unsigned char *p = buf;
    int64_t base = 0;
    size_t i;
    if (set && set->fp != st->fp)
        set = NULL;
    for (i = 0; i < st->n; i++)
        if (is_time(st->slot[i].kind) && st->slot[i].tat != INT64_MIN) {
            base = st->slot[i].tat;
            break;
        }
    *p++ = 3;
    *p++ = (unsigned char)st->n;
    rl_put64(p, st->gen);
    rl_put64(p + 8, st->fp);
    rl_put64(p + 16, (uint64_t)base);
    p += 24;
    for (i = 0; i < st->n; i++) {
        const rl_slot *s = &st->slot[i];
        int ref = set && i < set->n && matches(s, &set->slot[i]);
        int tmin = is_time(s->kind) && s->tat == INT64_MIN;
        int prev = ref && s->kind == RL_SLOT_WINDOW && s->burst != 0;
        *p++ = (unsigned char)(s->kind | (ref ? 0 : TAG_EXPLICIT) | (tmin ? TAG_TAT_MIN : 0) |
                               (s->rem ? TAG_REM : 0) | (prev ? TAG_PREV : 0));
        if (!ref) {
            rl_put64(p, s->id);
            p += 8;
            p = put_varint(p, (uint64_t)s->count);
            p = put_varint(p, (uint64_t)s->period_ns);
            p = put_varint(p, (uint64_t)s->burst);
        }
        if (!tmin)
            p = put_varint(p, zigzag((uint64_t)s->tat - (is_time(s->kind) ? (uint64_t)base : 0)));
        if (s->rem)
            p = put_varint(p, (uint64_t)s->rem);
        if (prev)
            p = put_varint(p, (uint64_t)s->burst);
    }
    return (size_t)(p - buf);
}

int rl_state_fp3(const unsigned char *buf, size_t len, uint64_t *fp)
{
    if (len < RL_STATE3_HEAD || buf[0] != 3)
        return RL_ECORRUPT;
    *fp = rl_get64(buf + 10);
    return RL_OK;
}

int rl_state_decode3(rl_state *st, const unsigned char *buf, size_t len, const rl_slotset *set)
{
    const unsigned char *p = buf + RL_STATE3_HEAD, *end = buf + len;
    uint64_t base, u;
    size_t i;
    st->n = 0;
    st->gen = st->fp = 0;
    if (len < RL_STATE3_HEAD || buf[0] != 3 || buf[1] > RL_MAX_SLOTS)
        return RL_ECORRUPT;
    st->gen = rl_get64(buf + 2);
    st->fp = rl_get64(buf + 10);
    base = rl_get64(buf + 18);
    if (set && set->fp != st->fp)
        set = NULL;
    for (i = 0; i < buf[1]; i++) {
        rl_slot *s = &st->slot[i];
        int tag;
        if (p == end)
            return RL_ECORRUPT;
        tag = *p++;
        s->kind = tag & TAG_KIND;
        if ((tag & 0xc0) || ((tag & TAG_TAT_MIN) && !is_time(s->kind)) ||
            ((tag & TAG_PREV) && (s->kind != RL_SLOT_WINDOW || (tag & TAG_EXPLICIT))))
            return RL_ECORRUPT;
        if (tag & TAG_EXPLICIT) {
            if (end - p < 8)
                return RL_ECORRUPT;
            s->id = rl_get64(p);
            p += 8;
            if (!get_count(&p, end, &s->count) || !get_count(&p, end, &s->period_ns) ||
                !get_count(&p, end, &s->burst))
                return RL_ECORRUPT;
        } else {
            if (!set || i >= set->n || set->slot[i].kind != s->kind)
                return RL_ECORRUPT;
            *s = set->slot[i];
        }
        if (tag & TAG_TAT_MIN) {
            s->tat = INT64_MIN;
        } else {
            if (!get_varint(&p, end, &u))
                return RL_ECORRUPT;
            s->tat = (int64_t)(unzigzag(u) + (is_time(s->kind) ? base : 0));
        }
        s->rem = 0;
        if ((tag & TAG_REM) && (!get_count(&p, end, &s->rem) || s->rem == 0))
            return RL_ECORRUPT;
        if ((tag & TAG_PREV) && (!get_count(&p, end, &s->burst) || s->burst == 0))
            return RL_ECORRUPT;
        if (!slot_valid(s))
            return RL_ECORRUPT;
    }
    if (p != end)
        return RL_ECORRUPT;
    st->n = buf[1];
    return RL_OK;
}
