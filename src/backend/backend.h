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
#include <utility>
#include <vector>

#include "backend/run_update.h"
#include "backend/sparse_parity_gen.h"
#include "config/choices.h"  // MsignMethod

namespace skillrun {

enum class Trans { No, Yes };

// One iteration X <- a X + b (X X^T) X + c (X X^T)^2 X of an odd matrix polynomial.
struct NsCoefficients {
  double a, b, c;
};

// The entries of one batched update: on the host (what the default, one call per entry, reads)
// and the same entries in backend memory (device: what one launch for every entry reads; may be
// null, and then a backend makes one call per entry too).
struct RunTable {
  std::span<const RunUpdate> host;
  const RunUpdate* device = nullptr;
};

class Backend {
 public:
  virtual ~Backend() = default;
  Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

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

  // ---- dense linear algebra -----------------------------------------------------------------
  // C (m x n) = alpha * op(A) * op(B) + beta * C, op(A) is m x k, op(B) is k x n; row-major.
  // beta == 0 overwrites C without reading it (C may hold NaN garbage).
  virtual void gemm(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda,
                    const float* B, int ldb, float beta, float* C, int ldc) = 0;
  // `batch` independent products C_r = alpha op(A_r) op(B_r) + beta C_r for r < batch, where
  // A_r = A + r stride_a, B_r = B + r stride_b, C_r = C + r stride_c (elements): the run axis
  // of a pack of runs. A stride of 0 shares that operand between the products (runs of one seed
  // share their batch); C's stride must keep the outputs apart (>= (m - 1) ldc + n when batch
  // > 1), else std::invalid_argument. The default is one gemm() per product.
  virtual void gemm_strided_batched(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda,
                                    int64_t stride_a, const float* B, int ldb, int64_t stride_b, float beta, float* C,
                                    int ldc, int64_t stride_c, int batch);

  // ---- elementwise and reductions -----------------------------------------------------------
  virtual void fill(float* x, std::size_t n, float value) = 0;
  // y = alpha * x + beta * y  (beta == 0 does not read y)
  virtual void axpby(float* y, const float* x, std::size_t n, float alpha, float beta) = 0;
  // sum of squares, accumulated in double, returned to the host (synchronises)
  virtual double sum_squares(const float* x, std::size_t n) = 0;

  // ---- MLP pieces ---------------------------------------------------------------------------
  // H (rows x cols, ld = cols) += bias (broadcast over rows); then H = max(H, 0) if relu.
  virtual void bias_activation(float* H, const float* bias, int rows, int cols, bool relu) = 0;
  // dH *= (H > 0): back through ReLU, where H is the post-activation.
  virtual void relu_backward(float* dH, const float* H, std::size_t n) = 0;
  // out (cols) = sum over rows of A (rows x cols): bias gradients.
  virtual void column_sums(const float* A, int rows, int cols, float* out) = 0;
  // Softmax cross-entropy over `classes` logits per row (row-major rows x classes).
  // loss[i] = -log softmax(logits[i])[label[i]] in nats; correct[i] = 1 if argmax == label
  // (ties count as wrong). If dlogits != nullptr: dlogits = grad_scale * (softmax - onehot).
  virtual void cross_entropy(const float* logits, const int32_t* labels, int rows, int classes,
                             float* loss, float* correct, float* dlogits, float grad_scale) = 0;
  // Per-subtask sums of scored rows, ADDED into sums (2 * n_tasks doubles): for each row i with
  // k = tasks[i], sums[k] += loss[i] and sums[n_tasks + k] += correct[i], accumulated in double.
  // Adding lets one buffer collect a whole eval set chunk by chunk on the device, so that only
  // the 2 * n_tasks totals come back. Deterministic: a fixed grouping of rows for given
  // (rows, n_tasks), each group summed in row order, groups added in order (not the CPU's
  // grouping on CUDA: ~1e-16 relative). A task id outside [0, n_tasks) throws
  // std::out_of_range: at the call on the CPU (sums untouched), at the next synchronising call
  // on CUDA (that row skipped), as cross_entropy does for a bad label.
  virtual void task_sums(const float* loss, const float* correct, const int32_t* tasks, int rows,
                         int n_tasks, double* sums) = 0;

  // ---- the run axis of a pack -------------------------------------------------------------
  // The MLP pieces above for `runs` runs in one call: run r's operands at r times their strides
  // (elements; 0 shares an operand, as a pack's runs of one seed share their labels). Run r
  // gets exactly what the one-run call on its operands gives (bit for bit: backends compute a
  // run the same way whatever the pack around it). Default: one call per run; CUDA: one launch.
  virtual void bias_activation_runs(float* H, std::size_t stride_h, const float* bias, std::size_t stride_bias,
                                    int rows, int cols, bool relu, int runs);
  virtual void relu_backward_runs(float* dH, std::size_t stride_dh, const float* H, std::size_t stride_h,
                                  std::size_t n, int runs);
  virtual void column_sums_runs(const float* A, std::size_t stride_a, int rows, int cols, float* out,
                                std::size_t stride_out, int runs);
  // loss and correct at stride_rows, dlogits (or nullptr) at stride_dlogits; labels shared.
  virtual void cross_entropy_runs(const float* logits, std::size_t stride_logits, const int32_t* labels, int rows,
                                  int classes, float* loss, float* correct, std::size_t stride_rows, float* dlogits,
                                  std::size_t stride_dlogits, float grad_scale, int runs);

