// Training loop. Evals happen after `step` updates, at step 0 and every eval.every steps and
// at the last step; T_k is the first eval step with loss_k <= tau (the paper's T_k(tau)).
// Every run of a pack goes through the same RunMonitor pieces a run alone goes through.
#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/log.h"

namespace skillrun {

namespace {
// Step graphs need every per-step value of the step on the device; cuSOLVER's SVD (msign svd)
// queries its workspace on the host, so such runs stay eager, as do runs that ask for it.
bool step_graph_wanted(const Backend& backend, const ExperimentConfig& config) {
  if (!backend.supports_step_graph()) return false;
  if (const char* env = std::getenv("SKILLRUN_CUDA_GRAPH"); env != nullptr && std::string(env) == "0") return false;
  return !(config.optimizer.type == OptimizerType::Muon && config.optimizer.msign == MsignMethod::Svd);
}

const ExperimentConfig& checked_first(const std::vector<ExperimentConfig>& configs) {
  check_pack(configs);
  return configs.front();
}

}  // namespace

void check_pack(const std::vector<ExperimentConfig>& configs) {
  if (configs.empty()) throw UsageError("a pack needs at least one run");
  for (const ExperimentConfig& c : configs)
    if (c.is_icl()) throw UsageError(fmt::format("run {}: only sparse_parity runs train in packs", c.name));
  const nlohmann::json first = to_json(configs.front());
  const std::string signature = pack_signature(first);
  for (std::size_t i = 1; i < configs.size(); ++i) {
    const nlohmann::json other = to_json(configs[i]);
    if (pack_signature(other) == signature) continue;
    nlohmann::json a = first, b = other;
    for (const char* key : {"seed", "optimizer", "name"}) a.erase(key), b.erase(key);
    throw UsageError(fmt::format("runs {} and {} cannot share a pack (they may differ only in seed and optimizer): {}",
                                 configs.front().name, configs[i].name,
                                 json_difference(a, b, "in the first", "in the other")));
  }
}

struct Trainer::SeedGroup {
  uint64_t seed = 0;
  int first_slot = 0;
  int count = 0;
  std::unique_ptr<SparseParityTask> task;
  std::unique_ptr<Evaluator> evaluator;
  Buffer<float> x;          // (batch, input_dim): the batch every run of this seed trains on
  Buffer<int32_t> labels;   // (batch)
  Buffer<int32_t> tasks;    // (batch)
};

struct Trainer::RunState {
  ExperimentConfig config;
  nlohmann::json identity;  // checkpoint_identity of config
  std::size_t group = 0;
  int slot = 0;
  Optimizer* optimizer = nullptr;  // owned by optimizers_
  EvalResult last_eval;
};

Trainer::Trainer(Backend& backend, const ExperimentConfig& config)
    : Trainer(backend, std::vector<ExperimentConfig>{config}) {}

Trainer::Trainer(Backend& backend, const std::vector<ExperimentConfig>& configs)
    : backend_(backend),
      batch_(checked_first(configs).train.batch_size),
      model_(backend, configs.front().task.n_tasks + configs.front().task.n_bits, configs.front().model.width,
             configs.front().model.depth, SparseParityTask::kClasses, std::max(batch_, 1),
             static_cast<int>(configs.size())),
      loss_(backend, configs.size() * static_cast<std::size_t>(batch_)),
      correct_(backend, configs.size() * static_cast<std::size_t>(batch_)),
      dlogits_(backend, configs.size() * static_cast<std::size_t>(batch_) * SparseParityTask::kClasses) {
  // Slots: the runs of each seed next to each other (seeds in order of first appearance).
  std::vector<uint64_t> seeds;
  for (const ExperimentConfig& c : configs)
    if (std::find(seeds.begin(), seeds.end(), c.seed) == seeds.end()) seeds.push_back(c.seed);
  slot_of_.assign(configs.size(), 0);
  const ExperimentConfig& shared = configs.front();
  bool graphs = true;
  for (uint64_t seed : seeds) {
    auto group = std::make_unique<SeedGroup>();
    group->seed = seed;
    group->first_slot = static_cast<int>(runs_.size());
    group->task = std::make_unique<SparseParityTask>(backend, shared.task, seed);
    for (std::size_t i = 0; i < configs.size(); ++i) {
      if (configs[i].seed != seed) continue;
      auto run = std::make_unique<RunState>();
      run->config = configs[i];
      run->identity = checkpoint_identity(to_json(configs[i]));
      run->group = groups_.size();
      run->slot = static_cast<int>(runs_.size());
      slot_of_[i] = run->slot;
      model_.initialize(run->slot, seed);
      graphs = graphs && step_graph_wanted(backend, configs[i]);
      runs_.push_back(std::move(run));
      ++group->count;
    }
    const std::size_t batch = static_cast<std::size_t>(batch_);
    group->evaluator = std::make_unique<Evaluator>(backend, *group->task, shared.eval.samples_per_task, batch_,
                                                   group->count);
    group->x = Buffer<float>(backend, batch * group->task->input_dim());
    group->labels = Buffer<int32_t>(backend, batch);
    group->tasks = Buffer<int32_t>(backend, batch);
    groups_.push_back(std::move(group));
  }
  std::vector<OptimizerConfig> by_slot;
  for (const auto& run : runs_) by_slot.push_back(run->config.optimizer);
  optimizers_ = std::make_unique<PackOptimizer>(backend, model_, by_slot);
  for (auto& run : runs_) run->optimizer = &optimizers_->optimizer(run->slot);
  set_active(std::vector<bool>(runs_.size(), true));
  graph_state_ = graphs ? GraphState::Warmup : GraphState::Off;
}

Trainer::~Trainer() = default;

int Trainer::slot(int run) const { return slot_of_.at(static_cast<std::size_t>(run)); }
Trainer::RunState& Trainer::at(int run) { return *runs_[static_cast<std::size_t>(slot(run))]; }
const Trainer::RunState& Trainer::at(int run) const { return *runs_[static_cast<std::size_t>(slot(run))]; }
const ExperimentConfig& Trainer::config(int run) const { return at(run).config; }
Optimizer& Trainer::optimizer(int run) { return *at(run).optimizer; }
const SparseParityTask& Trainer::task(int run) const { return *groups_[at(run).group]->task; }
const EvalResult& Trainer::last_eval(int run) const { return at(run).last_eval; }

void Trainer::set_active(const std::vector<bool>& active) {
  if (active == active_) return;
  active_ = active;
  optimizers_->set_active(active_);
  segments_.clear();
  for (std::size_t s = 0; s < runs_.size(); ++s) {
    if (!active_[s]) continue;
    const std::size_t group = runs_[s]->group;
    if (!segments_.empty() && segments_.back().group == group &&
        segments_.back().range.first + segments_.back().range.count == static_cast<int>(s))
      ++segments_.back().range.count;
    else
      segments_.push_back({group, RunRange{static_cast<int>(s), 1}});
  }
  drawn_groups_.clear();
  for (const Segment& seg : segments_)
    if (std::find(drawn_groups_.begin(), drawn_groups_.end(), seg.group) == drawn_groups_.end())
      drawn_groups_.push_back(seg.group);
  // The captured step trains the runs that were active then: capture the new step afresh, after
  // eager warm-up steps of the new set (which size the scratch buffers its ops need).
  if (graph_state_ != GraphState::Off) {
    graph_state_ = GraphState::Warmup;
    eager_steps_ = 0;
  }
}

void Trainer::train_step(int64_t step, PhaseTimes* times) {
  if (times == nullptr && graph_state_ != GraphState::Off && graph_step(step)) return;
  eager_step(step, times);
}

// Returns false when the step must run eagerly (warming up, or the capture failed).
bool Trainer::graph_step(int64_t step) {
  constexpr int kWarmupSteps = 2;  // sizes every scratch buffer before the capture
  if (graph_state_ == GraphState::Warmup) {
    if (eager_steps_ < kWarmupSteps) return false;
    // The recorded step runs nothing, so the optimizers' step counts go back to what they were.
    std::vector<int64_t> steps_before;
    for (const auto& run : runs_) steps_before.push_back(run->optimizer->steps_taken());
    const auto restore_counts = [&] {
      for (std::size_t s = 0; s < runs_.size(); ++s) runs_[s]->optimizer->set_steps_taken(steps_before[s]);
    };
    try {
      backend_.begin_step_capture(static_cast<uint32_t>(step));
      eager_step(step, nullptr);  // recorded, not run
      backend_.end_step_capture();
      graph_state_ = GraphState::Captured;
      spdlog::info("training step of {} run{} captured as a CUDA graph at step {}; replaying it from now on",
                   std::count(active_.begin(), active_.end(), true), runs_.size() == 1 ? "" : "s", step);
    } catch (const std::exception& e) {
      backend_.abort_step_capture();
      graph_state_ = GraphState::Off;
      spdlog::warn("could not capture the training step as a CUDA graph ({}); running eagerly", e.what());
      restore_counts();
      return false;
    }
    restore_counts();
  }
  backend_.launch_step_graph(static_cast<uint32_t>(step));
  for (std::size_t s = 0; s < runs_.size(); ++s)
    if (active_[s]) runs_[s]->optimizer->set_steps_taken(runs_[s]->optimizer->steps_taken() + 1);
  return true;
}

void Trainer::eager_step(int64_t step, PhaseTimes* times) {
  ++eager_steps_;
  const int batch = batch_;
  const std::size_t per_run = static_cast<std::size_t>(batch);
  const std::size_t dlogits_stride = per_run * SparseParityTask::kClasses;
  auto t0 = std::chrono::steady_clock::now();
  auto lap = [&](double PhaseTimes::*field) {
    if (!times) return;
    backend_.synchronize();
    const auto now = std::chrono::steady_clock::now();
    times->*field += std::chrono::duration<double>(now - t0).count();
    t0 = now;
  };
  for (const std::size_t group : drawn_groups_) {  // one batch per seed, shared by its runs
    SeedGroup& g = *groups_[group];
    g.task->train_batch(step, batch, g.x.data(), g.labels.data(), g.tasks.data());
  }
  lap(&PhaseTimes::data);
  for (const Segment& seg : segments_) {
    SeedGroup& g = *groups_[seg.group];
    const float* logits = model_.forward(g.x.data(), batch, seg.range);
    const std::size_t s = static_cast<std::size_t>(seg.range.first);
    backend_.cross_entropy_runs(logits, model_.logits_stride(), g.labels.data(), batch, SparseParityTask::kClasses,
                                loss_.data() + s * per_run, correct_.data() + s * per_run, per_run,
                                dlogits_.data() + s * dlogits_stride, dlogits_stride, 1.0f / static_cast<float>(batch),
                                seg.range.count);
  }
  lap(&PhaseTimes::forward);
  for (const Segment& seg : segments_) {
    SeedGroup& g = *groups_[seg.group];
    model_.backward(g.x.data(), dlogits_.data() + static_cast<std::size_t>(seg.range.first) * dlogits_stride,
                    dlogits_stride, batch, seg.range);
  }
  lap(&PhaseTimes::backward);
  optimizers_->step();
  lap(&PhaseTimes::optimizer);
  if (times) ++times->steps;
}

EvalResult Trainer::evaluate(int run) {
  const RunState& r = at(run);
  return groups_[r.group]->evaluator->evaluate(model_, RunRange{r.slot, 1}).front();
}

// The evals of the slots in `which`, one pass over each seed's eval set for its adjacent slots;
// empty results for the others.
std::vector<EvalResult> Trainer::evaluate_active(const std::vector<bool>& which) {
  std::vector<EvalResult> results(runs_.size());
  std::size_t s = 0;
  while (s < runs_.size()) {
    if (!which[s]) {
      ++s;
      continue;
    }
    const std::size_t group = runs_[s]->group;
    std::size_t end = s + 1;
    while (end < runs_.size() && which[end] && runs_[end]->group == group) ++end;
    std::vector<EvalResult> part = groups_[group]->evaluator->evaluate(
        model_, RunRange{static_cast<int>(s), static_cast<int>(end - s)});
    for (std::size_t i = 0; i < part.size(); ++i) results[s + i] = std::move(part[i]);
    s = end;
  }
  return results;
}

namespace {
// Every buffer a checkpoint carries, in a fixed order: parameters, then optimizer state.
std::vector<std::pair<std::string, Buffer<float>*>> checkpoint_buffers(std::vector<Parameter>& params,
                                                                       Optimizer& optimizer) {
  std::vector<std::pair<std::string, Buffer<float>*>> all;
  for (Parameter& p : params) all.emplace_back(p.name, &p.value);
  const auto state = optimizer.state();
  for (std::size_t i = 0; i < state.size(); ++i) all.emplace_back("optimizer.state." + std::to_string(i), state[i]);
  return all;
}
}  // namespace

CheckpointState Trainer::snapshot(int64_t step, double wall_seconds, const std::vector<std::optional<int64_t>>& T_k,
                                  int run) {
  RunState& r = at(run);
  CheckpointState s;
  s.run_config = r.identity;
  s.step = step;
  s.optimizer_steps = r.optimizer->steps_taken();
  s.wall_seconds = wall_seconds;
  s.T_k = T_k;
  for (auto& [name, buffer] : checkpoint_buffers(model_.parameters(r.slot), *r.optimizer)) {
    s.names.push_back(name);
    s.buffers.push_back(buffer->download());
  }
  return s;
}

void Trainer::restore(const CheckpointState& s, int run) {
  RunState& r = at(run);
  const auto buffers = checkpoint_buffers(model_.parameters(r.slot), *r.optimizer);
  if (s.buffers.size() != buffers.size() || s.T_k.size() != static_cast<std::size_t>(task(run).n_tasks()))
    throw RuntimeError(fmt::format("checkpoint at step {} holds {} buffers, this run needs {}", s.step,
                                   s.buffers.size(), buffers.size()));
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    if (s.names[i] != buffers[i].first || s.buffers[i].size() != buffers[i].second->size())
      throw RuntimeError(fmt::format("checkpoint buffer {} ({} values) does not fit {} ({} values)", s.names[i],
                                     s.buffers[i].size(), buffers[i].first, buffers[i].second->size()));
    buffers[i].second->upload(s.buffers[i]);
  }
  r.optimizer->set_steps_taken(s.optimizer_steps);
}

