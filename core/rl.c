/*
 * rl.c - the handle, and every decision made through it.
 *
 * A decision is one write transaction of the store: begin (which queues this
 * process behind every other writer), read the clock, read the key's row,
 * resolve its tier, run the GCRA math of every limit, write the row back,
 * commit. The clock is read only once the write lock is held, so time spent
 * waiting for the lock never turns into a false refusal.
 *
 * Thread safety: one rl * may be shared by threads; a mutex in the handle
 * serialises its calls (the store connection is not shareable). rl_errmsg is
 * valid until the next call on the same handle.
 *
 * The cached policy is reloaded whenever the store's policy version, which
 * comes back with every row read, differs from the cached one: a tier loaded
 * by another process applies from the next decision, at no extra statement.
 */
#include "rl_int.h"
#include "bytes.h"
#include "gcra.h"
#include "lease.h"
#include "parse.h"
#include "window.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct rl {
    pthread_mutex_t mu;
    rl_store *store;
    rl_policy pol;
    int64_t pol_version; /* -1: not loaded */
    rl_tier defaults;    /* rl_options.default_limits */
    int have_defaults;
    int store_clock; /* no caller clock: the store's time if it has one */
    uint64_t sig;    /* rl_group_req.sig: what decides besides the database */
    uint64_t *tier_fp;   /* tier_fingerprint of each tier of pol */
    uint64_t defaults_fp; /* ... and of defaults */
    uint64_t rng;         /* draws state generations (new_generation) */
    rl_options o;
    char err[RL_ERRMSG_MAX];
};

/* One limit's part in a decision: whatever its kind, the same outcome. */
typedef struct lim_eval {
    const rl_ldef *d;
    rl_slot *slot;
    rl_slot next;           /* the slot once admitted */
    int ok;                 /* admitted now, or within max_delay_ns */
    int64_t delay_ns;       /* wait before acting (ok) or needed (!ok) */
    int64_t remaining;      /* units admissible right after this decision */
    int64_t reset_after_ns; /* until the limit is full again */
    int key;
} lim_eval;

/* One key's part in a decision. */
typedef struct key_eval {
    rl_row row;
    rl_state st;
    const rl_tier *t;
} key_eval;

/* a + b and a - b saturated to int64: a clock near either end of int64
 * (an injected one) makes times that clamp there, never wrap. */
static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t v;
    if (__builtin_add_overflow(a, b, &v))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return v;
}

static int64_t sat_sub(int64_t a, int64_t b)
{
    int64_t v;
    if (__builtin_sub_overflow(a, b, &v))
        return b < 0 ? INT64_MAX : INT64_MIN;
    return v;
}

const char *rl_strerror(int code)
{
    switch (code) {
    case RL_OK: return "ok";
    case RL_EINVAL: return "invalid argument";
    case RL_ENOMEM: return "out of memory";
    case RL_ETOOBIG: return "cost exceeds the limit's burst and can never pass";
    case RL_EBUSY: return "store busy: locked past the busy timeout";
    case RL_ESTORE: return "store failure";
    case RL_EREADONLY: return "store is read-only";
    case RL_EFULL: return "store is full";
    case RL_ECORRUPT: return "not an rl database, or damaged";
    case RL_EVERSION: return "database schema is newer than this library";
    case RL_ECONFIG: return "invalid configuration";
    case RL_ENOTFOUND: return "not found";
    case RL_ETIMEOUT: return "timed out";
    case RL_ECANCELED: return "cancelled";
    case RL_ENOLIMIT: return "no tier or default limits apply to the key";
    case RL_ECONNECT: return "store server unreachable";
    case RL_EAUTH: return "store server refused the credentials";
    case RL_EPERM: return "a file is owned by another user or its mode is wider than file_mode";
    default: return "unknown error";
    }
}

const char *rl_version(void)
{
    return RL_VERSION_STRING;
}

const char *rl_errmsg(const rl *r)
{
    if (!r)
        return "out of memory (no handle)";
    return r->err[0] ? r->err : "no error";
}

char *rl__errbuf(rl *r)
{
    return r->err;
}

uint64_t rl__group_sig(const rl *r)
{
    return r->sig;
}

rl_store *rl__store(rl *r)
{
    return r->store;
}

void rl__lock(rl *r)
{
    pthread_mutex_lock(&r->mu);
}

void rl__unlock(rl *r)
{
    pthread_mutex_unlock(&r->mu);
}

static int64_t realtime_clock(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
}

/* The caller's clock if it gave one, else the store's (Redis: the server's
 * TIME, shared by every machine), else CLOCK_REALTIME. */
static int64_t now_ns(rl *r)
{
    int64_t ns;
    if (!r->store_clock || !r->store || !r->store->ops->now ||
        r->store->ops->now(r->store, &ns) != RL_OK)
        return r->o.clock(r->o.clock_ctx);
    return ns; /* on a store failure the next store call reports it */
}

/* After commit said RL_ECONFLICT: whether to run the transaction again.
 * Immediately at first, then after a growing random pause, until
 * busy_timeout_ms has passed since the first attempt; then RL_EBUSY. */
int rl__conflict_retry(rl *r, rl_retry *t, int *rc)
{
    struct timespec ts;
    int64_t now, pause;
    if (*rc != RL_ECONFLICT)
        return 0;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
    if (t->attempt++ == 0)
        t->deadline = now + (int64_t)r->o.busy_timeout_ms * RL_MILLISECOND;
    if (now >= t->deadline) {
        rl_seterr(r->err, RL_EBUSY, "store busy: %d conflicting writes in %d ms", t->attempt,
                  r->o.busy_timeout_ms);
        *rc = RL_EBUSY;
        return 0;
    }
    r->err[0] = 0;
    if (t->attempt > 4) {
        int shift = t->attempt < 5 ? t->attempt : 5;
        t->rng = t->rng * 6364136223846793005ULL + 1442695040888963407ULL;
        pause = (int64_t)((t->rng >> 33) % (uint64_t)((int64_t)10000 << shift));
        ts.tv_sec = 0;
        ts.tv_nsec = (long)pause;
        nanosleep(&ts, NULL);
    }
    return 1;
}

int64_t rl__now(rl *r)
{
    return now_ns(r);
}

int rl_default_path(char *buf, size_t len)
{
    const char *env = getenv("RL_DB"), *base;
    int n;
    if (env && *env)
        n = snprintf(buf, len, "%s", env);
    else if ((base = getenv("XDG_STATE_HOME")) && *base == '/')
        n = snprintf(buf, len, "%s/rl/rl.db", base);
    else if ((base = getenv("HOME")) && *base)
        n = snprintf(buf, len, "%s/.local/state/rl/rl.db", base);
    else
        return RL_ENOTFOUND;
    return n < 0 || (size_t)n >= len ? RL_EINVAL : RL_OK;
}

/* mkdir -p of the directories above the default database, private to the
 * user as XDG asks; failures surface when the store opens the file. */
static void make_parents(const char *path)
{
    char tmp[4096];
    char *p;
    snprintf(tmp, sizeof tmp, "%s", path);
    for (p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            (void)mkdir(tmp, 0700);
            *p = '/';
        }
    }
}

static int build_tier(rl_tier *t, const char *name, const rl_limit *limits, size_t n, char *err)
{
    size_t i, j;
    char why[RL_ERRMSG_MAX - 64];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    if (n > RL_MAX_LIMITS)
        return rl_seterr(err, RL_EINVAL, "tier '%s': %zu limits, at most %d", name, n,
                         RL_MAX_LIMITS);
    if (n > 0 && !limits)
        return rl_seterr(err, RL_EINVAL, "tier '%s': limits is NULL", name);
    t->unlimited = n == 0;
    for (i = 0; i < n; i++) {
        if (rl_ldef_from_limit(&t->limits[i], &limits[i], i, why, sizeof why) != RL_OK)
            return rl_seterr(err, RL_EINVAL, "tier '%s': %s", name, why);
        for (j = 0; j < i; j++)
            if (strcmp(t->limits[j].name, t->limits[i].name) == 0)
                return rl_seterr(err, RL_EINVAL, "tier '%s': duplicate limit name '%s'", name,
                                 t->limits[i].name);
    }
    t->n = n;
    return RL_OK;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n--)
        h = (h ^ *b++) * 0x100000001b3ULL;
    return h;
}

/* Handles whose calls one group-commit leader may decide: same default
 * limits, same durability (the leader's commit is theirs). */
static uint64_t group_sig(const rl *r)
{
    uint64_t h = fnv(0xcbf29ce484222325ULL, &r->o.durability, sizeof r->o.durability);
    size_t i;
    h = fnv(h, &r->have_defaults, sizeof r->have_defaults);
    for (i = 0; r->have_defaults && i < r->defaults.n; i++) {
        const rl_ldef *d = &r->defaults.limits[i];
        h = fnv(h, d->name, strlen(d->name) + 1);
        h = fnv(h, d->resource, strlen(d->resource) + 1);
        h = fnv(h, &d->count, sizeof d->count);
        h = fnv(h, &d->period_ns, sizeof d->period_ns);
        h = fnv(h, &d->burst, sizeof d->burst);
        h = fnv(h, &d->kind, sizeof d->kind);
    }
    return h;
}

/* What a key's slots are written for (rl_state.fp): the tier's name and
 * each limit's identity, kind and numbers, in the same bytes on every
 * machine. Never 0, which stands for unknown. */
static uint64_t tier_fingerprint(const rl_tier *t)
{
    uint64_t h = fnv(0xcbf29ce484222325ULL, t->name, strlen(t->name) + 1);
    unsigned char w[40];
    size_t i;
    for (i = 0; i < t->n; i++) {
        const rl_ldef *d = &t->limits[i];
        rl_put64(w, d->id);
        rl_put64(w + 8, (uint64_t)d->kind);
        rl_put64(w + 16, (uint64_t)d->count);
        rl_put64(w + 24, (uint64_t)d->period_ns);
        rl_put64(w + 32, (uint64_t)d->burst);
        h = fnv(h, w, sizeof w);
    }
    return h ? h : 1;
}

/* A state generation (rl_state.gen) nobody else draws: splitmix64 over a
 * seed from getrandom, the time, the pid and the handle. Never 0. */
static uint64_t new_generation(rl *r)
{
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return z ? z : 1;
}

static uint64_t rng_seed(const rl *r)
{
    uint64_t seed = 0;
    struct timespec ts;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = 0;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    seed = fnv(seed ^ 0xcbf29ce484222325ULL, &ts, sizeof ts);
    clock_gettime(CLOCK_REALTIME, &ts);
    seed = fnv(seed, &ts, sizeof ts);
    seed ^= (uint64_t)getpid() << 32;
    return fnv(seed, &r, sizeof r);
}

/* The fingerprint of t, a tier of the cached policy or the defaults. */
static uint64_t tier_fp(const rl *r, const rl_tier *t)
{
    if (t == &r->defaults)
        return r->defaults_fp;
    return r->tier_fp[t - r->pol.tiers];
}

