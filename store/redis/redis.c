/*
 * redis.c - the Redis store behind "redis://HOST:PORT/DB" and "unix:///path":
 * what it guarantees, and its opening: the URL and its options, the
 * connection and every round trip. The operations live beside it by concern
 * (rd.h lists the files).
 *
 * When agents run on several machines, Redis is the shared store. Each rl
 * key is one Redis hash, "{PREFIX}k:KEY", holding its row (field r), its
 * open leases (l:ID) and a random version token (v). The policy is one hash
 * ("{PREFIX}policy": blob b and version v), a sorted set indexes key names
 * in byte order for listing, and a hash maps lease ids to keys. The braces
 * make the prefix every name's Redis Cluster hash tag: all of a prefix is
 * one slot, on one node, which rl finds by following MOVED replies. A
 * server written in data format 1 (names without the braces) is kept in
 * format 1 (rd.h, RD_FORMAT).
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
#include "rd.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RD_BACKOFF_MAX_MS 1000

int64_t rd_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- names ------------------------------------------------------------------ */

size_t rd_row_name(const rd_store *s, const char *key, char *buf)
{
    if (s->format == 1)
        return (size_t)snprintf(buf, RD_NAME_MAX, "%sk:{%s}", s->prefix, key);
    return (size_t)snprintf(buf, RD_NAME_MAX, "{%s}k:%s", s->prefix, key);
}

void rd_name_of(const rd_store *s, const char *what, char *buf)
{
    snprintf(buf, RD_NAME_MAX, s->format == 1 ? "%s%s" : "{%s}%s", s->prefix, what);
}

void rd_row_pre(const rd_store *s, char *buf)
{
    snprintf(buf, RD_NAME_MAX, s->format == 1 ? "%sk:{" : "{%s}k:", s->prefix);
}

/* ---- the connection ---------------------------------------------------------- */

/* s->where, for messages: the address without its password. */
static void where_of(rd_store *s)
{
    if (s->sock[0])
        snprintf(s->where, sizeof s->where, "unix://%s", s->sock);
    else
        snprintf(s->where, sizeof s->where, "%s:%d/%d", s->host, s->port, s->db);
}

/* After a failure: a node that MOVED sent us to may be the one that
 * failed, so the next attempt starts again from the address given, which
 * names the slot's current owner (after a failover too). */
static void reseed(rd_store *s)
{
    if (s->port != s->seed_port || strcmp(s->host, s->seed_host) != 0 ||
        strcmp(s->sock, s->seed_sock) != 0) {
        memcpy(s->host, s->seed_host, sizeof s->host);
        memcpy(s->sock, s->seed_sock, sizeof s->sock);
        s->port = s->seed_port;
        where_of(s);
    }
}

static void drop(rd_store *s)
{
    if (s->c) {
        redisFree(s->c);
        s->c = NULL;
    }
    reseed(s);
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : 10;
    if (s->backoff_ms > RD_BACKOFF_MAX_MS)
        s->backoff_ms = RD_BACKOFF_MAX_MS;
    s->retry_at = rd_mono_ms() + s->backoff_ms;
    s->have_time = 0;
}

/* A failure of the connection itself (c->err): it is dropped. The caller
 * returns RL_ECONNECT. */
