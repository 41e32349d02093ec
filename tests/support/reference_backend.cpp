// The reference backend's ops (reference_backend.h): plain loops in double from the documented
// maths. Deliberately simple and slow; written without looking at the production backends.
#include "support/reference_backend.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/philox.h"

namespace skillrun::testing {
namespace {

std::size_t at(std::size_t i, std::size_t ld, std::size_t j) { return i * ld + j; }

// ---- dense linear algebra -------------------------------------------------------------------

void check_ld(const char* what, int ld, int rows, int cols) {
  if (rows > 0 && cols > 0 && ld < cols)
    throw std::invalid_argument(std::string("reference gemm: leading dimension of ") + what + " (" +
                                std::to_string(ld) + ") is below its " + std::to_string(cols) + " columns");
}

template <class T>
void gemm_loops(const GemmArgs& a) {
  const auto* A = static_cast<const T*>(a.A);
  const auto* B = static_cast<const T*>(a.B);
  auto* C = static_cast<T*>(a.C);
  const bool ta = a.ta == Trans::Yes, tb = a.tb == Trans::Yes;
  for (int r = 0; r < a.batch; ++r) {
    const T* Ar = A + r * a.stride_a;
    const T* Br = B + r * a.stride_b;
    T* Cr = C + r * a.stride_c;
    for (int i = 0; i < a.m; ++i) {
      for (int j = 0; j < a.n; ++j) {
        double acc = 0.0;
        for (int p = 0; p < a.k; ++p) {
          const double x = ta ? Ar[at(p, a.lda, i)] : Ar[at(i, a.lda, p)];  // op(A)(i, p)
          const double y = tb ? Br[at(j, a.ldb, p)] : Br[at(p, a.ldb, j)];  // op(B)(p, j)
          acc += x * y;
        }
        T& c = Cr[at(i, a.ldc, j)];
        const double old = a.beta == 0.0 ? 0.0 : a.beta * static_cast<double>(c);  // beta 0: C not read
        c = static_cast<T>(a.alpha * acc + old);
      }
    }
  }
}

// ---- optimizer updates ----------------------------------------------------------------------

double sign_of(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : 0.0); }

void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("reference update: ") + what);
}

// One entry of the run table: its tensors already offset.
template <class T>
struct Entry {
  T* w;
  const T* g;
  T* m;
  T* v;
  T* scratch;
  const RunUpdateOf<T>& u;
};

template <class T>
void sgd(const Entry<T>& e, std::size_t n, bool nesterov) {
  const double lr = e.u.lr, mu = e.u.momentum, wd = e.u.weight_decay;
  require(mu == 0.0 || e.m != nullptr, "sgd with momentum needs its state m");
  for (std::size_t i = 0; i < n; ++i) {
    const double w = e.w[i];
    const double g = static_cast<double>(e.g[i]) + wd * w;  // g' = g + wd w
    double d = g;
    if (mu != 0.0) {
      const double m = mu * static_cast<double>(e.m[i]) + g;  // m = mu m + g'
      d = nesterov ? g + mu * m : m;
      e.m[i] = static_cast<T>(m);
    }
    e.w[i] = static_cast<T>(w - lr * d);
  }
}

template <class T>
void nmd(const Entry<T>& e, std::size_t n) {
  const double lr = e.u.lr, beta = e.u.momentum, wd = e.u.weight_decay;
  require(e.m != nullptr, "nmd needs its state m");
  std::vector<double> m(n);
  double squares = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    m[i] = beta * static_cast<double>(e.m[i]) + static_cast<double>(e.g[i]);  // m = beta m + g
    squares += m[i] * m[i];
    e.m[i] = static_cast<T>(m[i]);
  }
  const double norm = std::sqrt(squares);
  if (norm == 0.0) return;  // no step at all, weight decay included
  for (std::size_t i = 0; i < n; ++i)
    e.w[i] = static_cast<T>(static_cast<double>(e.w[i]) * (1.0 - lr * wd) - lr * m[i] / norm);
}

