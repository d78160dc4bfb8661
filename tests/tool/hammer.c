/*
 * hammer.c - rlctl reset and prune on a database that 4 processes are
 * deciding on at that very moment: no decider may ever get an error, and no
 * decision of theirs may be lost.
 *
 *     hammer RLCTL [SECONDS]
 *
 * Four forked deciders call rl_allow as fast as they can on a limit too big
 * to refuse anything, counting what each admitted per key:
 *   - keep:W:J, their own keys, and keep:shared, everyone's: never selected
 *     by what rlctl runs, so their stored counters must equal the deciders'
 *     counts exactly;
 *   - h:W:J: reset over and over by `rlctl reset --match 'h:*'`, so their
 *     stored counters may only be at most the deciders' counts;
 *   - now and then an idle key p:G:N: the parent keeps making generations
 *     of PER_GEN keys last used an hour ago (full buckets), and deciders
 *     touch keys of the newest one while `rlctl prune --idle 10m` is
 *     deciding whether to remove them. Prune may take such a key before a
 *     decider touches it but never after, so each touched key must hold
 *     every touch (plus, if it was not pruned first, its one original
 *     decision); after a last prune, every key never touched must be gone.
 * Meanwhile the parent runs rlctl reset and prune in turns; every run must
 * succeed. Exit status 0 when everything holds; the reasons otherwise.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rl.h"

#define DECIDERS 4
#define KEYS 16    /* keep: and h: keys per decider */
#define GENS 256   /* generations of idle keys at most */
#define PER_GEN 32 /* idle keys per generation, made an hour ago */
#define TOUCH 7    /* a decider touches an idle key every TOUCH decisions */

typedef struct counts {
    int64_t errors;
    int64_t keep[KEYS], shared, h[KEYS];
    int64_t touched[GENS][PER_GEN];
} counts;

/* Shared by the parent and the deciders (MAP_SHARED before fork). */
typedef struct shared {
    atomic_int gen; /* the newest generation of idle keys; -1: none yet */
    counts c[DECIDERS];
} shared;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec;
}

static int64_t an_hour_ago(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec - RL_HOUR;
}

static int decide(rl *r, const char *key, int64_t *count, int64_t *errors)
{
    rl_result res;
    int rc = rl_allow(r, key, 1, &res);
    if (rc != RL_OK) {
        if (++*errors <= 3)
            fprintf(stderr, "hammer: decider: %s: %s\n", key, rl_errmsg(r));
        return -1;
    }
    if (res.allowed)
        ++*count;
    else if (++*errors <= 3)
        fprintf(stderr, "hammer: decider: %s refused\n", key);
    return 0;
}

/* One decider: its counts go to the parent through sh->c[w]. */
static void decider(const char *db, int w, int64_t until, shared *sh)
{
    counts *c = &sh->c[w];
    char key[64];
    int64_t n = 0;
    rl *r = NULL;
    if (rl_open(&r, db, NULL) != RL_OK) {
        fprintf(stderr, "hammer: decider: %s\n", rl_errmsg(r));
        _exit(2);
    }
    while (mono_ns() < until) {
        int j = (int)(n % KEYS), g;
        snprintf(key, sizeof key, "keep:%d:%d", w, j);
        decide(r, key, &c->keep[j], &c->errors);
        snprintf(key, sizeof key, "h:%d:%d", w, j);
        decide(r, key, &c->h[j], &c->errors);
        if (n % 8 == 0)
            decide(r, "keep:shared", &c->shared, &c->errors);
        if (n % TOUCH == 0 && (g = atomic_load(&sh->gen)) >= 0) {
            /* a different key of the newest generation each time, the
             * deciders spread over it, some keys left untouched */
            int k = (int)((n / TOUCH * 5 + w * 7) % (PER_GEN * 3 / 4));
            snprintf(key, sizeof key, "p:%03d:%02d", g, k);
            decide(r, key, &c->touched[g][k], &c->errors);
        }
        n++;
    }
    rl_close(r);
    _exit(0);
}

