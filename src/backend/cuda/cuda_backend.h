// CudaBackend: the whole training step on one GPU. cuBLAS for the matrix products (fp32, TF32
// or bf16-operand math by `precision`), cuSOLVER (gesvdj, double) for the exact msign, and the
// kernels of kernels/ for everything else, all on one non-blocking stream. Memory comes from
// the device's stream-ordered pool (cudaMallocAsync) and stays pooled once freed.
// Ops are asynchronous; download(), synchronize() and sum_squares() wait for the stream.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace skillrun {
namespace cuda {
class CublasLtLinear;  // backend/cuda/cublaslt_linear.h
}

class CudaBackend final : public Backend {
 public:
  // Sets up stream, handles and workspaces on `device`; throws RuntimeError on failure.
  CudaBackend(int device, Precision precision);
  ~CudaBackend() override;

  // The fp64 overloads keep Backend's defaults (they throw): fp64 runs on the CPU backend.
  using Backend::adam_update;
  using Backend::axpby;
  using Backend::fill;
  using Backend::gemm;
  using Backend::momentum_accumulate;
  using Backend::msign_newton_schulz;
  using Backend::msign_svd;
  using Backend::nmd_update;
  using Backend::sgd_update;
  using Backend::signgd_update;
  using Backend::sum_squares;

  std::string name() const override { return name_; }
  bool is_cpu() const override { return false; }
  int device() const { return device_; }
  Precision precision() const { return precision_; }

  void* allocate(std::size_t bytes) override;
  void deallocate(void* p) noexcept override;
  void upload(void* dst, const void* host_src, std::size_t bytes) override;
  void download(void* host_dst, const void* src, std::size_t bytes) override;
  void copy(void* dst, const void* src, std::size_t bytes) override;
  void synchronize() override;

  // Step graphs (see Backend): cudaStreamBeginCapture on the backend's stream, one executable
  // graph kept until the next capture, and a device step counter that the graph advances.
  bool supports_step_graph() const override { return true; }
  void begin_step_capture(uint32_t step) override;
  void end_step_capture() override;
  void abort_step_capture() noexcept override;
  void launch_step_graph(uint32_t step) override;

  void gemm(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb,
            float beta, float* C, int ldc) override;
  // One cublasGemmStridedBatchedEx (same compute type as gemm) for batch > 1.
  void gemm_strided_batched(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda,
                            int64_t stride_a, const float* B, int ldb, int64_t stride_b, float beta, float* C, int ldc,
                            int64_t stride_c, int batch) override;

  void fill(float* x, std::size_t n, float value) override;
  void axpby(float* y, const float* x, std::size_t n, float alpha, float beta) override;
  double sum_squares(const float* x, std::size_t n) override;

  void bias_activation(float* H, const float* bias, int rows, int cols, bool relu) override;
  void relu_backward(float* dH, const float* H, std::size_t n) override;
  void column_sums(const float* A, int rows, int cols, float* out) override;
  void sgd_update_runs(float* w, const float* g, std::size_t param_stride, float* m, std::size_t state_stride,
                       std::size_t n, const RunTable& runs, bool nesterov) override;
  void nmd_update_runs(float* w, const float* g, std::size_t param_stride, float* m, std::size_t state_stride,
                       std::size_t n, const RunTable& runs) override;
  void adam_update_runs(float* w, const float* g, std::size_t param_stride, float* m, std::size_t m_stride, float* v,
                        std::size_t v_stride, std::size_t n, const RunTable& runs, bool decoupled, int64_t t) override;
  void signgd_update_runs(float* w, const float* g, std::size_t param_stride, float* m, std::size_t state_stride,
                          std::size_t n, const RunTable& runs) override;
  void momentum_accumulate_runs(float* m, std::size_t state_stride, const float* g, std::size_t param_stride,
                                float* out, std::size_t scratch_stride, std::size_t n, const RunTable& runs,
                                bool nesterov) override;
  void muon_step_runs(float* w, std::size_t param_stride, const float* d, std::size_t scratch_stride, std::size_t n,
                      const RunTable& runs) override;
  void msign_newton_schulz_runs(const float* G, float* out, std::size_t stride, int rows, int cols,
                                std::span<const NsCoefficients> iterations, double norm_scale, double norm_eps,
                                int runs) override;
  void bias_activation_runs(float* H, std::size_t stride_h, const float* bias, std::size_t stride_bias, int rows,
                            int cols, bool relu, int runs) override;
  void relu_backward_runs(float* dH, std::size_t stride_dh, const float* H, std::size_t stride_h, std::size_t n,
                          int runs) override;
  void column_sums_runs(const float* A, std::size_t stride_a, int rows, int cols, float* out, std::size_t stride_out,
                        int runs) override;
  void cross_entropy_runs(const float* logits, std::size_t stride_logits, const int32_t* labels, int rows,
                          int classes, float* loss, float* correct, std::size_t stride_rows, float* dlogits,
                          std::size_t stride_dlogits, float grad_scale, int runs) override;
  void cross_entropy(const float* logits, const int32_t* labels, int rows, int classes, float* loss, float* correct,
                     float* dlogits, float grad_scale) override;
  // The MLP's layers with cuBLASLt epilogues (bias + ReLU with the mask kept, bias gradient,
  // ReLU backward from the mask), or Backend's unfused defaults where cuBLASLt refuses a problem
  // or SKILLRUN_CUBLASLT=off (docs/CUDA.md, "Fused epilogues").
  std::size_t relu_mask_bytes(int rows, int cols) const override;
  void linear_forward_runs(const float* x, std::size_t stride_x, const float* W, const float* b,
                           std::size_t param_stride, float* out, std::size_t stride_out, int rows, int fan_in,
                           int fan_out, bool relu, void* relu_mask, std::size_t mask_stride, int runs) override;
  void linear_weight_grad_runs(const float* dZ, std::size_t stride_dz, const float* x, std::size_t stride_x, float* dW,
                               float* db, std::size_t param_stride, int rows, int fan_in, int fan_out,
                               int runs) override;
  void linear_input_grad_relu_runs(const float* dZ, std::size_t stride_dz, const float* W, std::size_t param_stride,
                                   const float* H, std::size_t stride_h, const void* relu_mask,
                                   std::size_t mask_stride, float* dX, std::size_t stride_dx, float* db_in, int rows,
                                   int fan_in, int fan_out, int runs) override;
  FusedLinearCounts fused_linear_counts() const override;
  std::string fused_linear_report() const override;
  void task_sums(const float* loss, const float* correct, const int32_t* tasks, int rows, int n_tasks,
                 double* sums) override;

