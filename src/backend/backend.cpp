// Backend's defaults for the optional capabilities: batched gemm and the run axis of the MLP
// pieces as loops of the one-run ops, the MLP's layer ops as their unfused calls, and step
// graphs and fp64 ops that throw, naming the op and the backend. The registry gives fp64 runs
// the CPU backend only, so reaching an fp64 default is a programming error (RuntimeError).
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "backend/backend.h"
#include "core/error.h"

namespace skillrun {

void Backend::no_fp64(const char* op) const {
  throw RuntimeError(std::string("fp64 ") + op + " is not available on " + name() +
                     " (precision fp64 runs on the CPU backend)");
}

void Backend::begin_step_capture(uint32_t) { throw RuntimeError(name() + " has no step graphs"); }
void Backend::end_step_capture() { throw RuntimeError(name() + " has no step graphs"); }
void Backend::launch_step_graph(uint32_t) { throw RuntimeError(name() + " has no step graphs"); }

void Backend::check_batch_strides(int m, int n, int ldc, int64_t stride_a, int64_t stride_b, int64_t stride_c,
                                  int batch) {
  const int64_t c_span = m > 0 && n > 0 ? int64_t{m - 1} * ldc + n : 0;  // elements one product writes
  if (batch < 0 || stride_a < 0 || stride_b < 0 || (batch > 1 && stride_c < c_span))
    throw std::invalid_argument(
        fmt::format("gemm_strided_batched: bad batch {} or strides a={} b={} c={} "
                    "(C's stride must be >= {} so the products do not overlap)",
                    batch, stride_a, stride_b, stride_c, c_span));
}

void Backend::gemm_strided_batched(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda,
                                   int64_t stride_a, const float* B, int ldb, int64_t stride_b, float beta, float* C,
                                   int ldc, int64_t stride_c, int batch) {
  check_batch_strides(m, n, ldc, stride_a, stride_b, stride_c, batch);
  for (int r = 0; r < batch; ++r)
    gemm(ta, tb, m, n, k, alpha, A + r * stride_a, lda, B + r * stride_b, ldb, beta, C + r * stride_c, ldc);
}

void Backend::bias_activation_runs(float* H, std::size_t stride_h, const float* bias, std::size_t stride_bias,
                                   int rows, int cols, bool relu, int runs) {
  for (int r = 0; r < runs; ++r) bias_activation(H + r * stride_h, bias + r * stride_bias, rows, cols, relu);
}

void Backend::relu_backward_runs(float* dH, std::size_t stride_dh, const float* H, std::size_t stride_h,
                                 std::size_t n, int runs) {
  for (int r = 0; r < runs; ++r) relu_backward(dH + r * stride_dh, H + r * stride_h, n);
}

void Backend::column_sums_runs(const float* A, std::size_t stride_a, int rows, int cols, float* out,
                               std::size_t stride_out, int runs) {
  for (int r = 0; r < runs; ++r) column_sums(A + r * stride_a, rows, cols, out + r * stride_out);
}

void Backend::cross_entropy_runs(const float* logits, std::size_t stride_logits, const int32_t* labels, int rows,
                                 int classes, float* loss, float* correct, std::size_t stride_rows, float* dlogits,
                                 std::size_t stride_dlogits, float grad_scale, int runs) {
  for (int r = 0; r < runs; ++r)
    cross_entropy(logits + r * stride_logits, labels, rows, classes, loss + r * stride_rows, correct + r * stride_rows,
                  dlogits != nullptr ? dlogits + r * stride_dlogits : nullptr, grad_scale);
}

std::size_t Backend::relu_mask_bytes(int, int) const { return 0; }

// The layer ops' defaults: the unfused calls in the order Mlp made them before these ops
// existed, so every backend that does not override them computes exactly what it did.
void Backend::linear_forward_runs(const float* x, std::size_t stride_x, const float* W, const float* b,
                                  std::size_t param_stride, float* out, std::size_t stride_out, int rows, int fan_in,
                                  int fan_out, bool relu, void*, std::size_t, int runs) {
  gemm_strided_batched(Trans::No, Trans::Yes, rows, fan_out, fan_in, 1.0f, x, fan_in, static_cast<int64_t>(stride_x),
                       W, fan_in, static_cast<int64_t>(param_stride), 0.0f, out, fan_out,
                       static_cast<int64_t>(stride_out), runs);
  bias_activation_runs(out, stride_out, b, param_stride, rows, fan_out, relu, runs);
}

void Backend::linear_weight_grad_runs(const float* dZ, std::size_t stride_dz, const float* x, std::size_t stride_x,
                                      float* dW, float* db, std::size_t param_stride, int rows, int fan_in,
                                      int fan_out, int runs) {
  gemm_strided_batched(Trans::Yes, Trans::No, fan_out, fan_in, rows, 1.0f, dZ, fan_out, static_cast<int64_t>(stride_dz),
                       x, fan_in, static_cast<int64_t>(stride_x), 0.0f, dW, fan_in, static_cast<int64_t>(param_stride),
                       runs);
  if (db != nullptr) column_sums_runs(dZ, stride_dz, rows, fan_out, db, param_stride, runs);
}

void Backend::linear_input_grad_relu_runs(const float* dZ, std::size_t stride_dz, const float* W,
                                          std::size_t param_stride, const float* H, std::size_t stride_h, const void*,
                                          std::size_t, float* dX, std::size_t stride_dx, float* db_in, int rows,
                                          int fan_in, int fan_out, int runs) {
  gemm_strided_batched(Trans::No, Trans::No, rows, fan_in, fan_out, 1.0f, dZ, fan_out, static_cast<int64_t>(stride_dz),
                       W, fan_in, static_cast<int64_t>(param_stride), 0.0f, dX, fan_in, static_cast<int64_t>(stride_dx),
                       runs);
  relu_backward_runs(dX, stride_dx, H, stride_h, static_cast<std::size_t>(rows) * fan_in, runs);
  if (db_in != nullptr) column_sums_runs(dX, stride_dx, rows, fan_in, db_in, param_stride, runs);
}

void Backend::sgd_update_runs(float* w, const float* g, std::size_t param_stride, float* m, std::size_t state_stride,
                              std::size_t n, const RunTable& runs, bool nesterov) {
  for (std::size_t i = 0; i < runs.host.size(); ++i) {
    const RunUpdate& u = runs.host[i];
    sgd_update(w + u.run * param_stride, g + u.run * param_stride, m != nullptr ? m + u.slice * state_stride : nullptr, n,
               u.lr, u.momentum, nesterov, u.weight_decay);
  }
}

void Backend::nmd_update_runs(float* w, const float* g, std::size_t param_stride, float* m, std::size_t state_stride,
                              std::size_t n, const RunTable& runs) {
  for (std::size_t i = 0; i < runs.host.size(); ++i) {
    const RunUpdate& u = runs.host[i];
    nmd_update(w + u.run * param_stride, g + u.run * param_stride, m + u.slice * state_stride, n, u.lr, u.momentum,
               u.weight_decay);
  }
}

void Backend::adam_update_runs(float* w, const float* g, std::size_t param_stride, float* m, std::size_t m_stride,
                               float* v, std::size_t v_stride, std::size_t n, const RunTable& runs, bool decoupled,
                               int64_t t) {
  for (std::size_t i = 0; i < runs.host.size(); ++i) {
    const RunUpdate& u = runs.host[i];
    adam_update(w + u.run * param_stride, g + u.run * param_stride, m + u.slice * m_stride, v + u.slice * v_stride, n,
                u.lr, u.momentum, u.beta2, u.eps, u.weight_decay, decoupled, t);
  }
}

void Backend::signgd_update_runs(float* w, const float* g, std::size_t param_stride, float* m,
                                 std::size_t state_stride, std::size_t n, const RunTable& runs) {
  for (std::size_t i = 0; i < runs.host.size(); ++i) {
    const RunUpdate& u = runs.host[i];
    signgd_update(w + u.run * param_stride, g + u.run * param_stride, m != nullptr ? m + u.slice * state_stride : nullptr,
                  n, u.lr, u.momentum, u.weight_decay);
  }
}

void Backend::momentum_accumulate_runs(float* m, std::size_t state_stride, const float* g, std::size_t param_stride,
                                       float* out, std::size_t scratch_stride, std::size_t n, const RunTable& runs,
                                       bool nesterov) {
  for (std::size_t i = 0; i < runs.host.size(); ++i) {
    const RunUpdate& u = runs.host[i];
    momentum_accumulate(m + u.slice * state_stride, g + u.run * param_stride, out + i * scratch_stride, n, u.momentum,
                        nesterov);
  }
}

void Backend::muon_step_runs(float* w, std::size_t param_stride, const float* d, std::size_t scratch_stride,
                             std::size_t n, const RunTable& runs) {
  for (std::size_t i = 0; i < runs.host.size(); ++i) {
    const RunUpdate& u = runs.host[i];
    axpby(w + u.run * param_stride, d + i * scratch_stride, n, u.step_alpha, u.step_beta);
  }
}

void Backend::msign_newton_schulz_runs(const float* G, float* out, std::size_t stride, int rows, int cols,
                                       std::span<const NsCoefficients> iterations, double norm_scale,
                                       double norm_eps, int runs) {
  for (int r = 0; r < runs; ++r)
    msign_newton_schulz(G + r * stride, out + r * stride, rows, cols, iterations, norm_scale, norm_eps);
}

void Backend::gemm(Trans, Trans, int, int, int, double, const double*, int, const double*, int, double, double*,
                   int) {
  no_fp64("gemm");
}
void Backend::fill(double*, std::size_t, double) { no_fp64("fill"); }
void Backend::axpby(double*, const double*, std::size_t, double, double) { no_fp64("axpby"); }
double Backend::sum_squares(const double*, std::size_t) { no_fp64("sum_squares"); }
void Backend::sgd_update(double*, const double*, double*, std::size_t, double, double, bool, double) {
  no_fp64("sgd_update");
}
void Backend::nmd_update(double*, const double*, double*, std::size_t, double, double, double) {
  no_fp64("nmd_update");
}
void Backend::adam_update(double*, const double*, double*, double*, std::size_t, double, double, double, double,
                          double, bool, int64_t) {
  no_fp64("adam_update");
}
void Backend::signgd_update(double*, const double*, double*, std::size_t, double, double, double) {
  no_fp64("signgd_update");
}
void Backend::momentum_accumulate(double*, const double*, double*, std::size_t, double, bool) {
  no_fp64("momentum_accumulate");
}
void Backend::msign_svd(const double*, double*, int, int) { no_fp64("msign_svd"); }

}  // namespace skillrun
