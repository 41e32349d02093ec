// The CPU backend: host memory, OpenBLAS sgemm for the matrix products, LAPACKE for the exact
// msign, and plain OpenMP loops for everything elementwise. It is the reference the CUDA
// backend is tested against, and the backend that runs when no GPU is present, so it is
// written for both clarity and speed (training batches of 10000 x 250 pass through it).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "backend/backend.h"

namespace skillrun {

class CpuBackend final : public Backend {
 public:
  // Makes OpenBLAS single-threaded for the whole process: gemm() parallelises with OpenMP.
  CpuBackend();

  std::string name() const override;
  bool is_cpu() const override { return true; }

  void* allocate(std::size_t bytes) override;
  void deallocate(void* p) noexcept override;
  void upload(void* dst, const void* host_src, std::size_t bytes) override;
  void download(void* host_dst, const void* src, std::size_t bytes) override;
  void copy(void* dst, const void* src, std::size_t bytes) override;
  void synchronize() override {}  // every CPU op has finished when it returns

  void gemm(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda,
            const float* B, int ldb, float beta, float* C, int ldc) override;

  void fill(float* x, std::size_t n, float value) override;
  void axpby(float* y, const float* x, std::size_t n, float alpha, float beta) override;
  double sum_squares(const float* x, std::size_t n) override;

  void bias_activation(float* H, const float* bias, int rows, int cols, bool relu) override;
  void relu_backward(float* dH, const float* H, std::size_t n) override;
  void column_sums(const float* A, int rows, int cols, float* out) override;
  void cross_entropy(const float* logits, const int32_t* labels, int rows, int classes,
                     float* loss, float* correct, float* dlogits, float grad_scale) override;
  void task_sums(const float* loss, const float* correct, const int32_t* tasks, int rows, int n_tasks,
                 double* sums) override;

  void sparse_parity(const ParityDraw& draw, const ParityTables& tables, int count, float* x,
                     int32_t* labels, int32_t* tasks) override;

  void sgd_update(float* w, const float* g, float* m, std::size_t n, float lr, float momentum,
                  bool nesterov, float weight_decay) override;
  void nmd_update(float* w, const float* g, float* m, std::size_t n, float lr, float beta,
                  float weight_decay) override;
  void adam_update(float* w, const float* g, float* m, float* v, std::size_t n, float lr,
                   float beta1, float beta2, float eps, float weight_decay, bool decoupled,
                   int64_t t) override;
  void signgd_update(float* w, const float* g, float* m, std::size_t n, float lr, float momentum,
                     float weight_decay) override;
  void momentum_accumulate(float* m, const float* g, float* out, std::size_t n, float beta,
                           bool nesterov) override;

  // msign_newton_schulz: the generic gemm/axpby version of backend/newton_schulz.cpp is used as is.
  using Backend::msign_newton_schulz;
  void msign_svd(const float* G, float* out, int rows, int cols) override;

  // fp64: the same templates instantiated for double.
  void gemm(Trans ta, Trans tb, int m, int n, int k, double alpha, const double* A, int lda,
            const double* B, int ldb, double beta, double* C, int ldc) override;
  void fill(double* x, std::size_t n, double value) override;
  void axpby(double* y, const double* x, std::size_t n, double alpha, double beta) override;
  double sum_squares(const double* x, std::size_t n) override;
  void sgd_update(double* w, const double* g, double* m, std::size_t n, double lr, double momentum,
                  bool nesterov, double weight_decay) override;
  void nmd_update(double* w, const double* g, double* m, std::size_t n, double lr, double beta,
                  double weight_decay) override;
  void adam_update(double* w, const double* g, double* m, double* v, std::size_t n, double lr,
                   double beta1, double beta2, double eps, double weight_decay, bool decoupled,
                   int64_t t) override;
  void signgd_update(double* w, const double* g, double* m, std::size_t n, double lr,
                     double momentum, double weight_decay) override;
  void momentum_accumulate(double* m, const double* g, double* out, std::size_t n, double beta,
                           bool nesterov) override;
  void msign_svd(const double* G, double* out, int rows, int cols) override;
};

}  // namespace skillrun
