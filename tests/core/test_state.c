/*
 * test_state.c - the bucket state encodings of core/state.c, without any
 * store: formats 1 and 2 (what core/ and the memory and Redis stores
 * keep) and format 3 (the SQLite store's on-disk form, whose slots refer
 * to a slot set instead of copying the limits).
 *
 * What users rely on: every valid state comes back exactly from each
 * format, with or without a slot set; a two-limit key takes at most 48
 * bytes in format 3; every byte read from a database is untrusted, so any
 * malformed, truncated, overlong or mutated blob is RL_ECORRUPT or a valid
 * state, never a crash or a slot the math cannot take (run under ASan and
 * UBSan); a slot that refers to a set entry that is not there is
 * RL_ECORRUPT, never a guess.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"
#include "window.h"

static const int64_t T0 = (int64_t)1700000040 * RL_SECOND;

static rl_ldef mk(const char *name, int kind, int64_t count, int64_t period, int64_t burst)
{
    rl_ldef d;
    char err[128];
    memset(&d, 0, sizeof d);
    snprintf(d.name, sizeof d.name, "%s", name);
    snprintf(d.resource, sizeof d.resource, "%s", "requests");
    d.kind = kind;
    d.count = count;
    d.period_ns = period;
    d.burst = burst;
    d.id = rl_limit_id(d.resource, d.name);
    assert_int_equal(rl_ldef_check(&d, err, sizeof err), RL_OK);
    return d;
}

/* A tier of n limits of several kinds, and its fingerprint. */
static rl_tier tier_of(size_t n)
{
    rl_tier t;
    size_t i;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", "pro");
    for (i = 0; i < n && i < RL_MAX_LIMITS; i++) {
        char name[16];
        snprintf(name, sizeof name, "l%zu", i);
        t.limits[i] = i % 3 == 2   ? mk(name, RL_KIND_CONCURRENT, 4, 0, 4)
                      : i % 3 == 1 ? mk(name, RL_KIND_WINDOW, 90000, RL_MINUTE, 90000)
                                   : mk(name, RL_KIND_GCRA, 600, RL_MINUTE, 50);
    }
    t.n = i;
    return t;
}

/* A state of tier t as a decision leaves it, times around T0. */
static rl_state state_of(const rl_tier *t, uint64_t *rng)
{
    rl_state st;
    size_t i;
    memset(&st, 0, sizeof st);
    st.gen = 0x1234567890abcdefULL;
    st.fp = rl_tier_fingerprint(t);
    st.n = t->n;
    for (i = 0; i < t->n; i++) {
        rl_slot *s = &st.slot[i];
        rl_slot_template(&t->limits[i], s);
        *rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
        if (s->kind == RL_SLOT_GCRA) {
            s->tat = (*rng >> 60) == 0 ? INT64_MIN : T0 + (int64_t)(*rng >> 34);
            s->rem = (int64_t)((*rng >> 20) % (uint64_t)s->count);
        } else if (s->kind == RL_SLOT_WINDOW) {
            s->tat = T0 - T0 % RL_MINUTE;
            s->rem = (int64_t)((*rng >> 24) % 90000);
            s->burst = (int64_t)((*rng >> 40) % 90000);
        } else {
            s->tat = (int64_t)((*rng >> 50) % 5);
        }
    }
    return st;
}

static void assert_same(const rl_state *a, const rl_state *b)
{
    size_t i;
    assert_int_equal(a->n, b->n);
    assert_true(a->gen == b->gen && a->fp == b->fp);
    for (i = 0; i < a->n; i++) {
        const rl_slot *x = &a->slot[i], *y = &b->slot[i];
        assert_int_equal(x->kind, y->kind);
        assert_true(x->id == y->id);
        assert_true(x->count == y->count && x->period_ns == y->period_ns);
        assert_true(x->burst == y->burst && x->tat == y->tat && x->rem == y->rem);
    }
}

static void add_cooldown(rl_state *st, int64_t until)
{
    rl_slot *c = &st->slot[st->n++];
    memset(c, 0, sizeof *c);
    c->kind = RL_SLOT_COOLDOWN;
    c->id = rl_cooldown_id("tokens");
    c->count = c->period_ns = c->burst = 1;
    c->tat = until;
}

/* Every layout round-trips through formats 2 and 3, with its set, with
 * none and with another fingerprint's (slots written whole). */
