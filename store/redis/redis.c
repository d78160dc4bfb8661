/*
 * redis.c - the Redis store behind "redis://HOST:PORT/DB" and "unix:///path".
 *
 * When agents run on several machines, Redis is the shared store. Each rl
 * key is one Redis hash, PREFIX "k:{KEY}" (the braces make it one Cluster
 * hash slot), holding its row (field r), its open leases (l:ID) and a
 * random version token (v). The policy is one hash (PREFIX "policy": blob b
 * and version v), a sorted set indexes key names in byte order for listing,
 * and a hash maps lease ids to keys.
 *
 * Transactions are optimistic. Reads (pipelined: one round trip for every
 * key of a decision, with the policy version and the server's TIME) fill a
 * per-transaction cache; writes stay in it; commit is one Lua script, run
 * by EVALSHA, that checks every version read is still current and then
 * applies every write, or applies nothing and answers "conflict", when core
 * runs the transaction again (RL_ECONFLICT). So each decision is one atomic
 * server-side step with the same exact integer GCRA as the other stores:
 * the math stays in C because Lua's numbers are doubles, which cannot carry
 * nanosecond timestamps times counts.
 *
 * Time: unless the caller injects a clock, decisions use the Redis server's
 * TIME, read with the rows, so clocks of different machines do not matter.
 *
 * Failures get distinct codes: RL_ECONNECT (refused, lost, timed out, server
 * restarted), RL_EAUTH (wrong password or user), RL_EBUSY (BUSY, LOADING),
 * RL_EFULL (OOM), RL_EREADONLY (a read-only replica); core applies the fail
 * mode. A lost connection is retried on the next call after a backoff that
 * doubles from 10 ms to 1 s, so a dead server costs callers a fast error,
 * not a connect timeout each. No call blocks past timeout_ms per round trip.
 * A commit whose reply is lost may or may not have been applied: callers
 * see a failure, so budget may be spent but never over-granted.
 *
 * Idle keys expire: a row without an explicit tier gets a TTL of the time
 * its buckets, cool-downs and leases need to be full/over again, plus
 * idle_ttl (default one day, so stats stay readable for a while).
 */
#include "lease.h"
#include "rd.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RD_PREFIX_MAX 64
#define RD_NAME_MAX (RD_PREFIX_MAX + 4 + RL_KEY_MAX + 2)
#define RD_VER_MAX 24
#define RD_PAGE 512
#define RD_BACKOFF_MAX_MS 1000

typedef struct rd_lease {
    rl_lease_rec rec;
    unsigned char raw[RD_LEASE_MAX]; /* as stored: re-written byte for byte */
    size_t raw_len;
} rd_lease;

/* One key read by the current transaction. */
typedef struct rd_row {
    char key[RL_KEY_MAX + 1];
    char ver[RD_VER_MAX]; /* version read: "" absent, "*" do not check */
    rl_row row;
    rd_lease *leases;
    size_t n_leases, cap_leases;
    int64_t *gone; /* lease ids removed by this transaction */
    size_t n_gone, cap_gone;
    int dirty;
} rd_row;

typedef struct rd_store {
    rl_store base;
    redisContext *c;
    char where[300]; /* for messages: the URL without its password */
    char host[256], sock[256], user[128], pass[256];
    int port, db, timeout_ms, readonly;
    int64_t idle_ttl_ms;
    char prefix[RD_PREFIX_MAX];
    char sha[48]; /* of the commit script, "" until loaded */
    int64_t retry_at;
    int backoff_ms;
    uint64_t host_id, rng;
    /* the transaction */
    int in_tx, write, clear;
    rd_row **rows;
    size_t n_rows, cap_rows;
    int have_pver, have_time, pol_loaded, pol_dirty;
    int64_t pver, time_ns;
    rl_policy pol;
    /* What a conflicting commit sent back, for the retry that follows at
     * once (see rd_begin): the rows it wrote, as they are now. */
    rd_row **warm;
    size_t n_warm;
    int64_t warm_pver, warm_time, warm_at;
    char token[20];  /* this handle's name in claims */
    int losses;      /* conflicts in a row: from RD_CLAIM_AFTER on, claim */
} rd_store;

/* The shebang (Redis >= 7.0) makes the server refuse the whole script when
 * it is out of memory, before any write; without it a script that has begun
 * writing may go on past maxmemory, and the caller never hears of it. */
static const char commit_lua[] =
    "#!lua\n"
    "-- KEYS: policy, key index, lease map, lease seq, then rows\n"
    "-- ARGV: policy version to check ('' none), new policy blob ('' none),\n"
    "-- '1' to clear all keys first, row key prefix, the caller's token,\n"
    "-- '1' if it may claim its rows, then per row: version read ('' absent,\n"
    "-- '*' unchecked), new version, ttl ms, key, has row, n, n field/value\n"
    "-- items, m, m lease ids gone.\n"
    "-- Returns 1, or on a conflict what the caller needs to decide again\n"
    "-- at once: {0, policy version, TIME, HGETALL of each row}, with -1\n"
    "-- for 0 when another caller's claim is what stood in the way.\n"
    "--\n"
    "-- Claims keep a caller that keeps losing from starving: after a few\n"
    "-- conflicts in a row it claims its rows (field q = token and deadline,\n"
    "-- 20 ms on the server's clock) and every other commit on them\n"
    "-- conflicts until it has committed (its rewrite drops q) or the claim\n"
    "-- has lapsed.\n"
    "local token, now = ARGV[5], nil\n"
    "local function now_ms()\n"
    "  if not now then local t = redis.call('TIME'); now = t[1] * 1000 + math.floor(t[2] / 1000) end\n"
    "  return now\n"
    "end\n"
    "local function claimed_by_other(k)\n"
    "  local q = redis.call('HGET', k, 'q')\n"
    "  if not q then return false end\n"
    "  local tok, dl = string.match(q, '^(%S+) (%d+)$')\n"
    "  return tok ~= token and tonumber(dl or '0') > now_ms()\n"
    "end\n"
    "local function conflict(blocked)\n"
    "  if ARGV[6] == '1' then\n"
    "    for i = 5, #KEYS do\n"
    "      if not claimed_by_other(KEYS[i]) then\n"
    "        local fresh = redis.call('EXISTS', KEYS[i]) == 0\n"
    "        redis.call('HSET', KEYS[i], 'q', token .. ' ' .. (now_ms() + 20))\n"
    "        if fresh then redis.call('PEXPIRE', KEYS[i], 1000) end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  local out = {blocked and -1 or 0, redis.call('HGET', KEYS[1], 'v') or '0', redis.call('TIME')}\n"
    "  for i = 5, #KEYS do out[#out + 1] = redis.call('HGETALL', KEYS[i]) end\n"
    "  return out\n"
    "end\n"
    "if ARGV[1] ~= '' and (redis.call('HGET', KEYS[1], 'v') or '0') ~= ARGV[1] then\n"
    "  return conflict(false)\n"
    "end\n"
    "local a, pos = 7, {}\n"
    "for i = 5, #KEYS do\n"
    "  pos[i] = a\n"
    "  if claimed_by_other(KEYS[i]) then return conflict(true) end\n"
    "  if ARGV[a] ~= '*' and (redis.call('HGET', KEYS[i], 'v') or '') ~= ARGV[a] then\n"
    "    return conflict(false)\n"
    "  end\n"
    "  local n = tonumber(ARGV[a + 5])\n"
    "  a = a + 7 + n + tonumber(ARGV[a + 6 + n])\n"
    "end\n"
    "if ARGV[3] == '1' then\n"
    "  for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do\n"
    "    redis.call('DEL', ARGV[4] .. '{' .. m .. '}')\n"
    "  end\n"
    "  redis.call('DEL', KEYS[2], KEYS[3])\n"
    "end\n"
    "if ARGV[2] ~= '' then\n"
    "  redis.call('HSET', KEYS[1], 'b', ARGV[2])\n"
    "  redis.call('HINCRBY', KEYS[1], 'v', 1)\n"
    "end\n"
    "local seq = tonumber(redis.call('GET', KEYS[4]) or '0')\n"
    "for i = 5, #KEYS do\n"
    "  a = pos[i]\n"
    "  local k, key, n = KEYS[i], ARGV[a + 3], tonumber(ARGV[a + 5])\n"
    "  redis.call('DEL', k)\n"
    "  if n > 0 then\n"
    "    local args = {'v', ARGV[a + 1]}\n"
    "    for j = 1, n do args[#args + 1] = ARGV[a + 5 + j] end\n"
    "    redis.call('HSET', k, unpack(args))\n"
    "    for j = 1, n, 2 do\n"
    "      local f = ARGV[a + 5 + j]\n"
    "      if string.sub(f, 1, 2) == 'l:' then\n"
    "        local id = string.sub(f, 3)\n"
    "        redis.call('HSET', KEYS[3], id, key)\n"
    "        if tonumber(id) > seq then seq = tonumber(id); redis.call('SET', KEYS[4], id) end\n"
    "      end\n"
    "    end\n"
    "    local ttl = tonumber(ARGV[a + 2])\n"
    "    if ttl > 0 then redis.call('PEXPIRE', k, ttl) end\n"
    "  end\n"
    "  if ARGV[a + 4] == '1' then redis.call('ZADD', KEYS[2], 0, key)\n"
    "  else redis.call('ZREM', KEYS[2], key) end\n"
    "  local m = tonumber(ARGV[a + 6 + n])\n"
    "  for j = 1, m do redis.call('HDEL', KEYS[3], ARGV[a + 6 + n + j]) end\n"
    "end\n"
    "return 1\n";

