/*
 * agent_workers.c - the main demo: agent workers sharing one model account
 * through guards.
 *
 * N forked workers (4 by default) call a simulated model for a few seconds:
 * one-shot "ask" calls and "stream" calls whose answer comes in chunks. The
 * account allows so many requests and tokens per minute and so many streams
 * at once (the "agents" tier of config/tiers.example.yaml, scaled down so
 * the limits bind within seconds). Every call is one guard:
 * rl_guard_begin waits its turn for every limit (requests, tokens, a stream
 * slot) and takes them; rl_guard_end settles the tokens really used and
 * hands the provider's response headers on. Now and then the simulated
 * provider answers 429 with Retry-After: the guard cools the whole account
 * down, for every worker of every process.
 *
 * At the end the demo prints each worker's share of the calls and how long
 * it waited, `rlctl inspect` of the account, and checks that the shared
 * limits held:
 *   requests <= burst + rate x elapsed,
 *   tokens   <= burst + rate x elapsed until the check + debt owed then,
 *   streams in flight never above the cap (sampled by every worker).
 *
 *   agent_workers [SECONDS] [TIERS.yaml] [WORKERS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rl.h"
#include "rl_http.h"

#define MAX_WORKERS 16
#define ACCOUNT "provider:demo"

typedef struct worker_stats {
    long asks, streams, answered_429, refused, tokens;
    long long waited_ms;
} worker_stats;

typedef struct shared {
    int in_flight;     /* streams running now, across workers */
    int max_in_flight; /* the most seen at once */
    worker_stats w[MAX_WORKERS];
} shared;

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* The simulated provider: answers 429 one call in 20, with the headers a
 * real one sends; otherwise streams `chunks` chunks (0: a one-shot answer)
 * and says how many tokens it used, 50% to 150% of the estimate. */
typedef struct answer {
    int status;
    long tokens;
    size_t nheaders;
    const char *names[2], *values[2];
} answer;

static answer provider(long estimate, int chunks, unsigned *seed)
{
    answer a = { 200, 0, 0, { NULL, NULL }, { NULL, NULL } };
    int i;
    if (rand_r(seed) % 20 == 0) {
        a.status = 429;
        a.nheaders = 2;
        a.names[0] = "retry-after";
        a.values[0] = "1";
        a.names[1] = "x-ratelimit-remaining-requests";
        a.values[1] = "0";
        return a;
    }
    sleep_ms(10 + rand_r(seed) % 40); /* time to first token */
    for (i = 0; i < chunks; i++)
        sleep_ms(20 + rand_r(seed) % 30); /* a chunk arrives */
    a.tokens = estimate / 2 + (long)(rand_r(seed) % (unsigned)(estimate + 1));
    return a;
}

/* One model call inside a guard. */
static int call_model(rl *r, shared *sh, int id, int stream, unsigned *seed)
{
    const char *keys[] = { ACCOUNT };
    worker_stats *ws = &sh->w[id];
    long estimate = stream ? 1200 : 300;
    rl_cost est[] = { { "requests", 1 }, { "tokens", estimate }, { "streams", 1 } };
    rl_cost used[] = { { "tokens", 0 } };
    rl_guard g = RL_GUARD_INIT;
    rl_result res;
    answer a;
    long long t0 = mono_ms();
    int rc, now_in;

    /* wait up to 10 s for our turn: requests, tokens and, for a stream, a slot */
    rc = rl_guard_begin(r, keys, 1, est, stream ? 3 : 2, RL_PRIORITY_INTERACTIVE, 10 * RL_SECOND,
                        NULL, &g, &res);
    ws->waited_ms += mono_ms() - t0;
    if (rc == RL_ELIMITED) { /* res.limit_name refused; try again later */
        ws->refused++;
        return 0;
    }
    if (rc != RL_OK)
        goto out;
    if (stream) {
        now_in = __atomic_add_fetch(&sh->in_flight, 1, __ATOMIC_SEQ_CST);
        while (now_in > __atomic_load_n(&sh->max_in_flight, __ATOMIC_SEQ_CST))
            __atomic_store_n(&sh->max_in_flight, now_in, __ATOMIC_SEQ_CST);
    }
    a = provider(estimate, stream ? 3 + rand_r(seed) % 6 : 0, seed);
    if (stream)
        __atomic_sub_fetch(&sh->in_flight, 1, __ATOMIC_SEQ_CST);
    if (a.status == 429) {
        /* the provider counted the request: settled at the estimate; its
         * headers cool the account down for everyone */
        ws->answered_429++;
        ws->tokens += estimate;
        rc = rl_guard_end(r, &g, NULL, 0, a.names, a.values, a.nheaders, &res);
    } else {
        used[0].amount = a.tokens;
        ws->tokens += a.tokens;
        if (stream)
            ws->streams++;
        else
            ws->asks++;
        rc = rl_guard_end(r, &g, used, 1, a.names, a.values, a.nheaders, &res);
    }
out:
    if (rc != RL_OK)
        fprintf(stderr, "worker %d: %s\n", id, rl_errmsg(r));
    rl_guard_cancel(r, &g); /* holds nothing unless something failed */
    return rc == RL_OK ? 0 : -1;
}

static int worker(const char *db, shared *sh, int id, double seconds)
{
    unsigned seed = 2654435761u * (unsigned)(id + 1);
    long long end = mono_ms() + (long long)(seconds * 1000);
    rl *r = NULL;
    int rc = 0;
    if (rl_open(&r, db, NULL) != RL_OK) {
        fprintf(stderr, "worker %d: %s\n", id, rl_errmsg(r));
        rc = 1;
    }
    while (rc == 0 && mono_ms() < end)
        if (call_model(r, sh, id, rand_r(&seed) % 10 < 3, &seed) != 0)
            rc = 1;
    rl_close(r);
    return rc;
}

