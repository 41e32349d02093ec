// Strict parsing of the experiment config (docs/CONFIG.md) into typed structs and the resolved
// JSON written back into run directories. The first problem found throws ConfigError naming
// the dotted JSON path, what was expected and what was given.
#include "config/experiment.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string_view>

#include <fmt/format.h>

#include "core/error.h"
#include "core/strings.h"

namespace skillrun {
namespace {

using nlohmann::json;
using Names = std::vector<std::string_view>;

std::string join_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

// "a, b or c": the human form of a short list of allowed values.
std::string join_names(const Names& names, std::string_view last_separator = ", ") {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += (i + 1 == names.size()) ? last_separator : std::string_view(", ");
    out += names[i];
  }
  return out;
}

bool contains(const Names& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

const json& expect_object(const json& value, const std::string& path) {
  if (!value.is_object()) throw ConfigError(path, "expected an object, got " + value.dump());
  return value;
}

void reject_unknown_keys(const json& obj, const std::string& path, const Names& allowed) {
  for (const auto& item : obj.items()) {
    if (!contains(allowed, item.key())) {
      const auto meant = nearest_name(item.key(), allowed);
      throw ConfigError(join_path(path, item.key()), "unknown key (" +
                                                         (meant ? "did you mean \"" + *meant + "\"? " : std::string()) +
                                                         "allowed: " + join_names(allowed) + ")");
    }
  }
}

// Integers must be JSON integers: 2.5 and also 250.0 are rejected, so that a value never
// changes silently on the way in. The range is checked on the 64-bit value before narrowing.
template <class Int>
void read_integer(const json& obj, const std::string& path, std::string_view key, Int& out,
                  int64_t lo, int64_t hi = std::numeric_limits<Int>::max()) {
  const auto it = obj.find(key);
  if (it == obj.end()) return;
  const std::string where = join_path(path, key);
  if (!it->is_number_integer()) throw ConfigError(where, "expected an integer, got " + it->dump());
  if (it->is_number_unsigned()) {
    if (it->template get<uint64_t>() > static_cast<uint64_t>(hi)) {
      throw ConfigError(where, "must be <= " + std::to_string(hi) + ", got " + it->dump());
    }
  }
  const int64_t v = it->template get<int64_t>();
  if (v < lo) throw ConfigError(where, "must be >= " + std::to_string(lo) + ", got " + it->dump());
  if (v > hi) throw ConfigError(where, "must be <= " + std::to_string(hi) + ", got " + it->dump());
  out = static_cast<Int>(v);
}

enum class NumberRule { kPositive, kNonNegative, kUnitInterval };  // > 0, >= 0, [0, 1)

void read_number(const json& obj, const std::string& path, std::string_view key, double& out,
                 NumberRule rule) {
  const auto it = obj.find(key);
  if (it == obj.end()) return;
  const std::string where = join_path(path, key);
  if (!it->is_number()) throw ConfigError(where, "expected a number, got " + it->dump());
  const double v = it->get<double>();
  // JSON text cannot hold inf/nan, but a json built in code can.
  if (!std::isfinite(v)) throw ConfigError(where, "must be finite, got " + it->dump());
  switch (rule) {
    case NumberRule::kPositive:
      if (!(v > 0)) throw ConfigError(where, "must be > 0, got " + it->dump());
      break;
    case NumberRule::kNonNegative:
      if (!(v >= 0)) throw ConfigError(where, "must be >= 0, got " + it->dump());
      break;
    case NumberRule::kUnitInterval:
      if (!(v >= 0 && v < 1)) throw ConfigError(where, "must be in [0, 1), got " + it->dump());
      break;
  }
  out = v;
}

void read_bool(const json& obj, const std::string& path, std::string_view key, bool& out) {
  const auto it = obj.find(key);
  if (it == obj.end()) return;
  if (!it->is_boolean()) {
    throw ConfigError(join_path(path, key), "expected true or false, got " + it->dump());
  }
  out = it->get<bool>();
}

// The string at `key` of `obj`; nullptr when the key is absent.
const std::string* read_string(const json& obj, const std::string& path, std::string_view key) {
  const auto it = obj.find(key);
  if (it == obj.end()) return nullptr;
  if (!it->is_string()) throw ConfigError(join_path(path, key), "expected a string, got " + it->dump());
  return &it->get_ref<const std::string&>();
}

// `noun` names what was unknown in the message: `unknown basis "x" (expected one of: ...)`.
void read_choice(const json& obj, const std::string& path, std::string_view key, std::string& out,
                 const Names& choices, std::string_view noun) {
  const std::string* s = read_string(obj, path, key);
  if (s == nullptr) return;
  if (!contains(choices, *s)) throw_unknown_choice(join_path(path, key), noun, *s, choices);
  out = *s;
}

// Every spelling of E, in the order messages list them.
template <ConfigChoice E>
Names choice_names() {
  Names names;
  for (const auto& c : ChoiceSet<E>::all) names.push_back(c.name);
  return names;
}

// The same for a choice held as an enum, converted once here.
template <ConfigChoice E>
void read_choice(const json& obj, const std::string& path, std::string_view key, E& out) {
  if (const std::string* s = read_string(obj, path, key)) out = parse_config_choice<E>(join_path(path, key), *s);
}

// ---------------------------------------------------------------------------------------------
// optimizer

const Names kAllOptimizerTypes = choice_names<OptimizerType>();
// icl_linreg also takes gd (sgd without momentum), ngd (the gradient over its Frobenius norm:
// nmd with beta 0) and specgd (Q -= lr msign(grad): muon without momentum, exact msign).
const Names kIclOnlyTypes = {"gd", "ngd", "specgd"};
const Names kOptimizerTypes = [] {
  Names types = kAllOptimizerTypes;
  std::erase_if(types, [](std::string_view t) { return contains(kIclOnlyTypes, t); });
  return types;
}();
// Keys that only make sense with several parameter tensors (the MLP).
const Names kMlpOnlyOptimizerKeys = {"muon_params", "other_params"};

// Which optimizer types accept each key; the table is the single source for the unknown-key,
// wrong-type and to_json decisions.
struct OptimizerKey {
  std::string_view key;
  Names types;
};
const std::vector<OptimizerKey>& optimizer_keys() {
  static const std::vector<OptimizerKey> keys = {
      {"type", kAllOptimizerTypes},
      {"lr", kAllOptimizerTypes},
      {"momentum", {"sgd", "nmd", "signgd", "muon"}},
      {"nesterov", {"sgd", "muon"}},
      {"weight_decay", kAllOptimizerTypes},
      {"beta1", {"adam", "adamw"}},
      {"beta2", {"adam", "adamw"}},
      {"eps", {"adam", "adamw"}},
      {"msign", {"muon", "specgd"}},
      {"ns_steps", {"muon", "specgd"}},
      {"scale", {"muon"}},
      {"muon_params", {"muon"}},
      {"other_params", {"muon"}},
      {"weight_decay_mode", {"nmd", "signgd", "muon"}},
  };
  return keys;
}

// Types allowed where this optimizer sits: other_params is any optimizer but Muon; the
// icl_linreg task adds gd, ngd and specgd.
Names allowed_types(bool nested, bool icl) {
  Names types = icl ? kAllOptimizerTypes : kOptimizerTypes;
  if (nested) std::erase(types, "muon");
  return types;
}

bool key_valid_for(std::string_view key, std::string_view type) {
  for (const auto& k : optimizer_keys()) {
    if (k.key == key) return contains(k.types, type);
  }
  return false;
}

double default_momentum(OptimizerType type) {
  if (type == OptimizerType::Nmd) return 0.9;
  if (type == OptimizerType::Muon) return 0.95;
  return 0.0;
}

OptimizerConfig default_other_params() {
  OptimizerConfig other;
  other.type = OptimizerType::Adam;
  other.lr = 1e-3;
  return other;
}

OptimizerConfig parse_optimizer(const json& j, const std::string& path, bool nested, bool icl) {
  expect_object(j, path);
  const Names types = allowed_types(nested, icl);
  if (icl) {
    for (std::string_view key : kMlpOnlyOptimizerKeys) {
      if (j.contains(key)) {
        throw ConfigError(join_path(path, key),
                          "only valid when task.type is sparse_parity (icl_linreg has one matrix, Q)");
      }
    }
  }

  // A key is known here when some allowed type takes it; muon-only keys are unknown inside
  // other_params, where muon cannot be chosen.
  Names known;
  for (const auto& k : optimizer_keys()) {
    if (std::any_of(k.types.begin(), k.types.end(),
                    [&](std::string_view t) { return contains(types, t); })) {
      known.push_back(k.key);
    }
  }
  reject_unknown_keys(j, path, known);

  OptimizerConfig o;
  if (nested) o = default_other_params();
  const std::string type_path = join_path(path, "type");
  if (!j.contains("type") && !nested) throw ConfigError(path, "missing required key \"type\"");
  if (nested && j.contains("type") && j["type"] == "muon") {
    throw ConfigError(type_path, "muon cannot update the other parameters (expected one of: " +
                                     join_names(types) + ")");
  }
  if (!icl && j.contains("type") && j["type"].is_string() &&
      contains(kIclOnlyTypes, j["type"].get_ref<const std::string&>())) {
    throw ConfigError(type_path, "optimizer " + j["type"].dump() +
                                     " is only valid when task.type is icl_linreg (expected one of: " +
                                     join_names(types) + ")");
  }
  // The key table is keyed by spelling, so the checks below keep the type as a string.
  std::string type(name(o.type));
  read_choice(j, path, "type", type, types, ChoiceSet<OptimizerType>::noun);
  o.type = parse_choice<OptimizerType>(type);
  if (o.type == OptimizerType::SpecGd) o.msign = MsignMethod::Svd;  // the exact msign of the paper's SpecGD

  for (const auto& item : j.items()) {
    if (!key_valid_for(item.key(), type)) {
      Names takers;
      for (const auto& k : optimizer_keys()) {
        if (k.key != item.key()) continue;
        for (auto t : k.types) {
          if (contains(types, t)) takers.push_back(t);
        }
      }
      throw ConfigError(join_path(path, item.key()),
                        "only valid when " + type_path + " is " + join_names(takers, " or ") + " (it is " + type + ")");
    }
  }
  if (!j.contains("lr") && !nested) throw ConfigError(path, "missing required key \"lr\"");

  o.momentum = default_momentum(o.type);
  read_number(j, path, "lr", o.lr, NumberRule::kPositive);
  read_number(j, path, "momentum", o.momentum, NumberRule::kUnitInterval);
  read_bool(j, path, "nesterov", o.nesterov);
  read_number(j, path, "weight_decay", o.weight_decay, NumberRule::kNonNegative);
  read_number(j, path, "beta1", o.beta1, NumberRule::kUnitInterval);
  read_number(j, path, "beta2", o.beta2, NumberRule::kUnitInterval);
  read_number(j, path, "eps", o.eps, NumberRule::kPositive);
  read_choice(j, path, "msign", o.msign);
  read_integer(j, path, "ns_steps", o.ns_steps, 1, 100);
  read_choice(j, path, "scale", o.scale);
  read_choice(j, path, "muon_params", o.muon_params);
  read_choice(j, path, "weight_decay_mode", o.weight_decay_mode);
  if (o.type == OptimizerType::Muon && !icl) {
    const auto it = j.find("other_params");
    o.other = std::make_shared<OptimizerConfig>(
        it == j.end() ? default_other_params()
                      : parse_optimizer(*it, join_path(path, "other_params"), true, false));
  }
  return o;
}

json optimizer_to_json(const OptimizerConfig& o, bool icl) {
  json j = json::object();
  const auto put = [&](std::string_view key, json value) {
    if (key_valid_for(key, name(o.type))) j[std::string(key)] = std::move(value);
  };
  j["type"] = name(o.type);
  j["lr"] = o.lr;
  put("momentum", o.momentum);
  put("nesterov", o.nesterov);
  j["weight_decay"] = o.weight_decay;
  put("beta1", o.beta1);
  put("beta2", o.beta2);
  put("eps", o.eps);
  put("msign", name(o.msign));
  put("ns_steps", o.ns_steps);
  put("scale", name(o.scale));
  put("weight_decay_mode", name(o.weight_decay_mode));
  if (icl) return j;
  put("muon_params", name(o.muon_params));
  if (o.type == OptimizerType::Muon) {
    // A hand-built muon config without `other` resolves to the same default parsing gives it.
    j["other_params"] = optimizer_to_json(o.other ? *o.other : default_other_params(), false);
  }
  return j;
}

// ---------------------------------------------------------------------------------------------
// sections

constexpr std::size_t kMaxNameBytes = 200;

void check_name(const json& j, std::string& out) {
  const auto it = j.find("name");
  if (it == j.end()) return;
  if (!it->is_string()) throw ConfigError("name", "expected a string, got " + it->dump());
  const auto& s = it->get_ref<const std::string&>();
  // The name becomes part of run directory names, so it must be a safe path component.
  const bool safe_chars = std::all_of(s.begin(), s.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
  });
  if (s.empty() || !safe_chars || s == "." || s == "..") {
    throw ConfigError("name",
                      "must be non-empty and use only letters, digits, '.', '_' and '-' (and not "
                      "be \".\" or \"..\"), got " +
                          it->dump());
  }
  // The default run directory is <name>-YYYYmmdd-HHMMSS[-N]: the bound leaves room for the
  // suffix within NAME_MAX (255 bytes), so a config that validates can also run.
  if (s.size() > kMaxNameBytes) {
    throw ConfigError("name", "must be at most " + std::to_string(kMaxNameBytes) +
                                  " characters (it becomes part of the run directory's name), got " +
                                  std::to_string(s.size()));
  }
  out = s;
}

void check_seed(const json& j, uint64_t& out) {
  const auto it = j.find("seed");
  if (it == j.end()) return;
  if (!it->is_number_integer()) throw ConfigError("seed", "expected an integer, got " + it->dump());
  if (!it->is_number_unsigned() && it->get<int64_t>() < 0) {
    throw ConfigError("seed", "must be >= 0, got " + it->dump());
  }
  out = it->get<uint64_t>();
}

// Where a key belongs to only one task type: "train.batch_size: only valid when task.type is
// sparse_parity (it is icl_linreg)".
void reject_keys_of_other_task(const json& obj, const std::string& path, const Names& keys,
                               std::string_view owner, std::string_view type) {
  for (std::string_view key : keys) {
    if (obj.contains(key)) {
      throw ConfigError(join_path(path, key), "only valid when task.type is " + std::string(owner) + " (it is " +
                                                  std::string(type) + ")");
    }
  }
}

const Names kParityTaskKeys = {"n_tasks", "n_bits", "k", "zipf_exponent"};
const Names kIclTaskKeys = {"d", "sigma_x", "sigma_w", "basis", "coordinates"};
const Names kAssocTaskKeys = {"n_facts", "n_answers", "dim", "label_noise", "embeddings", "n_groups"};
const Names kParityOnlyTaskKeys = {"n_tasks", "n_bits", "k"};  // zipf_exponent is assoc_memory's too

// assoc_memory (the task's keys after "type"): every value checked, the errors naming the key.
TaskConfig parse_assoc_task(const json& j, const std::string& path, TaskConfig t) {
  reject_keys_of_other_task(j, path, kParityOnlyTaskKeys, "sparse_parity", name(t.type));
  reject_keys_of_other_task(j, path, kIclTaskKeys, "icl_linreg", name(t.type));
  read_integer(j, path, "n_facts", t.n_facts, 1, 1 << 20);
  read_integer(j, path, "n_answers", t.n_answers, 2, 1 << 16);
  read_integer(j, path, "dim", t.dim, 1, 4096);
  read_number(j, path, "zipf_exponent", t.zipf_exponent, NumberRule::kNonNegative);
  read_number(j, path, "label_noise", t.label_noise, NumberRule::kUnitInterval);
  if (!(t.label_noise < 1.0)) throw ConfigError(join_path(path, "label_noise"), "must be in [0, 1), got 1");
  read_choice(j, path, "embeddings", t.embeddings, {"orthogonal", "identity", "gaussian"}, "embeddings");
  read_integer(j, path, "n_groups", t.n_groups, 1);
  if (t.n_groups > t.n_facts || t.n_facts % t.n_groups != 0) {
    throw ConfigError(join_path(path, "n_groups"), "must divide task.n_facts (" + std::to_string(t.n_facts) +
                                                       ") into equal groups, got " + std::to_string(t.n_groups));
  }
  if (t.embeddings != "gaussian") {
    for (const auto& [key, n] : {std::pair<const char*, int>{"n_facts", t.n_facts}, {"n_answers", t.n_answers}}) {
      if (n > t.dim) {
        throw ConfigError(join_path(path, key), "must be <= task.dim (" + std::to_string(t.dim) + ") for " +
                                                    t.embeddings + " embeddings (" + std::to_string(n) +
                                                    " orthonormal vectors in R^dim), got " + std::to_string(n) +
                                                    "; \"gaussian\" embeddings allow more");
      }
    }
  }
  return t;
}

// The largest condition number a spectrum may have: Sigma_x^-1, and the distance to it, carry a
// relative error of about kappa * 1e-16 in fp64, so beyond 1e12 they would no longer mean much.
constexpr double kMaxKappa = 1e12;

SpectrumConfig parse_spectrum(const json& j, const std::string& path, int d) {
  expect_object(j, path);
  reject_unknown_keys(j, path, {"kappa", "exponent"});
  if (j.contains("kappa") == j.contains("exponent")) {
    throw ConfigError(path, "give exactly one of \"kappa\" (condition number: geometric spectrum from 1 to "
                            "1/kappa) or \"exponent\" (power law lambda_i = i^-exponent)");
  }
  SpectrumConfig spectrum;
  if (j.contains("kappa")) {
    double kappa = 1.0;
    read_number(j, path, "kappa", kappa, NumberRule::kPositive);
    if (kappa < 1.0) throw ConfigError(join_path(path, "kappa"), "must be >= 1, got " + j["kappa"].dump());
    if (kappa > kMaxKappa) {
      throw ConfigError(join_path(path, "kappa"),
                        "must be <= 1e12 (Sigma_x^-1 carries a relative error of about kappa * 1e-16 in fp64), got " +
                            j["kappa"].dump());
    }
    spectrum.kappa = kappa;
  }
  read_number(j, path, "exponent", spectrum.exponent, NumberRule::kNonNegative);
  // A power law's condition number is d^exponent: the same bound.
  if (!spectrum.kappa && spectrum.exponent * std::log10(static_cast<double>(d)) > std::log10(kMaxKappa)) {
    throw ConfigError(join_path(path, "exponent"),
                      "gives a condition number d^exponent = " + std::to_string(d) + "^" + j["exponent"].dump() +
                          " above 1e12 (Sigma_x^-1 carries a relative error of about kappa * 1e-16 in fp64)");
  }
  return spectrum;
}

json spectrum_to_json(const SpectrumConfig& s) {
  return s.kappa ? json{{"kappa", *s.kappa}} : json{{"exponent", s.exponent}};
}

TaskConfig parse_task(const json& j) {
  const std::string path = "task";
  expect_object(j, path);
  Names allowed = {"type"};
  for (const auto* keys : {&kParityTaskKeys, &kIclTaskKeys, &kAssocTaskKeys})
    allowed.insert(allowed.end(), keys->begin(), keys->end());
  reject_unknown_keys(j, path, allowed);
  if (!j.contains("type")) throw ConfigError(path, "missing required key \"type\" (sparse_parity or icl_linreg)");
  TaskConfig t;
  read_choice(j, path, "type", t.type);
  if (t.type == TaskType::IclLinreg) {
    reject_keys_of_other_task(j, path, kParityTaskKeys, "sparse_parity", name(t.type));
    reject_keys_of_other_task(j, path, kAssocTaskKeys, "assoc_memory", name(t.type));
    read_integer(j, path, "d", t.d, 1, 4096);
    if (j.contains("sigma_x")) t.sigma_x = parse_spectrum(j["sigma_x"], "task.sigma_x", t.d);
    if (j.contains("sigma_w")) t.sigma_w = parse_spectrum(j["sigma_w"], "task.sigma_w", t.d);
    read_choice(j, path, "basis", t.basis, {"shared", "independent"}, "basis");
    read_choice(j, path, "coordinates", t.coordinates, {"eigenbasis", "original"}, "coordinates");
    return t;
  }
  if (t.type == TaskType::AssocMemory) return parse_assoc_task(j, path, t);
  reject_keys_of_other_task(j, path, kIclTaskKeys, "icl_linreg", name(t.type));
  reject_keys_of_other_task(j, path, kAssocTaskKeys, "assoc_memory", name(t.type));
  read_integer(j, path, "n_tasks", t.n_tasks, 1);
  read_integer(j, path, "n_bits", t.n_bits, 1);
  read_integer(j, path, "k", t.k, 1);
  if (t.k > t.n_bits) {
    throw ConfigError("task.k", "must be <= task.n_bits (" + std::to_string(t.n_bits) + "), got " +
                                    std::to_string(t.k));
  }
  read_number(j, path, "zipf_exponent", t.zipf_exponent, NumberRule::kNonNegative);
  return t;
}

ModelConfig parse_model(const json& j, const TaskConfig& task) {
  const std::string path = "model";
  expect_object(j, path);
  reject_unknown_keys(j, path, {"type", "width", "depth"});
  ModelConfig m;
  const bool assoc = task.type == TaskType::AssocMemory;
  if (assoc) m.type = "linear";
  read_choice(j, path, "type", m.type, {"mlp", "linear"}, "model type");
  if ((m.type == "linear") != assoc) {
    throw ConfigError(join_path(path, "type"), assoc ? "must be \"linear\" when task.type is assoc_memory, got \"" +
                                                           m.type + "\""
                                                     : "\"linear\" is only valid when task.type is assoc_memory");
  }
  if (assoc) {
    for (std::string_view key : {"width", "depth"}) {
      if (j.contains(key)) {
        throw ConfigError(join_path(path, key), "only valid when model.type is mlp (linear is one d x d matrix W)");
      }
    }
  }
  read_integer(j, path, "width", m.width, 1);
  read_integer(j, path, "depth", m.depth, 1);
  return m;
}

const Names kParityTrainKeys = {"batch_size", "checkpoint_every", "checkpoint_seconds"};
const Names kIclTrainKeys = {"lr_schedule"};

LrScheduleConfig parse_lr_schedule(const json& j) {
  const std::string path = "train.lr_schedule";
  expect_object(j, path);
  reject_unknown_keys(j, path, {"type", "factor", "patience", "rho"});
  LrScheduleConfig s;
  read_choice(j, path, "type", s.type);
  const auto only_for = [&](std::string_view key, LrScheduleType type) {
    if (j.contains(key) && s.type != type) {
      throw ConfigError(join_path(path, key), "only valid when " + path + ".type is " + std::string(name(type)) +
                                                  " (it is " + std::string(name(s.type)) + ")");
    }
  };
  only_for("factor", LrScheduleType::Plateau);
  only_for("patience", LrScheduleType::Plateau);
  only_for("rho", LrScheduleType::Geometric);
  read_number(j, path, "factor", s.factor, NumberRule::kUnitInterval);
  if (!(s.factor > 0)) throw ConfigError(join_path(path, "factor"), "must be in (0, 1), got 0");
  read_integer(j, path, "patience", s.patience, 1);
  read_number(j, path, "rho", s.rho, NumberRule::kUnitInterval);
  if (!(s.rho > 0)) throw ConfigError(join_path(path, "rho"), "must be in (0, 1), got 0");
  return s;
}

json lr_schedule_to_json(const LrScheduleConfig& s) {
  json j = {{"type", name(s.type)}};
  if (s.type == LrScheduleType::Plateau) {
    j["factor"] = s.factor;
    j["patience"] = s.patience;
  }
  if (s.type == LrScheduleType::Geometric) j["rho"] = s.rho;
  return j;
}

TrainConfig parse_train(const json& j, const TaskConfig& task) {
  const std::string path = "train";
  expect_object(j, path);
  reject_unknown_keys(j, path, {"batch_size", "max_steps", "stop_when_learned", "checkpoint_every",
                                "checkpoint_seconds", "lr_schedule"});
  if (task.type == TaskType::IclLinreg) {
    reject_keys_of_other_task(j, path, kParityTrainKeys, "sparse_parity", name(task.type));
  } else {
    reject_keys_of_other_task(j, path, kIclTrainKeys, "icl_linreg", name(task.type));
  }
  TrainConfig t;
  read_integer(j, path, "batch_size", t.batch_size, 1);
  // The step is a 32-bit word of the Philox counter (backend/sparse_parity_gen.h).
  read_integer(j, path, "max_steps", t.max_steps, 1, int64_t{0xFFFFFFFF});
  read_bool(j, path, "stop_when_learned", t.stop_when_learned);
  read_integer(j, path, "checkpoint_every", t.checkpoint_every, 0, int64_t{0xFFFFFFFF});
  read_number(j, path, "checkpoint_seconds", t.checkpoint_seconds, NumberRule::kNonNegative);
  if (j.contains("lr_schedule")) t.lr_schedule = parse_lr_schedule(j["lr_schedule"]);
  return t;
}

const Names kParityEvalKeys = {"samples_per_task", "tau_bits", "spectra_every"};
const Names kIclEvalKeys = {"epsilon", "modes"};

// The default eigenmodes logged for a d x d problem: the first, the middle and the last.
std::vector<int> default_modes(int d) {
  std::vector<int> modes = {1, (d + 1) / 2, d};
  modes.erase(std::unique(modes.begin(), modes.end()), modes.end());
  return modes;
}

EvalConfig parse_eval(const json& j, const TaskConfig& task) {
  const std::string path = "eval";
  expect_object(j, path);
  reject_unknown_keys(j, path, {"every", "samples_per_task", "tau_bits", "epsilon", "modes", "spectra_every"});
  const bool icl = task.type == TaskType::IclLinreg;
  if (icl) {
    reject_keys_of_other_task(j, path, kParityEvalKeys, "sparse_parity", name(task.type));
  } else {
    reject_keys_of_other_task(j, path, kIclEvalKeys, "icl_linreg", name(task.type));
  }
  if (task.type == TaskType::AssocMemory && j.contains("samples_per_task")) {
    throw ConfigError(join_path(path, "samples_per_task"),
                      "only valid when task.type is sparse_parity (assoc_memory evaluates every fact once)");
  }
  EvalConfig e;
  if (icl) e.every = 10;
  read_integer(j, path, "every", e.every, 1);
  read_integer(j, path, "samples_per_task", e.samples_per_task, 1);
  read_number(j, path, "tau_bits", e.tau_bits, NumberRule::kPositive);
  read_integer(j, path, "spectra_every", e.spectra_every, 0);
  read_number(j, path, "epsilon", e.epsilon, NumberRule::kPositive);
  if (const auto it = j.find("modes"); it != j.end()) {
    const std::string where = join_path(path, "modes");
    if (!it->is_array() || it->empty()) throw ConfigError(where, "expected a non-empty array of integers, got " + it->dump());
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& m = (*it)[i];
      const std::string item = where + "[" + std::to_string(i) + "]";
      if (!m.is_number_integer()) throw ConfigError(item, "expected an integer, got " + m.dump());
      const int64_t v = m.get<int64_t>();
      if (v < 1 || v > task.d) {
        throw ConfigError(item, "must be a 1-based eigenmode in [1, task.d = " + std::to_string(task.d) + "], got " +
                                    m.dump());
      }
      if (std::find(e.modes.begin(), e.modes.end(), static_cast<int>(v)) != e.modes.end()) {
        throw ConfigError(item, "mode " + m.dump() + " is listed twice");
      }
      e.modes.push_back(static_cast<int>(v));
    }
  }
  // assoc_memory's eval set is every fact once: each group's facts.
  if (task.type == TaskType::AssocMemory) e.samples_per_task = task.n_facts / task.n_groups;
  return e;
}

}  // namespace