/* Drops index entries whose key has expired, unless it came back. */
static const char unindex_lua[] =
    "for i = 1, #ARGV do\n"
    "  if redis.call('EXISTS', ARGV[i]) == 0 then\n"
    "    redis.call('ZREM', KEYS[1], string.sub(ARGV[i], #KEYS[2] + 2, -2))\n"
    "  end\n"
    "end\n"
    "return 1\n";

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- names ------------------------------------------------------------------ */

static size_t row_name(const rd_store *s, const char *key, char *buf)
{
    return (size_t)snprintf(buf, RD_NAME_MAX, "%sk:{%s}", s->prefix, key);
}

static void name_of(const rd_store *s, const char *what, char *buf)
{
    snprintf(buf, RD_NAME_MAX, "%s%s", s->prefix, what);
}

/* ---- the connection ---------------------------------------------------------- */

/* A write to a socket the server closed raises SIGPIPE, whose default kills
 * the process: block it in this thread around each round trip and discard
 * one it caused, leaving the application's own handling alone. */
typedef struct rd_sig {
    sigset_t old;
    int pending_before;
} rd_sig;

static void sig_block(rd_sig *g)
{
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pend);
    g->pending_before = sigismember(&pend, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void sig_restore(rd_sig *g)
{
    sigset_t set, pend;
    struct timespec zero = { 0, 0 };
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pend);
    if (!g->pending_before && sigismember(&pend, SIGPIPE))
        sigtimedwait(&set, NULL, &zero);
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

static void drop(rd_store *s)
{
    if (s->c) {
        redisFree(s->c);
        s->c = NULL;
    }
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : 10;
    if (s->backoff_ms > RD_BACKOFF_MAX_MS)
        s->backoff_ms = RD_BACKOFF_MAX_MS;
    s->retry_at = mono_ms() + s->backoff_ms;
    s->have_time = 0;
}

/* A failure of the connection itself (c->err): it is dropped. The caller
 * returns RL_ECONNECT. */
static void conn_fail(rd_store *s, const char *what)
{
    int timed_out = s->c && s->c->err == REDIS_ERR_IO &&
                    (errno == EAGAIN || errno == EWOULDBLOCK || strstr(s->c->errstr, "temporarily"));
    if (!s->c)
        rl_seterr(s->base.err, RL_ENOMEM, "redis %s: %s: out of memory", s->where, what);
    else if (timed_out)
        rl_seterr(s->base.err, RL_ECONNECT, "redis %s: %s: no reply within %d ms", s->where, what,
                  s->timeout_ms);
    else if (s->c->err == REDIS_ERR_EOF)
        rl_seterr(s->base.err, RL_ECONNECT, "redis %s: %s: connection closed by the server",
                  s->where, what);
    else
        rl_seterr(s->base.err, RL_ECONNECT, "redis %s: %s: %s", s->where, what, s->c->errstr);
    drop(s);
}

/* An error reply: its first word says which code it gets. */
static int reply_fail(rd_store *s, const redisReply *r, const char *what)
{
    int code = RL_ESTORE;
    const char *m = r->str ? r->str : "";
    if (!strncmp(m, "NOAUTH", 6) || !strncmp(m, "WRONGPASS", 9) || strstr(m, "invalid password") ||
        !strncmp(m, "NOPERM", 6))
        code = RL_EAUTH;
    else if (!strncmp(m, "BUSY", 4) || !strncmp(m, "LOADING", 7) || !strncmp(m, "MASTERDOWN", 10))
        code = RL_EBUSY;
    else if (!strncmp(m, "OOM", 3))
        code = RL_EFULL;
    else if (!strncmp(m, "READONLY", 8))
        code = RL_EREADONLY;
    rl_seterr(s->base.err, code, "redis %s: %s: %.160s", s->where, what, m);
    return code;
}

static int plain(rd_store *s, redisReply **out, const char *what, int argc, const char **argv,
                 const size_t *len);

static int load_script(rd_store *s)
{
    const char *argv[3] = { "SCRIPT", "LOAD", commit_lua };
    redisReply *r = NULL;
    int rc = plain(s, &r, "load the commit script", 3, argv, NULL);
    if (rc == RL_OK) {
        if (r->type == REDIS_REPLY_STRING && r->len < sizeof s->sha)
            snprintf(s->sha, sizeof s->sha, "%s", r->str);
        else
            rc = rl_seterr(s->base.err, RL_ESTORE, "redis %s: SCRIPT LOAD: unexpected reply",
                           s->where);
    }
    freeReplyObject(r);
    return rc;
}

/* The data format this library writes, in PREFIX "format". */
#define RD_FORMAT 1

static int check_format(rd_store *s)
{
    char name[RD_NAME_MAX], one[8];
    const char *set[5] = { "SET", name, one, "NX" }, *get[2] = { "GET", name };
    redisReply *r = NULL;
    int rc;
    name_of(s, "format", name);
    snprintf(one, sizeof one, "%d", RD_FORMAT);
    if ((rc = plain(s, &r, "check the data format", 4, set, NULL)) != RL_OK)
        return rc;
    freeReplyObject(r);
    if ((rc = plain(s, &r, "check the data format", 2, get, NULL)) != RL_OK)
        return rc;
    if (r->type == REDIS_REPLY_STRING && atoi(r->str) > RD_FORMAT)
        rc = rl_seterr(s->base.err, RL_EVERSION,
                       "redis %s: data format %s is newer than this library's %d", s->where,
                       r->str, RD_FORMAT);
    else if (r->type != REDIS_REPLY_STRING || atoi(r->str) < 1)
        rc = rl_seterr(s->base.err, RL_ECORRUPT, "redis %s: %s holds no rl data format",
                       s->where, name);
    freeReplyObject(r);
    return rc;
}

static int connect_now(rd_store *s)
{
    struct timeval tv;
    redisReply *r;
    char dbs[16];
    int rc;
    tv.tv_sec = s->timeout_ms / 1000;
    tv.tv_usec = (suseconds_t)(s->timeout_ms % 1000) * 1000;
    s->c = s->sock[0] ? redisConnectUnixWithTimeout(s->sock, tv)
                      : redisConnectWithTimeout(s->host, s->port, tv);
    if (!s->c || s->c->err) {
        conn_fail(s, "connect");
        return RL_ECONNECT;
    }
    redisSetTimeout(s->c, tv);
    if (s->pass[0]) {
        const char *argv[3] = { "AUTH", s->user[0] ? s->user : s->pass, s->pass };
        if ((rc = plain(s, &r, "AUTH", s->user[0] ? 3 : 2, argv, NULL)) != RL_OK) {
            if (rc != RL_ECONNECT) /* whatever the server's words, it said no */
                rc = RL_EAUTH;
            goto fail;
        }
        freeReplyObject(r);
    }
    if (s->db) {
        const char *argv[2] = { "SELECT", dbs };
        snprintf(dbs, sizeof dbs, "%d", s->db);
        if ((rc = plain(s, &r, "SELECT", 2, argv, NULL)) != RL_OK)
            goto fail;
        freeReplyObject(r);
    }
    if ((rc = check_format(s)) != RL_OK || (rc = load_script(s)) != RL_OK)
        goto fail;
    s->backoff_ms = 0;
    return RL_OK;
fail:
    if (s->c) { /* keep the message, drop the half-made connection */
        redisFree(s->c);
        s->c = NULL;
    }
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : 10;
    if (s->backoff_ms > RD_BACKOFF_MAX_MS)
        s->backoff_ms = RD_BACKOFF_MAX_MS;
    s->retry_at = mono_ms() + s->backoff_ms;
    return rc;
}

static int ensure(rd_store *s)
{
    int64_t now;
    if (s->c)
        return RL_OK;
    now = mono_ms();
    if (now < s->retry_at)
        return rl_seterr(s->base.err, RL_ECONNECT,
                         "redis %s: unreachable; next connection attempt in %lld ms", s->where,
                         (long long)(s->retry_at - now));
    return connect_now(s);
}

/* One command on a connection that exists (connect_now uses it too). */
static int plain(rd_store *s, redisReply **out, const char *what, int argc, const char **argv,
                 const size_t *len)
{
    rd_sig g;
    redisReply *r;
    *out = NULL;
    sig_block(&g);
    r = redisCommandArgv(s->c, argc, argv, len);
    sig_restore(&g);
    if (!r) {
        conn_fail(s, what);
        return RL_ECONNECT;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        int rc = reply_fail(s, r, what);
        freeReplyObject(r);
        return rc != RL_OK ? rc : RL_ESTORE; /* (always an error: for the analyzer) */
    }
    *out = r;
    return RL_OK;
}

static int cmd(rd_store *s, redisReply **out, const char *what, int argc, const char **argv,
               const size_t *len)
{
    int rc = ensure(s);
    if (rc != RL_OK) {
        *out = NULL;
        return rc;
    }
    return plain(s, out, what, argc, argv, len);
}

/* Sends n commands in one write and reads their n replies into out[]; on
 * failure every reply is freed. Error replies are failures too. */
static int pipeline(rd_store *s, size_t n, int *argc, const char ***argv, size_t **len,
                    redisReply **out, const char *what)
{
    rd_sig g;
    size_t i;
    int rc;
    for (i = 0; i < n; i++)
        out[i] = NULL;
    if ((rc = ensure(s)) != RL_OK)
        return rc;
    sig_block(&g);
    for (i = 0; i < n; i++)
        if (redisAppendCommandArgv(s->c, argc[i], argv[i], len ? len[i] : NULL) != REDIS_OK)
            break;
    for (rc = RL_OK, i = 0; i < n && rc == RL_OK; i++)
        if (redisGetReply(s->c, (void **)&out[i]) != REDIS_OK)
            rc = -1;
    sig_restore(&g);
    if (rc != RL_OK) {
        conn_fail(s, what);
        rc = RL_ECONNECT;
    }
    for (i = 0; i < n && rc == RL_OK; i++)
        if (out[i]->type == REDIS_REPLY_ERROR && (rc = reply_fail(s, out[i], what)) == RL_OK)
            rc = RL_ESTORE;
    if (rc != RL_OK)
        for (i = 0; i < n; i++) {
            freeReplyObject(out[i]);
            out[i] = NULL;
        }
    return rc;
}

/* ---- the transaction's cache ------------------------------------------------- */

static void row_free(rd_row *w)
{
    if (w) {
        free(w->leases);
        free(w->gone);
        free(w);
    }
}

static void warm_drop(rd_store *s)
{
    size_t i;
    for (i = 0; i < s->n_warm; i++)
        row_free(s->warm[i]);
    free(s->warm);
    s->warm = NULL;
    s->n_warm = 0;
}

static void tx_reset(rd_store *s)
{
    size_t i;
    for (i = 0; i < s->n_rows; i++)
        row_free(s->rows[i]);
    s->n_rows = 0;
    s->in_tx = s->write = s->clear = 0;
    s->have_pver = s->have_time = s->pol_dirty = 0;
    if (s->pol_loaded)
        rl_policy_free(&s->pol);
    s->pol_loaded = 0;
}

static rd_row *cached(rd_store *s, const char *key)
{
    size_t i;
    for (i = 0; i < s->n_rows; i++)
        if (strcmp(s->rows[i]->key, key) == 0)
            return s->rows[i];
    return NULL;
}

/* Room for one more element in an array that doubles: returns the array
 * (moved, if it had to grow) and updates *cap, or NULL when out of memory,
 * leaving the old array and *cap as they were. */
static void *room(void *v, size_t n, size_t *cap, size_t size, size_t first)
{
    size_t nc;
    void *nv;
    if (n < *cap)
        return v;
    nc = *cap ? *cap * 2 : first;
    if (!(nv = realloc(v, nc * size)))
        return NULL;
    *cap = nc;
    return nv;
}

/* Adds w to the transaction's rows (it owns it then); 0 on success. */
static int push_row(rd_store *s, rd_row *w)
{
    rd_row **nr = room(s->rows, s->n_rows, &s->cap_rows, sizeof *nr, 8);
    if (!nr)
        return -1;
    s->rows = nr;
    s->rows[s->n_rows++] = w;
    return 0;
}

static rd_row *new_row(rd_store *s, const char *key)
{
    rd_row *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    snprintf(w->key, sizeof w->key, "%s", key);
    if (push_row(s, w) != 0) {
        free(w);
        return NULL;
    }
    return w;
}

static int add_lease(rd_row *w, const rl_lease_rec *rec, const unsigned char *raw, size_t len)
{
    rd_lease *nl = room(w->leases, w->n_leases, &w->cap_leases, sizeof *nl, 4);
    if (!nl)
        return RL_ENOMEM;
    w->leases = nl;
    w->leases[w->n_leases].rec = *rec;
    memcpy(w->leases[w->n_leases].raw, raw, len);
    w->leases[w->n_leases].raw_len = len;
    w->n_leases++;
    return RL_OK;
}

/* Fills w from an HGETALL reply. */
static int parse_hash(rd_store *s, rd_row *w, const redisReply *r)
{
    size_t i;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return rl_seterr(s->base.err, RL_ECORRUPT, "redis %s: key '%.64s' is not an rl hash",
                         s->where, w->key);
    for (i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || !f->str || !v->str)
            continue;
        if (!strcmp(f->str, "v")) {
            snprintf(w->ver, sizeof w->ver, "%.*s", (int)(v->len < 20 ? v->len : 20), v->str);
        } else if (!strcmp(f->str, "r")) {
            if (rd_row_decode(&w->row, (const unsigned char *)v->str, v->len) != RL_OK)
                goto corrupt;
        } else if (!strncmp(f->str, "l:", 2)) {
            rl_lease_rec rec;
            char *end;
            memset(&rec, 0, sizeof rec);
            rec.id = strtoll(f->str + 2, &end, 10);
            if (*end || rec.id <= 0 || v->len > RD_LEASE_MAX ||
                rd_lease_decode(&rec, s->host_id, (const unsigned char *)v->str, v->len) != RL_OK)
                goto corrupt;
            snprintf(rec.key, sizeof rec.key, "%s", w->key);
            if (add_lease(w, &rec, (const unsigned char *)v->str, v->len) != RL_OK)
                return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
        }
    }
    if (!w->ver[0] && (w->row.exists || w->n_leases)) /* a lone claim (q) is no row */
        goto corrupt;
    return RL_OK;
corrupt:
    return rl_seterr(s->base.err, RL_ECORRUPT, "redis %s: key '%.64s': damaged record", s->where,
                     w->key);
}

