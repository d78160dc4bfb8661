/*
 * args.c - what the user tells rlctl: option parsing, integers, typo
 * suggestions and the y/N confirmation (see args.h).
 *
 * Guarantees: options are long only ("--top 5" or "--top=5", plus -h)
 * and may appear anywhere before "--"; an unknown option, a flag given a
 * value or a value option without one is one line on stderr and
 * RLCTL_USAGE, never a guess; a number is plain digits within its bounds;
 * nothing here exits.
 */
#include "args.h"
#include "output.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- command line ------------------------------------------------------- */

static const rlctl_opt *find_opt(const rlctl_opt *opts, const char *name, size_t len)
{
    for (; opts && opts->name; opts++)
        if (strlen(opts->name) == len && strncmp(opts->name, name, len) == 0)
            return opts;
    return NULL;
}

int rlctl_parse_opts(int argc, char **argv, const rlctl_opt *opts, const char *usage, int *npos)
{
    const char *cmd = argv[0];
    int i, n = 0, only_pos = 0;

    for (i = 1; i < argc; i++) {
        char *a = argv[i];
        const rlctl_opt *o;
        const char *eq;
        size_t len;

        if (only_pos || a[0] != '-' || a[1] == '\0') {
            argv[1 + n++] = a; /* n < i, so nothing unread is overwritten */
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return RLCTL_HELP;
        }
        eq = strchr(a, '=');
        len = eq ? (size_t)(eq - a) : strlen(a);
        if (a[1] != '-' || !(o = find_opt(opts, a, len)))
            return rlctl_usage_error(cmd, "unknown option '%.*s'", (int)len, a);
        if (o->kind == RLCTL_OPT_FLAG) {
            if (eq)
                return rlctl_usage_error(cmd, "option '%s' takes no value", o->name);
            *(int *)o->dest = 1;
        } else if (eq) {
            *(const char **)o->dest = eq + 1;
        } else if (i + 1 < argc) {
            *(const char **)o->dest = argv[++i];
        } else {
            return rlctl_usage_error(cmd, "option '%s' needs a value", o->name);
        }
    }
    *npos = n;
    return RLCTL_OK;
}

int rlctl_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;
    /* strtoll alone would take " 5", "+5" and "-0": a count is plain digits. */
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Optimal string alignment distance (Levenshtein plus adjacent swaps, so
 * "stast" is one typo away from "stats"), on short command names only. */
static size_t typo_distance(const char *a, const char *b)
{
    enum { MAXLEN = 32 };
    size_t d[MAXLEN + 1][MAXLEN + 1];
    size_t la = strlen(a), lb = strlen(b), i, j;
    if (la > MAXLEN || lb > MAXLEN)
        return (size_t)-1;
    for (i = 0; i <= la; i++)
        d[i][0] = i;
    for (j = 0; j <= lb; j++)
        d[0][j] = j;
    for (i = 1; i <= la; i++) {
        for (j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1], best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

const char *rlctl_suggest(const char *s, const char *const *names)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1, len = strlen(s);
    /* Short words are a typo apart from everything: allow less for them. */
    size_t max_d = len >= 5 ? 2 : 1;
    for (; *names; names++) {
        size_t d = typo_distance(s, *names);
        if (len >= 3 && strncmp(*names, s, len) == 0 && d > max_d)
            d = max_d; /* an abbreviation, like "insp" */
        if (d < best_d) {
            best_d = d;
            best = *names;
        }
    }
    return best_d <= max_d ? best : NULL;
}

/* ---- confirmation ------------------------------------------------------- */

int rlctl_confirm(const char *question)
{
    char line[64];
    FILE *tty = fopen("/dev/tty", "r+");
    int yes = 0;
    if (!tty)
        return 0;
    fprintf(tty, "%s [y/N] ", question);
    fflush(tty);
    if (fgets(line, sizeof line, tty)) {
        line[strcspn(line, "\r\n")] = 0;
        yes = strcmp(line, "y") == 0 || strcmp(line, "Y") == 0 || strcmp(line, "yes") == 0 ||
              strcmp(line, "YES") == 0 || strcmp(line, "Yes") == 0;
    } else {
        (void)fseek(tty, 0, SEEK_CUR); /* C11 7.21.5.3: input, then output */
        fputc('\n', tty);              /* ^D: leave the prompt's line ended */
    }
    fclose(tty);
    return yes;
}
