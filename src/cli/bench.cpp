// `skillrun bench CONFIG`: time per phase of a training step (data, forward, backward,
// optimizer, eval amortised over eval.every steps) beside the step's GEMMs timed alone with
// the same backend, so "a step costs X times its GEMMs" is one ratio from one run.
// `skillrun bench --msign ROWSxCOLS`: msign alone (ns5, polar_express or svd) on a random matrix,
// the median of per-call times with the backend synchronised around each call: the issue's
// "Newton-Schulz time for a 2000x150 matrix", comparable with bench/pytorch_reference.py; where
// the backend has step graphs, also the call captured once and replayed back to back (its cost
// inside a training step). --pack R: R matrices in one call.
#include "cli/bench.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "config/choices.h"
#include "config/experiment.h"  // parse_config_choice
#include "core/error.h"
#include "core/version.h"
#include "optim/msign.h"
#include "train/trainer.h"

namespace skillrun {
namespace {

// Seconds for the GEMMs of one step alone (forward, weight gradients, data gradients of
// every layer but the first), on scratch buffers of the same shapes.
double time_gemms_alone(Backend& backend, const Model& model, int batch, int repeats) {
  std::size_t biggest = 0;
  for (const Parameter& p : model.parameters())
    if (p.is_matrix)
      biggest = std::max({biggest, static_cast<std::size_t>(batch) * std::max(p.rows, p.cols), p.size()});
  Buffer<float> a(backend, biggest), b(backend, biggest), w(backend, biggest);
  backend.fill(a.data(), biggest, 0.5f);
  backend.fill(b.data(), biggest, 0.25f);
  backend.fill(w.data(), biggest, 0.125f);
  auto once = [&] {
    for (const Parameter& p : model.parameters()) {
      if (!p.is_matrix) continue;
      const int out = p.rows, in = p.cols;
      backend.gemm(Trans::No, Trans::Yes, batch, out, in, 1.0f, a.data(), in, w.data(), in, 0.0f, b.data(), out);
      backend.gemm(Trans::Yes, Trans::No, out, in, batch, 1.0f, b.data(), out, a.data(), in, 0.0f, w.data(), in);
      if (p.layer > 0)
        backend.gemm(Trans::No, Trans::No, batch, in, out, 1.0f, b.data(), out, w.data(), in, 0.0f, a.data(), in);
    }
  };
  once();
  backend.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < repeats; ++i) once();
  backend.synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / repeats;
}

// "2000x150" -> (2000, 150): two positive integers around one 'x'; UsageError otherwise.
std::pair<int, int> parse_shape(const std::string& text) {
  auto positive = [](std::string_view part) {
    int value = 0;
    const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    return ec == std::errc() && end == part.data() + part.size() && value > 0 ? value : 0;
  };
  const std::string_view view(text);
  const std::size_t x = view.find('x');
  const int rows = x == std::string_view::npos ? 0 : positive(view.substr(0, x));
  const int cols = x == std::string_view::npos ? 0 : positive(view.substr(x + 1));
  if (rows == 0 || cols == 0) {
    throw UsageError("--msign: expected ROWSxCOLS, two positive integers such as 2000x150, got \"" + text + "\"");
  }
  return {rows, cols};
}

// The backend's fused layer products (CUDA: how many cuBLASLt problems, how many it refused, and
// the calls fused and unfused), when it has any: a refused epilogue shows in the step time, and
// here is why.
void print_fused_linear_report(const Backend& backend) {
  const std::string report = backend.fused_linear_report();
  if (!report.empty()) std::printf("%s\n", report.c_str());
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size(), mid = n / 2;
  return n % 2 == 1 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

// msign alone: `warmup` untimed calls, then `repeats` calls each timed between two
// synchronisations (so a GPU figure includes the launches and one sync, as a step would pay).
int bench_msign(const BenchOptions& options) {
  if (!options.common.config_path.empty() || !options.common.overrides.empty()) {
    throw UsageError("bench --msign times msign alone: give no CONFIG and no --set");
  }
  const auto [rows, cols] = parse_shape(options.msign_shape);
  // The flags name config choices and are read as the config reads them.
  const MsignMethod method = parse_config_choice<MsignMethod>("--msign-method", options.msign_method);
  const Precision precision = parse_config_choice<Precision>("--precision", options.precision);
  if (precision == Precision::Fp64) {
    throw UsageError("--precision fp64: bench --msign times msign of fp32 matrices (in fp32, tf32 or bf16 "
                     "products); fp64 is for icl_linreg configs");
  }
  const DeviceChoice device = options.common.device.empty()
                                  ? DeviceChoice::Auto
                                  : parse_config_choice<DeviceChoice>("--device", options.common.device);
  constexpr int kNsSteps = 5;  // Muon's five iterations (ignored by svd)
  auto backend = make_backend(device, precision);

  // --pack R: R matrices in one call (msign_runs), as a pack's Muon update makes it.
  const int runs = options.pack > 0 ? static_cast<int>(options.pack) : 1;
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  std::vector<float> host(n * static_cast<std::size_t>(runs));
  std::mt19937 rng(20251122);
  std::normal_distribution<float> normal;  // like torch.randn in bench/pytorch_reference.py
  for (float& v : host) v = normal(rng);
  Buffer<float> G(*backend, host.size()), out(*backend, host.size());
  G.upload(host);
  auto call = [&] {
    if (runs == 1) {
      msign(*backend, method, G.data(), out.data(), rows, cols, kNsSteps);
    } else {
      msign_runs(*backend, method, G.data(), out.data(), n, rows, cols, kNsSteps, runs);
    }
  };
  for (int64_t i = 0; i < options.warmup; ++i) call();
  backend->synchronize();
  std::vector<double> micros;
  for (int64_t i = 0; i < options.repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    backend->synchronize();
    micros.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  // A sanity figure: the mean squared singular value of the (first) result (1 for an exact msign).
  const double mean_sq = backend->sum_squares(out.data(), n) / std::min(rows, cols);

  // Where a step is a replayed graph (CUDA), the same call captured once and replayed
  // back to back: what it costs inside a training step, without the per-launch host cost.
  double graph_micros = -1.0;
  if (backend->supports_step_graph() && method != MsignMethod::Svd) {  // svd synchronises: not capturable
    backend->begin_step_capture(0);
    try {
      call();
      backend->end_step_capture();
    } catch (...) {
      backend->abort_step_capture();
      throw;
    }
    uint32_t step = 0;
    for (int64_t i = 0; i < std::max<int64_t>(options.warmup, 1); ++i) backend->launch_step_graph(step++);
    backend->synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < options.repeats; ++i) backend->launch_step_graph(step++);
    backend->synchronize();
    graph_micros = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
                   static_cast<double>(options.repeats);
  }

  std::printf("skillrun bench --msign  (commit %s)\n", git_commit());
  std::printf("device: %s\n", backend->name().c_str());
  const std::string what = runs == 1 ? fmt::format("{}x{}", rows, cols) : fmt::format("{} x {}x{}", runs, rows, cols);
  std::printf("msign %s %s %s: median %.1f us per call (min %.1f, max %.1f; %lld calls after %lld warm-up)\n",
              options.msign_method.c_str(), what.c_str(), options.precision.c_str(), median(micros),
              *std::min_element(micros.begin(), micros.end()), *std::max_element(micros.begin(), micros.end()),
              static_cast<long long>(options.repeats), static_cast<long long>(options.warmup));
  if (graph_micros >= 0.0)
    std::printf("msign %s %s %s: %.1f us per call as a replayed graph (mean of %lld back-to-back replays)\n",
                options.msign_method.c_str(), what.c_str(), options.precision.c_str(), graph_micros,
                static_cast<long long>(options.repeats));
  std::printf("mean squared singular value of the result: %.4f (exact msign: 1)\n", mean_sq);
  return 0;
}

// Seconds per untimed step of `trainer` (graph replays where the backend has them), over
// `steps` steps after `warmup`, end to end between two synchronisations.
double seconds_per_step(Backend& backend, Trainer& trainer, int64_t warmup, int64_t steps) {
  int64_t step = 0;
  for (; step < warmup; ++step) trainer.train_step(step);
  if (backend.supports_step_graph()) {
    for (int i = 0; i < 4 && !trainer.step_graph_active(); ++i) trainer.train_step(step++);
    if (trainer.step_graph_active()) trainer.train_step(step++);  // the first launch sets the counter
  }
  backend.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t s = 0; s < steps; ++s) trainer.train_step(step + s);
  backend.synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / static_cast<double>(steps);
}

// `bench CONFIG --pack R`: R copies of CONFIG (seeds seed, seed + 1, ...) trained as one pack,
// beside the same config alone, in one process on one backend: the pack's aggregate steps/s
// against one run's.
int bench_pack(const BenchOptions& options, const ExperimentConfig& config) {
  if (options.pack < 1) throw UsageError("--pack: expected a positive number of runs");
  auto backend = make_backend(config.device, config.precision);
  double alone = 0;
  {
    Trainer trainer(*backend, config);
    alone = seconds_per_step(*backend, trainer, options.warmup, options.steps);
  }
  std::vector<ExperimentConfig> configs(static_cast<std::size_t>(options.pack), config);
  for (std::size_t r = 0; r < configs.size(); ++r) configs[r].seed = config.seed + r;
  Trainer pack(*backend, configs);
  const double packed = seconds_per_step(*backend, pack, options.warmup, options.steps);
  const double runs = static_cast<double>(options.pack);
  std::printf("skillrun bench --pack %lld  %s  (commit %s)\n", static_cast<long long>(options.pack),
              config.name.c_str(), git_commit());
  std::printf("device: %s\n", backend->name().c_str());
  std::printf("config: batch %d, width %d, depth %d, optimizer %s; %lld timed steps after %lld warm-up%s\n",
              config.train.batch_size, config.model.width, config.model.depth,
              std::string(name(config.optimizer.type)).c_str(), static_cast<long long>(options.steps),
              static_cast<long long>(options.warmup), pack.step_graph_active() ? ", graph replays" : "");
  std::printf("%-16s %12s %14s %16s\n", "", "ms/step", "us/run-step", "run-steps/s");
  std::printf("%-16s %12.3f %14.1f %16.0f\n", "alone", alone * 1e3, alone * 1e6, 1.0 / alone);
  std::printf("%-16s %12.3f %14.1f %16.0f\n", fmt::format("pack of {}", options.pack).c_str(), packed * 1e3,
              packed / runs * 1e6, runs / packed);
  std::printf("aggregate speed-up of the pack over one run alone: %.2fx\n", runs / packed * alone);
  print_fused_linear_report(*backend);
  return 0;
}

}  // namespace

