/* Built by cmake/platform.cmake, never run: the C library's version, as the
 * compiler sees it, is read back from the object as a string. */
#include <stdio.h>

#ifndef __GLIBC__
#error "not glibc"
#endif

#define RL_STR_(x) #x
#define RL_STR(x) RL_STR_(x)

const char rl_glibc_version[] =
    "RL_GLIBC_VERSION[" RL_STR(__GLIBC__) "." RL_STR(__GLIBC_MINOR__) "]";

int main(int argc, char **argv)
{
    (void)argv;
    return rl_glibc_version[argc];
}
