/*
 * window.h - the sliding window counter (Cloudflare's) as pure functions of
 * (state, limit, now, cost), next to gcra.h.
 *
 * State is the current fixed window [start, start + period) with the units
 * counted in it (cur) and the units of the window before it (prev). Windows
 * are aligned to multiples of period since the epoch when a key starts
 * afresh, and then follow one another. At time now, with e = now - start,
 *
 *     estimate = ceil(prev * (period - e) / period) + cur
 *
 * and a request of cost c is admitted iff estimate + c <= count. The
 * weighted part is rounded up, so no rounding ever admits more than the
 * exact estimate would. A limit's burst is always its count.
 *
 * Durations reported back are exact and rounded up to whole nanoseconds: a
 * caller who retries after retry_after_ns is admitted (the estimate never
 * grows while nobody asks), one who retries a nanosecond earlier is not.
 *
 * Guarantees: no floating point; every intermediate fits in 128 bits for
 * limits that rl_ldef_check accepts and states that rl_state_decode accepts
 * (cur and prev at most RL_WINDOW_UNITS_MAX); a clock that goes backwards
 * never grants units (a time before start is weighed as e = 0, the largest
 * estimate of the window, and start never moves back).
 */
#ifndef RL_WINDOW_H
#define RL_WINDOW_H

#include "policy.h"

/* Units a window may count: lease overruns (debt) may take cur past count,
 * never past this. */
#define RL_WINDOW_UNITS_MAX (2 * RL_COUNT_MAX)

typedef struct rl_window {
    int64_t start; /* ns: the current fixed window begins here */
    int64_t cur;   /* units counted in [start, start + period) */
    int64_t prev;  /* units counted in [start - period, start) */
} rl_window;

typedef struct rl_window_out {
    int ok;                 /* admitted now, or within max_delay_ns */
    rl_window w;            /* the new state if ok, else unchanged */
    int64_t delay_ns;       /* wait before acting (ok) or needed (!ok) */
    int64_t remaining;      /* units admissible right after this decision */
    int64_t reset_after_ns; /* until the estimate is 0 with no more requests */
} rl_window_out;

/* The state of a key never seen: the window that holds now, empty. */
rl_window rl_window_fresh(const rl_ldef *d, int64_t now);

/* The estimate at now (rounded up as above); never negative. */
int64_t rl_window_estimate(const rl_ldef *d, rl_window w, int64_t now);

/* Decides `cost` units at `now`, allowing the caller to act up to
 * max_delay_ns later (0 for Allow). cost must be 0..d->count; cost 0 is a
 * check: nothing is counted, and it is admitted iff estimate <= count (not
 * while reservations or a lease overrun hold the window over full). A
 * request admitted with a delay is counted in the window of the time it
 * may act. */
void rl_window_decide(const rl_ldef *d, rl_window w, int64_t now, int64_t cost,
                      int64_t max_delay_ns, rl_window_out *out);

/* As rl_window_decide for a decision admitted to act delay_ns from now,
 * when something else (another limit, a cool-down) sets that delay:
 * delay_ns must be at least the delay rl_window_decide gave, where cost fits
 * (the estimate only falls while nobody asks). cost is counted in the
 * window of now + delay_ns; out->ok is 1. */
void rl_window_decide_at(const rl_ldef *d, rl_window w, int64_t now, int64_t cost, int64_t delay_ns,
                         rl_window_out *out);

/* What the key's window looks like at now, without consuming;
 * retry_after_ns is for one unit. */
void rl_window_peek(const rl_ldef *d, rl_window w, int64_t now, int64_t *remaining,
                    int64_t *reset_after_ns, int64_t *retry_after_ns);

/* Units of the estimate beyond count (lease overruns); 0 when none. */
int64_t rl_window_debt(const rl_ldef *d, rl_window w, int64_t now);

/* Returns a reservation of `cost` that was counted in the window beginning
 * at charged_start. Nothing comes back once the key's window has moved past
 * it. Returns the new state. */
rl_window rl_window_cancel(const rl_ldef *d, rl_window w, int64_t charged_start, int64_t cost,
                           int64_t now);

/* Charges (units > 0: debt, no admission check) or refunds (units < 0)
 * units on a state at now: settling a lease that was charged at time
 * charged_at. */
rl_window rl_window_adjust(const rl_ldef *d, rl_window w, int64_t now, int64_t units,
                           int64_t charged_at);

/* Re-expresses state kept under limit `old` for limit `nw` at now, keeping
 * the fraction of count that is spent. */
rl_window rl_window_rescale(const rl_ldef *old, const rl_ldef *nw, rl_window w, int64_t now);

/* A window state holding `used` units of nw (spent elsewhere: a GCRA
 * bucket of the same limit before its algorithm changed), and back. */
rl_window rl_window_from_used(const rl_ldef *nw, int64_t used, int64_t now);

#endif
