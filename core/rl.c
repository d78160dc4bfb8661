/*
 * rl.c - the handle: opening and closing it, its messages, its clock and
 * its cache of the store's policy. What the handle does is in the files
 * handle.h lists (deciding in decide.c, group commit in group.c, ...).
 *
 * Guarantees:
 *   - one rl * may be shared by threads: its mutex serialises the calls
 *     (rl__lock), since the store connection is not shareable;
 *   - messages are per thread (as libgit2's last error): when a call on r
 *     returns, its message is the calling thread's for r, so rl_errmsg(r)
 *     shows each thread what its own last call on r said, and a call in
 *     another thread never changes or frees it. A thread keeps the
 *     messages of its MSG_SLOTS handles that failed last; an RL_OK call
 *     leaves "no error";
 *   - the clock is the caller's (rl_options.clock), else the store's (Redis:
 *     the server's TIME), else CLOCK_REALTIME; a decision reads it only
 *     once the write lock is held, so time spent queuing for the lock
 *     never turns into a false refusal;
 *   - the cached policy is reloaded whenever the store's policy version,
 *     which comes back with every row read, differs from the cached one: a
 *     tier loaded by another process applies from the next decision, at no
 *     extra statement;
 *   - the options' default limits are the store's (the tier "default",
 *     written or compared at open by tiers.c): once open, the handle
 *     decides with what the store holds, like every other process and
 *     rlctl, never with a private copy (but for a store that lost its
 *     data, rl__refresh_policy).
 */
#include "handle.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *rl_strerror(int code)
{
    switch (code) {
    case RL_OK:
        return "ok";
    case RL_EINVAL:
        return "invalid argument";
    case RL_ENOMEM:
        return "out of memory";
    case RL_ETOOBIG:
        return "cost exceeds the limit's burst and can never pass";
    case RL_EBUSY:
        return "store busy: locked past the busy timeout";
    case RL_ESTORE:
        return "store failure";
    case RL_EREADONLY:
        return "store is read-only";
    case RL_EFULL:
        return "store is full";
    case RL_ECORRUPT:
        return "not an rl database, or damaged";
    case RL_EVERSION:
        return "database schema is newer than this library";
    case RL_ECONFIG:
        return "invalid configuration";
    case RL_ENOTFOUND:
        return "not found";
    case RL_ETIMEOUT:
        return "timed out";
    case RL_ECANCELED:
        return "cancelled";
    case RL_ENOLIMIT:
        return "no limit applies: no tier for the key, or a resource no tier limits";
    case RL_ECONNECT:
        return "store server unreachable";
    case RL_EAUTH:
        return "store server refused the credentials";
    case RL_EPERM:
        return "a file is owned by another user or its mode is wider than file_mode";
    case RL_ELIMITED:
        return "refused by a limit";
    case RL_EMISMATCH:
        return "the limits given in code disagree with those the database holds";
    default:
        return "unknown error";
    }
}

const char *rl_version(void)
{
    return RL_VERSION_STRING;
}

/* ---- messages ------------------------------------------------------------ */

/* Each thread's last messages, per handle, tagged with the handle's id
 * (never reused, unlike its address; 0: a free slot). When all slots are
 * taken, the one least recently written goes. held: the handle whose mutex
 * the thread holds (the innermost, if several). One struct, so that a
 * function finds all of it with one look-up of the thread's block. */
#define MSG_SLOTS 8

typedef struct tl_state {
    rl *held;
    unsigned n; /* slots taken */
    uint64_t clock;
    uint64_t id[MSG_SLOTS];
    uint64_t used[MSG_SLOTS];
    char text[MSG_SLOTS][RL_ERRMSG_MAX];
} tl_state;

static _Thread_local tl_state tl;
static atomic_uint_fast64_t next_id = 1;

static int msg_find(uint64_t id)
{
    int i;
    for (i = 0; i < MSG_SLOTS; i++)
        if (tl.id[i] == id)
            return i;
    return -1;
}

/* This thread's buffer for handle id, taken if it has none. */
static char *msg_claim(uint64_t id)
{
    int i = msg_find(id), j;
    if (i < 0) {
        for (i = 0, j = 0; j < MSG_SLOTS && tl.id[i]; j++)
            if (!tl.id[j] || tl.used[j] < tl.used[i])
                i = j;
        if (!tl.id[i])
            tl.n++;
        tl.id[i] = id;
        tl.text[i][0] = 0;
    }
    tl.used[i] = ++tl.clock;
    return tl.text[i];
}

/* text (a message, or "" for none) becomes this thread's message for r. */
static void msg_set(const rl *r, const char *text)
{
    int i;
    if (!text[0]) {
        if (tl.n > 0 && (i = msg_find(r->id)) >= 0) {
            tl.id[i] = 0;
            tl.n--;
        }
        return;
    }
    memcpy(msg_claim(r->id), text, strnlen(text, RL_ERRMSG_MAX - 1) + 1);
}

const char *rl_errmsg(const rl *r)
{
    int i;
    if (!r)
        return "out of memory (no handle)";
    if (tl.held == r) /* a callback that runs under the handle's mutex */
        return r->err[0] ? r->err : "no error";
    i = tl.n > 0 ? msg_find(r->id) : -1;
    return i >= 0 && tl.text[i][0] ? tl.text[i] : "no error";
}

char *rl__errbuf(rl *r)
{
    return tl.held == r ? r->err : msg_claim(r->id);
}

void rl__lock(rl *r)
{
    pthread_mutex_lock(&r->mu);
    r->held_prev = tl.held;
    tl.held = r;
    r->err[0] = 0;
}

