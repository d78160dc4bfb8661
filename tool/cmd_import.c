/*
 * cmd_import.c - `rlctl import FILE`: make a database the one an
 * `rlctl export` described, to restore a backup or finish a move.
 *
 * Everything in FILE is checked first (librl's rl_import: names, keys,
 * limits and bucket slots as the library checks its own input) and then
 * replaces the whole state in one write transaction, so a bad file changes
 * nothing and processes never see half an import. That transaction holds
 * the write lock while it writes: processes wait for it (within their busy
 * timeout), about a second per hundred thousand keys.
 *
 * Since it throws away everything the database held, it is confirmed as
 * `reset --all` is: a question on the terminal when stdin is one, and
 * otherwise --yes or a refusal (exit 2) before anything is read or opened.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char use[] = "usage: rlctl import [--yes] FILE\n"
                          "\n"
                          "Replaces the whole state of the database (settings, tiers, key rules,\n"
                          "leases, keys) with that of FILE, a document written by 'rlctl export'\n"
                          "('-' reads stdin). All of it or, on any error, nothing: every value is\n"
                          "checked before anything is written. Exit status 1 if FILE is invalid\n"
                          "(or larger than 1 GB). FILE must be a regular file: give a pipe or a\n"
                          "device on stdin, with '-'.\n"
                          "\n"
                          "Options:\n"
                          "  --yes  do not ask; without it, asks for confirmation on the terminal\n"
                          "         when stdin is one, and refuses (exit 2) when it is not\n";

/* The longest document read: SQLite's default SQLITE_MAX_LENGTH, the most
 * its JSON functions take (rl_import refuses longer ones too). An export
 * of a million keys is about a third of it. */
#define IMPORT_MAX 1000000000u

/* The whole file in memory: rl_import takes one document. A named FILE must
 * be a regular file (a FIFO would block, a device may never end: '-' reads
 * those from stdin); at most IMPORT_MAX bytes are read, and reading stops
 * at a NUL byte, which no JSON text holds (rl_import then says so), so that
 * /dev/zero on stdin is refused at once. */
static int slurp(const char *path, char **out, size_t *len, int *invalid)
{
    FILE *f = stdin;
    char *buf = NULL, *nb;
    size_t cap = 0, n = 0, got;
    int rc = RLCTL_OK, fd;
    struct stat st;

    *invalid = 0;
    if (strcmp(path, "-") != 0) {
        if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)) < 0)
            return rlctl_error("%s: %s", path, strerror(errno));
        if (fstat(fd, &st) != 0) {
            rc = rlctl_error("%s: %s", path, strerror(errno));
            close(fd);
            return rc;
        }
        if (!S_ISREG(st.st_mode)) {
            close(fd);
            if (S_ISDIR(st.st_mode))
                return rlctl_error("%s: %s", path, strerror(EISDIR));
            return rlctl_error("%s: not a regular file (a pipe or device can be read from "
                               "stdin: rlctl import - < %s)",
                               path, path);
        }
        if ((uintmax_t)st.st_size > IMPORT_MAX) {
            close(fd);
            *invalid = 1;
            return rlctl_error("%s: too large: %jd bytes, more than the %u an import reads", path,
                               (intmax_t)st.st_size, IMPORT_MAX);
        }
        if (!(f = fdopen(fd, "rb"))) {
            rc = rlctl_error("%s: %s", path, strerror(errno));
            close(fd);
            return rc;
        }
    }
    do {
        if (cap - n < 65536 && cap <= IMPORT_MAX) {
            /* up to one byte past the cap: how "too large" is told apart */
            cap = cap ? cap * 2 : 1 << 20;
            if (cap > IMPORT_MAX + 1u)
                cap = IMPORT_MAX + 1u;
            if (!(nb = realloc(buf, cap))) {
                rc = rlctl_error("%s: out of memory", path);
                goto out;
            }
            buf = nb;
        }
        errno = 0;
        got = fread(buf + n, 1, cap - n, f);
        if (memchr(buf + n, 0, got)) {
            n += got;
            break; /* not JSON: rl_import says so */
        }
        n += got;
        if (n > IMPORT_MAX) {
            *invalid = 1;
            rc = rlctl_error("%s: too large: more than the %u bytes an import reads", path,
                             IMPORT_MAX);
            goto out;
        }
    } while (got > 0);
    if (ferror(f)) {
        rc = rlctl_error("%s: %s", path, strerror(errno ? errno : EIO));
        goto out;
    }
    *out = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    if (f != stdin)
        fclose(f);
    return rc;
}

