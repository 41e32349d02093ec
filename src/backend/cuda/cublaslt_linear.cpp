// cuBLASLt epilogues for the MLP's layer GEMMs. The conventions that need care:
//  - layouts. As in CudaBackend::gemm: a row-major (r x c) matrix with leading dimension ld is,
//    read column-major, its transpose (c x r) with the same ld, so row-major C = op(A) op(B) is
//    column-major C^T = op(B)^T op(A)^T. In cuBLASLt's terms (D = op(A) op(B), D m x n):
//      forward      out^T (fan_out x rows) = W (stored fan_in x fan_out, op T) x^T (fan_in x rows, op N)
//                   -> bias of length m = fan_out, broadcast over the rows: nn.Linear's bias;
//      weight grad  dW^T (fan_in x fan_out) = x^T (fan_in x rows, op N) dZ (stored fan_out x rows, op T)
//                   -> BGRADB sums op(B) = dZ (rows x fan_out) over k = rows: db, length n = fan_out;
//      input grad   dX^T (fan_in x rows) = W^T (stored fan_in x fan_out, op N) dZ^T (fan_out x rows, op N)
//                   -> DRELU multiplies by the mask of the forward whose D was this same
//                      (fan_in x rows) shape: that layer's output H; DRELU_BGRAD also sums the
//                      result over n = rows: the bias gradient of that layer, length m = fan_in.
//  - the ReLU mask (aux) is a column-major bit matrix of D's shape, ld a multiple of 128 bits
//    (>= m), batch stride a multiple of 128 bits; we keep every run's mask at a 256-byte multiple.
//  - alignment. The heuristic reads the bias and aux pointers' alignment from the pointers set in
//    the descriptor, and A, B, C, D's from the MIN_ALIGNMENT preferences (default 256 bytes!). So
//    the preferences get the true alignment of every batch's pointer (base and stride together),
//    the alignments are part of the cache key, and a batched bias or mask must be 16-byte aligned
//    in every run.
//  - determinism. One algorithm per problem, chosen once (the heuristic is deterministic, the
//    cache keeps its answer, and no plan is made inside a graph capture), our own workspace, one
//    stream. The reduction schemes are cuBLASLt's default (all: none of them uses atomics), and
//    the run-to-run bits rest on cuBLAS's reproducibility promise (same GPU model and toolkit,
//    one stream); the GPU conformance suite runs each fused op twice at production shapes.
#include "backend/cuda/cublaslt_linear.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fused_linear_limits.h"
#include "core/error.h"