std::optional<CheckpointState> Trainer::checkpoint_to_resume(const std::filesystem::path& run_dir, int run) const {
  return skillrun::checkpoint_to_resume(run_dir, at(run).config);
}

std::optional<CheckpointState> checkpoint_to_resume(const std::filesystem::path& run_dir,
                                                    const ExperimentConfig& config) {
  const std::optional<int64_t> last_row = last_whole_metrics_step(run_dir, /*warn=*/true);
  // Eval rows fall on multiples of eval.every (checkpoints never at max_steps, which ends the
  // run): from a checkpoint at step s the run writes the rows after s again, so the rows up to
  // s must be there, i.e. s < last_row + every.
  const int64_t usable_through = last_row ? *last_row + config.eval.every - 1 : -1;
  const bool has_checkpoints = has_checkpoint_files(run_dir);
  if (!last_row && has_checkpoints)
    spdlog::warn(
        "{}: metrics.csv is missing or holds no whole row, so no checkpoint can continue it without losing "
        "rows; the run starts over from step 0",
        run_dir.string());
  std::optional<CheckpointState> checkpoint =
      load_latest_checkpoint(run_dir, checkpoint_identity(to_json(config)), usable_through);
  if (!checkpoint && (last_row || has_checkpoints))
    spdlog::warn("no usable checkpoint in {}; starting the run over from step 0", run_dir.string());
  return checkpoint;
}

