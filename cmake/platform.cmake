# The platforms rl supports, checked before anything is built: Linux with
# glibc >= 2.30, a 64-bit target, gcc or clang. rl relies on futexes, robust
# process-shared mutexes, pthread_mutex_clocklock (glibc 2.30), /proc and
# __int128; elsewhere it would not build, or would build and misbehave, so
# configuring stops here with the reason.
if(NOT CMAKE_SYSTEM_NAME STREQUAL "Linux")
  message(FATAL_ERROR "rl supports Linux only (it uses futexes, robust process-shared mutexes "
                      "and /proc); this target is ${CMAKE_SYSTEM_NAME}.")
endif()
if(NOT CMAKE_SIZEOF_VOID_P EQUAL 8)
  message(FATAL_ERROR "rl supports 64-bit targets only (it uses __int128); this one has "
                      "${CMAKE_SIZEOF_VOID_P}-byte pointers.")
endif()
if(NOT CMAKE_C_COMPILER_ID MATCHES "^(GNU|Clang)$")
  message(FATAL_ERROR "rl is built with gcc or clang (it uses GNU C attributes, __int128 and "
                      "symbol visibility); this compiler is '${CMAKE_C_COMPILER_ID}'.")
endif()

# glibc >= 2.30: its version as the compiler sees it, read from a built object
# (no program is run, so a cross build is checked too).
set(rl_glibc_min 2.30)
if(NOT RL_GLIBC_VERSION OR RL_GLIBC_VERSION VERSION_LESS rl_glibc_min)
  try_compile(rl_glibc_ok ${CMAKE_CURRENT_BINARY_DIR}/CMakeFiles/rl_glibc
              ${CMAKE_CURRENT_LIST_DIR}/glibc_version.c
              COPY_FILE ${CMAKE_CURRENT_BINARY_DIR}/CMakeFiles/rl_glibc/glibc_version.bin
              OUTPUT_VARIABLE rl_glibc_log)
  set(rl_glibc_found "")
  if(rl_glibc_ok)
    file(STRINGS ${CMAKE_CURRENT_BINARY_DIR}/CMakeFiles/rl_glibc/glibc_version.bin rl_glibc_found
         REGEX "RL_GLIBC_VERSION\\[[0-9]+\\.[0-9]+\\]" LIMIT_COUNT 1)
    string(REGEX REPLACE ".*RL_GLIBC_VERSION\\[([0-9]+\\.[0-9]+)\\].*" "\\1" rl_glibc_found
           "${rl_glibc_found}")
  endif()
  if(NOT rl_glibc_found)
    message(FATAL_ERROR "rl needs glibc >= ${rl_glibc_min}; this C library is not glibc "
                        "(__GLIBC__ is not defined).")
  endif()
  if(rl_glibc_found VERSION_LESS rl_glibc_min)
    message(FATAL_ERROR "rl needs glibc >= ${rl_glibc_min} (pthread_mutex_clocklock); this one "
                        "is ${rl_glibc_found}.")
  endif()
  set(RL_GLIBC_VERSION ${rl_glibc_found} CACHE INTERNAL "glibc version, as the compiler sees it")
  message(STATUS "rl: glibc ${RL_GLIBC_VERSION}")
endif()
