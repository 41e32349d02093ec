// Newton-Schulz kernels for msign on the small side (<= 256), the tiling of backend/ns_tiles.h:
// a block of 256 threads per 64 x 64 output tile, each thread 4 x 4 outputs (rows ty + 16 p,
// columns tx + 16 q), operands staged through shared memory kDepth columns of k at a time (the
// next step's loaded into registers during this step's arithmetic) and multiplied with fused
// multiply-adds (__fmaf_rn: this library compiles with --fmad=false, so
// every fusion here is written out, and each output is one fma chain in increasing k, what the
// host model in tests/support/ns_tiled_reference.h computes).
//
// Gram: a block per (upper tile, chunk of L, run). With one chunk it writes A directly. With
// more, each block writes its partial tile, and the last block of a tile to finish (a counter
// per tile, taken after a __threadfence) adds the partial tiles in chunk order, writes A and
// its mirror, and sets the counter back to zero for the next launch: which block is last
// changes nothing in the sum, so the result is deterministic. The polynomial and apply steps are
// plain tiled products with their epilogue fused; apply stages its tile in shared memory so
// that the stores are coalesced in either orientation of X.
#include "common.cuh"
#include "newton_schulz.cuh"

#include <utility>

namespace skillrun::cuda {
namespace {

using ns_tiles::kDepth;
using ns_tiles::kTile;
using ns_tiles::Plan;

constexpr int kBlock = ns_tiles::kBlockThreads;
constexpr int kMicro = 4;                // outputs per thread along each side
constexpr int kSide = kTile / kMicro;    // 16 threads along each side of a tile
constexpr int kStride = kTile + 4;       // a staged row of k, padded against bank conflicts
constexpr int kTileElems = kTile * kTile;
static_assert(kSide * kSide == kBlock, "one thread per 4 x 4 outputs of a tile");

// Entry q (< kLoads) of this thread's share of a staged operand: S[kk][r] for r < kTile,
// kk < kDepth. AlongK: consecutive threads take consecutive kk (for an operand contiguous along
// k in memory), else consecutive r; either way a warp's global loads are contiguous runs.
constexpr int kLoads = kTile * kDepth / kBlock;
static_assert(kTile * kDepth % kBlock == 0, "a staged operand is a whole number of loads per thread");
template <bool AlongK>
__device__ __forceinline__ void stage_entry(int q, int* r, int* kk) {
  const int idx = static_cast<int>(threadIdx.x) + q * kBlock;
  *r = AlongK ? idx / kDepth : idx % kTile;
  *kk = AlongK ? idx % kDepth : idx / kTile;
}

// acc[p][q] = fma chain over k in [k_begin, k_end) (k_end - k_begin a multiple of kDepth) of
// get_a(ty + 16 p, k) * get_b(tx + 16 q, k), continuing from acc's values. Every thread of the
// block must call it. The next step's operands are loaded into registers while the current
// step multiplies (the loads' latency hidden behind the arithmetic), then stored to shared
// memory between two barriers.
template <bool AAlongK, bool BAlongK, class GetA, class GetB>
__device__ __forceinline__ void tile_product(const GetA& get_a, const GetB& get_b, int k_begin, int k_end,
                                             float (&acc)[kMicro][kMicro]) {
  __shared__ float a_stage[kDepth][kStride];
  __shared__ float b_stage[kDepth][kStride];
  const int tx = static_cast<int>(threadIdx.x) % kSide, ty = static_cast<int>(threadIdx.x) / kSide;
  float a_next[kLoads], b_next[kLoads];
  auto fetch = [&](int k0) {
#pragma unroll
    for (int q = 0; q < kLoads; ++q) {
      int r, kk;
      stage_entry<AAlongK>(q, &r, &kk);
      a_next[q] = get_a(r, k0 + kk);
      stage_entry<BAlongK>(q, &r, &kk);
      b_next[q] = get_b(r, k0 + kk);
    }
  };
  if (k_begin < k_end) fetch(k_begin);
  for (int k0 = k_begin; k0 < k_end; k0 += kDepth) {
#pragma unroll
    for (int q = 0; q < kLoads; ++q) {
      int r, kk;
      stage_entry<AAlongK>(q, &r, &kk);
      a_stage[kk][r] = a_next[q];
      stage_entry<BAlongK>(q, &r, &kk);
      b_stage[kk][r] = b_next[q];
    }
    __syncthreads();
    if (k0 + kDepth < k_end) fetch(k0 + kDepth);
#pragma unroll
    for (int kk = 0; kk < kDepth; ++kk) {
      float a[kMicro], b[kMicro];
#pragma unroll
      for (int p = 0; p < kMicro; ++p) {
        a[p] = a_stage[kk][ty + kSide * p];
        b[p] = b_stage[kk][tx + kSide * p];
      }
#pragma unroll
      for (int p = 0; p < kMicro; ++p)
#pragma unroll
        for (int q = 0; q < kMicro; ++q) acc[p][q] = ns_tiles::fused(a[p], b[q], acc[p][q]);
    }
    __syncthreads();
  }
}

// ---- kernels --------------------------------------------------------------------------------

template <bool Tall>
__global__ void __launch_bounds__(kBlock)
    ns_gram_kernel(const float* X, std::size_t x_stride, float* A, std::size_t a_stride, float* partials,
                   int* counters, Plan p) {
  const int pair = static_cast<int>(blockIdx.x), chunk = static_cast<int>(blockIdx.y);
  const auto run = static_cast<std::size_t>(blockIdx.z);
  X += run * x_stride;
  A += run * a_stride;
  int ti = 0, tj = 0;
  ns_tiles::pair_tiles(pair, p.tiles, &ti, &tj);
  const int i0 = ti * kTile, j0 = tj * kTile, s = p.s;
  auto y = [&](int i, int k) { return (i < s && k < p.L) ? X[ns_tiles::y_at(p, i, k)] : 0.0f; };

  float acc[kMicro][kMicro] = {};
  // Y(i, k) is contiguous along k in a wide X, along i in a tall one.
  tile_product<!Tall, !Tall>([&](int r, int k) { return y(i0 + r, k); }, [&](int c, int k) { return y(j0 + c, k); },
                             ns_tiles::chunk_begin(p, chunk), ns_tiles::chunk_end(p, chunk), acc);

  const int tx = static_cast<int>(threadIdx.x) % kSide, ty = static_cast<int>(threadIdx.x) / kSide;
  if (p.chunks == 1) {
#pragma unroll
    for (int a = 0; a < kMicro; ++a)
#pragma unroll
      for (int b = 0; b < kMicro; ++b) {
        const int i = i0 + ty + kSide * a, j = j0 + tx + kSide * b;
        if (i < s && j < s) {
          A[static_cast<std::size_t>(i) * s + j] = acc[a][b];
          A[static_cast<std::size_t>(j) * s + i] = acc[a][b];
        }
      }
    return;
  }

  const std::size_t tile_index = run * static_cast<std::size_t>(p.pairs) + static_cast<std::size_t>(pair);
  float* tiles = partials + tile_index * static_cast<std::size_t>(p.chunks) * kTileElems;
  float* mine = tiles + static_cast<std::size_t>(chunk) * kTileElems;
#pragma unroll
  for (int a = 0; a < kMicro; ++a)
#pragma unroll
    for (int b = 0; b < kMicro; ++b) mine[(ty + kSide * a) * kTile + tx + kSide * b] = acc[a][b];
  // Publish this partial tile before counting it; the last block to count reads them all.
  __threadfence();
  __syncthreads();
  __shared__ int last;
  int* counter = counters + tile_index;
  if (threadIdx.x == 0) {
    last = atomicAdd(counter, 1) == p.chunks - 1 ? 1 : 0;
    __threadfence();  // the acquire side: the other blocks' partial tiles are read after the count
  }
  __syncthreads();
  if (last == 0) return;
  if (threadIdx.x == 0) *counter = 0;  // every block of this tile has counted: ready for the next launch
  for (int e = static_cast<int>(threadIdx.x); e < kTileElems; e += kBlock) {
    const int i = i0 + e / kTile, j = j0 + e % kTile;
    if (i >= s || j >= s) continue;
    // __ldcg: from L2, where the other blocks' stores are, never a stale L1 line.
    float v = __ldcg(tiles + e);
    for (int c = 1; c < p.chunks; ++c) v = v + __ldcg(tiles + static_cast<std::size_t>(c) * kTileElems + e);
    A[static_cast<std::size_t>(i) * s + j] = v;
    A[static_cast<std::size_t>(j) * s + i] = v;
  }
}

__global__ void __launch_bounds__(kBlock)
    ns_poly_kernel(const float* A, float* B, std::size_t stride, int s, float b, float c) {
  const auto run = static_cast<std::size_t>(blockIdx.z);
  A += run * stride;
  B += run * stride;
  const int i0 = static_cast<int>(blockIdx.y) * kTile, j0 = static_cast<int>(blockIdx.x) * kTile;
  auto a_at = [&](int i, int k) { return (i < s && k < s) ? A[static_cast<std::size_t>(i) * s + k] : 0.0f; };
  float acc[kMicro][kMicro] = {};
  tile_product<true, false>([&](int r, int k) { return a_at(i0 + r, k); }, [&](int q, int k) { return a_at(k, j0 + q); },
                            0, ns_tiles::round_up(s, kDepth), acc);
  const int tx = static_cast<int>(threadIdx.x) % kSide, ty = static_cast<int>(threadIdx.x) / kSide;
#pragma unroll
  for (int p = 0; p < kMicro; ++p)
#pragma unroll
    for (int q = 0; q < kMicro; ++q) {
      const int i = i0 + ty + kSide * p, j = j0 + tx + kSide * q;
      if (i < s && j < s) {
        const std::size_t e = static_cast<std::size_t>(i) * s + j;
        B[e] = ns_tiles::poly_value(b, c, A[e], acc[p][q]);
      }
    }
}

template <bool Tall>
__global__ void __launch_bounds__(kBlock)
    ns_apply_kernel(const float* X, std::size_t x_stride, const float* B, std::size_t b_stride, float* X_next,
                    std::size_t next_stride, Plan p, float a) {
  const auto run = static_cast<std::size_t>(blockIdx.z);
  X += run * x_stride;
  B += run * b_stride;
  X_next += run * next_stride;
  const int i0 = static_cast<int>(blockIdx.y) * kTile, j0 = static_cast<int>(blockIdx.x) * kTile, s = p.s;
  auto b_at = [&](int i, int k) { return (i < s && k < s) ? B[static_cast<std::size_t>(i) * s + k] : 0.0f; };
  auto y = [&](int i, int k) { return (i < s && k < p.L) ? X[ns_tiles::y_at(p, i, k)] : 0.0f; };
  float acc[kMicro][kMicro] = {};
  // Y(k, j) is contiguous along j in a wide X, along k in a tall one.
  tile_product<true, Tall>([&](int r, int k) { return b_at(i0 + r, k); }, [&](int c, int k) { return y(k, j0 + c); },
                           0, ns_tiles::round_up(s, kDepth), acc);

  // Through shared memory, so that consecutive threads store consecutive addresses of X_next.
  __shared__ float out[kTile][kTile + 1];
  const int tx = static_cast<int>(threadIdx.x) % kSide, ty = static_cast<int>(threadIdx.x) / kSide;
#pragma unroll
  for (int pp = 0; pp < kMicro; ++pp)
#pragma unroll
    for (int q = 0; q < kMicro; ++q) out[ty + kSide * pp][tx + kSide * q] = acc[pp][q];
  __syncthreads();
  for (int e = static_cast<int>(threadIdx.x); e < kTileElems; e += kBlock) {
    const int r = Tall ? e % kTile : e / kTile, c = Tall ? e / kTile : e % kTile;
    const int i = i0 + r, j = j0 + c;
    if (i < s && j < p.L) {
      const std::size_t at = ns_tiles::y_at(p, i, j);
      X_next[at] = ns_tiles::apply_value(a, X[at], out[r][c]);
    }
  }
}

}  // namespace

// ---- launchers ------------------------------------------------------------------------------

namespace {
dim3 to_dim3(const ns_tiles::Grid& g) {
  return dim3(static_cast<unsigned int>(g.x), static_cast<unsigned int>(g.y), static_cast<unsigned int>(g.z));
}
}  // namespace

void launch_ns_gram(const float* X, std::size_t x_stride, float* A, std::size_t a_stride, float* partials,
                    int* counters, const Plan& p, int runs, cudaStream_t stream) {
  if (runs <= 0 || p.s <= 0 || p.L <= 0) return;
  const dim3 grid = to_dim3(ns_tiles::gram_grid(p, runs));
  if (p.tall) {
    SKR_LAUNCH(grid, kBlock, 0, stream, ns_gram_kernel<true>)(X, x_stride, A, a_stride, partials, counters, p);
  } else {
    SKR_LAUNCH(grid, kBlock, 0, stream, ns_gram_kernel<false>)(X, x_stride, A, a_stride, partials, counters, p);
  }
  SKR_CUDA_CHECK_LAUNCH("ns_gram_kernel");
}

void launch_ns_poly(const float* A, float* B, std::size_t stride, const Plan& p, float b, float c, int runs,
                    cudaStream_t stream) {
  if (runs <= 0 || p.s <= 0) return;
  const dim3 grid = to_dim3(ns_tiles::poly_grid(p, runs));
  SKR_LAUNCH(grid, kBlock, 0, stream, ns_poly_kernel)(A, B, stride, p.s, b, c);
  SKR_CUDA_CHECK_LAUNCH("ns_poly_kernel");
}

void launch_ns_apply(const float* X, std::size_t x_stride, const float* B, std::size_t b_stride, float* X_next,
                     std::size_t next_stride, const Plan& p, float a, int runs, cudaStream_t stream) {
  if (runs <= 0 || p.s <= 0 || p.L <= 0) return;
  const dim3 grid = to_dim3(ns_tiles::apply_grid(p, runs));
  if (p.tall) {
    SKR_LAUNCH(grid, kBlock, 0, stream, ns_apply_kernel<true>)(X, x_stride, B, b_stride, X_next, next_stride, p, a);
  } else {
    SKR_LAUNCH(grid, kBlock, 0, stream, ns_apply_kernel<false>)(X, x_stride, B, b_stride, X_next, next_stride, p, a);
  }
  SKR_CUDA_CHECK_LAUNCH("ns_apply_kernel");
}

void launch_ns_iterations(float* X, std::size_t xs, float* X_next, std::size_t xns, float* gram, float* poly,
                          std::size_t ss, float* partials, int* counters, const Plan& p,
                          const NsCoefficients* iterations, std::size_t count, int runs, cudaStream_t stream) {
  // The Gram launches leave their counters at zero; they start there in every call (and so in
  // every replay of a captured step), whatever an earlier failed launch left.
  const std::size_t counter_ints = ns_tiles::counter_count(p, runs);
  if (counter_ints > 0) SKR_CUDA_CHECK(cudaMemsetAsync(counters, 0, counter_ints * sizeof(int), stream));
  for (std::size_t i = 0; i < count; ++i) {
    const NsCoefficients& k = iterations[i];
    launch_ns_gram(X, xs, gram, ss, partials, counters, p, runs, stream);
    launch_ns_poly(gram, poly, ss, p, static_cast<float>(k.b), static_cast<float>(k.c), runs, stream);
    launch_ns_apply(X, xs, poly, ss, X_next, xns, p, static_cast<float>(k.a), runs, stream);
    std::swap(X, X_next);
    std::swap(xs, xns);
  }
}

}  // namespace skillrun::cuda
