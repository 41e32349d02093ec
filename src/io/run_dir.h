// A run is a directory: config.json (resolved), metrics.csv (one row per eval, flushed each
// time), summary.json (status, T_k, timings, provenance) and run.log. Analysis reads only these.
#pragma once
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/file_lock.h"

namespace skillrun {

// Terminal state of a run, as written in summary.json.
// Failed: the run process stopped on an error (I/O, a numerical library); `message` says which,
// and --resume continues it from its newest checkpoint.
enum class RunStatus { Running, Converged, MaxSteps, Diverged, Interrupted, Failed };
const char* to_string(RunStatus s);

// One eval row of metrics.csv.
struct MetricsRow {
  int64_t step = 0;
  double wall_seconds = 0;
  std::optional<double> train_loss_bits;  // empty at step 0 (no batch trained on yet)
  double mean_loss_bits = 0;              // sum_k p_k loss_k
  std::vector<double> loss_bits;          // per subtask
  std::vector<double> accuracy;           // per subtask
};

struct RunSummary {
  RunStatus status = RunStatus::Running;
  int64_t steps = 0;
  std::vector<std::optional<int64_t>> T_k;  // first eval step with loss_k <= tau; empty if not
  double tau_bits = 0;
  double seconds = 0;
  std::string device;
  std::string message;  // why it stopped, in words (divergence details, signal)
  // Task-specific results merged into summary.json (icl_linreg: steps_to_epsilon, ...).
  // T_k and tau_bits are written only when T_k is not empty (sparse_parity).
  nlohmann::json extra = nlohmann::json::object();
};

enum class RunDirMode {
  Fresh,   // refuse (UsageError) a directory that already holds a run: nothing is overwritten
  Resume,  // accept one: the caller continues it from a checkpoint
};

// The lock file of a run directory: one process writes a run at a time. A sweep takes it before
// it starts the run process and passes it on, naming the descriptor in this variable (a pack's
// process gets one per run, comma-separated; each directory adopts the one of its own file).
inline constexpr const char* kRunLockFile = "run.lock";
inline constexpr const char* kRunLockFdVariable = "SKILLRUN_RUN_LOCK_FD";
// The run lock of dir, or empty when another process holds it.
inline std::optional<FileLock> try_lock_run(const std::filesystem::path& dir) {
  return FileLock::try_acquire(dir / kRunLockFile);
}

class RunDirectory {
 public:
  // Creates `path` (and parents) and takes its run lock (or adopts the one a sweep passed down)
  // before anything is written. Refuses (UsageError, nothing written): a directory another
  // process is writing; a non-empty directory that is not a run (someone's own files); with
  // Fresh, a directory that already holds a run.
  explicit RunDirectory(std::filesystem::path path, RunDirMode mode = RunDirMode::Fresh);
  ~RunDirectory();
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path log_path() const { return path_ / "run.log"; }

  // Throws RuntimeError when `path` no longer names the directory this object locked: it was
  // deleted (rm -rf while the run trained), renamed, or replaced by another directory (its
  // run.lock is not the file whose lock we hold; that file stays open, so its inode is never
  // reused). Every write below checks this first and creates nothing when it fails, so a run
  // whose directory vanished stops with an error instead of recreating it as a finished run.
  void check_in_place() const;
  // Runs `write` (something that writes into the directory: a checkpoint) after
  // check_in_place; when it throws and the directory is gone meanwhile, that is the error.
  template <class Write>
  void guarded_write(Write&& write) const {
    check_in_place();
    try {
      write();
    } catch (const std::exception&) {
      check_in_place();  // a write torn by the deletion says why it failed
      throw;
    }
  }

  void write_config(const nlohmann::json& resolved);
  // Writes the header; n_tasks fixes the number of loss_k / acc_k columns. With keep_through,
  // an existing metrics.csv keeps its rows up to that step (whole lines only) and is appended
  // to: a resumed run then rewrites exactly the rows after its checkpoint.
  void open_metrics(int n_tasks, std::optional<int64_t> keep_through = std::nullopt);
  // The general form: `columns` after the leading step and wall_s columns.
  void open_metrics_columns(const std::vector<std::string>& columns,
                            std::optional<int64_t> keep_through = std::nullopt);
  // Appends one row and flushes it to the OS, so a killed run leaves a valid prefix.
  void append_metrics(const MetricsRow& row);
  // A row of open_metrics_columns: step, wall_s, then one value per column (%.9g; NaN is "nan").
  void append_metrics_values(int64_t step, double wall_seconds, const std::vector<double>& values);
  void write_summary(const RunSummary& s);
  // A side table of the run (spectra.csv): `file` in the directory, starting with `header`.
  // Fresh: written with the header alone. With keep_through, an existing file keeps its whole
  // lines whose first field (the step) is <= keep_through, as metrics.csv does on a resume.
  void open_table(const std::string& file, const std::string& header, std::optional<int64_t> keep_through);
  // Appends `lines` (each ending in a newline) to it and flushes them.
  void append_table(const std::string& file, const std::string& lines);
  // Marks the run failed in summary.json (status "failed", `message`), keeping what the last
  // summary recorded (steps, T_k); best effort, since the failure may be the disk itself.
  void record_failure(const std::string& message) noexcept;

