# Race checking (included by the top CMakeLists.txt).
#
# Clang checks the lock annotations of src/util/thread_annotations.h at compile time
# (-Wthread-safety, an error under FLEETWATCH_WERROR); GCC has no such analysis and the
# annotations expand to nothing there.
#
# FLEETWATCH_TSAN: ThreadSanitizer (clang only). `make test` builds the threaded suites with it in
# build/tsan and runs them after the ASan suite; tsan_suppressions.txt (next to this file) names
# the third-party code whose reports are not ours to fix.
option(FLEETWATCH_TSAN "Build with ThreadSanitizer (clang)" OFF)

if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  add_compile_options(-Wthread-safety)
endif()

if(FLEETWATCH_TSAN)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "FLEETWATCH_TSAN needs clang (e.g. -DCMAKE_CXX_COMPILER=clang++-14)")
  endif()
  if(FLEETWATCH_SANITIZE)
    message(FATAL_ERROR "FLEETWATCH_TSAN and FLEETWATCH_SANITIZE (ASan) exclude each other")
  endif()
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()