namespace skillrun::cuda {
namespace {

// Like the cuBLAS handle's (NVIDIA's recommendation for Hopper); allocated once, so that
// cuBLASLt never allocates (a CUDA graph capture would not allow it).
constexpr std::size_t kWorkspaceBytes = std::size_t{32} << 20;
// A batched bias or mask must be at least this aligned in every run (TMA's global alignment).
constexpr uint32_t kMinVectorAlignment = 16;

// The largest power of two <= 256 that divides the address of every batch's pointer.
uint32_t alignment_of(const void* p, int64_t stride_bytes, int batch) {
  uint64_t bits = reinterpret_cast<uintptr_t>(p);
  if (batch > 1) bits |= static_cast<uint64_t>(stride_bytes);
  uint32_t a = 256;
  while (a > 1 && bits % a != 0) a /= 2;
  return a;
}

const char* epilogue_name(cublasLtEpilogue_t e) {
  switch (e) {
    case CUBLASLT_EPILOGUE_BIAS: return "BIAS";
    case CUBLASLT_EPILOGUE_RELU_BIAS: return "RELU_BIAS";
    case CUBLASLT_EPILOGUE_RELU_AUX_BIAS: return "RELU_AUX_BIAS";
    case CUBLASLT_EPILOGUE_BGRADB: return "BGRADB";
    case CUBLASLT_EPILOGUE_DRELU: return "DRELU";
    case CUBLASLT_EPILOGUE_DRELU_BGRAD: return "DRELU_BGRAD";
    default: return "other";
  }
}

// A cuBLASLt call while a plan is made: a failure is a refusal (its reason kept, with cuBLASLt's
// status; plan_for logs it as a warning with the problem), except running out of memory, which
// throws as everywhere else.
bool lt_ok(cublasStatus_t status, const char* expr, std::string& why) {
  if (status == CUBLAS_STATUS_SUCCESS) return true;
  if (status == CUBLAS_STATUS_ALLOC_FAILED) throw_cublas_error(status, expr, __FILE__, __LINE__);
  why = fmt::format("{} returned {}", expr, cublasGetStatusName(status));
  return false;
}
#define SKR_LT_TRY(expr, why) lt_ok((expr), #expr, why)

}  // namespace

bool cublaslt_enabled_by_environment() {
  const char* value = std::getenv("SKILLRUN_CUBLASLT");
  if (value == nullptr || *value == '\0') return true;
  std::string v(value);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (v == "off" || v == "0" || v == "false" || v == "no") return false;
  if (v == "on" || v == "1" || v == "true" || v == "yes") return true;
  throw UsageError(fmt::format("SKILLRUN_CUBLASLT={}: expected on or off", value));
}

// One fused product: D (m x n, column-major) = epilogue(op(A) op(B) [+ bias]) for `batch` strided
// products. Strides and leading dimensions in elements, except the mask's (bits).
struct CublasLtLinear::Problem {
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  cublasOperation_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
  int64_t m = 0, n = 0, k = 0;
  const float* A = nullptr;
  int64_t lda = 0, stride_a = 0;
  const float* B = nullptr;
  int64_t ldb = 0, stride_b = 0;
  float* D = nullptr;
  int64_t ldd = 0, stride_d = 0;
  const void* bias = nullptr;  // bias (input) or bias gradient (output)
  int64_t bias_stride = 0;
  const void* aux = nullptr;  // ReLU mask: output of the forward, input of DRELU
  int64_t aux_ld = 0, aux_stride = 0;
  int batch = 1;

  // The product D = op(A) op(B) (column-major, as cuBLASLt sees it) over `batch` runs, no epilogue yet.
  static Problem product(cublasOperation_t transa, cublasOperation_t transb, int64_t m, int64_t n, int64_t k,
                         const float* A, int64_t lda, std::size_t stride_a, const float* B, int64_t ldb,
                         std::size_t stride_b, float* D, int64_t ldd, std::size_t stride_d, int batch) {
    Problem p;
    p.transa = transa;
    p.transb = transb;
    p.m = m;
    p.n = n;
    p.k = k;
    p.A = A;
    p.lda = lda;
    p.stride_a = static_cast<int64_t>(stride_a);
    p.B = B;
    p.ldb = ldb;
    p.stride_b = static_cast<int64_t>(stride_b);
    p.D = D;
    p.ldd = ldd;
    p.stride_d = static_cast<int64_t>(stride_d);
    p.batch = batch;
    return p;
  }
  // The bias (or bias gradient) at `stride` elements per run.
  void with_bias(const void* b, std::size_t stride) {
    bias = b;
    bias_stride = static_cast<int64_t>(stride);
  }
  // The ReLU mask of an activation `cols` wide, at `stride` bytes per run.
  void with_mask(const void* mask, int cols, std::size_t stride) {
    aux = mask;
    aux_ld = relu_mask_ld_bits(cols);
    aux_stride = static_cast<int64_t>(stride) * 8;
  }