static void conn_fail(rd_store *s, const char *what)
{
    int timed_out =
        s->c && s->c->err == REDIS_ERR_IO &&
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

/* "MOVED SLOT HOST:PORT": another node serves the prefix's hash slot
 * (Redis Cluster). The caller follows it (follow) before trying again;
 * an address too long to keep is not followed, and the error stands. */
static void moved_to(rd_store *s, const char *m)
{
    const char *at = strchr(m, ' ');
    if (at && strlen(at + 1) < sizeof s->moved && strrchr(at + 1, ':'))
        snprintf(s->moved, sizeof s->moved, "%s", at + 1);
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
    else if (!strncmp(m, "ASK ", 4) || !strncmp(m, "TRYAGAIN", 8) || !strncmp(m, "CLUSTERDOWN", 11))
        code = RL_EBUSY; /* the prefix's slot is moving between nodes, or the cluster is down */
    else if (!strncmp(m, "MOVED ", 6))
        moved_to(s, m + 6);
    rl_seterr(s->base.err, code, "redis %s: %s: %.160s", s->where, what, m);
    return code;
}

/* Sets the format marker `name` to ours unless it holds one, and reads it
 * into *fmt. A value this library cannot read is RL_EVERSION (newer) or
 * RL_ECORRUPT (not a format at all). */
static int marker(rd_store *s, const char *name, int *fmt)
{
    char mine[8], *end = mine; /* (read only after strtol set it) */
    const char *set[5] = { "SET", name, mine, "NX" }, *get[2] = { "GET", name };
    redisReply *r = NULL;
    long v;
    int rc;
    snprintf(mine, sizeof mine, "%d", RD_FORMAT);
    if ((rc = rd_plain(s, &r, "check the data format", 4, set, NULL)) != RL_OK)
        return rc;
    freeReplyObject(r);
    if ((rc = rd_plain(s, &r, "check the data format", 2, get, NULL)) != RL_OK)
        return rc;
    v = r->type == REDIS_REPLY_STRING && r->len > 0 && r->len < 8 ? strtol(r->str, &end, 10) : 0;
    if (v > RD_FORMAT && !*end)
        rc = rl_seterr(s->base.err, RL_EVERSION,
                       "redis %s: data format %s is newer than this library's %d", s->where, r->str,
                       RD_FORMAT);
    else if (v < 1 || *end)
        rc = rl_seterr(s->base.err, RL_ECORRUPT, "redis %s: %s holds no rl data format", s->where,
                       name);
    else
        *fmt = (int)v;
    freeReplyObject(r);
    return rc;
}

/* Which format the server's data has, marking a new server with ours.
 * Format 1's marker comes first because it is the one a library of format
 * 1 reads: setting it to 2 is what makes such a library refuse the server
 * (RL_EVERSION) instead of writing format 1 beside format 2 data, and a
 * server it marked first stays format 1. On Redis Cluster that marker's
 * slot may live on another node (MOVED): no format 1 library can work on a
 * cluster (its scripts cross slots), so only format 2's marker counts. */
static int check_format(rd_store *s)
{
    char name[RD_NAME_MAX];
    int fmt = 0, rc;
    s->format = 1;
    rd_name_of(s, "format", name);
    rc = marker(s, name, &fmt);
    if (rc != RL_OK && s->moved[0]) {
        s->moved[0] = 0;
        s->base.err[0] = 0;
        fmt = RD_FORMAT;
    } else if (rc != RL_OK || fmt == 1) {
        return rc;
    }
    s->format = 2;
    rd_name_of(s, "format", name);
    return marker(s, name, &fmt);
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
        if ((rc = rd_plain(s, &r, "AUTH", s->user[0] ? 3 : 2, argv, NULL)) != RL_OK) {
            if (rc != RL_ECONNECT) /* whatever the server's words, it said no */
                rc = RL_EAUTH;
            goto fail;
        }
        freeReplyObject(r);
    }
    if (s->db) {
        const char *argv[2] = { "SELECT", dbs };
        snprintf(dbs, sizeof dbs, "%d", s->db);
        if ((rc = rd_plain(s, &r, "SELECT", 2, argv, NULL)) != RL_OK)
            goto fail;
        freeReplyObject(r);
    }
    if ((rc = check_format(s)) != RL_OK || (rc = rd_load_script(s)) != RL_OK ||
        (rc = rd_load_fast_script(s)) != RL_OK || (rc = rd_load_lease_script(s)) != RL_OK)
        goto fail;
    s->backoff_ms = 0;
    return RL_OK;
fail:
    if (s->c) { /* keep the message, drop the half-made connection */
        redisFree(s->c);
        s->c = NULL;
    }
    if (!s->moved[0]) /* (a redirection is followed by the caller) */
        reseed(s);
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : 10;
    if (s->backoff_ms > RD_BACKOFF_MAX_MS)
        s->backoff_ms = RD_BACKOFF_MAX_MS;
    s->retry_at = rd_mono_ms() + s->backoff_ms;
    return rc;
}

/* Moves the handle to the node a MOVED reply named: a redirection is no
 * failure, so there is no backoff. The server's clock is read again there
 * (have_time); the transaction's rows stay, as the commit checks them. */
static void follow(rd_store *s)
{
    char *colon = strrchr(s->moved, ':');
    long port = strtol(colon + 1, NULL, 10);
    if (colon > s->moved && (size_t)(colon - s->moved) < sizeof s->host) {
        memcpy(s->host, s->moved, (size_t)(colon - s->moved));
        s->host[colon - s->moved] = 0;
    } /* ":PORT": the same host */
    s->port = port > 0 && port <= 65535 ? (int)port : s->port;
    s->sock[0] = 0;
    where_of(s);
    if (s->c) {
        redisFree(s->c);
        s->c = NULL;
    }
    s->moved[0] = 0;
    s->base.err[0] = 0;
    s->have_time = 0;
    s->backoff_ms = 0;
    s->retry_at = 0;
}

