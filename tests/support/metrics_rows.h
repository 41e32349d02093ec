// The rows of a run's metrics.csv without their wall_s column (the second), which differs run to
// run: what "the same run, bit for bit" compares.
#pragma once
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "core/fs.h"

namespace skillrun::testing {

inline std::vector<std::string> metrics_rows(const std::filesystem::path& run_dir) {
  std::istringstream in(read_file(run_dir / "metrics.csv"));
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find(','), second = line.find(',', first + 1);
    out.push_back(line.substr(0, first) + line.substr(second));
  }
  return out;
}

}  // namespace skillrun::testing
