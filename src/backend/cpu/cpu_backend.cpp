// CpuBackend: OpenBLAS sgemm for gemm, LAPACKE (in double) for the exact msign, OpenMP loops for
// the elementwise ops, reductions and the data generator. All parallelism, gemm's included, runs
// on the one OpenMP thread pool. Loops are kept flat and branch-free inside so that GCC
// vectorises them; small inputs stay on one thread, where forking costs more than the work.
#include "backend/cpu/cpu_backend.h"

#include "backend/adam_scalars.h"
#include "backend/update_math.h"

#include <cblas.h>
#include <lapacke.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace skillrun {
namespace {

// Below this many elements an OpenMP fork/join (a few microseconds) costs more than the loop.
constexpr std::size_t kParallelMin = std::size_t{1} << 15;
// Below this many multiply-adds (~20 us on one core) a gemm is not worth splitting.
constexpr std::size_t kParallelGemmMin = std::size_t{1} << 18;
// Rows (or columns) of C per single-threaded sgemm call: small enough that the 250-row weight
// gradient still splits across threads, large enough for OpenBLAS's kernels to run at speed.
constexpr int kGemmBlock = 64;
constexpr std::size_t kAlignment = 64;  // a cache line, and enough for any AVX-512 load

CBLAS_TRANSPOSE to_cblas(Trans t) { return t == Trans::Yes ? CblasTrans : CblasNoTrans; }

}  // namespace

CpuBackend::CpuBackend() {
#ifdef OPENBLAS_VERSION
  // One thread pool, not two. Debian's OpenBLAS runs its own pthreads, which spin while idle,
  // as libgomp's do after every OpenMP loop; on a 2-core machine the two pools then fight over
  // the cores, and a 250^3 gemm right after a ReLU loop was measured 5-10x slower. So OpenBLAS
  // runs single-threaded and gemm() splits C across the OpenMP threads itself.
  openblas_set_num_threads(1);
#endif
}

std::string CpuBackend::name() const {
  std::ostringstream out;
  out << "cpu (";
#ifdef OPENBLAS_VERSION
  // The config string reads "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64":
  // the first two words are the library and its version.
  std::istringstream config(openblas_get_config());
  std::string library, version;
  config >> library >> version;
  out << library << ' ' << version;
#else
  out << "CBLAS";
#endif
  const int threads = omp_get_max_threads();  // gemm included: see the constructor
  out << ", " << threads << (threads == 1 ? " thread" : " threads") << ')';
  return out.str();
}

// ---- memory -------------------------------------------------------------------------------

void* CpuBackend::allocate(std::size_t bytes) {
  // aligned_alloc wants a multiple of the alignment; 0 bytes still gets a unique pointer.
  if (bytes > SIZE_MAX - kAlignment) {
    throw RuntimeError("cpu backend: cannot allocate " + std::to_string(bytes) + " bytes");
  }
  const std::size_t rounded =
      std::max(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  void* p = std::aligned_alloc(kAlignment, rounded);
  if (p == nullptr) {
    throw RuntimeError("cpu backend: cannot allocate " + std::to_string(bytes) + " bytes");
  }
  return p;
}

void CpuBackend::deallocate(void* p) noexcept { std::free(p); }

void CpuBackend::upload(void* dst, const void* host_src, std::size_t bytes) {
  if (bytes) std::memcpy(dst, host_src, bytes);
}

void CpuBackend::download(void* host_dst, const void* src, std::size_t bytes) {
  if (bytes) std::memcpy(host_dst, src, bytes);
}

void CpuBackend::copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes) std::memmove(dst, src, bytes);  // memmove: a self-copy or overlap stays defined
}

// ---- dense linear algebra -----------------------------------------------------------------