std::optional<StepTiming> time_a_few_steps(const nlohmann::json& resolved_config, int64_t steps) {
  const ExperimentConfig config = parse_experiment(resolved_config);
  if (config.is_icl()) return std::nullopt;
  auto backend = make_backend(config.device, config.precision);
  Trainer trainer(*backend, config);
  return StepTiming{seconds_per_step(*backend, trainer, /*warmup=*/1, steps), backend->name()};
}

CLI::App* add_bench_command(CLI::App& app, std::function<int()>& action) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "time each phase of a training step (CONFIG), or msign alone (--msign)");
  cmd->add_option("config", o->common.config_path, "experiment config (JSON); not with --msign");
  cmd->add_option("--set", o->common.overrides, "override a config key: --set optimizer.lr=0.003 (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--device", o->common.device, "auto | cpu | cuda (overrides the config's device)");
  CLI::Option* shape = cmd->add_option("--msign", o->msign_shape, "time msign alone on a random ROWSxCOLS matrix");
  cmd->add_option("--steps", o->steps, "timed steps")
      ->check(CLI::PositiveNumber)
      ->excludes(shape)
      ->capture_default_str();
  cmd->add_option("--pack", o->pack,
                  "train R copies (seeds seed..seed+R-1) as one pack and print its run-steps/s; with --msign: R "
                  "matrices in one call, as a pack's Muon update")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", o->warmup, "untimed steps (or msign calls) first")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--msign-method", o->msign_method, "ns5 | polar_express | svd | norm_matched (5 iterations for ns5/polar_express)")
      ->needs(shape)
      ->capture_default_str();
  cmd->add_option("--repeats", o->repeats, "timed msign calls")
      ->check(CLI::PositiveNumber)
      ->needs(shape)
      ->capture_default_str();
  cmd->add_option("--precision", o->precision, "fp32 | tf32 | bf16 for --msign (tf32, bf16: CUDA only)")
      ->needs(shape)
      ->capture_default_str();
  action = [o] { return cmd_bench(*o); };
  return cmd;
}

