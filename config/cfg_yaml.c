/*
 * cfg_yaml.c - libyaml events to a small tree (see cfg_yaml.h).
 *
 * Guarantees: refuses, with the position of the offending token, anything
 * a tiers file has no use for and that could make a small file expensive
 * or ambiguous: anchors and aliases (billion laughs), non-standard tags,
 * more than one document, nesting past RL_CFG_DEPTH_MAX. Input is read as
 * UTF-8 only; invalid bytes are reported with their line and column.
 */
#include "cfg_yaml.h"
#include "parse.h"
#include "rl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define RL_CFG_TAG_PREFIX "tag:yaml.org,2002:"

static int rl_cfg_vfail(rl_cfg_ctx *c, int code, size_t line, size_t col, const char *fmt,
                        va_list ap)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 5, 0)))
#endif
    ;

static int rl_cfg_vfail(rl_cfg_ctx *c, int code, size_t line, size_t col, const char *fmt,
                        va_list ap)
{
    int n;
    if (!c->err || !c->errlen)
        return code;
    n = snprintf(c->err, c->errlen, "%s:%zu:%zu: ", c->name, line, col);
    if (n >= 0 && (size_t)n < c->errlen)
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    return code;
}

int rl_cfg_fail(rl_cfg_ctx *c, int code, size_t line, size_t col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rl_cfg_vfail(c, code, line, col, fmt, ap);
    va_end(ap);
    return code;
}

int rl_cfg_fail_at(rl_cfg_ctx *c, const rl_cfg_node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rl_cfg_vfail(c, RL_ECONFIG, n->line, n->col, fmt, ap);
    va_end(ap);
    return RL_ECONFIG;
}

int rl_cfg_nomem(rl_cfg_ctx *c)
{
    if (c->err && c->errlen)
        snprintf(c->err, c->errlen, "%s: out of memory", c->name);
    return RL_ENOMEM;
}

void rl_cfg_node_free(rl_cfg_node *n)
{
    size_t i;
    if (!n)
        return;
    for (i = 0; i < n->n; i++)
        rl_cfg_node_free(n->kids[i]);
    free(n->kids);
    free(n->text);
    free(n);
}

static int rl_cfg_add_kid(rl_cfg_node *parent, rl_cfg_node *kid)
{
    /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): parent is never NULL: rl_cfg_make_node returns RL_OK only with a node; the analyzer does not inline the variadic rl_cfg_fail and assumes it may return RL_OK */
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 4;
        rl_cfg_node **k = realloc(parent->kids, cap * sizeof *k);
        if (!k)
            return RL_ENOMEM;
        parent->kids = k;
        parent->cap = cap;
    }
    parent->kids[parent->n++] = kid;
    return RL_OK;
}

/* libyaml gives reader errors as a byte offset only; lines and columns are
 * counted here the way libyaml counts marks (characters, CR LF is one
 * break) so that every message has the same shape. */
static void rl_cfg_offset_pos(const unsigned char *buf, size_t len, size_t off, size_t *line,
                              size_t *col)
{
    size_t i;
    *line = 1;
    *col = 1;
    if (off > len)
        off = len;
    for (i = 0; i < off; i++) {
        if (buf[i] == '\n' || (buf[i] == '\r' && (i + 1 >= len || buf[i + 1] != '\n'))) {
            (*line)++;
            *col = 1;
        } else if (buf[i] != '\r' && (buf[i] & 0xc0) != 0x80) {
            (*col)++;
        }
    }
}

