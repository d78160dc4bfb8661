/*
 * args.h - what the user tells rlctl: a command's options and positional
 * arguments, numbers on the command line, "did you mean" for a mistyped
 * name, and the y/N question of a destructive command.
 *
 * Guarantees: parsing never prints anything but the usage (for --help) or
 * one line saying what is wrong (through output.h, so the offending text
 * is escaped), and never exits; a command decides what to do with the
 * RLCTL_* status it gets back.
 */
#ifndef RLCTL_ARGS_H
#define RLCTL_ARGS_H

#include <stdint.h>

#include "status.h"

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
int rlctl_parse_opts(int argc, char **argv, const rlctl_opt *opts, const char *usage, int *npos);

/* Reads a decimal integer in [min, max], digits only. */
int rlctl_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

/* The closest of `names` (NULL-terminated) to `s` if it is close enough to
 * be a typo, else NULL. */
const char *rlctl_suggest(const char *s, const char *const *names);

/* Asks `question [y/N] ` on the controlling terminal (/dev/tty, so that
 * stdin may be a pipe) and reads the answer there: 1 for y or yes. */
int rlctl_confirm(const char *question);

#endif
