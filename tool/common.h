/*
 * common.h - what every rlctl command shares: exit codes, option parsing,
 * error messages, opening the database, aligned tables, colour, and the
 * printing of times, durations, rates, limits and tier sources.
 *
 * rlctl sees librl only through its public header, like any other program.
 */
#ifndef RLCTL_COMMON_H
#define RLCTL_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rl.h"

/* Exit codes, documented in `rlctl --help`. */
enum {
    RLCTL_OK = 0,    /* done; allow: admitted; doctor: nothing failed */
    RLCTL_NO = 1,    /* allow: refused or timed out; a tiers or import file failed its
                      * check; doctor: a check failed; reset --all: not confirmed */
    RLCTL_USAGE = 2, /* bad command line */
    RLCTL_ERROR = 3, /* runtime error: database, file, no such key or tier */
    RLCTL_PERM = 4,  /* a file of the database refused as one another user could
                      * have planted (RL_EPERM) */
    /* Not an exit code: the command was interrupted by SIGINT, and main
     * re-raises the signal once it has cleaned up. */
    RLCTL_INTERRUPTED = 130,
    /* Not an exit code: rlctl_parse_opts printed the usage for --help. */
    RLCTL_HELP = -1
};

typedef struct rlctl_ctx {
    const char *db;   /* --db, or NULL for rl_open's default */
    int shared_group; /* --shared-group: RL_OPEN_SHARED_GROUP, file_mode 0660 */
} rlctl_ctx;

/* The rl_options of ctx: file_mode and flags for --shared-group. */
void rlctl_options(const rlctl_ctx *ctx, rl_options *o);

/* A command: argv[0] is its name (e.g. "stats", or "tiers validate"). */
typedef int (*rlctl_cmd_fn)(const rlctl_ctx *ctx, int argc, char **argv);

int rlctl_cmd_stats(const rlctl_ctx *ctx, int argc, char **argv);
int rlctl_cmd_inspect(const rlctl_ctx *ctx, int argc, char **argv);
int rlctl_cmd_reset(const rlctl_ctx *ctx, int argc, char **argv);
int rlctl_cmd_allow(const rlctl_ctx *ctx, int argc, char **argv);
int rlctl_cmd_tiers(const rlctl_ctx *ctx, int argc, char **argv);
int rlctl_cmd_assign(const rlctl_ctx *ctx, int argc, char **argv);
int rlctl_cmd_unassign(const rlctl_ctx *ctx, int argc, char **argv);
int rlctl_cmd_which(const rlctl_ctx *ctx, int argc, char **argv);
int rlctl_cmd_version(const rlctl_ctx *ctx, int argc, char **argv);
int rlctl_cmd_keys(const rlctl_ctx *ctx, int argc, char **argv);
int rlctl_cmd_watch(const rlctl_ctx *ctx, int argc, char **argv);
int rlctl_cmd_prune(const rlctl_ctx *ctx, int argc, char **argv);
int rlctl_cmd_doctor(const rlctl_ctx *ctx, int argc, char **argv);
int rlctl_cmd_export(const rlctl_ctx *ctx, int argc, char **argv);
int rlctl_cmd_import(const rlctl_ctx *ctx, int argc, char **argv);
int rlctl_cmd_leases(const rlctl_ctx *ctx, int argc, char **argv);
int rlctl_cmd_penalize(const rlctl_ctx *ctx, int argc, char **argv);

/* ---- command line ------------------------------------------------------- */

enum { RLCTL_OPT_FLAG, RLCTL_OPT_VALUE };

/* One long option of a command. FLAG sets *(int *)dest to 1; VALUE stores
 * the argument (given as "--opt VALUE" or "--opt=VALUE") in
 * *(const char **)dest. A table ends with a NULL name. */
typedef struct rlctl_opt {
    const char *name; /* with its dashes: "--top" */
    int kind;
    void *dest;
} rlctl_opt;

/* Parses the options of command argv[0] wherever they appear up to "--",
 * and moves the positional arguments to argv[1..*npos]. `-h`/`--help`
 * prints `usage` to stdout and returns RLCTL_HELP; a bad option prints one
 * line to stderr and returns RLCTL_USAGE. */
int rlctl_parse_opts(int argc, char **argv, const rlctl_opt *opts, const char *usage,
                     int *npos);

/* Reads a decimal integer in [min, max], digits only. */
int rlctl_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

/* The closest of `names` (NULL-terminated) to `s` if it is close enough to
 * be a typo, else NULL. */
const char *rlctl_suggest(const char *s, const char *const *names);

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

/* ---- the database ------------------------------------------------------ */

/* Opens the database of ctx (read-only for commands that only look, so a
 * mistyped --db is not created and no write lock is taken). On failure
 * prints why and returns RLCTL_PERM for a refused file (RL_EPERM), else
 * RLCTL_ERROR, with *out NULL. */
int rlctl_open(const rlctl_ctx *ctx, int readonly, rl **out);

/* --tier T given to a command: RLCTL_OK if the tier exists, else says so
 * (RLCTL_ERROR); tier NULL is fine. */
int rlctl_check_tier(rl *r, const char *tier);

/* Asks `question [y/N] ` on the controlling terminal (/dev/tty, so that
 * stdin may be a pipe) and reads the answer there: 1 for y or yes. */
int rlctl_confirm(const char *question);

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
void rlctl_format_limit(const char *name, const char *resource, int64_t count,
                        int64_t period_ns, int64_t burst, int algorithm, char *buf, size_t len);
/* "rate", "sliding_window" or "concurrent" (period 0), as rl_export writes
 * a limit's kind; algorithm is RL_ALGO_*. */
const char *rlctl_limit_kind(int64_t period_ns, int algorithm);

/* How a key got its tier, for people ("default tier") and for JSON
 * ("default_tier"). */
const char *rlctl_tier_source_text(int source);
const char *rlctl_tier_source_json(int source);

/* The key rule that gave `key` its tier `tier` (first match wins, as in the
 * library): written to match, or "" if none. */
int rlctl_find_rule(rl *r, const char *key, const char *tier, char *match, size_t len);
/* rl_stats of key, and in rule the key rule that gave it its tier ("" when
 * no rule did). Says why and returns RLCTL_ERROR on failure. */
int rlctl_key_tier(rl *r, const char *key, rl_key_stats *st, char *rule, size_t len);

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
