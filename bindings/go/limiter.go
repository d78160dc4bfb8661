// limiter.go - Limiter, the handle on one rl store: opening and closing it,
// and the deciding calls (Allow, Wait, Reserve, Acquire) of the RateLimiter
// interface and beyond.
//
// Concurrency: one rl handle may be shared by threads (a mutex inside
// librl serialises its calls, and waits sleep without it), so goroutines
// share one Limiter without a Go-side lock on the calls. The RWMutex only
// keeps Close from freeing the handle under a call that is still using it:
// every call holds it for reading, Close for writing.
package rl

// #cgo LDFLAGS: -lrl
// #include "shim.h"
// #include <stdlib.h>
import "C"

import (
	"context"
	"math"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// RateLimiter is the API of the Go agent library's plan; *Limiter has it.
type RateLimiter interface {
	Allow(ctx context.Context, key string) (bool, error)
	Wait(ctx context.Context, key string) error
	Reserve(ctx context.Context, key string) (*Reservation, error)
	Stats(ctx context.Context, key string) (RateLimitStats, error)
	Reset(ctx context.Context, key string) error
	Close() error
}

var _ RateLimiter = (*Limiter)(nil)

const forever = time.Duration(math.MaxInt64)

// Limiter is a handle on an rl store (an SQLite file shared by every
// process that opens it). Safe for concurrent use; Close it when done.
type Limiter struct {
	mu sync.RWMutex // read: a call uses h; write: Close frees it
	h  *C.rl

	wmu     sync.Mutex // guards waits and closing
	waits   map[*C.sig_atomic_t]struct{}
	closing bool

	clock *ManualClock // kept alive while the handle reads it
}

// NewLimiter opens (creating if needed) the database at path, "" for
// librl's default path ($RL_DB, else ~/.local/state/rl/rl.db), ":memory:"
// for a private store.
func NewLimiter(path string, opts ...Option) (*Limiter, error) {
	var s settings
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&s); err != nil {
			return nil, err
		}
	}
	return open(path, &s)
}

// NewTokenBucketLimiter opens cfg.Path with cfg as its one default limit
// (and cfg.TiersFile, if set).
func NewTokenBucketLimiter(cfg RateLimitConfig) (*Limiter, error) {
	opts := []Option{WithRateLimit(cfg)}
	if cfg.TiersFile != "" {
		opts = append(opts, WithTiersFile(cfg.TiersFile))
	}
	return NewLimiter(cfg.Path, opts...)
}

func open(path string, s *settings) (*Limiter, error) {
	const op = "open"
	if len(s.limits) > C.RL_MAX_LIMITS {
		return nil, invalid(op, "at most %d default limits, not %d", C.RL_MAX_LIMITS, len(s.limits))
	}
	var o C.rl_options
	if rc := C.rl_options_init(&o, C.RL_OPTIONS_VERSION); rc != C.RL_OK {
		return nil, newError(op, int(rc), "")
	}
	var cs cstrings
	defer cs.free()
	if n := len(s.limits); n > 0 {
		// rl_options is Go memory, so what it points to must be C memory.
		arr := (*[C.RL_MAX_LIMITS]C.rl_limit)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.rl_limit{}))))
		if arr == nil {
			return nil, newError(op, int(C.RL_ENOMEM), "")
		}
		defer C.free(unsafe.Pointer(arr))
		for i, cfg := range s.limits {
			count, period, burst, err := cfg.limit()
			if err != nil {
				return nil, err
			}
			arr[i].name = cs.opt(cfg.Name)
			arr[i].resource = cs.opt(cfg.Resource)
			arr[i].count = C.int64_t(count)
			arr[i].period_ns = C.int64_t(period)
			arr[i].burst = C.int64_t(burst)
			arr[i].algorithm = C.rl_algorithm(cfg.Algorithm)
		}
		o.default_limits = &arr[0]
		o.n_default_limits = C.size_t(n)
	}
	if s.tiersFile != "" {
		o.tiers_file = cs.str(s.tiersFile)
	}
	if s.failOpen {
		o.fail_mode = C.RL_FAIL_OPEN
	}
	if s.busySet {
		o.busy_timeout_ms = C.int(s.busyTimeout / time.Millisecond)
	}
	if s.fileMode != 0 {
		o.file_mode = C.uint(s.fileMode)
	}
	if s.durable {
		o.durability = C.RL_DURABILITY_FULL
	}
	o.flags = s.flags
	var cpath *C.char
	if path != "" {
		if strings.IndexByte(path, 0) >= 0 {
			return nil, invalid(op, "path holds a NUL byte")
		}
		cpath = cs.str(path)
	}
	var clk *C.int64_t
	if s.clock != nil {
		clk = s.clock.p
	}
	var h *C.rl
	var eb [C.RLGO_ERRLEN]C.char
	if rc := C.rlgo_open(&h, cpath, &o, clk, &eb[0]); rc != C.RL_OK {
		return nil, newError(op, int(rc), C.GoString(&eb[0]))
	}
	l := &Limiter{h: h, waits: map[*C.sig_atomic_t]struct{}{}, clock: s.clock}
	// A safety net only: Close is the contract.
	runtime.SetFinalizer(l, func(l *Limiter) { _ = l.Close() })
	return l, nil
}

