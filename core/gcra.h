/*
 * gcra.h - the Generic Cell Rate Algorithm as pure functions of
 * (state, limit, now, cost).
 *
 * State is one theoretical arrival time (TAT) per key and limit. To keep
 * rates such as 3/s exact, time is counted in units of 1/count nanosecond:
 * TAT = tat + rem/count with 0 <= rem < count. In those units one unit of
 * cost costs exactly period_ns, and the bucket holds burst * period_ns, so no
 * rounding ever admits more than burst + count * elapsed / period. Durations
 * reported back to callers are rounded up to whole nanoseconds, so a caller
 * who retries after retry_after_ns is admitted.
 *
 * Guarantees: no floating point; every intermediate fits in 128 bits for
 * limits that rl_ldef_check accepts; a clock that goes backwards never grants
 * units (TAT never moves back); no instant is special (a clock before the
 * epoch works as well as after it). Near the end of int64 time a TAT that
 * would pass INT64_MAX cannot be stored: such a request is refused with
 * delay_ns = INT64_MAX ("never"), and a state pushed there by other means
 * (rescaling, debt) saturates at INT64_MAX, which refuses everything.
 */
#ifndef RL_GCRA_H
#define RL_GCRA_H

#include "policy.h"

typedef struct rl_tat {
    int64_t ns;  /* whole nanoseconds */
    int64_t rem; /* extra 1/count ns, 0 <= rem < count */
} rl_tat;

typedef struct rl_gcra_out {
    int ok;                 /* admitted now, or within max_delay_ns */
    rl_tat tat;             /* the new state if ok, else unchanged */
    int64_t delay_ns;       /* wait before acting (ok) or needed (!ok) */
    int64_t remaining;      /* units admissible right after this decision */
    int64_t reset_after_ns; /* until the bucket is full again */
} rl_gcra_out;

/* Decides `cost` units on limit d at `now`, allowing the caller to act up to
 * max_delay_ns later (0 for Allow). cost must be 0..d->burst. */
void rl_gcra_decide(const rl_ldef *d, rl_tat tat, int64_t now, int64_t cost, int64_t max_delay_ns,
                    rl_gcra_out *out);

/* What the key's bucket looks like at now, without consuming. */
void rl_gcra_peek(const rl_ldef *d, rl_tat tat, int64_t now, int64_t *remaining,
                  int64_t *reset_after_ns, int64_t *retry_after_ns);

/* Units owed beyond an empty bucket (settled leases that used more than
 * they reserved), rounded up; 0 when none. */
int64_t rl_gcra_debt(const rl_ldef *d, rl_tat tat, int64_t now);

/* Returns a reservation of `cost` whose TAT right after it was `after`:
 * only the part no later decision has built on is given back (as Go's
 * Reservation.Cancel). Returns the new TAT. */
rl_tat rl_gcra_cancel(const rl_ldef *d, rl_tat cur, rl_tat after, int64_t cost);

/* Charges (units > 0: debt, no admission check) or refunds (units < 0) a
 * number of units on an existing state: settling a lease. */
rl_tat rl_gcra_adjust(const rl_ldef *d, rl_tat tat, int64_t units);

/* Re-expresses state kept under limit `old` for limit `nw`, keeping the
 * fraction of the bucket that is spent (and any debt beyond it). */
rl_tat rl_gcra_rescale(const rl_ldef *old, const rl_ldef *nw, rl_tat tat, int64_t now);

#endif
