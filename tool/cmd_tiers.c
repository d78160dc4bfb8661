/*
 * cmd_tiers.c - `rlctl tiers SUBCOMMAND`: the tiers in force (list, show),
 * check a YAML tiers file (validate) and make it the database's policy
 * (load, saying which tiers it added, removed or changed).
 *
 * validate prints errors compiler-style, "FILE:LINE:COL: message", without
 * the "rlctl: " prefix, so editors and CI annotations can jump to the spot
 * (with --json, the same text in the "error" of each file).
 * list --names prints bare names for shell completion.
 */
#include "common.h"
#include "json.h"

#include <stdlib.h>
#include <string.h>

static const char use[] =
    "usage: rlctl tiers list [--json | --names]\n"
    "       rlctl tiers show [--json] TIER\n"
    "       rlctl tiers validate [--json] FILE...\n"
    "       rlctl tiers load FILE\n"
    "\n"
    "Subcommands:\n"
    "  list      every tier of the database with its limits\n"
    "  show      one tier: its limits and the key rules that give it\n"
    "  validate  check tiers files without touching any database\n"
    "  load      replace every tier and key rule of the database with FILE's\n"
    "\n"
    "The format is described in docs/tiers.md.\n";

static const char use_list[] =
    "usage: rlctl tiers list [--json | --names]\n"
    "\n"
    "Lists the tiers of the database with their limits, which one is the\n"
    "default, and how many key rules give each.\n"
    "\n"
    "Options:\n"
    "  --json   print one JSON object (tiers, rules, default tier)\n"
    "  --names  print the names only, one per line\n";

static const char use_show[] =
    "usage: rlctl tiers show [--json] TIER\n"
    "\n"
    "Shows TIER: whether it is the default, the key rules that give it, and\n"
    "each limit's resource, rate and burst.\n"
    "\n"
    "Options:\n"
    "  --json  print one JSON object\n";

static const char use_validate[] =
    "usage: rlctl tiers validate [--json] FILE...\n"
    "\n"
    "Checks each YAML tiers FILE without opening a database. Prints\n"
    "'FILE: ok', or 'FILE:LINE:COL: message' on stderr for the first error\n"
    "in the file; exit status 1 if a file is invalid, 3 if it cannot be read.\n"
    "\n"
    "Options:\n"
    "  --json  print one JSON object instead, with every verdict in it:\n"
    "          {\"files\": [{\"file\", \"valid\", \"error\"}...], \"valid\"}, where a\n"
    "          file's \"valid\" is null when it cannot be read and \"error\" is\n"
    "          'FILE:LINE:COL: message' or null; the exit status is the same\n";

static const char use_load[] =
    "usage: rlctl tiers load FILE\n"
    "\n"
    "Replaces every tier, key rule and setting of the database with those of\n"
    "the YAML tiers FILE, in one transaction: all of it or, on an error,\n"
    "nothing. Every process using the database applies it from its next\n"
    "decision. Prints the tiers added, removed and changed, and whether the\n"
    "default tier or the key rules changed. Exit status 1 if FILE is invalid.\n";

/* ---- reading the policy ---- */

typedef struct rule {
    char *match;
    char tier[RL_NAME_MAX];
} rule;

typedef struct policy {
    rl_tier_info *tiers;
    size_t n, cap;
    rule *rules;
    size_t nrules, caprules;
    int nomem;
} policy;

static int add_tier(void *ctx, const rl_tier_info *t)
{
    policy *p = ctx;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        rl_tier_info *nt = realloc(p->tiers, cap * sizeof *nt);
        if (!nt) {
            p->nomem = 1;
            return 1;
        }
        p->tiers = nt;
        p->cap = cap;
    }
    p->tiers[p->n++] = *t;
    return 0;
}

