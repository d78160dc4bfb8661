/*
 * codec.c - byte formats of the Redis store: rows, leases, the policy.
 *
 * Guarantees: every decoder checks each length before reading and each
 * value against the bounds the SQLite store's schema and core's checks
 * enforce, so whatever sits in Redis (an older rl, another program, a
 * hand-edited key) is either a valid rl value or RL_ECORRUPT.
 */
#include "bytes.h"
#include "rd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- rows ----------------------------------------------------------------- */

size_t rd_row_encode(const rl_row *row, unsigned char *buf)
{
    size_t o = 2, tl = strlen(row->tier);
    buf[0] = 1;
    buf[1] = (unsigned char)tl;
    memcpy(buf + o, row->tier, tl);
    o += tl;
    rl_put64(buf + o, (uint64_t)row->allowed);
    rl_put64(buf + o + 8, (uint64_t)row->refused);
    rl_put64(buf + o + 16, (uint64_t)row->units);
    rl_put64(buf + o + 24, (uint64_t)row->first_seen);
    rl_put64(buf + o + 32, (uint64_t)row->last_seen);
    o += 40;
    memcpy(buf + o, row->state, row->state_len);
    return o + row->state_len;
}

int rd_row_decode(rl_row *row, const unsigned char *buf, size_t len)
{
    size_t tl, o;
    if (len < 2 || buf[0] != 1 || (tl = buf[1]) >= RL_NAME_MAX || len < 2 + tl + 40)
        return RL_ECORRUPT;
    memcpy(row->tier, buf + 2, tl);
    row->tier[tl] = 0;
    if (tl && (memchr(row->tier, 0, tl) || !rl_name_valid(row->tier))) /* no hidden NUL */
        return RL_ECORRUPT;
    o = 2 + tl;
    row->allowed = (int64_t)rl_get64(buf + o);
    row->refused = (int64_t)rl_get64(buf + o + 8);
    row->units = (int64_t)rl_get64(buf + o + 16);
    row->first_seen = (int64_t)rl_get64(buf + o + 24);
    row->last_seen = (int64_t)rl_get64(buf + o + 32);
    o += 40;
    if (len - o > RL_STATE_MAX)
        return RL_ECORRUPT;
    row->state_len = len - o;
    memcpy(row->state, buf + o, row->state_len);
    row->exists = 1;
    return RL_OK;
}

/* ---- leases --------------------------------------------------------------- */

size_t rd_lease_encode(const rl_lease_rec *rec, uint64_t host, unsigned char *buf)
{
    buf[0] = 1;
    rl_put64(buf + 1, (uint64_t)rec->created);
    rl_put64(buf + 9, (uint64_t)rec->expires);
    rl_put64(buf + 17, (uint64_t)rec->pid);
    rl_put64(buf + 25, (uint64_t)rec->pstart);
    rl_put64(buf + 33, host);
    return 41 + rl_lease_encode(rec, buf + 41);
}

int rd_lease_decode(rl_lease_rec *rec, uint64_t host, const unsigned char *buf, size_t len)
{
    if (len < 41 || buf[0] != 1)
        return RL_ECORRUPT;
    rec->created = (int64_t)rl_get64(buf + 1);
    rec->expires = (int64_t)rl_get64(buf + 9);
    rec->pid = (int64_t)rl_get64(buf + 17);
    rec->pstart = (int64_t)rl_get64(buf + 25);
    if (rl_get64(buf + 33) != host)
        rec->pid = 0; /* another machine's process: only the TTL can tell */
    return rl_lease_decode(rec, buf + 41, len - 41) == RL_OK ? RL_OK : RL_ECORRUPT;
}

uint64_t rd_host_id(void)
{
    char buf[128] = "";
    uint64_t h = 1469598103934665603ULL;
    size_t i, n = 0;
    FILE *fp = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (fp) {
        n = fread(buf, 1, sizeof buf - 1, fp);
        fclose(fp);
    }
    if (n == 0) /* no /proc: a host whose leases only expire by TTL */
        return 0;
    for (i = 0; i < n; i++)
        h = (h ^ (unsigned char)buf[i]) * 1099511628211ULL;
    return h ? h : 1;
}

/* ---- the policy ----------------------------------------------------------- */

typedef struct wbuf {
    unsigned char *p;
    size_t len, cap;
    int oom;
} wbuf;

