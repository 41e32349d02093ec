// The MLP of the paper (App. B): `depth` linear layers input -> width -> ... -> classes with
// ReLU between them, PyTorch-style init U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and
// biases, drawn from the InitWeights Philox stream so both backends start from the same bits.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/model.h"  // Model, RunRange, Parameter

namespace skillrun {

// `runs` models of one shape (a pack; 1 for a run alone), run r's tensors at r * run_stride() in
// one value and one gradient arena, its activations at r * (that layer's stride): each layer of
// a RunRange is one call of the backend's layer ops over the range's runs (linear_forward_runs,
// linear_weight_grad_runs, linear_input_grad_relu_runs: strided-batched products with bias, ReLU
// and bias gradient, fused where the backend can), so each run computes what it would alone (bit
// for bit on the CPU). A backend that keeps ReLU masks (relu_mask_bytes > 0) gets one per hidden
// layer and run, written by the forward and read by the backward.
class Mlp : public Model {
 public:
  // max_rows bounds the rows of every forward/backward call (activation buffers are sized once).
  Mlp(Backend& backend, int input_dim, int width, int depth, int classes, int max_rows, int runs = 1);

  // Fresh PyTorch-style initialisation of run `run` from the InitWeights stream of `seed`.
  void initialize(uint64_t seed) { initialize(0, seed); }
  void initialize(int run, uint64_t seed) override;

  // logits (rows x classes) for x (rows x input_dim); the pointer stays valid until the next call.
  const float* forward(const float* x, int rows) { return forward(x, rows, RunRange{}); }
  // The same for every run of `range` on one x: run r's logits at the result + (r - range.first)
  // * logits_stride().
  const float* forward(const float* x, int rows, RunRange range) override;
  // Gradients of sum_i dlogits_i . logits_i with respect to every parameter, for the last
  // forward() on the same x and rows (its activations are reused).
  void backward(const float* x, const float* dlogits, int rows) { backward(x, dlogits, 0, rows, RunRange{}); }
  // The same for a range: run r's dlogits at dlogits + (r - range.first) * dlogits_stride.
  void backward(const float* x, const float* dlogits, std::size_t dlogits_stride, int rows, RunRange range) override;

  int runs() const override { return runs_; }
  // Whether every parameter of `run` is finite (one sum of squares over its slice: synchronises).
  bool parameters_finite(int run) override;
  std::size_t run_stride() const override { return run_stride_; }        // elements between runs' parameters
  std::size_t logits_stride() const override { return act_stride_.back(); }  // elements between runs' logits
  std::vector<Parameter>& parameters(int run = 0) override { return params_.at(static_cast<std::size_t>(run)); }
  const std::vector<Parameter>& parameters(int run = 0) const override { return params_.at(static_cast<std::size_t>(run)); }
  int depth() const { return static_cast<int>(dims_.size()) - 1; }
  int classes() const override { return dims_.back(); }
  std::size_t parameter_count() const override;
  const Buffer<float>& value_arena() const override { return values_; }

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
