// A tests-only reference Backend: every op as plain loops in double, written from the maths in
// the comments of backend/backend.h and docs/ (ARCHITECTURE.md, CUDA.md), not from the CPU
// backend's code, with no BLAS, no LAPACK and no OpenMP. Operands are read in their type,
// everything is computed in double and rounded to the operand type only when stored. So on a
// machine without a GPU the conformance suite still compares the CPU backend with something
// independent of it (tests/conformance/backends_under_test.h).
//
// Memory is host memory (malloc/free). Per op:
//  - gemm_op, fill_op, axpby_op, sum_squares_op: F32 and F64; the sums in double (sum_squares
//    in long double).
//  - ReLU: z < 0 ? 0 : z, so a NaN stays NaN (the contract test_linear_layers.cpp states).
//  - the MLP pieces (*_runs), task_sums_runs: fp32 operands, double arithmetic; bad labels and
//    task ids throw std::out_of_range before anything is written.
//  - linear_*_runs: Backend's defaults, i.e. compositions of this backend's gemm_op,
//    bias_activation_runs, column_sums_runs and relu_backward_runs (nothing of the CPU's).
//  - sparse_parity: its own decoding of the layout documented in backend/sparse_parity_gen.h
//    (Philox block (1 + b/32)/4, lane (1 + b/32)%4, bit b%32; task = #thresholds <= word 0),
//    over core/philox.h's philox_draw (checked against the Random123 known answers): the data
//    must be the same bits, so the generator's counter layout is the one thing shared.
//  - update: every UpdateKind, per entry of the run table, from UpdateArgs' formulas.
//  - newton_schulz: the documented iteration X <- aX + b(XX^T)X + c(XX^T)^2 X in double (the
//    Gram matrix on the small side), after X0 = G / (norm_scale ||G||_F + norm_eps).
//  - svd_op: the polar factor U V^T by a one-sided (Hestenes) Jacobi SVD in double. Rank rule
//    of backend.h: F32 drops the singular directions with s_j <= s_max * max(rows, cols) *
//    FLT_EPSILON (so a zero matrix gives zero); F64 takes the data as exact and drops only
//    s_j == 0. NaN or Inf input throws RuntimeError.
//  - step graphs: not supported (Backend's defaults: supports_step_graph() is false).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "backend/backend.h"

namespace skillrun::testing {

class ReferenceBackend final : public Backend {
 public:
  std::string name() const override { return "reference (plain loops in double)"; }
  bool is_cpu() const override { return true; }

  void* allocate(std::size_t bytes) override;
  void deallocate(void* p) noexcept override;
  void upload(void* dst, const void* host_src, std::size_t bytes) override;
  void download(void* host_dst, const void* src, std::size_t bytes) override;
  void copy(void* dst, const void* src, std::size_t bytes) override;
  void synchronize() override {}

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

  void sparse_parity(const ParityDraw& draw, const ParityTables& tables, int count, float* x, int32_t* labels,
                     int32_t* tasks) override;

  void update(const UpdateArgs& a) override;
  void newton_schulz(const NsArgs& a) override;
  void svd_op(DType type, const void* G, void* out, std::size_t stride, int rows, int cols, int runs) override;
};

}  // namespace skillrun::testing