double Trainer::last_train_loss_bits(int run) {
  // Summed per subtask on the backend: 2 * n_tasks doubles come back, not the batch's losses.
  const RunState& r = at(run);
  const std::size_t offset = static_cast<std::size_t>(r.slot) * static_cast<std::size_t>(batch_);
  return mean_loss_bits(backend_, loss_.data() + offset, correct_.data() + offset, groups_[r.group]->tasks.data(),
                        batch_, task(run).n_tasks());
}

RunSummary Trainer::run(RunDirectory& dir, Progress& progress, const CheckpointState* resume) {
  return run_runs(std::vector<RunDirectory*>{&dir}, progress, std::vector<const CheckpointState*>{resume},
                  /*alone=*/true)
      .front();
}

std::vector<RunSummary> Trainer::run(const std::vector<RunDirectory*>& dirs, Progress& progress,
                                     const std::vector<const CheckpointState*>& resume) {
  return run_runs(dirs, progress, resume, /*alone=*/false);
}

std::vector<RunSummary> Trainer::run_runs(const std::vector<RunDirectory*>& dirs, Progress& progress,
                                          const std::vector<const CheckpointState*>& resume, bool alone) {
  const std::size_t n = runs_.size();
  if (dirs.size() != n || resume.size() != n)
    throw std::invalid_argument("Trainer::run: one directory and one resume point per run");
  // Per slot: where the run stands in this loop.
  enum class Phase { Waiting, Done };
  struct Live {
    int run = 0;  // constructor order
    std::unique_ptr<RunMonitor> monitor;
    RunLoopHooks hooks;
    int64_t step = 0;
    int learned = 0;
    Phase phase = Phase::Waiting;
    std::optional<EvalResult> pending;  // computed for the whole pack at `pending_step`
    int64_t pending_step = -1;
    std::string label;  // "" alone; "<dir name>: " in a pack (even a pack of one), for log lines
    std::string scope;  // its directory: the LogScope of its lines (its own run.log in a pack)
    bool nonfinite_parameters = false;  // the last eval found a NaN/Inf parameter
  };
  std::vector<Live> live(n);
  const int n_tasks = task(0).n_tasks();
  // Runs `f` for one run: its log lines belong to its scope, and an error of this run alone (its
  // directory, its files, its checkpoint) ends it as failed while the others train on. Errors
  // of the pack's shared work (a step, an eval round) fail every run (the catch below).
  std::exception_ptr run_failure;  // the first; rethrown for a run alone
  const auto per_run = [&](Live& L, const auto& f) {
    LogScope scope(L.scope);
    try {
      f();
    } catch (const std::exception& e) {
      if (!run_failure) run_failure = std::current_exception();
      if (!alone) spdlog::error("{}failed: {}; the pack trains the other runs", L.label, e.what());
      L.monitor->fail(L.step, e.what());
      L.phase = Phase::Done;
    }
  };
  for (std::size_t i = 0; i < n; ++i) {
    const int run = static_cast<int>(i);
    Live& L = live[static_cast<std::size_t>(slot(run))];
    RunState& rs = at(run);
    RunDirectory& dir = *dirs[i];
    L.run = run;
    L.label = alone ? "" : dir.path().filename().string() + ": ";
    L.scope = dir.path().string();
    L.monitor = std::make_unique<RunMonitor>(rs.config, dir, resume[i] ? resume[i]->wall_seconds : 0.0);
    RunSummary& summary = L.monitor->summary();
    summary.tau_bits = rs.config.eval.tau_bits;
    summary.device = backend_.name();
    summary.T_k.assign(n_tasks, std::nullopt);
    per_run(L, [&] {
      if (resume[i]) {
        restore(*resume[i], run);
        L.step = resume[i]->step;
        summary.T_k = resume[i]->T_k;
        spdlog::info("{}resuming from the checkpoint at step {}", L.label, L.step);
      }
      dir.open_metrics(n_tasks, resume[i] ? std::optional<int64_t>(L.step) : std::nullopt);
      L.learned = static_cast<int>(
          std::count_if(summary.T_k.begin(), summary.T_k.end(), [](const auto& t) { return t.has_value(); }));
    });
  }
  for (Live& L : live)
    if (L.phase != Phase::Done) per_run(L, [&] { L.monitor->start(); });

  for (Live& L : live) {
    RunState& rs = at(L.run);
    RunDirectory& dir = *dirs[static_cast<std::size_t>(L.run)];
    RunSummary& summary = L.monitor->summary();
    // Records the eval after `at_step` updates as a row and in T_k; false if non-finite.
    L.hooks.eval = [&, &L = L, &rs = rs, &dir = dir, &summary = summary](int64_t at_step) {
      MetricsRow row;
      row.step = at_step;
      if (at_step > 0) row.train_loss_bits = last_train_loss_bits(L.run);
      rs.last_eval = L.pending && L.pending_step == at_step ? std::move(*L.pending) : evaluate(L.run);
      L.pending.reset();
      const EvalResult& r = rs.last_eval;
      row.wall_seconds = L.monitor->wall();
      row.mean_loss_bits = r.mean_loss_bits;
      row.loss_bits = r.loss_bits;
      row.accuracy = r.accuracy;
      dir.append_metrics(row);
      for (int k = 0; k < n_tasks; ++k) {
        if (!summary.T_k[k] && r.loss_bits[k] <= rs.config.eval.tau_bits) {
          summary.T_k[k] = at_step;
          ++L.learned;
          spdlog::info("{}subtask {} (p = {:.4f}) learned at step {}: loss {:.4f} bits", L.label, k,
                       task(L.run).frequencies()[k], at_step, r.loss_bits[k]);
        }
      }
      // The parameters too: a NaN weight need not show in the loss (a ReLU that maps NaN to 0,
      // a unit that never fires), and training on would keep it there unnoticed.
      L.nonfinite_parameters = !model_.parameters_finite(rs.slot);  // the model's index is the slot
      return r.finite && (!row.train_loss_bits || std::isfinite(*row.train_loss_bits)) && !L.nonfinite_parameters;
    };
    L.hooks.learned = [&L = L, n_tasks] { return L.learned == n_tasks; };
    L.hooks.checkpoint = [&, &L = L, &dir = dir, &summary = summary](int64_t at_step) {
      write_checkpoint(dir.path(), snapshot(at_step, L.monitor->wall(), summary.T_k, L.run));
    };
    const double lr = rs.config.optimizer.lr;
    L.hooks.diverged_message = [lr, &L = L](int64_t at_step) {
      const char* what = L.nonfinite_parameters ? "parameters" : "loss";
      return at_step == 0 ? fmt::format("non-finite {} at step 0, before any update", what)
                          : fmt::format("non-finite {} at step {} (optimizer.lr = {} may be too large)", what,
                                        at_step, lr);
    };
    L.hooks.interrupted_message = [](int64_t at_step) {
      return fmt::format("interrupted by a signal at step {}; checkpoint written, resume with --resume", at_step);
    };
  }

  const auto end_run = [&](Live& L) {
    L.phase = Phase::Done;
    if (const std::string fused = backend_.fused_linear_report(); !fused.empty()) spdlog::info("{}", fused);
    const RunSummary& s = L.monitor->summary();
    const ExperimentConfig& cfg = at(L.run).config;
    L.monitor->finish(L.step, s.status == RunStatus::Converged
                                  ? fmt::format("all {} subtasks reached tau = {} bits", n_tasks, cfg.eval.tau_bits)
                                  : fmt::format("{} of {} subtasks reached tau = {} bits by step {}", L.learned,
                                                n_tasks, cfg.eval.tau_bits, L.step));
    if (n > 1) {
      const auto left = std::count_if(live.begin(), live.end(), [](const Live& x) { return x.phase != Phase::Done; });
      spdlog::info("{}{} at step {}; {} run{} left in the pack", L.label, to_string(s.status), L.step, left,
                   left == 1 ? "" : "s");
    }
  };
  // Evaluates the runs in `which` together and hands each its result; the progress line follows
  // the pack (for a run alone: its own mean loss and subtasks learned).
  const auto eval_round = [&](const std::vector<bool>& which, int64_t at_step) {
    std::vector<EvalResult> results = evaluate_active(which);
    for (std::size_t s = 0; s < n; ++s)
      if (which[s]) {
        live[s].pending = std::move(results[s]);
        live[s].pending_step = at_step;
      }
  };
  const auto show_progress = [&](const std::vector<bool>& which, int64_t at_step) {
    double mean = 0;
    int evaluated = 0, learned = 0;
    for (std::size_t s = 0; s < n; ++s) {
      learned += live[s].learned;
      if (!which[s]) continue;
      mean += runs_[s]->last_eval.mean_loss_bits;
      ++evaluated;
    }
    if (evaluated > 0) progress.update(at_step, mean / evaluated, learned);
  };

  try {
    // Runs from step 0 begin with an eval of the untrained model; resumed ones have that row.
    std::vector<bool> fresh(n, false);
    for (std::size_t s = 0; s < n; ++s)
      fresh[s] = live[s].phase != Phase::Done && resume[static_cast<std::size_t>(live[s].run)] == nullptr;
    if (std::find(fresh.begin(), fresh.end(), true) != fresh.end()) eval_round(fresh, 0);
    for (std::size_t s = 0; s < n; ++s)
      if (live[s].phase != Phase::Done)
        per_run(live[s], [&] {
          if (!live[s].monitor->begin(live[s].step, fresh[s], live[s].hooks)) end_run(live[s]);
        });
    show_progress(fresh, 0);

    while (true) {
      // The pack steps the runs furthest behind; runs resumed further on wait for them.
      int64_t pack_step = -1;
      for (const Live& L : live)
        if (L.phase != Phase::Done && (pack_step < 0 || L.step < pack_step)) pack_step = L.step;
      if (pack_step < 0) break;
      std::vector<bool> active(n, false);
      for (std::size_t s = 0; s < n; ++s) active[s] = live[s].phase != Phase::Done && live[s].step == pack_step;
      if (g_stop_requested.load(std::memory_order_relaxed)) {
        for (Live& L : live)
          if (L.phase != Phase::Done)
            per_run(L, [&] {
              L.monitor->interrupt(L.step, L.hooks);
              end_run(L);
            });
        break;
      }
      set_active(active);
      train_step(pack_step);
      ++pack_step;
      const Live* any = nullptr;
      for (std::size_t s = 0; s < n; ++s)
        if (active[s]) {
          live[s].step = pack_step;
          any = &live[s];
        }
      const bool evals = any->monitor->eval_due(pack_step);
      if (evals) eval_round(active, pack_step);
      for (std::size_t s = 0; s < n; ++s)
        if (active[s] && live[s].phase != Phase::Done)
          per_run(live[s], [&] {
            if (!live[s].monitor->after_step(pack_step, live[s].hooks)) end_run(live[s]);
          });
      if (evals) show_progress(active, pack_step);
    }
  } catch (const std::exception& e) {
    for (Live& L : live)
      if (L.phase != Phase::Done) L.monitor->fail(L.step, e.what());
    throw;
  }
  if (alone && run_failure) std::rethrow_exception(run_failure);  // a run alone fails as before
  progress.finish();
  std::vector<RunSummary> summaries(n);
  for (const Live& L : live) summaries[static_cast<std::size_t>(L.run)] = L.monitor->summary();
  return summaries;
}

}  // namespace skillrun