static void put(wbuf *w, const void *src, size_t n)
{
    if (w->oom)
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        unsigned char *np;
        while (cap < w->len + n)
            cap *= 2;
        if (!(np = realloc(w->p, cap))) {
            w->oom = 1;
            return;
        }
        w->p = np;
        w->cap = cap;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void put64(wbuf *w, uint64_t v)
{
    unsigned char b[8];
    rl_put64(b, v);
    put(w, b, 8);
}

/* Strings: 8-byte length, then the bytes (rule globs may be long). */
static void putstr(wbuf *w, const char *s)
{
    size_t n = strlen(s);
    put64(w, n);
    put(w, s, n);
}

int rd_policy_encode(const rl_policy *p, unsigned char **buf, size_t *len)
{
    wbuf w = { NULL, 0, 0, 0 };
    unsigned char one = 1;
    size_t i, j;
    put(&w, &one, 1);
    putstr(&w, p->default_tier);
    put64(&w, (uint64_t)(int64_t)p->fail_mode);
    put64(&w, p->n_tiers);
    for (i = 0; i < p->n_tiers; i++) {
        const rl_tier *t = &p->tiers[i];
        putstr(&w, t->name);
        put64(&w, (uint64_t)t->unlimited);
        put64(&w, t->n);
        for (j = 0; j < t->n; j++) {
            const rl_ldef *d = &t->limits[j];
            putstr(&w, d->name);
            putstr(&w, d->resource);
            put64(&w, (uint64_t)d->count);
            put64(&w, (uint64_t)d->period_ns);
            put64(&w, (uint64_t)d->burst);
            put64(&w, (uint64_t)(int64_t)d->kind);
        }
    }
    put64(&w, p->n_rules);
    for (i = 0; i < p->n_rules; i++) {
        putstr(&w, p->rules[i].match);
        putstr(&w, p->rules[i].tier);
    }
    if (w.oom) {
        free(w.p);
        return RL_ENOMEM;
    }
    *buf = w.p;
    *len = w.len;
    return RL_OK;
}

typedef struct rbuf {
    const unsigned char *p;
    size_t len, o;
    int bad;
} rbuf;

static uint64_t get64(rbuf *r)
{
    uint64_t v;
    if (r->bad || r->len - r->o < 8) {
        r->bad = 1;
        return 0;
    }
    v = rl_get64(r->p + r->o);
    r->o += 8;
    return v;
}

/* A string of at most max-1 bytes into dst. */
static void getstr(rbuf *r, char *dst, size_t max)
{
    uint64_t n = get64(r);
    if (r->bad || n >= max || r->len - r->o < n) {
        r->bad = 1;
        dst[0] = 0;
        return;
    }
    memcpy(dst, r->p + r->o, (size_t)n);
    dst[n] = 0;
    if (memchr(dst, 0, (size_t)n)) /* a NUL would cut the string short unseen */
        r->bad = 1;
    r->o += (size_t)n;
}

static int get_tier(rbuf *r, rl_tier *t)
{
    char err[128];
    uint64_t n;
    size_t j;
    memset(t, 0, sizeof *t);
    getstr(r, t->name, sizeof t->name);
    t->unlimited = get64(r) != 0;
    n = get64(r);
    if (r->bad || !rl_name_valid(t->name) || n > RL_MAX_LIMITS)
        return RL_ECORRUPT;
    t->n = (size_t)n;
    for (j = 0; j < t->n; j++) {
        rl_ldef *d = &t->limits[j];
        getstr(r, d->name, sizeof d->name);
        getstr(r, d->resource, sizeof d->resource);
        d->count = (int64_t)get64(r);
        d->period_ns = (int64_t)get64(r);
        d->burst = (int64_t)get64(r);
        d->kind = (int)(int64_t)get64(r);
        if (r->bad || !rl_name_valid(d->name) || !rl_name_valid(d->resource) ||
            rl_ldef_check(d, err, sizeof err) != RL_OK)
            return RL_ECORRUPT;
        d->id = rl_limit_id(d->resource, d->name);
    }
    return RL_OK;
}

int rd_policy_decode(rl_policy *p, const unsigned char *buf, size_t len)
{
    rbuf r = { buf, len, 1, 0 };
    rl_tier t;
    char *match = NULL;
    char tier[RL_NAME_MAX];
    uint64_t n, i, fm;
    int rc = RL_ECORRUPT;
    if (len < 1 || buf[0] != 1)
        goto out;
    getstr(&r, p->default_tier, sizeof p->default_tier);
    fm = get64(&r);
    p->fail_mode = (int)(int64_t)fm;
    if (p->fail_mode != RL_FAIL_UNSET && p->fail_mode != RL_FAIL_CLOSED &&
        p->fail_mode != RL_FAIL_OPEN)
        goto out;
    n = get64(&r);
    for (i = 0; i < n && !r.bad; i++) {
        if ((rc = get_tier(&r, &t)) != RL_OK)
            goto out;
        if ((rc = rl_policy_put_tier(p, &t)) != RL_OK)
            goto out;
    }
    rc = RL_ECORRUPT;
    n = get64(&r);
    if (r.bad || n > len)
        goto out;
    if (!(match = malloc(len)))
        return RL_ENOMEM;
    for (i = 0; i < n; i++) {
        getstr(&r, match, len);
        getstr(&r, tier, sizeof tier);
        if (r.bad || !rl_name_valid(tier) || !rl_policy_tier(p, tier))
            goto out;
        if ((rc = rl_policy_add_rule(p, match, tier)) != RL_OK)
            goto out;
        rc = RL_ECORRUPT;
    }
    if (r.o != len || (p->default_tier[0] && !rl_name_valid(p->default_tier)))
        goto out;
    rc = RL_OK;
out:
    free(match);
    return rc;
}