static void test_round_trip(void **state)
{
    uint64_t rng = 42;
    size_t n, k;
    (void)state;
    for (n = 0; n <= RL_MAX_LIMITS; n++) {
        rl_tier t = tier_of(n);
        rl_slotset set, other;
        rl_slotset_of_tier(&t, rl_tier_fingerprint(&t), &set);
        other = set;
        other.fp ^= 1;
        for (k = 0; k < 200; k++) {
            rl_state st = state_of(&t, &rng), back;
            unsigned char b2[RL_STATE_MAX], b3[RL_STATE3_WORST];
            size_t l2, l3;
            if (k % 7 == 3)
                add_cooldown(&st, T0 + RL_MINUTE);
            l2 = rl_state_encode(&st, b2);
            assert_int_equal(rl_state_decode(&back, b2, l2), RL_OK);
            assert_same(&st, &back);
            l3 = rl_state_encode3(&st, &set, b3);
            assert_true(l3 <= l2 || st.n == 0); /* an empty state: the store keeps format 2 */
            assert_int_equal(rl_state_decode3(&back, b3, l3, &set), RL_OK);
            assert_same(&st, &back);
            l3 = rl_state_encode3(&st, NULL, b3);
            assert_true(l3 <= RL_STATE3_WORST);
            assert_int_equal(rl_state_decode3(&back, b3, l3, NULL), RL_OK);
            assert_same(&st, &back);
            l3 = rl_state_encode3(&st, &other, b3);
            assert_int_equal(rl_state_decode3(&back, b3, l3, &set), RL_OK);
            assert_same(&st, &back);
        }
    }
}

/* Extreme words: every int64 time, counts at their limits. */
static void test_extremes(void **state)
{
    static const int64_t tats[] = { INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX };
    rl_ldef d = mk("big", RL_KIND_GCRA, RL_COUNT_MAX, RL_PERIOD_MAX, RL_COUNT_MAX);
    rl_tier t;
    rl_slotset set;
    size_t i, j;
    (void)state;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", "x");
    t.limits[0] = t.limits[1] = d;
    t.limits[1].id ^= 1;
    t.n = 2;
    rl_slotset_of_tier(&t, 7, &set);
    for (i = 0; i < 7; i++)
        for (j = 0; j < 7; j++) {
            rl_state st, back;
            unsigned char b[RL_STATE3_WORST];
            size_t len;
            memset(&st, 0, sizeof st);
            st.gen = UINT64_MAX;
            st.fp = 7;
            st.n = 2;
            rl_slot_template(&t.limits[0], &st.slot[0]);
            rl_slot_template(&t.limits[1], &st.slot[1]);
            st.slot[0].tat = tats[i];
            st.slot[1].tat = tats[j];
            st.slot[1].rem = RL_COUNT_MAX - 1;
            len = rl_state_encode3(&st, &set, b);
            assert_int_equal(rl_state_decode3(&back, b, len, &set), RL_OK);
            assert_same(&st, &back);
        }
}

/* Issue 20's goal: a key of two GCRA limits in at most 48 bytes, where
 * format 2 takes 116; and a fresh key (full buckets) in less. */
static void test_two_limit_size(void **state)
{
    rl_ldef l[2] = { mk("rpm", RL_KIND_GCRA, 600, RL_MINUTE, 50),
                     mk("rpd", RL_KIND_GCRA, 10000, 24 * RL_HOUR, 10000) };
    rl_tier t;
    rl_slotset set;
    rl_state st;
    unsigned char b[RL_STATE3_WORST];
    (void)state;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", "free");
    t.limits[0] = l[0];
    t.limits[1] = l[1];
    t.n = 2;
    rl_slotset_of_tier(&t, rl_tier_fingerprint(&t), &set);
    memset(&st, 0, sizeof st);
    st.gen = 0x9e3779b97f4a7c15ULL;
    st.fp = set.fp;
    st.n = 2;
    rl_slot_template(&l[0], &st.slot[0]);
    rl_slot_template(&l[1], &st.slot[1]);
    /* the worst a decision leaves: tats a day apart, remainders near count */
    st.slot[0].tat = T0 + 5 * RL_SECOND;
    st.slot[0].rem = 599;
    st.slot[1].tat = T0 + 24 * RL_HOUR;
    st.slot[1].rem = 9999;
    assert_int_equal(rl_state_encode(&st, b), 116);
    assert_true(rl_state_encode3(&st, &set, b) <= 48);
    print_message("two GCRA limits: %zu bytes in format 3 (116 in format 2)\n",
                  rl_state_encode3(&st, &set, b));
    st.slot[0].tat = st.slot[1].tat = INT64_MIN;
    st.slot[0].rem = st.slot[1].rem = 0;
    assert_true(rl_state_encode3(&st, &set, b) <= 30);
}

