// metrics - rl's counters as Prometheus text (exposition format 0.0.4):
// totals over every key, and the busiest keys one by one (a server with
// millions of keys must not export them all). The Go twin of
// examples/metrics.c; with an argument it writes that file the safe way
// (a temporary name renamed over the old one, for node_exporter's textfile
// collector). Exits 0 if the rendered numbers add up, 1 otherwise.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"rl.local/rl"
)

const topKeys = 10

// label quotes a label value: backslash, quote and newline escaped (keys
// often carry user input).
func label(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

func fail(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "metrics: FAILED: "+f+"\n", a...)
	os.Exit(1)
}

func main() {
	dir, err := os.MkdirTemp("", "rl-metrics-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	l, err := rl.NewLimiter(filepath.Join(dir, "metrics.db"), rl.WithRateLimitPerMinute(5, 5))
	if err != nil {
		fail("%v", err)
	}
	defer l.Close()
	ctx := context.Background()
	// traffic: user:i asks 2*i times; a quote in a key must stay escaped
	for i := 1; i <= 4; i++ {
		for j := 0; j < 2*i; j++ {
			if _, err := l.Allow(ctx, fmt.Sprintf("user:%d", i)); err != nil {
				fail("%v", err)
			}
		}
	}
	if _, err := l.Allow(ctx, `user:"quoted"`); err != nil {
		fail("%v", err)
	}
	tot, err := l.Totals(ctx)
	if err != nil {
		fail("%v", err)
	}
	keys, err := l.Keys(ctx, "", rl.SortByAllowed, topKeys)
	if err != nil {
		fail("%v", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# HELP rl_keys Keys in the store.\n# TYPE rl_keys gauge\nrl_keys %d\n", tot.Keys)
	fmt.Fprintf(&b, "# HELP rl_decisions_total Decisions over every key.\n# TYPE rl_decisions_total counter\n")
	fmt.Fprintf(&b, "rl_decisions_total{result=\"allowed\"} %d\nrl_decisions_total{result=\"refused\"} %d\n", tot.Allowed, tot.Refused)
	fmt.Fprintf(&b, "# HELP rl_key_decisions_total Decisions of the busiest keys.\n# TYPE rl_key_decisions_total counter\n")
	var sumAllowed, sumRefused int64
	for _, st := range keys {
		fmt.Fprintf(&b, "rl_key_decisions_total{key=%s,result=\"allowed\"} %d\n", label(st.Key), st.Allowed)
		fmt.Fprintf(&b, "rl_key_decisions_total{key=%s,result=\"refused\"} %d\n", label(st.Key), st.Refused)
		sumAllowed += st.Allowed
		sumRefused += st.Refused
	}
	fmt.Fprintf(&b, "# HELP rl_key_remaining Requests each busiest key may make now.\n# TYPE rl_key_remaining gauge\n")
	for _, st := range keys {
		fmt.Fprintf(&b, "rl_key_remaining{key=%s} %d\n", label(st.Key), st.Remaining)
	}
	out := b.String()
	fmt.Print(out)
	// 2+4+5+5+1 admitted, 0+0+1+3 refused over 5 keys
	if tot.Keys != 5 || tot.Allowed != 17 || tot.Refused != 4 || sumAllowed != tot.Allowed || sumRefused != tot.Refused {
		fail("totals %+v, exported %d/%d", tot, sumAllowed, sumRefused)
	}
	if !strings.Contains(out, `key="user:\"quoted\""`) {
		fail("the quoted key is not escaped")
	}
	if len(os.Args) > 1 {
		tmp := os.Args[1] + ".tmp"
		if err := os.WriteFile(tmp, []byte(out), 0o644); err != nil {
			fail("%v", err)
		}
		if err := os.Rename(tmp, os.Args[1]); err != nil {
			fail("%v", err)
		}
	}
	fmt.Println("# metrics: all checks passed")
}