  Key key(cublasComputeType_t compute) const {
    const int64_t b = batch;
    return Key{static_cast<int64_t>(epilogue),
               static_cast<int64_t>(transa),
               static_cast<int64_t>(transb),
               m,
               n,
               k,
               lda,
               ldb,
               ldd,
               b,
               b > 1 ? stride_a : 0,
               b > 1 ? stride_b : 0,
               b > 1 ? stride_d : 0,
               b > 1 ? bias_stride : 0,
               aux != nullptr ? aux_ld : 0,
               aux != nullptr && b > 1 ? aux_stride : 0,
               alignment_of(A, stride_a * 4, batch),
               alignment_of(B, stride_b * 4, batch),
               alignment_of(D, stride_d * 4, batch),
               bias != nullptr ? alignment_of(bias, bias_stride * 4, batch) : 0,
               aux != nullptr ? alignment_of(aux, aux_stride / 8, batch) : 0,
               static_cast<int64_t>(compute),
               bias != nullptr,
               aux != nullptr};
  }

  // The problem's shape, as the refusal warning names it: epilogue, sizes, transposes, batch and
  // (batched) the operand strides in elements, 0 for an operand the runs share.
  std::string describe() const {
    std::string text = fmt::format("{} m={} n={} k={} op(A)={} op(B)={} batch {}", epilogue_name(epilogue), m, n, k,
                                   transa == CUBLAS_OP_T ? "T" : "N", transb == CUBLAS_OP_T ? "T" : "N", batch);
    if (batch > 1) text += fmt::format(" (strides A {} B {} D {})", stride_a, stride_b, stride_d);
    return text;
  }
};

struct CublasLtLinear::Plan {
  bool usable = false;
  std::string why;  // when not usable
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (d != nullptr) SKR_CUBLAS_CHECK_NOTHROW(cublasLtMatrixLayoutDestroy(d));
    if (b != nullptr) SKR_CUBLAS_CHECK_NOTHROW(cublasLtMatrixLayoutDestroy(b));
    if (a != nullptr) SKR_CUBLAS_CHECK_NOTHROW(cublasLtMatrixLayoutDestroy(a));
    if (desc != nullptr) SKR_CUBLAS_CHECK_NOTHROW(cublasLtMatmulDescDestroy(desc));
  }
};

namespace {
// Owns a preference descriptor for one heuristic query.
struct Preference {
  cublasLtMatmulPreference_t p = nullptr;
  ~Preference() {
    if (p != nullptr) SKR_CUBLAS_CHECK_NOTHROW(cublasLtMatmulPreferenceDestroy(p));
  }
};

// A column-major layout of `rows x cols` fp32 at `ld`, `batch` of them at `stride`.
bool make_layout(cublasLtMatrixLayout_t* layout, int64_t rows, int64_t cols, int64_t ld, int batch, int64_t stride,
                 std::string& why) {
  if (!SKR_LT_TRY(cublasLtMatrixLayoutCreate(layout, CUDA_R_32F, static_cast<uint64_t>(rows),
                                             static_cast<uint64_t>(cols), ld),
                  why))
    return false;
  if (batch <= 1) return true;
  const int32_t count = batch;
  return SKR_LT_TRY(cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                     sizeof count),
                    why) &&
         SKR_LT_TRY(cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                     sizeof stride),
                    why);
}

template <class T>
bool set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const T& value, std::string& why) {
  return SKR_LT_TRY(cublasLtMatmulDescSetAttribute(desc, attr, &value, sizeof value), why);
}
}  // namespace

CublasLtLinear::CublasLtLinear(cudaStream_t stream, cublasComputeType_t compute_type)
    : stream_(stream), compute_type_(compute_type) {
  SKR_CUBLAS_CHECK(cublasLtCreate(&handle_));
  const cudaError_t err = cudaMalloc(&workspace_, kWorkspaceBytes);  // 256-byte aligned, as cuBLASLt requires
  if (err != cudaSuccess) {
    workspace_ = nullptr;
    SKR_CUBLAS_CHECK_NOTHROW(cublasLtDestroy(handle_));
    handle_ = nullptr;
    throw_cuda_error(err, "cudaMalloc(cuBLASLt workspace)", __FILE__, __LINE__);
  }
}

