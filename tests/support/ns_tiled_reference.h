// A host model of the CUDA backend's Newton-Schulz kernels (kernels/newton_schulz.cu): the same
// plan (backend/ns_tiles.h), the same tiles, the same chains of fused multiply-adds in the same
// order, the same zero padding and chunk sums. It starts from X0 (the normalised G) and gives the
// kernels' result bit for bit, so it tests the tiling here and the kernels on a GPU. The loops
// over independent outputs run in parallel (OpenMP, where the test binary has it): each output
// is still one chain in one thread, so the bits do not depend on the threads.
#pragma once
#include <array>
#include <cstddef>
#include <span>
#include <vector>

#include "backend/backend.h"  // NsCoefficients
#include "backend/ns_tiles.h"

namespace skillrun::testing {

inline std::vector<float> ns_tiled_reference(std::vector<float> x, int rows, int cols,
                                             std::span<const NsCoefficients> iterations) {
  using namespace ns_tiles;
  const Plan p = plan(rows, cols);
  const int s = p.s, L = p.L;
  auto y = [&](const std::vector<float>& X, int i, int k) {
    return (i < s && k < L) ? X[y_at(p, i, k)] : 0.0f;
  };
  std::vector<float> A(static_cast<std::size_t>(s) * s), B(A.size()), next(x.size());
  using Tile = std::array<float, kTile * kTile>;
  for (const NsCoefficients& coef : iterations) {
    // Gram: per upper tile, per chunk a partial tile (from +0 over the chunk's k), then the
    // partial tiles added in chunk order, written to (i, j) and mirrored to (j, i).
    for (int pair = 0; pair < p.pairs; ++pair) {
      int ti = 0, tj = 0;
      pair_tiles(pair, p.tiles, &ti, &tj);
      std::vector<Tile> partial(static_cast<std::size_t>(p.chunks));
#pragma omp parallel for collapse(2) schedule(static)
      for (int c = 0; c < p.chunks; ++c)
        for (int r = 0; r < kTile; ++r)
          for (int q = 0; q < kTile; ++q) {
            float acc = 0.0f;
            for (int k = chunk_begin(p, c); k < chunk_end(p, c); ++k)
              acc = fused(y(x, ti * kTile + r, k), y(x, tj * kTile + q, k), acc);
            partial[c][r * kTile + q] = acc;
          }
      for (int r = 0; r < kTile; ++r)
        for (int q = 0; q < kTile; ++q) {
          const int i = ti * kTile + r, j = tj * kTile + q;
          if (i >= s || j >= s) continue;
          float v = partial[0][r * kTile + q];
          for (int c = 1; c < p.chunks; ++c) v = v + partial[c][r * kTile + q];
          A[static_cast<std::size_t>(i) * s + j] = v;
          A[static_cast<std::size_t>(j) * s + i] = v;
        }
    }
    // Polynomial: B = b A + c (A A), k over s rounded up to kDepth.
    const int s_depth = round_up(s, kDepth);
    auto a_at = [&](int i, int k) { return (i < s && k < s) ? A[static_cast<std::size_t>(i) * s + k] : 0.0f; };
#pragma omp parallel for schedule(static)
    for (int i = 0; i < s; ++i)
      for (int j = 0; j < s; ++j) {
        float acc = 0.0f;
        for (int k = 0; k < s_depth; ++k) acc = fused(a_at(i, k), a_at(k, j), acc);
        const std::size_t e = static_cast<std::size_t>(i) * s + j;
        B[e] = poly_value(static_cast<float>(coef.b), static_cast<float>(coef.c), A[e], acc);
      }
    // Apply: Y' = a Y + B Y.
    auto b_at = [&](int i, int k) { return (i < s && k < s) ? B[static_cast<std::size_t>(i) * s + k] : 0.0f; };
#pragma omp parallel for schedule(static)
    for (int i = 0; i < s; ++i)
      for (int j = 0; j < L; ++j) {
        float acc = 0.0f;
        for (int k = 0; k < s_depth; ++k) acc = fused(b_at(i, k), y(x, k, j), acc);
        next[y_at(p, i, j)] = apply_value(static_cast<float>(coef.a), x[y_at(p, i, j)], acc);
      }
    x.swap(next);
  }
  return x;
}

}  // namespace skillrun::testing
