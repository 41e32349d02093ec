// What the trainer, evaluator, optimizers and checkpoints need of a model with a run axis (a
// pack): forward/backward over a RunRange, each run's parameters (views into one arena, run r's
// at r * run_stride()), its initialisation. Mlp (sparse_parity) and LinearMemory (assoc_memory).
#pragma once
#include <cstddef>
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

class Model {
 public:
  virtual ~Model() = default;
  // Fresh initialisation of run `run` from `seed`.
  virtual void initialize(int run, uint64_t seed) = 0;
  // logits (rows x classes) of every run of `range` on one x: run r's at the result + (r -
  // range.first) * logits_stride(); valid until the next call.
  virtual const float* forward(const float* x, int rows, RunRange range) = 0;
  // Gradients of sum_i dlogits_i . logits_i with respect to every parameter, for the last
  // forward() on the same x, rows and range; run r's dlogits at dlogits + (r - range.first) * dlogits_stride.
  virtual void backward(const float* x, const float* dlogits, std::size_t dlogits_stride, int rows,
                        RunRange range) = 0;
  virtual int runs() const = 0;
  virtual int classes() const = 0;
  virtual std::size_t run_stride() const = 0;     // elements between runs' parameters
  virtual std::size_t logits_stride() const = 0;  // elements between runs' logits
  // Whether every parameter of `run` is finite (synchronises).
  virtual bool parameters_finite(int run) = 0;
  virtual std::vector<Parameter>& parameters(int run = 0) = 0;
  virtual const std::vector<Parameter>& parameters(int run = 0) const = 0;
  virtual std::size_t parameter_count() const = 0;
  // Every run's parameter values in one allocation (run r's at r * run_stride()): for copies
  // of the whole model (train/spectra.h).
  virtual const Buffer<float>& value_arena() const = 0;
};

}  // namespace skillrun
