// The update rules. Each is a thin owner of its state buffers around one backend op, except
// Muon, which composes momentum, msign (optim/msign.h) and a scaled step. Every rule is a
// template over the element type: float for the MLP, double for fp64 runs (icl_linreg).
#include <cmath>

#include <fmt/format.h>

#include "core/error.h"
#include "optim/msign.h"
#include "optim/optimizer.h"

namespace skillrun {
namespace {

template <class T>
Buffer<T> zeroed(Backend& backend, std::size_t n) {
  Buffer<T> b(backend, n);
  backend.fill(b.data(), n, T(0));
  return b;
}

// The state buffers of a rule of config c over n elements: state_buffer_count(c) of them, from
// `allocate` when given, else owned.
template <class T>
std::vector<Buffer<T>> state_buffers(Backend& backend, const OptimizerConfig& c, std::size_t n,
                                     const StateAllocator<T>& allocate) {
  std::vector<Buffer<T>> buffers;
  for (int slot = 0; slot < state_buffer_count(c); ++slot)
    buffers.push_back(allocate ? allocate(slot, n) : zeroed<T>(backend, n));
  buffers.resize(2);  // unused slots stay empty
  return buffers;
}

// The rules that are one backend op per step over their state buffers (state_buffer_count):
// SGD (momentum if > 0), NMD (momentum), Adam/AdamW (first and second moments), SignGD.
template <class T>
class ElementwiseRule final : public UpdateRule<T> {
 public:
  ElementwiseRule(Backend& b, const OptimizerConfig& c, const TensorShape& s, const StateAllocator<T>& allocate)
      : backend_(b), c_(c), n_(s.size()), state_(state_buffers(b, c, n_, allocate)) {}
  void apply(T* w, const T* g, int64_t t, double lr_scale) override {
    const T lr = T(c_.lr * lr_scale), mu = T(c_.momentum), wd = T(c_.weight_decay);
    T* m = state_[0].data();  // nullptr when the rule keeps no momentum
    switch (c_.type) {
      case OptimizerType::Sgd:
        return backend_.sgd_update(w, g, m, n_, lr, mu, c_.nesterov, wd);
      case OptimizerType::Nmd:
        return backend_.nmd_update(w, g, m, n_, lr, mu, wd);
      case OptimizerType::Adam:
      case OptimizerType::AdamW:  // decoupled weight decay; adam: L2 in the gradient
        return backend_.adam_update(w, g, m, state_[1].data(), n_, lr, T(c_.beta1), T(c_.beta2), T(c_.eps), wd,
                                    c_.type == OptimizerType::AdamW, t);
      case OptimizerType::SignGd:
        return backend_.signgd_update(w, g, m, n_, lr, mu, wd);
      default:
        throw ConfigError("optimizer.type", fmt::format("{} is no elementwise rule", name(c_.type)));
    }
  }
  std::string describe() const override {
    switch (c_.type) {
      case OptimizerType::Sgd:
        return fmt::format("sgd(lr={}, momentum={}, nesterov={}, wd={})", c_.lr, c_.momentum, c_.nesterov,
                           c_.weight_decay);
      case OptimizerType::Nmd:
        return fmt::format("nmd(lr={}, beta={}, wd={})", c_.lr, c_.momentum, c_.weight_decay);
      case OptimizerType::SignGd:
        return fmt::format("signgd(lr={}, momentum={}, wd={})", c_.lr, c_.momentum, c_.weight_decay);
      default:
        return fmt::format("{}(lr={}, betas=({}, {}), eps={}, wd={})", name(c_.type), c_.lr, c_.beta1, c_.beta2, c_.eps,
                           c_.weight_decay);
    }
  }
  std::vector<Buffer<T>*> state() override {
    std::vector<Buffer<T>*> kept;
    for (Buffer<T>& b : state_)
      if (!b.empty()) kept.push_back(&b);
    return kept;
  }

