// The experiment config: typed structs with defaults, parsed strictly from JSON (unknown keys,
// wrong types and out-of-range values throw ConfigError naming the dotted JSON path), written
// back resolved (every default filled in) into each run directory.
// The key layout is the interface users and later issues build on: see docs/CONFIG.md.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/choices.h"

namespace skillrun {

// The spectrum of a covariance of the icl_linreg task, normalised so that lambda_1 = 1: either
// a power law lambda_i = i^-exponent (i = 1..d) or, when kappa is set, the geometric spectrum
// lambda_i = kappa^-((i-1)/(d-1)) from 1 down to 1/kappa (condition number kappa).
struct SpectrumConfig {
  std::optional<double> kappa;  // >= 1
  double exponent = 1.0;        // >= 0; used when kappa is not set
  bool operator==(const SpectrumConfig&) const = default;
};

struct TaskConfig {
  TaskType type = TaskType::SparseParity;
  // sparse_parity
  int n_tasks = 5;
  int n_bits = 100;
  int k = 3;
  double zipf_exponent = 1.4;  // gamma: p_i proportional to (i+1)^-gamma
  // icl_linreg (paper Section 5): the population loss of a d x d preconditioner Q
  int d = 100;
  SpectrumConfig sigma_x;  // input covariance
  SpectrumConfig sigma_w;  // task covariance
  std::string basis = "shared";  // shared: one orthogonal V* (Assumption 1) | independent
  // eigenbasis: the iterate is written in the eigenbasis of Sigma_x (V* = I), where SpecGD's
  // exact invariants (Lemma 3) survive rounding; original: a random orthogonal V*, where
  // rounding seeds off-diagonal errors that SpecGD amplifies (docs/ICL.md). Rotation-equivariant
  // optimizers (gd, ngd, specgd, muon) follow the same trajectory in both up to rounding;
  // coordinate-wise ones (adam, signgd) do not.
  std::string coordinates = "eigenbasis";  // eigenbasis | original
  // assoc_memory (arXiv 2602.05725; docs/CONFIG.md): N facts (query i drawn with p_i
  // proportional to i^-zipf_exponent, i = 1..N, answer f(i) fixed from the seed), M answers,
  // embeddings in R^dim, label noise eps (the answer replaced by a uniform one with probability
  // eps), the loss streams: the facts by frequency rank in n_groups contiguous equal groups.
  int n_facts = 64;
  int n_answers = 64;
  int dim = 64;
  double label_noise = 0.0;
  std::string embeddings = "orthogonal";  // orthogonal | identity | gaussian
  int n_groups = 4;
  // The loss streams of a run (metrics.csv's loss_k columns): n_groups for assoc_memory,
  // n_tasks otherwise (icl_linreg has none of its own).
  int streams() const { return type == TaskType::AssocMemory ? n_groups : n_tasks; }
};

struct ModelConfig {
  std::string type = "mlp";  // mlp (sparse_parity) | linear (assoc_memory: logits = U^T W E_x)
  int width = 250;
  int depth = 2;  // number of linear layers: input -> width -> ... -> 2 logits
};

// One optimizer. `muon` uses `other` for the parameters Muon does not update.
struct OptimizerConfig {
  OptimizerType type = OptimizerType::Sgd;  // required in JSON
  double lr = 0.0;                          // required, > 0
  // Momentum coefficient beta: sgd/signgd default 0, nmd 0.9, muon 0.95. Unused by adam(w).
  double momentum = 0.0;
  bool nesterov = false;    // sgd, muon
  double weight_decay = 0;  // all types; decoupled for adamw/muon/nmd/signgd, L2 for sgd/adam
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam, adamw
  MsignMethod msign = MsignMethod::NewtonSchulz5;  // muon, specgd (default svd)
  int ns_steps = 5;                                // muon ns5 / polar_express iterations
  MuonScale scale = MuonScale::SqrtRatio;          // muon
  MuonParams muon_params = MuonParams::Hidden;     // muon
  // nmd, signgd, muon: decoupled (w *= 1 - lr wd) or coupled (g += wd w before momentum/msign)
  WeightDecayMode weight_decay_mode = WeightDecayMode::Decoupled;
  std::shared_ptr<OptimizerConfig> other;  // muon only: "other_params" (default adam, lr 1e-3)
};

// Step-size schedule (icl_linreg only; sparse_parity runs use a constant lr). The step at
// iteration t (0-based) is optimizer.lr times: 1 (constant); factor^(number of reductions so
// far) (plateau: a reduction whenever the loss has not improved on its best for `patience`
// iterations); rho^t / sigma_min(Sigma_x) (geometric: Theorem 2's eta_t = C rho^t / sigma_min,
// with C = optimizer.lr).
struct LrScheduleConfig {
  LrScheduleType type = LrScheduleType::Constant;
  double factor = 0.3;  // plateau
  int patience = 50;    // plateau
  double rho = 0.99;    // geometric
};

struct TrainConfig {
  int batch_size = 10000;
  int64_t max_steps = 20000;
  bool stop_when_learned = true;
  // Checkpoints (train/checkpoint.h): every N steps (0: not by steps) and/or every S seconds of
  // wall time (0: not by time); always on SIGINT/SIGTERM/SIGUSR1.
  int64_t checkpoint_every = 0;
  double checkpoint_seconds = 300;
  LrScheduleConfig lr_schedule;  // icl_linreg only
};

struct EvalConfig {
  int every = 50;  // icl_linreg: 10 by default
  // sparse_parity
  int samples_per_task = 1000;
  double tau_bits = 0.1;  // tau: subtask k is learned when its eval loss <= tau (bits)
  // icl_linreg: the run has converged when ||Q_t - Sigma_x^-1||_2 / ||Sigma_x^-1||_2 <= epsilon;
  // `modes` are the 1-based eigenmodes i of Sigma_x whose errors |theta_i - 1/lambda_i| are
  // logged (default: 1, the middle one and d).
  double epsilon = 1e-3;
  std::vector<int> modes;
  // sparse_parity: singular values of every weight matrix and of its last update at every
  // spectra_every-th eval row (and the run's last), into spectra.csv (train/spectra.h); 0: off
  int spectra_every = 0;
};

struct ExperimentConfig {
  std::string name = "run";
  uint64_t seed = 0;
  DeviceChoice device = DeviceChoice::Auto;  // auto | cpu | cuda
  Precision precision = Precision::Fp32;     // fp32 | tf32 | bf16 (tf32/bf16: CUDA only) | fp64 (CPU, icl_linreg)
  TaskConfig task;
  ModelConfig model;  // sparse_parity only
  bool is_icl() const { return task.type == TaskType::IclLinreg; }
  OptimizerConfig optimizer;
  TrainConfig train;
  EvalConfig eval;
};

// Throws ConfigError(path, `unknown <noun> "<spelling>" (expected one of: <names>)`), the one
// message for a value outside a closed set of spellings.
[[noreturn]] void throw_unknown_choice(const std::string& path, std::string_view noun, std::string_view spelling,
                                       const std::vector<std::string_view>& names);

// The choice E spelled `spelling`, read as the config key at `path` is read: otherwise throws
// ConfigError(path, `unknown device "gpu" (expected one of: auto, cpu, cuda)`). The config
// parser reads every enum key through it, and so do the flags that name a choice without a
// config (bench --msign's --device, --precision and --msign-method; --device of the commands
// with a config is applied to the config as the override device=...).
template <ConfigChoice E>
E parse_config_choice(const std::string& path, std::string_view spelling) {
  if (const auto value = find_choice<E>(spelling)) return *value;
  std::vector<std::string_view> names;
  for (const auto& c : ChoiceSet<E>::all) names.push_back(c.name);
  throw_unknown_choice(path, ChoiceSet<E>::noun, spelling, names);
}

// Parses and validates. Throws ConfigError(path, reason) on the first problem found.
ExperimentConfig parse_experiment(const nlohmann::json& j);
// The resolved config: every field, defaults included. parse_experiment(to_json(c)) == c.
nlohmann::json to_json(const ExperimentConfig& c);

// The deepest nesting of arrays and objects skillrun reads (configs need 4): the JSON library
// recurses when it builds, copies, prints and destroys a value, so depth must be bounded.
constexpr int kMaxJsonDepth = 64;

// Parses the JSON text of `source` (a file name, for messages) the one way skillrun reads JSON:
// all of it, strictly. Throws ConfigError: "<source>: malformed JSON at line L, column C: ..."
// (syntax, a NUL byte, anything after the value, a number out of range), "<source>: nesting
// too deep (limit: 64 ...)", "<path>: duplicate key in <source>" (nothing is silently ignored).
nlohmann::json parse_json(const std::string& text, const std::string& source);
// The same, keeping the order of object keys (sweep files: the axes expand in file order).
nlohmann::ordered_json parse_ordered_json(const std::string& text, const std::string& source);
// How two resolved configs differ, key by key, at most `max_shown` keys then ", ...":
// "optimizer.lr (0.01 in the directory, 0.02 here)" for ours_where "in the directory" and
// theirs_where "here". Empty when they are equal.
std::string json_difference(const nlohmann::json& ours, const nlohmann::json& theirs, std::string_view ours_where,
                            std::string_view theirs_where, int max_shown = 4);
// What runs of one pack share (docs/ARCHITECTURE.md, "Packs"): a resolved config without
// `seed`, `optimizer` and `name` (a label), dumped as text. Runs of equal signatures have the
// same shapes, data stream layout, schedule and device, so one process may train them together.
std::string pack_signature(const nlohmann::json& resolved_config);
// Reads and parses a JSON file as above; a missing/unreadable file throws UsageError.
nlohmann::json read_json_file(const std::string& path);
nlohmann::ordered_json read_ordered_json_file(const std::string& path);
// Applies "a.b.c=value" (value parsed as JSON when it parses, else taken as a string),
// creating intermediate objects. Malformed assignments throw UsageError, as do values nested
// too deep, with a duplicate key, or not valid UTF-8.
void apply_override(nlohmann::json& j, const std::string& assignment);

// Reads, overrides and validates: what `run` and `validate` do before anything else.
ExperimentConfig load_experiment(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace skillrun

namespace skillrun {
// Bytes the run will allocate (activations, eval set, parameters, optimizer state), computed
// with saturating arithmetic. Validation rejects configs whose estimate exceeds physical memory.
std::size_t estimated_memory_bytes(const ExperimentConfig& c);
// Throws ConfigError (path of the largest contributor) when the estimate exceeds physical memory.
void check_memory_fits(const ExperimentConfig& c);
}  // namespace skillrun
