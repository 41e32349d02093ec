// Provenance of the binary: written into every run's summary.json and log header.
#pragma once
namespace skillrun {
const char* git_commit();  // short hash, "-dirty" when the tree had local changes at build time
const char* version();     // project version from CMakeLists.txt
}  // namespace skillrun
