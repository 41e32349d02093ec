// The one numeric interface of skillrun. Model, optimizers, tasks and trainer hold a Backend&
// and call only these methods, so the same code and the same tests run on the CPU backend
// (OpenBLAS + LAPACKE) and the CUDA backend (cuBLAS + cuSOLVER + kernels/).
//
// Conventions, for every method:
//  - Pointers are backend memory obtained from allocate() (device memory on CUDA).
//  - Matrices are ROW-MAJOR. A matrix (rows x cols) has leading dimension ld >= cols; element
//    (i, j) is at p[i * ld + j]. Ops are asynchronous on CUDA unless they return a host value
//    or are download()/synchronize().
//  - Sizes are element counts, not bytes, except in allocate/upload/download.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "backend/ns_tiles.h"  // NsCoefficients
#include "backend/run_update.h"
#include "backend/sparse_parity_gen.h"
#include "core/round_up.h"
#include "config/choices.h"  // MsignMethod

namespace skillrun {

enum class Trans { No, Yes };

// The element type of an op's operands: fp32 for the MLP (every precision but fp64), fp64 for
// precision "fp64" (the in-context linear-regression task, whose spectra span up to 1e12).
enum class DType { F32, F64 };
// Scalars of the one-run spellings below take their type from the pointers (1.0 for a float op).
template <class T>
using Scalar = std::type_identity_t<T>;
template <class T>
inline constexpr DType dtype_of = std::is_same_v<T, double> ? DType::F64 : DType::F32;

// The entries of one batched update: on the host (what a backend that loops over the entries
// reads) and the same entries in backend memory (device: what one launch for every entry reads;
// may be null, and then a backend makes one one-run computation per entry too).
template <class T>
struct RunTableOf {
  std::span<const RunUpdateOf<T>> host;
  const RunUpdateOf<T>* device = nullptr;
};
using RunTable = RunTableOf<float>;

// A matrix product for `batch` runs (gemm_op): C_r = alpha op(A_r) op(B_r) + beta C_r, op(A) is
// m x k, op(B) is k x n, row-major with leading dimensions lda, ldb, ldc; A_r = A + r stride_a
// (elements; 0 shares A between the runs), likewise B and C. C's stride must keep the outputs
// apart (>= (m - 1) ldc + n when batch > 1), else std::invalid_argument. beta == 0 overwrites C
// without reading it (C may hold NaN garbage). Pointers are of the op's DType.
struct GemmArgs {
  Trans ta = Trans::No, tb = Trans::No;
  int m = 0, n = 0, k = 0;
  double alpha = 1, beta = 0;  // exact for fp32 factors
  const void* A = nullptr;
  int lda = 0;
  int64_t stride_a = 0;
  const void* B = nullptr;
  int ldb = 0;
  int64_t stride_b = 0;
  void* C = nullptr;
  int ldc = 0;
  int64_t stride_c = 0;
  int batch = 1;
};

// The optimizer updates (update()), each for the entries of a run table: entry i updates the
// tensor of run u = runs[i]: w and g at u.run * param_stride (a pack's parameter arenas), its
// state m and v at u.slice * m_stride / v_stride (a pack's state arenas; m null when the rule
// keeps no momentum), scratch at i * scratch_stride, with u's scalars; the flags and t are shared.
//  Sgd (PyTorch semantics): g' = g + wd w; m = mu m + g'; d = nesterov ? g' + mu m : m
//    (d = g' and m unused when mu == 0); w -= lr d.
//  Nmd: m = beta m + g; w = w (1 - lr wd) - lr m / ||m||_F (no step when ||m||_F == 0).
//  Adam / AdamW, bias-corrected, eps outside the sqrt (PyTorch): m = b1 m + (1-b1) g;
//    v = b2 v + (1-b2) g^2; w -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps); decoupled:
//    w *= 1 - lr wd first (AdamW); else g += wd w before the moments (Adam + L2). t is the
//    1-based step count; `momentum` is beta1.
//  SignGd: m = mu m + g (m = g when mu == 0, m may be null); w = w (1 - lr wd) - lr sign(m).
//  Momentum (Muon's): m = beta m + g (beta = momentum); scratch = nesterov ? g + beta m : m.
//  MuonStep: w = step_beta w + step_alpha scratch (factors formed by the caller).
// Every entry gets exactly what the entry alone (a table of one) gives: on the CPU a packed
// run's bits are those of the run alone.
enum class UpdateKind { Sgd, Nmd, Adam, SignGd, Momentum, MuonStep };
struct UpdateArgs {
  UpdateKind kind = UpdateKind::Sgd;
  DType dtype = DType::F32;
  void* w = nullptr;
  const void* g = nullptr;
  std::size_t param_stride = 0;
  void* m = nullptr;
  std::size_t m_stride = 0;
  void* v = nullptr;
  std::size_t v_stride = 0;
  void* scratch = nullptr;
  std::size_t scratch_stride = 0;
  std::size_t n = 0;  // elements of each entry's tensor
  const void* entries = nullptr;         // RunUpdateOf<T>[count], host
  const void* device_entries = nullptr;  // the same in backend memory, or null
  std::size_t count = 0;
  bool nesterov = false, decoupled = false;
  int64_t t = 0;

