/*
 * cfg_file.c - reading a tiers file from disk, and rl_validate_tiers.
 *
 * Guarantees: only a regular file is read (a FIFO would block the caller
 * until some process writes to it, a device may never end: both are
 * refused before a byte is read); never reads more than RL_CFG_MAX_BYTES + 1
 * bytes whatever the file is (one growing meanwhile), so a wrong path cannot
 * make the caller wait or allocate without bound; the descriptor is always
 * closed.
 */
#include "cfg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int rl_cfg_read_error(const char *path, int e, char *err, size_t errlen)
{
    char buf[128];
    const char *msg;
#if defined(_GNU_SOURCE)
    msg = strerror_r(e, buf, sizeof buf);
#else
    msg = strerror_r(e, buf, sizeof buf) == 0 ? buf : "unknown error";
#endif
    if (err && errlen)
        snprintf(err, errlen, "%s: cannot read: %s", path, msg);
    return RL_ESTORE;
}

int rl_cfg_parse_file(const char *path, rl_policy *out, char *err, size_t errlen)
{
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    struct stat st;
    int fd = -1, rc;

    rl_policy_init(out);
    if (!path) {
        if (err && errlen)
            snprintf(err, errlen, "no tiers file given");
        return RL_EINVAL;
    }
    /* O_NONBLOCK: opening a FIFO would otherwise wait for a writer. It
     * changes nothing for the regular files that are read. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        rc = rl_cfg_read_error(path, errno, err, errlen);
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        rc = rl_cfg_read_error(path, errno, err, errlen);
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = rl_cfg_read_error(path, EISDIR, err, errlen);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot read: not a regular file (a %s)", path,
                     S_ISFIFO(st.st_mode)   ? "FIFO"
                     : S_ISCHR(st.st_mode)  ? "character device"
                     : S_ISBLK(st.st_mode)  ? "block device"
                     : S_ISSOCK(st.st_mode) ? "socket"
                                            : "special file");
        rc = RL_ESTORE;
        goto out;
    }
    for (;;) {
        ssize_t n;
        if (len == cap) {
            /* Grow up to one byte past the cap: that byte is how "too
             * large" is told apart from "exactly at the cap". */
            size_t ncap = cap ? cap * 2 : 16384;
            unsigned char *nb;
            if (ncap > RL_CFG_MAX_BYTES + 1)
                ncap = RL_CFG_MAX_BYTES + 1;
            if (ncap == cap)
                break;
            nb = realloc(buf, ncap);
            if (!nb) {
                if (err && errlen)
                    snprintf(err, errlen, "%s: out of memory", path);
                rc = RL_ENOMEM;
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = rl_cfg_read_error(path, errno, err, errlen);
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    /* rl_cfg_parse_buffer refuses len > cap with the same message as for
     * a buffer, so files and buffers fail alike. */
    rc = rl_cfg_parse_buffer(path, buf ? buf : (const unsigned char *)"", len, out, err, errlen);
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

int rl_validate_tiers(const char *yaml_path, char *err, size_t errlen)
{
    rl_policy p;
    int rc = rl_cfg_parse_file(yaml_path, &p, err, errlen);
    rl_policy_free(&p);
    return rc;
}
