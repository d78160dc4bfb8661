/*
 * fileperm.h - is an existing file one that no other user could have
 * planted? Checked on the database, its -wal and -shm (sqlite.c) and the
 * lock file (lock.c) before they are used.
 *
 * The rule for a handle that writes (and for the lock file): the file is a
 * regular file (not a symbolic link, FIFO, socket, device or directory)
 * with a single link; its owner is this process's effective uid or root;
 * and its permission bits are no wider than file_mode
 * ((st_mode & 0777 & ~file_mode) == 0). With shared_group (a group set-up
 * chosen on purpose), a file of another uid is accepted too when its group
 * is our effective gid or one of our supplementary groups; its mode must
 * still be no wider than file_mode.
 *
 * The rule for a read-only handle (the *_ro calls) is what the writer's
 * rule accepts, and besides a file that nobody but its owner could have
 * written: no write bit for others (unless file_mode has it), no write bit
 * for the group unless shared_group is set and the group is one of ours,
 * and, for a side file, an owner that the writer's rule accepts or that is
 * the database's own. A reader trusts whoever owns the database it chose to
 * read (user B reading user A's database is a normal set-up), and no one
 * else. The link count is not checked for readers: they never write.
 *
 * Every refusal is RL_EPERM with a one-line message in err (an
 * RL_ERRMSG_MAX buffer): the file, exactly what is wrong, and the fix.
 * Nothing here depends on SQLite or on the store.
 */
#ifndef RL_FILEPERM_H
#define RL_FILEPERM_H

/* The writer's rule on an open file (fstat; O_PATH descriptors work). path
 * only names the file in the message. */
int rl_fileperm_check_fd(int fd, const char *path, unsigned int file_mode, int shared_group,
                         char *err);
/* The writer's rule on path (lstat): a missing file is RL_OK, a symbolic
 * link is refused. */
int rl_fileperm_check_path(const char *path, unsigned int file_mode, int shared_group, char *err);

/* The reader's rule. db_owner is the uid owning the database that the
 * file belongs to, which a side file may have; -1 for the database itself
 * (any owner). */
int rl_fileperm_check_fd_ro(int fd, const char *path, unsigned int file_mode, int shared_group,
                            long db_owner, char *err);
int rl_fileperm_check_path_ro(const char *path, unsigned int file_mode, int shared_group,
                              long db_owner, char *err);

#endif
