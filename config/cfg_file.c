/*
 * cfg_file.c - reading a tiers file from disk, and rl_validate_tiers.
 *
 * Guarantees: never reads more than RL_CFG_MAX_BYTES + 1 bytes whatever the
 * file is (a FIFO, /dev/zero, a growing log), so a wrong path cannot make
 * the caller allocate without bound; the descriptor is always closed.
 */
#include "cfg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    int fd = -1, rc;

    rl_policy_init(out);
    if (!path) {
        if (err && errlen)
            snprintf(err, errlen, "no tiers file given");
        return RL_EINVAL;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = rl_cfg_read_error(path, errno, err, errlen);
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
