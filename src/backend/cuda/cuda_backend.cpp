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
                        precision_name(precision_));

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

void CudaBackend::gemm(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda, const float* B,
                       int ldb, float beta, float* C, int ldc) {
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

void CudaBackend::gemm_strided_batched(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda,
                                       int64_t stride_a, const float* B, int ldb, int64_t stride_b, float beta,
                                       float* C, int ldc, int64_t stride_c, int batch) {
  check_batch_strides(m, n, ldc, stride_a, stride_b, stride_c, batch);
  // One product, or k == 0 (C = beta C, a kernel of its own): gemm() per product.
  if (batch <= 1 || k == 0) {
    Backend::gemm_strided_batched(ta, tb, m, n, k, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c,
                                  batch);
    return;
  }
  check_gemm_shape(ta, tb, m, n, k, lda, ldb, ldc);
  if (m == 0 || n == 0) return;
  // Row-major as in gemm(): column-major C^T = op(B)^T op(A)^T, so B (and its stride) first.
  SKR_CUBLAS_CHECK(cublasGemmStridedBatchedEx(cublas_, to_cublas(tb), to_cublas(ta), n, m, k, &alpha, B, CUDA_R_32F,
                                              ldb, stride_b, A, CUDA_R_32F, lda, stride_a, &beta, C, CUDA_R_32F, ldc,
                                              stride_c, batch, compute_type_, CUBLAS_GEMM_DEFAULT));
}

// ---- elementwise and reductions -----------------------------------------------------------

void CudaBackend::fill(float* x, std::size_t n, float value) { cuda::launch_fill(x, n, value, stream_); }

void CudaBackend::axpby(float* y, const float* x, std::size_t n, float alpha, float beta) {
  cuda::launch_axpby(y, x, n, alpha, beta, stream_);
}

double CudaBackend::sum_squares(const float* x, std::size_t n) {
  require_not_capturing("sum_squares");
  if (n == 0) return 0.0;
  cuda::launch_sum_squares(x, n, reduce_partials_, reduce_result_, stream_);
  SKR_CUDA_CHECK(cudaMemcpyAsync(host_result_, reduce_result_, sizeof(double), cudaMemcpyDeviceToHost, stream_));
  sync_and_check();
  return *host_result_;
}

// ---- MLP pieces ---------------------------------------------------------------------------

void CudaBackend::bias_activation(float* H, const float* bias, int rows, int cols, bool relu) {
  cuda::launch_bias_activation(H, 0, bias, 0, rows, cols, relu, 1, stream_);
}

void CudaBackend::relu_backward(float* dH, const float* H, std::size_t n) {
  cuda::launch_relu_backward(dH, 0, H, 0, n, 1, stream_);
}

// The run axis: one launch for every run (blockIdx.y or .z), each run computed as alone; one
// run goes through the one-run op itself. More runs than a grid dimension holds go in groups.
namespace {
constexpr int kMaxRunsPerLaunch = 65535;
}

void CudaBackend::bias_activation_runs(float* H, std::size_t stride_h, const float* bias, std::size_t stride_bias,
                                       int rows, int cols, bool relu, int runs) {
  if (runs == 1) return bias_activation(H, bias, rows, cols, relu);
  for (int first = 0; first < runs; first += kMaxRunsPerLaunch)
    cuda::launch_bias_activation(H + first * stride_h, stride_h, bias + first * stride_bias, stride_bias, rows, cols,
                                 relu, std::min(kMaxRunsPerLaunch, runs - first), stream_);
}

void CudaBackend::relu_backward_runs(float* dH, std::size_t stride_dh, const float* H, std::size_t stride_h,
                                     std::size_t n, int runs) {
  if (runs == 1) return relu_backward(dH, H, n);
  for (int first = 0; first < runs; first += kMaxRunsPerLaunch)
    cuda::launch_relu_backward(dH + first * stride_dh, stride_dh, H + first * stride_h, stride_h, n,
                               std::min(kMaxRunsPerLaunch, runs - first), stream_);
}

void CudaBackend::column_sums_runs(const float* A, std::size_t stride_a, int rows, int cols, float* out,
                                   std::size_t stride_out, int runs) {
  if (runs <= 0) return;
  if (runs == 1) return column_sums(A, rows, cols, out);
  // Each run has its own chunk sums; the scratch buffer grows before a capture (warm-up steps).
  const std::size_t per_run = cuda::column_sums_workspace(rows, cols);
  const int group = per_run == 0 ? kMaxRunsPerLaunch
                                 : static_cast<int>(std::min<std::size_t>(kMaxRunsPerLaunch, runs));
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
  if (runs == 1) return cross_entropy(logits, labels, rows, classes, loss, correct, dlogits, grad_scale);
  for (int first = 0; first < runs; first += kMaxRunsPerLaunch)
    cuda::launch_cross_entropy(logits + first * stride_logits, stride_logits, labels, rows, classes,
                               loss + first * stride_rows, correct + first * stride_rows, stride_rows,
                               dlogits != nullptr ? dlogits + first * stride_dlogits : nullptr, stride_dlogits,
                               grad_scale, std::min(kMaxRunsPerLaunch, runs - first), device_error_flag_, stream_);
}

void CudaBackend::column_sums(const float* A, int rows, int cols, float* out) {
  cuda::launch_column_sums(A, rows, cols, out, column_workspace_, stream_);
}

void CudaBackend::cross_entropy(const float* logits, const int32_t* labels, int rows, int classes, float* loss,
                                float* correct, float* dlogits, float grad_scale) {
  cuda::launch_cross_entropy(logits, labels, rows, classes, loss, correct, dlogits, grad_scale, device_error_flag_,
                             stream_);
}

// ---- the MLP's layers: cuBLASLt epilogues, or the unfused defaults ---------------------------

std::size_t CudaBackend::relu_mask_bytes(int rows, int cols) const {
  return lt_ != nullptr ? cuda::relu_mask_bytes(rows, cols) : 0;
}

Backend::FusedLinearCounts CudaBackend::fused_linear_counts() const {
  FusedLinearCounts counts = linear_counts_;
  if (lt_ != nullptr) {
    counts.problems = lt_->problems();
    counts.refused = lt_->refused();
  }
  return counts;
}

std::string CudaBackend::fused_linear_report() const {
  const FusedLinearCounts c = fused_linear_counts();
  if (lt_ == nullptr) return fmt::format("cuBLASLt: off (SKILLRUN_CUBLASLT), {} layer calls unfused", c.unfused);
  return fmt::format("cuBLASLt: {} fused problems, {} refused; {} layer calls fused, {} unfused", c.problems, c.refused,
                     c.fused, c.unfused);
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

void CudaBackend::task_sums(const float* loss, const float* correct, const int32_t* tasks, int rows, int n_tasks,
                            double* sums) {
  if (rows <= 0) return;
  const std::size_t doubles = cuda::task_sums_workspace(rows, n_tasks);
  double* workspace = doubles > 0 ? static_cast<double*>(scratch(doubles * sizeof(double))) : nullptr;
  cuda::launch_task_sums(loss, correct, tasks, rows, n_tasks, sums, workspace, device_error_flag_, stream_);
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

void CudaBackend::sgd_update(float* w, const float* g, float* m, std::size_t n, float lr, float momentum,
                             bool nesterov, float weight_decay) {
  cuda::launch_sgd_update(w, g, m, n, lr, momentum, nesterov, weight_decay, stream_);
}

void CudaBackend::nmd_update(float* w, const float* g, float* m, std::size_t n, float lr, float beta,
                             float weight_decay) {
  cuda::launch_nmd_update(w, g, m, n, lr, beta, weight_decay, reduce_partials_, reduce_result_, stream_);
}

void CudaBackend::adam_update(float* w, const float* g, float* m, float* v, std::size_t n, float lr, float beta1,
                              float beta2, float eps, float weight_decay, bool decoupled, int64_t t) {
  const AdamScalars k = adam_scalars("cuda", lr, beta1, beta2, weight_decay, decoupled, t);
  if (capturing_) {  // t moves with the replayed step: record it as an offset to the counter
    cuda::launch_adam_update_counted(w, g, m, v, n, lr, beta1, beta2, eps, k.decay, k.l2, step_counter_,
                                     t - static_cast<int64_t>(capture_step_), stream_);
    return;
  }
  cuda::launch_adam_update(w, g, m, v, n, k.step, k.inv_sqrt_bc2, beta1, beta2, eps, k.decay, k.l2, stream_);
}

void CudaBackend::signgd_update(float* w, const float* g, float* m, std::size_t n, float lr, float momentum,
                                float weight_decay) {
  cuda::launch_signgd_update(w, g, m, n, lr, momentum, weight_decay, stream_);
}

void CudaBackend::momentum_accumulate(float* m, const float* g, float* out, std::size_t n, float beta,
                                      bool nesterov) {
  cuda::launch_momentum_accumulate(m, g, out, n, beta, nesterov, stream_);
}

// ---- optimizer updates over the runs of a pack ----------------------------------------------
// One launch for every entry of the run table (its device copy). One entry (a run alone, or the
// only run of its group), no device copy, or more entries than a grid dimension holds: the
// default, one one-run call per entry, so a run alone takes exactly the one-run kernels.

namespace {
bool one_launch(const RunTable& runs) {
  return runs.device != nullptr && runs.host.size() > 1 && runs.host.size() <= 65535;
}
}  // namespace

void CudaBackend::sgd_update_runs(float* w, const float* g, std::size_t param_stride, float* m,
                                  std::size_t state_stride, std::size_t n, const RunTable& runs, bool nesterov) {
  if (!one_launch(runs)) return Backend::sgd_update_runs(w, g, param_stride, m, state_stride, n, runs, nesterov);
  cuda::launch_sgd_update_runs(w, g, param_stride, m, state_stride, n, runs.device,
                               static_cast<int>(runs.host.size()), nesterov, stream_);
}

void CudaBackend::nmd_update_runs(float* w, const float* g, std::size_t param_stride, float* m,
                                  std::size_t state_stride, std::size_t n, const RunTable& runs) {
  if (!one_launch(runs)) return Backend::nmd_update_runs(w, g, param_stride, m, state_stride, n, runs);
  const int entries = static_cast<int>(runs.host.size());
  if (n == 0 || entries == 0) return;
  auto* workspace = static_cast<double*>(scratch(cuda::nmd_runs_workspace(n, entries) * sizeof(double)));
  cuda::launch_nmd_update_runs(w, g, param_stride, m, state_stride, n, runs.device, entries, workspace, stream_);
}

void CudaBackend::adam_update_runs(float* w, const float* g, std::size_t param_stride, float* m, std::size_t m_stride,
                                   float* v, std::size_t v_stride, std::size_t n, const RunTable& runs,
                                   bool decoupled, int64_t t) {
  if (!one_launch(runs))
    return Backend::adam_update_runs(w, g, param_stride, m, m_stride, v, v_stride, n, runs, decoupled, t);
  if (t < 1) throw std::invalid_argument("cuda adam_update_runs: step t must be >= 1");
  // In a captured step t moves with the replayed step: an offset to the device counter.
  const uint32_t* counter = capturing_ ? step_counter_ : nullptr;
  const int64_t offset = capturing_ ? t - static_cast<int64_t>(capture_step_) : t;
  cuda::launch_adam_update_runs(w, g, param_stride, m, m_stride, v, v_stride, n, runs.device,
                                static_cast<int>(runs.host.size()), decoupled, counter, offset, stream_);
}

void CudaBackend::signgd_update_runs(float* w, const float* g, std::size_t param_stride, float* m,
                                     std::size_t state_stride, std::size_t n, const RunTable& runs) {
  if (!one_launch(runs)) return Backend::signgd_update_runs(w, g, param_stride, m, state_stride, n, runs);
  cuda::launch_signgd_update_runs(w, g, param_stride, m, state_stride, n, runs.device,
                                  static_cast<int>(runs.host.size()), stream_);
}

void CudaBackend::momentum_accumulate_runs(float* m, std::size_t state_stride, const float* g,
                                           std::size_t param_stride, float* out, std::size_t scratch_stride,
                                           std::size_t n, const RunTable& runs, bool nesterov) {
  if (!one_launch(runs))
    return Backend::momentum_accumulate_runs(m, state_stride, g, param_stride, out, scratch_stride, n, runs, nesterov);
  cuda::launch_momentum_accumulate_runs(m, state_stride, g, param_stride, out, scratch_stride, n, runs.device,
                                        static_cast<int>(runs.host.size()), nesterov, stream_);
}

void CudaBackend::muon_step_runs(float* w, std::size_t param_stride, const float* d, std::size_t scratch_stride,
                                 std::size_t n, const RunTable& runs) {
  if (!one_launch(runs)) return Backend::muon_step_runs(w, param_stride, d, scratch_stride, n, runs);
  cuda::launch_muon_step_runs(w, param_stride, d, scratch_stride, n, runs.device, static_cast<int>(runs.host.size()),
                              stream_);
}

// ---- msign --------------------------------------------------------------------------------

CudaBackend::NsStart CudaBackend::start_newton_schulz(const float* G, float* out, std::size_t stride, int rows,
                                                     int cols, std::size_t iterations, double norm_scale,
                                                     double norm_eps, int runs, std::size_t extra_floats) {
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  const auto s = static_cast<std::size_t>(std::min(rows, cols));
  const auto r = static_cast<std::size_t>(runs);
  constexpr std::size_t kAlign = 64;  // floats: 256 bytes, what the tensor-core paths like
  auto padded = [](std::size_t count) { return (count + kAlign - 1) / kAlign * kAlign; };
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
  const std::size_t partial_floats = (ns_tiles::partial_floats(plan, runs) + 63) / 64 * 64;
  const std::size_t counter_ints = ns_tiles::counter_count(plan, runs);
  NsStart st = start_newton_schulz(G, out, stride, rows, cols, iterations.size(), norm_scale, norm_eps, runs,
                                   partial_floats + (counter_ints + 63) / 64 * 64);
  float* tiles = st.extra;
  int* counters = reinterpret_cast<int*>(tiles + partial_floats);
  // The Gram launches leave their counters at zero; they start there in every call (and so in
  // every replay of a captured step), whatever an earlier failed launch left.
  if (counter_ints > 0)
    SKR_CUDA_CHECK(cudaMemsetAsync(counters, 0, counter_ints * sizeof(int), stream_));
  for (const NsCoefficients& k : iterations) {
    cuda::launch_ns_gram(st.x, st.xs, st.gram, st.ss_padded, tiles, counters, plan, runs, stream_);
    cuda::launch_ns_poly(st.gram, st.poly, st.ss_padded, plan, static_cast<float>(k.b), static_cast<float>(k.c), runs,
                         stream_);
    cuda::launch_ns_apply(st.x, st.xs, st.poly, st.ss_padded, st.x_next, st.xns, plan, static_cast<float>(k.a), runs,
                          stream_);
    std::swap(st.x, st.x_next);
    std::swap(st.xs, st.xns);
  }
}

void CudaBackend::msign_newton_schulz_runs(const float* G, float* out, std::size_t stride, int rows, int cols,
                                           std::span<const NsCoefficients> iterations, double norm_scale,
                                           double norm_eps, int runs) {
  if (runs <= 0 || rows <= 0 || cols <= 0) return;
  if (ns_kernels_ && ns_tiles::usable(rows, cols) && runs <= 65535) {
    newton_schulz_kernels(G, out, stride, rows, cols, iterations, norm_scale, norm_eps, runs);
    return;
  }
  // msign_newton_schulz below for all runs at once: the norms by one batched reduction, every
  // product one strided-batched gemm, the copies one 2-D copy. One run: that function itself.
  if (runs <= 1 || runs > 65535) {
    Backend::msign_newton_schulz_runs(G, out, stride, rows, cols, iterations, norm_scale, norm_eps, runs);
    return;
  }
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

void CudaBackend::msign_newton_schulz(const float* G, float* out, int rows, int cols,
                                      std::span<const NsCoefficients> iterations, double norm_scale,
                                      double norm_eps) {
  // The generic iteration of backend/newton_schulz.cpp (Gram on the small side, polynomial, apply, X
  // buffers swapped), with three changes: ||G||_F stays on the device (no host round trip);
  // the polynomial B = c A^2 + b A is one gemm onto a copy of A (beta = b); the apply step
  // X' = a X + B X is one gemm onto a copy of X (beta = a). Scratch is kept between calls.
  if (rows <= 0 || cols <= 0) return;
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  if (ns_kernels_ && ns_tiles::usable(rows, cols)) {
    newton_schulz_kernels(G, out, n, rows, cols, iterations, norm_scale, norm_eps, 1);
    return;
  }
  const int s = std::min(rows, cols);
  const bool wide = rows <= cols;
  const std::size_t ss = static_cast<std::size_t>(s) * s;

  if (iterations.empty()) {
    cuda::launch_sum_squares(G, n, reduce_partials_, reduce_result_, stream_);
    cuda::launch_scale_by_inverse_norm(out, G, n, reduce_result_, norm_scale, norm_eps, stream_);
    return;
  }
  // Layout: X scratch (n, rounded up to 256 bytes so that the Gram buffers stay aligned for the
  // tensor-core paths), Gram A (s x s), polynomial B (s x s, also rounded).
  constexpr std::size_t kAlign = 64;  // floats
  const std::size_t n_padded = (n + kAlign - 1) / kAlign * kAlign;
  const std::size_t ss_padded = (ss + kAlign - 1) / kAlign * kAlign;
  float* base = static_cast<float*>(scratch((n_padded + 2 * ss_padded) * sizeof(float)));
  float* x_scratch = base;
  float* gram = base + n_padded;
  float* poly = gram + ss_padded;

  float* x = iterations.size() % 2 == 0 ? out : x_scratch;
  float* x_next = iterations.size() % 2 == 0 ? x_scratch : out;
  cuda::launch_sum_squares(G, n, reduce_partials_, reduce_result_, stream_);
  cuda::launch_scale_by_inverse_norm(x, G, n, reduce_result_, norm_scale, norm_eps, stream_);

  for (const NsCoefficients& k : iterations) {
    // Gram: A = X X^T (wide) or X^T X (tall), s x s.
    if (wide) {
      gemm(Trans::No, Trans::Yes, s, s, cols, 1.0f, x, cols, x, cols, 0.0f, gram, s);
    } else {
      gemm(Trans::Yes, Trans::No, s, s, rows, 1.0f, x, cols, x, cols, 0.0f, gram, s);
    }
    // Polynomial: B = c A A + b A.
    SKR_CUDA_CHECK(cudaMemcpyAsync(poly, gram, ss * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
    gemm(Trans::No, Trans::No, s, s, s, static_cast<float>(k.c), gram, s, gram, s, static_cast<float>(k.b), poly, s);
    // Apply: X' = B X + a X (wide) or X B + a X (tall).
    SKR_CUDA_CHECK(cudaMemcpyAsync(x_next, x, n * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
    if (wide) {
      gemm(Trans::No, Trans::No, rows, cols, rows, 1.0f, poly, s, x, cols, static_cast<float>(k.a), x_next, cols);
    } else {
      gemm(Trans::No, Trans::No, rows, cols, cols, 1.0f, x, cols, poly, s, static_cast<float>(k.a), x_next, cols);
    }
    std::swap(x, x_next);
  }
}

void CudaBackend::msign_svd(const float* G, float* out, int rows, int cols) {
  // Exact polar factor by one-sided Jacobi SVD (gesvdj) in double: accurate to ~1e-14 in every
  // singular direction. The alternative, eigenvectors of the small Gram matrix G^T G, squares
  // the condition number: a direction with s_j = 1e-6 s_max would keep only ~4 digits, so a
  // near-rank-deficient momentum would get a visibly wrong factor. These matrices are small
  // (<= 2000 x 2000) and svd is a reference method, so accuracy wins over speed here.
  if (rows <= 0 || cols <= 0) return;
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  // The CPU backend's LAPACK rejects NaN/Inf input; Jacobi would iterate on it, so check first.
  if (!std::isfinite(sum_squares(G, n))) {
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
