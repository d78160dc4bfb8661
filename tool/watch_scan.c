/*
 * watch_scan.c - the busiest keys for `rlctl watch`, a bounded slice of
 * the keys per refresh (see watch_scan.h for why and what it shows).
 */
#include "watch_scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A key's counters at its last read. Only a 64-bit hash of the key is
 * kept, so a million keys take 32 MiB, not their names: two keys of one
 * hash (odds about 1 in 30 million with a million keys) would count as one
 * in the totals and share their rates, never their names or the counters
 * shown, which come from the row. */
struct watch_prev {
    uint64_t h;
    int64_t allowed, refused;
    uint32_t read_ms; /* ms since the start of watch, modulo 2^32: differences
                       * are right for reads less than 49 days apart */
    uint32_t top;     /* index + 1 in the list, 0: not in it */
};

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
}

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ? h : 1; /* 0 marks an empty slot */
}

size_t watch_scan_budget(int64_t interval_ns)
{
    int64_t n = (int64_t)((double)WATCH_ROWS_PER_S * (double)interval_ns / (double)RL_SECOND);
    if (n < WATCH_PAGE)
        n = WATCH_PAGE;
    if (n > WATCH_ROWS_MAX)
        n = WATCH_ROWS_MAX;
    return (size_t)n;
}

void watch_scan_init(watch_scan *w, const char *match, int64_t interval_ns)
{
    memset(w, 0, sizeof *w);
    w->match = match;
    w->budget = watch_scan_budget(interval_ns);
    w->started_mono = w->pass_start = clock_ns(CLOCK_MONOTONIC);
    w->started_wall = clock_ns(CLOCK_REALTIME);
}

void watch_scan_free(watch_scan *w)
{
    free(w->top);
    free(w->prev);
    w->top = NULL;
    w->prev = NULL;
}

/* ---- the previous reads ---------------------------------------------------- */

static watch_prev *prev_slot(watch_prev *v, size_t cap, uint64_t h)
{
    size_t i;
    for (i = (size_t)h & (cap - 1); v[i].h && v[i].h != h; i = (i + 1) & (cap - 1))
        ;
    return &v[i];
}

static watch_prev *prev_find(const watch_scan *w, uint64_t h)
{
    return w->cap_prev ? prev_slot(w->prev, w->cap_prev, h) : NULL;
}

/* Keeps the table at most half full. */
static int prev_grow(watch_scan *w)
{
    size_t cap = w->cap_prev ? 2 * w->cap_prev : 1024, i;
    watch_prev *v;
    if ((w->n_prev + 1) * 2 <= w->cap_prev)
        return 0;
    if (!(v = calloc(cap, sizeof *v)))
        return -1;
    for (i = 0; i < w->cap_prev; i++)
        if (w->prev[i].h)
            *prev_slot(v, cap, w->prev[i].h) = w->prev[i];
    free(w->prev);
    w->prev = v;
    w->cap_prev = cap;
    return 0;
}

/* ---- the list of the busiest ---------------------------------------------- */

/* Decisions per second since the key's previous read; -1: not known. */
static double rate_of(const watch_row *x)
{
    return x->da < 0 || x->dt <= 0 ? -1.0 : (double)(x->da + x->dr) * 1e9 / (double)x->dt;
}