CublasLtLinear::~CublasLtLinear() {
  plans_.clear();
  if (workspace_ != nullptr) SKR_CUDA_CHECK_NOTHROW(cudaFree(workspace_));  // waits for pending work
  if (handle_ != nullptr) SKR_CUBLAS_CHECK_NOTHROW(cublasLtDestroy(handle_));
}

CublasLtLinear::Plan* CublasLtLinear::plan_for(const Problem& p) {
  const Key key = p.key(compute_type_);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second->usable ? it->second.get() : nullptr;
  if (capturing_) {
    throw RuntimeError(fmt::format("step graph capture: cuBLASLt has no plan for {} (plans are made in eager steps)",
                                   p.describe()));
  }
  auto plan = std::make_unique<Plan>();
  Plan& P = *plan;
  std::string& why = P.why;
  const uint32_t epilogue = static_cast<uint32_t>(p.epilogue);
  const auto build = [&]() -> bool {
    if (!SKR_LT_TRY(cublasLtMatmulDescCreate(&P.desc, compute_type_, CUDA_R_32F), why)) return false;
    const int32_t ta = p.transa, tb = p.transb;
    if (!set_desc(P.desc, CUBLASLT_MATMUL_DESC_TRANSA, ta, why) ||
        !set_desc(P.desc, CUBLASLT_MATMUL_DESC_TRANSB, tb, why) ||
        !set_desc(P.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue, why))
      return false;
    // The heuristic takes the bias and aux alignment from these pointers (the first call's; the
    // key holds their alignment, so a later call with other pointers has the same).
    if (p.bias != nullptr) {
      if (!set_desc(P.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, p.bias, why)) return false;
      if (p.batch > 1 && !set_desc(P.desc, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, p.bias_stride, why)) return false;
    }
    if (p.aux != nullptr) {
      if (!set_desc(P.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, p.aux, why) ||
          !set_desc(P.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, p.aux_ld, why))
        return false;
      if (p.batch > 1 && !set_desc(P.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE, p.aux_stride, why))
        return false;
    }
    // Stored shapes: A is m x k (op N) or k x m (op T); B is k x n or n x k; D is m x n.
    const bool at = p.transa == CUBLAS_OP_T, bt = p.transb == CUBLAS_OP_T;
    if (!make_layout(&P.a, at ? p.k : p.m, at ? p.m : p.k, p.lda, p.batch, p.stride_a, why) ||
        !make_layout(&P.b, bt ? p.n : p.k, bt ? p.k : p.n, p.ldb, p.batch, p.stride_b, why) ||
        !make_layout(&P.d, p.m, p.n, p.ldd, p.batch, p.stride_d, why))
      return false;

    Preference pref;
    if (!SKR_LT_TRY(cublasLtMatmulPreferenceCreate(&pref.p), why)) return false;
    const uint64_t workspace = kWorkspaceBytes;
    const uint32_t align_a = alignment_of(p.A, p.stride_a * 4, p.batch);
    const uint32_t align_b = alignment_of(p.B, p.stride_b * 4, p.batch);
    const uint32_t align_d = alignment_of(p.D, p.stride_d * 4, p.batch);
    const auto set_pref = [&](cublasLtMatmulPreferenceAttributes_t attr, const auto& value) {
      return SKR_LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref.p, attr, &value, sizeof value), why);
    };
    if (!set_pref(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, workspace) ||
        !set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a) ||
        !set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b) ||
        !set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_d) ||
        !set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_d))
      return false;

    constexpr int kRequested = 4;
    cublasLtMatmulHeuristicResult_t results[kRequested] = {};
    int returned = 0;
    if (!SKR_LT_TRY(cublasLtMatmulAlgoGetHeuristic(handle_, P.desc, P.a, P.b, P.d, P.d, pref.p, kRequested, results,
                                                   &returned),
                    why))
      return false;
    // Best first; take the first that reports success and fits the workspace.
    for (int i = 0; i < returned; ++i) {
      if (results[i].state == CUBLAS_STATUS_SUCCESS && results[i].workspaceSize <= kWorkspaceBytes) {
        P.algo = results[i].algo;
        return true;
      }
    }
    why = returned == 0 ? "cublasLtMatmulAlgoGetHeuristic returned CUBLAS_STATUS_SUCCESS and no algorithm"
                        : fmt::format("the heuristic's {} algorithms are not usable (state {})", returned,
                                      cublasGetStatusName(results[0].state));
    return false;
  };
  ++problems_;
  P.usable = build();
  if (!P.usable) refuse(P, p, P.why);
  Plan* result = P.usable ? plan.get() : nullptr;
  plans_.emplace(key, std::move(plan));
  return result;
}

