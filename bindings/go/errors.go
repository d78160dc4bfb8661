// errors.go - how librl's return codes and refusals become Go errors.
//
// Every RL_E* code has a sentinel (ErrBusy, ErrDefaultsMismatch, ...) so
// that callers test with errors.Is; the *Error that carries it also keeps
// the code and rl_errmsg's one-line reason. A refusal by a limit is not a
// librl error but a *RateLimitError, which errors.Is matches against
// ErrRateLimitExceeded.
package rl

// #include "shim.h"
import "C"

import (
	"errors"
	"fmt"
	"time"
)

// ErrRateLimitExceeded is what every refusal by a limit matches (errors.Is):
// Wait whose context deadline cannot be met, a Guard or lease refused, a
// Reserve that would wait too long. The concrete error is *RateLimitError.
var ErrRateLimitExceeded = errors.New("rate limit exceeded")

// Sentinels of librl's error codes (rl_error_code in rl.h).
var (
	ErrInvalidArgument  = errors.New("invalid argument")                           // RL_EINVAL
	ErrNoMemory         = errors.New("out of memory")                              // RL_ENOMEM
	ErrTooBig           = errors.New("cost exceeds a limit's burst")               // RL_ETOOBIG
	ErrBusy             = errors.New("store busy")                                 // RL_EBUSY
	ErrStore            = errors.New("store failure")                              // RL_ESTORE
	ErrReadOnly         = errors.New("store is read-only")                         // RL_EREADONLY
	ErrFull             = errors.New("store is full")                              // RL_EFULL
	ErrCorrupt          = errors.New("store is corrupt")                           // RL_ECORRUPT
	ErrVersion          = errors.New("store schema is too new")                    // RL_EVERSION
	ErrConfig           = errors.New("invalid configuration")                      // RL_ECONFIG
	ErrNotFound         = errors.New("not found")                                  // RL_ENOTFOUND
	ErrTimeout          = errors.New("timed out")                                  // RL_ETIMEOUT (outside waits)
	ErrCanceled         = errors.New("canceled")                                   // RL_ECANCELED (outside waits)
	ErrNoLimit          = errors.New("no limit applies")                           // RL_ENOLIMIT
	ErrConnect          = errors.New("store unreachable")                          // RL_ECONNECT
	ErrAuth             = errors.New("store refused credentials")                  // RL_EAUTH
	ErrPermission       = errors.New("unsafe file ownership or mode")              // RL_EPERM
	ErrDefaultsMismatch = errors.New("default limits differ from the stored ones") // RL_EMISMATCH
	// ErrClosed: the Limiter was closed (before or during the call).
	ErrClosed = errors.New("rl: limiter is closed")
)

var codeErrs = map[int]error{
	int(C.RL_EINVAL): ErrInvalidArgument, int(C.RL_ENOMEM): ErrNoMemory,
	int(C.RL_ETOOBIG): ErrTooBig, int(C.RL_EBUSY): ErrBusy, int(C.RL_ESTORE): ErrStore,
	int(C.RL_EREADONLY): ErrReadOnly, int(C.RL_EFULL): ErrFull, int(C.RL_ECORRUPT): ErrCorrupt,
	int(C.RL_EVERSION): ErrVersion, int(C.RL_ECONFIG): ErrConfig,
	int(C.RL_ENOTFOUND): ErrNotFound, int(C.RL_ETIMEOUT): ErrTimeout,
	int(C.RL_ECANCELED): ErrCanceled, int(C.RL_ENOLIMIT): ErrNoLimit,
	int(C.RL_ECONNECT): ErrConnect, int(C.RL_EAUTH): ErrAuth, int(C.RL_EPERM): ErrPermission,
	int(C.RL_ELIMITED): ErrRateLimitExceeded, int(C.RL_EMISMATCH): ErrDefaultsMismatch,
}

// Error is a librl error: Code is the RL_E* value, Msg rl_errmsg's line
// (rl_strerror's text when there was no handle to ask), Op the Go method.
// It unwraps to the code's sentinel.
type Error struct {
	Op   string
	Code int
	Msg  string
}

func (e *Error) Error() string {
	if e.Op == "" {
		return "rl: " + e.Msg
	}
	return "rl: " + e.Op + ": " + e.Msg
}

// Unwrap gives the sentinel of e.Code, so errors.Is(err, ErrBusy) works.
func (e *Error) Unwrap() error { return codeErrs[e.Code] }

func strerror(code int) string { return C.GoString(C.rl_strerror(C.int(code))) }

// newError builds the error of a failed call; msg is the C side's copy of
// rl_errmsg (empty: use the code's fixed text).
func newError(op string, code int, msg string) error {
	if msg == "" || msg == "no error" {
		msg = strerror(code)
	}
	return &Error{Op: op, Code: code, Msg: msg}
}

func invalid(op, format string, args ...any) error {
	return &Error{Op: op, Code: int(C.RL_EINVAL), Msg: fmt.Sprintf(format, args...)}
}

// RateLimitError is a refusal by a limit: which limit, what is left and when
// to try again. errors.Is(err, ErrRateLimitExceeded) is true for it.
type RateLimitError struct {
	Key        string        // the key that was refused ("" when not known)
	Limit      string        // the refusing limit's name ("cooldown" for a cool-down)
	Remaining  int64         // units the limit could still admit
	RetryAfter time.Duration // when the same request would pass (math.MaxInt64: never)
	ResetAfter time.Duration // when the limit is full again
	Result     Result        // the whole decision
}

func (e *RateLimitError) Error() string {
	name := e.Limit
	if name == "" {
		name = "a limit"
	}
	if e.Key != "" {
		return fmt.Sprintf("rl: %s refused by %s; retry after %v", e.Key, name, e.RetryAfter)
	}
	return fmt.Sprintf("rl: refused by %s; retry after %v", name, e.RetryAfter)
}

// Is makes errors.Is(err, ErrRateLimitExceeded) hold.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimitExceeded }

func refusal(key string, res Result) *RateLimitError {
	return &RateLimitError{Key: key, Limit: res.LimitName, Remaining: res.Remaining,
		RetryAfter: res.RetryAfter, ResetAfter: res.ResetAfter, Result: res}
}

// cleanupError is the caller's error with the one cleanup hit after it:
// errors.Is/As see the first, the message shows both.
type cleanupError struct{ err, cleanup error }

func (e *cleanupError) Error() string {
	return e.err.Error() + " (then: " + e.cleanup.Error() + ")"
}

func (e *cleanupError) Unwrap() error { return e.err }

func withCleanup(err, cleanup error) error { return &cleanupError{err, cleanup} }