int rl_open(rl **out, const char *path, const rl_options *o)
{
    static const rl_options defaults = RL_OPTIONS_INIT;
    rl_store_config sc;
    char defpath[4096];
    const char *env;
    rl *r;
    int rc = RL_OK;

    if (!out)
        return RL_EINVAL;
    *out = r = calloc(1, sizeof *r);
    if (!r)
        return RL_ENOMEM;
    pthread_mutex_init(&r->mu, NULL);
    rl_policy_init(&r->pol);
    r->pol_version = -1;
    r->o = defaults;
    if (o) {
        /* Every layout from 1 to ours (core/options.c); all of them are
         * today's, so the copy below reads no field a caller lacks. */
        if (o->version < 1 || o->version > RL_OPTIONS_VERSION) {
            rc = rl_seterr(r->err, RL_EINVAL,
                           o->version > RL_OPTIONS_VERSION
                               ? "rl_options.version %u is newer than this library's (librl "
                                 RL_VERSION_STRING " takes 1 to %d): the program was built "
                                 "with a newer rl.h than the librl it runs with"
                               : "rl_options.version is %u: initialise rl_options with "
                                 "RL_OPTIONS_INIT or rl_options_init() (versions 1 to %d)",
                           o->version, RL_OPTIONS_VERSION);
            goto out;
        }
        r->o = *o;
    }
    r->o.tiers_file = NULL; /* pointers into caller memory are not kept */
    r->o.default_limits = NULL;
    if (!r->o.clock) {
        r->o.clock = realtime_clock;
        r->o.clock_ctx = NULL;
        r->store_clock = 1;
    }
    if (r->o.busy_timeout_ms < 0 || (r->o.fail_mode != RL_FAIL_CLOSED && r->o.fail_mode != RL_FAIL_OPEN) ||
        (r->o.durability != RL_DURABILITY_NORMAL && r->o.durability != RL_DURABILITY_FULL) ||
        (r->o.busy_strategy != RL_BUSY_LOCK && r->o.busy_strategy != RL_BUSY_SQLITE) ||
        (r->o.file_mode & ~0777u) || (r->o.file_mode & 0600u) != 0600u) {
        rc = rl_seterr(r->err, RL_EINVAL,
                       "invalid rl_options: busy_timeout_ms, fail_mode, durability, "
                       "busy_strategy or file_mode (must include 0600) out of range");
        goto out;
    }
    if (o && o->n_default_limits > 0) {
        rc = build_tier(&r->defaults, "", o->default_limits, o->n_default_limits, r->err);
        if (rc != RL_OK)
            goto out;
        r->have_defaults = 1;
    }
    if (!path) {
        if (rl_default_path(defpath, sizeof defpath) != RL_OK) {
            rc = rl_seterr(r->err, RL_EINVAL, "no database path: set RL_DB or HOME");
            goto out;
        }
        env = getenv("RL_DB");
        if (!env || !*env) /* the XDG default: create its directories */
            make_parents(defpath);
        path = defpath;
    }
    sc.busy_timeout_ms = r->o.busy_timeout_ms;
    sc.durability = r->o.durability;
    sc.file_mode = r->o.file_mode;
    sc.flags = r->o.flags;
    sc.busy_strategy = r->o.busy_strategy;
    if ((rc = rl_store_open(&r->store, path, &sc, r->err)) != RL_OK)
        goto out;
    r->sig = group_sig(r);
    r->defaults_fp = tier_fingerprint(&r->defaults);
    r->rng = rng_seed(r);
    if (o && o->tiers_file)
        rc = rl_load_tiers(r, o->tiers_file);
out:
    if (rc == RL_OK)
        r->err[0] = 0;
    return rc;
}

void rl_close(rl *r)
{
    if (!r)
        return;
    if (r->store)
        r->store->ops->close(r->store);
    rl_policy_free(&r->pol);
    free(r->tier_fp);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ---- inside a transaction ---------------------------------------------- */

static int refresh_policy(rl *r, int64_t version)
{
    rl_policy p;
    uint64_t *fp = NULL;
    size_t i;
    int rc;
    if (version == r->pol_version)
        return RL_OK;
    rl_policy_init(&p);
    rc = r->store->ops->policy_get(r->store, &p);
    if (rc == RL_OK && p.n_tiers > 0) {
        if ((fp = malloc(p.n_tiers * sizeof *fp)) != NULL)
            for (i = 0; i < p.n_tiers; i++)
                fp[i] = tier_fingerprint(&p.tiers[i]);
        else
            rc = rl_seterr(r->err, RL_ENOMEM, "out of memory");
    }
    if (rc != RL_OK) {
        rl_policy_free(&p);
        return rc;
    }
    rl_policy_free(&r->pol);
    free(r->tier_fp);
    r->tier_fp = fp;
    r->pol = p;
    r->pol.version = version;
    r->pol_version = version;
    return RL_OK;
}

/* The key's limits: its tier, else the options' defaults. */
static const rl_tier *key_tier(rl *r, const char *key, const rl_row *row, int *source)
{
    const rl_tier *t = rl_policy_resolve(&r->pol, key, row->tier, source);
    if (!t && r->have_defaults) {
        *source = RL_TIER_OPTIONS;
        t = &r->defaults;
    }
    return t;
}

static int slot_kind_of(const rl_ldef *d)
{
    return d->kind == RL_KIND_CONCURRENT ? RL_SLOT_INFLIGHT
           : d->kind == RL_KIND_WINDOW   ? RL_SLOT_WINDOW
                                         : RL_SLOT_GCRA;
}

/* A window slot's words (see store.h): tat = start, rem = cur, burst = prev. */
static rl_window window_of(const rl_slot *s)
{
    rl_window w;
    w.start = s->tat;
    w.cur = s->rem;
    w.prev = s->burst;
    return w;
}

static void set_window(rl_slot *s, rl_window w)
{
    s->tat = w.start;
    s->rem = w.cur;
    s->burst = w.prev;
}

/* The limit a GCRA or window slot was written under, as d's kind. */
static rl_ldef ldef_of_slot(const rl_ldef *d, const rl_slot *o)
{
    rl_ldef od = *d;
    od.kind = o->kind == RL_SLOT_WINDOW ? RL_KIND_WINDOW : RL_KIND_GCRA;
    od.count = o->count;
    od.period_ns = o->period_ns;
    od.burst = o->kind == RL_SLOT_WINDOW ? o->count : o->burst;
    return od;
}

/* ceil(used * to / from), at most twice `to`: a carried-over debt beyond
 * that would outlast any meaning. */
static int64_t carry_units(int64_t used, int64_t from, int64_t to)
{
    __extension__ __int128 u = ((__int128)used * to + from - 1) / from;
    return u > 2 * (__int128)to ? 2 * to : u < 0 ? 0 : (int64_t)u;
}

/* A limit whose algorithm changed keeps the share of it that is spent
 * (what a GCRA bucket lacks of full, or a window's estimate). */
static void carry_across(const rl_ldef *d, const rl_slot *o, rl_slot *s, int64_t now)
{
    rl_ldef od = ldef_of_slot(d, o);
    if (o->kind == RL_SLOT_GCRA) {
        rl_tat tat = { o->tat, o->rem };
        int64_t remaining, reset, retry, used;
        rl_gcra_peek(&od, tat, now, &remaining, &reset, &retry);
        used = od.burst - remaining + rl_gcra_debt(&od, tat, now);
        set_window(s, rl_window_from_used(d, carry_units(used, od.burst, d->count), now));
    } else {
        rl_tat tat = { now, 0 };
        int64_t used = rl_window_estimate(&od, window_of(o), now);
        tat = rl_gcra_adjust(d, tat, carry_units(used, od.count, d->burst));
        s->tat = tat.ns;
        s->rem = tat.rem;
    }
}

/* Slot s of limit d takes over the old slot o of the same limit id. */
static void carry_slot(const rl_ldef *d, const rl_slot *o, rl_slot *s, int64_t now)
{
    rl_ldef od;
    if (s->kind == RL_SLOT_INFLIGHT) {
        s->tat = o->tat; /* units held by leases, whatever the cap is now */
        return;
    }
    if (o->kind != s->kind) {
        carry_across(d, o, s, now);
        return;
    }
    od = ldef_of_slot(d, o);
    if (od.count == d->count && od.period_ns == d->period_ns && od.burst == d->burst) {
        s->tat = o->tat;
        s->rem = o->rem;
        s->burst = o->burst; /* a window's prev; a GCRA burst, unchanged */
    } else if (s->kind == RL_SLOT_WINDOW) {
        set_window(s, rl_window_rescale(&od, d, window_of(o), now));
    } else {
        rl_tat tat = { o->tat, o->rem };
        tat = rl_gcra_rescale(&od, d, tat, now);
        s->tat = tat.ns;
        s->rem = tat.rem;
    }
}

/* An old slot that carries over into one of kind `kind`: the same kind, or
 * the other kind of rate (a limit whose algorithm changed). */
static int carries(int kind, int old_kind)
{
    if (kind == RL_SLOT_INFLIGHT || old_kind == RL_SLOT_INFLIGHT)
        return kind == old_kind;
    return (kind == RL_SLOT_GCRA || kind == RL_SLOT_WINDOW) &&
           (old_kind == RL_SLOT_GCRA || old_kind == RL_SLOT_WINDOW);
}

/* Builds the state the tier's limits will have: existing slots (rescaled if
 * the limit changed since they were written), fresh full slots for new
 * limits, nothing for limits the tier no longer has; then the cool-downs
 * that are still running. Limit slot i is always the tier's limit i.
 * The generation carries over while the state stays with the same tier as
 * it is; a state that starts afresh or is re-tiered gets a new one. */
static void align_state(rl *r, const rl_tier *t, const rl_state *old, rl_state *st,
                        int64_t now)
{
    size_t i, j;
    st->fp = tier_fp(r, t);
    st->gen = old->gen != 0 && old->fp == st->fp ? old->gen : new_generation(r);
    st->n = t->n;
    for (i = 0; i < t->n; i++) {
        const rl_ldef *d = &t->limits[i];
        rl_slot *s = &st->slot[i];
        int kind = slot_kind_of(d);
        s->kind = kind;
        s->id = d->id;
        s->count = d->count;
        s->period_ns = kind == RL_SLOT_INFLIGHT ? 1 : d->period_ns;
        s->burst = d->burst;
        /* GCRA: a full bucket at any clock (before the epoch too); in
         * flight: none */
        s->tat = kind == RL_SLOT_GCRA ? INT64_MIN : 0;
        s->rem = 0;
        if (kind == RL_SLOT_WINDOW) /* an empty window */
            set_window(s, rl_window_fresh(d, now));
        for (j = 0; j < old->n; j++) {
            const rl_slot *o = &old->slot[j];
            if (o->id != d->id || !carries(kind, o->kind))
                continue;
            carry_slot(d, o, s, now);
            break;
        }
    }
    for (j = 0; j < old->n && st->n < RL_MAX_SLOTS; j++)
        if (old->slot[j].kind == RL_SLOT_COOLDOWN && old->slot[j].tat > now)
            st->slot[st->n++] = old->slot[j];
}

static int is_store_failure(int rc)
{
    return rc == RL_EBUSY || rc == RL_ESTORE || rc == RL_EREADONLY || rc == RL_EFULL ||
           rc == RL_ECORRUPT || rc == RL_ENOMEM || rc == RL_EVERSION || rc == RL_ECONNECT ||
           rc == RL_EAUTH;
}

static int fail_mode(const rl *r)
{
    return r->pol.fail_mode != RL_FAIL_UNSET ? r->pol.fail_mode : r->o.fail_mode;
}

static void no_limit_result(rl_result *res)
{
    memset(res, 0, sizeof *res);
    res->allowed = 1;
    res->remaining = INT64_MAX;
}

/* The deciding limit: the refusing one that needs the longest wait, else
 * the one with the smallest share of its burst left. */
static void fill_result(rl_result *res, const lim_eval *ev, size_t n, int allowed)
{
    size_t i, best = 0;
    for (i = 1; i < n; i++) {
        const lim_eval *a = &ev[i], *b = &ev[best];
        if (!allowed) {
            if (!a->ok && (b->ok || a->delay_ns > b->delay_ns))
                best = i;
        } else {
            /* a.rem/a.burst < b.rem/b.burst, cross-multiplied in 128 bits */
            __extension__ __int128 l = (__int128)a->remaining * ev[best].d->burst;
            __extension__ __int128 rr = (__int128)b->remaining * ev[i].d->burst;
            if (l < rr)
                best = i;
        }
    }
    memset(res, 0, sizeof *res);
    res->allowed = allowed;
    res->limit = ev[best].d->burst;
    res->remaining = ev[best].remaining;
    res->retry_after_ns = allowed ? 0 : ev[best].delay_ns;
    res->reset_after_ns = ev[best].reset_after_ns;
    res->key_index = ev[best].key;
    snprintf(res->limit_name, sizeof res->limit_name, "%s", ev[best].d->name);
}

static int check_key(rl *r, const char *key)
{
    if (!key || !rl_key_valid(key))
        return rl_seterr(r->err, RL_EINVAL,
                         "invalid key: must be 1-%d bytes of UTF-8 without control characters",
                         RL_KEY_MAX);
    return RL_OK;
}

static const char *resource_of(const rl_cost *c)
{
    return c->resource ? c->resource : "requests";
}

/* Keys valid and distinct; costs valid, non-negative, one per resource. */
static int check_request(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs,
                         size_t ncosts)
{
    size_t i, j;
    int rc;
    if (!keys || nkeys < 1 || nkeys > RL_MAX_KEYS)
        return rl_seterr(r->err, RL_EINVAL, "a decision takes 1 to %d keys", RL_MAX_KEYS);
    if (!costs || ncosts < 1 || ncosts > RL_MAX_LIMITS)
        return rl_seterr(r->err, RL_EINVAL, "a decision takes 1 to %d costs", RL_MAX_LIMITS);
    for (i = 0; i < nkeys; i++) {
        if ((rc = check_key(r, keys[i])) != RL_OK)
            return rc;
        for (j = 0; j < i; j++)
            if (strcmp(keys[i], keys[j]) == 0)
                return rl_seterr(r->err, RL_EINVAL, "key '%.64s' given twice", keys[i]);
    }
    for (i = 0; i < ncosts; i++) {
        if (!rl_name_valid(resource_of(&costs[i])))
            return rl_seterr(r->err, RL_EINVAL, "invalid resource name");
        if (costs[i].amount < 0)
            return rl_seterr(r->err, RL_EINVAL, "cost %lld of '%s' is negative",
                             (long long)costs[i].amount, resource_of(&costs[i]));
        for (j = 0; j < i; j++)
            if (strcmp(resource_of(&costs[i]), resource_of(&costs[j])) == 0)
                return rl_seterr(r->err, RL_EINVAL, "resource '%s' given twice",
                                 resource_of(&costs[i]));
    }
    return RL_OK;
}

/* The amount asked of resource, or -1 when the call does not name it. */
static int64_t amount_of(const rl_cost *costs, size_t n, const char *resource)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (strcmp(resource_of(&costs[i]), resource) == 0)
            return costs[i].amount;
    return -1;
}

