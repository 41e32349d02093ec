// A sparse-parity run's checkpoint (train/run_checkpoint.h): which of a run directory's
// checkpoints a resume takes (the newest of this run whose step metrics.csv covers), and the
// run's buffers saved and put back.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/fs.h"
#include "model/mlp.h"
#include "optim/optimizer.h"
#include "optim/pack_optimizer.h"
#include "train/run_checkpoint.h"

#include "support/temp_dir.h"

namespace skillrun {
namespace {
namespace fs = std::filesystem;

// tiny.json: eval.every 25, 3 subtasks.
ExperimentConfig tiny(const std::vector<std::string>& overrides = {}) {
  return load_experiment(std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json", overrides);
}

CheckpointState checkpoint_of(const ExperimentConfig& config, int64_t step) {
  CheckpointState s;
  s.run_config = checkpoint_identity(to_json(config));
  s.step = step;
  s.T_k.assign(3, std::nullopt);
  s.names = {"layers.0.weight"};
  s.buffers = {{static_cast<float>(step)}};
  return s;
}

// metrics.csv with a whole row at every eval step 0, 25, ..., last.
void write_rows_through(const fs::path& dir, int64_t last) {
  std::string text = "step,wall_s,train_loss,mean_loss,loss_0,loss_1,loss_2,acc_0,acc_1,acc_2\n";
  for (int64_t s = 0; s <= last; s += 25) text += std::to_string(s) + ",0.1,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5\n";
  write_file_atomic(dir / "metrics.csv", text);
}

class CheckpointToResume : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::off);
    dir_ = skillrun_test::fresh_temp_dir("resume_choice");
    // This run's checkpoints at 100, 150 and 175, then one of another seed's run at 200.
    for (int64_t step : {100, 150, 175}) write_checkpoint(dir_, checkpoint_of(config_, step), /*keep=*/10);
    write_checkpoint(dir_, checkpoint_of(tiny({"seed=2"}), 200), /*keep=*/10);
  }
  void TearDown() override {
    spdlog::set_level(spdlog::level::info);
    fs::remove_all(dir_);
  }
  std::optional<int64_t> chosen() {
    const std::optional<CheckpointState> c = checkpoint_to_resume(dir_, config_);
    return c ? std::optional<int64_t>(c->step) : std::nullopt;
  }
  ExperimentConfig config_ = tiny();
  fs::path dir_;
};

TEST_F(CheckpointToResume, TheNewestOfThisRunWhenTheRowsReachIt) {
  write_rows_through(dir_, 200);
  EXPECT_EQ(chosen(), 175);  // 200 is another run's
}

TEST_F(CheckpointToResume, NotOneWhoseStepIsPastTheLastRowsEval) {
  // Rows through 150: a checkpoint at s rewrites the rows after s, so s must be < 150 + 25.
  write_rows_through(dir_, 150);
  EXPECT_EQ(chosen(), 150);
  write_rows_through(dir_, 125);
  EXPECT_EQ(chosen(), 100);
  write_rows_through(dir_, 75);
  EXPECT_EQ(chosen(), std::nullopt);  // even the oldest would lose the row of step 100
}

TEST_F(CheckpointToResume, StepZeroWithoutMetricsRows) { EXPECT_EQ(chosen(), std::nullopt); }

// A one-run model and its optimizer (Muon for the weights, Adam for the rest: two state slots).
struct RunParts {
  explicit RunParts(Backend& backend, uint64_t seed, int width = 8)
      : model(backend, 19, width, 2, 2, 4), pack(backend, model.parameters(), config.optimizer),
        optimizer(pack.optimizer(0)) {
    model.initialize(seed);
  }
  ExperimentConfig config = tiny();
  Mlp model;
  PackOptimizer pack;
  Optimizer& optimizer;
};

TEST(RunBuffers, SavedThenRestoredIntoAnotherRunGiveItTheSameParametersStateAndCount) {
  CpuBackend backend;
  RunParts a(backend, 1), b(backend, 2);
  a.optimizer.set_steps_taken(7);
  std::vector<float> moment(a.optimizer.state().front()->size(), 0.25f);
  a.optimizer.state().front()->upload(moment);
  CheckpointState saved;
  saved.T_k.assign(3, std::nullopt);
  save_run_buffers(saved, a.model.parameters(), a.optimizer);
  EXPECT_EQ(saved.optimizer_steps, 7);
  ASSERT_EQ(saved.names.size(), a.model.parameters().size() + a.optimizer.state().size());
  EXPECT_EQ(saved.names.front(), "layers.0.weight");
  EXPECT_EQ(saved.names.back(), "optimizer.state." + std::to_string(a.optimizer.state().size() - 1));

  restore_run_buffers(saved, b.model.parameters(), b.optimizer, 3);
  EXPECT_EQ(b.optimizer.steps_taken(), 7);
  for (std::size_t i = 0; i < a.model.parameters().size(); ++i)
    EXPECT_EQ(b.model.parameters()[i].value.download(), a.model.parameters()[i].value.download());
  EXPECT_EQ(b.optimizer.state().front()->download(), moment);
}

TEST(RunBuffers, ACheckpointOfAnotherShapeIsRefusedNamingTheBuffer) {
  CpuBackend backend;
  RunParts narrow(backend, 1, 8), wide(backend, 1, 16);
  CheckpointState saved;
  saved.T_k.assign(3, std::nullopt);
  save_run_buffers(saved, narrow.model.parameters(), narrow.optimizer);
  try {
    restore_run_buffers(saved, wide.model.parameters(), wide.optimizer, 3);
    FAIL() << "restored a checkpoint of width 8 into width 16";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("layers.0.weight"), std::string::npos) << e.what();
  }
  EXPECT_THROW(restore_run_buffers(saved, narrow.model.parameters(), narrow.optimizer, 4), RuntimeError);  // T_k
}

}  // namespace
}  // namespace skillrun
