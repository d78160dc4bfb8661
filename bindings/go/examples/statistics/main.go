// statistics - reading what rl knows about keys: one key in full with
// Stats, and the keys refused most with Keys. The Go twin of
// examples/statistics.c: without arguments it makes traffic on a temporary
// database and checks the numbers it reads back; with DATABASE [KEY...] it
// opens that read-only, as a monitoring user would, and prints the keys.
// Exits 0 on success, 1 otherwise.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"rl.local/rl"
)

func fail(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "statistics: FAILED: "+f+"\n", a...)
	os.Exit(1)
}

func printKey(st rl.RateLimitStats) {
	fmt.Printf("%s: tier %s (%s), allowed %d, refused %d, units %d\n",
		st.Key, st.Tier, st.TierSource, st.Allowed, st.Refused, st.Units)
	for _, ls := range st.Limits {
		fmt.Printf("  %-8s %d/%v burst %d: remaining %d, retry after %v, full in %v\n",
			ls.Name, ls.Count, ls.Period, ls.Burst, ls.Remaining,
			ls.RetryAfter.Truncate(time.Millisecond), ls.ResetAfter.Truncate(time.Millisecond))
	}
}

func main() {
	ctx := context.Background()
	if len(os.Args) > 1 {
		l, err := rl.NewLimiter(os.Args[1], rl.WithReadOnly())
		if err != nil {
			fail("%v", err)
		}
		defer l.Close()
		keys := os.Args[2:]
		if len(keys) == 0 {
			top, err := l.Keys(ctx, "", rl.SortByRefused, 10)
			if err != nil {
				fail("%v", err)
			}
			for _, st := range top {
				printKey(st)
			}
		}
		for _, k := range keys {
			st, err := l.Stats(ctx, k)
			if err != nil {
				fail("%v", err)
			}
			printKey(st)
		}
		return
	}
	dir, err := os.MkdirTemp("", "rl-stats-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	l, err := rl.NewLimiter(filepath.Join(dir, "stats.db"), rl.WithRateLimitPerHour(4, 4))
	if err != nil {
		fail("%v", err)
	}
	defer l.Close()
	for i, n := range []int{2, 6, 9} { // user:0 under its limit, the others over
		for j := 0; j < n; j++ {
			if _, err := l.Allow(ctx, fmt.Sprintf("user:%d", i)); err != nil {
				fail("%v", err)
			}
		}
	}
	st, err := l.Stats(ctx, "user:1")
	if err != nil {
		fail("%v", err)
	}
	printKey(st)
	if !st.Exists || st.Allowed != 4 || st.Refused != 2 || st.Remaining != 0 || st.RetryAfter < 14*time.Minute {
		fail("user:1: %+v", st)
	}
	top, err := l.Keys(ctx, "user:*", rl.SortByRefused, 2)
	if err != nil {
		fail("%v", err)
	}
	fmt.Println("refused most:")
	for _, s := range top {
		fmt.Printf("  %s refused %d\n", s.Key, s.Refused)
	}
	if len(top) != 2 || top[0].Key != "user:2" || top[0].Refused != 5 || top[1].Key != "user:1" {
		fail("top keys %+v", top)
	}
	if st, _ := l.Stats(ctx, "user:never"); st.Exists || st.Remaining != 4 {
		fail("a key never seen: %+v", st)
	}
	fmt.Println("statistics: all checks passed")
}