template <class T>
void adam(const Entry<T>& e, std::size_t n, bool decoupled, int64_t t) {
  const double lr = e.u.lr, b1 = e.u.momentum, b2 = e.u.beta2, eps = e.u.eps, wd = e.u.weight_decay;
  require(e.m != nullptr && e.v != nullptr, "adam needs its states m and v");
  require(t >= 1, "adam's step count t is 1-based");
  const double correction1 = 1.0 - std::pow(b1, static_cast<double>(t));
  const double correction2 = 1.0 - std::pow(b2, static_cast<double>(t));
  for (std::size_t i = 0; i < n; ++i) {
    double w = e.w[i];
    double g = e.g[i];
    if (decoupled) {
      w *= 1.0 - lr * wd;  // AdamW: decay first
    } else {
      g += wd * w;  // Adam + L2: into the gradient before the moments
    }
    const double m = b1 * static_cast<double>(e.m[i]) + (1.0 - b1) * g;
    const double v = b2 * static_cast<double>(e.v[i]) + (1.0 - b2) * g * g;
    w -= lr * (m / correction1) / (std::sqrt(v / correction2) + eps);
    e.m[i] = static_cast<T>(m);
    e.v[i] = static_cast<T>(v);
    e.w[i] = static_cast<T>(w);
  }
}

template <class T>
void signgd(const Entry<T>& e, std::size_t n) {
  const double lr = e.u.lr, mu = e.u.momentum, wd = e.u.weight_decay;
  require(mu == 0.0 || e.m != nullptr, "signgd with momentum needs its state m");
  for (std::size_t i = 0; i < n; ++i) {
    const double g = e.g[i];
    const double m = mu == 0.0 ? g : mu * static_cast<double>(e.m[i]) + g;  // m = g when mu == 0
    if (e.m != nullptr) e.m[i] = static_cast<T>(m);
    e.w[i] = static_cast<T>(static_cast<double>(e.w[i]) * (1.0 - lr * wd) - lr * sign_of(m));
  }
}

template <class T>
void momentum(const Entry<T>& e, std::size_t n, bool nesterov) {
  const double beta = e.u.momentum;
  require(e.m != nullptr && e.scratch != nullptr, "momentum needs m and its output");
  for (std::size_t i = 0; i < n; ++i) {  // both read before either is written: out may alias m or g
    const double g = e.g[i];
    const double m = beta * static_cast<double>(e.m[i]) + g;
    const double out = nesterov ? g + beta * m : m;
    e.m[i] = static_cast<T>(m);
    e.scratch[i] = static_cast<T>(out);
  }
}

template <class T>
void muon_step(const Entry<T>& e, std::size_t n) {
  const double alpha = e.u.step_alpha, beta = e.u.step_beta;
  require(e.w != nullptr && e.scratch != nullptr, "muon step needs w and d");
  for (std::size_t i = 0; i < n; ++i)
    e.w[i] = static_cast<T>(beta * static_cast<double>(e.w[i]) + alpha * static_cast<double>(e.scratch[i]));
}

template <class T>
void update_entries(const UpdateArgs& a) {
  const std::span<const RunUpdateOf<T>> table = a.table<T>();
  for (std::size_t i = 0; i < table.size(); ++i) {
    const RunUpdateOf<T>& u = table[i];
    auto offset = [](auto* p, std::size_t k) { return p == nullptr ? p : p + k; };
    const Entry<T> e{offset(static_cast<T*>(a.w), u.run * a.param_stride),
                     offset(static_cast<const T*>(a.g), u.run * a.param_stride),
                     offset(static_cast<T*>(a.m), u.slice * a.m_stride),
                     offset(static_cast<T*>(a.v), u.slice * a.v_stride),
                     offset(static_cast<T*>(a.scratch), i * a.scratch_stride),
                     u};
    switch (a.kind) {
      case UpdateKind::Sgd: sgd(e, a.n, a.nesterov); break;
      case UpdateKind::Nmd: nmd(e, a.n); break;
      case UpdateKind::Adam: adam(e, a.n, a.decoupled, a.t); break;
      case UpdateKind::SignGd: signgd(e, a.n); break;
      case UpdateKind::Momentum: momentum(e, a.n, a.nesterov); break;
      case UpdateKind::MuonStep: muon_step(e, a.n); break;
    }
  }
}

