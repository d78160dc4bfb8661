// per_user - per-user limits taken from a request's context, a per-IP key
// for anonymous callers, "global" when there is neither, and one global
// limit every request also counts against (user + global in one decision).
// The Go twin of examples/per_user.c; exits 0 when the limits behaved as
// the comments say, 1 otherwise.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"rl.local/rl"
)

func fail(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "per_user: FAILED: "+f+"\n", a...)
	os.Exit(1)
}

// handle decides one request against its caller's key and "global"
// together: if one refuses, neither is charged.
func handle(l *rl.Limiter, ctx context.Context) (bool, string) {
	key, err := rl.KeyFromContext(ctx)
	if err != nil {
		fail("%v", err)
	}
	keys := []string{key}
	if key != "global" {
		keys = append(keys, "global")
	}
	res, err := l.Acquire(ctx, keys)
	if err != nil {
		fail("%v", err)
	}
	return res.Allowed, keys[res.KeyIndex]
}

func main() {
	dir, err := os.MkdirTemp("", "rl-per-user-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	// Every key gets 3/hour; "global" is a key like the others here, so it
	// admits 3 alone: the point is the all-or-nothing decision.
	l, err := rl.NewLimiter(filepath.Join(dir, "per_user.db"), rl.WithRateLimitPerHour(3, 3))
	if err != nil {
		fail("%v", err)
	}
	defer l.Close()
	bg := context.Background()
	alice := rl.WithUser(rl.WithIP(bg, "203.0.113.7"), "alice")
	for i := 0; i < 2; i++ {
		if ok, _ := handle(l, alice); !ok {
			fail("alice refused on request %d", i+1)
		}
	}
	if k, _ := rl.KeyFromContext(alice); k != "user:alice" {
		fail("alice's key is %q", k)
	}
	anon := rl.WithIP(bg, "198.51.100.1")
	if ok, _ := handle(l, anon); !ok {
		fail("the anonymous caller was refused")
	}
	// global has now admitted 3: the next request is refused by it, and
	// the caller's own bucket is not charged.
	ok, by := handle(l, rl.WithUser(bg, "carol"))
	if ok || by != "global" {
		fail("carol: allowed %v decided by %q, want refused by global", ok, by)
	}
	st, err := l.Stats(bg, "user:carol")
	if err != nil || st.Remaining != 3 {
		fail("carol was charged for a refused request: %+v %v", st, err)
	}
	// A user called "a:b*" cannot share or match anyone's key.
	k, _ := rl.KeyFromContext(rl.WithUser(bg, "a:b*"))
	fmt.Println("escaped key:", k)
	if k != "user:a%3Ab%2A" {
		fail("escaping gave %q", k)
	}
	fmt.Println("per_user: all checks passed")
}
