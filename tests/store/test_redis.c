/*
 * test_redis.c - the Redis store when the server misbehaves.
 *
 * What users rely on: every kind of server failure (refused, killed and
 * restarted, frozen past the timeout, BUSY with a script, out of memory,
 * wrong password) gives its own error code and a message, applies the fail
 * mode, never hangs past the timeout, and the same handle decides again once
 * the server is back. Hostile contents (a newer data format, damaged
 * records) are refused. Idle keys get a TTL; assigned ones keep none.
 *
 * Each test runs a private redis-server on a free loopback port, started
 * and stopped by its PID. Without redis-server on PATH the tests are skipped.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "redis_helpers.h"
#include "rl.h"

typedef struct fx {
    char dir[64];
    int port;
    pid_t pid;
    char url[256];
} fx;

#define mono_ms rt_mono_ms
#define sleep_ms rt_sleep_ms
#define free_port rt_free_port

static redisContext *raw(const fx *f)
{
    return rt_raw(f->port);
}

/* A raw command that must succeed (on a server without a password). */
static void must(const fx *f, const char *fmt, const char *arg)
{
    redisContext *c = raw(f);
    freeReplyObject(rt_must(c, fmt, arg));
    redisFree(c);
}

static void start(fx *f)
{
    f->pid = rt_start(f->dir, f->port, NULL);
}

static void stop(fx *f, int sig)
{
    rt_stop(f->pid, sig);
    f->pid = 0;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    static int warned;
    if (!rt_have_redis()) {
        if (!warned++)
            print_message("redis-server not found: nothing to test\n");
        free(f);
        *state = NULL;
        return 0;
    }
    strcpy(f->dir, "/tmp/rl_test_redis.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->port = free_port();
    snprintf(f->url, sizeof f->url, "redis://127.0.0.1:%d/0?timeout_ms=300", f->port);
    start(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[128];
    if (!f)
        return 0;
    stop(f, SIGTERM);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

#define FX()        \
    fx *f = *state; \
    if (!f)         \
        skip();

static rl *open_mode(const fx *f, const char *url, int fail_mode)
{
    static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 1000, RL_SECOND, 1000) };
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    (void)f;
    o.default_limits = lims;
    o.n_default_limits = 1;
    o.fail_mode = fail_mode;
    if (rl_open(&r, url, &o) != RL_OK)
        fail_msg("open %s: %s", url, rl_errmsg(r));
    return r;
}

/* Decides until the handle works again (it backs off up to 1 s), or fails
 * the test after `ms`. */
static void recovers(rl *r, int ms)
{
    rl_result res;
    int64_t until = mono_ms() + ms;
    while (rl_allow(r, "k", 1, &res) != RL_OK) {
        if (mono_ms() > until)
            fail_msg("no recovery: %s", rl_errmsg(r));
        sleep_ms(20);
    }
    assert_true(res.allowed);
}

static void test_refused(void **state)
{
    FX();
    char url[128];
    rl *r = NULL;
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", free_port());
    assert_int_equal(rl_open(&r, url, NULL), RL_ECONNECT);
    assert_non_null(strstr(rl_errmsg(r), "refused"));
    rl_close(r);
    (void)f;
}

static void test_restart_fail_modes(void **state)
{
    FX();
    rl *closed = open_mode(f, f->url, RL_FAIL_CLOSED);
    rl *open = open_mode(f, f->url, RL_FAIL_OPEN);
    rl_result res;
    int64_t t0;
    assert_int_equal(rl_allow(closed, "k", 1, &res), RL_OK);
    assert_true(res.allowed);
    stop(f, SIGKILL);
    assert_int_equal(rl_allow(closed, "k", 1, &res), RL_ECONNECT);
    assert_false(res.allowed);
    assert_false(res.degraded);
    assert_non_null(strstr(rl_errmsg(closed), "127.0.0.1"));
    assert_int_equal(rl_allow(open, "k", 1, &res), RL_ECONNECT);
    assert_true(res.allowed);
    assert_true(res.degraded);
    {
        rl_batch_item it[3] = { { "a", 1, 0, { 0 } }, { "b", 1, 0, { 0 } }, { "c", 1, 0, { 0 } } };
        assert_int_equal(rl_allow_batch(open, it, 3), RL_ECONNECT);
        assert_int_equal(it[2].rc, RL_ECONNECT);
        assert_true(it[2].res.allowed && it[2].res.degraded);
    }
    /* while it backs off, callers get a fast answer, not a connect timeout */
    t0 = mono_ms();
    assert_int_equal(rl_allow(closed, "k", 1, &res), RL_ECONNECT);
    assert_true(mono_ms() - t0 < 300);
    start(f);
    recovers(closed, 3000);
    recovers(open, 3000);
    assert_int_equal(rl_allow(open, "k", 1, &res), RL_OK);
    assert_false(res.degraded);
    rl_close(closed);
    rl_close(open);
}

static void test_frozen_server_times_out(void **state)
{
    FX();
    rl *r = open_mode(f, f->url, RL_FAIL_CLOSED);
    rl_result res;
    int64_t t0;
    kill(f->pid, SIGSTOP);
    t0 = mono_ms();
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_ECONNECT);
    assert_true(mono_ms() - t0 < 1500); /* timeout_ms=300, never a hang */
    assert_non_null(strstr(rl_errmsg(r), "no reply within 300 ms"));
    assert_false(res.allowed);
    kill(f->pid, SIGCONT);
    recovers(r, 3000);
    rl_close(r);
}