/* Reads every key of keys[] not yet in the cache, with the policy version
 * and the server time if this transaction has not read them: one round
 * trip. */
static int load(rd_store *s, const char *const *keys, size_t n)
{
    size_t i, m = 0, extra = 0, total = 0, cap = n + 2;
    int *argc = NULL, rc = RL_OK;
    const char ***argv = NULL;
    redisReply **rep = NULL;
    char (*names)[RD_NAME_MAX] = NULL, pname[RD_NAME_MAX];
    const char *(*args)[3] = NULL;
    size_t *need = NULL;
    static const char *time_argv[1] = { "TIME" };

    argc = calloc(cap, sizeof *argc);
    argv = calloc(cap, sizeof *argv);
    rep = calloc(cap, sizeof *rep);
    names = calloc(n ? n : 1, sizeof *names);
    args = calloc(cap, sizeof *args);
    need = calloc(n ? n : 1, sizeof *need);
    if (!argc || !argv || !rep || !names || !args || !need) {
        rc = rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
        goto out;
    }
    if (!s->have_pver) {
        name_of(s, "policy", pname);
        args[m][0] = "HGET";
        args[m][1] = pname;
        args[m][2] = "v";
        argc[m] = 3;
        argv[m] = args[m];
        m++;
    }
    if (!s->have_time) {
        argc[m] = 1;
        argv[m] = time_argv;
        m++;
    }
    extra = m;
    for (i = 0; i < n; i++) {
        rd_row *w;
        size_t j;
        if (cached(s, keys[i]))
            continue;
        for (j = 0; j < i; j++) /* the same key twice in one call */
            if (!strcmp(keys[j], keys[i]))
                break;
        if (j < i)
            continue;
        if (!(w = new_row(s, keys[i]))) {
            rc = rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
            goto out;
        }
        if (s->clear) { /* everything was cleared: absent, written blind */
            snprintf(w->ver, sizeof w->ver, "*");
            continue;
        }
        row_name(s, keys[i], names[i]);
        args[m][0] = "HGETALL";
        args[m][1] = names[i];
        argc[m] = 2;
        argv[m] = args[m];
        need[m - extra] = s->n_rows - 1;
        m++;
    }
    if (m == 0)
        goto out;
    if ((rc = pipeline(s, m, argc, argv, NULL, rep, "read")) != RL_OK)
        goto out;
    total = m;
    m = 0;
    if (!s->have_pver) {
        s->pver = rep[m]->type == REDIS_REPLY_STRING ? strtoll(rep[m]->str, NULL, 10) : 0;
        s->have_pver = 1;
        m++;
    }
    if (!s->have_time) {
        const redisReply *t = rep[m];
        if (t->type == REDIS_REPLY_ARRAY && t->elements == 2 && t->element[0]->str &&
            t->element[1]->str) {
            s->time_ns = strtoll(t->element[0]->str, NULL, 10) * RL_SECOND +
                         strtoll(t->element[1]->str, NULL, 10) * 1000;
            s->have_time = 1;
        }
        m++;
    }
    for (i = extra; i < total; i++)
        if ((rc = parse_hash(s, s->rows[need[i - extra]], rep[i])) != RL_OK)
            goto out;
out:
    if (rep)
        for (i = 0; i < cap; i++)
            freeReplyObject(rep[i]);
    free(argc);
    free(argv);
    free(rep);
    free(names);
    free(args);
    free(need);
    return rc;
}

