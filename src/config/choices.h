// The closed choices of an experiment config (device, precision, task type, optimizer type,
// msign method, Muon's scale and parameter set, lr schedule) as enums, each value with its one spelling in JSON.
// The config structs hold the enums; strings appear only where JSON is read or written and in
// messages, so the step path never compares strings. Depends on the standard library only.
#pragma once
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace skillrun {

// Where a run computes (config key `device`; backend/backend.h: make_backend). Auto: CUDA
// when this skillrun was built with it and a usable device is present, else the CPU.
enum class DeviceChoice { Auto, Cpu, Cuda };
// Arithmetic of the matrix products (config key `precision`). Fp32: true fp32 (no TF32).
// Tf32: fp32 storage, TF32 tensor-core products (10-bit mantissa operands, fp32 accumulation).
// Bf16: fp32 storage and master weights, bf16 operands in the products, fp32 accumulation.
// Only the CUDA backend has Tf32 and Bf16; everything but gemm stays fp32 in every mode.
// Fp64: every op in double; only the CPU backend and only the tasks that
// are written for it (icl_linreg) take it.
enum class Precision { Fp32, Tf32, Bf16, Fp64 };
enum class TaskType { SparseParity, IclLinreg, AssocMemory };
// gd, ngd and specgd are icl_linreg only; train/icl_trainer.h maps them onto sgd, nmd and muon.
enum class OptimizerType { Sgd, Nmd, Adam, AdamW, SignGd, Muon, Gd, Ngd, SpecGd };
// Matrix sign msign(G) = U V^T for G = U S V^T: Newton-Schulz variants and the exact SVD.
// NormMatched is the control of arXiv 2606.08388: not a sign, G sqrt(min(m, n)) / ||G||_F, the
// Frobenius norm of msign(G) with G's own spectrum (optim/msign.h).
enum class MsignMethod { NewtonSchulz5, PolarExpress, Svd, NormMatched };
// Muon's step scale for an m x n weight (optim/optimizer.h: muon_scale).
enum class MuonScale { SqrtRatio, Keller, Moonshot, None };
// The weights Muon updates: the hidden weight matrices, or every weight matrix.
enum class MuonParams { Hidden, AllWeights };
enum class LrScheduleType { Constant, Plateau, Geometric };
// Where weight decay enters (optimizer.weight_decay_mode; nmd, signgd, muon): Decoupled shrinks
// the weights, w *= 1 - lr wd, beside the step; Coupled folds it into the gradient, g += wd w,
// before momentum (and msign).
enum class WeightDecayMode { Decoupled, Coupled };

// One value and its config spelling.
template <class E>
struct Choice {
  E value;
  std::string_view name;
};

// For each enum: `noun`, what messages call it ("unknown msign method ..."), and `all`, every
// value with its spelling in declaration order, the order in which messages list them. This
// table is the only place a spelling is written.
template <class E>
struct ChoiceSet;

template <>
struct ChoiceSet<DeviceChoice> {
  static constexpr std::string_view noun = "device";
  static constexpr Choice<DeviceChoice> all[] = {
      {DeviceChoice::Auto, "auto"}, {DeviceChoice::Cpu, "cpu"}, {DeviceChoice::Cuda, "cuda"}};
};
template <>
struct ChoiceSet<Precision> {
  static constexpr std::string_view noun = "precision";
  static constexpr Choice<Precision> all[] = {
      {Precision::Fp32, "fp32"}, {Precision::Tf32, "tf32"}, {Precision::Bf16, "bf16"}, {Precision::Fp64, "fp64"}};
};
template <>
struct ChoiceSet<TaskType> {
  static constexpr std::string_view noun = "task type";
  static constexpr Choice<TaskType> all[] = {{TaskType::SparseParity, "sparse_parity"},
                                             {TaskType::IclLinreg, "icl_linreg"},
                                             {TaskType::AssocMemory, "assoc_memory"}};
};
template <>
struct ChoiceSet<OptimizerType> {
  static constexpr std::string_view noun = "optimizer";
  static constexpr Choice<OptimizerType> all[] = {
      {OptimizerType::Sgd, "sgd"},     {OptimizerType::Nmd, "nmd"},       {OptimizerType::Adam, "adam"},
      {OptimizerType::AdamW, "adamw"}, {OptimizerType::SignGd, "signgd"}, {OptimizerType::Muon, "muon"},
      {OptimizerType::Gd, "gd"},       {OptimizerType::Ngd, "ngd"},       {OptimizerType::SpecGd, "specgd"}};
};
template <>
struct ChoiceSet<MsignMethod> {
  static constexpr std::string_view noun = "msign method";
  static constexpr Choice<MsignMethod> all[] = {
      {MsignMethod::NewtonSchulz5, "ns5"}, {MsignMethod::PolarExpress, "polar_express"}, {MsignMethod::Svd, "svd"},
      {MsignMethod::NormMatched, "norm_matched"}};
};
template <>
struct ChoiceSet<MuonScale> {
  static constexpr std::string_view noun = "scale";
  static constexpr Choice<MuonScale> all[] = {{MuonScale::SqrtRatio, "sqrt_ratio"},
                                              {MuonScale::Keller, "keller"},
                                              {MuonScale::Moonshot, "moonshot"},
                                              {MuonScale::None, "none"}};
};
template <>
struct ChoiceSet<MuonParams> {
  static constexpr std::string_view noun = "muon_params";
  static constexpr Choice<MuonParams> all[] = {{MuonParams::Hidden, "hidden"}, {MuonParams::AllWeights, "all_weights"}};
};
template <>
struct ChoiceSet<LrScheduleType> {
  static constexpr std::string_view noun = "schedule";
  static constexpr Choice<LrScheduleType> all[] = {{LrScheduleType::Constant, "constant"},
                                                   {LrScheduleType::Plateau, "plateau"},
                                                   {LrScheduleType::Geometric, "geometric"}};
};

template <>
struct ChoiceSet<WeightDecayMode> {
  static constexpr std::string_view noun = "weight decay mode";
  static constexpr Choice<WeightDecayMode> all[] = {{WeightDecayMode::Decoupled, "decoupled"},
                                                    {WeightDecayMode::Coupled, "coupled"}};
};

template <class E>
concept ConfigChoice = requires {
  ChoiceSet<E>::all;
};

// The config spelling of `value` ("adamw", "polar_express", ...).
template <ConfigChoice E>
constexpr std::string_view name(E value) {
  for (const auto& c : ChoiceSet<E>::all) {
    if (c.value == value) return c.name;
  }
  return "unknown";  // only for a value cast from outside the enum
}

// The value spelled `spelling` (exactly: "SVD" is not "svd"); nullopt when there is none.
template <ConfigChoice E>
constexpr std::optional<E> find_choice(std::string_view spelling) {
  for (const auto& c : ChoiceSet<E>::all) {
    if (c.name == spelling) return c.value;
  }
  return std::nullopt;
}

// The value spelled `spelling`; otherwise throws std::invalid_argument:
// `unknown msign method "ns6" (expected ns5 | polar_express | svd)`.
template <ConfigChoice E>
E parse_choice(std::string_view spelling) {
  if (const auto value = find_choice<E>(spelling)) return *value;
  std::string expected;
  for (const auto& c : ChoiceSet<E>::all) {
    if (!expected.empty()) expected += " | ";
    expected += c.name;
  }
  throw std::invalid_argument("unknown " + std::string(ChoiceSet<E>::noun) + " \"" + std::string(spelling) +
                              "\" (expected " + expected + ")");
}

}  // namespace skillrun
