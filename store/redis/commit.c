/*
 * commit.c - the Redis store's transactions: begin, the optimistic commit
 * and what happens when it conflicts.
 *
 * Guarantees:
 *   - a commit is one Lua script (EVALSHA): it checks that every row and
 *     the policy version the transaction read are unchanged and then
 *     applies every write, or applies nothing and answers "conflict", and
 *     the caller runs the transaction again (RL_ECONFLICT);
 *   - the retry right after a conflict starts from the rows the script
 *     sent back (no read round trip), and its commit checks them again;
 *   - a caller that keeps losing claims its rows for a moment, so it
 *     cannot starve;
 *   - each row written gets a TTL of the time its buckets, cool-downs and
 *     leases need to be full/over again, plus idle_ttl (explicit tier
 *     assignments never expire);
 *   - a reply lost after the script ran reads as a failure: budget may be
 *     spent, never over-granted.
 */
#include "rd.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long a conflict's snapshot may stand in for a fresh read: the retry
 * comes at once, and a later transaction reads for itself. */
#define RD_WARM_MS 5
/* Conflicts in a row after which a commit claims its rows. */
#define RD_CLAIM_AFTER 3
/* How long a commit that met another's claim waits before its retry. */
#define RD_CLAIM_WAIT_US 100

/* ---- the commit script ------------------------------------------------------ */

/* The shebang (Redis >= 7.0) makes the server refuse the whole script when
 * it is out of memory, before any write; without it a script that has begun
 * writing may go on past maxmemory, and the caller never hears of it. */
static const char commit_lua[] =
    "#!lua\n"
    "-- KEYS: policy, key index, lease map, lease seq, then rows\n"
    "-- ARGV: policy version to check ('' none), new policy blob ('' none),\n"
    "-- '1' to clear all keys first, what a row's name has before its key\n"
    "-- (format 1's end with '{' and the name with '}'), the caller's token,\n"
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
    "  if not now then local t = redis.call('TIME'); now = t[1] * 1000 + math.floor(t[2] / 1000) "
    "end\n"
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
    "  local out = {blocked and -1 or 0, redis.call('HGET', KEYS[1], 'v') or '0', "
    "redis.call('TIME')}\n"
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
    "    redis.call('DEL', ARGV[4] .. m .. (string.sub(ARGV[4], -1) == '{' and '}' or ''))\n"
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

int rd_script_load(rd_store *s, const char *text, char sha[RD_SHA_MAX], const char *what)
{
    const char *argv[3] = { "SCRIPT", "LOAD", text };
    redisReply *r = NULL;
    int rc = rd_plain(s, &r, what, 3, argv, NULL);
    if (rc == RL_OK) {
        if (r->type == REDIS_REPLY_STRING && r->len < RD_SHA_MAX)
            snprintf(sha, RD_SHA_MAX, "%s", r->str);
        else
            rc = rl_seterr(s->base.err, RL_ESTORE, "redis %s: SCRIPT LOAD: unexpected reply",
                           s->where);
    }
    freeReplyObject(r);
    return rc;
}

int rd_load_script(rd_store *s)
{
    return rd_script_load(s, commit_lua, s->sha, "load the commit script");
}

/* ---- begin and rollback ------------------------------------------------------- */

void rd_warm_drop(rd_store *s)
{
    size_t i;
    for (i = 0; i < s->n_warm; i++)
        rd_row_free(s->warm[i]);
    free(s->warm);
    s->warm = NULL;
    s->n_warm = 0;
}

int rd_begin(rl_store *base, int write)
{
    rd_store *s = (rd_store *)base;
    size_t i;
    rd_tx_reset(s);
    if (write && s->readonly)
        return rl_seterr(s->base.err, RL_EREADONLY, "redis %s: opened read-only", s->where);
    s->in_tx = 1;
    s->write = write;
    if (!s->n_warm || rd_mono_ms() - s->warm_at > RD_WARM_MS)
        s->losses = 0; /* not the retry of a conflict: a new streak */
    if (s->n_warm && write && rd_mono_ms() - s->warm_at <= RD_WARM_MS) {
        /* The retry of a conflicting commit: the commit's reply holds the
         * rows as they are now, with the policy version and the time, so no
         * read round trip is needed. Its own commit checks them again. */
        for (i = 0; i < s->n_warm && rd_push_row(s, s->warm[i]) == 0; i++)
            s->warm[i] = NULL;
        s->pver = s->warm_pver;
        s->time_ns = s->warm_time;
        s->have_pver = s->have_time = 1;
    }
    rd_warm_drop(s);
    return RL_OK;
}

void rd_rollback(rl_store *base)
{
    rd_tx_reset((rd_store *)base);
}

/* ---- commit ------------------------------------------------------------------- */

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
                    continue;                          /* its leases say how long */
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

uint64_t rd_next_rand(rd_store *s)
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
    int rc = rd_cmd(s, r, "commit", (int)a->n, a->v, a->len);
    if (rc == RL_ESTORE && strstr(s->base.err, "NOSCRIPT")) {
        /* the server restarted or flushed its scripts: load and run again */
        if ((rc = rd_load_script(s)) != RL_OK)
            return rc;
        a->v[1] = s->sha;
        a->len[1] = strlen(s->sha);
        rc = rd_cmd(s, r, "commit", (int)a->n, a->v, a->len);
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
    rd_warm_drop(s);
    if (r->elements < 3 || r->element[1]->type != REDIS_REPLY_STRING ||
        (t = r->element[2])->type != REDIS_REPLY_ARRAY || t->elements != 2 || !t->element[0]->str ||
        !t->element[1]->str || !(s->warm = calloc(r->elements - 3 + 1, sizeof *s->warm)))
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
        if (rd_parse_hash(s, w, r->element[3 + k++]) != RL_OK) {
            rd_warm_drop(s);
            return;
        }
    }
    if (k + 3 != r->elements)
        rd_warm_drop(s);
    s->warm_at = rd_mono_ms();
}

static int cmp_tier(const void *a, const void *b)
{
    return strcmp(((const rl_tier *)a)->name, ((const rl_tier *)b)->name);
}

int rd_commit(rl_store *base)
{
    rd_store *s = (rd_store *)base;
    argvec a = { NULL, NULL, 0, 0, NULL, 0, 0, 0 };
    unsigned char *pol = NULL, rowbuf[RD_ROW_MAX];
    size_t i, j, nkeys, pol_len = 0;
    char names[4][RD_NAME_MAX], rprefix[RD_NAME_MAX];
    redisReply *r = NULL;
    int rc = RL_OK;

    if (s->replay)
        return rd_fast_check(s);
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
    rd_name_of(s, "policy", names[0]);
    rd_name_of(s, "keys", names[1]);
    rd_name_of(s, "leases", names[2]);
    rd_name_of(s, "lease_seq", names[3]);
    rd_row_pre(s, rprefix);
    arg(&a, "EVALSHA", 7);
    arg(&a, s->sha, strlen(s->sha));
    arg_int(&a, (int64_t)(4 + nkeys));
    for (i = 0; i < 4; i++)
        arg(&a, names[i], strlen(names[i]));
    for (i = 0; i < s->n_rows; i++)
        if (s->rows[i]->dirty) {
            char nm[RD_NAME_MAX];
            size_t len = rd_row_name(s, s->rows[i]->key, nm);
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
        snprintf(ver, sizeof ver, "%016" PRIx64, rd_next_rand(s));
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
    rd_tx_reset(s);
    return rc;
}