static int busiest_first(const void *a, const void *b)
{
    const watch_row *x = a, *y = b;
    double vx = rate_of(x), vy = rate_of(y);
    if (vx != vy)
        return vx > vy ? -1 : 1;
    if (x->last_seen != y->last_seen)
        return x->last_seen > y->last_seen ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* Points each key's previous read at its place in the list again. */
static void relink(watch_scan *w, size_t from)
{
    size_t i;
    for (i = from; i < w->n_top; i++) {
        watch_prev *p = prev_find(w, w->top[i].h);
        if (p && p->h)
            p->top = (uint32_t)(i + 1);
    }
}

/* Drops keys from the list: the least busy beyond WATCH_TOP, or, at the
 * end of a pass, those the pass did not read (removed, or renamed by a
 * reset: a pass reads every key there is). */
static void cut(watch_scan *w, size_t keep, int64_t read_since)
{
    size_t i, n = 0;
    for (i = 0; i < w->n_top; i++) {
        watch_prev *p = prev_find(w, w->top[i].h);
        if (p && p->h)
            p->top = 0;
    }
    for (i = 0; i < w->n_top; i++)
        if (w->top[i].read_at >= read_since)
            w->top[n++] = w->top[i];
    w->n_top = n;
    watch_scan_sort(w);
    if (w->n_top > keep)
        w->n_top = keep;
    relink(w, 0);
}

void watch_scan_sort(watch_scan *w)
{
    qsort(w->top, w->n_top, sizeof *w->top, busiest_first);
    relink(w, 0);
}

/* ---- the totals ------------------------------------------------------------ */

/* At the end of a pass: the keys it did not read are gone (removed, or
 * renamed by a reset), so they leave the totals and the table. The table
 * is built again without them, once per pass. */
static int forget_unread(watch_scan *w, uint32_t now_ms, int64_t pass_start)
{
    /* read at or before the pass began: not read by it */
    uint32_t age_max = now_ms - (uint32_t)((pass_start - w->started_mono) / RL_MILLISECOND);
    watch_prev *v;
    size_t i;
    if (!w->cap_prev)
        return 0;
    if (!(v = calloc(w->cap_prev, sizeof *v)))
        return -1;
    for (i = 0; i < w->cap_prev; i++) {
        watch_prev *p = &w->prev[i];
        if (!p->h)
            continue;
        if ((uint32_t)(now_ms - p->read_ms) >= age_max) {
            w->keys--;
            w->allowed -= p->allowed;
            w->refused -= p->refused;
            w->n_prev--;
            continue;
        }
        *prev_slot(v, w->cap_prev, p->h) = *p;
    }
    free(w->prev);
    w->prev = v;
    return 0;
}

/* The refresh's sums, for the rates over the last pass. */
static void remember(watch_scan *w, int64_t now)
{
    watch_point *pt = &w->hist[w->hist_next];
    pt->t = now;
    pt->d_allowed = w->d_allowed;
    pt->d_refused = w->d_refused;
    w->hist_next = (w->hist_next + 1) % WATCH_HIST;
    if (w->n_hist < WATCH_HIST)
        w->n_hist++;
}

/* ---- one refresh ----------------------------------------------------------- */

typedef struct page_ctx {
    watch_scan *w;
    int64_t now_mono, now_wall;
    uint32_t now_ms;
    int oom;
} page_ctx;

static int take(void *ctx, const rl_key_stats *st)
{
    page_ctx *pc = ctx;
    watch_scan *w = pc->w;
    watch_row row;
    watch_prev *p;
    uint64_t h;

    w->rows++;
    w->pass_rows++;
    if (prev_grow(w) != 0) {
        pc->oom = 1;
        return 1;
    }
    h = hash_key(st->key);
    p = prev_find(w, h);
    memset(&row, 0, sizeof row);
    snprintf(row.key, sizeof row.key, "%s", st->key);
    snprintf(row.tier, sizeof row.tier, "%s", st->tier[0] ? st->tier : "-");
    row.h = h;
    row.allowed = st->allowed;
    row.refused = st->refused;
    row.first_seen = st->first_seen_ns;
    row.last_seen = st->last_seen_ns;
    row.read_at = pc->now_mono;
    if (p->h) {
        w->allowed += row.allowed - p->allowed;
        w->refused += row.refused - p->refused;
        /* fewer than before: the key was reset in between */
        row.da = row.allowed >= p->allowed ? row.allowed - p->allowed : row.allowed;
        row.dr = row.refused >= p->refused ? row.refused - p->refused : row.refused;
        row.dt = (int64_t)(uint32_t)(pc->now_ms - p->read_ms) * RL_MILLISECOND;
        if (row.dt <= 0)
            row.dt = RL_MILLISECOND;
    } else {
        w->n_prev++;
        w->keys++;
        w->allowed += row.allowed;
        w->refused += row.refused;
        row.da = row.dr = -1;
        if (row.first_seen >= w->started_wall) {
            /* new since watch started: everything it counts came since */
            row.da = row.allowed;
            row.dr = row.refused;
            row.dt = pc->now_wall - row.first_seen;
            if (row.dt < RL_MILLISECOND)
                row.dt = RL_MILLISECOND;
        }
    }
    if (row.da >= 0) {
        /* the decisions counted since the key's previous read: their sum
         * over a pass, over the pass's duration, is the header's rate */
        w->d_allowed += row.da;
        w->d_refused += row.dr;
    }
    p->h = h;
    p->allowed = row.allowed;
    p->refused = row.refused;
    p->read_ms = pc->now_ms;
    if (w->match && !rl_glob_match(w->match, row.key))
        return 0; /* in the totals, not in the list */
    if (p->top && p->top <= w->n_top && strcmp(w->top[p->top - 1].key, row.key) == 0) {
        w->top[p->top - 1] = row;
        return 0;
    }
    if (w->n_top == 2 * WATCH_TOP)
        cut(w, WATCH_TOP, INT64_MIN);
    w->top[w->n_top] = row;
    p->top = (uint32_t)++w->n_top;
    return 0;
}

int watch_scan_refresh(rl *r, watch_scan *w)
{
    page_ctx pc;
    char next[RL_KEY_MAX + 1];
    int rc = RL_OK;

    if (!w->top && !(w->top = malloc(2 * WATCH_TOP * sizeof *w->top)))
        return RL_ENOMEM;
    pc.w = w;
    pc.now_mono = clock_ns(CLOCK_MONOTONIC);
    pc.now_wall = clock_ns(CLOCK_REALTIME);
    pc.now_ms = (uint32_t)((pc.now_mono - w->started_mono) / RL_MILLISECOND);
    pc.oom = 0;
    w->rows = w->txns = 0;
    w->now_mono = pc.now_mono;
    if (w->pass_done || w->pass == 0) {
        w->pass++;
        w->pass_rows = 0;
        w->pass_done = 0;
    }
    while (w->rows < w->budget) {
        size_t want = w->budget - w->rows;
        if (want > WATCH_PAGE)
            want = WATCH_PAGE;
        /* one short read transaction per page, none between them */
        rc = rl_keys_page(r, NULL, w->cursor, want, take, &pc, next);
        w->txns++;
        if (pc.oom)
            return RL_ENOMEM;
        if (rc != RL_OK)
            return rc;
        if (!next[0]) {
            /* the end of the keys: a pass is over; the next refresh starts
             * over, so no key is read twice in one refresh */
            if (forget_unread(w, pc.now_ms, w->pass_start) != 0)
                return RL_ENOMEM;
            cut(w, WATCH_TOP, w->pass_start + 1);
            w->pass_ns = pc.now_mono - w->pass_start;
            w->pass_start = pc.now_mono;
            w->pass_done = 1;
            w->cursor[0] = 0;
            break;
        }
        memcpy(w->cursor, next, sizeof w->cursor);
    }
    remember(w, pc.now_mono);
    return RL_OK;
}

int watch_scan_rates(const watch_scan *w, int64_t *allowed, int64_t *refused, int64_t *dt)
{
    const watch_point *now, *then = NULL;
    size_t i;
    if (w->pass_ns <= 0 || w->n_hist < 2)
        return 0;
    now = &w->hist[(w->hist_next + WATCH_HIST - 1) % WATCH_HIST];
    /* the newest point at least one pass old; the oldest kept if none is */
    for (i = 2; i <= w->n_hist; i++) {
        then = &w->hist[(w->hist_next + WATCH_HIST - i) % WATCH_HIST];
        if (then->t <= now->t - w->pass_ns)
            break;
    }
    if (!then || then->t >= now->t)
        return 0;
    *allowed = now->d_allowed - then->d_allowed;
    *refused = now->d_refused - then->d_refused;
    *dt = now->t - then->t;
    return 1;
}