static int row_of(rd_store *s, const char *key, rd_row **out)
{
    int rc;
    if ((*out = cached(s, key)))
        return RL_OK;
    if ((rc = load(s, &key, 1)) != RL_OK)
        return rc;
    *out = cached(s, key);
    return RL_OK;
}

/* ---- rl_store_ops: transactions and rows ------------------------------------ */

/* How long a conflict's snapshot may stand in for a fresh read: the retry
 * comes at once, and a later transaction reads for itself. */
#define RD_WARM_MS 5
/* Conflicts in a row after which a commit claims its rows. */
#define RD_CLAIM_AFTER 3
/* How long a commit that met another's claim waits before its retry. */
#define RD_CLAIM_WAIT_US 100

static int rd_begin(rl_store *base, int write)
{
    rd_store *s = (rd_store *)base;
    size_t i;
    tx_reset(s);
    if (write && s->readonly)
        return rl_seterr(s->base.err, RL_EREADONLY, "redis %s: opened read-only", s->where);
    s->in_tx = 1;
    s->write = write;
    if (!s->n_warm || mono_ms() - s->warm_at > RD_WARM_MS)
        s->losses = 0; /* not the retry of a conflict: a new streak */
    if (s->n_warm && write && mono_ms() - s->warm_at <= RD_WARM_MS) {
        /* The retry of a conflicting commit: the commit's reply holds the
         * rows as they are now, with the policy version and the time, so no
         * read round trip is needed. Its own commit checks them again. */
        for (i = 0; i < s->n_warm && push_row(s, s->warm[i]) == 0; i++)
            s->warm[i] = NULL;
        s->pver = s->warm_pver;
        s->time_ns = s->warm_time;
        s->have_pver = s->have_time = 1;
    }
    warm_drop(s);
    return RL_OK;
}

static void rd_rollback(rl_store *base)
{
    tx_reset((rd_store *)base);
}

static int rd_row_get(rl_store *base, const char *key, rl_row *row, int64_t *version)
{
    rd_store *s = (rd_store *)base;
    rd_row *w;
    int rc = row_of(s, key, &w);
    if (rc != RL_OK)
        return rc;
    *row = w->row;
    if (!row->exists) {
        row->tier[0] = 0;
        row->state_len = 0;
        row->allowed = row->refused = row->units = row->first_seen = row->last_seen = 0;
    }
    *version = s->pver;
    return RL_OK;
}

static int rd_row_put(rl_store *base, const char *key, const rl_row *row)
{
    rd_store *s = (rd_store *)base;
    rd_row *w;
    int rc = row_of(s, key, &w);
    if (rc != RL_OK)
        return rc;
    w->row = *row;
    w->row.exists = 1;
    w->dirty = 1;
    return RL_OK;
}

static int rd_row_delete(rl_store *base, const char *key)
{
    rd_store *s = (rd_store *)base;
    rd_row *w;
    int rc = row_of(s, key, &w);
    if (rc != RL_OK)
        return rc;
    w->row.exists = 0;
    w->dirty = 1;
    return RL_OK;
}

/* Milliseconds until the row and its leases are of no more use (0: keep
 * for ever), measured in the clock its state was written with (which may
 * be an injected one, before the epoch or near the end of int64). */
static int64_t ttl_ms(const rd_store *s, const rd_row *w)
{
    rl_state st;
    int64_t ref = INT64_MIN, until = INT64_MIN, ms;
    size_t i;
    if (w->row.exists && w->row.tier[0])
        return 0; /* an explicit assignment is kept */
    if (w->row.exists) {
        ref = w->row.last_seen;
        if (rl_state_decode(&st, w->row.state, w->row.state_len) == RL_OK)
            for (i = 0; i < st.n; i++) {
                int64_t u = st.slot[i].tat;
                if (st.slot[i].kind == RL_SLOT_INFLIGHT)
                    continue; /* its leases say how long */
                if (st.slot[i].kind == RL_SLOT_WINDOW) /* tat starts the current window */
                    u = st.slot[i].tat > INT64_MAX - 2 * st.slot[i].period_ns
                            ? INT64_MAX
                            : st.slot[i].tat + 2 * st.slot[i].period_ns;
                if (u > until)
                    until = u;
            }
    }
    for (i = 0; i < w->n_leases; i++) {
        if (w->leases[i].rec.created > ref)
            ref = w->leases[i].rec.created;
        if (w->leases[i].rec.expires > until)
            until = w->leases[i].rec.expires;
    }
    /* until - ref in uint64: both in int64, until > ref, so it fits */
    ms = until > ref ? (int64_t)(((uint64_t)until - (uint64_t)ref) / RL_MILLISECOND + 1) : 0;
    if (ms > INT64_MAX / 2 - s->idle_ttl_ms)
        return 0;
    return ms + s->idle_ttl_ms;
}

static uint64_t next_rand(rd_store *s)
{
    uint64_t x = s->rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 2685821657736338717ULL;
}

/* The argument vector of the commit script; strings it makes itself live
 * in one arena, freed with it. */
typedef struct argvec {
    const char **v;
    size_t *len;
    size_t n, cap;
    char *arena;
    size_t used, size;
    int oom;
} argvec;

static void arg(argvec *a, const void *p, size_t len)
{
    if (a->oom)
        return;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        const char **nv = realloc(a->v, cap * sizeof *nv);
        size_t *nl = nv ? realloc(a->len, cap * sizeof *nl) : NULL;
        if (nv)
            a->v = nv;
        if (!nl) {
            a->oom = 1;
            return;
        }
        a->len = nl;
        a->cap = cap;
    }
    a->v[a->n] = p;
    a->len[a->n++] = len;
}

/* A copy of len bytes in the arena (sized for the whole call up front). */
static void arg_copy(argvec *a, const void *p, size_t len)
{
    if (a->oom || a->used + len > a->size) {
        a->oom = 1;
        return;
    }
    memcpy(a->arena + a->used, p, len);
    arg(a, a->arena + a->used, len);
    a->used += len;
}

static void arg_int(argvec *a, int64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof b, "%" PRId64, v);
    arg_copy(a, b, (size_t)n);
}

static size_t commit_space(const rd_store *s, size_t *nkeys)
{
    size_t i, sz = 4 * RD_NAME_MAX + 256;
    *nkeys = 0;
    for (i = 0; i < s->n_rows; i++) {
        const rd_row *w = s->rows[i];
        if (!w->dirty)
            continue;
        (*nkeys)++;
        sz += RD_NAME_MAX + 6 * 24 + RD_ROW_MAX + 8 + w->n_leases * (RD_LEASE_MAX + 24) +
              w->n_gone * 24;
    }
    return sz;
}

static int run_commit(rd_store *s, argvec *a, redisReply **r)
{
    int rc = cmd(s, r, "commit", (int)a->n, a->v, a->len);
    if (rc == RL_ESTORE && strstr(s->base.err, "NOSCRIPT")) {
        /* the server restarted or flushed its scripts: load and run again */
        if ((rc = load_script(s)) != RL_OK)
            return rc;
        a->v[1] = s->sha;
        a->len[1] = strlen(s->sha);
        rc = cmd(s, r, "commit", (int)a->n, a->v, a->len);
    }
    return rc;
}

/* Keeps a conflict's snapshot {0, policy version, TIME, rows...} for the
 * retry: the rows are those of the dirty rows, in the order of KEYS. Any
 * surprise just means the retry reads for itself. */
