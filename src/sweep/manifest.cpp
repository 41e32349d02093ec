// The manifest is written on every invocation that may run something (never by --list), so its
// command line and commit are those of the latest one.
#include "sweep/manifest.h"

#include "core/error.h"
#include "core/fs.h"
#include "core/version.h"
#include "sweep/run_status.h"

namespace skillrun {

std::vector<std::string> own_command_line() {
  std::vector<std::string> args;
  std::string text;
  try {
    text = read_file("/proc/self/cmdline");
  } catch (const RuntimeError&) {
    return args;
  }
  std::size_t start = 0;
  while (start < text.size()) {
    const auto end = text.find('\0', start);
    args.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return args;
}

nlohmann::ordered_json sweep_manifest(const Sweep& sweep, const std::vector<std::string>& command_line) {
  nlohmann::ordered_json runs = nlohmann::ordered_json::array();
  for (const auto& run : sweep.runs) {
    nlohmann::ordered_json overrides = nlohmann::ordered_json::object();
    for (const auto& o : run.overrides) overrides[o.key] = o.value;
    runs.push_back({{"index", run.index}, {"name", run.name}, {"overrides", overrides}});
  }
  std::error_code ec;
  const std::filesystem::path file = sweep.file.empty() ? sweep.file : std::filesystem::absolute(sweep.file, ec);
  return {
      {"name", sweep.name},
      {"sweep_file", file.string()},
      {"base", sweep.base},
      {"set", sweep.base_overrides},
      {"command_line", command_line},
      {"git_commit", git_commit()},
      {"version", version()},
      {"runs", runs},
  };
}

void write_manifest(const std::filesystem::path& out_dir, const nlohmann::ordered_json& manifest) {
  const FileLock lock = FileLock::acquire(out_dir / "sweep.lock");
  write_file_atomic(out_dir / "sweep.json", manifest.dump(2) + "\n");
}

}  // namespace skillrun
