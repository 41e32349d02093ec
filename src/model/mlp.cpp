// MLP forward/backward as GEMMs plus fused bias/ReLU on the backend. Row-major activations
// A_l (rows x dims[l+1]); Z = A W^T + b, so dW = dZ^T A_prev, db = colsum(dZ), dA_prev = dZ W.
#include "model/mlp.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/philox.h"

namespace skillrun {

Mlp::Mlp(Backend& backend, int input_dim, int width, int depth, int classes, int max_rows)
    : backend_(backend), max_rows_(max_rows) {
  if (depth < 1) throw RuntimeError("Mlp: depth must be >= 1");
  dims_.push_back(input_dim);
  for (int l = 0; l + 1 < depth; ++l) dims_.push_back(width);
  dims_.push_back(classes);
  int widest_hidden = 1;
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
      params_.push_back(std::move(p));
    }
    activations_.emplace_back(backend, static_cast<std::size_t>(max_rows) * fan_out);
    if (l + 1 < depth) widest_hidden = std::max(widest_hidden, fan_out);
  }
  std::vector<std::size_t> sizes;
  for (const Parameter& p : params_) sizes.push_back(p.size());
  const std::vector<std::size_t> offsets = arena_layout(sizes);
  values_ = Buffer<float>(backend, offsets.back());
  grads_ = Buffer<float>(backend, offsets.back());
  backend.fill(values_.data(), values_.size(), 0.0f);  // the padding between tensors too
  backend.fill(grads_.data(), grads_.size(), 0.0f);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    params_[i].value = Buffer<float>::view(values_, offsets[i], sizes[i]);
    params_[i].grad = Buffer<float>::view(grads_, offsets[i], sizes[i]);
  }
  grad_a_ = Buffer<float>(backend, static_cast<std::size_t>(max_rows) * widest_hidden);
  grad_b_ = Buffer<float>(backend, static_cast<std::size_t>(max_rows) * widest_hidden);
}

void Mlp::initialize(uint64_t seed) {
  for (std::size_t pi = 0; pi < params_.size(); ++pi) {
    Parameter& p = params_[pi];
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
  for (const Parameter& p : params_) n += p.size();
  return n;
}

const float* Mlp::forward(const float* x, int rows) {
  if (rows > max_rows_) throw RuntimeError("Mlp::forward: more rows than the buffers hold");
  const float* input = x;
  for (int l = 0; l < depth(); ++l) {
    const int fan_in = dims_[l], fan_out = dims_[l + 1];
    float* out = activations_[l].data();
    backend_.gemm(Trans::No, Trans::Yes, rows, fan_out, fan_in, 1.0f, input, fan_in,
                  weight(l).value.data(), fan_in, 0.0f, out, fan_out);
    backend_.bias_activation(out, bias(l).value.data(), rows, fan_out, /*relu=*/l + 1 < depth());
    input = out;
  }
  return activations_.back().data();
}

void Mlp::backward(const float* x, const float* dlogits, int rows) {
  const float* grad_out = dlogits;  // dZ of the current layer (rows x fan_out)
  Buffer<float>* spare = &grad_a_;
  for (int l = depth() - 1; l >= 0; --l) {
    const int fan_in = dims_[l], fan_out = dims_[l + 1];
    const float* input = l == 0 ? x : activations_[l - 1].data();
    backend_.gemm(Trans::Yes, Trans::No, fan_out, fan_in, rows, 1.0f, grad_out, fan_out, input,
                  fan_in, 0.0f, weight(l).grad.data(), fan_in);
    backend_.column_sums(grad_out, rows, fan_out, bias(l).grad.data());
    if (l == 0) break;  // no gradient with respect to the data
    float* grad_in = spare->data();
    backend_.gemm(Trans::No, Trans::No, rows, fan_in, fan_out, 1.0f, grad_out, fan_out,
                  weight(l).value.data(), fan_in, 0.0f, grad_in, fan_in);
    backend_.relu_backward(grad_in, activations_[l - 1].data(), static_cast<std::size_t>(rows) * fan_in);
    grad_out = grad_in;
    spare = (spare == &grad_a_) ? &grad_b_ : &grad_a_;
  }
}

}  // namespace skillrun
