/*
 * redis_helpers.h - what the Redis store's server tests (test_redis.c,
 * test_redis_cluster.c) share: private redis-server processes on free
 * loopback ports, started and stopped by their PIDs, and raw commands to
 * them through hiredis.
 *
 * A server is ready when it answers PING; waiting for that polls with a
 * deadline (5 s), so a loaded machine is slower but never wrong.
 */
#ifndef RL_TEST_REDIS_HELPERS_H
#define RL_TEST_REDIS_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

int64_t rt_mono_ms(void);
void rt_sleep_ms(int ms);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int rt_free_port(void);
/* Whether redis-server is on PATH (the tests are skipped without it). */
int rt_have_redis(void);
/* Starts redis-server on 127.0.0.1:port, its files in dir, with the extra
 * arguments extra[] (NULL-terminated, or NULL), and waits until it
 * answers. Returns its PID. */
pid_t rt_start(const char *dir, int port, const char *const *extra);
/* Sends sig (after SIGCONT, for a stopped one) and reaps it. */
void rt_stop(pid_t pid, int sig);
/* A connection to 127.0.0.1:port that must succeed. */
redisContext *rt_raw(int port);
/* An rl_export writer into ctx, a NUL-terminated buffer of RT_DUMP_MAX
 * bytes (calloc'd by the caller). */
#define RT_DUMP_MAX 65536
int rt_append(void *ctx, const char *data, size_t len);
/* A command that must not be an error reply; the reply is the caller's. */
redisReply *rt_must(redisContext *c, const char *fmt, ...);

#endif
