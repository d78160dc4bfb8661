// keys.go - keys from who a request is for: identities carried in a
// context (WithUser, WithIP, ...) turned into escaped keys by librl's key
// builder, so that a user named "alice:x" or "*" cannot share or match
// another caller's key.
package rl

// #include "shim.h"
// #include <stdlib.h>
import "C"

import (
	"context"
	"strings"
	"unsafe"
)

type ctxKey int

const (
	userKey ctxKey = iota
	ipKey
	agentKey
	orgKey
)

// WithUser returns ctx carrying the accountable end user's id.
func WithUser(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, userKey, id)
}

// WithIP returns ctx carrying the client's address (canonicalise it first).
func WithIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, ipKey, ip)
}

// WithAgent returns ctx carrying the acting agent or worker.
func WithAgent(ctx context.Context, agent string) context.Context {
	return context.WithValue(ctx, agentKey, agent)
}

// WithOrg returns ctx carrying the organisation or tenant.
func WithOrg(ctx context.Context, org string) context.Context {
	return context.WithValue(ctx, orgKey, org)
}

func ctxString(ctx context.Context, k ctxKey) string {
	s, _ := ctx.Value(k).(string)
	return s
}

// keyCtx fills an rl_key_ctx from ctx; strings live in cs.
func keyCtx(cs *cstrings, ctx context.Context) (C.rl_key_ctx, error) {
	var kc C.rl_key_ctx
	vals := [4]string{ctxString(ctx, userKey), ctxString(ctx, ipKey), ctxString(ctx, agentKey), ctxString(ctx, orgKey)}
	for _, v := range vals {
		if strings.IndexByte(v, 0) >= 0 {
			return kc, invalid("key", "identity holds a NUL byte")
		}
	}
	kc.user, kc.ip, kc.agent, kc.org = cs.opt(vals[0]), cs.opt(vals[1]), cs.opt(vals[2]), cs.opt(vals[3])
	return kc, nil
}

// KeyFromContext is the key of the most specific identity in ctx: user,
// agent, org, then IP ("user:alice", "ip:203.0.113.7"), and "global" when
// there is none, so an anonymous request is still limited.
func KeyFromContext(ctx context.Context) (string, error) {
	if ctx == nil {
		return "", invalid("key", "nil context")
	}
	var cs cstrings
	defer cs.free()
	kc, err := keyCtx(&cs, ctx)
	if err != nil {
		return "", err
	}
	var buf [C.RL_KEY_MAX + 1]C.char
	if rc := C.rl_key_for(&buf[0], C.size_t(len(buf)), &kc); rc != C.RL_OK {
		return "", newError("key", int(rc), "an identity cannot make a key (too long or empty)")
	}
	return C.GoString(&buf[0]), nil
}

// KeysFromContext is every applicable key of ctx, most specific first,
// ending with "global": for Acquire over all of them at once.
func KeysFromContext(ctx context.Context) ([]string, error) {
	if ctx == nil {
		return nil, invalid("keys", "nil context")
	}
	var cs cstrings
	defer cs.free()
	kc, err := keyCtx(&cs, ctx)
	if err != nil {
		return nil, err
	}
	const max = C.RL_KEYS_FOR_MAX
	buf := (*[max][C.RL_KEY_MAX + 1]C.char)(C.malloc(C.size_t(max * (C.RL_KEY_MAX + 1))))
	if buf == nil {
		return nil, newError("keys", int(C.RL_ENOMEM), "")
	}
	defer C.free(unsafe.Pointer(buf))
	var n C.size_t
	if rc := C.rl_keys_for(&kc, &buf[0], max, &n); rc != C.RL_OK {
		return nil, newError("keys", int(rc), "an identity cannot make a key (too long or empty)")
	}
	out := make([]string, int(n))
	for i := range out {
		out[i] = C.GoString(&buf[i][0])
	}
	return out, nil
}

// BuildKey writes "KIND:VALUE" with VALUE escaped (rl_key_build): the key
// never collides with another kind's or value's, nor matches a glob.
func BuildKey(kind, value string) (string, error) {
	if strings.IndexByte(kind, 0) >= 0 || strings.IndexByte(value, 0) >= 0 {
		return "", invalid("build key", "NUL byte in kind or value")
	}
	ck, cv := C.CString(kind), C.CString(value)
	defer C.free(unsafe.Pointer(ck))
	defer C.free(unsafe.Pointer(cv))
	var buf [C.RL_KEY_MAX + 1]C.char
	if rc := C.rl_key_build(&buf[0], C.size_t(len(buf)), ck, cv); rc != C.RL_OK {
		return "", newError("build key", int(rc), "bad kind, empty value or key too long")
	}
	return C.GoString(&buf[0]), nil
}

// UnescapeKey splits a key BuildKey wrote into its kind and value.
func UnescapeKey(key string) (kind, value string, err error) {
	if strings.IndexByte(key, 0) >= 0 {
		return "", "", invalid("unescape key", "NUL byte in key")
	}
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	var kb [C.RL_NAME_MAX]C.char
	var vb [C.RL_KEY_MAX + 1]C.char
	if rc := C.rl_key_unescape(ck, &kb[0], C.size_t(len(kb)), &vb[0], C.size_t(len(vb))); rc != C.RL_OK {
		return "", "", newError("unescape key", int(rc), "not a key BuildKey wrote")
	}
	return C.GoString(&kb[0]), C.GoString(&vb[0]), nil
}