/* Admitted units of a limit against what its policy allows over elapsed. */
static int check(const char *what, long long used, const rl_limit_stats *l, int64_t elapsed)
{
    long long bound =
        (long long)(l->burst + (__int128)l->count * elapsed / l->period_ns) + (long long)l->debt;
    char rate[32];
    rl_format_rate(l->count, l->period_ns, rate, sizeof rate);
    printf("  %-8s %-10s used %7lld <= burst %lld + %s x %.1f s%s = %lld  %s\n", what, rate, used,
           (long long)l->burst, rate, (double)elapsed / 1e9, l->debt ? " + debt" : "", bound,
           used <= bound ? "ok" : "EXCEEDED");
    return used <= bound;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 5.0;
    const char *tiers = argc > 2 ? argv[2] : RL_SOURCE_DIR "/config/tiers.example.yaml";
    int nworkers = argc > 3 ? atoi(argv[3]) : 4;
    char dir[] = "/tmp/rl-agents.XXXXXX", db[64], cmd[256];
    rl_options o = RL_OPTIONS_INIT;
    rl_key_stats st;
    shared *sh;
    rl *r = NULL;
    pid_t pids[MAX_WORKERS];
    long long calls = 0, tokens = 0;
    int i, status, ok = 1;
    size_t k;

    if (nworkers < 1 || nworkers > MAX_WORKERS) {
        fprintf(stderr, "agent_workers: 1 to %d workers\n", MAX_WORKERS);
        return 2;
    }
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED || !mkdtemp(dir)) {
        perror("agent_workers");
        return 2;
    }
    memset(sh, 0, sizeof *sh);
    snprintf(db, sizeof db, "%s/rl.db", dir);
    o.tiers_file = tiers;
    if (rl_open(&r, db, &o) != RL_OK) {
        fprintf(stderr, "agent_workers: %s\n", rl_errmsg(r));
        rl_close(r);
        return 2;
    }
    rl_close(r);
    printf("%d agent workers share %s for %.1f s (tiers: %s)\n\n", nworkers, ACCOUNT, seconds,
           tiers);
    fflush(stdout);
    for (i = 0; i < nworkers; i++) {
        if ((pids[i] = fork()) == 0)
            _exit(worker(db, sh, i, seconds));
        if (pids[i] < 0) {
            perror("agent_workers: fork");
            return 2;
        }
    }
    for (i = 0; i < nworkers; i++)
        if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) || WEXITSTATUS(status))
            ok = 0;
    for (i = 0; i < nworkers; i++)
        calls += sh->w[i].asks + sh->w[i].streams + sh->w[i].answered_429;

    printf("worker   asks  streams  429s  refused  share  waited/call   tokens\n");
    for (i = 0; i < nworkers; i++) {
        const worker_stats *w = &sh->w[i];
        long n = w->asks + w->streams + w->answered_429;
        printf("%6d %6ld %8ld %5ld %8ld %5.1f%% %9.0fms %8ld\n", i, w->asks, w->streams,
               w->answered_429, w->refused, calls ? 100.0 * (double)n / (double)calls : 0.0,
               (double)w->waited_ms / (double)(n + w->refused ? n + w->refused : 1), w->tokens);
        tokens += w->tokens;
    }
    printf("total  %6lld calls %45lld\n", calls, tokens);

    printf("\n$ rlctl --db %s inspect %s\n", db, ACCOUNT);
    fflush(stdout);
    snprintf(cmd, sizeof cmd, "'%s' --db '%s' inspect %s", RLCTL_PATH, db, ACCOUNT);
    if (system(cmd) != 0)
        ok = 0;

    printf("\nDid the shared limits hold?\n");
    if (rl_open(&r, db, NULL) != RL_OK || rl_stats(r, ACCOUNT, &st) != RL_OK) {
        fprintf(stderr, "agent_workers: %s\n", rl_errmsg(r));
        ok = 0;
    } else {
        /* A guard may be admitted ahead of its time (it books its place,
         * then sleeps until it), and tokens are charged again when it ends:
         * both bounds are taken at one instant, now, once every call has
         * ended, just after the stats (and the debt owed) were read. */
        struct timespec ts;
        int64_t elapsed;
        clock_gettime(CLOCK_REALTIME, &ts);
        elapsed = (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec - st.first_seen_ns;
        for (k = 0; k < st.n_limits; k++) {
            const rl_limit_stats *l = &st.limits[k];
            if (l->period_ns == 0) {
                printf("  %-8s at most %lld at once: %d seen at most  %s\n", l->name,
                       (long long)l->count, sh->max_in_flight,
                       sh->max_in_flight <= l->count ? "ok" : "EXCEEDED");
                ok &= sh->max_in_flight <= l->count;
            } else if (strcmp(l->resource, "tokens") == 0) {
                ok &= check(l->name, tokens, l, elapsed);
            } else {
                ok &= check(l->name, calls, l, elapsed);
            }
        }
    }
    rl_close(r);
    printf("\n%s\n",
           ok ? "agent_workers: every shared limit held" : "agent_workers: FAILED (see above)");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "agent_workers: could not remove %s\n", dir);
    munmap(sh, sizeof *sh);
    return ok ? 0 : 1;
}
