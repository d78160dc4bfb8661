/*
 * test_fileperm.c - files that another user could have planted are refused
 * (store/fileperm.c, called by the SQLite store).
 *
 * Each case plants a real file where rl_open will look (the database,
 * PATH-wal, PATH-shm): owned by nobody (uid 65534, chown needs root: skipped
 * otherwise, and says why), our own but with a mode wider than file_mode, a
 * FIFO, a symbolic link. rl_open must fail with RL_EPERM, name the file in
 * rl_errmsg, and leave the planted file exactly as it was. A read-only
 * handle may read another user's database, but trusts nobody else's side
 * file. A group set-up
 * chosen with RL_OPEN_SHARED_GROUP opens files of another user of our group,
 * and our own private database reopens as before.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "rl.h"

#define NOBODY 65534

static const rl_limit limits[] = { RL_LIMIT("rps", NULL, 10, RL_SECOND, 10) };

typedef struct fx {
    char dir[64];
    char db[96], wal[100], shm[100];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/rl_test_fileperm.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/app.db", f->dir);
    snprintf(f->wal, sizeof f->wal, "%s-wal", f->db);
    snprintf(f->shm, sizeof f->shm, "%s-shm", f->db);
    umask(022);
    /* A librl that adopts a FIFO blocks reading it: fail, do not hang. */
    alarm(60);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[160];
    alarm(0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static int open_db(const char *path, unsigned flags, unsigned mode, rl **r)
{
    rl_options o = RL_OPTIONS_INIT;
    o.default_limits = limits;
    o.n_default_limits = 1;
    o.flags = flags;
    if (mode)
        o.file_mode = mode;
    return rl_open(r, path, &o);
}

/* A database of ours with its side files, all closed again. */
static void make_db(const char *path, unsigned mode)
{
    rl *r = NULL;
    rl_result res;
    assert_int_equal(open_db(path, 0, mode, &r), RL_OK);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
    rl_close(r);
}

/* Cases that chown a file to nobody need root. */
static int need_root(const char *what)
{
    if (geteuid() == 0)
        return 1;
    printf("[ SKIPPED  ] %s: chown to uid %d needs root\n", what, NOBODY);
    skip();
    return 0;
}

static void plant(const char *path, const char *data, unsigned mode, long uid, long gid)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
    assert_int_equal(fchmod(fd, mode), 0);
    if (uid >= 0)
        assert_int_equal(fchown(fd, (uid_t)uid, (gid_t)gid), 0);
    close(fd);
}

/* What a planted file is: its lstat and, for a regular file, its bytes. */
typedef struct snap {
    struct stat st;
    char data[512];
    ssize_t n;
} snap;

static void take(const char *path, snap *s)
{
    int fd;
    memset(s, 0, sizeof *s);
    assert_int_equal(lstat(path, &s->st), 0);
    if (!S_ISREG(s->st.st_mode))
        return;
    assert_true((fd = open(path, O_RDONLY | O_NOFOLLOW)) >= 0);
    s->n = read(fd, s->data, sizeof s->data);
    close(fd);
}

static void assert_unchanged(const char *path, const snap *before)
{
    snap now;
    take(path, &now);
    assert_int_equal(now.st.st_ino, before->st.st_ino);
    assert_int_equal(now.st.st_mode, before->st.st_mode);
    assert_int_equal(now.st.st_uid, before->st.st_uid);
    assert_int_equal(now.st.st_gid, before->st.st_gid);
    assert_int_equal(now.st.st_size, before->st.st_size);
    assert_int_equal(now.n, before->n);
    assert_memory_equal(now.data, before->data, sizeof now.data);
}

/* rl_open(path) with these flags and file_mode fails with RL_EPERM, its
 * message naming `file` and saying `what`. */
static void refused(const char *path, unsigned flags, unsigned mode, const char *file,
                    const char *what)
{
    rl *r = NULL;
    int rc = open_db(path, flags, mode, &r);
    if (rc != RL_EPERM || !strstr(rl_errmsg(r), file) || !strstr(rl_errmsg(r), what))
        fail_msg("rl_open(%s, flags %u): %d, '%s'; expected RL_EPERM about %s: '%s'", path, flags,
                 rc, rl_errmsg(r), file, what);
    rl_close(r);
}

