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

  // fp64 (DType::F64): every op throws (no_fp64); fp64 runs on the CPU backend.
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

  // One cublasGemmEx per product for batch 1 (and k == 0); one cublasGemmStridedBatchedEx (same
  // compute type) for batch > 1.
  void gemm_op(DType type, const GemmArgs& a) override;
  void fill_op(DType type, void* x, std::size_t n, double value) override;
  void axpby_op(DType type, void* y, const void* x, std::size_t n, double alpha, double beta) override;
  double sum_squares_op(DType type, const void* x, std::size_t n) override;

  // The run axis: one launch for every run (blockIdx.y or .z), each run computed as alone; one
  // run goes through the one-run kernel that ran before packs existed.
  void bias_activation_runs(float* H, std::size_t stride_h, const float* bias, std::size_t stride_bias, int rows,
                            int cols, bool relu, int runs) override;
  void relu_backward_runs(float* dH, std::size_t stride_dh, const float* H, std::size_t stride_h, std::size_t n,
                          int runs) override;
  void column_sums_runs(const float* A, std::size_t stride_a, int rows, int cols, float* out, std::size_t stride_out,
                        int runs) override;
  void cross_entropy_runs(const float* logits, std::size_t stride_logits, const int32_t* labels, int rows,
                          int classes, float* loss, float* correct, std::size_t stride_rows, float* dlogits,
                          std::size_t stride_dlogits, float grad_scale, int runs) override;
  void task_sums_runs(const float* loss, const float* correct, std::size_t stride_rows, const int32_t* tasks,
                      int rows, int n_tasks, double* sums, std::size_t stride_sums, int runs) override;
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

  void sparse_parity(const ParityDraw& draw, const ParityTables& tables, int count, float* x, int32_t* labels,
                     int32_t* tasks) override;

  // One launch for every entry of the run table (its device copy); one entry (a run alone, or
  // the only run of its group), no device copy, or more entries than a grid dimension holds:
  // the one-run kernel per entry, so a run alone takes exactly the one-run kernels.
  void update(const UpdateArgs& a) override;
  // Our kernels (kernels/newton_schulz.cu) for every fp32 matrix whose small side is <= 256
  // unless SKILLRUN_NS_KERNELS=off at construction; else the cuBLAS iteration (one run: gemm by
  // gemm; more: strided-batched).
  void newton_schulz(const NsArgs& a) override;
  void svd_op(DType type, const void* G, void* out, std::size_t stride, int rows, int cols, int runs) override;

 private:
  // The one-run ops (what a run alone launches; validated on the H200, 2026-11-28).
  void gemm_one(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb,
                float beta, float* C, int ldc);
  double sum_squares_one(const float* x, std::size_t n);
  void sgd_one(float* w, const float* g, float* m, std::size_t n, const RunUpdate& u, bool nesterov);
  void nmd_one(float* w, const float* g, float* m, std::size_t n, const RunUpdate& u);
  void adam_one(float* w, const float* g, float* m, float* v, std::size_t n, const RunUpdate& u, bool decoupled,
                int64_t t);
  void signgd_one(float* w, const float* g, float* m, std::size_t n, const RunUpdate& u);
  void newton_schulz_one(const float* G, float* out, int rows, int cols, std::span<const NsCoefficients> iterations,
                         double norm_scale, double norm_eps);
  void newton_schulz_batched(const float* G, float* out, std::size_t stride, int rows, int cols,
                             std::span<const NsCoefficients> iterations, double norm_scale, double norm_eps, int runs);
  void svd_one(const float* G, float* out, int rows, int cols);
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
  // Newton-Schulz: our own kernels (SKILLRUN_NS_KERNELS, see newton_schulz above).
  bool ns_kernels_ = true;
  void newton_schulz_kernels(const float* G, float* out, std::size_t stride, int rows, int cols,
                             std::span<const NsCoefficients> iterations, double norm_scale, double norm_eps, int runs);
  // What every Newton-Schulz path starts with: its scratch (norm partials, an X per run,
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
