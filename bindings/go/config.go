// config.go - what a Limiter is opened with: RateLimitConfig (one limit, as
// the Go plan wrote it) and the functional options of NewLimiter, which map
// one to one onto rl_options (default_limits, tiers_file, fail_mode, ...).
package rl

// #include "shim.h"
// #include <stdlib.h>
import "C"

import (
	"fmt"
	"time"
	"unsafe"
)

// Algorithm is how a limit counts (rl_algorithm).
type Algorithm int

// The algorithms of rl.h.
const (
	TokenBucket   Algorithm = C.RL_ALGO_GCRA           // GCRA: a bucket of Burst refilled at Rate per Period
	SlidingWindow Algorithm = C.RL_ALGO_SLIDING_WINDOW // at most Rate per sliding Period
	Concurrent    Algorithm = C.RL_ALGO_CONCURRENT     // at most Rate units in flight, held by leases
)

func (a Algorithm) String() string {
	switch a {
	case TokenBucket:
		return "gcra"
	case SlidingWindow:
		return "sliding_window"
	case Concurrent:
		return "concurrent"
	}
	return fmt.Sprintf("algorithm(%d)", int(a))
}

// RateLimitConfig is one limit: Rate events per Period with bursts of Burst,
// or RateString in the notation of tiers files ("60/min", "100/30s"),
// parsed by librl's rl_parse_rate, instead of Rate and Period.
//
// Path and TiersFile are used by NewTokenBucketLimiter only (NewLimiter
// takes them as its path and WithTiersFile).
type RateLimitConfig struct {
	Rate       int           // events per Period; > 0
	Burst      int           // bucket capacity; 0 means Rate; < 0 is an error
	Period     time.Duration // 0 means one second
	RateString string        // e.g. "60/min"; replaces Rate and Period when set
	Name       string        // the limit's name; "" gets "limitN"
	Resource   string        // what it counts; "" means "requests" ("tokens", ...)
	Algorithm  Algorithm     // TokenBucket (the default), SlidingWindow, Concurrent

	Path      string // the database file ("" : rl_default_path, $RL_DB first)
	TiersFile string // a YAML tiers file loaded at open, or ""
}

// limit checks c and returns it as librl's counts.
func (c RateLimitConfig) limit() (count, periodNs, burst int64, err error) {
	const op = "config"
	if c.Burst < 0 {
		return 0, 0, 0, invalid(op, "negative burst %d", c.Burst)
	}
	if c.RateString != "" {
		cs := C.CString(c.RateString)
		defer C.free(unsafe.Pointer(cs))
		var n, p C.int64_t
		if rc := C.rl_parse_rate(cs, &n, &p); rc != C.RL_OK {
			return 0, 0, 0, invalid(op, "cannot parse rate %q (write it as 60/min, 100/30s, 5/s)", c.RateString)
		}
		count, periodNs = int64(n), int64(p)
	} else {
		if c.Rate <= 0 {
			return 0, 0, 0, invalid(op, "rate must be > 0, not %d", c.Rate)
		}
		if c.Period < 0 {
			return 0, 0, 0, invalid(op, "negative period %v", c.Period)
		}
		count, periodNs = int64(c.Rate), int64(c.Period)
		if periodNs == 0 {
			periodNs = int64(time.Second)
		}
	}
	if c.Algorithm == Concurrent {
		periodNs = 0
	}
	return count, periodNs, int64(c.Burst), nil
}

// settings collects the options of NewLimiter before they become rl_options.
type settings struct {
	limits      []RateLimitConfig
	tiersFile   string
	failOpen    bool
	busyTimeout time.Duration
	busySet     bool
	flags       C.uint
	fileMode    uint32
	durable     bool
	clock       *ManualClock
}

// Option configures NewLimiter. An invalid value makes NewLimiter fail.
type Option func(*settings) error

// WithRateLimit adds a limit to the default limits: those for keys no tier
// covers, stored in the database as the tier "default" (every process on
// the file must agree on them, see ErrDefaultsMismatch). Up to 8 limits.
func WithRateLimit(cfg RateLimitConfig) Option {
	return func(s *settings) error {
		if _, _, _, err := cfg.limit(); err != nil {
			return err
		}
		s.limits = append(s.limits, cfg)
		return nil
	}
}

func withPer(rate, burst int, period time.Duration) Option {
	return WithRateLimit(RateLimitConfig{Rate: rate, Burst: burst, Period: period})
}

// WithRateLimitPerSecond adds rate requests per second, bursts of burst.
func WithRateLimitPerSecond(rate, burst int) Option { return withPer(rate, burst, time.Second) }

// WithRateLimitPerMinute adds rate requests per minute, bursts of burst.
func WithRateLimitPerMinute(rate, burst int) Option { return withPer(rate, burst, time.Minute) }

// WithRateLimitPerHour adds rate requests per hour, bursts of burst.
func WithRateLimitPerHour(rate, burst int) Option { return withPer(rate, burst, time.Hour) }

// WithConcurrencyLimit adds a cap of n units of resource in flight at once
// (RL_CONCURRENT), held by leases and guards until they end.
func WithConcurrencyLimit(name, resource string, n int) Option {
	return WithRateLimit(RateLimitConfig{Name: name, Resource: resource, Rate: n, Algorithm: Concurrent})
}

// WithTiersFile loads a YAML tiers file (docs/tiers.md) at open.
func WithTiersFile(path string) Option {
	return func(s *settings) error { s.tiersFile = path; return nil }
}

