// The iteration of the icl_linreg task: Q_0 = 0, then Q <- update(Q, grad L(Q)) with one of the
// shared update rules (optim/), on the run's backend in T = float or double (precision fp64).
// The gradient and the loss are backend gemms over the fixed operands of IclProblem; the
// metrics that need an SVD (the spectral distance to Sx^-1) and the eigenmode errors are
// computed on the host in double from the downloaded iterate at each eval.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/experiment.h"
#include "io/run_dir.h"
#include "optim/optimizer.h"
#include "tasks/icl_linreg.h"
#include "train/progress.h"

namespace skillrun {

// The update-rule config behind an icl optimizer type: gd = sgd without momentum, ngd = nmd
// with beta 0, specgd = muon without momentum and without Muon's shape scale; the others as
// they are.
OptimizerConfig icl_update_rule_config(const OptimizerConfig& optimizer);

// The step-size multiplier of train.lr_schedule (LrScheduleConfig): call observe() with the
// loss at Q_t before scale() for iteration t when needs_loss().
class LrSchedule {
 public:
  LrSchedule(const LrScheduleConfig& config, double sigma_min_x);
  bool needs_loss() const { return config_.type == LrScheduleType::Plateau; }
  void observe(double loss);
  double scale(int64_t t) const;  // t: 0-based iteration
  int reductions() const { return reductions_; }

 private:
  LrScheduleConfig config_;
  double sigma_min_x_;
  double best_ = 0;
  bool have_best_ = false;
  int since_best_ = 0;
  int reductions_ = 0;
};

// One eval of the iterate.
struct IclEval {
  int64_t step = 0;
  double lr = 0;                  // the step size used by the last update (0 at step 0)
  double loss = 0;                // L(Q_t), computed on the backend
  double relative_loss = 0;       // L(Q_t) / L(Q_0)
  double distance = 0;            // ||Q_t - Sx^-1||_2
  double relative_distance = 0;   // distance * sigma_min(Sx)
  std::vector<double> mode_errors;  // |theta_i - 1/lambda_i| for eval.modes
  bool finite() const;
};

template <class T>
class IclTrainer {
 public:
  IclTrainer(Backend& backend, const ExperimentConfig& config);
  ~IclTrainer();

  const IclProblem& problem() const { return problem_; }
  std::string describe_optimizer() const;

  // L(Q) at the current iterate, on the backend (synchronises).
  double loss();
  // Computes grad L(Q) into the gradient buffer and returns it downloaded (for tests).
  HostMatrix gradient();
  // One iteration t (0-based): gradient, schedule, update. Returns the step size used.
  double step(int64_t t);
  HostMatrix iterate() const;
  void set_iterate(const HostMatrix& q);
  IclEval evaluate(int64_t step, double lr);

  // Runs to epsilon (when train.stop_when_learned) or max_steps, writing metrics.csv and
  // summary.json into `dir`. Interrupted runs stop with status interrupted (no checkpoint:
  // an icl run is cheap and deterministic, so --resume runs it again from Q_0).
  RunSummary run(RunDirectory& dir, Progress& progress);

 private:
  void compute_gradient();
  // out = (left Q) right - offset: the form of both the gradient and the loss residual.
  void product_minus_offset(const Buffer<T>& left, const Buffer<T>& right, const Buffer<T>& offset, Buffer<T>& out);

  Backend& backend_;
  ExperimentConfig config_;
  IclProblem problem_;
  OptimizerConfig rule_config_;
  // The rule's state (momentum, second moment; empty where it keeps none) and Muon's scratch.
  Buffer<T> m_, v_, direction_, orthogonal_;
  LrSchedule schedule_;
  // (d, d) each, column-major. The iterate and its gradient G = P Q Sx - P:
  Buffer<T> q_, grad_;
  Buffer<T> gradient_left_;  // P = Sx Sw Sx (also the gradient's offset)
  Buffer<T> sigma_x_;        // Sx
  // The loss L = 1/2 ||A Q H - C||_F^2: A, H, C and the residual A Q H - C.
  Buffer<T> loss_left_, loss_right_, loss_offset_, residual_;
  Buffer<T> left_times_q_;  // scratch of product_minus_offset: left Q
  double initial_loss_ = 0;
};

extern template class IclTrainer<float>;
extern template class IclTrainer<double>;

// `skillrun run` for an icl_linreg config: picks T by precision and runs.
RunSummary run_icl(Backend& backend, const ExperimentConfig& config, RunDirectory& dir, Progress& progress);

}  // namespace skillrun
