/*
 * clock.c - the bench's one clock: CLOCK_MONOTONIC in nanoseconds, for
 * timing each call, the run's common start and deadline, the prefill's
 * duration and the wait for a private redis-server to answer.
 *
 * It calls nothing else in bench/, so any file may use it without making
 * a cycle (bench.h lists which file calls which).
 */
#include "bench.h"

#include <time.h>

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
