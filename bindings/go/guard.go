// guard.go - Guard, the one call an agent wraps around every model call
// (rl_guard_begin / rl_guard_end): wait until every limit of the user and
// the shared account admits the call's estimate, run it, settle the real
// usage, and feed the provider's rate-limit headers into the account's
// cool-down shared by every process.
package rl

// #include "shim.h"
import "C"

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// Response is a model's answer as the Guard sees it.
type Response struct {
	Content string
	// Usage is what the call really used ({"tokens", 900}); resources it
	// does not name settle at their estimate; nil settles all at it.
	Usage []Cost
	// Header is the provider's response headers: rate-limit fields and
	// Retry-After become shared cool-downs.
	Header http.Header
	// RateLimit is filled by the Guard after settling: the limit with least
	// room left (or the cool-down in force).
	RateLimit *RateLimitInfo
	// Metadata gets RateLimit's fields as strings ("ratelimit.remaining",
	// "ratelimit.reset_ms", "ratelimit.retry_after_ms", "ratelimit.limit",
	// "ratelimit.key") for code that forwards metadata as it is.
	Metadata map[string]string
}

// RateLimitInfo is where a guarded call left its limits.
type RateLimitInfo struct {
	Key        string        // the key of that limit
	Limit      string        // its name; "cooldown" while a cool-down stops the key
	Burst      int64         // its capacity
	Remaining  int64         // units left now (math.MaxInt64: unlimited)
	ResetAfter time.Duration // until it is full again
	RetryAfter time.Duration // 0 unless a cool-down is in force
	Degraded   bool          // admitted by fail-open without the store
}

// Model is what a Guard wraps, and what it is: a client of a rate-limited
// model service.
type Model interface {
	Ask(ctx context.Context, prompt string) (Response, error)
	Stream(ctx context.Context, prompt string, onChunk func(chunk string) error) (Response, error)
}

// ModelFuncs makes a Model of two functions.
type ModelFuncs struct {
	AskFunc    func(ctx context.Context, prompt string) (Response, error)
	StreamFunc func(ctx context.Context, prompt string, onChunk func(string) error) (Response, error)
}

// Ask calls AskFunc.
func (m ModelFuncs) Ask(ctx context.Context, prompt string) (Response, error) {
	if m.AskFunc == nil {
		return Response{}, errors.New("rl: ModelFuncs has no AskFunc")
	}
	return m.AskFunc(ctx, prompt)
}

// Stream calls StreamFunc.
func (m ModelFuncs) Stream(ctx context.Context, prompt string, onChunk func(string) error) (Response, error) {
	if m.StreamFunc == nil {
		return Response{}, errors.New("rl: ModelFuncs has no StreamFunc")
	}
	return m.StreamFunc(ctx, prompt, onChunk)
}

// ProviderError is a model call the service answered with an error status
// (a 429 above all): returned by a Model, it makes the Guard end the call
// (the service counted it) with its headers, instead of cancelling it.
type ProviderError struct {
	StatusCode int
	Header     http.Header
	Err        error
}

func (e *ProviderError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("provider answered %d: %v", e.StatusCode, e.Err)
	}
	return fmt.Sprintf("provider answered %d", e.StatusCode)
}

func (e *ProviderError) Unwrap() error { return e.Err }

// GuardConfig says what a guarded call counts against.
type GuardConfig struct {
	// Account is the shared key every call also counts against
	// ("provider:openai"); it takes the provider's cool-downs. "" : the
	// caller's key only.
	Account string
	// Estimate is one call's expected cost: Requests(1), Tokens(1500),
	// {"streams", 1} for a concurrency limit. Empty: one request.
	Estimate []Cost
	Priority Priority
	// MaxWait bounds the wait for admission besides ctx's deadline: 0 waits
	// as long as ctx allows; < 0 does not wait (refused at once).
	MaxWait time.Duration
	// TTL: a call not ended by then is settled at its estimate and frees
	// its slots (0: librl's 10 minutes).
	TTL time.Duration
}

// Guard is a Model that rate-limits another. The caller's key comes from
// the context (KeyFromContext: WithUser, WithIP, else "global").
type Guard struct {
	l     *Limiter
	model Model
	cfg   GuardConfig
}

