/*
 * parse.h - internal helpers shared by parse.c and config/: the rate parser
 * with a human reason for refusals, and a quoting helper for echoing user
 * text in one-line error messages.
 *
 * Guarantees: both write only within the buffer given and always
 * NUL-terminate a buffer of non-zero size.
 */
#ifndef RL_PARSE_H
#define RL_PARSE_H

#include "rl.h"

/* Like rl_parse_rate, but on RL_EINVAL says why in `why` (one line, without
 * the input itself), so config/ can point at exactly what is wrong. */
int rl_parse_rate_ex(const char *s, int64_t *count, int64_t *period_ns, char *why, size_t whylen);

/* Copies len bytes of s into dst for display: control bytes (C0, DEL, C1)
 * become '?', and long text is cut at a character boundary with "...", so
 * an attacker-controlled value can never break the one-line message. */
void rl_parse_quote(char *dst, size_t dstlen, const char *s, size_t len);

#endif