 private:
  Backend& backend_;
  OptimizerConfig c_;
  std::size_t n_;
  std::vector<Buffer<T>> state_;  // two slots; the unused ones empty
};

// Muon (paper App. A): M = beta M + g (Nesterov: use g + beta M); W = W (1 - lr wd)
// - lr * scale * msign(M). With momentum 0 and msign svd this is SpecGD: W -= lr msign(g).
template <class T>
class MuonRule final : public UpdateRule<T> {
 public:
  MuonRule(Backend& b, const OptimizerConfig& c, const TensorShape& s, const StateAllocator<T>& allocate)
      : backend_(b),
        c_(c),
        rows_(s.rows),
        cols_(s.cols),
        method_(c.msign),
        scale_(muon_scale(c.scale, s.rows, s.cols)),
        m_(std::move(state_buffers(b, c, s.size(), allocate)[0])),
        direction_(b, s.size()),
        orthogonal_(b, s.size()) {}
  void apply(T* w, const T* g, int64_t, double lr_scale) override {
    const std::size_t n = m_.size();
    backend_.momentum_accumulate(m_.data(), g, direction_.data(), n, T(c_.momentum), c_.nesterov);
    msign(backend_, method_, direction_.data(), orthogonal_.data(), rows_, cols_, c_.ns_steps);
    const double lr = c_.lr * lr_scale;
    backend_.axpby(w, orthogonal_.data(), n, T(-lr * scale_), T(1.0 - lr * c_.weight_decay));
  }
  std::string describe() const override {
    return fmt::format("muon(lr={}, beta={}, nesterov={}, msign={}, ns_steps={}, scale={}={:.4g}, wd={})", c_.lr,
                       c_.momentum, c_.nesterov, name(c_.msign), c_.ns_steps, name(c_.scale), scale_, c_.weight_decay);
  }
  std::vector<Buffer<T>*> state() override { return {&m_}; }

 private:
  Backend& backend_;
  OptimizerConfig c_;
  int rows_, cols_;
  MsignMethod method_;
  double scale_;
  Buffer<T> m_;
  Buffer<T> direction_, orthogonal_;  // scratch: (rows, cols)
};

}  // namespace

double muon_scale(MuonScale scale, int rows, int cols) {
  const double m = rows, n = cols;
  switch (scale) {
    case MuonScale::SqrtRatio:
      return std::sqrt(m / n);
    case MuonScale::Keller:
      return std::sqrt(std::max(1.0, m / n));
    case MuonScale::Moonshot:
      return 0.2 * std::sqrt(std::max(m, n));
    case MuonScale::None:
      return 1.0;
  }
  // Only a value cast from outside the enum gets here.
  throw ConfigError("optimizer.scale", "not a MuonScale: " + std::to_string(static_cast<int>(scale)));
}

int state_buffer_count(const OptimizerConfig& c) {
  switch (c.type) {
    case OptimizerType::Sgd:
    case OptimizerType::SignGd:
      return c.momentum > 0 ? 1 : 0;  // plain SGD and SignGD keep no momentum
    case OptimizerType::Nmd:
    case OptimizerType::Muon:
      return 1;
    case OptimizerType::Adam:
    case OptimizerType::AdamW:
      return 2;
    case OptimizerType::Gd:
    case OptimizerType::Ngd:
    case OptimizerType::SpecGd:
      break;
  }
  return 0;  // the icl-only types have no rule of their own (icl_update_rule_config)
}

template <class T>
std::unique_ptr<UpdateRule<T>> make_update_rule(Backend& backend, const OptimizerConfig& c, const TensorShape& s,
                                                const StateAllocator<T>& allocate) {
  switch (c.type) {
    case OptimizerType::Sgd:
    case OptimizerType::Nmd:
    case OptimizerType::Adam:
    case OptimizerType::AdamW:
    case OptimizerType::SignGd:
      return std::make_unique<ElementwiseRule<T>>(backend, c, s, allocate);
    case OptimizerType::Muon:
      if (!s.is_matrix) throw ConfigError("optimizer.type", "muon cannot update the vector " + s.name);
      return std::make_unique<MuonRule<T>>(backend, c, s, allocate);
    // The icl-only types are no rules of their own: icl_update_rule_config maps them first.
    case OptimizerType::Gd:
    case OptimizerType::Ngd:
    case OptimizerType::SpecGd:
      break;
  }
  throw ConfigError("optimizer.type", fmt::format("unknown optimizer \"{}\"", name(c.type)));
}

template std::unique_ptr<UpdateRule<float>> make_update_rule<float>(Backend&, const OptimizerConfig&,
                                                                    const TensorShape&, const StateAllocator<float>&);
template std::unique_ptr<UpdateRule<double>> make_update_rule<double>(Backend&, const OptimizerConfig&,
                                                                      const TensorShape&,
                                                                      const StateAllocator<double>&);

}  // namespace skillrun