static void test_busy_script(void **state)
{
    FX();
    rl *r = open_mode(f, f->url, RL_FAIL_CLOSED);
    redisContext *c = raw(f);
    redisReply *rep;
    rl_result res;
    int done = 0;
    must(f, "CONFIG SET busy-reply-threshold %s", "50");
    /* a script that never ends, sent without waiting for its reply */
    assert_int_equal(redisAppendCommand(c, "EVAL %s 0", "while true do end"), REDIS_OK);
    while (!done)
        assert_int_equal(redisBufferWrite(c, &done), REDIS_OK);
    sleep_ms(150);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_EBUSY);
    assert_non_null(strstr(rl_errmsg(r), "BUSY"));
    assert_false(res.allowed);
    must(f, "SCRIPT %s", "KILL");
    assert_int_equal(redisGetReply(c, (void **)&rep), REDIS_OK); /* the killed script's error */
    freeReplyObject(rep);
    redisFree(c);
    recovers(r, 3000);
    rl_close(r);
}

static void test_out_of_memory(void **state)
{
    FX();
    rl *r = open_mode(f, f->url, RL_FAIL_OPEN);
    rl_result res;
    must(f, "CONFIG SET maxmemory %s", "1");
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_EFULL);
    assert_non_null(strstr(rl_errmsg(r), "OOM"));
    assert_true(res.allowed && res.degraded);
    must(f, "CONFIG SET maxmemory %s", "0");
    recovers(r, 1000);
    rl_close(r);
}

static void test_wrong_password(void **state)
{
    FX();
    char url[300];
    rl *r = NULL;
    rl_result res;
    must(f, "CONFIG SET requirepass %s", "s3cret");
    assert_int_equal(rl_open(&r, f->url, NULL), RL_EAUTH); /* none given */
    rl_close(r);
    r = NULL;
    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d/0", f->port);
    assert_int_equal(rl_open(&r, url, NULL), RL_EAUTH);
    assert_null(strstr(rl_errmsg(r), "wrong")); /* the password is not echoed */
    rl_close(r);
    snprintf(url, sizeof url, "redis://:s3cret@127.0.0.1:%d/0", f->port);
    r = open_mode(f, url, RL_FAIL_CLOSED);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
    rl_close(r);
    setenv("RL_REDIS_PASSWORD", "s3cret", 1);
    r = open_mode(f, f->url, RL_FAIL_CLOSED);
    unsetenv("RL_REDIS_PASSWORD");
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
    rl_close(r);
}

static void test_scripts_flushed(void **state)
{
    FX();
    rl *r = open_mode(f, f->url, RL_FAIL_CLOSED);
    rl_result res;
    must(f, "SCRIPT %s", "FLUSH");
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK); /* NOSCRIPT: loaded again */
    assert_true(res.allowed);
    rl_close(r);
}

