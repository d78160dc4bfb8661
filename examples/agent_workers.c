/*
 * agent_workers.c - the main demo: agent workers sharing one model account.
 *
 * Four forked workers call a simulated model for a few seconds: one-shot
 * "ask" calls and long "stream" calls, with latency and token usage drawn at
 * random. The account allows so many requests and tokens per minute and so
 * many streams at once (the "agents" tier of config/tiers.example.yaml,
 * scaled down so the limits bind within seconds). Each call reserves its estimated tokens with
 * a lease, and settles the tokens it really used when the response is in.
 * At the end the demo prints what each worker got, `rlctl inspect` of the
 * account, and checks that the shared limits held:
 *   requests <= burst + rate x elapsed,
 *   tokens   <= burst + rate x elapsed until the check + debt owed then,
 *   streams in flight never above the cap (sampled by every worker).
 *
 *   agent_workers [SECONDS] [TIERS.yaml]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rl.h"

#define NWORKERS 4
#define ACCOUNT "provider:demo"

typedef struct worker_stats {
    long asks, streams, refused, tokens, overruns;
    long long waited_ms;
} worker_stats;

typedef struct shared {
    int in_flight;     /* streams running now, across workers */
    int max_in_flight; /* the most seen at once */
    worker_stats w[NWORKERS];
} shared;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* One model call through a lease: reserve the estimate (and a stream slot
 * for a stream), "call", settle what the response says was used. */
static int call_model(rl *r, shared *sh, int id, int stream, unsigned *seed)
{
    worker_stats *ws = &sh->w[id];
    long estimate = stream ? 1200 : 300;
    rl_cost est[] = { { "requests", 1 }, { "tokens", estimate }, { "streams", 1 } };
    rl_cost used[1];
    rl_result res;
    rl_lease lease;
    long actual;
    int now_in;

    if (rl_lease_begin(r, ACCOUNT, est, stream ? 3 : 2, 30 * RL_SECOND, &lease, &res) != RL_OK) {
        fprintf(stderr, "worker %d: %s\n", id, rl_errmsg(r));
        return -1;
    }
    if (!res.allowed) {
        /* back off for as long as the deciding limit says, capped so a
         * stream slot freed early is noticed */
        long ms = (long)(res.retry_after_ns / RL_MILLISECOND) + 1;
        ws->refused++;
        ms = ms > 50 ? 50 : ms;
        ws->waited_ms += ms;
        sleep_ms(ms);
        return 0;
    }
    if (stream) {
        now_in = __atomic_add_fetch(&sh->in_flight, 1, __ATOMIC_SEQ_CST);
        while (now_in > __atomic_load_n(&sh->max_in_flight, __ATOMIC_SEQ_CST))
            __atomic_store_n(&sh->max_in_flight, now_in, __ATOMIC_SEQ_CST);
        sleep_ms(150 + rand_r(seed) % 300);
        __atomic_sub_fetch(&sh->in_flight, 1, __ATOMIC_SEQ_CST);
        ws->streams++;
    } else {
        sleep_ms(10 + rand_r(seed) % 40);
        ws->asks++;
    }
    /* the true count is known only now: 50% to 150% of the estimate */
    actual = estimate / 2 + (long)(rand_r(seed) % (unsigned)(estimate + 1));
    ws->tokens += actual;
    ws->overruns += actual > estimate;
    used[0].resource = "tokens";
    used[0].amount = actual;
    if (rl_lease_settle(r, &lease, used, 1) != RL_OK) {
        fprintf(stderr, "worker %d: settle: %s\n", id, rl_errmsg(r));
        return -1;
    }
    return 0;
}

static int worker(const char *db, shared *sh, int id, double seconds)
{
    unsigned seed = (unsigned)getpid() * 2654435761u;
    double end = mono() + seconds;
    rl *r = NULL;
    if (rl_open(&r, db, NULL) != RL_OK) {
        fprintf(stderr, "worker %d: %s\n", id, rl_errmsg(r));
        rl_close(r);
        return 1;
    }
    while (mono() < end)
        if (call_model(r, sh, id, rand_r(&seed) % 10 < 3, &seed) != 0) {
            rl_close(r);
            return 1;
        }
    rl_close(r);
    return 0;
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
    char dir[] = "/tmp/rl-agents.XXXXXX", db[64], cmd[256];
    rl_options o = RL_OPTIONS_INIT;
    rl_key_stats st;
    shared *sh;
    rl *r = NULL;
    pid_t pids[NWORKERS];
    long long asks = 0, streams = 0, tokens = 0;
    int i, status, ok = 1;
    size_t k;

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
    printf("%d agent workers share %s for %.1f s (tiers: %s)\n\n", NWORKERS, ACCOUNT, seconds,
           tiers);
    fflush(stdout);
    for (i = 0; i < NWORKERS; i++) {
        if ((pids[i] = fork()) == 0)
            _exit(worker(db, sh, i, seconds));
        if (pids[i] < 0) {
            perror("agent_workers: fork");
            return 2;
        }
    }
    for (i = 0; i < NWORKERS; i++)
        if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) || WEXITSTATUS(status))
            ok = 0;

    printf("worker   asks  streams  refused  backed off   tokens  over estimate\n");
    for (i = 0; i < NWORKERS; i++) {
        const worker_stats *w = &sh->w[i];
        printf("%6d %6ld %8ld %8ld %9lldms %8ld %14ld\n", i, w->asks, w->streams, w->refused,
               w->waited_ms, w->tokens, w->overruns);
        asks += w->asks;
        streams += w->streams;
        tokens += w->tokens;
    }
    printf("total  %6lld %8lld %29lld\n", asks, streams, tokens);

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
        /* Requests are charged when a lease is admitted, so the last
         * admission ends their time. Tokens are charged again when a lease
         * settles, after that: their bound is taken at one instant, now,
         * just after the stats (and the debt owed) were read. */
        struct timespec ts;
        int64_t elapsed = st.last_seen_ns - st.first_seen_ns, settled;
        clock_gettime(CLOCK_REALTIME, &ts);
        settled = (int64_t)ts.tv_sec * RL_SECOND + ts.tv_nsec - st.first_seen_ns;
        for (k = 0; k < st.n_limits; k++) {
            const rl_limit_stats *l = &st.limits[k];
            if (l->period_ns == 0) {
                printf("  %-8s at most %lld at once: %d seen at most  %s\n", l->name,
                       (long long)l->count, sh->max_in_flight,
                       sh->max_in_flight <= l->count ? "ok" : "EXCEEDED");
                ok &= sh->max_in_flight <= l->count;
            } else if (strcmp(l->resource, "tokens") == 0) {
                ok &= check(l->name, tokens, l, settled);
            } else {
                ok &= check(l->name, asks + streams, l, elapsed);
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
