/*
 * redis_helpers.c - private redis-server processes for the Redis store's
 * tests (redis_helpers.h says what they share).
 */
#include "redis_helpers.h"

#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

int64_t rt_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rt_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

int rt_free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int rt_have_redis(void)
{
    return system("command -v redis-server >/dev/null 2>&1") == 0;
}

pid_t rt_start(const char *dir, int port, const char *const *extra)
{
    char portstr[16], log[128];
    const char *argv[32] = { "redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no",     "--dir", dir,      "--logfile", log };
    size_t n = 13;
    int64_t until = rt_mono_ms() + 5000;
    pid_t pid;
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(log, sizeof log, "%s/redis-%d.log", dir, port);
    while (extra && *extra && n < sizeof argv / sizeof argv[0] - 1)
        argv[n++] = *extra++;
    argv[n] = NULL;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    for (;;) { /* until it answers */
        struct timeval tv = { 0, 200000 };
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
        int up = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        redisFree(c);
        if (up)
            return pid;
        assert_true(rt_mono_ms() < until);
        rt_sleep_ms(20);
    }
}

void rt_stop(pid_t pid, int sig)
{
    int status;
    if (pid <= 0)
        return;
    kill(pid, SIGCONT);
    kill(pid, sig);
    waitpid(pid, &status, 0);
}

redisContext *rt_raw(int port)
{
    struct timeval tv = { 2, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    return c;
}

redisReply *rt_must(redisContext *c, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", fmt, r->str);
    return r;
}

int rt_append(void *ctx, const char *data, size_t len)
{
    char *b = ctx;
    size_t have = strlen(b);
    assert_true(have + len < RT_DUMP_MAX);
    memcpy(b + have, data, len);
    b[have + len] = 0;
    return 0;
}
