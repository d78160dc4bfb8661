// crosslang_test.go - Go, Python (pyrl) and C processes share one database
// file at the same time, and the limit holds exactly across all of them.
//
// It needs the C helper (testdata/xlang_helper.c, built by CMake as
// go_xlang_helper: $RL_GO_XLANG_HELPER), python3 and $RL_LIBRARY with
// pyrl beside this package; ctest sets them. Without them it is skipped.
package rl

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const pyWorker = `
import os, sys, time
import pyrl
db, key, attempts, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with pyrl.Limiter(db) as l:
    t = time.monotonic() + 60
    while not os.path.exists(start):
        if time.monotonic() > t:
            sys.exit("start file never appeared")
        time.sleep(0.001)
    n = sum(1 for _ in range(attempts) if l.allow(key).allowed)
print("admitted %d" % n)
`

func TestCrossLanguage(t *testing.T) {
	helper := os.Getenv("RL_GO_XLANG_HELPER")
	lib := os.Getenv("RL_LIBRARY")
	py, perr := exec.LookPath("python3")
	if helper == "" || lib == "" || perr != nil {
		t.Skip("needs RL_GO_XLANG_HELPER, RL_LIBRARY and python3 (ctest sets them)")
	}
	pyPath, err := filepath.Abs("../python")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "shared.db")
	start := filepath.Join(dir, "start")
	// N per day: nothing refills during the test, so admissions == N exactly.
	const N, attempts = 150, 120
	l := mustOpen(t, db, WithRateLimit(RateLimitConfig{Rate: N, Burst: N, Period: 24 * time.Hour}))
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for i := 0; i < 2; i++ {
		cmds = append(cmds, exec.Command(helper, db, "shared", fmt.Sprint(attempts), start))
		c := exec.Command(py, "-c", pyWorker, db, "shared", fmt.Sprint(attempts), start)
		c.Env = append(os.Environ(), "RL_LIBRARY="+lib, "PYTHONPATH="+pyPath)
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		outs = append(outs, &out)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(start, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// two goroutines of this Go process join in
	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := 0; i < attempts; i++ {
				ok, err := l.Allow(context.Background(), "shared")
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					n++
				}
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("%v: %v\n%s", c.Args[0], err, outs[i])
		}
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(outs[i].String()), "admitted %d", &n); err != nil {
			t.Fatalf("%v printed %q", c.Args[0], outs[i])
		}
		total += n
	}
	if total != N {
		t.Fatalf("admitted %d across Go, C and Python, want exactly %d", total, N)
	}
	st, err := l.Stats(context.Background(), "shared")
	if err != nil || st.Allowed != N || st.Refused != 6*attempts-N {
		t.Fatalf("stats %d/%d %v", st.Allowed, st.Refused, err)
	}
}