// ---- msign ------------------------------------------------------------------------------------

// Row-major double matrices.
struct Matrix {
  int rows = 0, cols = 0;
  std::vector<double> v;
  Matrix(int r, int c) : rows(r), cols(c), v(static_cast<std::size_t>(r) * c, 0.0) {}
  double& operator()(int i, int j) { return v[at(i, cols, j)]; }
  double operator()(int i, int j) const { return v[at(i, cols, j)]; }
};

Matrix multiply(const Matrix& x, const Matrix& y) {
  Matrix z(x.rows, y.cols);
  for (int i = 0; i < x.rows; ++i)
    for (int j = 0; j < y.cols; ++j) {
      double acc = 0.0;
      for (int p = 0; p < x.cols; ++p) acc += x(i, p) * y(p, j);
      z(i, j) = acc;
    }
  return z;
}

Matrix transpose(const Matrix& x) {
  Matrix y(x.cols, x.rows);
  for (int i = 0; i < x.rows; ++i)
    for (int j = 0; j < x.cols; ++j) y(j, i) = x(i, j);
  return y;
}

template <class T>
Matrix load(const T* p, int rows, int cols) {
  Matrix x(rows, cols);
  for (std::size_t i = 0; i < x.v.size(); ++i) x.v[i] = p[i];
  return x;
}

template <class T>
void store(const Matrix& x, T* p) {
  for (std::size_t i = 0; i < x.v.size(); ++i) p[i] = static_cast<T>(x.v[i]);
}

// One run of Newton-Schulz. Wide (rows <= cols): X <- aX + (bA + cA^2) X with A = X X^T;
// tall: the same polynomial on X^T, i.e. X <- aX + X (bA + cA^2) with A = X^T X.
Matrix newton_schulz_one(Matrix x, std::span<const NsCoefficients> iterations, double norm_scale, double norm_eps) {
  double squares = 0.0;
  for (double e : x.v) squares += e * e;
  const double scale = norm_scale * std::sqrt(squares) + norm_eps;
  for (double& e : x.v) e /= scale;
  const bool wide = x.rows <= x.cols;
  for (const NsCoefficients& k : iterations) {
    const Matrix gram = wide ? multiply(x, transpose(x)) : multiply(transpose(x), x);
    const Matrix gram2 = multiply(gram, gram);
    Matrix poly(gram.rows, gram.cols);
    for (std::size_t i = 0; i < poly.v.size(); ++i) poly.v[i] = k.b * gram.v[i] + k.c * gram2.v[i];
    const Matrix applied = wide ? multiply(poly, x) : multiply(x, poly);
    for (std::size_t i = 0; i < x.v.size(); ++i) x.v[i] = k.a * x.v[i] + applied.v[i];
  }
  return x;
}