void rl__unlock(rl *r)
{
    if (r->err[0] || tl.n > 0)
        msg_set(r, r->err);
    tl.held = r->held_prev;
    pthread_mutex_unlock(&r->mu);
}

uint64_t rl__group_sig(const rl *r)
{
    return r->sig;
}

rl_store *rl__store(rl *r)
{
    return r->store;
}

/* ---- the clock ----------------------------------------------------------- */

static int64_t realtime_clock(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
}

/* The caller's clock if it gave one, else the store's (Redis: the server's
 * TIME, shared by every machine), else CLOCK_REALTIME. */
int64_t rl__now(rl *r)
{
    int64_t ns;
    if (r->frozen) /* replaying a decision the store made at that time */
        return r->frozen_now;
    if (!r->store_clock || !r->store || !r->store->ops->now ||
        r->store->ops->now(r->store, &ns) != RL_OK)
        return r->o.clock(r->o.clock_ctx);
    return ns; /* on a store failure the next store call reports it */
}

/* ---- opening ------------------------------------------------------------- */

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

int rl__build_tier(rl_tier *t, const char *name, const rl_limit *limits, size_t n, char *err)
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
    r->id = atomic_fetch_add(&next_id, 1);
    r->pid = getpid();
    rl_policy_init(&r->pol);
    r->pol_version = -1;
    r->o = defaults;
    if (o) {
        /* Every layout from 1 to ours (core/options.c); all of them are
         * today's, so the copy below reads no field a caller lacks. */
        if (o->version < 1 || o->version > RL_OPTIONS_VERSION) {
            rc = rl_seterr(
                r->err, RL_EINVAL,
                o->version > RL_OPTIONS_VERSION
                    ? "rl_options.version %u is newer than this library's (librl " RL_VERSION_STRING
                      " takes 1 to %d): the program was built "
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
    if (r->o.busy_timeout_ms < 0 ||
        (r->o.fail_mode != RL_FAIL_CLOSED && r->o.fail_mode != RL_FAIL_OPEN) ||
        (r->o.durability != RL_DURABILITY_NORMAL && r->o.durability != RL_DURABILITY_FULL) ||
        (r->o.busy_strategy != RL_BUSY_LOCK && r->o.busy_strategy != RL_BUSY_SQLITE) ||
        (r->o.file_mode & ~0777u) || (r->o.file_mode & 0600u) != 0600u) {
        rc = rl_seterr(r->err, RL_EINVAL,
                       "invalid rl_options: busy_timeout_ms, fail_mode, durability, "
                       "busy_strategy or file_mode (must include 0600) out of range");
        goto out;
    }
    if (o && o->n_default_limits > 0) {
        rc = rl__build_tier(&r->defaults, RL_DEFAULTS_TIER, o->default_limits, o->n_default_limits,
                            r->err);
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
    r->defaults_fp = rl_tier_fingerprint(&r->defaults);
    r->rng = rng_seed(r);
out:
    /* the handle is not shared yet: its message is this thread's */
    if (rc == RL_OK)
        r->err[0] = 0;
    msg_set(r, r->err);
    if (rc == RL_OK && o && o->tiers_file)
        rc = rl_load_tiers(r, o->tiers_file);
    /* After the tiers file, which replaces every tier: the defaults are
     * compared with what the store holds once the program's policy is in. */
    if (rc == RL_OK && r->have_defaults)
        rc = rl__defaults_open(r, &r->defaults, (r->o.flags & RL_OPEN_OVERRIDE_DEFAULTS) != 0);
    /* From here on the store's are the only default limits this handle
     * knows (the tier RL_DEFAULTS_TIER of its cached policy): a private
     * copy would let it decide keys that rlctl and other processes see as
     * having none, or other ones. r->sig keeps them: handles opened with
     * different ones are still not grouped, which costs nothing. */
    r->have_defaults = 0;
    return rc;
}

void rl_close(rl *r)
{
    if (!r)
        return;
    /* refusals still pending are written (refuse.c); a child after fork()
     * drops its copy of its parent's */
    if (r->store && r->pend_live > 0 && getpid() == r->pid) {
        rl__lock(r);
        rl__pending_flush(r);
        rl__unlock(r);
    }
    msg_set(r, ""); /* this thread's slot for it is free again */
    if (r->store)
        r->store->ops->close(r->store);
    free(r->rx);
    rl__lease_memo_free(r);
    rl_policy_free(&r->pol);
    free(r->tier_fp);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ---- the policy cache ---------------------------------------------------- */

int rl__refresh_policy(rl *r, int64_t version)
{
    rl_policy p;
    uint64_t *fp = NULL;
    size_t i;
    int rc;
    if (version == r->pol_version)
        return RL_OK;
    rl_policy_init(&p);
    rc = r->store->ops->policy_get(r->store, &p);
    /* A store that lost its data (a Redis server restarted without
     * persistence) is back at version 0 with no policy at all, after this
     * handle saw a later one (rl_open wrote or found its defaults): a
     * handle given default limits keeps deciding with them, as before they
     * were stored, until the store holds a policy again. Any policy written
     * since, even an empty one, has a version above 0 and is followed. */
    if (rc == RL_OK && version == 0 && r->pol_version > 0 && r->defaults.name[0] &&
        p.n_tiers == 0 && p.n_rules == 0 && !p.default_tier[0] &&
        rl_policy_put_tier(&p, &r->defaults) != RL_OK)
        rc = rl_seterr(r->err, RL_ENOMEM, "out of memory");
    if (rc == RL_OK && p.n_tiers > 0) {
        if ((fp = malloc(p.n_tiers * sizeof *fp)) != NULL)
            for (i = 0; i < p.n_tiers; i++)
                fp[i] = rl_tier_fingerprint(&p.tiers[i]);
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
