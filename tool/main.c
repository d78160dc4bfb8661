/*
 * main.c - rlctl, the admin tool of librl: global options, the table of
 * commands, and the exit status (the check that everything written to
 * stdout actually got there is output.c's, rlctl_stdout_finish).
 */
#include "common.h"

#include <signal.h>
#include <string.h>

typedef struct rlctl_cmd {
    const char *name;
    rlctl_cmd_fn fn;
    const char *summary;
} rlctl_cmd;

static const rlctl_cmd commands[] = {
    { "stats", rlctl_cmd_stats, "totals and the busiest keys, or counters of KEYs" },
    { "keys", rlctl_cmd_keys, "keys with their tier and remaining budget" },
    { "inspect", rlctl_cmd_inspect, "every limit of a key: remaining, retry-after, reset-after" },
    { "watch", rlctl_cmd_watch, "the busiest keys live, with decisions per second" },
    { "allow", rlctl_cmd_allow, "take COST units for a key now, or wait for them" },
    { "reset", rlctl_cmd_reset, "forget the buckets and counters of keys" },
    { "prune", rlctl_cmd_prune, "remove keys idle with full buckets" },
    { "penalize", rlctl_cmd_penalize, "refuse a key for a while, as on a provider's 429" },
    { "leases", rlctl_cmd_leases, "open leases: estimates, owners, expiry" },
    { "assign", rlctl_cmd_assign, "give a key a tier, whatever the rules say" },
    { "unassign", rlctl_cmd_unassign, "drop a key's assigned tier" },
    { "which", rlctl_cmd_which, "which tier a key has, and why" },
    { "tiers", rlctl_cmd_tiers, "list or show tiers; check or load a YAML tiers file" },
    { "doctor", rlctl_cmd_doctor, "check the database's health and setup" },
    { "export", rlctl_cmd_export, "write the whole state as JSON" },
    { "import", rlctl_cmd_import, "replace the whole state with an export" },
    { "version", rlctl_cmd_version, "versions of rlctl and librl" },
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    char def[4096];
    size_t i;
    if (rl_default_path(def, sizeof def) != RL_OK)
        snprintf(def, sizeof def, "(none: set RL_DB or HOME)");
    fprintf(f, "usage: rlctl [--db PATH] [--shared-group] COMMAND [ARGS...]\n"
               "       rlctl --help | --version\n"
               "\n"
               "Inspects and manages the rate limits that librl keeps in a SQLite database.\n"
               "\n"
               "Commands:\n");
    for (i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n"
            "Options (before COMMAND):\n"
            "  --db PATH  the database; default $RL_DB, else $XDG_STATE_HOME/rl/rl.db,\n"
            "             else ~/.local/state/rl/rl.db (here: %s)\n"
            "  --shared-group\n"
            "             the database is shared by a group on purpose: accept its\n"
            "             files from other users of your groups, with modes up to\n"
            "             0660 (RL_OPEN_SHARED_GROUP); a new one is created 0660\n"
            "  --help     this text; 'rlctl COMMAND --help' describes a command\n"
            "  --version  print the versions of rlctl and librl\n"
            "\n"
            "Output: tables for people; --json on every reading command. Colour only\n"
            "on a terminal, and never when NO_COLOR is set. See rlctl(1).\n"
            "\n"
            "Exit status:\n"
            "  0  ok; allow: admitted; doctor: no check failed\n"
            "  1  allow: refused or timed out; tiers validate/load, import: the file\n"
            "     is invalid; doctor: a check failed; reset --all, import: not\n"
            "     confirmed\n"
            "  2  usage error (unknown command or option, bad argument; watch without\n"
            "     a terminal; reset --all or import without --yes when stdin is not a\n"
            "     terminal)\n"
            "  3  runtime error (database, I/O, no such key or tier); output that could\n"
            "     not be written: a full disk ('write error: ...'), or, said by nothing\n"
            "     but the status, a reader that left (rlctl keys | head -1)\n"
            "  4  a file of the database was refused: owned by another user, mode\n"
            "     wider than allowed, or not a regular file (see 'rlctl doctor')\n"
            "  An interrupted 'allow --wait' returns what it reserved and dies of SIGINT;\n"
            "  'watch' ends on ^C with status 0.\n",
            def);
}

static int print_version(void)
{
    printf("rlctl %s (librl %s)\n", RL_VERSION_STRING, rl_version());
    return RLCTL_OK;
}

int rlctl_cmd_version(const rlctl_ctx *ctx, int argc, char **argv)
{
    static const char use[] = "usage: rlctl version\n"
                              "\n"
                              "Prints the version of rlctl and that of the librl it runs with.\n";
    int npos, rc;
    (void)ctx;
    if ((rc = rlctl_parse_opts(argc, argv, NULL, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos > 0)
        return rlctl_usage_error(argv[0], "unexpected argument '%s'", argv[1]);
    return print_version();
}

static int unknown_command(const char *name)
{
    const char *names[NCOMMANDS + 1];
    const char *s;
    size_t i;
    for (i = 0; i < NCOMMANDS; i++)
        names[i] = commands[i].name;
    names[NCOMMANDS] = NULL;
    if ((s = rlctl_suggest(name, names)))
        fprintf(stderr, "rlctl: unknown command '%s' (did you mean '%s'?)\n", name, s);
    else
        fprintf(stderr, "rlctl: unknown command '%s' (see 'rlctl --help')\n", name);
    return RLCTL_USAGE;
}

/* Runs the command line; the status main returns, before the stdout check. */
static int run(int argc, char **argv)
{
    rlctl_ctx ctx = { NULL, 0 };
    int i;
    size_t c;

    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return RLCTL_OK;
        }
        if (strcmp(a, "--version") == 0)
            return print_version();
        if (strcmp(a, "--shared-group") == 0) {
            ctx.shared_group = 1;
            continue;
        }
        if (strcmp(a, "--db") == 0) {
            if (++i == argc) {
                fprintf(stderr, "rlctl: option '--db' needs a value (see 'rlctl --help')\n");
                return RLCTL_USAGE;
            }
            ctx.db = argv[i];
        } else if (strncmp(a, "--db=", 5) == 0) {
            ctx.db = a + 5;
        } else {
            fprintf(stderr, "rlctl: unknown option '%s' (see 'rlctl --help')\n", a);
            return RLCTL_USAGE;
        }
        if (!*ctx.db) {
            fprintf(stderr, "rlctl: option '--db' needs a non-empty path\n");
            return RLCTL_USAGE;
        }
    }
    if (i == argc) {
        usage(stderr);
        return RLCTL_USAGE;
    }
    for (c = 0; c < NCOMMANDS; c++)
        if (strcmp(argv[i], commands[c].name) == 0)
            return commands[c].fn(&ctx, argc - i, argv + i);
    return unknown_command(argv[i]);
}

int main(int argc, char **argv)
{
    int rc;
    rlctl_stdout_init(); /* before anything is written */
    rc = run(argc, argv);
    if (rc == RLCTL_HELP)
        rc = RLCTL_OK;
    /* Output that never arrived (a full disk, a closed pipe) must not look
     * like success to a script: status 3. */
    rc = rlctl_stdout_finish(rc);
    if (rc == RLCTL_INTERRUPTED) {
        /* Dying of the signal tells a calling shell the user pressed ^C,
         * so a script stops too (an exit status would not). */
        signal(SIGINT, SIG_DFL);
        raise(SIGINT);
    }
    return rc;
}
