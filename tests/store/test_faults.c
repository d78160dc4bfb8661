/*
 * test_faults.c - I/O faults injected under SQLite, the way SQLite's own
 * test suite does it: a VFS shim, made the default VFS, that fails the Nth
 * read, write, sync, lock, truncate, shared-memory map or open.
 *
 * For every N over a decision, a reset, a lease settle, the reset of a key
 * whose lease ended, a tier load and a schema migration,
 * the call either succeeds or returns a distinct store code (RL_EBUSY,
 * RL_ESTORE, RL_EFULL), the fail mode is honoured (closed: refused; open:
 * admitted with degraded = 1), and once the fault clears the database
 * passes PRAGMA integrity_check and holds the old state or the new one,
 * never a mix. A full disk (every write failing from N on) behaves the same
 * with RL_EFULL. Leaks are left to ASan and valgrind, which run this too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "rl.h"

/* ---- the shim ------------------------------------------------------------ */

static sqlite3_vfs *real_vfs;
static sqlite3_vfs shim_vfs;
static int fault_at;     /* fail the fault_at-th counted operation; 0: never */
static int fault_sticky; /* keep failing writes from then on (a full disk) */
static int fault_count;  /* counted operations since arming */
static int fault_hits;   /* failures injected */

typedef struct shim_file {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct in the same allocation */
} shim_file;

/* Counts one operation; returns non-zero when it must fail. */
static int fault(int is_write)
{
    if (!fault_at)
        return 0;
    fault_count++;
    if (fault_count == fault_at || (fault_sticky && is_write && fault_count > fault_at)) {
        fault_hits++;
        return 1;
    }
    return 0;
}

#define REAL(f) (((shim_file *)(f))->real)

static int x_close(sqlite3_file *f)
{
    int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
    return rc;
}

static int x_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    if (fault(0))
        return SQLITE_IOERR_READ;
    return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int x_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    if (fault(1))
        return fault_sticky ? SQLITE_FULL : SQLITE_IOERR_WRITE;
    return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}

static int x_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    if (fault(1))
        return SQLITE_IOERR_TRUNCATE;
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int x_sync(sqlite3_file *f, int flags)
{
    if (fault(1))
        return SQLITE_IOERR_FSYNC;
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int x_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int x_lock(sqlite3_file *f, int lock)
{
    if (fault(0))
        return SQLITE_IOERR_LOCK;
    return REAL(f)->pMethods->xLock(REAL(f), lock);
}

static int x_unlock(sqlite3_file *f, int lock)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}

static int x_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int x_fcntl(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int x_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int x_devchar(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int x_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp)
{
    if (fault(0))
        return SQLITE_IOERR_SHMMAP;
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, pp);
}

static int x_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    /* WAL mode locks through shared memory; only taking a lock can fail */
    if ((flags & SQLITE_SHM_LOCK) && fault(0))
        return SQLITE_IOERR_SHMLOCK;
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void x_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int x_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int x_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}

static int x_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods shim_io = {
    3,          x_close,       x_read,      x_write, x_truncate, x_sync,    x_size,
    x_lock,     x_unlock,      x_reserved,  x_fcntl, x_sector,   x_devchar, x_shm_map,
    x_shm_lock, x_shm_barrier, x_shm_unmap, x_fetch, x_unfetch,
};

static int x_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    shim_file *sf = (shim_file *)f;
    int rc;
    (void)vfs;
    sf->real = (sqlite3_file *)(sf + 1);
    memset(sf->real, 0, (size_t)real_vfs->szOsFile);
    f->pMethods = NULL;
    if (fault(0))
        return SQLITE_CANTOPEN;
    rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out);
    if (sf->real->pMethods)
        f->pMethods = &shim_io; /* xClose must run even when open failed */
    return rc;
}

static void install_shim(void)
{
    if (real_vfs)
        return;
    real_vfs = sqlite3_vfs_find(NULL);
    shim_vfs = *real_vfs;
    shim_vfs.zName = "rl_fault_shim";
    shim_vfs.szOsFile = (int)sizeof(shim_file) + real_vfs->szOsFile;
    shim_vfs.xOpen = x_open;
    assert_int_equal(sqlite3_vfs_register(&shim_vfs, 1), SQLITE_OK);
}

static void arm(int n, int sticky)
{
    fault_at = n;
    fault_sticky = sticky;
    fault_count = 0;
}

