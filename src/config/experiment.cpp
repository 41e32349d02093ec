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

#include "core/error.h"

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
      throw ConfigError(join_path(path, item.key()),
                        "unknown key (allowed: " + join_names(allowed) + ")");
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

// `noun` names what was unknown in the message: `unknown device "gpu" (expected one of: ...)`.
void read_choice(const json& obj, const std::string& path, std::string_view key, std::string& out,
                 const Names& choices, std::string_view noun) {
  const auto it = obj.find(key);
  if (it == obj.end()) return;
  const std::string where = join_path(path, key);
  if (!it->is_string()) throw ConfigError(where, "expected a string, got " + it->dump());
  const auto& s = it->get_ref<const std::string&>();
  if (!contains(choices, s)) {
    throw ConfigError(where, "unknown " + std::string(noun) + " " + it->dump() +
                                 " (expected one of: " + join_names(choices) + ")");
  }
  out = s;
}

// ---------------------------------------------------------------------------------------------
// optimizer

const Names kOptimizerTypes = {"sgd", "nmd", "adam", "adamw", "signgd", "muon"};

// Which optimizer types accept each key; the table is the single source for the unknown-key,
// wrong-type and to_json decisions.
struct OptimizerKey {
  std::string_view key;
  Names types;
};
const std::vector<OptimizerKey>& optimizer_keys() {
  static const std::vector<OptimizerKey> keys = {
      {"type", kOptimizerTypes},
      {"lr", kOptimizerTypes},
      {"momentum", {"sgd", "nmd", "signgd", "muon"}},
      {"nesterov", {"sgd", "muon"}},
      {"weight_decay", kOptimizerTypes},
      {"beta1", {"adam", "adamw"}},
      {"beta2", {"adam", "adamw"}},
      {"eps", {"adam", "adamw"}},
      {"msign", {"muon"}},
      {"ns_steps", {"muon"}},
      {"scale", {"muon"}},
      {"muon_params", {"muon"}},
      {"other_params", {"muon"}},
  };
  return keys;
}

// Types allowed where this optimizer sits: other_params is any optimizer but Muon.
Names allowed_types(bool nested) {
  Names types = kOptimizerTypes;
  if (nested) std::erase(types, "muon");
  return types;
}

bool key_valid_for(std::string_view key, std::string_view type) {
  for (const auto& k : optimizer_keys()) {
    if (k.key == key) return contains(k.types, type);
  }
  return false;
}

double default_momentum(std::string_view type) {
  if (type == "nmd") return 0.9;
  if (type == "muon") return 0.95;
  return 0.0;
}

OptimizerConfig default_other_params() {
  OptimizerConfig other;
  other.type = "adam";
  other.lr = 1e-3;
  return other;
}

