/*
 * jdb.c - JSON through a private SQLite connection (see jdb.h): the
 * in-memory connection and the statement cache that rl_export and
 * rl_import write and read their documents with.
 *
 * Guarantees: no statement is prepared twice in one call, none outlives
 * its connection, and a failed prepare leaves the slot empty and the
 * error in the handle's buffer.
 */
#include "jdb.h"

#include "store.h"

#include <string.h>

int rl__export_fail(rl__export_jdb *j, const char *what)
{
    int rc = sqlite3_errcode(j->db);
    return rl_seterr(j->err, (rc & 0xff) == SQLITE_NOMEM ? RL_ENOMEM : RL_ESTORE, "%s: %s", what,
                     sqlite3_errmsg(j->db));
}

int rl__export_jdb_open(rl__export_jdb *j, const char *const *sql, char *err)
{
    memset(j, 0, sizeof *j);
    j->err = err;
    j->sql = sql;
    if (sqlite3_open_v2(":memory:", &j->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return j->db ? rl__export_fail(j, "JSON engine")
                     : rl_seterr(err, RL_ENOMEM, "out of memory");
    return RL_OK;
}

void rl__export_jdb_close(rl__export_jdb *j)
{
    int i;
    for (i = 0; i < RL_EXPORT_JDB_MAX; i++)
        sqlite3_finalize(j->st[i]);
    sqlite3_close_v2(j->db);
    j->db = NULL;
}

/* Prepared on first use, then reset and reused (the lazy cache of
 * store/sqlite.c). */
sqlite3_stmt *rl__export_stmt(rl__export_jdb *j, int i)
{
    if (!j->st[i] && sqlite3_prepare_v3(j->db, j->sql[i], -1, SQLITE_PREPARE_PERSISTENT, &j->st[i],
                                        NULL) != SQLITE_OK) {
        rl__export_fail(j, "JSON engine");
        return NULL;
    }
    sqlite3_reset(j->st[i]);
    sqlite3_clear_bindings(j->st[i]);
    return j->st[i];
}
