# Provenance: src/core/version.cpp is regenerated at every build with the git commit,
# so summary.json never reports a stale commit. Written only when it changes.
set(SKILLRUN_VERSION_CPP ${CMAKE_CURRENT_BINARY_DIR}/generated/version.cpp)
add_custom_target(skillrun_version_gen
  COMMAND ${CMAKE_COMMAND} -DSRC_DIR=${CMAKE_CURRENT_SOURCE_DIR} -DOUT=${SKILLRUN_VERSION_CPP}
          -DVERSION=${PROJECT_VERSION} -P ${CMAKE_CURRENT_SOURCE_DIR}/cmake/WriteVersion.cmake
  BYPRODUCTS ${SKILLRUN_VERSION_CPP}
  COMMENT "skillrun: stamping git commit")
