/*
 * err.c - error messages: rl_seterr, which every layer (the handle, the
 * stores, config) uses to fill an RL_ERRMSG_MAX buffer.
 *
 * It lives apart from the handle (rl.c) so that stores, which report into
 * the handle's buffer through rl_store.err, need nothing of the handle.
 *
 * Guarantees: the message is one line of text that is safe to print,
 * truncated to the buffer and always terminated; rl_seterr returns the
 * code it was given, so `return rl_seterr(err, RL_EINVAL, ...)` reads as
 * what it does.
 */
#include "store.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int rl_seterr(char *err, int code, const char *fmt, ...)
{
    va_list ap;
    size_t i = 0, o = 0, n, len;
    int unsafe;
    va_start(ap, fmt);
    vsnprintf(err, RL_ERRMSG_MAX, fmt, ap);
    va_end(ap);
    /* Messages are one line of text that is safe to print: a key or name
     * in them (from the caller, or read back from a tampered file) cannot
     * break the line, send a terminal an escape sequence or reorder the
     * text (U+202E). Each such character becomes one '?', in place. */
    len = strlen(err);
    while (i < len) {
        n = rl_text_char((const unsigned char *)err + i, len - i, &unsafe);
        if (unsafe) {
            err[o++] = err[i] == '\n' || err[i] == '\r' || err[i] == '\t' ? ' ' : '?';
        } else {
            memmove(err + o, err + i, n);
            o += n;
        }
        i += n;
    }
    err[o] = '\0';
    return code;
}
