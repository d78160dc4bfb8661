/*
 * fuzz_cli.c - libFuzzer harness for rlctl's command-line handling: the
 * option parser every command uses (rlctl_parse_opts, with flags, values,
 * "--opt=value", "--" and -h), the integer and typo-suggestion helpers, and
 * the JSON string writer fed with arbitrary bytes.
 *
 * The input is split at NUL bytes into at most 32 arguments. Checks: no
 * crash or sanitizer report; a successful parse leaves exactly the
 * positional arguments in argv[1..npos], each one of the inputs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* rlctl's usage and errors go to stdio's stdout and stderr: point those
 * at /dev/null, while libFuzzer and the sanitizers, which write to their own
 * stream or straight to fd 2, still report. */
static void quiet(void)
{
    static FILE *null;
    if (null)
        return;
    if (!(null = fopen("/dev/null", "w")))
        abort();
    stdout = null;
    stderr = null;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = { "stats",  "keys",   "inspect", "reset", "watch", "prune",
                                         "doctor", "export", "import",  "allow", NULL };
    char *buf, *argv[34], *orig[34];
    int argc = 1, flag_a = 0, flag_b = 0, npos = 0, rc, i;
    const char *val_a = NULL, *val_b = NULL;
    const rlctl_opt opts[] = {
        { "--json", RLCTL_OPT_FLAG, &flag_a },
        { "--dry-run", RLCTL_OPT_FLAG, &flag_b },
        { "--top", RLCTL_OPT_VALUE, &val_a },
        { "--match", RLCTL_OPT_VALUE, &val_b },
        { NULL, 0, NULL },
    };
    size_t start = 0, k;
    rlctl_json j;
    FILE *sink;

    quiet();
    if (!(buf = malloc(size + 1)))
        return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    argv[0] = "stats";
    for (k = 0; k <= size && argc < 33; k++) {
        if (k == size || buf[k] == 0) {
            buf[k] = 0;
            argv[argc++] = buf + start;
            start = k + 1;
        }
    }
    argv[argc] = NULL;
    memcpy(orig, argv, sizeof argv);
    rc = rlctl_parse_opts(argc, argv, opts, "usage\n", &npos);
    if (rc == RLCTL_OK) {
        if (npos < 0 || npos >= argc)
            abort();
        for (i = 1; i <= npos; i++) { /* every positional is one of the inputs */
            int found = 0, m;
            for (m = 1; m < argc && !found; m++)
                found = argv[i] == orig[m];
            if (!found)
                abort();
        }
    }
    for (i = 1; i < argc; i++) {
        int64_t v;
        if (rlctl_parse_int(orig[i], 0, INT64_MAX, &v) == 0 && v < 0)
            abort();
        (void)rlctl_suggest(orig[i], names);
    }
    /* the JSON writer escapes whatever bytes it is given */
    if ((sink = fopen("/dev/null", "w"))) {
        rlctl_json_init(&j, sink);
        rlctl_json_object(&j);
        for (i = 1; i + 1 < argc; i += 2)
            rlctl_json_kstring(&j, orig[i], orig[i + 1]);
        rlctl_json_end(&j);
        if (rlctl_json_done(&j) != 0)
            abort();
        fclose(sink);
    }
    free(buf);
    return 0;
}