 private:
  std::filesystem::path path_;
  std::optional<FileLock> lock_;
  void write_metrics_line(fmt::memory_buffer& line);  // appends the newline, writes, flushes
  void open_metrics_file(const std::vector<std::string>& columns, std::optional<int64_t> keep_through);
  std::FILE* metrics_ = nullptr;
};

// Whether dir holds (the beginning of) a run: config.json, metrics.csv, summary.json or checkpoint/.
bool holds_run(const std::filesystem::path& dir);

// The step of the last whole row of dir/metrics.csv before any torn or malformed line (a warning
// names the file and line of a malformed one when `warn`); empty when there is no such row.
std::optional<int64_t> last_whole_metrics_step(const std::filesystem::path& run_dir, bool warn);

// (step, wall_s) of the last whole rows of dir/metrics.csv, at most `count`, in file order: read
// from the end of the file backwards (and its header line), so that a run's progress costs the
// same at any length of run. A torn last line is left out; going back, the rows end at a
// malformed one (or a step that does not grow). Empty without metrics.csv or whole rows; throws
// RuntimeError naming the file when it is there but cannot be read (or is no regular file).
// Resuming needs the stricter last_whole_metrics_step, which reads every row.
std::vector<std::pair<int64_t, double>> last_metrics_rows(const std::filesystem::path& run_dir, std::size_t count);

// Who is writing dir now, or empty when no process holds its run.lock: the note in run.lock
// ("pid 12, started by pid 10, skillrun sweep x") when it names the process that holds the
// lock, else that process and the note ("pid 77; run.lock names another: pid 12"). Read only:
// never creates run.lock, never takes the lock from anyone.
std::optional<std::string> run_writer(const std::filesystem::path& dir);

// Walks root and every directory under it, depth first in name order, for `skillrun status`
// and `skillrun analyze` alike: visit(dir) says whether to look inside dir. A symbolic link to a
// directory is visited but never entered (a loop of links cannot trap the walk); a directory
// that cannot be listed is given to unreadable(dir, reason), and the walk goes on.
void walk_run_tree(const std::filesystem::path& root, const std::function<bool(const std::filesystem::path&)>& visit,
                   const std::function<void(const std::filesystem::path&, const std::string&)>& unreadable);

// path/summary.json as an object, or empty when it is absent or unreadable.
std::optional<nlohmann::json> read_summary(const std::filesystem::path& run_dir);
// Its "status", or empty when it has none.
std::optional<std::string> status_of(const nlohmann::json& summary);
// The status recorded in path/summary.json, or empty when there is none (or it is unreadable).
std::optional<std::string> recorded_status(const std::filesystem::path& run_dir);
// A run with this status ended and must not be run again: converged, max_steps, diverged.
bool is_finished_status(const std::string& status);

// run_dir/config.json resolved again (parse_experiment, to_json), so that keys added with
// defaults since it was written, and a config written by hand, compare by meaning; empty when
// there is no config.json; throws ConfigError/UsageError when it is not a valid config.
std::optional<nlohmann::json> resolved_config_of(const std::filesystem::path& run_dir);

// Empty when run_dir/config.json is absent or, both resolved again (so keys added with defaults
// since it was written compare equal), equal to `resolved`; else the differing keys, e.g.
// "optimizer.lr (0.01 in the directory, 0.02 here)" with here = "here".
std::optional<std::string> config_difference(const std::filesystem::path& run_dir, const nlohmann::json& resolved,
                                             std::string_view here = "here");

// Default run directory for a config name (the CLI adds what --set changed): runs/<name>-<YYYYmmdd-HHMMSS>[-N].
std::filesystem::path default_run_path(const std::string& name);

}  // namespace skillrun