static void test_database_planted_by_nobody(void **state)
{
    fx *f = *state;
    snap before;
    if (!need_root(__func__))
        return;
    plant(f->db, "", 0600, NOBODY, NOBODY);
    take(f->db, &before);
    refused(f->db, 0, 0, f->db, "owned by uid 65534, not by this user (uid 0) or root");
    assert_unchanged(f->db, &before);
    /* nothing else was created beside it */
    assert_int_equal(access(f->wal, F_OK), -1);
    assert_int_equal(access(f->shm, F_OK), -1);
}

static void test_wal_planted_by_nobody(void **state)
{
    fx *f = *state;
    snap before;
    if (!need_root(__func__))
        return;
    make_db(f->db, 0);
    assert_int_equal(unlink(f->wal), 0);
    plant(f->wal, "not a write-ahead log, just bytes planted by somebody else", 0600, NOBODY,
          NOBODY);
    take(f->wal, &before);
    refused(f->db, 0, 0, f->wal, "owned by uid 65534, not by this user (uid 0) or root");
    refused(f->db, RL_OPEN_READONLY, 0, f->wal, "owned by uid 65534");
    assert_unchanged(f->wal, &before);
}

static void chown_all(const char *dir, long uid, long gid)
{
    char p[512];
    struct dirent *e;
    DIR *d = opendir(dir);
    assert_non_null(d);
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            assert_int_equal(lchown(p, (uid_t)uid, (gid_t)gid), 0);
        }
    closedir(d);
}

/* Reading another user's database is normal: a reader trusts the
 * database's owner, and nobody else. */
static void test_reader_trusts_the_owner_only(void **state)
{
    fx *f = *state;
    rl *r = NULL;
    rl_key_stats st;
    snap before;
    if (!need_root(__func__))
        return;
    make_db(f->db, 0);
    assert_int_equal(unlink(f->wal), 0);
    chown_all(f->dir, 1, 1); /* daemon's database, which root may read */
    plant(f->wal, "bytes of a third user", 0644, NOBODY, NOBODY);
    take(f->wal, &before);
    refused(f->db, RL_OPEN_READONLY, 0, f->wal,
            "owned by uid 65534, not by the database's owner (uid 1), this user (uid 0) or root");
    assert_unchanged(f->wal, &before);
    assert_int_equal(unlink(f->wal), 0);
    assert_int_equal(open_db(f->db, RL_OPEN_READONLY, 0, &r), RL_OK);
    assert_int_equal(rl_stats(r, "k", &st), RL_OK);
    assert_int_equal(st.units, 1);
    rl_close(r);
    /* but this user does not write it */
    refused(f->db, 0, 0, f->db, "owned by uid 1, not by this user (uid 0) or root");
}

static void test_shm_planted_by_nobody(void **state)
{
    fx *f = *state;
    snap before;
    if (!need_root(__func__))
        return;
    make_db(f->db, 0);
    assert_int_equal(unlink(f->shm), 0);
    plant(f->shm, "a wal-index of somebody else's making", 0644, NOBODY, NOBODY);
    take(f->shm, &before);
    refused(f->db, 0, 0, f->shm, "owned by uid 65534");
    refused(f->db, RL_OPEN_READONLY, 0, f->shm, "owned by uid 65534");
    assert_unchanged(f->shm, &before);
}

static void test_own_file_mode_0666(void **state)
{
    fx *f = *state;
    snap before;
    plant(f->db, "", 0666, -1, -1);
    take(f->db, &before);
    refused(f->db, 0, 0, f->db, "mode 0666 is wider than file_mode 0600");
    refused(f->db, RL_OPEN_READONLY, 0, f->db, "lets every user write it");
    assert_unchanged(f->db, &before);
}

static void test_fifo_at_path(void **state)
{
    fx *f = *state;
    snap before;
    assert_int_equal(mkfifo(f->db, 0600), 0);
    take(f->db, &before);
    refused(f->db, 0, 0, f->db, "is a FIFO, not a regular file");
    refused(f->db, RL_OPEN_READONLY, 0, f->db, "is a FIFO");
    assert_unchanged(f->db, &before);
}