/* Slot sets: round trip, and stored damage refused. */
static void test_slotset(void **state)
{
    rl_tier t = tier_of(RL_MAX_LIMITS);
    rl_slotset set, back;
    unsigned char b[RL_SLOTSET_MAX], m[RL_SLOTSET_MAX];
    size_t len, i;
    (void)state;
    rl_slotset_of_tier(&t, 99, &set);
    len = rl_slotset_encode(&set, b);
    assert_true(len <= RL_SLOTSET_MAX);
    assert_int_equal(rl_slotset_decode(&back, 99, b, len), RL_OK);
    assert_int_equal(back.n, set.n);
    for (i = 0; i < set.n; i++) {
        const rl_slot *x = &back.slot[i], *y = &set.slot[i];
        assert_true(x->kind == y->kind && x->id == y->id && x->count == y->count);
        assert_true(x->period_ns == y->period_ns && x->burst == y->burst);
        assert_true(x->tat == 0 && x->rem == 0);
    }
    for (i = 0; i < len; i++) /* every truncation */
        assert_int_equal(rl_slotset_decode(&back, 99, b, i), RL_ECORRUPT);
    memcpy(m, b, len);
    m[len] = 0; /* trailing byte */
    assert_int_equal(rl_slotset_decode(&back, 99, m, len + 1), RL_ECORRUPT);
    m[0] = RL_MAX_LIMITS + 1;
    assert_int_equal(rl_slotset_decode(&back, 99, m, len), RL_ECORRUPT);
    memcpy(m, b, len);
    m[1] = RL_SLOT_COOLDOWN; /* a tier has no cool-downs */
    assert_int_equal(rl_slotset_decode(&back, 99, m, len), RL_ECORRUPT);
    /* every single-byte mutation: refused or valid */
    for (i = 0; i < len; i++) {
        int v;
        for (v = 0; v < 256; v += 17) {
            memcpy(m, b, len);
            m[i] = (unsigned char)v;
            if (rl_slotset_decode(&back, 99, m, len) == RL_OK)
                assert_true(back.n <= RL_MAX_LIMITS);
        }
    }
}

/* A hand-made blob: header of n slots, fp 5, base T0, then body. */
static size_t blob3(unsigned char *b, int n, const unsigned char *body, size_t len)
{
    memset(b, 0, RL_STATE3_HEAD);
    b[0] = 3;
    b[1] = (unsigned char)n;
    b[10] = 5;
    memcpy(b + RL_STATE3_HEAD, body, len);
    return RL_STATE3_HEAD + len;
}

