// Newton-Schulz in tiles: how the CUDA backend's own Newton-Schulz kernels (kernels/newton_schulz.cu)
// cut one msign into blocks, written once as host+device code. The kernels use it, and so does a
// host model of them (tests/support/ns_tiled_reference.h) that computes the kernels' exact bits,
// so the decomposition is tested on any machine and the kernels bit for bit on a GPU.
//
// Every matrix is seen in its wide orientation: Y (s x L, s = min(rows, cols) <= kMaxSide) is X
// itself when rows <= cols (Y(i, k) = X[i L + k]) and X^T when X is tall (Y(i, k) = X[k s + i]).
// One iteration X' = a X + b (X X^T) X + c (X X^T)^2 X is then, in both orientations,
//   Gram        A = Y Y^T                         (s x s, symmetric)
//   polynomial  B = b A + c A A                   (s x s, symmetric)
//   apply       Y' = a Y + B Y                    (tall: X' = a X + X B, the same numbers)
// Each is a product of 64 x 64 output tiles, a block per tile, summed over k in steps of kDepth
// with operands past the matrix read as zero; each output is one chain of fused multiply-adds
// in increasing k, starting from +0. The Gram matrix is computed on its upper tiles only (the
// "pairs" ti <= tj) and mirrored, with the long side L split into chunks of `chunk` whose
// partial tiles are added in chunk order; the plan depends on the shape alone (not on the GPU,
// nor on how many runs share the call), so a run gets the same bits alone and in a pack.
#pragma once
#include <cstddef>

#include "core/hostdevice.h"

#if !defined(__CUDA_ARCH__)
#include <algorithm>
#include <cmath>
#endif

namespace skillrun {
// One iteration X <- a X + b (X X^T) X + c (X X^T)^2 X of an odd matrix polynomial (msign's
// Newton-Schulz schedules, optim/msign.h).
struct NsCoefficients {
  double a, b, c;
};
}  // namespace skillrun

namespace skillrun::ns_tiles {

constexpr int kTile = 64;      // output tile edge
constexpr int kDepth = 16;     // k per step
constexpr int kMaxSide = 256;  // small side the kernels take (4 tiles); larger goes to cuBLAS
constexpr int kMinChunk = 128; // Gram: k per chunk at least this (a multiple of kDepth) ...
constexpr int kMaxChunks = 64; // ... and at most this many chunks (bounds the partial tiles)

struct Plan {
  int s = 0, L = 0;     // Y is s x L
  bool tall = false;    // X = Y^T (rows > cols)
  int tiles = 0;        // tiles along s
  int pairs = 0;        // upper tiles (ti <= tj) of the Gram matrix
  int chunk = 0;        // k per Gram chunk (a multiple of kDepth)
  int chunks = 0;       // Gram chunks covering [0, L)
  int long_tiles = 0;   // tiles along L (the apply step)
};

constexpr int kBlockThreads = 256;  // threads per block of every Newton-Schulz kernel (4 x 4 outputs each)

SKR_HD int ceil_div(int a, int b) { return (a + b - 1) / b; }
SKR_HD int round_up(int a, int b) { return ceil_div(a, b) * b; }

// The plan of a rows x cols matrix (both >= 1); usable() says whether the kernels take it.
SKR_HD Plan plan(int rows, int cols) {
  Plan p;
  p.tall = rows > cols;
  p.s = p.tall ? cols : rows;
  p.L = p.tall ? rows : cols;
  p.tiles = ceil_div(p.s, kTile);
  p.pairs = p.tiles * (p.tiles + 1) / 2;
  const int wanted = round_up(ceil_div(p.L, kMaxChunks), kDepth);
  p.chunk = wanted > kMinChunk ? wanted : kMinChunk;
  p.chunks = ceil_div(p.L, p.chunk);
  p.long_tiles = ceil_div(p.L, kTile);
  return p;
}

// The launch grids for `runs` matrices: blocks along x, y and the run axis z.
struct Grid {
  int x = 1, y = 1, z = 1;
};
SKR_HD Grid gram_grid(const Plan& p, int runs) { return {p.pairs, p.chunks, runs}; }      // upper tile, chunk
SKR_HD Grid poly_grid(const Plan& p, int runs) { return {p.tiles, p.tiles, runs}; }       // column tile, row tile
SKR_HD Grid apply_grid(const Plan& p, int runs) { return {p.long_tiles, p.tiles, runs}; } // L tile, row tile

// Device memory the Gram step needs besides A for `runs` matrices: partial tiles (floats) and
// one counter per upper tile (ints); none with a single chunk.
SKR_HD std::size_t partial_floats(const Plan& p, int runs) {
  if (p.chunks <= 1 || runs <= 0) return 0;
  return static_cast<std::size_t>(runs) * static_cast<std::size_t>(p.pairs) * static_cast<std::size_t>(p.chunks) *
         static_cast<std::size_t>(kTile * kTile);
}
SKR_HD std::size_t counter_count(const Plan& p, int runs) {
  if (p.chunks <= 1 || runs <= 0) return 0;
  return static_cast<std::size_t>(runs) * static_cast<std::size_t>(p.pairs);
}

SKR_HD bool usable(int rows, int cols) { return rows >= 1 && cols >= 1 && (rows < cols ? rows : cols) <= kMaxSide; }

// Offset of Y(i, k) in X.
SKR_HD std::size_t y_at(const Plan& p, int i, int k) {
  return p.tall ? static_cast<std::size_t>(k) * p.s + i : static_cast<std::size_t>(i) * p.L + k;
}

// Upper tile `pair` of the Gram matrix, row by row: (0,0), (0,1), ..., (0,T-1), (1,1), ...
SKR_HD void pair_tiles(int pair, int tiles, int* ti, int* tj) {
  int row = 0, first = 0;
  while (pair >= first + (tiles - row)) {
    first += tiles - row;
    ++row;
  }
  *ti = row;
  *tj = row + (pair - first);
}

// k range of Gram chunk c: [begin, end) with end past L rounded up to kDepth (zeros there).
SKR_HD int chunk_begin(const Plan& p, int c) { return c * p.chunk; }
SKR_HD int chunk_end(const Plan& p, int c) {
  const int end = (c + 1) * p.chunk;
  return end < p.L ? end : round_up(p.L, kDepth);
}

// acc + a b with one rounding, identical on host and device.
SKR_HD float fused(float a, float b, float acc) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, acc);
#else
  return std::fma(a, b, acc);
#endif
}

// The epilogues: B(i, j) from the product sum of A A; Y'(i, j) from the product sum of B Y.
SKR_HD float poly_value(float b, float c, float a_ij, float product) { return fused(c, product, b * a_ij); }
SKR_HD float apply_value(float a, float y_ij, float product) { return fused(a, y_ij, product); }

}  // namespace skillrun::ns_tiles