/* The end of a call's hops. Still sent on after RD_HOPS_MAX of them, the
 * slot is moving as we follow it, or the nodes disagree on its owner: like
 * ASK and TRYAGAIN that passes, so it is RL_EBUSY (the fail mode applies),
 * not a store failure, and the next call starts again from where this one
 * ended. */
static int hops_done(rd_store *s, int rc)
{
    if (rc != RL_OK && s->moved[0]) {
        char last[RL_ERRMSG_MAX];
        snprintf(last, sizeof last, "%s", s->base.err);
        rc = rl_seterr(s->base.err, RL_EBUSY, "%s (still redirected after %d hops)", last,
                       RD_HOPS_MAX);
    }
    s->moved[0] = 0;
    return rc;
}

/* Connects, and on Redis Cluster to the node that serves the prefix's hash
 * slot: the first one asked may name another (MOVED, met by the format
 * check). At most RD_HOPS_MAX hops, against a cluster that keeps moving. */
static int connect_follow(rd_store *s)
{
    int hop, rc = RL_OK;
    for (hop = 0; hop <= RD_HOPS_MAX; hop++) {
        if ((rc = connect_now(s)) == RL_OK || !s->moved[0])
            break;
        if (hop < RD_HOPS_MAX)
            follow(s);
    }
    return hops_done(s, rc);
}

static int ensure(rd_store *s)
{
    int64_t now;
    if (s->c)
        return RL_OK;
    now = rd_mono_ms();
    if (now < s->retry_at)
        return rl_seterr(s->base.err, RL_ECONNECT,
                         "redis %s: unreachable; next connection attempt in %lld ms", s->where,
                         (long long)(s->retry_at - now));
    return connect_follow(s);
}

/* Requests go out with send(MSG_NOSIGNAL) rather than hiredis's write():
 * a socket the server closed then fails with EPIPE instead of raising
 * SIGPIPE, whose default kills the process, without touching the
 * application's signal handling and without a system call to mask it.
 * hiredis only reads the replies (its output buffer stays empty). On
 * failure the context's error is set as hiredis would (conn_fail reads it
 * and errno). */
static int send_all(rd_store *s, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t k = send(s->c->fd, buf, len, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int e = k < 0 ? errno : EPIPE;
            s->c->err = REDIS_ERR_IO;
            snprintf(s->c->errstr, sizeof s->c->errstr, "%s", strerror(e));
            errno = e;
            return -1;
        }
        buf += k;
        len -= (size_t)k;
    }
    return 0;
}

/* n commands formatted into one buffer (malloc'd, *out) and its length, or
 * -1 when out of memory. */
static long long format_cmds(size_t n, int *argc, const char ***argv, size_t **len, char **out)
{
    char *buf = NULL, *cmd, *nb;
    long long total = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        int k = redisFormatCommandArgv(&cmd, argc[i], argv[i], len ? len[i] : NULL);
        if (k < 0 || !(nb = realloc(buf, (size_t)total + (size_t)k))) {
            if (k >= 0)
                redisFreeCommand(cmd);
            free(buf);
            return -1;
        }
        buf = nb;
        memcpy(buf + total, cmd, (size_t)k);
        total += k;
        redisFreeCommand(cmd);
    }
    *out = buf;
    return total;
}