/* The latest end of a running cool-down that covers one of the resources;
 * INT64_MIN when none runs (no instant, 0 included, means "none"). */
static int64_t cooldown_until(const rl_state *st, const rl_cost *costs, size_t n, int64_t now)
{
    int64_t until = INT64_MIN;
    size_t i, j;
    for (i = 0; i < st->n; i++) {
        const rl_slot *s = &st->slot[i];
        int hit;
        if (s->kind != RL_SLOT_COOLDOWN || s->tat <= now || s->tat <= until)
            continue;
        hit = s->id == rl_cooldown_id(NULL);
        for (j = 0; j < n && !hit; j++)
            hit = s->id == rl_cooldown_id(resource_of(&costs[j]));
        if (hit)
            until = s->tat;
    }
    return until;
}

/* The one decision path, for Allow (max_delay 0), Reserve (rv != NULL) and
 * Acquire: every key's row is read and written in one write transaction, so
 * the decision is all-or-nothing across keys, limits and resources. */
/* Leases of one key that are expired or whose owner died, found while
 * walking the key's leases (collected first: the walk must not delete). */
typedef struct reclaim_ctx {
    int64_t now;
    int64_t soonest; /* earliest expiry of a lease that stays; INT64_MIN: none */
    size_t n;
    int64_t id[64];
    size_t n_held[64];
    uint64_t held_id[64][RL_MAX_LIMITS];
    int64_t held_amount[64][RL_MAX_LIMITS];
} reclaim_ctx;

static int reclaim_one(void *ctx, const rl_lease_rec *rec)
{
    reclaim_ctx *rc = ctx;
    if (rec->expires > rc->now && rl_owner_alive(rec->pid, rec->pstart)) {
        if (rc->soonest == INT64_MIN || rec->expires < rc->soonest)
            rc->soonest = rec->expires;
        return 0;
    }
    if (rc->n < 64) {
        rc->id[rc->n] = rec->id;
        rc->n_held[rc->n] = rec->n_held;
        memcpy(rc->held_id[rc->n], rec->held_id, sizeof rec->held_id);
        memcpy(rc->held_amount[rc->n], rec->held_amount, sizeof rec->held_amount);
        rc->n++;
    }
    return 0;
}

/* Gives back the in-flight units a lease held. */
static void release_held(rl_state *st, size_t n, const uint64_t *ids, const int64_t *amounts)
{
    size_t i, j;
    for (i = 0; i < n; i++)
        for (j = 0; j < st->n; j++)
            if (st->slot[j].kind == RL_SLOT_INFLIGHT && st->slot[j].id == ids[i]) {
                st->slot[j].tat = st->slot[j].tat > amounts[i] ? st->slot[j].tat - amounts[i] : 0;
                break;
            }
}

/* Ends the key's expired leases (settled at their estimate, which they
 * already charged) and those of dead owners, freeing their slots. */
static int reclaim(rl *r, const char *key, rl_state *st, int64_t now, int64_t *soonest)
{
    reclaim_ctx *c = malloc(sizeof *c);
    size_t i;
    int rc;
    if (!c)
        return rl_seterr(r->err, RL_ENOMEM, "out of memory");
    c->now = now;
    c->soonest = INT64_MIN;
    c->n = 0;
    rc = r->store->ops->leases_each(r->store, key, reclaim_one, c);
    for (i = 0; i < c->n && rc == RL_OK; i++) {
        release_held(st, c->n_held[i], c->held_id[i], c->held_amount[i]);
        rc = r->store->ops->lease_delete(r->store, c->id[i]);
    }
    *soonest = c->soonest;
    free(c);
    return rc;
}

/* Units in flight on a concurrency limit: admitted while they fit the cap. */
static void inflight_decide(lim_eval *ev, int64_t amount, int64_t now, int64_t soonest)
{
    const rl_ldef *d = ev->d;
    ev->ok = ev->slot->tat + amount <= d->count;
    if (ev->ok)
        ev->next.tat += amount;
    ev->remaining = d->count > ev->next.tat ? d->count - ev->next.tat : 0;
    /* the earliest a slot can come free without a settle: the first expiry
     * (none: INT64_MIN, so 0) */
    ev->delay_ns = ev->ok || soonest <= now ? 0 : sat_sub(soonest, now);
    ev->reset_after_ns = 0;
}

static void gcra_decide(lim_eval *ev, int64_t amount, int64_t now, int64_t max_delay_ns)
{
    rl_tat tat = { ev->slot->tat, ev->slot->rem };
    rl_gcra_out out;
    rl_gcra_decide(ev->d, tat, now, amount, max_delay_ns, &out);
    ev->ok = out.ok;
    ev->next.tat = out.tat.ns;
    ev->next.rem = out.tat.rem;
    ev->delay_ns = out.delay_ns;
    ev->remaining = out.remaining;
    ev->reset_after_ns = out.reset_after_ns;
}

static void window_decide(lim_eval *ev, int64_t amount, int64_t now, int64_t max_delay_ns)
{
    rl_window_out out;
    rl_window_decide(ev->d, window_of(ev->slot), now, amount, max_delay_ns, &out);
    ev->ok = out.ok;
    set_window(&ev->next, out.w);
    ev->delay_ns = out.delay_ns;
    ev->remaining = out.remaining;
    ev->reset_after_ns = out.reset_after_ns;
}

static void window_decide_at(lim_eval *ev, int64_t amount, int64_t now, int64_t delay_ns)
{
    rl_window_out out;
    rl_window_decide_at(ev->d, window_of(ev->slot), now, amount, delay_ns, &out);
    set_window(&ev->next, out.w);
    ev->delay_ns = out.delay_ns;
    ev->remaining = out.remaining;
    ev->reset_after_ns = out.reset_after_ns;
}

/* Decides amount on the limit of ev, by its kind; ev->next is the slot to
 * write if the whole decision admits. */
static void limit_decide(lim_eval *ev, int64_t amount, int64_t now, int64_t max_delay_ns,
                         int64_t soonest)
{
    ev->next = *ev->slot;
    if (ev->d->kind == RL_KIND_CONCURRENT)
        inflight_decide(ev, amount, now, soonest);
    else if (ev->d->kind == RL_KIND_WINDOW)
        window_decide(ev, amount, now, max_delay_ns);
    else
        gcra_decide(ev, amount, now, max_delay_ns);
}

/* Every writing call runs as one write transaction: under the handle's
 * mutex, begin, body, commit (or rollback when either fails), and all of it
 * again when an optimistic store (Redis) reports a conflict. done, if given,
 * runs under the mutex with the final code and returns the call's: what the
 * caller learns of the handle's state (the fail mode, messages) is read
 * while no other thread changes it. */
