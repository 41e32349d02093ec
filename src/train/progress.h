// Training progress on stderr: a redrawn line on a terminal, a plain line every few seconds
// otherwise (logs, Slurm), nothing with --no-progress.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace skillrun {

enum class ProgressMode { Off, Terminal, Plain };
// Terminal when stderr is a tty, Plain otherwise; Off when disabled.
ProgressMode detect_progress_mode(bool disabled);

class Progress {
 public:
  Progress(ProgressMode mode, int64_t max_steps, int n_tasks);
  // Called after every eval; prints when due (always on a terminal, every ~5 s otherwise).
  void update(int64_t step, double mean_loss_bits, int learned);
  // The same line with `status` (e.g. "loss 1.2e-03  rel. distance 4.5e-02") after the rate.
  void update(int64_t step, const std::string& status);
  // Ends the terminal line.
  void finish();

 private:
  ProgressMode mode_;
  int64_t max_steps_;
  int n_tasks_;
  std::chrono::steady_clock::time_point start_, last_print_;
  bool printed_ = false;
};

}  // namespace skillrun