void throw_unknown_choice(const std::string& path, std::string_view noun, std::string_view spelling,
                          const std::vector<std::string_view>& names) {
  // Quoted as JSON writes it (a flag's bytes need not be UTF-8: those are replaced).
  const std::string quoted = json(std::string(spelling)).dump(-1, ' ', false, json::error_handler_t::replace);
  throw ConfigError(path, "unknown " + std::string(noun) + " " + quoted + " (expected one of: " + join_names(names) + ")");
}

ExperimentConfig parse_experiment(const json& j) {
  if (!j.is_object()) {
    throw ConfigError("", "the config must be a JSON object, got " + j.dump());
  }
  reject_unknown_keys(
      j, "",
      {"name", "seed", "device", "precision", "task", "model", "optimizer", "train", "eval"});
  ExperimentConfig c;
  check_name(j, c.name);
  check_seed(j, c.seed);
  read_choice(j, "", "device", c.device);
  read_choice(j, "", "precision", c.precision);
  // Required like the optimizer: the task defines the experiment, so no default stands in for it.
  if (!j.contains("task")) {
    throw ConfigError("task", "required: an object with at least \"type\" (sparse_parity or icl_linreg)");
  }
  c.task = parse_task(j["task"]);
  const bool icl = c.is_icl();
  if (icl && j.contains("model")) {
    throw ConfigError("model", "only valid when task.type is sparse_parity (icl_linreg optimises a d x d matrix Q)");
  }
  if (c.precision == Precision::Fp64 && !icl) {
    throw ConfigError("precision", "fp64 is only available for task.type icl_linreg (the MLP runs in fp32, tf32 "
                                   "or bf16)");
  }
  if (j.contains("model")) {
    c.model = parse_model(j["model"], c.task);
  } else if (c.task.type == TaskType::AssocMemory) {
    c.model = parse_model(json::object(), c.task);
  }
  if (!j.contains("optimizer")) {
    throw ConfigError("optimizer",
                      "missing (required: an object with at least \"type\" and \"lr\")");
  }
  c.optimizer = parse_optimizer(j["optimizer"], "optimizer", false, icl);
  c.train = parse_train(j.contains("train") ? j["train"] : json::object(), c.task);
  c.eval = parse_eval(j.contains("eval") ? j["eval"] : json::object(), c.task);
  if (icl && c.eval.modes.empty()) c.eval.modes = default_modes(c.task.d);
  check_memory_fits(c);
  return c;
}