  // ---- the MLP's layers over the runs of a pack ---------------------------------------------
  // One linear layer (weights (fan_out, fan_in) row-major as nn.Linear, activations row-major
  // with ld = their width) for `runs` runs: W_r, b_r, dW_r, db_r at W, b, dW, db + r *
  // param_stride (a pack's parameter arenas), x_r at x + r * stride_x (0: the runs share x),
  // out/dZ/dX at their strides. The defaults are exactly the unfused sequence
  // (gemm_strided_batched, then bias_activation_runs / column_sums_runs / relu_backward_runs), so
  // the CPU's results are those of those calls, bit for bit. A backend may fuse them (CUDA:
  // cuBLASLt epilogues, docs/CUDA.md) and keep a ReLU mask between the forward and the backward.
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
  // warning). All 0 on a backend without a fused path: for tests and diagnostics.
  struct FusedLinearCounts {
    uint64_t fused = 0;
    uint64_t unfused = 0;
    uint64_t problems = 0;
    uint64_t refused = 0;
  };
  virtual FusedLinearCounts fused_linear_counts() const { return {}; }
  // The same as one line for `skillrun bench` and the end of run.log (CUDA: "cuBLASLt: 6 fused
  // problems, 0 refused; ..."); empty on a backend without a fused path, which has nothing to report.
  virtual std::string fused_linear_report() const { return {}; }

  // ---- data ---------------------------------------------------------------------------------
  // Fills `count` samples of multi-task sparse parity (see backend/sparse_parity_gen.h):
  // x (count x (n_tasks + n_bits)) as 0/1 floats, labels (count), task ids (count).
  // `tables` points at backend memory holding the subsets and Zipf thresholds.
  virtual void sparse_parity(const ParityDraw& draw, const ParityTables& tables, int count,
                             float* x, int32_t* labels, int32_t* tasks) = 0;

  // ---- optimizer updates (n elements, in place on w and the state buffers) ------------------
  // SGD (PyTorch semantics): g' = g + wd w; m = mu m + g'; d = nesterov ? g' + mu m : m
  // (d = g' and m unused when mu == 0); w -= lr d.
  virtual void sgd_update(float* w, const float* g, float* m, std::size_t n, float lr,
                          float momentum, bool nesterov, float weight_decay) = 0;
  // NMD: m = beta m + g; w = w (1 - lr wd) - lr m / ||m||_F (no step when ||m||_F == 0).
  virtual void nmd_update(float* w, const float* g, float* m, std::size_t n, float lr, float beta,
                          float weight_decay) = 0;
  // Adam / AdamW, bias-corrected, eps outside the sqrt (PyTorch): m = b1 m + (1-b1) g;
  // v = b2 v + (1-b2) g^2; w -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
  // decoupled: w *= 1 - lr wd first (AdamW); else g += wd w before the moments (Adam + L2).
  // t is the 1-based step count.
  virtual void adam_update(float* w, const float* g, float* m, float* v, std::size_t n, float lr,
                           float beta1, float beta2, float eps, float weight_decay, bool decoupled,
                           int64_t t) = 0;
  // SignGD: m = mu m + g (m = g when mu == 0, m may be nullptr); w = w (1 - lr wd) - lr sign(m).
  virtual void signgd_update(float* w, const float* g, float* m, std::size_t n, float lr,
                             float momentum, float weight_decay) = 0;
  // Muon momentum: m = beta m + g; out = nesterov ? g + beta m : m.
  virtual void momentum_accumulate(float* m, const float* g, float* out, std::size_t n, float beta,
                                   bool nesterov) = 0;

  // ---- optimizer updates over the runs of a pack --------------------------------------------
  // Entry i of `runs` updates the tensor of run runs.host[i].run: w and g at run * param_stride
  // (the pack's parameter arenas), its state (m, v) at slice * state_stride (the pack's state
  // arenas), scratch (out, d) at i * scratch_stride, with entry i's scalars; the flags and t are
  // shared. Each entry
  // gets exactly the one-run op above with its scalars (the default is that call per entry, so
  // on the CPU a packed run's bits are those of the run alone); CUDA: one launch for all.
  virtual void sgd_update_runs(float* w, const float* g, std::size_t param_stride, float* m, std::size_t state_stride,
                               std::size_t n, const RunTable& runs, bool nesterov);
  virtual void nmd_update_runs(float* w, const float* g, std::size_t param_stride, float* m, std::size_t state_stride,
                               std::size_t n, const RunTable& runs);
  // (m and v each at slice times its own stride: a pack's two state arenas differ in size.)
  virtual void adam_update_runs(float* w, const float* g, std::size_t param_stride, float* m, std::size_t m_stride,
                                float* v, std::size_t v_stride, std::size_t n, const RunTable& runs, bool decoupled,
                                int64_t t);
  virtual void signgd_update_runs(float* w, const float* g, std::size_t param_stride, float* m,
                                  std::size_t state_stride, std::size_t n, const RunTable& runs);
  // Muon's momentum (beta = momentum) into out.
  virtual void momentum_accumulate_runs(float* m, std::size_t state_stride, const float* g, std::size_t param_stride,
                                        float* out, std::size_t scratch_stride, std::size_t n, const RunTable& runs,
                                        bool nesterov);
  // Muon's step: w = step_beta w + step_alpha d (the axpby of a run alone).
  virtual void muon_step_runs(float* w, std::size_t param_stride, const float* d, std::size_t scratch_stride,
                              std::size_t n, const RunTable& runs);
  // msign_newton_schulz of each entry's G (at i * stride) into out (at i * stride), one shared
  // schedule and normalisation; each entry as the one-run call gives it.
  virtual void msign_newton_schulz_runs(const float* G, float* out, std::size_t stride, int rows, int cols,
                                        std::span<const NsCoefficients> iterations, double norm_scale,
                                        double norm_eps, int runs);