// Close cancels waits still running (they return ErrClosed), waits for
// every call to return and closes the handle. Later calls fail with
// ErrClosed; a second Close does nothing.
func (l *Limiter) Close() error {
	l.wmu.Lock()
	l.closing = true
	for f := range l.waits {
		C.rlgo_flag_set(f)
	}
	l.wmu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.h != nil {
		C.rl_close(l.h)
		l.h = nil
		runtime.SetFinalizer(l, nil)
	}
	return nil
}

// call runs fn with the handle, holding it open; fn gets an error buffer
// for the shim. It returns fn's code turned into an error.
func (l *Limiter) call(op string, fn func(h *C.rl, eb *C.char) C.int) error {
	if l == nil {
		return ErrClosed
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.h == nil {
		return ErrClosed
	}
	var eb [C.RLGO_ERRLEN]C.char
	if rc := fn(l.h, &eb[0]); rc != C.RL_OK {
		return newError(op, int(rc), C.GoString(&eb[0]))
	}
	return nil
}

// start checks what every context-taking method checks first.
func start(op string, ctx context.Context) error {
	if ctx == nil {
		return invalid(op, "nil context")
	}
	return ctx.Err()
}

func ckey(op string, cs *cstrings, key string) (*C.char, error) {
	if strings.IndexByte(key, 0) >= 0 {
		return nil, invalid(op, "key holds a NUL byte")
	}
	return cs.str(key), nil
}

// decide turns a deciding call's outcome into (Result, error): refused is
// not an error; a store failure admitted by fail-open is not either.
func decided(op string, rc C.int, res *C.rl_result, msg *C.char) (Result, error) {
	r := goResult(res)
	if rc == C.RL_OK || (r.Degraded && r.Allowed) {
		return r, nil
	}
	return r, newError(op, int(rc), C.GoString(msg))
}

// Allow decides now whether one request of key may pass, and charges it if
// so. A refusal is (false, nil).
func (l *Limiter) Allow(ctx context.Context, key string) (bool, error) {
	r, err := l.AllowN(ctx, key, 1)
	return r.Allowed, err
}

// AllowN decides now for n units of "requests"; Result says by which limit
// and when to retry.
func (l *Limiter) AllowN(ctx context.Context, key string, n int64) (Result, error) {
	const op = "allow"
	if err := start(op, ctx); err != nil {
		return Result{}, err
	}
	var cs cstrings
	defer cs.free()
	ck, err := ckey(op, &cs, key)
	if err != nil {
		return Result{}, err
	}
	var res C.rl_result
	var out Result
	err = l.call(op, func(h *C.rl, eb *C.char) C.int {
		rc := C.rlgo_allow(h, ck, C.int64_t(n), &res, eb)
		var e error
		out, e = decided(op, rc, &res, eb)
		if e == nil {
			return C.RL_OK
		}
		return rc
	})
	return out, err
}

// Acquire decides several resources of one or several keys at once (user
// and global; requests and tokens): all admit and are charged, or none.
// With no costs it is one request.
func (l *Limiter) Acquire(ctx context.Context, keys []string, costs ...Cost) (Result, error) {
	const op = "acquire"
	if err := start(op, ctx); err != nil {
		return Result{}, err
	}
	if len(costs) == 0 {
		costs = []Cost{Requests(1)}
	}
	var cs cstrings
	defer cs.free()
	for _, k := range keys {
		if strings.IndexByte(k, 0) >= 0 {
			return Result{}, invalid(op, "key holds a NUL byte")
		}
	}
	ck, err := cs.keys(op, keys)
	if err != nil {
		return Result{}, err
	}
	cc, err := cs.costs(op, costs)
	if err != nil {
		return Result{}, err
	}
	var res C.rl_result
	var out Result
	err = l.call(op, func(h *C.rl, eb *C.char) C.int {
		rc := C.rlgo_acquire(h, &ck[0], C.size_t(len(ck)), &cc[0], C.size_t(len(cc)), &res, eb)
		var e error
		if out, e = decided(op, rc, &res, eb); e == nil {
			return C.RL_OK
		}
		return rc
	})
	return out, err
}

// timeoutOf is the wait librl may accept: until ctx's deadline, else for
// ever.
func timeoutOf(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return forever
	}
	if d := time.Until(dl); d > 0 {
		return d
	}
	return 0
}

