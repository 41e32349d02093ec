// The MLP of the paper (App. B): `depth` linear layers input -> width -> ... -> classes with
// ReLU between them, PyTorch-style init U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and
// biases, drawn from the InitWeights Philox stream so both backends start from the same bits.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace skillrun {

// One trainable tensor. Weights are (rows = fan_out, cols = fan_in) row-major, like PyTorch's
// nn.Linear; biases are (rows = 1, cols = fan_out).
struct Parameter {
  std::string name;  // "layers.0.weight", "layers.0.bias", ...
  int rows = 0;
  int cols = 0;
  int layer = 0;
  bool is_matrix = false;  // a weight matrix (Muon candidate), not a bias
  bool is_hidden = false;  // a weight matrix that is neither the last layer (the output head)
  int fan_in = 0;
  Buffer<float> value;  // a view into the model's parameter arena
  Buffer<float> grad;   // a view into its gradient arena
  std::size_t size() const { return static_cast<std::size_t>(rows) * cols; }
};

class Mlp {
 public:
  // max_rows bounds the rows of every forward/backward call (activation buffers are sized once).
  Mlp(Backend& backend, int input_dim, int width, int depth, int classes, int max_rows);

  // Fresh PyTorch-style initialisation from the InitWeights stream of `seed`.
  void initialize(uint64_t seed);

  // logits (rows x classes) for x (rows x input_dim); the pointer stays valid until the next call.
  const float* forward(const float* x, int rows);
  // Gradients of sum_i dlogits_i . logits_i with respect to every parameter, for the last
  // forward() on the same x and rows (its activations are reused).
  void backward(const float* x, const float* dlogits, int rows);

  std::vector<Parameter>& parameters() { return params_; }
  const std::vector<Parameter>& parameters() const { return params_; }
  int depth() const { return static_cast<int>(dims_.size()) - 1; }
  int classes() const { return dims_.back(); }
  std::size_t parameter_count() const;

 private:
  Parameter& weight(int layer) { return params_[2 * layer]; }
  Parameter& bias(int layer) { return params_[2 * layer + 1]; }

  Backend& backend_;
  std::vector<int> dims_;  // dims_[0] = input, dims_[depth] = classes
  int max_rows_;
  std::vector<Parameter> params_;           // weight, bias per layer
  // Every parameter's value (and gradient) in one allocation, each tensor a view at its offset
  // (arena_layout), so a pack of runs can later stride over whole models.
  Buffer<float> values_, grads_;
  std::vector<Buffer<float>> activations_;  // per layer: (max_rows, dims_[l + 1]), post-ReLU
  Buffer<float> grad_a_, grad_b_;           // (max_rows, max hidden dim): ping-pong dA
};

}  // namespace skillrun
