/*
 * common.h - what every rlctl command includes: the commands themselves,
 * and the three helper layers they are built on.
 *
 *   status.h  exit codes
 *   output.h  printing: escaping (rlctl_text), messages, colour, whole
 *             documents, tables, formatting, and the stdout write check
 *   args.h    option parsing, numbers, typo suggestions, confirmation
 *   open.h    the database: --db, --shared-group, opening, shared look-ups
 *   json.h    the --json writer (included by the commands that use it)
 *
 * Each of them (header and .c) includes only those listed before it, so
 * the layers have no cycle; the commands (cmd_*.c) and main.c are above
 * them all. rlctl sees librl only through its public header, rl.h, like
 * any other program.
 */
#ifndef RLCTL_COMMON_H
#define RLCTL_COMMON_H

#include "args.h"
#include "open.h"
#include "output.h"
#include "rl.h"
#include "status.h"

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

#endif
