// The manifest is written on every invocation that may run something (never by --list), so its
// command line and commit are those of the latest one.
#include "sweep/manifest.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/version.h"

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
  const auto lock_path = out_dir / "sweep.lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw RuntimeError(fmt::format("cannot open {}: {}", lock_path.string(), std::strerror(errno)));
  if (::flock(fd, LOCK_EX) != 0) {
    const int err = errno;
    ::close(fd);
    throw RuntimeError(fmt::format("cannot lock {}: {}", lock_path.string(), std::strerror(err)));
  }
  try {
    write_file_atomic(out_dir / "sweep.json", manifest.dump(2) + "\n");
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);  // releases the lock
}

}  // namespace skillrun