static void keep_warm(rd_store *s, const redisReply *r)
{
    const redisReply *t;
    size_t i, k = 0;
    warm_drop(s);
    if (r->elements < 3 || r->element[1]->type != REDIS_REPLY_STRING ||
        (t = r->element[2])->type != REDIS_REPLY_ARRAY || t->elements != 2 ||
        !t->element[0]->str || !t->element[1]->str ||
        !(s->warm = calloc(r->elements - 3 + 1, sizeof *s->warm)))
        return;
    s->warm_pver = strtoll(r->element[1]->str, NULL, 10);
    s->warm_time = strtoll(t->element[0]->str, NULL, 10) * RL_SECOND +
                   strtoll(t->element[1]->str, NULL, 10) * 1000;
    for (i = 0; i < s->n_rows && k + 3 < r->elements; i++) {
        rd_row *w;
        if (!s->rows[i]->dirty)
            continue;
        if (!(w = calloc(1, sizeof *w)))
            break;
        memcpy(w->key, s->rows[i]->key, sizeof w->key);
        s->warm[s->n_warm++] = w;
        if (parse_hash(s, w, r->element[3 + k++]) != RL_OK) {
            warm_drop(s);
            return;
        }
    }
    if (k + 3 != r->elements)
        warm_drop(s);
    s->warm_at = mono_ms();
}

static int cmp_tier(const void *a, const void *b)
{
    return strcmp(((const rl_tier *)a)->name, ((const rl_tier *)b)->name);
}

static int rd_commit(rl_store *base)
{
    rd_store *s = (rd_store *)base;
    argvec a = { NULL, NULL, 0, 0, NULL, 0, 0, 0 };
    unsigned char *pol = NULL, rowbuf[RD_ROW_MAX];
    size_t i, j, nkeys, pol_len = 0;
    char names[4][RD_NAME_MAX], rprefix[RD_NAME_MAX];
    redisReply *r = NULL;
    int rc = RL_OK;

    if (!s->write)
        goto out;
    a.size = commit_space(s, &nkeys);
    if (nkeys == 0 && !s->pol_dirty && !s->clear)
        goto out;
    if (s->pol_dirty && s->pol.n_tiers) /* in name order, as SQLite lists them */
        qsort(s->pol.tiers, s->pol.n_tiers, sizeof *s->pol.tiers, cmp_tier);
    if (s->pol_dirty && (rc = rd_policy_encode(&s->pol, &pol, &pol_len)) != RL_OK) {
        rc = rl_seterr(s->base.err, rc, "out of memory");
        goto out;
    }
    if (!(a.arena = malloc(a.size + pol_len))) {
        rc = rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
        goto out;
    }
    a.size += pol_len;
    name_of(s, "policy", names[0]);
    name_of(s, "keys", names[1]);
    name_of(s, "leases", names[2]);
    name_of(s, "lease_seq", names[3]);
    name_of(s, "k:", rprefix);
    arg(&a, "EVALSHA", 7);
    arg(&a, s->sha, strlen(s->sha));
    arg_int(&a, (int64_t)(4 + nkeys));
    for (i = 0; i < 4; i++)
        arg(&a, names[i], strlen(names[i]));
    for (i = 0; i < s->n_rows; i++)
        if (s->rows[i]->dirty) {
            char nm[RD_NAME_MAX];
            size_t len = row_name(s, s->rows[i]->key, nm);
            arg_copy(&a, nm, len);
        }
    if (s->have_pver)
        arg_int(&a, s->pver);
    else
        arg(&a, "", 0);
    arg(&a, pol ? (const char *)pol : "", pol_len);
    arg(&a, s->clear ? "1" : "0", 1);
    arg(&a, rprefix, strlen(rprefix));
    arg(&a, s->token, strlen(s->token));
    arg(&a, s->losses >= RD_CLAIM_AFTER ? "1" : "0", 1);
    for (i = 0; i < s->n_rows; i++) {
        rd_row *w = s->rows[i];
        char ver[RD_VER_MAX];
        size_t nf = (w->row.exists ? 2 : 0) + 2 * w->n_leases;
        if (!w->dirty)
            continue;
        arg(&a, w->ver, strlen(w->ver));
        snprintf(ver, sizeof ver, "%016" PRIx64, next_rand(s));
        arg_copy(&a, ver, strlen(ver));
        arg_int(&a, ttl_ms(s, w));
        arg(&a, w->key, strlen(w->key));
        arg(&a, w->row.exists ? "1" : "0", 1);
        arg_int(&a, (int64_t)nf);
        if (w->row.exists) {
            arg(&a, "r", 1);
            arg_copy(&a, rowbuf, rd_row_encode(&w->row, rowbuf));
        }
        for (j = 0; j < w->n_leases; j++) {
            char f[32];
            snprintf(f, sizeof f, "l:%" PRId64, w->leases[j].rec.id);
            arg_copy(&a, f, strlen(f));
            arg(&a, w->leases[j].raw, w->leases[j].raw_len);
        }
        arg_int(&a, (int64_t)w->n_gone);
        for (j = 0; j < w->n_gone; j++)
            arg_int(&a, w->gone[j]);
    }
    if (a.oom) {
        rc = rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = run_commit(s, &a, &r)) != RL_OK)
        goto out;
    if (r->type == REDIS_REPLY_ARRAY) {
        s->losses++;
        keep_warm(s, r);
        if (r->elements && r->element[0]->type == REDIS_REPLY_INTEGER &&
            r->element[0]->integer < 0) {
            /* another caller holds a claim and commits within a round trip
             * or so: retrying sooner only loads the server */
            struct timespec ts = { 0, RD_CLAIM_WAIT_US * 1000L };
            nanosleep(&ts, NULL);
        }
        rc = rl_seterr(s->base.err, RL_ECONFLICT, "redis %s: a concurrent write changed a key",
                       s->where);
    } else if (r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
        rc = rl_seterr(s->base.err, RL_ESTORE, "redis %s: commit: unexpected reply", s->where);
    } else {
        s->losses = 0;
    }
out:
    freeReplyObject(r);
    free(a.v);
    free(a.len);
    free(a.arena);
    free(pol);
    tx_reset(s);
    return rc;
}

/* ---- the policy ---------------------------------------------------------------- */

static int read_policy(rd_store *s, rl_policy *p, int64_t *version)
{
    char name[RD_NAME_MAX];
    const char *argv[4] = { "HMGET", name, "v", "b" };
    redisReply *r = NULL;
    int rc;
    *version = 0;
    name_of(s, "policy", name);
    if ((rc = cmd(s, &r, "read the policy", 4, argv, NULL)) != RL_OK)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        rc = rl_seterr(s->base.err, RL_ESTORE, "redis %s: HMGET: unexpected reply", s->where);
        goto out;
    }
    *version = r->element[0]->type == REDIS_REPLY_STRING ? strtoll(r->element[0]->str, NULL, 10)
                                                         : 0;
    if (r->element[1]->type == REDIS_REPLY_STRING &&
        (rc = rd_policy_decode(p, (const unsigned char *)r->element[1]->str,
                               r->element[1]->len)) != RL_OK)
        rc = rl_seterr(s->base.err, rc, rc == RL_ENOMEM ? "out of memory"
                                                        : "redis %s: %s holds a damaged policy "
                                                          "(loading a whole one replaces it)",
                       s->where, name);
out:
    freeReplyObject(r);
    return rc;
}

static int rd_policy_version(rl_store *base, int64_t *version)
{
    rd_store *s = (rd_store *)base;
    char name[RD_NAME_MAX];
    const char *argv[3] = { "HGET", name, "v" };
    redisReply *r = NULL;
    int rc;
    if (s->have_pver) {
        *version = s->pver;
        return RL_OK;
    }
    name_of(s, "policy", name);
    if ((rc = cmd(s, &r, "read the policy version", 3, argv, NULL)) != RL_OK)
        return rc;
    *version = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    freeReplyObject(r);
    s->pver = *version;
    s->have_pver = 1;
    return RL_OK;
}

static int rd_policy_get(rl_store *base, rl_policy *p)
{
    rd_store *s = (rd_store *)base;
    int64_t v;
    int rc;
    if (s->pol_loaded) {
        if (rl_policy_copy(p, &s->pol) != RL_OK)
            return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
        p->version = s->pver;
        return RL_OK;
    }
    if ((rc = read_policy(s, p, &v)) != RL_OK)
        return rc;
    p->version = v;
    if (!s->have_pver) {
        s->pver = v;
        s->have_pver = 1;
    }
    return RL_OK;
}

/* The transaction's own copy of the policy, to change and write at commit. */
static int tx_policy(rd_store *s)
{
    rl_policy p;
    int rc;
    if (s->pol_loaded)
        return RL_OK;
    rl_policy_init(&p);
    if ((rc = read_policy(s, &p, &s->pver)) != RL_OK) {
        rl_policy_free(&p);
        return rc;
    }
    s->have_pver = 1;
    s->pol = p;
    s->pol_loaded = 1;
    return RL_OK;
}

/* A whole new policy: the stored one is not read (only its version, which
 * the commit checks), so a damaged one is replaced rather than refused. */
