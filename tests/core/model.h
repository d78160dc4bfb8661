/*
 * model.h - test_model's reference model of docs/api.md (model.c): its
 * state, the expected answers it gives, and the known issues the driver
 * steers clear of. test_model.c says how the files fit together.
 */
#ifndef RL_TEST_MODEL_H
#define RL_TEST_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "rl.h"

/* The items of issue 15 being fixed now:
 * 1: rl_cancel of a reservation made before an rl_reset of its key gives
 *    units back (api.md: "Does nothing ... if the key was reset"). The
 *    driver does not cancel across a reset. */
/* fixed: KNOWN_ISSUE_15_1 no longer set */
/* 2: clocks before the epoch: a key's first decision at a negative clock is
 *    refused as "cooldown" until clock 0. Clocks stay positive. */
/* fixed: KNOWN_ISSUE_15_2 no longer set */
/* 3: int64 overflow near the top: a bucket whose end lies beyond INT64_MAX
 *    gives a wrong retry_after_ns. Clocks stay below 4e18 (the year 2096)
 *    and reservations whose ends could pass INT64_MAX are not made. */
/* fixed: KNOWN_ISSUE_15_3 no longer set */
/* 4: a key first decided at clock 0 gets the next decision's time as
 *    first_seen_ns. No segment starts at clock 0. */
/* fixed: KNOWN_ISSUE_15_4 no longer set */
/* 5: rl_wait's deadline: a wait whose needed delay is within its timeout
 *    but by less than the time the call itself takes (need 1 ms, timeout
 *    1 ms + 1 ns) returns RL_ETIMEOUT; api.md: only when admission "would
 *    need more than timeout_ns". Not generated within 1 ms of the timeout. */
/* fixed: KNOWN_ISSUE_15_5 no longer set */
/* 6: a rate limit (GCRA) with period 0 is taken as a concurrency limit;
 *    rl.h (being changed with the fix): "a rate limit with period_ns 0 is
 *    RL_EINVAL". rl_tier_set is not given one. */
/* fixed: KNOWN_ISSUE_15_6 no longer set */
/* 7: rl_errmsg still holds the last error after a call that returned RL_OK
 *    (rl_cancel after a failed rl_allow); api.md: "no error" after a
 *    success. Not checked. */
/* fixed: KNOWN_ISSUE_15_7 no longer set */
/* New bugs this test found (same treatment):
 * 8: a reservation (rl_reserve, rl_wait) delayed by a cool-down or by
 *    another limit is counted in a sliding window's current window instead
 *    of "the window of the time it may act" (tiers.md). */
/* fixed: KNOWN_ISSUE_15_8 no longer set */
/* 9: a cost-0 check on a sliding window whose estimate is above COUNT (a
 *    reservation counted ahead) is admitted; tiers.md: "admitted if and
 *    only if estimate + c <= COUNT". */
/* fixed: KNOWN_ISSUE_15_9 no longer set */
/* 10: rl_reserve / rl_wait refuse (ok = 0) a delay longer than 50 years
 *     (50 × 366 days) that max_delay_ns allows; api.md sets no such bound
 *     (a sliding window's wait may reach two periods of up to 50 years). */
/* fixed: KNOWN_ISSUE_15_10 no longer set */
/* 11: rl_cancel of a reservation that was already cancelled gives its units
 *     back again (GCRA): units that were never reserved. */
/* fixed: KNOWN_ISSUE_15_11 no longer set */
/* 12: rl_cancel after the key was assigned another tier (and before any
 *     decision under it) gives the units back; api.md: "Does nothing ...
 *     if the key was reset or re-tiered since" (a sibling of item 1). */
/* fixed: KNOWN_ISSUE_15_12 no longer set */

__extension__ typedef __int128 i128;

#define MAXL 3   /* limits per tier in the traces */
#define NKEYS 4  /* keys per segment */
#define NRES 3   /* requests, tokens, other (no limit ever counts "other": RL_ENOLIMIT) */
#define NTIERS 3 /* default, alt, unl (unlimited) */
#define LOGN 24  /* operations shown on a mismatch */
#define LOGW 640

