// CudaBackend: every Backend op on the device. The conventions that need care:
//  - gemm. Our matrices are row-major, cuBLAS's column-major. A row-major (r x c) matrix with
//    leading dimension ld is, read column-major, its transpose (c x r) with the same ld. So
//    row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: we call cuBLAS with the
//    operands swapped (B first), the same transpose flags, and m and n swapped. No copies.
//  - precision. fp32 uses CUBLAS_COMPUTE_32F under CUBLAS_DEFAULT_MATH: true fp32, no TF32.
//    tf32 uses CUBLAS_COMPUTE_32F_FAST_TF32 and bf16 CUBLAS_COMPUTE_32F_FAST_16BF: fp32 storage
//    (master weights, activations), operands rounded to TF32/bf16 inside the product, fp32
//    accumulation. Every op other than gemm is fp32 in every mode.
//  - asynchrony. Everything runs on one stream; host values (sum_squares, download) wait for
//    it. A bad label in cross_entropy (or task id in task_sums) is flagged by the kernel in
//    mapped host memory and thrown at the next synchronising call, since the launch itself
//    cannot know.
#include "backend/cuda/cuda_backend.h"

#include "backend/adam_scalars.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string_view>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#include "backend/cuda/cublaslt_linear.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fused_linear_limits.h"
#include "core/error.h"
#include "core/round_up.h"
#include "elementwise.cuh"
#include "loss.cuh"
#include "msign.cuh"
#include "newton_schulz.cuh"
#include "optim_update.cuh"
#include "philox_data.cuh"
#include "reduce.cuh"

namespace skillrun {
namespace {

// cuBLAS workspace handed over up front (32 MiB is NVIDIA's recommendation for Hopper), so that
// cuBLAS never allocates inside a call, which a CUDA graph capture would not allow.
constexpr std::size_t kCublasWorkspaceBytes = std::size_t{32} << 20;

cublasComputeType_t compute_type_for(Precision p) {
  switch (p) {
    case Precision::Fp32: return CUBLAS_COMPUTE_32F;
    case Precision::Tf32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    case Precision::Bf16: return CUBLAS_COMPUTE_32F_FAST_16BF;
    case Precision::Fp64: break;  // refused by the constructor: no fp64 ops here
  }
  return CUBLAS_COMPUTE_32F;
}

cublasOperation_t to_cublas(Trans t) { return t == Trans::Yes ? CUBLAS_OP_T : CUBLAS_OP_N; }

double mib(std::size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

// Owns a gesvdj parameter object for one msign_svd call.
struct GesvdjParams {
  gesvdjInfo_t info = nullptr;
  GesvdjParams() { SKR_CUSOLVER_CHECK(cusolverDnCreateGesvdjInfo(&info)); }
  ~GesvdjParams() { SKR_CUSOLVER_CHECK_NOTHROW(cusolverDnDestroyGesvdjInfo(info)); }
  GesvdjParams(const GesvdjParams&) = delete;
  GesvdjParams& operator=(const GesvdjParams&) = delete;
};

}  // namespace

CudaBackend::CudaBackend(int device, Precision precision)
    : device_(device), precision_(precision), compute_type_(compute_type_for(precision)) {
  if (precision == Precision::Fp64) {
    throw UsageError("the CUDA backend has no fp64 ops (precision fp64 runs on the CPU backend)");
  }
  try {
    SKR_CUDA_CHECK(cudaSetDevice(device_));
    cudaDeviceProp prop{};
    SKR_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    name_ = fmt::format("cuda:{} ({}, compute capability {}.{}, {:.1f} GiB, {})", device_, prop.name, prop.major,
                        prop.minor, static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0),
                        skillrun::name(precision_));

    int pools = 0;
    SKR_CUDA_CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device_));
    use_pool_ = pools != 0;
    if (use_pool_) {
      // Freed blocks stay in the pool instead of going back to the driver at every sync.
      cudaMemPool_t pool = nullptr;
      SKR_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device_));
      uint64_t threshold = UINT64_MAX;
      SKR_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
    }
    SKR_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));

    SKR_CUBLAS_CHECK(cublasCreate(&cublas_));
    SKR_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    SKR_CUBLAS_CHECK(cublasSetPointerMode(cublas_, CUBLAS_POINTER_MODE_HOST));
    SKR_CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));  // TF32 only through compute_type_
    SKR_CUDA_CHECK(cudaMalloc(&cublas_workspace_, kCublasWorkspaceBytes));
    SKR_CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspaceBytes));

    // The Newton-Schulz kernels compute in fp32 on the CUDA cores; tf32 and bf16 runs keep the
    // cuBLAS iteration, whose products use the tensor cores as their precision asks.
    const char* ns_switch = std::getenv("SKILLRUN_NS_KERNELS");
    ns_kernels_ = precision_ == Precision::Fp32 && !(ns_switch != nullptr && std::string_view(ns_switch) == "off");

    SKR_CUSOLVER_CHECK(cusolverDnCreate(&cusolver_));
    SKR_CUSOLVER_CHECK(cusolverDnSetStream(cusolver_, stream_));

    // The fused layer GEMMs, unless SKILLRUN_CUBLASLT=off (then the unfused path everywhere).
    if (cuda::cublaslt_enabled_by_environment()) {
      lt_ = std::make_unique<cuda::CublasLtLinear>(stream_, compute_type_);
    } else {
      name_.insert(name_.size() - 1, ", cuBLASLt epilogues off");
    }

    // One allocation for the reduction workspaces: partials, the result slot, column sums.
    const std::size_t doubles = cuda::kMaxReduceBlocks + 1 + cuda::kColumnSumsWorkspace;
    void* reduce = nullptr;
    SKR_CUDA_CHECK(cudaMalloc(&reduce, doubles * sizeof(double)));
    reduce_partials_ = static_cast<double*>(reduce);
    reduce_result_ = reduce_partials_ + cuda::kMaxReduceBlocks;
    column_workspace_ = reduce_result_ + 1;
    SKR_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&step_counter_), sizeof(uint32_t)));

    SKR_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&host_result_), sizeof(double)));
    SKR_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&host_error_flag_), sizeof(int), cudaHostAllocMapped));
    *host_error_flag_ = 0;
    SKR_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&device_error_flag_), host_error_flag_, 0));
  } catch (...) {
    release_all();
    throw;
  }
}

