// `skillrun run` and `skillrun validate`: config -> backend -> trainer -> run directory, then
// the per-subtask result table on stdout.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <memory>
#include <cstdio>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/strings.h"
#include "core/version.h"
#include "io/run_dir.h"
#include "sweep/packing.h"  // fit_pack
#include "sweep/sweep.h"  // format_sweep_value, safe_path_component
#include "train/icl_trainer.h"
#include "train/trainer.h"

namespace skillrun {
namespace {

extern "C" void on_stop_signal(int) { g_stop_requested.store(true); }

// The signals that stop a run at the next step boundary: on_stop_signal while it runs, SIG_DFL after.
void set_stop_signals(void (*handler)(int)) {
  for (int sig : {SIGINT, SIGTERM, SIGUSR1}) std::signal(sig, handler);
}

void print_result_table(const Trainer& trainer, const RunSummary& s, const EvalResult& last,
                        const RunDirectory& dir) {
  const Task& task = trainer.task();
  // S_k: a sparse-parity task's subset; an assoc_memory group's facts (0-based, by frequency rank).
  const auto* parity = dynamic_cast<const SparseParityTask*>(&task);
  const int k_bits = parity ? static_cast<int>(parity->subsets().size()) / task.n_tasks() : 0;
  const int per_group = parity ? 0 : task.input_dim() / task.n_tasks();
  std::printf("\nrun: %s  status: %s  steps: %lld  %.1f s  device: %s\n", dir.path().c_str(), to_string(s.status),
              static_cast<long long>(s.steps), s.seconds, s.device.c_str());
  std::printf("%7s  %8s  %-16s  %9s  %12s  %9s\n", "subtask", "p_k", "S_k", "T_k", "loss (bits)", "accuracy");
  for (int k = 0; k < task.n_tasks(); ++k) {
    std::string subset = fmt::format("facts {}-{}", k * per_group, (k + 1) * per_group - 1);
    if (parity) {
      const auto first = parity->subsets().begin() + static_cast<std::ptrdiff_t>(k) * k_bits;
      subset = fmt::format("{{{}}}", fmt::join(first, first + k_bits, ","));
    }
    const std::string t = s.T_k[k] ? std::to_string(*s.T_k[k]) : std::string("-");
    if (last.loss_bits.empty())  // interrupted before any eval of this process
      std::printf("%7d  %8.4f  %-16s  %9s  %12s  %9s\n", k, task.frequencies()[k], subset.c_str(), t.c_str(), "-", "-");
    else
      std::printf("%7d  %8.4f  %-16s  %9s  %12.4f  %9.4f\n", k, task.frequencies()[k], subset.c_str(), t.c_str(),
                  last.loss_bits[k], last.accuracy[k]);
  }
  std::printf("tau = %g bits; T_k = first eval step with loss_k <= tau (\"-\": not reached)\n", s.tau_bits);
}

// The log line that says what trains: the sparse-parity wording as before.
void log_model_and_task(std::size_t parameters, const TaskConfig& task, const char* per_run) {
  if (task.type == TaskType::AssocMemory) {
    spdlog::info("model: linear, {} parameters{}; task: assoc_memory, {} facts in {} groups, {} answers, dim {}, "
                 "zipf exponent {}, label noise {}, {} embeddings",
                 parameters, per_run, task.n_facts, task.n_groups, task.n_answers, task.dim, task.zipf_exponent,
                 task.label_noise, task.embeddings);
    return;
  }
  spdlog::info("model: {} parameters{}; task: {} subtasks, {} bits, k = {}, zipf exponent {}", parameters, per_run,
               task.n_tasks, task.n_bits, task.k, task.zipf_exponent);
}

void report_end(const RunSummary& summary) {
  if (summary.status == RunStatus::Diverged)
    spdlog::error("run diverged: {}", summary.message);
  else if (summary.status == RunStatus::Interrupted)
    spdlog::warn("{}", summary.message);
  else
    spdlog::info("run ended ({}): {}", to_string(summary.status), summary.message);
}

void print_icl_result(const RunSummary& s, const RunDirectory& dir) {
  std::printf("\nrun: %s  status: %s  steps: %lld  %.1f s  device: %s\n", dir.path().c_str(), to_string(s.status),
              static_cast<long long>(s.steps), s.seconds, s.device.c_str());
  const auto& x = s.extra;
  // "-" where there is no value (no eval yet, or never reached).
  const auto show = [&](const char* key, const char* format) {
    const auto it = x.find(key);
    return it == x.end() || !it->is_number() ? std::string("-") : fmt::format(fmt::runtime(format), it->get<double>());
  };
  std::printf("loss %s -> %s  relative distance %s  steps to epsilon = %s: %s\n", show("initial_loss", "{:.6e}").c_str(),
              show("final_loss", "{:.6e}").c_str(), show("final_relative_distance", "{:.3e}").c_str(),
              show("epsilon", "{:g}").c_str(), show("steps_to_epsilon", "{:.0f}").c_str());
}

// Everything after the directory is locked and the backend made: a failure here is recorded in
// the run directory by the caller.
int run_in(RunDirectory& dir, Backend& backend, const ExperimentConfig& config, const nlohmann::json& resolved,
           const RunOptions& options) {
  spdlog::info("skillrun {} (commit {}), run {} -> {}", version(), git_commit(), config.name, dir.path().string());
  spdlog::info("backend: {}", backend.name());
  dir.write_config(resolved);
  if (config.is_icl()) {
    if (options.resume && std::filesystem::exists(dir.path() / "metrics.csv"))
      spdlog::info("icl_linreg runs keep no checkpoint; running {} again from Q_0", dir.path().string());
    Progress progress(detect_progress_mode(options.no_progress), config.train.max_steps, 1);
    const RunSummary summary = run_icl(backend, config, dir, progress);
    set_stop_signals(SIG_DFL);
    report_end(summary);
    print_icl_result(summary, dir);
    return summary.status == RunStatus::Interrupted ? kExitInterrupted : kExitOk;
  }

  Trainer trainer(backend, config);
  for (const std::string& line : trainer.optimizer().describe()) spdlog::info("optimizer: {}", line);
  log_model_and_task(trainer.model().parameter_count(), config.task, "");
  std::optional<CheckpointState> checkpoint;
  if (options.resume) checkpoint = trainer.checkpoint_to_resume(dir.path());

  Progress progress(detect_progress_mode(options.no_progress), config.train.max_steps, config.task.streams());
  const RunSummary summary = trainer.run(dir, progress, checkpoint ? &*checkpoint : nullptr);
  set_stop_signals(SIG_DFL);

  report_end(summary);
  print_result_table(trainer, summary, trainer.last_eval(), dir);
  return summary.status == RunStatus::Interrupted ? kExitInterrupted : kExitOk;
}

// What --set changed, for the default run directory's name: "optimizer.lr=0.001,optimizer.type=adam",
// the keys the --set options write (objects flattened into their dotted keys; what a later --set
// replaced is gone) whose values in the resolved config differ from those of the config file
// alone, in key order, with the values of the resolved config as sweep run names write them.
// Keys that only took their defaults (adam's beta1 when the type changed) are left out. Empty
// when nothing changed, or when `name` did (the name says it).
// The resolved config of the file without --set ({} for a file that is valid only with --set).
nlohmann::json config_without_overrides(const CommonOptions& options) {
  try {
    CommonOptions alone = options;
    alone.overrides.clear();
    return to_json(load_config(alone));
  } catch (const std::exception&) {
    return nlohmann::json::object();
  }
}

std::string overrides_label(const CommonOptions& options, const nlohmann::json& resolved,
                            const nlohmann::json& before) {
  if (options.overrides.empty()) return "";
  nlohmann::json written = nlohmann::json::object();
  for (const std::string& assignment : options.overrides) apply_override(written, assignment);
  std::string label;
  const nlohmann::json leaves = written.flatten();  // {"/optimizer/lr": 0.001, ...}
  for (const auto& [pointer, value] : leaves.items()) {
    (void)value;
    const nlohmann::json::json_pointer at(pointer);
    if (!resolved.contains(at) || (before.contains(at) && before.at(at) == resolved.at(at))) continue;
    if (pointer == "/name") return "";
    std::string key = pointer.substr(1);
    std::replace(key.begin(), key.end(), '/', '.');
    label += (label.empty() ? "" : ",") + key + "=" + format_sweep_value(resolved.at(at));
  }
  return label;
}

}  // namespace

namespace {
// A run of a pack whose own error (its directory, files, config) shows before the pack trains:
// recorded failed in its directory and left out; the others train.
void leave_out_of_pack(RunDirectory& dir, const std::exception& e) {
  spdlog::error("{}: {}; the run is left out of the pack", dir.path().string(), e.what());
  dir.record_failure(e.what());
}

struct PackEnd {
  bool interrupted = false;
  bool failed = false;  // a run of it failed (its summary says why)
};

// Trains runs [first, last) of `dirs` as one pack. A run whose directory cannot be resumed
// (unreadable metrics, checkpoints) fails alone before the pack forms; the others train.
PackEnd train_pack(Backend& backend, const std::vector<ExperimentConfig>& configs,
                   const std::vector<std::unique_ptr<RunDirectory>>& dirs, std::size_t first, std::size_t last,
                   bool no_progress) {
  PackEnd end;
  std::vector<ExperimentConfig> part;
  std::vector<RunDirectory*> dir_ptrs;
  std::vector<std::optional<CheckpointState>> checkpoints;
  for (std::size_t i = first; i < last; ++i) {
    RunDirectory& dir = *dirs[i];
    LogScope scope(dir.path().native());
    try {
      dir.write_config(to_json(configs[i]));
      checkpoints.push_back(checkpoint_to_resume(dir.path(), configs[i]));
    } catch (const std::exception& e) {
      leave_out_of_pack(dir, e);
      end.failed = true;
      continue;
    }
    part.push_back(configs[i]);
    dir_ptrs.push_back(&dir);
  }
  if (part.empty()) return end;
  Trainer trainer(backend, part);
  for (std::size_t i = 0; i < part.size(); ++i) {
    LogScope scope(dir_ptrs[i]->path().native());
    for (const std::string& line : trainer.optimizer(static_cast<int>(i)).describe())
      spdlog::info("{}: optimizer: {}", dir_ptrs[i]->path().filename().string(), line);
  }
  std::vector<const CheckpointState*> resume;
  for (const auto& c : checkpoints) resume.push_back(c ? &*c : nullptr);
  const ExperimentConfig& shared = part.front();
  log_model_and_task(trainer.model().parameter_count(), shared.task, " per run");
  Progress progress(detect_progress_mode(no_progress), shared.train.max_steps,
                    shared.task.streams() * static_cast<int>(part.size()));
  const std::vector<RunSummary> summaries = trainer.run(dir_ptrs, progress, resume);
  std::printf("\n%-11s  %9s  %8s  %s\n", "status", "steps", "seconds", "run");
  for (std::size_t i = 0; i < summaries.size(); ++i) {
    const RunSummary& s = summaries[i];
    end.interrupted = end.interrupted || s.status == RunStatus::Interrupted;
    end.failed = end.failed || s.status == RunStatus::Failed;
    std::printf("%-11s  %9lld  %8.1f  %s\n", to_string(s.status), static_cast<long long>(s.steps), s.seconds,
                dir_ptrs[i]->path().c_str());
  }
  return end;
}
}  // namespace

int cmd_pack(const PackOptions& options) {
  g_stop_requested.store(false);
  set_stop_signals(on_stop_signal);
  // Every directory locked and read before anything trains. One whose config cannot be read is
  // recorded failed (with the reason) and left out; the others train.
  std::vector<std::unique_ptr<RunDirectory>> dirs;
  std::vector<ExperimentConfig> configs;
  bool any_failed = false;
  for (const std::string& d : options.dirs) {
    const std::filesystem::path path(d);
    if (!std::filesystem::exists(path / "config.json"))
      throw UsageError(fmt::format("{} holds no config.json: a pack trains run directories that hold their config",
                                   path.string()));
    for (const auto& other : dirs)
      if (std::filesystem::equivalent(other->path(), path))
        throw UsageError(fmt::format("{} is named twice", path.string()));
    auto dir = std::make_unique<RunDirectory>(path, RunDirMode::Resume);
    if (const auto status = recorded_status(path); status && is_finished_status(*status)) {
      std::printf("run %s already finished (status %s); nothing to do\n", path.c_str(), status->c_str());
      continue;
    }
    try {
      configs.push_back(load_experiment((path / "config.json").string(), {}));
    } catch (const std::exception& e) {
      leave_out_of_pack(*dir, e);
      any_failed = true;
      continue;
    }
    dirs.push_back(std::move(dir));
  }
  if (dirs.empty()) return any_failed ? kExitRuntime : kExitOk;
  // Usage errors (runs that may not share a pack, no GPU for device cuda) change nothing.
  check_pack(configs);
  check_open_file_limit(dirs.size());
  auto backend = make_backend(configs.front().device, configs.front().precision);
  // Each run's run.log gets its own lines (and errors that stop the whole pack); the pack's
  // lines go to stderr (a sweep's pack log), which each run's log names.
  const std::string pack_log = options.pack_log.empty() ? fmt::format("the stderr of process {}", ::getpid())
                                                        : options.pack_log;
  for (std::size_t i = 0; i < dirs.size();) {
    const std::string where = dirs[i]->path().string();  // outlives dirs[i] if it is left out
    LogScope scope(where);
    try {
      log_to_file(dirs[i]->log_path(), dirs[i]->path().string());
      ++i;
    } catch (const std::exception& e) {  // its run.log cannot be opened: that run fails alone
      leave_out_of_pack(*dirs[i], e);
      any_failed = true;
      dirs.erase(dirs.begin() + static_cast<std::ptrdiff_t>(i));  // configs[i] is dirs[i]'s
      configs.erase(configs.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  if (dirs.empty()) return kExitRuntime;
  for (auto& dir : dirs) {
    LogScope scope(dir->path().native());
    spdlog::info("skillrun {} (commit {}), run {} in a pack of {} run{}; the pack's log: {}", version(),
                 git_commit(), dir->path().string(), dirs.size(), dirs.size() == 1 ? "" : "s", pack_log);
  }
  spdlog::info("skillrun {} (commit {}), a pack of {} run{}", version(), git_commit(), dirs.size(),
               dirs.size() == 1 ? "" : "s");
  spdlog::info("backend: {}", backend->name());
  // Runs that together need more memory than this machine gives train as consecutive packs.
  // The cut is the sweep's (fit_pack), so a pack the sweep fitted to this budget stays whole.
  std::vector<std::size_t> run_bytes;
  for (const ExperimentConfig& c : configs) run_bytes.push_back(estimated_memory_bytes(c));
  const PackFit fit = fit_pack(run_bytes, pack_memory_budget(!backend->is_cpu()));
  if (!fit.note.empty()) spdlog::warn("{}", fit.note);
  const std::size_t fits = fit.runs_per_pack;
  try {
    PackEnd end;
    for (std::size_t first = 0; first < dirs.size() && !end.interrupted; first += fits) {
      const PackEnd part =
          train_pack(*backend, configs, dirs, first, std::min(dirs.size(), first + fits), options.no_progress);
      end.interrupted = part.interrupted;
      end.failed = end.failed || part.failed;
    }
    set_stop_signals(SIG_DFL);
    if (end.interrupted) return kExitInterrupted;
    return any_failed || end.failed ? kExitRuntime : kExitOk;
  } catch (const std::exception& e) {
    // The trainer recorded the failure in the runs it was training; the runs that had finished
    // keep their result, and those not yet started say why they did not run.
    spdlog::error("pack failed: {}", e.what());
    for (auto& dir : dirs) {
      const auto status = recorded_status(dir->path());
      if (!(status && (is_finished_status(*status) || *status == "failed"))) dir->record_failure(e.what());
    }
    throw;
  }
}

int cmd_validate(const CommonOptions& options) {
  const ExperimentConfig config = load_config(options);
  std::printf("%s\n", to_json(config).dump(2).c_str());
  return kExitOk;
}

int cmd_run(const RunOptions& options) {
  // Installed first, so a signal during start-up (a Slurm pre-emption, say) is not fatal: the
  // loop sees the flag at its first step, checkpoints and exits 3.
  g_stop_requested.store(false);
  set_stop_signals(on_stop_signal);
  const ExperimentConfig config = load_config(options.common);
  const nlohmann::json resolved = to_json(config);
  if (options.resume && options.out_dir.empty()) throw UsageError("--resume needs --out DIR (the run to continue)");
  // Without --out, the directory is named after the config's name and what --set changed, so an
  // Adam run made from a Muon config is not filed under the Muon name alone.
  std::filesystem::path out = options.out_dir;
  if (out.empty()) {
    // One file name under runs/, whatever the config holds: 255 bytes, less '-', the time stamp
    // and a "-N" that default_run_path may add.
    const nlohmann::json before = config_without_overrides(options.common);
    std::string name = config.name;
    std::string label = overrides_label(options.common, resolved, before);
    // A config named after its optimizer type (quickstart-muon) run with another type is named
    // by the type it runs (quickstart-adam,...), not by both.
    const nlohmann::json::json_pointer type_at("/optimizer/type");
    if (!label.empty() && before.contains(type_at) && resolved.contains(type_at) &&
        before.at(type_at) != resolved.at(type_at)) {
      const std::string old_suffix = "-" + before.at(type_at).get<std::string>();
      if (name.size() > old_suffix.size() && name.ends_with(old_suffix)) {
        name = name.substr(0, name.size() - old_suffix.size()) + "-" + resolved.at(type_at).get<std::string>();
        std::string rest;
        for (const std::string& part : split(label, ','))
          if (part != "optimizer.type=" + format_sweep_value(resolved.at(type_at)))
            rest += (rest.empty() ? "" : ",") + part;
        label = rest;
      }
    }
    out = default_run_path(safe_path_component(label.empty() ? name : name + "," + label, 233));
  }
  // Locked from here on: no other process writes this directory while we decide and run.
  RunDirectory dir(out, options.resume ? RunDirMode::Resume : RunDirMode::Fresh);
  if (options.resume) {
    // Resuming a directory of another config would silently mix two experiments.
    if (const auto diff = config_difference(out, resolved))
      throw ConfigError("", fmt::format("{} holds a run of a different config: {}; refusing to resume or overwrite it",
                                        out.string(), *diff));
    if (const auto status = recorded_status(out); status && is_finished_status(*status)) {
      std::printf("run %s already finished (status %s); nothing to do\n", out.c_str(), status->c_str());
      return kExitOk;
    }
  }
  auto backend = make_backend(config.device, config.precision);
  log_to_file(dir.log_path());
  try {
    return run_in(dir, *backend, config, resolved, options);
  } catch (const std::exception& e) {
    // The reason goes where a researcher looks later (run.log, summary.json), not only to stderr.
    spdlog::error("run failed: {}", e.what());
    dir.record_failure(e.what());
    throw;
  }
}

}  // namespace skillrun
