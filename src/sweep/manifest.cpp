// The manifest is written on every invocation that may run something (never by --list), so its
// command line and commit are those of the latest one.
#include "sweep/manifest.h"

#include <optional>
#include <set>

#include <fmt/format.h>

#include "config/experiment.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/version.h"
#include "sweep/run_status.h"

namespace skillrun {
namespace {

namespace fs = std::filesystem;

constexpr const char* kManifestFile = "sweep.json";
constexpr const char* kManifestLockFile = "sweep.json.lock";  // writers of sweep.json take turns
constexpr const char* kSweepLockFile = "sweep.lock";          // held while a sweep runs

// What a sweep writes into its output directory besides the run directories.
bool is_sweep_bookkeeping(const std::string& name, bool directory) {
  if (directory) return name == "packs";
  return name == kSweepLockFile || name == kManifestLockFile || name == "multirun.json" || name.ends_with(".tmp");
}

// Whether dir/sweep.json is a sweep's manifest (what sweep_manifest writes), not a user's file.
bool holds_manifest(const fs::path& dir) {
  try {
    const nlohmann::json m = read_json_file((dir / kManifestFile).string());
    return m.is_object() && m.contains("runs") && m["runs"].is_array() && m.contains("sweep_file") &&
           m.contains("command_line");
  } catch (const std::exception&) {
    return false;  // absent, unreadable or no JSON: no manifest
  }
}

}  // namespace

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
  const FileLock lock = FileLock::acquire(out_dir / kManifestLockFile);
  write_file_atomic(out_dir / kManifestFile, manifest.dump(2) + "\n");
}

void check_sweep_directory(const fs::path& out_dir, const Sweep& sweep) {
  std::error_code ec;
  if (!fs::is_directory(out_dir, ec)) {
    if (fs::exists(out_dir, ec))
      throw UsageError(fmt::format("{} exists and is not a directory; choose another --out", out_dir.string()));
    return;
  }
  if (holds_manifest(out_dir)) return;
  std::set<std::string> run_names;
  for (const SweepRun& run : sweep.runs) run_names.insert(run.name);
  for (auto it = fs::directory_iterator(out_dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const bool directory = it->is_directory(ec);
    if (is_sweep_bookkeeping(name, directory) || (directory && (run_names.contains(name) || holds_run(it->path()))))
      continue;
    // Another task of the same array may have written its manifest since the check above (the
    // tasks start together): a manifest seen now is a sweep's too.
    if (name == kManifestFile && !directory && holds_manifest(out_dir)) continue;
    throw UsageError(fmt::format("{} is not empty and holds no sweep (it has {}{}); refusing to write a sweep into "
                                 "it (nothing was changed): choose an empty or new --out",
                                 out_dir.string(), name,
                                 name == kManifestFile ? ", which is no sweep's manifest" : ""));
  }
  if (ec) throw UsageError(fmt::format("cannot read {}: {}", out_dir.string(), ec.message()));
}

FileLock lock_sweep_directory(const fs::path& out_dir, bool whole, const std::string& note) {
  const fs::path file = out_dir / kSweepLockFile;
  std::optional<FileLock> lock = whole ? FileLock::try_acquire(file) : FileLock::try_acquire_shared(file);
  if (!lock) {
    const std::string holder = lock_holder_note(file);
    throw UsageError(fmt::format("{} is being written by another skillrun sweep{}; nothing was changed. Wait for it "
                                 "to end (or stop it), or choose another --out",
                                 out_dir.string(), holder.empty() ? "" : " (" + holder + ")"));
  }
  lock->describe_holder(note);
  return std::move(*lock);
}

}  // namespace skillrun
