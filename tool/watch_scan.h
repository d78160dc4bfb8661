/*
 * watch_scan.h - what `rlctl watch` reads each refresh, apart from drawing
 * it: the busiest keys, found by reading a bounded slice of the keys per
 * refresh (bench/ runs the same code as its watch-equivalent reader).
 *
 * Why a slice: the busiest keys since the last refresh cannot be found
 * without reading every key (no index orders keys by use: keeping one
 * would cost every decision a second b-tree write), and reading a million
 * keys each second in one read transaction took writers' CPU and pinned
 * the WAL (issue 20). So each refresh reads at most watch_scan_budget()
 * keys, a page at a time in short read transactions (rl_keys_page), going
 * on from where the previous refresh stopped and starting over at the end:
 * every key is read once per pass, and a pass takes keys / budget
 * refreshes. A key's rates are its counters' differences between its last
 * two reads, so they are averages over at most one pass; the list keeps
 * the WATCH_TOP busiest keys seen so far, each as of when it was last read.
 * The totals above the list are kept here too, from the same reads: the
 * sums of every key's counters as last read, with rates over the last
 * pass, so watch needs no count of all keys at any refresh (a count by
 * the store is a full scan, and keeping one running would cost every
 * decision a second page in the WAL).
 *
 * Memory: 32 bytes per key read (its counters at the last read), at most
 * half of the table full, plus the list and the history. Includes only rl.h, like the rest of rlctl.
 */
#ifndef RLCTL_WATCH_SCAN_H
#define RLCTL_WATCH_SCAN_H

#include "rl.h"

/* Keys read in one read transaction: short enough that a reader never
 * holds up a checkpoint for long. */
#define WATCH_PAGE 256
/* Keys read per second of interval, whatever the interval: what a refresh
 * may cost writers is bounded by this, not by the number of keys. */
#define WATCH_ROWS_PER_S 10000
/* At most this many keys per refresh, however long the interval. */
#define WATCH_ROWS_MAX 50000
/* Keys kept in the list of the busiest. */
#define WATCH_TOP ((size_t)512)

/* One key as last read. */
typedef struct watch_row {
    char key[RL_KEY_MAX + 1];
    char tier[RL_NAME_MAX];
    uint64_t h;
    int64_t allowed, refused, first_seen, last_seen;
    int64_t da, dr;  /* since the key's previous read; -1: not known yet */
    int64_t dt;      /* ns between the two reads */
    int64_t read_at; /* CLOCK_MONOTONIC ns of the last read */
} watch_row;

typedef struct watch_prev watch_prev; /* private: a key's counters at its last read */

/* Refreshes remembered for the header's rates (over one pass): a pass of
 * more refreshes than this gets rates over the last WATCH_HIST of them. */
#define WATCH_HIST 4096
typedef struct watch_point {
    int64_t t; /* CLOCK_MONOTONIC ns */
    int64_t d_allowed, d_refused;
} watch_point;

typedef struct watch_scan {
    const char *match; /* only keys matching this glob (NULL: all) */
    size_t budget;     /* keys read per refresh */
    /* the busiest keys: up to 2 * WATCH_TOP, cut back to WATCH_TOP when full */
    watch_row *top;
    size_t n_top;
    /* the previous reads, by hash of the key (open addressing) */
    watch_prev *prev;
    size_t n_prev, cap_prev;
    char cursor[RL_KEY_MAX + 1]; /* the next page starts after it ("": first) */
    int64_t started_mono, started_wall, pass_start;
    /* what the last refresh did, shown by watch and checked by its tests */
    size_t rows;      /* keys read */
    size_t txns;      /* read transactions (pages) */
    int64_t pass;     /* the pass it read in, from 1 */
    size_t pass_rows; /* keys read in that pass so far, this refresh's included */
    int pass_done;    /* the refresh ended that pass */
    int64_t pass_ns;  /* how long the last full pass took; 0: none finished yet */
    /* The totals: the sums of every key's counters as last read (all keys,
     * whatever match says), exact as of one pass once one is over. */
    int64_t keys, allowed, refused;
    /* the decisions counted between two reads of a key, summed, and their
     * history by refresh: the header's rates */
    int64_t d_allowed, d_refused;
    watch_point hist[WATCH_HIST];
    size_t n_hist, hist_next;
    int64_t now_mono;
} watch_scan;

/* Keys read per refresh at this interval. */
size_t watch_scan_budget(int64_t interval_ns);
void watch_scan_init(watch_scan *w, const char *match, int64_t interval_ns);
void watch_scan_free(watch_scan *w);
/* Reads the next slice of keys (at most w->budget). Returns RL_OK, or an
 * rl error code with rl_errmsg(r) saying why (RL_ENOMEM included). */
int watch_scan_refresh(rl *r, watch_scan *w);
/* The decisions admitted and refused over the last pass (at least one
 * refresh) and how long that took: 1, or 0 before a pass is over. */
int watch_scan_rates(const watch_scan *w, int64_t *allowed, int64_t *refused, int64_t *dt);
/* Sorts the list busiest first: keys with known rates by decisions per
 * second, then the others by when they were last used. */
void watch_scan_sort(watch_scan *w);

#endif
