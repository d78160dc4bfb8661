/*
 * demo.c - four processes share one rate limit through one database file.
 *
 * The main job of the README's quick start: it loads the example tiers
 * (config/tiers.example.yaml), forks 4 workers that call rl_allow as fast as
 * they can for a few seconds on a handful of keys, then shows the per-key
 * counts with `rlctl stats` and checks that, for every key, what was
 * admitted never exceeded burst + rate x elapsed.
 *
 *   demo [TIERS.yaml] [SECONDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rl.h"

static const char *const keys[] = { "user:alice", "user:bob", "user:admin-root", "ip:10.0.0.7" };
#define NKEYS (sizeof keys / sizeof keys[0])
#define NWORKERS 4

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Each worker opens its own handle (a handle must not cross fork) and
 * hammers random keys; the database, not the workers, keeps the count. */
static int worker(const char *db, int id, double seconds)
{
    rl *r = NULL;
    rl_result res;
    double end = mono() + seconds;
    unsigned seed = (unsigned)id * 7919u + 1;
    long admitted = 0, refused = 0;
    if (rl_open(&r, db, NULL) != RL_OK) {
        fprintf(stderr, "worker %d: %s\n", id, rl_errmsg(r));
        rl_close(r);
        return 1;
    }
    while (mono() < end) {
        const char *key = keys[rand_r(&seed) % NKEYS];
        if (rl_allow(r, key, 1, &res) != RL_OK) {
            fprintf(stderr, "worker %d: %s\n", id, rl_errmsg(r));
            rl_close(r);
            return 1;
        }
        if (res.allowed)
            admitted++;
        else
            refused++;
    }
    printf("worker %d (pid %d): %ld admitted, %ld refused\n", id, (int)getpid(), admitted, refused);
    rl_close(r);
    return 0;
}

/* Admitted units of one key against the tightest bound its limits allow. */
static int check_key(rl *r, const char *key)
{
    rl_key_stats st;
    size_t i;
    int ok = 1;
    if (rl_stats(r, key, &st) != RL_OK) {
        fprintf(stderr, "demo: %s\n", rl_errmsg(r));
        return 0;
    }
    for (i = 0; i < st.n_limits; i++) {
        const rl_limit_stats *l = &st.limits[i];
        int64_t elapsed = st.last_seen_ns - st.first_seen_ns;
        long long bound = (long long)(l->burst + (__int128)l->count * elapsed / l->period_ns + 1);
        char rate[32];
        rl_format_rate(l->count, l->period_ns, rate, sizeof rate);
        printf("  %-16s tier %-9s limit %-6s %9s burst %-5lld admitted %6lld <= bound %6lld  %s\n",
               key, st.tier, l->name, rate, (long long)l->burst, (long long)st.units, bound,
               st.units <= bound ? "ok" : "EXCEEDED");
        ok &= st.units <= bound;
    }
    if (st.n_limits == 0)
        printf("  %-16s tier %-9s unlimited: admitted %lld\n", key, st.tier, (long long)st.units);
    return ok;
}

int main(int argc, char **argv)
{
    const char *tiers = argc > 1 ? argv[1] : RL_SOURCE_DIR "/config/tiers.example.yaml";
    double seconds = argc > 2 ? atof(argv[2]) : 3.0;
    char dir[] = "/tmp/rl-demo.XXXXXX", db[64], cmd[256];
    rl_options o = RL_OPTIONS_INIT;
    rl *r = NULL;
    pid_t pids[NWORKERS];
    size_t k;
    int i, status, ok = 1;

    if (!mkdtemp(dir)) {
        perror("demo: mkdtemp");
        return 2;
    }
    snprintf(db, sizeof db, "%s/rl.db", dir);
    o.tiers_file = tiers;
    if (rl_open(&r, db, &o) != RL_OK) {
        fprintf(stderr, "demo: %s\n", rl_errmsg(r));
        rl_close(r);
        return 2;
    }
    rl_close(r);
    printf("database %s, tiers from %s\n%d workers for %.1f s on %zu keys...\n", db, tiers,
           NWORKERS, seconds, NKEYS);
    fflush(stdout);
    for (i = 0; i < NWORKERS; i++) {
        if ((pids[i] = fork()) == 0)
            _exit(worker(db, i, seconds));
        if (pids[i] < 0) {
            perror("demo: fork");
            return 2;
        }
    }
    for (i = 0; i < NWORKERS; i++)
        if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) || WEXITSTATUS(status))
            ok = 0;

    printf("\n$ rlctl --db %s stats\n", db);
    fflush(stdout);
    snprintf(cmd, sizeof cmd, "'%s' --db '%s' stats", RLCTL_PATH, db);
    if (system(cmd) != 0)
        ok = 0;

    printf("\nDid the shared limits hold? (admitted <= burst + rate x elapsed + 1)\n");
    if (rl_open(&r, db, NULL) != RL_OK) {
        fprintf(stderr, "demo: %s\n", rl_errmsg(r));
        ok = 0;
    } else {
        for (k = 0; k < NKEYS; k++)
            ok &= check_key(r, keys[k]);
    }
    rl_close(r);
    printf("\n%s\n",
           ok ? "demo: every limit held across the 4 processes" : "demo: FAILED (see above)");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "demo: could not remove %s\n", dir);
    return ok ? 0 : 1;
}
