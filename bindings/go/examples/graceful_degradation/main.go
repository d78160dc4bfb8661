// graceful_degradation - what a program can do when rl says no, and when
// rl itself cannot answer: (1) retry after exactly RetryAfter, (2) queue
// with Reserve and give it back with Cancel, (3) serve a cheaper fallback,
// and on a store failure (a read-only handle here) (4) fail closed refuses,
// (5) fail open admits and marks the result degraded. The Go twin of
// examples/graceful_degradation.c; exits 0 on success, 1 otherwise.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"rl.local/rl"
)

func check(ok bool, what string) {
	if !ok {
		fmt.Fprintln(os.Stderr, "graceful_degradation: FAILED:", what)
		os.Exit(1)
	}
	fmt.Println("ok:", what)
}

func main() {
	dir, err := os.MkdirTemp("", "rl-degrade-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "degrade.db")
	ctx := context.Background()
	l, err := rl.NewLimiter(db, rl.WithRateLimitPerSecond(10, 1))
	if err != nil {
		panic(err)
	}
	defer l.Close()

	// (1) refused: retry after exactly what the result says
	_, _ = l.Allow(ctx, "api")
	res, err := l.AllowN(ctx, "api", 1)
	check(err == nil && !res.Allowed && res.RetryAfter > 0 && res.RetryAfter <= 100*time.Millisecond,
		"a refusal says when to retry")
	time.Sleep(res.RetryAfter)
	ok, err := l.Allow(ctx, "api")
	check(err == nil && ok, "retrying after RetryAfter is admitted")

	// (2) queue: book the next slot, then drop the work and give it back
	r, err := l.Reserve(ctx, "api")
	check(err == nil && r.OK(), "Reserve books the next slot")
	fmt.Println("  act in", r.Delay())
	check(r.Cancel() == nil, "Cancel gives the dropped reservation back")

	// (3) a cheaper fallback instead of waiting: an expensive call allowed
	// once a minute (its own database, as its limits are its own)
	costly, err := rl.NewLimiter(filepath.Join(dir, "costly.db"), rl.WithRateLimitPerMinute(1, 1))
	check(err == nil, "a limiter for the expensive call opens")
	defer costly.Close()
	answer := "full answer"
	if ok, _ := costly.Allow(ctx, "expensive"); ok {
		if ok, _ := costly.Allow(ctx, "expensive"); !ok {
			answer = "cached answer"
		}
	}
	check(answer == "cached answer", "served the fallback when refused")

	// (4) and (5): a read-only handle's decisions fail like a broken store
	closed, err := rl.NewLimiter(db, rl.WithReadOnly())
	check(err == nil, "a read-only handle opens")
	defer closed.Close()
	ok, err = closed.Allow(ctx, "api")
	check(!ok && errors.Is(err, rl.ErrReadOnly), "fail closed: refused, with the error")
	open, err := rl.NewLimiter(db, rl.WithReadOnly(), rl.WithFailOpen())
	check(err == nil, "a fail-open read-only handle opens")
	defer open.Close()
	res, err = open.AllowN(ctx, "api", 1)
	check(err == nil && res.Allowed && res.Degraded, "fail open: admitted, marked degraded")
	fmt.Println("graceful_degradation: all checks passed")
}
