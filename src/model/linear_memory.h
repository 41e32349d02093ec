// The linear associative memory of arXiv 2602.05725 (model.type "linear"): logits_j =
// U_j^T W E_x for the query x, with fixed embeddings E (N x d: row i is fact i's input
// embedding) and U (d x M: column j is answer j's output embedding), and one trained d x d
// matrix W, from zero. Inputs are one-hot query rows (N floats, tasks/assoc_memory.h), so every
// step is four products for the runs of a range (gemm_op, batched):
//   forward  X_e = x E,  H = X_e W^T,  logits = H U
//   backward dH = dlogits U^T,  dW = dH^T X_e
// W is the one Parameter ("W", a hidden matrix: Muon updates it with either muon_params); E and
// U are outside the optimizer, per run (they come from the run's seed).
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "model/model.h"

namespace skillrun {

// orthogonal: orthonormal rows of E and columns of U (Gram-Schmidt of Gaussian draws; N, M <= d);
// identity: E's row i = e_i, U's column j = e_j (axis-aligned: SignGD's oracle case); gaussian:
// i.i.d. N(0, 1/d) entries (any N, M).
enum class EmbeddingKind { Orthogonal, Identity, Gaussian };
// The kind spelled as task.embeddings spells it; std::invalid_argument otherwise.
EmbeddingKind embedding_kind(std::string_view spelling);

// E (n_inputs x dim, row-major) then U (dim x n_outputs, row-major) of `seed`'s
// AssocEmbeddings stream: table 0 is E, 1 is U, computed in double on the host.
std::vector<float> fixed_embeddings(EmbeddingKind kind, int n_inputs, int dim, int n_outputs, uint64_t seed);

class LinearMemory : public Model {
 public:
  LinearMemory(Backend& backend, int n_inputs, int dim, int n_outputs, EmbeddingKind kind, int max_rows, int runs = 1);

  // W = 0 and the embeddings of `seed`.
  void initialize(int run, uint64_t seed) override;
  const float* forward(const float* x, int rows, RunRange range) override;
  void backward(const float* x, const float* dlogits, std::size_t dlogits_stride, int rows, RunRange range) override;
  int runs() const override { return runs_; }
  int classes() const override { return n_outputs_; }
  std::size_t run_stride() const override { return run_stride_; }
  std::size_t logits_stride() const override { return logits_stride_; }
  bool parameters_finite(int run) override;
  std::vector<Parameter>& parameters(int run = 0) override { return params_.at(static_cast<std::size_t>(run)); }
  const std::vector<Parameter>& parameters(int run = 0) const override {
    return params_.at(static_cast<std::size_t>(run));
  }
  std::size_t parameter_count() const override { return static_cast<std::size_t>(dim_) * dim_; }
  const Buffer<float>& value_arena() const override { return values_; }
  // Run `run`'s E then U (backend memory).
  const float* embeddings(int run) const { return embeddings_.data() + static_cast<std::size_t>(run) * emb_stride_; }

 private:
  void check(int rows, RunRange range) const;

  Backend& backend_;
  int n_inputs_, dim_, n_outputs_;
  EmbeddingKind kind_;
  int max_rows_, runs_;
  std::size_t run_stride_ = 0, emb_stride_ = 0, u_offset_ = 0, act_stride_ = 0, logits_stride_ = 0;
  Buffer<float> values_, grads_, embeddings_;
  Buffer<float> xe_, h_, dh_, logits_;  // per run: (max_rows, dim) x 3, (max_rows, n_outputs)
  std::vector<std::vector<Parameter>> params_;
};

}  // namespace skillrun