static int rl_cfg_syntax_error(rl_cfg_ctx *c, const yaml_parser_t *p, const unsigned char *buf,
                               size_t len)
{
    const char *problem = p->problem ? p->problem : "unknown error";
    size_t line, col;
    if (p->error == YAML_MEMORY_ERROR)
        return rl_cfg_nomem(c);
    if (p->error == YAML_READER_ERROR) {
        size_t off = p->problem_offset < len ? p->problem_offset : len;
        if (strstr(problem, "UTF-8") || strstr(problem, "Unicode")) {
            /* libyaml points a bad continuation byte at itself; the
             * character the user has to fix starts at its lead byte. */
            if (strstr(problem, "trailing") && off > 0)
                do
                    off--;
                while (off > 0 && (buf[off] & 0xc0) == 0x80);
            rl_cfg_offset_pos(buf, len, off, &line, &col);
            if (off >= len)
                return rl_cfg_fail(c, RL_ECONFIG, line, col,
                                   "incomplete UTF-8 sequence at the end (the file must be "
                                   "UTF-8)");
            if (strstr(problem, "leading"))
                return rl_cfg_fail(c, RL_ECONFIG, line, col,
                                   "invalid UTF-8 byte 0x%02X (the file must be UTF-8)", buf[off]);
            return rl_cfg_fail(c, RL_ECONFIG, line, col,
                               "invalid UTF-8 sequence starting with byte 0x%02X (the file must "
                               "be UTF-8)",
                               buf[off]);
        }
        rl_cfg_offset_pos(buf, len, off, &line, &col);
        if (p->problem_value >= 0)
            return rl_cfg_fail(c, RL_ECONFIG, line, col, "%s (U+%04X)", problem,
                               (unsigned)p->problem_value);
        return rl_cfg_fail(c, RL_ECONFIG, line, col, "%s", problem);
    }
    if (p->context)
        return rl_cfg_fail(c, RL_ECONFIG, p->problem_mark.line + 1, p->problem_mark.column + 1,
                           "syntax error: %s (%s at %zu:%zu)", problem, p->context,
                           p->context_mark.line + 1, p->context_mark.column + 1);
    return rl_cfg_fail(c, RL_ECONFIG, p->problem_mark.line + 1, p->problem_mark.column + 1,
                       "syntax error: %s", problem);
}

/* Explicit tags are only allowed when they say what the node already is
 * (or, for scalars, pick one of the core types): anything else would mean
 * a type this format has no use for. Sets *plain for scalars. */
static int rl_cfg_check_tag(rl_cfg_ctx *c, const yaml_event_t *ev, const char *tag,
                            rl_cfg_kind kind, int *plain)
{
    const char *t = tag + strlen(RL_CFG_TAG_PREFIX);
    char shown[64];
    if (strncmp(tag, RL_CFG_TAG_PREFIX, strlen(RL_CFG_TAG_PREFIX)) == 0) {
        if (kind == RL_CFG_MAP && strcmp(t, "map") == 0)
            return RL_OK;
        if (kind == RL_CFG_SEQ && strcmp(t, "seq") == 0)
            return RL_OK;
        if (kind == RL_CFG_SCALAR && strcmp(t, "str") == 0) {
            *plain = 0;
            return RL_OK;
        }
        if (kind == RL_CFG_SCALAR &&
            (strcmp(t, "int") == 0 || strcmp(t, "bool") == 0 || strcmp(t, "null") == 0)) {
            *plain = 1;
            return RL_OK;
        }
        if (strcmp(t, "map") == 0 || strcmp(t, "seq") == 0 || strcmp(t, "str") == 0 ||
            strcmp(t, "int") == 0 || strcmp(t, "bool") == 0 || strcmp(t, "null") == 0)
            return rl_cfg_fail(c, RL_ECONFIG, ev->start_mark.line + 1, ev->start_mark.column + 1,
                               "tag !!%s does not fit a %s", t,
                               kind == RL_CFG_MAP   ? "mapping"
                               : kind == RL_CFG_SEQ ? "sequence"
                                                    : "scalar");
    }
    /* Show standard tags the way they are usually written. */
    if (strncmp(tag, RL_CFG_TAG_PREFIX, strlen(RL_CFG_TAG_PREFIX)) == 0) {
        shown[0] = shown[1] = '!';
        rl_parse_quote(shown + 2, sizeof shown - 2, t, strlen(t));
    } else {
        rl_parse_quote(shown, sizeof shown, tag, strlen(tag));
    }
    return rl_cfg_fail(c, RL_ECONFIG, ev->start_mark.line + 1, ev->start_mark.column + 1,
                       "unsupported tag '%s' (only !!str, !!int, !!bool, !!null, !!map and "
                       "!!seq are allowed)",
                       shown);
}