CudaBackend::~CudaBackend() { release_all(); }

void CudaBackend::release_all() noexcept {
  abort_step_capture();
  destroy_step_graph();
  if (stream_ != nullptr) SKR_CUDA_CHECK_NOTHROW(cudaStreamSynchronize(stream_));
  if (scratch_ != nullptr) deallocate(scratch_);
  scratch_ = nullptr;
  scratch_bytes_ = 0;
  lt_.reset();  // before the stream goes
  if (cusolver_ != nullptr) SKR_CUSOLVER_CHECK_NOTHROW(cusolverDnDestroy(cusolver_));
  if (cublas_ != nullptr) SKR_CUBLAS_CHECK_NOTHROW(cublasDestroy(cublas_));
  cusolver_ = nullptr;
  cublas_ = nullptr;
  if (stream_ != nullptr) {
    SKR_CUDA_CHECK_NOTHROW(cudaStreamSynchronize(stream_));  // the pooled frees above
    SKR_CUDA_CHECK_NOTHROW(cudaStreamDestroy(stream_));
  }
  stream_ = nullptr;
  if (cublas_workspace_ != nullptr) SKR_CUDA_CHECK_NOTHROW(cudaFree(cublas_workspace_));
  if (reduce_partials_ != nullptr) SKR_CUDA_CHECK_NOTHROW(cudaFree(reduce_partials_));
  if (step_counter_ != nullptr) SKR_CUDA_CHECK_NOTHROW(cudaFree(step_counter_));
  step_counter_ = nullptr;
  if (host_result_ != nullptr) SKR_CUDA_CHECK_NOTHROW(cudaFreeHost(host_result_));
  if (host_error_flag_ != nullptr) SKR_CUDA_CHECK_NOTHROW(cudaFreeHost(host_error_flag_));
  cublas_workspace_ = nullptr;
  reduce_partials_ = reduce_result_ = column_workspace_ = nullptr;
  host_result_ = nullptr;
  host_error_flag_ = device_error_flag_ = nullptr;
}

// ---- step graphs --------------------------------------------------------------------------

void CudaBackend::require_not_capturing(const char* what) const {
  if (capturing_) throw RuntimeError(fmt::format("step graph capture: {} is not allowed inside a captured step", what));
}

void CudaBackend::destroy_step_graph() noexcept {
  if (step_graph_ != nullptr) {
    // Let queued launches finish before their executable and buffers go away.
    if (stream_ != nullptr) SKR_CUDA_CHECK_NOTHROW(cudaStreamSynchronize(stream_));
    SKR_CUDA_CHECK_NOTHROW(cudaGraphExecDestroy(step_graph_));
  }
  step_graph_ = nullptr;
  for (void* p : retired_scratch_) deallocate(p);
  retired_scratch_.clear();
}

void CudaBackend::begin_step_capture(uint32_t step) {
  require_not_capturing("begin_step_capture");
  destroy_step_graph();
  SKR_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  capturing_ = true;
  if (lt_ != nullptr) lt_->set_capturing(true);
  capture_step_ = step;
}

void CudaBackend::end_step_capture() {
  if (!capturing_) throw RuntimeError("end_step_capture without begin_step_capture");
  cuda::launch_increment_counter(step_counter_, stream_);  // the graph's last node
  capturing_ = false;
  if (lt_ != nullptr) lt_->set_capturing(false);
  cudaGraph_t graph = nullptr;
  SKR_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  const cudaError_t err = cudaGraphInstantiate(&step_graph_, graph, 0);
  SKR_CUDA_CHECK_NOTHROW(cudaGraphDestroy(graph));
  if (err != cudaSuccess) {
    step_graph_ = nullptr;
    cuda::throw_cuda_error(err, "cudaGraphInstantiate(step graph)", __FILE__, __LINE__);
  }
  counter_value_ = -1;  // the capture ran nothing: the counter is set at the first launch
}

void CudaBackend::abort_step_capture() noexcept {
  if (!capturing_) return;
  capturing_ = false;
  if (lt_ != nullptr) lt_->set_capturing(false);
  cudaGraph_t graph = nullptr;
  if (cudaStreamEndCapture(stream_, &graph) == cudaSuccess && graph != nullptr) {
    SKR_CUDA_CHECK_NOTHROW(cudaGraphDestroy(graph));
  }
  (void)cudaGetLastError();  // an invalidated capture leaves its error behind
  destroy_step_graph();
  counter_value_ = -1;
}

void CudaBackend::launch_step_graph(uint32_t step) {
  require_not_capturing("launch_step_graph");
  if (step_graph_ == nullptr) throw RuntimeError("launch_step_graph: no step graph was captured");
  if (counter_value_ != static_cast<int64_t>(step)) {
    // Set the counter to this step; the graph then advances it, so consecutive steps need no
    // host-to-device copy. Synchronous, so the host value may go out of scope.
    SKR_CUDA_CHECK(cudaMemcpyAsync(step_counter_, &step, sizeof step, cudaMemcpyHostToDevice, stream_));
    SKR_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  SKR_CUDA_CHECK(cudaGraphLaunch(step_graph_, stream_));
  counter_value_ = static_cast<int64_t>(step) + 1;
}

// ---- memory -------------------------------------------------------------------------------

void* CudaBackend::allocate(std::size_t bytes) {
  require_not_capturing("allocate");
  void* p = nullptr;
  const std::size_t request = std::max<std::size_t>(bytes, 1);  // a unique pointer even for 0 bytes
  const cudaError_t err = use_pool_ ? cudaMallocAsync(&p, request, stream_) : cudaMalloc(&p, request);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // clear it, so that the next check does not report it again
    std::size_t free_bytes = 0, total_bytes = 0;
    const bool have_info = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
    if (!have_info) (void)cudaGetLastError();
    throw RuntimeError(fmt::format("out of device memory: allocate({} bytes = {:.1f} MiB) on {} failed{}", bytes,
                                   mib(bytes), name_,
                                   have_info ? fmt::format(" ({:.1f} MiB free of {:.1f} MiB, not counting this "
                                                           "process's pooled blocks)",
                                                           mib(free_bytes), mib(total_bytes))
                                             : std::string()));
  }
  if (err != cudaSuccess) {  // e.g. cudaErrorInvalidValue for an absurd size: still name the size
    const std::string expr =
        fmt::format("{}(&p, {} bytes) in allocate", use_pool_ ? "cudaMallocAsync" : "cudaMalloc", bytes);
    cuda::throw_cuda_error(err, expr.c_str(), __FILE__, __LINE__);
  }
  return p;
}