static int add_rule(void *ctx, const char *match, const char *tier)
{
    policy *p = ctx;
    if (p->nrules == p->caprules) {
        size_t cap = p->caprules ? p->caprules * 2 : 16;
        rule *nr = realloc(p->rules, cap * sizeof *nr);
        if (!nr) {
            p->nomem = 1;
            return 1;
        }
        p->rules = nr;
        p->caprules = cap;
    }
    if (!(p->rules[p->nrules].match = strdup(match))) {
        p->nomem = 1;
        return 1;
    }
    snprintf(p->rules[p->nrules].tier, RL_NAME_MAX, "%s", tier);
    p->nrules++;
    return 0;
}

static void policy_free(policy *p)
{
    size_t i;
    for (i = 0; i < p->nrules; i++)
        free(p->rules[i].match);
    free(p->rules);
    free(p->tiers);
    memset(p, 0, sizeof *p);
}

/* Tiers (by name, as rl_tiers_list gives them) and rules in order. Returns
 * librl's code, or 1 when memory ran out; p is empty on failure. */
static int policy_fetch(rl *r, policy *p)
{
    int rc;
    memset(p, 0, sizeof *p);
    if ((rc = rl_tiers_list(r, add_tier, p)) == RL_OK)
        rc = rl_rules_list(r, add_rule, p);
    if (rc != RL_OK) {
        rc = p->nomem ? 1 : rc;
        policy_free(p);
    }
    return rc;
}

/* policy_fetch, saying why it failed (RLCTL_ERROR). */
static int policy_read(rl *r, policy *p)
{
    int rc = policy_fetch(r, p);
    if (rc == RL_OK)
        return RLCTL_OK;
    return rc > 0 ? rlctl_error("out of memory") : rlctl_error("%s", rl_errmsg(r));
}

static const rl_tier_info *find_tier(const policy *p, const char *name)
{
    size_t i;
    for (i = 0; i < p->n; i++)
        if (strcmp(p->tiers[i].name, name) == 0)
            return &p->tiers[i];
    return NULL;
}

static const char *default_of(const policy *p)
{
    size_t i;
    for (i = 0; i < p->n; i++)
        if (p->tiers[i].is_default)
            return p->tiers[i].name;
    return NULL;
}

