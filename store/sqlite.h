/*
 * sqlite.h - the SQLite store's private interface, shared by its files:
 *
 *   sqlite.c         opening: files and permissions, connection settings,
 *                    schema migrations and checks, the statement cache, the
 *                    store's rl_store_ops
 *   sqlite_tx.c      transactions, and the glue to group commit (lock.c)
 *   sqlite_rows.c    rows and the policy
 *   sqlite_keys.c    leases, listing keys, import (administration)
 *   sqlite_doctor.c  health checks (rl_doctor)
 *
 * Nothing here is seen outside store/: core/ knows the store only through
 * rl_store_ops and rl_store_sqlite_open (store.h). The rules every file
 * keeps are those at the top of sqlite.c.
 */
#ifndef RL_STORE_SQLITE_H
#define RL_STORE_SQLITE_H

#include "lock.h"
#include "store.h"

#include <sqlite3.h>

/* The migrations of schema/, embedded at build time (rl_schema.c). */
extern const char *const rl_schema_migrations[];
extern const size_t rl_schema_count;

/* The cached statements, by index into sqlite.c's SQL texts. The four
 * listing orders follow S_LIST_KEY in RL_SORT_* order. */
enum {
    S_BEGIN_W,
    S_BEGIN_R,
    S_COMMIT,
    S_ROLLBACK,
    S_GET,
    S_INS,
    S_UPD,
    S_DEL,
    S_VER,
    S_BUMP,
    S_TOTALS,
    S_LIST_KEY,
    S_LIST_ALLOWED,
    S_LIST_REFUSED,
    S_LIST_SEEN,
    S_TIERS,
    S_LIMITS,
    S_RULES,
    S_SETTING,
    S_SET_SETTING,
    S_TIER_INS,
    S_LIMIT_INS,
    S_TIER_DEL,
    S_LIMITS_DEL,
    S_TIERS_CLEAR,
    S_LIMITS_CLEAR,
    S_RULES_CLEAR,
    S_RULE_INS,
    S_LEASE_INS,
    S_LEASE_GET,
    S_LEASE_DEL,
    S_LEASE_TOMB,
    S_LEASE_LAST,
    S_LEASE_OWNER,
    S_LEASE_IDS_INS,
    S_LEASE_FORGET,
    S_LEASE_IDS_DEL,
    S_LEASES_KEY,
    S_LEASES_ALL,
    S_PAGE,
    S_KEYS_CLEAR,
    S_LEASES_CLEAR,
    S_LEASE_IDS_CLEAR,
    S_P_JOURNAL,
    S_P_SYNC,
    S_P_BUSY,
    S_P_VERSION,
    S_P_CHECK,
    S_GROUP_MARK,
    S_SET_GET,
    S_SET_INS,
    S_COUNT
};

/* A slot set (store.h) in the store's cache; pending: read or inserted in
 * the write transaction still open, dropped unless it commits (a read
 * transaction sees only committed sets). */
typedef struct sq_set {
    rl_slotset set;
    int pending;
} sq_set;

#define RL_SQ_SETS 16

typedef struct sq_store {
    rl_store base;
    sqlite3 *db;
    rl_lock *lock; /* NULL: read-only, or RL_BUSY_SQLITE */
    int readonly;
    int busy_timeout_ms;
    int durability;         /* RL_DURABILITY_*, for the doctor's synchronous check */
    unsigned int file_mode; /* rl_options.file_mode, for fileperm.h's checks */
    int shared_group;       /* RL_OPEN_SHARED_GROUP */
    int locked;             /* holds lock */
    int leading;            /* holds lock as a group-commit leader: group_end unlocks */
    int in_txn;
    int txn_write; /* the open transaction is a write (sqlite_state.c's cache) */
    sqlite3_stmt *st[S_COUNT];
    sq_set sets[RL_SQ_SETS]; /* sqlite_state.c */
    size_t nsets, next_set;
} sq_store;

/* The steps of opening (sqlite.c) at which a test build calls
 * rl__lock_hook (lock.h), as it does at the lock protocol's steps, so that
 * a test stops an opener at an exact point of a race with another process.
 * They are numbered past the lock's (enum rl_lock_step), below 32 (a
 * test's plan keeps steps as bits of an unsigned). */
enum rl_open_step {
    RL_STEP_OPEN_READ = 16, /* read the mode and version with no lock, before deciding
                             * whether to take it */
    RL_STEP_OPEN_LOCKED,    /* took the lock to set the file up, before reading it again */
    RL_STEP_OPEN_SWITCH,    /* under the lock, found the file not in WAL mode: before
                             * switching it */
    RL_STEP_OPEN_BUSY,      /* the switch found the database locked: before trying again */
    RL_STEP_OPEN_MIGRATE    /* under the lock, found the schema old: before migrating */
};

/* ---- sqlite.c: statements and errors ------------------------------------- */

/* Maps an SQLite result code to an rl code and a one-line message
 * "what: SQLite's message" in the handle's buffer; returns the code. */
