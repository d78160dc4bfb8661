/*
 * cfg_yaml.h - the small YAML subset tiers files may use, loaded into a
 * tree, and the error reporting all of config/ shares.
 *
 * Guarantees: a tree from rl_cfg_yaml_load has no aliases or anchors, no
 * tags but the standard ones, at most RL_CFG_DEPTH_MAX levels and comes from
 * exactly one document; every node knows its 1-based line and column.
 */
#ifndef RL_CFG_YAML_H
#define RL_CFG_YAML_H

#include <stddef.h>

/* Far more than the format needs (5), and low enough that walking the tree
 * recursively can never exhaust the stack. */
#define RL_CFG_DEPTH_MAX 32

typedef enum { RL_CFG_SCALAR, RL_CFG_SEQ, RL_CFG_MAP } rl_cfg_kind;

typedef struct rl_cfg_node {
    rl_cfg_kind kind;
    size_t line, col;
    /* Scalars. `plain`: unquoted and not tagged !!str, so YAML's implicit
     * typing applies (5 is an integer, "5" a string). text is
     * NUL-terminated but may hold NUL bytes: len is the truth. */
    int plain;
    char *text;
    size_t len;
    /* Sequences: items. Mappings: key, value, key, value... */
    struct rl_cfg_node **kids;
    size_t n, cap;
} rl_cfg_node;

typedef struct rl_cfg_ctx {
    const char *name; /* the file, as it appears in messages */
    char *err;
    size_t errlen;
} rl_cfg_ctx;

/* "NAME:LINE:COL: message" into c->err; returns code. */
int rl_cfg_fail(rl_cfg_ctx *c, int code, size_t line, size_t col, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
/* RL_ECONFIG at node n. */
int rl_cfg_fail_at(rl_cfg_ctx *c, const rl_cfg_node *n, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* RL_ENOMEM with "NAME: out of memory". */
int rl_cfg_nomem(rl_cfg_ctx *c);

/* Parses len bytes into *root; *root is NULL for a stream without any
 * document (empty, or only comments). */
int rl_cfg_yaml_load(rl_cfg_ctx *c, const unsigned char *buf, size_t len, rl_cfg_node **root);
void rl_cfg_node_free(rl_cfg_node *n);

#endif