  void sparse_parity(const ParityDraw& draw, const ParityTables& tables, int count, float* x, int32_t* labels,
                     int32_t* tasks) override;

  void sgd_update(float* w, const float* g, float* m, std::size_t n, float lr, float momentum, bool nesterov,
                  float weight_decay) override;
  void nmd_update(float* w, const float* g, float* m, std::size_t n, float lr, float beta,
                  float weight_decay) override;
  void adam_update(float* w, const float* g, float* m, float* v, std::size_t n, float lr, float beta1, float beta2,
                   float eps, float weight_decay, bool decoupled, int64_t t) override;
  void signgd_update(float* w, const float* g, float* m, std::size_t n, float lr, float momentum,
                     float weight_decay) override;
  void momentum_accumulate(float* m, const float* g, float* out, std::size_t n, float beta, bool nesterov) override;

  void msign_newton_schulz(const float* G, float* out, int rows, int cols, std::span<const NsCoefficients> iterations,
                           double norm_scale, double norm_eps) override;
  void msign_svd(const float* G, float* out, int rows, int cols) override;

 private:
  // Waits for the stream, then throws what a kernel flagged asynchronously (a bad label or
  // task id).
  void sync_and_check();
  // Device scratch of at least `bytes`, kept between calls (grow-only): Newton-Schulz buffers
  // and the task_sums workspace (each used within one call, in stream order).
  void* scratch(std::size_t bytes);
  void release_all() noexcept;

  int device_ = 0;
  Precision precision_ = Precision::Fp32;
  std::string name_;
  bool use_pool_ = true;  // cudaMallocAsync available (else plain cudaMalloc)
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cusolverDnHandle_t cusolver_ = nullptr;
  cublasComputeType_t compute_type_ = CUBLAS_COMPUTE_32F;
  void* cublas_workspace_ = nullptr;  // given to cuBLAS so that it never allocates (graph capture)
  double* reduce_partials_ = nullptr;   // (kMaxReduceBlocks)
  double* reduce_result_ = nullptr;     // (1): sum_squares, NMD's ||m||^2, NS's ||G||^2
  double* column_workspace_ = nullptr;  // (kColumnSumsWorkspace)
  double* host_result_ = nullptr;       // pinned (1): sum_squares read-back
  int* host_error_flag_ = nullptr;      // mapped pinned: kernels set it, the host reads it after a sync
  int* device_error_flag_ = nullptr;    // the device view of host_error_flag_
  void* scratch_ = nullptr;
  std::size_t scratch_bytes_ = 0;
  // Step graphs: the counter the captured data and Adam kernels read; the host's knowledge of
  // its value (-1: unknown, after a capture; eager steps leave the counter alone); the recorded
  // step. One graph per backend: a new capture replaces the previous one.
  uint32_t* step_counter_ = nullptr;
  int64_t counter_value_ = -1;
  bool capturing_ = false;
  uint32_t capture_step_ = 0;
  cudaGraphExec_t step_graph_ = nullptr;
  std::vector<void*> retired_scratch_;  // scratch buffers a live step graph still uses
  // The fused layer GEMMs (null when SKILLRUN_CUBLASLT=off) and how often they ran / fell back.
  std::unique_ptr<cuda::CublasLtLinear> lt_;
  FusedLinearCounts linear_counts_;
  void destroy_step_graph() noexcept;
  void require_not_capturing(const char* what) const;
  // Newton-Schulz: our own kernels (kernels/newton_schulz.cu) for every fp32 matrix whose small
  // side is <= 256 unless SKILLRUN_NS_KERNELS=off at construction; else the cuBLAS iteration.
  bool ns_kernels_ = true;
  void newton_schulz_kernels(const float* G, float* out, std::size_t stride, int rows, int cols,
                             std::span<const NsCoefficients> iterations, double norm_scale, double norm_eps, int runs);
  // What both batched Newton-Schulz paths start with: their scratch (norm partials, an X per run,
  // Gram and polynomial per run, then `extra_floats` for the caller), the norms and the scaled X0
  // in whichever X buffer makes the last of `iterations` land in `out`.
  struct NsStart {
    float *x = nullptr, *x_next = nullptr;  // X0, and the other X buffer
    std::size_t xs = 0, xns = 0;            // their strides per run
    float *gram = nullptr, *poly = nullptr, *extra = nullptr;
    std::size_t ss_padded = 0;              // the Gram and polynomial matrices' stride per run
  };
  NsStart start_newton_schulz(const float* G, float* out, std::size_t stride, int rows, int cols,
                              std::size_t iterations, double norm_scale, double norm_eps, int runs,
                              std::size_t extra_floats);
};

}  // namespace skillrun
