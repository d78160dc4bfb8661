/*
 * bytes.h - little-endian 64-bit words in blobs (bucket states, lease
 * bodies): the same bytes on every machine that shares a database file.
 */
#ifndef RL_BYTES_H
#define RL_BYTES_H

#include <stdint.h>

static inline void rl_put64(unsigned char *p, uint64_t v)
{
    int i;
    for (i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t rl_get64(const unsigned char *p)
{
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#endif
