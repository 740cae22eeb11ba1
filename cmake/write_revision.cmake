# Writes OUT (a header defining FLEETWATCH_REVISION) from the source tree's git commit, only when
# it changed, so that a new commit rebuilds build_info.cc and nothing else. Run at every build
# (cmake -P, with SOURCE_DIR and OUT). A tree without git (a release tarball) says "unknown".
execute_process(
  COMMAND git -C "${SOURCE_DIR}" rev-parse --short=12 HEAD
  OUTPUT_VARIABLE revision OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE failed ERROR_QUIET)
if(failed OR revision STREQUAL "")
  set(revision "unknown")
endif()
set(text "#pragma once\n#define FLEETWATCH_REVISION \"${revision}\"\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
