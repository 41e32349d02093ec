// Data helpers shared by the tests: uniform random floats from a seeded mt19937, a count of the
// elements whose bits differ (for "bit for bit" assertions), the normalised error of a result.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace skillrun::testing {

inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// n floats uniform in [lo, hi), the same for the same seed on every machine.
inline std::vector<float> uniform_floats(std::size_t n, unsigned seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Elements of a and b (n each) whose bits differ; a NaN equals a NaN (payloads aside).
template <class T>
std::size_t bit_differences(const T* a, const T* b, std::size_t n) {
  std::size_t d = 0;
  for (std::size_t i = 0; i < n; ++i)
    d += std::memcmp(a + i, b + i, sizeof(T)) != 0 && !(std::isnan(a[i]) && std::isnan(b[i]));
  return d;
}

// ||got - ref|| / ||ref|| (2-norms in double) over the elements that are not NaN in both.
inline double normalised_error(const std::vector<float>& got, const std::vector<float>& ref) {
  double diff = 0.0, norm = 0.0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (std::isnan(ref[i]) && std::isnan(got[i])) continue;
    const double d = static_cast<double>(got[i]) - ref[i];
    diff += d * d;
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(diff / norm);
}

}  // namespace skillrun::testing
