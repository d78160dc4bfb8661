/*
 * json.c - the streaming JSON writer behind rlctl's --json (see json.h).
 */
#include "json.h"
#include "output.h"

#include <inttypes.h>
#include <string.h>

void rlctl_json_init(rlctl_json *j, FILE *f)
{
    memset(j, 0, sizeof *j);
    j->f = f;
}

static void newline_indent(rlctl_json *j, int depth)
{
    fputc('\n', j->f);
    fprintf(j->f, "%*s", depth * 2, "");
}

/* Everything that goes before a value: nothing after a key; a comma and a
 * new line inside an array. A value in an object without its key, or a
 * second document, is misuse. */
static int before_value(rlctl_json *j)
{
    if (j->misuse)
        return -1;
    if (j->after_key) {
        j->after_key = 0;
        return 0;
    }
    if (j->depth == 0) {
        if (j->any[0]) { /* any[0] marks that a document was started */
            j->misuse = 1;
            return -1;
        }
        j->any[0] = 1;
        return 0;
    }
    if (j->kind[j->depth - 1] != '[') {
        j->misuse = 1;
        return -1;
    }
    if (j->any[j->depth])
        fputc(',', j->f);
    j->any[j->depth] = 1;
    newline_indent(j, j->depth);
    return 0;
}

/* After a value: a document that is complete ends with a newline. */
static void after_value(rlctl_json *j)
{
    if (j->depth == 0)
        fputc('\n', j->f);
}

static void open_container(rlctl_json *j, char kind)
{
    if (before_value(j) != 0)
        return;
    if (j->depth + 1 >= RLCTL_JSON_MAX_DEPTH) {
        j->misuse = 1;
        return;
    }
    fputc(kind, j->f);
    j->kind[j->depth] = kind;
    j->depth++;
    j->any[j->depth] = 0;
}

void rlctl_json_object(rlctl_json *j)
{
    open_container(j, '{');
}

void rlctl_json_array(rlctl_json *j)
{
    open_container(j, '[');
}

void rlctl_json_end(rlctl_json *j)
{
    if (j->misuse || j->depth == 0 || j->after_key) {
        j->misuse = 1;
        return;
    }
    /* An empty container stays on one line: {} or []. */
    if (j->any[j->depth])
        newline_indent(j, j->depth - 1);
    j->depth--;
    fputc(j->kind[j->depth] == '{' ? '}' : ']', j->f);
    after_value(j);
}

/* A string, valid JSON whatever s holds: '"', '\\' and C0 controls
 * escaped; a byte that is not UTF-8 (a key or name from a tampered
 * database) as U+FFFD; the characters rlctl_text escapes (C1 controls,
 * bidi controls such as U+202E, zero-width characters, line separators) as
 * \\u escapes, which a JSON reader decodes to the same characters and a
 * person reading the document sees. */
static void write_string(rlctl_json *j, const char *s)
{
    fputc('"', j->f);
    while (*s) {
        unsigned long cp;
        int kind;
        size_t n = rlctl_text_char(s, &cp, &kind);
        if (*s == '"' || *s == '\\')
            fprintf(j->f, "\\%c", *s);
        else if (kind == 2 && cp < 0x80)
            fprintf(j->f, "\\u%04lx", cp);
        else if (kind == 2)
            fputs("\\ufffd", j->f);
        else if (kind == 1 && cp > 0xffff) /* a surrogate pair */
            fprintf(j->f, "\\u%04lx\\u%04lx", 0xd800 + ((cp - 0x10000) >> 10),
                    0xdc00 + ((cp - 0x10000) & 0x3ff));
        else if (kind == 1)
            fprintf(j->f, "\\u%04lx", cp);
        else
            fwrite(s, 1, n, j->f);
        s += n;
    }
    fputc('"', j->f);
}

void rlctl_json_key(rlctl_json *j, const char *key)
{
    if (j->misuse || j->depth == 0 || j->kind[j->depth - 1] != '{' || j->after_key) {
        j->misuse = 1;
        return;
    }
    if (j->any[j->depth])
        fputc(',', j->f);
    j->any[j->depth] = 1;
    newline_indent(j, j->depth);
    write_string(j, key);
    fputs(": ", j->f);
    j->after_key = 1;
}

void rlctl_json_string(rlctl_json *j, const char *s)
{
    if (!s) {
        rlctl_json_null(j);
        return;
    }
    if (before_value(j) != 0)
        return;
    write_string(j, s);
    after_value(j);
}

void rlctl_json_int(rlctl_json *j, int64_t v)
{
    if (before_value(j) != 0)
        return;
    fprintf(j->f, "%" PRId64, v);
    after_value(j);
}

void rlctl_json_bool(rlctl_json *j, int b)
{
    if (before_value(j) != 0)
        return;
    fputs(b ? "true" : "false", j->f);
    after_value(j);
}

void rlctl_json_null(rlctl_json *j)
{
    if (before_value(j) != 0)
        return;
    fputs("null", j->f);
    after_value(j);
}

void rlctl_json_kstring(rlctl_json *j, const char *key, const char *s)
{
    rlctl_json_key(j, key);
    rlctl_json_string(j, s);
}

void rlctl_json_kint(rlctl_json *j, const char *key, int64_t v)
{
    rlctl_json_key(j, key);
    rlctl_json_int(j, v);
}

void rlctl_json_kbool(rlctl_json *j, const char *key, int b)
{
    rlctl_json_key(j, key);
    rlctl_json_bool(j, b);
}

int rlctl_json_done(const rlctl_json *j)
{
    return !j->misuse && j->depth == 0 && !j->after_key && j->any[0] ? 0 : -1;
}