static int rd_policy_put(rl_store *base, const rl_policy *p)
{
    rd_store *s = (rd_store *)base;
    rl_policy copy;
    int64_t version;
    int rc = rd_policy_version(base, &version);
    if (rc != RL_OK)
        return rc;
    if (rl_policy_copy(&copy, p) != RL_OK)
        return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
    if (s->pol_loaded)
        rl_policy_free(&s->pol);
    s->pol = copy;
    s->pol_loaded = 1;
    s->pol_dirty = 1;
    return RL_OK;
}

static int rd_tier_put(rl_store *base, const rl_tier *t)
{
    rd_store *s = (rd_store *)base;
    int rc = tx_policy(s);
    if (rc != RL_OK)
        return rc;
    if (rl_policy_put_tier(&s->pol, t) != RL_OK)
        return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
    s->pol_dirty = 1;
    return RL_OK;
}

static int rd_tier_delete(rl_store *base, const char *name)
{
    rd_store *s = (rd_store *)base;
    int rc = tx_policy(s);
    if (rc != RL_OK)
        return rc;
    if (rl_policy_del_tier(&s->pol, name) != RL_OK)
        return rl_seterr(s->base.err, RL_ENOTFOUND, "no such tier: '%s'", name);
    s->pol_dirty = 1;
    return RL_OK;
}

/* ---- listing keys ----------------------------------------------------------------- */

/* Forgets index entries whose hashes expired (names[] are full key names). */
static void unindex(rd_store *s, char (*names)[RD_NAME_MAX], size_t n)
{
    char idx[RD_NAME_MAX], rp[RD_NAME_MAX];
    const char **argv = malloc((n + 5) * sizeof *argv);
    redisReply *r = NULL;
    size_t i;
    if (!argv || s->readonly)
        goto out;
    name_of(s, "keys", idx);
    name_of(s, "k:", rp);
    argv[0] = "EVAL";
    argv[1] = unindex_lua;
    argv[2] = "2";
    argv[3] = idx;
    argv[4] = rp;
    for (i = 0; i < n; i++)
        argv[5 + i] = names[i];
    if (cmd(s, &r, "forget expired keys", (int)(n + 5), argv, NULL) != RL_OK)
        s->base.err[0] = 0; /* only housekeeping: the listing stands */
out:
    freeReplyObject(r);
    free(argv);
}

/* Walks the keys after `after` in byte order, page by page: one round trip
 * for the names, one for their rows. fn non-zero stops the walk. */
static int each_key(rd_store *s, const char *after, const char *match, size_t limit,
                    rl_row_fn fn, void *ctx)
{
    char idx[RD_NAME_MAX], from[RL_KEY_MAX + 2];
    char (*names)[RD_NAME_MAX] = malloc(RD_PAGE * sizeof *names);
    char (*stale)[RD_NAME_MAX] = malloc(RD_PAGE * sizeof *stale);
    const char *(*args)[3] = malloc(RD_PAGE * sizeof *args);
    const char **argvp[RD_PAGE];
    int argc[RD_PAGE];
    redisReply *page = NULL, **rows = calloc(RD_PAGE, sizeof *rows);
    rl_row *row = malloc(sizeof *row);
    size_t i, seen = 0;
    int rc = RL_OK;

    if (!names || !stale || !args || !rows || !row) {
        rc = rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
        goto out;
    }
    name_of(s, "keys", idx);
    snprintf(from, sizeof from, "(%s", after ? after : "");
    for (;;) {
        const char *zargv[7] = { "ZRANGEBYLEX", idx, from[1] ? from : "-", "+", "LIMIT", "0",
                                 "512" };
        size_t n, nstale = 0;
        if ((rc = cmd(s, &page, "list keys", 7, zargv, NULL)) != RL_OK)
            goto out;
        n = page->type == REDIS_REPLY_ARRAY ? page->elements : 0;
        for (i = 0; i < n; i++) {
            const redisReply *e = page->element[i];
            if (e->type != REDIS_REPLY_STRING || e->len > RL_KEY_MAX) {
                rc = rl_seterr(s->base.err, RL_ECORRUPT, "redis %s: %s: damaged index", s->where,
                               idx);
                goto out;
            }
            row_name(s, e->str, names[i]);
            args[i][0] = "HGET";
            args[i][1] = names[i];
            args[i][2] = "r";
            argc[i] = 3;
            argvp[i] = args[i];
        }
        if (n && (rc = pipeline(s, n, argc, argvp, NULL, rows, "read keys")) != RL_OK)
            goto out;
        for (i = 0; i < n && rc == RL_OK; i++) {
            const char *key = page->element[i]->str;
            if (rows[i]->type != REDIS_REPLY_STRING) {
                memcpy(stale[nstale++], names[i], RD_NAME_MAX);
                continue;
            }
            memset(row, 0, sizeof *row);
            if (rd_row_decode(row, (const unsigned char *)rows[i]->str, rows[i]->len) != RL_OK) {
                rc = rl_seterr(s->base.err, RL_ECORRUPT, "redis %s: key '%.64s': damaged record",
                               s->where, key);
                break;
            }
            if (match && !rl_glob_match(match, key))
                continue;
            rc = fn(ctx, key, row);
            if (limit && ++seen >= limit && rc == RL_OK)
                rc = 1; /* enough: stop quietly */
        }
        if (n)
            snprintf(from, sizeof from, "(%s", page->element[n - 1]->str);
        for (i = 0; i < n; i++) {
            freeReplyObject(rows[i]);
            rows[i] = NULL;
        }
        freeReplyObject(page);
        page = NULL;
        if (nstale)
            unindex(s, stale, nstale);
        if (rc != RL_OK || n < RD_PAGE)
            break;
    }
    if (rc == 1 && limit && seen >= limit)
        rc = RL_OK;
out:
    freeReplyObject(page);
    if (rows)
        for (i = 0; i < RD_PAGE; i++)
            freeReplyObject(rows[i]);
    free(rows);
    free(names);
    free(stale);
    free(args);
    free(row);
    return rc;
}

static int rd_keys_page(rl_store *base, const char *after, const char *match, size_t limit,
                        rl_row_fn fn, void *ctx)
{
    return each_key((rd_store *)base, after, match, limit, fn, ctx);
}

typedef struct sorted {
    char *key;
    rl_row row;
} sorted;

typedef struct collect {
    sorted *v;
    size_t n, cap;
    int sort;
} collect;

static int64_t sort_value(const rl_row *r, int sort)
{
    return sort == RL_SORT_ALLOWED ? r->allowed
         : sort == RL_SORT_REFUSED ? r->refused
         : sort == RL_SORT_LAST_SEEN ? r->last_seen : 0;
}

static int collect_one(void *ctx, const char *key, const rl_row *row)
{
    collect *c = ctx;
    sorted *nv = room(c->v, c->n, &c->cap, sizeof *nv, 256);
    if (!nv)
        return RL_ENOMEM;
    c->v = nv;
    if (!(c->v[c->n].key = strdup(key)))
        return RL_ENOMEM;
    c->v[c->n++].row = *row;
    return RL_OK;
}

static int cmp_sorted(const void *a, const void *b, void *ctx)
{
    const sorted *x = a, *y = b;
    int sort = *(const int *)ctx;
    int64_t vx = sort_value(&x->row, sort), vy = sort_value(&y->row, sort);
    if (vx != vy)
        return vx > vy ? -1 : 1; /* busiest first */
    return strcmp(x->key, y->key);
}

static int rd_keys_list(rl_store *base, const char *match, int sort, size_t limit, rl_row_fn fn,
                        void *ctx)
{
    rd_store *s = (rd_store *)base;
    collect c = { NULL, 0, 0, sort };
    size_t i;
    int rc;
    if (sort == RL_SORT_KEY) /* the index's own order: stream it */
        return each_key(s, NULL, match, limit, fn, ctx);
    rc = each_key(s, NULL, match, 0, collect_one, &c);
    if (rc == RL_ENOMEM)
        rc = rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
    if (rc == RL_OK && c.n) {
        qsort_r(c.v, c.n, sizeof *c.v, cmp_sorted, &sort);
        for (i = 0; i < c.n && (limit == 0 || i < limit) && rc == RL_OK; i++)
            rc = fn(ctx, c.v[i].key, &c.v[i].row);
    }
    for (i = 0; i < c.n; i++)
        free(c.v[i].key);
    free(c.v);
    return rc;
}

static int add_total(void *ctx, const char *key, const rl_row *row)
{
    rl_totals *t = ctx;
    (void)key;
    t->keys++;
    t->allowed += row->allowed;
    t->refused += row->refused;
    t->units += row->units;
    return RL_OK;
}

static int rd_totals(rl_store *base, rl_totals *t)
{
    memset(t, 0, sizeof *t);
    return each_key((rd_store *)base, NULL, NULL, 0, add_total, t);
}

/* ---- leases ------------------------------------------------------------------------- */

