/*
 * bench.c - rl's benchmark: options, the list of cases, one fresh database
 * per case in a mkdtemp directory (removed at the end), and main().
 *
 *   bench [--quick | --seconds S] [--only SUBSTR] [--dir DIR] [--json]
 *
 * Prints figures, never pass/fail; see bench/README.md for how to read them.
 */
#include "bench.h"

#include <dirent.h>
#include <rl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define K100 BENCH_NKEYS_MAX

/* The order of the table. Labels are what --only matches and what
 * report.c looks up for the ratios. */
static const bench_case cases[] = {
    { "bare-upsert/1p/1key", "bare-upsert", W_BARE, 0, 1, 1, RL_BUSY_SQLITE },
    { "bare-upsert/1p/100k", "bare-upsert", W_BARE, 0, 1, K100, RL_BUSY_SQLITE },
    { "memory/1p/1key", "memory", W_RL, 1, 1, 1, BUSY_NA },
    { "memory/1p/100k", "memory", W_RL, 1, 1, K100, BUSY_NA },
    { "sqlite/1p/1key/lock", "sqlite", W_RL, 0, 1, 1, RL_BUSY_LOCK },
    { "sqlite/1p/100k/lock", "sqlite", W_RL, 0, 1, K100, RL_BUSY_LOCK },
    { "sqlite/4p/1key/lock", "sqlite", W_RL, 0, 4, 1, RL_BUSY_LOCK },
    { "sqlite/4p/1key/sqlite", "sqlite", W_RL, 0, 4, 1, RL_BUSY_SQLITE },
    { "sqlite/4p/100k/lock", "sqlite", W_RL, 0, 4, K100, RL_BUSY_LOCK },
    { "bare-upsert/4p/1key", "bare-upsert", W_BARE, 0, 4, 1, RL_BUSY_SQLITE },
};
#define NCASES (sizeof cases / sizeof cases[0])

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench [--quick | --seconds S] [--only SUBSTR] [--dir DIR] [--json]\n"
            "  --seconds S   measuring time per case (default 2)\n"
            "  --quick       0.3 s per case\n"
            "  --only SUBSTR run only the cases whose label contains SUBSTR\n"
            "                (labels: bare-upsert/1p/1key, sqlite/4p/1key/lock, ...)\n"
            "  --dir DIR     where to make the temporary directory (default /tmp)\n"
            "  --json        one JSON object instead of the table\n");
}

/* Removes every file in dir (the database, -wal, -shm, -rllock). */
static void empty_dir(const char *dir)
{
    char path[4400];
    struct dirent *e;
    DIR *d = opendir(dir);
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

int main(int argc, char **argv)
{
    bench_result res[NCASES];
    bench_env env;
    const char *only = NULL, *base = "/tmp";
    char dir[4096], path[4200];
    double secs = 2.0;
    int json = 0, progress, i;
    size_t k;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            secs = 0.3;
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            char *end;
            secs = strtod(argv[++i], &end);
            if (*end || !(secs > 0 && secs <= 600)) {
                fprintf(stderr, "bench: --seconds wants a number in (0, 600]\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            base = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }

    snprintf(dir, sizeof dir, "%s/rlbench.XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror("bench: mkdtemp");
        return 1;
    }
    bench_keys_init();
    bench_env_fill(&env, dir, secs);
    progress = !json && isatty(2);

    /* Untimed warm-up (CPU clocks, page cache, the allocator), discarded,
     * so the first case of the table is not measured cold. */
    snprintf(path, sizeof path, "%s/warmup.db", dir);
    (void)bench_run(&cases[0], path, secs < 0.3 ? secs : 0.3, &res[0]);
    empty_dir(dir);

    for (k = 0; k < NCASES; k++) {
        memset(&res[k], 0, sizeof res[k]);
        if (only && !strstr(cases[k].label, only))
            continue;
        if (progress) {
            fprintf(stderr, "running %-24s\r", cases[k].label);
            fflush(stderr);
        }
        snprintf(path, sizeof path, "%s/case%02zu.db", dir, k + 1);
        (void)bench_run(&cases[k], path, secs, &res[k]);
        if (!res[k].ran && !res[k].err[0])
            snprintf(res[k].err, sizeof res[k].err, "did not run");
        empty_dir(dir);
    }
    if (progress)
        fprintf(stderr, "%-40s\r", "");
    rmdir(dir);

    if (json)
        bench_report_json(&env, cases, res, NCASES);
    else
        bench_report_text(&env, cases, res, NCASES);
    return 0;
}
