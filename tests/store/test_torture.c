/*
 * test_torture.c - crash torture: SIGKILL at random, 500 times (here); and
 * chaos: SIGKILL and SIGSTOP at random for a minute (test_torture_chaos.c)
 * (issue 14). Both files make one program, test_torture, whose main() is
 * here.
 *
 * test_kill_500_times: four processes decide on a hot key as fast as they
 * can while `rlctl` resets other keys and reloads the tier file in a loop;
 * every few milliseconds one of them (deciders and rlctl alike) is
 * SIGKILLed and replaced. Afterwards the database passes PRAGMA
 * integrity_check, still opens and decides, and the hot key's admitted
 * total, as counted by the survivors and the victims through their own
 * append-only logs, never exceeded burst + rate x elapsed.
 *
 * test_chaos_kill_and_stop: see test_torture_chaos.c. It uses the public
 * API only, so it tests whatever write-lock and group-commit protocol
 * store/lock.c and store/lock_group.c implement. RL_TORTURE_SECONDS sets
 * its duration (default 60), RL_TORTURE_SEED replays a seed it printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "rl.h"
#include "test_torture.h"

#define RATE 1000
#define BURST 50
#define KILLS 500

static void decider(const char *db, const char *log, int64_t until)
{
    rl_result res;
    rl *r = NULL;
    unsigned seed = (unsigned)getpid();
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0 || rl_open(&r, db, NULL) != RL_OK) {
        /* said, so that a failure of the test says why */
        fprintf(stderr, "decider: %s\n", fd < 0 ? strerror(errno) : rl_errmsg(r));
        _exit(1);
    }
    while (mono_ns() < until) {
        char other[32];
        if (rl_allow(r, "hot", 1, &res) != RL_OK) {
            fprintf(stderr, "decider: %s\n", rl_errmsg(r));
            _exit(2);
        }
        if (res.allowed && write(fd, "a", 1) != 1)
            _exit(3);
        snprintf(other, sizeof other, "other:%u", rand_r(&seed) % 8);
        if (rl_allow(r, other, 1, &res) != RL_OK) {
            fprintf(stderr, "decider: %s\n", rl_errmsg(r));
            _exit(4);
        }
    }
    _exit(0);
}

/* One rlctl run: reset some other key, or reload the tiers (unchanged). */
static pid_t spawn_rlctl(const char *db, const char *yaml, int n)
{
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        char key[32];
        dup2(devnull, 1);
        dup2(devnull, 2);
        snprintf(key, sizeof key, "other:%d", n % 8);
        /* --match: a key no decider has made yet is no error, just 0 reset */
        if (n % 2)
            execl(RLCTL_PATH, "rlctl", "--db", db, "reset", "--match", key, (char *)NULL);
        else
            execl(RLCTL_PATH, "rlctl", "--db", db, "tiers", "load", yaml, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static off_t file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? st.st_size : 0;
}

static void test_kill_500_times(void **state)
{
    char dir[64], db[96], yaml[96], log[128], cmd[256];
    pid_t pids[5];
    int64_t end, logged = 0;
    unsigned seed = (unsigned)time(NULL);
    int i, kills = 0, seq = 0, runs = 0, status;
    rl_key_stats st;
    rl_result res;
    rl *r = NULL;
    FILE *fp;
    (void)state;
    strcpy(dir, "/tmp/rl_test_torture.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/rl.db", dir);
    snprintf(yaml, sizeof yaml, "%s/t.yaml", dir);
    fp = fopen(yaml, "w");
    assert_non_null(fp);
    fprintf(fp,
            "version: 1\ndefault_tier: t\ntiers:\n  t:\n    limits:\n"
            "      - { name: rps, rate: %d/s, burst: %d }\n",
            RATE, BURST);
    fclose(fp);
    {
        rl_options o = RL_OPTIONS_INIT;
        o.tiers_file = yaml;
        assert_int_equal(rl_open(&r, db, &o), RL_OK);
        rl_close(r);
    }
    end = mono_ns() + 120 * RL_SECOND; /* a bound on a stuck run, never reached */
    for (i = 0; i < 4; i++) {
        snprintf(log, sizeof log, "%s/log%d", dir, seq++);
        if ((pids[i] = fork()) == 0)
            decider(db, log, end);
    }
    pids[4] = spawn_rlctl(db, yaml, runs++);
    while (kills < KILLS) {
        struct timespec ts = { 0, (long)(1 + rand_r(&seed) % 5) * 1000000L };
        nanosleep(&ts, NULL);
        /* rlctl runs that finished on their own are replaced */
        if (waitpid(pids[4], &status, WNOHANG) == pids[4]) {
            if (!WIFEXITED(status) || WEXITSTATUS(status) > 1)
                fail_msg("rlctl failed with status %d", status);
            pids[4] = spawn_rlctl(db, yaml, runs++);
        }
        i = rand_r(&seed) % 5;
        kill(pids[i], SIGKILL);
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        if (i < 4 && WIFEXITED(status))
            fail_msg("decider exited with %d instead of being killed", WEXITSTATUS(status));
        kills++;
        if (i == 4) {
            pids[4] = spawn_rlctl(db, yaml, runs++);
        } else {
            snprintf(log, sizeof log, "%s/log%d", dir, seq++);
            if ((pids[i] = fork()) == 0)
                decider(db, log, end);
        }
    }
    for (i = 0; i < 5; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], &status, 0);
    }
    for (i = 0; i < seq; i++) {
        snprintf(log, sizeof log, "%s/log%d", dir, i);
        logged += file_size(log);
    }
    {
        sqlite3 *sdb;
        sqlite3_stmt *q;
        assert_int_equal(sqlite3_open_v2(db, &sdb, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(sdb, "PRAGMA integrity_check", -1, &q, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
        sqlite3_finalize(q);
        sqlite3_close(sdb);
    }
    assert_int_equal(rl_open(&r, db, NULL), RL_OK);
    assert_int_equal(rl_stats(r, "hot", &st), RL_OK);
    {
        int64_t elapsed = st.last_seen_ns - st.first_seen_ns;
        int64_t bound = BURST + (int64_t)((__int128)RATE * elapsed / RL_SECOND) + 1;
        print_message("%d kills (%d rlctl runs): admitted %lld, logged %lld, bound %lld\n", kills,
                      runs, (long long)st.units, (long long)logged, (long long)bound);
        assert_true(logged <= st.units);
        assert_true(st.units <= bound);
    }
    assert_int_equal(rl_allow(r, "after", 1, &res), RL_OK);
    assert_true(res.allowed);
    rl_close(r);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_500_times),
        cmocka_unit_test(test_chaos_kill_and_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