static int write_tx(rl *r, int (*body)(rl *r, void *ctx), int (*done)(rl *r, void *ctx, int rc),
                    void *ctx)
{
    rl_retry retry = RL_RETRY_INIT;
    int rc;
    pthread_mutex_lock(&r->mu);
    do {
        r->err[0] = 0;
        if ((rc = r->store->ops->begin(r->store, 1)) != RL_OK)
            continue;
        if ((rc = body(r, ctx)) == RL_OK)
            rc = r->store->ops->commit(r->store);
        if (rc != RL_OK) /* a failed commit still needs its rollback to unlock */
            r->store->ops->rollback(r->store);
    } while (rl__conflict_retry(r, &retry, &rc));
    if (done)
        rc = done(r, ctx, rc);
    if (rc == RL_OK) /* what an item of a batch failed with is not the call's */
        r->err[0] = 0;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* One decision in the making: what decide_tx found, for decide_fill. */
typedef struct decision {
    lim_eval ev[RL_MAX_KEYS * RL_MAX_LIMITS];
    key_eval ke[RL_MAX_KEYS];
    size_t n;
    int allowed, cool_key;
    int64_t now, version, cool_delay, delay;
} decision;

/* Inside a write transaction: reads the keys, decides, and writes their
 * rows (and the lease, if one is asked for). Arguments are checked. */
static int decide_tx(rl *r, decision *x, const char *const *keys, size_t nkeys,
                     const rl_cost *costs, size_t ncosts, int64_t max_delay_ns,
                     rl_lease_rec *lease, int64_t ttl)
{
    rl_state old;
    int64_t units, cool = INT64_MIN, soonest = INT64_MIN;
    size_t i, k;
    int rc, source;

    x->n = 0;
    x->allowed = 1;
    x->cool_key = 0;
    x->now = x->version = x->cool_delay = x->delay = 0;
    units = amount_of(costs, ncosts, "requests");
    if (units < 0)
        units = costs[0].amount;
    for (k = 0; k < nkeys; k++) {
        key_eval *e = &x->ke[k];
        int64_t until;
        if ((rc = r->store->ops->row_get(r->store, keys[k], &e->row, &x->version)) != RL_OK)
            return rc;
        if (k == 0) /* after the first read: a remote store's time comes with it */
            x->now = now_ns(r);
        if (k == 0 && (rc = refresh_policy(r, x->version)) != RL_OK)
            return rc;
        if (!(e->t = key_tier(r, keys[k], &e->row, &source)))
            return rl_seterr(r->err, RL_ENOLIMIT,
                             "no tier applies to key '%.64s' and no default limits are set",
                             keys[k]);
        if (rl_state_decode(&old, e->row.state, e->row.state_len) != RL_OK)
            return rl_seterr(r->err, RL_ECORRUPT, "key '%.64s': damaged bucket state", keys[k]);
        align_state(r, e->t, &old, &e->st, x->now);
        if (lease && (rc = reclaim(r, keys[k], &e->st, x->now, &soonest)) != RL_OK)
            return rc;
        if ((until = cooldown_until(&e->st, costs, ncosts, x->now)) > cool) {
            cool = until;
            x->cool_key = (int)k;
        }
        for (i = 0; i < e->t->n; i++) {
            const rl_ldef *d = &e->t->limits[i];
            lim_eval *v = &x->ev[x->n];
            int64_t amount = amount_of(costs, ncosts, d->resource);
            if (amount < 0)
                continue; /* a resource this call does not name */
            if (amount > d->burst)
                return rl_seterr(r->err, RL_ETOOBIG,
                                 "cost %lld exceeds burst %lld of limit '%s': it can never pass",
                                 (long long)amount, (long long)d->burst, d->name);
            if (d->kind == RL_KIND_CONCURRENT && !lease)
                continue; /* only a lease holds units in flight */
            v->d = d;
            v->slot = &e->st.slot[i];
            v->key = (int)k;
            limit_decide(v, amount, x->now, max_delay_ns, soonest);
            x->allowed &= v->ok;
            if (v->delay_ns > x->delay)
                x->delay = v->delay_ns;
            x->n++;
        }
    }
    if (cool > x->now) {
        x->cool_delay = sat_sub(cool, x->now);
        x->allowed &= x->cool_delay <= max_delay_ns;
        if (x->cool_delay > x->delay)
            x->delay = x->cool_delay;
    }
    /* A window admits the caller when the whole decision lets it act: if
     * another limit or a cool-down sets a later time than the window's own,
     * the units count in the window of that time. */
    for (i = 0; x->allowed && i < x->n; i++)
        if (x->ev[i].d->kind == RL_KIND_WINDOW && x->ev[i].delay_ns < x->delay)
            window_decide_at(&x->ev[i], amount_of(costs, ncosts, x->ev[i].d->resource), x->now,
                             x->delay);
    if (x->allowed)
        for (i = 0; i < x->n; i++)
            *x->ev[i].slot = x->ev[i].next;
    if (x->allowed && lease) {
        lease->n_held = 0;
        for (i = 0; i < x->n; i++) {
            int64_t amount = amount_of(costs, ncosts, x->ev[i].d->resource);
            if (x->ev[i].d->kind == RL_KIND_CONCURRENT && amount > 0) {
                lease->held_id[lease->n_held] = x->ev[i].d->id;
                lease->held_amount[lease->n_held++] = amount;
            }
        }
        snprintf(lease->key, sizeof lease->key, "%s", keys[0]);
        lease->created = x->now;
        lease->expires = sat_add(x->now, ttl);
        rl_owner_self(&lease->pid, &lease->pstart);
        lease->n_est = ncosts;
        for (i = 0; i < ncosts; i++) {
            snprintf(lease->est_resource[i], RL_NAME_MAX, "%s", resource_of(&costs[i]));
            lease->est_amount[i] = costs[i].amount;
        }
        if ((rc = r->store->ops->lease_put(r->store, lease)) != RL_OK)
            return rc;
    }
    for (k = 0; k < nkeys; k++) {
        rl_row *row = &x->ke[k].row;
        row->state_len = rl_state_encode(&x->ke[k].st, row->state);
        /* its first decision (a new key, or one reset or created by an
         * assignment or a cool-down): any time, 0 too, is first_seen */
        if (row->allowed == 0 && row->refused == 0)
            row->first_seen = x->now;
        row->last_seen = x->now;
        if (x->allowed) { /* counters stop at INT64_MAX */
            row->allowed = sat_add(row->allowed, 1);
            row->units = sat_add(row->units, units);
        } else {
            row->refused = sat_add(row->refused, 1);
        }
        if ((rc = r->store->ops->row_put(r->store, keys[k], row)) != RL_OK)
            return rc;
    }
    return RL_OK;
}

/* What the caller learns of a decision that decide_tx made and that was
 * committed. */
static void decide_fill(const decision *x, const char *key0, const rl_cost *costs,
                        size_t ncosts, rl_result *res, rl_reservation *rv)
{
    size_t i;
    if (x->n == 0)
        no_limit_result(res);
    else
        fill_result(res, x->ev, x->n, x->allowed);
    if (x->cool_delay > 0 && x->cool_delay == x->delay) {
        /* the cool-down is what decides: nothing passes before it ends */
        res->allowed = x->allowed;
        res->limit = 0;
        res->remaining = 0;
        res->retry_after_ns = x->allowed ? 0 : x->cool_delay;
        if (res->reset_after_ns < x->cool_delay)
            res->reset_after_ns = x->cool_delay;
        res->key_index = x->cool_key;
        snprintf(res->limit_name, sizeof res->limit_name, "cooldown");
    }
    if (rv) {
        memset(rv, 0, sizeof *rv);
        rv->ok = x->allowed;
        rv->delay_ns = x->delay;
        rv->time_to_act = sat_add(x->now, x->delay);
        rv->generation_ = x->ke[0].st.gen;
        rv->n_ = x->allowed ? x->n : 0;
        for (i = 0; i < rv->n_; i++) {
            rv->amount_[i] = amount_of(costs, ncosts, x->ev[i].d->resource);
            rv->id_[i] = x->ev[i].d->id;
            rv->tat_[i] = x->ev[i].next.tat; /* a window's: the window it is counted in */
            rv->rem_[i] = x->ev[i].next.rem;
        }
        snprintf(rv->key_, sizeof rv->key_, "%s", key0);
        res->retry_after_ns = x->allowed ? 0 : x->delay;
    }
}

/* A store failure: the fail mode's answer. */
static void failed_result(const rl *r, rl_result *res)
{
    memset(res, 0, sizeof *res);
    res->allowed = res->degraded = fail_mode(r) == RL_FAIL_OPEN;
}

typedef struct decide_arg {
    const char *const *keys;
    size_t nkeys;
    const rl_cost *costs;
    size_t ncosts;
    int64_t max_delay_ns, ttl;
    rl_lease_rec *lease;
    rl_result *res;
    rl_reservation *rv;
    decision x;
} decide_arg;

static int decide_body(rl *r, void *ctx)
{
    decide_arg *a = ctx;
    int rc;
    if (a->nkeys > 1 && r->store->ops->prefetch &&
        (rc = r->store->ops->prefetch(r->store, a->keys, a->nkeys)) != RL_OK)
        return rc;
    return decide_tx(r, &a->x, a->keys, a->nkeys, a->costs, a->ncosts, a->max_delay_ns,
                     a->lease, a->ttl);
}

static int decide_done(rl *r, void *ctx, int rc)
{
    decide_arg *a = ctx;
    if (rc == RL_OK)
        decide_fill(&a->x, a->keys[0], a->costs, a->ncosts, a->res, a->rv);
    else if (is_store_failure(rc))
        failed_result(r, a->res);
    return rc;
}

static int decide(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs,
                  size_t ncosts, int64_t max_delay_ns, rl_result *res, rl_reservation *rv,
                  rl_lease_rec *lease)
{
    decide_arg *a;
    int rc;
    if (!res)
        return rl_seterr(r->err, RL_EINVAL, "result is NULL");
    memset(res, 0, sizeof *res);
    if (rv)
        memset(rv, 0, sizeof *rv);
    if ((rc = check_request(r, keys, nkeys, costs, ncosts)) != RL_OK)
        return rc;
    if (!(a = malloc(sizeof *a)))
        return rl_seterr(r->err, RL_ENOMEM, "out of memory");
    a->keys = keys;
    a->nkeys = nkeys;
    a->costs = costs;
    a->ncosts = ncosts;
    a->max_delay_ns = max_delay_ns < 0 ? 0 : max_delay_ns; /* INT64_MAX: no limit */
    a->ttl = 0;
    if (lease) { /* for a lease, max_delay_ns is its TTL: it admits now or never */
        a->ttl = a->max_delay_ns;
        a->max_delay_ns = 0;
    }
    a->lease = lease;
    a->res = res;
    a->rv = rv;
    rc = write_tx(r, decide_body, decide_done, a);
    free(a);
    return rc;
}

typedef struct batch_arg {
    rl_batch_item *items;
    size_t n;
    const char **keys;
    decision x;
} batch_arg;

static int batch_body(rl *r, void *ctx)
{
    batch_arg *a = ctx;
    rl_batch_item *items = a->items;
    rl_cost c;
    size_t i, m = 0;
    int rc;
    c.resource = "requests";
    for (i = 0; i < a->n; i++) { /* bad items are answered alone; the rest go on */
        memset(&items[i].res, 0, sizeof items[i].res);
        c.amount = items[i].cost;
        items[i].rc = check_request(r, &items[i].key, 1, &c, 1);
        if (items[i].rc == RL_OK)
            a->keys[m++] = items[i].key;
    }
    if (r->store->ops->prefetch && (rc = r->store->ops->prefetch(r->store, a->keys, m)) != RL_OK)
        return rc;
    for (i = 0; i < a->n; i++) {
        if (items[i].rc != RL_OK)
            continue;
        c.amount = items[i].cost;
        items[i].rc = decide_tx(r, &a->x, &items[i].key, 1, &c, 1, 0, NULL, 0);
        if (items[i].rc == RL_OK)
            decide_fill(&a->x, items[i].key, &c, 1, &items[i].res, NULL);
        else if (is_store_failure(items[i].rc))
            return items[i].rc;
    }
    return RL_OK;
}

static int batch_done(rl *r, void *ctx, int rc)
{
    batch_arg *a = ctx;
    size_t i;
    if (rc != RL_OK) /* nothing of the batch was written */
        for (i = 0; i < a->n; i++) {
            a->items[i].rc = rc;
            if (is_store_failure(rc))
                failed_result(r, &a->items[i].res);
            else
                memset(&a->items[i].res, 0, sizeof a->items[i].res);
        }
    return rc;
}

int rl_allow_batch(rl *r, rl_batch_item *items, size_t n)
{
    batch_arg *a;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!items && n)
        return rl_seterr(r->err, RL_EINVAL, "items is NULL");
    if (n == 0) {
        r->err[0] = 0;
        return RL_OK;
    }
    if (!(a = malloc(sizeof *a)) || !(a->keys = malloc(n * sizeof *a->keys))) {
        free(a);
        return rl_seterr(r->err, RL_ENOMEM, "out of memory");
    }
    a->items = items;
    a->n = n;
    rc = write_tx(r, batch_body, batch_done, a);
    free(a->keys);
    free(a);
    return rc;
}