// U V^T of a (M x N, M >= N) by one-sided Jacobi: rotate pairs of columns until every pair is
// orthogonal to working precision; then column j is s_j u_j with s_j its norm, and V holds the
// accumulated rotations. Directions with s_j <= cutoff(s_max) are dropped.
template <class Cutoff>
Matrix polar_tall(Matrix a, const Cutoff& cutoff) {
  const int M = a.rows, N = a.cols;
  Matrix V(N, N);
  for (int i = 0; i < N; ++i) V(i, i) = 1.0;
  const double tolerance = DBL_EPSILON * M;
  bool converged = false;
  for (int sweep = 0; sweep < 100 && !converged; ++sweep) {
    converged = true;
    for (int p = 0; p + 1 < N; ++p)
      for (int q = p + 1; q < N; ++q) {
        double alpha = 0.0, beta = 0.0, gamma = 0.0;
        for (int i = 0; i < M; ++i) {
          alpha += a(i, p) * a(i, p);
          beta += a(i, q) * a(i, q);
          gamma += a(i, p) * a(i, q);
        }
        if (gamma == 0.0 || std::abs(gamma) <= tolerance * std::sqrt(alpha * beta)) continue;
        converged = false;
        // The rotation that makes columns p and q orthogonal: t the smaller root of
        // t^2 + 2 zeta t - 1 = 0.
        const double zeta = (beta - alpha) / (2.0 * gamma);
        const double t = (zeta >= 0.0 ? 1.0 : -1.0) / (std::abs(zeta) + std::hypot(1.0, zeta));
        const double c = 1.0 / std::hypot(1.0, t), s = c * t;
        for (int i = 0; i < M; ++i) {
          const double x = a(i, p), y = a(i, q);
          a(i, p) = c * x - s * y;
          a(i, q) = s * x + c * y;
        }
        for (int i = 0; i < N; ++i) {
          const double x = V(i, p), y = V(i, q);
          V(i, p) = c * x - s * y;
          V(i, q) = s * x + c * y;
        }
      }
  }
  if (!converged) throw RuntimeError("reference svd: one-sided Jacobi did not converge in 100 sweeps");
  std::vector<double> sigma(static_cast<std::size_t>(N));
  double sigma_max = 0.0;
  for (int j = 0; j < N; ++j) {
    double squares = 0.0;
    for (int i = 0; i < M; ++i) squares += a(i, j) * a(i, j);
    sigma[static_cast<std::size_t>(j)] = std::sqrt(squares);
    sigma_max = std::max(sigma_max, sigma[static_cast<std::size_t>(j)]);
  }
  const double drop_at_or_below = cutoff(sigma_max, M);
  Matrix q(M, N);
  for (int j = 0; j < N; ++j) {
    const double s = sigma[static_cast<std::size_t>(j)];
    if (!(s > drop_at_or_below)) continue;
    for (int i = 0; i < M; ++i)
      for (int l = 0; l < N; ++l) q(i, l) += a(i, j) / s * V(l, j);
  }
  return q;
}

template <class T>
void svd_runs(const T* G, T* out, std::size_t stride, int rows, int cols, int runs) {
  // F32: the numerical rank cutoff sigma_max * max(rows, cols) * fp32 epsilon; F64: exact data,
  // only zero singular values are dropped.
  const auto cutoff = [](double sigma_max, int M) {
    return std::is_same_v<T, float> ? sigma_max * M * static_cast<double>(FLT_EPSILON) : 0.0;
  };
  for (int r = 0; r < runs; ++r) {
    const Matrix g = load(G + r * stride, rows, cols);
    for (double e : g.v)
      if (!std::isfinite(e)) throw RuntimeError("reference svd: the matrix holds NaN or Inf");
    const Matrix q = rows >= cols ? polar_tall(g, cutoff) : transpose(polar_tall(transpose(g), cutoff));
    store(q, out + r * stride);
  }
}

template <class T>
void newton_schulz_runs(const NsArgs& a) {
  for (int r = 0; r < a.runs; ++r) {
    const Matrix x = load(static_cast<const T*>(a.G) + r * a.stride, a.rows, a.cols);
    store(newton_schulz_one(x, a.iterations, a.norm_scale, a.norm_eps), static_cast<T*>(a.out) + r * a.stride);
  }
}

// ---- data -----------------------------------------------------------------------------------