/* Runs rlctl --db DB ARGS... and returns the N of its "... N key(s)" line,
 * or -1 if it failed in any way. */
static int64_t rlctl(const char *bin, const char *db, const char *const *args)
{
    char cmd[4096], line[256];
    size_t o;
    int64_t n = -1;
    FILE *p;
    int i, status;
    o = (size_t)snprintf(cmd, sizeof cmd, "'%s' --db '%s'", bin, db);
    for (i = 0; args[i] && o < sizeof cmd; i++)
        o += (size_t)snprintf(cmd + o, sizeof cmd - o, " '%s'", args[i]);
    if (!(p = popen(cmd, "r")))
        return -1;
    while (fgets(line, sizeof line, p)) {
        char *k = strstr(line, " key(s)");
        if (k) {
            while (k > line && k[-1] >= '0' && k[-1] <= '9')
                k--;
            n = strtoll(k, NULL, 10);
        }
    }
    status = pclose(p);
    if (status != 0) {
        fprintf(stderr, "hammer: %s: status %d\n", cmd, status);
        return -1;
    }
    return n;
}

static int64_t stored(rl *r, const char *key, int *exists)
{
    rl_key_stats st;
    if (rl_stats(r, key, &st) != RL_OK) {
        fprintf(stderr, "hammer: stats %s: %s\n", key, rl_errmsg(r));
        *exists = -1;
        return -1;
    }
    *exists = st.exists;
    return st.allowed;
}