/* Allow, Wait and Reserve decide `cost` units of "requests" on one key. */
static int decide_requests(rl *r, const char *key, int64_t cost, int64_t max_delay_ns,
                           rl_result *res, rl_reservation *rv)
{
    rl_cost c;
    c.resource = "requests";
    c.amount = cost;
    return decide(r, &key, 1, &c, 1, max_delay_ns, res, rv, NULL);
}

/* Copies a string known to fit, or cuts it; snprintf costs more on the
 * path every decision takes. */
static void copy_str(char *dst, const char *src, size_t cap)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* A request's costs, into c. One read from the lock file (posted), which
 * any process of the group or a damaged file may have written, is bounded
 * and checked as the caller's own arguments would be before anything is
 * decided from it; the leader's own was checked when it was made. */
static int group_req_costs(rl *r, const rl_group_req *q, rl_cost *c, int posted)
{
    size_t j;
    if (posted && (q->ncosts < 1 || q->ncosts > RL_MAX_LIMITS || !memchr(q->key, 0, sizeof q->key)))
        return rl_seterr(r->err, RL_ECORRUPT, "a queued request in the lock file is damaged");
    for (j = 0; j < q->ncosts; j++) {
        if (posted && !memchr(q->resource[j], 0, RL_NAME_MAX))
            return rl_seterr(r->err, RL_ECORRUPT, "a queued request in the lock file is damaged");
        c[j].resource = q->resource[j];
        c[j].amount = q->amount[j];
    }
    return posted ? check_request(r, (const char *const[]){ q->key }, 1, c, q->ncosts) : RL_OK;
}

/* As a group-commit leader, holding the write lock: decides the batch in
 * one transaction, each request as rl_allow would alone, in order, taking
 * in requests posted meanwhile until none is left, so that a process that
 * was answered a moment ago and asks again makes this commit too. A store
 * failure on one request's key (a damaged row, say) answers that request
 * alone, and the others are decided again without it; one of the
 * transaction itself (begin, commit) answers them all. */
static void group_lead(rl *r, decision *x, rl_group_req **batch, size_t n)
{
    unsigned char alone[RL_GROUP_MAX] = { 0 };
    rl_cost c[RL_MAX_LIMITS] = { { NULL, 0 } };
    size_t i, bad;
    int rc, first = 1;
    do {
        bad = n;
        rc = r->store->ops->begin(r->store, 1);
        for (i = 0; rc == RL_OK && i < n; i++) {
            const char *key = batch[i]->key;
            if (!alone[i]) {
                size_t nc = batch[i]->ncosts;
                r->err[0] = 0;
                memset(&batch[i]->res, 0, sizeof batch[i]->res);
                batch[i]->rc = group_req_costs(r, batch[i], c, i > 0);
                if (batch[i]->rc == RL_OK)
                    batch[i]->rc = decide_tx(r, x, &key, 1, c, nc, 0, NULL, 0);
                if (batch[i]->rc == RL_OK)
                    decide_fill(x, key, c, nc, &batch[i]->res, NULL);
                else if (is_store_failure(batch[i]->rc))
                    rc = batch[(bad = i)]->rc;
                /* an answer carries its own message: none when it is RL_OK */
                if (batch[i]->rc == RL_OK)
                    batch[i]->err[0] = 0;
                else
                    copy_str(batch[i]->err, r->err, sizeof batch[i]->err);
            }
            if (first && rc == RL_OK && i + 1 == n)
                n += r->store->ops->group_take(r->store, r->sig, batch + n, RL_GROUP_MAX - n);
        }
        first = 0;
        if (rc == RL_OK)
            rc = r->store->ops->commit(r->store);
        if (rc == RL_OK)
            break;
        r->store->ops->rollback(r->store);
        if (bad < n)
            alone[bad] = 1;
    } while (bad < n);
    for (i = 0; rc != RL_OK && i < n; i++) /* nothing of the batch was written */
        if (!alone[i]) {
            batch[i]->rc = rc;
            memset(&batch[i]->res, 0, sizeof batch[i]->res);
            copy_str(batch[i]->err, r->err, sizeof batch[i]->err);
        }
    r->store->ops->group_end(r->store);
}

/* rl_allow and rl_acquire through group commit, when the store offers it
 * and the handle reads the shared clock: RL_GROUP_NONE when not. */
static int decide_grouped(rl *r, const char *key, const rl_cost *costs, size_t n,
                          rl_result *res)
{
    struct {
        rl_group_req me;
        decision x;
    } *a;
    rl_group_req *batch[RL_GROUP_MAX];
    size_t i;
    int rc;
    if (!r->store_clock || !r->store->ops->group_join)
        return RL_GROUP_NONE;
    if (!res)
        return rl_seterr(r->err, RL_EINVAL, "result is NULL");
    memset(res, 0, sizeof *res);
    pthread_mutex_lock(&r->mu);
    r->err[0] = 0;
    if ((rc = check_request(r, &key, 1, costs, n)) != RL_OK)
        goto out;
    if (!(a = malloc(sizeof *a))) {
        rc = rl_seterr(r->err, RL_ENOMEM, "out of memory");
        goto out;
    }
    /* all of it: it is copied into a file other processes map */
    memset(&a->me, 0, sizeof a->me);
    copy_str(a->me.key, key, sizeof a->me.key);
    a->me.ncosts = n;
    for (i = 0; i < n; i++) {
        copy_str(a->me.resource[i], resource_of(&costs[i]), RL_NAME_MAX);
        a->me.amount[i] = costs[i].amount;
    }
    a->me.sig = r->sig;
    rc = r->store->ops->group_join(r->store, &a->me);
    if (rc == RL_GROUP_LEAD) {
        batch[0] = &a->me;
        group_lead(r, &a->x, batch, 1);
        rc = RL_OK;
    }
    if (rc == RL_OK) {
        *res = a->me.res;
        if ((rc = a->me.rc) != RL_OK)
            copy_str(r->err, a->me.err, sizeof r->err);
    }
    if (is_store_failure(rc))
        failed_result(r, res);
    /* a leader's buffer holds what the last request of its batch said,
     * maybe another process's error: its own answer is what counts */
    if (rc == RL_OK)
        r->err[0] = 0;
    free(a);
out:
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int rl_allow(rl *r, const char *key, int64_t cost, rl_result *res)
{
    rl_cost c;
    int rc;
    if (!r)
        return RL_EINVAL;
    c.resource = "requests";
    c.amount = cost;
    if ((rc = decide_grouped(r, key, &c, 1, res)) != RL_GROUP_NONE)
        return rc;
    return decide_requests(r, key, cost, 0, res, NULL);
}

int rl_acquire(rl *r, const char *key, const rl_cost *costs, size_t n, rl_result *res)
{
    int rc;
    if (!r)
        return RL_EINVAL;
    if ((rc = decide_grouped(r, key, costs, n, res)) != RL_GROUP_NONE)
        return rc;
    return decide(r, &key, 1, costs, n, 0, res, NULL, NULL);
}

int rl_acquire_keys(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs, size_t n,
                    rl_result *res)
{
    if (!r)
        return RL_EINVAL;
    return decide(r, keys, nkeys, costs, n, 0, res, NULL, NULL);
}

int rl_reserve(rl *r, const char *key, int64_t cost, int64_t max_delay_ns, rl_reservation *rv)
{
    rl_result res;
    if (!r)
        return RL_EINVAL;
    if (!rv)
        return rl_seterr(r->err, RL_EINVAL, "reservation is NULL");
    memset(rv, 0, sizeof *rv);
    return decide_requests(r, key, cost, max_delay_ns, &res, rv);
}

int rl_lease_begin(rl *r, const char *key, const rl_cost *estimate, size_t n, int64_t ttl_ns,
                   rl_lease *lease, rl_result *res)
{
    rl_lease_rec *rec;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!lease)
        return rl_seterr(r->err, RL_EINVAL, "lease is NULL");
    memset(lease, 0, sizeof *lease);
    if (ttl_ns <= 0 || ttl_ns > RL_FILL_MAX)
        return rl_seterr(r->err, RL_EINVAL, "lease TTL must be positive (at most 50 years)");
    if (!(rec = calloc(1, sizeof *rec)))
        return rl_seterr(r->err, RL_ENOMEM, "out of memory");
    rc = decide(r, &key, 1, estimate, n, ttl_ns, res, NULL, rec);
    if (rc == RL_OK && res->allowed) {
        lease->id = rec->id;
        lease->expires_at = rec->expires;
    }
    free(rec);
    return rc;
}

/* Charges (units > 0) or refunds (units < 0) a settled lease's difference
 * from its estimate on one rate limit; the lease was charged at created. */
static void settle_slot(const rl_ldef *d, rl_slot *s, int64_t now, int64_t units,
                        int64_t created)
{
    rl_tat tat = { s->tat, s->rem };
    if (d->kind == RL_KIND_WINDOW) {
        set_window(s, rl_window_adjust(d, window_of(s), now, units, created));
        return;
    }
    tat = rl_gcra_adjust(d, tat, units);
    s->tat = tat.ns;
    s->rem = tat.rem;
}

