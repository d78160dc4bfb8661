/*
 * http_headers.c - a provider's real HTTP response, fed to a guard.
 *
 * Reads an HTTP/1.1 response head (status line, then "Name: value" lines
 * up to an empty line; CRLF or LF) from FILE, or stdin for "-", or a
 * built-in 429 when no argument is given, and ends a guarded call with it:
 * the guard settles the call and hands the header fields to the account's
 * shared cool-down (Retry-After, retry-after-ms, x-ratelimit-*,
 * anthropic-ratelimit-*). It prints what the fields say
 * (rl_parse_provider_headers), what rl_guard_end's result reports, and
 * whether the next guard, from any process, is let through. Exits 0 when
 * the outcome is what the response asked for: a cool-down if it said to
 * wait, none otherwise.
 *
 *   http_headers [FILE|-]
 *   curl -si https://api.example.com/v1/... | http_headers -
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rl.h"
#include "rl_http.h"

#define MAX_FIELDS 64
#define ACCOUNT "provider:openai"

static const char sample[] = "HTTP/1.1 429 Too Many Requests\r\n"
                             "Content-Type: application/json\r\n"
                             "Retry-After: 3\r\n"
                             "x-ratelimit-limit-tokens: 90000\r\n"
                             "x-ratelimit-remaining-tokens: 0\r\n"
                             "x-ratelimit-reset-tokens: 6m0s\r\n"
                             "\r\n";

/* Splits a response head in place: the status code, and the fields. */
static int parse_head(char *text, int *status, char **names, char **values, size_t *n)
{
    char *line = text, *next, *colon;
    int first = 1;
    *n = 0;
    *status = 0;
    for (; line && *line; line = next) {
        if ((next = strchr(line, '\n')))
            *next++ = 0;
        line[strcspn(line, "\r")] = 0;
        if (!*line)
            break; /* the empty line ends the head */
        if (first) {
            first = 0;
            if (sscanf(line, "HTTP/%*s %d", status) != 1)
                return -1;
            continue;
        }
        if (!(colon = strchr(line, ':')) || *n == MAX_FIELDS)
            continue; /* not a field, or one too many: skipped */
        *colon = 0;
        names[*n] = line;
        values[*n] = colon + 1; /* rl strips the spaces around values */
        (*n)++;
    }
    return *status ? 0 : -1;
}

static char *read_all(FILE *f)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    while (!feof(f) && !ferror(f)) {
        if (cap - len < 2048) {
            char *more = realloc(buf, cap *= 2);
            if (!more) {
                free(buf);
                return NULL;
            }
            buf = more;
        }
        len += fread(buf + len, 1, cap - len - 1, f);
    }
    buf[len] = 0;
    return buf;
}

int main(int argc, char **argv)
{
    const char *keys[] = { "user:alice", ACCOUNT };
    rl_limit limits[] = { RL_LIMIT("rpm", "requests", 500, RL_MINUTE, 500),
                          RL_LIMIT("tpm", "tokens", 90000, RL_MINUTE, 90000) };
    rl_cost est[] = { { "requests", 1 }, { "tokens", 1500 } };
    char *names[MAX_FIELDS], *values[MAX_FIELDS], *text;
    rl_options o = RL_OPTIONS_INIT;
    rl_provider_limits pl;
    rl_guard g = RL_GUARD_INIT;
    rl_result res;
    size_t n;
    int status, rc, asked_to_wait, ok = 0;
    rl *r = NULL;

    if (argc > 1 && strcmp(argv[1], "-") != 0) {
        FILE *f = fopen(argv[1], "rb");
        if (!f) {
            perror(argv[1]);
            return 2;
        }
        text = read_all(f);
        fclose(f);
    } else if (argc > 1) {
        text = read_all(stdin);
    } else {
        text = strdup(sample);
        printf("(no file given: the built-in example)\n%s", sample);
    }
    if (!text || parse_head(text, &status, names, values, &n) != 0) {
        fprintf(stderr, "http_headers: not an HTTP response head\n");
        free(text);
        return 2;
    }

    /* what the fields say, without a handle */
    rl_parse_provider_headers((const char *const *)names, (const char *const *)values, n, 0, &pl);
    printf("status %d, %zu fields, %u read, %u malformed\n", status, n, pl.n_read, pl.n_bad);
    printf(
        "  retry after: %lld ms; tokens left %lld of %lld, full in %lld ms\n",
        (long long)(pl.retry_after_ns < 0 ? -1 : pl.retry_after_ns / RL_MILLISECOND),
        (long long)pl.tokens.remaining, (long long)pl.tokens.limit,
        (long long)(pl.tokens.reset_after_ns < 0 ? -1 : pl.tokens.reset_after_ns / RL_MILLISECOND));
    asked_to_wait = pl.retry_after_ns > 0 ||
                    (pl.requests.remaining == 0 && pl.requests.reset_after_ns > 0) ||
                    (pl.tokens.remaining == 0 && pl.tokens.reset_after_ns > 0);

    /* a guarded call that got this response (a private store here; every
     * worker opening the same file or Redis server would share it) */
    o.default_limits = limits;
    o.n_default_limits = 2;
    if ((rc = rl_open(&r, ":memory:", &o)) != RL_OK)
        goto out;
    if ((rc = rl_guard_begin(r, keys, 2, est, 2, RL_PRIORITY_INTERACTIVE, 0, NULL, &g, &res)) !=
        RL_OK)
        goto out;
    /* whatever the status, the provider saw the call: end it, headers and
     * all (a 429 is settled at the estimate: the provider counted it) */
    rc = rl_guard_end(r, &g, NULL, 0, (const char *const *)names, (const char *const *)values, n,
                      &res);
    if (rc != RL_OK)
        goto out;
    printf("rl_guard_end: %s, limit '%s' (key %d), remaining %lld, retry after %lld ms\n",
           res.allowed ? "go on" : "cooling down", res.limit_name, res.key_index,
           (long long)res.remaining,
           (long long)((res.retry_after_ns + RL_MILLISECOND - 1) / RL_MILLISECOND));

    /* the next call, from this or any other worker */
    rc = rl_guard_begin(r, keys, 2, est, 2, RL_PRIORITY_INTERACTIVE, 0, NULL, &g, &res);
    if (rc == RL_ELIMITED) {
        printf("next guard: RL_ELIMITED by '%s' of %s, retry in %lld ms\n", res.limit_name,
               keys[res.key_index],
               (long long)((res.retry_after_ns + RL_MILLISECOND - 1) / RL_MILLISECOND));
        ok = asked_to_wait;
    } else if (rc == RL_OK) {
        printf("next guard: admitted (%lld left of '%s')\n", (long long)res.remaining,
               res.limit_name);
        ok = !asked_to_wait;
        rc = rl_guard_cancel(r, &g);
    }
    if (rc == RL_ELIMITED)
        rc = RL_OK;
out:
    if (rc != RL_OK) {
        fprintf(stderr, "http_headers: %s\n", rl_errmsg(r));
        ok = 0;
    }
    rl_close(r);
    free(text);
    return ok ? 0 : 1;
}
