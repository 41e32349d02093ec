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
  using Backend::axpby;
  using Backend::fill;
  using Backend::gemm;
  using Backend::msign_svd;
  using Backend::sum_squares;
  void gemm(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb,
            float beta, float* C, int ldc) override {
    cpu_.gemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  void fill(float* x, std::size_t n, float value) override { cpu_.fill(x, n, value); }
  void axpby(float* y, const float* x, std::size_t n, float alpha, float beta) override {
    cpu_.axpby(y, x, n, alpha, beta);
  }
  double sum_squares(const float* x, std::size_t n) override { return cpu_.sum_squares(x, n); }
  void bias_activation(float* H, const float* bias, int rows, int cols, bool relu) override {
    cpu_.bias_activation(H, bias, rows, cols, relu);
  }
  void relu_backward(float* dH, const float* H, std::size_t n) override { cpu_.relu_backward(dH, H, n); }
  void column_sums(const float* A, int rows, int cols, float* out) override { cpu_.column_sums(A, rows, cols, out); }
  void cross_entropy(const float* logits, const int32_t* labels, int rows, int classes, float* loss, float* correct,
                     float* dlogits, float grad_scale) override {
    cpu_.cross_entropy(logits, labels, rows, classes, loss, correct, dlogits, grad_scale);
  }
  void task_sums(const float* loss, const float* correct, const int32_t* tasks, int rows, int n_tasks,
                 double* sums) override {
    cpu_.task_sums(loss, correct, tasks, rows, n_tasks, sums);
  }
  void sparse_parity(const ParityDraw& draw, const ParityTables& tables, int count, float* x, int32_t* labels,
                     int32_t* tasks) override {
    cpu_.sparse_parity(draw, tables, count, x, labels, tasks);
  }
  void sgd_update(float* w, const float* g, float* m, std::size_t n, float lr, float momentum, bool nesterov,
                  float weight_decay) override {
    cpu_.sgd_update(w, g, m, n, lr, momentum, nesterov, weight_decay);
  }
  void nmd_update(float* w, const float* g, float* m, std::size_t n, float lr, float beta,
                  float weight_decay) override {
    cpu_.nmd_update(w, g, m, n, lr, beta, weight_decay);
  }
  void adam_update(float* w, const float* g, float* m, float* v, std::size_t n, float lr, float beta1, float beta2,
                   float eps, float weight_decay, bool decoupled, int64_t t) override {
    cpu_.adam_update(w, g, m, v, n, lr, beta1, beta2, eps, weight_decay, decoupled, t);
  }
  void signgd_update(float* w, const float* g, float* m, std::size_t n, float lr, float momentum,
                     float weight_decay) override {
    cpu_.signgd_update(w, g, m, n, lr, momentum, weight_decay);
  }
  void momentum_accumulate(float* m, const float* g, float* out, std::size_t n, float beta, bool nesterov) override {
    cpu_.momentum_accumulate(m, g, out, n, beta, nesterov);
  }
  void msign_svd(const float* G, float* out, int rows, int cols) override { cpu_.msign_svd(G, out, rows, cols); }

 protected:
  CpuBackend& cpu() { return cpu_; }
  const CpuBackend& cpu() const { return cpu_; }

 private:
  CpuBackend cpu_;
};

}  // namespace skillrun::testing
