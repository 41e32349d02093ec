// MLP forward/backward as the backend's layer ops (GEMMs with bias/ReLU, fused where the backend
// can). Row-major activations A_l (rows x dims[l+1]); Z = A W^T + b, so dW = dZ^T A_prev,
// db = colsum(dZ), dA_prev = dZ W.
#include "model/mlp.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/round_up.h"
#include "core/philox.h"

namespace skillrun {

namespace {
}  // namespace

Mlp::Mlp(Backend& backend, int input_dim, int width, int depth, int classes, int max_rows, int runs)
    : backend_(backend), max_rows_(max_rows), runs_(runs) {
  if (depth < 1) throw RuntimeError("Mlp: depth must be >= 1");
  if (runs < 1) throw RuntimeError("Mlp: a pack holds at least one run");
  dims_.push_back(input_dim);
  for (int l = 0; l + 1 < depth; ++l) dims_.push_back(width);
  dims_.push_back(classes);
  int widest_hidden = 1;
  std::vector<Parameter> shapes;
  for (int l = 0; l < depth; ++l) {
    const int fan_in = dims_[l], fan_out = dims_[l + 1];
    for (int is_bias = 0; is_bias < 2; ++is_bias) {
      Parameter p;
      p.name = "layers." + std::to_string(l) + (is_bias ? ".bias" : ".weight");
      p.rows = is_bias ? 1 : fan_out;
      p.cols = is_bias ? fan_out : fan_in;
      p.layer = l;
      p.is_matrix = !is_bias;
      p.is_hidden = !is_bias && l + 1 < depth;
      p.fan_in = fan_in;
      shapes.push_back(std::move(p));
    }
    // A run alone keeps its activations unpadded (stride unused); runs of a pack start aligned.
    act_stride_.push_back(round_up(static_cast<std::size_t>(max_rows) * fan_out, kArenaAlignment));
    activations_.emplace_back(backend, (runs - 1) * act_stride_.back() + static_cast<std::size_t>(max_rows) * fan_out);
    if (l + 1 < depth) widest_hidden = std::max(widest_hidden, fan_out);
  }
  std::vector<std::size_t> sizes;
  for (const Parameter& p : shapes) sizes.push_back(p.size());
  const std::vector<std::size_t> offsets = arena_layout(sizes);
  run_stride_ = offsets.back();
  values_ = Buffer<float>(backend, run_stride_ * runs);
  grads_ = Buffer<float>(backend, run_stride_ * runs);
  backend.fill(values_.data(), values_.size(), 0.0f);  // the padding between tensors too
  backend.fill(grads_.data(), grads_.size(), 0.0f);
  for (int r = 0; r < runs; ++r) {
    std::vector<Parameter> run_params;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      const Parameter& shape = shapes[i];
      Parameter p;
      p.name = shape.name;
      p.rows = shape.rows;
      p.cols = shape.cols;
      p.layer = shape.layer;
      p.is_matrix = shape.is_matrix;
      p.is_hidden = shape.is_hidden;
      p.fan_in = shape.fan_in;
      p.value = Buffer<float>::view(values_, r * run_stride_ + offsets[i], sizes[i]);
      p.grad = Buffer<float>::view(grads_, r * run_stride_ + offsets[i], sizes[i]);
      run_params.push_back(std::move(p));
    }
    params_.push_back(std::move(run_params));
  }
  grad_stride_ = round_up(static_cast<std::size_t>(max_rows) * widest_hidden, kArenaAlignment);
  const std::size_t grad_size = (runs - 1) * grad_stride_ + static_cast<std::size_t>(max_rows) * widest_hidden;
  grad_a_ = Buffer<float>(backend, grad_size);
  grad_b_ = Buffer<float>(backend, grad_size);
  // The backend's ReLU masks of the hidden layers, one per run at a 256-byte multiple.
  for (int l = 0; l + 1 < depth; ++l) {
    const std::size_t bytes = backend.relu_mask_bytes(max_rows, dims_[l + 1]);
    const std::size_t stride = round_up(bytes, 256);
    mask_stride_.push_back(stride);
    masks_.emplace_back(bytes == 0 ? Buffer<unsigned char>() : Buffer<unsigned char>(backend, stride * runs));
  }
}

void* Mlp::relu_mask(int layer, int run) {
  Buffer<unsigned char>& mask = masks_[static_cast<std::size_t>(layer)];
  return mask.empty() ? nullptr : mask.data() + static_cast<std::size_t>(run) * mask_stride_[layer];
}