static void disarm(void)
{
    fault_at = 0;
}

/* ---- fixtures ------------------------------------------------------------ */

#define BURST 20
static const rl_limit limits[] = { RL_LIMIT("rpm", NULL, BURST, RL_HOUR, BURST) };
static const int64_t T0 = (int64_t)1700000000 * RL_SECOND;

static int64_t fixed_clock(void *ctx)
{
    (void)ctx;
    return T0; /* no refill: remaining + units admitted is always BURST */
}

typedef struct fx {
    char dir[64];
    char path[96];
    char yaml[96];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    install_shim();
    strcpy(f->dir, "/tmp/rl_test_faults.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/rl.db", f->dir);
    snprintf(f->yaml, sizeof f->yaml, "%s/t.yaml", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[128];
    disarm();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static rl *open_db(const fx *f, int fail_mode)
{
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    o.default_limits = limits;
    o.n_default_limits = 1;
    o.clock = fixed_clock;
    o.fail_mode = fail_mode;
    o.busy_timeout_ms = 200;
    if (rl_open(&r, f->path, &o) != RL_OK)
        fail_msg("open: %s", rl_errmsg(r));
    return r;
}

static void integrity_ok(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, "unix"), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);
}

static int is_store_code(int rc)
{
    return rc == RL_EBUSY || rc == RL_ESTORE || rc == RL_EFULL;
}

/* The key's bucket and counters agree: never a mix of old and new. */
static int64_t consistent_units(rl *r, const char *key)
{
    rl_key_stats st;
    assert_int_equal(rl_stats(r, key, &st), RL_OK);
    assert_int_equal(st.limits[0].remaining + st.units, BURST);
    assert_int_equal(st.allowed, st.units);
    return st.units;
}

/* ---- the loops ----------------------------------------------------------- */

static void decisions_under_faults(fx *f, int sticky, int fail_mode)
{
    rl_result res;
    int64_t before, after;
    int n, rc, faults = 0, seen_full = 0;
    rl *r = open_db(f, fail_mode);
    assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
    for (n = 1; n < 500; n++) {
        /* a fresh connection each time, so the decision reads from disk */
        rl_close(r);
        r = open_db(f, fail_mode);
        before = consistent_units(r, "k");
        rl_close(r);
        r = open_db(f, fail_mode);
        arm(n, sticky);
        rc = rl_allow(r, "k", 1, &res);
        disarm();
        if (rc == RL_OK && fault_hits == 0)
            break; /* N passed the last operation: every fault point was tried */
        fault_hits = 0;
        after = consistent_units(r, "k");
        if (rc == RL_OK) {
            assert_true(res.allowed); /* a fault SQLite recovered from */
            assert_int_equal(after, before + 1);
        } else {
            faults++;
            if (!is_store_code(rc))
                fail_msg("fault %d: unexpected %d: %s", n, rc, rl_errmsg(r));
            seen_full |= rc == RL_EFULL;
            assert_int_equal(res.allowed, fail_mode == RL_FAIL_OPEN);
            assert_int_equal(res.degraded, fail_mode == RL_FAIL_OPEN);
            assert_true(after == before || after == before + 1);
            /* and nothing stays locked: the same handle decides at once */
            if (rl_allow(r, "probe", 1, &res) != RL_OK)
                fail_msg("after fault %d: %s", n, rl_errmsg(r));
        }
        integrity_ok(f->path);
        if (before >= BURST - 2) { /* keep room in the bucket */
            assert_int_equal(rl_reset(r, "k"), RL_OK);
            assert_int_equal(rl_allow(r, "k", 1, &res), RL_OK);
        }
    }
    print_message("decision: %d fault points, %d failed calls%s\n", n - 1, faults,
                  sticky ? " (disk full)" : "");
    assert_true(n > 2 && n < 500);
    if (sticky)
        assert_true(seen_full);
    rl_close(r);
    integrity_ok(f->path);
}

static void test_decision_faults_fail_closed(void **state)
{
    decisions_under_faults(*state, 0, RL_FAIL_CLOSED);
}

static void test_decision_faults_fail_open(void **state)
{
    decisions_under_faults(*state, 0, RL_FAIL_OPEN);
}

static void test_decision_disk_full(void **state)
{
    decisions_under_faults(*state, 1, RL_FAIL_CLOSED);
}