static int rd_lease_put(rl_store *base, rl_lease_rec *rec)
{
    rd_store *s = (rd_store *)base;
    char name[RD_NAME_MAX];
    const char *argv[2] = { "INCR", name };
    unsigned char raw[RD_LEASE_MAX];
    redisReply *r = NULL;
    rd_row *w;
    int rc;
    if ((rc = row_of(s, rec->key, &w)) != RL_OK)
        return rc;
    name_of(s, "lease_seq", name);
    if ((rc = cmd(s, &r, "number a lease", 2, argv, NULL)) != RL_OK)
        return rc;
    rec->id = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    if (rec->id <= 0)
        return rl_seterr(s->base.err, RL_ESTORE, "redis %s: INCR: unexpected reply", s->where);
    if (add_lease(w, rec, raw, rd_lease_encode(rec, s->host_id, raw)) != RL_OK)
        return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
    w->dirty = 1;
    return RL_OK;
}

/* The cached row and index of lease id, reading its key if need be. */
static int find_lease(rd_store *s, int64_t id, rd_row **row, size_t *at)
{
    char name[RD_NAME_MAX], ids[24];
    const char *argv[3] = { "HGET", name, ids };
    redisReply *r = NULL;
    size_t i, j;
    int rc;
    for (i = 0; i < s->n_rows; i++)
        for (j = 0; j < s->rows[i]->n_leases; j++)
            if (s->rows[i]->leases[j].rec.id == id) {
                *row = s->rows[i];
                *at = j;
                return RL_OK;
            }
    if (!s->clear) {
        name_of(s, "leases", name);
        snprintf(ids, sizeof ids, "%" PRId64, id);
        if ((rc = cmd(s, &r, "find a lease", 3, argv, NULL)) != RL_OK)
            return rc;
        if (r->type == REDIS_REPLY_STRING && r->len <= RL_KEY_MAX && !cached(s, r->str)) {
            rd_row *w;
            rc = row_of(s, r->str, &w);
            freeReplyObject(r);
            if (rc != RL_OK)
                return rc;
            for (j = 0; j < w->n_leases; j++)
                if (w->leases[j].rec.id == id) {
                    *row = w;
                    *at = j;
                    return RL_OK;
                }
        } else {
            freeReplyObject(r);
        }
    }
    return rl_seterr(s->base.err, RL_ENOTFOUND,
                     "lease %lld not found: settled, cancelled or reclaimed", (long long)id);
}

static int rd_lease_get(rl_store *base, int64_t id, rl_lease_rec *rec)
{
    rd_row *w;
    size_t at;
    int rc = find_lease((rd_store *)base, id, &w, &at);
    if (rc == RL_OK)
        *rec = w->leases[at].rec;
    return rc;
}

static int rd_lease_delete(rl_store *base, int64_t id)
{
    rd_store *s = (rd_store *)base;
    rd_row *w;
    int64_t *ng;
    size_t at;
    int rc = find_lease(s, id, &w, &at);
    if (rc == RL_ENOTFOUND) {
        s->base.err[0] = 0;
        return RL_OK;
    }
    if (rc != RL_OK)
        return rc;
    if (!(ng = room(w->gone, w->n_gone, &w->cap_gone, sizeof *ng, 4)))
        return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
    w->gone = ng;
    w->gone[w->n_gone++] = id;
    memmove(&w->leases[at], &w->leases[at + 1], (w->n_leases - at - 1) * sizeof *w->leases);
    w->n_leases--;
    w->dirty = 1;
    return RL_OK;
}

static int cmp_lease(const void *a, const void *b)
{
    const rl_lease_rec *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* Every lease of the given keys' rows, by id; fn may delete the lease it is
 * given, so it sees copies. */
static int leases_of(rd_store *s, const char *const *keys, size_t n, rl_lease_fn fn, void *ctx)
{
    rl_lease_rec *all = NULL;
    size_t i, j, m = 0, cap = 0;
    int rc;
    if ((rc = load(s, keys, n)) != RL_OK)
        return rc;
    for (i = 0; i < n; i++) {
        rd_row *w = cached(s, keys[i]);
        for (j = 0; w && j < w->n_leases; j++) {
            rl_lease_rec *na = room(all, m, &cap, sizeof *na, 16);
            if (!na) {
                free(all);
                return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
            }
            all = na;
            all[m++] = w->leases[j].rec;
        }
    }
    if (m)
        qsort(all, m, sizeof *all, cmp_lease);
    for (i = 0, rc = RL_OK; i < m && rc == RL_OK; i++)
        rc = fn(ctx, &all[i]);
    free(all);
    return rc;
}

static int rd_leases_each(rl_store *base, const char *key, rl_lease_fn fn, void *ctx)
{
    rd_store *s = (rd_store *)base;
    char name[RD_NAME_MAX];
    const char *argv[2] = { "HVALS", name };
    const char **keys = NULL;
    redisReply *r = NULL;
    size_t i, n = 0;
    int rc, own_tx = !s->in_tx;
    if (key)
        return leases_of(s, &key, 1, fn, ctx);
    name_of(s, "leases", name);
    if ((rc = cmd(s, &r, "list leases", 2, argv, NULL)) != RL_OK)
        return rc;
    if (r->type == REDIS_REPLY_ARRAY && r->elements &&
        !(keys = malloc(r->elements * sizeof *keys))) {
        rc = rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        size_t j;
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING || e->len > RL_KEY_MAX)
            continue;
        for (j = 0; j < n && strcmp(keys[j], e->str) != 0; j++)
            ;
        if (j == n)
            keys[n++] = e->str;
    }
    rc = leases_of(s, keys, n, fn, ctx);
    if (own_tx) /* reading outside a transaction caches nothing */
        tx_reset(s);
out:
    free(keys);
    freeReplyObject(r);
    return rc;
}

/* ---- import, health ------------------------------------------------------------ */

static int rd_state_clear(rl_store *base)
{
    rd_store *s = (rd_store *)base;
    int w = s->write, pl = s->pol_loaded, pd = s->pol_dirty, hv = s->have_pver;
    int64_t pv = s->pver;
    rl_policy keep = s->pol;
    s->pol_loaded = 0; /* keep the policy part of the transaction */
    tx_reset(s);
    s->in_tx = 1;
    s->write = w;
    s->pol_loaded = pl;
    s->pol_dirty = pd;
    s->have_pver = hv;
    s->pver = pv;
    if (pl)
        s->pol = keep;
    s->clear = 1;
    return RL_OK;
}

static int rd_lease_restore(rl_store *base, const rl_lease_rec *rec)
{
    rd_store *s = (rd_store *)base;
    unsigned char raw[RD_LEASE_MAX];
    rd_row *w;
    size_t at;
    int rc;
    if (find_lease(s, rec->id, &w, &at) == RL_OK)
        return rl_seterr(s->base.err, RL_EINVAL, "lease %lld exists already", (long long)rec->id);
    s->base.err[0] = 0;
    if ((rc = row_of(s, rec->key, &w)) != RL_OK)
        return rc;
    /* as the SQLite store does, an imported owner is taken to be local */
    if (add_lease(w, rec, raw, rd_lease_encode(rec, s->host_id, raw)) != RL_OK)
        return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
    w->dirty = 1;
    return RL_OK;
}

static const char *info_field(const char *info, const char *name, char *buf, size_t len)
{
    const char *p = strstr(info, name);
    size_t n = 0;
    buf[0] = 0;
    if (!p)
        return buf;
    p += strlen(name);
    while (p[n] && p[n] != '\r' && p[n] != '\n' && n + 1 < len)
        n++;
    memcpy(buf, p, n);
    buf[n] = 0;
    return buf;
}

static int rd_doctor(rl_store *base, rl_check_fn fn, void *ctx)
{
    rd_store *s = (rd_store *)base;
    const char *info_argv[2] = { "INFO", "all" };
    redisReply *r = NULL;
    char ver[32], pol[48], aof[8], detail[RL_ERRMSG_MAX + 128];
    int rc = cmd(s, &r, "INFO", 2, info_argv, NULL);
    if (rc != RL_OK) {
        snprintf(detail, sizeof detail, "%s", s->base.err);
        s->base.err[0] = 0;
        return fn(ctx, "store", RL_CHECK_FAIL, detail);
    }
    info_field(r->str ? r->str : "", "redis_version:", ver, sizeof ver);
    info_field(r->str ? r->str : "", "maxmemory_policy:", pol, sizeof pol);
    info_field(r->str ? r->str : "", "aof_enabled:", aof, sizeof aof);
    freeReplyObject(r);
    snprintf(detail, sizeof detail, "redis %s at %s, data format %d", ver, s->where, RD_FORMAT);
    if ((rc = fn(ctx, "store", RL_CHECK_OK, detail)) != 0)
        return rc;
    if (strcmp(pol, "noeviction") != 0) {
        snprintf(detail, sizeof detail,
                 "maxmemory-policy is %s: under memory pressure Redis may evict buckets and "
                 "admit over the limit; use noeviction",
                 pol[0] ? pol : "unknown");
        rc = fn(ctx, "eviction", RL_CHECK_WARN, detail);
    } else {
        rc = fn(ctx, "eviction", RL_CHECK_OK, "maxmemory-policy noeviction");
    }
    if (rc != 0)
        return rc;
    if (strcmp(aof, "1") != 0)
        return fn(ctx, "persistence", RL_CHECK_WARN,
                  "appendonly is off: a Redis restart loses what was spent since the last "
                  "snapshot (if any), and tiers loaded since");
    return fn(ctx, "persistence", RL_CHECK_OK, "appendonly on");
}

