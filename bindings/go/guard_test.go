// guard_test.go - the Guard around a fake model: real usage settled,
// metadata filled, refusal by a full slot, a 429's cool-down shared, a
// failed call given back, and a stream.
package rl

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func guardLimiter(t *testing.T) *Limiter {
	// a still clock: the token counts below are exact however slow the run
	clk := NewManualClock(time.Unix(1_700_000_000, 0))
	return mustOpen(t, dbPath(t), WithClock(clk), WithRateLimitPerHour(100, 100),
		WithRateLimit(RateLimitConfig{Name: "tph", Resource: "tokens", Rate: 10000, Period: time.Hour}),
		WithConcurrencyLimit("streams", "streams", 1))
}

func tokensLeft(t *testing.T, l *Limiter, key string) int64 {
	t.Helper()
	st, err := l.Stats(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, ls := range st.Limits {
		if ls.Name == "tph" {
			return ls.Remaining
		}
	}
	t.Fatal("no tph limit")
	return 0
}

func TestGuard(t *testing.T) {
	l := guardLimiter(t)
	ctx := WithUser(context.Background(), "alice")
	var inside func()
	model := ModelFuncs{
		AskFunc: func(ctx context.Context, prompt string) (Response, error) {
			if inside != nil {
				inside()
			}
			switch prompt {
			case "429":
				h := http.Header{}
				h.Set("Retry-After", "120")
				return Response{}, &ProviderError{StatusCode: 429, Header: h}
			case "fail":
				return Response{}, errors.New("connection refused")
			}
			return Response{Content: "hi", Usage: []Cost{Tokens(300)}}, nil
		},
		StreamFunc: func(ctx context.Context, prompt string, onChunk func(string) error) (Response, error) {
			for _, c := range []string{"a", "b", "c"} {
				if err := onChunk(c); err != nil {
					return Response{}, err
				}
			}
			return Response{Usage: []Cost{Tokens(50)}}, nil
		},
	}
	g, err := NewGuard(l, model, GuardConfig{Account: "provider:x", MaxWait: -1,
		Estimate: []Cost{Requests(1), Tokens(500), {"streams", 1}}})
	if err != nil {
		t.Fatal(err)
	}
	// while a call holds the only slot, another is refused by "streams"
	inside = func() {
		_, err := g.Ask(ctx, "nested")
		var rle *RateLimitError
		if !errors.Is(err, ErrRateLimitExceeded) || !errors.As(err, &rle) || rle.Limit != "streams" {
			t.Errorf("second call while the slot is held: %v", err)
		}
	}
	resp, err := g.Ask(ctx, "hello")
	inside = nil
	if err != nil || resp.Content != "hi" {
		t.Fatalf("Ask: %+v %v", resp, err)
	}
	if left := tokensLeft(t, l, "user:alice"); left != 9700 {
		t.Fatalf("alice's tokens left %d, want 9700 (300 settled)", left)
	}
	if left := tokensLeft(t, l, "provider:x"); left != 9700 {
		t.Fatalf("account's tokens left %d, want 9700", left)
	}
	if resp.RateLimit == nil || resp.Metadata["ratelimit.remaining"] == "" {
		t.Fatalf("no rate-limit metadata: %+v", resp)
	}
	// a call the service never saw gives everything back
	if _, err := g.Ask(ctx, "fail"); err == nil || errors.Is(err, ErrRateLimitExceeded) {
		t.Fatalf("failed call: %v", err)
	}
	if left := tokensLeft(t, l, "user:alice"); left != 9700 {
		t.Fatalf("failed call charged: %d left", left)
	}
	// a stream
	var chunks string
	if _, err := g.Stream(ctx, "s", func(c string) error { chunks += c; return nil }); err != nil || chunks != "abc" {
		t.Fatalf("Stream: %q %v", chunks, err)
	}
	if left := tokensLeft(t, l, "user:alice"); left != 9650 {
		t.Fatalf("after the stream %d left, want 9650", left)
	}
	// a 429 settles at the estimate and cools the account down for everyone
	resp, err = g.Ask(ctx, "429")
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.StatusCode != 429 {
		t.Fatalf("429: %v", err)
	}
	if resp.RateLimit == nil || resp.RateLimit.Limit != "cooldown" || resp.RateLimit.RetryAfter <= 119*time.Second {
		t.Fatalf("429 metadata: %+v", resp.RateLimit)
	}
	if left := tokensLeft(t, l, "user:alice"); left != 9150 {
		t.Fatalf("after the 429 %d left, want 9150", left)
	}
	_, err = g.Ask(WithUser(context.Background(), "bob"), "hello")
	var rle *RateLimitError
	if !errors.As(err, &rle) || rle.Limit != "cooldown" || rle.Key != "provider:x" {
		t.Fatalf("bob during the account's cool-down: %v", err)
	}
}

func TestGuardWaitCancel(t *testing.T) {
	l := guardLimiter(t)
	g, err := NewGuard(l, ModelFuncs{}, GuardConfig{Account: "provider:x",
		Estimate: []Cost{{"streams", 1}}})
	if err != nil {
		t.Fatal(err)
	}
	held, err := g.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		c, err := g.Begin(ctx)
		if c != nil {
			c.Cancel()
		}
		done <- err
	}()
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("cancelled guard wait: %v", err)
	}
	if err := held.Cancel(); err != nil {
		t.Fatal(err)
	}
	// deadline shorter than any chance of a slot: refused, not DeadlineExceeded
	held, _ = g.Begin(context.Background())
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	if _, err := g.Begin(dctx); !errors.Is(err, ErrRateLimitExceeded) {
		t.Fatalf("guard past its deadline: %v", err)
	}
	if _, err := held.End(nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := held.Cancel(); err != nil { // after End: nothing
		t.Fatal(err)
	}
}
