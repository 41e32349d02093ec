// The update rules. Each is a thin owner of its state buffers around one backend op, except
// Muon, which composes momentum, msign (optim/msign.h) and a scaled step.
#include <cmath>

#include <fmt/format.h>

#include "core/error.h"
#include "optim/msign.h"
#include "optim/optimizer.h"

namespace skillrun {
namespace {

Buffer<float> zeroed(Backend& backend, std::size_t n) {
  Buffer<float> b(backend, n);
  backend.fill(b.data(), n, 0.0f);
  return b;
}

class SgdRule final : public UpdateRule {
 public:
  SgdRule(Backend& b, const OptimizerConfig& c, const Parameter& p)
      : backend_(b), c_(c), m_(c.momentum > 0 ? zeroed(b, p.size()) : Buffer<float>()) {}
  void apply(Parameter& p, int64_t) override {
    backend_.sgd_update(p.value.data(), p.grad.data(), m_.data(), p.size(), float(c_.lr),
                        float(c_.momentum), c_.nesterov, float(c_.weight_decay));
  }
  std::string describe() const override {
    return fmt::format("sgd(lr={}, momentum={}, nesterov={}, wd={})", c_.lr, c_.momentum, c_.nesterov, c_.weight_decay);
  }
  std::vector<Buffer<float>*> state() override { return m_.empty() ? std::vector<Buffer<float>*>{} : std::vector{&m_}; }

 private:
  Backend& backend_;
  OptimizerConfig c_;
  Buffer<float> m_;
};

class NmdRule final : public UpdateRule {
 public:
  NmdRule(Backend& b, const OptimizerConfig& c, const Parameter& p) : backend_(b), c_(c), m_(zeroed(b, p.size())) {}
  void apply(Parameter& p, int64_t) override {
    backend_.nmd_update(p.value.data(), p.grad.data(), m_.data(), p.size(), float(c_.lr),
                        float(c_.momentum), float(c_.weight_decay));
  }
  std::string describe() const override {
    return fmt::format("nmd(lr={}, beta={}, wd={})", c_.lr, c_.momentum, c_.weight_decay);
  }
  std::vector<Buffer<float>*> state() override { return {&m_}; }

 private:
  Backend& backend_;
  OptimizerConfig c_;
  Buffer<float> m_;
};

class AdamRule final : public UpdateRule {
 public:
  AdamRule(Backend& b, const OptimizerConfig& c, const Parameter& p)
      : backend_(b), c_(c), m_(zeroed(b, p.size())), v_(zeroed(b, p.size())) {}
  void apply(Parameter& p, int64_t t) override {
    backend_.adam_update(p.value.data(), p.grad.data(), m_.data(), v_.data(), p.size(), float(c_.lr),
                         float(c_.beta1), float(c_.beta2), float(c_.eps), float(c_.weight_decay),
                         c_.type == "adamw", t);
  }
  std::string describe() const override {
    return fmt::format("{}(lr={}, betas=({}, {}), eps={}, wd={})", c_.type, c_.lr, c_.beta1, c_.beta2, c_.eps, c_.weight_decay);
  }
  std::vector<Buffer<float>*> state() override { return {&m_, &v_}; }

 private:
  Backend& backend_;
  OptimizerConfig c_;
  Buffer<float> m_, v_;
};

class SignGdRule final : public UpdateRule {
 public:
  SignGdRule(Backend& b, const OptimizerConfig& c, const Parameter& p)
      : backend_(b), c_(c), m_(c.momentum > 0 ? zeroed(b, p.size()) : Buffer<float>()) {}
  void apply(Parameter& p, int64_t) override {
    backend_.signgd_update(p.value.data(), p.grad.data(), m_.data(), p.size(), float(c_.lr),
                           float(c_.momentum), float(c_.weight_decay));
  }
  std::string describe() const override {
    return fmt::format("signgd(lr={}, momentum={}, wd={})", c_.lr, c_.momentum, c_.weight_decay);
  }
  std::vector<Buffer<float>*> state() override { return m_.empty() ? std::vector<Buffer<float>*>{} : std::vector{&m_}; }

 private:
  Backend& backend_;
  OptimizerConfig c_;
  Buffer<float> m_;
};

// Muon (paper App. A): M = beta M + g (Nesterov: use g + beta M); W = W (1 - lr wd)
// - lr * scale * msign(M).
class MuonRule final : public UpdateRule {
 public:
  MuonRule(Backend& b, const OptimizerConfig& c, const Parameter& p)
      : backend_(b), c_(c), method_(parse_msign_method(c.msign)),
        scale_(muon_scale(c.scale, p.rows, p.cols)),
        m_(zeroed(b, p.size())), direction_(b, p.size()), orthogonal_(b, p.size()) {}
  void apply(Parameter& p, int64_t) override {
    backend_.momentum_accumulate(m_.data(), p.grad.data(), direction_.data(), p.size(),
                                 float(c_.momentum), c_.nesterov);
    msign(backend_, method_, direction_.data(), orthogonal_.data(), p.rows, p.cols, c_.ns_steps);
    backend_.axpby(p.value.data(), orthogonal_.data(), p.size(), float(-c_.lr * scale_),
                   float(1.0 - c_.lr * c_.weight_decay));
  }
  std::string describe() const override {
    return fmt::format("muon(lr={}, beta={}, nesterov={}, msign={}, ns_steps={}, scale={}={:.4g}, wd={})", c_.lr,
                       c_.momentum, c_.nesterov, c_.msign, c_.ns_steps, c_.scale, scale_, c_.weight_decay);
  }
  std::vector<Buffer<float>*> state() override { return {&m_}; }

 private:
  Backend& backend_;
  OptimizerConfig c_;
  MsignMethod method_;
  double scale_;
  Buffer<float> m_;
  Buffer<float> direction_, orthogonal_;  // scratch: (rows, cols)
};

}  // namespace

double muon_scale(const std::string& scale, int rows, int cols) {
  const double m = rows, n = cols;
  if (scale == "sqrt_ratio") return std::sqrt(m / n);
  if (scale == "keller") return std::sqrt(std::max(1.0, m / n));
  if (scale == "moonshot") return 0.2 * std::sqrt(std::max(m, n));
  if (scale == "none") return 1.0;
  throw ConfigError("optimizer.scale", fmt::format("unknown scale \"{}\"", scale));
}

std::unique_ptr<UpdateRule> make_update_rule(Backend& backend, const OptimizerConfig& c, const Parameter& p) {
  if (c.type == "sgd") return std::make_unique<SgdRule>(backend, c, p);
  if (c.type == "nmd") return std::make_unique<NmdRule>(backend, c, p);
  if (c.type == "adam" || c.type == "adamw") return std::make_unique<AdamRule>(backend, c, p);
  if (c.type == "signgd") return std::make_unique<SignGdRule>(backend, c, p);
  if (c.type == "muon") {
    if (!p.is_matrix) throw ConfigError("optimizer.type", "muon cannot update the vector " + p.name);
    return std::make_unique<MuonRule>(backend, c, p);
  }
  throw ConfigError("optimizer.type", fmt::format("unknown optimizer \"{}\"", c.type));
}

}  // namespace skillrun
