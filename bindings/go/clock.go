// clock.go - ManualClock, an injected clock (rl_options.clock) that moves
// only when told to, for tests and simulations whose numbers must be exact.
package rl

// #include "shim.h"
// #include <stdlib.h>
import "C"

import (
	"runtime"
	"time"
	"unsafe"
)

// ManualClock is a clock that librl reads (WithClock) and the program sets.
// Its value lives in C memory because librl reads it from its own calls;
// it is freed when the clock is garbage collected, which cannot happen
// while a Limiter opened with it is alive (the Limiter references it).
type ManualClock struct{ p *C.int64_t }

// NewManualClock starts a clock at t.
func NewManualClock(t time.Time) *ManualClock {
	p := C.rlgo_clock_new(C.int64_t(t.UnixNano()))
	if p == nil {
		panic("rl: out of memory")
	}
	c := &ManualClock{p: p}
	runtime.SetFinalizer(c, func(c *ManualClock) { C.free(unsafe.Pointer(c.p)) })
	return c
}

// Now is the clock's time.
func (c *ManualClock) Now() time.Time {
	defer runtime.KeepAlive(c)
	return time.Unix(0, int64(C.rlgo_clock_load(c.p)))
}

// Set moves the clock to t (backwards too: librl grants nothing for it).
func (c *ManualClock) Set(t time.Time) {
	C.rlgo_clock_store(c.p, C.int64_t(t.UnixNano()))
	runtime.KeepAlive(c)
}

// Advance moves the clock d forward.
func (c *ManualClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }
