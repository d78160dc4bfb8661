/*
 * sqlite_doctor.c - the SQLite store's health checks (rl_doctor): journal
 * mode, durability, busy timeout, schema, integrity, file permissions,
 * side files and the filesystem.
 *
 * Guarantees: each check reports once through the caller's function, which
 * may stop them; the checks only read (quick_check in a read transaction of
 * its own, so deciding processes go on writing); what failed is in the
 * reports, never an error of the call.
 */
#include "fileperm.h"
#include "sqlite.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

/* Filesystems by statfs f_type. WAL keeps its index in a shared-memory file
 * (-shm) mapped by every process: over NFS, SMB, 9P or FUSE the mapping is
 * not shared between machines (or not coherent), and locks may be advisory
 * only, so processes can corrupt the database or see stale buckets. */
static const struct {
    uint32_t type;
    const char *name;
    int network;
} fs_types[] = {
    { 0x6969, "NFS", 1 },       { 0x517b, "SMB", 1 },           { 0xff534d42, "CIFS", 1 },
    { 0xfe534d42, "SMB2", 1 },  { 0x01021997, "9P", 1 },        { 0x65735546, "FUSE", 1 },
    { 0xef53, "ext2/3/4", 0 },  { 0x58465342, "XFS", 0 },       { 0x9123683e, "Btrfs", 0 },
    { 0x01021994, "tmpfs", 0 }, { 0x794c7630, "overlayfs", 0 }, { 0x2fc12fc1, "ZFS", 0 },
    { 0xf2f52010, "F2FS", 0 },
};

typedef struct doctor_ctx {
    rl_check_fn fn;
    void *ctx;
    int stop; /* fn's non-zero return */
} doctor_ctx;

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 4, 5)))
#endif
static void
report(doctor_ctx *d, const char *check, int status, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    if (d->stop)
        return;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    d->stop = d->fn(d->ctx, check, status, detail);
}

/* Runs a cached one-row PRAGMA; its first column as text (and int). */
static int pragma_value(sq_store *s, int i, char *buf, size_t len, int64_t *v)
{
    sqlite3_stmt *q = NULL;
    int rc = rl_store_sqlite_stmt(s, i, &q);
    if (rc != RL_OK)
        return rc;
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        rl_store_sqlite_text_col(q, 0, buf, len);
        *v = sqlite3_column_int64(q, 0);
        rc = RL_OK;
    } else {
        rc = rl_store_sqlite_fail(s, rc == SQLITE_DONE ? SQLITE_ERROR : rc, "pragma");
    }
    sqlite3_reset(q);
    return rc;
}

static void doctor_pragmas(sq_store *s, doctor_ctx *d)
{
    static const char *const sync_names[] = { "OFF", "NORMAL", "FULL", "EXTRA" };
    char buf[64];
    int64_t v = 0, want;

    if (pragma_value(s, S_P_JOURNAL, buf, sizeof buf, &v) != RL_OK)
        report(d, "journal mode", RL_CHECK_FAIL, "cannot read: %s", s->base.err);
    else if (strcmp(buf, "wal") == 0)
        report(d, "journal mode", RL_CHECK_OK, "wal");
    else
        report(d, "journal mode", RL_CHECK_FAIL,
               "%s: processes need wal to read while one writes (open it once with write "
               "access)",
               buf);

    want = s->durability == RL_DURABILITY_FULL ? 2 : 1;
    if (pragma_value(s, S_P_SYNC, buf, sizeof buf, &v) != RL_OK)
        report(d, "synchronous", RL_CHECK_FAIL, "cannot read: %s", s->base.err);
    else if (v < 0 || v > 3)
        report(d, "synchronous", RL_CHECK_FAIL, "unknown value %lld", (long long)v);
    else if (s->readonly)
        report(d, "synchronous", RL_CHECK_OK,
               "%s here; this handle is read-only, and every writer sets NORMAL or FULL "
               "(rl_options.durability) itself",
               sync_names[v]);
    else if (v == want)
        report(d, "synchronous", RL_CHECK_OK, "%s, as configured", sync_names[v]);
    else
        report(d, "synchronous", RL_CHECK_FAIL, "%s, but the handle asked for %s", sync_names[v],
               sync_names[want]);

    if (pragma_value(s, S_P_BUSY, buf, sizeof buf, &v) != RL_OK)
        report(d, "busy timeout", RL_CHECK_FAIL, "cannot read: %s", s->base.err);
    else if (v <= 0)
        report(d, "busy timeout", RL_CHECK_WARN,
               "0 ms: a write meeting another fails at once with RL_EBUSY");
    else
        report(d, "busy timeout", v == s->busy_timeout_ms ? RL_CHECK_OK : RL_CHECK_WARN,
               "%lld ms%s", (long long)v,
               v == s->busy_timeout_ms ? "" : ", not the configured value");
}

static void doctor_schema(sq_store *s, doctor_ctx *d)
{
    char buf[64];
    int64_t v = 0;
    size_t nproblems = 0;
    sqlite3_stmt *q = NULL;
    int step;

    if (pragma_value(s, S_P_VERSION, buf, sizeof buf, &v) != RL_OK)
        report(d, "schema", RL_CHECK_FAIL, "cannot read the version: %s", s->base.err);
    else if (v != (int64_t)rl_schema_count)
        report(d, "schema", RL_CHECK_FAIL, "version %lld, this library's is %zu", (long long)v,
               rl_schema_count);
    else if (rl_store_sqlite_check_objects(s, (int)v) != RL_OK)
        report(d, "schema", RL_CHECK_FAIL, "%s", s->base.err);
    else
        report(d, "schema", RL_CHECK_OK, "version %lld, as this library's", (long long)v);

    /* quick_check reads every page, in a read transaction of its own: WAL
     * lets deciding processes write meanwhile. */
    if (rl_store_sqlite_stmt(s, S_P_CHECK, &q) != RL_OK) {
        report(d, "integrity", RL_CHECK_FAIL, "%s", s->base.err);
        return;
    }
    buf[0] = 0;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        if (nproblems++ == 0)
            rl_store_sqlite_text_col(q, 0, buf, sizeof buf);
    }
    if (step != SQLITE_DONE)
        report(d, "integrity", RL_CHECK_FAIL, "check failed: %s", sqlite3_errmsg(s->db));
    else if (nproblems == 1 && strcmp(buf, "ok") == 0)
        report(d, "integrity", RL_CHECK_OK, "quick_check: ok");
    else
        report(d, "integrity", RL_CHECK_FAIL, "quick_check: %zu problem(s), first: %s", nproblems,
               buf);
    sqlite3_reset(q);
}

/* Whether rl_open, opening file as this user does (with the writer's rule
 * if it may write the database), refuses it with RL_EPERM (fileperm.h);
 * msg then says why and what to do. */
static int doctor_refused(sq_store *s, const char *file, int writer, long db_owner, char *msg)
{
    char err[RL_ERRMSG_MAX];
    int rc = writer ? rl_fileperm_check_path(file, s->file_mode, s->shared_group, err)
                    : rl_fileperm_check_path_ro(file, s->file_mode, s->shared_group, db_owner, err);
    if (rc != RL_EPERM)
        return 0;
    memcpy(msg, err, sizeof err);
    return 1;
}

static void doctor_files(sq_store *s, doctor_ctx *d)
{
    static const char *const sides[] = { "-wal", "-shm", "-rlshm" };
    const char *path = sqlite3_db_filename(s->db, "main");
    char side[4200], issues[400];
    struct stat db, st;
    struct statfs sf;
    size_t i, o = 0;
    int status = RL_CHECK_OK;
    char refused[RL_ERRMSG_MAX] = "", msg[RL_ERRMSG_MAX];
    int writer;

    if (!path || !*path || stat(path, &db) != 0) {
        report(d, "permissions", RL_CHECK_FAIL, "cannot stat the database: %s",
               path && *path ? strerror(errno) : "no file name");
        return;
    }
    writer = access(path, W_OK) == 0;
    if (db.st_mode & (S_IROTH | S_IWOTH))
        report(d, "permissions", RL_CHECK_FAIL,
               "mode %04o: every user of the machine may %s it (chmod o-rwx %s)",
               (unsigned)(db.st_mode & 07777), db.st_mode & S_IWOTH ? "write" : "read", path);
    else if (doctor_refused(s, path, writer, -1, msg))
        report(d, "permissions", RL_CHECK_FAIL, "rl_open refuses it (RL_EPERM): %s", msg);
    else
        report(d, "permissions", RL_CHECK_OK, "mode %04o, owner %u:%u",
               (unsigned)(db.st_mode & 07777), (unsigned)db.st_uid, (unsigned)db.st_gid);

    /* SQLite gives -wal and -shm the database's mode and owner; when they
     * differ (created by root, by another umask) some users cannot open it. */
    issues[0] = 0;
    for (i = 0; i < sizeof sides / sizeof sides[0]; i++) {
        int n = 0;
        snprintf(side, sizeof side, "%s%s", path, sides[i]);
        if (stat(side, &st) != 0) {
            if (errno == ENOENT && i < 2) {
                n = snprintf(issues + o, sizeof issues - o,
                             "%s%s missing (read-only users "
                             "cannot open the database until a writer has)",
                             o ? "; " : "", sides[i]);
                if (status < RL_CHECK_WARN)
                    status = RL_CHECK_WARN;
            }
        } else if ((st.st_mode & 0777) != (db.st_mode & 0777) || st.st_uid != db.st_uid ||
                   st.st_gid != db.st_gid) {
            n = snprintf(issues + o, sizeof issues - o, "%s%s has mode %04o owner %u:%u",
                         o ? "; " : "", sides[i], (unsigned)(st.st_mode & 0777),
                         (unsigned)st.st_uid, (unsigned)st.st_gid);
            status = RL_CHECK_FAIL;
        }
        if (n > 0)
            o = (size_t)n < sizeof issues - o ? o + (size_t)n : sizeof issues - 1;
        /* the lock file is opened by writers only */
        if (!refused[0] && (writer || i < 2) &&
            doctor_refused(s, side, writer, (long)db.st_uid, msg))
            memcpy(refused, msg, sizeof msg);
    }
    if (refused[0])
        report(d, "side files", RL_CHECK_FAIL, "rl_open refuses it (RL_EPERM): %s", refused);
    else if (status == RL_CHECK_OK)
        report(d, "side files", status, "-wal, -shm and -rlshm match the database");
    else
        report(d, "side files", status, "%s%s", issues,
               status == RL_CHECK_FAIL ? " (the database: same mode and owner expected)" : "");

    if (statfs(path, &sf) != 0) {
        report(d, "filesystem", RL_CHECK_WARN, "cannot tell: %s", strerror(errno));
        return;
    }
    for (i = 0; i < sizeof fs_types / sizeof fs_types[0]; i++)
        if ((uint32_t)sf.f_type == fs_types[i].type)
            break;
    if (i == sizeof fs_types / sizeof fs_types[0])
        report(d, "filesystem", RL_CHECK_OK, "local (type 0x%x)", (unsigned)sf.f_type);
    else if (fs_types[i].network)
        report(d, "filesystem", RL_CHECK_WARN,
               "%s: WAL needs shared memory between processes, which does not work there; "
               "keep the database on a local disk",
               fs_types[i].name);
    else
        report(d, "filesystem", RL_CHECK_OK, "local (%s)", fs_types[i].name);
}

int rl_store_sqlite_doctor(rl_store *base, rl_check_fn fn, void *ctx)
{
    sq_store *s = (sq_store *)base;
    doctor_ctx d;
    d.fn = fn;
    d.ctx = ctx;
    d.stop = 0;
    doctor_pragmas(s, &d);
    doctor_schema(s, &d);
    doctor_files(s, &d);
    base->err[0] = 0; /* what failed is in the reports, not an error of the call */
    return d.stop;
}
