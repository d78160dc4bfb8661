/*
 * output.h - everything rlctl prints: text made safe to show, messages on
 * stderr, colour, whole documents, aligned tables, the wording of times,
 * durations, rates, limits and tier sources, and stdout itself. (--json
 * documents are written by json.h, into the same whole-document buffers.)
 *
 * Guarantees: no text from the database or the command line reaches the
 * terminal unescaped (rlctl_text); a document built in an rlctl_out is
 * written whole or not at all; and output that never arrived (a full disk,
 * a reader that left) makes rlctl exit with status 3, never 0
 * (rlctl_stdout_init and rlctl_stdout_finish).
 */
#ifndef RLCTL_OUTPUT_H
#define RLCTL_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rl.h"
#include "status.h"

/* ---- text that may hold anything ------------------------------------------ */

/* Keys, names and globs read from the database (whoever could write the
 * file may have put anything there), values from the command line, and
 * whole messages are printed through these. C0 and C1 controls, DEL and
 * bytes that are not UTF-8 become \xHH (\n, \r, \t for those three), and
 * characters that reorder, hide or break text (bidi controls such as
 * U+202E, zero-width characters, line separators, tags) \uHHHH or
 * \UHHHHHHHH; everything else stays as it is. So no escape sequence, line
 * break or reordering reaches a terminal, a table row or a line of a
 * Prometheus file. (--json output escapes the same characters the JSON
 * way, json.h.) */

/* s written into buf (len > 0 bytes), cut before a character or escape
 * that does not fit; returns buf. */
const char *rlctl_text(const char *s, char *buf, size_t len);
/* A buffer that rlctl_text never cuts a key or glob in: it writes at most
 * 4 bytes per byte of s. */
#define RLCTL_TEXT_MAX (4 * RL_KEY_MAX + 1)
/* rlctl_text into memory of its own (free it), or NULL if memory ran out. */
char *rlctl_text_dup(const char *s);
/* The character at s (NUL-terminated): its length in bytes, 1 for a byte
 * that does not start strict UTF-8; its code point in *cp (that byte, for
 * such a byte); in *kind 0 when rlctl_text keeps it, 1 when it escapes it
 * as a character, 2 as a byte (a C0 control, DEL, not UTF-8). */
size_t rlctl_text_char(const char *s, unsigned long *cp, int *kind);

/* ---- messages ---------------------------------------------------------- */

#if defined(__GNUC__) || defined(__clang__)
#define RLCTL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RLCTL_PRINTF(a, b)
#endif

/* One line on stdout, made safe by rlctl_text (so the text cannot add
 * lines of its own); the newline is added. */
RLCTL_PRINTF(1, 2) void rlctl_line(const char *fmt, ...);
/* "rlctl: message" on stderr, made safe by rlctl_text; returns RLCTL_ERROR. */
RLCTL_PRINTF(1, 2) int rlctl_error(const char *fmt, ...);
/* "rlctl: CMD: message (see 'rlctl CMD --help')" on stderr; returns RLCTL_USAGE. */
RLCTL_PRINTF(2, 3) int rlctl_usage_error(const char *cmd, const char *fmt, ...);

/* ---- colour -------------------------------------------------------------- */

/* Whether stdout gets colour: it is a terminal and NO_COLOR is unset or
 * empty (https://no-color.org). */
int rlctl_color(void);
/* An SGR sequence ("1" bold, "31" red, "0" reset...) when rlctl_color(),
 * else "": printf("%s...%s", rlctl_sgr("31"), rlctl_sgr("0")). */
const char *rlctl_sgr(const char *code);

/* ---- whole documents ------------------------------------------------------ */

/* Output built in memory and written only when complete, so a failure
 * half-way never leaves half a JSON document or table on stdout. */
typedef struct rlctl_out {
    FILE *f; /* write here */
    char *buf;
    size_t len;
} rlctl_out;

int rlctl_out_open(rlctl_out *o);   /* RLCTL_ERROR (said) if memory runs out */
void rlctl_out_flush(rlctl_out *o); /* writes it to stdout and frees it */
void rlctl_out_discard(rlctl_out *o);

/* ---- stdout ------------------------------------------------------------- */

/* Called first by main: SIGPIPE is ignored, so that a reader that goes
 * away (rlctl keys | head -1) makes writes fail with EPIPE instead of
 * killing rlctl (status 141), and stdout becomes a stream over the same
 * descriptor, buffered as the C library buffers stdout, that keeps the
 * errno of its first failed write. */
void rlctl_stdout_init(void);
/* Called last by main with the command's status: flushes stdout, and if
 * anything written to it did not arrive says "write error: REASON" on
 * stderr (nothing for EPIPE: the reader left on purpose) and returns
 * RLCTL_ERROR, or RLCTL_INTERRUPTED if rc was that; else returns rc. */
int rlctl_stdout_finish(int rc);

/* ---- formatting -------------------------------------------------------- */

/* ISO-8601 UTC, "2026-11-28T12:00:00Z", or "-" for 0 (never). */
void rlctl_format_time(int64_t ns, char *buf, size_t len);
/* rl_format_duration of ns rounded up to about three digits, or "?". */
void rlctl_format_duration(int64_t ns, char *buf, size_t len);
/* rl_format_rate ("600/min"), "N in flight" for a concurrency limit
 * (period 0), or "COUNT/PERIODns" if it refuses. */
void rlctl_format_rate(int64_t count, int64_t period_ns, char *buf, size_t len);
/* One limit for people: "rps 5/s burst 10", "tpm 90000/min of tokens",
 * "rpm 60/min sliding window". */
void rlctl_format_limit(const char *name, const char *resource, int64_t count, int64_t period_ns,
                        int64_t burst, int algorithm, char *buf, size_t len);
/* "rate", "sliding_window" or "concurrent" (period 0), as rl_export writes
 * a limit's kind; algorithm is RL_ALGO_*. */
const char *rlctl_limit_kind(int64_t period_ns, int algorithm);

/* How a key got its tier, for people ("default tier") and for JSON
 * ("default_tier"). */
const char *rlctl_tier_source_text(int source);
const char *rlctl_tier_source_json(int source);

/* ---- aligned tables ---------------------------------------------------- */

/* Rows of text cells printed with every column as wide as its widest cell.
 * Columns whose bit is set in `right` are right-aligned (numbers). */
typedef struct rlctl_table {
    size_t ncols;
    unsigned right;
    int header;   /* the first row is a header: bold when in colour */
    size_t width; /* cut lines to this many columns (0: never) */
    char **cells; /* nrows * ncols, row-major, owned */
    size_t nrows, cap;
} rlctl_table;

void rlctl_table_init(rlctl_table *t, size_t ncols, unsigned right);
/* Appends a row of ncols cells (copied through rlctl_text, so that a cell
 * can neither end its row nor reach the terminal as an escape sequence).
 * Returns RLCTL_ERROR when memory runs out, after saying so. */
int rlctl_table_add(rlctl_table *t, const char *const *cells);
void rlctl_table_print(const rlctl_table *t, FILE *f);
void rlctl_table_free(rlctl_table *t);

#endif