// watch registers a cancel flag of C memory (rl_wait reads it from another
// thread, and cgo forbids handing C a Go pointer it keeps using) and sets it
// when ctx is cancelled. A deadline does not set it: librl already refused
// any wait longer than the deadline, so a wait under way ends by it.
// The returned stop must be called once the C call returned.
func (l *Limiter) watch(ctx context.Context) (*C.sig_atomic_t, func(), error) {
	f := C.rlgo_flag_new()
	if f == nil {
		return nil, nil, newError("wait", int(C.RL_ENOMEM), "")
	}
	l.wmu.Lock()
	if l.closing {
		l.wmu.Unlock()
		C.free(unsafe.Pointer(f))
		return nil, nil, ErrClosed
	}
	l.waits[f] = struct{}{}
	l.wmu.Unlock()
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-ctx.Done():
			if ctx.Err() != context.DeadlineExceeded {
				C.rlgo_flag_set(f)
			}
		case <-done:
		}
	}()
	stop := func() {
		close(done)
		<-exited // the goroutine must not touch f once it is freed
		l.wmu.Lock()
		delete(l.waits, f)
		l.wmu.Unlock()
		C.free(unsafe.Pointer(f))
	}
	return f, stop, nil
}

// waitError maps a wait's RL_ETIMEOUT and RL_ECANCELED: the first is a
// refusal (the deadline cannot be met), the second the context's error, or
// ErrClosed when Close cancelled it.
func waitError(ctx context.Context, key string, rc C.int, res Result, err error) error {
	switch rc {
	case C.RL_ETIMEOUT, C.RL_ELIMITED:
		return refusal(key, res)
	case C.RL_ECANCELED:
		if e := ctx.Err(); e != nil {
			return e
		}
		return ErrClosed
	}
	return err
}

// Wait blocks until one request of key is admitted. With a context
// deadline that admission cannot meet it fails at once, consuming
// nothing, with a *RateLimitError (errors.Is ErrRateLimitExceeded); when
// ctx is cancelled meanwhile it returns ctx.Err() at once (rl_wait_wake) and
// the units it had booked go back.
func (l *Limiter) Wait(ctx context.Context, key string) error {
	_, err := l.WaitN(ctx, key, Interactive, Requests(1))
	return err
}

// WaitN is Wait for several resources of one key, with a priority
// (rl_wait_ex).
func (l *Limiter) WaitN(ctx context.Context, key string, prio Priority, costs ...Cost) (Result, error) {
	const op = "wait"
	if err := start(op, ctx); err != nil {
		return Result{}, err
	}
	var cs cstrings
	defer cs.free()
	ck, err := ckey(op, &cs, key)
	if err != nil {
		return Result{}, err
	}
	cc, err := cs.costs(op, costs)
	if err != nil {
		return Result{}, err
	}
	timeout := timeoutOf(ctx)
	flag, stop, err := l.watch(ctx)
	if err != nil {
		return Result{}, err
	}
	var res C.rl_result
	var rc C.int
	var out Result
	err = l.call(op, func(h *C.rl, eb *C.char) C.int {
		rc = C.rlgo_wait_ex(h, ck, &cc[0], C.size_t(len(cc)), C.int(prio), C.int64_t(timeout),
			flag, &res, eb)
		var e error
		if out, e = decided(op, rc, &res, eb); e == nil {
			rc = C.RL_OK
		}
		return rc
	})
	stop()
	if err != nil {
		return out, waitError(ctx, key, rc, out, err)
	}
	return out, nil
}

// Reservation is units booked by Reserve: act after Delay, or Cancel.
type Reservation struct {
	l     *Limiter
	rv    *C.rl_reservation
	ok    bool
	delay time.Duration
	made  time.Time // when delay was measured (monotonic)
	mu    sync.Mutex
}