static void test_reset_faults(void **state)
{
    fx *f = *state;
    rl_result res;
    rl_key_stats st;
    int n, rc;
    rl *r = open_db(f, RL_FAIL_CLOSED);
    for (n = 1; n < 500; n++) {
        assert_int_equal(rl_allow(r, "k", 3, &res), RL_OK);
        arm(n, 0);
        rc = rl_reset(r, "k");
        disarm();
        if (rc == RL_OK && fault_hits == 0)
            break;
        fault_hits = 0;
        integrity_ok(f->path);
        assert_int_equal(rl_stats(r, "k", &st), RL_OK);
        if (rc == RL_OK) {
            assert_false(st.exists);
        } else {
            assert_true(is_store_code(rc));
            /* old state whole, or gone whole */
            assert_true(!st.exists || st.limits[0].remaining + st.units == BURST);
            if (st.exists)
                assert_int_equal(rl_reset(r, "k"), RL_OK);
        }
    }
    print_message("reset: %d fault points\n", n - 1);
    assert_true(n > 2 && n < 500);
    rl_close(r);
}

/* The shared clock, not fixed_clock: so that lease calls go through group
 * commit (this process leads its own batch), as they do in production. */
static rl *open_real_clock(const fx *f)
{
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    o.default_limits = limits;
    o.n_default_limits = 1;
    o.busy_timeout_ms = 200;
    if (rl_open(&r, f->path, &o) != RL_OK)
        fail_msg("open: %s", rl_errmsg(r));
    return r;
}

static int64_t count_of(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    int64_t v;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, "unix"), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

static int64_t units_of(rl *r, const char *key)
{
    rl_key_stats st;
    assert_int_equal(rl_stats(r, key, &st), RL_OK);
    return st.units;
}

/* A lease settled (phase 0), and the key of a lease that ended reset
 * (phase 1), under every fault point. A settle that fails returns a store
 * code and leaves the lease and its units as they were, or (a commit that
 * reached the disk before its error) settled: never a mix, and a second
 * settle then gives RL_OK or RL_ENOTFOUND accordingly. A reset that fails
 * keeps the key with its tombstone and range of lease ids, or deletes all
 * three. */
static void test_lease_faults(void **state)
{
    static const rl_cost est = { "requests", 2 }, act = { "requests", 1 };
    fx *f = *state;
    rl_result res;
    rl_lease l;
    int n, rc, phase;
    rl *r = open_real_clock(f);
    for (phase = 0; phase < 2; phase++) {
        for (n = 1; n < 500; n++) {
            int64_t keys, leases, ids;
            if ((rc = rl_reset(r, "k")) != RL_OK && rc != RL_ENOTFOUND)
                fail_msg("phase %d, after fault %d: reset %d: %s", phase, n - 1, rc, rl_errmsg(r));
            assert_int_equal(rl_lease_begin(r, "k", &est, 1, RL_HOUR, &l, &res), RL_OK);
            assert_true(res.allowed);
            if (phase == 1)
                assert_int_equal(rl_lease_settle(r, &l, &act, 1), RL_OK);
            arm(n, 0);
            rc = phase == 0 ? rl_lease_settle(r, &l, &act, 1) : rl_reset(r, "k");
            disarm();
            if (rc == RL_OK && fault_hits == 0)
                break;
            fault_hits = 0;
            integrity_ok(f->path);
            if (rc != RL_OK && !is_store_code(rc))
                fail_msg("fault %d: unexpected %d: %s", n, rc, rl_errmsg(r));
            if (phase == 0) {
                int64_t u = units_of(r, "k");
                int again = rl_lease_settle(r, &l, &act, 1);
                if (u == 2) /* not settled: the lease is still there */
                    assert_int_equal(again, RL_OK);
                else if (u == 1) /* settled */
                    assert_int_equal(again, RL_ENOTFOUND);
                else
                    fail_msg("fault %d: %lld units, neither 2 nor 1", n, (long long)u);
                if (rc == RL_OK)
                    assert_int_equal(u, 1);
                continue;
            }
            keys = count_of(f->path, "SELECT count(*) FROM rl_keys WHERE key = 'k'");
            leases = count_of(f->path, "SELECT count(*) FROM rl_lease_rows WHERE key = 'k'");
            ids = count_of(f->path, "SELECT count(*) FROM rl_lease_ids WHERE key = 'k'");
            if (rc == RL_OK)
                assert_int_equal(keys, 0);
            assert_true((keys == 0 && leases == 0 && ids == 0) ||
                        (keys == 1 && leases == 1 && ids == 1));
        }
        print_message("lease %s: %d fault points\n", phase ? "key reset" : "settle", n - 1);
        assert_true(n > 2 && n < 500);
    }
    rl_close(r);
}