static void test_bad_addresses(void **state)
{
    static const char *const bad[] = {
        "redis://",
        "redis://host:0/0",
        "redis://host:99999/0",
        "redis://host:6379/x",
        "redis://host:6379/0?nope=1",
        "redis://host:6379/0?timeout_ms=0",
        "redis://host:6379/0?prefix={x}",
        "redis://user@host",
        "unix://relative.sock",
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rl *r = NULL;
        if (rl_open(&r, bad[i], NULL) != RL_EINVAL)
            fail_msg("%s: %s", bad[i], rl_errmsg(r));
        assert_non_null(strstr(rl_errmsg(r), "invalid Redis address"));
        rl_close(r);
    }
}

static void test_hostile_contents(void **state)
{
    FX();
    rl *r;
    rl_result res;
    char url[300];
    snprintf(url, sizeof url, "%s&prefix=h:", f->url);
    must(f, "SET h:format %s", "99");
    r = NULL;
    assert_int_equal(rl_open(&r, url, NULL), RL_EVERSION);
    rl_close(r);
    must(f, "SET h:format %s", "garbage");
    r = NULL;
    assert_int_equal(rl_open(&r, url, NULL), RL_ECORRUPT);
    rl_close(r);
    must(f, "SET h:format %s", "1");
    r = open_mode(f, url, RL_FAIL_CLOSED);
    must(f, "HSET h:k:{bad} v 1 r %s", "junk");
    assert_int_equal(rl_allow(r, "bad", 1, &res), RL_ECORRUPT);
    assert_false(res.allowed);
    must(f, "HSET h:policy v 7 b %s", "\x01garbage");
    assert_int_equal(rl_allow(r, "fine", 1, &res), RL_ECORRUPT);
    rl_close(r);
}

