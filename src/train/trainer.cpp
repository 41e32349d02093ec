// The sparse-parity step, eval and checkpoint on the run loop. Evals happen after `step` updates,
// at step 0 and every eval.every steps and at the last step; T_k is the first eval step with
// loss_k <= tau (the paper's T_k(tau)). A run alone and the runs of a pack go through one
// RunLoop (train/run_monitor.h); where runs sit is PackMembers, when a step is replayed
// StepGraph, their evals together EvalBatches, a run's checkpoint train/run_checkpoint.h.
#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>

#include <spdlog/spdlog.h>

#include "model/linear_memory.h"
#include "train/eval_batches.h"

namespace skillrun {

namespace {
// The seed of each run, once check_pack has accepted them as a pack.
std::vector<uint64_t> checked_seeds(const std::vector<ExperimentConfig>& configs) {
  check_pack(configs);
  std::vector<uint64_t> seeds;
  for (const ExperimentConfig& c : configs) seeds.push_back(c.seed);
  return seeds;
}

// The classes of the logits of a config's task.
int classes_of(const TaskConfig& task) {
  return task.type == TaskType::AssocMemory ? task.n_answers : SparseParityTask::kClasses;
}

// The pack's model: an Mlp for sparse_parity, a LinearMemory (model.type linear) for assoc_memory.
std::unique_ptr<Model> make_model(Backend& backend, const ExperimentConfig& c, int max_rows, int runs) {
  if (c.task.type == TaskType::AssocMemory) {
    return std::make_unique<LinearMemory>(backend, c.task.n_facts, c.task.dim, c.task.n_answers,
                                          embedding_kind(c.task.embeddings), max_rows, runs);
  }
  return std::make_unique<Mlp>(backend, c.task.n_tasks + c.task.n_bits, c.model.width, c.model.depth,
                               SparseParityTask::kClasses, max_rows, runs);
}
}  // namespace

struct Trainer::SeedGroup {
  std::unique_ptr<Task> task;
  std::unique_ptr<Evaluator> evaluator;
  Buffer<float> x;         // (batch, input_dim): the batch every run of this seed trains on
  Buffer<int32_t> labels;  // (batch)
  Buffer<int32_t> tasks;   // (batch)
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
      members_(checked_seeds(configs)),
      batch_(configs.front().train.batch_size),
      model_(make_model(backend, configs.front(), std::max(batch_, 1), static_cast<int>(configs.size()))),
      loss_(backend, configs.size() * static_cast<std::size_t>(batch_)),
      correct_(backend, configs.size() * static_cast<std::size_t>(batch_)),
      dlogits_(backend, configs.size() * static_cast<std::size_t>(batch_) * classes_of(configs.front().task)),
      classes_(classes_of(configs.front().task)),
      graph_(backend, step_graph_wanted(backend, configs), [this] {
        return fmt::format("training step of {} run{}",
                           std::count(members_.active().begin(), members_.active().end(), true),
                           runs_.size() == 1 ? "" : "s");
      }) {
  const ExperimentConfig& shared = configs.front();
  for (std::size_t g = 0; g < members_.groups(); ++g) {
    auto group = std::make_unique<SeedGroup>();
    group->task = make_task(backend, shared.task, members_.seed(g));
    for (int slot = members_.first_slot(g); slot < members_.first_slot(g) + members_.group_size(g); ++slot) {
      auto run = std::make_unique<RunState>();
      run->config = configs[static_cast<std::size_t>(members_.run_at(slot))];
      run->identity = checkpoint_identity(to_json(run->config));
      run->group = g;
      run->slot = slot;
      model_->initialize(slot, members_.seed(g));
      runs_.push_back(std::move(run));
    }
    const std::size_t batch = static_cast<std::size_t>(batch_);
    group->evaluator = std::make_unique<Evaluator>(backend, *group->task, shared.eval.samples_per_task, batch_,
                                                   members_.group_size(g));
    group->x = Buffer<float>(backend, batch * group->task->input_dim());
    group->labels = Buffer<int32_t>(backend, batch);
    group->tasks = Buffer<int32_t>(backend, batch);
    groups_.push_back(std::move(group));
  }
  std::vector<OptimizerConfig> by_slot;
  for (const auto& run : runs_) by_slot.push_back(run->config.optimizer);
  optimizers_ = std::make_unique<PackOptimizer>(backend, *model_, by_slot);
  for (auto& run : runs_) run->optimizer = &optimizers_->optimizer(run->slot);
  optimizers_->set_active(members_.active());  // every slot
  if (shared.eval.spectra_every > 0)
    spectra_ = std::make_unique<SpectraProbe>(backend, *model_, shared.eval.spectra_every, shared.eval.every);
}

Trainer::~Trainer() = default;

int Trainer::slot(int run) const { return members_.slot(run); }
Trainer::RunState& Trainer::at(int run) { return *runs_[static_cast<std::size_t>(slot(run))]; }
const Trainer::RunState& Trainer::at(int run) const { return *runs_[static_cast<std::size_t>(slot(run))]; }
const ExperimentConfig& Trainer::config(int run) const { return at(run).config; }
Optimizer& Trainer::optimizer(int run) { return *at(run).optimizer; }
const Task& Trainer::task(int run) const { return *groups_[at(run).group]->task; }
const EvalResult& Trainer::last_eval(int run) const { return at(run).last_eval; }

void Trainer::set_active(const std::vector<bool>& active) {
  if (!members_.set_active(active)) return;
  optimizers_->set_active(active);
  graph_.invalidate();  // the captured step trains the runs that were active then
}

void Trainer::train_step(int64_t step, PhaseTimes* times) {
  if (spectra_) spectra_->before_step();  // W_{t-1}, for the update's spectrum; outside any capture
  // The recorded step runs nothing, so the optimizers' step counts go back to what they were;
  // a replay runs the step on the device, so the active runs' counts go up here.
  const auto record = [&] {
    std::vector<int64_t> before;
    for (const auto& run : runs_) before.push_back(run->optimizer->steps_taken());
    const auto restore_counts = [&] {
      for (std::size_t s = 0; s < runs_.size(); ++s) runs_[s]->optimizer->set_steps_taken(before[s]);
    };
    try {
      eager_step(step, nullptr);
    } catch (...) {
      restore_counts();
      throw;
    }
    restore_counts();
  };
  const auto eager = [&] { eager_step(step, times); };
  if (!graph_.run(step, times != nullptr, eager, record)) return;
  for (std::size_t s = 0; s < runs_.size(); ++s)
    if (members_.active()[s]) runs_[s]->optimizer->set_steps_taken(runs_[s]->optimizer->steps_taken() + 1);
}

void Trainer::eager_step(int64_t step, PhaseTimes* times) {
  const int batch = batch_;
  const std::size_t per_run = static_cast<std::size_t>(batch);
  const std::size_t dlogits_stride = per_run * static_cast<std::size_t>(classes_);
  auto t0 = std::chrono::steady_clock::now();
  auto lap = [&](double PhaseTimes::*field) {
    if (!times) return;
    backend_.synchronize();
    const auto now = std::chrono::steady_clock::now();
    times->*field += std::chrono::duration<double>(now - t0).count();
    t0 = now;
  };
  for (const std::size_t group : members_.drawn_groups()) {  // one batch per seed, shared by its runs
    SeedGroup& g = *groups_[group];
    g.task->train_batch(step, batch, g.x.data(), g.labels.data(), g.tasks.data());
  }
  lap(&PhaseTimes::data);
  for (const Segment& seg : members_.segments()) {
    SeedGroup& g = *groups_[seg.group];
    const float* logits = model_->forward(g.x.data(), batch, seg.range);
    const std::size_t s = static_cast<std::size_t>(seg.range.first);
    backend_.cross_entropy_runs(logits, model_->logits_stride(), g.labels.data(), batch, classes_,
                                loss_.data() + s * per_run, correct_.data() + s * per_run, per_run,
                                dlogits_.data() + s * dlogits_stride, dlogits_stride, 1.0f / static_cast<float>(batch),
                                seg.range.count);
  }
  lap(&PhaseTimes::forward);
  for (const Segment& seg : members_.segments()) {
    SeedGroup& g = *groups_[seg.group];
    model_->backward(g.x.data(), dlogits_.data() + static_cast<std::size_t>(seg.range.first) * dlogits_stride,
                    dlogits_stride, batch, seg.range);
  }
  lap(&PhaseTimes::backward);
  optimizers_->step();
  lap(&PhaseTimes::optimizer);
  if (times) ++times->steps;
}

EvalResult Trainer::evaluate(int run) {
  const RunState& r = at(run);
  return groups_[r.group]->evaluator->evaluate(*model_, RunRange{r.slot, 1}).front();
}

CheckpointState Trainer::snapshot(int64_t step, double wall_seconds, const std::vector<std::optional<int64_t>>& T_k,
                                  int run) {
  RunState& r = at(run);
  CheckpointState s;
  s.run_config = r.identity;
  s.step = step;
  s.wall_seconds = wall_seconds;
  s.T_k = T_k;
  save_run_buffers(s, model_->parameters(r.slot), *r.optimizer);
  return s;
}

void Trainer::restore(const CheckpointState& s, int run) {
  RunState& r = at(run);
  restore_run_buffers(s, model_->parameters(r.slot), *r.optimizer, task(run).n_tasks());
}

std::optional<CheckpointState> Trainer::checkpoint_to_resume(const std::filesystem::path& run_dir, int run) const {
  return skillrun::checkpoint_to_resume(run_dir, at(run).config);
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
  // Per slot: what this run's hooks keep besides its LoopRun (where it stands in the loop).
  struct Live {
    int run = 0;  // constructor order
    std::unique_ptr<RunMonitor> monitor;
    int learned = 0;
    // Its log lines' prefix: "" alone; "<dir name>: " in a pack (even a pack of one).
    std::string label;
    bool nonfinite_parameters = false;  // the last eval found a NaN/Inf parameter
  };
  std::vector<Live> live(n);
  std::vector<LoopRun> loop_runs(n);
  EvalBatches evals(n);
  const int n_tasks = task(0).n_tasks();

  SharedLoopHooks shared;
  shared.train_step = [&](const std::vector<bool>& active, int64_t step) {
    set_active(active);
    train_step(step);
  };
  // The runs in `which` are evaluated together; each run's eval hook takes its result.
  shared.eval = [&](const std::vector<bool>& which, int64_t step) {
    evals.compute(members_.segments(which), step,
                  [&](const Segment& seg) { return groups_[seg.group]->evaluator->evaluate(*model_, seg.range); });
  };
  // The progress line follows the pack (for a run alone: its own mean loss and subtasks learned).
  shared.evaluated = [&](const std::vector<bool>& which, int64_t step) {
    double mean = 0;
    int evaluated = 0, learned = 0;
    for (std::size_t s = 0; s < n; ++s) {
      learned += live[s].learned;
      if (!which[s]) continue;
      mean += runs_[s]->last_eval.mean_loss_bits;
      ++evaluated;
    }
    if (evaluated > 0) progress.update(step, mean / evaluated, learned);
  };
  shared.ended = [&](std::size_t s) {
    Live& L = live[s];
    const int64_t step = loop_runs[s].step;
    if (const std::string fused = backend_.fused_linear_report(); !fused.empty()) spdlog::info("{}", fused);
    const RunSummary& summary = L.monitor->summary();
    const ExperimentConfig& cfg = runs_[s]->config;
    L.monitor->finish(step, summary.status == RunStatus::Converged
                                ? fmt::format("all {} subtasks reached tau = {} bits", n_tasks, cfg.eval.tau_bits)
                                : fmt::format("{} of {} subtasks reached tau = {} bits by step {}", L.learned, n_tasks,
                                              cfg.eval.tau_bits, step));
    if (n > 1) {
      const auto left = std::count_if(loop_runs.begin(), loop_runs.end(), [](const LoopRun& r) { return !r.ended; });
      spdlog::info("{}{} at step {}; {} run{} left in the pack", L.label, to_string(summary.status), step, left,
                   left == 1 ? "" : "s");
    }
  };
  // An error of one run's own work (its directory, files, checkpoint) ends it as failed while the
  // others train on; a run alone rethrows it below.
  shared.failed = [&](std::size_t s, const std::string& what) {
    if (!alone) spdlog::error("{}failed: {}; the pack trains the other runs", live[s].label, what);
  };
  RunLoop loop(loop_runs, shared);

  for (std::size_t i = 0; i < n; ++i) {
    const int run = static_cast<int>(i);
    const std::size_t s = static_cast<std::size_t>(slot(run));
    Live& L = live[s];
    LoopRun& R = loop_runs[s];
    RunDirectory& dir = *dirs[i];
    L.run = run;
    L.label = alone ? "" : dir.path().filename().string() + ": ";
    R.log_scope = dir.path().string();  // its own run.log in a pack
    L.monitor = std::make_unique<RunMonitor>(at(run).config, dir, resume[i] ? resume[i]->wall_seconds : 0.0);
    R.monitor = L.monitor.get();
    R.eval_first = resume[i] == nullptr;  // a resumed run has the row of its first step
    RunSummary& summary = L.monitor->summary();
    summary.tau_bits = at(run).config.eval.tau_bits;
    summary.device = backend_.name();
    summary.T_k.assign(n_tasks, std::nullopt);
    loop.for_run(s, [&] {
      if (resume[i]) {
        restore(*resume[i], run);
        R.step = resume[i]->step;
        summary.T_k = resume[i]->T_k;
        spdlog::info("{}resuming from the checkpoint at step {}", L.label, R.step);
      }
      dir.open_metrics(n_tasks, resume[i] ? std::optional<int64_t>(R.step) : std::nullopt);
      if (spectra_)
        dir.open_table(kSpectraFile, kSpectraHeader, resume[i] ? std::optional<int64_t>(R.step) : std::nullopt);
      L.learned = static_cast<int>(
          std::count_if(summary.T_k.begin(), summary.T_k.end(), [](const auto& t) { return t.has_value(); }));
    });
  }
  for (std::size_t s = 0; s < n; ++s)
    if (!loop_runs[s].ended) loop.for_run(s, [&] { live[s].monitor->start(); });

  for (std::size_t s = 0; s < n; ++s) {
    Live& L = live[s];
    RunState& rs = *runs_[s];
    RunDirectory& dir = *dirs[static_cast<std::size_t>(L.run)];
    RunSummary& summary = L.monitor->summary();
    RunLoopHooks& hooks = loop_runs[s].hooks;
    // Records the eval after `at_step` updates as a row and in T_k; false if non-finite.
    hooks.eval = [&, s, &L = L, &rs = rs, &dir = dir, &summary = summary](int64_t at_step) {
      MetricsRow row;
      row.step = at_step;
      if (at_step > 0) row.train_loss_bits = last_train_loss_bits(L.run);
      rs.last_eval = evals.take(s, at_step, [&] { return evaluate(L.run); });
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
      L.nonfinite_parameters = !model_->parameters_finite(rs.slot);  // the model's index is the slot
      // Spectra (eval.spectra_every): read only, at every spectra_every-th row and the run's last.
      if (spectra_ && r.finite && !L.nonfinite_parameters) {
        const bool last = at_step >= rs.config.train.max_steps ||
                          (rs.config.train.stop_when_learned && L.learned == n_tasks);
        if (spectra_->due(at_step, last)) dir.append_table(kSpectraFile, spectra_->lines(rs.slot, at_step));
      }
      return r.finite && (!row.train_loss_bits || std::isfinite(*row.train_loss_bits)) && !L.nonfinite_parameters;
    };
    hooks.learned = [&L = L, n_tasks] { return L.learned == n_tasks; };
    hooks.checkpoint = [&, &L = L, &dir = dir, &summary = summary](int64_t at_step) {
      write_checkpoint(dir.path(), snapshot(at_step, L.monitor->wall(), summary.T_k, L.run));
    };
    const double lr = rs.config.optimizer.lr;
    hooks.diverged_message = [lr, &L = L](int64_t at_step) {
      const char* what = L.nonfinite_parameters ? "parameters" : "loss";
      return at_step == 0
                 ? fmt::format("non-finite {} at step 0, before any update", what)
                 : fmt::format("non-finite {} at step {} (optimizer.lr = {} may be too large)", what, at_step, lr);
    };
    hooks.interrupted_message = [](int64_t at_step) {
      return fmt::format("interrupted by a signal at step {}; checkpoint written, resume with --resume", at_step);
    };
  }

  loop.drive();  // an error of the shared work (a step, an eval round) is recorded by every unfinished run
  if (alone && loop.first_failure()) std::rethrow_exception(loop.first_failure());  // a run alone fails as before
  progress.finish();
  std::vector<RunSummary> summaries(n);
  for (const Live& L : live) summaries[static_cast<std::size_t>(L.run)] = L.monitor->summary();
  return summaries;
}

}  // namespace skillrun