void CublasLtLinear::refuse(Plan& plan, const Problem& p, std::string why) {
  plan.usable = false;
  plan.why = std::move(why);
  ++refused_;
  // A warning: a refusal costs the fusion for every step of the run (a packed sweep could run
  // unfused throughout), so it must show in run.log. Once per problem: the plan remembers it.
  spdlog::warn("cuBLASLt refused {} ({}); the fallback computes it", p.describe(), plan.why);
}

bool CublasLtLinear::run(const Problem& p) {
  Plan* plan = plan_for(p);
  if (plan == nullptr) return false;
  // This call's bias and mask (the descriptor holds the pointers of the call that made it).
  if (p.bias != nullptr) SKR_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
                             plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias, sizeof p.bias));
  if (p.aux != nullptr) SKR_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
                            plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &p.aux, sizeof p.aux));
  const float alpha = 1.0f, beta = 0.0f;  // beta 0: C (= D) is not read
  const cublasStatus_t status = cublasLtMatmul(handle_, plan->desc, &alpha, p.A, plan->a, p.B, plan->b, &beta, p.D,
                                               plan->d, p.D, plan->d, &plan->algo, workspace_, kWorkspaceBytes,
                                               stream_);
  if (status == CUBLAS_STATUS_SUCCESS) return true;
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || status == CUBLAS_STATUS_INVALID_VALUE ||
      status == CUBLAS_STATUS_ARCH_MISMATCH) {
    // Refused at the call (checked before anything is enqueued): remember it, take the unfused path.
    refuse(*plan, p, fmt::format("cublasLtMatmul returned {}", cublasGetStatusName(status)));
    return false;
  }
  throw_cublas_error(status, "cublasLtMatmul", __FILE__, __LINE__);
}

void CublasLtLinear::forget_masks(const void* mask, std::size_t mask_stride, int runs) {
  if (mask == nullptr) return;
  const auto* base = static_cast<const unsigned char*>(mask);
  for (int r = 0; r < runs; ++r) masks_.erase(base + static_cast<std::size_t>(r) * mask_stride);
}

namespace {
// (The sizes: fused_sizes_ok, fused_linear_limits.h.)
// A batched bias (or bias gradient) must be 16-byte aligned in every run.
bool bias_ok(const void* bias, std::size_t param_stride, int runs) {
  return runs <= 1 ||
         alignment_of(bias, static_cast<int64_t>(param_stride) * 4, runs) >= kMinVectorAlignment;
}
// The caller's mask buffers: 256-byte aligned per run, room for `rows` columns of `cols` bits.
bool mask_ok(const void* mask, std::size_t mask_stride, int rows, int cols, int runs) {
  if (reinterpret_cast<uintptr_t>(mask) % 256 != 0) return false;
  if (runs > 1 && mask_stride % 256 != 0) return false;
  const std::size_t needed = static_cast<std::size_t>(relu_mask_ld_bits(cols) / 8) * static_cast<std::size_t>(rows);
  return mask_stride >= needed;
}
}  // namespace