  UpdateArgs() = default;
  template <class T>
  UpdateArgs(UpdateKind k, T* w_, const T* g_, std::size_t param_stride_, std::size_t n_, RunTableOf<T> runs)
      : kind(k), dtype(dtype_of<T>), w(w_), g(g_), param_stride(param_stride_), n(n_), entries(runs.host.data()),
        device_entries(runs.device), count(runs.host.size()) {}
  // One run alone (w and g as they are, strides 0), `one` its table of one entry (referred to:
  // it must outlive the update call, as a temporary in the same expression does).
  template <class T>
  UpdateArgs(UpdateKind k, T* w_, const T* g_, std::size_t n_, const RunUpdateOf<T>& one)
      : UpdateArgs(k, w_, g_, 0, n_, RunTableOf<T>{{&one, 1}}) {}
  UpdateArgs& state(void* m_, std::size_t m_stride_ = 0, void* v_ = nullptr, std::size_t v_stride_ = 0) {
    m = m_;
    m_stride = m_stride_;
    v = v_;
    v_stride = v_stride_;
    return *this;
  }
  UpdateArgs& scratch_at(void* scratch_, std::size_t stride = 0) {
    scratch = scratch_;
    scratch_stride = stride;
    return *this;
  }
  UpdateArgs& flags(bool nesterov_, bool decoupled_ = false, int64_t t_ = 0) {
    nesterov = nesterov_;
    decoupled = decoupled_;
    t = t_;
    return *this;
  }
  template <class T>
  std::span<const RunUpdateOf<T>> table() const {
    return {static_cast<const RunUpdateOf<T>*>(entries), count};
  }
};

// msign by Newton-Schulz for `runs` matrices (newton_schulz()): out_r (rows x cols) =
// msign(G_r), G_r and out_r at r * stride, one coefficient triple per iteration after X0 = G /
// (norm_scale ||G||_F + norm_eps); the Gram matrix on the small side. G and out may not alias.
struct NsArgs {
  DType dtype = DType::F32;
  const void* G = nullptr;
  void* out = nullptr;
  std::size_t stride = 0;
  int rows = 0, cols = 0;
  std::span<const NsCoefficients> iterations;
  double norm_scale = 1, norm_eps = 0;
  int runs = 1;
};

class Backend {
 public:
  virtual ~Backend() = default;
  Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  // Every op is batched: it takes a run count (or a run table) and run strides (0: the runs
  // share an operand), and a single run is a count of 1. Each op is one virtual below; the
  // non-virtual members after them are spellings of one run (or of one element type) that
  // call it. fp64 (DType::F64) runs on the CPU backend only: elsewhere those ops throw
  // RuntimeError naming the op (the registry never gives an fp64 run another backend).

