/*
 * keys.c - rate-limit keys built from a request's identity (user, agent,
 * organisation, IP), for programs that key their limits on values they do
 * not control.
 *
 * Guarantees: pure functions, no store access, no allocation. Every key
 * built is accepted by rl_key_valid. The value is percent-encoded so that
 * rl_key_unescape gives back exactly the kind and value a key was built
 * from, two different (kind, value) pairs never give the same key, no built
 * key equals "global", and no built key holds a glob metacharacter ('*',
 * '?', '\\'): whatever a user sends can neither land in another identity's
 * bucket nor widen a pattern made from a key. Nothing is written past the
 * buffer given; on failure a buffer of non-zero size holds "".
 */
#include "policy.h"

#include <string.h>

/* ':' would fake a kind boundary, '%' an escape, '*', '?' and '\\' a glob;
 * controls are refused by rl_key_valid; a space would split the key in
 * rlctl's tables and in log lines that are read back by whitespace. */
static int rl_keys_ascii_escaped(unsigned char c)
{
    return c < 0x20 || c == 0x7f || c == ':' || c == '%' || c == '*' || c == '?' || c == '\\' ||
           c == ' ';
}

static int rl_keys_kind_valid(const char *kind)
{
    return rl_name_valid(kind) && !strchr(kind, ':');
}

static void rl_keys_clear(char *buf, size_t len)
{
    if (buf && len)
        buf[0] = '\0';
}

/* Encodes into tmp (RL_KEY_MAX + 1 bytes). Returns the length, or 0 when
 * the key would be longer than RL_KEY_MAX. */
static size_t rl_keys_encode(char *tmp, const char *kind, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)value;
    size_t o = strlen(kind);
    memcpy(tmp, kind, o);
    tmp[o++] = ':';
    while (*p) {
        size_t n = *p >= 0x80 ? rl_utf8_len(p) : rl_keys_ascii_escaped(*p) ? 0 : 1;
        if (n) {
            if (o + n > RL_KEY_MAX)
                return 0;
            memcpy(tmp + o, p, n);
            o += n;
            p += n;
            continue;
        }
        /* One byte at a time, even inside a broken sequence, so that the
         * bytes that follow are judged afresh and nothing valid is lost. */
        if (o + 3 > RL_KEY_MAX)
            return 0;
        tmp[o++] = '%';
        tmp[o++] = hex[*p >> 4];
        tmp[o++] = hex[*p & 0xf];
        p++;
    }
    tmp[o] = '\0';
    return o;
}

int rl_key_build(char *buf, size_t len, const char *kind, const char *value)
{
    char tmp[RL_KEY_MAX + 1];
    size_t n;
    rl_keys_clear(buf, len);
    /* An empty value is refused rather than made into "user:": a caller
     * whose user id came back empty would otherwise pool every such
     * request into one bucket without noticing. */
    if (!buf || !kind || !value || !*value || !rl_keys_kind_valid(kind))
        return RL_EINVAL;
    n = rl_keys_encode(tmp, kind, value);
    if (!n || n >= len)
        return RL_EINVAL;
    memcpy(buf, tmp, n + 1);
    return RL_OK;
}

static int rl_keys_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; /* lower case is not what rl_key_build writes */
}

int rl_key_unescape(const char *key, char *kind, size_t kindlen, char *value, size_t valuelen)
{
    char k[RL_NAME_MAX], v[RL_KEY_MAX + 1], again[RL_KEY_MAX + 1];
    const char *colon, *p;
    size_t klen, o = 0;
    rl_keys_clear(kind, kindlen);
    rl_keys_clear(value, valuelen);
    if (!key || !rl_key_valid(key) || !(colon = strchr(key, ':')))
        return RL_EINVAL;
    klen = (size_t)(colon - key);
    if (klen == 0 || klen >= sizeof k)
        return RL_EINVAL;
    memcpy(k, key, klen);
    k[klen] = '\0';
    if (!rl_keys_kind_valid(k))
        return RL_EINVAL;
    for (p = colon + 1; *p; o++) {
        int hi, lo;
        if (*p != '%') {
            v[o] = *p++;
            continue;
        }
        if ((hi = rl_keys_hexval(p[1])) < 0 || (lo = rl_keys_hexval(p[2])) < 0)
            return RL_EINVAL;
        v[o] = (char)(hi << 4 | lo);
        p += 3;
    }
    v[o] = '\0';
    /* Only the one spelling rl_key_build gives is accepted ("%41" for "A",
     * a raw space, "%00" all fail here), so a key maps to one value and a
     * value to one key: re-encoding must give the key back byte for byte. */
    if (o == 0 || strlen(v) != o || !rl_keys_encode(again, k, v) || strcmp(again, key) != 0)
        return RL_EINVAL;
    if ((kind && klen >= kindlen) || (value && o >= valuelen))
        return RL_EINVAL;
    if (kind)
        memcpy(kind, k, klen + 1);
    if (value)
        memcpy(value, v, o + 1);
    return RL_OK;
}

/* Authenticated identities come before the network address, the narrower
 * before the wider: a user's quota follows them across agents and
 * machines; an agent (one worker, often one credential) is what a provider
 * meters; an organisation pools its users; an IP may be a NAT shared by
 * strangers, so it only decides for requests that carry nothing else. */
typedef struct rl_keys_field {
    const char *kind;
    const char *value;
} rl_keys_field;

static size_t rl_keys_add(rl_keys_field *f, size_t n, const char *kind, const char *value)
{
    if (value && *value) {
        f[n].kind = kind;
        f[n].value = value;
        n++;
    }
    return n;
}

static size_t rl_keys_fields(const rl_key_ctx *ctx, rl_keys_field f[4])
{
    size_t n = 0;
    if (!ctx)
        return 0;
    n = rl_keys_add(f, n, "user", ctx->user);
    n = rl_keys_add(f, n, "agent", ctx->agent);
    n = rl_keys_add(f, n, "org", ctx->org);
    return rl_keys_add(f, n, "ip", ctx->ip);
}

int rl_key_for(char *buf, size_t len, const rl_key_ctx *ctx)
{
    rl_keys_field f[4];
    rl_keys_clear(buf, len);
    if (!buf)
        return RL_EINVAL;
    /* A field that is present but unusable fails the call rather than
     * falling back: quietly charging a user to "global" or to their IP
     * would pool them with everyone else. */
    if (rl_keys_fields(ctx, f) > 0)
        return rl_key_build(buf, len, f[0].kind, f[0].value);
    if (len < sizeof "global")
        return RL_EINVAL;
    memcpy(buf, "global", sizeof "global");
    return RL_OK;
}

int rl_keys_for(const rl_key_ctx *ctx, char keys[][RL_KEY_MAX + 1], size_t max, size_t *n)
{
    rl_keys_field f[4];
    size_t nf, i;
    int rc;
    if (!n)
        return RL_EINVAL;
    nf = rl_keys_fields(ctx, f);
    /* *n says how many are needed even on failure, so a caller can size
     * its array (at most RL_KEYS_FOR_MAX) and try again. */
    *n = nf + 1;
    if (!keys || max < nf + 1)
        return RL_EINVAL;
    for (i = 0; i < nf; i++) {
        if ((rc = rl_key_build(keys[i], RL_KEY_MAX + 1, f[i].kind, f[i].value)) != RL_OK) {
            *n = 0;
            return rc;
        }
    }
    memcpy(keys[nf], "global", sizeof "global");
    return RL_OK;
}
