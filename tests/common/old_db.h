/*
 * old_db.h - a database file as an older librl left it, made from one
 * this library wrote: every format 3 state rewritten in format 2 (what
 * libraries before schema version 5 wrote), the table of slot sets
 * dropped, and user_version set back. Tests of migrations start from it,
 * so that the rows they migrate are ones an older library could have
 * written. Header-only, for the tests that link SQLite and the engine.
 */
#ifndef RL_TEST_OLD_DB_H
#define RL_TEST_OLD_DB_H

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* Schema 3's rl_leases in place of schema 6's tables, holding their open
 * leases under their ids (AUTOINCREMENT's high mark at the highest). */
#define OLD_DB_LEASES                                                                      \
    "CREATE TABLE rl_leases (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL,"     \
    " created INTEGER NOT NULL, expires INTEGER NOT NULL, pid INTEGER NOT NULL,"           \
    " pstart INTEGER NOT NULL, body BLOB NOT NULL);"                                       \
    "CREATE INDEX rl_leases_key ON rl_leases (key);"                                       \
    "INSERT INTO rl_leases (id, key, created, expires, pid, pstart, body) SELECT id, key," \
    " created, expires, pid, pstart, body FROM rl_lease_rows WHERE length(body) > 0;"      \
    "DROP TABLE rl_lease_rows; DROP TABLE rl_lease_ids;"                                   \
    "DELETE FROM rl_meta WHERE name = 'lease_ranges';"

/* Rewrites the states of path's rl_keys in format 2, drops rl_limit_sets,
 * moves the leases back (OLD_DB_LEASES) and runs `then` (more SQL of the
 * downgrade, e.g. dropping later columns, and the PRAGMA user_version). Returns 0, or -1 on any failure. */
static inline int test_old_db(const char *path, const char *then)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL, *u = NULL, *g = NULL;
    int rc = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT key, state FROM rl_keys WHERE substr(state, 1, 1) = x'03'",
                           -1, &q, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "UPDATE rl_keys SET state = ?2 WHERE key = ?1", -1, &u, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT body FROM rl_limit_sets WHERE fp = ?1", -1, &g, NULL) !=
            SQLITE_OK)
        goto out;
    while (sqlite3_step(q) == SQLITE_ROW) {
        const unsigned char *blob = sqlite3_column_blob(q, 1);
        size_t len = (size_t)sqlite3_column_bytes(q, 1);
        unsigned char buf[RL_STATE_MAX];
        rl_slotset set;
        rl_state st;
        uint64_t fp;
        int have = 0;
        if (rl_state_fp3(blob, len, &fp) != RL_OK)
            goto out;
        sqlite3_bind_int64(g, 1, (sqlite3_int64)fp);
        if (sqlite3_step(g) == SQLITE_ROW)
            have = rl_slotset_decode(&set, fp, sqlite3_column_blob(g, 0),
                                     (size_t)sqlite3_column_bytes(g, 0)) == RL_OK;
        sqlite3_reset(g);
        if (rl_state_decode3(&st, blob, len, have ? &set : NULL) != RL_OK)
            goto out;
        len = rl_state_encode(&st, buf);
        sqlite3_bind_text(u, 1, (const char *)sqlite3_column_text(q, 0), -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(u, 2, buf, (int)len, SQLITE_TRANSIENT);
        if (sqlite3_step(u) != SQLITE_DONE)
            goto out;
        sqlite3_reset(u);
    }
    sqlite3_finalize(q);
    q = NULL;
    if (sqlite3_exec(db, "DROP TABLE rl_limit_sets;" OLD_DB_LEASES, NULL, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(db, then, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto out;
    rc = 0;
out:
    sqlite3_finalize(q);
    sqlite3_finalize(u);
    sqlite3_finalize(g);
    sqlite3_close(db);
    return rc;
}

#endif
