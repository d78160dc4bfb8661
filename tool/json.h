/*
 * json.h - a small streaming JSON writer for rlctl's --json output.
 *
 * The writer, not its callers, places commas, colons and indentation (a
 * stack records whether each open container is an object or an array and
 * whether it has members yet), and it alone escapes strings, so no command
 * ever pastes JSON text together. Output is pretty-printed like jq's and a
 * complete document ends with a newline.
 */
#ifndef RLCTL_JSON_H
#define RLCTL_JSON_H

#include <stdint.h>
#include <stdio.h>

#define RLCTL_JSON_MAX_DEPTH 16

typedef struct rlctl_json {
    FILE *f;
    int depth;
    char kind[RLCTL_JSON_MAX_DEPTH];         /* '{' or '[' for each open container */
    unsigned char any[RLCTL_JSON_MAX_DEPTH]; /* it has a member already */
    int after_key;                           /* a key was written; its value is next */
    int misuse;                              /* a call out of place (a bug in rlctl) */
} rlctl_json;

void rlctl_json_init(rlctl_json *j, FILE *f);
void rlctl_json_object(rlctl_json *j); /* opens { */
void rlctl_json_array(rlctl_json *j);  /* opens [ */
void rlctl_json_end(rlctl_json *j);    /* closes the innermost container */
void rlctl_json_key(rlctl_json *j, const char *key);

/* Strings may hold any bytes: one that is not UTF-8 is written as U+FFFD,
 * controls, bidi controls and invisible characters as \u escapes, so the
 * document stays valid JSON whatever a tampered database holds. */
void rlctl_json_string(rlctl_json *j, const char *s); /* NULL writes null */
void rlctl_json_int(rlctl_json *j, int64_t v);
void rlctl_json_bool(rlctl_json *j, int b);
void rlctl_json_null(rlctl_json *j);

/* key + value in one call, for the common case. */
void rlctl_json_kstring(rlctl_json *j, const char *key, const char *s);
void rlctl_json_kint(rlctl_json *j, const char *key, int64_t v);
void rlctl_json_kbool(rlctl_json *j, const char *key, int b);

/* 0 when exactly one complete document was written, -1 otherwise. */
int rlctl_json_done(const rlctl_json *j);

#endif