void CudaBackend::deallocate(void* p) noexcept {
  if (p == nullptr) return;
  if (use_pool_) {
    SKR_CUDA_CHECK_NOTHROW(cudaFreeAsync(p, stream_));
  } else {
    SKR_CUDA_CHECK_NOTHROW(cudaFree(p));
  }
}

void CudaBackend::upload(void* dst, const void* host_src, std::size_t bytes) {
  require_not_capturing("upload");
  if (bytes == 0) return;
  SKR_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
  // The caller may free or reuse host_src as soon as we return.
  SKR_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::download(void* host_dst, const void* src, std::size_t bytes) {
  require_not_capturing("download");
  if (bytes == 0) return;
  SKR_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  sync_and_check();
}

void CudaBackend::copy(void* dst, const void* src, std::size_t bytes) {
  // Unlike the CPU's memmove, partially overlapping ranges are not supported; a self-copy is a no-op.
  if (bytes == 0 || dst == src) return;
  SKR_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::synchronize() { sync_and_check(); }

void CudaBackend::sync_and_check() {
  require_not_capturing("a synchronising call (download, synchronize, sum_squares)");
  SKR_CUDA_CHECK(cudaStreamSynchronize(stream_));
  volatile int* flag = host_error_flag_;
  const int error = *flag;
  if (error != 0) {
    *flag = 0;
    if (error == cuda::kErrorBadTaskId) {
      throw std::out_of_range("cuda task_sums: a task id lies outside [0, n_tasks) (reported at the next sync)");
    }
    throw std::out_of_range("cuda cross_entropy: a label lies outside [0, classes) (reported at the next sync)");
  }
}

void* CudaBackend::scratch(std::size_t bytes) {
  if (bytes > scratch_bytes_) {
    require_not_capturing("growing the scratch buffer");
    // A captured step graph keeps using the old buffer (its kernels hold the pointer), so while
    // one exists the old buffer is retired, not freed; destroy_step_graph() frees it.
    if (scratch_ != nullptr && step_graph_ != nullptr) {
      retired_scratch_.push_back(scratch_);
    } else if (scratch_ != nullptr) {
      deallocate(scratch_);  // stream-ordered: pending users finish first
    }
    scratch_ = nullptr;
    scratch_bytes_ = 0;
    scratch_ = allocate(bytes);
    scratch_bytes_ = bytes;
  }
  return scratch_;
}

// ---- dense linear algebra -----------------------------------------------------------------

namespace {
// cuBLAS would report a bad shape as CUBLAS_STATUS_INVALID_VALUE; this names it.
void check_gemm_shape(Trans ta, Trans tb, int m, int n, int k, int lda, int ldb, int ldc) {
  const int a_cols = ta == Trans::No ? k : m;
  const int b_cols = tb == Trans::No ? n : k;
  if (m < 0 || n < 0 || k < 0 || lda < std::max(1, a_cols) || ldb < std::max(1, b_cols) || ldc < std::max(1, n)) {
    throw std::invalid_argument(fmt::format("cuda gemm: bad shape m={} n={} k={} lda={} ldb={} ldc={}", m, n, k, lda,
                                            ldb, ldc));
  }
}
}  // namespace

void CudaBackend::gemm_one(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda,
                           const float* B, int ldb, float beta, float* C, int ldc) {
  check_gemm_shape(ta, tb, m, n, k, lda, ldb, ldc);
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty product: C = beta C, and beta == 0 must not read C
    cuda::launch_scale_matrix(C, m, n, ldc, beta, stream_);
    return;
  }
  // Row-major C (m x n) = op(A) op(B)  <=>  column-major C^T (n x m) = op(B)^T op(A)^T, where
  // row-major B read column-major already is B^T: so B goes first with flag tb, then A with ta.
  SKR_CUBLAS_CHECK(cublasGemmEx(cublas_, to_cublas(tb), to_cublas(ta), n, m, k, &alpha, B, CUDA_R_32F, ldb, A,
                                CUDA_R_32F, lda, &beta, C, CUDA_R_32F, ldc, compute_type_, CUBLAS_GEMM_DEFAULT));
}

void CudaBackend::gemm_op(DType type, const GemmArgs& g) {
  if (type != DType::F32) no_fp64("gemm");
  check_batch_strides(g.m, g.n, g.ldc, g.stride_a, g.stride_b, g.stride_c, g.batch);
  const float alpha = static_cast<float>(g.alpha), beta = static_cast<float>(g.beta);
  const auto* A = static_cast<const float*>(g.A);
  const auto* B = static_cast<const float*>(g.B);
  auto* C = static_cast<float*>(g.C);
  // One product, or k == 0 (C = beta C, a kernel of its own): gemm_one() per product.
  if (g.batch <= 1 || g.k == 0) {
    for (int r = 0; r < g.batch; ++r)
      gemm_one(g.ta, g.tb, g.m, g.n, g.k, alpha, A + r * g.stride_a, g.lda, B + r * g.stride_b, g.ldb, beta,
               C + r * g.stride_c, g.ldc);
    return;
  }
  check_gemm_shape(g.ta, g.tb, g.m, g.n, g.k, g.lda, g.ldb, g.ldc);
  if (g.m == 0 || g.n == 0) return;
  // Row-major as in gemm_one(): column-major C^T = op(B)^T op(A)^T, so B (and its stride) first.
  SKR_CUBLAS_CHECK(cublasGemmStridedBatchedEx(cublas_, to_cublas(g.tb), to_cublas(g.ta), g.n, g.m, g.k, &alpha, B,
                                              CUDA_R_32F, g.ldb, g.stride_b, A, CUDA_R_32F, g.lda, g.stride_a, &beta, C,
                                              CUDA_R_32F, g.ldc, g.stride_c, g.batch, compute_type_,
                                              CUBLAS_GEMM_DEFAULT));
}

// ---- elementwise and reductions -----------------------------------------------------------

void CudaBackend::fill_op(DType type, void* x, std::size_t n, double value) {
  if (type != DType::F32) no_fp64("fill");
  cuda::launch_fill(static_cast<float*>(x), n, static_cast<float>(value), stream_);
}

void CudaBackend::axpby_op(DType type, void* y, const void* x, std::size_t n, double alpha, double beta) {
  if (type != DType::F32) no_fp64("axpby");
  cuda::launch_axpby(static_cast<float*>(y), static_cast<const float*>(x), n, static_cast<float>(alpha),
                     static_cast<float>(beta), stream_);
}

double CudaBackend::sum_squares_op(DType type, const void* x, std::size_t n) {
  if (type != DType::F32) no_fp64("sum_squares");
  return sum_squares_one(static_cast<const float*>(x), n);
}

double CudaBackend::sum_squares_one(const float* x, std::size_t n) {
  require_not_capturing("sum_squares");
  if (n == 0) return 0.0;
  cuda::launch_sum_squares(x, n, reduce_partials_, reduce_result_, stream_);
  SKR_CUDA_CHECK(cudaMemcpyAsync(host_result_, reduce_result_, sizeof(double), cudaMemcpyDeviceToHost, stream_));
  sync_and_check();
  return *host_result_;
}

// ---- MLP pieces ---------------------------------------------------------------------------

// The run axis: one launch for every run (blockIdx.y or .z), each run computed as alone; one
// run goes through the one-run launch. More runs than a grid dimension holds go in groups.

void CudaBackend::bias_activation_runs(float* H, std::size_t stride_h, const float* bias, std::size_t stride_bias,
                                       int rows, int cols, bool relu, int runs) {
  if (runs == 1) return cuda::launch_bias_activation(H, 0, bias, 0, rows, cols, relu, 1, stream_);
  for (int first = 0; first < runs; first += cuda::kMaxGridRuns)
    cuda::launch_bias_activation(H + first * stride_h, stride_h, bias + first * stride_bias, stride_bias, rows, cols,
                                 relu, std::min(cuda::kMaxGridRuns, runs - first), stream_);
}

void CudaBackend::relu_backward_runs(float* dH, std::size_t stride_dh, const float* H, std::size_t stride_h,
                                     std::size_t n, int runs) {
  if (runs == 1) return cuda::launch_relu_backward(dH, 0, H, 0, n, 1, stream_);
  for (int first = 0; first < runs; first += cuda::kMaxGridRuns)
    cuda::launch_relu_backward(dH + first * stride_dh, stride_dh, H + first * stride_h, stride_h, n,
                               std::min(cuda::kMaxGridRuns, runs - first), stream_);
}

void CudaBackend::column_sums_runs(const float* A, std::size_t stride_a, int rows, int cols, float* out,
                                   std::size_t stride_out, int runs) {
  if (runs <= 0) return;
  if (runs == 1) return cuda::launch_column_sums(A, rows, cols, out, column_workspace_, stream_);
  // Each run has its own chunk sums; the scratch buffer grows before a capture (warm-up steps).
  const std::size_t per_run = cuda::column_sums_workspace(rows, cols);
  const int group = per_run == 0 ? cuda::kMaxGridRuns
                                 : static_cast<int>(std::min<std::size_t>(cuda::kMaxGridRuns, runs));
  double* workspace = per_run == 0 ? nullptr
                                   : static_cast<double*>(scratch(per_run * static_cast<std::size_t>(group) *
                                                                  sizeof(double)));
  for (int first = 0; first < runs; first += group)
    cuda::launch_column_sums(A + first * stride_a, stride_a, rows, cols, out + first * stride_out, stride_out,
                             std::min(group, runs - first), workspace, stream_);
}

void CudaBackend::cross_entropy_runs(const float* logits, std::size_t stride_logits, const int32_t* labels, int rows,
                                     int classes, float* loss, float* correct, std::size_t stride_rows, float* dlogits,
                                     std::size_t stride_dlogits, float grad_scale, int runs) {
  if (runs == 1)
    return cuda::launch_cross_entropy(logits, labels, rows, classes, loss, correct, dlogits, grad_scale,
                                      device_error_flag_, stream_);
  for (int first = 0; first < runs; first += cuda::kMaxGridRuns)
    cuda::launch_cross_entropy(logits + first * stride_logits, stride_logits, labels, rows, classes,
                               loss + first * stride_rows, correct + first * stride_rows, stride_rows,
                               dlogits != nullptr ? dlogits + first * stride_dlogits : nullptr, stride_dlogits,
                               grad_scale, std::min(cuda::kMaxGridRuns, runs - first), device_error_flag_, stream_);
}

// ---- the MLP's layers: cuBLASLt epilogues, or the unfused defaults ---------------------------

std::size_t CudaBackend::relu_mask_bytes(int rows, int cols) const {
  return lt_ != nullptr ? cuda::relu_mask_bytes(rows, cols) : 0;
}

Backend::FusedLinearCounts CudaBackend::fused_linear_counts() const {
  FusedLinearCounts counts = linear_counts_;
  counts.library = "cuBLASLt";
  if (lt_ == nullptr) counts.off = "SKILLRUN_CUBLASLT";
  if (lt_ != nullptr) {
    counts.problems = lt_->problems();
    counts.refused = lt_->refused();
  }
  return counts;
}

void CudaBackend::linear_forward_runs(const float* x, std::size_t stride_x, const float* W, const float* b,
                                      std::size_t param_stride, float* out, std::size_t stride_out, int rows,
                                      int fan_in, int fan_out, bool relu, void* relu_mask, std::size_t mask_stride,
                                      int runs) {
  check_batch_strides(rows, fan_out, fan_out, static_cast<int64_t>(stride_x), static_cast<int64_t>(param_stride),
                      static_cast<int64_t>(stride_out), runs);
  if (lt_ != nullptr && lt_->forward(x, stride_x, W, b, param_stride, out, stride_out, rows, fan_in, fan_out, relu,
                                     relu_mask, mask_stride, runs)) {
    ++linear_counts_.fused;
    return;
  }
  ++linear_counts_.unfused;  // (forward() has forgotten the masks it did not write)
  Backend::linear_forward_runs(x, stride_x, W, b, param_stride, out, stride_out, rows, fan_in, fan_out, relu, relu_mask,
                               mask_stride, runs);
}

void CudaBackend::linear_weight_grad_runs(const float* dZ, std::size_t stride_dz, const float* x, std::size_t stride_x,
                                          float* dW, float* db, std::size_t param_stride, int rows, int fan_in,
                                          int fan_out, int runs) {
  check_batch_strides(fan_out, fan_in, fan_in, static_cast<int64_t>(stride_dz), static_cast<int64_t>(stride_x),
                      static_cast<int64_t>(param_stride), runs);
  if (db == nullptr) {  // nothing to fuse: the product alone
    Backend::linear_weight_grad_runs(dZ, stride_dz, x, stride_x, dW, db, param_stride, rows, fan_in, fan_out, runs);
    return;
  }
  if (lt_ != nullptr &&
      lt_->weight_grad(dZ, stride_dz, x, stride_x, dW, db, param_stride, rows, fan_in, fan_out, runs)) {
    ++linear_counts_.fused;
    return;
  }
  ++linear_counts_.unfused;
  Backend::linear_weight_grad_runs(dZ, stride_dz, x, stride_x, dW, db, param_stride, rows, fan_in, fan_out, runs);
}

void CudaBackend::linear_input_grad_relu_runs(const float* dZ, std::size_t stride_dz, const float* W,
                                              std::size_t param_stride, const float* H, std::size_t stride_h,
                                              const void* relu_mask, std::size_t mask_stride, float* dX,
                                              std::size_t stride_dx, float* db_in, int rows, int fan_in, int fan_out,
                                              int runs) {
  check_batch_strides(rows, fan_in, fan_in, static_cast<int64_t>(stride_dz), static_cast<int64_t>(param_stride),
                      static_cast<int64_t>(stride_dx), runs);
  using Fused = cuda::CublasLtLinear::InputGrad;
  const Fused fused = lt_ == nullptr ? Fused::kNotRun
                                     : lt_->input_grad_relu(dZ, stride_dz, W, param_stride, relu_mask, mask_stride,
                                                            dX, stride_dx, db_in, rows, fan_in, fan_out, runs);
  if (fused == Fused::kNotRun) {
    ++linear_counts_.unfused;
    Backend::linear_input_grad_relu_runs(dZ, stride_dz, W, param_stride, H, stride_h, relu_mask, mask_stride, dX,
                                         stride_dx, db_in, rows, fan_in, fan_out, runs);
    return;
  }
  ++linear_counts_.fused;
  if (fused == Fused::kWithoutBias && db_in != nullptr)  // DRELU took the product, the kernel the bias gradient
    column_sums_runs(dX, stride_dx, rows, fan_in, db_in, param_stride, runs);
}

void CudaBackend::task_sums_runs(const float* loss, const float* correct, std::size_t stride_rows,
                                 const int32_t* tasks, int rows, int n_tasks, double* sums, std::size_t stride_sums,
                                 int runs) {
  if (rows <= 0) return;
  const std::size_t doubles = cuda::task_sums_workspace(rows, n_tasks);
  double* workspace = doubles > 0 ? static_cast<double*>(scratch(doubles * sizeof(double))) : nullptr;
  // One launch per run (in stream order, so the runs share the workspace).
  for (int r = 0; r < runs; ++r)
    cuda::launch_task_sums(loss + r * stride_rows, correct + r * stride_rows, tasks, rows, n_tasks,
                           sums + r * stride_sums, workspace, device_error_flag_, stream_);
}

// ---- data ---------------------------------------------------------------------------------

void CudaBackend::sparse_parity(const ParityDraw& draw, const ParityTables& tables, int count, float* x,
                                int32_t* labels, int32_t* tasks) {
  if (capturing_ && draw.step_or_task != capture_step_) {
    throw RuntimeError(fmt::format("step graph capture: a sparse_parity draw for step {} inside the capture of step {}",
                                   draw.step_or_task, capture_step_));
  }
  cuda::launch_sparse_parity(draw, tables, count, x, labels, tasks, capturing_ ? step_counter_ : nullptr, stream_);
}

// ---- optimizer updates --------------------------------------------------------------------

void CudaBackend::sgd_one(float* w, const float* g, float* m, std::size_t n, const RunUpdate& u, bool nesterov) {
  cuda::launch_sgd_update(w, g, m, n, u.lr, u.momentum, nesterov, u.weight_decay, stream_);
}

void CudaBackend::nmd_one(float* w, const float* g, float* m, std::size_t n, const RunUpdate& u) {
  cuda::launch_nmd_update(w, g, m, n, u.lr, u.momentum, u.weight_decay, reduce_partials_, reduce_result_, stream_);
}

void CudaBackend::adam_one(float* w, const float* g, float* m, float* v, std::size_t n, const RunUpdate& u,
                           bool decoupled, int64_t t) {
  const float lr = u.lr, beta1 = u.momentum, beta2 = u.beta2, eps = u.eps;
  const AdamScalars k = adam_scalars("cuda", lr, beta1, beta2, u.weight_decay, decoupled, t);
  if (capturing_) {  // t moves with the replayed step: record it as an offset to the counter
    cuda::launch_adam_update_counted(w, g, m, v, n, lr, beta1, beta2, eps, k.decay, k.l2, step_counter_,
                                     t - static_cast<int64_t>(capture_step_), stream_);
    return;
  }
  cuda::launch_adam_update(w, g, m, v, n, k.step, k.inv_sqrt_bc2, beta1, beta2, eps, k.decay, k.l2, stream_);
}

void CudaBackend::signgd_one(float* w, const float* g, float* m, std::size_t n, const RunUpdate& u) {
  cuda::launch_signgd_update(w, g, m, n, u.lr, u.momentum, u.weight_decay, stream_);
}

// ---- optimizer updates over the runs of a pack ----------------------------------------------

void CudaBackend::update(const UpdateArgs& a) {
  if (a.dtype != DType::F32) no_fp64("update");
  auto* w = static_cast<float*>(a.w);
  const auto* g = static_cast<const float*>(a.g);
  auto* m = static_cast<float*>(a.m);
  auto* v = static_cast<float*>(a.v);
  auto* out = static_cast<float*>(a.scratch);
  const std::span<const RunUpdate> table = a.table<float>();
  const auto* device = static_cast<const RunUpdate*>(a.device_entries);
  const std::size_t ps = a.param_stride, ms = a.m_stride, vs = a.v_stride, ss = a.scratch_stride, n = a.n;
  const int entries = static_cast<int>(table.size());
  if (device == nullptr || entries <= 1 || entries > cuda::kMaxGridRuns) {
    // Entry by entry with the one-run kernels: a run alone launches what it launched before packs.
    for (int i = 0; i < entries; ++i) {
      const RunUpdate& u = table[static_cast<std::size_t>(i)];
      float* wi = w != nullptr ? w + u.run * ps : nullptr;
      const float* gi = g != nullptr ? g + u.run * ps : nullptr;
      float* mi = m != nullptr ? m + u.slice * ms : nullptr;
      float* oi = out != nullptr ? out + static_cast<std::size_t>(i) * ss : nullptr;
      switch (a.kind) {
        case UpdateKind::Sgd: sgd_one(wi, gi, mi, n, u, a.nesterov); break;
        case UpdateKind::Nmd: nmd_one(wi, gi, mi, n, u); break;
        case UpdateKind::Adam: adam_one(wi, gi, mi, v + u.slice * vs, n, u, a.decoupled, a.t); break;
        case UpdateKind::SignGd: signgd_one(wi, gi, mi, n, u); break;
        case UpdateKind::Momentum:
          cuda::launch_momentum_accumulate(mi, gi, oi, n, u.momentum, a.nesterov, stream_);
          break;
        case UpdateKind::MuonStep: cuda::launch_axpby(wi, oi, n, u.step_alpha, u.step_beta, stream_); break;
      }
    }
    return;
  }
  switch (a.kind) {
    case UpdateKind::Sgd:
      return cuda::launch_sgd_update_runs(w, g, ps, m, ms, n, device, entries, a.nesterov, stream_);
    case UpdateKind::Nmd: {
      if (n == 0) return;
      auto* workspace = static_cast<double*>(scratch(cuda::nmd_runs_workspace(n, entries) * sizeof(double)));
      return cuda::launch_nmd_update_runs(w, g, ps, m, ms, n, device, entries, workspace, stream_);
    }
    case UpdateKind::Adam: {
      if (a.t < 1) throw std::invalid_argument("cuda adam update: step t must be >= 1");
      // In a captured step t moves with the replayed step: an offset to the device counter.
      const uint32_t* counter = capturing_ ? step_counter_ : nullptr;
      const int64_t offset = capturing_ ? a.t - static_cast<int64_t>(capture_step_) : a.t;
      return cuda::launch_adam_update_runs(w, g, ps, m, ms, v, vs, n, device, entries, a.decoupled, counter, offset,
                                           stream_);
    }
    case UpdateKind::SignGd:
      return cuda::launch_signgd_update_runs(w, g, ps, m, ms, n, device, entries, stream_);
    case UpdateKind::Momentum:
      return cuda::launch_momentum_accumulate_runs(m, ms, g, ps, out, ss, n, device, entries, a.nesterov, stream_);
    case UpdateKind::MuonStep:
      return cuda::launch_muon_step_runs(w, ps, out, ss, n, device, entries, stream_);
  }
}

// ---- msign --------------------------------------------------------------------------------

CudaBackend::NsStart CudaBackend::start_newton_schulz(const float* G, float* out, std::size_t stride, int rows,
                                                     int cols, std::size_t iterations, double norm_scale,
                                                     double norm_eps, int runs, std::size_t extra_floats) {
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  const auto s = static_cast<std::size_t>(std::min(rows, cols));
  const auto r = static_cast<std::size_t>(runs);
  constexpr std::size_t kAlign = 64;  // floats: 256 bytes, what the tensor-core paths like
  auto padded = [](std::size_t count) { return round_up(count, kAlign); };
  const std::size_t n_padded = padded(n), ss_padded = padded(s * s);
  // Scratch: the norms' partial sums and results (doubles), X (runs x n_padded), Gram A and
  // polynomial B (runs x ss_padded each), then the caller's extra floats.
  const std::size_t blocks = cuda::reduce_blocks(n);
  const std::size_t double_floats = padded((blocks + 1) * r * 2);
  float* base =
      static_cast<float*>(scratch((double_floats + r * (n_padded + 2 * ss_padded) + extra_floats) * sizeof(float)));
  auto* partials = reinterpret_cast<double*>(base);
  double* norms = partials + blocks * r;
  NsStart st;
  float* x_scratch = base + double_floats;
  st.gram = x_scratch + r * n_padded;
  st.poly = st.gram + r * ss_padded;
  st.extra = st.poly + r * ss_padded;
  st.ss_padded = ss_padded;
  // An even number of iterations starts in `out`, an odd one in the scratch X: the last lands in out.
  const bool even = iterations % 2 == 0;
  st.x = even ? out : x_scratch;
  st.x_next = even ? x_scratch : out;
  st.xs = even ? stride : n_padded;
  st.xns = even ? n_padded : stride;
  if (runs == 1) {  // the one-run launches (and reduction buffers) a run alone has always used
    cuda::launch_sum_squares(G, n, reduce_partials_, reduce_result_, stream_);
    cuda::launch_scale_by_inverse_norm(st.x, G, n, reduce_result_, norm_scale, norm_eps, stream_);
    return st;
  }
  cuda::launch_sum_squares_runs(G, stride, n, runs, partials, norms, stream_);
  cuda::launch_scale_by_inverse_norm_runs(st.x, st.xs, G, stride, n, norms, norm_scale, norm_eps, runs, stream_);
  return st;
}

void CudaBackend::newton_schulz_kernels(const float* G, float* out, std::size_t stride, int rows, int cols,
                                        std::span<const NsCoefficients> iterations, double norm_scale,
                                        double norm_eps, int runs) {
  // The tiling of backend/ns_tiles.h: per iteration three launches (Gram, polynomial, apply),
  // each for every run at once; the Gram's partial tiles and chunk counters after the shared scratch.
  const ns_tiles::Plan plan = ns_tiles::plan(rows, cols);
  const std::size_t partial_floats = round_up(ns_tiles::partial_floats(plan, runs), 64);
  const std::size_t counter_ints = ns_tiles::counter_count(plan, runs);
  NsStart st = start_newton_schulz(G, out, stride, rows, cols, iterations.size(), norm_scale, norm_eps, runs,
                                   partial_floats + round_up(counter_ints, 64));
  float* tiles = st.extra;
  int* counters = reinterpret_cast<int*>(tiles + partial_floats);
  cuda::launch_ns_iterations(st.x, st.xs, st.x_next, st.xns, st.gram, st.poly, st.ss_padded, tiles, counters, plan,
                             iterations.data(), iterations.size(), runs, stream_);
}

void CudaBackend::newton_schulz(const NsArgs& a) {
  if (a.dtype != DType::F32) no_fp64("newton_schulz");
  const auto* G = static_cast<const float*>(a.G);
  auto* out = static_cast<float*>(a.out);
  if (a.runs <= 0 || a.rows <= 0 || a.cols <= 0) return;
  if (a.runs == 1 || a.runs > cuda::kMaxGridRuns) {
    for (int r = 0; r < a.runs; ++r)
      newton_schulz_one(G + r * a.stride, out + r * a.stride, a.rows, a.cols, a.iterations, a.norm_scale, a.norm_eps);
    return;
  }
  newton_schulz_batched(G, out, a.stride, a.rows, a.cols, a.iterations, a.norm_scale, a.norm_eps, a.runs);
}

void CudaBackend::newton_schulz_batched(const float* G, float* out, std::size_t stride, int rows, int cols,
                                        std::span<const NsCoefficients> iterations, double norm_scale,
                                        double norm_eps, int runs) {
  if (ns_kernels_ && ns_tiles::usable(rows, cols)) {
    newton_schulz_kernels(G, out, stride, rows, cols, iterations, norm_scale, norm_eps, runs);
    return;
  }
  // newton_schulz_one below for all runs at once: the norms by one batched reduction, every
  // product one strided-batched gemm, the copies one 2-D copy.
  const int s = std::min(rows, cols);
  const bool wide = rows <= cols;
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  NsStart st = start_newton_schulz(G, out, stride, rows, cols, iterations.size(), norm_scale, norm_eps, runs, 0);
  float *x = st.x, *x_next = st.x_next, *gram = st.gram, *poly = st.poly;
  std::size_t xs = st.xs, xns = st.xns;
  const auto r = static_cast<std::size_t>(runs);
  const std::size_t ss_padded = st.ss_padded;
  const auto gs = static_cast<int64_t>(ss_padded);
  for (const NsCoefficients& k : iterations) {
    const auto x_stride = static_cast<int64_t>(xs), next_stride = static_cast<int64_t>(xns);
    if (wide) {
      gemm_strided_batched(Trans::No, Trans::Yes, s, s, cols, 1.0f, x, cols, x_stride, x, cols, x_stride, 0.0f, gram,
                           s, gs, runs);
    } else {
      gemm_strided_batched(Trans::Yes, Trans::No, s, s, rows, 1.0f, x, cols, x_stride, x, cols, x_stride, 0.0f, gram,
                           s, gs, runs);
    }
    SKR_CUDA_CHECK(cudaMemcpyAsync(poly, gram, r * ss_padded * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
    gemm_strided_batched(Trans::No, Trans::No, s, s, s, static_cast<float>(k.c), gram, s, gs, gram, s, gs,
                         static_cast<float>(k.b), poly, s, gs, runs);
    SKR_CUDA_CHECK(cudaMemcpy2DAsync(x_next, xns * sizeof(float), x, xs * sizeof(float), n * sizeof(float), r,
                                     cudaMemcpyDeviceToDevice, stream_));
    if (wide) {
      gemm_strided_batched(Trans::No, Trans::No, rows, cols, rows, 1.0f, poly, s, gs, x, cols, x_stride,
                           static_cast<float>(k.a), x_next, cols, next_stride, runs);
    } else {
      gemm_strided_batched(Trans::No, Trans::No, rows, cols, cols, 1.0f, x, cols, x_stride, poly, s, gs,
                           static_cast<float>(k.a), x_next, cols, next_stride, runs);
    }
    std::swap(x, x_next);
    std::swap(xs, xns);
  }
}

void CudaBackend::newton_schulz_one(const float* G, float* out, int rows, int cols,
                                    std::span<const NsCoefficients> iterations, double norm_scale, double norm_eps) {
  // The generic iteration of backend/newton_schulz.cpp (Gram on the small side, polynomial, apply, X
  // buffers swapped), with three changes: ||G||_F stays on the device (no host round trip);
  // the polynomial B = c A^2 + b A is one gemm onto a copy of A (beta = b); the apply step
  // X' = a X + B X is one gemm onto a copy of X (beta = a). Scratch is kept between calls.
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  if (ns_kernels_ && ns_tiles::usable(rows, cols)) {
    newton_schulz_kernels(G, out, n, rows, cols, iterations, norm_scale, norm_eps, 1);
    return;
  }
  const int s = std::min(rows, cols);
  const bool wide = rows <= cols;
  const std::size_t ss = static_cast<std::size_t>(s) * s;
  // X0 = G / (norm_scale ||G||_F + norm_eps) in whichever X buffer makes the last iteration land
  // in `out` (with no iteration, in `out` itself).
  const NsStart st = start_newton_schulz(G, out, n, rows, cols, iterations.size(), norm_scale, norm_eps, 1, 0);
  float *x = st.x, *x_next = st.x_next, *gram = st.gram, *poly = st.poly;
  for (const NsCoefficients& k : iterations) {
    // Gram: A = X X^T (wide) or X^T X (tall), s x s.
    if (wide) {
      gemm_one(Trans::No, Trans::Yes, s, s, cols, 1.0f, x, cols, x, cols, 0.0f, gram, s);
    } else {
      gemm_one(Trans::Yes, Trans::No, s, s, rows, 1.0f, x, cols, x, cols, 0.0f, gram, s);
    }
    // Polynomial: B = c A A + b A.
    SKR_CUDA_CHECK(cudaMemcpyAsync(poly, gram, ss * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
    gemm_one(Trans::No, Trans::No, s, s, s, static_cast<float>(k.c), gram, s, gram, s, static_cast<float>(k.b), poly, s);
    // Apply: X' = B X + a X (wide) or X B + a X (tall).
    SKR_CUDA_CHECK(cudaMemcpyAsync(x_next, x, n * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
    if (wide) {
      gemm_one(Trans::No, Trans::No, rows, cols, rows, 1.0f, poly, s, x, cols, static_cast<float>(k.a), x_next, cols);
    } else {
      gemm_one(Trans::No, Trans::No, rows, cols, cols, 1.0f, x, cols, poly, s, static_cast<float>(k.a), x_next, cols);
    }
    std::swap(x, x_next);
  }
}

void CudaBackend::svd_op(DType type, const void* G, void* out, std::size_t stride, int rows, int cols, int runs) {
  if (type != DType::F32) no_fp64("msign_svd");
  for (int r = 0; r < runs; ++r)
    svd_one(static_cast<const float*>(G) + r * stride, static_cast<float*>(out) + r * stride, rows, cols);
}

void CudaBackend::svd_one(const float* G, float* out, int rows, int cols) {
  // Exact polar factor by one-sided Jacobi SVD (gesvdj) in double: accurate to ~1e-14 in every
  // singular direction. The alternative, eigenvectors of the small Gram matrix G^T G, squares
  // the condition number: a direction with s_j = 1e-6 s_max would keep only ~4 digits, so a
  // near-rank-deficient momentum would get a visibly wrong factor. These matrices are small
  // (<= 2000 x 2000) and svd is a reference method, so accuracy wins over speed here.
  if (rows <= 0 || cols <= 0) return;
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  // The CPU backend's LAPACK rejects NaN/Inf input; Jacobi would iterate on it, so check first.
  if (!std::isfinite(sum_squares_one(G, n))) {
    throw RuntimeError(fmt::format("cuda msign_svd: the {}x{} matrix holds NaN or Inf", rows, cols));
  }
  // gesvdj wants column-major M x N with M >= N (see kernels/msign.cu for the layouts).
  const bool transpose = rows > cols;
  const int M = transpose ? rows : cols, N = transpose ? cols : rows;
  Buffer<double> a(*this, n), s(*this, static_cast<std::size_t>(N)), u(*this, static_cast<std::size_t>(M) * N),
      v(*this, static_cast<std::size_t>(N) * N), q(*this, n);
  Buffer<int> info(*this, 1);
  cuda::launch_to_double(G, a.data(), rows, cols, transpose, stream_);

  GesvdjParams params;
  constexpr int kEcon = 1;  // thin SVD: U is M x N, V is N x N
  int lwork = 0;
  SKR_CUSOLVER_CHECK(cusolverDnDgesvdj_bufferSize(cusolver_, CUSOLVER_EIG_MODE_VECTOR, kEcon, M, N, a.data(), M,
                                                  s.data(), u.data(), M, v.data(), N, &lwork, params.info));
  Buffer<double> work(*this, static_cast<std::size_t>(std::max(lwork, 1)));
  SKR_CUSOLVER_CHECK(cusolverDnDgesvdj(cusolver_, CUSOLVER_EIG_MODE_VECTOR, kEcon, M, N, a.data(), M, s.data(),
                                       u.data(), M, v.data(), N, work.data(), lwork, info.data(), params.info));
  int host_info = 0;
  download(&host_info, info.data(), sizeof(int));
  if (host_info != 0) {
    throw RuntimeError(fmt::format("cuda msign_svd: cuSOLVER gesvdj on a {}x{} matrix failed, info = {} ({})", rows,
                                   cols, host_info,
                                   host_info > 0 ? "did not converge" : "illegal argument"));
  }
  cuda::launch_zero_small_singular_vectors(u.data(), M, N, s.data(), static_cast<double>(std::max(M, N)), stream_);
  // Q (M x N, column-major) = U V^T.
  const double one = 1.0, zero = 0.0;
  SKR_CUBLAS_CHECK(cublasDgemm(cublas_, CUBLAS_OP_N, CUBLAS_OP_T, M, N, N, &one, u.data(), M, v.data(), N, &zero,
                               q.data(), M));
  cuda::launch_to_float(q.data(), out, rows, cols, transpose, stream_);
}

}  // namespace skillrun
