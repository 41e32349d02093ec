// The update rules: the scalars of a run's entry (run_update) and the one update of a tensor
// for every entry of a run table (update_tensor). Each rule is one Backend::update, except
// Muon, which composes momentum, msign (optim/msign.h) and a scaled step. Templates over the
// element type: float for the MLP, double for fp64 runs (icl_linreg).
#include <cmath>

#include <fmt/format.h>

#include "core/error.h"
#include "optim/msign.h"
#include "optim/optimizer.h"

namespace skillrun {

bool coupled_decay(const OptimizerConfig& c) {
  const bool takes_mode = c.type == OptimizerType::Nmd || c.type == OptimizerType::SignGd || c.type == OptimizerType::Muon;
  return takes_mode && c.weight_decay_mode == WeightDecayMode::Coupled && c.weight_decay > 0;
}

template <class T>
RunUpdateOf<T> run_update(const OptimizerConfig& c, double lr_scale, uint32_t slot, uint32_t slice, int rows,
                          int cols) {
  RunUpdateOf<T> u;
  u.run = slot;
  u.slice = slice;
  const double lr = c.lr * lr_scale;
  u.lr = static_cast<T>(lr);
  u.momentum = static_cast<T>(c.type == OptimizerType::Adam || c.type == OptimizerType::AdamW ? c.beta1 : c.momentum);
  u.beta2 = static_cast<T>(c.beta2);
  u.eps = static_cast<T>(c.eps);
  u.weight_decay = static_cast<T>(c.weight_decay);
  if (c.type == OptimizerType::Muon) {  // w = (1 - lr wd) w - lr scale msign(M)
    u.step_alpha = static_cast<T>(-lr * muon_scale(c.scale, rows, cols));
    u.step_beta = static_cast<T>(1.0 - lr * c.weight_decay);
  }
  if (coupled_decay(c)) {  // g += wd w before the rule (update_tensor); no decay of w beside the step
    u.coupled_weight_decay = u.weight_decay;
    u.weight_decay = 0;
    u.step_beta = 1;
  }
  return u;
}

template <class T>
void update_tensor(Backend& backend, const OptimizerConfig& c, UpdateArgs tensor, const MuonScratch<T>& muon,
                   int64_t t) {
  if (tensor.count == 0) return;
  if (tensor.dtype != dtype_of<T>) throw RuntimeError("update_tensor: the tensor's element type is not the rule's");
  tensor.flags(c.nesterov, c.type == OptimizerType::AdamW, t);  // adam: L2 in the gradient
  // Coupled weight decay: g' = g + wd w in the gradient buffer itself (the step's own: the next
  // backward or gradient overwrites it), before the rule reads it. Nothing when no entry has it.
  for (const RunUpdateOf<T>& u : tensor.table<T>()) {
    if (u.coupled_weight_decay == T(0)) continue;
    const std::size_t at = static_cast<std::size_t>(u.run) * tensor.param_stride;
    backend.axpby(const_cast<T*>(static_cast<const T*>(tensor.g)) + at, static_cast<const T*>(tensor.w) + at,
                  tensor.n, u.coupled_weight_decay, T(1));
  }
  const auto args = [&](UpdateKind kind) {
    UpdateArgs a = tensor;
    a.kind = kind;
    return a;
  };
  switch (c.type) {
    case OptimizerType::Sgd:
      return backend.update(args(UpdateKind::Sgd));
    case OptimizerType::Nmd:
      return backend.update(args(UpdateKind::Nmd));
    case OptimizerType::Adam:
    case OptimizerType::AdamW:
      return backend.update(args(UpdateKind::Adam));
    case OptimizerType::SignGd:
      return backend.update(args(UpdateKind::SignGd));
    case OptimizerType::Muon: {
      // Muon (paper App. A): M = beta M + g (Nesterov: use g + beta M); W = W (1 - lr wd)
      // - lr * scale * msign(M). With momentum 0 and msign svd this is SpecGD: W -= lr msign(g).
      backend.update(args(UpdateKind::Momentum).scratch_at(muon.direction, muon.stride));
      msign_runs(backend, c.msign, muon.direction, muon.orthogonal, muon.stride, muon.rows, muon.cols, c.ns_steps,
                 static_cast<int>(tensor.count));
      return backend.update(args(UpdateKind::MuonStep).scratch_at(muon.orthogonal, muon.stride));
    }
    // The icl-only types are no rules of their own: icl_update_rule_config maps them first.
    case OptimizerType::Gd:
    case OptimizerType::Ngd:
    case OptimizerType::SpecGd:
      break;
  }
  throw ConfigError("optimizer.type", fmt::format("{} has no update rule of its own", name(c.type)));
}

namespace {
// ", coupled" after wd in run.log for coupled decay; decoupled (today's) adds nothing.
const char* coupled_note(const OptimizerConfig& c) { return c.weight_decay_mode == WeightDecayMode::Coupled ? " coupled" : ""; }
}  // namespace

std::string describe_rule(const OptimizerConfig& c, int rows, int cols) {
  switch (c.type) {
    case OptimizerType::Sgd:
      return fmt::format("sgd(lr={}, momentum={}, nesterov={}, wd={})", c.lr, c.momentum, c.nesterov, c.weight_decay);
    case OptimizerType::Nmd:
      return fmt::format("nmd(lr={}, beta={}, wd={}{})", c.lr, c.momentum, c.weight_decay, coupled_note(c));
    case OptimizerType::SignGd:
      return fmt::format("signgd(lr={}, momentum={}, wd={}{})", c.lr, c.momentum, c.weight_decay, coupled_note(c));
    case OptimizerType::Muon:
      return fmt::format("muon(lr={}, beta={}, nesterov={}, msign={}, ns_steps={}, scale={}={:.4g}, wd={}{})", c.lr,
                         c.momentum, c.nesterov, name(c.msign), c.ns_steps, name(c.scale),
                         muon_scale(c.scale, rows, cols), c.weight_decay, coupled_note(c));
    default:
      return fmt::format("{}(lr={}, betas=({}, {}), eps={}, wd={})", name(c.type), c.lr, c.beta1, c.beta2, c.eps,
                         c.weight_decay);
  }
}

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

template RunUpdateOf<float> run_update<float>(const OptimizerConfig&, double, uint32_t, uint32_t, int, int);
template RunUpdateOf<double> run_update<double>(const OptimizerConfig&, double, uint32_t, uint32_t, int, int);
template void update_tensor<float>(Backend&, const OptimizerConfig&, UpdateArgs, const MuonScratch<float>&, int64_t);
template void update_tensor<double>(Backend&, const OptimizerConfig&, UpdateArgs, const MuonScratch<double>&,
                                    int64_t);

}  // namespace skillrun