namespace {

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha, const float* A, int lda,
               const float* B, int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, double alpha, const double* A, int lda,
               const double* B, int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <class T>
void gemm_blocks(Trans ta, Trans tb, int m, int n, int k, T alpha, const T* A, int lda, const T* B, int ldb, T beta,
                 T* C, int ldc) {
  // OpenBLAS reports a bad leading dimension through xerbla (a printed line, then it returns
  // with C untouched); a thrown error is far easier to trace, and these checks cost nothing.
  const int a_cols = ta == Trans::No ? k : m;
  const int b_cols = tb == Trans::No ? n : k;
  if (m < 0 || n < 0 || k < 0 || lda < std::max(1, a_cols) || ldb < std::max(1, b_cols) ||
      ldc < std::max(1, n)) {
    std::ostringstream msg;
    msg << "cpu gemm: bad shape m=" << m << " n=" << n << " k=" << k << " lda=" << lda
        << " ldb=" << ldb << " ldc=" << ldc;
    throw std::invalid_argument(msg.str());
  }
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty product: C = beta C, and beta == 0 must not read C
    for (int i = 0; i < m; ++i) {
      T* c = C + static_cast<std::size_t>(i) * ldc;
      for (int j = 0; j < n; ++j) c[j] = beta == T(0) ? T(0) : beta * c[j];
    }
    return;
  }
  // C is cut into blocks of kGemmBlock rows of C (rows of op(A)) when C is tall, or columns
  // (columns of op(B)) when it is wide, and each block is one single-threaded sgemm; threads
  // share the blocks. The cut does not depend on the thread count, so neither do the results:
  // a run gives the same bits with 1 or 16 threads, and a resumed run matches its first part.
  const bool split_rows = m >= n;
  const int extent = split_rows ? m : n;
  const int blocks = (extent + kGemmBlock - 1) / kGemmBlock;
  const bool parallel = static_cast<std::size_t>(m) * n * k >= kParallelGemmMin && blocks > 1;
#pragma omp parallel for schedule(static) if (parallel)
  for (int blk = 0; blk < blocks; ++blk) {
    const int begin = blk * kGemmBlock, end = std::min(extent, begin + kGemmBlock);
    const std::size_t b0 = static_cast<std::size_t>(begin);
    if (split_rows) {
      // Row i of op(A) is row i of A, or column i of A when transposed.
      const T* a = ta == Trans::No ? A + b0 * lda : A + b0;
      blas_gemm(to_cblas(ta), to_cblas(tb), end - begin, n, k, alpha, a, lda, B, ldb, beta, C + b0 * ldc, ldc);
    } else {
      // Column j of op(B) is column j of B, or row j of B when transposed.
      const T* b = tb == Trans::No ? B + b0 : B + b0 * ldb;
      blas_gemm(to_cblas(ta), to_cblas(tb), m, end - begin, k, alpha, A, lda, b, ldb, beta, C + b0, ldc);
    }
  }
}

}  // namespace

void CpuBackend::gemm_op(DType type, const GemmArgs& g) {
  check_batch_strides(g.m, g.n, g.ldc, g.stride_a, g.stride_b, g.stride_c, g.batch);
  for (int r = 0; r < g.batch; ++r) {
    if (type == DType::F64) {
      gemm_blocks(g.ta, g.tb, g.m, g.n, g.k, g.alpha, static_cast<const double*>(g.A) + r * g.stride_a, g.lda,
                  static_cast<const double*>(g.B) + r * g.stride_b, g.ldb, g.beta,
                  static_cast<double*>(g.C) + r * g.stride_c, g.ldc);
    } else {
      gemm_blocks(g.ta, g.tb, g.m, g.n, g.k, static_cast<float>(g.alpha),
                  static_cast<const float*>(g.A) + r * g.stride_a, g.lda,
                  static_cast<const float*>(g.B) + r * g.stride_b, g.ldb, static_cast<float>(g.beta),
                  static_cast<float*>(g.C) + r * g.stride_c, g.ldc);
    }
  }
}

namespace {
// Sum of term(i) over [0, n) in double, over fixed chunks combined in order: the same bits
// whatever the thread count (an OpenMP reduction's order would depend on it).
template <class Term>
double chunked_sum(std::size_t n, Term term) {
  constexpr std::size_t kChunk = std::size_t{1} << 14;
  const std::size_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks, 0.0);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (std::size_t c = 0; c < chunks; ++c) {
    double acc = 0.0;
    const std::size_t end = std::min(n, (c + 1) * kChunk);
    for (std::size_t i = c * kChunk; i < end; ++i) acc += term(i);
    partial[c] = acc;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}
}  // namespace

