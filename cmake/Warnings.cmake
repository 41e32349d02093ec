# Warnings applied to skillrun's own C++ targets (not to third-party code).
add_library(skillrun_warnings INTERFACE)
target_compile_options(skillrun_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow=local>)