// Sample `sample` of a draw, decoded from the layout documented in backend/sparse_parity_gen.h.
// An assoc_memory sample (DrawKind::Assoc), from the same documentation: the query from word 0
// (or fixed_task + sample), the answer replaced by the uniform one of word 2 when word 1 is
// below the noise threshold; returns the query's group.
int32_t assoc_row(const ParityDraw& d, const ParityTables& t, uint32_t sample, float* x_row, int32_t* label) {
  const Philox4x32 block = philox_draw(d.seed, d.stream, d.step_or_task, sample, 0);
  int32_t query = d.fixed_task + static_cast<int32_t>(sample);
  if (d.fixed_task < 0) {
    query = 0;
    for (int32_t i = 0; i + 1 < d.n_tasks; ++i) query += t.zipf_thresholds[i] <= block.v[0] ? 1 : 0;
  }
  for (int32_t i = 0; i < d.n_tasks; ++i) x_row[i] = i == query ? 1.0f : 0.0f;
  const double uniform = static_cast<double>(block.v[2]) / 4294967296.0;  // [0, 1), exact
  *label = block.v[1] < d.noise_threshold ? static_cast<int32_t>(std::floor(uniform * d.n_answers)) : t.answers[query];
  return static_cast<int32_t>(static_cast<int64_t>(query) * d.n_groups / d.n_tasks);
}

int32_t parity_row(const ParityDraw& d, const ParityTables& t, uint32_t sample, float* x_row, int32_t* label) {
  if (d.kind == DrawKind::Assoc) return assoc_row(d, t, sample, x_row, label);
  const uint32_t word0 = philox_draw(d.seed, d.stream, d.step_or_task, sample, 0).v[0];
  int32_t task = d.fixed_task;
  if (task < 0) {  // Zipf: the number of thresholds <= word 0
    task = 0;
    for (int32_t i = 0; i + 1 < d.n_tasks; ++i) task += t.zipf_thresholds[i] <= word0 ? 1 : 0;
  }
  for (int32_t i = 0; i < d.n_tasks; ++i) x_row[i] = i == task ? 1.0f : 0.0f;
  float* v = x_row + d.n_tasks;
  for (int32_t b = 0; b < d.n_bits; ++b) {
    const uint32_t word = 1u + static_cast<uint32_t>(b) / 32u;
    const uint32_t bits = philox_draw(d.seed, d.stream, d.step_or_task, sample, word / 4u).v[word % 4u];
    v[b] = static_cast<float>((bits >> (static_cast<uint32_t>(b) % 32u)) & 1u);
  }
  int32_t parity = 0;
  for (int32_t j = 0; j < d.k; ++j) parity ^= v[t.subsets[task * d.k + j]] != 0.0f ? 1 : 0;
  *label = parity;
  return task;
}

}  // namespace

// ---- memory -----------------------------------------------------------------------------------

void* ReferenceBackend::allocate(std::size_t bytes) {
  // 256-byte aligned, as the interface promises a backend's allocations start.
  const std::size_t rounded = (std::max<std::size_t>(bytes, 1) + 255) / 256 * 256;
  void* p = std::aligned_alloc(256, rounded);
  if (p == nullptr) throw RuntimeError("reference backend: cannot allocate " + std::to_string(bytes) + " bytes");
  return p;
}
void ReferenceBackend::deallocate(void* p) noexcept { std::free(p); }
void ReferenceBackend::upload(void* dst, const void* src, std::size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void ReferenceBackend::download(void* dst, const void* src, std::size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void ReferenceBackend::copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes) std::memmove(dst, src, bytes);
}

// ---- dense linear algebra, elementwise, reductions ----------------------------------------

void ReferenceBackend::gemm_op(DType type, const GemmArgs& a) {
  check_batch_strides(a.m, a.n, a.ldc, a.stride_a, a.stride_b, a.stride_c, a.batch);
  const bool ta = a.ta == Trans::Yes, tb = a.tb == Trans::Yes;
  check_ld("A", a.lda, ta ? a.k : a.m, ta ? a.m : a.k);
  check_ld("B", a.ldb, tb ? a.n : a.k, tb ? a.k : a.n);
  check_ld("C", a.ldc, a.m, a.n);
  if (type == DType::F64) {
    gemm_loops<double>(a);
  } else {
    gemm_loops<float>(a);
  }
}