typedef struct lease_arg {
    const rl_lease *lease;
    const rl_cost *actual; /* NULL: cancel */
    size_t n;
    rl_lease_rec rec;
    int expired;
} lease_arg;

static int lease_end_tx(rl *r, void *ctx)
{
    lease_arg *a = ctx;
    rl_lease_rec *rec = &a->rec;
    rl_row row;
    rl_state old, st;
    const rl_tier *t;
    int64_t now = now_ns(r), version, est, act;
    size_t i, j;
    int rc, source;
    if ((rc = r->store->ops->lease_get(r->store, a->lease->id, rec)) != RL_OK)
        return rc;
    if ((rc = r->store->ops->row_get(r->store, rec->key, &row, &version)) != RL_OK)
        return rc;
    if ((rc = refresh_policy(r, version)) != RL_OK)
        return rc;
    if (rl_state_decode(&old, row.state, row.state_len) != RL_OK)
        return rl_seterr(r->err, RL_ECORRUPT, "key '%.64s': damaged bucket state", rec->key);
    a->expired = now >= rec->expires;
    if ((t = key_tier(r, rec->key, &row, &source)))
        align_state(r, t, &old, &st, now);
    else
        st = old; /* no limits apply any more: only the slots to free */
    for (i = 0; t && !a->expired && i < t->n; i++) {
        const rl_ldef *d = &t->limits[i];
        if (d->kind == RL_KIND_CONCURRENT)
            continue;
        for (est = 0, j = 0; j < rec->n_est; j++)
            if (strcmp(rec->est_resource[j], d->resource) == 0)
                est = rec->est_amount[j];
        act = a->actual ? amount_of(a->actual, a->n, d->resource) : 0;
        if (act < 0)
            act = est; /* not named: settled at its estimate */
        if (act != est) {
            settle_slot(d, &st.slot[i], now, act - est, rec->created);
            if (strcmp(d->resource, "requests") == 0)
                row.units = sat_add(row.units, act - est);
        }
    }
    release_held(&st, rec->n_held, rec->held_id, rec->held_amount);
    row.state_len = rl_state_encode(&st, row.state);
    if ((rc = r->store->ops->lease_delete(r->store, rec->id)) != RL_OK)
        return rc;
    return r->store->ops->row_put(r->store, rec->key, &row);
}

static int lease_end_done(rl *r, void *ctx, int rc)
{
    const lease_arg *a = ctx;
    if (rc == RL_OK && a->expired)
        return rl_seterr(r->err, RL_ETIMEOUT,
                         "lease %lld had expired: it was settled at its estimate",
                         (long long)a->lease->id);
    return rc;
}

/* Settles (actual != NULL) or cancels (actual == NULL: everything back) a
 * lease, and frees the slots it held, in one write transaction. */
static int lease_end(rl *r, const rl_lease *lease, const rl_cost *actual, size_t n)
{
    lease_arg *a;
    int rc;
    if (!lease || lease->id <= 0)
        return rl_seterr(r->err, RL_EINVAL, "not a granted lease");
    if (actual) {
        const char *key = "k";
        if ((rc = check_request(r, &key, 1, actual, n)) != RL_OK)
            return rc;
    }
    if (!(a = calloc(1, sizeof *a)))
        return rl_seterr(r->err, RL_ENOMEM, "out of memory");
    a->lease = lease;
    a->actual = actual;
    a->n = n;
    rc = write_tx(r, lease_end_tx, lease_end_done, a);
    free(a);
    return rc;
}

int rl_lease_settle(rl *r, const rl_lease *lease, const rl_cost *actual, size_t n)
{
    if (!r)
        return RL_EINVAL;
    if (!actual)
        return rl_seterr(r->err, RL_EINVAL, "actual costs are NULL");
    return lease_end(r, lease, actual, n);
}

int rl_lease_cancel(rl *r, const rl_lease *lease)
{
    if (!r)
        return RL_EINVAL;
    return lease_end(r, lease, NULL, 0);
}

/* A key read back from the store that the API would refuse as an argument
 * (a control character, not UTF-8): the file or server was written by
 * something else. Refused rather than handed on, so that it cannot forge
 * lines or send escape sequences wherever the caller prints keys. */
static int stored_key_invalid(char *err, const char *key)
{
    char shown[64];
    rl_parse_quote(shown, sizeof shown, key, strlen(key));
    return rl_seterr(err, RL_ECORRUPT, "stored key '%s' is not a valid key (tampered?)", shown);
}

typedef struct leases_ctx {
    int (*fn)(void *ctx, const rl_lease_info *l);
    void *ctx;
    char *err;
    rl_lease_info info;
} leases_ctx;

static int lease_info(void *ctx, const rl_lease_rec *rec)
{
    leases_ctx *lc = ctx;
    rl_lease_info *li = &lc->info;
    size_t i;
    if (!rl_key_valid(rec->key))
        return stored_key_invalid(lc->err, rec->key);
    memset(li, 0, sizeof *li);
    li->id = rec->id;
    snprintf(li->key, sizeof li->key, "%s", rec->key);
    li->created_ns = rec->created;
    li->expires_ns = rec->expires;
    li->pid = rec->pid;
    li->owner_alive = rl_owner_alive(rec->pid, rec->pstart);
    li->n_costs = rec->n_est;
    for (i = 0; i < rec->n_est; i++) {
        snprintf(li->costs[i].resource, RL_NAME_MAX, "%s", rec->est_resource[i]);
        li->costs[i].amount = rec->est_amount[i];
    }
    return lc->fn(lc->ctx, li);
}

int rl_leases_list(rl *r, const char *key, int (*fn)(void *ctx, const rl_lease_info *l),
                   void *ctx)
{
    leases_ctx *lc;
    int rc, began = 0;
    if (!r)
        return RL_EINVAL;
    if (!fn)
        return rl_seterr(r->err, RL_EINVAL, "callback is NULL");
    if (key && (rc = check_key(r, key)) != RL_OK)
        return rc;
    if (!(lc = malloc(sizeof *lc)))
        return rl_seterr(r->err, RL_ENOMEM, "out of memory");
    lc->fn = fn;
    lc->ctx = ctx;
    lc->err = r->err;
    pthread_mutex_lock(&r->mu);
    r->err[0] = 0;
    if ((rc = r->store->ops->begin(r->store, 0)) != RL_OK)
        goto out;
    began = 1;
    rc = r->store->ops->leases_each(r->store, key, lease_info, lc);
out:
    if (began)
        r->store->ops->rollback(r->store);
    pthread_mutex_unlock(&r->mu);
    free(lc);
    return rc;
}

/* The limit a slot was written under, from its own words. */
static rl_ldef ldef_of(const rl_slot *s)
{
    rl_ldef d;
    memset(&d, 0, sizeof d);
    d.kind = s->kind == RL_SLOT_WINDOW ? RL_KIND_WINDOW : RL_KIND_GCRA;
    d.count = s->count;
    d.period_ns = s->period_ns;
    d.burst = s->kind == RL_SLOT_WINDOW ? s->count : s->burst;
    return d;
}

/* A reservation's TAT right after it was (after_ns, after_rem). */
static void cancel_gcra(rl_slot *s, int64_t after_ns, int64_t after_rem, int64_t amount)
{
    rl_ldef d = ldef_of(s);
    rl_tat cur = { s->tat, s->rem }, after = { after_ns, after_rem };
    if (after.rem < 0 || after.rem >= d.count || amount <= 0 || amount > d.burst)
        return;
    cur = rl_gcra_cancel(&d, cur, after, amount);
    s->tat = cur.ns;
    s->rem = cur.rem;
}

/* A reservation counted in the window that begins at charged_start. */
static void cancel_window(rl_slot *s, int64_t charged_start, int64_t amount, int64_t now)
{
    rl_ldef d = ldef_of(s);
    if (amount <= 0 || amount > d.count)
        return;
    set_window(s, rl_window_cancel(&d, window_of(s), charged_start, amount, now));
}

static int cancel_tx(rl *r, void *ctx)
{
    const rl_reservation *rv = ctx;
    const rl_tier *t;
    rl_row row;
    rl_state st;
    int64_t version, now;
    size_t i, j;
    int rc, source;
    /* Once its time has come the caller may have acted: nothing to return. */
    if ((now = now_ns(r)) >= rv->time_to_act)
        return RL_OK;
    if ((rc = r->store->ops->row_get(r->store, rv->key_, &row, &version)) != RL_OK)
        return rc;
    if (!row.exists)
        return RL_OK; /* reset (or pruned) since: nothing of it is left */
    if ((rc = refresh_policy(r, version)) != RL_OK)
        return rc;
    if (rl_state_decode(&st, row.state, row.state_len) != RL_OK)
        return rl_seterr(r->err, RL_ECORRUPT, "damaged bucket state");
    /* Another generation of the key's state (reset and decided again,
     * re-tiered by a decision since), or a tier other than the one the
     * state was written for (re-tiered, not decided yet): what the
     * reservation took is not in these buckets, nothing is given back. */
    if (!(t = key_tier(r, rv->key_, &row, &source)) || st.gen != rv->generation_ ||
        st.fp != tier_fp(r, t))
        return RL_OK;
    for (i = 0; i < rv->n_; i++) {
        for (j = 0; j < st.n; j++) {
            rl_slot *s = &st.slot[j];
            if (s->id != rv->id_[i])
                continue;
            if (s->kind == RL_SLOT_WINDOW)
                cancel_window(s, rv->tat_[i], rv->amount_[i], now);
            else if (s->kind == RL_SLOT_GCRA)
                cancel_gcra(s, rv->tat_[i], rv->rem_[i], rv->amount_[i]);
            break;
        }
    }
    row.state_len = rl_state_encode(&st, row.state);
    return r->store->ops->row_put(r->store, rv->key_, &row);
}

int rl_cancel(rl *r, rl_reservation *rv)
{
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!rv)
        return rl_seterr(r->err, RL_EINVAL, "reservation is NULL");
    if (!rv->ok || rv->n_ == 0 || rv->n_ > RL_MAX_LIMITS) {
        r->err[0] = 0;
        return RL_OK;
    }
    if ((rc = check_key(r, rv->key_)) != RL_OK)
        return rc;
    /* Once given back, the units must not come back twice: the state cannot
     * tell a second cancel from a refund, so the reservation is marked. */
    if ((rc = write_tx(r, cancel_tx, NULL, rv)) == RL_OK)
        rv->n_ = 0;
    return rc;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
}

/* Sleeps until deadline (monotonic) in slices short enough that a
 * cancellation is seen within 10 ms. Returns 1 if cancelled. */
static int sleep_until(int64_t deadline, const volatile sig_atomic_t *cancel)
{
    for (;;) {
        int64_t left = deadline - mono_ns();
        struct timespec ts;
        if (cancel && *cancel)
            return 1;
        if (left <= 0)
            return 0;
        if (left > 5 * RL_MILLISECOND)
            left = 5 * RL_MILLISECOND;
        ts.tv_sec = 0;
        ts.tv_nsec = (long)left;
        nanosleep(&ts, NULL);
    }
}