var _ Model = (*Guard)(nil)

// NewGuard wraps model with l's limits.
func NewGuard(l *Limiter, model Model, cfg GuardConfig) (*Guard, error) {
	if l == nil || model == nil {
		return nil, invalid("guard", "a limiter and a model are needed")
	}
	if len(cfg.Estimate) == 0 {
		cfg.Estimate = []Cost{Requests(1)}
	}
	if len(cfg.Estimate) > C.RL_MAX_LIMITS {
		return nil, invalid("guard", "at most %d resources in an estimate", C.RL_MAX_LIMITS)
	}
	if cfg.TTL < 0 {
		return nil, invalid("guard", "negative TTL %v", cfg.TTL)
	}
	cfg.Estimate = append([]Cost(nil), cfg.Estimate...)
	return &Guard{l: l, model: model, cfg: cfg}, nil
}

// GuardedCall is an admitted call: End it when the service answered, Cancel
// it when the service never saw it.
type GuardedCall struct {
	l     *Limiter
	keys  []string
	g     *C.rl_guard
	Admit Result // the admitting decision
	mu    sync.Mutex
	ended bool
}

// Begin waits until the estimate passes every limit of the caller's key
// and the account, and takes their leases. A refusal (a limit, a
// cool-down, or a wait that cannot fit the deadline or MaxWait) is a
// *RateLimitError; ctx cancelled while waiting gives ctx.Err().
func (g *Guard) Begin(ctx context.Context) (*GuardedCall, error) {
	const op = "guard"
	if err := start(op, ctx); err != nil {
		return nil, err
	}
	key, err := KeyFromContext(ctx)
	if err != nil {
		return nil, err
	}
	keys := []string{key}
	if g.cfg.Account != "" && g.cfg.Account != key {
		keys = append(keys, g.cfg.Account)
	}
	var cs cstrings
	defer cs.free()
	ck, err := cs.keys(op, keys)
	if err != nil {
		return nil, err
	}
	cc, err := cs.costs(op, g.cfg.Estimate)
	if err != nil {
		return nil, err
	}
	timeout := timeoutOf(ctx)
	switch {
	case g.cfg.MaxWait < 0:
		timeout = 0
	case g.cfg.MaxWait > 0 && g.cfg.MaxWait < timeout:
		timeout = g.cfg.MaxWait
	}
	flag, stop, err := g.l.watch(ctx)
	if err != nil {
		return nil, err
	}
	call := &GuardedCall{l: g.l, keys: keys, g: new(C.rl_guard)}
	var res C.rl_result
	var rc C.int
	err = g.l.call(op, func(h *C.rl, eb *C.char) C.int {
		rc = C.rlgo_guard_begin(h, &ck[0], C.size_t(len(ck)), &cc[0], C.size_t(len(cc)),
			C.int(g.cfg.Priority), C.int64_t(timeout), C.int64_t(g.cfg.TTL), -1, flag, call.g, &res, eb)
		var e error
		if call.Admit, e = decided(op, rc, &res, eb); e == nil {
			rc = C.RL_OK
		}
		return rc
	})
	stop()
	if err != nil {
		k := ""
		if i := call.Admit.KeyIndex; i >= 0 && i < len(keys) {
			k = keys[i]
		}
		return nil, waitError(ctx, k, rc, call.Admit, err)
	}
	runtime.SetFinalizer(call, func(c *GuardedCall) { _ = c.Cancel() }) // safety net
	return call, nil
}

