/*
 * cmd_export.c - `rlctl export [FILE]`: the whole state of a database as
 * one JSON document, to move it or keep a backup.
 *
 * The document is librl's (rl_export): written as it is read, from one
 * read transaction, so a million keys need no more memory than one and
 * deciding processes carry on meanwhile. A FILE is written beside itself
 * under a temporary name, synced, then renamed over FILE: a crash or a
 * full disk never leaves half a backup where a whole one was. It is
 * created 0600, like the database, since keys often name users.
 */
#include "common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char use[] =
    "usage: rlctl export [FILE]\n"
    "\n"
    "Writes the whole state of the database as JSON to FILE (mode 0600,\n"
    "replaced atomically) or, without FILE or with '-', to stdout: settings,\n"
    "tiers with their limits, key rules, open leases, and every key with its\n"
    "assigned tier, counters and bucket state. 'rlctl import' reads it back.\n"
    "Processes may go on deciding meanwhile: the export is one consistent\n"
    "snapshot.\n";

typedef struct sink {
    FILE *f;
    int err; /* errno of the first failed write, read when it failed */
} sink;

static int write_file(void *ctx, const char *buf, size_t len)
{
    sink *s = ctx;
    errno = 0;
    if (fwrite(buf, 1, len, s->f) == len)
        return 0;
    if (!s->err)
        s->err = errno ? errno : EIO;
    return 1;
}

int rlctl_cmd_export(const rlctl_ctx *ctx, int argc, char **argv)
{
    char *tmp = NULL;
    FILE *f = NULL;
    int npos, rc, erc, fd = -1;
    sink out = { stdout, 0 };
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, NULL, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos > 1)
        return rlctl_usage_error(argv[0], "takes at most one FILE");
    if ((rc = rlctl_open(ctx, 1, &r)) != RLCTL_OK)
        return rc;
    if (npos == 0 || strcmp(argv[1], "-") == 0) {
        erc = rl_export(r, write_file, &out);
        if (erc > 0) /* main reports the write error (it kept the errno) */
            rc = RLCTL_ERROR;
        else if (erc != RL_OK)
            rc = rlctl_error("%s", rl_errmsg(r));
        goto out;
    }
    if (!(tmp = malloc(strlen(argv[1]) + 16))) {
        rc = rlctl_error("out of memory");
        goto out;
    }
    sprintf(tmp, "%s.tmp.XXXXXX", argv[1]);
    if ((fd = mkstemp(tmp)) < 0 || !(f = fdopen(fd, "w"))) {
        rc = rlctl_error("%s: %s", argv[1], strerror(errno));
        goto out;
    }
    fd = -1; /* f owns it */
    out.f = f;
    erc = rl_export(r, write_file, &out);
    if (erc < 0) {
        rc = rlctl_error("%s", rl_errmsg(r));
        goto out;
    }
    /* Each errno is read right after the call that failed: rl_export
     * makes other calls after a failed write, which may change it. */
    if (erc > 0) {
        rc = rlctl_error("%s: %s", argv[1], strerror(out.err ? out.err : EIO));
        goto out;
    }
    errno = 0;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        rc = rlctl_error("%s: %s", argv[1], strerror(errno ? errno : EIO));
        goto out;
    }
    if (fclose(f) != 0) {
        f = NULL;
        rc = rlctl_error("%s: %s", argv[1], strerror(errno));
        goto out;
    }
    f = NULL;
    if (rename(tmp, argv[1]) != 0) {
        rc = rlctl_error("%s: %s", argv[1], strerror(errno));
        goto out;
    }
    free(tmp);
    tmp = NULL;
    printf("exported to %s\n", argv[1]);
out:
    if (f)
        fclose(f);
    if (fd >= 0)
        close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    rl_close(r);
    return rc;
}
