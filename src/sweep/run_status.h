// What a sweep knows about one run directory, read from files only, so that any process on any
// node (a Slurm array task, `sweep --list` on the login node) agrees: summary.json written by
// `skillrun run`, failed.json written by the sweep when the run process failed, config.json
// (the resolved config the run was started with) and run.lock (held while a sweep runs it).
#pragma once
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "io/run_dir.h"

namespace skillrun {

enum class SweepRunState {
  Pending,      // no summary.json: never started (or killed before it wrote one)
  Running,      // summary says running: live elsewhere, or killed hard; resumed
  Interrupted,  // stopped by a signal with a checkpoint; resumed
  Incomplete,   // summary.json unreadable or with an unknown status; resumed
  Done,         // converged or max_steps: a result, never run again
  Diverged,     // a non-finite loss: also a result, never run again
  Failed,       // the run process exited non-zero (failed.json); re-run only with --retry-failed
};
const char* to_string(SweepRunState s);
// Done and Diverged: the run is finished and the sweep skips it.
bool is_result(SweepRunState s);

struct RunDirState {
  SweepRunState state = SweepRunState::Pending;
  std::string detail;  // "converged, 450 steps", "exit 1: <last line of output>", ...
};

// Classifies dir. A finished summary wins over a failed marker; a failed marker wins over an
// unfinished summary (a run that exited 1 leaves summary status "running").
RunDirState inspect_run(const std::filesystem::path& dir);

// How the run process ended when it failed, recorded in dir/failed.json.
struct RunFailure {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string output_tail;  // the last lines of its stdout+stderr
};
void write_failed_marker(const std::filesystem::path& dir, const RunFailure& failure);
void remove_failed_marker(const std::filesystem::path& dir);


// An exclusive flock on a file, released when the last descriptor sharing it closes (also on
// kill -9). A sweep holds dir/run.lock while the run process lives, and the run process
// inherits it, so two sweeps (say a local one and a Slurm array task) never run the same
// directory at once.
class FileLock {
 public:
  // Waits for the lock.
  static FileLock acquire(const std::filesystem::path& file);
  // Empty when another process holds it.
  static std::optional<FileLock> try_acquire(const std::filesystem::path& file);
  FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileLock& operator=(FileLock&&) = delete;
  FileLock(const FileLock&) = delete;
  ~FileLock();
  int fd() const { return fd_; }  // opened O_CLOEXEC: the launcher passes it to one child only

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  static std::optional<FileLock> lock(const std::filesystem::path& file, bool wait);
  int fd_ = -1;
};

// The lock a sweep holds while it runs the run in dir.
inline std::optional<FileLock> try_lock_run(const std::filesystem::path& dir) {
  return FileLock::try_acquire(dir / "run.lock");
}

}  // namespace skillrun