json to_json(const ExperimentConfig& c) {
  json j = json::object();
  j["name"] = c.name;
  j["seed"] = c.seed;
  j["device"] = name(c.device);
  j["precision"] = name(c.precision);
  const bool icl = c.is_icl();
  if (icl) {
    j["task"] = {{"type", name(c.task.type)},
                 {"d", c.task.d},
                 {"sigma_x", spectrum_to_json(c.task.sigma_x)},
                 {"sigma_w", spectrum_to_json(c.task.sigma_w)},
                 {"basis", c.task.basis},
                 {"coordinates", c.task.coordinates}};
  } else if (c.task.type == TaskType::AssocMemory) {
    j["task"] = {{"type", name(c.task.type)},
                 {"n_facts", c.task.n_facts},
                 {"n_answers", c.task.n_answers},
                 {"dim", c.task.dim},
                 {"zipf_exponent", c.task.zipf_exponent},
                 {"label_noise", c.task.label_noise},
                 {"embeddings", c.task.embeddings},
                 {"n_groups", c.task.n_groups}};
    j["model"] = {{"type", c.model.type}};
  } else {
    j["task"] = {{"type", name(c.task.type)},
                 {"n_tasks", c.task.n_tasks},
                 {"n_bits", c.task.n_bits},
                 {"k", c.task.k},
                 {"zipf_exponent", c.task.zipf_exponent}};
    j["model"] = {{"type", c.model.type}, {"width", c.model.width}, {"depth", c.model.depth}};
  }
  j["optimizer"] = optimizer_to_json(c.optimizer, icl);
  if (icl) {
    j["train"] = {{"max_steps", c.train.max_steps},
                  {"stop_when_learned", c.train.stop_when_learned},
                  {"lr_schedule", lr_schedule_to_json(c.train.lr_schedule)}};
    j["eval"] = {{"every", c.eval.every}, {"epsilon", c.eval.epsilon}, {"modes", c.eval.modes}};
  } else {
    j["train"] = {{"batch_size", c.train.batch_size},
                  {"max_steps", c.train.max_steps},
                  {"stop_when_learned", c.train.stop_when_learned},
                  {"checkpoint_every", c.train.checkpoint_every},
                  {"checkpoint_seconds", c.train.checkpoint_seconds}};
    j["eval"] = {{"every", c.eval.every},
                 {"samples_per_task", c.eval.samples_per_task},
                  {"tau_bits", c.eval.tau_bits},
                  {"spectra_every", c.eval.spectra_every}};
    if (c.task.type == TaskType::AssocMemory) j["eval"].erase("samples_per_task");  // every fact
  }
  return j;
}