int rl_wait_ex(rl *r, const char *key, const rl_cost *costs, size_t n, int priority,
               int64_t timeout_ns, const volatile sig_atomic_t *cancel, rl_result *res)
{
    rl_reservation rv;
    int64_t deadline = INT64_MAX, left, horizon;
    int rc, first = 1;

    if (!r)
        return RL_EINVAL;
    if (!res)
        return rl_seterr(r->err, RL_EINVAL, "result is NULL");
    memset(res, 0, sizeof *res);
    if (priority != RL_PRIORITY_INTERACTIVE && priority != RL_PRIORITY_BATCH)
        return rl_seterr(r->err, RL_EINVAL, "unknown priority %d", priority);
    if (cancel && *cancel)
        return rl_seterr(r->err, RL_ECANCELED, "cancelled before waiting");
    if (timeout_ns < 0)
        timeout_ns = 0;
    for (;;) {
        /* The first decision may take the whole timeout: its delay counts
         * from its own clock reading, made once the store's lock is held, so
         * neither queuing for the lock nor deciding eats into the timeout.
         * The deadline for later ones starts once it is made. INT64_MAX
         * waits for ever. */
        if (first || timeout_ns == INT64_MAX)
            left = timeout_ns;
        else if ((left = deadline - mono_ns()) < 0)
            left = 0;
        /* interactive callers take their place in the queue at once; batch
         * callers only take room that is free now, and otherwise come back */
        horizon = priority == RL_PRIORITY_BATCH ? 0 : left;
        rc = decide(r, &key, 1, costs, n, horizon, res, &rv, NULL);
        if (first)
            deadline = sat_add(mono_ns(), timeout_ns);
        first = 0;
        if (rc != RL_OK)
            return rc;
        if (rv.ok)
            break;
        if (rv.delay_ns > left || rv.delay_ns == INT64_MAX) /* INT64_MAX: never */
            return rl_seterr(r->err, RL_ETIMEOUT,
                             "admission needs %lld ns, more than the time left to wait",
                             (long long)rv.delay_ns);
        if (sleep_until(sat_add(mono_ns(), rv.delay_ns - horizon), cancel)) {
            res->allowed = 0;
            return rl_seterr(r->err, RL_ECANCELED, "wait cancelled");
        }
    }
    if (sleep_until(sat_add(mono_ns(), rv.delay_ns), cancel)) {
        rc = rl_cancel(r, &rv);
        res->allowed = 0;
        if (rc != RL_OK)
            return rc;
        return rl_seterr(r->err, RL_ECANCELED, "wait cancelled; its reservation was returned");
    }
    res->allowed = 1;
    res->retry_after_ns = 0;
    return RL_OK;
}

int rl_wait(rl *r, const char *key, int64_t cost, int64_t timeout_ns,
            const volatile sig_atomic_t *cancel, rl_result *res)
{
    rl_cost c;
    c.resource = "requests";
    c.amount = cost;
    return rl_wait_ex(r, key, &c, 1, RL_PRIORITY_INTERACTIVE, timeout_ns, cancel, res);
}

/* ---- reading ------------------------------------------------------------ */

/* The RL_ALGO_* that declares a limit of d's kind (rl_tier_set takes it back). */
static int algorithm_of(const rl_ldef *d)
{
    return d->kind == RL_KIND_WINDOW       ? RL_ALGO_SLIDING_WINDOW
           : d->kind == RL_KIND_CONCURRENT ? RL_ALGO_CONCURRENT
                                           : RL_ALGO_GCRA;
}

static int64_t cooldown_left(const rl_state *st, uint64_t id, int64_t now)
{
    size_t i;
    for (i = 0; i < st->n; i++)
        if (st->slot[i].kind == RL_SLOT_COOLDOWN && st->slot[i].id == id && st->slot[i].tat > now)
            return sat_sub(st->slot[i].tat, now);
    return 0;
}

static void stats_of(rl *r, const char *key, const rl_row *row, int64_t now, rl_key_stats *st)
{
    const rl_tier *t;
    rl_state old, cur;
    size_t i;
    int source;

    memset(st, 0, sizeof *st);
    snprintf(st->key, sizeof st->key, "%s", key);
    st->exists = row->exists;
    st->allowed = row->allowed;
    st->refused = row->refused;
    st->units = row->units;
    st->first_seen_ns = row->first_seen;
    st->last_seen_ns = row->last_seen;
    t = key_tier(r, key, row, &source);
    st->tier_source = t ? source : RL_TIER_NONE;
    if (!t)
        return;
    snprintf(st->tier, sizeof st->tier, "%s", t->name);
    if (rl_state_decode(&old, row->state, row->state_len) != RL_OK)
        old.n = 0; /* shown as full; the next decision reports the damage */
    align_state(r, t, &old, &cur, now);
    st->n_limits = t->n;
    for (i = 0; i < t->n; i++) {
        const rl_ldef *d = &t->limits[i];
        rl_limit_stats *ls = &st->limits[i];
        rl_tat tat = { cur.slot[i].tat, cur.slot[i].rem };
        snprintf(ls->name, sizeof ls->name, "%s", d->name);
        snprintf(ls->resource, sizeof ls->resource, "%s", d->resource);
        ls->count = d->count;
        ls->period_ns = d->period_ns;
        ls->burst = d->burst;
        ls->algorithm = algorithm_of(d);
        if (d->kind == RL_KIND_CONCURRENT) {
            /* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Assign): align_state fills cur.slot[0..t->n-1]; the analyzer loses t->n across the snprintf calls above */
            ls->in_flight = cur.slot[i].tat;
            ls->remaining = d->count > ls->in_flight ? d->count - ls->in_flight : 0;
        } else if (d->kind == RL_KIND_WINDOW) {
            rl_window w = { cur.slot[i].tat, cur.slot[i].rem, cur.slot[i].burst }; /* window_of */
            /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): align_state fills cur.slot[0..t->n-1]; the analyzer loses t->n across the snprintf calls above */
            rl_window_peek(d, w, now, &ls->remaining, &ls->reset_after_ns, &ls->retry_after_ns);
            ls->debt = rl_window_debt(d, w, now);
        } else {
            /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): align_state fills cur.slot[0..t->n-1]; the analyzer loses t->n across the snprintf calls above */
            rl_gcra_peek(d, tat, now, &ls->remaining, &ls->reset_after_ns, &ls->retry_after_ns);
            ls->debt = rl_gcra_debt(d, tat, now);
        }
        ls->cooldown_ns = cooldown_left(&cur, rl_cooldown_id(d->resource), now);
    }
    st->cooldown_ns = cooldown_left(&cur, rl_cooldown_id(NULL), now);
}

int rl_stats(rl *r, const char *key, rl_key_stats *st)
{
    rl_row row;
    int64_t version;
    int rc, began = 0;
    if (!r)
        return RL_EINVAL;
    if (!st)
        return rl_seterr(r->err, RL_EINVAL, "stats is NULL");
    if ((rc = check_key(r, key)) != RL_OK)
        return rc;
    pthread_mutex_lock(&r->mu);
    r->err[0] = 0;
    if ((rc = r->store->ops->begin(r->store, 0)) != RL_OK)
        goto out;
    began = 1;
    if ((rc = r->store->ops->row_get(r->store, key, &row, &version)) != RL_OK)
        goto out;
    if ((rc = refresh_policy(r, version)) != RL_OK)
        goto out;
    stats_of(r, key, &row, now_ns(r), st);
out:
    if (began)
        r->store->ops->rollback(r->store);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int rl_totals_get(rl *r, rl_totals *t)
{
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!t)
        return rl_seterr(r->err, RL_EINVAL, "totals is NULL");
    pthread_mutex_lock(&r->mu);
    r->err[0] = 0;
    rc = r->store->ops->totals(r->store, t);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

typedef struct list_ctx {
    rl *r;
    int64_t now;
    int (*fn)(void *ctx, const rl_key_stats *st);
    void *ctx;
    rl_key_stats st;
} list_ctx;

static int list_row(void *ctx, const char *key, const rl_row *row)
{
    list_ctx *lc = ctx;
    if (!rl_key_valid(key))
        return stored_key_invalid(lc->r->err, key);
    stats_of(lc->r, key, row, lc->now, &lc->st);
    return lc->fn(lc->ctx, &lc->st);
}

int rl_keys_list(rl *r, const char *match, int sort, size_t limit,
                 int (*fn)(void *ctx, const rl_key_stats *st), void *ctx)
{
    list_ctx *lc;
    int64_t version;
    int rc, began = 0;
    if (!r)
        return RL_EINVAL;
    if (!fn || sort < RL_SORT_KEY || sort > RL_SORT_LAST_SEEN)
        return rl_seterr(r->err, RL_EINVAL, "invalid callback or sort order");
    if (!(lc = malloc(sizeof *lc)))
        return rl_seterr(r->err, RL_ENOMEM, "out of memory");
    pthread_mutex_lock(&r->mu);
    r->err[0] = 0;
    if ((rc = r->store->ops->begin(r->store, 0)) != RL_OK)
        goto out;
    began = 1;
    if ((rc = r->store->ops->policy_version(r->store, &version)) != RL_OK)
        goto out;
    if ((rc = refresh_policy(r, version)) != RL_OK)
        goto out;
    lc->r = r;
    lc->now = now_ns(r);
    lc->fn = fn;
    lc->ctx = ctx;
    rc = r->store->ops->keys_list(r->store, match, sort, limit, list_row, lc);
out:
    if (began)
        r->store->ops->rollback(r->store);
    pthread_mutex_unlock(&r->mu);
    free(lc);
    return rc;
}

/* ---- writing policy and keys ------------------------------------------- */

static int reset_tx(rl *r, void *ctx)
{
    const char *key = ctx;
    rl_row row;
    int64_t version;
    int rc = r->store->ops->row_get(r->store, key, &row, &version);
    if (rc != RL_OK)
        return rc;
    if (!row.exists)
        return rl_seterr(r->err, RL_ENOTFOUND, "no such key: '%.64s'", key);
    if (!row.tier[0])
        return r->store->ops->row_delete(r->store, key);
    /* keep the explicit assignment, forget the rest */
    row.state_len = 0;
    row.allowed = row.refused = row.units = 0;
    row.first_seen = row.last_seen = 0;
    return r->store->ops->row_put(r->store, key, &row);
}

int rl_reset(rl *r, const char *key)
{
    int rc;
    if (!r)
        return RL_EINVAL;
    if ((rc = check_key(r, key)) != RL_OK)
        return rc;
    return write_tx(r, reset_tx, NULL, (void *)key); /* only read */
}

typedef struct penalize_arg {
    const char *key;
    uint64_t id;
    int64_t duration_ns;
} penalize_arg;

static int penalize_tx(rl *r, void *ctx)
{
    const penalize_arg *a = ctx;
    rl_row row;
    rl_state st;
    int64_t now = now_ns(r), version;
    size_t i, j, ncool = 0;
    int rc, found = 0;
    if ((rc = r->store->ops->row_get(r->store, a->key, &row, &version)) != RL_OK)
        return rc;
    if (rl_state_decode(&st, row.state, row.state_len) != RL_OK)
        return rl_seterr(r->err, RL_ECORRUPT, "key '%.64s': damaged bucket state", a->key);
    /* drop ended cool-downs, extend or lift this one */
    for (i = j = 0; i < st.n; i++) {
        rl_slot *s = &st.slot[i];
        if (s->kind == RL_SLOT_COOLDOWN) {
            if (s->id == a->id) {
                found = 1;
                if (a->duration_ns == 0)
                    continue;
                if (s->tat < sat_add(now, a->duration_ns))
                    s->tat = sat_add(now, a->duration_ns);
            } else if (s->tat <= now) {
                continue;
            }
            ncool++;
        }
        st.slot[j++] = *s;
    }
    st.n = j;
    if (!found && a->duration_ns > 0) {
        if (ncool >= RL_MAX_COOLDOWNS || st.n >= RL_MAX_SLOTS)
            return rl_seterr(r->err, RL_EINVAL, "key '%.64s' already has %d cool-downs", a->key,
                             RL_MAX_COOLDOWNS);
        memset(&st.slot[st.n], 0, sizeof st.slot[st.n]);
        st.slot[st.n].kind = RL_SLOT_COOLDOWN;
        st.slot[st.n].id = a->id;
        st.slot[st.n].count = st.slot[st.n].period_ns = st.slot[st.n].burst = 1;
        st.slot[st.n].tat = sat_add(now, a->duration_ns);
        st.n++;
    }
    row.state_len = rl_state_encode(&st, row.state);
    return r->store->ops->row_put(r->store, a->key, &row);
}

int rl_penalize(rl *r, const char *key, const char *resource, int64_t duration_ns)
{
    penalize_arg a;
    int rc;
    if (!r)
        return RL_EINVAL;
    if ((rc = check_key(r, key)) != RL_OK)
        return rc;
    if (resource && !rl_name_valid(resource))
        return rl_seterr(r->err, RL_EINVAL, "invalid resource name");
    if (duration_ns < 0 || duration_ns > RL_FILL_MAX)
        return rl_seterr(r->err, RL_EINVAL, "cool-down duration out of range (0 to 50 years)");
    a.key = key;
    a.id = rl_cooldown_id(resource);
    a.duration_ns = duration_ns;
    return write_tx(r, penalize_tx, NULL, &a);
}

int rl_observe_headers(rl *r, const char *key, const char *const *names,
                       const char *const *values, size_t n)
{
    rl_provider_limits pl;
    int rc;
    if (!r)
        return RL_EINVAL;
    r->err[0] = 0; /* headers that change nothing leave no message either */
    if ((rc = rl_parse_provider_headers(names, values, n, now_ns(r), &pl)) != RL_OK)
        return rl_seterr(r->err, rc, "could not read the response headers");
    if (pl.retry_after_ns > 0 && (rc = rl_penalize(r, key, NULL, pl.retry_after_ns)) != RL_OK)
        return rc;
    if (pl.requests.remaining == 0 && pl.requests.reset_after_ns > 0 &&
        (rc = rl_penalize(r, key, "requests", pl.requests.reset_after_ns)) != RL_OK)
        return rc;
    if (pl.tokens.remaining == 0 && pl.tokens.reset_after_ns > 0 &&
        (rc = rl_penalize(r, key, "tokens", pl.tokens.reset_after_ns)) != RL_OK)
        return rc;
    return RL_OK;
}

/* Runs a policy write (op) in its own write transaction. */

static int op_tier_put(rl *r, void *arg)
{
    return r->store->ops->tier_put(r->store, arg);
}

int rl_tier_set(rl *r, const char *tier, const rl_limit *limits, size_t n)
{
    rl_tier t;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!rl_name_valid(tier))
        return rl_seterr(r->err, RL_EINVAL, "invalid tier name (1-63 of A-Z a-z 0-9 _ . : -)");
    if ((rc = build_tier(&t, tier, limits, n, r->err)) != RL_OK)
        return rc;
    return write_tx(r, op_tier_put, NULL, &t);
}