// OK says whether the units were booked (false: they would have come later
// than the context's deadline allowed; nothing was charged).
func (r *Reservation) OK() bool { return r.ok }

// Delay is how long from now the caller must wait before acting (as
// golang.org/x/time/rate's); for a reservation that is not OK, how long it
// would have been when it was made.
func (r *Reservation) Delay() time.Duration {
	if !r.ok || r.delay == forever {
		return r.delay
	}
	if d := r.delay - time.Since(r.made); d > 0 {
		return d
	}
	return 0
}

// Cancel gives back the reservation's units as far as no later decision
// built on them; it does nothing once its time to act has passed, or a
// second time.
func (r *Reservation) Cancel() error {
	if !r.ok {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.l.call("cancel", func(h *C.rl, eb *C.char) C.int {
		return C.rlgo_cancel(h, r.rv, eb)
	})
}

// Reserve books one request of key now and says when to act. The longest
// delay accepted is until ctx's deadline (none: any).
func (l *Limiter) Reserve(ctx context.Context, key string) (*Reservation, error) {
	if err := start("reserve", ctx); err != nil {
		return nil, err
	}
	return l.ReserveN(ctx, key, 1, timeoutOf(ctx))
}

// ReserveN books n requests if they come free within maxDelay.
func (l *Limiter) ReserveN(ctx context.Context, key string, n int64, maxDelay time.Duration) (*Reservation, error) {
	const op = "reserve"
	if err := start(op, ctx); err != nil {
		return nil, err
	}
	var cs cstrings
	defer cs.free()
	ck, err := ckey(op, &cs, key)
	if err != nil {
		return nil, err
	}
	r := &Reservation{l: l, rv: new(C.rl_reservation)}
	err = l.call(op, func(h *C.rl, eb *C.char) C.int {
		rc := C.rlgo_reserve(h, ck, C.int64_t(n), C.int64_t(maxDelay), r.rv, eb)
		r.made = time.Now()
		return rc
	})
	if err != nil {
		return nil, err
	}
	r.ok = r.rv.ok != 0
	r.delay = time.Duration(r.rv.delay_ns)
	return r, nil
}

// Penalize cools key down for d in every process: resource ("" : every
// resource) is refused with limit "cooldown" (a provider's 429). d = 0
// lifts it.
func (l *Limiter) Penalize(ctx context.Context, key, resource string, d time.Duration) error {
	const op = "penalize"
	if err := start(op, ctx); err != nil {
		return err
	}
	var cs cstrings
	defer cs.free()
	ck, err := ckey(op, &cs, key)
	if err != nil {
		return err
	}
	cr := cs.opt(resource)
	return l.call(op, func(h *C.rl, eb *C.char) C.int {
		return C.rlgo_penalize(h, ck, cr, C.int64_t(d), eb)
	})
}

// Reset forgets key's buckets, cool-downs and counters (ErrNotFound for a
// key never seen).
func (l *Limiter) Reset(ctx context.Context, key string) error {
	const op = "reset"
	if err := start(op, ctx); err != nil {
		return err
	}
	var cs cstrings
	defer cs.free()
	ck, err := ckey(op, &cs, key)
	if err != nil {
		return err
	}
	return l.call(op, func(h *C.rl, eb *C.char) C.int { return C.rlgo_reset(h, ck, eb) })
}

// LoadTiers replaces every tier and rule from a YAML tiers file.
func (l *Limiter) LoadTiers(ctx context.Context, path string) error {
	const op = "load tiers"
	if err := start(op, ctx); err != nil {
		return err
	}
	var cs cstrings
	defer cs.free()
	cp, err := ckey(op, &cs, path)
	if err != nil {
		return err
	}
	return l.call(op, func(h *C.rl, eb *C.char) C.int { return C.rlgo_load_tiers(h, cp, eb) })
}

// AssignTier gives key the tier whatever the rules say; "" removes the
// assignment.
func (l *Limiter) AssignTier(ctx context.Context, key, tier string) error {
	const op = "assign"
	if err := start(op, ctx); err != nil {
		return err
	}
	var cs cstrings
	defer cs.free()
	ck, err := ckey(op, &cs, key)
	if err != nil {
		return err
	}
	ct := cs.opt(tier)
	return l.call(op, func(h *C.rl, eb *C.char) C.int { return C.rlgo_key_assign(h, ck, ct, eb) })
}