extern const char *const RES_NAME[NRES];
extern const char *const TIER_NAME[NTIERS];
extern const int64_t Y50;
extern const int64_t T0;

/* ------------------------------------------------------------------ */
/* The model */

typedef struct mlimit {
    char name[16];
    int res;                      /* index in RES_NAME */
    int64_t count, period, burst; /* burst as given to rl_tier_set */
    int algo;
} mlimit;

typedef struct mtier {
    int unlimited;
    size_t n;
    mlimit l[MAXL];
} mtier;

/* One limit's state for one key. GCRA: x is the theoretical arrival time
 * times count (ns·count), so that count per period is exact: the bucket
 * is full from x / count on. Window: start of the current window, prev and
 * cur. has == 0: never charged (a full bucket, empty windows). */
typedef struct mslot {
    int has;
    i128 x;
    int64_t start, prev, cur;
    unsigned epoch; /* GCRA: bumped when a charge starts from a full bucket */
} mslot;

typedef struct mkey {
    char name[48];
    int exists; /* decided at least once since the last reset */
    int known;  /* assigned or penalized: AMBIGUOUS whether "seen" */
    int64_t allowed, refused, units, first_seen, last_seen, max_seen;
    int assigned;   /* tier index, -1: none (the tier "default" applies) */
    int slots_tier; /* the tier whose limits slot[] belongs to, -1: none */
    mslot slot[MAXL];
    int cd_has[NRES + 1]; /* [0]: every resource, [1 + r]: resource r */
    int64_t cd_end[NRES + 1];
    unsigned gen;  /* bumped by rl_reset */
    unsigned agen; /* bumped by rl_key_assign */
} mkey;

typedef struct model {
    mtier tier[NTIERS];
    mkey key[NKEYS];
    int64_t now;
} model;

extern model M;

int64_t eff_burst(const mlimit *l);
int tier_of(const mkey *k);
int64_t wstart(int64_t t, int64_t p);
mslot view(const mkey *k, int t, size_t li, int64_t now);
i128 g_used(const mlimit *l, const mslot *s, int64_t now);
i128 w_est(const mlimit *l, const mslot *s, int64_t now);
int64_t l_wait(const mlimit *l, const mslot *s, int64_t now, int64_t c);
int64_t l_remaining(const mlimit *l, const mslot *s, int64_t now);
int64_t l_reset(const mlimit *l, const mslot *s, int64_t now);
int64_t cd_cover(const mkey *k, unsigned res_mask, int64_t now);

/* ------------------------------------------------------------------ */
/* Expected answers */

typedef struct xcand {
    int key_index;
    int cooldown;
    char name[RL_NAME_MAX];
    int64_t limit, remaining, reset;
} xcand;

typedef struct xres {
    int rc;
    int allowed;
    int64_t retry;
    int skip;       /* only rc and allowed are defined (AMBIGUOUS cases) */
    int win_other;  /* a sliding window's own wait is shorter than the delay */
    int win_behind; /* AMBIGUOUS: admitted after the delay, a window would count
                        it before the window the key has moved to */
    int amb;        /* AMBIGUOUS in the documents: not generated */
    int no_limit;   /* no limit applied: limit_name "" */
    int unlimited;  /* every key unlimited: remaining INT64_MAX */
    int nc;
    xcand c[RL_MAX_KEYS * (MAXL + 1)];
} xres;

typedef struct mcost {
    int res;
    int64_t amount;
} mcost;

/* A reservation as the model remembers it. */
typedef struct mresv {
    int used, cancelled;
    rl_reservation rv;
    int ki, tier, ok;
    unsigned gen, agen;
    int64_t tta, cost;
    i128 x_after[MAXL];
    unsigned epoch[MAXL];
    int64_t win[MAXL]; /* the window a sliding-window limit counted it in */
} mresv;

enum { M_ALLOW, M_RESERVE, M_WAIT };

int64_t decide(const int *ks, int nk, const mcost *cs, int n, int mode, int64_t lim, int dry,
               xres *x, mresv *rec);
void m_cancel(const mresv *rv);

#endif