bool Mlp::parameters_finite(int run) {
  // The run's whole slice of the arena in one reduction: the padding between its tensors is
  // zero from the constructor on (initialisation, updates and checkpoints write tensors only).
  if (run < 0 || run >= runs_) throw RuntimeError("Mlp::parameters_finite: run outside the pack");
  return std::isfinite(backend_.sum_squares(values_.data() + static_cast<std::size_t>(run) * run_stride_, run_stride_));
}

void Mlp::initialize(int run, uint64_t seed) {
  std::vector<Parameter>& params = parameters(run);
  for (std::size_t pi = 0; pi < params.size(); ++pi) {
    Parameter& p = params[pi];
    const float bound = 1.0f / std::sqrt(static_cast<float>(p.fan_in));
    std::vector<float> host(p.size());
    for (std::size_t e = 0; e < host.size(); e += 4) {
      const Philox4x32 r = philox_draw(seed, RngStream::InitWeights, static_cast<uint32_t>(pi),
                                       static_cast<uint32_t>(e / 4), 0);
      for (std::size_t lane = 0; lane < 4 && e + lane < host.size(); ++lane)
        host[e + lane] = (2.0f * uniform01(r.v[lane]) - 1.0f) * bound;
    }
    p.value.upload(host);
  }
}

std::size_t Mlp::parameter_count() const {
  std::size_t n = 0;
  for (const Parameter& p : params_.front()) n += p.size();
  return n;
}

namespace {
void check_range(RunRange range, int runs) {
  if (range.first < 0 || range.count < 1 || range.first + range.count > runs)
    throw RuntimeError("Mlp: run range outside the pack");
}
}  // namespace

const float* Mlp::forward(const float* x, int rows, RunRange range) {
  if (rows > max_rows_) throw RuntimeError("Mlp::forward: more rows than the buffers hold");
  check_range(range, runs_);
  const int first = range.first, count = range.count;
  const float* input = x;
  std::size_t input_stride = 0;  // the runs of a range share x
  for (int l = 0; l < depth(); ++l) {
    const int fan_in = dims_[l], fan_out = dims_[l + 1];
    const bool hidden = l + 1 < depth();
    float* out = activation(l, first);
    backend_.linear_forward_runs(input, input_stride, weight(first, l).value.data(), bias(first, l).value.data(),
                                 run_stride_, out, act_stride_[l], rows, fan_in, fan_out, /*relu=*/hidden,
                                 hidden ? relu_mask(l, first) : nullptr, hidden ? mask_stride_[l] : 0, count);
    input = out;
    input_stride = act_stride_[l];
  }
  return activation(depth() - 1, first);
}

void Mlp::backward(const float* x, const float* dlogits, std::size_t dlogits_stride, int rows, RunRange range) {
  check_range(range, runs_);
  const int first = range.first, count = range.count;
  const float* grad_out = dlogits;  // dZ of the current layer (rows x fan_out), per run
  std::size_t grad_out_stride = dlogits_stride;
  Buffer<float>* spare = &grad_a_;
  for (int l = depth() - 1; l >= 0; --l) {
    const int fan_in = dims_[l], fan_out = dims_[l + 1];
    const float* input = l == 0 ? x : activation(l - 1, first);
    const std::size_t input_stride = l == 0 ? 0 : act_stride_[l - 1];
    // The output layer's bias gradient here; a hidden layer's came with grad_out (below).
    const bool top = l == depth() - 1;
    backend_.linear_weight_grad_runs(grad_out, grad_out_stride, input, input_stride, weight(first, l).grad.data(),
                                     top ? bias(first, l).grad.data() : nullptr, run_stride_, rows, fan_in, fan_out,
                                     count);
    if (l == 0) break;  // no gradient with respect to the data
    float* grad_in = spare->data() + first * grad_stride_;
    backend_.linear_input_grad_relu_runs(grad_out, grad_out_stride, weight(first, l).value.data(), run_stride_, input,
                                         input_stride, relu_mask(l - 1, first), mask_stride_[l - 1], grad_in,
                                         grad_stride_, bias(first, l - 1).grad.data(), rows, fan_in, fan_out, count);
    grad_out = grad_in;
    grad_out_stride = grad_stride_;
    spare = (spare == &grad_a_) ? &grad_b_ : &grad_a_;
  }
}

}  // namespace skillrun