ExperimentConfig load_experiment(const std::string& path,
                                 const std::vector<std::string>& overrides) {
  json j = read_json_file(path);
  for (const auto& assignment : overrides) apply_override(j, assignment);
  try {
    return parse_experiment(j);
  } catch (const ConfigError& e) {
    // `--set optimizer.type=nmd` keeps the config's other optimizer keys (msign, lr, ...), which
    // may not fit the new type: say how to replace the whole block instead.
    // Only when the key in error is one the config file had (no --set wrote it).
    for (const auto& assignment : overrides) {
      const std::string set_key = assignment.substr(0, assignment.find('='));
      if (e.path() == set_key || e.path().starts_with(set_key + ".")) throw;
    }
    for (const auto& assignment : overrides) {
      const std::string key = assignment.substr(0, assignment.find('='));
      if (!key.ends_with(".type")) continue;
      const std::string block = key.substr(0, key.size() - 5);
      if (!e.path().starts_with(block + ".")) continue;
      const std::string type = assignment.substr(assignment.find('=') + 1);
      throw ConfigError(e.path(), std::string(e.what()).substr(e.path().size() + 2) +
                                      fmt::format(". --set {} changes only the type and keeps the rest of \"{}\" "
                                                  "from {}; replace the whole block instead: --set '{}={{\"type\": "
                                                  "\"{}\"{}}}'",
                                                  key, block, path, block, type,
                                                  block == "optimizer" ? ", \"lr\": ..." : ", ..."));
    }
    throw;
  }
}

}  // namespace skillrun
