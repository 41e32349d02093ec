// What a sweep knows about one run directory, read from files only, so that any process on any
// node (a Slurm array task, `sweep --list` on the login node) agrees: summary.json written by
// `skillrun run`, failed.json written by the sweep when the run process failed, config.json
// (the resolved config the run was started with) and run.lock (io/run_dir.h).
#pragma once
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "io/run_dir.h"
#include "sweep/sweep.h"

namespace skillrun {

enum class SweepRunState {
  Pending,      // no summary.json: never started (or killed before it wrote one)
  Running,      // summary says running: live elsewhere, or killed hard; resumed
  Interrupted,  // stopped by a signal with a checkpoint; resumed
  Incomplete,   // summary.json unreadable or with an unknown status; resumed
  Done,         // converged or max_steps: a result, never run again
  Diverged,     // a non-finite loss: also a result, never run again
  Failed,       // the run process exited non-zero (failed.json) or recorded status "failed" in its
                // summary (run by hand); re-run only with --retry-failed
};
const char* to_string(SweepRunState s);
// Done and Diverged: the run is finished and the sweep skips it.
bool is_result(SweepRunState s);

struct RunDirState {
  SweepRunState state = SweepRunState::Pending;
  std::string detail;  // "converged, 450 steps", "exit 1: <last line of output>", ...
};

// Classifies dir. A finished summary wins over a failed marker; a failed marker wins over an
// unfinished summary (a run killed by a signal leaves summary status "running").
RunDirState inspect_run(const std::filesystem::path& dir);

// Where a run stands, for `skillrun status`: its state, who writes it now, its last whole
// metrics row and its recent pace. Reads the end of metrics.csv only (last_metrics_rows).
struct RunProgress {
  RunDirState state;
  std::optional<std::string> writer;  // the live process holding its lock (run_writer); empty: none
  int64_t step = 0;                   // the step of the last whole metrics row
  int64_t max_steps = 0;              // config.json's train.max_steps; 0 when unknown
  double seconds = 0;                 // wall_s of that row
  std::optional<double> steps_per_second;  // live: over the last rows (up to 10); else the run's average
  std::optional<std::string> unreadable;   // why the directory or its metrics.csv cannot be read
};
// Never throws for what it finds in dir: what it cannot read is in `unreadable`.
RunProgress progress_of(const std::filesystem::path& dir);
// A state for people: "unreadable"; a finished run's state (done, diverged) whatever holds its
// lock; "running" (a process holds the lock); "killed" (summary says running, nobody holds the
// lock); else to_string(state).
std::string describe_state(const RunProgress& p);

// How the run process ended when it failed, recorded in dir/failed.json.
struct RunFailure {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string output_tail;  // the last lines of its stdout+stderr
};
void write_failed_marker(const std::filesystem::path& dir, const RunFailure& failure);
void remove_failed_marker(const std::filesystem::path& dir);

// Run directories are named after the axes in the order the sweep file writes them; written in
// another order, the same runs would get new names and run again. So a run whose directory
// out_dir/<name> holds no config yet takes the name of a directory of out_dir that holds its
// resolved config under another name (and is no other run's name). Returns one line per run
// renamed, "<new name> -> <directory>", for the user.
std::vector<std::string> adopt_existing_run_directories(Sweep& sweep, const std::filesystem::path& out_dir);

}  // namespace skillrun
