# The version has one source, the public header: core/rl.h defines
# RL_VERSION_MAJOR, RL_VERSION_MINOR, RL_VERSION_PATCH and RL_VERSION_STRING,
# which rl_version() returns. This file reads them, before project(), into
# RL_VERSION, so that project(rl VERSION ...) and everything derived from it
# (the SONAME, rl.pc, rlConfigVersion.cmake) follow the header. The header
# stays self-contained: a user, the fuzz harnesses and tests/core/test_header
# compile it without a generated file. To release, edit the four lines there.
set(rl_version_header ${CMAKE_CURRENT_LIST_DIR}/../core/rl.h)
file(STRINGS ${rl_version_header} rl_version_lines
     REGEX "^#define[ \t]+RL_VERSION_(MAJOR|MINOR|PATCH|STRING)[ \t]")
foreach(part MAJOR MINOR PATCH)
  if(NOT rl_version_lines MATCHES "#define[ \t]+RL_VERSION_${part}[ \t]+([0-9]+)")
    message(FATAL_ERROR "core/rl.h: no '#define RL_VERSION_${part} <number>'")
  endif()
  set(rl_version_${part} ${CMAKE_MATCH_1})
endforeach()
set(RL_VERSION "${rl_version_MAJOR}.${rl_version_MINOR}.${rl_version_PATCH}")
if(NOT rl_version_lines MATCHES "#define[ \t]+RL_VERSION_STRING[ \t]+\"([^\"]*)\"")
  message(FATAL_ERROR "core/rl.h: no '#define RL_VERSION_STRING \"<version>\"'")
endif()
if(NOT CMAKE_MATCH_1 STREQUAL RL_VERSION)
  message(FATAL_ERROR "core/rl.h: RL_VERSION_STRING is \"${CMAKE_MATCH_1}\" but "
                      "RL_VERSION_MAJOR/MINOR/PATCH say ${RL_VERSION}")
endif()
unset(rl_version_header)
unset(rl_version_lines)