bool CublasLtLinear::forward(const float* x, std::size_t stride_x, const float* W, const float* b,
                             std::size_t param_stride, float* out, std::size_t stride_out, int rows, int fan_in,
                             int fan_out, bool relu, void* mask, std::size_t mask_stride, int runs) {
  if (!relu) mask = nullptr;
  bool ok = fused_sizes_ok(rows, fan_in, fan_out, runs) && bias_ok(b, param_stride, runs) &&
            (mask == nullptr || mask_ok(mask, mask_stride, rows, fan_out, runs));
  if (ok) {
    Problem p = Problem::product(CUBLAS_OP_T, CUBLAS_OP_N, fan_out, rows, fan_in, W, fan_in, param_stride, x, fan_in,
                                 stride_x, out, fan_out, stride_out, runs);
    p.epilogue = !relu ? CUBLASLT_EPILOGUE_BIAS : mask != nullptr ? CUBLASLT_EPILOGUE_RELU_AUX_BIAS
                                                                   : CUBLASLT_EPILOGUE_RELU_BIAS;
    p.with_bias(b, param_stride);
    p.with_mask(mask, fan_out, mask_stride);
    ok = run(p);
  }
  if (mask != nullptr) {
    if (!ok) {
      forget_masks(mask, mask_stride, runs);
    } else {
      if (masks_.size() > (std::size_t{1} << 16)) masks_.clear();  // stale records: forgetting is always safe
      const auto* base = static_cast<const unsigned char*>(mask);
      for (int r = 0; r < runs; ++r) masks_[base + static_cast<std::size_t>(r) * mask_stride] = {rows, fan_out};
    }
  }
  return ok;
}

bool CublasLtLinear::weight_grad(const float* dZ, std::size_t stride_dz, const float* x, std::size_t stride_x,
                                 float* dW, float* db, std::size_t param_stride, int rows, int fan_in, int fan_out,
                                 int runs) {
  if (db == nullptr || !fused_sizes_ok(rows, fan_in, fan_out, runs) || !bias_ok(db, param_stride, runs)) return false;
  Problem p = Problem::product(CUBLAS_OP_N, CUBLAS_OP_T, fan_in, fan_out, rows, x, fan_in, stride_x, dZ, fan_out,
                               stride_dz, dW, fan_in, param_stride, runs);
  p.epilogue = CUBLASLT_EPILOGUE_BGRADB;
  p.with_bias(db, param_stride);
  return run(p);
}

CublasLtLinear::InputGrad CublasLtLinear::input_grad_relu(const float* dZ, std::size_t stride_dz, const float* W,
                                                           std::size_t param_stride, const void* mask,
                                                           std::size_t mask_stride, float* dX, std::size_t stride_dx,
                                                           float* db_in, int rows, int fan_in, int fan_out, int runs) {
  if (mask == nullptr || !fused_sizes_ok(rows, fan_in, fan_out, runs) ||
      !mask_ok(mask, mask_stride, rows, fan_in, runs))
    return InputGrad::kNotRun;
  // Only masks the fused forward wrote for this very activation shape.
  const auto* base = static_cast<const unsigned char*>(mask);
  for (int r = 0; r < runs; ++r) {
    const auto it = masks_.find(base + static_cast<std::size_t>(r) * mask_stride);
    if (it == masks_.end() || it->second != std::pair{rows, fan_in}) return InputGrad::kNotRun;
  }
  Problem p = Problem::product(CUBLAS_OP_N, CUBLAS_OP_N, fan_in, rows, fan_out, W, fan_in, param_stride, dZ, fan_out,
                               stride_dz, dX, fan_in, stride_dx, runs);
  p.with_mask(mask, fan_in, mask_stride);
  // With the bias gradient where it is asked for and cuBLASLt takes it, else the ReLU alone.
  if (db_in != nullptr && bias_ok(db_in, param_stride, runs)) {
    p.epilogue = CUBLASLT_EPILOGUE_DRELU_BGRAD;
    p.with_bias(db_in, param_stride);
    if (run(p)) return InputGrad::kWithBias;
  }
  p.epilogue = CUBLASLT_EPILOGUE_DRELU;
  p.with_bias(nullptr, 0);
  return run(p) ? InputGrad::kWithoutBias : InputGrad::kNotRun;
}

}  // namespace skillrun::cuda
