// Package rl is the Go binding of librl: rate limits whose state lives in
// one SQLite file shared by every process that opens it (Go, C, Python,
// rlctl), surviving restarts.
//
// The API follows golang.org/x/time/rate with per-key state:
//
//	l, err := rl.NewLimiter("agents.db", rl.WithRateLimitPerMinute(60, 10))
//	ok, err := l.Allow(ctx, "user:alice")
//
// Wait maps the context onto rl_wait: a deadline that admission cannot meet
// fails at once with a *RateLimitError (errors.Is ErrRateLimitExceeded),
// consuming nothing; cancellation ends the wait at once (rl_wait_wake) with
// ctx.Err(), giving back what it had booked. A Limiter is safe for
// concurrent use by goroutines; Close it when done.
//
// Build with cgo against librl: CGO_CFLAGS=-I<rl>/core and
// CGO_LDFLAGS="-L<build> -lrl -Wl,-rpath,<build>", or nothing more than
// an installed librl (the package links -lrl).
package rl