// End settles a call the service answered (a 429 too): usage (nil: the
// estimate) on every key, headers into the account's cool-down, slots
// freed. It returns where the limits stand afterwards.
func (c *GuardedCall) End(usage []Cost, header http.Header) (RateLimitInfo, error) {
	const op = "guard end"
	var cs cstrings
	defer cs.free()
	var cc []C.rl_cost
	if len(usage) > 0 {
		var err error
		if cc, err = cs.costs(op, usage); err != nil {
			c.Cancel() // an invalid usage must not leave the leases held
			return RateLimitInfo{}, err
		}
	}
	names, values, err := cheaders(&cs, header)
	if err != nil {
		names, values = nil, nil // the usage is still settled
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return RateLimitInfo{}, invalid(op, "the call was already ended or cancelled")
	}
	c.ended = true
	runtime.SetFinalizer(c, nil)
	var res C.rl_result
	e := c.l.call(op, func(h *C.rl, eb *C.char) C.int {
		var cp *C.rl_cost
		if len(cc) > 0 {
			cp = &cc[0]
		}
		var np, vp **C.char
		if len(names) > 0 {
			np, vp = &names[0], &values[0]
		}
		rc := C.rlgo_guard_end(h, c.g, cp, C.size_t(len(cc)), np, vp, C.size_t(len(names)), &res, eb)
		if rc == C.RL_EINVAL && c.g.n > 0 {
			// nothing was done (bad headers): settle without them
			rc = C.rlgo_guard_end(h, c.g, cp, C.size_t(len(cc)), nil, nil, 0, &res, eb)
		}
		return rc
	})
	r := goResult(&res)
	info := RateLimitInfo{Limit: r.LimitName, Burst: r.Limit, Remaining: r.Remaining,
		ResetAfter: r.ResetAfter, RetryAfter: r.RetryAfter, Degraded: c.Admit.Degraded}
	if r.KeyIndex >= 0 && r.KeyIndex < len(c.keys) {
		info.Key = c.keys[r.KeyIndex]
	}
	if e == nil {
		e = err
	}
	return info, e
}

// Cancel gives the whole estimate back on every key and frees the slots;
// after End, or a second time, it does nothing.
func (c *GuardedCall) Cancel() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return nil
	}
	c.ended = true
	runtime.SetFinalizer(c, nil)
	return c.l.call("guard cancel", func(h *C.rl, eb *C.char) C.int {
		return C.rlgo_guard_cancel(h, c.g, eb)
	})
}

// Ask runs the wrapped model's Ask under the guard.
func (g *Guard) Ask(ctx context.Context, prompt string) (Response, error) {
	return g.run(ctx, func(ctx context.Context) (Response, bool, error) {
		resp, err := g.model.Ask(ctx, prompt)
		return resp, false, err
	})
}

// Stream runs the wrapped model's Stream under the guard; chunks go to
// onChunk as they come. A stream that failed after its first chunk was
// seen by the service, so it is ended (settled), not cancelled.
func (g *Guard) Stream(ctx context.Context, prompt string, onChunk func(string) error) (Response, error) {
	return g.run(ctx, func(ctx context.Context) (Response, bool, error) {
		seen := false
		resp, err := g.model.Stream(ctx, prompt, func(s string) error {
			seen = true
			if onChunk == nil {
				return nil
			}
			return onChunk(s)
		})
		return resp, seen, err
	})
}

func (g *Guard) run(ctx context.Context, do func(context.Context) (Response, bool, error)) (Response, error) {
	call, err := g.Begin(ctx)
	if err != nil {
		return Response{}, err
	}
	defer call.Cancel() // a panic in the model: give everything back
	resp, seen, err := do(ctx)
	header, usage := resp.Header, resp.Usage
	var pe *ProviderError
	if err != nil {
		if !errors.As(err, &pe) && !seen {
			if cerr := call.Cancel(); cerr != nil {
				return resp, withCleanup(err, cerr)
			}
			return resp, err
		}
		if pe != nil {
			// the service counted the request: the estimate stands
			usage = nil
			if pe.Header != nil {
				header = pe.Header
			}
		}
	}
	info, eerr := call.End(usage, header)
	resp.RateLimit = &info
	if resp.Metadata == nil {
		resp.Metadata = map[string]string{}
	}
	resp.Metadata["ratelimit.key"] = info.Key
	resp.Metadata["ratelimit.limit"] = info.Limit
	resp.Metadata["ratelimit.remaining"] = strconv.FormatInt(info.Remaining, 10)
	resp.Metadata["ratelimit.reset_ms"] = strconv.FormatInt(info.ResetAfter.Milliseconds(), 10)
	resp.Metadata["ratelimit.retry_after_ms"] = strconv.FormatInt(info.RetryAfter.Milliseconds(), 10)
	if err != nil {
		if eerr != nil {
			return resp, withCleanup(err, eerr)
		}
		return resp, err
	}
	return resp, eerr
}