void ReferenceBackend::fill_op(DType type, void* x, std::size_t n, double value) {
  if (type == DType::F64) {
    std::fill_n(static_cast<double*>(x), n, value);
  } else {
    std::fill_n(static_cast<float*>(x), n, static_cast<float>(value));
  }
}

namespace {
template <class T>
void axpby_loop(T* y, const T* x, std::size_t n, double alpha, double beta) {
  for (std::size_t i = 0; i < n; ++i) {
    const double old = beta == 0.0 ? 0.0 : beta * static_cast<double>(y[i]);  // beta 0: y not read
    y[i] = static_cast<T>(alpha * static_cast<double>(x[i]) + old);
  }
}
// Summed in long double (64-bit mantissa where the platform has it): the reference's sum of
// millions of squares stays well inside the 1e-12 relative the conformance suite asks.
template <class T>
double squares_loop(const T* x, std::size_t n) {
  long double sum = 0.0L;
  for (std::size_t i = 0; i < n; ++i) sum += static_cast<long double>(x[i]) * static_cast<long double>(x[i]);
  return static_cast<double>(sum);
}
}  // namespace

void ReferenceBackend::axpby_op(DType type, void* y, const void* x, std::size_t n, double alpha, double beta) {
  if (type == DType::F64) {
    axpby_loop(static_cast<double*>(y), static_cast<const double*>(x), n, alpha, beta);
  } else {
    axpby_loop(static_cast<float*>(y), static_cast<const float*>(x), n, alpha, beta);
  }
}

double ReferenceBackend::sum_squares_op(DType type, const void* x, std::size_t n) {
  return type == DType::F64 ? squares_loop(static_cast<const double*>(x), n)
                            : squares_loop(static_cast<const float*>(x), n);
}

// ---- MLP pieces -----------------------------------------------------------------------------

void ReferenceBackend::bias_activation_runs(float* H, std::size_t stride_h, const float* bias,
                                            std::size_t stride_bias, int rows, int cols, bool relu, int runs) {
  for (int r = 0; r < runs; ++r) {
    float* h = H + r * stride_h;
    const float* b = bias + r * stride_bias;
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) {
        float& e = h[at(i, cols, j)];
        const double z = static_cast<double>(e) + static_cast<double>(b[j]);
        e = static_cast<float>(relu && z < 0.0 ? 0.0 : z);  // max(z, 0) that keeps a NaN NaN
      }
  }
}

void ReferenceBackend::relu_backward_runs(float* dH, std::size_t stride_dh, const float* H, std::size_t stride_h,
                                          std::size_t n, int runs) {
  for (int r = 0; r < runs; ++r) {
    float* d = dH + r * stride_dh;
    const float* h = H + r * stride_h;
    for (std::size_t i = 0; i < n; ++i) d[i] = static_cast<float>(static_cast<double>(d[i]) * (h[i] > 0.0f ? 1.0 : 0.0));
  }
}

void ReferenceBackend::column_sums_runs(const float* A, std::size_t stride_a, int rows, int cols, float* out,
                                        std::size_t stride_out, int runs) {
  for (int r = 0; r < runs; ++r)
    for (int j = 0; j < cols; ++j) {
      double sum = 0.0;
      for (int i = 0; i < rows; ++i) sum += A[r * stride_a + at(i, cols, j)];
      out[r * stride_out + j] = static_cast<float>(sum);
    }
}