// ---- elementwise and reductions -----------------------------------------------------------
// Each op is one template for float and double (precision fp64); the float instances are the
// code the MLP runs.

namespace {

template <class T>
void fill_impl(T* x, std::size_t n, T value) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (std::size_t i = 0; i < n; ++i) x[i] = value;
}

template <class T>
void axpby_impl(T* y, const T* x, std::size_t n, T alpha, T beta) {
  if (beta == T(0)) {  // y may hold garbage (NaN): never read it
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
    for (std::size_t i = 0; i < n; ++i) y[i] = alpha * x[i];
  } else {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
    for (std::size_t i = 0; i < n; ++i) y[i] = alpha * x[i] + beta * y[i];
  }
}

template <class T>
double sum_squares_impl(const T* x, std::size_t n) {
  return chunked_sum(n, [x](std::size_t i) {
    const double v = x[i];
    return v * v;
  });
}

}  // namespace

void CpuBackend::fill_op(DType type, void* x, std::size_t n, double value) {
  if (type == DType::F64) return fill_impl(static_cast<double*>(x), n, value);
  fill_impl(static_cast<float*>(x), n, static_cast<float>(value));
}
void CpuBackend::axpby_op(DType type, void* y, const void* x, std::size_t n, double alpha, double beta) {
  if (type == DType::F64) return axpby_impl(static_cast<double*>(y), static_cast<const double*>(x), n, alpha, beta);
  axpby_impl(static_cast<float*>(y), static_cast<const float*>(x), n, static_cast<float>(alpha),
             static_cast<float>(beta));
}
double CpuBackend::sum_squares_op(DType type, const void* x, std::size_t n) {
  if (type == DType::F64) return sum_squares_impl(static_cast<const double*>(x), n);
  return sum_squares_impl(static_cast<const float*>(x), n);
}

// ---- MLP pieces ---------------------------------------------------------------------------
// One run each; the batched overrides below loop over the runs.

namespace {

void bias_activation_one(float* H, const float* bias, int rows, int cols, bool relu) {
  const bool parallel = static_cast<std::size_t>(rows) * cols >= kParallelMin;
  // The relu branch sits outside the row loop so each inner loop is one straight SIMD loop.
  if (relu) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int i = 0; i < rows; ++i) {
      float* h = H + static_cast<std::size_t>(i) * cols;
#pragma omp simd
      for (int j = 0; j < cols; ++j) h[j] = std::max(h[j] + bias[j], 0.0f);
    }
  } else {
#pragma omp parallel for schedule(static) if (parallel)
    for (int i = 0; i < rows; ++i) {
      float* h = H + static_cast<std::size_t>(i) * cols;
#pragma omp simd
      for (int j = 0; j < cols; ++j) h[j] += bias[j];
    }
  }
}

void relu_backward_one(float* dH, const float* H, std::size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (std::size_t i = 0; i < n; ++i) dH[i] = H[i] > 0.0f ? dH[i] : 0.0f;
}

void column_sums_one(const float* A, int rows, int cols, float* out) {
  // Threads split the columns, not the rows, so no per-thread partial vectors (and no
  // allocation) are needed: each tile of columns keeps its double accumulators on the stack
  // and streams down all rows, reading a contiguous stretch of each row.
  constexpr int kTile = 64;
  const int tiles = (cols + kTile - 1) / kTile;
  const bool parallel = static_cast<std::size_t>(rows) * cols >= kParallelMin;
#pragma omp parallel for schedule(static) if (parallel)
  for (int t = 0; t < tiles; ++t) {
    const int j0 = t * kTile;
    const int width = std::min(kTile, cols - j0);
    double acc[kTile] = {};
    for (int i = 0; i < rows; ++i) {
      const float* a = A + static_cast<std::size_t>(i) * cols + j0;
#pragma omp simd
      for (int j = 0; j < width; ++j) acc[j] += a[j];
    }
    for (int j = 0; j < width; ++j) out[j0 + j] = static_cast<float>(acc[j]);
  }
}

