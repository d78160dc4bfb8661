// multi_tier - free, pro and unlimited tiers from a YAML file, and a key
// moved between tiers at run time with AssignTier (an upgrade). The Go twin
// of examples/multi_tier.c; exits 0 when every key got the tier and the
// admissions the comments say, 1 otherwise.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"rl.local/rl"
)

// Bursts are small and refills slow, so the counts are exact whatever the
// speed of the machine.
const tiers = `version: 1
default_tier: free
tiers:
  free:
    limits:
      - { name: free_rpm, rate: 10/min, burst: 3 }
      - { name: daily,    rate: 100/day }
  pro:
    limits:
      - { name: rpm,   rate: 600/min, burst: 10 }
      - { name: tpm,   rate: 9000/min, resource: tokens }
  unlimited: { unlimited: true }
keys:
  - { match: "user:admin-*", tier: unlimited }
  - { match: "team:*",       tier: pro }
`

func fail(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "multi_tier: FAILED: "+f+"\n", a...)
	os.Exit(1)
}

func burst(l *rl.Limiter, key string, n int) int {
	got := 0
	for i := 0; i < n; i++ {
		ok, err := l.Allow(context.Background(), key)
		if err != nil {
			fail("%s: %v", key, err)
		}
		if ok {
			got++
		}
	}
	return got
}

func main() {
	dir, err := os.MkdirTemp("", "rl-tiers-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	yaml := filepath.Join(dir, "tiers.yaml")
	if err := os.WriteFile(yaml, []byte(tiers), 0o600); err != nil {
		panic(err)
	}
	l, err := rl.NewLimiter(filepath.Join(dir, "tiers.db"), rl.WithTiersFile(yaml))
	if err != nil {
		fail("%v", err)
	}
	defer l.Close()
	ctx := context.Background()
	want := map[string]struct {
		tier     string
		admitted int
	}{
		"user:bob":     {"free", 3},
		"team:rockets": {"pro", 10},
		"user:admin-1": {"unlimited", 20},
	}
	for key, w := range want {
		got := burst(l, key, 20)
		st, err := l.Stats(ctx, key)
		if err != nil {
			fail("%v", err)
		}
		fmt.Printf("%-14s tier %-9s (%s) admitted %2d of 20\n", key, st.Tier, st.TierSource, got)
		if st.Tier != w.tier || got != w.admitted {
			fail("%s: tier %s admitted %d, want %s and %d", key, st.Tier, got, w.tier, w.admitted)
		}
	}
	// bob upgrades: the assignment beats every rule, from his next request.
	if err := l.AssignTier(ctx, "user:bob", "pro"); err != nil {
		fail("%v", err)
	}
	st, _ := l.Stats(ctx, "user:bob")
	if st.Tier != "pro" || st.TierSource != "assigned" {
		fail("after the upgrade bob is %s (%s)", st.Tier, st.TierSource)
	}
	if got := burst(l, "user:bob", 20); got < 7 {
		fail("upgraded bob admitted %d", got)
	}
	if err := l.AssignTier(ctx, "user:bob", "gold"); err == nil {
		fail("assigning a tier that does not exist succeeded")
	}
	fmt.Println("multi_tier: all checks passed")
}
