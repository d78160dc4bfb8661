/*
 * fileperm.c - refuses database, side and lock files that another user
 * could have planted (fileperm.h has the rules).
 *
 * Guarantees: a file is judged on one stat of it (fstat of the caller's
 * descriptor, or lstat, which never follows a symbolic link); every
 * refusal is RL_EPERM with a message naming the file, what is wrong and
 * the fix; nothing is opened, created or changed here.
 */
#include "fileperm.h"

#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Whether gid is our effective gid or one of our supplementary groups. */
static int in_our_groups(gid_t gid)
{
    gid_t few[64], *v = few;
    int n, i, found = 0;
    if (gid == getegid())
        return 1;
    if ((n = getgroups(0, NULL)) <= 0)
        return 0;
    if ((size_t)n > sizeof few / sizeof few[0] && !(v = malloc((size_t)n * sizeof *v)))
        return 0;
    n = getgroups(n, v); /* -1 if the list grew meanwhile: not a member */
    for (i = 0; i < n; i++)
        found |= v[i] == gid;
    if (v != few)
        free(v);
    return found;
}

static const char *not_regular(mode_t m)
{
    return S_ISDIR(m)    ? "directory"
           : S_ISFIFO(m) ? "FIFO"
           : S_ISSOCK(m) ? "socket"
           : S_ISCHR(m)  ? "character device"
           : S_ISBLK(m)  ? "block device"
                         : "special file";
}

/* reader: the read-only rule, with db_owner as in fileperm.h. */
static int check(const struct stat *st, const char *path, unsigned int file_mode, int shared_group,
                 int reader, long db_owner, char *err)
{
    unsigned long uid = (unsigned long)st->st_uid, me = (unsigned long)geteuid();
    unsigned int mode = (unsigned int)st->st_mode & 0777, wider = mode & ~file_mode & 0777;
    int group_ok = shared_group && in_our_groups(st->st_gid);
    int owner_ok = uid == me || uid == 0 || group_ok;
    const char *groups = shared_group ? ", one of this user's groups" : "";

    if (S_ISLNK(st->st_mode))
        return rl_seterr(err, RL_EPERM,
                         "%s: is a symbolic link, which rl does not follow: "
                         "remove it, or name the file it points to",
                         path);
    if (!S_ISREG(st->st_mode))
        return rl_seterr(err, RL_EPERM, "%s: is a %s, not a regular file: remove it", path,
                         not_regular(st->st_mode));
    if (owner_ok && !wider && (reader || st->st_nlink == 1))
        return RL_OK;
    if (reader) {
        if (!owner_ok && db_owner >= 0 && uid != (unsigned long)db_owner &&
            ((unsigned long)db_owner == me || db_owner == 0))
            return rl_seterr(err, RL_EPERM,
                             "%s: owned by uid %lu, not by this user (uid %lu)%s "
                             "or root: remove it or fix its owner",
                             path, uid, me, groups);
        if (!owner_ok && db_owner >= 0 && uid != (unsigned long)db_owner)
            return rl_seterr(err, RL_EPERM,
                             "%s: owned by uid %lu, not by the database's owner "
                             "(uid %lu), this user (uid %lu)%s or root: remove it or fix its "
                             "owner",
                             path, uid, (unsigned long)db_owner, me, groups);
        if (mode & S_IWOTH & ~file_mode)
            return rl_seterr(err, RL_EPERM,
                             "%s: mode %04o lets every user write it: chmod o-w "
                             "it",
                             path, mode);
        if ((mode & S_IWGRP) && !group_ok)
            return rl_seterr(
                err, RL_EPERM,
                shared_group ? "%s: mode %04o lets group %lu write it, which is not one of this "
                               "user's groups: chmod g-w it or fix its group"
                             : "%s: mode %04o lets group %lu write it, and the group set-up "
                               "is not chosen: chmod g-w it, or choose it (RL_OPEN_SHARED_GROUP, "
                               "rlctl --shared-group)",
                path, mode, (unsigned long)st->st_gid);
        return RL_OK;
    }
    if (!owner_ok && shared_group)
        return rl_seterr(err, RL_EPERM,
                         "%s: owned by uid %lu and group %lu, not by this user "
                         "(uid %lu), one of this user's groups or root: remove it or fix its "
                         "owner",
                         path, uid, (unsigned long)st->st_gid, me);
    if (!owner_ok)
        return rl_seterr(err, RL_EPERM,
                         "%s: owned by uid %lu, not by this user (uid %lu) or "
                         "root: remove it or fix its owner",
                         path, uid, me);
    if (wider & 0007)
        return rl_seterr(err, RL_EPERM,
                         "%s: mode %04o is wider than file_mode %04o: chmod %04o "
                         "it",
                         path, mode, file_mode & 0777, mode & file_mode);
    if (wider) /* group bits: a group set-up with a file_mode too narrow? */
        return rl_seterr(err, RL_EPERM,
                         "%s: mode %04o is wider than file_mode %04o: chmod %04o "
                         "it or, if a group shares it, open it with file_mode %04o (rlctl "
                         "--shared-group)",
                         path, mode, file_mode & 0777, mode & file_mode, (mode | file_mode) & 0777);
    return rl_seterr(err, RL_EPERM,
                     "%s: has %lu hard links, so another name can change it: "
                     "give it a file of its own (cp it, then mv the copy over it)",
                     path, (unsigned long)st->st_nlink);
}

static int stat_fd(int fd, const char *path, struct stat *st, char *err)
{
    if (fstat(fd, st) != 0)
        return rl_seterr(err, RL_ESTORE, "%s: %s", path, strerror(errno));
    return RL_OK;
}

/* 1: st is filled; 0: there is no such file; else an error code. */
static int stat_path(const char *path, struct stat *st, char *err)
{
    if (lstat(path, st) == 0)
        return 1;
    if (errno == ENOENT)
        return 0;
    return rl_seterr(err, RL_ESTORE, "%s: %s", path, strerror(errno));
}

int rl_fileperm_check_fd(int fd, const char *path, unsigned int file_mode, int shared_group,
                         char *err)
{
    struct stat st;
    int rc = stat_fd(fd, path, &st, err);
    return rc != RL_OK ? rc : check(&st, path, file_mode, shared_group, 0, -1, err);
}

int rl_fileperm_check_path(const char *path, unsigned int file_mode, int shared_group, char *err)
{
    struct stat st;
    int rc = stat_path(path, &st, err);
    return rc != 1 ? rc : check(&st, path, file_mode, shared_group, 0, -1, err);
}

int rl_fileperm_check_fd_ro(int fd, const char *path, unsigned int file_mode, int shared_group,
                            long db_owner, char *err)
{
    struct stat st;
    int rc = stat_fd(fd, path, &st, err);
    return rc != RL_OK ? rc : check(&st, path, file_mode, shared_group, 1, db_owner, err);
}

int rl_fileperm_check_path_ro(const char *path, unsigned int file_mode, int shared_group,
                              long db_owner, char *err)
{
    struct stat st;
    int rc = stat_path(path, &st, err);
    return rc != 1 ? rc : check(&st, path, file_mode, shared_group, 1, db_owner, err);
}
