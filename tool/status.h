/*
 * status.h - what rlctl's exit status means, and the two values a command
 * may return that are not exit statuses.
 *
 * Every rlctl function that can fail returns one of these, so that a
 * command can return whatever its helpers returned; main turns the result
 * into the process's status. The numbers are documented in `rlctl --help`
 * and rlctl(1): they never change.
 */
#ifndef RLCTL_STATUS_H
#define RLCTL_STATUS_H

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

#endif