static void test_symlink_at_wal_path(void **state)
{
    fx *f = *state;
    char target[128];
    snap before, lnk;
    make_db(f->db, 0);
    snprintf(target, sizeof target, "%s/precious", f->dir);
    plant(target, "a file of ours that the log must not overwrite", 0600, -1, -1);
    assert_int_equal(unlink(f->wal), 0);
    assert_int_equal(symlink(target, f->wal), 0);
    take(target, &before);
    take(f->wal, &lnk);
    refused(f->db, 0, 0, f->wal, "is a symbolic link");
    refused(f->db, RL_OPEN_READONLY, 0, f->wal, "is a symbolic link");
    assert_unchanged(target, &before);
    assert_unchanged(f->wal, &lnk);
    /* nor is the database itself reached through a link */
    assert_int_equal(unlink(f->wal), 0);
    assert_int_equal(rename(f->db, target), 0); /* replaces "precious" */
    assert_int_equal(symlink(target, f->db), 0);
    take(target, &before);
    refused(f->db, 0, 0, f->db, "is a symbolic link");
    assert_unchanged(target, &before);
}

static void test_shared_group(void **state)
{
    fx *f = *state;
    rl *r = NULL;
    rl_result res;
    rl_key_stats st;
    if (!need_root(__func__))
        return;
    /* docs/security.md's set-up: a setgid directory of the group, file_mode
     * 0660, and the files created by another user of the group */
    assert_int_equal(chown(f->dir, NOBODY, getegid()), 0);
    assert_int_equal(chmod(f->dir, 02770), 0);
    make_db(f->db, 0660);
    chown_all(f->dir, NOBODY, (long)getegid());
    /* without the flag, another user's files are refused */
    refused(f->db, 0, 0660, f->dir, "owned by uid 65534, not by this user");
    refused(f->db, RL_OPEN_READONLY, 0, f->db, "the group set-up is not chosen");
    /* with it they open, to write and to read */
    assert_int_equal(open_db(f->db, RL_OPEN_SHARED_GROUP, 0660, &r), RL_OK);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
    assert_true(res.allowed);
    rl_close(r);
    assert_int_equal(open_db(f->db, RL_OPEN_SHARED_GROUP | RL_OPEN_READONLY, 0, &r), RL_OK);
    assert_int_equal(rl_stats(r, "k", &st), RL_OK);
    assert_int_equal(st.units, 2);
    rl_close(r);
    /* the mode must still be no wider than file_mode */
    refused(f->db, RL_OPEN_SHARED_GROUP, 0, f->dir, "is wider than file_mode 0600");
    /* and the group must be ours */
    chown_all(f->dir, NOBODY, NOBODY);
    refused(f->db, RL_OPEN_SHARED_GROUP, 0660, f->dir,
            "not by this user (uid 0), one of this "
            "user's groups or root");
}

static void test_own_private_db_reopens(void **state)
{
    fx *f = *state;
    rl *r = NULL;
    rl_result res;
    make_db(f->db, 0);
    assert_int_equal(open_db(f->db, 0, 0, &r), RL_OK);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
    rl_close(r);
    assert_int_equal(open_db(f->db, RL_OPEN_READONLY, 0, &r), RL_OK);
    rl_close(r);
    /* the line between them: group-readable is too wide for a writer with
     * file_mode 0600, but a reader accepts it (only its owner can write) */
    assert_int_equal(chmod(f->db, 0640), 0);
    refused(f->db, 0, 0, f->db, "mode 0640 is wider than file_mode 0600: chmod 0600 it");
    assert_int_equal(open_db(f->db, RL_OPEN_READONLY, 0, &r), RL_OK);
    rl_close(r);
    assert_int_equal(open_db(f->db, 0, 0640, &r), RL_OK);
    rl_close(r);
    assert_string_not_equal(rl_strerror(RL_EPERM), rl_strerror(-1000));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_database_planted_by_nobody),   T(test_wal_planted_by_nobody),
        T(test_reader_trusts_the_owner_only), T(test_shm_planted_by_nobody),
        T(test_own_file_mode_0666),           T(test_fifo_at_path),
        T(test_symlink_at_wal_path),          T(test_shared_group),
        T(test_own_private_db_reopens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
