// lease.go - leases: reserve an estimate now, settle the real amount later
// (an LLM call's tokens are known only after it), holding slots of
// concurrency limits meanwhile.
package rl

// #include "shim.h"
import "C"

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// Lease is an estimate charged by BeginLease; Settle or Cancel it. A lease
// neither settled nor cancelled ends at its TTL, settled at its estimate.
type Lease struct {
	l      *Limiter
	key    string
	lease  *C.rl_lease
	Result Result // the admitting decision

	mu    sync.Mutex
	ended bool
}

// BeginLease decides the estimate now, without waiting, and if admitted
// charges it and takes its concurrency slots. A refusal is a
// *RateLimitError (errors.Is ErrRateLimitExceeded).
func (l *Limiter) BeginLease(ctx context.Context, key string, ttl time.Duration, estimate ...Cost) (*Lease, error) {
	const op = "lease"
	if err := start(op, ctx); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		return nil, invalid(op, "lease ttl must be > 0, not %v", ttl)
	}
	var cs cstrings
	defer cs.free()
	ck, err := ckey(op, &cs, key)
	if err != nil {
		return nil, err
	}
	cc, err := cs.costs(op, estimate)
	if err != nil {
		return nil, err
	}
	ls := &Lease{l: l, key: key, lease: new(C.rl_lease)}
	var res C.rl_result
	err = l.call(op, func(h *C.rl, eb *C.char) C.int {
		rc := C.rlgo_lease_begin(h, ck, &cc[0], C.size_t(len(cc)), C.int64_t(ttl), ls.lease, &res, eb)
		var e error
		if ls.Result, e = decided(op, rc, &res, eb); e == nil {
			return C.RL_OK
		}
		return rc
	})
	if err != nil {
		return nil, err
	}
	if !ls.Result.Allowed {
		return nil, refusal(key, ls.Result)
	}
	if ls.lease.id == 0 { // fail-open admission: nothing is held
		ls.ended = true
		return ls, nil
	}
	// Safety net: a lease dropped unsettled is cancelled rather than left
	// holding its slots until its TTL.
	runtime.SetFinalizer(ls, func(ls *Lease) { _ = ls.Cancel() })
	return ls, nil
}

// ID is the lease's id in the store (0 for a fail-open admission).
func (ls *Lease) ID() int64 { return int64(ls.lease.id) }

func (ls *Lease) end(op string, fn func(h *C.rl, eb *C.char) C.int) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.ended {
		return nil
	}
	ls.ended = true
	runtime.SetFinalizer(ls, nil)
	return ls.l.call(op, fn)
}

// Settle charges actual instead of the estimate (resources it does not
// name settle at their estimate) and frees the slots. A second Settle or
// Cancel does nothing.
func (ls *Lease) Settle(actual ...Cost) error {
	var cs cstrings
	defer cs.free()
	var cc []C.rl_cost
	if len(actual) > 0 {
		var err error
		if cc, err = cs.costs("settle", actual); err != nil {
			return err
		}
	}
	return ls.end("settle", func(h *C.rl, eb *C.char) C.int {
		if len(cc) == 0 {
			return C.rlgo_lease_settle(h, ls.lease, nil, 0, eb)
		}
		return C.rlgo_lease_settle(h, ls.lease, &cc[0], C.size_t(len(cc)), eb)
	})
}

// Cancel gives the whole estimate back and frees the slots.
func (ls *Lease) Cancel() error {
	return ls.end("cancel lease", func(h *C.rl, eb *C.char) C.int {
		return C.rlgo_lease_cancel(h, ls.lease, eb)
	})
}
