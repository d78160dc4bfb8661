/*
 * jdb.h - private to export/: JSON through a private SQLite connection,
 * shared by export.c (writing) and import.c (reading). Nothing outside
 * export/ includes it.
 *
 * Guarantees:
 *   - the connection is in-memory and belongs to one rl_export or rl_import
 *     call: it never touches a database file or the handle's store;
 *   - each user passes its own table of SQL text, so the statements a file
 *     runs are written next to the code that runs them; each is prepared
 *     on first use, then reset and reused for the rest of the call (the
 *     lazy cache of store/sqlite.c);
 *   - every failure is written to the handle's error buffer, as RL_ENOMEM
 *     when SQLite ran out of memory and RL_ESTORE otherwise.
 */
#ifndef RL_EXPORT_JDB_H
#define RL_EXPORT_JDB_H

#include <sqlite3.h>

/* Statements one connection can hold: the length of a user's table. */
#define RL_EXPORT_JDB_MAX 16

typedef struct rl__export_jdb {
    sqlite3 *db;
    const char *const *sql; /* the user's statements, by index */
    sqlite3_stmt *st[RL_EXPORT_JDB_MAX];
    char *err; /* the handle's error buffer (RL_ERRMSG_MAX bytes) */
} rl__export_jdb;

/* Opens j's in-memory connection for the statements of sql, a table of at
 * most RL_EXPORT_JDB_MAX (each user checks its length with a static
 * assertion); errors go to err. j needs rl__export_jdb_close whatever this
 * returns. */
int rl__export_jdb_open(rl__export_jdb *j, const char *const *sql, char *err);
void rl__export_jdb_close(rl__export_jdb *j);
/* Statement i, reset and with no bindings; NULL (error set) if it cannot be
 * prepared. */
sqlite3_stmt *rl__export_stmt(rl__export_jdb *j, int i);
/* Sets j->err to "what: SQLite's message" and returns its rl code. */
int rl__export_fail(rl__export_jdb *j, const char *what);

#endif
