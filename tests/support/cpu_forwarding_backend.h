// A Backend that hands every op to a CpuBackend (which is final), for tests that change one or
// two ops and keep the CPU's bits for the rest: override what the test is about, and call
// cpu() for the CPU's own version.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"

namespace skillrun::testing {

class CpuForwardingBackend : public Backend {
 public:
  std::string name() const override { return cpu_.name(); }
  bool is_cpu() const override { return true; }
  void* allocate(std::size_t bytes) override { return cpu_.allocate(bytes); }
  void deallocate(void* p) noexcept override { cpu_.deallocate(p); }
  void upload(void* dst, const void* src, std::size_t bytes) override { cpu_.upload(dst, src, bytes); }
  void download(void* dst, const void* src, std::size_t bytes) override { cpu_.download(dst, src, bytes); }
  void copy(void* dst, const void* src, std::size_t bytes) override { cpu_.copy(dst, src, bytes); }
  void synchronize() override {}
  void gemm_op(DType type, const GemmArgs& a) override { cpu_.gemm_op(type, a); }
  void fill_op(DType type, void* x, std::size_t n, double value) override { cpu_.fill_op(type, x, n, value); }
  void axpby_op(DType type, void* y, const void* x, std::size_t n, double alpha, double beta) override {
    cpu_.axpby_op(type, y, x, n, alpha, beta);
  }
  double sum_squares_op(DType type, const void* x, std::size_t n) override { return cpu_.sum_squares_op(type, x, n); }
  void bias_activation_runs(float* H, std::size_t stride_h, const float* bias, std::size_t stride_bias, int rows,
                            int cols, bool relu, int runs) override {
    cpu_.bias_activation_runs(H, stride_h, bias, stride_bias, rows, cols, relu, runs);
  }
  void relu_backward_runs(float* dH, std::size_t stride_dh, const float* H, std::size_t stride_h, std::size_t n,
                          int runs) override {
    cpu_.relu_backward_runs(dH, stride_dh, H, stride_h, n, runs);
  }
  void column_sums_runs(const float* A, std::size_t stride_a, int rows, int cols, float* out, std::size_t stride_out,
                        int runs) override {
    cpu_.column_sums_runs(A, stride_a, rows, cols, out, stride_out, runs);
  }
  void cross_entropy_runs(const float* logits, std::size_t stride_logits, const int32_t* labels, int rows,
                          int classes, float* loss, float* correct, std::size_t stride_rows, float* dlogits,
                          std::size_t stride_dlogits, float grad_scale, int runs) override {
    cpu_.cross_entropy_runs(logits, stride_logits, labels, rows, classes, loss, correct, stride_rows, dlogits,
                            stride_dlogits, grad_scale, runs);
  }
  void task_sums_runs(const float* loss, const float* correct, std::size_t stride_rows, const int32_t* tasks,
                      int rows, int n_tasks, double* sums, std::size_t stride_sums, int runs) override {
    cpu_.task_sums_runs(loss, correct, stride_rows, tasks, rows, n_tasks, sums, stride_sums, runs);
  }
  void sparse_parity(const ParityDraw& draw, const ParityTables& tables, int count, float* x, int32_t* labels,
                     int32_t* tasks) override {
    cpu_.sparse_parity(draw, tables, count, x, labels, tasks);
  }
  void update(const UpdateArgs& a) override { cpu_.update(a); }
  void svd_op(DType type, const void* G, void* out, std::size_t stride, int rows, int cols, int runs) override {
    cpu_.svd_op(type, G, out, stride, rows, cols, runs);
  }

 protected:
  CpuBackend& cpu() { return cpu_; }
  const CpuBackend& cpu() const { return cpu_; }

 private:
  CpuBackend cpu_;
};

}  // namespace skillrun::testing