OptimizerConfig parse_optimizer(const json& j, const std::string& path, bool nested) {
  expect_object(j, path);
  const Names types = allowed_types(nested);

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
  read_choice(j, path, "type", o.type, types, "optimizer");

  for (const auto& item : j.items()) {
    if (!key_valid_for(item.key(), o.type)) {
      Names takers;
      for (const auto& k : optimizer_keys()) {
        if (k.key != item.key()) continue;
        for (auto t : k.types) {
          if (contains(types, t)) takers.push_back(t);
        }
      }
      throw ConfigError(join_path(path, item.key()), "only valid when " + type_path + " is " +
                                                         join_names(takers, " or ") + " (it is " +
                                                         o.type + ")");
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
  read_choice(j, path, "msign", o.msign, {"ns5", "polar_express", "svd"}, "msign method");
  read_integer(j, path, "ns_steps", o.ns_steps, 1, 100);
  read_choice(j, path, "scale", o.scale, {"sqrt_ratio", "keller", "moonshot", "none"}, "scale");
  read_choice(j, path, "muon_params", o.muon_params, {"hidden", "all_weights"}, "muon_params");
  if (o.type == "muon") {
    const auto it = j.find("other_params");
    o.other = std::make_shared<OptimizerConfig>(
        it == j.end() ? default_other_params()
                      : parse_optimizer(*it, join_path(path, "other_params"), true));
  }
  return o;
}

json optimizer_to_json(const OptimizerConfig& o) {
  json j = json::object();
  const auto put = [&](std::string_view key, json value) {
    if (key_valid_for(key, o.type)) j[std::string(key)] = std::move(value);
  };
  j["type"] = o.type;  // unconditional, so even an unset config shows what is missing
  j["lr"] = o.lr;
  put("momentum", o.momentum);
  put("nesterov", o.nesterov);
  j["weight_decay"] = o.weight_decay;
  put("beta1", o.beta1);
  put("beta2", o.beta2);
  put("eps", o.eps);
  put("msign", o.msign);
  put("ns_steps", o.ns_steps);
  put("scale", o.scale);
  put("muon_params", o.muon_params);
  if (o.type == "muon") {
    // A hand-built muon config without `other` resolves to the same default parsing gives it.
    j["other_params"] = optimizer_to_json(o.other ? *o.other : default_other_params());
  }
  return j;
}

// ---------------------------------------------------------------------------------------------
// sections

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

TaskConfig parse_task(const json& j) {
  const std::string path = "task";
  expect_object(j, path);
  reject_unknown_keys(j, path, {"type", "n_tasks", "n_bits", "k", "zipf_exponent"});
  TaskConfig t;
  read_choice(j, path, "type", t.type, {"sparse_parity"}, "task type");
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

ModelConfig parse_model(const json& j) {
  const std::string path = "model";
  expect_object(j, path);
  reject_unknown_keys(j, path, {"type", "width", "depth"});
  ModelConfig m;
  read_choice(j, path, "type", m.type, {"mlp"}, "model type");
  read_integer(j, path, "width", m.width, 1);
  read_integer(j, path, "depth", m.depth, 1);
  return m;
}

TrainConfig parse_train(const json& j) {
  const std::string path = "train";
  expect_object(j, path);
  reject_unknown_keys(j, path, {"batch_size", "max_steps", "stop_when_learned", "checkpoint_every",
                                "checkpoint_seconds"});
  TrainConfig t;
  read_integer(j, path, "batch_size", t.batch_size, 1);
  // The step is a 32-bit word of the Philox counter (tasks/sparse_parity_gen.h).
  read_integer(j, path, "max_steps", t.max_steps, 1, int64_t{0xFFFFFFFF});
  read_bool(j, path, "stop_when_learned", t.stop_when_learned);
  read_integer(j, path, "checkpoint_every", t.checkpoint_every, 0, int64_t{0xFFFFFFFF});
  read_number(j, path, "checkpoint_seconds", t.checkpoint_seconds, NumberRule::kNonNegative);
  return t;
}

EvalConfig parse_eval(const json& j) {
  const std::string path = "eval";
  expect_object(j, path);
  reject_unknown_keys(j, path, {"every", "samples_per_task", "tau_bits"});
  EvalConfig e;
  read_integer(j, path, "every", e.every, 1);
  read_integer(j, path, "samples_per_task", e.samples_per_task, 1);
  read_number(j, path, "tau_bits", e.tau_bits, NumberRule::kPositive);
  return e;
}

}  // namespace

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
  read_choice(j, "", "device", c.device, {"auto", "cpu", "cuda"}, "device");
  read_choice(j, "", "precision", c.precision, {"fp32", "tf32", "bf16"}, "precision");
  if (j.contains("task")) c.task = parse_task(j["task"]);
  if (j.contains("model")) c.model = parse_model(j["model"]);
  if (!j.contains("optimizer")) {
    throw ConfigError("optimizer",
                      "missing (required: an object with at least \"type\" and \"lr\")");
  }
  c.optimizer = parse_optimizer(j["optimizer"], "optimizer", false);
  if (j.contains("train")) c.train = parse_train(j["train"]);
  if (j.contains("eval")) c.eval = parse_eval(j["eval"]);
  check_memory_fits(c);
  return c;
}

json to_json(const ExperimentConfig& c) {
  json j = json::object();
  j["name"] = c.name;
  j["seed"] = c.seed;
  j["device"] = c.device;
  j["precision"] = c.precision;
  j["task"] = {{"type", c.task.type},
               {"n_tasks", c.task.n_tasks},
               {"n_bits", c.task.n_bits},
               {"k", c.task.k},
               {"zipf_exponent", c.task.zipf_exponent}};
  j["model"] = {{"type", c.model.type}, {"width", c.model.width}, {"depth", c.model.depth}};
  j["optimizer"] = optimizer_to_json(c.optimizer);
  j["train"] = {{"batch_size", c.train.batch_size},
                {"max_steps", c.train.max_steps},
                {"stop_when_learned", c.train.stop_when_learned},
                {"checkpoint_every", c.train.checkpoint_every},
                {"checkpoint_seconds", c.train.checkpoint_seconds}};
  j["eval"] = {{"every", c.eval.every},
               {"samples_per_task", c.eval.samples_per_task},
               {"tau_bits", c.eval.tau_bits}};
  return j;
}

ExperimentConfig load_experiment(const std::string& path,
                                 const std::vector<std::string>& overrides) {
  json j = read_json_file(path);
  for (const auto& assignment : overrides) apply_override(j, assignment);
  return parse_experiment(j);
}

}  // namespace skillrun
