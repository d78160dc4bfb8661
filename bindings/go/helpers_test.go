// helpers_test.go - what every test of the package shares: a database file
// of its own per test, and a limiter on it closed at the end.
package rl

import (
	"context"
	"path/filepath"
	"testing"
)

func dbPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "rl.db")
}

func mustOpen(t *testing.T, path string, opts ...Option) *Limiter {
	t.Helper()
	l, err := NewLimiter(path, opts...)
	if err != nil {
		t.Fatalf("NewLimiter: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// allowN asks n times and counts the admissions.
func allowN(t *testing.T, l *Limiter, key string, n int) int {
	t.Helper()
	got := 0
	for i := 0; i < n; i++ {
		ok, err := l.Allow(context.Background(), key)
		if err != nil {
			t.Fatalf("Allow(%q): %v", key, err)
		}
		if ok {
			got++
		}
	}
	return got
}
