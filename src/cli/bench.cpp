// `skillrun bench CONFIG`: time per phase of a training step (data, forward, backward,
// optimizer, eval amortised over eval.every steps) beside the step's GEMMs timed alone with
// the same backend, so "a step costs X times its GEMMs" is one ratio from one run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/version.h"
#include "train/trainer.h"

namespace skillrun {
namespace {

// Seconds for the GEMMs of one step alone (forward, weight gradients, data gradients of
// every layer but the first), on scratch buffers of the same shapes.
double time_gemms_alone(Backend& backend, const Mlp& model, int batch, int repeats) {
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

}  // namespace

int cmd_bench(const BenchOptions& options) {
  const ExperimentConfig config = load_config(options.common);
  auto backend = make_backend(parse_device(config.device), parse_precision(config.precision));
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
  const double gemms = time_gemms_alone(*backend, trainer.model(), config.train.batch_size, static_cast<int>(options.steps));

  const double n = static_cast<double>(t.steps);
  const double data = t.data / n, fwd = t.forward / n, bwd = t.backward / n, opt = t.optimizer / n;
  const double eval = eval_each / config.eval.every;
  const double step = data + fwd + bwd + opt;
  std::printf("skillrun bench  %s  (commit %s)\n", config.name.c_str(), git_commit());
  std::printf("device: %s\n", backend->name().c_str());
  std::printf("config: batch %d, width %d, depth %d, n_tasks %d, n_bits %d, optimizer %s; %lld timed steps\n",
              config.train.batch_size, config.model.width, config.model.depth, config.task.n_tasks,
              config.task.n_bits, config.optimizer.type.c_str(), static_cast<long long>(t.steps));
  std::printf("%-22s %10s %8s\n", "phase", "ms/step", "share");
  auto row = [&](const char* name, double s) { std::printf("%-22s %10.3f %7.1f%%\n", name, s * 1e3, 100.0 * s / (step + eval)); };
  row("data", data);
  row("forward (+loss)", fwd);
  row("backward", bwd);
  row("optimizer", opt);
  row("eval (amortised)", eval);
  std::printf("%-22s %10.3f\n", "step (no eval)", step * 1e3);
  std::printf("%-22s %10.3f\n", "step + eval", (step + eval) * 1e3);
  std::printf("%-22s %10.3f\n", "GEMMs alone", gemms * 1e3);
  std::printf("ratio step/GEMMs: %.2f   data share of step: %.1f%%\n", step / gemms, 100.0 * data / step);
  return 0;
}

}  // namespace skillrun