void cross_entropy_one(const float* logits, const int32_t* labels, int rows, int classes,
                               float* loss, float* correct, float* dlogits, float grad_scale) {
  bool bad_label = false;
  const bool parallel = static_cast<std::size_t>(rows) * classes >= kParallelMin / 4;
#pragma omp parallel for schedule(static) reduction(|| : bad_label) if (parallel)
  for (int i = 0; i < rows; ++i) {
    const float* l = logits + static_cast<std::size_t>(i) * classes;
    const int32_t label = labels[i];
    if (label < 0 || label >= classes) {
      bad_label = true;
      continue;
    }
    // log-softmax about the row maximum, so that exp never overflows (logits of +-1000 are fine).
    float max_logit = l[0];
    for (int j = 1; j < classes; ++j) max_logit = std::max(max_logit, l[j]);
    float sum = 0.0f;
    for (int j = 0; j < classes; ++j) sum += std::exp(l[j] - max_logit);
    // loss = log(sum) - (l_label - max): no cancellation of two large numbers.
    loss[i] = std::log(sum) - (l[label] - max_logit);
    // Correct only when the label's logit beats every other strictly: a tie is a wrong
    // answer, and so is a NaN (the negated comparison is true for NaN).
    bool strictly_best = true;
    for (int j = 0; j < classes; ++j) {
      if (j != label && !(l[label] > l[j])) strictly_best = false;
    }
    correct[i] = strictly_best ? 1.0f : 0.0f;
    if (dlogits != nullptr) {
      float* d = dlogits + static_cast<std::size_t>(i) * classes;
      const float scale = grad_scale / sum;
      for (int j = 0; j < classes; ++j) d[j] = scale * std::exp(l[j] - max_logit);
      d[label] -= grad_scale;
    }
  }
  if (bad_label) {
    throw std::out_of_range("cpu cross_entropy: a label lies outside [0, " +
                            std::to_string(classes) + ")");
  }
}

void task_sums_one(const float* loss, const float* correct, const int32_t* tasks, int rows, int n_tasks,
                           double* sums) {
  if (rows <= 0) return;
  // Fixed chunks of rows, each summed in row order into its own 2 * n_tasks partials, then the
  // partials added chunk by chunk: the same bits whatever the thread count (chunked_sum's rule).
  constexpr int kChunk = 1 << 14;
  const int chunks = (rows + kChunk - 1) / kChunk;
  const std::size_t width = 2 * static_cast<std::size_t>(std::max(n_tasks, 0));
  std::vector<double> partial(static_cast<std::size_t>(chunks) * width, 0.0);
  bool bad_task = false;
#pragma omp parallel for schedule(static) reduction(|| : bad_task) if (chunks > 1)
  for (int c = 0; c < chunks; ++c) {
    double* p = partial.data() + static_cast<std::size_t>(c) * width;
    const int end = std::min(rows, (c + 1) * kChunk);
    for (int i = c * kChunk; i < end; ++i) {
      const int32_t k = tasks[i];
      if (k < 0 || k >= n_tasks) {
        bad_task = true;
        continue;
      }
      p[k] += loss[i];
      p[n_tasks + k] += correct[i];
    }
  }
  if (bad_task) {  // before sums is touched: a caught error leaves it as it was
    throw std::out_of_range("cpu task_sums: a task id lies outside [0, " + std::to_string(n_tasks) + ")");
  }
  for (int c = 0; c < chunks; ++c) {
    const double* p = partial.data() + static_cast<std::size_t>(c) * width;
    for (std::size_t j = 0; j < width; ++j) sums[j] += p[j];
  }
}

}  // namespace

void CpuBackend::bias_activation_runs(float* H, std::size_t stride_h, const float* bias, std::size_t stride_bias,
                                      int rows, int cols, bool relu, int runs) {
  for (int r = 0; r < runs; ++r) bias_activation_one(H + r * stride_h, bias + r * stride_bias, rows, cols, relu);
}