  // ---- msign ----------------------------------------------------------------------------------
  // out (rows x cols) = msign(G) approximated by Newton-Schulz with one coefficient triple per
  // iteration, after X0 = G / (norm_scale * ||G||_F + norm_eps); the Gram matrix is formed on
  // the small side. The default implementation (backend/newton_schulz.cpp) is built from gemm/axpby;
  // a backend may override it with fused kernels. G and out may not alias.
  virtual void msign_newton_schulz(const float* G, float* out, int rows, int cols,
                                   std::span<const NsCoefficients> iterations, double norm_scale,
                                   double norm_eps);
  // out = U V^T from the thin SVD of G (rows x cols): the exact polar factor. Singular values
  // below the numerical rank cutoff (sigma_max * max(rows, cols) * fp32 epsilon) map to 0, as
  // msign(0) = 0. The fp64 overload takes its data as exact: only exact zeros map to 0.
  virtual void msign_svd(const float* G, float* out, int rows, int cols) = 0;

  // ---- step graphs ----------------------------------------------------------------------------
  // A backend may record the ops of one training step once and replay them (CUDA graphs), which
  // removes the per-kernel launch cost. Between begin_step_capture(step) and end_step_capture()
  // ops are recorded, not run; nothing may synchronise or allocate. Two per-step values are read
  // from a device-side step counter instead of the recorded arguments: the sparse_parity draw's
  // `a` (which must equal the captured step) and adam_update's t (recorded as an offset to it).
  // launch_step_graph(step) runs the recorded step as step `step` and advances the counter.
  // abort_step_capture() ends a failed capture and discards it. A backend holds one step graph:
  // a new capture replaces the previous one (one trainer per backend). Backends without graphs return
  // false from supports_step_graph() and throw from the others.
  virtual bool supports_step_graph() const { return false; }
  virtual void begin_step_capture(uint32_t step);
  virtual void end_step_capture();
  virtual void abort_step_capture() noexcept {}
  virtual void launch_step_graph(uint32_t step);

  // ---- fp64 ---------------------------------------------------------------------------------
  // The same ops in double with the same semantics, for precision "fp64" (the in-context
  // linear-regression task, whose spectra span up to 1e12). The CPU backend implements them;
  // these defaults throw RuntimeError naming the op. The registry (make_backend) gives fp64
  // runs the CPU backend only, so a run never reaches them.
  virtual void gemm(Trans ta, Trans tb, int m, int n, int k, double alpha, const double* A, int lda,
                    const double* B, int ldb, double beta, double* C, int ldc);
  virtual void fill(double* x, std::size_t n, double value);
  virtual void axpby(double* y, const double* x, std::size_t n, double alpha, double beta);
  virtual double sum_squares(const double* x, std::size_t n);
  virtual void sgd_update(double* w, const double* g, double* m, std::size_t n, double lr,
                          double momentum, bool nesterov, double weight_decay);
  virtual void nmd_update(double* w, const double* g, double* m, std::size_t n, double lr,
                          double beta, double weight_decay);
  virtual void adam_update(double* w, const double* g, double* m, double* v, std::size_t n,
                           double lr, double beta1, double beta2, double eps, double weight_decay,
                           bool decoupled, int64_t t);
  virtual void signgd_update(double* w, const double* g, double* m, std::size_t n, double lr,
                             double momentum, double weight_decay);
  virtual void momentum_accumulate(double* m, const double* g, double* out, std::size_t n,
                                   double beta, bool nesterov);
  // The generic version (backend/newton_schulz.cpp) in double; it needs the fp64 gemm/axpby above.
  virtual void msign_newton_schulz(const double* G, double* out, int rows, int cols,
                                   std::span<const NsCoefficients> iterations, double norm_scale,
                                   double norm_eps);
  virtual void msign_svd(const double* G, double* out, int rows, int cols);

 protected:
  [[noreturn]] void no_fp64(const char* op) const;
  // Throws std::invalid_argument for a batch or strides gemm_strided_batched does not accept.
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
    offsets.push_back((end + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment);
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