static int rd_now(rl_store *base, int64_t *ns)
{
    rd_store *s = (rd_store *)base;
    const char *argv[1] = { "TIME" };
    redisReply *r = NULL;
    int rc;
    if (s->have_time) {
        *ns = s->time_ns;
        return RL_OK;
    }
    if ((rc = cmd(s, &r, "TIME", 1, argv, NULL)) != RL_OK)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !r->element[0]->str ||
        !r->element[1]->str) {
        freeReplyObject(r);
        return rl_seterr(s->base.err, RL_ESTORE, "redis %s: TIME: unexpected reply", s->where);
    }
    s->time_ns = strtoll(r->element[0]->str, NULL, 10) * RL_SECOND +
                 strtoll(r->element[1]->str, NULL, 10) * 1000;
    freeReplyObject(r);
    /* inside a transaction, its reads and its clock are one moment */
    s->have_time = s->in_tx;
    *ns = s->time_ns;
    return RL_OK;
}

static int rd_prefetch(rl_store *base, const char *const *keys, size_t n)
{
    return load((rd_store *)base, keys, n);
}

static void rd_close(rl_store *base)
{
    rd_store *s = (rd_store *)base;
    tx_reset(s);
    warm_drop(s);
    free(s->rows);
    if (s->c)
        redisFree(s->c);
    free(s);
}

static const rl_store_ops rd_ops = {
    "redis",        rd_close,       rd_begin,        rd_commit,       rd_rollback,
    rd_row_get,     rd_row_put,     rd_row_delete,   rd_policy_version,
    rd_policy_get,  rd_policy_put,  rd_tier_put,     rd_tier_delete,
    rd_keys_list,   rd_totals,      rd_lease_put,    rd_lease_get,    rd_lease_delete,
    rd_leases_each, rd_keys_page,   rd_state_clear,  rd_lease_restore, rd_doctor,
    rd_now,         rd_prefetch,    NULL,            NULL,            NULL,
};

/* ---- opening ------------------------------------------------------------------------- */

/* %XX in URL parts. */
static int unescape(char *dst, size_t cap, const char *src, size_t len)
{
    size_t i, o = 0;
    for (i = 0; i < len; i++) {
        int c = (unsigned char)src[i];
        if (c == '%' && i + 2 < len) {
            unsigned v;
            if (sscanf(src + i + 1, "%2x", &v) != 1)
                return -1;
            c = (int)v;
            i += 2;
        }
        if (o + 1 >= cap || c == 0)
            return -1;
        dst[o++] = (char)c;
    }
    dst[o] = 0;
    return 0;
}

static int bad_url(rd_store *s, const char *url, const char *why)
{
    (void)url;
    return rl_seterr(s->base.err, RL_EINVAL,
                     "invalid Redis address: %s (redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]"
                     "[?prefix=P&timeout_ms=N&idle_ttl=SECONDS] or unix:///PATH[?db=N&...])",
                     why);
}

static int query(rd_store *s, const char *url, const char *q)
{
    while (q && *q) {
        const char *amp = strchr(q, '&'), *eq = strchr(q, '=');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        char val[256];
        char *end;
        long long v;
        if (!eq || eq > q + len)
            return bad_url(s, url, "option without a value");
        if (unescape(val, sizeof val, eq + 1, (size_t)(q + len - eq - 1)) != 0)
            return bad_url(s, url, "option value too long or badly escaped");
        v = strtoll(val, &end, 10);
        if (!strncmp(q, "prefix=", 7)) {
            if (strlen(val) >= RD_PREFIX_MAX - 1 || strchr(val, '{') || strchr(val, '}'))
                return bad_url(s, url, "prefix longer than 62 bytes or with braces");
            snprintf(s->prefix, sizeof s->prefix, "%s", val);
        } else if (!strncmp(q, "timeout_ms=", 11)) {
            if (*end || v < 1 || v > 3600000)
                return bad_url(s, url, "timeout_ms must be 1..3600000");
            s->timeout_ms = (int)v;
        } else if (!strncmp(q, "idle_ttl=", 9)) {
            if (*end || v < 1 || v > 366LL * 86400 * 10)
                return bad_url(s, url, "idle_ttl must be 1..3660 days in seconds");
            s->idle_ttl_ms = v * 1000;
        } else if (!strncmp(q, "db=", 3)) {
            if (*end || v < 0 || v > 65535)
                return bad_url(s, url, "db must be a number");
            s->db = (int)v;
        } else if (!strncmp(q, "password=", 9)) {
            snprintf(s->pass, sizeof s->pass, "%s", val);
        } else {
            return bad_url(s, url, "unknown option");
        }
        q = amp ? amp + 1 : NULL;
    }
    return RL_OK;
}

static int parse_url(rd_store *s, const char *url)
{
    const char *p, *q = strchr(url, '?'), *at, *end;
    size_t len;
    int rc;
    end = q ? q : url + strlen(url);
    if (!strncmp(url, "unix://", 7)) {
        p = url + 7;
        if (*p != '/' || (size_t)(end - p) >= sizeof s->sock)
            return bad_url(s, url, "unix:// needs an absolute socket path");
        memcpy(s->sock, p, (size_t)(end - p));
        s->sock[end - p] = 0;
        snprintf(s->where, sizeof s->where, "unix://%s", s->sock);
        return query(s, url, q ? q + 1 : NULL);
    }
    p = url + 8; /* "redis://" */
    if ((at = memchr(p, '@', (size_t)(end - p)))) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon)
            return bad_url(s, url, "credentials must be [USER]:PASSWORD@");
        if (unescape(s->user, sizeof s->user, p, (size_t)(colon - p)) ||
            unescape(s->pass, sizeof s->pass, colon + 1, (size_t)(at - colon - 1)))
            return bad_url(s, url, "user or password too long or badly escaped");
        p = at + 1;
    }
    len = strcspn(p, ":/?");
    if (len == 0 || len >= sizeof s->host)
        return bad_url(s, url, "no host");
    memcpy(s->host, p, len);
    s->host[len] = 0;
    p += len;
    s->port = 6379;
    if (*p == ':') {
        char *e;
        long v = strtol(p + 1, &e, 10);
        if (e == p + 1 || v < 1 || v > 65535 || (*e && *e != '/' && *e != '?'))
            return bad_url(s, url, "port must be 1..65535");
        s->port = (int)v;
        p = e;
    }
    if (*p == '/' && p + 1 < end) {
        char *e;
        long v = strtol(p + 1, &e, 10);
        if (e == p + 1 || v < 0 || v > 65535 || e != end)
            return bad_url(s, url, "database must be a number");
        s->db = (int)v;
    }
    snprintf(s->where, sizeof s->where, "%s:%d/%d", s->host, s->port, s->db);
    if ((rc = query(s, url, q ? q + 1 : NULL)) != RL_OK)
        return rc;
    return RL_OK;
}

int rl_store_redis_open(rl_store **out, const char *url, const rl_store_config *c, char *err)
{
    rd_store *s = calloc(1, sizeof *s);
    const char *pw = getenv("RL_REDIS_PASSWORD");
    int rc;
    *out = NULL;
    if (!s)
        return rl_seterr(err, RL_ENOMEM, "out of memory");
    s->base.ops = &rd_ops;
    s->base.err = err;
    *out = &s->base;
    snprintf(s->prefix, sizeof s->prefix, "rl:");
    s->timeout_ms = c->busy_timeout_ms > 0 ? c->busy_timeout_ms : 1000;
    s->idle_ttl_ms = 86400 * 1000LL;
    s->readonly = (c->flags & RL_OPEN_READONLY) != 0;
    s->host_id = rd_host_id();
    s->rng = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL ^ (uint64_t)mono_ms() ^
             (uint64_t)(uintptr_t)s;
    if (!s->rng)
        s->rng = 1;
    snprintf(s->token, sizeof s->token, "%016" PRIx64, next_rand(s));
    if ((rc = parse_url(s, url)) != RL_OK)
        return rc;
    if (!s->pass[0] && pw)
        snprintf(s->pass, sizeof s->pass, "%s", pw);
    return connect_now(s);
}

int rl_store_is_redis(const char *path)
{
    return strncmp(path, "redis://", 8) == 0 || strncmp(path, "unix://", 7) == 0;
}
