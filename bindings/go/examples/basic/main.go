// basic - one limit used the two ways most programs need: Allow (decide
// now, never block) and Wait (block until admitted, bounded by a context
// deadline and ended by cancellation). The Go twin of examples/basic.c;
// exits 0 when every step behaved as the comments say, 1 otherwise.
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
		fmt.Fprintln(os.Stderr, "basic: FAILED:", what)
		os.Exit(1)
	}
	fmt.Println("ok:", what)
}

func main() {
	dir, err := os.MkdirTemp("", "rl-basic-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir) // the database comes with -wal, -shm and -rlshm files
	// 5 per second, bursts of 5: the first 5 pass at once.
	l, err := rl.NewLimiter(filepath.Join(dir, "basic.db"), rl.WithRateLimitPerSecond(5, 5))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer l.Close()
	ctx := context.Background()

	admitted := 0
	for i := 0; i < 8; i++ {
		if ok, err := l.Allow(ctx, "user:alice"); err != nil {
			panic(err)
		} else if ok {
			admitted++
		}
	}
	check(admitted == 5, "Allow admits the burst of 5 and refuses the rest")

	// Wait blocks until the next token (200 ms away).
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = l.Wait(wctx, "user:alice")
	cancel()
	check(err == nil, "Wait admits when the next token comes within the deadline")

	// A deadline shorter than the wait fails at once, consuming nothing. An
	// hourly limit makes the wait an hour, so no delay of a loaded machine
	// between the calls can bring the next token within the deadline.
	hourly, err := rl.NewLimiter(filepath.Join(dir, "hourly.db"), rl.WithRateLimitPerHour(1, 1))
	if err != nil {
		panic(err)
	}
	defer hourly.Close()
	_, _ = hourly.Allow(ctx, "user:bob") // empty the bucket, then ask for more
	wctx, cancel = context.WithTimeout(ctx, time.Second)
	err = hourly.Wait(wctx, "user:bob")
	cancel()
	var rle *rl.RateLimitError
	check(errors.Is(err, rl.ErrRateLimitExceeded) && errors.As(err, &rle) && rle.RetryAfter > 0,
		"Wait past its deadline fails at once with the retry-after")

	// Cancelling the context ends a wait (the C example uses a signal).
	slow, err := rl.NewLimiter(filepath.Join(dir, "slow.db"), rl.WithRateLimitPerHour(1, 1))
	if err != nil {
		panic(err)
	}
	defer slow.Close()
	_, _ = slow.Allow(ctx, "job")
	cctx, ccancel := context.WithCancel(ctx)
	go func() { time.Sleep(50 * time.Millisecond); ccancel() }()
	err = slow.Wait(cctx, "job")
	check(errors.Is(err, context.Canceled), "a cancelled Wait returns context.Canceled")
	fmt.Println("basic: all checks passed")
}