/* One command on a connection that exists (connect_now uses it too). */
int rd_plain(rd_store *s, redisReply **out, const char *what, int argc, const char **argv,
             const size_t *len)
{
    redisReply *r = NULL;
    char *cmd = NULL;
    long long n = format_cmds(1, &argc, &argv, (size_t **)&len, &cmd);
    *out = NULL;
    if (n < 0) {
        rl_seterr(s->base.err, RL_ENOMEM, "redis %s: %s: out of memory", s->where, what);
        return RL_ENOMEM; /* (not rl_seterr's value: the analyzer cannot see it) */
    }
    if (send_all(s, cmd, (size_t)n) != 0 || redisGetReply(s->c, (void **)&r) != REDIS_OK)
        r = NULL;
    free(cmd);
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

int rd_cmd(rd_store *s, redisReply **out, const char *what, int argc, const char **argv,
           const size_t *len)
{
    int hop, rc = RL_OK;
    *out = NULL;
    for (hop = 0; hop <= RD_HOPS_MAX; hop++) {
        if ((rc = ensure(s)) != RL_OK)
            break;
        if ((rc = rd_plain(s, out, what, argc, argv, len)) == RL_OK || !s->moved[0])
            break;
        if (hop < RD_HOPS_MAX) /* the slot moved to another node: ask that one */
            follow(s);
    }
    return hops_done(s, rc);
}

static int pipeline_once(rd_store *s, size_t n, int *argc, const char ***argv, size_t **len,
                         redisReply **out, const char *what);

/* Sends n commands in one write and reads their n replies into out[]; on
 * failure every reply is freed. Error replies are failures too. All of
 * them are sent again to the node a MOVED reply names. */
int rd_pipeline(rd_store *s, size_t n, int *argc, const char ***argv, size_t **len,
                redisReply **out, const char *what)
{
    int hop, rc = RL_OK;
    for (hop = 0; hop <= RD_HOPS_MAX; hop++) {
        if ((rc = pipeline_once(s, n, argc, argv, len, out, what)) == RL_OK || !s->moved[0])
            break;
        if (hop < RD_HOPS_MAX)
            follow(s);
    }
    return hops_done(s, rc);
}

static int pipeline_once(rd_store *s, size_t n, int *argc, const char ***argv, size_t **len,
                         redisReply **out, const char *what)
{
    char *cmds = NULL;
    long long total;
    size_t i;
    int rc;
    for (i = 0; i < n; i++)
        out[i] = NULL;
    if ((rc = ensure(s)) != RL_OK)
        return rc;
    if ((total = format_cmds(n, argc, argv, len, &cmds)) < 0) {
        rl_seterr(s->base.err, RL_ENOMEM, "redis %s: %s: out of memory", s->where, what);
        return RL_ENOMEM;
    }
    rc = send_all(s, cmds, (size_t)total);
    free(cmds);
    for (i = 0; i < n && rc == RL_OK; i++)
        if (redisGetReply(s->c, (void **)&out[i]) != REDIS_OK)
            rc = -1;
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

static void rd_close(rl_store *base)
{
    rd_store *s = (rd_store *)base;
    rd_tx_reset(s);
    rd_warm_drop(s);
    free(s->rows);
    if (s->c)
        redisFree(s->c);
    free(s);
}

/* No group commit: conflicts are resolved by the commit script instead. */
static const rl_store_ops rd_ops = {
    .name = "redis",
    .close = rd_close,
    .begin = rd_begin,
    .commit = rd_commit,
    .rollback = rd_rollback,
    .row_get = rd_row_get,
    .row_put = rd_row_put,
    .row_delete = rd_row_delete,
    .policy_version = rd_policy_version,
    .policy_get = rd_policy_get,
    .policy_put = rd_policy_put,
    .tier_put = rd_tier_put,
    .tier_delete = rd_tier_delete,
    .keys_list = rd_keys_list,
    .totals = rd_totals,
    .lease_put = rd_lease_put,
    .lease_get = rd_lease_get,
    .lease_delete = rd_lease_delete,
    .leases_each = rd_leases_each,
    .keys_page = rd_keys_page,
    .state_clear = rd_state_clear,
    .lease_restore = rd_lease_restore,
    .doctor = rd_doctor,
    .now = rd_now,
    .prefetch = rd_prefetch,
    .decide_fast = rd_decide_fast,
    .lease_end_fast = rd_lease_end_fast,
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
            memcpy(s->prefix, val, strlen(val) + 1); /* length checked above */
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
        where_of(s);
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
    where_of(s);
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
    s->rng = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL ^ (uint64_t)rd_mono_ms() ^
             (uint64_t)(uintptr_t)s;
    if (!s->rng)
        s->rng = 1;
    snprintf(s->token, sizeof s->token, "%016" PRIx64, rd_next_rand(s));
    if ((rc = parse_url(s, url)) != RL_OK)
        return rc;
    if (!s->pass[0] && pw)
        snprintf(s->pass, sizeof s->pass, "%s", pw);
    memcpy(s->seed_host, s->host, sizeof s->host);
    memcpy(s->seed_sock, s->sock, sizeof s->sock);
    s->seed_port = s->port;
    return connect_follow(s);
}