/* EXISTS name, on the raw server. */
static long long exists(const fx *f, const char *name)
{
    redisContext *c = raw(f);
    redisReply *r = redisCommand(c, "EXISTS %s", name);
    long long n;
    assert_non_null(r);
    n = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* GET name into buf ("" when absent). */
static void get_str(const fx *f, const char *name, char *buf, size_t size)
{
    redisContext *c = raw(f);
    redisReply *r = redisCommand(c, "GET %s", name);
    assert_non_null(r);
    snprintf(buf, size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    redisFree(c);
}

/* A decision, a lease, an export and the import of it (which clears every
 * key first, in the commit script), then a listing: the whole store in
 * whichever data format the server holds. */
static void use_every_part(rl *r)
{
    static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 10, RL_SECOND, 10),
                                     RL_CONCURRENT("streams", "streams", 2) };
    static const rl_cost one[] = { { "streams", 1 } };
    char *dump = calloc(1, RT_DUMP_MAX);
    rl_result res;
    rl_lease l;
    rl_totals t;
    assert_non_null(dump);
    assert_int_equal(rl_tier_set(r, "gold", lims, 2), RL_OK);
    assert_int_equal(rl_key_assign(r, "k", "gold"), RL_OK);
    assert_int_equal(rl_allow(r, "k", 3, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_begin(r, "k", one, 1, RL_SECOND, &l, &res), RL_OK);
    assert_true(res.allowed);
    assert_int_equal(rl_lease_cancel(r, &l), RL_OK);
    assert_int_equal(rl_export(r, rt_append, dump), RL_OK);
    assert_int_equal(rl_import(r, dump, strlen(dump)), RL_OK);
    assert_int_equal(rl_totals_get(r, &t), RL_OK);
    assert_int_equal(t.keys, 1);
    assert_int_equal(t.allowed, 2); /* the decision and the lease */
    free(dump);
}

/* Data format 2 names every Redis key "{PREFIX}..." (one Cluster hash slot
 * for all of a prefix) and marks the server in both format markers, so a
 * library of format 1, which reads PREFIX "format", refuses it. A server
 * that holds format 1 stays format 1, names and all, so libraries of both
 * formats go on sharing it. A marker this library cannot read is refused. */
static void test_data_format(void **state)
{
    FX();
    char url[300], v[32];
    rl *r;
    snprintf(url, sizeof url, "%s&prefix=f2:", f->url);
    r = open_mode(f, url, RL_FAIL_CLOSED);
    use_every_part(r);
    rl_close(r);
    get_str(f, "f2:format", v, sizeof v);
    assert_string_equal(v, "2"); /* what a format 1 library reads: "newer" */
    get_str(f, "{f2:}format", v, sizeof v);
    assert_string_equal(v, "2");
    assert_int_equal(exists(f, "{f2:}k:k"), 1);
    assert_int_equal(exists(f, "{f2:}policy"), 1);
    assert_int_equal(exists(f, "f2:k:{k}"), 0);
    assert_int_equal(exists(f, "f2:policy"), 0);

    snprintf(url, sizeof url, "%s&prefix=f1:", f->url);
    must(f, "SET f1:format %s", "1"); /* as a format 1 library left it */
    r = open_mode(f, url, RL_FAIL_CLOSED);
    use_every_part(r);
    rl_close(r);
    get_str(f, "f1:format", v, sizeof v);
    assert_string_equal(v, "1");
    assert_int_equal(exists(f, "f1:k:{k}"), 1);
    assert_int_equal(exists(f, "f1:policy"), 1);
    assert_int_equal(exists(f, "{f1:}format"), 0);
    assert_int_equal(exists(f, "{f1:}k:k"), 0);

    snprintf(url, sizeof url, "%s&prefix=f3:", f->url);
    must(f, "SET {f3:}format %s", "3");
    r = NULL;
    assert_int_equal(rl_open(&r, url, NULL), RL_EVERSION);
    assert_non_null(strstr(rl_errmsg(r), "newer than this library's 2"));
    rl_close(r);
    must(f, "SET {f3:}format %s", "2x");
    r = NULL;
    assert_int_equal(rl_open(&r, url, NULL), RL_ECORRUPT);
    rl_close(r);
}

static void test_idle_keys_expire(void **state)
{
    FX();
    static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 10, RL_SECOND, 10) };
    char url[300];
    redisContext *c;
    redisReply *rep;
    rl_result res;
    rl *r;
    snprintf(url, sizeof url, "%s&prefix=e:&idle_ttl=60", f->url);
    r = open_mode(f, url, RL_FAIL_CLOSED);
    assert_int_equal(rl_tier_set(r, "gold", lims, 1), RL_OK);
    assert_int_equal(rl_allow(r, "k", 10, &res), RL_OK); /* empty: full again in 1 s */
    assert_int_equal(rl_key_assign(r, "kept", "gold"), RL_OK);
    c = raw(f);
    rep = redisCommand(c, "PTTL {e:}k:k");
    assert_true(rep->integer > 60000 && rep->integer <= 61001);
    freeReplyObject(rep);
    rep = redisCommand(c, "PTTL {e:}k:kept");
    assert_int_equal(rep->integer, -1);
    freeReplyObject(rep);
    /* an expired key drops out of listings too */
    rep = redisCommand(c, "DEL {e:}k:k");
    freeReplyObject(rep);
    redisFree(c);
    {
        rl_totals t;
        assert_int_equal(rl_totals_get(r, &t), RL_OK);
        assert_int_equal(t.keys, 1);
    }
    rl_close(r);
}

/* A claim (field q: another caller's token and a deadline in server ms)
 * holds every other commit on the key off until it lapses; a lapsed one is
 * ignored and dropped by the next commit. */
static void test_claims_hold_off_and_lapse(void **state)
{
    FX();
    char url[300];
    redisContext *c;
    redisReply *rep;
    rl_result res;
    rl *r;
    int64_t t0;
    snprintf(url, sizeof url, "%s&prefix=c:", f->url);
    {
        static const rl_limit lims[] = { RL_LIMIT("rps", NULL, 1000, RL_SECOND, 1000) };
        rl_options o = RL_OPTIONS_INIT;
        o.default_limits = lims;
        o.n_default_limits = 1;
        o.busy_timeout_ms = 200;
        r = NULL;
        assert_int_equal(rl_open(&r, url, &o), RL_OK);
    }
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
    must(f, "HSET {c:}k:k q %s", "someoneelse 99999999999999");
    t0 = mono_ms();
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_EBUSY);
    assert_true(mono_ms() - t0 >= 200);
    assert_false(res.allowed);
    must(f, "HSET {c:}k:k q %s", "someoneelse 1");
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
    assert_true(res.allowed);
    c = raw(f);
    rep = redisCommand(c, "HEXISTS {c:}k:k q");
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);
    redisFree(c);
    rl_close(r);
}

