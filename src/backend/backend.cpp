// Backend's defaults for the optional capabilities: the MLP's layer ops as their unfused calls,
// step graphs that throw naming the backend, the fused-path report; and the errors a backend
// raises for fp64 (the registry gives fp64 runs the CPU backend only, so reaching one is a
// programming error: RuntimeError) and for a bad batch of products.
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

std::string Backend::fused_linear_report() const {
  const FusedLinearCounts c = fused_linear_counts();
  if (c.library.empty()) return {};
  if (!c.off.empty()) return fmt::format("{}: off ({}), {} layer calls unfused", c.library, c.off, c.unfused);
  return fmt::format("{}: {} fused problems, {} refused; {} layer calls fused, {} unfused", c.library, c.problems,
                     c.refused, c.fused, c.unfused);
}

}  // namespace skillrun
