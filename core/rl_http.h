/*
 * rl_http.h - HTTP glue for rl: keys built from who a request is for, a
 * decision written as rate-limit response headers, and a provider's
 * rate-limit headers read back into shared cool-downs.
 *
 * It includes rl.h, whose conventions hold here too (see the top of rl.h).
 * Everything here but rl_observe_headers works without a handle and is
 * thread-safe.
 *
 *   Which key(s) for this request? .... rl_key_for, rl_keys_for
 *   A key of my own kind ............... rl_key_build; back: rl_key_unescape
 *   Answer with headers ................ rl_format_headers
 *   A provider answered 429 or warned .. rl_observe_headers (a handle),
 *                                        rl_parse_provider_headers (no handle)
 *
 * Self-contained C11 (and C++ compatible), as rl.h.
 */
#ifndef RL_HTTP_H
#define RL_HTTP_H

#include "rl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * Keys
 * ====================================================================== */

/* Who a request is for. A field that is NULL or "" is absent. Values are
 * taken byte for byte: canonicalise them first if several spellings mean
 * one identity (lower-case e-mail addresses, inet_ntop for addresses). */
typedef struct rl_key_ctx {
    const char *user;  /* the accountable end user: account id, e-mail */
    const char *ip;    /* the client's address */
    const char *agent; /* the agent or worker acting: name, credential id */
    const char *org;   /* the organisation or tenant */
} rl_key_ctx;

/* rl_keys_for never gives more keys than this: user, agent, org, ip, global. */
#define RL_KEYS_FOR_MAX 5

/* Writes "KIND:VALUE" to buf (len bytes). KIND is a name (rl_tier_set's
 * rules) without ':'; VALUE is any non-empty C string, written with ':',
 * '%', '*', '?', '\\', space, control bytes and bytes that are not strict
 * UTF-8 (or are C1 controls) as %XX in upper-case hex. The key is always
 * valid, contains no glob metacharacter, never equals another kind's or
 * another value's key, and never equals "global".
 * Returns RL_OK; RL_EINVAL if an argument is invalid, the key would exceed
 * RL_KEY_MAX or buf is too small (buf then holds ""). */
RL_API int rl_key_build(char *buf, size_t len, const char *kind, const char *value);

/* The inverse: splits a key rl_key_build wrote into its kind and decoded
 * value.
 *   kind, kindlen    out (kind may be NULL to skip it).
 *   value, valuelen  out (value may be NULL to skip it).
 * Returns RL_OK; RL_EINVAL for any key rl_key_build cannot have written
 * ("global", "%41" for "A", ...), or a buffer too small. */
RL_API int rl_key_unescape(const char *key, char *kind, size_t kindlen, char *value,
                           size_t valuelen);

/* Writes to buf (len bytes) the key of the most specific identity present
 * in ctx, in this order: user, agent, org, ip; "global" when there is none
 * (ctx NULL too, as rl_keys_for). A present field that cannot make a key
 * fails the call rather than falling back. Returns RL_OK; RL_EINVAL (bad
 * field, buf NULL or too small). */
RL_API int rl_key_for(char *buf, size_t len, const rl_key_ctx *ctx);

/* Every applicable key, in rl_key_for's order, then "global": for limiting
 * a request on all of them at once (rl_acquire_keys).
 *   keys, max  out: room for max keys.
 *   n          out: the number of keys; if max is smaller, RL_EINVAL with
 *              *n saying how many are needed.
 * Returns RL_OK; RL_EINVAL. */
RL_API int rl_keys_for(const rl_key_ctx *ctx, char keys[][RL_KEY_MAX + 1], size_t max, size_t *n);

/* ======================================================================
 * Response headers
 * ====================================================================== */

/* rl_format_headers flags, or'ed, and a buffer size that always suffices. */
#define RL_HEADERS_IETF 0x1    /* RateLimit-Policy and RateLimit (IETF draft 11) */
#define RL_HEADERS_CLASSIC 0x2 /* X-RateLimit-Limit, -Remaining, -Reset */
#define RL_HEADERS_MAX 512

/* Writes a decision as HTTP header lines to buf (len bytes), each ending in
 * CRLF:
 *   RateLimit-Policy: "NAME";q=LIMIT;w=WINDOW
 *   RateLimit: "NAME";r=REMAINING;t=SECONDS
 *   X-RateLimit-Limit / -Remaining / -Reset (seconds until full)
 *   Retry-After: SECONDS (only when refused, whatever the flags)
 * NAME is res->limit_name, LIMIT its burst. window_ns is the time the
 * deciding limit takes to refill LIMIT units: its period when burst equals
 * count (the default), else burst * period / count; 0 leaves out w. t is
 * the Retry-After value when refused, else the seconds until full. Seconds
 * are rounded up. A result without a deciding limit (limit_name "": no
 * limit applied, or the store failed) gives only Retry-After, if refused.
 *   flags  RL_HEADERS_IETF and/or RL_HEADERS_CLASSIC.
 * Returns RL_OK; RL_EINVAL for bad arguments or a buffer too small (buf
 * then holds ""). */
RL_API int rl_format_headers(const rl_result *res, int64_t window_ns, int flags, char *buf,
                             size_t len);

/* What a provider's response headers say about one of its windows; -1 for
 * what they do not say. */
typedef struct rl_provider_quota {
    int64_t limit;          /* units per window */
    int64_t remaining;      /* units left */
    int64_t reset_after_ns; /* until the window is full again (0: already) */
} rl_provider_quota;

typedef struct rl_provider_limits {
    rl_provider_quota requests;
    rl_provider_quota tokens;
    int64_t retry_after_ns; /* -1 when no Retry-After */
    unsigned int n_read;    /* fields recognised and read */
    unsigned int n_bad;     /* fields recognised but malformed, so ignored */
} rl_provider_limits;

/* Reads the rate-limit fields among n response headers (names[i]:
 * values[i], names compared without case): x-ratelimit-{limit,remaining}-
 * {requests,tokens} (integers) and x-ratelimit-reset-{requests,tokens}
 * (durations such as "6m0s", "20ms", or plain seconds), as OpenAI sends
 * them; anthropic-ratelimit-{requests,tokens}-{limit,remaining} and -reset
 * (an RFC 3339 time); Retry-After (delta-seconds or any HTTP-date) and
 * retry-after-ms. Times are made relative to now_ns (clock time, ns since
 * the epoch). A malformed field is skipped on its own; a field given twice
 * keeps the cautious value (lower limit or remaining, later reset or
 * retry).
 *   out  out: what was read; feed retry_after_ns to rl_penalize.
 * Returns RL_OK; RL_EINVAL only for bad arguments. */
RL_API int rl_parse_provider_headers(const char *const *names, const char *const *values, size_t n,
                                     int64_t now_ns, rl_provider_limits *out);

/* Applies a provider's rate-limit response headers to key, through
 * rl_penalize: Retry-After (or retry-after-ms) becomes a cool-down on every
 * resource, and a quota read as exhausted (remaining 0) becomes a cool-down
 * on "requests" or "tokens" until its reset. Headers that say there is
 * room change nothing: the local limits stay in charge. Malformed fields
 * are ignored one by one. Returns RL_OK; RL_EINVAL; the errors of
 * rl_penalize. */
RL_API int rl_observe_headers(rl *r, const char *key, const char *const *names,
                              const char *const *values, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* RL_HTTP_H */
