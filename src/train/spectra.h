// Spectral diagnostics (eval.spectra_every; arXiv 2606.08388): the singular values of every
// weight matrix of a run and of the update the optimizer last applied to it, W_t - W_{t-1},
// with their summaries, into the run's spectra.csv. Reads training state only: a run's
// metrics.csv has the same bits with the diagnostics on or off.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/model.h"

namespace skillrun {

// Summaries of the singular values sigma_i >= 0 of a (rows x cols) matrix:
//  sigma_max;  stable rank ||X||_F^2 / sigma_max^2 = sum sigma_i^2 / sigma_max^2;
//  effective rank exp(H), H = -sum q_i log q_i with q_i = sigma_i / sum sigma (sigma, not
//  sigma^2: the paper's definition; it weighs small directions more than an energy share does);
//  spectral entropy H / log(min(rows, cols)) in [0, 1] (0 when min(rows, cols) == 1).
// A zero matrix has sigma_max 0 and every rank and the entropy 0.
struct SpectrumStats {
  double sigma_max = 0, stable_rank = 0, effective_rank = 0, spectral_entropy = 0;
};
SpectrumStats spectrum_stats(std::span<const double> sigma, int rows, int cols);

// The singular values of X (rows x cols, fp32, row-major, backend memory), descending: the Gram
// matrix on the small side (X X^T or X^T X, min(rows, cols)^2) by one gemm on the backend, then
// downloaded and its eigenvalues taken on the host in double (LAPACK dsyev), sigma =
// sqrt(max(lambda, 0)). `gram` is backend scratch of min(rows, cols)^2 floats. The Gram squares
// the condition number: singular values below ~sqrt(fp32 eps) sigma_max (3e-4) are noise, which
// the summaries above barely weigh.
std::vector<double> singular_values(Backend& backend, const float* X, int rows, int cols, float* gram);

// spectra.csv of a run: the header and one line per (step, tensor, of).
inline constexpr const char* kSpectraFile = "spectra.csv";
extern const char* const kSpectraHeader;
std::string spectra_line(int64_t step, const std::string& tensor, const char* of, int rows, int cols,
                         std::span<const double> sigma);

// The spectra of the runs of one model (a pack): keeps every run's weights as they were before
// the last step (one copy of the model's value arena per step, taken by before_step), and writes
// the lines of one run at an eval.
class SpectraProbe {
 public:
  SpectraProbe(Backend& backend, Model& model, int every_rows, int eval_every);
  // Keeps the weights before the coming step (all runs): one device copy of the value arena.
  void before_step();
  // Whether the eval row at `step` has spectra: every every_rows-th eval row (step 0 included)
  // and the run's last row.
  bool due(int64_t step, bool last_row) const;
  // The lines of run `run` (its model slot) at `step`: per weight matrix, its weight, and from
  // step 1 its last update W - W_before.
  std::string lines(int run, int64_t step);

 private:
  Backend& backend_;
  Model& model_;
  int64_t period_;  // every_rows * eval.every steps
  Buffer<float> before_;  // the value arena before the last step
  Buffer<float> diff_, gram_;
};

}  // namespace skillrun