  // "cpu (OpenBLAS 0.3.21, 2 threads)" or "cuda:0 (NVIDIA H100 ...)": goes into summary.json.
  virtual std::string name() const = 0;
  virtual bool is_cpu() const = 0;

  // ---- memory -------------------------------------------------------------------------------
  // Throws RuntimeError when the memory cannot be had. Returned memory is not initialised.
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* p) noexcept = 0;
  virtual void upload(void* dst, const void* host_src, std::size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, std::size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void synchronize() = 0;

  // ---- dense linear algebra, elementwise, reductions ---------------------------------------
  virtual void gemm_op(DType type, const GemmArgs& a) = 0;
  // x[0, n) = value
  virtual void fill_op(DType type, void* x, std::size_t n, double value) = 0;
  // y = alpha * x + beta * y  (beta == 0 does not read y)
  virtual void axpby_op(DType type, void* y, const void* x, std::size_t n, double alpha, double beta) = 0;
  // sum of squares, accumulated in double, returned to the host (synchronises)
  virtual double sum_squares_op(DType type, const void* x, std::size_t n) = 0;

  // ---- MLP pieces (fp32), for `runs` runs: run r's operands at r times their strides ---------
  // H (rows x cols, ld = cols) += bias (broadcast over rows); then H = (H < 0 ? 0 : H) if relu,
  // which keeps NaN as NaN (a fused path may not: docs/CUDA.md, "NaN contract").
  virtual void bias_activation_runs(float* H, std::size_t stride_h, const float* bias, std::size_t stride_bias,
                                    int rows, int cols, bool relu, int runs) = 0;
  // dH *= (H > 0): back through ReLU, where H is the post-activation (n elements per run).
  virtual void relu_backward_runs(float* dH, std::size_t stride_dh, const float* H, std::size_t stride_h,
                                  std::size_t n, int runs) = 0;
  // out (cols) = sum over rows of A (rows x cols): bias gradients.
  virtual void column_sums_runs(const float* A, std::size_t stride_a, int rows, int cols, float* out,
                                std::size_t stride_out, int runs) = 0;
  // Softmax cross-entropy over `classes` logits per row (row-major rows x classes); labels
  // shared by the runs. loss[i] = -log softmax(logits[i])[label[i]] in nats; correct[i] = 1 if
  // argmax == label (ties count as wrong); loss and correct at stride_rows. If dlogits is not
  // null: dlogits = grad_scale * (softmax - onehot), at stride_dlogits.
  virtual void cross_entropy_runs(const float* logits, std::size_t stride_logits, const int32_t* labels, int rows,
                                  int classes, float* loss, float* correct, std::size_t stride_rows, float* dlogits,
                                  std::size_t stride_dlogits, float grad_scale, int runs) = 0;
  // Per-subtask sums of scored rows, ADDED into sums (2 * n_tasks doubles per run, at
  // stride_sums): for each row i with k = tasks[i] (shared), sums[k] += loss[i] and
  // sums[n_tasks + k] += correct[i], accumulated in double (loss and correct at stride_rows).
  // Adding lets one buffer collect a whole eval set chunk by chunk on the device, so that only
  // the totals come back. Deterministic: a fixed grouping of rows for given (rows, n_tasks),
  // each group summed in row order, groups added in order (not the CPU's grouping on CUDA:
  // ~1e-16 relative). A task id outside [0, n_tasks) throws std::out_of_range: at the call on
  // the CPU (sums untouched), at the next synchronising call on CUDA (that row skipped), as
  // cross_entropy does for a bad label.
  virtual void task_sums_runs(const float* loss, const float* correct, std::size_t stride_rows, const int32_t* tasks,
                              int rows, int n_tasks, double* sums, std::size_t stride_sums, int runs) = 0;

  // ---- the MLP's layers over the runs of a pack ---------------------------------------------
  // One linear layer (weights (fan_out, fan_in) row-major as nn.Linear, activations row-major
  // with ld = their width) for `runs` runs: W_r, b_r, dW_r, db_r at W, b, dW, db + r *
  // param_stride (a pack's parameter arenas), x_r at x + r * stride_x (0: the runs share x),
  // out/dZ/dX at their strides. The defaults are exactly the unfused sequence (gemm_op, then
  // bias_activation_runs / column_sums_runs / relu_backward_runs), so the CPU's results are
  // those of those calls, bit for bit. A backend may fuse them (CUDA: cuBLASLt epilogues,
  // docs/CUDA.md) and keep a ReLU mask between the forward and the backward.
  //
  // Bytes of ReLU mask a backend keeps per run for a post-ReLU (rows x cols) activation; 0 (the
  // default) means it keeps none and the mask pointers below may be null. A caller that gets
  // n > 0 passes a buffer of n bytes per run (run r's at r * mask_stride, mask_stride >= n and a
  // multiple of 256, from an allocation of this backend, which then starts 256-byte aligned) for
  // every ReLU layer's forward and the matching backward. Its contents are the backend's own.
  virtual std::size_t relu_mask_bytes(int rows, int cols) const;
  // out_r (rows x fan_out) = act(x_r W_r^T + b_r), act = ReLU if relu (then relu_mask, if not
  // null, receives the backend's mask of out_r) else the identity.
  virtual void linear_forward_runs(const float* x, std::size_t stride_x, const float* W, const float* b,
                                   std::size_t param_stride, float* out, std::size_t stride_out, int rows, int fan_in,
                                   int fan_out, bool relu, void* relu_mask, std::size_t mask_stride, int runs);
  // dW_r (fan_out x fan_in) = dZ_r^T x_r and, unless db is null, db_r (fan_out) = the column
  // sums of dZ_r (rows x fan_out); both overwritten. (The MLP passes db for its output layer;
  // a hidden layer's db comes with the gradient into its output, below.)
  virtual void linear_weight_grad_runs(const float* dZ, std::size_t stride_dz, const float* x, std::size_t stride_x,
                                       float* dW, float* db, std::size_t param_stride, int rows, int fan_in,
                                       int fan_out, int runs);
  // The gradient into a ReLU layer's output: dX_r (rows x fan_in) = (dZ_r W_r) * [H_r > 0],
  // where H_r (rows x fan_in, at stride_h) is the post-ReLU activation the last
  // linear_forward_runs wrote together with relu_mask (same rows; the mask may be null); and,
  // unless db_in is null, that ReLU layer's bias gradient db_in_r (fan_in, at db_in + r *
  // param_stride) = the column sums of dX_r.
  virtual void linear_input_grad_relu_runs(const float* dZ, std::size_t stride_dz, const float* W,
                                           std::size_t param_stride, const float* H, std::size_t stride_h,
                                           const void* relu_mask, std::size_t mask_stride, float* dX,
                                           std::size_t stride_dx, float* db_in, int rows, int fan_in, int fan_out,
                                           int runs);
  // How many linear_* calls with something to fuse (a bias, a ReLU or a bias gradient) took a
  // backend's fused path and how many its unfused fallback; how many distinct fused problems it
  // planned and how many of those its library refused (each refusal is also logged once, as a
  // warning). `library` names the fused path (empty: the backend has none, all counts 0);
  // `off` says it is switched off (and by what). For tests and diagnostics.
  struct FusedLinearCounts {
    uint64_t fused = 0;
    uint64_t unfused = 0;
    uint64_t problems = 0;
    uint64_t refused = 0;
    std::string library;  // "cuBLASLt"
    std::string off;      // why the fused path is off ("SKILLRUN_CUBLASLT"); empty: on
  };
  virtual FusedLinearCounts fused_linear_counts() const { return {}; }
  // The same as one line for `skillrun bench` and the end of run.log ("cuBLASLt: 6 fused
  // problems, 0 refused; ..."); empty on a backend without a fused path, which has nothing to report.
  std::string fused_linear_report() const;

  // ---- data ---------------------------------------------------------------------------------
  // Fills `count` samples of multi-task sparse parity (see backend/sparse_parity_gen.h):
  // x (count x (n_tasks + n_bits)) as 0/1 floats, labels (count), task ids (count).
  // `tables` points at backend memory holding the subsets and Zipf thresholds.
  virtual void sparse_parity(const ParityDraw& draw, const ParityTables& tables, int count,
                             float* x, int32_t* labels, int32_t* tasks) = 0;

  // ---- optimizer updates and msign ------------------------------------------------------------
  // UpdateArgs above: every rule of skillrun, for every entry of a run table, in place.
  virtual void update(const UpdateArgs& a) = 0;
  // NsArgs above. The default (backend/newton_schulz.cpp) is built from gemm_op/axpby_op/
  // sum_squares_op, one run after the other; a backend may override it with fused kernels.
  virtual void newton_schulz(const NsArgs& a);
  // out_r = U V^T from the thin SVD of G_r (rows x cols, G_r and out_r at r * stride): the exact
  // polar factor. Singular values at or below the numerical rank cutoff (sigma_max * max(rows,
  // cols) * fp32 epsilon) map to 0, as msign(0) = 0; in fp64 the data count as exact: only exact
  // zeros map to 0.
  virtual void svd_op(DType type, const void* G, void* out, std::size_t stride, int rows, int cols, int runs) = 0;

  // ---- step graphs ----------------------------------------------------------------------------
  // A backend may record the ops of one training step once and replay them (CUDA graphs), which
  // removes the per-kernel launch cost. Between begin_step_capture(step) and end_step_capture()
  // ops are recorded, not run; nothing may synchronise or allocate. Two per-step values are read
  // from a device-side step counter instead of the recorded arguments: the sparse_parity draw's
  // `a` (which must equal the captured step) and the Adam update's t (recorded as an offset to
  // it). launch_step_graph(step) runs the recorded step as step `step` and advances the counter.
  // abort_step_capture() ends a failed capture and discards it. A backend holds one step graph:
  // a new capture replaces the previous one (one trainer per backend). Backends without graphs
  // return false from supports_step_graph() and throw from the others.
  virtual bool supports_step_graph() const { return false; }
  virtual void begin_step_capture(uint32_t step);
  virtual void end_step_capture();
  virtual void abort_step_capture() noexcept {}
  virtual void launch_step_graph(uint32_t step);

  // ---- one run, one element type: spellings of the ops above ----------------------------------
  template <class T>
  void gemm(Trans ta, Trans tb, int m, int n, int k, Scalar<T> alpha, const T* A, int lda, const T* B, int ldb, Scalar<T> beta, T* C,
            int ldc) {
    gemm_op(dtype_of<T>, GemmArgs{ta, tb, m, n, k, alpha, beta, A, lda, 0, B, ldb, 0, C, ldc, 0, 1});
  }
  void gemm_strided_batched(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda,
                            int64_t stride_a, const float* B, int ldb, int64_t stride_b, float beta, float* C, int ldc,
                            int64_t stride_c, int batch) {
    gemm_op(DType::F32, GemmArgs{ta, tb, m, n, k, alpha, beta, A, lda, stride_a, B, ldb, stride_b, C, ldc, stride_c,
                                 batch});
  }
  template <class T>
  void fill(T* x, std::size_t n, Scalar<T> value) {
    fill_op(dtype_of<T>, x, n, value);
  }
  template <class T>
  void axpby(T* y, const T* x, std::size_t n, Scalar<T> alpha, Scalar<T> beta) {
    axpby_op(dtype_of<T>, y, x, n, alpha, beta);
  }
  template <class T>
  double sum_squares(const T* x, std::size_t n) {
    return sum_squares_op(dtype_of<T>, x, n);
  }
  void bias_activation(float* H, const float* bias, int rows, int cols, bool relu) {
    bias_activation_runs(H, 0, bias, 0, rows, cols, relu, 1);
  }
  void relu_backward(float* dH, const float* H, std::size_t n) { relu_backward_runs(dH, 0, H, 0, n, 1); }
  void column_sums(const float* A, int rows, int cols, float* out) { column_sums_runs(A, 0, rows, cols, out, 0, 1); }
  void cross_entropy(const float* logits, const int32_t* labels, int rows, int classes, float* loss, float* correct,
                     float* dlogits, float grad_scale) {
    cross_entropy_runs(logits, 0, labels, rows, classes, loss, correct, 0, dlogits, 0, grad_scale, 1);
  }
  void task_sums(const float* loss, const float* correct, const int32_t* tasks, int rows, int n_tasks, double* sums) {
    task_sums_runs(loss, correct, 0, tasks, rows, n_tasks, sums, 0, 1);
  }
  template <class T>
  void sgd_update(T* w, const T* g, Scalar<T>* m, std::size_t n, Scalar<T> lr, Scalar<T> momentum, bool nesterov,
                  Scalar<T> weight_decay) {
    momentum_rule(UpdateKind::Sgd, w, g, m, n, lr, momentum, weight_decay, nesterov);
  }
  template <class T>
  void nmd_update(T* w, const T* g, Scalar<T>* m, std::size_t n, Scalar<T> lr, Scalar<T> beta,
                  Scalar<T> weight_decay) {
    momentum_rule(UpdateKind::Nmd, w, g, m, n, lr, beta, weight_decay);
  }
  template <class T>
  void adam_update(T* w, const T* g, Scalar<T>* m, Scalar<T>* v, std::size_t n, Scalar<T> lr, Scalar<T> beta1,
                   Scalar<T> beta2, Scalar<T> eps, Scalar<T> weight_decay, bool decoupled, int64_t t) {
    update(UpdateArgs(UpdateKind::Adam, w, g, n,
                          RunUpdateOf<T>{.lr = lr, .momentum = beta1, .beta2 = beta2, .eps = eps,
                                         .weight_decay = weight_decay})
                   .state(m, 0, v)
                   .flags(false, decoupled, t));
  }
  template <class T>
  void signgd_update(T* w, const T* g, Scalar<T>* m, std::size_t n, Scalar<T> lr, Scalar<T> momentum,
                     Scalar<T> weight_decay) {
    momentum_rule(UpdateKind::SignGd, w, g, m, n, lr, momentum, weight_decay);
  }
  template <class T>
  void momentum_accumulate(T* m, const T* g, T* out, std::size_t n, Scalar<T> beta, bool nesterov) {
    update(UpdateArgs(UpdateKind::Momentum, static_cast<T*>(nullptr), g, n, RunUpdateOf<T>{.momentum = beta})
                   .state(m)
                   .scratch_at(out)
                   .flags(nesterov));
  }
  template <class T>
  void msign_newton_schulz(const T* G, T* out, int rows, int cols, std::span<const NsCoefficients> iterations,
                           double norm_scale, double norm_eps) {
    newton_schulz(NsArgs{dtype_of<T>, G, out, 0, rows, cols, iterations, norm_scale, norm_eps, 1});
  }
  void msign_newton_schulz_runs(const float* G, float* out, std::size_t stride, int rows, int cols,
                                std::span<const NsCoefficients> iterations, double norm_scale, double norm_eps,
                                int runs) {
    newton_schulz(NsArgs{DType::F32, G, out, stride, rows, cols, iterations, norm_scale, norm_eps, runs});
  }
  template <class T>
  void msign_svd(const T* G, T* out, int rows, int cols) {
    svd_op(dtype_of<T>, G, out, 0, rows, cols, 1);
  }

 protected:
  // The one-run spelling of a rule with (lr, momentum, weight decay) and at most a momentum buffer.
  template <class T>
  void momentum_rule(UpdateKind kind, T* w, const T* g, T* m, std::size_t n, T lr, T momentum, T weight_decay,
                     bool nesterov = false) {
    update(UpdateArgs(kind, w, g, n, RunUpdateOf<T>{.lr = lr, .momentum = momentum, .weight_decay = weight_decay})
               .state(m)
               .flags(nesterov));
  }
  // Throws RuntimeError: `op` in fp64 is not available on this backend.
  [[noreturn]] void no_fp64(const char* op) const;
  // Throws std::invalid_argument for a batch or strides gemm_op does not accept.
  static void check_batch_strides(int m, int n, int ldc, int64_t stride_a, int64_t stride_b, int64_t stride_c,
                                  int batch);
};

// Offsets of tensors of `sizes` elements laid out one after another in one allocation, each
// starting on a multiple of kArenaAlignment elements (256 bytes of floats, what GEMM libraries
// like); the last entry is the arena's size.
inline constexpr std::size_t kArenaAlignment = 64;
inline std::vector<std::size_t> arena_layout(std::span<const std::size_t> sizes) {
  std::vector<std::size_t> offsets{0};
  for (std::size_t n : sizes) {
    const std::size_t end = offsets.back() + n;
    offsets.push_back(round_up(end, kArenaAlignment));
  }
  return offsets;
}

// Owning, move-only typed buffer in a backend's memory (or a view into one: Buffer::view).
template <class T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend& backend, std::size_t count)
      : backend_(&backend), count_(count),
        data_(count ? static_cast<T*>(backend.allocate(count * sizeof(T))) : nullptr) {}
  ~Buffer() { reset(); }
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      reset();
      backend_ = std::exchange(o.backend_, nullptr);
      count_ = std::exchange(o.count_, 0);
      data_ = std::exchange(o.data_, nullptr);
      owns_ = std::exchange(o.owns_, true);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  // `count` elements of `arena` from `offset`, owning nothing: the tensors of a model (and each
  // optimizer state) are views into one allocation, valid while the arena lives.
  static Buffer view(Buffer& arena, std::size_t offset, std::size_t count) {
    if (offset > arena.count_ || count > arena.count_ - offset) throw std::length_error("Buffer::view: out of range");
    Buffer b;
    b.backend_ = arena.backend_;
    b.count_ = count;
    b.data_ = count ? arena.data_ + offset : nullptr;
    b.owns_ = false;
    return b;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }

  void upload(std::span<const T> host) {
    if (host.size() != count_) throw std::length_error("Buffer::upload: size mismatch");
    if (count_) backend_->upload(data_, host.data(), count_ * sizeof(T));
  }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    if (count_) backend_->download(host.data(), data_, count_ * sizeof(T));
    return host;
  }

 private:
  void reset() noexcept {
    if (data_ && owns_) backend_->deallocate(data_);
    data_ = nullptr;
    count_ = 0;
    owns_ = true;
  }
  Backend* backend_ = nullptr;
  std::size_t count_ = 0;
  T* data_ = nullptr;
  bool owns_ = true;  // false for a view
};

// DeviceChoice and Precision, with their config spellings, are config choices (config/choices.h).

// Registry (backend/registry.cpp): Auto picks CUDA when built with it and a usable device is
// present, else the CPU (one info log line says why). Cuda without CUDA support or without a
// usable device throws UsageError; so does a Tf32/Bf16 precision on the CPU backend, which
// computes in fp32 only (a run labelled tf32 must not silently be an fp32 run).
std::unique_ptr<Backend> make_backend(DeviceChoice choice, Precision precision = Precision::Fp32);
bool cuda_backend_available();  // built with CUDA and at least one usable device visible
std::size_t cuda_memory_bytes();  // memory of the device make_backend(Cuda) would use; 0 without one

}  // namespace skillrun