int cmd_bench(const BenchOptions& options) {
  if (!options.msign_shape.empty()) return bench_msign(options);
  if (options.common.config_path.empty()) {
    throw UsageError("bench needs a CONFIG (step phases) or --msign ROWSxCOLS (msign alone)");
  }
  const ExperimentConfig config = load_config(options.common);
  if (options.pack > 0) return bench_pack(options, config);
  auto backend = make_backend(config.device, config.precision);
  Trainer trainer(*backend, config);
  for (int64_t s = 0; s < options.warmup; ++s) trainer.train_step(s);

  PhaseTimes t;
  for (int64_t s = 0; s < options.steps; ++s) trainer.train_step(options.warmup + s, &t);
  const int eval_repeats = 3;
  backend->synchronize();
  const auto e0 = std::chrono::steady_clock::now();
  for (int i = 0; i < eval_repeats; ++i) trainer.evaluate();
  backend->synchronize();
  const double eval_each = std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count() / eval_repeats;
  // eval.spectra_every > 0: the spectra of one eval row (every weight and update) and the copy of
  // the weights each step keeps for the update, each timed alone.
  double spectra_each = 0, spectra_copy = 0;
  if (SpectraProbe* spectra = trainer.spectra()) {
    backend->synchronize();
    const auto s0 = std::chrono::steady_clock::now();
    for (int i = 0; i < eval_repeats; ++i) spectra->lines(0, options.warmup + options.steps);
    spectra_each = std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count() / eval_repeats;
    const auto c0 = std::chrono::steady_clock::now();
    for (int i = 0; i < eval_repeats; ++i) spectra->before_step();
    backend->synchronize();
    spectra_copy = std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count() / eval_repeats;
  }
  const double gemms = time_gemms_alone(*backend, trainer.model(), config.train.batch_size, static_cast<int>(options.steps));
  // Untimed steps as training runs them: on a backend with step graphs, graph replays (captured
  // during the warm-up), measured end to end over all steps.
  double replayed = 0.0;
  int64_t first = options.warmup + options.steps;
  if (backend->supports_step_graph()) {
    // Until the capture (after two eager steps) and its first launch, steps are not replays.
    for (int i = 0; i < 4 && !trainer.step_graph_active(); ++i) trainer.train_step(first++);
    if (trainer.step_graph_active()) trainer.train_step(first++);  // the first launch sets the counter
  }
  if (trainer.step_graph_active()) {
    backend->synchronize();
    const auto r0 = std::chrono::steady_clock::now();
    for (int64_t s = 0; s < options.steps; ++s) trainer.train_step(first + s);
    backend->synchronize();
    replayed = std::chrono::duration<double>(std::chrono::steady_clock::now() - r0).count() /
               static_cast<double>(options.steps);
  }

  const double n = static_cast<double>(t.steps);
  const double data = t.data / n, fwd = t.forward / n, bwd = t.backward / n, opt = t.optimizer / n;
  const double eval = eval_each / config.eval.every;
  const double step = data + fwd + bwd + opt;
  std::printf("skillrun bench  %s  (commit %s)\n", config.name.c_str(), git_commit());
  std::printf("device: %s\n", backend->name().c_str());
  std::printf("config: batch %d, width %d, depth %d, n_tasks %d, n_bits %d, optimizer %s; %lld timed steps\n",
              config.train.batch_size, config.model.width, config.model.depth, config.task.n_tasks, config.task.n_bits,
              std::string(name(config.optimizer.type)).c_str(), static_cast<long long>(t.steps));
  std::printf("%-22s %10s %8s\n", "phase", "ms/step", "share");
  auto row = [&](const char* name, double s) { std::printf("%-22s %10.3f %7.1f%%\n", name, s * 1e3, 100.0 * s / (step + eval)); };
  row("data", data);
  row("forward (+loss)", fwd);
  row("backward", bwd);
  row("optimizer", opt);
  row("eval (amortised)", eval);
  std::printf("%-22s %10.3f\n", "step (no eval)", step * 1e3);
  std::printf("%-22s %10.3f\n", "step + eval", (step + eval) * 1e3);
  if (replayed > 0) std::printf("%-22s %10.3f\n", "step (graph replay)", replayed * 1e3);
  if (trainer.spectra()) {
    std::printf("%-22s %10.3f ms per spectra eval row (eval.spectra_every = %d)\n", "spectra", spectra_each * 1e3,
                config.eval.spectra_every);
    std::printf("%-22s %10.3f ms per step (the weights kept for the update)\n", "spectra copy", spectra_copy * 1e3);
  }
  std::printf("%-22s %10.3f\n", "GEMMs alone", gemms * 1e3);
  std::printf("ratio step/GEMMs: %.2f   data share of step: %.1f%%\n", step / gemms, 100.0 * data / step);
  print_fused_linear_report(*backend);
  return 0;
}

}  // namespace skillrun