void CpuBackend::relu_backward_runs(float* dH, std::size_t stride_dh, const float* H, std::size_t stride_h,
                                    std::size_t n, int runs) {
  for (int r = 0; r < runs; ++r) relu_backward_one(dH + r * stride_dh, H + r * stride_h, n);
}

void CpuBackend::column_sums_runs(const float* A, std::size_t stride_a, int rows, int cols, float* out,
                                  std::size_t stride_out, int runs) {
  for (int r = 0; r < runs; ++r) column_sums_one(A + r * stride_a, rows, cols, out + r * stride_out);
}

void CpuBackend::cross_entropy_runs(const float* logits, std::size_t stride_logits, const int32_t* labels, int rows,
                                    int classes, float* loss, float* correct, std::size_t stride_rows, float* dlogits,
                                    std::size_t stride_dlogits, float grad_scale, int runs) {
  for (int r = 0; r < runs; ++r)
    cross_entropy_one(logits + r * stride_logits, labels, rows, classes, loss + r * stride_rows,
                      correct + r * stride_rows, dlogits != nullptr ? dlogits + r * stride_dlogits : nullptr,
                      grad_scale);
}

void CpuBackend::task_sums_runs(const float* loss, const float* correct, std::size_t stride_rows,
                                const int32_t* tasks, int rows, int n_tasks, double* sums, std::size_t stride_sums,
                                int runs) {
  for (int r = 0; r < runs; ++r)
    task_sums_one(loss + r * stride_rows, correct + r * stride_rows, tasks, rows, n_tasks, sums + r * stride_sums);
}

// ---- data ---------------------------------------------------------------------------------

namespace {
// Cloned for AVX2 (picked at load time where the CPU has it): the 32-bit expansion of each
// random word into 0/1 floats needs per-lane variable shifts, which baseline x86-64 lacks.
__attribute__((target_clones("avx2", "default")))
void sparse_parity_rows(const ParityDraw& draw, const ParityTables& tables, int count, float* x,
                        int32_t* labels, int32_t* tasks) {
  // Every sample is a pure function of (seed, stream, a, sample index), so the rows can be
  // generated in any order by any thread and still match the CUDA kernel bit for bit.
  const std::size_t row = static_cast<std::size_t>(draw.n_tasks) + draw.n_bits;
#pragma omp parallel for schedule(static) if (count >= 512)
  for (int i = 0; i < count; ++i) {
    tasks[i] = parity_sample(draw, tables, draw.first_sample + static_cast<uint32_t>(i),
                             x + static_cast<std::size_t>(i) * row, labels + i);
  }
}
}  // namespace

void CpuBackend::sparse_parity(const ParityDraw& draw, const ParityTables& tables, int count,
                               float* x, int32_t* labels, int32_t* tasks) {
  sparse_parity_rows(draw, tables, count, x, labels, tasks);
}

// ---- optimizer updates --------------------------------------------------------------------
// The per-element maths is backend/update_math.h, shared with the CUDA kernels; here only the
// loops. Each rule branches on its flags outside the element loop, so every loop body is
// branch-free. One template per rule for float and double.

namespace {

template <class T>
void sgd_impl(T* w, const T* g, T* m, std::size_t n, T lr, T mu, bool nesterov, T wd) {
  if (mu == T(0)) {  // plain SGD: m is not touched (it may be nullptr)
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
    for (std::size_t i = 0; i < n; ++i) w[i] = sgd_element(w[i], g[i], lr, wd);
  } else if (nesterov) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
    for (std::size_t i = 0; i < n; ++i) sgd_nesterov_element(w[i], g[i], m[i], lr, mu, wd);
  } else {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
    for (std::size_t i = 0; i < n; ++i) sgd_heavy_ball_element(w[i], g[i], m[i], lr, mu, wd);
  }
}