static void test_malformed(void **state)
{
    rl_tier t = tier_of(3);
    rl_slotset set;
    rl_state st;
    unsigned char b[RL_STATE3_WORST + 16];
    size_t len;
    (void)state;
    rl_slotset_of_tier(&t, 5, &set);
    /* a GCRA slot of the set, tat delta 0: valid */
    len = blob3(b, 1, (const unsigned char[]){ 0x00, 0x00 }, 2);
    assert_int_equal(rl_state_decode3(&st, b, len, &set), RL_OK);
    assert_int_equal(st.n, 1);
    /* the same with no set, or a set of another fingerprint: unknown */
    assert_int_equal(rl_state_decode3(&st, b, len, NULL), RL_ECORRUPT);
    set.fp = 6;
    assert_int_equal(rl_state_decode3(&st, b, len, &set), RL_ECORRUPT);
    set.fp = 5;
    /* a reference beyond the set, or of another kind than its entry */
    len = blob3(b, 4, (const unsigned char[]){ 0x08, 0x03, 0x00, 0x02, 0x00, 0x08 }, 6);
    assert_int_equal(rl_state_decode3(&st, b, len, &set), RL_ECORRUPT);
    len = blob3(b, 1, (const unsigned char[]){ 0x02, 0x00 }, 2);
    assert_int_equal(rl_state_decode3(&st, b, len, &set), RL_ECORRUPT);
    /* overlong varint (0 in two bytes), 11-byte varint, overflow */
    len = blob3(b, 1, (const unsigned char[]){ 0x00, 0x80, 0x00 }, 3);
    assert_int_equal(rl_state_decode3(&st, b, len, &set), RL_ECORRUPT);
    len = blob3(b, 1,
                (const unsigned char[]){ 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0x81, 0x00 },
                12);
    assert_int_equal(rl_state_decode3(&st, b, len, &set), RL_ECORRUPT);
    len = blob3(
        b, 1,
        (const unsigned char[]){ 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02 },
        11);
    assert_int_equal(rl_state_decode3(&st, b, len, &set), RL_ECORRUPT);
    /* rem flagged but 0; rem not below count (600); prev on a GCRA slot;
     * unknown tag bits; tat-min on an in-flight slot; trailing bytes */
    len = blob3(b, 1, (const unsigned char[]){ 0x10, 0x00, 0x00 }, 3);
    assert_int_equal(rl_state_decode3(&st, b, len, &set), RL_ECORRUPT);
    len = blob3(b, 1, (const unsigned char[]){ 0x10, 0x00, 0xd8, 0x04 }, 4);
    assert_int_equal(rl_state_decode3(&st, b, len, &set), RL_ECORRUPT);
    len = blob3(b, 1, (const unsigned char[]){ 0x20, 0x00, 0x01 }, 3);
    assert_int_equal(rl_state_decode3(&st, b, len, &set), RL_ECORRUPT);
    len = blob3(b, 1, (const unsigned char[]){ 0x40, 0x00 }, 2);
    assert_int_equal(rl_state_decode3(&st, b, len, &set), RL_ECORRUPT);
    len = blob3(b, 3, (const unsigned char[]){ 0x08, 0x23, 0x00, 0x01, 0x0a }, 5);
    assert_int_equal(rl_state_decode3(&st, b, len, &set), RL_ECORRUPT);
    len = blob3(b, 1, (const unsigned char[]){ 0x00, 0x00, 0x00 }, 3);
    assert_int_equal(rl_state_decode3(&st, b, len, &set), RL_ECORRUPT);
    /* too many slots; a short header; another format */
    len = blob3(b, RL_MAX_SLOTS + 1, (const unsigned char[]){ 0x00 }, 1);
    assert_int_equal(rl_state_decode3(&st, b, len, &set), RL_ECORRUPT);
    assert_int_equal(rl_state_decode3(&st, b, RL_STATE3_HEAD - 1, &set), RL_ECORRUPT);
    b[0] = 2;
    assert_int_equal(rl_state_decode3(&st, b, len, &set), RL_ECORRUPT);
    /* formats 1 and 2 do not take a format 3 blob */
    len = blob3(b, 1, (const unsigned char[]){ 0x00, 0x00 }, 2);
    assert_int_equal(rl_state_decode(&st, b, len), RL_ECORRUPT);
}

/* Every truncation and many mutations of real blobs: RL_ECORRUPT or a
 * state whose every slot the math takes. */
static void test_mutations(void **state)
{
    uint64_t rng = 7;
    size_t n;
    (void)state;
    for (n = 1; n <= RL_MAX_LIMITS; n++) {
        rl_tier t = tier_of(n);
        rl_slotset set;
        rl_state st = state_of(&t, &rng), back;
        unsigned char b[RL_STATE3_WORST], m[RL_STATE3_WORST];
        size_t len, i;
        rl_slotset_of_tier(&t, st.fp, &set);
        add_cooldown(&st, T0);
        len = rl_state_encode3(&st, &set, b);
        for (i = 0; i < len; i++)
            assert_int_equal(rl_state_decode3(&back, b, i, &set), RL_ECORRUPT);
        for (i = 0; i < len; i++) {
            int v;
            for (v = 0; v < 256; v++) {
                size_t j;
                memcpy(m, b, len);
                m[i] = (unsigned char)v;
                if (rl_state_decode3(&back, m, len, &set) != RL_OK)
                    continue;
                for (j = 0; j < back.n; j++) {
                    const rl_slot *s = &back.slot[j];
                    assert_true(s->count >= 1 && s->count <= RL_COUNT_MAX);
                    assert_true(s->period_ns >= 1 && s->period_ns <= RL_PERIOD_MAX);
                    assert_true(s->rem >= 0);
                }
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_two_limit_size), cmocka_unit_test(test_slotset),
        cmocka_unit_test(test_malformed),      cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
