// MLP forward/backward as GEMMs plus fused bias/ReLU on the backend. Row-major activations
// A_l (rows x dims[l+1]); Z = A W^T + b, so dW = dZ^T A_prev, db = colsum(dZ), dA_prev = dZ W.
#include "model/mlp.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/philox.h"

namespace skillrun {

namespace {
std::size_t aligned(std::size_t n) { return (n + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment; }
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
    act_stride_.push_back(aligned(static_cast<std::size_t>(max_rows) * fan_out));
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
  grad_stride_ = aligned(static_cast<std::size_t>(max_rows) * widest_hidden);
  const std::size_t grad_size = (runs - 1) * grad_stride_ + static_cast<std::size_t>(max_rows) * widest_hidden;
  grad_a_ = Buffer<float>(backend, grad_size);
  grad_b_ = Buffer<float>(backend, grad_size);
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
  int64_t input_stride = 0;  // the runs of a range share x
  for (int l = 0; l < depth(); ++l) {
    const int fan_in = dims_[l], fan_out = dims_[l + 1];
    float* out = activation(l, first);
    const auto stride = static_cast<int64_t>(act_stride_[l]);
    backend_.gemm_strided_batched(Trans::No, Trans::Yes, rows, fan_out, fan_in, 1.0f, input, fan_in, input_stride,
                                  weight(first, l).value.data(), fan_in, static_cast<int64_t>(run_stride_), 0.0f,
                                  out, fan_out, stride, count);
    backend_.bias_activation_runs(out, act_stride_[l], bias(first, l).value.data(), run_stride_, rows, fan_out,
                                  /*relu=*/l + 1 < depth(), count);
    input = out;
    input_stride = stride;
  }
  return activation(depth() - 1, first);
}

void Mlp::backward(const float* x, const float* dlogits, std::size_t dlogits_stride, int rows, RunRange range) {
  check_range(range, runs_);
  const int first = range.first, count = range.count;
  const auto model_stride = static_cast<int64_t>(run_stride_);
  const float* grad_out = dlogits;  // dZ of the current layer (rows x fan_out), per run
  auto grad_out_stride = static_cast<int64_t>(dlogits_stride);
  Buffer<float>* spare = &grad_a_;
  for (int l = depth() - 1; l >= 0; --l) {
    const int fan_in = dims_[l], fan_out = dims_[l + 1];
    const float* input = l == 0 ? x : activation(l - 1, first);
    const int64_t input_stride = l == 0 ? 0 : static_cast<int64_t>(act_stride_[l - 1]);
    backend_.gemm_strided_batched(Trans::Yes, Trans::No, fan_out, fan_in, rows, 1.0f, grad_out, fan_out,
                                  grad_out_stride, input, fan_in, input_stride, 0.0f, weight(first, l).grad.data(),
                                  fan_in, model_stride, count);
    backend_.column_sums_runs(grad_out, static_cast<std::size_t>(grad_out_stride), rows, fan_out,
                              bias(first, l).grad.data(), run_stride_, count);
    if (l == 0) break;  // no gradient with respect to the data
    float* grad_in = spare->data() + first * grad_stride_;
    const auto grad_in_stride = static_cast<int64_t>(grad_stride_);
    backend_.gemm_strided_batched(Trans::No, Trans::No, rows, fan_in, fan_out, 1.0f, grad_out, fan_out,
                                  grad_out_stride, weight(first, l).value.data(), fan_in, model_stride, 0.0f,
                                  grad_in, fan_in, grad_in_stride, count);
    backend_.relu_backward_runs(grad_in, grad_stride_, input, static_cast<std::size_t>(input_stride),
                                static_cast<std::size_t>(rows) * fan_in, count);
    grad_out = grad_in;
    grad_out_stride = grad_in_stride;
    spare = (spare == &grad_a_) ? &grad_b_ : &grad_a_;
  }
}

}  // namespace skillrun