// WithFailOpen admits (Result.Degraded) instead of refusing when the store
// fails; the default is fail-closed. A tiers file's fail_mode overrides it.
func WithFailOpen() Option {
	return func(s *settings) error { s.failOpen = true; return nil }
}

// WithBusyTimeout is how long a writer waits for the store's lock before
// ErrBusy (default 5s).
func WithBusyTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 || d/time.Millisecond > 1<<31-1 {
			return invalid("WithBusyTimeout", "busy timeout %v out of range", d)
		}
		s.busyTimeout, s.busySet = d, true
		return nil
	}
}

// WithOverrideDefaults replaces the default limits stored in the database
// with this limiter's instead of failing with ErrDefaultsMismatch; every
// process applies them from its next decision.
func WithOverrideDefaults() Option {
	return func(s *settings) error { s.flags |= C.RL_OPEN_OVERRIDE_DEFAULTS; return nil }
}

// WithReadOnly never writes: deciding calls fail with ErrReadOnly; Stats
// and the listings work (a monitoring user).
func WithReadOnly() Option {
	return func(s *settings) error { s.flags |= C.RL_OPEN_READONLY; return nil }
}

// WithAnyResource admits resources no limit counts, unlimited, instead of
// failing with ErrNoLimit.
func WithAnyResource() Option {
	return func(s *settings) error { s.flags |= C.RL_OPEN_ANY_RESOURCE; return nil }
}

// WithSharedGroup accepts database files of other users of one of our
// groups (RL_OPEN_SHARED_GROUP); use with WithFileMode(0660).
func WithSharedGroup() Option {
	return func(s *settings) error { s.flags |= C.RL_OPEN_SHARED_GROUP; return nil }
}

// WithFileMode is the mode of a new database (default 0600).
func WithFileMode(mode uint32) Option {
	return func(s *settings) error { s.fileMode = mode; return nil }
}

// WithDurableCommits syncs every commit to disk (survives a power loss).
func WithDurableCommits() Option {
	return func(s *settings) error { s.durable = true; return nil }
}

// WithClock makes librl read time from c instead of the system clock, for
// deterministic tests and simulations. It turns group commit off.
func WithClock(c *ManualClock) Option {
	return func(s *settings) error {
		if c == nil || c.p == nil {
			return invalid("WithClock", "nil clock")
		}
		s.clock = c
		return nil
	}
}

// Result is one decision (rl_result).
type Result struct {
	Allowed    bool
	Limit      int64         // the deciding limit's burst
	Remaining  int64         // units it could still admit (math.MaxInt64: unlimited)
	RetryAfter time.Duration // 0 if allowed; math.MaxInt64: never
	ResetAfter time.Duration // until the deciding limit is full again
	LimitName  string        // "cooldown" for a cool-down; "" when no limit applied
	Degraded   bool          // admitted by fail-open without the store
	KeyIndex   int           // which key of a multi-key decision decided
}

func goResult(r *C.rl_result) Result {
	return Result{
		Allowed:    r.allowed != 0,
		Limit:      int64(r.limit),
		Remaining:  int64(r.remaining),
		RetryAfter: time.Duration(r.retry_after_ns),
		ResetAfter: time.Duration(r.reset_after_ns),
		LimitName:  C.GoString(&r.limit_name[0]),
		Degraded:   r.degraded != 0,
		KeyIndex:   int(r.key_index),
	}
}

// Cost is an amount of one resource in a decision.
type Cost struct {
	Resource string // "" means "requests"
	Amount   int64
}

// Requests is a Cost of n "requests".
func Requests(n int64) Cost { return Cost{"requests", n} }

// Tokens is a Cost of n "tokens".
func Tokens(n int64) Cost { return Cost{"tokens", n} }

// Priority of a waiter (rl_priority).
type Priority int

// Interactive waiters are served first; Batch ones yield to them but age.
const (
	Interactive Priority = C.RL_PRIORITY_INTERACTIVE
	Batch       Priority = C.RL_PRIORITY_BATCH
)

// cstrings owns C copies of Go strings until free.
type cstrings []unsafe.Pointer

func (cs *cstrings) str(s string) *C.char {
	p := C.CString(s)
	*cs = append(*cs, unsafe.Pointer(p))
	return p
}

// opt is str, with "" as NULL (librl's "absent").
func (cs *cstrings) opt(s string) *C.char {
	if s == "" {
		return nil
	}
	return cs.str(s)
}

func (cs *cstrings) free() {
	for _, p := range *cs {
		C.free(p)
	}
	*cs = nil
}

// costs builds an rl_cost array; its strings live in cs. The slice is Go
// memory holding only C pointers, which cgo allows passing.
func (cs *cstrings) costs(op string, in []Cost) ([]C.rl_cost, error) {
	if len(in) == 0 || len(in) > C.RL_MAX_LIMITS {
		return nil, invalid(op, "1..%d costs are needed, not %d", C.RL_MAX_LIMITS, len(in))
	}
	out := make([]C.rl_cost, len(in))
	for i, c := range in {
		out[i].resource = cs.opt(c.Resource)
		out[i].amount = C.int64_t(c.Amount)
	}
	return out, nil
}

// keys builds a const char *[] of keys; strings live in cs.
func (cs *cstrings) keys(op string, in []string) ([]*C.char, error) {
	if len(in) == 0 || len(in) > C.RL_MAX_KEYS {
		return nil, invalid(op, "1..%d keys are needed, not %d", C.RL_MAX_KEYS, len(in))
	}
	out := make([]*C.char, len(in))
	for i, k := range in {
		out[i] = cs.str(k)
	}
	return out, nil
}
