/*
 * xlang_helper.c - the C process of the Go binding's cross-language test
 * (crosslang_test.go): opens DB with the limits stored there, waits until
 * the file START exists (so that every process decides at the same time),
 * then makes ATTEMPTS rl_allow calls on KEY and prints "admitted N".
 *
 *   go_xlang_helper DB KEY ATTEMPTS START
 */
#include <rl.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    rl *r = NULL;
    rl_result res;
    long admitted = 0, attempts, i;
    struct timespec nap = { 0, 1000000 };
    if (argc != 5) {
        fprintf(stderr, "usage: go_xlang_helper DB KEY ATTEMPTS START\n");
        return 2;
    }
    attempts = atol(argv[3]);
    if (rl_open(&r, argv[1], NULL) != RL_OK) {
        fprintf(stderr, "go_xlang_helper: %s\n", rl_errmsg(r));
        rl_close(r);
        return 1;
    }
    for (i = 0; access(argv[4], F_OK) != 0; i++) {
        if (i > 60000) { /* a minute: the test is gone */
            fprintf(stderr, "go_xlang_helper: %s never appeared\n", argv[4]);
            rl_close(r);
            return 1;
        }
        nanosleep(&nap, NULL);
    }
    for (i = 0; i < attempts; i++) {
        if (rl_allow(r, argv[2], 1, &res) != RL_OK) {
            fprintf(stderr, "go_xlang_helper: %s\n", rl_errmsg(r));
            rl_close(r);
            return 1;
        }
        admitted += res.allowed != 0;
    }
    rl_close(r);
    printf("admitted %ld\n", admitted);
    return 0;
}
