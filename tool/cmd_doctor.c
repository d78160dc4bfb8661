/*
 * cmd_doctor.c - `rlctl doctor`: is this database healthy, and set up the
 * way several processes need it?
 *
 * The checks are librl's (rl_doctor): journal mode, synchronous, busy
 * timeout, schema version, integrity, file permissions, filesystem, stored
 * policy, bucket states and leases that are reclaimable (expired, or their
 * owner died: a warning, fixed by `rlctl prune`). The database is opened
 * read-only, so a doctor
 * never changes what it examines and works for users who may only read it.
 * A database that cannot even be opened (damaged, another application's,
 * newer than this rlctl) is itself a failed check, not a crash.
 */
#include "common.h"
#include "json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char use[] =
    "usage: rlctl doctor [--json]\n"
    "\n"
    "Checks the database: journal mode (wal), synchronous (NORMAL or FULL),\n"
    "busy timeout, schema version, integrity (PRAGMA quick_check), file\n"
    "permissions (not readable or writable by every user; -wal and -shm like\n"
    "the database; no file that opening it for writing would refuse as one\n"
    "another user could have planted, with the fix), filesystem (warns on\n"
    "NFS, SMB, 9P or FUSE, where WAL's shared memory does not work), stored\n"
    "tiers and rules, bucket states and assigned tiers, and open leases (a\n"
    "warning for those that expired or whose owner died: they keep slots\n"
    "taken until 'rlctl prune' reclaims them). Exit status 0 when nothing\n"
    "failed (warnings are printed but do not fail), 1 when a check failed.\n"
    "\n"
    "Options:\n"
    "  --json  print one JSON object instead of a table\n";

typedef struct check_row {
    char name[32];
    int status;
    char *detail;
} check_row;

typedef struct doctor_ctx {
    check_row *v;
    size_t n, cap;
    int nomem;
} doctor_ctx;

static int add_check(void *ctx, const char *check, int status, const char *detail)
{
    doctor_ctx *d = ctx;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        check_row *nv = realloc(d->v, cap * sizeof *nv);
        if (!nv) {
            d->nomem = 1;
            return 1;
        }
        d->v = nv;
        d->cap = cap;
    }
    snprintf(d->v[d->n].name, sizeof d->v[d->n].name, "%s", check);
    d->v[d->n].status = status;
    if (!(d->v[d->n].detail = strdup(detail))) {
        d->nomem = 1;
        return 1;
    }
    d->n++;
    return 0;
}

static const char *status_word(int status)
{
    return status == RL_CHECK_OK ? "ok" : status == RL_CHECK_WARN ? "warn" : "FAIL";
}

static const char *status_color(int status)
{
    return status == RL_CHECK_OK ? "32" : status == RL_CHECK_WARN ? "33" : "1;31";
}

static void print_human(const doctor_ctx *d, size_t failed, size_t warned)
{
    size_t i, w = strlen("CHECK");
    for (i = 0; i < d->n; i++)
        if (strlen(d->v[i].name) > w)
            w = strlen(d->v[i].name);
    printf("%s%-*s  %-6s  %s%s\n", rlctl_sgr("1"), (int)w, "CHECK", "STATUS", "DETAIL",
           rlctl_sgr("0"));
    /* Colour wraps the padded word, so columns line up with or without it. */
    /* Details quote paths, keys and messages: shown through rlctl_text. */
    for (i = 0; i < d->n; i++) {
        char *shown = rlctl_text_dup(d->v[i].detail);
        printf("%-*s  %s%-6s%s  %s\n", (int)w, d->v[i].name,
               rlctl_sgr(status_color(d->v[i].status)), status_word(d->v[i].status), rlctl_sgr("0"),
               shown ? shown : "(out of memory)");
        free(shown);
    }
    printf("\n%zu check(s): %zu failed, %zu warning(s)\n", d->n, failed, warned);
}

static int print_json(const doctor_ctx *d, const char *db, size_t failed, size_t warned)
{
    rlctl_json j;
    size_t i;
    rlctl_json_init(&j, stdout);
    rlctl_json_object(&j);
    rlctl_json_kstring(&j, "database", db);
    rlctl_json_kbool(&j, "ok", failed == 0);
    rlctl_json_kint(&j, "failed", (int64_t)failed);
    rlctl_json_kint(&j, "warnings", (int64_t)warned);
    rlctl_json_key(&j, "checks");
    rlctl_json_array(&j);
    for (i = 0; i < d->n; i++) {
        rlctl_json_object(&j);
        rlctl_json_kstring(&j, "check", d->v[i].name);
        rlctl_json_kstring(&j, "status",
                           d->v[i].status == RL_CHECK_OK     ? "ok"
                           : d->v[i].status == RL_CHECK_WARN ? "warn"
                                                             : "fail");
        rlctl_json_kstring(&j, "detail", d->v[i].detail);
        rlctl_json_end(&j);
    }
    rlctl_json_end(&j);
    rlctl_json_end(&j);
    return rlctl_json_done(&j) == 0 ? RLCTL_OK : rlctl_error("internal error: bad JSON");
}

int rlctl_cmd_doctor(const rlctl_ctx *ctx, int argc, char **argv)
{
    rl_options o;
    doctor_ctx d = { NULL, 0, 0, 0 };
    char path[4096];
    const char *db = ctx->db;
    int json = 0, npos, rc, drc;
    const rlctl_opt opts[] = {
        { "--json", RLCTL_OPT_FLAG, &json },
        { NULL, 0, NULL },
    };
    size_t i, failed = 0, warned = 0;
    struct stat sb;
    rl *r = NULL;

    if ((rc = rlctl_parse_opts(argc, argv, opts, use, &npos)) != RLCTL_OK)
        return rc;
    if (npos > 0)
        return rlctl_usage_error(argv[0], "unexpected argument '%s'", argv[1]);
    if (!db) {
        if (rl_default_path(path, sizeof path) != RL_OK)
            return rlctl_error("no database path: set RL_DB or HOME, or give --db");
        db = path;
    }
    /* A missing file is a mistyped path, not a sick database (a server
     * address, redis://..., has no file to look for). */
    if (!strstr(db, "://") && stat(db, &sb) != 0)
        return rlctl_error("%s: %s", db, strerror(errno));
    rlctl_options(ctx, &o);
    o.flags |= RL_OPEN_READONLY;
    if (rl_open(&r, db, &o) != RL_OK) {
        if (!r) {
            rc = rlctl_error("out of memory");
            goto out;
        }
        drc = add_check(&d, "open", RL_CHECK_FAIL, rl_errmsg(r));
    } else {
        drc = rl_doctor(r, add_check, &d);
    }
    if (d.nomem) {
        rc = rlctl_error("out of memory");
        goto out;
    }
    if (drc != RL_OK) {
        rc = rlctl_error("%s", rl_errmsg(r));
        goto out;
    }
    for (i = 0; i < d.n; i++) {
        failed += d.v[i].status == RL_CHECK_FAIL;
        warned += d.v[i].status == RL_CHECK_WARN;
    }
    if (json)
        rc = print_json(&d, db, failed, warned);
    else
        print_human(&d, failed, warned);
    if (rc == RLCTL_OK && failed)
        rc = RLCTL_NO;
out:
    for (i = 0; i < d.n; i++)
        free(d.v[i].detail);
    free(d.v);
    rl_close(r);
    return rc;
}