template <class T>
void nmd_impl(T* w, const T* g, T* m, std::size_t n, T lr, T beta, T weight_decay) {
  // Pass 1 updates the momentum and measures it; pass 2 steps along its direction.
  const double norm_sq = chunked_sum(n, [=](std::size_t i) {
    const T mi = nmd_momentum_element(m[i], g[i], beta);
    return static_cast<double>(mi) * mi;
  });
  if (norm_sq == 0.0) return;  // no direction, so no step (weight decay included)
  const T step = nmd_step_size(lr, norm_sq);
  const T decay = decay_factor(lr, weight_decay);
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (std::size_t i = 0; i < n; ++i) w[i] = nmd_step_element(w[i], m[i], step, decay);
}

template <class T>
void adam_impl(T* w, const T* g, T* m, T* v, std::size_t n, T lr, T beta1, T beta2, T eps, T weight_decay,
               bool decoupled, int64_t t) {
  // AdamW shrinks w before the step; Adam + L2 folds wd w into the gradient instead.
  const auto [step, inv_sqrt_bc2, decay, l2] = adam_scalars("cpu", lr, beta1, beta2, weight_decay, decoupled, t);
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (std::size_t i = 0; i < n; ++i) {
    adam_element(w[i], g[i], m[i], v[i], step, inv_sqrt_bc2, beta1, beta2, eps, decay, l2);
  }
}

template <class T>
void signgd_impl(T* w, const T* g, T* m, std::size_t n, T lr, T momentum, T weight_decay) {
  const T decay = decay_factor(lr, weight_decay);
  if (momentum == T(0)) {
    if (m != nullptr) std::memmove(m, g, n * sizeof(T));  // m = g, kept for checkpoints
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
    for (std::size_t i = 0; i < n; ++i) w[i] = signgd_element(w[i], g[i], lr, decay);
  } else {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
    for (std::size_t i = 0; i < n; ++i) {
      const T mi = accumulate_momentum(m[i], g[i], momentum);
      w[i] = signgd_element(w[i], mi, lr, decay);
    }
  }
}

template <class T>
void momentum_impl(T* m, const T* g, T* out, std::size_t n, T beta, bool nesterov) {
  // out may alias g or m: each element is read before it is written. The flag is a constant in
  // each loop, so the body stays branch-free.
  if (nesterov) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
    for (std::size_t i = 0; i < n; ++i) out[i] = momentum_element(m[i], g[i], beta, true);
  } else {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
    for (std::size_t i = 0; i < n; ++i) out[i] = momentum_element(m[i], g[i], beta, false);
  }
}

// Entry by entry, each the one-run loop of its rule on the entry's slices.
template <class T>
void update_entries(const UpdateArgs& a) {
  T* w = static_cast<T*>(a.w);
  const T* g = static_cast<const T*>(a.g);
  T* m = static_cast<T*>(a.m);
  T* v = static_cast<T*>(a.v);
  T* scratch = static_cast<T*>(a.scratch);
  const std::span<const RunUpdateOf<T>> table = a.table<T>();
  for (std::size_t i = 0; i < table.size(); ++i) {
    const RunUpdateOf<T>& u = table[i];
    T* wi = w != nullptr ? w + u.run * a.param_stride : nullptr;
    const T* gi = g != nullptr ? g + u.run * a.param_stride : nullptr;
    T* mi = m != nullptr ? m + u.slice * a.m_stride : nullptr;
    T* si = scratch != nullptr ? scratch + i * a.scratch_stride : nullptr;
    switch (a.kind) {
      case UpdateKind::Sgd:
        sgd_impl(wi, gi, mi, a.n, u.lr, u.momentum, a.nesterov, u.weight_decay);
        break;
      case UpdateKind::Nmd:
        nmd_impl(wi, gi, mi, a.n, u.lr, u.momentum, u.weight_decay);
        break;
      case UpdateKind::Adam:
        adam_impl(wi, gi, mi, v + u.slice * a.v_stride, a.n, u.lr, u.momentum, u.beta2, u.eps, u.weight_decay,
                  a.decoupled, a.t);
        break;
      case UpdateKind::SignGd:
        signgd_impl(wi, gi, mi, a.n, u.lr, u.momentum, u.weight_decay);
        break;
      case UpdateKind::Momentum:
        momentum_impl(mi, gi, si, a.n, u.momentum, a.nesterov);
        break;
      case UpdateKind::MuonStep:
        axpby_impl(wi, static_cast<const T*>(si), a.n, u.step_alpha, u.step_beta);
        break;
    }
  }
}

}  // namespace

