// The update phase of a pack (optim/pack_optimizer.h): runs whose optimizers share a structure
// are one group updated by one backend call per tensor, and every run's parameters and state
// after the steps are bit for bit those its own Optimizer gives it alone, for every rule.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "config/experiment.h"
#include "optim/pack_optimizer.h"

namespace skillrun {
namespace {

OptimizerConfig optimizer(const std::string& json) {
  return parse_experiment(nlohmann::json::parse(
                              R"({"task": {"type": "sparse_parity", "n_tasks": 3, "n_bits": 8, "k": 2},
                                  "model": {"width": 16, "depth": 3}, "optimizer": )" +
                              json + "}"))
      .optimizer;
}

// Fills the gradients of `run` of `model` with the draws of run `as`, different each step.
void fake_gradients(Mlp& model, int run, int as, int step) {
  std::mt19937 rng(static_cast<unsigned>(1000 * as + step));
  std::normal_distribution<float> normal;
  for (Parameter& p : model.parameters(run)) {
    std::vector<float> g(p.size());
    for (float& x : g) x = normal(rng);
    p.grad.upload(g);
  }
}

TEST(PackOptimizer, EveryRunEqualsItsOwnOptimizerAloneBitForBit) {
  const std::vector<std::string> configs = {
      R"({"type": "adam", "lr": 0.01, "weight_decay": 0.01})",
      R"({"type": "muon", "lr": 0.02, "nesterov": true})",
      R"({"type": "adam", "lr": 0.003, "beta2": 0.99})",
      R"({"type": "adamw", "lr": 0.003, "weight_decay": 0.1})",
      R"({"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": true, "weight_decay": 0.001})",
      R"({"type": "sgd", "lr": 0.1})",
      R"({"type": "nmd", "lr": 0.05, "weight_decay": 0.01})",
      R"({"type": "signgd", "lr": 0.001, "momentum": 0.9})",
      R"({"type": "muon", "lr": 0.05, "nesterov": true, "weight_decay": 0.1})",
      R"({"type": "muon", "lr": 0.02, "msign": "polar_express", "momentum": 0.9})",
      R"({"type": "nmd", "lr": 0.01})",
  };
  CpuBackend backend;
  const int runs = static_cast<int>(configs.size());
  Mlp pack(backend, 11, 16, 3, 2, 4, runs);
  std::vector<OptimizerConfig> parsed;
  for (int r = 0; r < runs; ++r) {
    pack.initialize(r, static_cast<uint64_t>(r));
    parsed.push_back(optimizer(configs[static_cast<std::size_t>(r)]));
  }
  PackOptimizer packed(backend, pack, parsed);
  // Groups: adam (2 runs), muon ns5 nesterov (2), adamw, sgd+nesterov, sgd, nmd (2), signgd, muon polar.
  EXPECT_EQ(packed.groups(), 8);
  for (int step = 0; step < 4; ++step) {
    for (int r = 0; r < runs; ++r) fake_gradients(pack, r, r, step);
    // Run 6 sits the last step out (it left the pack): its tensors and state must stay as they were.
    std::vector<bool> active(static_cast<std::size_t>(runs), true);
    if (step == 3) active[6] = false;
    packed.set_active(active);
    packed.step();
  }
  for (int r = 0; r < runs; ++r) {
    SCOPED_TRACE(configs[static_cast<std::size_t>(r)]);
    Mlp alone(backend, 11, 16, 3, 2, 4);
    alone.initialize(static_cast<uint64_t>(r));
    PackOptimizer own(backend, alone.parameters(), parsed[static_cast<std::size_t>(r)]);
    for (int step = 0; step < 4; ++step) {
      if (step == 3 && r == 6) continue;
      fake_gradients(alone, 0, r, step);
      own.step();
    }
    EXPECT_EQ(packed.optimizer(r).steps_taken(), own.optimizer(0).steps_taken());
    for (std::size_t i = 0; i < alone.parameters().size(); ++i)
      EXPECT_EQ(pack.parameters(r)[i].value.download(), alone.parameters()[i].value.download()) << "parameter " << i;
    const auto a = packed.optimizer(r).state(), b = own.optimizer(0).state();
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i]->download(), b[i]->download()) << "state " << i;
  }
}

TEST(PackOptimizer, StructureSeparatesRulesButNotTheirScalars) {
  CpuBackend backend;
  Mlp model(backend, 11, 16, 3, 2, 4);
  const auto key = [&](const std::string& json) { return optimizer_structure(optimizer(json), model.parameters()); };
  EXPECT_EQ(key(R"({"type": "adam", "lr": 0.01})"), key(R"({"type": "adam", "lr": 0.5, "beta1": 0.8})"));
  EXPECT_NE(key(R"({"type": "adam", "lr": 0.01})"), key(R"({"type": "adamw", "lr": 0.01})"));
  EXPECT_NE(key(R"({"type": "sgd", "lr": 0.1})"), key(R"({"type": "sgd", "lr": 0.1, "momentum": 0.9})"));
  EXPECT_NE(key(R"({"type": "muon", "lr": 0.02})"), key(R"({"type": "muon", "lr": 0.02, "ns_steps": 6})"));
  EXPECT_NE(key(R"({"type": "muon", "lr": 0.02})"),
            key(R"({"type": "muon", "lr": 0.02, "other_params": {"type": "sgd", "lr": 0.1}})"));
}

}  // namespace
}  // namespace skillrun
