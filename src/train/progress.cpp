// Progress line: step, steps/s, ETA to max_steps, mean loss and subtasks learned k/K.
#include "train/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace skillrun {

ProgressMode detect_progress_mode(bool disabled) {
  if (disabled) return ProgressMode::Off;
  return ::isatty(STDERR_FILENO) ? ProgressMode::Terminal : ProgressMode::Plain;
}

Progress::Progress(ProgressMode mode, int64_t max_steps, int n_tasks)
    : mode_(mode), max_steps_(max_steps), n_tasks_(n_tasks),
      start_(std::chrono::steady_clock::now()), last_print_(start_) {}

void Progress::update(int64_t step, double mean_loss_bits, int learned) {
  if (mode_ == ProgressMode::Off) return;
  update(step, fmt::format("mean loss {:.4f} bits  learned {}/{}", mean_loss_bits, learned, n_tasks_));
}

void Progress::update(int64_t step, const std::string& status) {
  if (mode_ == ProgressMode::Off) return;
  const auto now = std::chrono::steady_clock::now();
  if (mode_ == ProgressMode::Plain && printed_ && now - last_print_ < std::chrono::seconds(5)) return;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(step) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(max_steps_ - step) / rate : 0.0;
  const std::string line =
      fmt::format("step {:>7}/{}  {:7.1f} steps/s  ETA<= {:6.0f}s  {}", step, max_steps_, rate, eta, status);
  if (mode_ == ProgressMode::Terminal)
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
  else
    std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
  last_print_ = now;
  printed_ = true;
}

void Progress::finish() {
  if (mode_ == ProgressMode::Terminal && printed_) std::fprintf(stderr, "\n");
}

}  // namespace skillrun