int main(int argc, char **argv)
{
    static const rl_limit huge[] = { RL_LIMIT("huge", NULL, (int64_t)1 << 40, RL_SECOND,
                                              (int64_t)1 << 40) };
    static const char *const reset_args[] = { "reset", "--match", "h:*", NULL };
    static const char *const prune_args[] = { "prune", "--idle", "10m", NULL };
    char dir[] = "/tmp/rl_hammer.XXXXXX", db[64], key[64], cmd[128];
    static counts all;
    rl_options o = RL_OPTIONS_INIT;
    shared *sh;
    pid_t pids[DECIDERS];
    int64_t until, resets = 0, pruned = 0, runs = 0, n;
    double seconds = argc > 2 ? atof(argv[2]) : 3.0;
    int64_t first_pruned = 0, untouched = 0;
    int i, j, w, g, gens = 0, failures = 0, exists;
    rl *r = NULL, *past = NULL;

    if (argc < 2) {
        fprintf(stderr, "usage: hammer RLCTL [SECONDS]\n");
        return 2;
    }
    if (!mkdtemp(dir)) {
        perror("hammer: mkdtemp");
        return 2;
    }
    snprintf(db, sizeof db, "%s/rl.db", dir);
    if (rl_open(&r, db, NULL) != RL_OK || rl_tier_set(r, "default", huge, 1) != RL_OK) {
        fprintf(stderr, "hammer: %s\n", rl_errmsg(r));
        return 2;
    }
    /* Idle keys are decided on "an hour ago": full buckets, long unused. */
    o.clock = an_hour_ago;
    if (rl_open(&past, db, &o) != RL_OK) {
        fprintf(stderr, "hammer: %s\n", rl_errmsg(past));
        return 2;
    }
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("hammer: mmap");
        return 2;
    }
    memset(sh, 0, sizeof *sh);
    atomic_store(&sh->gen, -1);

    until = mono_ns() + (int64_t)(seconds * 1e9);
    for (w = 0; w < DECIDERS; w++) {
        if ((pids[w] = fork()) < 0) {
            perror("hammer: fork");
            return 2;
        }
        if (pids[w] == 0) {
            rl_close(r); /* the parent's handles are not the child's */
            rl_close(past);
            decider(db, w, until, sh);
        }
    }
    /* rlctl, in turns, while they decide: each round a new generation of
     * idle keys that deciders start touching as prune looks at it */
    while (mono_ns() < until) {
        if (gens < GENS) {
            for (i = 0; i < PER_GEN; i++) {
                rl_result res;
                snprintf(key, sizeof key, "p:%03d:%02d", gens, i);
                if (rl_allow(past, key, 1, &res) != RL_OK || !res.allowed) {
                    fprintf(stderr, "hammer: %s\n", rl_errmsg(past));
                    failures++;
                }
            }
            atomic_store(&sh->gen, gens++);
        }
        if ((n = rlctl(argv[1], db, prune_args)) < 0)
            failures++;
        else
            pruned += n;
        if ((n = rlctl(argv[1], db, reset_args)) < 0)
            failures++;
        else
            resets += n;
        runs += 2;
    }
    rl_close(past);
    for (w = 0; w < DECIDERS; w++) {
        int status;
        if (waitpid(pids[w], &status, 0) != pids[w] || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            fprintf(stderr, "hammer: decider %d died (status %d)\n", w, status);
            failures++;
        }
        all.errors += sh->c[w].errors;
        all.shared += sh->c[w].shared;
        for (g = 0; g < GENS; g++)
            for (i = 0; i < PER_GEN; i++)
                all.touched[g][i] += sh->c[w].touched[g][i];
    }
    /* One prune more, with nobody deciding: whatever was never touched goes. */
    if ((n = rlctl(argv[1], db, prune_args)) < 0)
        failures++;
    else
        pruned += n;
    if (all.errors) {
        fprintf(stderr, "hammer: deciders got %lld error(s) or refusal(s)\n",
                (long long)all.errors);
        failures++;
    }

    /* keep: exact, key by key */
    for (w = 0; w < DECIDERS; w++)
        for (j = 0; j < KEYS; j++) {
            const counts *c = &sh->c[w];
            snprintf(key, sizeof key, "keep:%d:%d", w, j);
            if ((n = stored(r, key, &exists)) != c->keep[j]) {
                fprintf(stderr, "hammer: %s: stored %lld, decided %lld\n", key, (long long)n,
                        (long long)c->keep[j]);
                failures++;
            }
            all.keep[0] += c->keep[j];
            snprintf(key, sizeof key, "h:%d:%d", w, j);
            if ((n = stored(r, key, &exists)) > c->h[j]) {
                fprintf(stderr, "hammer: %s: stored %lld, more than decided %lld\n", key,
                        (long long)n, (long long)c->h[j]);
                failures++;
            }
        }
    if ((n = stored(r, "keep:shared", &exists)) != all.shared) {
        fprintf(stderr, "hammer: keep:shared: stored %lld, decided %lld\n", (long long)n,
                (long long)all.shared);
        failures++;
    }
    /* p: every touch kept; untouched keys pruned */
    for (g = 0, n = 0; g < gens; g++)
        for (i = 0; i < PER_GEN; i++) {
            int64_t v, t = all.touched[g][i];
            snprintf(key, sizeof key, "p:%03d:%02d", g, i);
            v = stored(r, key, &exists);
            if (t == 0) {
                untouched++;
                if (exists) {
                    fprintf(stderr, "hammer: %s: idle but not pruned\n", key);
                    failures++;
                }
            } else if (v < t || v > t + 1) {
                fprintf(stderr, "hammer: %s: stored %lld, touched %lld: a decision was lost\n", key,
                        (long long)v, (long long)t);
                failures++;
            } else {
                n++;
                first_pruned += v == t;
            }
        }
    if (resets == 0 || pruned < untouched) {
        fprintf(stderr, "hammer: too little done concurrently: %lld reset, %lld pruned\n",
                (long long)resets, (long long)pruned);
        failures++;
    }
    printf("hammer: %d deciders, %.1fs: %lld decisions on keep keys and %lld on keep:shared "
           "exact; %lld rlctl runs: %lld keys reset, %lld pruned; %d generations of idle keys: "
           "%lld touched and intact (%lld of them pruned before their first touch), %lld never "
           "touched and gone; %lld errors\n",
           DECIDERS, seconds, (long long)all.keep[0], (long long)all.shared, (long long)runs,
           (long long)resets, (long long)pruned, gens, (long long)n, (long long)first_pruned,
           (long long)untouched, (long long)all.errors);
    rl_close(r);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "hammer: could not remove %s\n", dir);
    return failures ? 1 : 0;
}
