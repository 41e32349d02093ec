// Spectral diagnostics: the Gram on the backend, the eigenvalues on the host, the summaries and
// the lines of spectra.csv.
#include "train/spectra.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <iterator>
#include <numeric>

#include <fmt/format.h>
#include <lapacke.h>

#include "core/error.h"

namespace skillrun {

SpectrumStats spectrum_stats(std::span<const double> sigma, int rows, int cols) {
  SpectrumStats s;
  double sum = 0, sum_sq = 0;
  for (double v : sigma) {
    s.sigma_max = std::max(s.sigma_max, v);
    sum += v;
    sum_sq += v * v;
  }
  if (!(s.sigma_max > 0)) return s;
  s.stable_rank = sum_sq / (s.sigma_max * s.sigma_max);
  double h = 0;
  for (double v : sigma) {
    const double q = v / sum;
    if (q > 0) h -= q * std::log(q);
  }
  s.effective_rank = std::exp(h);
  const int side = std::min(rows, cols);
  s.spectral_entropy = side > 1 ? h / std::log(static_cast<double>(side)) : 0.0;
  return s;
}

std::vector<double> singular_values(Backend& backend, const float* X, int rows, int cols, float* gram) {
  const int s = std::min(rows, cols);
  if (s <= 0) return {};
  if (rows <= cols) {  // X X^T (rows x rows)
    backend.gemm(Trans::No, Trans::Yes, s, s, cols, 1.0f, X, cols, X, cols, 0.0f, gram, s);
  } else {  // X^T X (cols x cols)
    backend.gemm(Trans::Yes, Trans::No, s, s, rows, 1.0f, X, cols, X, cols, 0.0f, gram, s);
  }
  const std::size_t ss = static_cast<std::size_t>(s) * s;
  std::vector<float> host(ss);
  backend.download(host.data(), gram, ss * sizeof(float));
  std::vector<double> a(host.begin(), host.end());
  for (double v : a)
    if (!std::isfinite(v)) return std::vector<double>(static_cast<std::size_t>(s), std::nan(""));
  std::vector<double> lambda(static_cast<std::size_t>(s));
  const lapack_int info = LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', s, a.data(), s, lambda.data());
  if (info != 0) throw RuntimeError(fmt::format("spectra: LAPACK dsyev failed (info {}) on a {}x{} Gram", info, s, s));
  std::vector<double> sigma;
  sigma.reserve(lambda.size());
  for (double l : lambda) sigma.push_back(std::sqrt(std::max(l, 0.0)));
  std::sort(sigma.begin(), sigma.end(), std::greater<>());
  return sigma;
}

const char* const kSpectraHeader =
    "step,tensor,of,rows,cols,sigma_max,stable_rank,effective_rank,spectral_entropy,singular_values";

std::string spectra_line(int64_t step, const std::string& tensor, const char* of, int rows, int cols,
                         std::span<const double> sigma) {
  const SpectrumStats st = spectrum_stats(sigma, rows, cols);
  fmt::memory_buffer line;
  fmt::format_to(std::back_inserter(line), "{},{},{},{},{},{:.9g},{:.9g},{:.9g},{:.9g},", step, tensor, of, rows,
                 cols, st.sigma_max, st.stable_rank, st.effective_rank, st.spectral_entropy);
  for (std::size_t i = 0; i < sigma.size(); ++i)
    fmt::format_to(std::back_inserter(line), "{}{:.6g}", i ? " " : "", sigma[i]);
  line.push_back('\n');
  return fmt::to_string(line);
}

SpectraProbe::SpectraProbe(Backend& backend, Model& model, int every_rows, int eval_every)
    : backend_(backend), model_(model), period_(static_cast<int64_t>(every_rows) * eval_every),
      before_(backend, model.value_arena().size()) {
  std::size_t largest = 0, largest_gram = 0;
  for (const Parameter& p : model.parameters(0)) {
    if (!p.is_matrix) continue;
    largest = std::max(largest, p.size());
    const auto s = static_cast<std::size_t>(std::min(p.rows, p.cols));
    largest_gram = std::max(largest_gram, s * s);
  }
  diff_ = Buffer<float>(backend, largest);
  gram_ = Buffer<float>(backend, largest_gram);
  before_step();  // before step 1: the initial weights
}

void SpectraProbe::before_step() {
  const Buffer<float>& values = model_.value_arena();
  if (!values.empty()) backend_.copy(before_.data(), values.data(), values.size() * sizeof(float));
}

bool SpectraProbe::due(int64_t step, bool last_row) const { return last_row || step % period_ == 0; }

std::string SpectraProbe::lines(int run, int64_t step) {
  std::string out;
  const float* arena = model_.value_arena().data();
  for (const Parameter& p : model_.parameters(run)) {
    if (!p.is_matrix) continue;
    out += spectra_line(step, p.name, "weight", p.rows, p.cols,
                        singular_values(backend_, p.value.data(), p.rows, p.cols, gram_.data()));
    if (step == 0) continue;
    const float* before = before_.data() + (p.value.data() - arena);
    backend_.copy(diff_.data(), p.value.data(), p.size() * sizeof(float));
    backend_.axpby(diff_.data(), before, p.size(), -1.0f, 1.0f);  // W - W_before
    out += spectra_line(step, p.name, "update", p.rows, p.cols,
                        singular_values(backend_, diff_.data(), p.rows, p.cols, gram_.data()));
  }
  return out;
}

}  // namespace skillrun
