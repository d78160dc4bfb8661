// limiter_test.go - the Limiter's contract: creation and bad configs,
// Allow over one and many keys, Wait's deadline and cancellation, Reserve
// and Cancel, exact Stats on a manual clock, goroutines sharing one
// handle, and the edge cases (nil context, closed limiter, empty key).
package rl

import (
	"context"
	"errors"
	"math"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestCreate(t *testing.T) {
	ctx := context.Background()
	l, err := NewTokenBucketLimiter(RateLimitConfig{Rate: 5, Burst: 5, Period: time.Hour, Path: dbPath(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := allowN(t, l, "k", 7); got != 5 {
		t.Fatalf("admitted %d of 7, want 5", got)
	}
	l2, err := NewTokenBucketLimiter(RateLimitConfig{RateString: "3/hour", Path: dbPath(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if got := allowN(t, l2, "k", 5); got != 3 {
		t.Fatalf("3/hour admitted %d of 5", got)
	}
	st, err := l2.Stats(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Limits) != 1 || st.Limits[0].Count != 3 || st.Limits[0].Period != time.Hour {
		t.Fatalf("limits %+v", st.Limits)
	}
}

func TestBadConfigs(t *testing.T) {
	cases := map[string]Option{
		"zero rate":      WithRateLimitPerSecond(0, 1),
		"negative rate":  WithRateLimitPerMinute(-3, 1),
		"negative burst": WithRateLimitPerHour(3, -1),
		"bad string":     WithRateLimit(RateLimitConfig{RateString: "5/m"}),
		"busy":           WithBusyTimeout(-time.Second),
		"nil clock":      WithClock(nil),
	}
	for name, opt := range cases {
		l, err := NewLimiter(dbPath(t), opt)
		if l != nil || !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: got %v, %v; want ErrInvalidArgument", name, l, err)
		}
	}
	if _, err := NewTokenBucketLimiter(RateLimitConfig{Rate: 0, Path: dbPath(t)}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("zero rate: %v", err)
	}
	var opts []Option
	for i := 0; i < 9; i++ {
		opts = append(opts, WithRateLimit(RateLimitConfig{Name: "l" + string(rune('a'+i)), Rate: 1}))
	}
	if _, err := NewLimiter(dbPath(t), opts...); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("9 limits: %v", err)
	}
}

func TestDefaultsMismatch(t *testing.T) {
	p := dbPath(t)
	mustOpen(t, p, WithRateLimitPerHour(5, 5))
	_, err := NewLimiter(p, WithRateLimitPerHour(6, 6))
	var e *Error
	if !errors.Is(err, ErrDefaultsMismatch) || !errors.As(err, &e) || e.Msg == "" {
		t.Fatalf("got %v, want ErrDefaultsMismatch with a message", err)
	}
	// no limits in code: the stored ones apply
	l := mustOpen(t, p)
	if got := allowN(t, l, "k", 6); got != 5 {
		t.Fatalf("stored defaults admitted %d", got)
	}
	l2 := mustOpen(t, p, WithRateLimitPerHour(6, 6), WithOverrideDefaults())
	if got := allowN(t, l2, "k2", 7); got != 6 {
		t.Fatalf("overridden defaults admitted %d", got)
	}
}

func TestAllowManyKeys(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, dbPath(t), WithRateLimitPerHour(3, 3))
	for _, k := range []string{"a", "b", "c"} {
		if got := allowN(t, l, k, 4); got != 3 {
			t.Fatalf("%s admitted %d", k, got)
		}
	}
	// user + global in one decision: refused by the user, global is not charged
	res, err := l.Acquire(ctx, []string{"a", "global"})
	if err != nil || res.Allowed || res.KeyIndex != 0 {
		t.Fatalf("acquire over exhausted a: %+v %v", res, err)
	}
	st, err := l.Stats(ctx, "global")
	if err != nil || st.Units != 0 || st.Remaining != 3 {
		t.Fatalf("global charged: %+v %v", st, err)
	}
	res, err = l.Acquire(ctx, []string{"d", "global"}, Requests(2))
	if err != nil || !res.Allowed {
		t.Fatalf("acquire d+global: %+v %v", res, err)
	}
	for _, k := range []string{"d", "global"} {
		if st, _ := l.Stats(ctx, k); st.Remaining != 1 {
			t.Fatalf("%s remaining %d, want 1", k, st.Remaining)
		}
	}
	if _, err := l.AllowN(ctx, "e", 4); !errors.Is(err, ErrTooBig) {
		t.Fatalf("cost above burst: %v", err)
	}
	if _, err := l.Acquire(ctx, []string{"e"}, Cost{"token", 1}); !errors.Is(err, ErrNoLimit) {
		t.Fatalf("unknown resource: %v", err)
	}
}

func TestWaitDeadline(t *testing.T) {
	l := mustOpen(t, dbPath(t), WithRateLimitPerHour(1, 1))
	if got := allowN(t, l, "k", 1); got != 1 {
		t.Fatal("first not admitted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := l.Wait(ctx, "k")
	var rle *RateLimitError
	if !errors.Is(err, ErrRateLimitExceeded) || !errors.As(err, &rle) {
		t.Fatalf("got %v, want a RateLimitError", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Wait waited for the deadline instead of failing at once")
	}
	if rle.RetryAfter < 59*time.Minute || rle.Key != "k" {
		t.Fatalf("RetryAfter %v key %q", rle.RetryAfter, rle.Key)
	}
	// nothing was consumed: the next token is still one hour away, not two
	st, err := l.Stats(context.Background(), "k")
	if err != nil || st.RetryAfter > time.Hour {
		t.Fatalf("stats %+v %v", st, err)
	}
}

func TestWaitAdmits(t *testing.T) {
	l := mustOpen(t, dbPath(t), WithRateLimitPerSecond(50, 1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < 3; i++ {
		if err := l.Wait(ctx, "k"); err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
	}
	st, _ := l.Stats(ctx, "k")
	if st.Allowed != 3 {
		t.Fatalf("allowed %d", st.Allowed)
	}
}

// waitBooked spins until a wait on key has booked its units (its retry-after
// passes one period): the state, not a sleep, says the wait is under way.
func waitBooked(t *testing.T, l *Limiter, key string) {
	t.Helper()
	end := time.Now().Add(30 * time.Second)
	for time.Now().Before(end) {
		st, err := l.Stats(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if st.Limits[0].RetryAfter > time.Hour {
			return
		}
		runtime.Gosched()
	}
	t.Fatal("the wait never booked")
}

func TestWaitCancel(t *testing.T) {
	l := mustOpen(t, dbPath(t), WithRateLimitPerHour(1, 1))
	allowN(t, l, "k", 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Wait(ctx, "k") }()
	waitBooked(t, l, "k")
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	st, _ := l.Stats(context.Background(), "k")
	if st.Limits[0].RetryAfter > time.Hour {
		t.Fatalf("the cancelled wait kept its units: retry after %v", st.Limits[0].RetryAfter)
	}
	// an already cancelled context does not even try
	if err := l.Wait(ctx, "k"); err != context.Canceled {
		t.Fatalf("cancelled ctx: %v", err)
	}
}

func TestCloseEndsWaits(t *testing.T) {
	l, err := NewLimiter(dbPath(t), WithRateLimitPerHour(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	allowN(t, l, "k", 1)
	done := make(chan error)
	go func() { done <- l.Wait(context.Background(), "k") }()
	waitBooked(t, l, "k")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != ErrClosed {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}

func TestReserveCancel(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, dbPath(t), WithRateLimitPerHour(2, 2))
	for i := 0; i < 2; i++ {
		r, err := l.Reserve(ctx, "k")
		if err != nil || !r.OK() || r.Delay() != 0 {
			t.Fatalf("reserve %d: %v %v", i, r, err)
		}
	}
	r, err := l.Reserve(ctx, "k")
	if err != nil || !r.OK() || r.Delay() < 29*time.Minute || r.Delay() > 30*time.Minute {
		t.Fatalf("third reserve: ok %v delay %v err %v", r.OK(), r.Delay(), err)
	}
	if st, _ := l.Stats(ctx, "k"); st.RetryAfter <= 30*time.Minute {
		t.Fatalf("the reservation is not booked: %v", st.RetryAfter)
	}
	if err := r.Cancel(); err != nil {
		t.Fatal(err)
	}
	if err := r.Cancel(); err != nil { // a second cancel does nothing
		t.Fatal(err)
	}
	if st, _ := l.Stats(ctx, "k"); st.RetryAfter > 30*time.Minute {
		t.Fatalf("cancel gave nothing back: retry after %v", st.RetryAfter)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	r, err = l.Reserve(dctx, "k")
	if err != nil || r.OK() || r.Delay() < 29*time.Minute {
		t.Fatalf("reserve beyond the deadline: ok %v delay %v err %v", r.OK(), r.Delay(), err)
	}
	if err := r.Cancel(); err != nil {
		t.Fatal(err)
	}
}

func TestStatsExact(t *testing.T) {
	ctx := context.Background()
	clk := NewManualClock(time.Unix(1_700_000_000, 0))
	l := mustOpen(t, dbPath(t), WithRateLimitPerMinute(10, 10), WithClock(clk))
	st, err := l.Stats(ctx, "k")
	if err != nil || st.Exists || st.Remaining != 10 || st.Tier != "default" || st.TierSource != "options" {
		t.Fatalf("fresh key: %+v %v", st, err)
	}
	if got := allowN(t, l, "k", 4); got != 4 {
		t.Fatal(got)
	}
	st, _ = l.Stats(ctx, "k")
	if !st.Exists || st.Allowed != 4 || st.Units != 4 || st.Remaining != 6 || st.Limit != 10 ||
		st.ResetAfter != 24*time.Second || st.RetryAfter != 0 || !st.FirstSeen.Equal(clk.Now()) {
		t.Fatalf("after 4: %+v", st)
	}
	if got := allowN(t, l, "k", 7); got != 6 {
		t.Fatal(got)
	}
	st, _ = l.Stats(ctx, "k")
	if st.Refused != 1 || st.Remaining != 0 || st.RetryAfter != 6*time.Second || st.ResetAfter != time.Minute {
		t.Fatalf("exhausted: %+v", st)
	}
	res, err := l.AllowN(ctx, "k", 1)
	if err != nil || res.Allowed || res.RetryAfter != 6*time.Second || res.LimitName != "limit1" {
		t.Fatalf("refusal %+v %v", res, err)
	}
	clk.Advance(6 * time.Second)
	if ok, err := l.Allow(ctx, "k"); !ok || err != nil {
		t.Fatalf("after 6s: %v %v", ok, err)
	}
	if err := l.Reset(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if st, _ = l.Stats(ctx, "k"); st.Exists || st.Remaining != 10 {
		t.Fatalf("after reset: %+v", st)
	}
	if err := l.Reset(ctx, "never"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reset of unknown key: %v", err)
	}
	tot, err := l.Totals(ctx)
	if err != nil || tot.Keys != 0 {
		t.Fatalf("totals %+v %v", tot, err)
	}
}

func TestConcurrentGoroutines(t *testing.T) {
	clk := NewManualClock(time.Unix(1_700_000_000, 0)) // no refill, however slow
	l := mustOpen(t, dbPath(t), WithClock(clk), WithRateLimitPerHour(100, 100))
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				ok, err := l.Allow(context.Background(), "shared")
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					admitted++
					mu.Unlock()
				}
				if _, err := l.Stats(context.Background(), "shared"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if admitted != 100 {
		t.Fatalf("admitted %d of 320, want exactly 100", admitted)
	}
	st, _ := l.Stats(context.Background(), "shared")
	if st.Allowed != 100 || st.Refused != 220 {
		t.Fatalf("counters %d/%d", st.Allowed, st.Refused)
	}
}

func TestEdgeCases(t *testing.T) {
	l, err := NewLimiter(dbPath(t), WithRateLimitPerHour(3, 3))
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1012 a nil context is what is tested
	var nilCtx context.Context
	if _, err := l.Allow(nilCtx, "k"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Allow(nil ctx): %v", err)
	}
	if err := l.Wait(nilCtx, "k"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Wait(nil ctx): %v", err)
	}
	if _, err := l.Reserve(nilCtx, "k"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Reserve(nil ctx): %v", err)
	}
	if _, err := l.Stats(nilCtx, "k"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Stats(nil ctx): %v", err)
	}
	if _, err := KeyFromContext(nilCtx); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("KeyFromContext(nil): %v", err)
	}
	ctx := context.Background()
	for _, k := range []string{"", "a\x00b", "bad\x01ctl", string(make([]byte, 600))} {
		if _, err := l.Allow(ctx, k); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Allow(%q): %v", k, err)
		}
	}
	if _, err := l.AllowN(ctx, "k", -1); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("negative cost: %v", err)
	}
	if _, err := l.Acquire(ctx, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("no keys: %v", err)
	}
	if _, err := l.BeginLease(ctx, "k", 0, Requests(1)); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("zero ttl: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := l.Allow(ctx, "k"); err != ErrClosed {
		t.Errorf("Allow after Close: %v", err)
	}
	if err := l.Wait(ctx, "k"); err != ErrClosed {
		t.Errorf("Wait after Close: %v", err)
	}
	if _, err := l.Stats(ctx, "k"); err != ErrClosed {
		t.Errorf("Stats after Close: %v", err)
	}
}

func TestLeasesAndSlots(t *testing.T) {
	ctx := context.Background()
	clk := NewManualClock(time.Unix(1_700_000_000, 0))
	l := mustOpen(t, dbPath(t), WithClock(clk), WithRateLimitPerHour(100, 100),
		WithRateLimit(RateLimitConfig{Name: "tph", Resource: "tokens", Rate: 1000, Period: time.Hour}),
		WithConcurrencyLimit("streams", "streams", 2))
	est := []Cost{Requests(1), Tokens(100), {"streams", 1}}
	a, err := l.BeginLease(ctx, "k", time.Minute, est...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.BeginLease(ctx, "k", time.Minute, est...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.BeginLease(ctx, "k", time.Minute, est...)
	var rle *RateLimitError
	if !errors.As(err, &rle) || rle.Limit != "streams" {
		t.Fatalf("third lease: %v", err)
	}
	if err := a.Settle(Tokens(40)); err != nil {
		t.Fatal(err)
	}
	if err := b.Cancel(); err != nil {
		t.Fatal(err)
	}
	if err := b.Settle(); err != nil { // ended already: nothing happens
		t.Fatal(err)
	}
	st, err := l.Stats(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	for _, ls := range st.Limits {
		switch ls.Name {
		case "tph":
			if ls.Remaining != 960 {
				t.Errorf("tokens remaining %d, want 960", ls.Remaining)
			}
		case "streams":
			if ls.InFlight != 0 || ls.Algorithm != Concurrent {
				t.Errorf("streams %+v", ls)
			}
		}
	}
}

func TestCooldownAndHeaders(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, dbPath(t), WithRateLimitPerMinute(60, 60))
	if err := l.Penalize(ctx, "k", "", time.Minute); err != nil {
		t.Fatal(err)
	}
	res, err := l.AllowN(ctx, "k", 1)
	if err != nil || res.Allowed || res.LimitName != "cooldown" {
		t.Fatalf("during a cool-down: %+v %v", res, err)
	}
	h, err := FormatHeaders(res, time.Minute, HeadersIETF|HeadersClassic)
	if err != nil || h.Get("Retry-After") != "60" {
		t.Fatalf("headers %v %v", h, err)
	}
	res, _ = l.AllowN(ctx, "fresh", 1)
	h, err = FormatHeaders(res, time.Minute, HeadersClassic)
	if err != nil || h.Get("X-RateLimit-Limit") != "60" || h.Get("X-RateLimit-Remaining") != "59" ||
		h.Get("Retry-After") != "" {
		t.Fatalf("headers %v %v", h, err)
	}
	ph := http.Header{}
	ph.Set("Retry-After", "30")
	ph.Set("X-Ratelimit-Remaining-Requests", "0")
	pl, err := ParseProviderHeaders(ph, time.Now())
	if err != nil || pl.RetryAfter != 30*time.Second || pl.Requests.Remaining != 0 {
		t.Fatalf("parsed %+v %v", pl, err)
	}
	if err := l.ObserveHeaders(ctx, "provider", ph); err != nil {
		t.Fatal(err)
	}
	if ok, _ := l.Allow(ctx, "provider"); ok {
		t.Fatal("Retry-After did not cool the provider down")
	}
}

func TestKeys(t *testing.T) {
	bg := context.Background()
	cases := []struct {
		ctx  context.Context
		want string
	}{
		{bg, "global"},
		{WithIP(bg, "203.0.113.7"), "ip:203.0.113.7"},
		{WithUser(WithIP(bg, "203.0.113.7"), "alice"), "user:alice"},
		{WithUser(bg, "a:b*"), "user:a%3Ab%2A"},
	}
	for _, c := range cases {
		if got, err := KeyFromContext(c.ctx); err != nil || got != c.want {
			t.Errorf("KeyFromContext = %q, %v; want %q", got, err, c.want)
		}
	}
	keys, err := KeysFromContext(WithUser(WithIP(bg, "::1"), "bob"))
	if err != nil || len(keys) != 3 || keys[0] != "user:bob" || keys[1] != "ip:%3A%3A1" || keys[2] != "global" {
		t.Fatalf("KeysFromContext = %q, %v", keys, err)
	}
	k, err := BuildKey("team", "x y")
	if err != nil || k != "team:x%20y" {
		t.Fatalf("BuildKey = %q %v", k, err)
	}
	kind, v, err := UnescapeKey(k)
	if err != nil || kind != "team" || v != "x y" {
		t.Fatalf("UnescapeKey = %q %q %v", kind, v, err)
	}
	if _, err := BuildKey("team", ""); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("empty value: %v", err)
	}
	if _, _, err := UnescapeKey("global"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatal("global unescaped")
	}
	_ = math.MaxInt64
}
