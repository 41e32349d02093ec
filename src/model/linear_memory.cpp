// The linear associative memory's products (model/linear_memory.h) and its fixed embeddings.
#include "model/linear_memory.h"

#include <cmath>
#include <stdexcept>

#include "core/error.h"
#include "core/philox_gaussian.h"
#include "core/round_up.h"

namespace skillrun {

EmbeddingKind embedding_kind(std::string_view spelling) {
  if (spelling == "orthogonal") return EmbeddingKind::Orthogonal;
  if (spelling == "identity") return EmbeddingKind::Identity;
  if (spelling == "gaussian") return EmbeddingKind::Gaussian;
  throw std::invalid_argument("embedding_kind: unknown embeddings \"" + std::string(spelling) + "\"");
}

namespace {
// `count` vectors of R^dim (vector v's entry e at v * dim + e) of Gaussian table `table`;
// orthonormalised (modified Gram-Schmidt, twice) for Orthogonal, scaled by 1/sqrt(dim) for
// Gaussian, unit vectors e_v for Identity.
std::vector<double> embedding_vectors(EmbeddingKind kind, int count, int dim, uint64_t seed, uint32_t table) {
  const std::size_t n = static_cast<std::size_t>(count), d = static_cast<std::size_t>(dim);
  std::vector<double> v(n * d, 0.0);
  if (kind == EmbeddingKind::Identity) {
    if (count > dim) throw RuntimeError("identity embeddings need at most dim vectors");
    for (std::size_t i = 0; i < n; ++i) v[i * d + i] = 1.0;
    return v;
  }
  for (std::size_t e = 0; e < v.size(); ++e) v[e] = philox_gaussian(seed, RngStream::AssocEmbeddings, table, e);
  if (kind == EmbeddingKind::Gaussian) {
    const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
    for (double& x : v) x *= scale;
    return v;
  }
  if (count > dim) throw RuntimeError("orthogonal embeddings need at most dim vectors");
  for (std::size_t i = 0; i < n; ++i) {
    double* vi = v.data() + i * d;
    for (int pass = 0; pass < 2; ++pass) {
      for (std::size_t j = 0; j < i; ++j) {
        const double* vj = v.data() + j * d;
        double dot = 0;
        for (std::size_t e = 0; e < d; ++e) dot += vi[e] * vj[e];
        for (std::size_t e = 0; e < d; ++e) vi[e] -= dot * vj[e];
      }
    }
    double norm = 0;
    for (std::size_t e = 0; e < d; ++e) norm += vi[e] * vi[e];
    norm = std::sqrt(norm);
    for (std::size_t e = 0; e < d; ++e) vi[e] /= norm;
  }
  return v;
}
}  // namespace

std::vector<float> fixed_embeddings(EmbeddingKind kind, int n_inputs, int dim, int n_outputs, uint64_t seed) {
  const std::vector<double> e = embedding_vectors(kind, n_inputs, dim, seed, 0);   // E's rows
  const std::vector<double> u = embedding_vectors(kind, n_outputs, dim, seed, 1);  // U's columns
  std::vector<float> out(e.begin(), e.end());
  const std::size_t d = static_cast<std::size_t>(dim), m = static_cast<std::size_t>(n_outputs);
  out.resize(e.size() + d * m);
  for (std::size_t j = 0; j < m; ++j)
    for (std::size_t r = 0; r < d; ++r) out[e.size() + r * m + j] = static_cast<float>(u[j * d + r]);
  return out;
}

LinearMemory::LinearMemory(Backend& backend, int n_inputs, int dim, int n_outputs, EmbeddingKind kind, int max_rows,
                           int runs)
    : backend_(backend), n_inputs_(n_inputs), dim_(dim), n_outputs_(n_outputs), kind_(kind), max_rows_(max_rows),
      runs_(runs) {
  if (runs < 1) throw RuntimeError("LinearMemory: a pack holds at least one run");
  const std::size_t d = static_cast<std::size_t>(dim), rows = static_cast<std::size_t>(max_rows);
  run_stride_ = round_up(d * d, kArenaAlignment);
  u_offset_ = round_up(static_cast<std::size_t>(n_inputs) * d, kArenaAlignment);
  emb_stride_ = u_offset_ + round_up(d * static_cast<std::size_t>(n_outputs), kArenaAlignment);
  act_stride_ = round_up(rows * d, kArenaAlignment);
  logits_stride_ = round_up(rows * static_cast<std::size_t>(n_outputs), kArenaAlignment);
  const std::size_t r = static_cast<std::size_t>(runs);
  values_ = Buffer<float>(backend, run_stride_ * r);
  grads_ = Buffer<float>(backend, run_stride_ * r);
  backend.fill(values_.data(), values_.size(), 0.0f);
  backend.fill(grads_.data(), grads_.size(), 0.0f);
  embeddings_ = Buffer<float>(backend, emb_stride_ * r);
  backend.fill(embeddings_.data(), embeddings_.size(), 0.0f);
  xe_ = Buffer<float>(backend, act_stride_ * r);
  h_ = Buffer<float>(backend, act_stride_ * r);
  dh_ = Buffer<float>(backend, act_stride_ * r);
  logits_ = Buffer<float>(backend, logits_stride_ * r);
  for (int run = 0; run < runs; ++run) {
    Parameter p;
    p.name = "W";
    p.rows = dim;
    p.cols = dim;
    p.layer = 0;
    p.is_matrix = true;
    p.is_hidden = true;  // Muon's under muon_params hidden and all_weights alike
    p.fan_in = dim;
    p.value = Buffer<float>::view(values_, static_cast<std::size_t>(run) * run_stride_, d * d);
    p.grad = Buffer<float>::view(grads_, static_cast<std::size_t>(run) * run_stride_, d * d);
    params_.push_back({});
    params_.back().push_back(std::move(p));
  }
}

void LinearMemory::initialize(int run, uint64_t seed) {
  if (run < 0 || run >= runs_) throw RuntimeError("LinearMemory::initialize: run outside the pack");
  Parameter& w = params_[static_cast<std::size_t>(run)].front();
  backend_.fill(w.value.data(), w.size(), 0.0f);
  const std::vector<float> host = fixed_embeddings(kind_, n_inputs_, dim_, n_outputs_, seed);
  const std::size_t e_size = static_cast<std::size_t>(n_inputs_) * dim_;
  float* base = embeddings_.data() + static_cast<std::size_t>(run) * emb_stride_;
  backend_.upload(base, host.data(), e_size * sizeof(float));
  backend_.upload(base + u_offset_, host.data() + e_size, (host.size() - e_size) * sizeof(float));
}

bool LinearMemory::parameters_finite(int run) {
  if (run < 0 || run >= runs_) throw RuntimeError("LinearMemory::parameters_finite: run outside the pack");
  return std::isfinite(backend_.sum_squares(values_.data() + static_cast<std::size_t>(run) * run_stride_, run_stride_));
}

void LinearMemory::check(int rows, RunRange range) const {
  if (rows > max_rows_) throw RuntimeError("LinearMemory: more rows than the buffers hold");
  if (range.first < 0 || range.count < 1 || range.first + range.count > runs_)
    throw RuntimeError("LinearMemory: run range outside the pack");
}

const float* LinearMemory::forward(const float* x, int rows, RunRange range) {
  check(rows, range);
  const auto f = static_cast<std::size_t>(range.first);
  const int n = n_inputs_, d = dim_, m = n_outputs_;
  const float* E = embeddings_.data() + f * emb_stride_;
  const float* U = E + u_offset_;
  float* xe = xe_.data() + f * act_stride_;
  float* h = h_.data() + f * act_stride_;
  float* logits = logits_.data() + f * logits_stride_;
  const auto es = static_cast<int64_t>(emb_stride_), as = static_cast<int64_t>(act_stride_);
  backend_.gemm_op(DType::F32, GemmArgs{Trans::No, Trans::No, rows, d, n, 1, 0, x, n, 0, E, d, es, xe, d, as,
                                        range.count});
  backend_.gemm_op(DType::F32, GemmArgs{Trans::No, Trans::Yes, rows, d, d, 1, 0, xe, d, as,
                                        values_.data() + f * run_stride_, d, static_cast<int64_t>(run_stride_), h, d,
                                        as, range.count});
  backend_.gemm_op(DType::F32, GemmArgs{Trans::No, Trans::No, rows, m, d, 1, 0, h, d, as, U, m, es, logits, m,
                                        static_cast<int64_t>(logits_stride_), range.count});
  return logits;
}

void LinearMemory::backward(const float*, const float* dlogits, std::size_t dlogits_stride, int rows,
                            RunRange range) {
  check(rows, range);
  const auto f = static_cast<std::size_t>(range.first);
  const int d = dim_, m = n_outputs_;
  const float* U = embeddings_.data() + f * emb_stride_ + u_offset_;
  const float* xe = xe_.data() + f * act_stride_;
  float* dh = dh_.data() + f * act_stride_;
  const auto es = static_cast<int64_t>(emb_stride_), as = static_cast<int64_t>(act_stride_);
  backend_.gemm_op(DType::F32, GemmArgs{Trans::No, Trans::Yes, rows, d, m, 1, 0, dlogits, m,
                                        static_cast<int64_t>(dlogits_stride), U, m, es, dh, d, as, range.count});
  backend_.gemm_op(DType::F32, GemmArgs{Trans::Yes, Trans::No, d, d, rows, 1, 0, dh, d, as, xe, d, as,
                                        grads_.data() + f * run_stride_, d, static_cast<int64_t>(run_stride_),
                                        range.count});
}

}  // namespace skillrun
