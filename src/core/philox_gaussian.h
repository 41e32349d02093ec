// Standard normal draws from Philox (host only): the one Box-Muller of skillrun.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>

#include "core/philox.h"

namespace skillrun {

// Entry `e` of a Gaussian table `index` of `stream` under `seed`: Box-Muller from two 32-bit
// uniforms in (0, 1), words 2 (e % 2) and 2 (e % 2) + 1 of block e / 2.
inline double philox_gaussian(uint64_t seed, RngStream stream, uint32_t index, std::size_t e) {
  const Philox4x32 r = philox_draw(seed, stream, index, static_cast<uint32_t>(e / 2), 0);
  const std::size_t w = 2 * (e % 2);
  const double u1 = (static_cast<double>(r.v[w]) + 0.5) / 4294967296.0;
  const double u2 = (static_cast<double>(r.v[w + 1]) + 0.5) / 4294967296.0;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

}  // namespace skillrun