static int count_tier(void *ctx, const rl_tier_info *t)
{
    (void)t;
    ++*(size_t *)ctx;
    return 0;
}

static int count_rule(void *ctx, const char *match, const char *tier)
{
    (void)match;
    (void)tier;
    ++*(size_t *)ctx;
    return 0;
}

/* On a terminal: the user says yes, knowing what goes (as reset --all). */
static int confirmed(rl *r, const char *db, const char *file)
{
    char question[8800], path[4096], shown[4096], fshown[4096], tiers[64];
    rl_totals t;
    size_t ntiers = 0;
    if (rl_totals_get(r, &t) != RL_OK)
        return rlctl_error("%s", rl_errmsg(r));
    /* A damaged policy is what an import may be run to replace: asked
     * about all the same. */
    if (rl_tiers_list(r, count_tier, &ntiers) == RL_OK)
        snprintf(tiers, sizeof tiers, "%zu tier(s)", ntiers);
    else
        snprintf(tiers, sizeof tiers, "tiers that cannot be read");
    if (!db && rl_default_path(path, sizeof path) == RL_OK)
        db = path;
    snprintf(question, sizeof question,
             "replace the whole state of %s (%lld key(s), %s) with that of %s?",
             db ? rlctl_text(db, shown, sizeof shown) : "the database", (long long)t.keys, tiers,
             rlctl_text(file, fshown, sizeof fshown));
    if (!rlctl_confirm(question)) {
        fprintf(stderr, "rlctl: import: not confirmed; nothing was imported\n");
        return RLCTL_NO;
    }
    return RLCTL_OK;
}

int rlctl_cmd_import(const rlctl_ctx *ctx, int argc, char **argv)
{
    char *doc = NULL;
    size_t len = 0, ntiers = 0, nrules = 0;
    int npos, rc, irc, invalid, yes = 0;
    const rlctl_opt opts[] = { { "--yes", RLCTL_OPT_FLAG, &yes }, { NULL, 0, NULL } };
    rl_totals t;
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, opts, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos != 1)
        return rlctl_usage_error(argv[0], "%s", npos ? "takes one FILE" : "needs a FILE");
    /* Refused before anything is read or opened, as reset --all: a script
     * must not depend on what the file or the database happen to hold. */
    if (!yes && !isatty(STDIN_FILENO))
        return rlctl_usage_error(argv[0], "needs --yes when stdin is not a terminal");
    if ((rc = slurp(argv[1], &doc, &len, &invalid)) != RLCTL_OK)
        return invalid ? RLCTL_NO : rc;
    if ((rc = rlctl_open(ctx, 0, &r)) != RLCTL_OK)
        goto out;
    if (!yes && (rc = confirmed(r, ctx->db, argv[1])) != RLCTL_OK)
        goto out;
    if ((irc = rl_import(r, doc, len)) != RL_OK) {
        rlctl_error("%s: %s", argv[1], rl_errmsg(r));
        rc = irc == RL_EINVAL ? RLCTL_NO : RLCTL_ERROR;
        goto out;
    }
    /* Counted from the database: what is now in force. */
    if (rl_tiers_list(r, count_tier, &ntiers) != RL_OK ||
        rl_rules_list(r, count_rule, &nrules) != RL_OK || rl_totals_get(r, &t) != RL_OK) {
        rc = rlctl_error("%s", rl_errmsg(r));
        goto out;
    }
    printf("imported %s: %zu tier(s), %zu key rule(s), %lld key(s)\n", argv[1], ntiers, nrules,
           (long long)t.keys);
out:
    free(doc);
    rl_close(r);
    return rc;
}