/* ---- a node that always sends the caller elsewhere ---------------------- */

/* Bytes of buf[0..n) that make one whole RESP command (an array of bulk
 * strings, as hiredis sends them); 0 while it is incomplete. */
static size_t resp_command(const char *buf, size_t n)
{
    size_t at = 0;
    long i, count, len;
    char *end;
    const char *nl = memchr(buf, '\n', n);
    if (!nl || buf[0] != '*')
        return 0;
    count = strtol(buf + 1, &end, 10);
    at = (size_t)(nl - buf) + 1;
    for (i = 0; i < count; i++) {
        if (at >= n || buf[at] != '$' || !(nl = memchr(buf + at, '\n', n - at)))
            return 0;
        len = strtol(buf + at + 1, &end, 10);
        at = (size_t)(nl - buf) + 1 + (size_t)len + 2;
        if (at > n)
            return 0;
    }
    return at;
}

/* The child: answers every command of every connection, one connection
 * after the other, with MOVED to itself; counts the connections in *conns. */
static void moved_node(int lfd, int port, volatile int *conns)
{
    char reply[64], buf[65536];
    int fd;
    snprintf(reply, sizeof reply, "-MOVED 4242 127.0.0.1:%d\r\n", port);
    while ((fd = accept(lfd, NULL, NULL)) >= 0) {
        size_t have = 0, used;
        ssize_t got;
        __atomic_add_fetch(conns, 1, __ATOMIC_SEQ_CST);
        while ((got = read(fd, buf + have, sizeof buf - have)) > 0) {
            have += (size_t)got;
            while ((used = resp_command(buf, have)) > 0) {
                if (write(fd, reply, strlen(reply)) < 0)
                    break;
                memmove(buf, buf + used, have - used);
                have -= used;
            }
            if (have == sizeof buf)
                break;
        }
        close(fd);
    }
    _exit(0);
}

/* A cluster whose nodes keep sending the handle on (a slot moving while it
 * is followed, or nodes that disagree on its owner): rl gives up after its
 * hops with RL_EBUSY, like ASK and TRYAGAIN, instead of following for
 * ever. (Opening, deciding and pipelines end their hops in one place,
 * hops_done in store/redis/redis.c.) */
static void test_moved_in_circles_gives_up(void **state)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    volatile int *conns;
    char url[128];
    rl *r = NULL;
    int lfd, port, status;
    pid_t pid;
    (void)state;
    conns = mmap(NULL, sizeof *conns, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(conns != MAP_FAILED);
    *conns = 0;
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 8), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    port = ntohs(a.sin_port);
    if ((pid = fork()) == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion must not leave it behind */
        moved_node(lfd, port, conns);
    }
    assert_true(pid > 0);
    close(lfd);

    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?prefix=mv:&timeout_ms=2000", port);
    assert_int_equal(rl_open(&r, url, NULL), RL_EBUSY);
    print_message("%s\n", rl_errmsg(r));
    assert_non_null(strstr(rl_errmsg(r), "MOVED"));
    assert_non_null(strstr(rl_errmsg(r), "hops"));
    assert_int_equal(*conns, 4); /* the address given, then 3 hops */
    rl_close(r);

    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    munmap((void *)conns, sizeof *conns);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_refused),
        T(test_restart_fail_modes),
        T(test_frozen_server_times_out),
        T(test_busy_script),
        T(test_out_of_memory),
        T(test_wrong_password),
        T(test_scripts_flushed),
        cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_moved_in_circles_gives_up),
        T(test_hostile_contents),
        T(test_data_format),
        T(test_idle_keys_expire),
        T(test_claims_hold_off_and_lapse),
    };
    signal(SIGPIPE, SIG_DFL); /* the library must survive a closed socket on its own */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
