/*
 * test_torture.h - what the two files of the program test_torture share:
 * its tests (test_torture.c has main()) and the clock they read.
 */
#ifndef RL_TEST_TORTURE_H
#define RL_TEST_TORTURE_H

#include <stdint.h>
#include <time.h>

#include "rl.h"

/* CLOCK_MONOTONIC, in ns. */
static inline int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
}

/* test_torture_chaos.c */
void test_chaos_kill_and_stop(void **state);

#endif