/* "rps 5/s burst 10, daily 1000/day", or "unlimited". */
static void limits_text(const rl_tier_info *t, char *buf, size_t len)
{
    size_t i, o = 0;
    buf[0] = 0;
    if (t->unlimited || t->n_limits == 0) {
        snprintf(buf, len, "unlimited");
        return;
    }
    for (i = 0; i < t->n_limits && o < len; i++) {
        char one[200];
        int n;
        rlctl_format_limit(t->limits[i].name, t->limits[i].resource, t->limits[i].count,
                           t->limits[i].period_ns, t->limits[i].burst, t->limits[i].algorithm, one,
                           sizeof one);
        n = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", one);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

static size_t rules_of(const policy *p, const char *tier)
{
    size_t i, n = 0;
    for (i = 0; i < p->nrules; i++)
        n += strcmp(p->rules[i].tier, tier) == 0;
    return n;
}

static void json_limits(rlctl_json *j, const rl_tier_info *t)
{
    size_t i;
    rlctl_json_key(j, "limits");
    rlctl_json_array(j);
    for (i = 0; i < t->n_limits; i++) {
        char rate[64];
        rlctl_format_rate(t->limits[i].count, t->limits[i].period_ns, rate, sizeof rate);
        rlctl_json_object(j);
        rlctl_json_kstring(j, "name", t->limits[i].name);
        rlctl_json_kstring(j, "resource", t->limits[i].resource);
        rlctl_json_kstring(j, "kind",
                           rlctl_limit_kind(t->limits[i].period_ns, t->limits[i].algorithm));
        rlctl_json_kstring(j, "rate", rate);
        rlctl_json_kint(j, "count", t->limits[i].count);
        rlctl_json_kint(j, "period_ns", t->limits[i].period_ns);
        rlctl_json_kint(j, "burst", t->limits[i].burst);
        rlctl_json_end(j);
    }
    rlctl_json_end(j);
}

static void json_tier_rules(rlctl_json *j, const policy *p, const char *tier)
{
    size_t i;
    rlctl_json_key(j, "rules");
    rlctl_json_array(j);
    for (i = 0; i < p->nrules; i++)
        if (strcmp(p->rules[i].tier, tier) == 0)
            rlctl_json_string(j, p->rules[i].match);
    rlctl_json_end(j);
}

static int tiers_list(const rlctl_ctx *ctx, int argc, char **argv)
{
    static const char *const head[] = { "TIER", "DEFAULT", "RULES", "LIMITS" };
    int json = 0, names = 0, npos, rc;
    const rlctl_opt opts[] = {
        { "--json", RLCTL_OPT_FLAG, &json },
        { "--names", RLCTL_OPT_FLAG, &names },
        { NULL, 0, NULL },
    };
    rlctl_table t;
    policy p;
    size_t i;
    rl *r = NULL;

    rlctl_table_init(&t, 4, 1u << 2);
    t.header = 1;
    memset(&p, 0, sizeof p);
    if ((rc = rlctl_parse_opts(argc, argv, opts, use_list, &npos)) != RLCTL_OK)
        return rc;
    if (npos > 0)
        return rlctl_usage_error(argv[0], "unexpected argument '%s'", argv[1]);
    if (json && names)
        return rlctl_usage_error(argv[0], "--json and --names exclude each other");
    if ((rc = rlctl_open(ctx, 1, &r)) != RLCTL_OK)
        return rc;
    if ((rc = policy_read(r, &p)) != RLCTL_OK)
        goto out;
    if (names) {
        char name[4 * RL_NAME_MAX];
        for (i = 0; i < p.n; i++)
            printf("%s\n", rlctl_text(p.tiers[i].name, name, sizeof name));
    } else if (json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_object(&j);
        rlctl_json_kstring(&j, "default_tier", default_of(&p));
        rlctl_json_key(&j, "tiers");
        rlctl_json_array(&j);
        for (i = 0; i < p.n; i++) {
            rlctl_json_object(&j);
            rlctl_json_kstring(&j, "name", p.tiers[i].name);
            rlctl_json_kbool(&j, "default", p.tiers[i].is_default);
            rlctl_json_kbool(&j, "unlimited", p.tiers[i].unlimited);
            json_limits(&j, &p.tiers[i]);
            json_tier_rules(&j, &p, p.tiers[i].name);
            rlctl_json_end(&j);
        }
        rlctl_json_end(&j);
        rlctl_json_key(&j, "rules");
        rlctl_json_array(&j);
        for (i = 0; i < p.nrules; i++) {
            rlctl_json_object(&j);
            rlctl_json_kstring(&j, "match", p.rules[i].match);
            rlctl_json_kstring(&j, "tier", p.rules[i].tier);
            rlctl_json_end(&j);
        }
        rlctl_json_end(&j);
        rlctl_json_end(&j);
        if (rlctl_json_done(&j) != 0)
            rc = rlctl_error("internal error: bad JSON");
    } else if (p.n == 0) {
        printf("no tiers (load a tiers file with 'rlctl tiers load FILE')\n");
    } else {
        if ((rc = rlctl_table_add(&t, head)) != RLCTL_OK)
            goto out;
        for (i = 0; i < p.n; i++) {
            char lim[RL_MAX_LIMITS * 200], nrules[24];
            const char *cells[4];
            limits_text(&p.tiers[i], lim, sizeof lim);
            snprintf(nrules, sizeof nrules, "%zu", rules_of(&p, p.tiers[i].name));
            cells[0] = p.tiers[i].name;
            cells[1] = p.tiers[i].is_default ? "yes" : "";
            cells[2] = nrules;
            cells[3] = lim;
            if ((rc = rlctl_table_add(&t, cells)) != RLCTL_OK)
                goto out;
        }
        rlctl_table_print(&t, stdout);
    }
out:
    rlctl_table_free(&t);
    policy_free(&p);
    rl_close(r);
    return rc;
}

static int tiers_show(const rlctl_ctx *ctx, int argc, char **argv)
{
    static const char *const head[] = { "LIMIT", "RESOURCE", "KIND", "RATE", "BURST" };
    int json = 0, npos, rc;
    const rlctl_opt opts[] = {
        { "--json", RLCTL_OPT_FLAG, &json },
        { NULL, 0, NULL },
    };
    const rl_tier_info *ti;
    char name[4 * RL_NAME_MAX], shown[RLCTL_TEXT_MAX];
    rlctl_table t;
    policy p;
    size_t i;
    rl *r = NULL;

    rlctl_table_init(&t, 5, 1u << 4);
    t.header = 1;
    memset(&p, 0, sizeof p);
    if ((rc = rlctl_parse_opts(argc, argv, opts, use_show, &npos)) != RLCTL_OK)
        return rc;
    if (npos != 1)
        return rlctl_usage_error(argv[0], "%s", npos ? "takes one TIER" : "needs a TIER");
    if ((rc = rlctl_open(ctx, 1, &r)) != RLCTL_OK)
        return rc;
    if ((rc = policy_read(r, &p)) != RLCTL_OK)
        goto out;
    if (!(ti = find_tier(&p, argv[1]))) {
        rc = rlctl_error("no such tier: '%s'", argv[1]);
        goto out;
    }
    if (json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_object(&j);
        rlctl_json_kstring(&j, "name", ti->name);
        rlctl_json_kbool(&j, "default", ti->is_default);
        rlctl_json_kbool(&j, "unlimited", ti->unlimited);
        json_limits(&j, ti);
        json_tier_rules(&j, &p, ti->name);
        rlctl_json_end(&j);
        if (rlctl_json_done(&j) != 0)
            rc = rlctl_error("internal error: bad JSON");
        goto out;
    }
    printf("tier     %s\n", rlctl_text(ti->name, name, sizeof name));
    printf("default  %s\n", ti->is_default ? "yes (keys no rule matches get it)" : "no");
    printf("rules   ");
    if (rules_of(&p, ti->name) == 0)
        printf(" none");
    for (i = 0; i < p.nrules; i++)
        if (strcmp(p.rules[i].tier, ti->name) == 0)
            printf(" '%s'", rlctl_text(p.rules[i].match, shown, sizeof shown));
    printf("\n\n");
    if (ti->unlimited || ti->n_limits == 0) {
        printf("no limits: tier '%s' admits everything\n", name);
        goto out;
    }
    if ((rc = rlctl_table_add(&t, head)) != RLCTL_OK)
        goto out;
    for (i = 0; i < ti->n_limits; i++) {
        char rate[64], burst[24];
        const char *cells[5];
        rlctl_format_rate(ti->limits[i].count, ti->limits[i].period_ns, rate, sizeof rate);
        snprintf(burst, sizeof burst, "%lld", (long long)ti->limits[i].burst);
        cells[0] = ti->limits[i].name;
        cells[1] = ti->limits[i].resource;
        cells[2] = rlctl_limit_kind(ti->limits[i].period_ns, ti->limits[i].algorithm);
        cells[3] = rate;
        /* a concurrency limit has no burst, and a window's is its count */
        cells[4] = ti->limits[i].period_ns && ti->limits[i].algorithm == RL_ALGO_GCRA ? burst : "-";
        if ((rc = rlctl_table_add(&t, cells)) != RLCTL_OK)
            goto out;
    }
    rlctl_table_print(&t, stdout);
out:
    rlctl_table_free(&t);
    policy_free(&p);
    rl_close(r);
    return rc;
}

static int tiers_validate(const rlctl_ctx *ctx, int argc, char **argv)
{
    char err[1024], shown[4 * sizeof err];
    int npos, rc, i, vrc, json = 0, all_valid = 1;
    const rlctl_opt opts[] = { { "--json", RLCTL_OPT_FLAG, &json }, { NULL, 0, NULL } };
    rlctl_json j;
    (void)ctx;
    if ((rc = rlctl_parse_opts(argc, argv, opts, use_validate, &npos)) != RLCTL_OK)
        return rc;
    if (npos == 0)
        return rlctl_usage_error(argv[0], "needs a FILE");
    if (json) {
        /* Every verdict in the document, nothing on stderr: a script reads
         * one place. The statuses stay those of the text output. */
        rlctl_json_init(&j, stdout);
        rlctl_json_object(&j);
        rlctl_json_key(&j, "files");
        rlctl_json_array(&j);
    }
    for (i = 1; i <= npos; i++) {
        err[0] = '\0';
        vrc = rl_validate_tiers(argv[i], err, sizeof err);
        all_valid &= vrc == RL_OK;
        if (json) {
            rlctl_json_object(&j);
            rlctl_json_kstring(&j, "file", argv[i]);
            rlctl_json_key(&j, "valid");
            if (vrc == RL_OK || vrc == RL_ECONFIG)
                rlctl_json_bool(&j, vrc == RL_OK);
            else /* unreadable: no verdict on the content */
                rlctl_json_null(&j);
            rlctl_json_kstring(&j, "error", vrc == RL_OK ? NULL : err[0] ? err : rl_strerror(vrc));
            rlctl_json_end(&j);
            if (vrc == RL_ECONFIG && rc == RLCTL_OK)
                rc = RLCTL_NO;
            else if (vrc != RL_OK && vrc != RL_ECONFIG)
                rc = RLCTL_ERROR;
        } else if (vrc == RL_OK) {
            printf("%s: ok\n", rlctl_text(argv[i], shown, sizeof shown));
        } else if (vrc == RL_ECONFIG) {
            fprintf(stderr, "%s\n", rlctl_text(err, shown, sizeof shown));
            if (rc == RLCTL_OK)
                rc = RLCTL_NO;
        } else { /* unreadable: not a verdict on the file's content */
            rc = rlctl_error("%s", err[0] ? err : rl_strerror(vrc));
        }
    }
    if (json) {
        rlctl_json_end(&j);
        rlctl_json_kbool(&j, "valid", all_valid);
        rlctl_json_end(&j);
        if (rlctl_json_done(&j) != 0)
            rc = rlctl_error("internal error: bad JSON");
    }
    return rc;
}

static int same_tier(const rl_tier_info *a, const rl_tier_info *b)
{
    size_t i;
    if (a->unlimited != b->unlimited || a->n_limits != b->n_limits)
        return 0;
    for (i = 0; i < a->n_limits; i++)
        if (strcmp(a->limits[i].name, b->limits[i].name) != 0 ||
            strcmp(a->limits[i].resource, b->limits[i].resource) != 0 ||
            a->limits[i].count != b->limits[i].count ||
            a->limits[i].period_ns != b->limits[i].period_ns ||
            a->limits[i].burst != b->limits[i].burst ||
            a->limits[i].algorithm != b->limits[i].algorithm)
            return 0;
    return 1;
}

static int same_rules(const policy *a, const policy *b)
{
    size_t i;
    if (a->nrules != b->nrules)
        return 0;
    for (i = 0; i < a->nrules; i++)
        if (strcmp(a->rules[i].match, b->rules[i].match) != 0 ||
            strcmp(a->rules[i].tier, b->rules[i].tier) != 0)
            return 0;
    return 1;
}

/* What a load changed, tier by tier, from the policy before and after. */
static void print_changes(const policy *before, const policy *after)
{
    const char *d0 = default_of(before), *d1 = default_of(after);
    char was[RL_MAX_LIMITS * 200], now[RL_MAX_LIMITS * 200];
    size_t i, changes = 0;
    for (i = 0; i < after->n; i++) {
        const rl_tier_info *t = &after->tiers[i], *old = find_tier(before, t->name);
        limits_text(t, now, sizeof now);
        if (!old) {
            rlctl_line("added tier '%s': %s", t->name, now);
            changes++;
        } else if (!same_tier(old, t)) {
            limits_text(old, was, sizeof was);
            rlctl_line("changed tier '%s': %s -> %s", t->name, was, now);
            changes++;
        }
    }
    for (i = 0; i < before->n; i++)
        if (!find_tier(after, before->tiers[i].name)) {
            rlctl_line("removed tier '%s'", before->tiers[i].name);
            changes++;
        }
    if ((d0 == NULL) != (d1 == NULL) || (d0 && strcmp(d0, d1) != 0)) {
        rlctl_line("default tier: %s -> %s", d0 ? d0 : "none", d1 ? d1 : "none");
        changes++;
    }
    if (!same_rules(before, after)) {
        printf("key rules changed: %zu before, %zu now\n", before->nrules, after->nrules);
        changes++;
    }
    if (changes == 0)
        printf("no tier changed\n");
}

static int tiers_load(const rlctl_ctx *ctx, int argc, char **argv)
{
    policy before, after;
    char damaged[512] = "";
    int npos, rc, lrc;
    rl *r = NULL;

    memset(&before, 0, sizeof before);
    memset(&after, 0, sizeof after);
    if ((rc = rlctl_parse_opts(argc, argv, NULL, use_load, &npos)) != RLCTL_OK)
        return rc;
    if (npos != 1)
        return rlctl_usage_error(argv[0], "%s", npos ? "takes one FILE" : "needs a FILE");
    if ((rc = rlctl_open(ctx, 0, &r)) != RLCTL_OK)
        return rc;
    /* A damaged policy (RL_ECORRUPT) is what a whole new one repairs: it
     * is replaced without being read, and the changes cannot be told. */
    if ((lrc = policy_fetch(r, &before)) == RL_ECORRUPT) {
        snprintf(damaged, sizeof damaged, "%s", rl_errmsg(r));
    } else if (lrc != RL_OK) {
        rc = lrc > 0 ? rlctl_error("out of memory") : rlctl_error("%s", rl_errmsg(r));
        goto out;
    }
    if ((lrc = rl_load_tiers(r, argv[1])) != RL_OK) {
        rlctl_error("%s", rl_errmsg(r));
        rc = lrc == RL_ECONFIG ? RLCTL_NO : RLCTL_ERROR;
        goto out;
    }
    /* Read back from the database, not the file: what is now in force.
     * (Another load in between would show as its changes too.) */
    if ((rc = policy_read(r, &after)) != RLCTL_OK)
        goto out;
    rlctl_line("loaded %s: %zu tier(s), %zu key rule(s)", argv[1], after.n, after.nrules);
    if (damaged[0])
        rlctl_line("replaced a damaged policy (%s)", damaged);
    else
        print_changes(&before, &after);
out:
    policy_free(&before);
    policy_free(&after);
    rl_close(r);
    return rc;
}

typedef struct tiers_sub {
    const char *name;
    int (*fn)(const rlctl_ctx *ctx, int argc, char **argv);
} tiers_sub;

static const tiers_sub subs[] = {
    { "list", tiers_list },
    { "show", tiers_show },
    { "validate", tiers_validate },
    { "load", tiers_load },
};
#define NSUBS (sizeof subs / sizeof subs[0])

int rlctl_cmd_tiers(const rlctl_ctx *ctx, int argc, char **argv)
{
    const char *names[NSUBS + 1];
    const char *s;
    char full[64];
    size_t i;

    if (argc < 2) {
        fputs(use, stderr);
        return RLCTL_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(use, stdout);
        return RLCTL_OK;
    }
    for (i = 0; i < NSUBS; i++) {
        if (strcmp(argv[1], subs[i].name) == 0) {
            /* The subcommand's argv[0] names it in full in messages. */
            snprintf(full, sizeof full, "tiers %s", subs[i].name);
            argv[1] = full;
            return subs[i].fn(ctx, argc - 1, argv + 1);
        }
        names[i] = subs[i].name;
    }
    names[NSUBS] = NULL;
    if (argv[1][0] == '-') {
        fprintf(stderr, "rlctl: tiers: unknown option '%s' (see 'rlctl tiers --help')\n", argv[1]);
        return RLCTL_USAGE;
    }
    if ((s = rlctl_suggest(argv[1], names)))
        fprintf(stderr, "rlctl: unknown command 'tiers %s' (did you mean 'tiers %s'?)\n", argv[1],
                s);
    else
        fprintf(stderr, "rlctl: unknown command 'tiers %s' (see 'rlctl tiers --help')\n", argv[1]);
    return RLCTL_USAGE;
}