static int op_tier_delete(rl *r, void *arg)
{
    return r->store->ops->tier_delete(r->store, arg);
}

int rl_tier_delete(rl *r, const char *tier)
{
    if (!r)
        return RL_EINVAL;
    if (!rl_name_valid(tier))
        return rl_seterr(r->err, RL_EINVAL, "invalid tier name");
    return write_tx(r, op_tier_delete, NULL, (void *)tier); /* only read */
}

static int op_policy_put(rl *r, void *arg)
{
    return r->store->ops->policy_put(r->store, arg);
}

int rl__policy_replace(rl *r, const rl_policy *p)
{
    return write_tx(r, op_policy_put, NULL, (void *)p); /* only read */
}

typedef struct assign_arg {
    const char *key, *tier;
} assign_arg;

static int op_assign(rl *r, void *arg)
{
    const assign_arg *a = arg;
    rl_row row;
    int64_t version;
    int rc = r->store->ops->row_get(r->store, a->key, &row, &version);
    if (rc != RL_OK)
        return rc;
    if ((rc = refresh_policy(r, version)) != RL_OK)
        return rc;
    if (a->tier && !rl_policy_tier(&r->pol, a->tier))
        return rl_seterr(r->err, RL_ENOTFOUND, "no such tier: '%s'", a->tier);
    if (!a->tier && !row.exists)
        return RL_OK;
    snprintf(row.tier, sizeof row.tier, "%s", a->tier ? a->tier : "");
    /* a row that only held the assignment goes with it */
    if (!a->tier && row.state_len == 0 && row.allowed == 0 && row.refused == 0)
        return r->store->ops->row_delete(r->store, a->key);
    return r->store->ops->row_put(r->store, a->key, &row);
}

int rl_key_assign(rl *r, const char *key, const char *tier)
{
    assign_arg a;
    int rc;
    if (!r)
        return RL_EINVAL;
    if ((rc = check_key(r, key)) != RL_OK)
        return rc;
    if (tier && !rl_name_valid(tier))
        return rl_seterr(r->err, RL_EINVAL, "invalid tier name");
    a.key = key;
    a.tier = tier;
    return write_tx(r, op_assign, NULL, &a);
}

/* ---- reading policy ----------------------------------------------------- */

/* Brings the cached policy up to date in a read transaction of its own. */
static int fresh_policy(rl *r)
{
    int64_t version;
    int rc = r->store->ops->begin(r->store, 0);
    if (rc != RL_OK)
        return rc;
    if ((rc = r->store->ops->policy_version(r->store, &version)) == RL_OK)
        rc = refresh_policy(r, version);
    r->store->ops->rollback(r->store);
    return rc;
}

/* The end of a call whose callbacks ran without the lock and may have
 * called into the handle: RL_OK leaves no message of theirs behind. */
static int ok_done(rl *r, int rc)
{
    if (rc == RL_OK) {
        pthread_mutex_lock(&r->mu);
        r->err[0] = 0;
        pthread_mutex_unlock(&r->mu);
    }
    return rc;
}

/* A private copy of the current policy, so callbacks can run without the
 * handle's lock and may call back into the handle. */
static int policy_snapshot(rl *r, rl_policy *copy)
{
    int rc;
    pthread_mutex_lock(&r->mu);
    r->err[0] = 0;
    rc = fresh_policy(r);
    if (rc == RL_OK && (rc = rl_policy_copy(copy, &r->pol)) != RL_OK)
        rl_seterr(r->err, rc, "out of memory");
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static void tier_info(const rl *r, const rl_tier *t, rl_tier_info *ti)
{
    size_t i;
    memset(ti, 0, sizeof *ti);
    snprintf(ti->name, sizeof ti->name, "%s", t->name);
    ti->unlimited = t->unlimited;
    ti->is_default = strcmp(t->name, r->pol.default_tier[0] ? r->pol.default_tier : "default") == 0;
    ti->n_limits = t->n;
    for (i = 0; i < t->n; i++) {
        snprintf(ti->limits[i].name, sizeof ti->limits[i].name, "%s", t->limits[i].name);
        snprintf(ti->limits[i].resource, sizeof ti->limits[i].resource, "%s",
                 t->limits[i].resource);
        ti->limits[i].count = t->limits[i].count;
        ti->limits[i].period_ns = t->limits[i].period_ns;
        ti->limits[i].burst = t->limits[i].burst;
        ti->limits[i].algorithm = algorithm_of(&t->limits[i]);
    }
}

static int cmp_tier_names(const void *a, const void *b)
{
    return strcmp(((const rl_tier *)a)->name, ((const rl_tier *)b)->name);
}

int rl_tiers_list(rl *r, int (*fn)(void *ctx, const rl_tier_info *t), void *ctx)
{
    rl_policy copy;
    rl_tier_info ti;
    size_t i;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!fn)
        return rl_seterr(r->err, RL_EINVAL, "callback is NULL");
    if ((rc = policy_snapshot(r, &copy)) != RL_OK)
        return rc;
    /* Callbacks run without the handle's lock, on a private copy, so they may
     * call back into the handle. */
    if (copy.n_tiers > 0) /* qsort(NULL, 0, ...) is undefined */
        qsort(copy.tiers, copy.n_tiers, sizeof *copy.tiers, cmp_tier_names);
    for (i = 0; i < copy.n_tiers && rc == 0; i++) {
        tier_info(r, &copy.tiers[i], &ti);
        ti.is_default = strcmp(copy.tiers[i].name,
                               copy.default_tier[0] ? copy.default_tier : "default") == 0;
        rc = fn(ctx, &ti);
    }
    rl_policy_free(&copy);
    return ok_done(r, rc);
}

int rl_tier_get(rl *r, const char *tier, rl_tier_info *ti)
{
    const rl_tier *t;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!tier || !ti)
        return rl_seterr(r->err, RL_EINVAL, "tier or info is NULL");
    pthread_mutex_lock(&r->mu);
    r->err[0] = 0;
    if ((rc = fresh_policy(r)) == RL_OK) {
        if ((t = rl_policy_tier(&r->pol, tier)))
            tier_info(r, t, ti);
        else
            rc = rl_seterr(r->err, RL_ENOTFOUND, "no such tier: '%.64s'", tier);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int rl_rules_list(rl *r, int (*fn)(void *ctx, const char *match, const char *tier), void *ctx)
{
    rl_policy copy;
    size_t i;
    int rc;
    if (!r)
        return RL_EINVAL;
    if (!fn)
        return rl_seterr(r->err, RL_EINVAL, "callback is NULL");
    if ((rc = policy_snapshot(r, &copy)) != RL_OK)
        return rc;
    for (i = 0; i < copy.n_rules && rc == 0; i++)
        rc = fn(ctx, copy.rules[i].match, copy.rules[i].tier);
    rl_policy_free(&copy);
    return ok_done(r, rc);
}
