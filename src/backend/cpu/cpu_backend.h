// The CPU backend: host memory, OpenBLAS sgemm for the matrix products, LAPACKE for the exact
// msign, and plain OpenMP loops for everything elementwise; every op in float and double, a
// batch of runs as a loop over the one-run code. It is the reference the CUDA
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

  void gemm_op(DType type, const GemmArgs& a) override;
  void fill_op(DType type, void* x, std::size_t n, double value) override;
  void axpby_op(DType type, void* y, const void* x, std::size_t n, double alpha, double beta) override;
  double sum_squares_op(DType type, const void* x, std::size_t n) override;

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

  void sparse_parity(const ParityDraw& draw, const ParityTables& tables, int count, float* x,
                     int32_t* labels, int32_t* tasks) override;

  void update(const UpdateArgs& a) override;
  // newton_schulz: the generic gemm/axpby version of backend/newton_schulz.cpp is used as is.
  void svd_op(DType type, const void* G, void* out, std::size_t stride, int rows, int cols, int runs) override;
};

}  // namespace skillrun
