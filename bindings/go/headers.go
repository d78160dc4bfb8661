// headers.go - HTTP glue: a decision written as RateLimit response headers
// (rl_format_headers), and a provider's rate-limit headers read back
// (rl_parse_provider_headers) or applied as shared cool-downs
// (rl_observe_headers).
package rl

// #include "shim.h"
import "C"

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"time"
)

// HeaderStyle selects which headers FormatHeaders writes (or'ed).
type HeaderStyle int

// The header styles of rl_format_headers.
const (
	HeadersIETF    HeaderStyle = C.RL_HEADERS_IETF    // RateLimit-Policy and RateLimit (draft 11)
	HeadersClassic HeaderStyle = C.RL_HEADERS_CLASSIC // X-RateLimit-Limit, -Remaining, -Reset
)

// FormatHeaders writes res as response headers; Retry-After is added when
// refused. window is the time the deciding limit takes to refill (its
// period for burst == rate); 0 leaves it out.
func FormatHeaders(res Result, window time.Duration, style HeaderStyle) (http.Header, error) {
	var r C.rl_result
	if res.Allowed {
		r.allowed = 1
	}
	r.limit = C.int64_t(res.Limit)
	r.remaining = C.int64_t(res.Remaining)
	r.retry_after_ns = C.int64_t(res.RetryAfter)
	r.reset_after_ns = C.int64_t(res.ResetAfter)
	if len(res.LimitName) >= C.RL_NAME_MAX || strings.IndexByte(res.LimitName, 0) >= 0 {
		return nil, invalid("headers", "bad limit name %q", res.LimitName)
	}
	for i := 0; i < len(res.LimitName); i++ {
		r.limit_name[i] = C.char(res.LimitName[i])
	}
	var buf [C.RL_HEADERS_MAX]C.char
	if rc := C.rl_format_headers(&r, C.int64_t(window), C.int(style), &buf[0], C.size_t(len(buf))); rc != C.RL_OK {
		return nil, newError("headers", int(rc), "")
	}
	h := http.Header{}
	for _, line := range strings.Split(C.GoString(&buf[0]), "\r\n") {
		if name, value, ok := strings.Cut(line, ": "); ok {
			h.Add(name, value)
		}
	}
	return h, nil
}

// cheaders turns h into parallel name and value arrays (a field given
// several times gives several entries), in a stable order.
func cheaders(cs *cstrings, h http.Header) (names, values []*C.char, err error) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			if strings.IndexByte(k, 0) >= 0 || strings.IndexByte(v, 0) >= 0 {
				return nil, nil, invalid("headers", "NUL byte in header %q", k)
			}
			names = append(names, cs.str(k))
			values = append(values, cs.str(v))
		}
	}
	return names, values, nil
}

// ProviderQuota is what a provider's headers say about one window; -1 for
// what they do not say.
type ProviderQuota struct {
	Limit, Remaining int64
	ResetAfter       time.Duration
}

// ProviderLimits is what rl_parse_provider_headers read.
type ProviderLimits struct {
	Requests, Tokens ProviderQuota
	RetryAfter       time.Duration // -1 when absent
	Read, Bad        int           // fields recognised and read; malformed ones
}

// ParseProviderHeaders reads OpenAI's and Anthropic's rate-limit headers,
// Retry-After and retry-after-ms, relative to now.
func ParseProviderHeaders(h http.Header, now time.Time) (ProviderLimits, error) {
	var cs cstrings
	defer cs.free()
	names, values, err := cheaders(&cs, h)
	if err != nil {
		return ProviderLimits{}, err
	}
	var out C.rl_provider_limits
	var np, vp **C.char
	if len(names) > 0 {
		np, vp = &names[0], &values[0]
	}
	if rc := C.rl_parse_provider_headers(np, vp, C.size_t(len(names)), C.int64_t(now.UnixNano()), &out); rc != C.RL_OK {
		return ProviderLimits{}, newError("parse headers", int(rc), "")
	}
	q := func(p C.rl_provider_quota) ProviderQuota {
		return ProviderQuota{int64(p.limit), int64(p.remaining), time.Duration(p.reset_after_ns)}
	}
	return ProviderLimits{q(out.requests), q(out.tokens), time.Duration(out.retry_after_ns),
		int(out.n_read), int(out.n_bad)}, nil
}

// ObserveHeaders applies a provider's response headers to key as shared
// cool-downs: Retry-After cools every resource down, an exhausted quota
// its resource until the reset.
func (l *Limiter) ObserveHeaders(ctx context.Context, key string, h http.Header) error {
	const op = "observe headers"
	if err := start(op, ctx); err != nil {
		return err
	}
	var cs cstrings
	defer cs.free()
	ck, err := ckey(op, &cs, key)
	if err != nil {
		return err
	}
	names, values, err := cheaders(&cs, h)
	if err != nil || len(names) == 0 {
		return err
	}
	return l.call(op, func(hd *C.rl, eb *C.char) C.int {
		return C.rlgo_observe_headers(hd, ck, &names[0], &values[0], C.size_t(len(names)), eb)
	})
}
