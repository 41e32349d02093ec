// The MLP of the paper (App. B): `depth` linear layers input -> width -> ... -> classes with
// ReLU between them, PyTorch-style init U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and
// biases, drawn from the InitWeights Philox stream so both backends start from the same bits.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace skillrun {

// Runs [first, first + count) of a pack: consecutive slots that read one input (the runs of one
// seed share their batch), trained with one batched GEMM per product.
struct RunRange {
  int first = 0;
  int count = 1;
};

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

// `runs` models of one shape (a pack; 1 for a run alone), run r's tensors at r * run_stride() in
// one value and one gradient arena, its activations at r * (that layer's stride): each layer of
// a RunRange is one call of the backend's layer ops over the range's runs (linear_forward_runs,
// linear_weight_grad_runs, linear_input_grad_relu_runs: strided-batched products with bias, ReLU
// and bias gradient, fused where the backend can), so each run computes what it would alone (bit
// for bit on the CPU). A backend that keeps ReLU masks (relu_mask_bytes > 0) gets one per hidden
// layer and run, written by the forward and read by the backward.
class Mlp {
 public:
  // max_rows bounds the rows of every forward/backward call (activation buffers are sized once).
  Mlp(Backend& backend, int input_dim, int width, int depth, int classes, int max_rows, int runs = 1);

  // Fresh PyTorch-style initialisation of run `run` from the InitWeights stream of `seed`.
  void initialize(uint64_t seed) { initialize(0, seed); }
  void initialize(int run, uint64_t seed);

  // logits (rows x classes) for x (rows x input_dim); the pointer stays valid until the next call.
  const float* forward(const float* x, int rows) { return forward(x, rows, RunRange{}); }
  // The same for every run of `range` on one x: run r's logits at the result + (r - range.first)
  // * logits_stride().
  const float* forward(const float* x, int rows, RunRange range);
  // Gradients of sum_i dlogits_i . logits_i with respect to every parameter, for the last
  // forward() on the same x and rows (its activations are reused).
  void backward(const float* x, const float* dlogits, int rows) { backward(x, dlogits, 0, rows, RunRange{}); }
  // The same for a range: run r's dlogits at dlogits + (r - range.first) * dlogits_stride.
  void backward(const float* x, const float* dlogits, std::size_t dlogits_stride, int rows, RunRange range);

  int runs() const { return runs_; }
  // Whether every parameter of `run` is finite (one sum of squares over its slice: synchronises).
  bool parameters_finite(int run);
  std::size_t run_stride() const { return run_stride_; }          // elements between runs' parameters
  std::size_t logits_stride() const { return act_stride_.back(); }  // elements between runs' logits
  std::vector<Parameter>& parameters(int run = 0) { return params_.at(static_cast<std::size_t>(run)); }
  const std::vector<Parameter>& parameters(int run = 0) const { return params_.at(static_cast<std::size_t>(run)); }
  int depth() const { return static_cast<int>(dims_.size()) - 1; }
  int classes() const { return dims_.back(); }
  std::size_t parameter_count() const;
  // Every run's parameter values in one allocation (run r's at r * run_stride()): for copies
  // of the whole model (train/spectra.h).
  const Buffer<float>& value_arena() const { return values_; }

 private:
  Parameter& weight(int run, int layer) { return params_[static_cast<std::size_t>(run)][2 * layer]; }
  Parameter& bias(int run, int layer) { return params_[static_cast<std::size_t>(run)][2 * layer + 1]; }
  float* activation(int layer, int run) { return activations_[layer].data() + run * act_stride_[layer]; }
  // Run `run`'s ReLU mask of hidden layer `layer` (null when the backend keeps none).
  void* relu_mask(int layer, int run);

  Backend& backend_;
  std::vector<int> dims_;  // dims_[0] = input, dims_[depth] = classes
  int max_rows_;
  int runs_;
  std::vector<std::vector<Parameter>> params_;  // per run: weight, bias per layer
  // Every run's parameter values (and gradients) in one allocation, each tensor a view at its
  // offset (arena_layout), run r's copy at r * run_stride_.
  std::size_t run_stride_ = 0;
  Buffer<float> values_, grads_;
  std::vector<Buffer<float>> activations_;  // per layer: runs x (max_rows, dims_[l + 1]), post-ReLU
  std::vector<std::size_t> act_stride_;     // per layer: elements between runs' activations
  std::size_t grad_stride_ = 0;             // the same for grad_a_ / grad_b_
  Buffer<float> grad_a_, grad_b_;           // runs x (max_rows, max hidden dim): ping-pong dA
  // Per hidden layer: the backend's ReLU masks (runs x mask_stride_ bytes), kept from the forward
  // for the backward; empty when Backend::relu_mask_bytes is 0 (the CPU).
  std::vector<Buffer<unsigned char>> masks_;
  std::vector<std::size_t> mask_stride_;  // per hidden layer: bytes between runs' masks
};

}  // namespace skillrun
