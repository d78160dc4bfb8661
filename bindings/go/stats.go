// stats.go - reading what rl knows: one key (Stats), every key (Keys) and
// the totals, for dashboards and exporters.
package rl

// #include "shim.h"
// #include <stdlib.h>
import "C"

import (
	"context"
	"math"
	"time"
	"unsafe"
)

// LimitStats is one limit of a key, as it stands now (rl_limit_stats).
type LimitStats struct {
	Name, Resource string
	Count          int64
	Period         time.Duration
	Burst          int64
	Remaining      int64         // units admissible now
	ResetAfter     time.Duration // until the bucket is full
	RetryAfter     time.Duration // until one unit is admissible (0: now)
	Cooldown       time.Duration // left of a cool-down on this resource
	Debt           int64         // units owed beyond an empty bucket
	InFlight       int64         // concurrency limits: units held by leases
	Algorithm      Algorithm
}

// RateLimitStats is everything known about one key (rl_key_stats), with
// the most constrained "requests" limit summarised in Limit, Remaining,
// RetryAfter and ResetAfter.
type RateLimitStats struct {
	Key        string
	Exists     bool   // false: never seen (counters zero, limits full)
	Tier       string // "default" when the default limits apply
	TierSource string // "none", "assigned", "rule", "default_tier", "options"
	Allowed    int64  // decisions admitted
	Refused    int64  // decisions refused
	Units      int64  // units admitted
	FirstSeen  time.Time
	LastSeen   time.Time
	Cooldown   time.Duration // left of a cool-down on every resource
	Limits     []LimitStats

	Limit      int64         // the summarised limit's burst (0: no limit)
	Remaining  int64         // math.MaxInt64 when no requests limit applies
	RetryAfter time.Duration // until one more request would pass
	ResetAfter time.Duration // until that limit is full again
}

var tierSources = [...]string{"none", "assigned", "rule", "default_tier", "options"}

func clockTime(ns C.int64_t) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns))
}

func goStats(st *C.rl_key_stats) RateLimitStats {
	s := RateLimitStats{
		Key:       C.GoString(&st.key[0]),
		Exists:    st.exists != 0,
		Tier:      C.GoString(&st.tier[0]),
		Allowed:   int64(st.allowed),
		Refused:   int64(st.refused),
		Units:     int64(st.units),
		FirstSeen: clockTime(st.first_seen_ns),
		LastSeen:  clockTime(st.last_seen_ns),
		Cooldown:  time.Duration(st.cooldown_ns),
		Remaining: math.MaxInt64,
	}
	if i := int(st.tier_source); i >= 0 && i < len(tierSources) {
		s.TierSource = tierSources[i]
	}
	n := int(st.n_limits)
	if n > len(st.limits) {
		n = len(st.limits)
	}
	for i := 0; i < n; i++ {
		c := &st.limits[i]
		ls := LimitStats{
			Name: C.GoString(&c.name[0]), Resource: C.GoString(&c.resource[0]),
			Count: int64(c.count), Period: time.Duration(c.period_ns), Burst: int64(c.burst),
			Remaining: int64(c.remaining), ResetAfter: time.Duration(c.reset_after_ns),
			RetryAfter: time.Duration(c.retry_after_ns), Cooldown: time.Duration(c.cooldown_ns),
			Debt: int64(c.debt), InFlight: int64(c.in_flight), Algorithm: Algorithm(c.algorithm),
		}
		s.Limits = append(s.Limits, ls)
		if ls.Resource == "requests" && ls.Remaining < s.Remaining {
			s.Limit, s.Remaining = ls.Burst, ls.Remaining
			if ls.Algorithm != TokenBucket {
				s.Limit = ls.Count
			}
			s.ResetAfter = ls.ResetAfter
		}
		if ls.Resource == "requests" && ls.RetryAfter > s.RetryAfter {
			s.RetryAfter = ls.RetryAfter
		}
	}
	if s.Cooldown > s.RetryAfter {
		s.RetryAfter = s.Cooldown
	}
	return s
}

// Stats reads everything known about key without changing anything.
func (l *Limiter) Stats(ctx context.Context, key string) (RateLimitStats, error) {
	const op = "stats"
	if err := start(op, ctx); err != nil {
		return RateLimitStats{}, err
	}
	var cs cstrings
	defer cs.free()
	ck, err := ckey(op, &cs, key)
	if err != nil {
		return RateLimitStats{}, err
	}
	st := new(C.rl_key_stats) // about 3 KiB: not on the stack of every caller
	if err := l.call(op, func(h *C.rl, eb *C.char) C.int { return C.rlgo_stats(h, ck, st, eb) }); err != nil {
		return RateLimitStats{}, err
	}
	return goStats(st), nil
}

// Totals are the sums over every key of a store.
type Totals struct{ Keys, Allowed, Refused, Units int64 }

// Totals reads the number of keys and the sums of their counters.
func (l *Limiter) Totals(ctx context.Context) (Totals, error) {
	const op = "totals"
	if err := start(op, ctx); err != nil {
		return Totals{}, err
	}
	var t C.rl_totals
	if err := l.call(op, func(h *C.rl, eb *C.char) C.int { return C.rlgo_totals(h, &t, eb) }); err != nil {
		return Totals{}, err
	}
	return Totals{int64(t.keys), int64(t.allowed), int64(t.refused), int64(t.units)}, nil
}

// SortBy orders Keys.
type SortBy int

// Keys' orders: by name, or by a counter or time, largest first.
const (
	SortByKey      SortBy = C.RL_SORT_KEY
	SortByAllowed  SortBy = C.RL_SORT_ALLOWED
	SortByRefused  SortBy = C.RL_SORT_REFUSED
	SortByLastSeen SortBy = C.RL_SORT_LAST_SEEN
)

// Keys lists the stats of the keys matching the glob match ("" : all), in
// order sort, at most limit of them (0: all).
func (l *Limiter) Keys(ctx context.Context, match string, sort SortBy, limit int) ([]RateLimitStats, error) {
	const op = "keys"
	if err := start(op, ctx); err != nil {
		return nil, err
	}
	if limit < 0 {
		return nil, invalid(op, "negative limit %d", limit)
	}
	var cs cstrings
	defer cs.free()
	var cm *C.char
	if match != "" {
		var err error
		if cm, err = ckey(op, &cs, match); err != nil {
			return nil, err
		}
	}
	var arr *C.rl_key_stats
	var n C.size_t
	err := l.call(op, func(h *C.rl, eb *C.char) C.int {
		return C.rlgo_keys_list(h, cm, C.int(sort), C.size_t(limit), &arr, &n, eb)
	})
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(arr))
	out := make([]RateLimitStats, 0, int(n))
	if n > 0 {
		for _, st := range unsafe.Slice(arr, int(n)) {
			st := st
			out = append(out, goStats(&st))
		}
	}
	return out, nil
}
