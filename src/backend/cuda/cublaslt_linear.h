// The MLP's layer GEMMs with cuBLASLt epilogues (docs/CUDA.md, "Fused epilogues"), owned by
// CudaBackend. Three fused products, each over the runs of a pack as one strided batch:
//  - forward       out = relu(x W^T + b) with the ReLU bit-mask as an auxiliary output
//                  (CUBLASLT_EPILOGUE_RELU_AUX_BIAS; RELU_BIAS without a mask, BIAS without ReLU);
//  - weight grad   dW = dZ^T x with db = colsum(dZ) (CUBLASLT_EPILOGUE_BGRADB; the output layer);
//  - input grad    dX = (dZ W) * mask, the mask of the forward that wrote H, with the bias
//                  gradient of that layer, colsum(dX) (CUBLASLT_EPILOGUE_DRELU_BGRAD; DRELU alone
//                  where that is refused or no bias gradient is asked for).
// Each call returns false when it did not run (nothing enqueued): the caller then takes the
// unfused path (Backend's defaults over CudaBackend's gemm and kernels). That happens when a
// precondition fails (sizes: fused_linear_limits.h; alignment, batch count, a mask the last fused
// forward did not write) or when cuBLASLt refuses the problem; a refusal is remembered per problem
// and logged once, as a warning naming the problem and cuBLASLt's status, and counted
// (refused()). The heuristic runs once per problem (shape, transposes, epilogue, batch, strides,
// alignments, compute type) and its algorithm is kept, so a problem always runs the same kernel.
// The fused ReLU is cuBLASLt's (documented as max(x, 0)): it may map a NaN to 0, where the
// unfused kernel keeps it; the trainer's parameter check covers that (docs/CUDA.md, "NaN").
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

namespace skillrun::cuda {

// SKILLRUN_CUBLASLT: unset, empty, on|1|true|yes: true; off|0|false|no: false (the unfused path
// everywhere); anything else throws UsageError.
bool cublaslt_enabled_by_environment();

class CublasLtLinear {
 public:
  // The cuBLASLt handle and a workspace of its own on `stream`; `compute_type` is the backend's
  // (fp32: CUBLAS_COMPUTE_32F, true fp32). Throws RuntimeError on failure.
  CublasLtLinear(cudaStream_t stream, cublasComputeType_t compute_type);
  ~CublasLtLinear();
  CublasLtLinear(const CublasLtLinear&) = delete;
  CublasLtLinear& operator=(const CublasLtLinear&) = delete;

  // The layer ops of Backend (same arguments); true when the fused product ran.
  bool forward(const float* x, std::size_t stride_x, const float* W, const float* b, std::size_t param_stride,
               float* out, std::size_t stride_out, int rows, int fan_in, int fan_out, bool relu, void* mask,
               std::size_t mask_stride, int runs);
  bool weight_grad(const float* dZ, std::size_t stride_dz, const float* x, std::size_t stride_x, float* dW, float* db,
                   std::size_t param_stride, int rows, int fan_in, int fan_out, int runs);
  // kWithBias: dX and db_in fused (DRELU_BGRAD); kWithoutBias: dX fused (DRELU), db_in (if
  // asked for) left to the caller; kNotRun: nothing enqueued.
  enum class InputGrad { kNotRun, kWithoutBias, kWithBias };
  InputGrad input_grad_relu(const float* dZ, std::size_t stride_dz, const float* W, std::size_t param_stride,
                            const void* mask, std::size_t mask_stride, float* dX, std::size_t stride_dx, float* db_in,
                            int rows, int fan_in, int fan_out, int runs);
  // A forward with a mask that did not go through forward() (the unfused path): its masks no
  // longer describe their activations.
  void forget_masks(const void* mask, std::size_t mask_stride, int runs);
  // Inside a step graph capture no plan is made (the heuristic may load kernels, and a product
  // that falls back there would compute differently from the eager steps): a problem without a
  // plan throws RuntimeError, and the trainer then runs that step and the rest eagerly.
  void set_capturing(bool capturing) { capturing_ = capturing; }
  // Problems planned so far (one per distinct problem, fused or not) and how many of them
  // cuBLASLt refused (each logged once as a warning).
  uint64_t problems() const { return problems_; }
  uint64_t refused() const { return refused_; }

 private:
  struct Problem;  // one fused product, as cuBLASLt sees it (cublaslt_linear.cpp)
  struct Plan;     // its descriptors and chosen algorithm, or the refusal
  using Key = std::array<int64_t, 24>;

  // The cached plan of `p` (made on first use: descriptors, heuristic), or null when cuBLASLt
  // refuses it; then `why` says why (logged once, when the plan is made).
  Plan* plan_for(const Problem& p);
  bool run(const Problem& p);
  // Marks `plan` (of `p`) refused for `why`: counted and logged once.
  void refuse(Plan& plan, const Problem& p, std::string why);

  cudaStream_t stream_ = nullptr;
  cublasComputeType_t compute_type_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  std::map<Key, std::unique_ptr<Plan>> plans_;
  bool capturing_ = false;
  uint64_t problems_ = 0, refused_ = 0;
  // The masks the fused forward wrote, per run's mask pointer: (rows, cols) of the activation
  // it describes. The fused backward reads a mask only when its record matches.
  std::unordered_map<const void*, std::pair<int, int>> masks_;
};

}  // namespace skillrun::cuda