/* Makes the node for a scalar or collection-start event. */
static int rl_cfg_make_node(rl_cfg_ctx *c, const yaml_event_t *ev, rl_cfg_node **out)
{
    rl_cfg_node *n;
    const yaml_char_t *anchor = NULL, *tag = NULL;
    int rc, plain = 0;
    rl_cfg_kind kind;

    *out = NULL;
    if (ev->type == YAML_SCALAR_EVENT) {
        kind = RL_CFG_SCALAR;
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    } else if (ev->type == YAML_SEQUENCE_START_EVENT) {
        kind = RL_CFG_SEQ;
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
    } else {
        kind = RL_CFG_MAP;
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
    }
    if (anchor)
        return rl_cfg_fail(c, RL_ECONFIG, ev->start_mark.line + 1, ev->start_mark.column + 1,
                           "anchors are not supported");
    if (tag && (rc = rl_cfg_check_tag(c, ev, (const char *)tag, kind, &plain)) != RL_OK)
        return rc;
    n = calloc(1, sizeof *n);
    if (!n)
        return rl_cfg_nomem(c);
    n->kind = kind;
    n->plain = plain;
    n->line = ev->start_mark.line + 1;
    n->col = ev->start_mark.column + 1;
    if (kind == RL_CFG_SCALAR) {
        n->len = ev->data.scalar.length;
        n->text = malloc(n->len + 1);
        if (!n->text) {
            free(n);
            return rl_cfg_nomem(c);
        }
        memcpy(n->text, ev->data.scalar.value, n->len);
        n->text[n->len] = '\0';
    }
    *out = n;
    return RL_OK;
}

int rl_cfg_yaml_load(rl_cfg_ctx *c, const unsigned char *buf, size_t len, rl_cfg_node **root)
{
    yaml_parser_t p;
    yaml_event_t ev;
    rl_cfg_node *stack[RL_CFG_DEPTH_MAX];
    size_t depth = 0;
    int rc = RL_OK, have_event = 0, docs = 0, done = 0;

    *root = NULL;
    /* With the encoding fixed libyaml no longer skips a UTF-8 byte order
     * mark itself; editors on some systems write one. */
    if (len >= 3 && buf[0] == 0xef && buf[1] == 0xbb && buf[2] == 0xbf) {
        buf += 3;
        len -= 3;
    }
    if (!yaml_parser_initialize(&p))
        return rl_cfg_nomem(c);
    /* Never guess: without this a UTF-16 byte order mark would switch
     * libyaml to UTF-16 and the "UTF-8 only" promise would not hold. */
    yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);
    yaml_parser_set_input_string(&p, buf, len);
    while (!done) {
        rl_cfg_node *n = NULL;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = rl_cfg_syntax_error(c, &p, buf, len);
            goto out;
        }
        have_event = 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (docs++) {
                rc = rl_cfg_fail(c, RL_ECONFIG, ev.start_mark.line + 1, ev.start_mark.column + 1,
                                 "only one document is allowed");
                goto out;
            }
            break;
        case YAML_ALIAS_EVENT:
            rc = rl_cfg_fail(c, RL_ECONFIG, ev.start_mark.line + 1, ev.start_mark.column + 1,
                             "aliases are not supported");
            goto out;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (ev.type != YAML_SCALAR_EVENT && depth == RL_CFG_DEPTH_MAX) {
                rc = rl_cfg_fail(c, RL_ECONFIG, ev.start_mark.line + 1, ev.start_mark.column + 1,
                                 "nesting too deep (more than %d levels)", RL_CFG_DEPTH_MAX);
                goto out;
            }
            if ((rc = rl_cfg_make_node(c, &ev, &n)) != RL_OK)
                goto out;
            if (depth == 0) {
                *root = n;
                /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): depth > 0 means stack[depth - 1] was pushed; libyaml never emits an END event without its START */
            } else if (rl_cfg_add_kid(stack[depth - 1], n) != RL_OK) {
                rl_cfg_node_free(n);
                rc = rl_cfg_nomem(c);
                goto out;
            }
            if (ev.type != YAML_SCALAR_EVENT)
                stack[depth++] = n;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        have_event = 0;
    }
out:
    if (have_event)
        yaml_event_delete(&ev);
    yaml_parser_delete(&p);
    if (rc != RL_OK) {
        rl_cfg_node_free(*root);
        *root = NULL;
    }
    return rc;
}
