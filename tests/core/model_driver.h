/*
 * model_driver.h - test_model's driver: the operations of a trace, the
 * driver's state, and what its files (model_gen.c, model_exec.c,
 * model_check.c, test_model.c) call of one another.
 */
#ifndef RL_TEST_MODEL_DRIVER_H
#define RL_TEST_MODEL_DRIVER_H

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rl.h"
#include "../common/stores.h"
#include "model.h"

/* ------------------------------------------------------------------ */
/* The driver: operations are data (generated, then executed and compared),
 * so that a failing segment can be replayed on a fresh store and shrunk to a
 * minimal trace. */

enum {
    O_ALLOW,
    O_ACQUIRE,
    O_ACQKEYS,
    O_BATCH,
    O_RESERVE,
    O_CANCEL,
    O_WAIT,
    O_PENALIZE,
    O_RESET,
    O_ASSIGN,
    O_STATS
};

#define MAXB 6 /* items of a batch */

typedef struct op {
    int kind;
    int64_t t;                 /* the clock during the call */
    int nk, ks[NKEYS], dupkey; /* keys (dupkey: the last repeats the first) */
    int n;                     /* costs, or batch items */
    int res[NRES + 1], null_res[NRES + 1];
    int64_t amt[MAXB]; /* amounts, or batch costs */
    int bk[MAXB];      /* batch keys */
    int64_t cost, lim; /* cost; max_delay, timeout or duration */
    int arg;           /* penalize: 0 NULL, 1 + resource; assign: tier or -1;
                                  cancel: the index of the O_RESERVE */
} op;

typedef struct drv {
    rl *r;
    int kind;
    char dir[64];
    char path[512];
    int64_t now; /* what the injected clock returns */
    int64_t lo, hi, maxspan;
    int back_ok; /* the clock may step back: every limit is a sliding window */
    uint64_t seed;
    long step, compared, segments, replays;
    char log[LOGN][LOGW];
    int failed, verbose;
    char tag[128];
    char msg[2048];
    mtier tiers[NTIERS]; /* the segment's policy */
    op *ops;             /* the segment's operations */
    size_t nops, cap;
    mresv *rv;  /* per operation: the reservation it made */
    char *done; /* per operation: executed */
} drv;

/* model_gen.c */
extern uint64_t rng_state;
int64_t rn(int64_t n);
int chance(int pct);
void set_clock(drv *d, int64_t t);
void drv_open(drv *d);
void install_policy(drv *d, long seg);
int gen_op(drv *d, op *o);
void seg_reserve(drv *d, size_t n);
void new_segment(drv *d);

/* model_exec.c */
int exec_op(drv *d, const op *o, size_t idx);

/* model_check.c */
int64_t drv_clock(void *ctx);
char *logline(drv *d);
__attribute__((format(printf, 2, 3))) void logf_(drv *d, const char *fmt, ...);
void dump_tiers(const mtier *tiers);
__attribute__((format(printf, 3, 4))) void mismatch(drv *d, const char *tag, const char *fmt, ...);
void check_errmsg(drv *d, int rc);
void compare(drv *d, const char *what, const xres *x, int rc, const rl_result *res, int check_msg);
void check_stats(drv *d, int ki);

#endif