void CpuBackend::update(const UpdateArgs& a) {
  if (a.dtype == DType::F64) return update_entries<double>(a);
  update_entries<float>(a);
}

// ---- msign --------------------------------------------------------------------------------

namespace {

template <class T>
void polar_factor_svd(const T* G, T* out, int rows, int cols) {
  if (rows <= 0 || cols <= 0) return;
  // Row-major G (rows x cols) is, read column-major, G^T (cols x rows). Since
  // msign(G^T) = msign(G)^T, the column-major polar factor of that view, stored back, is
  // row-major msign(G): LAPACK works on our memory as is, with no transposing copies.
  const lapack_int M = cols, N = rows, K = std::min(M, N);
  const std::size_t size = static_cast<std::size_t>(rows) * cols;
  std::vector<double> a(size), s(K), u(static_cast<std::size_t>(M) * K),
      vt(static_cast<std::size_t>(K) * N), q(size);
  std::copy(G, G + size, a.begin());  // double throughout: the polar factor to ~1e-12

  lapack_int info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', M, N, a.data(), M, s.data(), u.data(),
                                   M, vt.data(), K);
  if (info > 0) {
    // gesdd's divide and conquer did not converge; the QR-iteration gesvd is slower but more
    // robust. It needs G afresh, as gesdd overwrote a.
    std::copy(G, G + size, a.begin());
    std::vector<double> superb(static_cast<std::size_t>(K));
    info = LAPACKE_dgesvd(LAPACK_COL_MAJOR, 'S', 'S', M, N, a.data(), M, s.data(), u.data(), M,
                          vt.data(), K, superb.data());
  }
  if (info != 0) {
    // info < 0: argument |info| was illegal (LAPACKE reports NaN in G this way, as -5);
    // info > 0: the SVD did not converge.
    throw RuntimeError("cpu msign_svd: LAPACK SVD of a " + std::to_string(rows) + "x" +
                       std::to_string(cols) + " matrix failed, info = " + std::to_string(info));
  }
  // msign maps each singular value to its sign, so a direction with sigma ~ 0 gets 0, not an
  // arbitrary pair of unit vectors: msign(0) = 0, as Newton-Schulz gives. For fp32 data "~ 0" is
  // the numerical rank (numpy's matrix_rank rule): below sigma_max max(m, n) eps_fp32 a singular
  // value is indistinguishable from the rounding of G itself. fp64 data (the icl_linreg study)
  // is taken as exact: its spectra deliberately span 1e-12 and more, and in the eigenbasis
  // coordinates the gradient is exactly diagonal, so only an exact zero maps to 0 there.
  const double cutoff =
      std::is_same_v<T, float> ? s[0] * std::max(M, N) * static_cast<double>(std::numeric_limits<float>::epsilon())
                               : 0.0;
  for (lapack_int j = 0; j < K; ++j) {
    if (s[j] <= cutoff) std::fill_n(u.data() + static_cast<std::size_t>(j) * M, M, 0.0);
  }
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0, u.data(), M, vt.data(), K,
              0.0, q.data(), M);
  std::transform(q.begin(), q.end(), out, [](double v) { return static_cast<T>(v); });
}

}  // namespace

void CpuBackend::svd_op(DType type, const void* G, void* out, std::size_t stride, int rows, int cols, int runs) {
  for (int r = 0; r < runs; ++r) {
    const std::size_t offset = static_cast<std::size_t>(r) * stride;
    if (type == DType::F64) {
      polar_factor_svd(static_cast<const double*>(G) + offset, static_cast<double*>(out) + offset, rows, cols);
    } else {
      polar_factor_svd(static_cast<const float*>(G) + offset, static_cast<float*>(out) + offset, rows, cols);
    }
  }
}

}  // namespace skillrun
