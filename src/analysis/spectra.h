// The spectral diagnostics of a run in `skillrun analyze`: its spectra.csv (written with
// eval.spectra_every, train/spectra.h) read back, and the stable and effective rank of each
// weight and update at the run's learning times T_first, T(0.5), T(1) and at its end.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace skillrun {

// One row of spectra.csv, without its singular values.
struct SpectraRow {
  int64_t step = 0;
  std::string tensor;  // "layers.0.weight"
  std::string of;      // "weight" | "update"
  double sigma_max = 0, stable_rank = 0, effective_rank = 0, spectral_entropy = 0;
};
// dir/spectra.csv's rows in file order; empty without the file. A torn last line is dropped;
// a malformed row throws RuntimeError naming the file and line.
std::vector<SpectraRow> read_spectra(const std::filesystem::path& dir);

// The ranks of one (tensor, of) at one of a run's moments: from the last spectra row at or
// before it (`step` says which; empty when none is).
struct SpectraAt {
  std::string tensor, of;
  std::string moment;  // "T_first", "T(0.5)", "T(1)", "end"
  std::optional<int64_t> step;
  std::optional<double> stable_rank, effective_rank;
};
inline constexpr const char* kSpectraMoments[] = {"T_first", "T(0.5)", "T(1)", "end"};
// Per (tensor, of) in file order, per moment of kSpectraMoments, in that order; `times` are the
// moments' steps (an empty one gives empty ranks).
std::vector<SpectraAt> spectra_at(const std::vector<SpectraRow>& rows, const std::vector<std::optional<int64_t>>& times);

}  // namespace skillrun
