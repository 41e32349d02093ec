// A per-process scratch directory for the library-level tests: <tmp>/skillrun_<name>_<pid>,
// removed first so a crashed earlier run leaves nothing behind.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

namespace skillrun_test {

// Empty and present (create) or absent (a run directory the code under test creates itself).
inline std::filesystem::path fresh_temp_dir(const std::string& name, bool create = true) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("skillrun_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  if (create) std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace skillrun_test