int rl_store_sqlite_fail(sq_store *s, int rc, const char *what);
/* Statement i, prepared on first use and kept (reset it after use). */
int rl_store_sqlite_stmt(sq_store *s, int i, sqlite3_stmt **out);
/* Runs statement i, which returns no rows, with what is bound to it. */
int rl_store_sqlite_run(sq_store *s, int i, const char *what);
/* Column col of the current row as text into buf ("" for NULL). */
void rl_store_sqlite_text_col(sqlite3_stmt *q, int col, char *buf, size_t len);
/* RL_OK if the schema is exactly what version v of the migrations
 * creates, else RL_ECORRUPT saying what is not rl's. */
int rl_store_sqlite_check_objects(sq_store *s, int v);

/* ---- sqlite_tx.c ------------------------------------------------------------ */

int rl_store_sqlite_begin(rl_store *base, int write);
int rl_store_sqlite_commit(rl_store *base);
void rl_store_sqlite_rollback(rl_store *base);
int rl_store_sqlite_group_join(rl_store *base, rl_group_req *req);
size_t rl_store_sqlite_group_take(rl_store *base, uint64_t sig, rl_group_req **batch, size_t max);
void rl_store_sqlite_group_end(rl_store *base);
int rl_store_sqlite_slot_epoch(rl_store *base, uint32_t *epoch);
void rl_store_sqlite_slot_wait(rl_store *base, uint32_t seen, int64_t ns);
void rl_store_sqlite_slot_notify(rl_store *base);
/* For rl_lock_on_recover: whether a dead leader's batch committed. */
int rl_store_sqlite_resolve(void *ctx, const char *key, uint64_t mark);

/* ---- sqlite_rows.c ---------------------------------------------------------- */

int rl_store_sqlite_row_get(rl_store *base, const char *key, rl_row *row, int64_t *version);
int rl_store_sqlite_row_put(rl_store *base, const char *key, const rl_row *row);
int rl_store_sqlite_row_delete(rl_store *base, const char *key);
int rl_store_sqlite_policy_version(rl_store *base, int64_t *version);
int rl_store_sqlite_policy_get(rl_store *base, rl_policy *p);
int rl_store_sqlite_policy_put(rl_store *base, const rl_policy *p);
int rl_store_sqlite_tier_put(rl_store *base, const rl_tier *t);
int rl_store_sqlite_tier_delete(rl_store *base, const char *name);

/* ---- sqlite_keys.c ---------------------------------------------------------- */

int rl_store_sqlite_lease_put(rl_store *base, rl_lease_rec *rec);
int rl_store_sqlite_lease_get(rl_store *base, int64_t id, rl_lease_rec *rec);
int rl_store_sqlite_lease_delete(rl_store *base, const char *key, int64_t id);
/* After key's row went: its tombstone (when it is all the key has) and the
 * range of ids it was drawn from go too, so that a key deleted leaves
 * nothing behind; its next lease draws a new range, above every id issued
 * (sqlite_keys.c). Inside the write transaction that deleted the row. */
int rl_store_sqlite_lease_forget(sq_store *s, const char *key);
int rl_store_sqlite_leases_each(rl_store *base, const char *key, rl_lease_fn fn, void *ctx);
int rl_store_sqlite_keys_list(rl_store *base, const char *match, int sort, size_t limit,
                              rl_row_fn fn, void *ctx);
int rl_store_sqlite_totals(rl_store *base, rl_totals *t);
int rl_store_sqlite_keys_page(rl_store *base, const char *after, const char *match, size_t limit,
                              rl_row_fn fn, void *ctx);
int rl_store_sqlite_state_clear(rl_store *base);
int rl_store_sqlite_lease_restore(rl_store *base, const rl_lease_rec *rec);

/* ---- sqlite_state.c --------------------------------------------------------- */

/* A state read from the file (blob, len bytes) into row->state as core/
 * reads it: formats 1 and 2 as they are, format 3 as format 2; one that
 * cannot be read as a byte no decoder accepts. RL_OK, or the store's
 * failure to read the slot set. */
int rl_store_sqlite_state_in(sq_store *s, const unsigned char *blob, size_t len, rl_row *row);
/* What row_put writes for row->state: *out and *len, format 3 in buf
 * (RL_STATE3_WORST bytes) when it is no longer than core's blob, else
 * core's blob. May record the state's slot set. */
int rl_store_sqlite_state_out(sq_store *s, const rl_row *row, unsigned char *buf,
                              const unsigned char **out, size_t *len);
/* Records a slot set (INSERT OR IGNORE: a fingerprint keeps its first). */
int rl_store_sqlite_set_put(sq_store *s, const rl_slotset *set);
/* At the end of a transaction: sets cached during it are kept only if it
 * committed. */
void rl_store_sqlite_sets_end(sq_store *s, int committed);

/* ---- sqlite_doctor.c -------------------------------------------------------- */

int rl_store_sqlite_doctor(rl_store *base, rl_check_fn fn, void *ctx);

#endif