void ReferenceBackend::cross_entropy_runs(const float* logits, std::size_t stride_logits, const int32_t* labels,
                                          int rows, int classes, float* loss, float* correct,
                                          std::size_t stride_rows, float* dlogits, std::size_t stride_dlogits,
                                          float grad_scale, int runs) {
  for (int i = 0; i < rows; ++i)
    if (labels[i] < 0 || labels[i] >= classes)
      throw std::out_of_range("reference cross_entropy: label " + std::to_string(labels[i]) + " of row " +
                              std::to_string(i) + " lies outside [0, " + std::to_string(classes) + ")");
  std::vector<double> e(static_cast<std::size_t>(classes));
  for (int r = 0; r < runs; ++r)
    for (int i = 0; i < rows; ++i) {
      const float* l = logits + r * stride_logits + at(i, classes, 0);
      const int y = labels[i];
      double top = l[0];
      for (int j = 1; j < classes; ++j) top = std::max(top, static_cast<double>(l[j]));
      double sum = 0.0;
      for (int j = 0; j < classes; ++j) sum += e[j] = std::exp(static_cast<double>(l[j]) - top);
      const double log_sum_exp = top + std::log(sum);
      bool strictly_top = true;  // ties count as wrong
      for (int j = 0; j < classes; ++j) strictly_top = strictly_top && (j == y || l[y] > l[j]);
      loss[r * stride_rows + i] = static_cast<float>(log_sum_exp - static_cast<double>(l[y]));
      correct[r * stride_rows + i] = strictly_top ? 1.0f : 0.0f;
      if (dlogits != nullptr)
        for (int j = 0; j < classes; ++j)
          dlogits[r * stride_dlogits + at(i, classes, j)] =
              static_cast<float>(static_cast<double>(grad_scale) * (e[j] / sum - (j == y ? 1.0 : 0.0)));
    }
}

void ReferenceBackend::task_sums_runs(const float* loss, const float* correct, std::size_t stride_rows,
                                      const int32_t* tasks, int rows, int n_tasks, double* sums,
                                      std::size_t stride_sums, int runs) {
  for (int i = 0; i < rows; ++i)
    if (tasks[i] < 0 || tasks[i] >= n_tasks)
      throw std::out_of_range("reference task_sums: row " + std::to_string(i) + "'s task id lies outside [0, " +
                              std::to_string(n_tasks) + ")");
  for (int r = 0; r < runs; ++r) {
    double* s = sums + r * stride_sums;
    for (int i = 0; i < rows; ++i) {
      s[tasks[i]] += static_cast<double>(loss[r * stride_rows + i]);
      s[n_tasks + tasks[i]] += static_cast<double>(correct[r * stride_rows + i]);
    }
  }
}

// ---- data -----------------------------------------------------------------------------------

void ReferenceBackend::sparse_parity(const ParityDraw& draw, const ParityTables& tables, int count, float* x,
                                     int32_t* labels, int32_t* tasks) {
  const std::size_t row = static_cast<std::size_t>(draw.n_tasks) + static_cast<std::size_t>(draw.n_bits);
  for (int j = 0; j < count; ++j)
    tasks[j] = parity_row(draw, tables, draw.first_sample + static_cast<uint32_t>(j), x + j * row, labels + j);
}

// ---- optimizer updates and msign ------------------------------------------------------------

void ReferenceBackend::update(const UpdateArgs& a) {
  if (a.dtype == DType::F64) {
    update_entries<double>(a);
  } else {
    update_entries<float>(a);
  }
}

void ReferenceBackend::newton_schulz(const NsArgs& a) {
  if (a.dtype == DType::F64) {
    newton_schulz_runs<double>(a);
  } else {
    newton_schulz_runs<float>(a);
  }
}

void ReferenceBackend::svd_op(DType type, const void* G, void* out, std::size_t stride, int rows, int cols,
                              int runs) {
  if (type == DType::F64) {
    svd_runs(static_cast<const double*>(G), static_cast<double*>(out), stride, rows, cols, runs);
  } else {
    svd_runs(static_cast<const float*>(G), static_cast<float*>(out), stride, rows, cols, runs);
  }
}

}  // namespace skillrun::testing
