// The icl_linreg loop. Per iteration on the backend: G = P Q Sx - P (two gemms), the update
// rule, and (plateau schedule only) the loss 1/2 ||A Q H - C||_F^2 (two gemms and a sum of
// squares). Per eval on the host: the iterate is downloaded and measured in double.
#include "train/icl_trainer.h"

#include <cmath>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "train/run_monitor.h"

namespace skillrun {

OptimizerConfig icl_update_rule_config(const OptimizerConfig& optimizer) {
  OptimizerConfig rule = optimizer;
  rule.other.reset();
  if (optimizer.type == OptimizerType::Gd) {
    rule.type = OptimizerType::Sgd;
    rule.momentum = 0.0;
  } else if (optimizer.type == OptimizerType::Ngd) {
    rule.type = OptimizerType::Nmd;
    rule.momentum = 0.0;
  } else if (optimizer.type == OptimizerType::SpecGd) {
    rule.type = OptimizerType::Muon;
    rule.momentum = 0.0;
    rule.nesterov = false;
    rule.scale = MuonScale::None;
  }
  return rule;
}

LrSchedule::LrSchedule(const LrScheduleConfig& config, double sigma_min_x)
    : config_(config), sigma_min_x_(sigma_min_x) {}

void LrSchedule::observe(double loss) {
  if (!have_best_ || loss < best_) {
    best_ = loss;
    have_best_ = true;
    since_best_ = 0;
    return;
  }
  if (++since_best_ >= config_.patience) {
    ++reductions_;
    since_best_ = 0;
  }
}

double LrSchedule::scale(int64_t t) const {
  switch (config_.type) {
    case LrScheduleType::Plateau:
      return std::pow(config_.factor, reductions_);
    case LrScheduleType::Geometric:
      return std::pow(config_.rho, static_cast<double>(t)) / sigma_min_x_;
    case LrScheduleType::Constant:
      break;
  }
  return 1.0;
}

bool IclEval::finite() const {
  if (!std::isfinite(loss) || !std::isfinite(distance)) return false;
  for (double e : mode_errors)
    if (!std::isfinite(e)) return false;
  return true;
}

namespace {

template <class T>
HostMatrix download_matrix(const Buffer<T>& buffer, int d) {
  const std::vector<T> host = buffer.download();
  HostMatrix m(d);
  std::copy(host.begin(), host.end(), m.a.begin());
  return m;
}

template <class T>
Buffer<T> upload_matrix(Backend& backend, const HostMatrix& m) {
  std::vector<T> host(m.a.begin(), m.a.end());
  Buffer<T> b(backend, host.size());
  b.upload(host);
  return b;
}

}  // namespace

template <class T>
IclTrainer<T>::IclTrainer(Backend& backend, const ExperimentConfig& config)
    : backend_(backend),
      config_(config),
      problem_(config.task, config.seed),
      rule_config_(icl_update_rule_config(config.optimizer)),
      schedule_(config.train.lr_schedule, problem_.sigma_min_x()) {
  const int d = problem_.d();
  const std::size_t n = static_cast<std::size_t>(d) * d;
  const auto zeroed = [&](bool kept) {
    Buffer<T> b(backend, kept ? n : 0);
    if (kept) backend.fill(b.data(), n, T(0));
    return b;
  };
  m_ = zeroed(state_buffer_count(rule_config_) > 0);
  v_ = zeroed(state_buffer_count(rule_config_) > 1);
  const bool muon = rule_config_.type == OptimizerType::Muon;
  direction_ = Buffer<T>(backend, muon ? n : 0);
  orthogonal_ = Buffer<T>(backend, muon ? n : 0);
  q_ = Buffer<T>(backend, n);
  backend.fill(q_.data(), n, T(0));  // Q_0 = 0
  grad_ = Buffer<T>(backend, n);
  left_times_q_ = Buffer<T>(backend, n);
  residual_ = Buffer<T>(backend, n);
  gradient_left_ = upload_matrix<T>(backend, problem_.p());
  sigma_x_ = upload_matrix<T>(backend, problem_.sigma_x());
  loss_left_ = upload_matrix<T>(backend, problem_.loss_left());
  loss_right_ = upload_matrix<T>(backend, problem_.loss_right());
  loss_offset_ = upload_matrix<T>(backend, problem_.loss_offset());
  initial_loss_ = loss();
}

template <class T>
IclTrainer<T>::~IclTrainer() = default;

template <class T>
std::string IclTrainer<T>::describe_optimizer() const {
  return fmt::format("{} as {}", name(config_.optimizer.type), describe_rule(rule_config_, problem_.d(), problem_.d()));
}

// out = (left Q) right - offset: the shape of both the loss residual and the gradient.
template <class T>
void IclTrainer<T>::product_minus_offset(const Buffer<T>& left, const Buffer<T>& right, const Buffer<T>& offset,
                                    Buffer<T>& out) {
  const int d = problem_.d();
  backend_.gemm(Trans::No, Trans::No, d, d, d, T(1), left.data(), d, q_.data(), d, T(0), left_times_q_.data(), d);
  backend_.copy(out.data(), offset.data(), out.size() * sizeof(T));
  backend_.gemm(Trans::No, Trans::No, d, d, d, T(1), left_times_q_.data(), d, right.data(), d, T(-1), out.data(), d);
}

template <class T>
double IclTrainer<T>::loss() {
  product_minus_offset(loss_left_, loss_right_, loss_offset_, residual_);  // E = A Q H - C, L = 1/2 ||E||_F^2
  return 0.5 * backend_.sum_squares(residual_.data(), residual_.size());
}

template <class T>
void IclTrainer<T>::compute_gradient() {
  product_minus_offset(gradient_left_, sigma_x_, gradient_left_, grad_);  // G = P Q Sx - P
}

template <class T>
HostMatrix IclTrainer<T>::gradient() {
  compute_gradient();
  return download_matrix(grad_, problem_.d());
}

template <class T>
double IclTrainer<T>::step(int64_t t) {
  if (schedule_.needs_loss()) schedule_.observe(loss());
  compute_gradient();
  const double scale = schedule_.scale(t);
  const int d = problem_.d();
  const RunUpdateOf<T> entry = run_update<T>(rule_config_, scale, 0, 0, d, d);
  const UpdateArgs q =
      UpdateArgs(UpdateKind::Sgd, q_.data(), grad_.data(), q_.size(), entry).state(m_.data(), 0, v_.data());
  update_tensor(backend_, rule_config_, q, MuonScratch<T>{direction_.data(), orthogonal_.data(), 0, d, d}, t + 1);
  return config_.optimizer.lr * scale;
}

template <class T>
HostMatrix IclTrainer<T>::iterate() const {
  return download_matrix(q_, problem_.d());
}

template <class T>
void IclTrainer<T>::set_iterate(const HostMatrix& q) {
  if (q.n != problem_.d()) throw std::invalid_argument("set_iterate: wrong size");
  const std::vector<T> host(q.a.begin(), q.a.end());
  q_.upload(host);
}

template <class T>
IclEval IclTrainer<T>::evaluate(int64_t step, double lr) {
  IclEval e;
  e.step = step;
  e.lr = lr;
  e.loss = loss();
  e.relative_loss = initial_loss_ > 0 ? e.loss / initial_loss_ : e.loss;
  const HostMatrix q = iterate();
  bool finite = std::isfinite(e.loss);
  for (double v : q.a) finite = finite && std::isfinite(v);
  if (!finite) {  // LAPACK refuses NaN; the row records it as such
    e.distance = e.relative_distance = std::nan("");
    e.mode_errors.assign(config_.eval.modes.size(), std::nan(""));
    return e;
  }
  e.distance = problem_.distance(q);
  e.relative_distance = problem_.relative(e.distance);
  for (int mode : config_.eval.modes) e.mode_errors.push_back(problem_.mode_error(q, mode));
  return e;
}

template <class T>
RunSummary IclTrainer<T>::run(RunDirectory& dir, Progress& progress) {
  RunMonitor monitor(config_, dir);
  RunSummary& summary = monitor.summary();
  summary.device = backend_.name();
  const double epsilon = config_.eval.epsilon;
  std::optional<int64_t> steps_to_epsilon;
  std::optional<IclEval> last;  // empty until the first eval
  double last_lr = 0.0;         // the step size of the latest update

  std::vector<std::string> columns = {"lr", "loss", "relative_loss", "distance", "relative_distance"};
  for (int mode : config_.eval.modes) columns.push_back(fmt::format("mode_{}", mode));
  dir.open_metrics_columns(columns);
  // The final_* fields are null until the first eval (a run killed before it shows no result).
  auto fill_extra = [&] {
    const auto or_null = [&](double IclEval::*field) { return last ? nlohmann::json((*last).*field) : nlohmann::json(); };
    summary.extra = {{"task", "icl_linreg"},
                     {"epsilon", epsilon},
                     {"steps_to_epsilon", steps_to_epsilon ? nlohmann::json(*steps_to_epsilon) : nlohmann::json()},
                     {"initial_loss", initial_loss_},
                     {"final_loss", or_null(&IclEval::loss)},
                     {"final_relative_distance", or_null(&IclEval::relative_distance)},
                     {"lr_reductions", schedule_.reductions()}};
  };
  fill_extra();
  monitor.start();

  RunLoopHooks hooks;
  hooks.train_step = [&](int64_t t) { last_lr = step(t); };
  // Records an eval row; false when the iterate is no longer finite.
  hooks.eval = [&](int64_t at) {
    const IclEval& e = last.emplace(evaluate(at, at == 0 ? 0.0 : last_lr));
    std::vector<double> values = {e.lr, e.loss, e.relative_loss, e.distance, e.relative_distance};
    values.insert(values.end(), e.mode_errors.begin(), e.mode_errors.end());
    dir.append_metrics_values(at, monitor.wall(), values);
    if (!steps_to_epsilon && e.relative_distance <= epsilon) {
      steps_to_epsilon = at;
      spdlog::info("relative distance {:.3e} <= epsilon = {} at step {}", e.relative_distance, epsilon, at);
    }
    progress.update(at, fmt::format("loss {:.3e}  rel. distance {:.3e}", e.loss, e.relative_distance));
    return e.finite();
  };
  hooks.learned = [&] { return steps_to_epsilon.has_value(); };
  hooks.diverged_message = [&](int64_t at) {
    return at == 0 ? std::string("non-finite loss at step 0")
                   : fmt::format("non-finite loss or iterate at step {} (optimizer.lr = {} may be too large)", at,
                                 config_.optimizer.lr);
  };
  hooks.interrupted_message = [](int64_t at) {
    return fmt::format("interrupted by a signal at step {}; icl_linreg runs keep no checkpoint, --resume runs it again",
                       at);
  };
  // No checkpoint: an icl run is cheap and deterministic, so --resume runs it again from Q_0.
  const int64_t steps = monitor.drive(0, /*eval_first=*/true, hooks);
  progress.finish();
  fill_extra();
  return monitor.finish(
      steps, steps_to_epsilon ? fmt::format("relative distance <= epsilon = {} at step {}", epsilon, *steps_to_epsilon)
                              : fmt::format("relative distance {:.3e} > epsilon = {} after {} steps",
                                            last ? last->relative_distance : std::nan(""), epsilon, steps));
}

template class IclTrainer<float>;
template class IclTrainer<double>;

RunSummary run_icl(Backend& backend, const ExperimentConfig& config, RunDirectory& dir, Progress& progress) {
  const auto go = [&](auto& trainer) {
    spdlog::info("task: icl_linreg, d = {}, basis {}, sigma_min(Sx) = {:.3e}, sigma_min(Sw) = {:.3e}",
                 config.task.d, config.task.basis, trainer.problem().sigma_min_x(),
                 trainer.problem().lambda_w().back());
    spdlog::info("optimizer: {}; lr schedule {}", trainer.describe_optimizer(), name(config.train.lr_schedule.type));
    return trainer.run(dir, progress);
  };
  if (config.precision == Precision::Fp64) {
    IclTrainer<double> trainer(backend, config);
    return go(trainer);
  }
  IclTrainer<float> trainer(backend, config);
  return go(trainer);
}

}  // namespace skillrun