static void write_tiers(const char *path, int burst)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp,
            "version: 1\ndefault_tier: t\ntiers:\n  t:\n    limits:\n"
            "      - { name: rpm, rate: 60/min, burst: %d }\n"
            "      - { name: daily, rate: 1000/day }\n"
            "  other: { unlimited: true }\n"
            "keys:\n  - { match: \"x:*\", tier: other }\n",
            burst);
    fclose(fp);
}

static int tier_burst(void *ctx, const rl_tier_info *t)
{
    if (strcmp(t->name, "t") == 0)
        *(int64_t *)ctx = t->limits[0].burst;
    return 0;
}

static void test_tier_load_faults(void **state)
{
    fx *f = *state;
    int64_t burst;
    int n, rc, version = 10;
    rl *r = open_db(f, RL_FAIL_CLOSED);
    write_tiers(f->yaml, version);
    assert_int_equal(rl_load_tiers(r, f->yaml), RL_OK);
    for (n = 1; n < 500; n++) {
        write_tiers(f->yaml, version + 1);
        arm(n, 0);
        rc = rl_load_tiers(r, f->yaml);
        disarm();
        if (rc == RL_OK && fault_hits == 0)
            break;
        fault_hits = 0;
        integrity_ok(f->path);
        burst = 0;
        assert_int_equal(rl_tiers_list(r, tier_burst, &burst), RL_OK);
        if (rc == RL_OK) {
            assert_int_equal(burst, version + 1);
            version++;
        } else {
            assert_true(is_store_code(rc));
            assert_int_equal(burst, version); /* the old policy, whole */
        }
    }
    print_message("tier load: %d fault points\n", n - 1);
    assert_true(n > 2 && n < 500);
    rl_close(r);
}

/* A database at schema 1 upgraded under faults: afterwards it is at 1 or
 * at the latest version, never in between, and always opens. */
static void test_migration_faults(void **state)
{
    fx *f = *state;
    sqlite3 *db;
    int n, rc, v;
    rl *r;
    for (n = 1; n < 2000; n++) {
        unlink(f->path);
        r = open_db(f, RL_FAIL_CLOSED);
        rl_close(r);
        assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, "unix"), SQLITE_OK);
        assert_int_equal(
            sqlite3_exec(
                db,
                "DROP TABLE rl_rules; DROP TABLE rl_lease_rows; DROP TABLE rl_lease_ids;"
                "ALTER TABLE rl_keys DROP COLUMN gmark; DROP TABLE rl_limit_sets;"
                "DELETE FROM rl_meta WHERE name IN ('default_tier', 'fail_mode', 'lease_ranges');"
                "PRAGMA user_version = 1",
                NULL, NULL, NULL),
            SQLITE_OK);
        sqlite3_close(db);
        arm(n, 0);
        r = NULL;
        {
            rl_options o = RL_OPTIONS_INIT;
            o.default_limits = limits;
            o.n_default_limits = 1;
            rc = rl_open(&r, f->path, &o);
        }
        disarm();
        rl_close(r);
        if (rc == RL_OK && fault_hits == 0)
            break;
        fault_hits = 0;
        if (rc != RL_OK && !is_store_code(rc) && rc != RL_ECORRUPT)
            fail_msg("fault %d: unexpected %d", n, rc);
        integrity_ok(f->path);
        assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, "unix"), SQLITE_OK);
        {
            sqlite3_stmt *q;
            assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL),
                             SQLITE_OK);
            assert_int_equal(sqlite3_step(q), SQLITE_ROW);
            v = sqlite3_column_int(q, 0);
            sqlite3_finalize(q);
        }
        sqlite3_close(db);
        assert_true(v == 1 || v == 6);
        r = open_db(f, RL_FAIL_CLOSED); /* and it upgrades cleanly afterwards */
        rl_close(r);
    }
    print_message("migration: %d fault points\n", n - 1);
    assert_true(n > 5 && n < 2000);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_decision_faults_fail_closed),
        T(test_decision_faults_fail_open),
        T(test_decision_disk_full),
        T(test_reset_faults),
        T(test_lease_faults),
        T(test_tier_load_faults),
        T(test_migration_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
